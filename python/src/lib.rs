//! `shmsync._shmsync`: the Python classes over shmsync's objects. The package
//! `shmsync/__init__.py` adds multiprocessing's factory functions (`Lock()`, `Value('i', 0)`,
//! ...) on top, in a per-process default region.
//!
//! Blocking calls release the GIL and wait in slices of at most 50 ms, checking for signals
//! between slices, so Ctrl-C interrupts them with `KeyboardInterrupt` (except `Barrier.wait`,
//! whose waiting cannot be cut without breaking the barrier; give it a timeout).

use pyo3::create_exception;
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PySlice, PyTuple};
use shmsync::{Error, RawArray, Region as RsRegion, RegionOptions};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

create_exception!(
    _shmsync,
    OwnerDiedError,
    PyRuntimeError,
    "The lock was acquired, taken over from a holder that died holding it: the state it \
     protects may be half-updated. The lock is held by the caller (`e.lock`): repair the state, \
     call `e.lock.mark_consistent()`, then release it. Released without that, the lock becomes \
     unrecoverable."
);
create_exception!(
    _shmsync,
    NotRecoverableError,
    PyRuntimeError,
    "The lock can never be acquired again: a holder died, and whoever took it over released it \
     without calling mark_consistent()."
);
create_exception!(
    _shmsync,
    BrokenError,
    PyRuntimeError,
    "A process died in the middle of changing the semaphore, so its count is unknown; repair(value) \
     states it again."
);

/// The longest a blocking call keeps the GIL released before it looks for signals.
const SLICE: Duration = Duration::from_millis(50);

/// A release of a re-entrant lock this thread does not own (threading.RLock's RuntimeError).
fn rlock_err(e: Error) -> PyErr {
    match e {
        Error::NotLocked | Error::NotOwner => {
            PyRuntimeError::new_err("cannot release un-acquired lock")
        }
        other => err(other),
    }
}

fn err(e: Error) -> PyErr {
    match e {
        Error::NotLocked => PyValueError::new_err("release of an unlocked lock"),
        Error::NotOwner => PyRuntimeError::new_err("cannot release un-acquired lock"),
        Error::AboveBound { .. } => PyValueError::new_err("Semaphore released too many times"),
        Error::NotRecoverable => NotRecoverableError::new_err(e.to_string()),
        Error::Broken { .. } => BrokenError::new_err(e.to_string()),
        Error::IndexOutOfRange { .. } => pyo3::exceptions::PyIndexError::new_err(e.to_string()),
        Error::InvalidArgument(_) | Error::InvalidName { .. } | Error::Mismatch { .. } => {
            PyValueError::new_err(e.to_string())
        }
        Error::NotFound(_) => pyo3::exceptions::PyFileNotFoundError::new_err(e.to_string()),
        Error::AlreadyExists(_) => pyo3::exceptions::PyFileExistsError::new_err(e.to_string()),
        other => pyo3::exceptions::PyOSError::new_err(other.to_string()),
    }
}

/// Python's `(block, timeout)`: `None` for a single try, else the deadline (`None` inside: no
/// limit).
fn deadline(block: bool, timeout: Option<f64>) -> PyResult<Option<Option<Instant>>> {
    if !block {
        return Ok(None);
    }
    match timeout {
        None => Ok(Some(None)),
        Some(t) if t.is_nan() => Err(PyValueError::new_err("timeout must not be NaN")),
        Some(t) if t <= 0.0 => Ok(None),
        Some(t) => Ok(Some(
            Duration::try_from_secs_f64(t)
                .ok()
                .and_then(|d| Instant::now().checked_add(d)),
        )),
    }
}

/// `give_up()` says the object can never be acquired (the caller then raises).
///
/// Tries `attempt(None)` once with the GIL held (an uncontended acquire is one atomic
/// instruction: releasing the GIL would cost more), then, if that failed and blocking is
/// asked, runs `attempt(slice)` with the GIL released, in slices, until it succeeds or the
/// deadline passes, checking for signals (Ctrl-C) between slices.
#[inline]
fn blocking(
    py: Python<'_>,
    block: bool,
    timeout: Option<f64>,
    give_up: impl Fn() -> bool,
    attempt: impl Fn(Option<Duration>) -> bool + Sync,
) -> PyResult<bool> {
    if attempt(None) {
        return Ok(true);
    }
    blocking_slow(py, block, timeout, give_up, attempt)
}

#[cold]
fn blocking_slow(
    py: Python<'_>,
    block: bool,
    timeout: Option<f64>,
    give_up: impl Fn() -> bool,
    attempt: impl Fn(Option<Duration>) -> bool + Sync,
) -> PyResult<bool> {
    let Some(deadline) = deadline(block, timeout)? else {
        return Ok(false);
    };
    loop {
        // An object that can never be acquired (unrecoverable, broken) fails every attempt at
        // once: report it instead of spinning until the deadline.
        if give_up() {
            return Ok(false);
        }
        let slice = match deadline {
            None => SLICE,
            Some(d) => d.saturating_duration_since(Instant::now()).min(SLICE),
        };
        if slice.is_zero() {
            return Ok(attempt(None));
        }
        if py.detach(|| attempt(Some(slice))) {
            return Ok(true);
        }
        py.check_signals()?;
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(false);
        }
    }
}

/// A shared memory region holding named objects.
#[pyclass(frozen, module = "shmsync._shmsync", name = "Region")]
struct Region {
    region: RsRegion,
}

#[pymethods]
impl Region {
    /// Opens the region file at `path` (a bare name means /dev/shm), creating it with `size`
    /// bytes if it does not exist.
    #[new]
    #[pyo3(signature = (path, size = 16 << 20))]
    fn new(path: PathBuf, size: usize) -> PyResult<Self> {
        Ok(Region {
            region: RsRegion::open_or_create(path, size).map_err(err)?,
        })
    }

    /// A new anonymous region (a sealed memfd), shared with children started by fork,
    /// forkserver or spawn through the objects passed to them.
    #[staticmethod]
    #[pyo3(signature = (size = 16 << 20, max_processes = 1024))]
    fn anonymous(size: usize, max_processes: usize) -> PyResult<Self> {
        let region = RegionOptions::default()
            .max_processes(max_processes)
            .anonymous(size)
            .map_err(err)?;
        Ok(Region { region })
    }

    /// Opens an existing region file.
    #[staticmethod]
    fn open(path: PathBuf) -> PyResult<Self> {
        Ok(Region {
            region: RsRegion::open(path).map_err(err)?,
        })
    }

    /// Creates a new region file of `size` bytes.
    #[staticmethod]
    fn create(path: PathBuf, size: usize) -> PyResult<Self> {
        Ok(Region {
            region: RsRegion::create(path, size).map_err(err)?,
        })
    }

    /// Removes the region file at `path` (processes that have it keep using it).
    #[staticmethod]
    fn remove(path: PathBuf) -> PyResult<()> {
        RsRegion::remove(path).map_err(err)
    }

    /// Attaches to the region in the open descriptor `fd` (which stays the caller's).
    #[staticmethod]
    fn from_fd(fd: i32) -> PyResult<Self> {
        // Our own duplicate (which fails cleanly with EBADF if `fd` is not open): no borrow of
        // a number whose owner we do not know.
        // SAFETY: fcntl on a descriptor number has no memory-safety preconditions.
        let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
        if dup < 0 {
            return Err(PyErr::from(std::io::Error::last_os_error()));
        }
        // SAFETY: fcntl just opened `dup`, and nothing else owns it.
        let own = unsafe { OwnedFd::from_raw_fd(dup) };
        Ok(Region {
            region: RsRegion::from_fd(own.as_fd()).map_err(err)?,
        })
    }

    /// The region file's path, or None for an anonymous region.
    #[getter]
    fn path(&self) -> Option<PathBuf> {
        self.region.path().map(|p| p.to_path_buf())
    }

    /// The region's size in bytes.
    #[getter]
    fn size(&self) -> usize {
        self.region.size()
    }

    /// The region's descriptor (owned by the region).
    fn fileno(&self) -> i32 {
        self.region.as_fd().as_raw_fd()
    }

    /// The names of the objects in the region.
    fn names(&self) -> PyResult<Vec<String>> {
        Ok(self
            .region
            .objects()
            .map_err(err)?
            .into_iter()
            .map(|o| o.name)
            .collect())
    }

    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let py = slf.py();
        let helpers = py.import("shmsync._pickle")?;
        match &slf.get().region.path() {
            Some(path) => Ok((
                helpers.getattr("open_region")?,
                PyTuple::new(py, [path.to_path_buf()])?,
            )),
            None => {
                let fd = slf.get().fileno();
                let dup = py
                    .import("multiprocessing.reduction")?
                    .getattr("DupFd")?
                    .call1((fd,))?;
                Ok((
                    helpers.getattr("region_from_dupfd")?,
                    PyTuple::new(py, [dup])?,
                ))
            }
        }
    }

    fn __repr__(&self) -> String {
        match self.region.path() {
            Some(p) => format!(
                "<shmsync.Region {} ({} bytes)>",
                p.display(),
                self.region.size()
            ),
            None => format!("<shmsync.Region anonymous ({} bytes)>", self.region.size()),
        }
    }

    /// The Lock called `name` (found or created).
    fn lock(slf: &Bound<'_, Self>, name: String) -> PyResult<Lock> {
        let lock = slf.get().region.lock(&name).map_err(err)?;
        Ok(Lock {
            lock,
            region: slf.clone().unbind(),
            name,
        })
    }

    /// The RLock called `name`.
    fn rlock(slf: &Bound<'_, Self>, name: String) -> PyResult<RLock> {
        let lock = slf.get().region.rlock(&name).map_err(err)?;
        Ok(RLock {
            lock,
            region: slf.clone().unbind(),
            name,
        })
    }

    /// The Semaphore called `name`, created with `value` permits.
    #[pyo3(signature = (name, value = 1))]
    fn semaphore(slf: &Bound<'_, Self>, name: String, value: i64) -> PyResult<Semaphore> {
        let value = permits(value)?;
        let sem = slf.get().region.semaphore(&name, value).map_err(err)?;
        Ok(Semaphore {
            sem: Sem::Plain(sem),
            region: slf.clone().unbind(),
            name,
        })
    }

    /// The BoundedSemaphore called `name`, created with `value` permits (its bound).
    #[pyo3(signature = (name, value = 1))]
    fn bounded_semaphore(slf: &Bound<'_, Self>, name: String, value: i64) -> PyResult<Semaphore> {
        let value = permits(value)?;
        let sem = slf
            .get()
            .region
            .bounded_semaphore(&name, value)
            .map_err(err)?;
        Ok(Semaphore {
            sem: Sem::Bounded(sem),
            region: slf.clone().unbind(),
            name,
        })
    }

    /// The Condition called `name`, with its own RLock, or on the RLock `lock` (of this region).
    #[pyo3(signature = (name, lock = None))]
    fn condition(
        slf: &Bound<'_, Self>,
        name: String,
        lock: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Condition> {
        let region = &slf.get().region;
        let (cond, lock_name) = match lock {
            None => (region.condition(&name).map_err(err)?, None),
            Some(lock) => {
                let Ok(rlock) = lock.cast::<RLock>() else {
                    return Err(PyTypeError::new_err(
                        "a Condition's lock must be an shmsync RLock (a Condition over a plain Lock is not supported yet)",
                    ));
                };
                let rlock = rlock.get();
                if rlock.region.get().fileno() != slf.get().fileno() {
                    return Err(PyValueError::new_err(
                        "the RLock must be in the condition's region",
                    ));
                }
                (
                    region.condition_on(&name, &rlock.name).map_err(err)?,
                    Some(rlock.name.clone()),
                )
            }
        };
        Ok(Condition {
            cond,
            region: slf.clone().unbind(),
            name,
            lock_name,
        })
    }

    /// The ByteQueue called `name`: `capacity` messages of at most `max_len` bytes each.
    #[pyo3(signature = (name, capacity = 1024, max_len = 4096))]
    fn byte_queue(
        slf: &Bound<'_, Self>,
        name: String,
        capacity: usize,
        max_len: usize,
    ) -> PyResult<ByteQueue> {
        let q = slf
            .get()
            .region
            .byte_queue(&name, capacity, max_len)
            .map_err(err)?;
        Ok(ByteQueue {
            q,
            region: slf.clone().unbind(),
            name,
        })
    }

    /// The Event called `name`.
    fn event(slf: &Bound<'_, Self>, name: String) -> PyResult<Event> {
        let event = slf.get().region.event(&name).map_err(err)?;
        Ok(Event {
            event,
            region: slf.clone().unbind(),
            name,
        })
    }

    /// The Barrier called `name`, for `parties` parties.
    fn barrier(slf: &Bound<'_, Self>, name: String, parties: i64) -> PyResult<Barrier> {
        let parties =
            u32::try_from(parties).map_err(|_| PyValueError::new_err("parties out of range"))?;
        let barrier = slf.get().region.barrier(&name, parties).map_err(err)?;
        Ok(Barrier {
            barrier,
            region: slf.clone().unbind(),
            name,
        })
    }

    /// The Value called `name` of `typecode` ('b', 'B', 'h', 'H', 'i', 'I', 'l', 'L', 'q', 'Q',
    /// 'f', 'd'), created holding `init`, guarded by the RLock `name + '.lock'` unless
    /// `lock` is False.
    #[pyo3(signature = (name, typecode, init = None, lock = true))]
    fn value(
        slf: &Bound<'_, Self>,
        name: String,
        typecode: &str,
        init: Option<&Bound<'_, PyAny>>,
        lock: bool,
    ) -> PyResult<Value> {
        let code = Code::parse(typecode)?;
        let init = match init {
            Some(v) => code.to_bits(v)?,
            None => 0,
        };
        let cells = code.cells(&slf.get().region, &name, &[init])?;
        let lock = lock
            .then(|| Region::rlock(slf, format!("{name}.lock")).and_then(|l| Py::new(slf.py(), l)))
            .transpose()?;
        Ok(Value {
            cells,
            code,
            lock,
            region: slf.clone().unbind(),
            name,
        })
    }

    /// The Array called `name` of `typecode`, created from `size_or_initializer` (a length, all
    /// zeros, or a sequence), guarded by the RLock `name + '.lock'` unless `lock` is False.
    #[pyo3(signature = (name, typecode, size_or_initializer, lock = true))]
    fn array(
        slf: &Bound<'_, Self>,
        name: String,
        typecode: &str,
        size_or_initializer: &Bound<'_, PyAny>,
        lock: bool,
    ) -> PyResult<Value> {
        let code = Code::parse(typecode)?;
        let init: Vec<u64> = if let Ok(n) = size_or_initializer.extract::<usize>() {
            vec![0; n]
        } else {
            size_or_initializer
                .try_iter()?
                .map(|item| code.to_bits(&item?))
                .collect::<PyResult<_>>()?
        };
        let cells = code.cells(&slf.get().region, &name, &init)?;
        let lock = lock
            .then(|| Region::rlock(slf, format!("{name}.lock")).and_then(|l| Py::new(slf.py(), l)))
            .transpose()?;
        Ok(Value {
            cells,
            code,
            lock,
            region: slf.clone().unbind(),
            name,
        })
    }
}

fn permits(value: i64) -> PyResult<u32> {
    if value < 0 {
        return Err(PyValueError::new_err(
            "semaphore initial value must be >= 0",
        ));
    }
    u32::try_from(value).map_err(|_| PyValueError::new_err("semaphore initial value too large"))
}

/// `(callable, args)` that rebuilds object `kind` called `name` in `region`.
fn reduce<'py>(
    py: Python<'py>,
    region: &Py<Region>,
    kind: &str,
    name: &str,
    extra: Bound<'py, PyTuple>,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
    let rebuild = py.import("shmsync._pickle")?.getattr("rebuild")?;
    let args = PyTuple::new(
        py,
        [
            kind.into_pyobject(py)?.into_any(),
            region.bind(py).clone().into_any(),
            name.into_pyobject(py)?.into_any(),
            extra.into_any(),
        ],
    )?;
    Ok((rebuild, args))
}

/// multiprocessing.Lock: a non-recursive lock any process may release.
#[pyclass(frozen, module = "shmsync._shmsync", name = "Lock")]
struct Lock {
    lock: shmsync::Lock,
    region: Py<Region>,
    name: String,
}

/// After an acquire succeeded: OwnerDiedError if the lock was taken over from a dead holder.
fn check_poison(slf: &Bound<'_, PyAny>, poisoned: bool) -> PyResult<bool> {
    if poisoned {
        let e = OwnerDiedError::new_err(
            "the previous holder died holding the lock; it is now held by you",
        );
        e.value(slf.py()).setattr("lock", slf)?;
        return Err(e);
    }
    Ok(true)
}

/// `acquire(block, timeout)` of any lock, as Python reports it: `acquire` (the Rust handle's
/// Python-style acquire) tried, then waited for in GIL-released slices; `NotRecoverableError`
/// if the lock can never be acquired, `OwnerDiedError` (the lock held) if `poisoned()` after
/// taking it. The GIL is released on this same OS thread, so an `RLock`'s owner thread id is
/// the caller's.
fn acquire_lock(
    slf: &Bound<'_, PyAny>,
    block: bool,
    timeout: Option<f64>,
    acquire: impl Fn(bool, Option<Duration>) -> bool + Sync,
    unrecoverable: impl Fn() -> bool,
    poisoned: impl Fn() -> bool,
) -> PyResult<bool> {
    let got = blocking(
        slf.py(),
        block,
        timeout,
        &unrecoverable,
        |slice| match slice {
            None => acquire(false, None),
            Some(s) => acquire(true, Some(s)),
        },
    )?;
    if !got {
        if unrecoverable() {
            return Err(NotRecoverableError::new_err("the lock is not recoverable"));
        }
        return Ok(false);
    }
    check_poison(slf, poisoned())
}

#[pymethods]
impl Lock {
    /// Acquires the lock (multiprocessing's signature). Raises OwnerDiedError (lock held) if
    /// the previous holder died holding it, NotRecoverableError if it can never be acquired.
    #[pyo3(signature = (block = true, timeout = None))]
    fn acquire(slf: &Bound<'_, Self>, block: bool, timeout: Option<f64>) -> PyResult<bool> {
        let this = slf.get();
        acquire_lock(
            slf.as_any(),
            block,
            timeout,
            |block, timeout| this.lock.acquire(block, timeout),
            || this.lock.is_unrecoverable(),
            || this.lock.is_poisoned(),
        )
    }

    /// Releases the lock (any process may). ValueError if it is not held.
    fn release(&self) -> PyResult<()> {
        self.lock.release().map_err(err)
    }

    /// Declares the state repaired after an OwnerDiedError (the lock must be held).
    fn mark_consistent(&self) -> PyResult<()> {
        self.lock.mark_consistent().map_err(err)
    }

    /// Whether the lock is held (by anyone).
    fn locked(&self) -> bool {
        self.lock.is_locked()
    }

    /// The pid of the holder, or None.
    fn holder(&self) -> Option<u32> {
        self.lock.holder()
    }

    fn __enter__(slf: &Bound<'_, Self>) -> PyResult<bool> {
        Lock::acquire(slf, true, None)
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.release()
    }

    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let this = slf.get();
        reduce(
            slf.py(),
            &this.region,
            "Lock",
            &this.name,
            PyTuple::empty(slf.py()),
        )
    }

    fn __repr__(&self) -> String {
        format!(
            "<shmsync.Lock {:?} {}>",
            self.name,
            if self.lock.is_locked() {
                "locked"
            } else {
                "unlocked"
            }
        )
    }
}

/// multiprocessing.RLock: re-entrant for the owning thread.
#[pyclass(frozen, module = "shmsync._shmsync", name = "RLock")]
struct RLock {
    lock: shmsync::RLock,
    region: Py<Region>,
    name: String,
}

#[pymethods]
impl RLock {
    /// Acquires the lock (again, if this thread owns it). Raises OwnerDiedError (lock held)
    /// if the previous owner died holding it.
    #[pyo3(signature = (block = true, timeout = None))]
    fn acquire(slf: &Bound<'_, Self>, block: bool, timeout: Option<f64>) -> PyResult<bool> {
        let this = slf.get();
        acquire_lock(
            slf.as_any(),
            block,
            timeout,
            |block, timeout| this.lock.acquire(block, timeout),
            || this.lock.is_unrecoverable(),
            || this.lock.is_poisoned() && this.lock.count() == 1,
        )
    }

    /// Releases once. RuntimeError unless this thread owns the lock.
    fn release(&self) -> PyResult<()> {
        self.lock.release().map_err(rlock_err)
    }

    /// Declares the state repaired after an OwnerDiedError.
    fn mark_consistent(&self) -> PyResult<()> {
        self.lock.mark_consistent().map_err(err)
    }

    /// The owner's (pid, tid), or None.
    fn owner(&self) -> Option<(u32, u32)> {
        self.lock.owner().map(|o| (o.pid, o.tid))
    }

    /// How many times the owner entered it.
    fn count(&self) -> u32 {
        self.lock.count()
    }

    fn __enter__(slf: &Bound<'_, Self>) -> PyResult<bool> {
        RLock::acquire(slf, true, None)
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.release()
    }

    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let this = slf.get();
        reduce(
            slf.py(),
            &this.region,
            "RLock",
            &this.name,
            PyTuple::empty(slf.py()),
        )
    }

    fn __repr__(&self) -> String {
        format!(
            "<shmsync.RLock {:?} count={}>",
            self.name,
            self.lock.count()
        )
    }
}

enum Sem {
    Plain(shmsync::Semaphore),
    Bounded(shmsync::BoundedSemaphore),
}

impl Sem {
    fn get(&self) -> &shmsync::Semaphore {
        match self {
            Sem::Plain(s) => s,
            Sem::Bounded(s) => s.as_semaphore(),
        }
    }
}

/// multiprocessing.Semaphore / BoundedSemaphore.
#[pyclass(frozen, module = "shmsync._shmsync", name = "Semaphore")]
struct Semaphore {
    sem: Sem,
    region: Py<Region>,
    name: String,
}

#[pymethods]
impl Semaphore {
    /// Takes a permit (multiprocessing's signature).
    #[pyo3(signature = (block = true, timeout = None))]
    fn acquire(slf: &Bound<'_, Self>, block: bool, timeout: Option<f64>) -> PyResult<bool> {
        let sem = slf.get().sem.get();
        let got = blocking(
            slf.py(),
            block,
            timeout,
            || sem.is_broken(),
            |slice| match slice {
                None => sem.acquire(false, None),
                Some(s) => sem.acquire(true, Some(s)),
            },
        )?;
        if !got && sem.is_broken() {
            return Err(BrokenError::new_err("the semaphore is broken"));
        }
        Ok(got)
    }

    /// Gives `n` permits back. ValueError past a BoundedSemaphore's bound.
    #[pyo3(signature = (n = 1))]
    fn release(&self, n: u32) -> PyResult<()> {
        match &self.sem {
            Sem::Plain(s) => s.release_many(n),
            Sem::Bounded(s) => s.release_many(n),
        }
        .map_err(err)
    }

    /// The free permits.
    fn get_value(&self) -> u32 {
        self.sem.get().value()
    }

    /// States the free permits of a broken semaphore.
    fn repair(&self, value: u32) -> PyResult<()> {
        self.sem.get().repair(value).map_err(err)
    }

    fn __enter__(slf: &Bound<'_, Self>) -> PyResult<bool> {
        Semaphore::acquire(slf, true, None)
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.release(1)
    }

    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let this = slf.get();
        let kind = match this.sem {
            Sem::Plain(_) => "Semaphore",
            Sem::Bounded(_) => "BoundedSemaphore",
        };
        reduce(
            slf.py(),
            &this.region,
            kind,
            &this.name,
            PyTuple::empty(slf.py()),
        )
    }

    fn __repr__(&self) -> String {
        format!(
            "<shmsync.Semaphore {:?} value={}>",
            self.name,
            self.get_value()
        )
    }
}

/// multiprocessing.Condition.
#[pyclass(frozen, module = "shmsync._shmsync", name = "Condition")]
struct Condition {
    cond: shmsync::Condition,
    region: Py<Region>,
    name: String,
    lock_name: Option<String>,
}

#[pymethods]
impl Condition {
    /// Acquires the condition's lock.
    #[pyo3(signature = (block = true, timeout = None))]
    fn acquire(slf: &Bound<'_, Self>, block: bool, timeout: Option<f64>) -> PyResult<bool> {
        let this = slf.get();
        acquire_lock(
            slf.as_any(),
            block,
            timeout,
            |block, timeout| this.cond.acquire(block, timeout),
            || this.cond.is_unrecoverable(),
            || this.cond.is_poisoned() && this.cond.count() == 1,
        )
    }

    /// Releases the condition's lock once.
    fn release(&self) -> PyResult<()> {
        self.cond.release().map_err(rlock_err)
    }

    /// Declares the state repaired after an OwnerDiedError.
    fn mark_consistent(&self) -> PyResult<()> {
        self.cond.mark_consistent().map_err(err)
    }

    /// Releases the lock, waits for a notify or the timeout, takes the lock back; False on
    /// timeout. RuntimeError unless this thread holds the lock.
    #[pyo3(signature = (timeout = None))]
    fn wait(slf: &Bound<'_, Self>, timeout: Option<f64>) -> PyResult<bool> {
        let this = slf.get();
        let deadline = match timeout {
            None => None,
            Some(t) if t.is_nan() => return Err(PyValueError::new_err("timeout must not be NaN")),
            // A timeout too large for the clock waits without limit, as None does.
            Some(t) => Duration::try_from_secs_f64(t.max(0.0))
                .ok()
                .and_then(|d| Instant::now().checked_add(d)),
        };
        // In slices: a slice that ends without a notify takes the lock back, looks for
        // signals, and waits again. The lock is held in between, so no notify can fall there.
        loop {
            let slice = deadline.map_or(SLICE, |d| {
                d.saturating_duration_since(Instant::now()).min(SLICE)
            });
            let waited = slf.py().detach(|| this.cond.wait(Some(slice)));
            match waited {
                Ok(true) => return Ok(true),
                Ok(false) => {}
                Err(Error::OwnerDied) => return check_poison(slf.as_any(), true),
                Err(e @ (Error::NotLocked | Error::NotOwner)) => {
                    let _ = e;
                    return Err(PyRuntimeError::new_err("cannot wait on un-acquired lock"));
                }
                Err(e) => return Err(err(e)),
            }
            slf.py().check_signals()?;
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(false);
            }
        }
    }

    /// Waits until `predicate()` is true or the timeout passes; returns its last value.
    #[pyo3(signature = (predicate, timeout = None))]
    fn wait_for(
        slf: &Bound<'_, Self>,
        predicate: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<Py<PyAny>> {
        if timeout.is_some_and(f64::is_nan) {
            return Err(PyValueError::new_err("timeout must not be NaN"));
        }
        let deadline = timeout.and_then(|t| {
            Duration::try_from_secs_f64(t.max(0.0))
                .ok()
                .and_then(|d| Instant::now().checked_add(d))
        });
        loop {
            let result = predicate.call0()?;
            if result.is_truthy()? {
                return Ok(result.unbind());
            }
            let left = match deadline {
                None => None,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(result.unbind());
                    }
                    Some(left.as_secs_f64())
                }
            };
            Condition::wait(slf, left)?;
        }
    }

    /// Wakes up to `n` waiters. RuntimeError unless this thread holds the lock.
    #[pyo3(signature = (n = 1))]
    fn notify(&self, n: u32) -> PyResult<()> {
        self.cond
            .notify(n)
            .map_err(|_| PyRuntimeError::new_err("cannot notify on un-acquired lock"))
    }

    /// Wakes every waiter.
    fn notify_all(&self) -> PyResult<()> {
        self.cond
            .notify_all()
            .map_err(|_| PyRuntimeError::new_err("cannot notify on un-acquired lock"))
    }

    fn __enter__(slf: &Bound<'_, Self>) -> PyResult<bool> {
        Condition::acquire(slf, true, None)
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.release()
    }

    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let this = slf.get();
        let extra = PyTuple::new(slf.py(), [this.lock_name.clone()])?;
        reduce(slf.py(), &this.region, "Condition", &this.name, extra)
    }
}

/// multiprocessing.Event.
#[pyclass(frozen, module = "shmsync._shmsync", name = "Event")]
struct Event {
    event: shmsync::Event,
    region: Py<Region>,
    name: String,
}

#[pymethods]
impl Event {
    fn set(&self) {
        self.event.set();
    }

    fn clear(&self) {
        self.event.clear();
    }

    fn is_set(&self) -> bool {
        self.event.is_set()
    }

    /// Waits until the flag is set or the timeout passes; returns the flag.
    #[pyo3(signature = (timeout = None))]
    fn wait(slf: &Bound<'_, Self>, timeout: Option<f64>) -> PyResult<bool> {
        let event = &slf.get().event;
        if event.is_set() {
            return Ok(true);
        }
        if timeout.is_some_and(f64::is_nan) {
            return Err(PyValueError::new_err("timeout must not be NaN"));
        }
        blocking(
            slf.py(),
            true,
            timeout,
            || false,
            |slice| event.wait(Some(slice.unwrap_or(Duration::ZERO))),
        )
    }

    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let this = slf.get();
        reduce(
            slf.py(),
            &this.region,
            "Event",
            &this.name,
            PyTuple::empty(slf.py()),
        )
    }
}

/// multiprocessing.Barrier (no action; raises threading.BrokenBarrierError).
#[pyclass(frozen, module = "shmsync._shmsync", name = "Barrier")]
struct Barrier {
    barrier: shmsync::Barrier,
    region: Py<Region>,
    name: String,
}

#[pymethods]
impl Barrier {
    /// Waits for all parties; returns this party's index (0 .. parties - 1). A timeout breaks
    /// the barrier for everyone (threading.BrokenBarrierError), as in Python.
    #[pyo3(signature = (timeout = None))]
    fn wait(slf: &Bound<'_, Self>, timeout: Option<f64>) -> PyResult<u32> {
        let barrier = &slf.get().barrier;
        let timeout = match timeout {
            None => None,
            Some(t) if t.is_nan() => return Err(PyValueError::new_err("timeout must not be NaN")),
            Some(t) => Some(Duration::try_from_secs_f64(t.max(0.0)).unwrap_or(Duration::MAX)),
        };
        match slf.py().detach(|| barrier.wait(timeout)) {
            Ok(index) => Ok(index),
            Err(_) => {
                let broken = slf
                    .py()
                    .import("threading")?
                    .getattr("BrokenBarrierError")?;
                Err(PyErr::from_value(broken.call0()?))
            }
        }
    }

    fn abort(&self) {
        self.barrier.abort();
    }

    fn reset(&self) {
        self.barrier.reset();
    }

    #[getter]
    fn parties(&self) -> u32 {
        self.barrier.parties()
    }

    #[getter]
    fn n_waiting(&self) -> u32 {
        self.barrier.n_waiting()
    }

    #[getter]
    fn broken(&self) -> bool {
        self.barrier.broken()
    }

    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let this = slf.get();
        let extra = PyTuple::new(slf.py(), [this.barrier.parties()])?;
        reduce(slf.py(), &this.region, "Barrier", &this.name, extra)
    }
}

/// A typecode of Python's `array` module, and how its values are stored: as the bits of an
/// unsigned integer of the same size, reached only with atomic loads and stores.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Code {
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    F32,
    F64,
}

impl Code {
    fn parse(typecode: &str) -> PyResult<Code> {
        Ok(match typecode {
            "b" => Code::I8,
            "B" => Code::U8,
            "h" => Code::I16,
            "H" => Code::U16,
            "i" => Code::I32,
            "I" => Code::U32,
            "l" | "q" => Code::I64,
            "L" | "Q" => Code::U64,
            "f" => Code::F32,
            "d" => Code::F64,
            other => {
                return Err(PyValueError::new_err(format!(
                    "unsupported typecode {other:?}: use one of b B h H i I l L q Q f d"
                )));
            }
        })
    }

    fn letter(self) -> &'static str {
        match self {
            Code::I8 => "b",
            Code::U8 => "B",
            Code::I16 => "h",
            Code::U16 => "H",
            Code::I32 => "i",
            Code::U32 => "I",
            Code::I64 => "q",
            Code::U64 => "Q",
            Code::F32 => "f",
            Code::F64 => "d",
        }
    }

    /// The stored bits of a Python value (OverflowError/TypeError as Python's ctypes would).
    fn to_bits(self, v: &Bound<'_, PyAny>) -> PyResult<u64> {
        Ok(match self {
            Code::I8 => v.extract::<i8>()? as u8 as u64,
            Code::U8 => v.extract::<u8>()? as u64,
            Code::I16 => v.extract::<i16>()? as u16 as u64,
            Code::U16 => v.extract::<u16>()? as u64,
            Code::I32 => v.extract::<i32>()? as u32 as u64,
            Code::U32 => v.extract::<u32>()? as u64,
            Code::I64 => v.extract::<i64>()? as u64,
            Code::U64 => v.extract::<u64>()?,
            Code::F32 => (v.extract::<f64>()? as f32).to_bits() as u64,
            Code::F64 => v.extract::<f64>()?.to_bits(),
        })
    }

    fn decode_bits(self, py: Python<'_>, b: u64) -> PyResult<Py<PyAny>> {
        Ok(match self {
            Code::I8 => (b as u8 as i8).into_pyobject(py)?.into_any().unbind(),
            Code::U8 => (b as u8).into_pyobject(py)?.into_any().unbind(),
            Code::I16 => (b as u16 as i16).into_pyobject(py)?.into_any().unbind(),
            Code::U16 => (b as u16).into_pyobject(py)?.into_any().unbind(),
            Code::I32 => (b as u32 as i32).into_pyobject(py)?.into_any().unbind(),
            Code::U32 => (b as u32).into_pyobject(py)?.into_any().unbind(),
            Code::I64 => (b as i64).into_pyobject(py)?.into_any().unbind(),
            Code::U64 => b.into_pyobject(py)?.into_any().unbind(),
            Code::F32 => (f32::from_bits(b as u32) as f64)
                .into_pyobject(py)?
                .into_any()
                .unbind(),
            Code::F64 => f64::from_bits(b).into_pyobject(py)?.into_any().unbind(),
        })
    }

    fn cells(self, region: &RsRegion, name: &str, init: &[u64]) -> PyResult<Cells> {
        Ok(match self.bytes() {
            1 => Cells::B1(
                region
                    .raw_array::<u8>(name, &init.iter().map(|&b| b as u8).collect::<Vec<_>>())
                    .map_err(err)?,
            ),
            2 => Cells::B2(
                region
                    .raw_array::<u16>(name, &init.iter().map(|&b| b as u16).collect::<Vec<_>>())
                    .map_err(err)?,
            ),
            4 => Cells::B4(
                region
                    .raw_array::<u32>(name, &init.iter().map(|&b| b as u32).collect::<Vec<_>>())
                    .map_err(err)?,
            ),
            _ => Cells::B8(region.raw_array::<u64>(name, init).map_err(err)?),
        })
    }

    fn bytes(self) -> usize {
        match self {
            Code::I8 | Code::U8 => 1,
            Code::I16 | Code::U16 => 2,
            Code::I32 | Code::U32 | Code::F32 => 4,
            Code::I64 | Code::U64 | Code::F64 => 8,
        }
    }
}

/// The stored elements (a Value is an array of one), as unsigned integers of the typecode's
/// size.
enum Cells {
    B1(RawArray<u8>),
    B2(RawArray<u16>),
    B4(RawArray<u32>),
    B8(RawArray<u64>),
}

impl Cells {
    fn len(&self) -> usize {
        match self {
            Cells::B1(a) => a.len(),
            Cells::B2(a) => a.len(),
            Cells::B4(a) => a.len(),
            Cells::B8(a) => a.len(),
        }
    }

    fn load(&self, i: usize) -> u64 {
        match self {
            Cells::B1(a) => a.load(i) as u64,
            Cells::B2(a) => a.load(i) as u64,
            Cells::B4(a) => a.load(i) as u64,
            Cells::B8(a) => a.load(i),
        }
    }

    fn store(&self, i: usize, bits: u64) {
        match self {
            Cells::B1(a) => a.store(i, bits as u8),
            Cells::B2(a) => a.store(i, bits as u16),
            Cells::B4(a) => a.store(i, bits as u32),
            Cells::B8(a) => a.store(i, bits),
        }
    }
}

/// multiprocessing.Value / Array: typed elements in the region, each access under the RLock
/// `get_lock()` returns (unless created with lock=False).
#[pyclass(frozen, module = "shmsync._shmsync", name = "Value")]
struct Value {
    cells: Cells,
    code: Code,
    lock: Option<Py<RLock>>,
    region: Py<Region>,
    name: String,
}

/// Holds a Value's RLock (if it has one) for the length of one access.
struct Held<'a>(Option<&'a shmsync::RLock>);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if let Some(lock) = self.0 {
            let _ = lock.release();
        }
    }
}

impl Value {
    fn hold<'a>(slf: &'a Bound<'_, Self>) -> PyResult<Held<'a>> {
        let this: &'a Value = slf.get();
        match &this.lock {
            None => Ok(Held(None)),
            Some(lock) => {
                let lock = lock.get();
                let got = blocking(
                    slf.py(),
                    true,
                    None,
                    || lock.lock.is_unrecoverable(),
                    |slice| match slice {
                        None => lock.lock.acquire(false, None),
                        Some(s) => lock.lock.acquire(true, Some(s)),
                    },
                )?;
                if !got {
                    return Err(NotRecoverableError::new_err(
                        "the value's lock is not recoverable",
                    ));
                }
                if lock.lock.is_poisoned() && lock.lock.count() == 1 {
                    // Left held (released without mark_consistent it would become
                    // unrecoverable): the caller repairs the value through `e.lock`, then
                    // marks it consistent and releases it, as after Lock.acquire.
                    let e = OwnerDiedError::new_err(
                        "a holder of the value's lock died; the lock (e.lock) is now held by you: \
                         repair the value, call e.lock.mark_consistent(), then e.lock.release()",
                    );
                    let py = slf.py();
                    if let Some(rlock) = &this.lock {
                        e.value(py).setattr("lock", rlock.clone_ref(py))?;
                    }
                    return Err(e);
                }
                Ok(Held(Some(&lock.lock)))
            }
        }
    }

    fn index(&self, i: isize) -> PyResult<usize> {
        let len = self.cells.len() as isize;
        let j = if i < 0 { i + len } else { i };
        if j < 0 || j >= len {
            return Err(pyo3::exceptions::PyIndexError::new_err(
                "array index out of range",
            ));
        }
        Ok(j as usize)
    }
}

#[pymethods]
impl Value {
    /// The value (of a Value), read under the lock.
    #[getter]
    fn get_value(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let _held = Value::hold(slf)?;
        let this = slf.get();
        this.code.decode_bits(slf.py(), this.cells.load(0))
    }

    /// Sets the value under the lock.
    #[setter]
    fn set_value(slf: &Bound<'_, Self>, v: &Bound<'_, PyAny>) -> PyResult<()> {
        let this = slf.get();
        let bits = this.code.to_bits(v)?;
        let _held = Value::hold(slf)?;
        this.cells.store(0, bits);
        Ok(())
    }

    /// The RLock guarding the value (None for lock=False).
    fn get_lock(slf: &Bound<'_, Self>) -> Option<Py<RLock>> {
        slf.get().lock.as_ref().map(|l| l.clone_ref(slf.py()))
    }

    /// The typecode.
    #[getter]
    fn typecode(&self) -> &'static str {
        self.code.letter()
    }

    fn __len__(&self) -> usize {
        self.cells.len()
    }

    fn __getitem__(slf: &Bound<'_, Self>, index: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let this = slf.get();
        if let Ok(slice) = index.cast::<PySlice>() {
            let ind = slice.indices(this.cells.len() as isize)?;
            let _held = Value::hold(slf)?;
            let mut out = Vec::with_capacity(ind.slicelength);
            let mut i = ind.start;
            for _ in 0..ind.slicelength {
                out.push(this.code.decode_bits(py, this.cells.load(i as usize))?);
                i += ind.step;
            }
            return Ok(pyo3::types::PyList::new(py, out)?.into_any().unbind());
        }
        let i = this.index(index.extract::<isize>()?)?;
        let _held = Value::hold(slf)?;
        this.code.decode_bits(py, this.cells.load(i))
    }

    fn __setitem__(
        slf: &Bound<'_, Self>,
        index: &Bound<'_, PyAny>,
        v: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let this = slf.get();
        if let Ok(slice) = index.cast::<PySlice>() {
            let ind = slice.indices(this.cells.len() as isize)?;
            let bits: Vec<u64> = v
                .try_iter()?
                .map(|x| this.code.to_bits(&x?))
                .collect::<PyResult<_>>()?;
            if bits.len() != ind.slicelength {
                return Err(PyValueError::new_err(
                    "can only assign a sequence of the same length",
                ));
            }
            let _held = Value::hold(slf)?;
            let mut i = ind.start;
            for b in bits {
                this.cells.store(i as usize, b);
                i += ind.step;
            }
            return Ok(());
        }
        let i = this.index(index.extract::<isize>()?)?;
        let bits = this.code.to_bits(v)?;
        let _held = Value::hold(slf)?;
        this.cells.store(i, bits);
        Ok(())
    }

    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let this = slf.get();
        let py = slf.py();
        let extra = PyTuple::new(
            py,
            [
                this.code.letter().into_pyobject(py)?.into_any(),
                this.cells.len().into_pyobject(py)?.into_any(),
                this.lock.is_some().into_pyobject(py)?.to_owned().into_any(),
            ],
        )?;
        reduce(py, &this.region, "Value", &this.name, extra)
    }
}

/// A bounded queue of byte messages in the region (the `shmsync.Queue` of Python objects
/// pickles them into it).
#[pyclass(frozen, module = "shmsync._shmsync", name = "ByteQueue")]
struct ByteQueue {
    q: shmsync::ByteQueue,
    region: Py<Region>,
    name: String,
}

fn queue_exception(py: Python<'_>, which: &str) -> PyErr {
    match py
        .import("queue")
        .and_then(|m| m.getattr(which))
        .and_then(|c| c.call0())
    {
        Ok(e) => PyErr::from_value(e),
        Err(e) => e,
    }
}

#[pymethods]
impl ByteQueue {
    /// Puts `data` (multiprocessing's `put(obj, block, timeout)` for bytes): waits for room,
    /// queue.Full if there is none in time (or at once with block=False); ValueError for a
    /// message over the queue's limit.
    #[pyo3(signature = (data, block = true, timeout = None))]
    fn put(
        slf: &Bound<'_, Self>,
        data: Vec<u8>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let py = slf.py();
        let q = &slf.get().q;
        match q.put_nowait(&data) {
            Ok(()) => return Ok(()),
            Err(Error::Full) => {}
            Err(Error::MessageTooLong { .. }) => {
                return Err(PyValueError::new_err(format!(
                    "a message of {} bytes is over the queue's limit of {}",
                    data.len(),
                    q.max_len()
                )));
            }
            Err(e) => return Err(err(e)),
        }
        let Some(deadline) = deadline(block, timeout)? else {
            return Err(queue_exception(py, "Full"));
        };
        loop {
            let slice = match deadline {
                None => SLICE,
                Some(d) => d.saturating_duration_since(Instant::now()).min(SLICE),
            };
            if slice.is_zero() {
                return Err(queue_exception(py, "Full"));
            }
            match py.detach(|| q.put(&data, true, Some(slice))) {
                Ok(()) => return Ok(()),
                Err(Error::Full) => {}
                Err(e) => return Err(err(e)),
            }
            py.check_signals()?;
        }
    }

    /// Takes the oldest message (multiprocessing's `get(block, timeout)` for bytes):
    /// queue.Empty if none comes in time.
    #[pyo3(signature = (block = true, timeout = None))]
    fn get<'py>(
        slf: &Bound<'py, Self>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, pyo3::types::PyBytes>> {
        let py = slf.py();
        let q = &slf.get().q;
        let bytes = |v: Vec<u8>| pyo3::types::PyBytes::new(py, &v);
        match q.get_nowait() {
            Ok(v) => return Ok(bytes(v)),
            Err(Error::Empty) => {}
            Err(e) => return Err(err(e)),
        }
        let Some(deadline) = deadline(block, timeout)? else {
            return Err(queue_exception(py, "Empty"));
        };
        loop {
            let slice = match deadline {
                None => SLICE,
                Some(d) => d.saturating_duration_since(Instant::now()).min(SLICE),
            };
            if slice.is_zero() {
                return Err(queue_exception(py, "Empty"));
            }
            match py.detach(|| q.get(true, Some(slice))) {
                Ok(v) => return Ok(bytes(v)),
                Err(Error::Empty) => {}
                Err(e) => return Err(err(e)),
            }
            py.check_signals()?;
        }
    }

    /// Messages in the queue now.
    fn qsize(&self) -> usize {
        self.q.qsize()
    }

    fn empty(&self) -> bool {
        self.q.empty()
    }

    fn full(&self) -> bool {
        self.q.full()
    }

    /// The most messages it holds.
    #[getter]
    fn capacity(&self) -> usize {
        self.q.capacity()
    }

    /// The longest message, in bytes.
    #[getter]
    fn max_len(&self) -> usize {
        self.q.max_len()
    }

    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let this = slf.get();
        let extra = PyTuple::new(slf.py(), [this.q.capacity(), this.q.max_len()])?;
        reduce(slf.py(), &this.region, "ByteQueue", &this.name, extra)
    }
}

/// Rebuilds a Value (or Array) of `len` elements from its region and name (for pickling).
#[pyfunction]
fn _open_value(
    region: &Bound<'_, Region>,
    name: String,
    typecode: &str,
    len: usize,
    lock: bool,
) -> PyResult<Value> {
    let code = Code::parse(typecode)?;
    let cells = code.cells(&region.get().region, &name, &vec![0; len])?;
    let lock = lock
        .then(|| {
            Region::rlock(region, format!("{name}.lock")).and_then(|l| Py::new(region.py(), l))
        })
        .transpose()?;
    Ok(Value {
        cells,
        code,
        lock,
        region: region.clone().unbind(),
        name,
    })
}

#[pymodule]
fn _shmsync(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Region>()?;
    m.add_class::<Lock>()?;
    m.add_class::<RLock>()?;
    m.add_class::<Semaphore>()?;
    m.add_class::<Condition>()?;
    m.add_class::<Event>()?;
    m.add_class::<Barrier>()?;
    m.add_class::<Value>()?;
    m.add_class::<ByteQueue>()?;
    m.add_function(wrap_pyfunction!(_open_value, m)?)?;
    m.add("OwnerDiedError", m.py().get_type::<OwnerDiedError>())?;
    m.add(
        "NotRecoverableError",
        m.py().get_type::<NotRecoverableError>(),
    )?;
    m.add("BrokenError", m.py().get_type::<BrokenError>())?;
    m.add("SEM_VALUE_MAX", shmsync::SEM_VALUE_MAX)?;
    Ok(())
}
