//! [`Condition`]: Python's `multiprocessing.Condition`, with its own re-entrant lock.

use crate::error::{Error, Got, LockError, Result, TryLockError, not_owner};
use crate::lock::{Lock, LockGuard};
use crate::protocol::Word;
use crate::protocol::condvar::{Condvar, PlainLock};
use crate::region::layout::condition::{LOCK_NAME, ON_LOCK, RLOCK, SEQ, SHARED_KIND, SLEEPERS};
use crate::region::{Kind, Object, Region, Spec};
use crate::rlock::{Owner, RLock, RLockGuard};
use crate::sys::{self, FutexWord};
use std::fmt;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// A condition variable shared between processes, with its own [`RLock`] (Python's default
/// for `multiprocessing.Condition()`).
///
/// Take the lock ([`lock`](Condition::lock), [`acquire`](Condition::acquire)... : the methods
/// of its [`RLock`], which [`rlock`](Condition::rlock) also gives), check your predicate, and [`wait`](Condition::wait) while it
/// does not hold; whoever changes the state notifies with [`notify`](Condition::notify) or
/// [`notify_all`](Condition::notify_all) while holding the lock. `wait` releases the lock
/// entirely (however many times the thread entered it) and takes it back, at the same count,
/// before it returns.
///
/// A notifier never blocks on a sleeper, so a waiter killed in its sleep cannot hang it
/// (Python's `notify` can hang in that case). A waiter may also return without a notify (for
/// instance when a notify was meant for a waiter that had not fallen asleep yet): always wait
/// in a loop on the predicate, or use [`wait_for`](Condition::wait_for).
///
/// # Examples
///
/// ```
/// let region = shmsync::Region::anonymous(1 << 16)?;
/// let ready = region.condition("ready")?;
/// let items = region.value::<u32>("items", 0)?;
///
/// // Producer (any process):
/// {
///     let _g = ready.lock()?;
///     items.store(3)?;
///     ready.notify_all()?;
/// }
///
/// // Consumer (any process):
/// let _g = ready.lock()?;
/// let available = ready.wait_for(|| items.load().unwrap_or(0) > 0, None)?;
/// assert!(available);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Condition {
    lock: RLock,
    object: Object,
}

// A condition with its own lock is read as an RLock from its first word.
const _: () = assert!(RLOCK == 0);

impl Condition {
    fn condvar(&self) -> Condvar<'_, FutexWord> {
        Condvar {
            lock: self.lock.rmutex(),
            seq: self.object.word(SEQ),
            sleepers: self.object.word(SLEEPERS),
        }
    }

    /// The lock this condition uses.
    pub fn rlock(&self) -> &RLock {
        &self.lock
    }

    /// Acquires the condition's lock, Python style: [`RLock::acquire`].
    #[inline]
    pub fn acquire(&self, block: bool, timeout: Option<Duration>) -> bool {
        self.lock.acquire(block, timeout)
    }

    /// Releases the condition's lock once: [`RLock::release`].
    ///
    /// # Errors
    ///
    /// As [`RLock::release`].
    #[inline]
    pub fn release(&self) -> Result<()> {
        self.lock.release()
    }

    /// Acquires the condition's lock with a guard: [`RLock::lock`].
    ///
    /// # Errors
    ///
    /// As [`RLock::lock`].
    #[inline]
    pub fn lock(&self) -> Result<RLockGuard<'_>, LockError<RLockGuard<'_>>> {
        self.lock.lock()
    }

    /// Tries once to acquire the condition's lock: [`RLock::try_lock`].
    ///
    /// # Errors
    ///
    /// As [`RLock::try_lock`].
    pub fn try_lock(&self) -> Result<RLockGuard<'_>, TryLockError<RLockGuard<'_>>> {
        self.lock.try_lock()
    }

    /// Tries to acquire the condition's lock until `timeout`: [`RLock::try_lock_for`].
    ///
    /// # Errors
    ///
    /// As [`RLock::try_lock_for`].
    pub fn try_lock_for(
        &self,
        timeout: Duration,
    ) -> Result<RLockGuard<'_>, TryLockError<RLockGuard<'_>>> {
        self.lock.try_lock_for(timeout)
    }

    /// Declares the state behind a lock taken over from a dead owner repaired:
    /// [`RLock::mark_consistent`].
    ///
    /// # Errors
    ///
    /// As [`RLock::mark_consistent`].
    pub fn mark_consistent(&self) -> Result<()> {
        self.lock.mark_consistent()
    }

    /// Whether some thread owns the condition's lock: [`RLock::is_locked`].
    pub fn is_locked(&self) -> bool {
        self.lock.is_locked()
    }

    /// Whether the calling thread owns the condition's lock:
    /// [`RLock::is_owned_by_current_thread`].
    pub fn is_owned_by_current_thread(&self) -> bool {
        self.lock.is_owned_by_current_thread()
    }

    /// Who owns the condition's lock: [`RLock::owner`].
    pub fn owner(&self) -> Option<Owner> {
        self.lock.owner()
    }

    /// How many times the owner entered the condition's lock: [`RLock::count`].
    pub fn count(&self) -> u32 {
        self.lock.count()
    }

    /// Whether the condition's lock was taken over from a dead owner and not yet marked
    /// consistent: [`RLock::is_poisoned`].
    pub fn is_poisoned(&self) -> bool {
        self.lock.is_poisoned()
    }

    /// Whether the condition's lock can never be acquired again: [`RLock::is_unrecoverable`].
    pub fn is_unrecoverable(&self) -> bool {
        self.lock.is_unrecoverable()
    }

    /// Releases the lock, waits until notified or until `timeout` passes (`None`: no limit),
    /// and takes the lock back. Returns `false` if the timeout passed (Python's return value).
    ///
    /// # Errors
    ///
    /// [`Error::NotLocked`] / [`Error::NotOwner`] if the calling thread does not hold the lock
    /// (Python raises `RuntimeError`). [`Error::OwnerDied`] if, while we waited, a holder of the
    /// lock died and we took it over: the lock is held and poisoned (call
    /// [`mark_consistent`](Condition::mark_consistent) after repairing the state);
    /// [`Error::NotRecoverable`] if the lock became unusable meanwhile (it is not held then).
    pub fn wait(&self, timeout: Option<Duration>) -> Result<bool> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        self.wait_until(deadline)
    }

    fn wait_until(&self, deadline: Option<Instant>) -> Result<bool> {
        let region = self.lock.region();
        let (_, tid) = sys::ids();
        let token = region.token();
        let waited = self
            .condvar()
            .wait(tid, token, deadline, region)
            .map_err(not_owner)?;
        // The wait takes the lock back without a deadline: it cannot end `WouldBlock`.
        match Got::from(waited.relock) {
            Got::WouldBlock => Err(Error::NotRecoverable),
            got => got.into_result().map(|()| waited.notified),
        }
    }

    /// Waits until `predicate` returns `true`, or until `timeout` has passed (`None`: no
    /// limit); returns the predicate's last value (Python's `wait_for`). The predicate is
    /// called with the lock held, first before any wait.
    ///
    /// # Errors
    ///
    /// As [`wait`](Condition::wait).
    pub fn wait_for(
        &self,
        predicate: impl FnMut() -> bool,
        timeout: Option<Duration>,
    ) -> Result<bool> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        if !self.is_owned_by_current_thread() {
            // Python would call the predicate without the lock; refuse as `wait` would.
            return Err(if self.is_locked() {
                Error::NotOwner
            } else {
                Error::NotLocked
            });
        }
        wait_for_until(deadline, predicate, |deadline| self.wait_until(deadline))
    }

    /// Wakes up to `n` waiters (Python's `notify(n)`). Never blocks.
    ///
    /// # Errors
    ///
    /// [`Error::NotLocked`] / [`Error::NotOwner`] if the calling thread does not hold the lock.
    pub fn notify(&self, n: u32) -> Result<()> {
        let (_, tid) = sys::ids();
        let token = self.lock.region().token();
        self.condvar().notify(tid, token, n).map_err(not_owner)
    }

    /// Wakes one waiter.
    ///
    /// # Errors
    ///
    /// As [`notify`](Condition::notify).
    pub fn notify_one(&self) -> Result<()> {
        self.notify(1)
    }

    /// Wakes every waiter, in every process.
    ///
    /// # Errors
    ///
    /// As [`notify`](Condition::notify).
    pub fn notify_all(&self) -> Result<()> {
        self.notify(u32::MAX)
    }
}

/// The loop of `wait_for`, for both kinds of condition (the caller holds the lock): the
/// predicate, first before any wait, then after each `wait_until(deadline)`.
fn wait_for_until(
    deadline: Option<Instant>,
    mut predicate: impl FnMut() -> bool,
    mut wait_until: impl FnMut(Option<Instant>) -> Result<bool>,
) -> Result<bool> {
    loop {
        if predicate() {
            return Ok(true);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(false);
        }
        wait_until(deadline)?;
    }
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condition")
            .field("lock", &self.lock)
            .finish()
    }
}

impl Region {
    /// Finds or creates the [`Condition`] called `name` (with its own [`RLock`]).
    ///
    /// # Errors
    ///
    /// As [`Region::lock`].
    pub fn condition(&self, name: &str) -> Result<Condition> {
        let object = Object::open(self, name, &Spec::plain(Kind::Condition), |_| {})?;
        Ok(Condition {
            lock: RLock::new(object.clone()),
            object,
        })
    }

    /// Finds or creates the [`Condition`] called `name` that uses the [`RLock`] called `lock`
    /// (found or created too): Python's `Condition(lock)`. Several conditions can share one
    /// lock — the "not full" and "not empty" conditions of a bounded queue — and the lock is
    /// also an ordinary [`RLock`] that [`Region::rlock`] opens.
    ///
    /// # Examples
    ///
    /// ```
    /// let region = shmsync::Region::anonymous(1 << 16)?;
    /// let not_full = region.condition_on("not_full", "queue")?;
    /// let not_empty = region.condition_on("not_empty", "queue")?;
    /// let _g = not_full.lock()?; // the shared lock:
    /// assert!(not_empty.is_owned_by_current_thread());
    /// not_empty.notify(1)?; // allowed: we hold its lock
    /// # Ok::<(), shmsync::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Mismatch`] if `name` exists as another kind of object, or as a condition on
    /// another lock (or its own); [`Error::Mismatch`] too if `lock` exists and is not an
    /// [`RLock`]; otherwise as [`Region::lock`].
    pub fn condition_on(&self, name: &str, lock: &str) -> Result<Condition> {
        let rlock = self.rlock(lock)?;
        let spec = Spec::plain(Kind::Condition)
            .with_len(lock.len())
            .with_tail(lock.len());
        let object = Object::open(self, name, &spec, |fresh| {
            fresh.write_bytes(LOCK_NAME, lock.as_bytes());
        })?;
        // The entry records the name's length (the directory compared it); compare the name
        // and the kind of lock.
        if object.read_bytes(LOCK_NAME, lock.len()) != lock.as_bytes()
            || object.word(SHARED_KIND).load(Relaxed) != 0
        {
            return Err(Error::Mismatch {
                name: name.to_string(),
                existing: "Condition on another lock".to_string(),
                requested: format!("Condition on RLock {lock:?}"),
            });
        }
        Ok(Condition {
            lock: rlock,
            object,
        })
    }

    /// Finds or creates the [`LockCondition`] called `name` that uses the plain [`Lock`] called
    /// `lock` (found or created too): Python's `Condition(Lock())`. Several conditions can
    /// share the lock, which is also an ordinary [`Lock`] that [`Region::lock`] opens.
    ///
    /// # Examples
    ///
    /// ```
    /// let region = shmsync::Region::anonymous(1 << 16)?;
    /// let ready = region.condition_on_lock("ready", "state")?;
    /// let _g = ready.lock()?; // the Lock called "state"
    /// assert!(!ready.wait(Some(std::time::Duration::from_millis(1)))?); // nobody notifies
    /// ready.notify_all()?;
    /// # Ok::<(), shmsync::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Mismatch`] if `name` exists as another kind of object, or as a condition on
    /// another lock (or on an [`RLock`], or its own); [`Error::Mismatch`] too if `lock` exists
    /// and is not a [`Lock`]; otherwise as [`Region::lock`].
    pub fn condition_on_lock(&self, name: &str, lock: &str) -> Result<LockCondition> {
        let plain = self.lock(lock)?;
        let spec = Spec::plain(Kind::Condition)
            .with_len(lock.len())
            .with_tail(lock.len());
        let object = Object::open(self, name, &spec, |fresh| {
            fresh.word(SHARED_KIND).store(ON_LOCK, Relaxed);
            fresh.write_bytes(LOCK_NAME, lock.as_bytes());
        })?;
        if object.read_bytes(LOCK_NAME, lock.len()) != lock.as_bytes()
            || object.word(SHARED_KIND).load(Relaxed) != ON_LOCK
        {
            return Err(Error::Mismatch {
                name: name.to_string(),
                existing: "Condition on another lock".to_string(),
                requested: format!("Condition on Lock {lock:?}"),
            });
        }
        Ok(LockCondition {
            lock: plain,
            object,
        })
    }
}

/// A condition variable shared between processes over a plain [`Lock`]: Python's
/// `multiprocessing.Condition(Lock())`, from [`Region::condition_on_lock`].
///
/// As [`Condition`], except that the lock is not re-entrant and belongs to a process rather
/// than a thread: any thread of the process that holds the lock may [`wait`](LockCondition::wait)
/// or [`notify`](LockCondition::notify) (Python only asks that the lock be held). `wait`
/// releases the lock and takes it back before it returns. A notifier never blocks on a
/// sleeper; always wait in a loop on the predicate, or use
/// [`wait_for`](LockCondition::wait_for).
///
/// # Examples
///
/// ```
/// let region = shmsync::Region::anonymous(1 << 16)?;
/// let ready = region.condition_on_lock("ready", "jobs-lock")?;
/// let jobs = region.raw_value::<u32>("jobs", 0)?;
/// {
///     let _g = ready.lock()?; // producer
///     jobs.store(1);
///     ready.notify(1)?;
/// }
/// let _g = ready.lock()?; // consumer
/// assert!(ready.wait_for(|| jobs.load() > 0, None)?);
/// # Ok::<(), shmsync::Error>(())
/// ```
#[derive(Clone)]
pub struct LockCondition {
    lock: Lock,
    object: Object,
}

impl LockCondition {
    fn condvar(&self) -> Condvar<'_, FutexWord, PlainLock<'_, FutexWord>> {
        Condvar {
            lock: PlainLock(self.lock.raw().word()),
            seq: self.object.word(SEQ),
            sleepers: self.object.word(SLEEPERS),
        }
    }

    /// The lock this condition uses.
    pub fn as_lock(&self) -> &Lock {
        &self.lock
    }

    /// Takes the lock (as [`Lock::lock`]).
    ///
    /// # Errors
    ///
    /// As [`Lock::lock`].
    pub fn lock(&self) -> Result<LockGuard<'_>, LockError<LockGuard<'_>>> {
        self.lock.lock()
    }

    /// Takes the lock, Python style (as [`Lock::acquire`]).
    pub fn acquire(&self, block: bool, timeout: Option<Duration>) -> bool {
        self.lock.acquire(block, timeout)
    }

    /// Releases the lock (as [`Lock::release`]).
    ///
    /// # Errors
    ///
    /// As [`Lock::release`].
    pub fn release(&self) -> Result<()> {
        self.lock.release()
    }

    /// Releases the lock, waits until notified or until `timeout` has passed (`None`: no
    /// limit), and takes the lock back. Returns `false` if the timeout passed.
    ///
    /// # Errors
    ///
    /// [`Error::NotLocked`] / [`Error::NotOwner`] if this process does not hold the lock
    /// (Python raises `RuntimeError`). [`Error::OwnerDied`] if, while we waited, a holder of the
    /// lock died and we took it over: the lock is held and poisoned (call
    /// [`Lock::mark_consistent`] after repairing the state); [`Error::NotRecoverable`] if the
    /// lock became unusable meanwhile (it is not held then).
    pub fn wait(&self, timeout: Option<Duration>) -> Result<bool> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        self.wait_until(deadline)
    }

    fn wait_until(&self, deadline: Option<Instant>) -> Result<bool> {
        let region = self.object.region();
        let (_, tid) = sys::ids();
        let waited = self
            .condvar()
            .wait(tid, region.token(), deadline, region)
            .map_err(not_owner)?;
        match Got::from(waited.relock) {
            Got::WouldBlock => Err(Error::NotRecoverable),
            got => got.into_result().map(|()| waited.notified),
        }
    }

    /// Waits until `predicate` returns `true`, or until `timeout` has passed (`None`: no
    /// limit); returns the predicate's last value. The predicate is called with the lock held,
    /// first before any wait.
    ///
    /// # Errors
    ///
    /// As [`wait`](LockCondition::wait).
    pub fn wait_for(
        &self,
        predicate: impl FnMut() -> bool,
        timeout: Option<Duration>,
    ) -> Result<bool> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let region = self.object.region();
        let (_, tid) = sys::ids();
        use crate::protocol::condvar::CondLock;
        self.condvar()
            .lock
            .check_owner(tid, region.token())
            .map_err(not_owner)?;
        wait_for_until(deadline, predicate, |deadline| self.wait_until(deadline))
    }

    /// Wakes up to `n` waiters. Never blocks.
    ///
    /// # Errors
    ///
    /// [`Error::NotLocked`] / [`Error::NotOwner`] if this process does not hold the lock.
    pub fn notify(&self, n: u32) -> Result<()> {
        let (_, tid) = sys::ids();
        let token = self.object.region().token();
        self.condvar().notify(tid, token, n).map_err(not_owner)
    }

    /// Wakes one waiter.
    ///
    /// # Errors
    ///
    /// As [`notify`](LockCondition::notify).
    pub fn notify_one(&self) -> Result<()> {
        self.notify(1)
    }

    /// Wakes every waiter, in every process.
    ///
    /// # Errors
    ///
    /// As [`notify`](LockCondition::notify).
    pub fn notify_all(&self) -> Result<()> {
        self.notify(u32::MAX)
    }
}

impl fmt::Debug for LockCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockCondition")
            .field("lock", &self.lock)
            .finish()
    }
}

/// A `LockCondition` travels to a spawned child by region and name, with its lock's name.
impl crate::Transfer for LockCondition {
    fn encode(&self, out: &mut crate::Encoder) -> Result<()> {
        out.object(&self.object)?;
        crate::Transfer::encode(&self.lock.raw().object().name().to_string(), out)
    }
    fn decode(input: &mut crate::Decoder) -> Result<Self> {
        let (region, name) = input.object()?;
        let lock = <String as crate::Transfer>::decode(input)?;
        region.condition_on_lock(&name, &lock)
    }
}

/// A `Condition` travels to a spawned child by region and name, with the name of its shared
/// lock if it has one.
impl crate::Transfer for Condition {
    fn encode(&self, out: &mut crate::Encoder) -> Result<()> {
        out.object(&self.object)?;
        let shared = self.lock.object();
        let lock = (!shared.same(&self.object)).then(|| shared.name().to_string());
        crate::Transfer::encode(&lock, out)
    }
    fn decode(input: &mut crate::Decoder) -> Result<Self> {
        let (region, name) = input.object()?;
        match <Option<String> as crate::Transfer>::decode(input)? {
            None => region.condition(&name),
            Some(lock) => region.condition_on(&name, &lock),
        }
    }
}
