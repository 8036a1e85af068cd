//! The word abstraction every protocol in this crate is written against.
//!
//! A protocol never touches an atomic or makes a system call directly: it calls the methods of
//! [`Word`]. shmsync implements [`Word`] for its futex word (an `AtomicU32` in a shared mapping,
//! waiting and waking through shared futexes); the `loom-tests` crate implements it with loom
//! atomics and a modelled futex, so the model checker explores the very protocol code that
//! ships.

use std::sync::atomic::Ordering;
use std::time::Instant;

/// Why a call to [`Word::wait`] returned.
///
/// Protocols must treat every outcome except [`WaitOutcome::TimedOut`] as "look at the word
/// again": a futex wait may also return spuriously (a signal, a wake meant for an earlier state).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitOutcome {
    /// A wake call (or a spurious wake-up, such as a signal) ended the wait.
    Woken,
    /// The word did not hold the expected value, so the caller did not sleep.
    ValueChanged,
    /// The absolute deadline passed.
    TimedOut,
}

/// A 32-bit atomic word that threads, possibly in different processes, can also sleep on.
///
/// The operations mirror [`AtomicU32`](std::sync::atomic::AtomicU32); [`Word::wait`] and the wake calls mirror a futex.
pub trait Word {
    /// The most a contended acquire spins before it sleeps, in rounds of [`Word::spin_pause`]
    /// (see [`Word::spin_budget`]). Production code spins up to about a cross-CPU wake-up's
    /// latency; a model checker uses a tiny bound to keep the state space small.
    const SPIN_LIMIT: u32;

    /// Atomically loads the word.
    fn load(&self, order: Ordering) -> u32;
    /// Atomically stores `value`.
    fn store(&self, value: u32, order: Ordering);
    /// Atomically replaces the word with `value`, returning the previous value.
    fn swap(&self, value: u32, order: Ordering) -> u32;
    /// Strong compare-and-exchange, as [`AtomicU32::compare_exchange`](std::sync::atomic::AtomicU32::compare_exchange).
    fn compare_exchange(
        &self,
        current: u32,
        new: u32,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u32, u32>;
    /// Wrapping add, returning the previous value.
    fn fetch_add(&self, value: u32, order: Ordering) -> u32;
    /// Wrapping subtract, returning the previous value.
    fn fetch_sub(&self, value: u32, order: Ordering) -> u32;
    /// Bitwise or, returning the previous value.
    fn fetch_or(&self, value: u32, order: Ordering) -> u32;
    /// Bitwise and, returning the previous value.
    fn fetch_and(&self, value: u32, order: Ordering) -> u32;

    /// Sleeps while the word holds `expected`, until woken or until `deadline` (monotonic clock;
    /// `None` waits without limit). Returns at once with [`WaitOutcome::ValueChanged`] if the
    /// word differs from `expected` (the check and the sleep are atomic with respect to wakes).
    fn wait(&self, expected: u32, deadline: Option<Instant>) -> WaitOutcome;
    /// Wakes at most one thread sleeping in [`Word::wait`] on this word, in any process.
    fn wake_one(&self);
    /// Wakes every thread sleeping in [`Word::wait`] on this word, in any process.
    fn wake_all(&self);
    /// [`Word::wake_one`], telling whether it woke a thread (`false`: nobody was asleep on the
    /// word). The default wakes and says it did, which makes callers that act on "nobody"
    /// never act.
    fn wake_one_counted(&self) -> bool {
        self.wake_one();
        true
    }
    /// Wakes at most `n` threads sleeping on this word (waking more is allowed: every waiter
    /// re-checks its condition).
    fn wake_n(&self, n: u32) {
        let _ = n;
        self.wake_all();
    }
    /// Called once per iteration of a spin loop.
    fn spin_hint(&self) {
        std::hint::spin_loop();
    }

    /// Pauses for `rounds` rounds between two reads of a contended word (the back-off of a
    /// spin). The default calls [`Word::spin_hint`] `rounds` times.
    fn spin_pause(&self, rounds: u32) {
        for _ in 0..rounds {
            self.spin_hint();
        }
    }

    /// How many rounds of [`Word::spin_pause`] a contended acquire may spend on this word
    /// before it sleeps: 0 for no spin at all, at most [`Word::SPIN_LIMIT`]. The production
    /// word adapts it per lock (process-local, see [`Word::spin_ended`]) and answers 0 on a
    /// machine with one CPU online (a spinning waiter would only keep the holder from running).
    /// The default is the fixed [`Word::SPIN_LIMIT`].
    fn spin_budget(&self) -> u32 {
        Self::SPIN_LIMIT
    }

    /// Told how a spin that found the word held ended: `paid_off` if the word was seen free
    /// before the budget ran out (`false`: the caller is about to sleep), after `spent` rounds
    /// of [`Word::spin_pause`]. Feedback for [`Word::spin_budget`]; the default ignores it.
    fn spin_ended(&self, paid_off: bool, spent: u32) {
        let _ = (paid_off, spent);
    }
}

/// A step of a protocol that a model checker may break on purpose (a *mutation*), to show that
/// its models notice. Production words never break anything ([`Word64::mutated`] is `false`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The semaphore's record of a frozen tag is not written into its entry (the permits of the
    /// tag are counted nowhere once the tag leaves the state word).
    SkipRecord,
    /// The semaphore replaces another entry's tag without freezing and recording it first
    /// (helping skipped).
    SkipHelp,
    /// The semaphore decides whether a frozen tag was recorded without comparing the entry's
    /// epoch to the tag's (a tag compared without its sequence).
    IgnoreEpoch,
}

/// A 64-bit atomic word in shared memory, nobody sleeps on (the operations mirror
/// [`AtomicU64`](std::sync::atomic::AtomicU64)): for state that must change as one with more
/// bits than a futex word has.
pub trait Word64 {
    /// Atomically loads the word.
    fn load(&self, order: Ordering) -> u64;
    /// Atomically stores `value`.
    fn store(&self, value: u64, order: Ordering);
    /// Strong compare-and-exchange, as
    /// [`AtomicU64::compare_exchange`](std::sync::atomic::AtomicU64::compare_exchange).
    fn compare_exchange(
        &self,
        current: u64,
        new: u64,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u64, u64>;
    /// Whether the model checker breaks step `fault` of the protocol using this word (see
    /// [`Fault`]). Always `false` in production, where it compiles away.
    #[inline(always)]
    fn mutated(&self, fault: Fault) -> bool {
        let _ = fault;
        false
    }
}
