//! The lock word: a futex mutex that carries its holder's token.
//!
//! # The word
//!
//! ```text
//!  31        30..29      28 ........................ 0
//! +---------+-----------+-------------------------------+
//! | WAITERS | reserved  |  holder token (0 = unlocked)   |
//! +---------+-----------+-------------------------------+
//! ```
//!
//! - The low 29 bits ([`TOKEN_MASK`]) hold the holder's token; zero means unlocked. The token is
//!   chosen by the caller and must be non-zero and fit in the mask ([`Lock`](crate::Lock) passes a
//!   constant today; owner-death recovery will pass a process-table token).
//! - [`WAITERS`] means "a thread may be sleeping on this word": the releaser must wake one.
//! - Bits 29 and 30 are reserved (zero) for owner-death state.
//!
//! | word            | meaning                                                          |
//! |-----------------|------------------------------------------------------------------|
//! | `0`             | unlocked                                                          |
//! | `t`             | held by `t`, nobody asleep                                        |
//! | `t \| WAITERS`  | held by `t`, some thread may sleep; release must wake             |
//! | `WAITERS`       | never written by this protocol; treated as unlocked with sleepers |
//!
//! # Protocol
//!
//! Acquire is one compare-exchange `0 → token` (Acquire ordering) on the fast path. When that
//! fails the caller spins for [`Word::SPIN_LIMIT`] reads while the holder has no sleepers, then
//! sets [`WAITERS`] and sleeps on the word. A thread that has entered the slow path always takes
//! the lock *with* [`WAITERS`] set, because it cannot know whether other sleepers remain (the
//! classic 3-state futex mutex). A timed acquire that gives up leaves [`WAITERS`] set: at worst
//! the next release makes one needless wake call, and no remaining sleeper is ever forgotten.
//!
//! Release is one `swap(0)` (Release ordering); if the old word had [`WAITERS`], one sleeper is
//! woken.

use super::Block;
use crate::word::{WaitOutcome, Word};
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

/// The unlocked word.
pub const UNLOCKED: u32 = 0;
/// Set while some thread may be sleeping on the word.
pub const WAITERS: u32 = 1 << 31;
/// The bits that hold the holder's token.
pub const TOKEN_MASK: u32 = (1 << 29) - 1;

/// Whether `state` is held by someone.
#[inline]
pub const fn is_locked(state: u32) -> bool {
    state & TOKEN_MASK != 0
}

/// The holder's token in `state` (0 when unlocked).
#[inline]
pub const fn holder(state: u32) -> u32 {
    state & TOKEN_MASK
}

/// Whether `state` says a thread may be asleep on the word.
#[inline]
pub const fn has_waiters(state: u32) -> bool {
    state & WAITERS != 0
}

/// Releasing a lock word that was not locked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotLocked;

/// Tries once to take the lock for `token`; never blocks.
///
/// Acquire ordering on success: everything the previous holder wrote before its release
/// (Release) is visible to us.
#[inline]
pub fn try_lock<W: Word>(word: &W, token: u32) -> bool {
    debug_assert!(
        token != 0 && token & !TOKEN_MASK == 0,
        "bad token {token:#x}"
    );
    word.compare_exchange(UNLOCKED, token, Acquire, Relaxed)
        .is_ok()
}

/// Takes the lock for `token`, blocking as `block` allows. Returns whether it was taken.
#[inline]
pub fn lock<W: Word>(word: &W, token: u32, block: Block) -> bool {
    if try_lock(word, token) {
        return true;
    }
    match block {
        Block::Try => false,
        Block::Until(_) | Block::Forever => lock_contended(word, token, block),
    }
}

#[cold]
fn lock_contended<W: Word>(word: &W, token: u32, block: Block) -> bool {
    let deadline = block.deadline();
    let mut state = spin(word);

    // Nobody was asleep when we looked: try to take it without the mark.
    if state == UNLOCKED {
        match word.compare_exchange(UNLOCKED, token, Acquire, Relaxed) {
            Ok(_) => return true,
            Err(s) => state = s,
        }
    }

    loop {
        if !is_locked(state) {
            // From here on we take the lock marked: other sleepers may still be queued, and
            // only the mark makes our release wake them.
            match word.compare_exchange(state, token | WAITERS, Acquire, Relaxed) {
                Ok(_) => return true,
                Err(s) => {
                    state = s;
                    continue;
                }
            }
        }
        if !has_waiters(state) {
            // Relaxed is enough: the mark publishes no data, and the futex wait below re-checks
            // the word atomically with respect to the releaser's wake.
            match word.compare_exchange(state, state | WAITERS, Relaxed, Relaxed) {
                Ok(_) => state |= WAITERS,
                Err(s) => {
                    state = s;
                    continue;
                }
            }
        }
        if word.wait(state, deadline) == WaitOutcome::TimedOut {
            // Leave WAITERS set: others may still sleep, and the next release must wake them.
            return false;
        }
        state = spin(word);
    }
}

/// Re-reads the word while it is held by someone with no sleepers, at most
/// [`Word::SPIN_LIMIT`] times; returns the last value read.
#[inline]
fn spin<W: Word>(word: &W) -> u32 {
    let mut spins = W::SPIN_LIMIT;
    loop {
        // Relaxed: a read only to decide whether to keep spinning; the CAS that follows orders.
        let state = word.load(Relaxed);
        if !is_locked(state) || has_waiters(state) || spins == 0 {
            return state;
        }
        word.spin_hint();
        spins -= 1;
    }
}

/// Releases the lock (any thread or process may). Wakes one sleeper if the word says there may
/// be one. Returns [`NotLocked`] if the word was not locked.
///
/// Release ordering: our writes under the lock become visible to the next acquirer.
#[inline]
pub fn unlock<W: Word>(word: &W) -> Result<(), NotLocked> {
    let prev = word.swap(UNLOCKED, Release);
    if has_waiters(prev) {
        word.wake_one();
    }
    if is_locked(prev) {
        Ok(())
    } else {
        Err(NotLocked)
    }
}
