"""shmsync: multiprocessing's synchronization objects that survive a holder that dies.

The classes and factories mirror ``multiprocessing``'s: ``Lock()``, ``RLock()``,
``Semaphore(value)``, ``BoundedSemaphore(value)``, ``Condition(lock=None)``, ``Event()``,
``Barrier(parties)``, ``Value(typecode, init, lock=True)``, ``Array(typecode,
size_or_initializer, lock=True)``. Each object is a futex word (plus data) in a shared memory
region: by default an anonymous region of this process, which children started with fork,
forkserver or spawn reach through the objects passed to them (objects pickle by region and
name; an anonymous region's descriptor travels as multiprocessing passes descriptors).

A process that dies holding a lock does not freeze the others: the next acquirer takes the lock
over within ~20 ms and gets ``OwnerDiedError`` (the lock is then held by it: repair the state,
call ``e.lock.mark_consistent()``, release; ``with lock:`` does not release a lock whose
``__enter__`` raised, so catch the error around the ``with``). Objects are never freed: create
them once and pass them around rather than one per task. Rust programs using the ``shmsync``
crate can share a named ``Region`` with Python processes.
"""

import itertools
import os
import threading

import pickle as _stdpickle

from ._shmsync import (
    Barrier as _Barrier,
    ByteQueue,
    BrokenError,
    SEM_VALUE_MAX,
    Condition as _Condition,
    Event as _Event,
    Lock as _Lock,
    NotRecoverableError,
    OwnerDiedError,
    Region,
    RLock as _RLock,
    Semaphore as _Semaphore,
    Value as _Value,
)

__all__ = [
    "Array",
    "ByteQueue",
    "Queue",
    "Barrier",
    "BoundedSemaphore",
    "BrokenError",
    "Condition",
    "Event",
    "Lock",
    "NotRecoverableError",
    "OwnerDiedError",
    "RLock",
    "Region",
    "SEM_VALUE_MAX",
    "Semaphore",
    "Value",
    "default_region",
    "set_default_region",
]

_default = None
_default_lock = threading.Lock()
_counter = itertools.count()

#: Size of the default region: objects take 128 bytes each (semaphores 8 KiB more), so this
#: holds tens of thousands. Pages are only used when touched.
DEFAULT_REGION_SIZE = 64 << 20


def default_region():
    """The region the factory functions create objects in: an anonymous region, made on first
    use in this process (and inherited by forked children)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Region.anonymous(DEFAULT_REGION_SIZE)
        return _default


def set_default_region(region):
    """Makes the factory functions create objects in ``region`` (for instance a named region
    that a Rust program opens too)."""
    global _default
    if not isinstance(region, Region):
        raise TypeError("expected a shmsync.Region")
    with _default_lock:
        _default = region


_prefix = (None, "")


def _name(kind):
    # Unique across the processes sharing a region, pid reuse included: a random prefix per
    # process (a forked child, whose pid differs, draws its own).
    global _prefix
    pid = os.getpid()
    if _prefix[0] != pid:
        _prefix = (pid, os.urandom(6).hex())
    return f"{kind}.{_prefix[1]}.{next(_counter)}"


def _after_fork_in_child():
    # A fork while another thread held the lock would leave it locked in the child.
    global _default_lock
    _default_lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def Lock():
    """multiprocessing.Lock(): a non-recursive lock any process may release."""
    return default_region().lock(_name("Lock"))


def RLock():
    """multiprocessing.RLock(): a lock the owning thread may take again."""
    return default_region().rlock(_name("RLock"))


def Semaphore(value=1):
    """multiprocessing.Semaphore(value)."""
    return default_region().semaphore(_name("Semaphore"), value)


def BoundedSemaphore(value=1):
    """multiprocessing.BoundedSemaphore(value): release past the initial value is ValueError."""
    return default_region().bounded_semaphore(_name("BoundedSemaphore"), value)


def Condition(lock=None):
    """multiprocessing.Condition(lock=None): with its own RLock, or on ``lock`` (an RLock of
    the default region)."""
    return default_region().condition(_name("Condition"), lock)


def Event():
    """multiprocessing.Event()."""
    return default_region().event(_name("Event"))


def Barrier(parties, action=None, timeout=None):
    """multiprocessing.Barrier(parties). ``action`` and a default ``timeout`` are not supported
    (pass a timeout to ``wait``)."""
    if action is not None or timeout is not None:
        raise NotImplementedError("shmsync.Barrier has no action and no default timeout")
    return default_region().barrier(_name("Barrier"), parties)


def _typecode(typecode_or_type):
    if isinstance(typecode_or_type, str):
        return typecode_or_type
    code = getattr(typecode_or_type, "_type_", None)  # a ctypes simple type
    if isinstance(code, str) and len(code) == 1:
        return code
    raise TypeError(f"not a typecode or ctypes type: {typecode_or_type!r}")


def Value(typecode_or_type, *args, lock=True):
    """multiprocessing.Value(typecode_or_type, *args, lock=True): ``.value`` is read and written
    under the RLock ``get_lock()`` returns (no lock with ``lock=False``)."""
    if len(args) > 1:
        raise TypeError("Value takes at most one initial value")
    if lock not in (True, False):
        raise TypeError("lock must be True or False (a Value always uses its own RLock)")
    init = args[0] if args else 0
    return default_region().value(_name("Value"), _typecode(typecode_or_type), init, lock)


def Array(typecode_or_type, size_or_initializer, *, lock=True):
    """multiprocessing.Array(typecode_or_type, size_or_initializer, lock=True)."""
    if lock not in (True, False):
        raise TypeError("lock must be True or False (an Array always uses its own RLock)")
    return default_region().array(_name("Array"), _typecode(typecode_or_type), size_or_initializer, lock)


class Queue:
    """multiprocessing.Queue(maxsize): a bounded queue of picklable objects in shared memory,
    which survives its producers and consumers dying (a producer killed inside ``put`` either
    delivered its item or did not; a consumer killed inside ``get`` loses at most that item).

    ``maxsize`` 0 (multiprocessing's "unbounded") means 1024 here: the queue lives in a fixed
    region. Each pickled item may take up to ``max_message`` bytes (ValueError beyond).
    ``put`` is synchronous (no feeder thread): ``close``, ``join_thread`` and
    ``cancel_join_thread`` do nothing. ``queue.Full`` / ``queue.Empty`` as multiprocessing.
    """

    def __init__(self, maxsize=0, *, max_message=4096, _queue=None):
        if _queue is not None:
            self._q = _queue
            return
        if maxsize < 0:
            raise ValueError("maxsize must be >= 0")
        self._q = default_region().byte_queue(_name("Queue"), maxsize or 1024, max_message)

    def put(self, obj, block=True, timeout=None):
        self._q.put(_stdpickle.dumps(obj, protocol=_stdpickle.HIGHEST_PROTOCOL), block, timeout)

    def put_nowait(self, obj):
        self.put(obj, False)

    def get(self, block=True, timeout=None):
        return _stdpickle.loads(self._q.get(block, timeout))

    def get_nowait(self):
        return self.get(False)

    def qsize(self):
        return self._q.qsize()

    def empty(self):
        return self._q.empty()

    def full(self):
        return self._q.full()

    def close(self):
        pass

    def join_thread(self):
        pass

    def cancel_join_thread(self):
        pass

    def __reduce__(self):
        return (_rebuild_queue, (self._q,))


def _rebuild_queue(q):
    return Queue(_queue=q)
