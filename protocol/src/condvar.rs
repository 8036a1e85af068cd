//! The condition variable: a sequence word that notifiers bump and waiters sleep on, and a
//! count of sleepers, next to the [`RMutex`] of its lock.
//!
//! # The words
//!
//! - `seq`: bumped (wrapping) by every notify that finds a sleeper.
//! - `sleepers`: threads that may be between entering [`wait`](Condvar::wait) and leaving it. A waiter
//!   counts itself *while it still holds the lock*, so a notifier (which holds the lock too)
//!   that reads 0 knows nobody waits; a waiter killed in its sleep leaves the count one too
//!   high, which costs needless wake calls and nothing else.
//!
//! # Protocol
//!
//! [`wait`](Condvar::wait) reads `seq` and counts itself while holding the lock, leaves the lock entirely
//! (remembering its recursion count), sleeps while `seq` is unchanged, then takes the lock
//! again with its old count. [`notify`](Condvar::notify) (lock held) bumps `seq` and wakes up to `n` sleepers.
//! A notify that comes after the waiter let go of the lock changed `seq`, so the waiter's
//! futex wait, which compares `seq` atomically, cannot miss it.
//!
//! A notifier never waits for a sleeper (Python's `Condition.notify` can block on a sleeper
//! killed at the wrong moment). A waiter may return without a notify (a signal, or a notify
//! meant for an earlier waiter that had not fallen asleep yet): callers re-check their
//! predicate, as with every condition variable.

use super::Block;
use super::mutex::{Outcome, Owners};
use super::rmutex::{RError, RMutex};
use crate::word::{WaitOutcome, Word};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

/// The words of a condition variable.
#[derive(Clone, Copy, Debug)]
pub struct Condvar<'a, W> {
    /// The lock.
    pub lock: RMutex<'a, W>,
    /// Bumped by each notify that finds a sleeper.
    pub seq: &'a W,
    /// Threads that may be waiting.
    pub sleepers: &'a W,
}

/// How a wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Waited {
    /// `false` only if the deadline passed with no notify seen.
    pub notified: bool,
    /// How the lock was taken back ([`Outcome::OwnerDied`] if a holder died meanwhile).
    pub relock: Outcome,
}

impl<W: Word> Condvar<'_, W> {
    /// Waits for a notify, as thread `me` of the process with `token`, which must own the
    /// lock; until `deadline` (`None`: no limit). The lock is held again, at its old count,
    /// whenever this returns `Ok` (unless `relock` is [`Outcome::NotRecoverable`]).
    pub fn wait<O: Owners>(
        &self,
        me: u32,
        token: u32,
        deadline: Option<Instant>,
        owners: &O,
    ) -> Result<Waited, RError> {
        self.lock.check_owner(me, token)?;
        // Relaxed: both happen while we hold the lock, and the notifier reads them while it
        // holds the lock: the lock orders them.
        let seq = self.seq.load(Relaxed);
        self.sleepers.fetch_add(1, Relaxed);
        let count = match self.lock.release_all(me, token) {
            Ok(count) => count,
            Err(e) => {
                self.sleepers.fetch_sub(1, Relaxed);
                return Err(e);
            }
        };
        // Sleep in slices: should a wake ever be skipped (a `sleepers` count damaged in the
        // shared file), the bumped `seq` is still seen when the slice ends.
        let notified = loop {
            let outcome = self.seq.wait(seq, owners.slice_end(deadline));
            if outcome != WaitOutcome::TimedOut || self.seq.load(Relaxed) != seq {
                break true;
            }
            if owners.expired(deadline) {
                break false;
            }
        };
        self.sleepers.fetch_sub(1, Relaxed);
        let relock = self.lock.restore(me, token, count, Block::Forever, owners);
        Ok(Waited { notified, relock })
    }

    /// Wakes up to `n` waiters, as thread `me` of the process with `token`, which must own
    /// the lock. Never blocks.
    pub fn notify(&self, me: u32, token: u32, n: u32) -> Result<(), RError> {
        self.lock.check_owner(me, token)?;
        if n == 0 {
            return Ok(());
        }
        // Bump even with no sleeper counted: `sleepers` lives in shared memory, and a damaged
        // count must cost at most a skipped wake call, never a lost notify (a waiter that is
        // not woken sees the new `seq` when its sleep slice ends).
        self.seq.fetch_add(1, Relaxed);
        if self.sleepers.load(Relaxed) == 0 {
            return Ok(());
        }
        if n == 1 {
            self.seq.wake_one();
        } else if n >= i32::MAX as u32 {
            self.seq.wake_all();
        } else {
            self.seq.wake_n(n);
        }
        Ok(())
    }
}
