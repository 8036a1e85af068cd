//! The event: a flag that waiters sleep on, in one word.
//!
//! # The word
//!
//! ```text
//!  31 ......................... 2    1         0
//! +--------------------------------+---------+-----+
//! |  generation (sets so far)      | WAITERS | SET |
//! +--------------------------------+---------+-----+
//! ```
//!
//! - [`SET`]: the flag.
//! - [`WAITERS`]: a thread may be asleep on the word; `set` must wake everyone.
//! - the generation counts the times the flag went from clear to set (wrapping). A waiter that
//!   saw generation `g` and finds another has been woken by a `set`, even if a `clear` came
//!   right after it: Python's `Event.wait` returns `True` to every thread that was waiting
//!   when `set` was called.
//!
//! `set` is one compare-exchange to `(g + 1) | SET` (clearing [`WAITERS`]; Release), then a
//! wake of all sleepers if [`WAITERS`] was set. `clear` is `fetch_and(!SET)`. A waiter marks
//! [`WAITERS`] with a compare-exchange and sleeps on the marked value; the futex compares the
//! word atomically with the setter's wake, so no `set` is missed.
//!
//! Nothing here is held, so a process that dies at any point leaves a valid word behind.

use super::Block;
use crate::word::{WaitOutcome, Word};
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

/// The flag.
pub const SET: u32 = 1;
/// A thread may be asleep on the word.
pub const WAITERS: u32 = 2;
/// One step of the generation.
pub const GENERATION: u32 = 4;

/// The generation in `word`.
#[inline]
pub const fn generation(word: u32) -> u32 {
    word & !(SET | WAITERS)
}

/// Whether `word` has the flag set.
#[inline]
pub const fn is_set(word: u32) -> bool {
    word & SET != 0
}

/// Sets the flag and wakes every waiter, in every process.
///
/// Release: a waiter that sees the flag (Acquire) sees what the setter wrote before.
#[inline]
pub fn set<W: Word>(word: &W) {
    let mut state = word.load(Relaxed);
    loop {
        if is_set(state) {
            return;
        }
        let new = generation(state).wrapping_add(GENERATION) | SET;
        match word.compare_exchange(state, new, Release, Relaxed) {
            Ok(_) => break,
            Err(s) => state = s,
        }
    }
    if state & WAITERS != 0 {
        word.wake_all();
    }
}

/// Clears the flag.
#[inline]
pub fn clear<W: Word>(word: &W) {
    // Relaxed: clearing publishes nothing.
    word.fetch_and(!SET, Relaxed);
}

/// Whether the flag is set (Acquire, pairing with [`set`]).
#[inline]
pub fn get<W: Word>(word: &W) -> bool {
    is_set(word.load(Acquire))
}

/// Waits until the flag is set, or a `set` happened while we waited, or `block` runs out.
/// Returns whether the flag was set (Python's return value).
pub fn wait<W: Word>(word: &W, block: Block) -> bool {
    let mut state = word.load(Acquire);
    if is_set(state) {
        return true;
    }
    if block == Block::Try {
        return false;
    }
    let seen = generation(state);
    let deadline = block.deadline();
    loop {
        if state & WAITERS == 0 {
            match word.compare_exchange(state, state | WAITERS, Relaxed, Acquire) {
                Ok(_) => state |= WAITERS,
                Err(s) => {
                    state = s;
                    if is_set(state) || generation(state) != seen {
                        return true;
                    }
                    continue;
                }
            }
        }
        let outcome = word.wait(state, deadline);
        state = word.load(Acquire);
        if is_set(state) || generation(state) != seen {
            return true;
        }
        if outcome == WaitOutcome::TimedOut {
            return false;
        }
    }
}
