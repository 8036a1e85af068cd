//! The re-entrant lock: a [`mutex`] word plus an owner word and a count word.
//!
//! # The words
//!
//! - `lock`: a [`mutex`] word; held while the RLock is owned.
//! - `owner`: the owning thread's identity (a Linux thread id, unique among the live threads of
//!   the machine's pid namespace); 0 when unowned. Written only by the thread holding `lock`.
//!   A thread owns the lock when `owner` is its id *and* `lock` holds its process's token: a
//!   dead owner's thread id may be reused by a thread of another process, which must not pass
//!   for the owner.
//! - `count`: how many times the owner has entered; 0 when unowned. Written only by the owner.
//! - `owner_token`: the token of the owner's process, written (Release) after `owner`; 0 when
//!   unowned. It ties `owner` to one hold: after a takeover from a dead owner, the dead
//!   thread's id may already belong to a thread of the taker's process, and until the taker
//!   has written its own id, `owner` still names the dead thread while `lock` already holds the
//!   taker's token. `owner_token` still names the dead process then, so that thread is not
//!   mistaken for the owner.
//!
//! # Orderings
//!
//! `owner` and `count` are read and written Relaxed. A thread compares `owner` with its own
//! identity: only that thread ever stores its identity there, and it clears the word (in its own
//! program order) before it releases `lock`, so a thread can read its own identity only while it
//! really owns the lock. Another thread that reads a stale value sees someone else's identity or
//! 0, never its own, and goes on to the mutex, whose Acquire/Release orders everything else.

use super::Block;
use super::mutex::{self, Outcome, Owners};
use crate::word::Word;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

/// The three words of a re-entrant lock.
#[derive(Clone, Copy, Debug)]
pub struct RMutex<'a, W> {
    /// The mutex word.
    pub lock: &'a W,
    /// The owner thread's identity, 0 when unowned.
    pub owner: &'a W,
    /// The recursion count, 0 when unowned.
    pub count: &'a W,
    /// The owner's process token, 0 when unowned.
    pub owner_token: &'a W,
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
    /// Whether thread `me` of the process with `token` owns the lock.
    ///
    /// Acquire on `owner_token` pairs with the owner's Release store after its `owner` store:
    /// if we see the owner's token we see its thread id too, never a dead thread's.
    fn owned_by(&self, me: u32, token: u32) -> bool {
        self.owner_token.load(Acquire) == token
            && self.owner.load(Relaxed) == me
            && mutex::holder(self.lock.load(Relaxed)) == token
    }

    /// Enters the lock as thread `me` (non-zero) of the process with `token`, taking the mutex
    /// if `me` does not own it yet. A taken-over lock ([`Outcome::OwnerDied`]) starts a fresh
    /// count of 1 for the new owner.
    pub fn acquire<O: Owners>(
        &self,
        me: u32,
        token: u32,
        block: Block,
        owners: &O,
    ) -> Result<Outcome, RError> {
        debug_assert!(me != 0, "thread identity 0 means unowned");
        if self.owned_by(me, token) {
            let count = self.count.load(Relaxed);
            if count == u32::MAX {
                return Err(RError::CountOverflow);
            }
            self.count.store(count + 1, Relaxed);
            return Ok(Outcome::Acquired);
        }
        let outcome = mutex::lock(self.lock, token, block, owners);
        if outcome.acquired() {
            self.owner.store(me, Relaxed);
            self.count.store(1, Relaxed);
            self.owner_token.store(token, Release);
        }
        Ok(outcome)
    }

    /// Leaves the lock once as thread `me` of the process with `token`; the last exit releases
    /// the mutex.
    pub fn release(&self, me: u32, token: u32) -> Result<(), RError> {
        self.check_owner(me, token)?;
        let count = self.count.load(Relaxed);
        if count > 1 {
            self.count.store(count - 1, Relaxed);
            return Ok(());
        }
        self.owner_token.store(0, Relaxed);
        self.count.store(0, Relaxed);
        self.owner.store(0, Relaxed);
        // We own the mutex, so it is locked; a failure here means another process scribbled on
        // the word, which we report as "not locked" rather than ignore.
        mutex::unlock(self.lock, token).map_err(|mutex::NotLocked| RError::NotLocked)
    }

    /// Leaves the lock entirely, however many times thread `me` entered it; returns the count
    /// to give [`RMutex::restore`] (a condition variable's wait).
    pub fn release_all(&self, me: u32, token: u32) -> Result<u32, RError> {
        self.check_owner(me, token)?;
        let count = self.count.load(Relaxed);
        self.count.store(1, Relaxed);
        self.release(me, token)?;
        Ok(count.max(1))
    }

    /// Takes the lock again after [`RMutex::release_all`], with its old `count`.
    pub fn restore<O: Owners>(
        &self,
        me: u32,
        token: u32,
        count: u32,
        block: Block,
        owners: &O,
    ) -> Outcome {
        let outcome = mutex::lock(self.lock, token, block, owners);
        if outcome.acquired() {
            self.owner.store(me, Relaxed);
            self.count.store(count, Relaxed);
            self.owner_token.store(token, Release);
        }
        outcome
    }

    /// `Ok` if thread `me` of the process with `token` owns the lock; otherwise why not:
    /// [`RError::NotOwner`] if someone else does, [`RError::NotLocked`] if nobody does.
    pub fn check_owner(&self, me: u32, token: u32) -> Result<(), RError> {
        if self.owned_by(me, token) {
            Ok(())
        } else if mutex::is_locked(self.lock.load(Relaxed)) {
            Err(RError::NotOwner)
        } else {
            Err(RError::NotLocked)
        }
    }

    /// Whether thread `me` of the process with `token` owns the lock.
    pub fn is_owned_by(&self, me: u32, token: u32) -> bool {
        self.owned_by(me, token)
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
