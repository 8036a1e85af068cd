"""Speed of shmsync's Python module against multiprocessing's, in one run on this machine:
Lock acquire + release, and a Value increment under its lock (`with v.get_lock(): v.value +=
1`). Prints a Markdown table with the ratios; `benches/report.py` copies it into BENCHMARKS.md
when the module is installed.

    python3 python/benches/bench.py [--quick] [--json FILE]   (module installed: pip install ./python)
"""

import json

import multiprocessing as mp
import sys
import timeit

import shmsync


def per_op(stmt, number, repeat):
    # The best of `repeat` runs: the least disturbed by the rest of the machine.
    return min(timeit.repeat(stmt, number=number, repeat=repeat)) / number


def main():
    quick = "--quick" in sys.argv
    number, repeat = (20_000, 3) if quick else (200_000, 7)
    mp_lock, sh_lock = mp.Lock(), shmsync.Lock()
    mp_value, sh_value = mp.Value("q", 0), shmsync.Value("q", 0)

    def mp_lock_op():
        mp_lock.acquire()
        mp_lock.release()

    def sh_lock_op():
        sh_lock.acquire()
        sh_lock.release()

    def mp_inc():
        with mp_value.get_lock():
            mp_value.value += 1

    def sh_inc():
        with sh_value.get_lock():
            sh_value.value += 1

    rows = [
        ("`Lock` acquire + release", per_op(mp_lock_op, number, repeat), per_op(sh_lock_op, number, repeat), 5),
        ("`Value('q')` += 1 under `get_lock()`", per_op(mp_inc, number, repeat), per_op(sh_inc, number, repeat), 10),
    ]
    if "--json" in sys.argv:
        out = sys.argv[sys.argv.index("--json") + 1]
        with open(out, "w") as f:
            json.dump(
                [
                    {"operation": name, "multiprocessing_ns": mp_t * 1e9, "shmsync_ns": sh_t * 1e9, "goal": goal}
                    for name, mp_t, sh_t, goal in rows
                ],
                f,
            )
    print("| operation (Python) | multiprocessing | shmsync | speed-up | goal |")
    print("|---|---|---|---|---|")
    for name, mp_t, sh_t, goal in rows:
        ratio = mp_t / sh_t
        print(
            f"| {name} | {mp_t * 1e9:.0f} ns | {sh_t * 1e9:.0f} ns | {ratio:.2f}× | ≥ {goal}× "
            f"{'met' if ratio >= goal else 'missed'} |"
        )


if __name__ == "__main__":
    main()
