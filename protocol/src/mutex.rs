//! The lock word: a futex mutex that carries its holder's token, and recovers from a holder
//! that died.
//!
//! # The word
//!
//! ```text
//!  31        30         29               28 ..................... 0
//! +---------+----------+----------------+---------------------------+
//! | WAITERS | POISONED | NOT_RECOVERABLE |  holder token (0 = free)  |
//! +---------+----------+----------------+---------------------------+
//! ```
//!
//! - The low 29 bits ([`TOKEN_MASK`]) hold the holder's token, non-zero while held. The region
//!   hands each process a token naming its process-table slot and generation, so a waiter can
//!   ask whether the holder is still alive ([`Owners::is_alive`]).
//! - [`WAITERS`]: a thread may be sleeping on the word; the releaser must wake one.
//! - [`POISONED`]: the lock was taken over from a holder that died, and the new holder has not
//!   yet called [`mark_consistent`]. Releasing a poisoned lock makes it unrecoverable.
//! - [`NOT_RECOVERABLE`]: a poisoned lock was released without being marked consistent. Every
//!   later acquire fails with [`Outcome::NotRecoverable`]. Never combined with a token.
//!
//! | word                          | meaning                                                   |
//! |-------------------------------|-----------------------------------------------------------|
//! | `0`                           | free                                                      |
//! | `t`                           | held by `t`, nobody asleep                                |
//! | `t \| WAITERS`                | held by `t`, someone may sleep: release wakes one         |
//! | `t \| POISONED [\| WAITERS]`  | held by `t`, which took it over from a dead holder        |
//! | `NOT_RECOVERABLE`             | unusable for good                                         |
//! | anything else                 | never written by this protocol (another process's damage);|
//! |                               | handled as the bits say, never undefined behaviour        |
//!
//! # Protocol
//!
//! Acquire is one compare-exchange `0 → token` (Acquire) on the fast path. On failure the caller
//! spins while the word is held, whatever [`WAITERS`] says, backing off between reads, for as
//! long as the word's [`Word::spin_budget`] allows (adapted to whether spinning has been paying
//! off), then sets [`WAITERS`] and sleeps on the word; it spins again after each wake-up, but not
//! after a sleep slice ran out. A thread that has slept always takes the lock *with* [`WAITERS`]
//! set, since it cannot know whether other sleepers remain (the 3-state futex mutex). Sleeps are
//! bounded slices ([`Owners::slice_end`]); when a slice ends the waiter asks whether the holder
//! is alive, and if not, takes the lock over with one compare-exchange from the exact word it
//! saw to `token | POISONED` (keeping [`WAITERS`]): of all the waiters that noticed, exactly
//! one wins and is told [`Outcome::OwnerDied`].
//!
//! A timed acquire that gives up leaves [`WAITERS`] set: at worst the next release makes one
//! needless wake call, and no remaining sleeper is ever forgotten.
//!
//! Release is one compare-exchange `token → 0` (Release) when the releaser is the holder and
//! nobody sleeps. Otherwise (sleepers, poison, or a release by another thread or process, which
//! a plain lock allows) a compare-exchange loop frees the word — or, if it is poisoned, makes it
//! [`NOT_RECOVERABLE`] — and wakes one sleeper (all of them for `NOT_RECOVERABLE`).

use super::Block;
use crate::word::{WaitOutcome, Word};
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::time::Instant;

/// The free word.
pub const UNLOCKED: u32 = 0;
/// Set while some thread may be sleeping on the word.
pub const WAITERS: u32 = 1 << 31;
/// Set while the lock is held by a thread that took it over from a dead holder.
pub const POISONED: u32 = 1 << 30;
/// The word of a lock that can never be acquired again.
pub const NOT_RECOVERABLE: u32 = 1 << 29;
/// The bits that hold the holder's token.
pub const TOKEN_MASK: u32 = (1 << 29) - 1;

/// In the owner word of a per-process record (a semaphore's entry, an `RwLock`'s reader
/// indicator): the process whose token is in the low bits is clearing a dead owner's record.
pub const RECOVERING: u32 = 1 << 31;

/// Whether `state` is held by someone.
#[inline]
pub const fn is_locked(state: u32) -> bool {
    state & TOKEN_MASK != 0
}

/// The holder's token in `state` (0 when free).
#[inline]
pub const fn holder(state: u32) -> u32 {
    state & TOKEN_MASK
}

/// Whether `state` says a thread may be asleep on the word.
#[inline]
pub const fn has_waiters(state: u32) -> bool {
    state & WAITERS != 0
}

/// Whether `state` is held by a thread that took it over from a dead holder and has not
/// marked it consistent.
#[inline]
pub const fn is_poisoned(state: u32) -> bool {
    state & POISONED != 0
}

/// Whether `state` is a lock that can never be acquired again.
#[inline]
pub const fn is_not_recoverable(state: u32) -> bool {
    state & NOT_RECOVERABLE != 0
}

/// What the protocol needs to know about holders and time, supplied by the region in
/// production and by the model in `loom-tests`.
pub trait Owners {
    /// Whether the holder with `token` may still be alive: `false` only if it certainly died.
    fn is_alive(&self, token: u32) -> bool;
    /// The end of the next sleep: the caller's `deadline`, or sooner, so that a waiter regularly
    /// wakes to check on the holder.
    fn slice_end(&self, deadline: Option<Instant>) -> Option<Instant>;
    /// Whether the caller's own `deadline` has passed (`None`: never).
    fn expired(&self, deadline: Option<Instant>) -> bool;
}

/// How an acquire ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The lock is ours.
    Acquired,
    /// The lock is ours, taken over from a holder that died; it is poisoned until
    /// [`mark_consistent`].
    OwnerDied,
    /// The lock can never be acquired again.
    NotRecoverable,
    /// Not acquired: held by a live holder until the deadline (or at the single try).
    Busy,
}

impl Outcome {
    /// Whether the caller now holds the lock.
    #[inline]
    pub fn acquired(self) -> bool {
        matches!(self, Outcome::Acquired | Outcome::OwnerDied)
    }
}

/// Releasing a lock word that was not locked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotLocked;

/// Takes the lock for `token` (non-zero, within [`TOKEN_MASK`]), blocking as `block` allows.
///
/// Acquire ordering on success: everything the previous holder wrote before its release is
/// visible to us.
#[inline]
pub fn lock<W: Word, O: Owners>(word: &W, token: u32, block: Block, owners: &O) -> Outcome {
    debug_assert!(
        token != 0 && token & !TOKEN_MASK == 0,
        "bad token {token:#x}"
    );
    match word.compare_exchange(UNLOCKED, token, Acquire, Relaxed) {
        Ok(_) => Outcome::Acquired,
        Err(seen) => lock_contended(word, token, block, owners, seen),
    }
}

#[cold]
fn lock_contended<W: Word, O: Owners>(
    word: &W,
    token: u32,
    block: Block,
    owners: &O,
    seen: u32,
) -> Outcome {
    let deadline = block.deadline();
    let single_try = block == Block::Try;
    let mut state = if single_try {
        word.load(Relaxed)
    } else {
        // The failed compare-exchange just read the word: the spin starts with a pause, not
        // with another read that would pull the line straight back from the holder.
        spin(word, seen)
    };
    // A single try asks about the holder at once; sleepers ask whenever a slice ends.
    let mut check_holder = single_try;
    let mut out_of_time = single_try;
    let mut slept = false;
    loop {
        if is_not_recoverable(state) {
            return Outcome::NotRecoverable;
        }
        if !is_locked(state) {
            // After sleeping we take the lock marked: other sleepers may still be queued and
            // only the mark makes our release wake them.
            let new = token | if slept { WAITERS } else { state & WAITERS };
            match word.compare_exchange(state, new, Acquire, Relaxed) {
                Ok(_) => return Outcome::Acquired,
                Err(s) => {
                    state = s;
                    continue;
                }
            }
        }
        if check_holder {
            check_holder = false;
            if !owners.is_alive(holder(state)) {
                // From the exact word we judged: if anyone changed it (another waiter took it
                // over first, or the holder was a live one after all) the CAS fails.
                let new = token | POISONED | (state & WAITERS);
                match word.compare_exchange(state, new, Acquire, Relaxed) {
                    Ok(_) => return Outcome::OwnerDied,
                    Err(s) => {
                        // Still the dead holder (only a flag changed, say a new waiter's
                        // mark): judge again rather than report a dead holder's lock `Busy`.
                        check_holder = holder(s) == holder(state);
                        state = s;
                        continue;
                    }
                }
            }
        }
        if out_of_time {
            return Outcome::Busy;
        }
        if !has_waiters(state) {
            // Relaxed: the mark publishes no data, and the futex wait below re-checks the word
            // atomically with respect to the releaser's wake.
            match word.compare_exchange(state, state | WAITERS, Relaxed, Relaxed) {
                Ok(_) => state |= WAITERS,
                Err(s) => {
                    state = s;
                    continue;
                }
            }
        }
        slept = true;
        state = if word.wait(state, owners.slice_end(deadline)) == WaitOutcome::TimedOut {
            // A slice (or the whole wait) ended: look at the holder once more before sleeping
            // again or giving up. WAITERS stays set: others may still sleep. No spin: the word
            // stayed held for a whole slice, a few more microseconds will not free it.
            check_holder = true;
            out_of_time = owners.expired(deadline);
            word.load(Relaxed)
        } else {
            spin(word, word.load(Relaxed))
        };
    }
}

/// The first pause of a spin, in [`Word::spin_pause`] rounds; each later one is twice the
/// previous, up to [`MAX_GAP`].
///
/// The first reads decide the handoff latency: a release between two processes that both keep
/// running is caught within about this many rounds (on the 2-CPU VM these figures come from, a
/// round is 25–60 ns, and a ping-pong round trip measured 0.6 µs with a first pause of 2
/// rounds, 0.75 µs with 4, 1.3 µs with 8, 2.2 µs with 16). They also decide how soon a waiter
/// pulls the line back from a holder that just took the lock: in A/B runs of two processes
/// hammering one lock on that (loaded) machine, the throughput against a futex mutex whose
/// waiter sleeps at once was 0.8–0.95× with a first pause of 2 (and at most 16), 0.7–1.05× with
/// 4 (at most 256), 0.95–1.15× with 16: differences inside that machine's noise.
const FIRST_GAP: u32 = 4;
/// The longest pause between two reads of a held word. Every read pulls the word's cache line
/// away from the holder, which then misses on its next acquire or release, and may catch the
/// word free and take the lock to the other CPU: a waiter that reads seldom leaves a holder that
/// takes the lock again and again to run at full speed, as a sleeping waiter would, without a
/// system call on either side.
const MAX_GAP: u32 = 256;

/// Re-reads the word while it is held, with exponentially growing pauses between reads, until
/// it is seen free or the word's [`Word::spin_budget`] is spent; returns the last value read
/// (`state`, the value the caller last read, if that is already free).
///
/// It spins whatever the [`WAITERS`] bit says: a lock that has had a sleeper keeps the bit
/// (a woken waiter takes it marked), and skipping the spin then would keep every later
/// handoff on the futex path. How long it spins is the word's business: the budget adapts to
/// whether spinning has been paying off ([`Word::spin_ended`]).
#[inline]
fn spin<W: Word>(word: &W, state: u32) -> u32 {
    // Relaxed: reads only to decide whether to keep spinning; the CAS that follows orders.
    spin_while(word, state, || word.load(Relaxed), is_locked)
}

/// The spin of [`spin`], for any state: re-reads it with `read` while `busy` says so (`value`
/// is the caller's last read), within `budget`'s [`Word::spin_budget`], and tells `budget`
/// whether it paid off. Returns the last value read.
#[inline]
pub(crate) fn spin_while<W: Word, T: Copy>(
    budget: &W,
    mut value: T,
    read: impl Fn() -> T,
    busy: impl Fn(T) -> bool,
) -> T {
    if !busy(value) {
        return value;
    }
    let limit = budget.spin_budget().min(W::SPIN_LIMIT);
    if limit == 0 {
        return value;
    }
    let mut spent = 0;
    let mut gap = FIRST_GAP;
    while spent < limit {
        let pause = gap.min(limit - spent);
        budget.spin_pause(pause);
        spent += pause;
        value = read();
        if !busy(value) {
            budget.spin_ended(true, spent);
            return value;
        }
        gap = gap.saturating_mul(2).min(MAX_GAP);
    }
    budget.spin_ended(false, spent);
    value
}

/// Releases the lock. `token` is the caller's own token: the fast path is for a holder with no
/// sleepers; any thread or process may release (slow path), as Python's `Lock.release()`
/// allows. Wakes one sleeper if there may be one. A poisoned lock becomes [`NOT_RECOVERABLE`]
/// and every sleeper is woken to hear so.
///
/// Release ordering: our writes under the lock become visible to the next acquirer.
#[inline]
pub fn unlock<W: Word>(word: &W, token: u32) -> Result<(), NotLocked> {
    if word
        .compare_exchange(token, UNLOCKED, Release, Relaxed)
        .is_ok()
    {
        return Ok(());
    }
    unlock_contended(word, None)
}

/// Releases the lock only if it is held with `token` (a guard's release): a hold that someone
/// else released, and another process then re-took, is not ours to end. Otherwise as
/// [`unlock`]; returns [`NotLocked`] if the lock is not held with `token`.
#[inline]
pub fn unlock_own<W: Word>(word: &W, token: u32) -> Result<(), NotLocked> {
    if word
        .compare_exchange(token, UNLOCKED, Release, Relaxed)
        .is_ok()
    {
        return Ok(());
    }
    unlock_contended(word, Some(token))
}

#[cold]
fn unlock_contended<W: Word>(word: &W, only: Option<u32>) -> Result<(), NotLocked> {
    let mut state = word.load(Relaxed);
    loop {
        if !is_locked(state) || only.is_some_and(|t| holder(state) != t) {
            return Err(NotLocked);
        }
        let new = if is_poisoned(state) {
            NOT_RECOVERABLE
        } else {
            UNLOCKED
        };
        match word.compare_exchange(state, new, Release, Relaxed) {
            Ok(_) => {
                if new == NOT_RECOVERABLE {
                    word.wake_all();
                } else if has_waiters(state) {
                    word.wake_one();
                }
                return Ok(());
            }
            Err(s) => state = s,
        }
    }
}

/// Clears the poison of a lock the caller holds (after repairing what it protects). Returns
/// whether it was poisoned.
pub fn mark_consistent<W: Word>(word: &W) -> bool {
    // Relaxed: only the holder changes POISONED, and its release orders the repair.
    is_poisoned(word.fetch_and(!POISONED, Relaxed))
}
