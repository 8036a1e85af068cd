//! [`Lock`]: Python's `multiprocessing.Lock`, as one futex word in a region.

use crate::error::{Error, LockError, Result, TryLockError};
use crate::protocol::{Block, mutex};
use crate::region::{Inner, Kind, Region, Spec};
use std::fmt;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::time::Duration;

/// The holder token every lock is taken with in this release. (Owner-death recovery will
/// replace it with a per-process token from the region's process table.)
pub(crate) const TOKEN: u32 = 1;

/// A lock word in a region, kept alive by a reference to the mapping. Shared by [`Lock`],
/// [`DataLock`] and the locked [`Value`](crate::Value) and [`Array`](crate::Array).
#[derive(Clone)]
pub(crate) struct RawLock {
    _region: Arc<Inner>,
    word: NonNull<AtomicU32>,
}

// SAFETY: `word` points into the mapping owned by `region`, which lives as long as this value;
// the word is only ever accessed atomically, from any thread.
unsafe impl Send for RawLock {}
// SAFETY: as above: shared access is atomic.
unsafe impl Sync for RawLock {}

impl RawLock {
    /// The lock word at `offset` of `region` (a validated, 4-aligned offset inside it).
    pub(crate) fn new(region: Arc<Inner>, offset: usize) -> RawLock {
        let word = NonNull::from(region.u32_at(offset));
        RawLock {
            _region: region,
            word,
        }
    }

    /// Writes an unlocked word at `ptr`, the start of a fresh object.
    pub(crate) fn init(ptr: *mut u8) {
        // SAFETY: `ptr` is the 128-byte-aligned start of a fresh object inside the mapping,
        // handed to us by the directory before the object is published.
        unsafe { AtomicU32::from_ptr(ptr.cast()) }.store(mutex::UNLOCKED, Relaxed);
    }

    #[inline]
    pub(crate) fn word(&self) -> &AtomicU32 {
        // SAFETY: the pointer came from a live `&AtomicU32` into the mapping, and `self.region`
        // keeps the mapping alive for at least as long as `self`.
        unsafe { self.word.as_ref() }
    }

    #[inline]
    pub(crate) fn acquire(&self, block: Block) -> bool {
        mutex::lock(self.word(), TOKEN, block)
    }

    #[inline]
    pub(crate) fn release(&self) -> Result<()> {
        mutex::unlock(self.word()).map_err(|mutex::NotLocked| Error::NotLocked)
    }

    pub(crate) fn is_locked(&self) -> bool {
        mutex::is_locked(self.word().load(Relaxed))
    }

    /// `lock()` for every handle: blocks, then wraps the guard the way every lock reports.
    #[inline]
    pub(crate) fn lock_with<G>(&self, guard: impl FnOnce() -> G) -> Result<G, LockError<G>> {
        self.acquire(Block::Forever);
        Ok(guard())
    }

    /// `try_lock()` / `try_lock_for()` for every handle.
    #[inline]
    pub(crate) fn try_lock_with<G>(
        &self,
        block: Block,
        guard: impl FnOnce() -> G,
    ) -> Result<G, TryLockError<G>> {
        if self.acquire(block) {
            Ok(guard())
        } else {
            Err(TryLockError::WouldBlock)
        }
    }
}

/// A non-recursive lock shared between processes: Python's `multiprocessing.Lock`.
///
/// Once a thread or process holds it, every other acquirer waits until it is released; any
/// thread or process may release it. The lock is one 32-bit word in the region: acquiring and
/// releasing it uncontended is one atomic instruction each, with no system call; contended
/// acquirers spin briefly, then sleep on a shared futex until a release wakes them.
///
/// Get one with [`Region::lock`]. Handles are cheap to clone, `Send + Sync`, and keep the
/// region mapped. The guard-based methods ([`lock`](DataLock::lock),
/// [`try_lock`](DataLock::try_lock), [`try_lock_for`](DataLock::try_lock_for),
/// [`is_locked`](DataLock::is_locked)) are those of [`DataLock`], reached through `Deref`.
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
    guarded: DataLock,
}

impl Lock {
    /// Acquires the lock, Python style. With `block == false`, or a zero `timeout`, tries once.
    /// With `timeout == None`, waits as long as it takes. Otherwise waits until the timeout
    /// has passed on the monotonic clock (spurious wake-ups and signals do not extend it).
    /// Returns whether the lock was acquired; release it with [`release`](Lock::release).
    pub fn acquire(&self, block: bool, timeout: Option<Duration>) -> bool {
        self.guarded.raw.acquire(Block::from_python(block, timeout))
    }

    /// Releases the lock. Any thread or process may release it, as in Python.
    ///
    /// # Errors
    ///
    /// [`Error::NotLocked`] if the lock was not held (Python raises `ValueError`).
    pub fn release(&self) -> Result<()> {
        self.guarded.raw.release()
    }
}

impl std::ops::Deref for Lock {
    type Target = DataLock;

    /// A `Lock` is a [`DataLock`] that may also be acquired and released without a guard:
    /// `lock()`, `try_lock()`, `try_lock_for()` and `is_locked()` come from there.
    fn deref(&self) -> &DataLock {
        &self.guarded
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

    /// Acquires the lock, blocking as long as it takes.
    ///
    /// # Errors
    ///
    /// As [`Lock::lock`].
    pub fn lock(&self) -> Result<LockGuard<'_>, LockError<LockGuard<'_>>> {
        self.raw.lock_with(|| LockGuard { lock: &self.raw })
    }

    /// Tries once to acquire the lock.
    ///
    /// # Errors
    ///
    /// [`TryLockError::WouldBlock`] if it is held.
    pub fn try_lock(&self) -> Result<LockGuard<'_>, TryLockError<LockGuard<'_>>> {
        self.raw
            .try_lock_with(Block::Try, || LockGuard { lock: &self.raw })
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
        self.raw
            .try_lock_with(Block::after(timeout), || LockGuard { lock: &self.raw })
    }

    /// Whether someone holds the lock (a snapshot).
    pub fn is_locked(&self) -> bool {
        self.raw.is_locked()
    }
}

impl fmt::Debug for DataLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataLock")
            .field("locked", &self.is_locked())
            .finish()
    }
}

/// Holds a [`Lock`] or a [`DataLock`]; releases it when dropped.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard<'a> {
    lock: &'a RawLock,
}

impl LockGuard<'_> {
    /// Whether this guard holds the word at `word` (used to check guards handed to
    /// `Value::get_mut`).
    pub(crate) fn holds(&self, word: NonNull<AtomicU32>) -> bool {
        self.lock.word == word
    }
}

impl Drop for LockGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        // Only a plain `Lock` can be released by a non-holder; if that happened the word is
        // already free and there is nothing left for us to do.
        let _ = self.lock.release();
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
        let offset = self.object(name, &Spec::plain(Kind::Lock), RawLock::init)?;
        Ok(Lock {
            guarded: DataLock::new(RawLock::new(self.inner.clone(), offset)),
        })
    }
}
