//! Deaths at any step, for the models: a [`Fuse`] counts the word operations of a "process"
//! and unwinds with [`Died`] just before the fatal one; [`Mortal`] and [`MortalWide`] are words
//! as that process uses them (every operation one step).

use crate::{LoomWide, LoomWord};
use shmsync_protocol::word::{Fault, WaitOutcome, Word, Word64};
use std::cell::Cell;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// The unwinding payload of a modelled death.
pub struct Died;

/// Counts the word operations of the dying process, and kills it (unwinds with [`Died`])
/// just before the operation numbered `at` (from 0).
pub struct Fuse {
    at: u32,
    done: Cell<u32>,
}

impl Fuse {
    /// A fuse that kills its process before operation `at` (`u32::MAX`: never).
    pub fn new(at: u32) -> Fuse {
        Fuse {
            at,
            done: Cell::new(0),
        }
    }

    /// How many operations were made.
    pub fn done(&self) -> u32 {
        self.done.get()
    }

    /// One operation: dies first if it is the fatal one.
    pub fn step(&self) {
        if self.done.get() == self.at {
            std::panic::panic_any(Died);
        }
        self.done.set(self.done.get() + 1);
    }
}

/// A word as the dying process uses it: every atomic operation, wait and wake is one step of
/// its [`Fuse`], so a death can fall between any two of them.
pub struct Mortal<'a> {
    /// The word.
    pub word: &'a LoomWord,
    /// The process's fuse.
    pub fuse: &'a Fuse,
}

impl Word for Mortal<'_> {
    const SPIN_LIMIT: u32 = LoomWord::SPIN_LIMIT;
    fn load(&self, order: Ordering) -> u32 {
        self.fuse.step();
        self.word.load(order)
    }
    fn store(&self, value: u32, order: Ordering) {
        self.fuse.step();
        self.word.store(value, order)
    }
    fn swap(&self, value: u32, order: Ordering) -> u32 {
        self.fuse.step();
        self.word.swap(value, order)
    }
    fn compare_exchange(
        &self,
        current: u32,
        new: u32,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u32, u32> {
        self.fuse.step();
        self.word.compare_exchange(current, new, success, failure)
    }
    fn fetch_add(&self, value: u32, order: Ordering) -> u32 {
        self.fuse.step();
        self.word.fetch_add(value, order)
    }
    fn fetch_sub(&self, value: u32, order: Ordering) -> u32 {
        self.fuse.step();
        self.word.fetch_sub(value, order)
    }
    fn fetch_or(&self, value: u32, order: Ordering) -> u32 {
        self.fuse.step();
        self.word.fetch_or(value, order)
    }
    fn fetch_and(&self, value: u32, order: Ordering) -> u32 {
        self.fuse.step();
        self.word.fetch_and(value, order)
    }
    fn wait(&self, expected: u32, deadline: Option<Instant>) -> WaitOutcome {
        self.fuse.step();
        self.word.wait(expected, deadline)
    }
    fn wake_one(&self) {
        self.fuse.step();
        self.word.wake_one()
    }
    fn wake_all(&self) {
        self.fuse.step();
        self.word.wake_all()
    }
    fn wake_one_counted(&self) -> bool {
        self.fuse.step();
        self.word.wake_one_counted()
    }
    fn spin_hint(&self) {
        self.word.spin_hint()
    }
    fn spin_budget(&self) -> u32 {
        self.word.spin_budget()
    }
}

/// Silences the panic message of a modelled death (once per test binary).
pub fn quiet_deaths() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !info.payload().is::<Died>() {
                previous(info)
            }
        }));
    });
}

/// A 64-bit word as the dying process uses it: every operation is one step of its [`Fuse`].
pub struct MortalWide<'a> {
    /// The word.
    pub word: &'a LoomWide,
    /// The process's fuse.
    pub fuse: &'a Fuse,
}

impl Word64 for MortalWide<'_> {
    fn load(&self, order: Ordering) -> u64 {
        self.fuse.step();
        self.word.load(order)
    }
    fn store(&self, value: u64, order: Ordering) {
        self.fuse.step();
        self.word.store(value, order)
    }
    fn compare_exchange(
        &self,
        current: u64,
        new: u64,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u64, u64> {
        self.fuse.step();
        self.word.compare_exchange(current, new, success, failure)
    }
    fn mutated(&self, fault: Fault) -> bool {
        self.word.mutated(fault)
    }
}

/// Runs `life` as a process that may die: returns normally if it died (unwound with [`Died`])
/// or completed; any other panic goes on.
pub fn live(life: impl FnOnce()) {
    if let Err(payload) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(life))
        && !payload.is::<Died>()
    {
        std::panic::resume_unwind(payload);
    }
}
