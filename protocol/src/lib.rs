//! The protocols of [shmsync](https://docs.rs/shmsync): lock, semaphore, condition-variable,
//! event, barrier and reader-writer protocols on 32-bit words, written once and generic over
//! [`Word`].
//!
//! This crate is shmsync's innermost layer, and the compiler keeps it that way: it forbids
//! `unsafe` code and has no dependencies, so nothing here can make a system call or touch shared
//! memory except through a [`Word`]. shmsync runs these functions on futex words in a shared
//! mapping; its `loom-tests` crate runs the very same functions on loom atomics with a modelled
//! futex. It is an implementation detail of shmsync, not a stable API of its own.
//!
//! - [`word`]: the [`Word`] trait (atomic operations, futex wait and wake, spin hints), and
//!   [`Word64`] for state that needs more than 32 bits changed as one.
//! - [`mutex`]: the lock word of `Lock` and of the locks inside `Value` and `Array` (and the
//!   region's allocation lock).
//! - [`rmutex`]: the re-entrant lock of `RLock`: a mutex word plus owner and count.
//! - [`publish`]: one-way publication of a header or a directory entry.
//! - [`semaphore`]: `Semaphore` and `BoundedSemaphore`: a count of permits and an in-flight
//!   tag in one 64-bit word, and per-process records that give a dead process's permits back.
//! - [`condvar`]: `Condition`: a sequence word next to an [`rmutex`].
//! - [`event`]: `Event`: a flag with a generation.
//! - [`barrier`]: `Barrier`: arrivals and rounds.
//! - [`rwlock`]: `RwLock`: a writer word and per-process reader indicators.
//! - [`queue`]: `Queue` and `ByteQueue`: a ring of slots that survives a dying producer or
//!   consumer.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod barrier;
pub mod condvar;
pub mod event;
pub mod mutex;
pub mod publish;
pub mod queue;
pub mod rmutex;
pub mod rwlock;
pub mod semaphore;
pub mod word;

pub use word::{Fault, WaitOutcome, Word, Word64};

use std::time::Instant;

/// How long an acquire may block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Block {
    /// Try once; never sleep.
    Try,
    /// Sleep as needed until this instant on the monotonic clock.
    Until(Instant),
    /// Sleep as long as needed.
    Forever,
}

impl Block {
    /// Converts Python's `(block, timeout)` pair: `block == false` or a zero timeout tries once,
    /// `None` waits forever, a timeout too large to add to the clock also waits forever.
    #[inline]
    pub fn from_python(block: bool, timeout: Option<std::time::Duration>) -> Block {
        match (block, timeout) {
            (false, _) => Block::Try,
            (true, None) => Block::Forever,
            (true, Some(d)) => Block::after(d),
        }
    }

    /// A deadline `timeout` from now; zero means try once.
    #[inline]
    pub fn after(timeout: std::time::Duration) -> Block {
        if timeout.is_zero() {
            return Block::Try;
        }
        match Instant::now().checked_add(timeout) {
            Some(t) => Block::Until(t),
            None => Block::Forever,
        }
    }

    /// The deadline to pass to [`Word::wait`] (`None`: no limit).
    #[inline]
    pub fn deadline(self) -> Option<Instant> {
        match self {
            Block::Until(t) => Some(t),
            Block::Try | Block::Forever => None,
        }
    }
}
