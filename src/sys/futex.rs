//! Shared futexes, and [`FutexWord`]: the word every protocol runs on in production (and
//! [`SharedU64`], the 64-bit word nobody sleeps on).
//!
//! Futexes are always the shared (non-private) kind: the words live in `MAP_SHARED` mappings
//! and the kernel keys them by (inode, offset), so a wake in one process reaches a sleeper in
//! another whatever address each has the word mapped at.

use super::spin;
use crate::protocol::{WaitOutcome, Word, Word64};
use linux_futex::{AsFutex, Futex, Shared, TimedWaitError, WaitError};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

/// A 32-bit word in a shared mapping that threads of any process can sleep on: the production
/// implementation of the protocols' [`Word`].
///
/// # Layout
///
/// `#[repr(transparent)]` over [`AtomicU32`]: 4 bytes, 4-byte aligned, so a `&FutexWord` is
/// made from any aligned 4-byte location of a region (see [`FutexWord::from_ptr`]).
#[repr(transparent)]
pub(crate) struct FutexWord(AtomicU32);

const _: () = assert!(size_of::<FutexWord>() == 4 && align_of::<FutexWord>() == 4);

impl FutexWord {
    /// The word at `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` must be 4-byte aligned, inside a live shared mapping for all of `'a`, and only
    /// ever accessed atomically (by every process) during `'a`.
    #[inline]
    pub(crate) unsafe fn from_ptr<'a>(ptr: *mut u32) -> &'a FutexWord {
        // SAFETY: the caller guarantees alignment, liveness and atomic-only access, which is
        // what `AtomicU32::from_ptr` requires; `FutexWord` is a transparent `AtomicU32`.
        let atomic: &'a AtomicU32 = unsafe { AtomicU32::from_ptr(ptr) };
        // SAFETY: `#[repr(transparent)]`: a `FutexWord` has the layout of its `AtomicU32`.
        unsafe { &*(atomic as *const AtomicU32).cast::<FutexWord>() }
    }
}

impl Word for FutexWord {
    const SPIN_LIMIT: u32 = spin::MAX_BUDGET;

    #[inline]
    fn load(&self, order: Ordering) -> u32 {
        match order {
            // A Relaxed load followed by an Acquire fence orders everything after it exactly as
            // an Acquire load would. Written this way because words are also read from
            // read-only mappings (`shmsync::inspect`), and std documents atomic loads on
            // read-only memory as sound for Relaxed loads of at most a pointer's width only.
            // On x86-64 both forms compile to the same plain `mov`.
            Ordering::Acquire => {
                let value = self.0.load(Ordering::Relaxed);
                std::sync::atomic::fence(Ordering::Acquire);
                value
            }
            _ => self.0.load(order),
        }
    }
    #[inline]
    fn store(&self, value: u32, order: Ordering) {
        self.0.store(value, order)
    }
    #[inline]
    fn swap(&self, value: u32, order: Ordering) -> u32 {
        self.0.swap(value, order)
    }
    #[inline]
    fn compare_exchange(
        &self,
        current: u32,
        new: u32,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u32, u32> {
        self.0.compare_exchange(current, new, success, failure)
    }
    #[inline]
    fn fetch_add(&self, value: u32, order: Ordering) -> u32 {
        self.0.fetch_add(value, order)
    }
    #[inline]
    fn fetch_sub(&self, value: u32, order: Ordering) -> u32 {
        self.0.fetch_sub(value, order)
    }
    #[inline]
    fn fetch_or(&self, value: u32, order: Ordering) -> u32 {
        self.0.fetch_or(value, order)
    }
    #[inline]
    fn fetch_and(&self, value: u32, order: Ordering) -> u32 {
        self.0.fetch_and(value, order)
    }
    #[inline]
    fn wait(&self, expected: u32, deadline: Option<Instant>) -> WaitOutcome {
        futex_wait(&self.0, expected, deadline)
    }
    #[inline]
    fn wake_one(&self) {
        futex_wake(&self.0, 1);
    }
    #[inline]
    fn wake_one_counted(&self) -> bool {
        futex_wake(&self.0, 1) > 0
    }
    #[inline]
    fn wake_all(&self) {
        futex_wake(&self.0, i32::MAX);
    }
    #[inline]
    fn wake_n(&self, n: u32) {
        futex_wake(&self.0, n.min(i32::MAX as u32) as i32);
    }
    #[inline]
    fn spin_budget(&self) -> u32 {
        spin::budget(self as *const FutexWord as usize)
    }
    #[inline]
    fn spin_ended(&self, paid_off: bool, spent: u32) {
        spin::ended(self as *const FutexWord as usize, paid_off, spent)
    }
}

/// Sleeps on `word` while it holds `expected`, until a wake or `deadline` (absolute, monotonic).
///
/// The word must be 4-byte aligned and stay mapped for the call: every caller passes a word
/// of a live mapping at an offset the region validated as aligned, so linux-futex never meets
/// the EFAULT or EINVAL it would panic on.
#[inline]
fn futex_wait(word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> WaitOutcome {
    let futex: &Futex<Shared> = word.as_futex();
    match deadline {
        None => match futex.wait(expected) {
            Ok(()) | Err(WaitError::Interrupted) => WaitOutcome::Woken,
            Err(WaitError::WrongValue) => WaitOutcome::ValueChanged,
        },
        // FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline (std's `Instant` clock),
        // so spurious wake-ups and EINTR never stretch the wait.
        Some(at) => match futex.wait_bitset_until(expected, !0, at) {
            Ok(()) | Err(TimedWaitError::Interrupted) => WaitOutcome::Woken,
            Err(TimedWaitError::WrongValue) => WaitOutcome::ValueChanged,
            Err(TimedWaitError::TimedOut) => WaitOutcome::TimedOut,
        },
    }
}

/// Wakes up to `n` sleepers on `word`, in any process.
#[inline]
fn futex_wake(word: &AtomicU32, n: i32) -> i32 {
    let futex: &Futex<Shared> = word.as_futex();
    futex.wake(n)
}

/// A 64-bit word in a shared mapping (nobody sleeps on it): the production [`Word64`], for the
/// semaphore's state word and records. `#[repr(transparent)]` over [`AtomicU64`].
#[repr(transparent)]
pub(crate) struct SharedU64(AtomicU64);

const _: () = assert!(size_of::<SharedU64>() == 8 && align_of::<SharedU64>() == 8);

impl SharedU64 {
    /// The word at `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` must be 8-byte aligned, inside a live shared mapping for all of `'a`, and only
    /// ever accessed atomically (by every process) during `'a`.
    #[inline]
    pub(crate) unsafe fn from_ptr<'a>(ptr: *mut u64) -> &'a SharedU64 {
        // SAFETY: the caller guarantees alignment, liveness and atomic-only access, which is
        // what `AtomicU64::from_ptr` requires.
        let atomic: &'a AtomicU64 = unsafe { AtomicU64::from_ptr(ptr) };
        // SAFETY: `#[repr(transparent)]`: a `SharedU64` has the layout of its `AtomicU64`.
        unsafe { &*(atomic as *const AtomicU64).cast::<SharedU64>() }
    }
}

impl Word64 for SharedU64 {
    #[inline]
    fn load(&self, order: Ordering) -> u64 {
        match order {
            // As `FutexWord::load`: read-only mappings (the inspector) get Relaxed loads only.
            Ordering::Acquire => {
                let value = self.0.load(Ordering::Relaxed);
                std::sync::atomic::fence(Ordering::Acquire);
                value
            }
            _ => self.0.load(order),
        }
    }
    #[inline]
    fn store(&self, value: u64, order: Ordering) {
        self.0.store(value, order)
    }
    #[inline]
    fn compare_exchange(
        &self,
        current: u64,
        new: u64,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u64, u64> {
        self.0.compare_exchange(current, new, success, failure)
    }
}
