//! [`RLock`]: Python's `multiprocessing.RLock`, re-entrant for the owning thread.

use crate::error::{Error, Got, LockError, Result, TryLockError, not_owner};
use crate::protocol::mutex;
use crate::protocol::rmutex::RMutex;
use crate::protocol::{Block, Word};
use crate::region::layout::rlock::{COUNT, LOCK, OWNER_TID, OWNER_TOKEN};
use crate::region::{Hold, Inner, Kind, Object, Region, Spec};
use crate::sys::{self, FutexWord};
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

/// A re-entrant lock shared between processes: Python's `multiprocessing.RLock`.
///
/// The thread that holds it may acquire it again without blocking; it must release it as many
/// times as it acquired it, and only it may release it. The owner's identity (process and
/// thread id) and the recursion count live in the region, so [`owner`](RLock::owner) and
/// [`is_locked`](RLock::is_locked) answer correctly from any process.
///
/// # Examples
///
/// ```
/// let region = shmsync::Region::anonymous(1 << 16)?;
/// let rlock = region.rlock("tree")?;
/// let outer = rlock.lock()?;
/// let inner = rlock.lock()?; // same thread: no deadlock
/// assert_eq!(rlock.count(), 2);
/// assert_eq!(rlock.owner().unwrap().pid, std::process::id());
/// drop(inner);
/// drop(outer);
/// assert!(!rlock.is_locked());
/// assert!(rlock.release().is_err()); // nobody owns it
/// # Ok::<(), shmsync::Error>(())
/// ```
#[derive(Clone)]
pub struct RLock {
    /// An object whose first words are an RLock's (an RLock, or a condition with its own
    /// lock).
    object: Object,
}

/// Who holds an [`RLock`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    /// The owner's process id.
    pub pid: u32,
    /// The owner's thread id (as `gettid()` returns).
    pub tid: u32,
}

impl RLock {
    /// The RLock whose words start `object` (an RLock, or a
    /// [`Condition`](crate::Condition) with its own lock: see
    /// [`layout::condition::RLOCK`](crate::region::layout::condition::RLOCK)).
    pub(crate) fn new(object: Object) -> RLock {
        RLock { object }
    }

    /// The object whose first words are the lock's.
    pub(crate) fn object(&self) -> &Object {
        &self.object
    }

    /// The protocol view of the lock (for a [`Condition`](crate::Condition)).
    pub(crate) fn rmutex(&self) -> RMutex<'_, FutexWord> {
        self.words()
    }

    #[inline]
    pub(crate) fn region(&self) -> &Inner {
        self.object.region()
    }

    #[inline]
    fn at(&self, offset: usize) -> &FutexWord {
        self.object.word(offset)
    }

    #[cfg(test)]
    pub(crate) fn count_word(&self) -> &FutexWord {
        self.at(COUNT)
    }

    #[inline]
    fn words(&self) -> RMutex<'_, FutexWord> {
        RMutex {
            lock: self.at(LOCK),
            owner: self.at(OWNER_TID),
            count: self.at(COUNT),
            owner_token: self.at(OWNER_TOKEN),
        }
    }

    /// Enters as the calling thread; returns the outcome and the hold (token and fork
    /// generation) it was taken with.
    #[inline]
    fn enter(&self, block: Block) -> (Got, Hold) {
        let (_, tid) = sys::ids();
        let region = self.region();
        let hold = region.hold();
        let token = hold.token;
        match self.words().acquire(tid, token, block, region) {
            Ok(outcome) => (outcome.into(), hold),
            // The count cannot go past u32::MAX (in practice only a count word damaged by
            // another process gets there): the lock cannot be entered again, which a bounded
            // acquire reports as busy and an unbounded one as unrecoverable (never a panic, and
            // never a wait that cannot end).
            Err(_) if block == Block::Forever => (Got::NotRecoverable, hold),
            Err(_) => (Got::WouldBlock, hold),
        }
    }

    /// Leaves once as the calling thread of the process with `token`.
    #[inline]
    fn exit(&self, token: u32) -> Result<()> {
        let (_, tid) = sys::ids();
        self.words().release(tid, token).map_err(not_owner)
    }

    /// Acquires the lock, Python style (see [`Lock::acquire`](crate::Lock::acquire) for
    /// `block` and `timeout`). Returns at once with `true` if this thread already owns it.
    ///
    /// Returns `false` if this thread already holds the lock `u32::MAX` times.
    ///
    /// A lock taken over from a dead owner returns `true` and stays poisoned until
    /// [`mark_consistent`](RLock::mark_consistent); an unrecoverable lock returns `false`.
    #[inline]
    pub fn acquire(&self, block: bool, timeout: Option<Duration>) -> bool {
        self.enter(Block::from_python(block, timeout)).0.acquired()
    }

    /// Releases the lock once; the last release by the owner frees it.
    ///
    /// # Errors
    ///
    /// [`Error::NotOwner`] if another thread owns it, [`Error::NotLocked`] if nobody does
    /// (Python raises `RuntimeError` / `AssertionError`).
    #[inline]
    pub fn release(&self) -> Result<()> {
        self.exit(self.region().token())
    }

    /// Declares the state protected by an RLock taken over from a dead owner repaired (for
    /// callers of [`acquire`](RLock::acquire); guard holders use
    /// [`RLockGuard::mark_consistent`]).
    ///
    /// # Errors
    ///
    /// [`Error::NotOwner`] / [`Error::NotLocked`] unless the calling thread owns the lock.
    pub fn mark_consistent(&self) -> Result<()> {
        if !self.is_owned_by_current_thread() {
            return Err(if self.is_locked() {
                Error::NotOwner
            } else {
                Error::NotLocked
            });
        }
        mutex::mark_consistent(self.at(LOCK));
        Ok(())
    }

    /// Acquires the lock, blocking as long as it takes; the guard releases it once when
    /// dropped.
    ///
    /// # Errors
    ///
    /// [`LockError::OwnerDied`] if the previous owner died holding the lock (see there);
    /// [`LockError::NotRecoverable`] if such a lock was released without being marked
    /// consistent.
    /// [`LockError::NotRecoverable`] also if this thread already holds the lock `u32::MAX`
    /// times.
    #[inline]
    pub fn lock(&self) -> Result<RLockGuard<'_>, LockError<RLockGuard<'_>>> {
        let (got, hold) = self.enter(Block::Forever);
        got.blocking(|| RLockGuard::new(self, hold))
    }

    /// Tries once to acquire the lock.
    ///
    /// # Errors
    ///
    /// [`TryLockError::WouldBlock`] if another thread owns it.
    #[inline]
    pub fn try_lock(&self) -> Result<RLockGuard<'_>, TryLockError<RLockGuard<'_>>> {
        self.try_with(Block::Try)
    }

    /// Tries to acquire the lock until `timeout` has passed.
    ///
    /// # Errors
    ///
    /// [`TryLockError::WouldBlock`] if another thread owned it until the deadline.
    pub fn try_lock_for(
        &self,
        timeout: Duration,
    ) -> Result<RLockGuard<'_>, TryLockError<RLockGuard<'_>>> {
        self.try_with(Block::after(timeout))
    }

    fn try_with(&self, block: Block) -> Result<RLockGuard<'_>, TryLockError<RLockGuard<'_>>> {
        let (got, hold) = self.enter(block);
        got.trying(|| RLockGuard::new(self, hold))
    }

    /// Whether some thread owns the lock (a snapshot, right from any process).
    pub fn is_locked(&self) -> bool {
        mutex::is_locked(self.at(LOCK).load(Relaxed))
    }

    /// Whether the lock was taken over from an owner that died and not yet marked consistent.
    pub fn is_poisoned(&self) -> bool {
        mutex::is_poisoned(self.at(LOCK).load(Relaxed))
    }

    /// Whether the lock can never be acquired again (see [`LockError::NotRecoverable`]).
    pub fn is_unrecoverable(&self) -> bool {
        mutex::is_not_recoverable(self.at(LOCK).load(Relaxed))
    }

    /// The owning process and thread, if any (a consistent snapshot, right from any process).
    ///
    /// The process comes from the token in the lock word (through the region's process table),
    /// the thread from the owner word; the lock word is read before and after the owner word,
    /// so the two always belong to one hold. `None` also when the owner's process cannot be
    /// named (it did not register, or it died and its slot was reused).
    pub fn owner(&self) -> Option<Owner> {
        // Bounded: an owner that died between taking the lock word and writing its thread id
        // leaves a hold with no thread; after this many looks it is reported as no owner.
        for _ in 0..1000 {
            let before = mutex::holder(self.at(LOCK).load(Relaxed));
            if before == 0 {
                return None;
            }
            let tid = self.at(OWNER_TID).load(Relaxed);
            let after = mutex::holder(self.at(LOCK).load(Relaxed));
            if before == after && tid != 0 {
                let pid = self.region().pid_of(before)?;
                return Some(Owner { pid, tid });
            }
            if after == 0 {
                return None;
            }
            // The lock changed hands (or is being entered) while we looked: look again.
            std::hint::spin_loop();
        }
        None
    }

    /// Whether the calling thread owns the lock.
    pub fn is_owned_by_current_thread(&self) -> bool {
        self.words().owner() == Some(sys::ids().1)
            && self.region().current_token() == Some(mutex::holder(self.at(LOCK).load(Relaxed)))
    }

    /// How many times the owner has acquired the lock (0 when unowned; a snapshot).
    pub fn count(&self) -> u32 {
        self.words().count()
    }
}

impl fmt::Debug for RLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RLock")
            .field("owner", &self.owner())
            .field("count", &self.count())
            .finish()
    }
}

/// Holds one level of an [`RLock`]; releases it when dropped. Not `Send`: the lock belongs to
/// the thread that took it.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct RLockGuard<'a> {
    lock: &'a RLock,
    hold: Hold,
    _not_send: PhantomData<*const ()>,
}

impl<'a> RLockGuard<'a> {
    fn new(lock: &'a RLock, hold: Hold) -> Self {
        RLockGuard {
            lock,
            hold,
            _not_send: PhantomData,
        }
    }

    /// Declares the state protected by an RLock taken over from a dead owner repaired (see
    /// [`LockError::OwnerDied`]); without it, the last release makes the lock unrecoverable.
    pub fn mark_consistent(&self) {
        mutex::mark_consistent(self.lock.at(LOCK));
    }
}

// SAFETY: a shared guard gives access to nothing but `&RLock`, which is `Sync`.
unsafe impl Sync for RLockGuard<'_> {}

impl Drop for RLockGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        // In a child forked while the guard was held, the hold is not ours: the
        // parent's hold is not the child's to release.
        if self.hold.is_ours() {
            let _ = self.lock.exit(self.hold.token);
        }
    }
}

impl fmt::Debug for RLockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RLockGuard")
    }
}

impl Region {
    /// Finds or creates the [`RLock`] called `name` (created unowned).
    ///
    /// # Errors
    ///
    /// As [`Region::lock`].
    pub fn rlock(&self, name: &str) -> Result<RLock> {
        let object = Object::open(self, name, &Spec::plain(Kind::RLock), |_| {})?;
        Ok(RLock::new(object))
    }
}

/// An `RLock` travels to a spawned child by region and name (its owner does not: the child is
/// another process).
impl crate::Transfer for RLock {
    fn encode(&self, out: &mut crate::Encoder) -> Result<()> {
        out.object(&self.object)
    }
    fn decode(input: &mut crate::Decoder) -> Result<Self> {
        let (region, name) = input.object()?;
        region.rlock(&name)
    }
}
