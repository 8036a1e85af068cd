//! The barrier: arrivals and rounds in one word, and which rounds ended by a reset in another.
//!
//! # The words
//!
//! `state`:
//!
//! ```text
//!  31        30 ............... 16   15 ............. 0
//! +--------+-----------------------+--------------------+
//! | BROKEN |  round (wrapping)     |  parties arrived   |
//! +--------+-----------------------+--------------------+
//! ```
//!
//! `resets`: bit `round % 32` is set when that round ended by [`reset`](Barrier::reset) rather than by its last
//! party arriving. Only a reset of the round sets it; it is cleared [`CLEAR_AHEAD`] rounds
//! before the round begins (see below).
//!
//! # Protocol
//!
//! A party arrives with a compare-exchange `arrived → arrived + 1` in the current round; its
//! index is the count it found. The last party instead moves the word to the next round with
//! no arrivals (AcqRel), and wakes everyone. The others sleep on the word until the round
//! number changes; then the round's `resets` bit says whether it was completed (`Ok`) or reset
//! (`Err`). [`BROKEN`] (a timeout, [`abort`](Barrier::abort), or a reset under way) fails every waiter of the
//! round and every arrival until a [`reset`](Barrier::reset).
//!
//! [`reset`](Barrier::reset) first breaks the round (so that it cannot complete any more), then records the
//! round in `resets`, then moves to the next round, unbroken, with one compare-exchange from
//! the broken word: of two racing resets exactly one moves the round on.
//!
//! Whoever tries to move the word on from round `r` (its last party, or a reset) first clears
//! the bit of round `r + CLEAR_AHEAD`, a round that cannot have begun yet. The last party must
//! not clear its *own* round's bit: its compare-exchange may still fail because a reset broke
//! the round, and a clear that landed after that reset recorded the round would make the
//! round's other waiters believe it completed (the loom model `reset_races_arrival` found
//! that). Clearing ahead, a clear can only meet a record of its round if the clearing thread
//! was held up for [`CLEAR_AHEAD`] rounds between reading the word and clearing.
//!
//! The state is one word, so a process that dies anywhere leaves a valid barrier: a party that
//! died after arriving still counts for its round. A party that dies *before* arriving cannot
//! be told from a late one; the others wait until their timeout, which breaks the barrier.
//!
//! A waiter reads its round's `resets` bit after the round moved on; the bit is cleared again
//! [`CLEAR_AHEAD`] rounds later, so a waiter that sleeps through that many further rounds
//! (each of which needs every party but it, or a reset) could misread it.

use super::Block;
use crate::word::{WaitOutcome, Word};
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};

/// Set while the current round is broken.
pub const BROKEN: u32 = 1 << 31;
/// The arrival count.
pub const ARRIVED_MASK: u32 = 0xFFFF;
/// The most parties a barrier may have.
pub const MAX_PARTIES: u32 = ARRIVED_MASK;
const ROUND_SHIFT: u32 = 16;
const ROUND_MASK: u32 = 0x7FFF;

/// The round in `state`.
#[inline]
pub const fn round(state: u32) -> u32 {
    (state >> ROUND_SHIFT) & ROUND_MASK
}

/// The parties that arrived in `state`'s round.
#[inline]
pub const fn arrived(state: u32) -> u32 {
    state & ARRIVED_MASK
}

/// Whether `state` is broken.
#[inline]
pub const fn is_broken(state: u32) -> bool {
    state & BROKEN != 0
}

/// The first word of the round after `state`'s: nobody arrived, not broken.
#[inline]
const fn next_round(state: u32) -> u32 {
    ((round(state) + 1) & ROUND_MASK) << ROUND_SHIFT
}

#[inline]
const fn round_bit(round: u32) -> u32 {
    1 << (round % 32)
}

/// How many rounds ahead a thread that moves the word on from a round clears the `resets`
/// bit (see the module docs): half the bitmap, so that a record survives as many rounds as a
/// late clear needs to go wrong.
pub const CLEAR_AHEAD: u32 = 16;

/// The two words of a barrier.
#[derive(Clone, Copy, Debug)]
pub struct Barrier<'a, W> {
    /// `BROKEN | round | arrived`.
    pub state: &'a W,
    /// Bit `round % 32`: that round ended by a reset.
    pub resets: &'a W,
}

/// The barrier was broken (by a timeout, an abort or a reset) before the round completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Broken;

impl<W: Word> Barrier<'_, W> {
    /// Arrives and waits for the round to complete, for at most `block` (`Block::Try` waits
    /// for nothing: only the last party succeeds). Returns the arrival index: 0 for the first
    /// party of the round, `parties - 1` for the last. A waiter that runs out of time breaks
    /// the round for everyone.
    ///
    /// `parties` must be between 1 and [`MAX_PARTIES`].
    pub fn wait(&self, parties: u32, block: Block) -> Result<u32, Broken> {
        debug_assert!((1..=MAX_PARTIES).contains(&parties));
        let mut state = self.state.load(Acquire);
        let index = loop {
            if is_broken(state) || arrived(state) >= parties {
                // (A count at or past `parties` is damage: fail rather than count on.)
                return Err(Broken);
            }
            let index = arrived(state);
            if index + 1 == parties {
                // Completing the round. Its own `resets` bit was cleared before it began (and
                // must stay as it is: should our compare-exchange fail because a reset broke
                // the round, that reset has recorded it there). Clear a future round's bit.
                self.resets
                    .fetch_and(!round_bit(round(state) + CLEAR_AHEAD), Relaxed);
                match self
                    .state
                    .compare_exchange(state, next_round(state), AcqRel, Acquire)
                {
                    Ok(_) => {
                        self.state.wake_all();
                        return Ok(index);
                    }
                    Err(s) => state = s,
                }
            } else {
                match self
                    .state
                    .compare_exchange(state, state + 1, AcqRel, Acquire)
                {
                    Ok(_) => break index,
                    Err(s) => state = s,
                }
            }
        };
        let mine = round(state);
        let deadline = block.deadline();
        let mut out_of_time = block == Block::Try;
        loop {
            state = self.state.load(Acquire);
            if round(state) != mine {
                return if self.resets.load(Acquire) & round_bit(mine) != 0 {
                    Err(Broken)
                } else {
                    Ok(index)
                };
            }
            if is_broken(state) {
                return Err(Broken);
            }
            if out_of_time {
                // Break our round (unless it just completed: then the CAS fails and the loop
                // sees the new round).
                if self
                    .state
                    .compare_exchange(state, state | BROKEN, Relaxed, Relaxed)
                    .is_ok()
                {
                    self.state.wake_all();
                    return Err(Broken);
                }
                continue;
            }
            if self.state.wait(state, deadline) == WaitOutcome::TimedOut {
                out_of_time = true;
            }
        }
    }

    /// Breaks the current round: its waiters, and every later arrival until a [`reset`](Barrier::reset), fail.
    pub fn abort(&self) {
        self.state.fetch_or(BROKEN, Relaxed);
        self.state.wake_all();
    }

    /// Fails the waiters of the current round and starts a fresh, unbroken one.
    pub fn reset(&self) {
        // Break the round first, so that it cannot complete while we record it as reset.
        // Acquire: the clear of this round's bit, made before the word entered the round,
        // happens before our record.
        let mut state = self.state.fetch_or(BROKEN, Acquire) | BROKEN;
        self.resets.fetch_or(round_bit(round(state)), Release);
        self.resets
            .fetch_and(!round_bit(round(state) + CLEAR_AHEAD), Relaxed);
        loop {
            match self
                .state
                .compare_exchange(state, next_round(state), Release, Relaxed)
            {
                Ok(_) => break,
                // Another reset moved on first (or a waiter's break landed on the broken
                // word): if the round is still ours, try again; otherwise it is done.
                Err(s) if round(s) == round(state) => state = s,
                Err(_) => break,
            }
        }
        self.state.wake_all();
    }

    /// Parties waiting in the current round (a snapshot); 0 once the round is broken (its
    /// waiters are leaving), as in Python.
    pub fn n_waiting(&self) -> u32 {
        let state = self.state.load(Relaxed);
        if is_broken(state) { 0 } else { arrived(state) }
    }

    /// Whether the current round is broken (a snapshot).
    pub fn is_broken(&self) -> bool {
        is_broken(self.state.load(Relaxed))
    }
}
