//! The reader-writer lock: readers or a writer's token in one word, poison and breakage in
//! another.
//!
//! # The words
//!
//! `state`:
//!
//! ```text
//!  31               30               29             28 ..................... 0
//! +-----------------+----------------+--------------+---------------------------+
//! | WRITERS_WAITING | READERS_WAITING| WRITE_LOCKED | writer token, or readers  |
//! +-----------------+----------------+--------------+---------------------------+
//! ```
//!
//! | state                              | meaning                                          |
//! |------------------------------------|--------------------------------------------------|
//! | `0`                                | free                                             |
//! | `n` (n > 0)                        | read-locked by `n` readers                       |
//! | `WRITE_LOCKED \| t`                | write-locked by the process with token `t`       |
//! | `… \| WRITERS_WAITING`             | a writer may sleep: new readers wait             |
//! | `… \| READERS_WAITING`             | a reader may sleep                               |
//! | `WRITERS_WAITING` (no holder)      | handed over to the waiting writers: readers wait |
//!
//! `flags`: [`POISONED`] once a writer died holding the lock (until a writer calls
//! [`mark_consistent`](RwLock::mark_consistent)); [`BROKEN`] once a reader died in the middle of changing `state`, so
//! that the reader count is no longer known. The bits above them count the repairs
//! ([`mark_consistent`](RwLock::mark_consistent) calls that cleared a poison, wrapping), so that a recoverer can tell
//! that the lock it is about to poison was repaired meanwhile.
//!
//! # Protocol
//!
//! A reader adds 1 with a compare-exchange (Acquire) while no writer holds the lock or waits
//! for it; a writer replaces a free word with its token (Acquire). Waiters set their waiting
//! bit and sleep on `state`, in slices ([`Owners::slice_end`]); waking is always `wake_all`
//! (readers and writers share the word). Writers are not starved: while [`WRITERS_WAITING`]
//! is set no new reader enters, and the last reader out hands the free lock to the writers by
//! leaving [`WRITERS_WAITING`] set. A writer that gives up (its deadline passed) clears the mark
//! and wakes everyone, so that it does not keep readers out; other waiting writers set it
//! again. A reader that finds a hand-over still untaken a whole sleep slice later (its writer
//! died) clears it. A writer killed while it waits keeps new readers out only until the current
//! readers leave, plus one slice.
//!
//! Owner death: a waiter whose slice ends (or a single try) looks at a writer holder; if it is
//! dead, a reader sets [`POISONED`] and frees the word with a compare-exchange from the exact
//! value it judged; a writer takes the word over with such a compare-exchange, then sets
//! [`POISONED`] (the lock is its alone until it unlocks). A compare-exchange that failed only
//! because a waiting bit changed is tried again (the writer is still dead): a dead writer's
//! lock is never reported busy. A reader sets the poison only if no repair happened since
//! before it last saw the dead writer's word (see `free_dead_writer`): a reader that lost the
//! race to recover the lock must not poison it again after the winner repaired it. Readers
//! are accounted in the object's hold table ([`holds`](super::holds)), which waiters scan
//! after every sleep (`reclaim`, rate-limited by the caller).

use super::Block;
use super::holds::{Attribution, EntryError};
use super::mutex::{Owners, TOKEN_MASK};
use crate::word::{WaitOutcome, Word};
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};

/// Set while a writer holds the lock; the low bits are its token.
pub const WRITE_LOCKED: u32 = 1 << 29;
/// Set while a reader may be asleep on the word.
pub const READERS_WAITING: u32 = 1 << 30;
/// Set while a writer may be asleep on the word; readers do not enter.
pub const WRITERS_WAITING: u32 = 1 << 31;
/// The most readers at once.
pub const MAX_READERS: u32 = TOKEN_MASK;
const WAITING: u32 = READERS_WAITING | WRITERS_WAITING;

/// In `flags`: a writer died holding the lock.
pub const POISONED: u32 = 1;
/// In `flags`: the reader count can no longer be trusted.
pub const BROKEN: u32 = 2;
/// In `flags`: one repair (the bits from here up count the repairs, wrapping).
pub const REPAIR: u32 = 4;

/// Whether a writer holds `state`.
#[inline]
pub const fn is_write_locked(state: u32) -> bool {
    state & WRITE_LOCKED != 0
}

/// The readers in `state` (0 when write-locked).
#[inline]
pub const fn readers(state: u32) -> u32 {
    if is_write_locked(state) {
        0
    } else {
        state & TOKEN_MASK
    }
}

/// The writer's token in `state` (0 when not write-locked).
#[inline]
pub const fn writer(state: u32) -> u32 {
    if is_write_locked(state) {
        state & TOKEN_MASK
    } else {
        0
    }
}

/// Whether nobody holds `state` (waiting bits aside).
#[inline]
pub const fn is_free(state: u32) -> bool {
    state & (TOKEN_MASK | WRITE_LOCKED) == 0
}

/// How an acquire ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Ours.
    Acquired,
    /// Ours, but a writer died holding the lock and nobody marked it consistent since.
    Poisoned,
    /// Not acquired in time.
    Busy,
    /// Never: the lock is broken.
    Broken,
    /// Not acquired: this process records too many read holds.
    Full,
}

/// Releasing a lock not held that way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotLocked;

/// The two words of a reader-writer lock.
#[derive(Clone, Copy, Debug)]
pub struct RwLock<'a, W> {
    /// Readers or the writer's token, and the waiting bits.
    pub state: &'a W,
    /// [`POISONED`], [`BROKEN`].
    pub flags: &'a W,
}

impl<W: Word> RwLock<'_, W> {
    /// The outcome for a lock just taken: poisoned or not. Relaxed: the compare-exchange that
    /// took the lock (Acquire) synchronised with the Release that freed it after the poison
    /// was set.
    #[inline]
    fn taken(&self) -> Outcome {
        if self.flags.load(Relaxed) & POISONED != 0 {
            Outcome::Poisoned
        } else {
            Outcome::Acquired
        }
    }

    #[inline]
    fn is_broken(&self) -> bool {
        self.flags.load(Relaxed) & BROKEN != 0
    }

    /// Frees the word of a dead writer, from the exact value judged (`state`); sets the poison
    /// first. Returns whether we did it.
    ///
    /// The poison must be set before the word is freed (a reader that enters after the free
    /// must see it), but if our compare-exchange on the word then fails because another waiter
    /// recovered the lock, a writer may have repaired it meanwhile, and a poison we set after
    /// that repair would outlive it. So the poison is set with a compare-exchange from flags
    /// read *before* we saw the word still holding the dead writer: it fails if the flags
    /// changed since (a repair moves the repair count), and we look again.
    fn free_dead_writer(&self, state: u32) -> bool {
        loop {
            // Acquire: if this read comes after a repair of this death (`mark_consistent`,
            // AcqRel), the word we read next is the repairer's, not the dead writer's.
            let flags = self.flags.load(Acquire);
            if self.state.load(Relaxed) != state {
                return false;
            }
            if flags & POISONED != 0
                || self
                    .flags
                    .compare_exchange(flags, flags | POISONED, Relaxed, Relaxed)
                    .is_ok()
            {
                break;
            }
        }
        // Release: whoever takes the lock next sees the poison.
        if self
            .state
            .compare_exchange(state, 0, Release, Relaxed)
            .is_ok()
        {
            self.state.wake_all();
            return true;
        }
        false
    }

    /// Takes a read lock for the caller, sleeping as `block` allows. `reclaim` is called after
    /// every sleep (a slice end or a wake-up: while others take and release the lock, wake-ups
    /// may keep every slice from ending), to give back the holds of dead readers; it must limit
    /// itself (the library scans at most once per death-check interval).
    #[inline]
    pub fn read<A: Attribution, O: Owners>(
        &self,
        attribution: &A,
        block: Block,
        owners: &O,
        reclaim: impl FnMut(),
    ) -> Outcome {
        // The common case inline: no writer holds or waits, nothing broken, and our record
        // has room.
        let state = self.state.load(Relaxed);
        if state & (WRITE_LOCKED | WRITERS_WAITING) == 0
            && readers(state) < MAX_READERS
            && !self.is_broken()
            && attribution.begin().is_ok()
        {
            if self
                .state
                .compare_exchange(state, state + 1, Acquire, Relaxed)
                .is_ok()
            {
                attribution.commit();
                return self.taken();
            }
            attribution.abort();
        }
        self.read_contended(attribution, block, owners, reclaim)
    }

    #[cold]
    fn read_contended<A: Attribution, O: Owners>(
        &self,
        attribution: &A,
        block: Block,
        owners: &O,
        mut reclaim: impl FnMut(),
    ) -> Outcome {
        let deadline = block.deadline();
        let single_try = block == Block::Try;
        let mut check_holder = single_try;
        let mut out_of_time = single_try;
        let mut reclaimed = false;
        let mut state = self.state.load(Relaxed);
        loop {
            if self.is_broken() {
                return Outcome::Broken;
            }
            if !is_write_locked(state)
                && state & WRITERS_WAITING == 0
                && readers(state) < MAX_READERS
            {
                match attribution.begin() {
                    Ok(()) => {}
                    Err(EntryError::Broken) => return Outcome::Broken,
                    Err(EntryError::Full) => return Outcome::Full,
                    Err(EntryError::Busy) => return Outcome::Busy,
                }
                match self
                    .state
                    .compare_exchange(state, state + 1, Acquire, Relaxed)
                {
                    Ok(_) => {
                        attribution.commit();
                        return self.taken();
                    }
                    Err(s) => {
                        attribution.abort();
                        state = s;
                        continue;
                    }
                }
            }
            if check_holder {
                check_holder = false;
                if is_write_locked(state) && !owners.is_alive(writer(state)) {
                    let dead = writer(state);
                    self.free_dead_writer(state);
                    state = self.state.load(Relaxed);
                    // Still the dead writer's (only a waiting bit changed, say a new waiter's
                    // mark): judge again rather than report a dead writer's lock `Busy`.
                    check_holder = is_write_locked(state) && writer(state) == dead;
                    continue;
                }
            }
            if out_of_time {
                if single_try && !reclaimed {
                    // A single try also gives back dead readers' holds once (as a waiter
                    // would when its slice ends), so that polling with tries gets in too.
                    reclaimed = true;
                    reclaim();
                    state = self.state.load(Relaxed);
                    continue;
                }
                return Outcome::Busy;
            }
            if state & READERS_WAITING == 0 {
                match self
                    .state
                    .compare_exchange(state, state | READERS_WAITING, Relaxed, Relaxed)
                {
                    Ok(_) => state |= READERS_WAITING,
                    Err(s) => {
                        state = s;
                        continue;
                    }
                }
            }
            let slept_on = state;
            let outcome = self.state.wait(slept_on, owners.slice_end(deadline));
            // After every sleep, not only when a slice ended: see `Semaphore::acquire`.
            reclaim();
            if outcome == WaitOutcome::TimedOut {
                check_holder = true;
                out_of_time = owners.expired(deadline);
                let now = self.state.load(Relaxed);
                if now == slept_on && is_free(now) && now & WRITERS_WAITING != 0 {
                    // A hand-over to writers that no writer took for a whole slice: the
                    // writer gave up or died. Let readers in again.
                    if self
                        .state
                        .compare_exchange(now, now & !WRITERS_WAITING, Relaxed, Relaxed)
                        .is_ok()
                    {
                        self.state.wake_all();
                    }
                }
            }
            state = self.state.load(Relaxed);
        }
    }

    /// Takes the write lock for `token`, sleeping as `block` allows (see [`RwLock::read`]).
    #[inline]
    pub fn write<O: Owners>(
        &self,
        token: u32,
        block: Block,
        owners: &O,
        reclaim: impl FnMut(),
    ) -> Outcome {
        debug_assert!(token != 0 && token & !TOKEN_MASK == 0);
        let mut state = 0;
        if !self.is_broken() {
            match self
                .state
                .compare_exchange(0, token | WRITE_LOCKED, Acquire, Relaxed)
            {
                Ok(_) => return self.taken(),
                Err(s) => state = s,
            }
        }
        self.write_contended(token, state, block, owners, reclaim)
    }

    #[cold]
    fn write_contended<O: Owners>(
        &self,
        token: u32,
        mut state: u32,
        block: Block,
        owners: &O,
        mut reclaim: impl FnMut(),
    ) -> Outcome {
        let deadline = block.deadline();
        let single_try = block == Block::Try;
        let mut check_holder = single_try;
        let mut out_of_time = single_try;
        let mut reclaimed = false;
        loop {
            if self.is_broken() {
                return Outcome::Broken;
            }
            if is_free(state) {
                let new = token | WRITE_LOCKED | (state & WAITING);
                match self.state.compare_exchange(state, new, Acquire, Relaxed) {
                    Ok(_) => return self.taken(),
                    Err(s) => {
                        state = s;
                        continue;
                    }
                }
            }
            if check_holder {
                check_holder = false;
                if is_write_locked(state) && !owners.is_alive(writer(state)) {
                    let new = token | WRITE_LOCKED | (state & WAITING);
                    match self.state.compare_exchange(state, new, Acquire, Relaxed) {
                        Ok(_) => {
                            // Poisoned only now that the takeover succeeded (a poison set
                            // before a failed one could outlive a repair); the lock is ours
                            // alone, and our unlock (Release) publishes the poison.
                            self.flags.fetch_or(POISONED, Relaxed);
                            return Outcome::Poisoned;
                        }
                        Err(s) => {
                            // Still the dead writer (only a waiting bit changed): judge again
                            // rather than report a dead writer's lock `Busy`.
                            check_holder = is_write_locked(s) && writer(s) == writer(state);
                            state = s;
                            continue;
                        }
                    }
                }
            }
            if out_of_time {
                if single_try && !reclaimed {
                    // As in `read`: a single try gives back dead readers' holds once.
                    reclaimed = true;
                    reclaim();
                    state = self.state.load(Relaxed);
                    continue;
                }
                if !single_try {
                    self.give_up_writing();
                }
                return Outcome::Busy;
            }
            if state & WRITERS_WAITING == 0 {
                match self
                    .state
                    .compare_exchange(state, state | WRITERS_WAITING, Relaxed, Relaxed)
                {
                    Ok(_) => state |= WRITERS_WAITING,
                    Err(s) => {
                        state = s;
                        continue;
                    }
                }
            }
            let outcome = self.state.wait(state, owners.slice_end(deadline));
            // After every sleep, not only when a slice ended: see `Semaphore::acquire`.
            reclaim();
            if outcome == WaitOutcome::TimedOut {
                check_holder = true;
                out_of_time = owners.expired(deadline);
            }
            state = self.state.load(Relaxed);
        }
    }

    /// A writer that waited gives up: it may have been the only writer waiting, and its
    /// [`WRITERS_WAITING`] mark would keep new readers out for as long as the current holders
    /// stay. It clears the mark and wakes everyone; writers still waiting wake, find the lock
    /// still held and set the mark again.
    #[cold]
    fn give_up_writing(&self) {
        let before = self.state.fetch_and(!WRITERS_WAITING, Relaxed);
        if before & WRITERS_WAITING != 0 {
            self.state.wake_all();
        }
    }

    /// Removes `n` readers (a read unlock, or a dead reader's holds). The last reader out
    /// hands the lock to waiting writers and wakes everyone.
    ///
    /// Release: our reads happen before the next writer's writes.
    #[inline]
    pub fn read_unlock(&self, n: u32) -> Result<(), NotLocked> {
        if self.read_unlock_unwoken(n)? {
            self.wake_waiters();
        }
        Ok(())
    }

    /// [`read_unlock`](RwLock::read_unlock) without the wake call: returns whether the caller
    /// must make it ([`wake_waiters`](RwLock::wake_waiters)), for a caller that records the
    /// unlock in a hold table and must finish that record before a system call. Until the
    /// call, waiters that were asleep are woken only by their slice ends.
    #[inline]
    pub fn read_unlock_unwoken(&self, n: u32) -> Result<bool, NotLocked> {
        let mut state = self.state.load(Relaxed);
        loop {
            if is_write_locked(state) || readers(state) < n {
                return Err(NotLocked);
            }
            let mut new = state - n;
            let last = readers(new) == 0 && state & WAITING != 0;
            if last {
                // Hand over to the writers, if any wait; readers re-mark themselves.
                new &= WRITERS_WAITING;
            }
            match self.state.compare_exchange(state, new, Release, Relaxed) {
                Ok(_) => return Ok(last),
                Err(s) => state = s,
            }
        }
    }

    /// Wakes every waiter (after [`read_unlock_unwoken`](RwLock::read_unlock_unwoken)).
    #[inline]
    pub fn wake_waiters(&self) {
        self.state.wake_all();
    }

    /// Releases the write lock held with `token`, waking everyone if anyone waits.
    ///
    /// Release: our writes are visible to the next holder.
    #[inline]
    pub fn write_unlock(&self, token: u32) -> Result<(), NotLocked> {
        let held = token | WRITE_LOCKED;
        let mut state = held;
        loop {
            match self.state.compare_exchange(state, 0, Release, Relaxed) {
                Ok(_) => {
                    if state & WAITING != 0 {
                        self.state.wake_all();
                    }
                    return Ok(());
                }
                Err(s) if s & !WAITING == held => state = s,
                Err(_) => return Err(NotLocked),
            }
        }
    }

    /// Clears the poison left by a dead writer (for the current writer, after repairing the
    /// data), and counts the repair. Returns whether it was poisoned.
    pub fn mark_consistent(&self) -> bool {
        let mut flags = self.flags.load(Relaxed);
        loop {
            if flags & POISONED == 0 {
                return false;
            }
            let new = (flags & !POISONED).wrapping_add(REPAIR);
            match self.flags.compare_exchange(flags, new, AcqRel, Relaxed) {
                Ok(_) => return true,
                Err(f) => flags = f,
            }
        }
    }

    /// Marks the lock broken and wakes every waiter to hear so.
    pub fn break_it(&self) {
        self.flags.fetch_or(BROKEN, Relaxed);
        // Waiters sleep on `state`, not `flags`: change it too, so that one about to sleep on
        // the value it saw before the break does not (the extra bit only asks for a wake).
        self.state.fetch_or(READERS_WAITING, Relaxed);
        self.state.wake_all();
    }
}
