//! Lock protocols on 32-bit words, written once and generic over [`Word`](crate::word::Word).
//!
//! Nothing in this module makes a system call or touches a std atomic directly, so the
//! `loom-tests` crate model-checks exactly these functions with a loom-backed word.
//!
//! - [`mutex`]: the lock word of [`Lock`](crate::Lock) and of the locks inside
//!   [`Value`](crate::Value) and [`Array`](crate::Array) (and the region's allocation lock).
//! - [`rmutex`]: the re-entrant lock of [`RLock`](crate::RLock): a mutex word plus owner and count.
//! - [`publish`]: one-way publication of a header or a directory entry.
//! - [`semaphore`]: [`Semaphore`](crate::Semaphore) and
//!   [`BoundedSemaphore`](crate::BoundedSemaphore): a count of permits.
//! - [`holds`]: the per-process hold table that gives a dead process's permits and read
//!   locks back.
//! - [`condvar`]: [`Condition`](crate::Condition): a sequence word next to an [`rmutex`].
//! - [`event`]: [`Event`](crate::Event): a flag with a generation.
//! - [`barrier`]: [`Barrier`](crate::Barrier): arrivals and rounds.
//! - [`rwlock`]: [`RwLock`](crate::RwLock): readers or a writer.

pub mod barrier;
pub mod condvar;
pub mod event;
pub mod holds;
pub mod mutex;
pub mod publish;
pub mod rmutex;
pub mod rwlock;
pub mod semaphore;

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
    pub fn from_python(block: bool, timeout: Option<std::time::Duration>) -> Block {
        match (block, timeout) {
            (false, _) => Block::Try,
            (true, None) => Block::Forever,
            (true, Some(d)) => Block::after(d),
        }
    }

    /// A deadline `timeout` from now; zero means try once.
    pub fn after(timeout: std::time::Duration) -> Block {
        if timeout.is_zero() {
            return Block::Try;
        }
        match Instant::now().checked_add(timeout) {
            Some(t) => Block::Until(t),
            None => Block::Forever,
        }
    }

    /// The deadline to pass to [`Word::wait`](crate::word::Word::wait) (`None`: no limit).
    pub(crate) fn deadline(self) -> Option<Instant> {
        match self {
            Block::Until(t) => Some(t),
            Block::Try | Block::Forever => None,
        }
    }
}
