//! [`Lock`]: Python's `multiprocessing.Lock`, as one futex word in a region.

use crate::error::{Error, Got, LockError, Result, TryLockError};
use crate::protocol::mutex;
use crate::protocol::{Block, Word};
use crate::region::{Hold, Kind, Object, Region, Spec, layout};
use crate::sys::FutexWord;
use std::fmt;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

/// A lock word in a region: the first word of a [`Lock`], [`Value`](crate::Value) or
/// [`Array`](crate::Array) object. Shared by [`Lock`], [`DataLock`] and the locked cells.
#[derive(Clone)]
pub(crate) struct RawLock {
    object: Object,
}

// The lock word is at the same place in every object that has one.
const _: () = assert!(layout::lock::WORD == 0 && layout::locked::LOCK == 0);

impl RawLock {
    /// The lock whose word starts `object`.
    pub(crate) fn new(object: Object) -> RawLock {
        RawLock { object }
    }

    /// The object the lock word starts.
    pub(crate) fn object(&self) -> &Object {
        &self.object
    }

    #[inline]
    pub(crate) fn word(&self) -> &FutexWord {
        self.object.word(layout::lock::WORD)
    }

    /// Acquires with this process's token; returns the outcome and the hold to release.
    #[inline]
    pub(crate) fn acquire(&self, block: Block) -> (Got, Hold) {
        let region = self.object.region();
        let hold = region.hold();
        let outcome = mutex::lock(self.word(), hold.token, block, region);
        (outcome.into(), hold)
    }

    /// Releases, whoever holds the lock (Python's `Lock.release()`).
    #[inline]
    pub(crate) fn release(&self) -> Result<()> {
        mutex::unlock(self.word(), self.object.region().token())
            .map_err(|mutex::NotLocked| Error::NotLocked)
    }

    /// Releases `hold`, unless this is a forked child of the process that took it: the child's
    /// copy of a guard must not free its parent's lock.
    #[inline]
    pub(crate) fn release_guard(&self, hold: Hold) {
        if hold.is_ours() {
            let _ = mutex::unlock_own(self.word(), hold.token);
        }
    }

    pub(crate) fn mark_consistent(&self) -> bool {
        mutex::mark_consistent(self.word())
    }

    pub(crate) fn state(&self) -> u32 {
        self.word().load(Relaxed)
    }

    /// The pid of the holder, if held by a registered process that still owns its slot.
    pub(crate) fn holder(&self) -> Option<u32> {
        match mutex::holder(self.state()) {
            0 => None,
            token => self.object.region().pid_of(token),
        }
    }

    /// `lock()` for every handle: blocks, then wraps the guard the way every lock reports.
    #[inline]
    pub(crate) fn lock_with<G>(&self, guard: impl FnOnce(Hold) -> G) -> Result<G, LockError<G>> {
        let (got, hold) = self.acquire(Block::Forever);
        got.blocking(|| guard(hold))
    }

    /// `try_lock()` / `try_lock_for()` for every handle.
    #[inline]
    pub(crate) fn try_lock_with<G>(
        &self,
        block: Block,
        guard: impl FnOnce(Hold) -> G,
    ) -> Result<G, TryLockError<G>> {
        let (got, hold) = self.acquire(block);
        got.trying(|| guard(hold))
    }
}

/// The queries every lock handle answers, on its word.
macro_rules! lock_queries {
    () => {
        /// Whether someone holds the lock (a snapshot).
        pub fn is_locked(&self) -> bool {
            crate::protocol::mutex::is_locked(self.raw().state())
        }

        /// Whether the lock is held by a thread that took it over from a holder that died and
        /// has not yet called `mark_consistent` (a snapshot).
        pub fn is_poisoned(&self) -> bool {
            crate::protocol::mutex::is_poisoned(self.raw().state())
        }

        /// Whether the lock can never be acquired again: a holder died, and whoever took it over
        /// released it without calling `mark_consistent`.
        pub fn is_unrecoverable(&self) -> bool {
            crate::protocol::mutex::is_not_recoverable(self.raw().state())
        }

        /// The process id of the holder, if the lock is held (a snapshot).
        pub fn holder(&self) -> Option<u32> {
            self.raw().holder()
        }
    };
}
pub(crate) use lock_queries;

/// A non-recursive lock shared between processes: Python's `multiprocessing.Lock`.
///
/// Once a thread or process holds it, every other acquirer waits until it is released; any
/// thread or process may release it. The lock is one 32-bit word in the region: acquiring and
/// releasing it uncontended is one atomic instruction each, with no system call; contended
/// acquirers spin briefly, then sleep on a shared futex until a release wakes them.
///
/// Get one with [`Region::lock`]. Handles are cheap to clone, `Send + Sync`, and keep the
/// region mapped. Besides Python's [`acquire`](Lock::acquire) and [`release`](Lock::release),
/// it has the guard-based [`lock`](Lock::lock), [`try_lock`](Lock::try_lock) and
/// [`try_lock_for`](Lock::try_lock_for) of a [`DataLock`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let region = shmsync::Region::anonymous(1 << 16)?;
/// let lock = region.lock("printer")?;
///
/// // Python style:
/// assert!(lock.acquire(true, None));
/// assert!(!lock.acquire(true, Some(Duration::from_millis(10)))); // held: times out
/// lock.release()?;
/// assert!(lock.release().is_err()); // not held any more
///
/// // Rust style: the guard releases on drop.
/// {
///     let _guard = lock.lock()?;
///     assert!(lock.is_locked());
/// }
/// assert!(!lock.is_locked());
/// # Ok::<(), shmsync::Error>(())
/// ```
#[derive(Clone)]
pub struct Lock {
    data: DataLock,
}

impl Lock {
    /// Acquires the lock, Python style. With `block == false`, or a zero `timeout`, tries once.
    /// With `timeout == None`, waits as long as it takes. Otherwise waits until the timeout
    /// has passed on the monotonic clock (spurious wake-ups and signals do not extend it).
    /// Returns whether the lock was acquired; release it with [`release`](Lock::release).
    ///
    /// If the previous holder died holding the lock, it is taken over and `true` is returned;
    /// [`is_poisoned`](DataLock::is_poisoned) then says so until
    /// [`mark_consistent`](Lock::mark_consistent). An unrecoverable lock returns `false` at
    /// once ([`is_unrecoverable`](DataLock::is_unrecoverable)).
    #[inline]
    pub fn acquire(&self, block: bool, timeout: Option<Duration>) -> bool {
        self.raw()
            .acquire(Block::from_python(block, timeout))
            .0
            .acquired()
    }

    /// Releases the lock. Any thread or process may release it, as in Python.
    ///
    /// # Errors
    ///
    /// [`Error::NotLocked`] if the lock was not held (Python raises `ValueError`).
    #[inline]
    pub fn release(&self) -> Result<()> {
        self.raw().release()
    }

    /// Declares the state protected by a lock taken over from a dead holder repaired, for
    /// callers of [`acquire`](Lock::acquire) (guard holders use
    /// [`LockGuard::mark_consistent`]). Releasing a poisoned lock without this makes it
    /// unrecoverable.
    ///
    /// # Errors
    ///
    /// [`Error::NotLocked`] if the lock is not held.
    pub fn mark_consistent(&self) -> Result<()> {
        if !self.is_locked() {
            return Err(Error::NotLocked);
        }
        self.raw().mark_consistent();
        Ok(())
    }

    /// Acquires the lock, blocking as long as it takes: [`DataLock::lock`].
    ///
    /// # Errors
    ///
    /// As [`DataLock::lock`].
    #[inline]
    pub fn lock(&self) -> Result<LockGuard<'_>, LockError<LockGuard<'_>>> {
        self.data.lock()
    }

    /// Tries once to acquire the lock: [`DataLock::try_lock`].
    ///
    /// # Errors
    ///
    /// As [`DataLock::try_lock`].
    #[inline]
    pub fn try_lock(&self) -> Result<LockGuard<'_>, TryLockError<LockGuard<'_>>> {
        self.data.try_lock()
    }

    /// Tries to acquire the lock until `timeout` has passed: [`DataLock::try_lock_for`].
    ///
    /// # Errors
    ///
    /// As [`DataLock::try_lock_for`].
    pub fn try_lock_for(
        &self,
        timeout: Duration,
    ) -> Result<LockGuard<'_>, TryLockError<LockGuard<'_>>> {
        self.data.try_lock_for(timeout)
    }

    /// The lock as a [`DataLock`] (guards only), for code that takes one: a function written
    /// for `Value::get_lock()` accepts a `Lock` this way.
    pub fn as_data_lock(&self) -> &DataLock {
        &self.data
    }

    lock_queries!();

    pub(crate) fn raw(&self) -> &RawLock {
        &self.data.raw
    }
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock")
            .field("locked", &self.is_locked())
            .finish()
    }
}

/// A lock that can only be held through a guard: the lock embedded in a
/// [`Value`](crate::Value) or an [`Array`](crate::Array) (their `get_lock()`), and the guard
/// half of every [`Lock`].
///
/// Unlike [`Lock`] it can only be held through a guard, so nobody can release it from under the
/// holder of the data it protects: safe code cannot cause a data race on the value. To read or
/// write the data while holding the guard, pass the guard to `Value::get_mut` or
/// `Array::get_mut`.
///
/// # Examples
///
/// ```
/// let region = shmsync::Region::anonymous(1 << 16)?;
/// let balance = region.value::<i64>("balance", 100)?;
/// let lock = balance.get_lock();
/// let mut guard = lock.lock()?;
/// let b = balance.get_mut(&mut guard)?;
/// *b -= 30;
/// *b -= 20;
/// drop(guard);
/// assert_eq!(balance.load()?, 50);
/// # Ok::<(), shmsync::Error>(())
/// ```
#[derive(Clone)]
pub struct DataLock {
    raw: RawLock,
}

impl DataLock {
    pub(crate) fn new(raw: RawLock) -> DataLock {
        DataLock { raw }
    }

    /// Acquires the lock, blocking as long as it takes; the guard releases it when dropped.
    ///
    /// # Errors
    ///
    /// [`LockError::OwnerDied`] if the previous holder died holding the lock: the lock is
    /// taken over and the guard is inside; repair the protected state and call
    /// [`LockGuard::mark_consistent`], or the lock becomes unrecoverable when the guard is
    /// dropped. [`LockError::NotRecoverable`] if that already happened.
    #[inline]
    pub fn lock(&self) -> Result<LockGuard<'_>, LockError<LockGuard<'_>>> {
        self.raw.lock_with(|hold| LockGuard::new(&self.raw, hold))
    }

    /// Tries once to acquire the lock.
    ///
    /// # Errors
    ///
    /// [`TryLockError::WouldBlock`] if it is held.
    #[inline]
    pub fn try_lock(&self) -> Result<LockGuard<'_>, TryLockError<LockGuard<'_>>> {
        self.raw
            .try_lock_with(Block::Try, |hold| LockGuard::new(&self.raw, hold))
    }

    /// Tries to acquire the lock until `timeout` has passed.
    ///
    /// # Errors
    ///
    /// [`TryLockError::WouldBlock`] if it stayed held until the deadline.
    pub fn try_lock_for(
        &self,
        timeout: Duration,
    ) -> Result<LockGuard<'_>, TryLockError<LockGuard<'_>>> {
        self.raw.try_lock_with(Block::after(timeout), |hold| {
            LockGuard::new(&self.raw, hold)
        })
    }

    pub(crate) fn raw(&self) -> &RawLock {
        &self.raw
    }

    lock_queries!();
}

impl fmt::Debug for DataLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataLock")
            .field("locked", &self.is_locked())
            .finish()
    }
}

/// Holds a [`Lock`] or a [`DataLock`]; releases it when dropped.
///
/// A copy of the guard in a child forked while it was held does not release the parent's lock
/// when dropped.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard<'a> {
    lock: &'a RawLock,
    hold: Hold,
}

impl<'a> LockGuard<'a> {
    fn new(lock: &'a RawLock, hold: Hold) -> Self {
        LockGuard { lock, hold }
    }

    /// Declares the state protected by a lock taken over from a dead holder repaired (see
    /// [`LockError::OwnerDied`]). Without this, dropping the guard makes the lock
    /// unrecoverable. Harmless on a lock that is not poisoned.
    pub fn mark_consistent(&self) {
        self.lock.mark_consistent();
    }

    /// Whether this guard holds `lock` (used to check guards handed to `Value::get_mut`).
    pub(crate) fn holds(&self, lock: &RawLock) -> bool {
        self.lock.object.same(&lock.object)
    }
}

impl Drop for LockGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        // A plain `Lock` can be released by a non-holder; if that happened, the word is free or
        // held by someone else now, and the guard leaves it alone.
        self.lock.release_guard(self.hold);
    }
}

impl fmt::Debug for LockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LockGuard")
    }
}

impl Region {
    /// Finds or creates the [`Lock`] called `name` (created unlocked).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`], [`Error::Mismatch`] if `name` holds another kind of object,
    /// [`Error::DirectoryFull`], [`Error::OutOfSpace`], or [`Error::Corrupt`].
    pub fn lock(&self, name: &str) -> Result<Lock> {
        let object = Object::open(self, name, &Spec::plain(Kind::Lock), |_| {})?;
        Ok(Lock {
            data: DataLock::new(RawLock::new(object)),
        })
    }
}

/// A `Lock` travels to a spawned child by region and name.
impl crate::Transfer for Lock {
    fn encode(&self, out: &mut crate::Encoder) -> Result<()> {
        out.object(self.raw().object())
    }
    fn decode(input: &mut crate::Decoder) -> Result<Self> {
        let (region, name) = input.object()?;
        region.lock(&name)
    }
}
