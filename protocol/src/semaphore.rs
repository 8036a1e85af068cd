//! The semaphore: a count of permits in one word, and a count of sleepers in another.
//!
//! # The words
//!
//! `value`:
//!
//! ```text
//!  31        30 ................................. 0
//! +--------+--------------------------------------+
//! | BROKEN |  permits available (≤ MAX_VALUE)     |
//! +--------+--------------------------------------+
//! ```
//!
//! `sleepers`: how many threads may be asleep on `value` (a hint for the releaser: it makes the
//! wake call only when this is non-zero). A sleeper killed in its sleep leaves it one too high,
//! which costs needless wake calls and nothing else.
//!
//! # Protocol
//!
//! Acquire is a compare-exchange `v → v - 1` (Acquire) for `v > 0`. With no permit, the caller
//! increments `sleepers` (SeqCst) and sleeps on `value` while it is 0. Release is a
//! compare-exchange `v → v + 1` (SeqCst), refused above the bound, then a SeqCst read of
//! `sleepers`: either the releaser sees the sleeper's increment and wakes one, or the sleeper's
//! futex wait finds the new value and does not sleep (store-load ordering on both sides).
//!
//! Each take is bracketed by the caller's [`Attribution`]: the hold table of a
//! `Permit` (see [`holds`](super::holds)), or nothing for Python's
//! unattributed `acquire`.
//!
//! [`BROKEN`] is set when a process died mid-change of the word, so that the count of permits
//! is no longer known; every acquire and release then fails, and every sleeper is woken.

use super::Block;
use super::holds::{Attribution, EntryError};
use super::mutex::Owners;
use crate::word::{WaitOutcome, Word};
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};

/// Set when the count can no longer be trusted.
pub const BROKEN: u32 = 1 << 31;
/// The most permits a semaphore can count.
pub const MAX_VALUE: u32 = BROKEN - 1;

/// The two words of a semaphore.
#[derive(Clone, Copy, Debug)]
pub struct Semaphore<'a, W> {
    /// `BROKEN | permits`.
    pub value: &'a W,
    /// Threads that may be asleep on `value`.
    pub sleepers: &'a W,
}

/// How an acquire ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acquired {
    /// One permit is ours.
    Yes,
    /// No permit until the deadline (or at the single try).
    Busy,
    /// The semaphore is broken.
    Broken,
    /// The caller's hold table entry is full.
    Full,
}

/// Why a release was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReleaseError {
    /// The count would pass its bound (a bounded semaphore's initial value, or [`MAX_VALUE`]).
    AboveBound,
    /// The semaphore is broken.
    Broken,
}

/// Whether `value` is broken.
#[inline]
pub const fn is_broken(value: u32) -> bool {
    value & BROKEN != 0
}

/// The permits in `value`.
#[inline]
pub const fn permits(value: u32) -> u32 {
    value & MAX_VALUE
}

impl<W: Word> Semaphore<'_, W> {
    /// Takes one permit if one is free, without sleeping.
    #[inline]
    fn try_take<A: Attribution>(&self, attribution: &A) -> Acquired {
        let mut value = self.value.load(Relaxed);
        loop {
            if is_broken(value) {
                return Acquired::Broken;
            }
            if value == 0 {
                return Acquired::Busy;
            }
            match attribution.begin() {
                Ok(()) => {}
                Err(EntryError::Broken) => return Acquired::Broken,
                Err(EntryError::Full) => return Acquired::Full,
                Err(EntryError::Busy) => return Acquired::Busy,
            }
            match self
                .value
                .compare_exchange(value, value - 1, Acquire, Relaxed)
            {
                Ok(_) => {
                    attribution.commit();
                    return Acquired::Yes;
                }
                Err(v) => {
                    attribution.abort();
                    value = v;
                }
            }
        }
    }

    /// Takes one permit, sleeping as `block` allows. Sleeps are slices ([`Owners::slice_end`]);
    /// after every sleep, whether a slice ended or a release woke us (and before a single try
    /// gives up), `reclaim` is called, to give back the permits of holders that died: while
    /// live permits circulate, every release wakes a sleeper and no slice ever ends, so a
    /// waiter that looked only when a slice ended would never find a dead holder. `reclaim`
    /// must limit itself (the library scans at most once per death-check interval).
    #[inline]
    pub fn acquire<A: Attribution, O: Owners>(
        &self,
        attribution: &A,
        block: Block,
        owners: &O,
        reclaim: impl FnMut(),
    ) -> Acquired {
        match self.try_take(attribution) {
            Acquired::Busy => self.acquire_contended(attribution, block, owners, reclaim),
            done => done,
        }
    }

    #[cold]
    fn acquire_contended<A: Attribution, O: Owners>(
        &self,
        attribution: &A,
        block: Block,
        owners: &O,
        mut reclaim: impl FnMut(),
    ) -> Acquired {
        let deadline = block.deadline();
        let mut reclaimed = false;
        loop {
            match self.try_take(attribution) {
                Acquired::Busy => {}
                done => return done,
            }
            if block == Block::Try {
                if reclaimed {
                    return Acquired::Busy;
                }
                reclaimed = true;
                reclaim();
                continue;
            }
            // SeqCst: ordered before the futex wait's read of `value`, against the releaser's
            // SeqCst increment and read of `sleepers` (see the module docs).
            self.sleepers.fetch_add(1, SeqCst);
            let outcome = self.value.wait(0, owners.slice_end(deadline));
            self.sleepers.fetch_sub(1, Relaxed);
            reclaim();
            if outcome == WaitOutcome::TimedOut && owners.expired(deadline) {
                // One last look: the permit may have come with the deadline.
                return match self.try_take(attribution) {
                    Acquired::Yes => Acquired::Yes,
                    Acquired::Busy => Acquired::Busy,
                    other => other,
                };
            }
        }
    }

    /// Returns one permit, refused if the count would pass `bound` (at most [`MAX_VALUE`]).
    /// Wakes one sleeper if there may be one.
    #[inline]
    pub fn release(&self, bound: u32) -> Result<(), ReleaseError> {
        self.add(1, bound)
    }

    /// Returns `n` permits (`release(n)`), refused as a whole if the count would pass `bound`.
    #[inline]
    pub fn add(&self, n: u32, bound: u32) -> Result<(), ReleaseError> {
        self.add_with(n, bound, false)
    }

    /// Returns up to `n` permits (a dead holder's), stopping at `bound`: permits released
    /// meanwhile by someone else stand for the rest.
    pub fn add_up_to(&self, n: u32, bound: u32) -> Result<(), ReleaseError> {
        self.add_with(n, bound, true)
    }

    #[inline]
    fn add_with(&self, n: u32, bound: u32, saturate: bool) -> Result<(), ReleaseError> {
        self.add_unwoken(n, bound, saturate)?;
        self.wake_for(n);
        Ok(())
    }

    /// Returns one permit as [`release`](Semaphore::release) does, but without the wake call,
    /// which the caller must then make with [`wake_for(1)`](Semaphore::wake_for) (unless this
    /// failed): for a caller that records the release in a hold table and must finish that
    /// record before a system call, where a process is often preempted (and killed).
    #[inline]
    pub fn release_unwoken(&self, bound: u32) -> Result<(), ReleaseError> {
        self.add_unwoken(1, bound, false)
    }

    /// The count change of [`add_with`](Semaphore::add_with), with no wake call.
    #[inline]
    fn add_unwoken(&self, n: u32, bound: u32, saturate: bool) -> Result<(), ReleaseError> {
        let bound = bound.min(MAX_VALUE);
        let mut value = self.value.load(Relaxed);
        loop {
            if is_broken(value) {
                return Err(ReleaseError::Broken);
            }
            let new = match value.checked_add(n).filter(|&v| v <= bound) {
                Some(new) => new,
                None if saturate => bound.max(value),
                None => return Err(ReleaseError::AboveBound),
            };
            // SeqCst: publishes our writes (Release) and orders the read of `sleepers` below
            // after the new value.
            match self.value.compare_exchange(value, new, SeqCst, Relaxed) {
                Ok(_) => return Ok(()),
                Err(v) => value = v,
            }
        }
    }

    /// After `n` permits were added: wakes a sleeper (every sleeper for `n > 1`) if
    /// `sleepers` says there may be one. The SeqCst read comes after the SeqCst
    /// compare-exchange that added the permits, whatever the caller did in between (see the
    /// module docs).
    #[inline]
    pub fn wake_for(&self, n: u32) {
        if self.sleepers.load(SeqCst) != 0 {
            if n == 1 {
                self.value.wake_one();
            } else {
                self.value.wake_all();
            }
        }
    }

    /// Sets the count to `value` (at most [`MAX_VALUE`]), clearing [`BROKEN`], and wakes every
    /// sleeper: a repair, by a caller who knows how many permits are free.
    pub fn reset(&self, value: u32) {
        self.value.store(value.min(MAX_VALUE), Release);
        self.value.wake_all();
    }

    /// Marks the semaphore broken and wakes every sleeper to hear so.
    pub fn break_it(&self) {
        self.value.fetch_or(BROKEN, Relaxed);
        self.value.wake_all();
    }

    /// The permits available now (a snapshot), or `None` if broken.
    pub fn value(&self) -> Option<u32> {
        let value = self.value.load(Relaxed);
        (!is_broken(value)).then_some(permits(value))
    }
}
