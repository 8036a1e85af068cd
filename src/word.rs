//! The word abstraction every lock protocol is written against.
//!
//! A protocol in [`crate::protocol`] never touches an atomic or makes a system call directly: it
//! calls the methods of [`Word`]. The library implements [`Word`] for [`AtomicU32`] living in a
//! shared mapping, with waiting and waking done by shared (non-private) futexes (see
//! `src/sys.rs`); the `loom-tests` crate implements it with loom atomics and a modelled futex, so
//! the model checker explores the very protocol code that ships.

use std::sync::atomic::{AtomicU32, Ordering};
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
/// The operations mirror [`AtomicU32`]; [`Word::wait`] and the wake calls mirror a futex.
pub trait Word {
    /// How many times a contended acquire re-reads the word before it sleeps. Production code
    /// spins briefly; a model checker uses a tiny bound to keep the state space small.
    const SPIN_LIMIT: u32;

    /// Atomically loads the word.
    fn load(&self, order: Ordering) -> u32;
    /// Atomically stores `value`.
    fn store(&self, value: u32, order: Ordering);
    /// Atomically replaces the word with `value`, returning the previous value.
    fn swap(&self, value: u32, order: Ordering) -> u32;
    /// Strong compare-and-exchange, as [`AtomicU32::compare_exchange`].
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
}

/// The production word: an [`AtomicU32`] in a shared mapping. Waiting and waking are the
/// shared-futex calls of `src/sys.rs`.
impl Word for AtomicU32 {
    const SPIN_LIMIT: u32 = 100;

    #[inline]
    fn load(&self, order: Ordering) -> u32 {
        AtomicU32::load(self, order)
    }
    #[inline]
    fn store(&self, value: u32, order: Ordering) {
        AtomicU32::store(self, value, order)
    }
    #[inline]
    fn swap(&self, value: u32, order: Ordering) -> u32 {
        AtomicU32::swap(self, value, order)
    }
    #[inline]
    fn compare_exchange(
        &self,
        current: u32,
        new: u32,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u32, u32> {
        AtomicU32::compare_exchange(self, current, new, success, failure)
    }
    #[inline]
    fn fetch_add(&self, value: u32, order: Ordering) -> u32 {
        AtomicU32::fetch_add(self, value, order)
    }
    #[inline]
    fn fetch_sub(&self, value: u32, order: Ordering) -> u32 {
        AtomicU32::fetch_sub(self, value, order)
    }
    #[inline]
    fn fetch_or(&self, value: u32, order: Ordering) -> u32 {
        AtomicU32::fetch_or(self, value, order)
    }
    #[inline]
    fn fetch_and(&self, value: u32, order: Ordering) -> u32 {
        AtomicU32::fetch_and(self, value, order)
    }
    #[inline]
    fn wait(&self, expected: u32, deadline: Option<Instant>) -> WaitOutcome {
        crate::sys::futex_wait(self, expected, deadline)
    }
    #[inline]
    fn wake_one(&self) {
        crate::sys::futex_wake(self, 1);
    }
    #[inline]
    fn wake_all(&self) {
        crate::sys::futex_wake(self, i32::MAX);
    }
    #[inline]
    fn wake_n(&self, n: u32) {
        crate::sys::futex_wake(self, n.min(i32::MAX as u32) as i32);
    }
}
