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

/// The production word: an [`AtomicU32`] in a shared mapping. Waiting and waking are the
/// shared-futex calls of `src/sys.rs`.
impl Word for AtomicU32 {
    const SPIN_LIMIT: u32 = adaptive::MAX_BUDGET;

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
    #[inline]
    fn spin_budget(&self) -> u32 {
        adaptive::budget(self)
    }
    #[inline]
    fn spin_ended(&self, paid_off: bool, spent: u32) {
        adaptive::ended(self, paid_off, spent)
    }
}

/// The production word's adaptive spin: a process-local budget per lock, raised when spinning
/// catches the word free and halved when the waiter has to sleep anyway.
///
/// The budgets live in a small process-local table indexed by the word's address (objects
/// are 128-byte aligned, so neighbouring locks land in different slots; two locks that share a
/// slot share a budget, which is only a hint). Nothing here is shared with other processes.
///
/// A budget that has fallen to the minimum can only rise again if a short spin happens to
/// catch a release, and when both sides of a handoff sleep, none ever does: each waits a whole
/// wake-up, longer than any short spin. So every [`PROBE_EVERY`]th failed spin at the minimum
/// spins the full budget once: if the other side was only slow to wake, that spin catches its
/// release and the budget is back. On one CPU the probe is wasted (the holder cannot run while
/// we spin), which costs one full spin per [`PROBE_EVERY`] sleeps.
mod adaptive {
    use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

    /// The largest budget, in spin-pause rounds: 50–120 µs at 25–60 ns a round (a `pause`
    /// instruction here), longer than a cross-CPU futex wake-up takes on a virtual machine
    /// (20–40 µs), so that a waiter whose partner is being woken can still catch the handoff
    /// without sleeping itself.
    pub(super) const MAX_BUDGET: u32 = 2048;
    /// The smallest budget: one short look before sleeping.
    const MIN_BUDGET: u32 = 2;
    /// A budget at the minimum spins in full once per this many failed spins.
    const PROBE_EVERY: u32 = 512;
    const SLOTS: usize = 64;

    /// Per slot: the budget in the low 16 bits (0: not used yet, start at the largest), the
    /// failed spins at the minimum budget in the high 16 bits.
    static HINTS: [AtomicU32; SLOTS] = [const { AtomicU32::new(0) }; SLOTS];

    #[inline]
    fn slot(word: &AtomicU32) -> &'static AtomicU32 {
        let addr = word as *const AtomicU32 as usize;
        &HINTS[((addr >> 7) ^ (addr >> 13)) % SLOTS]
    }

    /// (budget, failed spins at the minimum) of a slot's `hint`.
    #[inline]
    fn decode(hint: u32) -> (u32, u32) {
        match hint & 0xffff {
            0 => (MAX_BUDGET, 0),
            b => (b, hint >> 16),
        }
    }

    /// The budget a slot holding `hint` grants (a full probe once in a while at the minimum).
    #[inline]
    fn granted(hint: u32) -> u32 {
        match decode(hint) {
            (MIN_BUDGET, failed) if failed % PROBE_EVERY == PROBE_EVERY - 1 => MAX_BUDGET,
            (budget, _) => budget,
        }
    }

    /// The hint after a spin from `hint` ended, having `paid_off` after `spent` rounds.
    fn next(hint: u32, paid_off: bool, spent: u32) -> u32 {
        let (b, failed) = decode(hint);
        let (b, failed) = if paid_off {
            // At least twice what this wait took: the next one may take a little longer.
            (
                b.saturating_mul(2)
                    .max(spent.saturating_mul(2))
                    .min(MAX_BUDGET),
                0,
            )
        } else if b <= MIN_BUDGET {
            (MIN_BUDGET, (failed + 1) & 0xffff)
        } else {
            ((b / 2).max(MIN_BUDGET), 0)
        };
        b | failed << 16
    }

    pub(super) fn budget(word: &AtomicU32) -> u32 {
        if crate::sys::online_cpus() <= 1 {
            // The holder can only run when we stop: spinning only delays it.
            return 0;
        }
        granted(slot(word).load(Relaxed))
    }

    pub(super) fn ended(word: &AtomicU32, paid_off: bool, spent: u32) {
        let slot = slot(word);
        let old = slot.load(Relaxed);
        let new = next(old, paid_off, spent);
        // Relaxed load and store, no read-modify-write: a lost update between two threads of
        // this process only costs a slightly different budget.
        if new != old {
            slot.store(new, Relaxed);
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn a_fresh_lock_spins_in_full() {
            assert_eq!(granted(0), MAX_BUDGET);
        }

        #[test]
        fn failures_halve_down_to_the_minimum_and_successes_double() {
            let mut hint = 0;
            let mut budgets = vec![];
            for _ in 0..12 {
                hint = next(hint, false, granted(hint));
                budgets.push(granted(hint));
            }
            assert_eq!(&budgets[..4], &[1024, 512, 256, 128]);
            assert_eq!(budgets[11], MIN_BUDGET);
            hint = next(hint, true, 1);
            assert_eq!(granted(hint), 2 * MIN_BUDGET);
            // A success after a long wait grants at least twice that wait.
            hint = next(hint, true, 300);
            assert_eq!(granted(hint), 600);
            hint = next(hint, true, 5000);
            assert_eq!(granted(hint), MAX_BUDGET);
        }

        #[test]
        fn a_budget_at_the_minimum_probes_in_full_now_and_then() {
            let mut hint = MIN_BUDGET;
            let mut probes = 0;
            for _ in 0..3 * PROBE_EVERY {
                let b = granted(hint);
                if b == MAX_BUDGET {
                    probes += 1;
                }
                // Every spin fails, the probes too (one CPU, say).
                hint = next(hint, false, b);
                assert_eq!(decode(hint).0, MIN_BUDGET);
            }
            assert_eq!(probes, 3);
            // A probe that pays off restores the budget at once.
            while granted(hint) != MAX_BUDGET {
                hint = next(hint, false, MIN_BUDGET);
            }
            hint = next(hint, true, 1500);
            assert_eq!(granted(hint), MAX_BUDGET);
        }

        #[test]
        fn the_failure_count_never_spills_into_the_budget() {
            let mut hint = MIN_BUDGET;
            for _ in 0..70_000 {
                hint = next(hint, false, MIN_BUDGET);
                assert_eq!(decode(hint).0, MIN_BUDGET);
            }
        }
    }
}
