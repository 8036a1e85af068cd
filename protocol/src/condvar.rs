//! The condition variable: a sequence word that notifiers bump and waiters sleep on, and a
//! word counting sleepers and the wake-ups handed out to them, next to its lock: the
//! [`RMutex`] of an `RLock` or the [`PlainLock`] word of a `Lock` (both [`CondLock`]).
//!
//! # The words
//!
//! - `seq`: bumped (wrapping) by every notify (with `n > 0`), whether or not it finds a
//!   sleeper. Waiters sleep on it.
//! - `sleepers`:
//!
//!   ```text
//!    31 ................. 16   15 ................. 0
//!   +-------------------------+-----------------------+
//!   |  signals                |  sleepers             |
//!   +-------------------------+-----------------------+
//!   ```
//!
//!   `sleepers`: threads counted between entering [`wait`](Condvar::wait) and leaving it.
//!   `signals`: wake-ups handed out by notifies and not yet consumed by a waiter. Both are
//!   read and written only by a holder of the lock (plain load and store, no read-modify-write
//!   needed), and `signals <= sleepers` as long as nobody dies in a wait and the word is not
//!   damaged.
//!
//! # Protocol
//!
//! All the bookkeeping happens under the lock; only the sleeping happens outside it.
//!
//! - [`notify(n)`](Condvar::notify) (lock held): `k = min(n, sleepers - signals)` (waiters
//!   counted and not yet handed a wake-up), `signals += k`, bump `seq`, wake `k` sleepers on
//!   `seq` (every sleeper for `notify_all`, `n >= 2^31 - 1`).
//! - [`wait`](Condvar::wait) (lock held): reads `seq` into `seq0` and counts itself in
//!   `sleepers`, leaves the lock entirely (remembering its recursion count), then sleeps on
//!   `seq` in slices ([`Owners::slice_end`]). It looks again, under the lock, whenever `seq !=
//!   seq0` or its deadline passed (a slice that ends with `seq` unchanged and time left just
//!   sleeps again, without the lock). Under the lock:
//!   - `seq != seq0` and `signals > 0`: it consumes one (`signals -= 1, sleepers -= 1`) and
//!     returns notified;
//!   - its deadline passed: `sleepers -= 1`, returns not notified;
//!   - otherwise (the wake-up went to another waiter): `seq0 = seq`, and it leaves the lock and
//!     sleeps again.
//!
//! So `notify(n)` wakes at most `n` waiters, and every wait that returns notified consumed a
//! wake-up that a notify handed out while it was counted. A waiter that arrives after a notify
//! cannot take that notify's wake-up: its `seq0` already includes the bump, and it looks for a
//! wake-up only after a later bump (which hands out wake-ups for it too). Which of the waiters
//! counted at a notify gets its wake-up is not specified (the futex wakes some, a waiter whose
//! slice ended may get there first); the one woken for nothing sleeps again.
//!
//! # Why the orderings are enough
//!
//! Everything but the sleep is done by a holder of the lock, whose Acquire/Release orders it:
//! a notifier sees every waiter that counted itself before leaving the lock, and a waiter that
//! takes the lock back sees every notify's `signals` and `seq` written before. A notify that
//! comes after the waiter let go of the lock changed `seq`, so the waiter's futex wait, which
//! compares `seq` atomically with going to sleep, cannot miss it. The one read outside the lock
//! (`seq` after a slice ended) only decides whether to look under the lock now; a stale read
//! costs one more slice, and the futex wait that follows compares `seq` again.
//!
//! # Deaths and damage
//!
//! A notifier never waits for a sleeper (Python's `Condition.notify` can block on a sleeper
//! killed at the wrong moment). Wait slices make a skipped or lost futex wake cost one slice,
//! not a notify: a waiter woken for a wake-up it then does not find, or a woken waiter that
//! died, leaves the wake-up in `signals` for a waiter whose slice ends.
//!
//! A waiter killed in its wait leaves `sleepers` one too high, and a notify may hand it a
//! wake-up it never consumes: such a leftover wake-up goes to a live waiter at a later notify
//! (a wake-up more than that notify's `n`, which looks like a spurious return), never a lost
//! notify or a hang. The counts are clamped: a `sleepers` of 0 seen by a counted waiter
//! (damage) is taken as a wake-up; at 65,535 sleepers a waiter stays uncounted and takes any
//! change of `seq` for a wake-up (it is woken by slices, not by wake calls). A relock that does
//! not get the lock back ([`Outcome::NotRecoverable`]) leaves its count, as a dead waiter does.
//!
//! Callers re-check their predicate after a wait, as with every condition variable.

use super::Block;
use super::mutex::{self, Outcome, Owners};
use super::rmutex::{RError, RMutex};
use crate::word::Word;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

/// In the `sleepers` word: where the count of handed-out wake-ups starts.
pub const SIGNAL_SHIFT: u32 = 16;
/// In the `sleepers` word: the count of sleepers (and the most of each count).
pub const COUNT_MASK: u32 = (1 << SIGNAL_SHIFT) - 1;

/// The sleepers counted in the `sleepers` word.
#[inline]
pub const fn sleepers(word: u32) -> u32 {
    word & COUNT_MASK
}

/// The wake-ups handed out and not yet consumed, in the `sleepers` word.
#[inline]
pub const fn signals(word: u32) -> u32 {
    word >> SIGNAL_SHIFT
}

#[inline]
const fn pack(signals: u32, sleepers: u32) -> u32 {
    (signals << SIGNAL_SHIFT) | (sleepers & COUNT_MASK)
}

/// The lock a condition variable leaves while it sleeps and takes back after: an [`RMutex`]
/// (Python's default, `Condition()` or `Condition(RLock())`) or a [`PlainLock`]
/// (`Condition(Lock())`).
pub trait CondLock {
    /// `Ok` if thread `me` of the process with `token` may wait or notify: it holds the lock.
    fn check_owner(&self, me: u32, token: u32) -> Result<(), RError>;
    /// Leaves the lock entirely; returns what [`CondLock::restore`] needs (a recursion count).
    fn release_all(&self, me: u32, token: u32) -> Result<u32, RError>;
    /// Takes the lock back after [`CondLock::release_all`].
    fn restore<O: Owners>(
        &self,
        me: u32,
        token: u32,
        count: u32,
        block: Block,
        owners: &O,
    ) -> Outcome;
}

impl<W: Word> CondLock for RMutex<'_, W> {
    #[inline]
    fn check_owner(&self, me: u32, token: u32) -> Result<(), RError> {
        RMutex::check_owner(self, me, token)
    }
    #[inline]
    fn release_all(&self, me: u32, token: u32) -> Result<u32, RError> {
        RMutex::release_all(self, me, token)
    }
    #[inline]
    fn restore<O: Owners>(
        &self,
        me: u32,
        token: u32,
        count: u32,
        block: Block,
        owners: &O,
    ) -> Outcome {
        RMutex::restore(self, me, token, count, block, owners)
    }
}

/// A plain mutex word (a `Lock`'s), which names the process that holds it, not the thread:
/// any thread of the holding process may wait on or notify the condition (Python's
/// `Condition(Lock())` only asks that the lock be held).
#[derive(Clone, Copy, Debug)]
pub struct PlainLock<'a, W>(pub &'a W);

impl<W: Word> CondLock for PlainLock<'_, W> {
    #[inline]
    fn check_owner(&self, _me: u32, token: u32) -> Result<(), RError> {
        let word = self.0.load(Relaxed);
        if mutex::is_locked(word) && mutex::holder(word) == token {
            Ok(())
        } else if mutex::is_locked(word) {
            Err(RError::NotOwner)
        } else {
            Err(RError::NotLocked)
        }
    }
    fn release_all(&self, me: u32, token: u32) -> Result<u32, RError> {
        self.check_owner(me, token)?;
        mutex::unlock(self.0, token).map_err(|mutex::NotLocked| RError::NotLocked)?;
        Ok(1)
    }
    fn restore<O: Owners>(
        &self,
        _me: u32,
        token: u32,
        _count: u32,
        block: Block,
        owners: &O,
    ) -> Outcome {
        mutex::lock(self.0, token, block, owners)
    }
}

/// The words of a condition variable.
#[derive(Clone, Copy, Debug)]
pub struct Condvar<'a, W, L = RMutex<'a, W>> {
    /// The lock.
    pub lock: L,
    /// Bumped by each notify.
    pub seq: &'a W,
    /// `signals << SIGNAL_SHIFT | sleepers` (see the module docs).
    pub sleepers: &'a W,
}

/// How a wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Waited {
    /// Whether the wait consumed a notify's wake-up (`false`: the deadline passed first, or
    /// the relock found the lock's holder dead).
    pub notified: bool,
    /// How the lock was taken back ([`Outcome::OwnerDied`] if a holder died meanwhile).
    pub relock: Outcome,
}

impl<W: Word, L: CondLock> Condvar<'_, W, L> {
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
        // Relaxed here and below for `seq` and `sleepers`: written and read under the lock
        // (see the module docs).
        let mut seq = self.seq.load(Relaxed);
        let word = self.sleepers.load(Relaxed);
        let counted = sleepers(word) < COUNT_MASK;
        if counted {
            self.sleepers
                .store(pack(signals(word), sleepers(word) + 1), Relaxed);
        }
        let mut count = match self.lock.release_all(me, token) {
            Ok(count) => count,
            Err(e) => {
                self.leave(counted);
                return Err(e);
            }
        };
        loop {
            // Sleep in slices: a wake call that was skipped or went to a waiter that then
            // found no wake-up (or died) costs one slice, not a notify.
            self.seq.wait(seq, owners.slice_end(deadline));
            if self.seq.load(Relaxed) == seq && !owners.expired(deadline) {
                // A slice ended, or a spurious return (a signal): no notify since we looked.
                continue;
            }
            let relock = self.lock.restore(me, token, count, Block::Forever, owners);
            if !relock.acquired() {
                // The lock is gone for good: nothing can be counted any more.
                return Ok(Waited {
                    notified: false,
                    relock,
                });
            }
            let now = self.seq.load(Relaxed);
            if now != seq && self.consume(counted) {
                return Ok(Waited {
                    notified: true,
                    relock,
                });
            }
            if relock != Outcome::Acquired || owners.expired(deadline) {
                // Out of time, or a holder died: the caller must hear of it now.
                self.leave(counted);
                return Ok(Waited {
                    notified: false,
                    relock,
                });
            }
            // The wake-up went to another waiter: sleep again, from the current `seq`.
            seq = now;
            count = match self.lock.release_all(me, token) {
                Ok(count) => count,
                Err(e) => {
                    self.leave(counted);
                    return Err(e);
                }
            };
        }
    }

    /// Under the lock, after `seq` changed: takes a wake-up if one is there, uncounting the
    /// caller. Returns whether it did (always, for an uncounted waiter, and for a counted one
    /// that finds no sleeper counted: damage).
    fn consume(&self, counted: bool) -> bool {
        if !counted {
            return true;
        }
        let word = self.sleepers.load(Relaxed);
        if signals(word) > 0 {
            self.sleepers.store(
                pack(signals(word) - 1, sleepers(word).saturating_sub(1)),
                Relaxed,
            );
            return true;
        }
        sleepers(word) == 0
    }

    /// Under the lock: uncounts the caller (never below zero).
    fn leave(&self, counted: bool) {
        if counted {
            let word = self.sleepers.load(Relaxed);
            let left = sleepers(word).saturating_sub(1);
            // Never more wake-ups than sleepers (a leftover wake-up meant for this waiter).
            self.sleepers
                .store(pack(signals(word).min(left), left), Relaxed);
        }
    }

    /// Wakes up to `n` waiters, as thread `me` of the process with `token`, which must own
    /// the lock: hands out `min(n, sleepers - signals)` wake-ups (see the module docs). Never
    /// blocks.
    pub fn notify(&self, me: u32, token: u32, n: u32) -> Result<(), RError> {
        self.lock.check_owner(me, token)?;
        if n == 0 {
            return Ok(());
        }
        let word = self.sleepers.load(Relaxed);
        let k = n.min(sleepers(word).saturating_sub(signals(word)));
        if k > 0 {
            self.sleepers
                .store(pack(signals(word) + k, sleepers(word)), Relaxed);
        }
        // Bump even with no wake-up handed out: an uncounted waiter (or one that finds the
        // count damaged) takes any change for a wake-up.
        self.seq.fetch_add(1, Relaxed);
        if n >= i32::MAX as u32 {
            // `notify_all`: wake every sleeper (those without a wake-up sleep again).
            if k > 0 || sleepers(word) > 0 {
                self.seq.wake_all();
            }
        } else if k == 1 {
            self.seq.wake_one();
        } else if k > 1 {
            self.seq.wake_n(k);
        }
        Ok(())
    }
}
