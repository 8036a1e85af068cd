//! The hold table: which process holds how many semaphore permits, so that the permits of a
//! process that died can be given back. (An `RwLock`'s read locks need no such table: each
//! process counts them in a reader indicator of its own, see [`rwlock`](super::rwlock).)
//!
//! A `Semaphore` permit is a count in one word, which cannot say who contributed to it. Objects that must survive the death of
//! a holder keep, next to that word, one [`Entry`] per process-table slot: the process that
//! uses the slot records there how many holds it has, and marks every change of the object's
//! word as *in flight* while it makes it. A waiter that finds a dead process's entry gives its
//! holds back; if the process died with a change in flight (so nobody can know whether the
//! object's word was changed), the object is declared broken instead of guessed at.
//!
//! # The two words of an entry
//!
//! `owner`:
//!
//! | value              | meaning                                                            |
//! |--------------------|--------------------------------------------------------------------|
//! | `0`                | unused                                                             |
//! | `t`                | the counts belong to the process with token `t`                    |
//! | `RECOVERING \| r`  | the process with token `r` is giving a dead owner's holds back     |
//!
//! `counts`: `intent << INTENT_SHIFT | held`: `held` holds are recorded; `intent` changes of the
//! object's word are in flight (begun, not yet recorded).
//!
//! Only the process named in `owner` (any of its threads) changes `counts`, with atomic
//! read-modify-writes; a recoverer first takes `owner` over with a compare-exchange from the
//! exact dead token it judged, so a recovery never races the dead process's successor in the
//! slot, nor another recoverer.
//!
//! # Protocol (holder)
//!
//! - take a hold: [`Entry::begin`] (`intent += 1`), change the object's word, then
//!   [`Entry::commit_take`] (`intent -= 1, held += 1`) or, if the change failed,
//!   [`Entry::abort`] (`intent -= 1`);
//! - give a hold back: [`Entry::begin_give`] (`held -= 1, intent += 1`), change the object's
//!   word, then [`Entry::end_give`] (`intent -= 1`).
//!
//! A process that dies anywhere leaves either `intent == 0` and `held` exactly the holds its
//! word changes made, or `intent > 0`.

use super::Block;
use super::mutex::{Owners, TOKEN_MASK};
use crate::word::Word;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};

/// In `owner`: the entry is being recovered by the token in the low bits.
pub const RECOVERING: u32 = 1 << 31;
/// `counts`: where the in-flight count starts.
pub const INTENT_SHIFT: u32 = 20;
/// `counts`: one in-flight change.
pub const INTENT: u32 = 1 << INTENT_SHIFT;
/// `counts`: the recorded holds.
pub const HELD_MASK: u32 = INTENT - 1;
/// The most holds one process may record; the margin below [`HELD_MASK`] leaves room for
/// threads that race past the check, so `held` never carries into `intent`.
pub const HELD_LIMIT: u32 = HELD_MASK - (1 << 16);

/// How many sleep slices [`Entry::own`] waits for a `RECOVERING` mark that names the caller's
/// own process before it declares the object broken (about 5 s with 20 ms slices): our own
/// threads recover in microseconds, so such a mark that stays is damage.
pub const RECOVERY_PATIENCE: u32 = 250;

/// What the table needs from the object it belongs to.
pub trait Holder {
    /// Returns `n` holds of a dead process to the object (adds permits back, removes readers).
    fn give_back(&self, n: u32);
    /// Marks the object broken: a process died with a change of its word in flight.
    fn break_object(&self);
}

/// Why a holder could not take a hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryError {
    /// The object is broken (found so now, or marked before).
    Broken,
    /// This process already records [`HELD_LIMIT`] holds.
    Full,
    /// Another live process was still giving a dead process's holds back when the caller's
    /// time ran out.
    Busy,
}

/// Brackets each attempt to take a hold (a semaphore permit): the hold table of a
/// guard, or nothing for holds nobody accounts for.
pub trait Attribution {
    /// Before the compare-exchange that takes a permit.
    fn begin(&self) -> Result<(), EntryError>;
    /// After it succeeded.
    fn commit(&self);
    /// After it failed.
    fn abort(&self);
}

/// Holds nobody accounts for (Python's `Semaphore.acquire()`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Unattributed;

impl Attribution for Unattributed {
    #[inline]
    fn begin(&self) -> Result<(), EntryError> {
        Ok(())
    }
    #[inline]
    fn commit(&self) {}
    #[inline]
    fn abort(&self) {}
}

/// One process-table slot's entry in an object's hold table.
#[derive(Clone, Copy, Debug)]
pub struct Entry<'a, W> {
    /// The token of the process whose holds `counts` records (see the module docs).
    pub owner: &'a W,
    /// `intent << INTENT_SHIFT | held`.
    pub counts: &'a W,
}

/// The holds recorded in `counts`.
#[inline]
pub const fn held(counts: u32) -> u32 {
    counts & HELD_MASK
}

/// The changes in flight in `counts`.
#[inline]
pub const fn intent(counts: u32) -> u32 {
    counts >> INTENT_SHIFT
}

impl<W: Word> Entry<'_, W> {
    /// Makes the entry ours (`token`, the caller's process, whose slot this entry is): a
    /// predecessor's holds in the slot are given back first (a predecessor in our own slot is
    /// dead, since we hold the slot). Waits (in slices) for a live recoverer to finish.
    ///
    /// Acquire on `owner`: we see the counts as the previous owner or recoverer left them.
    pub fn own<O: Owners, H: Holder>(
        &self,
        token: u32,
        owners: &O,
        object: &H,
    ) -> Result<(), EntryError> {
        self.own_within(token, Block::Forever, owners, object)
    }

    /// [`Entry::own`], waiting for a live recoverer only as long as `block` allows
    /// ([`EntryError::Busy`] after that; a single try does not wait).
    pub fn own_within<O: Owners, H: Holder>(
        &self,
        token: u32,
        block: Block,
        owners: &O,
        object: &H,
    ) -> Result<(), EntryError> {
        let deadline = block.deadline();
        // A recovery by a thread of our own process takes a few word changes: our own mark
        // that stays this many sleep slices is damage, not a recovery.
        let mut patience = RECOVERY_PATIENCE;
        loop {
            let owner = self.owner.load(Acquire);
            if owner == token {
                return Ok(());
            }
            if owner == 0 {
                if self
                    .owner
                    .compare_exchange(0, token, Acquire, Relaxed)
                    .is_ok()
                {
                    return Ok(());
                }
                continue;
            }
            if owner & RECOVERING != 0 {
                let recoverer = owner & TOKEN_MASK;
                if recoverer != token && !owners.is_alive(recoverer) {
                    // The recoverer died mid-way: some holds may be given back, some not.
                    object.break_object();
                    return Err(EntryError::Broken);
                }
                if recoverer == token {
                    if patience == 0 {
                        object.break_object();
                        return Err(EntryError::Broken);
                    }
                    patience -= 1;
                }
                if block == Block::Try || owners.expired(deadline) {
                    return Err(EntryError::Busy);
                }
                // A live recoverer is giving holds back: wait for it (a few word changes, or
                // as long as it is stopped; like a stopped lock holder, it is waited for).
                self.owner.wait(owner, owners.slice_end(deadline));
                continue;
            }
            if owners.is_alive(owner) {
                // A live process other than us records its holds in our slot: the table is
                // damaged, so its counts cannot be trusted.
                object.break_object();
                return Err(EntryError::Broken);
            }
            self.recover(owner, token, object);
        }
    }

    /// Gives back the holds of `dead` (a token judged dead, as read from `owner`), as process
    /// `me`. Returns `false` if someone else got to the entry first.
    pub fn recover<H: Holder>(&self, dead: u32, me: u32, object: &H) -> bool {
        debug_assert!(dead & RECOVERING == 0 && dead != 0);
        if self
            .owner
            .compare_exchange(dead, RECOVERING | me, AcqRel, Relaxed)
            .is_err()
        {
            return false;
        }
        let counts = self.counts.load(Acquire);
        self.counts.store(0, Relaxed);
        if intent(counts) != 0 {
            object.break_object();
        } else if held(counts) != 0 {
            object.give_back(held(counts));
        }
        // Release: whoever owns the entry next sees the cleared counts.
        self.owner.store(0, Release);
        self.owner.wake_all();
        true
    }

    /// Starts taking a hold: the object's word is about to change. Fails with
    /// [`EntryError::Full`] at [`HELD_LIMIT`] holds.
    #[inline]
    pub fn begin(&self) -> Result<(), EntryError> {
        // Relaxed: only our own process writes the counts, and a recoverer learns that we died
        // through the kernel (the lease), which orders everything we wrote before.
        let before = self.counts.fetch_add(INTENT, Relaxed);
        if held(before) >= HELD_LIMIT {
            self.counts.fetch_sub(INTENT, Relaxed);
            return Err(EntryError::Full);
        }
        Ok(())
    }

    /// The object's word changed: the hold is ours and recorded.
    #[inline]
    pub fn commit_take(&self) {
        self.counts.fetch_sub(INTENT - 1, Relaxed);
    }

    /// The object's word did not change: nothing is in flight any more.
    #[inline]
    pub fn abort(&self) {
        self.counts.fetch_sub(INTENT, Relaxed);
    }

    /// Starts giving a hold back: `held -= 1, intent += 1`.
    #[inline]
    pub fn begin_give(&self) {
        self.counts.fetch_add(INTENT - 1, Relaxed);
    }

    /// The object's word changed back: the hold is gone.
    #[inline]
    pub fn end_give(&self) {
        self.counts.fetch_sub(INTENT, Relaxed);
    }

    /// If this entry names a process that is certainly dead (or a recoverer that died), clears
    /// it without giving anything back, as process `me`: for a repair, whose caller states the
    /// object's count itself. Returns whether it did.
    pub fn forget_if_dead<O: Owners>(&self, me: u32, owners: &O) -> bool {
        let owner = self.owner.load(Acquire);
        if owner == 0 || owner == me || owners.is_alive(owner & TOKEN_MASK) {
            return false;
        }
        if self
            .owner
            .compare_exchange(owner, RECOVERING | me, AcqRel, Relaxed)
            .is_err()
        {
            return false;
        }
        self.counts.store(0, Relaxed);
        self.owner.store(0, Release);
        self.owner.wake_all();
        true
    }

    /// If this entry names a process that is certainly dead, gives its holds back, as
    /// process `me`. Returns whether it did.
    pub fn reclaim_if_dead<O: Owners, H: Holder>(&self, me: u32, owners: &O, object: &H) -> bool {
        let owner = self.owner.load(Acquire);
        if owner == 0 || owner == me {
            return false;
        }
        if owner & RECOVERING != 0 {
            let recoverer = owner & TOKEN_MASK;
            if recoverer != me && !owners.is_alive(recoverer) {
                // The recoverer died mid-way: some holds may be given back, some not.
                object.break_object();
            }
            return false;
        }
        !owners.is_alive(owner) && self.recover(owner, me, object)
    }
}

impl<W: Word> Attribution for Entry<'_, W> {
    #[inline]
    fn begin(&self) -> Result<(), EntryError> {
        Entry::begin(self)
    }
    #[inline]
    fn commit(&self) {
        self.commit_take()
    }
    #[inline]
    fn abort(&self) {
        Entry::abort(self)
    }
}
