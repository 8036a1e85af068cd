//! The production word's adaptive spin, and how many CPUs are online.
//!
//! A process-local budget per lock, raised when spinning
//! catches the word free and halved when the waiter has to sleep anyway.
//!
//! The budgets live in a small process-local table indexed by the word's address (objects
//! are 128-byte aligned, so neighbouring locks land in different slots; two locks that share a
//! slot share a budget, which is only a hint). Nothing here is shared with other processes.
//!
//! A budget that has fallen to the minimum can only rise again if a short spin happens to
//! catch a release, and when both sides of a handoff sleep, none ever does: each waits a whole
//! wake-up, longer than any short spin. So every [`PROBE_EVERY`]th failed spin at the minimum
//! spins the full budget once: if the other side was only slow to wake, that spin catches its
//! release and the budget is back. On one CPU the probe is wasted (the holder cannot run while
//! we spin), which costs one full spin per [`PROBE_EVERY`] sleeps.

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

/// The largest budget, in spin-pause rounds: 50–120 µs at 25–60 ns a round (a `pause`
/// instruction here), longer than a cross-CPU futex wake-up takes on a virtual machine
/// (20–40 µs), so that a waiter whose partner is being woken can still catch the handoff
/// without sleeping itself.
pub(crate) const MAX_BUDGET: u32 = 2048;
/// The smallest budget: one short look before sleeping.
const MIN_BUDGET: u32 = 2;
/// A budget at the minimum spins in full once per this many failed spins.
const PROBE_EVERY: u32 = 512;
const SLOTS: usize = 64;

/// Per slot: the budget in the low 16 bits (0: not used yet, start at the largest), the
/// failed spins at the minimum budget in the high 16 bits.
static HINTS: [AtomicU32; SLOTS] = [const { AtomicU32::new(0) }; SLOTS];

#[inline]
/// The budget slot of the word at address `addr`.
fn slot(addr: usize) -> &'static AtomicU32 {
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

pub(crate) fn budget(addr: usize) -> u32 {
    if online_cpus() <= 1 {
        // The holder can only run when we stop: spinning only delays it.
        return 0;
    }
    granted(slot(addr).load(Relaxed))
}

pub(crate) fn ended(addr: usize, paid_off: bool, spent: u32) {
    let slot = slot(addr);
    let old = slot.load(Relaxed);
    let new = next(old, paid_off, spent);
    // Relaxed load and store, no read-modify-write: a lost update between two threads of
    // this process only costs a slightly different budget.
    if new != old {
        slot.store(new, Relaxed);
    }
}

// ---------------------------------------------------------------------------------------------
// CPUs online (whether spinning can pay off)

/// The number of CPUs online, once known; 0 until the first call.
static ONLINE_CPUS: AtomicU32 = AtomicU32::new(0);

/// How many CPUs the machine has online (`sysconf(_SC_NPROCESSORS_ONLN)`), read once and
/// cached: no system call after the first.
///
/// Not this process's affinity mask (`available_parallelism()`): the lock holder is another
/// thread, usually in another process, and it may well run on another CPU while we can only run
/// on ours. Both processes of a pinned two-CPU benchmark have a mask of one CPU. Only on a
/// machine with one CPU online can we be sure a spinning waiter keeps the holder from running.
#[inline]
fn online_cpus() -> u32 {
    match ONLINE_CPUS.load(Relaxed) {
        0 => read_online_cpus(),
        n => n,
    }
}

#[cold]
fn read_online_cpus() -> u32 {
    // SAFETY: sysconf only reads system information; `_SC_NPROCESSORS_ONLN` is a valid name.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    // An error (-1) counts as "more than one": spinning is then bounded by the adaptive budget.
    let n = u32::try_from(n).unwrap_or(2).max(1);
    ONLINE_CPUS.store(n, Relaxed);
    n
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
