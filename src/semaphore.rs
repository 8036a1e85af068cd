//! [`Semaphore`] and [`BoundedSemaphore`]: Python's `multiprocessing` semaphores, as a futex
//! word in a region, with RAII [`Permit`]s that come back when their process dies.

use crate::error::{Error, Result};
use crate::protocol::holds::{EntryError, Holder, Unattributed};
use crate::protocol::semaphore::{self as proto, Acquired, MAX_VALUE, ReleaseError};
use crate::protocol::{Block, Word};
use crate::region::layout::semaphore::{BOUND, SLEEPERS, VALUE};
use crate::region::{Hold, Kind, Object, Region, Spec};
use crate::sys::FutexWord;
use std::fmt;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

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
/// [`permit`](Semaphore::permit) is a guard, recorded in the semaphore's hold table (one entry
/// per process slot of the region): if its process dies, waiters give it back within
/// [`DEATH_CHECK_INTERVAL`](crate::DEATH_CHECK_INTERVAL). If a process dies at the one moment
/// where nobody can tell whether its permit was taken or given back (between the count change
/// and its record; how often a random kill lands there is measured in the README's death
/// table), the semaphore is marked broken: every later call fails with [`Error::Broken`] (or returns `false`) instead of
/// counting wrong, until [`repair`](Semaphore::repair) states the count again.
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

/// The words of the semaphore and its bound, as the hold table sees them.
struct Counter<'a> {
    sem: proto::Semaphore<'a, FutexWord>,
    bound: u32,
}

impl Holder for Counter<'_> {
    fn give_back(&self, n: u32) {
        // Up to the bound, as a live `Permit` drop does: a bounded semaphore at its bound was
        // released (Python-style) by someone else meanwhile, and those permits stand for the
        // dead holder's. A broken semaphore takes nothing back.
        let _ = self.sem.add_up_to(n, self.bound);
    }
    fn break_object(&self) {
        self.sem.break_it();
    }
}

impl Semaphore {
    #[inline]
    fn counter(&self) -> Counter<'_> {
        Counter {
            sem: proto::Semaphore {
                value: self.object.word(VALUE),
                sleepers: self.object.word(SLEEPERS),
            },
            bound: self.bound,
        }
    }

    fn broken(&self) -> Error {
        Error::Broken { what: self.kind }
    }

    /// Takes a permit as Python does, unattributed (see the type's docs).
    ///
    /// `block == false` tries once; otherwise it waits up to `timeout` (`None`: as long as it
    /// takes). Returns whether a permit was taken; `false` also if the semaphore is broken.
    #[inline]
    pub fn acquire(&self, block: bool, timeout: Option<Duration>) -> bool {
        self.take(&Unattributed, Block::from_python(block, timeout)) == Acquired::Yes
    }

    #[inline]
    fn take(
        &self,
        attribution: &impl crate::protocol::holds::Attribution,
        block: Block,
    ) -> Acquired {
        let counter = self.counter();
        let region = self.object.region();
        let me = region.token();
        counter.sem.acquire(attribution, block, region, || {
            // At most once per death-check interval: a waiter looks after every sleep,
            // and while permits circulate it is woken often.
            self.object.reclaim_now_and_then(me, &counter)
        })
    }

    /// Gives one permit back (from any thread of any process), waking a waiter.
    ///
    /// # Errors
    ///
    /// [`Error::AboveBound`] if the count would pass its bound (a [`BoundedSemaphore`]'s initial
    /// value, or 2³¹ − 1); [`Error::Broken`] if the semaphore is broken.
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
        self.counter().sem.add(n, self.bound).map_err(|e| match e {
            ReleaseError::AboveBound => Error::AboveBound { bound: self.bound },
            ReleaseError::Broken => self.broken(),
        })
    }

    /// The permits available now (a snapshot; Python's `get_value()`); 0 if broken.
    pub fn value(&self) -> u32 {
        self.counter().sem.value().unwrap_or(0)
    }

    /// Makes a semaphore usable again, broken or not, with `value` permits free: the way back
    /// from [`Error::Broken`], for a caller who knows how many permits are really free (for
    /// instance after restarting the workers that use it).
    ///
    /// The records of dead processes are dropped without giving anything back (`value` stands
    /// for everything); permits held by live processes through [`Permit`]s stay recorded and
    /// come back when dropped, so count them out of `value` (a bounded semaphore refuses a
    /// give-back above its bound). Sleepers are woken to look again.
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
    /// value, or 2³¹ − 1).
    pub fn repair(&self, value: u32) -> Result<()> {
        if value > self.bound {
            return Err(Error::AboveBound { bound: self.bound });
        }
        let region = self.object.region();
        self.object.forget_dead(region.token());
        self.counter().sem.reset(value);
        Ok(())
    }

    /// Whether the semaphore is broken (see the type's docs).
    pub fn is_broken(&self) -> bool {
        self.counter().sem.value().is_none()
    }

    /// Takes a permit, waiting as long as it takes; the [`Permit`] gives it back when dropped,
    /// or when its process dies.
    ///
    /// # Errors
    ///
    /// [`Error::Broken`] if the semaphore is broken; [`Error::TooManyHolds`] if this process
    /// holds about a million permits of it already.
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
        let region = self.object.region();
        let hold = region.hold();
        let outcome = match self.object.entry_of(hold) {
            Some(entry) => {
                match entry.own_within(hold.token, block, region, &self.counter()) {
                    Ok(()) => {}
                    Err(EntryError::Busy) => return Err(Error::WouldBlock),
                    Err(_) => return Err(self.broken()),
                }
                self.take(&entry, block)
            }
            // Not registered (the process table was full when this process, or this forked
            // child, first used the region): the permit cannot be recorded, and comes back only
            // when dropped, as with a `Lock` taken by an unregistered process.
            None => self.take(&Unattributed, block),
        };
        match outcome {
            Acquired::Yes => Ok(Permit { sem: self, hold }),
            Acquired::Busy => Err(Error::WouldBlock),
            Acquired::Broken => Err(self.broken()),
            Acquired::Full => Err(Error::TooManyHolds),
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
    hold: Hold,
}

impl Drop for Permit<'_> {
    #[inline]
    fn drop(&mut self) {
        if !self.hold.is_ours() {
            return;
        }
        let entry = self.sem.object.entry_of(self.hold);
        if let Some(entry) = &entry {
            entry.begin_give();
        }
        // A broken semaphore refuses the permit; a bounded one at its bound (someone released
        // it with `release()` meanwhile) too: either way nothing more can be done here.
        let counter = self.sem.counter();
        let released = counter.sem.release_unwoken(self.sem.bound);
        if let Some(entry) = &entry {
            entry.end_give();
        }
        // The wake call only now, with the record complete: a process is often preempted in
        // that system call, and one killed there must not leave the change in flight. (A
        // sleeper whose wake-up dies with us finds the permit when its slice ends.)
        if released.is_ok() {
            counter.sem.wake_for(1);
        }
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
        let spec = Spec::plain(kind).with_holds(self.inner.process_slots());
        let bounded = kind == Kind::BoundedSemaphore;
        let object = Object::open(self, name, &spec, |fresh| {
            fresh.word(VALUE).store(value, Relaxed);
            fresh
                .word(BOUND)
                .store(if bounded { value } else { MAX_VALUE }, Relaxed);
        })?;
        // The bound another process wrote: untrusted, but any value is safe (it only decides
        // when `release` fails).
        let bound = object.word(BOUND).load(Relaxed).min(MAX_VALUE);
        Ok(Semaphore {
            object,
            bound,
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
    /// The object takes 16 bytes plus 8 per process slot of the region (its hold table; see
    /// [`RegionOptions::max_processes`](crate::RegionOptions::max_processes)).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a value above 2³¹ − 1; otherwise as
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
