#!/usr/bin/env python3
"""Python multiprocessing's Lock and Value, measured for comparison with shmsync.

Prints one JSON object on stdout (and writes it to the file given with --out):
- lock_acquire_release_ns: median ns per `lock.acquire(); lock.release()`;
- value_increment_ns: median ns per `with v.get_lock(): v.value += 1`;
- loop_overhead_ns: median ns of the empty `for` loop the two include (not subtracted);
- contended_value_two_cpus_mops: two processes, pinned to two CPUs when possible, each doing
  `with v.get_lock(): v.value += 1` on one shared Value('q'): increments of both per second
  (median of 5 runs), from the first start to the last finish.

Each figure is the median over several repeats of a timed loop; the single-process loops are
timed with the thread's CPU clock (time.thread_time_ns), like the Rust single-thread benchmarks,
and the two-process run with time.perf_counter_ns.
"""

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import time


def per_op_ns(body, n, repeats):
    """Median ns per operation over `repeats` runs of `body(n)`, and (min, max) of the runs.

    Timed with the thread's CPU clock (time.thread_time_ns), as the Rust single-thread
    benchmarks are: time spent preempted by other processes does not count."""
    samples = []
    for _ in range(repeats):
        t0 = time.thread_time_ns()
        body(n)
        samples.append((time.thread_time_ns() - t0) / n)
    return statistics.median(samples), (min(samples), max(samples))


def empty_loop(n):
    for _ in range(n):
        pass


def bench_lock(n, repeats):
    """`lock.acquire(); lock.release()` on a multiprocessing.Lock."""
    lock = mp.Lock()
    acquire, release = lock.acquire, lock.release

    def body(n):
        for _ in range(n):
            acquire()
            release()

    body(1000)
    return per_op_ns(body, n, repeats)


def bench_value(n, repeats):
    v = mp.Value("q", 0)

    def body(n):
        for _ in range(n):
            with v.get_lock():
                v.value += 1

    body(1000)
    return per_op_ns(body, n, repeats)


def _contender(v, cpu, n, start_evt, ready, times):
    if cpu is not None:
        try:
            os.sched_setaffinity(0, {cpu})
        except OSError:
            pass
    ready.release()
    start_evt.wait()
    t0 = time.perf_counter_ns()
    for _ in range(n):
        with v.get_lock():
            v.value += 1
    times.put((t0, time.perf_counter_ns()))


def bench_contended(n, runs):
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:
        cpus = []
    pinned = len(cpus) >= 2
    placement = [cpus[0], cpus[1]] if pinned else [None, None]
    rates = []
    ctx = mp.get_context("fork")
    for _ in range(runs):
        v = ctx.Value("q", 0)
        start_evt = ctx.Event()
        ready = ctx.Semaphore(0)
        times = ctx.Queue()
        procs = [
            ctx.Process(target=_contender, args=(v, cpu, n, start_evt, ready, times))
            for cpu in placement
        ]
        for p in procs:
            p.start()
        try:
            for _ in procs:
                ready.acquire()
            start_evt.set()
            spans = [times.get(timeout=120) for _ in procs]
        finally:
            for p in procs:
                p.join(timeout=120)
                if p.is_alive():
                    p.kill()
                    p.join()
        assert v.value == n * len(procs), "lost increments"
        begin = min(s for s, _ in spans)
        end = max(e for _, e in spans)
        rates.append(n * len(procs) / ((end - begin) / 1e9) / 1e6)
    return rates, pinned


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="also write the JSON object to this file")
    parser.add_argument("--quick", action="store_true", help="fewer iterations (smoke test)")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    repeats = 7
    loop_ns, loop_range = per_op_ns(empty_loop, 2_000_000 // scale, repeats)
    lock_ns, lock_range = bench_lock(1_000_000 // scale, repeats)
    value_ns, value_range = bench_value(200_000 // scale, repeats)
    rates, pinned = bench_contended(300_000 // scale, 5)
    result = {
        "python": sys.version.split()[0],
        "implementation": sys.implementation.name,
        "clock": "thread CPU time (time.thread_time_ns); contended: wall clock",
        "repeats": repeats,
        "loop_overhead_ns": loop_ns,
        "lock_acquire_release_ns": lock_ns,
        "lock_acquire_release_ns_range": lock_range,
        "value_increment_ns": value_ns,
        "value_increment_ns_range": value_range,
        "contended_value_two_cpus_mops": statistics.median(rates),
        "contended_value_two_cpus_mops_range": (min(rates), max(rates)),
        "contended_pinned": pinned,
    }
    text = json.dumps(result)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
