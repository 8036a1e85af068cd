//! [`Semaphore`] and [`BoundedSemaphore`]: Python's `multiprocessing` semaphores, as a 64-bit
//! state word (the count and an in-flight tag) and a futex word to sleep on in a region, with
//! RAII [`Permit`]s that come back exactly when their process dies, wherever it was killed.

use crate::error::{Error, Result};
use crate::protocol::Block;
use crate::protocol::Word;
use crate::protocol::semaphore::{
    self as proto, Acquired, Entries, Entry, MAX_VALUE, ReleaseError,
};
use crate::region::layout::semaphore::{BOUND, OWNER, RECORD, SLEEPERS, STATE, WAKES};
use crate::region::{Kind, Object, Region, Spec, layout};
use crate::sys::{self, FutexWord, SharedU64};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::time::Duration;

/// The most permits a [`Semaphore`] or [`BoundedSemaphore`] counts: 2²⁴ − 1 (16,777,215).
/// (Python's `multiprocessing.synchronize.SEM_VALUE_MAX` is 2³¹ − 1 on Linux: shmsync's count
/// shares a 64-bit word with the record of whose permits are out.)
pub const SEM_VALUE_MAX: u32 = MAX_VALUE;

/// A counting semaphore shared between processes: Python's `multiprocessing.Semaphore`.
///
/// It counts permits: [`acquire`](Semaphore::acquire) takes one (waiting while there is none),
/// [`release`](Semaphore::release) gives one back, from any thread of any process. Use it to
/// limit how many workers use a resource at once.
///
/// # Permits and dying processes
///
/// A permit taken with [`acquire`](Semaphore::acquire) belongs to nobody (Python semantics:
/// any process may release it), so if its taker dies the permit is lost. A permit taken with
/// [`permit`](Semaphore::permit) is a guard, recorded as its process's: if the process dies
/// *at any instruction*, even in the middle of taking or giving back a permit, its permits
/// come back exactly (waiters give them back within
/// [`DEATH_CHECK_INTERVAL`](crate::DEATH_CHECK_INTERVAL), and [`reclaim`](Semaphore::reclaim)
/// does it at once): the count change and the record of whose it is are one atomic change of
/// one 64-bit word (the protocol crate's `semaphore` module explains how). The semaphore is
/// marked broken only if its words are found in a state the protocol never writes (another
/// process scribbled on the region): every later call then fails with [`Error::Broken`] (or
/// returns `false`) instead of counting wrong, until [`repair`](Semaphore::repair) states the
/// count again.
///
/// Each process that takes `Permit`s claims one of the semaphore's entries on first use (the
/// region's process slots, at most 64); a process that finds every entry taken by a live
/// process takes unattributed permits, which come back when dropped but not if it dies.
///
/// # Examples
///
/// ```
/// let region = shmsync::Region::anonymous(1 << 16)?;
/// let slots = region.semaphore("download-slots", 2)?;
/// let first = slots.permit()?;
/// let second = slots.permit()?;
/// assert!(!slots.acquire(false, None)); // both permits are out
/// drop(first);                          // back in the pool
/// assert!(slots.acquire(false, None));  // Python-style: nobody owns this one
/// slots.release()?;
/// # drop(second);
/// # Ok::<(), shmsync::Error>(())
/// ```
#[derive(Clone)]
pub struct Semaphore {
    object: Object,
    /// The most permits `release` may make: the initial value for a bounded semaphore.
    bound: u32,
    kind: &'static str,
    /// This process's entry (see [`LocalEntry`]).
    local: Arc<LocalEntry>,
}

/// In [`LocalEntry`]: every entry belongs to another live process.
const NO_ENTRY: u32 = u32::MAX;

/// This process's entry in one semaphore: `(fork generation + 1) << 32 | index` (0: not
/// claimed yet; index [`NO_ENTRY`]: none was free at the last try), keyed by the fork
/// generation so that a forked child (another process, with a token of its own) claims its own
/// without a look at its token on the fast path; and a lock so that two threads of a process do
/// not claim two entries.
#[derive(Debug, Default)]
pub(crate) struct LocalEntry {
    cached: AtomicU64,
    /// The key of the fork generation whose thread is claiming (0: nobody): a lock that a
    /// forked child ignores (a `Mutex` held by a parent's thread at the fork would stay locked
    /// in the child for ever).
    claiming: AtomicU64,
}

impl LocalEntry {
    /// The key of fork generation `generation` (0, "nothing cached", after 2³² − 1 forks: then
    /// every permit looks its entry up again, which is slow but right).
    #[inline]
    fn key(generation: u32) -> u64 {
        u64::from(generation.wrapping_add(1)) << 32
    }

    /// The cached entry index of this fork generation, if claimed (or tried).
    #[inline]
    fn get(&self, generation: u32) -> Option<u32> {
        let cached = self.cached.load(Relaxed);
        (cached & !u64::from(u32::MAX) == Self::key(generation) && cached != 0)
            .then_some(cached as u32)
    }

    fn set(&self, generation: u32, index: u32) {
        self.cached
            .store(Self::key(generation) | u64::from(index), Relaxed);
    }
    /// Waits until no other thread of this fork generation is claiming, then claims (a lock
    /// held for one claim; a holder from another generation, the parent of a forked child, is
    /// ignored). The guard lets go.
    fn claiming(&self, generation: u32) -> Claiming<'_> {
        let mine = Self::key(generation) | 1;
        loop {
            let now = self.claiming.load(Relaxed);
            if now != mine
                && self
                    .claiming
                    .compare_exchange(now, mine, Acquire, Relaxed)
                    .is_ok()
            {
                return Claiming(&self.claiming);
            }
            std::thread::yield_now();
        }
    }
}

/// A claim in progress (see [`LocalEntry::claiming`]).
struct Claiming<'a>(&'a AtomicU64);

impl Drop for Claiming<'_> {
    fn drop(&mut self) {
        self.0.store(0, Release);
    }
}

/// The object's table, as the protocol sees it.
impl Entries for Object {
    type Word = FutexWord;
    type Wide = SharedU64;
    #[inline]
    fn len(&self) -> u32 {
        self.entries() as u32
    }
    #[inline]
    fn get(&self, i: u32) -> Entry<'_, FutexWord, SharedU64> {
        Entry {
            owner: self.table_word(i as usize, OWNER),
            record: self.table_wide(i as usize, RECORD),
        }
    }
}

/// A semaphore whose count may never pass its initial value: Python's
/// `multiprocessing.BoundedSemaphore`.
///
/// Releasing it more times than it was acquired fails with [`Error::AboveBound`] (Python raises
/// `ValueError`). The check and the increment are one compare-exchange, so two racing releases
/// can never both pass it (Python checks and increments in two steps). Everything else is as
/// [`Semaphore`] (whose methods it has, and [`as_semaphore`](BoundedSemaphore::as_semaphore)
/// gives).
///
/// # Examples
///
/// ```
/// let region = shmsync::Region::anonymous(1 << 16)?;
/// let pool = region.bounded_semaphore("connections", 1)?;
/// assert!(pool.acquire(true, None));
/// pool.release()?;
/// assert!(matches!(pool.release(), Err(shmsync::Error::AboveBound { bound: 1 })));
/// # Ok::<(), shmsync::Error>(())
/// ```
#[derive(Clone)]
pub struct BoundedSemaphore(Semaphore);

impl BoundedSemaphore {
    /// The semaphore itself (for code written against [`Semaphore`]).
    pub fn as_semaphore(&self) -> &Semaphore {
        &self.0
    }

    /// As [`Semaphore::acquire`].
    #[inline]
    pub fn acquire(&self, block: bool, timeout: Option<Duration>) -> bool {
        self.0.acquire(block, timeout)
    }

    /// As [`Semaphore::release`].
    ///
    /// # Errors
    ///
    /// [`Error::AboveBound`] if the count would pass the initial value (Python raises
    /// `ValueError`); [`Error::Broken`] if the semaphore is broken.
    #[inline]
    pub fn release(&self) -> Result<()> {
        self.0.release()
    }

    /// As [`Semaphore::release_many`].
    ///
    /// # Errors
    ///
    /// As [`release`](BoundedSemaphore::release); nothing is released then.
    pub fn release_many(&self, n: u32) -> Result<()> {
        self.0.release_many(n)
    }

    /// As [`Semaphore::value`].
    pub fn value(&self) -> u32 {
        self.0.value()
    }

    /// As [`Semaphore::repair`].
    ///
    /// # Errors
    ///
    /// [`Error::AboveBound`] if `value` is above the initial value.
    pub fn repair(&self, value: u32) -> Result<()> {
        self.0.repair(value)
    }

    /// As [`Semaphore::is_broken`].
    pub fn is_broken(&self) -> bool {
        self.0.is_broken()
    }

    /// As [`Semaphore::reclaim`].
    pub fn reclaim(&self) -> usize {
        self.0.reclaim()
    }

    /// As [`Semaphore::permit`].
    ///
    /// # Errors
    ///
    /// As [`Semaphore::permit`].
    #[inline]
    pub fn permit(&self) -> Result<Permit<'_>> {
        self.0.permit()
    }

    /// As [`Semaphore::try_permit`].
    ///
    /// # Errors
    ///
    /// As [`Semaphore::try_permit`].
    pub fn try_permit(&self) -> Result<Permit<'_>> {
        self.0.try_permit()
    }

    /// As [`Semaphore::try_permit_for`].
    ///
    /// # Errors
    ///
    /// As [`Semaphore::try_permit_for`].
    pub fn try_permit_for(&self, timeout: Duration) -> Result<Permit<'_>> {
        self.0.try_permit_for(timeout)
    }
}

impl Semaphore {
    #[inline]
    fn proto(&self) -> proto::Semaphore<'_, Object> {
        proto::Semaphore {
            state: self.object.wide(STATE),
            sleepers: self.object.word(SLEEPERS),
            wakes: self.object.word(WAKES),
            entries: &self.object,
            bound: self.bound,
        }
    }

    fn broken(&self) -> Error {
        Error::Broken { what: self.kind }
    }

    /// This process's entry (claimed on first use), or `None` if none could be claimed.
    #[inline]
    fn entry_of(&self, generation: u32) -> Option<u32> {
        match self.local.get(generation) {
            Some(NO_ENTRY) => self.claim_again(generation),
            Some(index) => Some(index),
            None => self.claim(generation),
        }
    }

    #[cold]
    fn claim_again(&self, generation: u32) -> Option<u32> {
        // Every entry was taken at the last try: look again now and then (a process may have
        // died or left since), not at every permit.
        if self.object.scan_due() {
            self.claim(generation)
        } else {
            None
        }
    }

    #[cold]
    fn claim(&self, generation: u32) -> Option<u32> {
        let _claiming = self.local.claiming(generation);
        if let Some(index) = self.local.get(generation).filter(|&i| i != NO_ENTRY) {
            return Some(index);
        }
        let region = self.object.region();
        // Registers this process in the region if this fork generation has not yet (`token`
        // does); unregistered (the process table was full), nobody could tell whether we live.
        let index = region
            .registered_token()
            .and_then(|token| self.proto().claim(token, region));
        self.local.set(generation, index.unwrap_or(NO_ENTRY));
        index
    }

    /// Gives back the permits of dead processes, at most once per death-check interval.
    fn reclaim_now_and_then(&self) {
        if self.object.scan_due() {
            self.reclaim();
        }
    }

    /// Gives back now the permits of every process that died holding [`Permit`]s of this
    /// semaphore (waiters do it on their own within
    /// [`DEATH_CHECK_INTERVAL`](crate::DEATH_CHECK_INTERVAL)); returns how many processes'
    /// permits it gave back. Only entries that record permits are looked at, so live processes
    /// that hold none cost nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// let region = shmsync::Region::anonymous(1 << 16)?;
    /// let slots = region.semaphore("slots", 2)?;
    /// assert_eq!(slots.reclaim(), 0); // nobody died
    /// # Ok::<(), shmsync::Error>(())
    /// ```
    pub fn reclaim(&self) -> usize {
        let region = self.object.region();
        match region.registered_token() {
            Some(me) => self.proto().reclaim(me, region) as usize,
            None => 0,
        }
    }

    /// Takes a permit as Python does, unattributed (see the type's docs).
    ///
    /// `block == false` tries once; otherwise it waits up to `timeout` (`None`: as long as it
    /// takes). Returns whether a permit was taken; `false` also if the semaphore is broken.
    #[inline]
    pub fn acquire(&self, block: bool, timeout: Option<Duration>) -> bool {
        self.take(None, Block::from_python(block, timeout)) == Acquired::Yes
    }

    #[inline]
    fn take(&self, entry: Option<u32>, block: Block) -> Acquired {
        // At most once per death-check interval: a waiter looks after every sleep, and while
        // permits circulate it is woken often.
        self.proto()
            .acquire(entry, block, self.object.region(), || {
                self.reclaim_now_and_then()
            })
    }

    /// Gives one permit back (from any thread of any process), waking a waiter.
    ///
    /// # Errors
    ///
    /// [`Error::AboveBound`] if the count would pass its bound (a [`BoundedSemaphore`]'s initial
    /// value, or 2²⁴ − 1); [`Error::Broken`] if the semaphore is broken.
    #[inline]
    pub fn release(&self) -> Result<()> {
        self.release_many(1)
    }

    /// Gives `n` permits back at once (Python's `release(n)`), waking as many waiters.
    ///
    /// # Errors
    ///
    /// As [`release`](Semaphore::release); nothing is released then.
    #[inline]
    pub fn release_many(&self, n: u32) -> Result<()> {
        self.proto().release(n).map_err(|e| match e {
            ReleaseError::AboveBound => Error::AboveBound { bound: self.bound },
            ReleaseError::Broken => self.broken(),
        })
    }

    /// The permits available now (a snapshot; Python's `get_value()`); 0 if broken.
    pub fn value(&self) -> u32 {
        self.proto().value().unwrap_or(0)
    }

    /// Makes a semaphore usable again, broken or not, with `value` permits free: the way back
    /// from [`Error::Broken`], for a caller who knows how many permits are really free (for
    /// instance after restarting the workers that use it).
    ///
    /// The records of dead processes are dropped without giving anything back (`value` stands
    /// for everything); permits held by live processes through [`Permit`]s stay recorded and
    /// come back when dropped, so count them out of `value` (a bounded semaphore keeps its count
    /// at its bound when they do). A `Permit` dropped while the semaphore was broken could not
    /// give its permit back, so it stays recorded as its process's until that process dies:
    /// count it as held, not free. Sleepers are woken to look again.
    ///
    /// # Examples
    ///
    /// ```
    /// let region = shmsync::Region::anonymous(1 << 16)?;
    /// let slots = region.semaphore("slots", 2)?;
    /// slots.repair(2)?; // nothing held: two permits free
    /// assert_eq!(slots.value(), 2);
    /// # Ok::<(), shmsync::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::AboveBound`] if `value` is above the bound (a [`BoundedSemaphore`]'s initial
    /// value, or 2²⁴ − 1).
    pub fn repair(&self, value: u32) -> Result<()> {
        if value > self.bound {
            return Err(Error::AboveBound { bound: self.bound });
        }
        let region = self.object.region();
        match region.registered_token() {
            Some(me) => self.proto().repair(value, me, region),
            // Unregistered: the count is stated, dead processes' entries stay for a registered
            // process to clear.
            None => self.proto().repair_count(value),
        }
        Ok(())
    }

    /// Whether the semaphore is broken (see the type's docs).
    pub fn is_broken(&self) -> bool {
        self.proto().value().is_none()
    }

    /// Takes a permit, waiting as long as it takes; the [`Permit`] gives it back when dropped,
    /// or when its process dies.
    ///
    /// # Errors
    ///
    /// [`Error::Broken`] if the semaphore is broken.
    #[inline]
    pub fn permit(&self) -> Result<Permit<'_>> {
        self.permit_with(Block::Forever)
    }

    /// Takes a permit if one is free now.
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] if none is; otherwise as [`permit`](Semaphore::permit).
    pub fn try_permit(&self) -> Result<Permit<'_>> {
        self.permit_with(Block::Try)
    }

    /// Takes a permit, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] if none came in time; otherwise as [`permit`](Semaphore::permit).
    pub fn try_permit_for(&self, timeout: Duration) -> Result<Permit<'_>> {
        self.permit_with(Block::after(timeout))
    }

    #[inline]
    fn permit_with(&self, block: Block) -> Result<Permit<'_>> {
        let generation = sys::fork_generation();
        // Not registered, or every entry taken by live processes: the permit cannot be
        // recorded, and comes back only when dropped, as with a `Lock` taken by an
        // unregistered process.
        let entry = self.entry_of(generation);
        match self.take(entry, block) {
            Acquired::Yes => Ok(Permit {
                sem: self,
                generation,
                entry,
            }),
            Acquired::Busy => Err(Error::WouldBlock),
            Acquired::Broken => Err(self.broken()),
        }
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(self.kind)
            .field("value", &self.value())
            .field("broken", &self.is_broken())
            .finish()
    }
}

impl fmt::Debug for BoundedSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// One permit of a [`Semaphore`], given back when dropped, or when its process dies (see
/// the [`Semaphore`] docs). A forked child's copy gives nothing back: the permit is its
/// parent's.
#[must_use = "the permit is given back as soon as it is dropped"]
pub struct Permit<'a> {
    sem: &'a Semaphore,
    /// The fork generation that took it (a forked child's copy is not its own).
    generation: u32,
    /// The entry that records it (`None`: unattributed).
    entry: Option<u32>,
}

impl Drop for Permit<'_> {
    #[inline]
    fn drop(&mut self) {
        if sys::fork_generation() != self.generation {
            return;
        }
        // One compare-exchange gives the permit back and records it; a broken semaphore
        // refuses it, and nothing more can be done here.
        let _ = self.sem.proto().give(self.entry);
    }
}

impl fmt::Debug for Permit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Permit")
    }
}

impl Region {
    fn semaphore_of(&self, name: &str, kind: Kind, value: u32) -> Result<Semaphore> {
        if value > MAX_VALUE {
            return Err(Error::InvalidArgument(format!(
                "a semaphore counts at most {MAX_VALUE} permits, not {value}"
            )));
        }
        let spec = Spec::plain(kind)
            .with_permit_entries(layout::permit_entries_for(self.inner.process_slots()));
        let bounded = kind == Kind::BoundedSemaphore;
        let object = Object::open(self, name, &spec, |fresh| {
            // The count is the low 24 bits of the 64-bit state word, whose other bits start at
            // 0 (no tag, not broken): on this little-endian layout, the word at STATE.
            fresh.word(STATE).store(value, Relaxed);
            fresh
                .word(BOUND)
                .store(if bounded { value } else { MAX_VALUE }, Relaxed);
        })?;
        // The bound another process wrote: untrusted, but any value is safe (it only decides
        // when `release` fails).
        let bound = object.word(BOUND).load(Relaxed).min(MAX_VALUE);
        let local = self.inner.local::<LocalEntry>(object.offset());
        Ok(Semaphore {
            object,
            bound,
            local,
            kind: if bounded {
                "BoundedSemaphore"
            } else {
                "Semaphore"
            },
        })
    }

    /// Finds or creates the [`Semaphore`] called `name`, created with `value` permits (an
    /// existing one keeps its count).
    ///
    /// The object takes 128 bytes plus 16 per entry: one per process slot of the region, at
    /// most 64 (see [`RegionOptions::max_processes`](crate::RegionOptions::max_processes)).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a value above 2²⁴ − 1 (16,777,215); otherwise as
    /// [`Region::lock`].
    pub fn semaphore(&self, name: &str, value: u32) -> Result<Semaphore> {
        self.semaphore_of(name, Kind::Semaphore, value)
    }

    /// Finds or creates the [`BoundedSemaphore`] called `name`, created with `value` permits,
    /// which is also its bound (an existing one keeps its count and bound).
    ///
    /// # Errors
    ///
    /// As [`Region::semaphore`].
    pub fn bounded_semaphore(&self, name: &str, value: u32) -> Result<BoundedSemaphore> {
        self.semaphore_of(name, Kind::BoundedSemaphore, value)
            .map(BoundedSemaphore)
    }
}

/// A `Semaphore` travels to a spawned child by region and name (its `Permit`s do not: they are
/// their process's).
impl crate::Transfer for Semaphore {
    fn encode(&self, out: &mut crate::Encoder) -> Result<()> {
        out.object(&self.object)
    }
    fn decode(input: &mut crate::Decoder) -> Result<Self> {
        let (region, name) = input.object()?;
        // The object exists: the initial value is not used.
        region.semaphore(&name, 0)
    }
}

/// A `BoundedSemaphore` travels to a spawned child by region and name.
impl crate::Transfer for BoundedSemaphore {
    fn encode(&self, out: &mut crate::Encoder) -> Result<()> {
        out.object(&self.0.object)
    }
    fn decode(input: &mut crate::Decoder) -> Result<Self> {
        let (region, name) = input.object()?;
        region.bounded_semaphore(&name, 0)
    }
}
