"""How shmsync objects cross into other processes: by region and name.

A named region travels as its path; an anonymous one as its descriptor, through
``multiprocessing.reduction.DupFd`` (which works while a process is being started by
multiprocessing, with the spawn and forkserver start methods). Each object is opened again by
name in the child, with every check the library makes.
"""

import os

from ._shmsync import Region, _open_value


def open_region(path):
    return Region.open(path)


def region_from_dupfd(dupfd):
    fd = dupfd.detach()
    try:
        return Region.from_fd(fd)
    finally:
        os.close(fd)


def rebuild(kind, region, name, extra):
    if kind == "Lock":
        return region.lock(name)
    if kind == "RLock":
        return region.rlock(name)
    if kind == "Semaphore":
        return region.semaphore(name, 0)
    if kind == "BoundedSemaphore":
        return region.bounded_semaphore(name, 0)
    if kind == "Condition":
        (lock_name,) = extra
        return region.condition(name, None if lock_name is None else region.rlock(lock_name))
    if kind == "Event":
        return region.event(name)
    if kind == "Barrier":
        (parties,) = extra
        return region.barrier(name, parties)
    if kind == "Value":
        typecode, length, lock = extra
        return _open_value(region, name, typecode, length, lock)
    if kind == "ByteQueue":
        capacity, max_len = extra
        return region.byte_queue(name, capacity, max_len)
    raise ValueError(f"unknown shmsync object kind {kind!r}")
