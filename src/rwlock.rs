//! [`RwLock`]: a reader-writer lock over a `Pod` value in a region.

use crate::error::{Got, LockError, Result, TryLockError};
use crate::protocol::rwlock::{self as proto, BROKEN, Indicator, Indicators, Outcome, POISONED};
use crate::protocol::{Block, Word};
use crate::region::layout::readers_for;
use crate::region::layout::rwlock::{ANONYMOUS, CLAIMED, FLAGS, STATE};
use crate::region::{Hold, Kind, Object, Region, Spec};
use crate::sys::{self, FutexWord};
use bytemuck::Pod;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// A reader-writer lock shared between processes, over a `Pod` value `T` in the region (the
/// process-shared `pthread_rwlock_t`, or Boost.Interprocess's `interprocess_sharable_mutex`).
///
/// Any number of readers ([`read`](RwLock::read)) or one writer ([`write`](RwLock::write)) at
/// a time. Writers are not starved: once a writer waits, new readers wait behind it. (So a
/// thread that takes a second read lock while a writer waits deadlocks, as with std's
/// `RwLock`.)
///
/// # Dying processes
///
/// - A writer that dies holding the lock: a waiter notices within
///   [`DEATH_CHECK_INTERVAL`](crate::DEATH_CHECK_INTERVAL) and frees the lock, which becomes
///   *poisoned*: every acquire then returns [`LockError::OwnerDied`] with the guard inside,
///   until a writer repairs the value and calls [`RwLockWriteGuard::mark_consistent`].
/// - A reader that dies holding a read lock, or anywhere in taking or dropping one: each
///   process that reads the lock counts its read locks in a *reader indicator* of its own (up
///   to 32 per lock, claimed on first use), and that count is the only record, so it is always
///   exact; a writer that waits on a dead process's indicator clears it (within
///   [`DEATH_CHECK_INTERVAL`](crate::DEATH_CHECK_INTERVAL)), and so does a process that finds
///   every indicator taken. A process that has no indicator (it could not register in the
///   region, or 32 other live processes hold them all) reads through a shared count nobody can
///   attribute: its read locks are lost if it dies (a writer then waits until
///   [`repair`](RwLock::repair)).
/// - Shared words that lie (a damaged file, a misbehaving process) can never make this
///   process hold a write guard and a read guard of the lock at once: each process also
///   counts its own guards in private memory, and refuses (marking the lock broken) when the
///   shared words would let a writer in beside its readers or a reader beside its writer.
/// - Words found in a state the protocol never writes (another process scribbled on them):
///   the lock is marked broken and every acquire fails with [`LockError::NotRecoverable`] /
///   [`TryLockError::NotRecoverable`] ([`is_broken`](RwLock::is_broken) says so) until
///   [`repair`](RwLock::repair). A death alone never breaks it.
///
/// # Examples
///
/// ```
/// let region = shmsync::Region::anonymous(1 << 16)?;
/// let config = region.rwlock::<[u32; 4]>("config", [1, 2, 3, 4])?;
/// {
///     let a = config.read()?;
///     let b = config.read()?; // readers share
///     assert_eq!(a[0] + b[3], 5);
/// }
/// config.write()?[0] = 10;
/// assert_eq!(config.read()?[0], 10);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RwLock<T> {
    object: Object,
    /// The guards this process holds on the lock (see [`LocalHolds`]).
    local: Arc<LocalHolds>,
    data: usize,
    _type: PhantomData<T>,
}

impl<T> Clone for RwLock<T> {
    fn clone(&self) -> Self {
        RwLock {
            object: self.object.clone(),
            local: self.local.clone(),
            data: self.data,
            _type: PhantomData,
        }
    }
}

/// The lock's reader indicators, in the object's table.
struct Table<'a>(&'a Object);

impl Indicators for Table<'_> {
    type Word = FutexWord;
    #[inline]
    fn len(&self) -> u32 {
        self.0.entries() as u32
    }
    #[inline]
    fn get(&self, i: u32) -> Indicator<'_, FutexWord> {
        Indicator {
            owner: self.0.table_word(i as usize, 0),
            count: self.0.table_word(i as usize, 4),
        }
    }
}

/// In a guard or [`LocalHolds::indicator`]: the read lock is counted in the anonymous word.
const ANONYMOUS_READER: u32 = u32::MAX;

/// What this process knows of one lock in its own memory.
///
/// `0`: whether this process holds the write guard, as `fork generation << 32 | 1` (a forked
/// child, whose copy of the parent's guard is not its own, starts from nothing). A reader
/// checks it after the shared words let it in, so that words another process overwrote (the
/// writer word cleared under this process's writer) can never hand this process a read guard
/// beside its own write guard: safe code never holds `&T` and `&mut T` of one value at once.
/// The reverse (a writer let in beside this process's readers) needs this process's own
/// indicator count lowered, which no death and no damage present when the lock was opened can
/// do: only a process that keeps writing into the region can (see the README). The reader's
/// check is a plain load, the writer's update two plain stores: no read-modify-write on the
/// fast paths.
///
/// `1` caches this process's reader indicator: `token << 32 | index` (0: not looked up yet;
/// index [`ANONYMOUS_READER`]: none could be claimed, read through the anonymous count).
///
/// `2`: when this process's writers may next sweep dead processes' indicators (milliseconds
/// since [`sweep_clock`]; see [`SWEEP_INTERVAL`]); `3` counts writes, so that the clock is read
/// only every [`SWEEP_CHECK`] writes (reading it costs more than a write guard).
#[derive(Debug, Default)]
pub(crate) struct LocalHolds(AtomicU64, AtomicU64, AtomicU64, AtomicU64);

/// Every how many writes a process looks at the clock for a sweep.
const SWEEP_CHECK: u64 = 256;

/// How often this process's writers clear dead processes' reader indicators. A writer looks at
/// every claimed indicator, and an indicator stays claimed after its process exits until
/// someone clears it: without a sweep, a lock read by many short-lived processes keeps every
/// writer scanning 32 indicators. A sweep asks the kernel about each claimed indicator's owner
/// (a system call for each live one), hence once a second, not on every write.
const SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Milliseconds on the monotonic clock since this process first asked.
fn sweep_clock() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u64
}

impl LocalHolds {
    /// This fork generation's "writer held" value.
    #[inline]
    fn held() -> u64 {
        (u64::from(sys::fork_generation()) << 32) | 1
    }

    /// Whether this process holds the write guard.
    #[inline]
    pub(crate) fn writer_held(&self) -> bool {
        self.0.load(Relaxed) == Self::held()
    }

    /// Records the write guard; `false` (nothing recorded) if this process holds it already.
    /// Only the thread that holds the writer word calls it, so a plain store will do.
    #[inline]
    pub(crate) fn set_writer(&self) -> bool {
        if self.writer_held() {
            return false;
        }
        self.0.store(Self::held(), Relaxed);
        true
    }

    /// Forgets the write guard (before the writer word is released, whose Release store
    /// publishes this one to the next reader of this process).
    #[inline]
    pub(crate) fn clear_writer(&self) {
        self.0.store(0, Relaxed);
    }

    /// The cached indicator of the process with `token`, if looked up.
    #[inline]
    fn indicator(&self, token: u32) -> Option<u32> {
        let cached = self.1.load(Relaxed);
        (cached >> 32 == u64::from(token)).then_some(cached as u32)
    }

    /// Whether a writer of this process should sweep now (and if so, the next sweep is put
    /// off by [`SWEEP_INTERVAL`]).
    #[inline]
    fn sweep_due(&self) -> bool {
        // A plain load and store, not a read-modify-write: two threads that count one write
        // once only delay a sweep.
        let writes = self.3.load(Relaxed);
        self.3.store(writes.wrapping_add(1), Relaxed);
        if writes % SWEEP_CHECK != 0 {
            return false;
        }
        self.sweep_due_now()
    }

    #[cold]
    fn sweep_due_now(&self) -> bool {
        let now = sweep_clock();
        let next = self.2.load(Relaxed);
        now >= next
            && self
                .2
                .compare_exchange(
                    next,
                    now + SWEEP_INTERVAL.as_millis() as u64,
                    Relaxed,
                    Relaxed,
                )
                .is_ok()
    }

    /// Caches the indicator of `token`.
    fn set_indicator(&self, token: u32, index: u32) {
        self.1
            .store((u64::from(token) << 32) | u64::from(index), Relaxed);
    }
}

impl<T: Pod> RwLock<T> {
    #[inline]
    fn proto(&self) -> proto::RwLock<'_, FutexWord> {
        proto::RwLock {
            state: self.object.word(STATE),
            flags: self.object.word(FLAGS),
            claimed: self.object.word(CLAIMED),
            anonymous: self.object.word(ANONYMOUS),
        }
    }

    /// This process's reader indicator (claimed on first use), or [`ANONYMOUS_READER`].
    #[inline]
    fn reader_of(&self, hold: Hold) -> u32 {
        match self.local.indicator(hold.token) {
            Some(index) => index,
            None => self.claim(hold),
        }
    }

    #[cold]
    fn claim(&self, hold: Hold) -> u32 {
        let region = self.object.region();
        let index = match region.slot_of(hold.token) {
            Some(_) => self
                .proto()
                .claim(&Table(&self.object), hold.token, region)
                .unwrap_or(ANONYMOUS_READER),
            // Unregistered: nobody could tell whether we live.
            None => ANONYMOUS_READER,
        };
        self.local.set_indicator(hold.token, index);
        index
    }

    /// The count word a read lock of `reader` is counted in.
    #[inline]
    fn count(&self, reader: u32) -> &FutexWord {
        if reader == ANONYMOUS_READER {
            self.object.word(ANONYMOUS)
        } else {
            self.object.table_word(reader as usize, 4)
        }
    }

    #[inline]
    fn read_with(&self, block: Block) -> (Outcome, Hold, u32) {
        let region = self.object.region();
        let hold = region.hold();
        let reader = self.reader_of(hold);
        let outcome = match self.proto().read(self.count(reader), block, region) {
            Outcome::Acquired | Outcome::Poisoned if self.local.writer_held() => {
                // This process holds the write guard, yet the shared words let a reader in:
                // they lie (a damaged file, or another process). Refuse rather than hand out
                // `&T` beside our `&mut T`.
                self.unlock_read(reader);
                self.proto().break_it();
                Outcome::Broken
            }
            other => other,
        };
        (outcome, hold, reader)
    }

    /// Gives back a read lock counted by `reader`.
    #[inline]
    fn unlock_read(&self, reader: u32) {
        if self.proto().read_unlock(self.count(reader)).is_err() {
            // Our count says we hold none: the words lie.
            self.proto().break_it();
        }
    }

    #[inline]
    fn write_with(&self, block: Block) -> (Outcome, Hold) {
        let region = self.object.region();
        let hold = region.hold();
        let table = Table(&self.object);
        if self.local.sweep_due() && region.slot_of(hold.token).is_some() {
            // Before taking the lock, so that its system calls delay nobody waiting for it.
            self.proto().sweep(&table, hold.token, region);
        }
        let outcome = match self.proto().write(hold.token, &table, block, region) {
            Outcome::Acquired | Outcome::Poisoned if !self.local.set_writer() => {
                // This process holds the write guard already, yet the shared words let a
                // second writer in: they lie. Refuse (see `read_with`); the lock stays ours,
                // broken.

                self.proto().break_it();
                Outcome::Broken
            }
            other => other,
        };
        (outcome, hold)
    }

    /// Takes a read lock, waiting as long as it takes.
    ///
    /// # Errors
    ///
    /// [`LockError::OwnerDied`] (with the guard) while the lock is poisoned by a dead writer;
    /// [`LockError::NotRecoverable`] if the lock is broken (or this process holds about a
    /// million read locks of it).
    #[inline]
    pub fn read(&self) -> Result<RwLockReadGuard<'_, T>, LockError<RwLockReadGuard<'_, T>>> {
        let (outcome, hold, reader) = self.read_with(Block::Forever);
        Got::from(outcome).blocking(|| RwLockReadGuard {
            lock: self,
            hold,
            reader,
        })
    }

    /// Takes a read lock if no writer holds or waits for it now.
    ///
    /// # Errors
    ///
    /// [`TryLockError::WouldBlock`] if it cannot be had now; otherwise as
    /// [`read`](RwLock::read).
    #[inline]
    pub fn try_read(&self) -> Result<RwLockReadGuard<'_, T>, TryLockError<RwLockReadGuard<'_, T>>> {
        self.try_read_with(Block::Try)
    }

    /// Takes a read lock, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// As [`try_read`](RwLock::try_read).
    pub fn try_read_for(
        &self,
        timeout: Duration,
    ) -> Result<RwLockReadGuard<'_, T>, TryLockError<RwLockReadGuard<'_, T>>> {
        self.try_read_with(Block::after(timeout))
    }

    #[inline]
    fn try_read_with(
        &self,
        block: Block,
    ) -> Result<RwLockReadGuard<'_, T>, TryLockError<RwLockReadGuard<'_, T>>> {
        let (outcome, hold, reader) = self.read_with(block);
        Got::from(outcome).trying(|| RwLockReadGuard {
            lock: self,
            hold,
            reader,
        })
    }

    /// Takes the write lock, waiting as long as it takes.
    ///
    /// # Errors
    ///
    /// [`LockError::OwnerDied`] (with the guard: repair the value, then
    /// [`mark_consistent`](RwLockWriteGuard::mark_consistent)) while the lock is poisoned by a
    /// dead writer; [`LockError::NotRecoverable`] if the lock is broken.
    #[inline]
    pub fn write(&self) -> Result<RwLockWriteGuard<'_, T>, LockError<RwLockWriteGuard<'_, T>>> {
        let (outcome, hold) = self.write_with(Block::Forever);
        Got::from(outcome).blocking(|| RwLockWriteGuard { lock: self, hold })
    }

    /// Takes the write lock if nobody holds the lock now.
    ///
    /// # Errors
    ///
    /// [`TryLockError::WouldBlock`] if someone does; otherwise as [`write`](RwLock::write).
    #[inline]
    pub fn try_write(
        &self,
    ) -> Result<RwLockWriteGuard<'_, T>, TryLockError<RwLockWriteGuard<'_, T>>> {
        self.try_write_with(Block::Try)
    }

    /// Takes the write lock, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// As [`try_write`](RwLock::try_write).
    pub fn try_write_for(
        &self,
        timeout: Duration,
    ) -> Result<RwLockWriteGuard<'_, T>, TryLockError<RwLockWriteGuard<'_, T>>> {
        self.try_write_with(Block::after(timeout))
    }

    #[inline]
    fn try_write_with(
        &self,
        block: Block,
    ) -> Result<RwLockWriteGuard<'_, T>, TryLockError<RwLockWriteGuard<'_, T>>> {
        let (outcome, hold) = self.write_with(block);
        Got::from(outcome).trying(|| RwLockWriteGuard { lock: self, hold })
    }

    /// Whether a writer died holding the lock and nobody marked it consistent since.
    pub fn is_poisoned(&self) -> bool {
        self.object.word(FLAGS).load(Relaxed) & POISONED != 0
    }

    /// Whether the lock is broken (see the type's docs).
    pub fn is_broken(&self) -> bool {
        self.object.word(FLAGS).load(Relaxed) & BROKEN != 0
    }

    /// Read locks held now (a snapshot: every process's indicator, and the anonymous count).
    pub fn readers(&self) -> u32 {
        self.proto().readers(&Table(&self.object))
    }

    /// Makes the lock usable again after damage, for a caller who knows that no process
    /// without a reader indicator holds a read lock now: forgets the read locks counted
    /// anonymously (those of a dead process that could not register, or found all 32
    /// indicators taken), clears dead processes' indicators, and clears the broken mark.
    /// Live processes' read locks stay counted, and a poison stays until a writer marks the
    /// value consistent. Sleepers are woken to look again.
    ///
    /// # Examples
    ///
    /// ```
    /// let region = shmsync::Region::anonymous(1 << 16)?;
    /// let config = region.rwlock::<u32>("config", 0)?;
    /// config.repair();
    /// assert!(!config.is_broken());
    /// *config.write()? = 1;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn repair(&self) {
        let region = self.object.region();
        self.proto()
            .repair(&Table(&self.object), region.registered_token(), region);
    }

    /// Whether a writer holds the lock now (a snapshot).
    pub fn is_write_locked(&self) -> bool {
        proto::is_write_locked(self.object.word(STATE).load(Relaxed))
    }

    #[inline]
    fn data(&self) -> *mut T {
        self.object.ptr(self.data).cast()
    }
}

impl<T: Pod> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RwLock")
            .field("readers", &self.readers())
            .field("write_locked", &self.is_write_locked())
            .field("poisoned", &self.is_poisoned())
            .field("broken", &self.is_broken())
            .finish()
    }
}

// SAFETY: the value is only reached through guards: shared reads under read locks, exclusive
// access under the write lock, from any thread; `T: Pod` has no thread affinity.
unsafe impl<T: Pod + Send> Send for RwLock<T> {}
// SAFETY: as above.
unsafe impl<T: Pod + Send + Sync> Sync for RwLock<T> {}

/// A read lock on an [`RwLock`]; released when dropped (or when its process dies).
#[must_use = "the read lock is released as soon as the guard is dropped"]
pub struct RwLockReadGuard<'a, T: Pod> {
    lock: &'a RwLock<T>,
    hold: Hold,
    /// The indicator the read lock is counted in (or [`ANONYMOUS_READER`]).
    reader: u32,
}

impl<T: Pod> Deref for RwLockReadGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: we hold a read lock, so no writer that honours the lock changes the value;
        // it is aligned and inside the object (the directory reserved it for `T`).
        unsafe { &*self.lock.data() }
    }
}

impl<T: Pod> Drop for RwLockReadGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        if !self.hold.is_ours() {
            return; // a forked child's copy: the read lock is the parent's
        }
        self.lock.unlock_read(self.reader);
    }
}

/// The write lock on an [`RwLock`]; released when dropped.
#[must_use = "the write lock is released as soon as the guard is dropped"]
pub struct RwLockWriteGuard<'a, T: Pod> {
    lock: &'a RwLock<T>,
    hold: Hold,
}

impl<T: Pod> RwLockWriteGuard<'_, T> {
    /// Declares the value repaired after a writer died holding the lock (see
    /// [`LockError::OwnerDied`]): later acquires succeed normally again.
    pub fn mark_consistent(&self) {
        self.lock.proto().mark_consistent();
    }
}

impl<T: Pod> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: we hold the write lock: nobody that honours the lock touches the value.
        unsafe { &*self.lock.data() }
    }
}

impl<T: Pod> DerefMut for RwLockWriteGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; the exclusive borrow of the guard makes this the only access.
        unsafe { &mut *self.lock.data() }
    }
}

impl<T: Pod> Drop for RwLockWriteGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        if self.hold.is_ours() {
            self.lock.local.clear_writer();
            let _ = self.lock.proto().write_unlock(self.hold.token);
        }
    }
}

impl<T: Pod> fmt::Debug for RwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RwLockReadGuard")
    }
}

impl<T: Pod> fmt::Debug for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RwLockWriteGuard")
    }
}

impl Region {
    /// Finds or creates the [`RwLock`] called `name` over a `T`, created holding `init` (an
    /// existing one keeps its value).
    ///
    /// The object takes 16 bytes, the value, and 128 bytes per reader indicator: one per
    /// process slot of the region, at most 32 (4 KiB; see
    /// [`RegionOptions::max_processes`](crate::RegionOptions::max_processes)).
    ///
    /// # Errors
    ///
    /// [`Error::Mismatch`](crate::Error::Mismatch) if `name` holds another kind of object or
    /// another type; otherwise as [`Region::lock`].
    pub fn rwlock<T: Pod>(&self, name: &str, init: T) -> Result<RwLock<T>> {
        let spec =
            Spec::of::<T>(Kind::RwLock, 1).with_readers(readers_for(self.inner.process_slots()));
        let data = spec.data_offset();
        let object = Object::open(self, name, &spec, |fresh| {
            fresh.write_bytes(data, bytemuck::bytes_of(&init));
        })?;
        Ok(RwLock {
            local: self.inner.local::<LocalHolds>(object.offset()),
            object,
            data,
            _type: PhantomData,
        })
    }
}

/// An `RwLock` travels to a spawned child by region and name (its guards do not).
impl<T: Pod> crate::Transfer for RwLock<T> {
    fn encode(&self, out: &mut crate::Encoder) -> Result<()> {
        out.object(&self.object)
    }
    fn decode(input: &mut crate::Decoder) -> Result<Self> {
        let (region, name) = input.object()?;
        region.rwlock(&name, T::zeroed())
    }
}
