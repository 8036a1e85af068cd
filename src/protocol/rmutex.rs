//! The re-entrant lock: a [`mutex`](super::mutex) word plus an owner word and a count word.
//!
//! # The words
//!
//! - `lock`: a [`mutex`](super::mutex) word; held while the RLock is owned.
//! - `owner`: the owning thread's identity (a Linux thread id, unique among the live threads of
//!   the machine's pid namespace); 0 when unowned. Written only by the thread holding `lock`.
//! - `count`: how many times the owner has entered; 0 when unowned. Written only by the owner.
//!
//! # Orderings
//!
//! `owner` and `count` are read and written Relaxed. A thread compares `owner` with its own
//! identity: only that thread ever stores its identity there, and it clears the word (in its own
//! program order) before it releases `lock`, so a thread can read its own identity only while it
//! really owns the lock. Another thread that reads a stale value sees someone else's identity or
//! 0, never its own, and goes on to the mutex, whose Acquire/Release orders everything else.

use super::{Block, mutex};
use crate::word::Word;
use std::sync::atomic::Ordering::Relaxed;

/// The three words of a re-entrant lock.
#[derive(Clone, Copy, Debug)]
pub struct RMutex<'a, W> {
    /// The mutex word.
    pub lock: &'a W,
    /// The owner thread's identity, 0 when unowned.
    pub owner: &'a W,
    /// The recursion count, 0 when unowned.
    pub count: &'a W,
}

/// Why an acquire or a release was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RError {
    /// The caller already holds the lock `u32::MAX` times.
    CountOverflow,
    /// Release by a thread that does not own the lock, while another does.
    NotOwner,
    /// Release of a lock that nobody owns.
    NotLocked,
}

impl<W: Word> RMutex<'_, W> {
    /// Enters the lock as thread `me` (non-zero), taking the mutex with `token` if `me` does not
    /// own it yet. Returns `Ok(false)` if `block` ran out first.
    pub fn acquire(&self, me: u32, token: u32, block: Block) -> Result<bool, RError> {
        debug_assert!(me != 0, "thread identity 0 means unowned");
        if self.owner.load(Relaxed) == me {
            let count = self.count.load(Relaxed);
            if count == u32::MAX {
                return Err(RError::CountOverflow);
            }
            self.count.store(count + 1, Relaxed);
            return Ok(true);
        }
        if !mutex::lock(self.lock, token, block) {
            return Ok(false);
        }
        self.owner.store(me, Relaxed);
        self.count.store(1, Relaxed);
        Ok(true)
    }

    /// Leaves the lock once as thread `me`; the last exit releases the mutex.
    pub fn release(&self, me: u32) -> Result<(), RError> {
        if self.owner.load(Relaxed) != me {
            return Err(if mutex::is_locked(self.lock.load(Relaxed)) {
                RError::NotOwner
            } else {
                RError::NotLocked
            });
        }
        let count = self.count.load(Relaxed);
        if count > 1 {
            self.count.store(count - 1, Relaxed);
            return Ok(());
        }
        self.count.store(0, Relaxed);
        self.owner.store(0, Relaxed);
        // We own the mutex, so it is locked; a failure here means another process scribbled on
        // the word, which we report as "not locked" rather than ignore.
        mutex::unlock(self.lock).map_err(|mutex::NotLocked| RError::NotLocked)
    }

    /// The owner's identity, if the lock is owned (a snapshot).
    pub fn owner(&self) -> Option<u32> {
        match self.owner.load(Relaxed) {
            0 => None,
            tid => Some(tid),
        }
    }

    /// How many times the owner has entered (a snapshot; 0 when unowned).
    pub fn count(&self) -> u32 {
        self.count.load(Relaxed)
    }
}
