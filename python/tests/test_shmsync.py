"""shmsync's Python module with real processes: the tutorial's programs, a worker SIGKILLed
holding the lock (stock multiprocessing hangs, shmsync recovers), every start method, a Rust
process and Python processes sharing one region, Ctrl-C, and the failure cases."""

import multiprocessing as mp
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

import pytest

import shmsync

ROOT = pathlib.Path(__file__).resolve().parents[2]
METHODS = ["fork", "spawn", "forkserver"]


# --------------------------------------------------------------------------------------------
# The tutorial's three programs.


def _set_global():
    global A
    A = 300 * A


A = 100


def test_a_global_is_not_shared_but_a_value_is():
    ctx = mp.get_context("fork")
    p = ctx.Process(target=_set_global)
    p.start()
    p.join()
    assert A == 100
    shared = shmsync.Value("i", 100)
    p = ctx.Process(target=_times_300, args=(shared,))
    p.start()
    p.join()
    assert p.exitcode == 0
    assert shared.value == 30000


def _times_300(v):
    with v.get_lock():
        v.value = 300 * v.value


def _work(n, lock, log, cursor):
    lock.acquire()
    try:
        for event in (2 * n, 2 * n + 1):  # "n : pid is running", then "n : pid is done"
            with cursor.get_lock():
                log[cursor.value] = event
                cursor.value += 1
            time.sleep(0.05)
    finally:
        lock.release()


@pytest.mark.parametrize("method", METHODS)
def test_workers_serialised_by_a_lock(method):
    ctx = mp.get_context(method)
    lock = shmsync.Lock()
    log = shmsync.Array("i", 6)
    cursor = shmsync.Value("i", 0)
    workers = [ctx.Process(target=_work, args=(n, lock, log, cursor)) for n in range(3)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(30)
        assert p.exitcode == 0
    events = log[:]
    # Every "done" directly follows its own "running": the lock serialised the workers.
    assert sorted(events) == list(range(6))
    for i in range(0, 6, 2):
        assert events[i] % 2 == 0 and events[i + 1] == events[i] + 1, events


def _negate(n, a):
    n.value = 3.1415927
    for i in range(len(a)):
        a[i] = -a[i]


@pytest.mark.parametrize("method", METHODS)
def test_value_and_array_in_shared_memory(method):
    num = shmsync.Value("d", 0.0)
    arr = shmsync.Array("i", range(10))
    p = mp.get_context(method).Process(target=_negate, args=(num, arr))
    p.start()
    p.join(30)
    assert p.exitcode == 0
    assert num.value == 3.1415927
    assert arr[:] == [0, -1, -2, -3, -4, -5, -6, -7, -8, -9]


# --------------------------------------------------------------------------------------------
# A worker killed holding the lock.


def _hold_forever(lock, held):
    lock.acquire()
    held.set()
    time.sleep(600)


def test_a_worker_killed_holding_the_lock_is_recovered():
    ctx = mp.get_context("fork")
    # Stock multiprocessing: the lock stays held forever.
    stock, stock_held = ctx.Lock(), ctx.Event()
    p = ctx.Process(target=_hold_forever, args=(stock, stock_held))
    p.start()
    assert stock_held.wait(10)
    os.kill(p.pid, signal.SIGKILL)
    p.join()
    assert not stock.acquire(timeout=0.5), "stock multiprocessing recovered?"

    lock, held = shmsync.Lock(), shmsync.Event()
    p = ctx.Process(target=_hold_forever, args=(lock, held))
    p.start()
    assert held.wait(10)
    assert lock.holder() == p.pid
    os.kill(p.pid, signal.SIGKILL)
    p.join()
    assert p.exitcode == -signal.SIGKILL
    start = time.monotonic()
    with pytest.raises(shmsync.OwnerDiedError) as died:
        lock.acquire(timeout=10)
    assert time.monotonic() - start < 5
    assert died.value.lock is lock
    assert lock.locked()  # held by us now
    died.value.lock.mark_consistent()
    lock.release()
    assert lock.acquire(timeout=1)
    lock.release()


def test_a_lock_released_without_mark_consistent_becomes_unrecoverable():
    ctx = mp.get_context("fork")
    lock, held = shmsync.Lock(), shmsync.Event()
    p = ctx.Process(target=_hold_forever, args=(lock, held))
    p.start()
    assert held.wait(10)
    os.kill(p.pid, signal.SIGKILL)
    p.join()
    with pytest.raises(shmsync.OwnerDiedError):
        lock.acquire()
    lock.release()
    with pytest.raises(shmsync.NotRecoverableError):
        lock.acquire(timeout=1)


# --------------------------------------------------------------------------------------------
# Every object through every start method.


def _use_everything(lock, rlock, sem, cond, event, barrier, value, array):
    with lock:
        value.value += 1
    with rlock:
        with rlock:
            array[0] += 1
    with sem:
        pass
    with cond:
        cond.notify_all()
    event.set()
    barrier.wait(30)


@pytest.mark.parametrize("method", METHODS)
def test_every_object_travels_with_every_start_method(method):
    ctx = mp.get_context(method)
    objs = (
        shmsync.Lock(),
        shmsync.RLock(),
        shmsync.BoundedSemaphore(2),
        shmsync.Condition(),
        shmsync.Event(),
        shmsync.Barrier(3),
        shmsync.Value("q", 0),
        shmsync.Array("H", 2),
    )
    children = [ctx.Process(target=_use_everything, args=objs) for _ in range(2)]
    for p in children:
        p.start()
    assert objs[5].wait(30) in (0, 1, 2)
    for p in children:
        p.join(30)
        assert p.exitcode == 0
    assert objs[6].value == 2 and objs[7][0] == 2
    assert objs[2].get_value() == 2 and objs[4].is_set()


# --------------------------------------------------------------------------------------------
# A Rust process and Python processes sharing one region.


def _add(region_path, n):
    region = shmsync.Region.open(region_path)
    counter = region.value("counter", "Q", 0)
    for _ in range(n):
        with counter.get_lock():
            counter.value += 1


def test_a_rust_process_and_python_processes_share_one_region(tmp_path):
    path = str(tmp_path / "shared")
    region = shmsync.Region.create(path, 1 << 20)
    counter = region.value("counter", "Q", 0)
    n = 20000
    rust = subprocess.Popen(
        ["cargo", "run", "-q", "--release", "--example", "python_peer", "--", path, str(n)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    ctx = mp.get_context("spawn")
    pythons = [ctx.Process(target=_add, args=(path, n)) for _ in range(2)]
    for p in pythons:
        p.start()
    out, err = rust.communicate(timeout=600)
    assert rust.returncode == 0, err
    for p in pythons:
        p.join(60)
        assert p.exitcode == 0
    assert counter.value == 3 * n, out


# --------------------------------------------------------------------------------------------
# Ctrl-C.


def test_a_blocked_acquire_is_interrupted_by_ctrl_c(tmp_path):
    path = str(tmp_path / "ctrlc")
    region = shmsync.Region.create(path, 1 << 20)
    lock = region.lock("held")
    assert lock.acquire()
    script = (
        "import shmsync, sys\n"
        f"lock = shmsync.Region.open({path!r}).lock('held')\n"
        "print('waiting', flush=True)\n"
        "try:\n"
        "    lock.acquire()\n"
        "except KeyboardInterrupt:\n"
        "    sys.exit(42)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "waiting"
    time.sleep(0.3)
    child.send_signal(signal.SIGINT)
    assert child.wait(10) == 42
    lock.release()


# --------------------------------------------------------------------------------------------
# Failure cases, with Python's exceptions.


def test_failure_cases_raise_pythons_exceptions(tmp_path):
    lock = shmsync.Lock()
    with pytest.raises(ValueError):
        lock.release()
    rlock = shmsync.RLock()
    with pytest.raises(RuntimeError):
        rlock.release()
    held = threading.Event()
    done = threading.Event()

    def hold():
        rlock.acquire()
        held.set()
        done.wait(10)
        rlock.release()

    t = threading.Thread(target=hold)
    t.start()
    held.wait(10)
    with pytest.raises(RuntimeError):
        rlock.release()  # another thread owns it
    assert not rlock.acquire(timeout=0.05)
    done.set()
    t.join()

    sem = shmsync.BoundedSemaphore(1)
    with pytest.raises(ValueError):
        sem.release()
    with pytest.raises(ValueError):
        shmsync.Semaphore(-1)
    assert shmsync.SEM_VALUE_MAX == 2**24 - 1
    big = shmsync.Semaphore(shmsync.SEM_VALUE_MAX)
    assert big.get_value() == shmsync.SEM_VALUE_MAX
    with pytest.raises(ValueError):
        big.release()
    with pytest.raises(ValueError):
        shmsync.Semaphore(shmsync.SEM_VALUE_MAX + 1)

    cond = shmsync.Condition()
    with pytest.raises(RuntimeError):
        cond.wait(0.01)
    with pytest.raises(RuntimeError):
        cond.notify()

    barrier = shmsync.Barrier(2)
    with pytest.raises(threading.BrokenBarrierError):
        barrier.wait(0.05)
    assert barrier.broken
    barrier.reset()
    assert not barrier.broken

    with pytest.raises(ValueError):
        shmsync.Value("x", 0)
    with pytest.raises(OverflowError):
        shmsync.Value("B", 256)
    arr = shmsync.Array("i", 3)
    with pytest.raises(IndexError):
        arr[3]
    with pytest.raises(ValueError):
        arr[0:2] = [1]

    with pytest.raises(FileNotFoundError):
        shmsync.Region.open(str(tmp_path / "missing"))
    junk = tmp_path / "junk"
    junk.write_bytes(b"\x5a" * 4096)
    with pytest.raises(OSError):
        shmsync.Region.open(str(junk))
    r, w = os.pipe()
    with pytest.raises(OSError):
        shmsync.Region.from_fd(r)
    os.close(r)
    os.close(w)


def test_ctypes_types_and_slices():
    import ctypes

    v = shmsync.Value(ctypes.c_double, 2.5)
    assert v.value == 2.5 and v.typecode == "d"
    a = shmsync.Array(ctypes.c_int, [1, 2, 3, 4])
    assert a[1:3] == [2, 3] and a[::-1] == [4, 3, 2, 1]
    a[::2] = [9, 9]
    assert a[:] == [9, 2, 9, 4]
    raw = shmsync.Value("i", 5, lock=False)
    assert raw.get_lock() is None and raw.value == 5


def _hold_value_lock(v, held):
    v.get_lock().acquire()
    held.set()
    time.sleep(600)


def test_a_values_dead_holder_is_reported_with_the_lock_held():
    ctx = mp.get_context("fork")
    v, held = shmsync.Value("q", 7), shmsync.Event()
    p = ctx.Process(target=_hold_value_lock, args=(v, held))
    p.start()
    assert held.wait(10)
    os.kill(p.pid, signal.SIGKILL)
    p.join()
    with pytest.raises(shmsync.OwnerDiedError) as died:
        v.value
    lock = died.value.lock
    assert lock.count() == 1  # held by us: repair, then release
    lock.mark_consistent()
    lock.release()
    assert v.value == 7
    v.value += 1
    assert v.value == 8


def test_an_unrecoverable_lock_raises_at_once_even_without_a_timeout():
    ctx = mp.get_context("fork")
    lock, held = shmsync.Lock(), shmsync.Event()
    p = ctx.Process(target=_hold_forever, args=(lock, held))
    p.start()
    assert held.wait(10)
    os.kill(p.pid, signal.SIGKILL)
    p.join()
    with pytest.raises(shmsync.OwnerDiedError):
        lock.acquire()
    lock.release()  # without mark_consistent: unrecoverable
    start = time.monotonic()
    with pytest.raises(shmsync.NotRecoverableError):
        lock.acquire()  # block=True, timeout=None: must not spin forever
    assert time.monotonic() - start < 5
    with pytest.raises(ValueError):
        shmsync.Event().wait(float("nan"))
    cond = shmsync.Condition()
    with cond:
        cond.notify()  # (a wait with a timeout too large for the clock would wait without limit)


def _produce(q, start, n):
    for i in range(start, start + n):
        q.put(("item", i))


def _consume(q, n, out):
    got = [q.get(timeout=30)[1] for _ in range(n)]
    with out.get_lock():
        for i in got:
            out[i] += 1


@pytest.mark.parametrize("method", METHODS)
def test_queue_between_processes(method):
    ctx = mp.get_context(method)
    q = shmsync.Queue(8)
    out = shmsync.Array("i", 200)
    procs = [ctx.Process(target=_produce, args=(q, k * 100, 100)) for k in range(2)]
    procs += [ctx.Process(target=_consume, args=(q, 100, out)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert out[:] == [1] * 200  # every item delivered exactly once
    assert q.empty() and q.qsize() == 0


def test_queue_exceptions():
    import queue

    q = shmsync.Queue(1, max_message=64)
    q.put_nowait(1)
    assert q.full()
    with pytest.raises(queue.Full):
        q.put_nowait(2)
    with pytest.raises(queue.Full):
        q.put(2, timeout=0.05)
    assert q.get_nowait() == 1
    with pytest.raises(queue.Empty):
        q.get_nowait()
    with pytest.raises(queue.Empty):
        q.get(timeout=0.05)
    with pytest.raises(ValueError):
        q.put(b"x" * 1000)
    with pytest.raises(ValueError):
        shmsync.Queue(-1)
