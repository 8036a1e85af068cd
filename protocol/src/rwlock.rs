//! The reader-writer lock: a writer word, and one *reader indicator* per process that uses the
//! lock. A process's indicator is the only record of its read locks, so a process that dies
//! at any instruction leaves nothing that cannot be attributed: there is no shared reader count
//! to be out of step with a per-process record.
//!
//! # The words
//!
//! `state` (the writer word):
//!
//! ```text
//!  31               30               29             28 ..................... 0
//! +-----------------+----------------+--------------+---------------------------+
//! | WRITERS_WAITING | READERS_WAITING| WRITE_LOCKED |  writer token (or 0)      |
//! +-----------------+----------------+--------------+---------------------------+
//! ```
//!
//! | state                      | meaning                                                     |
//! |----------------------------|-------------------------------------------------------------|
//! | `0`                        | no writer: readers may enter                                |
//! | `WRITE_LOCKED \| t`        | the process with token `t` holds the write lock, or is      |
//! |                            | waiting for the readers inside to leave (new readers stay out) |
//! | `… \| WRITERS_WAITING`     | another writer may sleep on `state`                         |
//! | `… \| READERS_WAITING`     | a reader may sleep on `state`                               |
//!
//! `flags`: [`POISONED`] once a writer died holding the lock (until a writer calls
//! [`mark_consistent`](RwLock::mark_consistent)); [`WRITER_DRAINING`] while the writer in
//! `state` waits for readers to leave (so its death does not poison a value it never touched); [`BROKEN`] when the words were found in a
//! state this protocol never writes (another process scribbled on them): a read unlock of an
//! indicator that counts no read lock, or guards that the shared words would let overlap in one
//! process (`src/rwlock.rs`). A death never sets it. The bits above count the repairs (wrapping),
//! so that a recoverer can tell that the lock it is about to poison was repaired meanwhile.
//!
//! `claimed`: bit `i` is set while indicator `i` belongs to a process (writers look only at
//! those). `anonymous`: the read locks of readers that have no indicator (a process that could
//! not register in the region, or found every indicator taken): a count word like an
//! indicator's, which nobody can attribute, so such a read lock is lost if its process dies
//! (until [`repair`](RwLock::repair)).
//!
//! An indicator ([`Indicator`]) is two words: `owner`, the token of the process it belongs to
//! (0: free; `RECOVERING | r`: the process `r` is clearing it after its owner died), and
//! `count`: `DRAINING | n`, `n` read locks held by that process's threads, [`DRAINING`] when a
//! writer may sleep on the word until `n` drops to 0. Only the owner changes `n`, and only by
//! atomic read-modify-writes (one per lock and one per unlock, on a line of its own); a writer
//! only sets [`DRAINING`], a recoverer only clears the word of a dead owner.
//!
//! # Protocol
//!
//! Read lock: `count += 1` (SeqCst), then read `state` (SeqCst). No writer: the read lock is
//! held. A writer: back out (`count -= 1`, waking a draining writer if that was the last) and
//! sleep on `state` until the writer leaves. Read unlock: `count -= 1` (Release); if it was the
//! last read lock of the process and [`DRAINING`] was set, clear it and wake the writer.
//!
//! Write lock: `state: 0 → WRITE_LOCKED | t` (SeqCst compare-exchange; waiting for another
//! writer as a mutex does), then *drain*: read `claimed` and every claimed indicator's count and
//! `anonymous` (SeqCst), and wait until each is 0, sleeping on a non-zero count after setting
//! [`DRAINING`] in it. Write unlock: `state → 0` (Release), waking sleepers if a waiting bit was
//! set.
//!
//! The orderings: the reader's increment and read of `state`, and the writer's change of `state`
//! and read of the count, are all SeqCst, so in their single total order either the reader's
//! increment comes first (the writer sees the count and waits) or the writer's change does
//! (the reader sees the writer and backs out); both may happen, never neither (Dekker's
//! store-load pattern; on x86-64 the loads are plain moves, the read-modify-writes locked
//! instructions anyway). The claim of an indicator (`claimed |= bit`, SeqCst) comes before its
//! owner's first increment, so a writer that misses the bit also misses the increment, and the
//! reader then sees the writer. The read unlock is Release and the writer's reads Acquire (its
//! SeqCst loads): the readers' reads happen before the writer's writes; the writer's unlock is
//! Release and the reader's read of `state` Acquire: the writer's writes happen before the
//! readers' reads.
//!
//! Writers are preferred: a writer in `state` keeps every new reader out while it drains. So a
//! thread that takes a second read lock while a writer waits deadlocks with it, as with std's
//! `RwLock` (the writer waits for the first read lock, the second waits for the writer).
//!
//! # A death at any instruction
//!
//! | the process dies …                                   | left behind                  | what happens                         |
//! |------------------------------------------------------|------------------------------|--------------------------------------|
//! | claiming an indicator, before `owner` is set         | nothing                      | —                                    |
//! | after `owner` is set, before its `claimed` bit       | a dead owner, count 0        | reclaimed by the next claimer        |
//! | before `count += 1`                                  | count `n`                    | its `n` read locks cleared (below)   |
//! | after `count += 1` (holding, or backing out)         | count `n + 1`                | cleared: it held, or was leaving     |
//! | after `count -= 1`, before waking the writer         | count `n - 1`, `DRAINING`    | the writer's slice ends; it clears it|
//! | holding the write lock                               | `state` names a dead token   | freed and poisoned (a waiter), or taken over and poisoned (a writer) |
//! | draining (after setting [`WRITER_DRAINING`])          | the same, and the flag       | freed, or taken over, without poison |
//! | clearing a dead owner's indicator                    | `owner = RECOVERING \| r`    | the next writer or claimer clears it again (idempotent) |
//!
//! "Cleared": a draining writer whose wait on a count outlasts a sleep slice asks whether the
//! indicator's owner is alive; a dead owner's indicator is cleared (`owner: t → RECOVERING | me`
//! by compare-exchange, `count = 0`, its `claimed` bit cleared, `owner = 0`), which gives its
//! read locks back at once, whatever it was doing: the count *is* the record, so there is
//! nothing in flight to guess at. A process claiming an indicator when none is free clears a
//! dead owner's the same way.

use super::Block;
use super::mutex::{Owners, RECOVERING, TOKEN_MASK};
use crate::word::{WaitOutcome, Word};
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release, SeqCst};

/// Set while a writer holds the lock (or drains its readers); the low bits are its token.
pub const WRITE_LOCKED: u32 = 1 << 29;
/// Set while a reader may be asleep on the word.
pub const READERS_WAITING: u32 = 1 << 30;
/// Set while a writer may be asleep on the word.
pub const WRITERS_WAITING: u32 = 1 << 31;
const WAITING: u32 = READERS_WAITING | WRITERS_WAITING;

/// In an indicator's count: a writer may sleep on it until the count drops to 0.
pub const DRAINING: u32 = 1 << 31;
/// In an indicator's count: the read locks.
pub const COUNT_MASK: u32 = DRAINING - 1;
/// The most read locks one indicator records; the margin below [`COUNT_MASK`] leaves room for
/// threads that race past the check, so the count never carries into [`DRAINING`].
pub const MAX_READS: u32 = COUNT_MASK - (1 << 16);
/// The most indicators a lock can have (one bit each in `claimed`).
pub const MAX_INDICATORS: u32 = 32;

/// In `flags`: a writer died holding the lock.
pub const POISONED: u32 = 1;
/// In `flags`: the words were found in a state this protocol never writes.
pub const BROKEN: u32 = 2;
/// In `flags`: the writer in `state` is still waiting for readers to leave (it has not touched
/// the value yet), so its death does not poison the lock.
pub const WRITER_DRAINING: u32 = 4;
/// In `flags`: one repair (the bits from here up count the repairs, wrapping).
pub const REPAIR: u32 = 8;

/// Whether a writer holds `state` (or drains its readers).
#[inline]
pub const fn is_write_locked(state: u32) -> bool {
    state & WRITE_LOCKED != 0
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

/// The read locks an indicator's `count` records.
#[inline]
pub const fn reads(count: u32) -> u32 {
    count & COUNT_MASK
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
    /// Not acquired: this process records too many read locks.
    Full,
}

/// Releasing a lock not held that way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotLocked;

/// One process's reader indicator (see the module docs).
#[derive(Clone, Copy, Debug)]
pub struct Indicator<'a, W> {
    /// The token of the process it belongs to; 0 if free; `RECOVERING | r` while `r` clears it.
    pub owner: &'a W,
    /// `DRAINING | n`: the owner's `n` read locks.
    pub count: &'a W,
}

/// The lock's indicators.
pub trait Indicators {
    /// The word type.
    type Word: Word;
    /// How many there are (at most [`MAX_INDICATORS`]).
    fn len(&self) -> u32;
    /// Whether there are none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Indicator `i` (`i < len()`).
    fn get(&self, i: u32) -> Indicator<'_, Self::Word>;
}

/// The words of a reader-writer lock.
#[derive(Clone, Copy, Debug)]
pub struct RwLock<'a, W> {
    /// The writer's token, and the waiting bits.
    pub state: &'a W,
    /// [`POISONED`], [`BROKEN`], the repair count.
    pub flags: &'a W,
    /// Bit `i`: indicator `i` belongs to a process.
    pub claimed: &'a W,
    /// The read locks of readers without an indicator (a count word like an indicator's).
    pub anonymous: &'a W,
}

impl<W: Word> Indicator<'_, W> {
    /// Clears the indicator of `dead` (its `owner` as read, a token judged dead, or
    /// `RECOVERING | r` with `r` judged dead), as process `me`: its read locks are given back,
    /// its `claimed` bit (`bit`) cleared and the indicator freed. Returns `false` if someone
    /// else changed `owner` first.
    ///
    /// Every step can be repeated: a clearer that dies mid-way leaves `RECOVERING | me`, and
    /// the next one does it all again.
    pub fn clear_dead(&self, dead: u32, me: u32, claimed: &W, bit: u32) -> bool {
        if dead == 0
            || self
                .owner
                .compare_exchange(dead, RECOVERING | me, AcqRel, Relaxed)
                .is_err()
        {
            return false;
        }
        // Release: a writer that reads the 0 (Acquire) comes after everything before.
        let before = self.count.swap(0, Release);
        if before & DRAINING != 0 {
            self.count.wake_all();
        }
        // The bit before the owner: a new claimer sets it only after taking the owner word.
        claimed.fetch_and(!bit, Relaxed);
        // Release: the next claimer sees the cleared count.
        self.owner.store(0, Release);
        true
    }

    /// Whether the owner named by `owner` (as read) is certainly dead, as `O` judges it (for a
    /// `RECOVERING` mark: its recoverer).
    fn owner_dead<O: Owners>(owner: u32, owners: &O) -> bool {
        owner != 0 && !owners.is_alive(owner & TOKEN_MASK)
    }
}

impl<W: Word> RwLock<'_, W> {
    /// The outcome for a lock just taken: poisoned or not (or broken, for a reader that then
    /// backs out). Relaxed: the Acquire that took the lock synchronised with the Release that
    /// freed it after the poison was set.
    #[inline]
    fn taken(&self) -> Outcome {
        match self.flags.load(Relaxed) & (POISONED | BROKEN) {
            0 => Outcome::Acquired,
            POISONED => Outcome::Poisoned,
            _ => Outcome::Broken,
        }
    }

    #[inline]
    fn is_broken(&self) -> bool {
        self.flags.load(Relaxed) & BROKEN != 0
    }

    /// Finds this process's indicator (`me`, a registered token), claiming one on first use:
    /// one already ours, else a free one, else one whose owner died (cleared first). `None`
    /// when every indicator belongs to a live process: the caller then reads through
    /// `anonymous`.
    pub fn claim<T: Indicators<Word = W>, O: Owners>(
        &self,
        table: &T,
        me: u32,
        owners: &O,
    ) -> Option<u32> {
        let n = table.len().min(MAX_INDICATORS);
        for i in 0..n {
            if table.get(i).owner.load(Acquire) == me {
                // Ours already (a handle that lost its cache); the bit may be missing if we
                // were interrupted, and setting it again is harmless.
                self.claimed.fetch_or(1 << i, SeqCst);
                return Some(i);
            }
        }
        for pass in 0..2 {
            for i in 0..n {
                let indicator = table.get(i);
                let owner = indicator.owner.load(Acquire);
                if owner != 0 {
                    if pass == 0 || !Indicator::<W>::owner_dead(owner, owners) {
                        continue;
                    }
                    indicator.clear_dead(owner, me, self.claimed, 1 << i);
                }
                // Acquire: we see the count as the last owner or clearer left it (0).
                if indicator
                    .owner
                    .compare_exchange(0, me, Acquire, Relaxed)
                    .is_ok()
                {
                    // SeqCst: before our first increment (see the module docs).
                    self.claimed.fetch_or(1 << i, SeqCst);
                    return Some(i);
                }
            }
        }
        None
    }

    /// Frees the word of a dead writer, from the exact value judged (`state`); sets the poison
    /// first (unless the writer died draining, before it could touch the value: then it clears
    /// [`WRITER_DRAINING`] instead). Returns whether we did it.
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
            let new = if flags & WRITER_DRAINING != 0 {
                flags & !WRITER_DRAINING
            } else {
                flags | POISONED
            };
            if new == flags
                || self
                    .flags
                    .compare_exchange(flags, new, Relaxed, Relaxed)
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

    /// Takes a read lock, counted in `count` (the caller's indicator's count, or `anonymous`),
    /// sleeping as `block` allows.
    #[inline]
    pub fn read<O: Owners>(&self, count: &W, block: Block, owners: &O) -> Outcome {
        // SeqCst, both: see the module docs.
        let before = count.fetch_add(1, SeqCst);
        if reads(before) < MAX_READS && !is_write_locked(self.state.load(SeqCst)) {
            match self.taken() {
                Outcome::Broken => {}
                taken => return taken,
            }
        }
        self.read_contended(count, before, block, owners)
    }

    #[cold]
    fn read_contended<O: Owners>(
        &self,
        count: &W,
        before: u32,
        block: Block,
        owners: &O,
    ) -> Outcome {
        // Back out of the increment that did not take the lock.
        self.unread(count);
        if reads(before) >= MAX_READS {
            return Outcome::Full;
        }
        let deadline = block.deadline();
        let single_try = block == Block::Try;
        let mut check_holder = single_try;
        let mut out_of_time = single_try;
        loop {
            if self.is_broken() {
                return Outcome::Broken;
            }
            let state = self.state.load(SeqCst);
            if !is_write_locked(state) {
                count.fetch_add(1, SeqCst);
                if !is_write_locked(self.state.load(SeqCst)) {
                    match self.taken() {
                        Outcome::Broken => {}
                        taken => return taken,
                    }
                }
                self.unread(count);
                continue;
            }
            if check_holder {
                check_holder = false;
                if !owners.is_alive(writer(state)) {
                    let dead = writer(state);
                    self.free_dead_writer(state);
                    let now = self.state.load(Relaxed);
                    // Still the dead writer's (only a waiting bit changed): judge again
                    // rather than report a dead writer's lock `Busy`.
                    check_holder = writer(now) == dead;
                    continue;
                }
            }
            if out_of_time {
                return Outcome::Busy;
            }
            if state & READERS_WAITING == 0
                && self
                    .state
                    .compare_exchange(state, state | READERS_WAITING, Relaxed, Relaxed)
                    .is_err()
            {
                continue;
            }
            let outcome = self
                .state
                .wait(state | READERS_WAITING, owners.slice_end(deadline));
            if outcome == WaitOutcome::TimedOut {
                check_holder = true;
                out_of_time = owners.expired(deadline);
            }
        }
    }

    /// Takes back one increment of `count`, waking a draining writer if it was the last.
    ///
    /// Release: our reads under the lock happen before the writer's writes.
    #[inline]
    fn unread(&self, count: &W) -> bool {
        let before = count.fetch_sub(1, Release);
        if reads(before) == 0 {
            // Nothing to take back: the word lies (another process wrote it). Undo.
            count.fetch_add(1, Relaxed);
            return false;
        }
        if before == DRAINING | 1 {
            // We were the last, and a writer waits for that.
            count.fetch_and(!DRAINING, Relaxed);
            count.wake_all();
        }
        true
    }

    /// Releases a read lock counted in `count`.
    ///
    /// # Errors
    ///
    /// [`NotLocked`] if `count` records no read lock (the words lie).
    #[inline]
    pub fn read_unlock(&self, count: &W) -> Result<(), NotLocked> {
        if self.unread(count) {
            Ok(())
        } else {
            Err(NotLocked)
        }
    }

    /// Whether no indicator and no anonymous reader counts a read lock now: the check a writer
    /// makes right after taking `state`. SeqCst: see the module docs.
    #[inline]
    fn no_readers<T: Indicators<Word = W>>(&self, table: &T) -> bool {
        if reads(self.anonymous.load(SeqCst)) != 0 {
            return false;
        }
        let mut claimed = self.claimed.load(SeqCst);
        while claimed != 0 {
            let i = claimed.trailing_zeros();
            claimed &= claimed - 1;
            if i < table.len() && reads(table.get(i).count.load(SeqCst)) != 0 {
                return false;
            }
        }
        true
    }

    /// Takes the write lock for `token` (this process, `me` for clearing dead readers' words),
    /// sleeping as `block` allows.
    #[inline]
    pub fn write<T: Indicators<Word = W>, O: Owners>(
        &self,
        token: u32,
        table: &T,
        block: Block,
        owners: &O,
    ) -> Outcome {
        debug_assert!(token != 0 && token & !TOKEN_MASK == 0);
        if !self.is_broken() {
            match self
                .state
                .compare_exchange(0, token | WRITE_LOCKED, SeqCst, Relaxed)
            {
                Ok(_) if self.no_readers(table) => return self.finish_write(token),
                Ok(_) => return self.drain(token, table, block, owners),
                Err(_) => {}
            }
        }
        self.write_contended(token, table, block, owners)
    }

    #[cold]
    fn write_contended<T: Indicators<Word = W>, O: Owners>(
        &self,
        token: u32,
        table: &T,
        block: Block,
        owners: &O,
    ) -> Outcome {
        let deadline = block.deadline();
        let single_try = block == Block::Try;
        let mut check_holder = single_try;
        let mut out_of_time = single_try;
        let mut state = self.state.load(Relaxed);
        loop {
            if self.is_broken() {
                return Outcome::Broken;
            }
            if !is_write_locked(state) {
                let new = token | WRITE_LOCKED | (state & WAITING);
                match self.state.compare_exchange(state, new, SeqCst, Relaxed) {
                    Ok(_) => return self.drain(token, table, block, owners),
                    Err(s) => {
                        state = s;
                        continue;
                    }
                }
            }
            if check_holder {
                check_holder = false;
                if !owners.is_alive(writer(state)) {
                    let new = token | WRITE_LOCKED | (state & WAITING);
                    match self.state.compare_exchange(state, new, SeqCst, Relaxed) {
                        Ok(_) => {
                            // Poisoned only now that the takeover succeeded (a poison set
                            // before a failed one could outlive a repair); the lock is ours
                            // alone, and our unlock (Release) publishes the poison. Not if the
                            // dead writer was still draining: it never touched the value.
                            let flags = self.flags.fetch_and(!WRITER_DRAINING, Relaxed);
                            if flags & WRITER_DRAINING == 0 {
                                self.flags.fetch_or(POISONED, Relaxed);
                            }
                            // The dead writer may have died draining: drain again.
                            return self.drain(token, table, block, owners);
                        }
                        Err(s) => {
                            // Still the dead writer (only a waiting bit changed): judge again
                            // rather than report a dead writer's lock `Busy`.
                            check_holder = writer(s) == writer(state);
                            state = s;
                            continue;
                        }
                    }
                }
            }
            if out_of_time {
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
            if outcome == WaitOutcome::TimedOut {
                check_holder = true;
                out_of_time = owners.expired(deadline);
            }
            state = self.state.load(Relaxed);
        }
    }

    /// With `state` ours and no reader left: the outcome (poisoned or not), or, if the lock is
    /// broken, [`Outcome::Broken`] with `state` let go.
    #[inline]
    fn finish_write(&self, token: u32) -> Outcome {
        match self.taken() {
            Outcome::Broken => {
                let _ = self.write_unlock(token);
                Outcome::Broken
            }
            taken => taken,
        }
    }

    /// With `state` ours: waits until no reader holds the lock, clearing dead readers'
    /// indicators, then [`finish_write`](RwLock::finish_write). If `block` runs out first, lets
    /// go of `state` and returns [`Outcome::Busy`].
    #[cold]
    fn drain<T: Indicators<Word = W>, O: Owners>(
        &self,
        token: u32,
        table: &T,
        block: Block,
        owners: &O,
    ) -> Outcome {
        // Until we are through, our death leaves the value untouched: no poison.
        self.flags.fetch_or(WRITER_DRAINING, Relaxed);
        let give_up = || {
            self.flags.fetch_and(!WRITER_DRAINING, Relaxed);
            let _ = self.write_unlock(token);
            Outcome::Busy
        };
        // The anonymous readers: nobody can tell whether they live, so only wait.
        if !self.wait_for_zero(self.anonymous, block, owners, None) {
            return give_up();
        }
        let mut claimed = self.claimed.load(SeqCst);
        while claimed != 0 {
            let i = claimed.trailing_zeros();
            claimed &= claimed - 1;
            if i >= table.len() {
                continue;
            }
            let indicator = table.get(i);
            let clear = |owner: u32| indicator.clear_dead(owner, token, self.claimed, 1 << i);
            let owner_of = || {
                let owner = indicator.owner.load(Acquire);
                Indicator::<W>::owner_dead(owner, owners).then_some(owner)
            };
            if !self.wait_for_zero(indicator.count, block, owners, Some((&owner_of, &clear))) {
                return give_up();
            }
        }
        self.flags.fetch_and(!WRITER_DRAINING, Relaxed);
        self.finish_write(token)
    }

    /// Waits until `count` records no read lock (or, once a sleep slice passed without that,
    /// `dead` finds its owner dead and clears it). Returns `false` if `block` ran out first.
    #[allow(clippy::type_complexity)]
    fn wait_for_zero<O: Owners>(
        &self,
        count: &W,
        block: Block,
        owners: &O,
        dead: Option<(&dyn Fn() -> Option<u32>, &dyn Fn(u32) -> bool)>,
    ) -> bool {
        let deadline = block.deadline();
        // A single try asks about the owner at once (as a waiter does when a slice ends).
        let mut slice_ended = block == Block::Try;
        // A single try spins too: a reader that saw us may be backing out of its increment.
        let mut spins = count.spin_budget();
        loop {
            // SeqCst (first time: see the module docs); Acquire: the readers' reads happen
            // before our writes.
            let c = count.load(SeqCst);
            if reads(c) == 0 {
                return true;
            }
            if spins > 0 {
                // Readers usually leave within a few hundred nanoseconds.
                spins -= 1;
                count.spin_pause(1);
                continue;
            }
            if slice_ended {
                slice_ended = false;
                if let Some((owner_dead, clear)) = dead
                    && let Some(owner) = owner_dead()
                {
                    clear(owner);
                    continue;
                }
            }
            if block == Block::Try || owners.expired(deadline) {
                return false;
            }
            if c & DRAINING == 0
                && count
                    .compare_exchange(c, c | DRAINING, Relaxed, Relaxed)
                    .is_err()
            {
                continue;
            }
            if count.wait(c | DRAINING, owners.slice_end(deadline)) == WaitOutcome::TimedOut {
                slice_ended = true;
            }
        }
    }

    /// A writer that waited gives up: it may have been the only writer waiting, and its
    /// [`WRITERS_WAITING`] mark would make the holder's unlock wake nobody useful. Clears it.
    #[cold]
    fn give_up_writing(&self) {
        let before = self.state.fetch_and(!WRITERS_WAITING, Relaxed);
        if before & WRITERS_WAITING != 0 {
            self.state.wake_all();
        }
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

    /// Repairs what a death cannot leave but damage can, for a caller who knows that no
    /// process without an indicator holds a read lock: forgets the anonymous read locks (those
    /// of dead unregistered processes), clears the indicators of dead processes, and clears
    /// [`BROKEN`]; sleepers are woken to look again. Live processes' indicators are left alone.
    /// `me` is the caller's token, `None` for a process whose own death nobody could tell (an
    /// unregistered one): such a caller leaves dead processes' indicators alone, since a
    /// `RECOVERING` mark of its own would stay for good if it died while clearing one.
    pub fn repair<T: Indicators<Word = W>, O: Owners>(
        &self,
        table: &T,
        me: Option<u32>,
        owners: &O,
    ) {
        if let Some(me) = me {
            self.sweep(table, me, owners);
        }
        let before = self.anonymous.swap(0, Release);
        if before & DRAINING != 0 {
            self.anonymous.wake_all();
        }
        self.flags.fetch_and(!BROKEN, Release);
        self.state.wake_all();
    }

    /// Clears the indicator of every dead process (its read locks given back, the indicator
    /// freed), as process `me` (a registered token), so that writers stop looking at it and a
    /// later reader can claim it. Returns how many it cleared. Each owner is asked whether it
    /// lives (`owners.is_alive`), so callers do it now and then, not on every write.
    pub fn sweep<T: Indicators<Word = W>, O: Owners>(&self, table: &T, me: u32, owners: &O) -> u32 {
        let mut cleared = 0;
        for i in 0..table.len().min(MAX_INDICATORS) {
            let indicator = table.get(i);
            let owner = indicator.owner.load(Acquire);
            if owner != me
                && Indicator::<W>::owner_dead(owner, owners)
                && indicator.clear_dead(owner, me, self.claimed, 1 << i)
            {
                cleared += 1;
            }
        }
        cleared
    }

    /// Read locks counted now (a snapshot): the claimed indicators and the anonymous ones.
    pub fn readers<T: Indicators<Word = W>>(&self, table: &T) -> u32 {
        let mut n = reads(self.anonymous.load(Relaxed));
        for i in 0..table.len().min(MAX_INDICATORS) {
            n = n.saturating_add(reads(table.get(i).count.load(Relaxed)));
        }
        n
    }
}
