#!/usr/bin/env python3
"""Python multiprocessing's Lock and Value, measured for comparison with shmsync.

Prints one JSON object on stdout (and writes it to the file given with --out):
- lock_acquire_release_ns: median ns per `lock.acquire(); lock.release()`;
- value_increment_ns: median ns per `with v.get_lock(): v.value += 1`;
- loop_overhead_ns: median ns of the empty `for` loop the two include (not subtracted);
- contended_value_two_cpus_mops: two processes, pinned to two CPUs when possible, each doing
  `with v.get_lock(): v.value += 1` on one shared Value('q'): increments of both per second
  (median of 5 runs), from the first start to the last finish;
- queue_items_per_s: one producer and one consumer process (pinned to two CPUs when possible)
  passing ints through a multiprocessing.Queue(1024): items per second from the first put to
  the consumer's last get (median of 5 runs);
- queue_round_trip_us: one item there and back through two such queues (median over rounds).

`--queue-only` measures the two queue figures alone (for benches/queue.rs, which runs it).

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


def _pin(cpu):
    if cpu is not None:
        try:
            os.sched_setaffinity(0, {cpu})
        except OSError:
            pass


def _queue_consumer(q, cpu, n, ready, done):
    _pin(cpu)
    ready.release()
    get = q.get
    for _ in range(n):
        get()
    done.put(time.perf_counter_ns())


def _placement():
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:
        cpus = []
    return [cpus[0], cpus[1]] if len(cpus) >= 2 else [None, None]


def bench_queue(n, runs):
    """Items per second through a multiprocessing.Queue between two processes."""
    ctx = mp.get_context("fork")
    placement = _placement()
    rates = []
    for _ in range(runs):
        q = ctx.Queue(1024)
        ready = ctx.Semaphore(0)
        done = ctx.Queue()
        consumer = ctx.Process(target=_queue_consumer, args=(q, placement[1], n, ready, done))
        consumer.start()
        _pin(placement[0])
        ready.acquire()
        put = q.put
        t0 = time.perf_counter_ns()
        for i in range(n):
            put(i)
        t1 = done.get(timeout=300)
        consumer.join(timeout=60)
        rates.append(n / ((t1 - t0) / 1e9))
    return rates


def _echo(a, b, cpu, n):
    _pin(cpu)
    for _ in range(n):
        b.put(a.get())


def bench_queue_round_trip(n):
    """Microseconds per item sent through one Queue and back through another."""
    ctx = mp.get_context("fork")
    placement = _placement()
    a, b = ctx.Queue(1024), ctx.Queue(1024)
    echo = ctx.Process(target=_echo, args=(a, b, placement[1], n + 100))
    echo.start()
    _pin(placement[0])
    for i in range(100):
        a.put(i)
        b.get()
    samples = []
    for i in range(n):
        t0 = time.perf_counter_ns()
        a.put(i)
        b.get()
        samples.append((time.perf_counter_ns() - t0) / 1e3)
    echo.join(timeout=60)
    return samples


def queue_figures(scale):
    rates = bench_queue(200_000 // scale, 5)
    rt = bench_queue_round_trip(5_000 // scale)
    return {
        "queue_items_per_s": statistics.median(rates),
        "queue_items_per_s_range": (min(rates), max(rates)),
        "queue_round_trip_us": statistics.median(rt),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="also write the JSON object to this file")
    parser.add_argument("--quick", action="store_true", help="fewer iterations (smoke test)")
    parser.add_argument("--queue-only", action="store_true", help="only the queue figures")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    if args.queue_only:
        print(json.dumps(queue_figures(scale)))
        return
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
        **queue_figures(scale),
    }
    text = json.dumps(result)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
