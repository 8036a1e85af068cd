//! Errors.

use crate::protocol::rmutex::RError;
use crate::protocol::{mutex, rwlock};
use std::fmt;
use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in shmsync, as one enum. Every variant says what was wrong and,
/// where there is one, with which path or object.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A system call failed.
    Io {
        /// What we were doing.
        op: &'static str,
        /// The path involved, if any.
        path: Option<PathBuf>,
        /// The error the system returned.
        source: io::Error,
    },
    /// [`Region::create`](crate::Region::create) found something at the path already.
    AlreadyExists(PathBuf),
    /// The region file belongs to another user; opening it needs
    /// [`RegionOptions::allow_other_owner`](crate::RegionOptions::allow_other_owner).
    OtherOwner {
        /// The file.
        path: PathBuf,
        /// Its owner's user id.
        owner: u32,
        /// This process's effective user id.
        me: u32,
    },
    /// [`Region::open`](crate::Region::open) found nothing at the path.
    NotFound(PathBuf),
    /// The file is not a shmsync region, or it is one whose contents are damaged.
    Corrupt {
        /// The file, or `None` for an anonymous region.
        path: Option<PathBuf>,
        /// What exactly is wrong.
        reason: String,
    },
    /// The file is shorter than the region format needs (for instance, shorter than the header).
    Truncated {
        /// The file.
        path: Option<PathBuf>,
        /// The file's length.
        len: u64,
        /// The least length that could be a region.
        needed: u64,
    },
    /// The header's size field disagrees with the file's length (the file was truncated or
    /// extended after it was created).
    SizeMismatch {
        /// The file.
        path: Option<PathBuf>,
        /// The size recorded in the header.
        header: u64,
        /// The file's actual length.
        file: u64,
    },
    /// The file was written by an incompatible version of the region format.
    VersionMismatch {
        /// The version in the file.
        found: u32,
        /// The version this build reads.
        expected: u32,
    },
    /// The file was written with another memory layout (pointer width, endianness, padding).
    LayoutMismatch {
        /// The layout recorded in the file.
        found: String,
        /// The layout of this build.
        expected: String,
    },
    /// A size given to create a region is unusable.
    InvalidSize {
        /// The size asked for.
        size: u64,
        /// Why it cannot be used.
        reason: String,
    },
    /// An object name is empty, too long or otherwise unusable.
    InvalidName {
        /// The name as given (lossily, if it was not valid UTF-8).
        name: String,
        /// Why it cannot be used.
        reason: &'static str,
    },
    /// The element type cannot live in a region.
    UnsupportedType {
        /// The type.
        type_name: String,
        /// Why.
        reason: &'static str,
    },
    /// An object exists under this name with another kind, element type or length.
    Mismatch {
        /// The object's name.
        name: String,
        /// What the region holds, e.g. `Value<f64>`.
        existing: String,
        /// What was asked for, e.g. `Array<i32; 10>`.
        requested: String,
    },
    /// The region's directory holds as many objects as it can.
    DirectoryFull {
        /// The directory's capacity.
        capacity: usize,
    },
    /// The region has no room left for an object of this size.
    OutOfSpace {
        /// Bytes the new object needs (with its padding).
        requested: u64,
        /// Bytes left in the region.
        available: u64,
    },
    /// `release()` of a lock that is not held.
    NotLocked,
    /// `release()` of an [`RLock`](crate::RLock) by a thread that does not own it.
    NotOwner,
    /// An index beyond the end of an array.
    IndexOutOfRange {
        /// The index asked for.
        index: usize,
        /// The array's length.
        len: usize,
    },
    /// A slice whose length differs from the array's.
    LengthMismatch {
        /// The array's length.
        expected: usize,
        /// The slice's length.
        found: usize,
    },
    /// Every slot of the region's process table is held by a live process.
    ProcessTableFull {
        /// The table's size.
        slots: usize,
    },
    /// Creating an object waited this long for the region's allocation lock: a live process is
    /// stuck holding it, or the lock word is damaged.
    AllocationTimeout {
        /// How long we waited.
        waited: std::time::Duration,
    },
    /// A `try_lock` found the lock held (from [`TryLockError::WouldBlock`] via `?`).
    WouldBlock,
    /// A guard of another lock was passed where this object's own lock was needed.
    WrongLock,
    /// The previous holder of a lock died while holding it; the lock was taken over and the
    /// data it protects may be inconsistent (see [`LockError::OwnerDied`]).
    OwnerDied,
    /// A lock whose holder died was never marked consistent; it cannot be used any more.
    NotRecoverable,
    /// A process died in the middle of changing this object (a [`Semaphore`](crate::Semaphore)
    /// or an [`RwLock`](crate::RwLock)), so its state is no longer known; it refuses every
    /// operation rather than guess.
    Broken {
        /// The object's kind, e.g. `"Semaphore"`.
        what: &'static str,
    },
    /// A [`BoundedSemaphore`](crate::BoundedSemaphore) released more times than acquired
    /// (Python raises `ValueError`), or a semaphore count that would pass 2²⁴ − 1.
    AboveBound {
        /// The most permits the semaphore may count.
        bound: u32,
    },
    /// This process already holds as many read locks of one object through guards as the
    /// object can account for (about two billion). (Semaphore permits never fail this way since
    /// region format 3.)
    TooManyHolds,
    /// A [`Barrier`](crate::Barrier) was broken (by a timeout, an abort, a reset, or a
    /// waiter's death detected by timeout) before its round completed (from
    /// [`BrokenBarrier`](crate::BrokenBarrier)).
    BrokenBarrier,
    /// An argument out of its range (a barrier of 0 parties, a semaphore value too large, a
    /// queue of capacity 0).
    InvalidArgument(String),
    /// A [`Queue`](crate::Queue) stayed full until the deadline (or at a single try): Python's
    /// `queue.Full`.
    Full,
    /// A [`Queue`](crate::Queue) stayed empty until the deadline (or at a single try): Python's
    /// `queue.Empty`.
    Empty,
    /// A message longer than its [`ByteQueue`](crate::ByteQueue)'s limit; nothing was put.
    MessageTooLong {
        /// The message's length.
        len: usize,
        /// The queue's limit.
        max: usize,
    },
    /// [`Process::fork`](crate::Process::fork) in a process with more than one thread: a
    /// forked child of a threaded program may deadlock (use
    /// [`Process::spawn`](crate::Process::spawn)).
    Threaded {
        /// The threads the kernel counted.
        threads: usize,
    },
    /// A child started by [`Process::spawn`](crate::Process::spawn) could not start its
    /// entry.
    Spawn {
        /// The entry's name.
        entry: String,
        /// Why, as the child (or its absence) told.
        reason: String,
    },
}

impl Error {
    pub(crate) fn io(op: &'static str, path: Option<&std::path::Path>, source: io::Error) -> Error {
        Error::Io {
            op,
            path: path.map(|p| p.to_path_buf()),
            source,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io {
                op,
                path: Some(p),
                source,
            } => write!(f, "{op} {}: {source}", p.display()),
            Error::Io {
                op,
                path: None,
                source,
            } => write!(f, "{op}: {source}"),
            Error::AlreadyExists(p) => write!(f, "{} already exists", p.display()),
            Error::NotFound(p) => write!(f, "no region at {}", p.display()),
            Error::OtherOwner { path, owner, me } => write!(
                f,
                "{} belongs to user {owner}, not to this process's user {me}; refusing it \
                 (RegionOptions::allow_other_owner opts in)",
                path.display()
            ),
            Error::Corrupt {
                path: Some(p),
                reason,
            } => {
                write!(f, "{} is not a valid shmsync region: {reason}", p.display())
            }
            Error::Corrupt { path: None, reason } => write!(f, "invalid shmsync region: {reason}"),
            Error::Truncated { path, len, needed } => write!(
                f,
                "{} is truncated: {len} bytes, a region needs at least {needed}",
                show(path)
            ),
            Error::SizeMismatch { path, header, file } => write!(
                f,
                "{}: the header records {header} bytes but the file has {file}",
                show(path)
            ),
            Error::VersionMismatch { found, expected } => write!(
                f,
                "region format version {found} is not supported (this build reads version {expected})"
            ),
            Error::LayoutMismatch { found, expected } => write!(
                f,
                "region was written with layout {found}, this build uses {expected}"
            ),
            Error::InvalidSize { size, reason } => {
                write!(f, "invalid region size {size}: {reason}")
            }
            Error::InvalidName { name, reason } => {
                write!(f, "invalid object name {name:?}: {reason}")
            }
            Error::UnsupportedType { type_name, reason } => {
                write!(f, "{type_name} cannot be stored in a region: {reason}")
            }
            Error::Mismatch {
                name,
                existing,
                requested,
            } => write!(
                f,
                "object {name:?} exists as {existing}, but {requested} was requested"
            ),
            Error::DirectoryFull { capacity } => {
                write!(f, "the region's directory is full ({capacity} objects)")
            }
            Error::OutOfSpace {
                requested,
                available,
            } => write!(
                f,
                "not enough space in the region: the object needs {requested} bytes, {available} are left"
            ),
            Error::NotLocked => write!(f, "release of a lock that is not held"),
            Error::NotOwner => write!(f, "release of an RLock by a thread that does not own it"),
            Error::IndexOutOfRange { index, len } => {
                write!(f, "index {index} out of range for an array of length {len}")
            }
            Error::LengthMismatch { expected, found } => write!(
                f,
                "slice of length {found} given for an array of length {expected}"
            ),
            Error::WouldBlock => write!(f, "the lock is held by someone else"),
            Error::AllocationTimeout { waited } => write!(
                f,
                "waited {waited:?} for the region's allocation lock: its holder is stuck or the \
                 lock word is damaged"
            ),
            Error::ProcessTableFull { slots } => write!(
                f,
                "the region's process table is full: {slots} live processes already use it"
            ),
            Error::WrongLock => write!(f, "the guard belongs to another lock"),
            Error::OwnerDied => write!(f, "the previous holder of the lock died while holding it"),
            Error::Broken { what } => write!(
                f,
                "the {what} is broken: a process died in the middle of changing it, so its state \
                 is unknown"
            ),
            Error::AboveBound { bound } => write!(
                f,
                "semaphore released too many times: it may count at most {bound} permits"
            ),
            Error::TooManyHolds => write!(
                f,
                "this process holds too many permits or read locks of one object through guards"
            ),
            Error::BrokenBarrier => write!(f, "the barrier is broken"),
            Error::InvalidArgument(why) => write!(f, "invalid argument: {why}"),
            Error::Full => write!(f, "the queue is full"),
            Error::Empty => write!(f, "the queue is empty"),
            Error::MessageTooLong { len, max } => write!(
                f,
                "a message of {len} bytes is longer than the queue's limit of {max} bytes"
            ),
            Error::Threaded { threads } => write!(
                f,
                "cannot fork a process that has {threads} threads: the child could deadlock on \
                 a lock another thread held; start it with Process::spawn instead"
            ),
            Error::Spawn { entry, reason } => {
                write!(
                    f,
                    "the spawned process could not start entry {entry:?}: {reason}"
                )
            }
            Error::NotRecoverable => write!(
                f,
                "the lock is not recoverable: its holder died and the state was never marked consistent"
            ),
        }
    }
}

fn show(path: &Option<PathBuf>) -> String {
    match path {
        Some(p) => p.display().to_string(),
        None => "anonymous region".to_string(),
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Why a blocking `lock()` did not simply return a guard.
///
/// This is the EOWNERDEAD / ENOTRECOVERABLE model of POSIX robust mutexes, for every lock of
/// shmsync. When a process dies holding a lock, the next acquirer to notice (waiters check
/// every [`DEATH_CHECK_INTERVAL`](crate::DEATH_CHECK_INTERVAL)) takes the lock over and gets
/// [`LockError::OwnerDied`] with the guard inside. The lock is *poisoned*: repair what it
/// protects, then call `mark_consistent()` on the guard. If the guard is dropped without that,
/// the lock becomes unrecoverable and every later acquire gets [`LockError::NotRecoverable`].
///
/// `?` converts it into [`Error`], dropping the guard: after `OwnerDied` that makes the lock
/// unrecoverable. Match on the error to recover instead.
///
/// # Examples
///
/// ```
/// # let region = shmsync::Region::anonymous(1 << 16)?;
/// # let jobs = region.value::<u64>("jobs", 0)?;
/// use shmsync::LockError;
///
/// let mut guard = match jobs.lock() {
///     Ok(guard) => guard,
///     Err(LockError::OwnerDied(died)) => {
///         let guard = died.into_guard();
///         // A worker died mid-update: recompute the state from a trusted source here.
///         guard.mark_consistent();
///         guard
///     }
///     Err(e) => return Err(e.into()),
/// };
/// *guard += 1;
/// # Ok::<(), shmsync::Error>(())
/// ```
pub enum LockError<G> {
    /// The lock was taken over from a holder that died; the guard is inside.
    OwnerDied(OwnerDied<G>),
    /// The lock is unusable: a previous taker of a dead holder's lock never marked it
    /// consistent.
    NotRecoverable,
}

/// Why `try_lock()` / `try_lock_for()` did not return a guard.
pub enum TryLockError<G> {
    /// The lock is held by someone else (and, for `try_lock_for`, stayed held until the
    /// deadline).
    WouldBlock,
    /// The lock was taken over from a holder that died; the guard is inside.
    OwnerDied(OwnerDied<G>),
    /// The lock is unusable (see [`LockError::NotRecoverable`]).
    NotRecoverable,
}

/// A lock taken over from a holder that died, carrying the guard.
pub struct OwnerDied<G> {
    guard: G,
}

impl<G> OwnerDied<G> {
    pub(crate) fn new(guard: G) -> Self {
        OwnerDied { guard }
    }

    /// The guard of the lock, now held by the caller.
    pub fn into_guard(self) -> G {
        self.guard
    }
    /// The guard, borrowed.
    pub fn get_ref(&self) -> &G {
        &self.guard
    }
}

impl<G> fmt::Display for LockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::OwnerDied(_) => fmt::Display::fmt(&Error::OwnerDied, f),
            LockError::NotRecoverable => fmt::Display::fmt(&Error::NotRecoverable, f),
        }
    }
}

impl<G> fmt::Display for TryLockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryLockError::WouldBlock => write!(f, "the lock is held by someone else"),
            TryLockError::OwnerDied(_) => fmt::Display::fmt(&Error::OwnerDied, f),
            TryLockError::NotRecoverable => fmt::Display::fmt(&Error::NotRecoverable, f),
        }
    }
}

// Debug by hand: the guard need not be Debug (its element type may not be), and printing the
// error should not take the lock again.
impl<G> fmt::Debug for LockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::OwnerDied(_) => f.write_str("OwnerDied(..)"),
            LockError::NotRecoverable => f.write_str("NotRecoverable"),
        }
    }
}

impl<G> fmt::Debug for TryLockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryLockError::WouldBlock => f.write_str("WouldBlock"),
            TryLockError::OwnerDied(_) => f.write_str("OwnerDied(..)"),
            TryLockError::NotRecoverable => f.write_str("NotRecoverable"),
        }
    }
}

impl<G> fmt::Debug for OwnerDied<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OwnerDied(..)")
    }
}

// `LockError` and `TryLockError` deliberately do not implement `std::error::Error`: their guard
// borrows the lock, so a boxed error could never be `'static` anyway. Instead `?` converts them
// (dropping the guard) into `Error` or into a boxed error, so that `*value.lock()? += 1` works in
// a function returning `Result<_, Box<dyn std::error::Error>>`.
macro_rules! into_boxed {
    ($($bound:tt)*) => {
        impl<G> From<LockError<G>> for Box<dyn std::error::Error $($bound)*> {
            fn from(e: LockError<G>) -> Self {
                Box::new(Error::from(e))
            }
        }
        impl<G> From<TryLockError<G>> for Box<dyn std::error::Error $($bound)*> {
            fn from(e: TryLockError<G>) -> Self {
                Box::new(Error::from(e))
            }
        }
    };
}
into_boxed!();
into_boxed!(+ Send + Sync);

impl<G> From<TryLockError<G>> for Error {
    fn from(e: TryLockError<G>) -> Error {
        match e {
            TryLockError::WouldBlock => Error::WouldBlock,
            TryLockError::OwnerDied(_) => Error::OwnerDied,
            TryLockError::NotRecoverable => Error::NotRecoverable,
        }
    }
}

impl<G> From<LockError<G>> for Error {
    fn from(e: LockError<G>) -> Error {
        match e {
            LockError::OwnerDied(_) => Error::OwnerDied,
            LockError::NotRecoverable => Error::NotRecoverable,
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How an acquire of any lock ended, in the terms every handle reports: the one place where
/// the protocols' outcomes become errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Got {
    /// Acquired.
    Yes,
    /// Acquired, taken over from a holder that died.
    OwnerDied,
    /// Held by someone else until the deadline (or, for a single try, now).
    WouldBlock,
    /// Can never be acquired (unrecoverable, broken, or no room to record the hold).
    NotRecoverable,
}

impl Got {
    /// Whether the lock is now held (Python's `acquire` return value).
    #[inline]
    pub(crate) fn acquired(self) -> bool {
        matches!(self, Got::Yes | Got::OwnerDied)
    }

    /// The result of a blocking acquire (`lock()`, `read()`, `write()`). A wait without a
    /// deadline cannot end `WouldBlock`; if it does (a count at its limit), that is reported
    /// as unrecoverable rather than as a guard that is not there.
    #[inline]
    pub(crate) fn blocking<G>(self, guard: impl FnOnce() -> G) -> Result<G, LockError<G>> {
        match self {
            Got::Yes => Ok(guard()),
            Got::OwnerDied => Err(LockError::OwnerDied(OwnerDied::new(guard()))),
            Got::WouldBlock | Got::NotRecoverable => Err(LockError::NotRecoverable),
        }
    }

    /// The result of a `try_*` acquire.
    #[inline]
    pub(crate) fn trying<G>(self, guard: impl FnOnce() -> G) -> Result<G, TryLockError<G>> {
        match self {
            Got::Yes => Ok(guard()),
            Got::OwnerDied => Err(TryLockError::OwnerDied(OwnerDied::new(guard()))),
            Got::WouldBlock => Err(TryLockError::WouldBlock),
            Got::NotRecoverable => Err(TryLockError::NotRecoverable),
        }
    }

    /// The result of an acquire that hands out no guard (a condition's wait taking its lock
    /// back): `Ok` only if plainly acquired.
    pub(crate) fn into_result(self) -> Result<()> {
        match self {
            Got::Yes => Ok(()),
            Got::OwnerDied => Err(Error::OwnerDied),
            Got::WouldBlock => Err(Error::WouldBlock),
            Got::NotRecoverable => Err(Error::NotRecoverable),
        }
    }
}

impl From<mutex::Outcome> for Got {
    #[inline]
    fn from(outcome: mutex::Outcome) -> Got {
        match outcome {
            mutex::Outcome::Acquired => Got::Yes,
            mutex::Outcome::OwnerDied => Got::OwnerDied,
            mutex::Outcome::Busy => Got::WouldBlock,
            mutex::Outcome::NotRecoverable => Got::NotRecoverable,
        }
    }
}

impl From<rwlock::Outcome> for Got {
    /// A hold count at its limit is reported as `WouldBlock` (which a blocking acquire turns
    /// into unrecoverable: it is no reason to wait).
    #[inline]
    fn from(outcome: rwlock::Outcome) -> Got {
        match outcome {
            rwlock::Outcome::Acquired => Got::Yes,
            rwlock::Outcome::Poisoned => Got::OwnerDied,
            rwlock::Outcome::Busy | rwlock::Outcome::Full => Got::WouldBlock,
            rwlock::Outcome::Broken => Got::NotRecoverable,
        }
    }
}

/// The error of a release, wait or notify by a thread that does not own a re-entrant lock.
pub(crate) fn not_owner(e: RError) -> Error {
    match e {
        RError::NotOwner => Error::NotOwner,
        RError::NotLocked | RError::CountOverflow => Error::NotLocked,
    }
}
