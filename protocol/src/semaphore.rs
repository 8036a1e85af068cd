//! The semaphore: the count of permits and an *in-flight tag* in one 64-bit state word, and one
//! record per process that uses it, so that a process that dies at any instruction leaves
//! nothing that cannot be attributed.
//!
//! # The problem
//!
//! A `Permit` is a count change (`count -= 1`) that must also be written down as the taker's
//! (so that its death gives the permit back). Two words cannot change as one: a process killed
//! between the count change and its record leaves a state in which nobody can tell whether its
//! permit was taken (the old design declared the semaphore broken there; 6–60 kills in 100
//! landed there). Here the count change *is* the record: the compare-exchange that changes the
//! count also writes who changed it and by how much into the same word (the *tag*), and the
//! tag is copied into the taker's own record (its *entry*) only later, by whoever needs the
//! word's tag bits for their own change ("helping"), in steps each of which is one atomic
//! change that anyone can finish.
//!
//! # The words
//!
//! `state` (a [`Word64`]):
//!
//! ```text
//!  63 ........ 41   40      39 ... 32   31 .. 25    24       23 ............. 0
//! +--------------+--------+-----------+----------+--------+-------------------+
//! | epoch (23)   | FROZEN |  delta    |  entry+1 | BROKEN |  count (24 bits)  |
//! +--------------+--------+-----------+----------+--------+-------------------+
//! ```
//!
//! - `count`: the free permits (at most [`MAX_VALUE`]).
//! - the tag: `entry + 1` (0: no tag yet), `delta` (a signed byte: the permits entry `entry`'s
//!   process took, minus those it gave back, since its record was last written), `epoch` (the
//!   entry's record epoch, modulo 2²³, when the tag was put in), [`FROZEN`] (the tag is being
//!   copied into the entry's record; nobody may change it until that is done).
//! - [`BROKEN`]: the words were found in a state this protocol never writes (another process
//!   scribbled on them). A death never sets it.
//!
//! An entry (one per process that uses the semaphore, claimed on first use) is an `owner` word
//! (the token of the process it belongs to; 0: free; [`RECOVERING`]` | r`: process `r` is
//! giving a dead owner's permits back) and a `record` ([`Word64`]): `epoch << 32 | held`, the
//! permits recorded as the owner's, and how many times a tag was copied in.
//!
//! `sleepers`: `epoch << 16 | count`, the threads that may be asleep on `wakes`; a release that
//! finds a count bumps `wakes` and wakes.
//!
//! # Invariant
//!
//! The permits process `p` holds = its entry's `held`, plus the `delta` of the tag in `state` if
//! the tag names `p`'s entry. While a tag is in `state` unfrozen, its entry's record epoch is the
//! tag's epoch (modulo 2²³); a frozen tag's record epoch is the tag's (not yet copied) or the
//! next (copied).
//!
//! # Protocol
//!
//! Every change of `state` is one compare-exchange (SeqCst):
//!
//! - **take** (`count ≥ 1`) or **give** by the process of entry `i`: if the tag is `i`'s and
//!   unfrozen, `count ∓ 1, delta ± 1` (the fast path: one compare-exchange, nothing else);
//!   otherwise the tag is first *settled* (below), then replaced by `i`'s own tag
//!   (`delta = ±1`, `epoch` = `i`'s record epoch) in the same compare-exchange as the count
//!   change. A give never fails for want of room: a bounded semaphore at its bound keeps its
//!   count (someone released meanwhile, and that permit stands for ours), the record drops.
//! - **settle** a tag (another entry's, or our own when `delta` would overflow): *freeze* it
//!   (`FROZEN` set by compare-exchange), then *copy* it: read the entry's record, check that the
//!   same frozen tag is still in `state` (so the record was read while this freeze was on), and
//!   if the record's epoch is the tag's, compare-exchange the record to `(epoch + 1, held +
//!   delta)`; if it is the next epoch, it was copied already. Then the frozen tag may leave
//!   `state`: the next compare-exchange puts in the settler's own tag, or the same entry's tag
//!   with `delta = 0` and the next epoch.
//! - Python's unattributed `acquire()`/`release()` change only `count`.
//!
//! Even a tag with `delta = 0` is settled (its epoch bumped) before another entry's tag replaces
//! it, so that a tag in `state` names one "tag instance" of its entry: a compare-exchange that
//! expects a value read long ago cannot succeed on a look-alike state unless one entry's tags
//! came and went 2²³ times meanwhile (the epoch wrapped), and a record compare-exchange cannot
//! succeed on a look-alike record unless 2³² copies were made meanwhile.
//!
//! # A death at any instruction
//!
//! | the process dies …                         | left behind                   | what happens                          |
//! |--------------------------------------------|-------------------------------|---------------------------------------|
//! | before the compare-exchange of a take/give | nothing changed               | —                                     |
//! | after it                                   | its tag, or its record        | its permits = held + delta: given back |
//! | after freezing a tag                       | a frozen tag                  | the next change of `state` copies it  |
//! | after copying, before the tag leaves       | a frozen, copied tag          | the next change sees the epoch moved  |
//! | giving a dead owner's permits back         | `owner = RECOVERING \| r`     | the next recoverer starts over: every step it left is recorded |
//!
//! **Recovery** of a dead process's entry `i` (by a waiter's scan, a claimer that finds every
//! entry taken, or a repair): `owner: t → RECOVERING | me` (compare-exchange: one recoverer),
//! settle `i`'s tag if `state` has one with a delta, then give `held` back as the process would
//! have, `i`'s own tagged gives of up to 127 permits each, each settled in turn, and free the
//! entry. The recoverer's steps are the protocol's own, so a recoverer that dies leaves a state
//! the next one finishes exactly.
//!
//! # Sleeping
//!
//! A taker that finds no permit spins a while (as a contended lock does, on an adaptive
//! budget), then reads `wakes`, increments `sleepers`, reads `state` again and sleeps on
//! `wakes` if the count is still 0; a change that adds permits reads `sleepers` and,
//! if non-zero, bumps `wakes` and wakes. All SeqCst: either the taker's second read sees the
//! permit, or the releaser sees the sleeper (and its bump makes the sleep return). A sleeper
//! takes its count back when it leaves, but only in the epoch it counted itself in. A sleeper
//! killed in its sleep leaves its count behind: the next give that wakes one thread finds
//! nobody asleep (the futex says how many it woke), starts a new epoch with count 0 and wakes
//! every sleeper, which count themselves again. So a dead sleeper costs one needless wake, not
//! one per give for good.

use super::Block;
use super::mutex::{Owners, RECOVERING, TOKEN_MASK, spin_while};
use crate::word::{Fault, WaitOutcome, Word, Word64};
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};

/// The most permits a semaphore counts (2²⁴ − 1).
pub const MAX_VALUE: u32 = (1 << 24) - 1;
const COUNT_MASK: u64 = MAX_VALUE as u64;
/// In `state`: the words were found in a state this protocol never writes.
pub const BROKEN: u64 = 1 << 24;
const ENTRY_SHIFT: u32 = 25;
const ENTRY_MASK: u64 = 0x7f;
const DELTA_SHIFT: u32 = 32;
const DELTA_MASK: u64 = 0xff << DELTA_SHIFT;
/// In `state`: the tag is being copied into its entry's record.
pub const FROZEN: u64 = 1 << 40;
const EPOCH_SHIFT: u32 = 41;
/// The bits of an entry's record epoch a tag carries.
pub const TAG_EPOCH_BITS: u32 = 23;
const TAG_EPOCH_MASK: u32 = (1 << TAG_EPOCH_BITS) - 1;
/// The most entries a semaphore can have (a tag names one in 7 bits).
pub const MAX_ENTRIES: u32 = 126;
/// The most permits a record counts, as the count: a record saturates there (a give-back is
/// capped at the bound anyway), so one above it was scribbled on (and giving it back, 127 at a
/// time, could take billions of steps).
const HELD_MAX: i64 = MAX_VALUE as i64;

/// In `sleepers`: the threads that may be asleep on `wakes`.
pub const SLEEPERS_COUNT: u32 = 0xffff;
/// In `sleepers`: the epoch (the high 16 bits): a sleeper takes its count back only in the
/// epoch it counted itself in.
pub const SLEEPERS_EPOCH: u32 = !SLEEPERS_COUNT;
const SLEEPERS_EPOCH_ONE: u32 = SLEEPERS_COUNT + 1;

/// A decoded tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tag {
    /// The entry it names, or `None` (no tag was ever put in).
    pub entry: Option<u32>,
    /// Permits taken minus given since the entry's record was last written.
    pub delta: i32,
    /// Being copied into the record.
    pub frozen: bool,
    /// The record epoch it belongs to (modulo 2²³).
    pub epoch: u32,
}

/// The free permits in a state word.
#[inline]
pub const fn count(state: u64) -> u32 {
    (state & COUNT_MASK) as u32
}

/// Whether a state word is broken.
#[inline]
pub const fn is_broken(state: u64) -> bool {
    state & BROKEN != 0
}

/// The tag of a state word.
#[inline]
pub const fn tag(state: u64) -> Tag {
    let entry = ((state >> ENTRY_SHIFT) & ENTRY_MASK) as u32;
    Tag {
        entry: if entry == 0 { None } else { Some(entry - 1) },
        delta: (state >> DELTA_SHIFT) as u8 as i8 as i32,
        frozen: state & FROZEN != 0,
        epoch: (state >> EPOCH_SHIFT) as u32 & TAG_EPOCH_MASK,
    }
}

/// The tag bits of a state word (everything but the count and [`BROKEN`]).
#[inline]
const fn tag_bits(state: u64) -> u64 {
    state & !(COUNT_MASK | BROKEN)
}

/// A state word with `count` free permits and the tag of entry `entry`.
#[inline]
const fn pack(count: u32, entry: u32, delta: i32, epoch: u32) -> u64 {
    (count as u64 & COUNT_MASK)
        | ((entry as u64 + 1) & ENTRY_MASK) << ENTRY_SHIFT
        | (delta as i8 as u8 as u64) << DELTA_SHIFT
        | ((epoch & TAG_EPOCH_MASK) as u64) << EPOCH_SHIFT
}

/// The permits a record holds.
#[inline]
pub const fn held(record: u64) -> u32 {
    record as u32
}

/// A record's epoch (how many tags were copied into it).
#[inline]
pub const fn epoch(record: u64) -> u32 {
    (record >> 32) as u32
}

#[inline]
const fn record(epoch: u32, held: u32) -> u64 {
    (epoch as u64) << 32 | held as u64
}

/// A process's entry: who owns it, and the permits recorded as theirs.
#[derive(Clone, Copy, Debug)]
pub struct Entry<'a, W, C> {
    /// The owner's token, 0, or `RECOVERING | r`.
    pub owner: &'a W,
    /// `epoch << 32 | held`.
    pub record: &'a C,
}

/// A semaphore's entries.
pub trait Entries {
    /// The 32-bit word type.
    type Word: Word;
    /// The 64-bit word type.
    type Wide: Word64;
    /// How many there are (at most [`MAX_ENTRIES`]).
    fn len(&self) -> u32;
    /// Whether there are none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Entry `i` (`i < len()`).
    fn get(&self, i: u32) -> Entry<'_, Self::Word, Self::Wide>;
}

/// The words of a semaphore.
pub struct Semaphore<'a, T: Entries> {
    /// Count and tag.
    pub state: &'a T::Wide,
    /// Threads that may be asleep on `wakes`.
    pub sleepers: &'a T::Word,
    /// Bumped by a change that adds permits while someone may sleep.
    pub wakes: &'a T::Word,
    /// The entries.
    pub entries: &'a T,
    /// The most permits a release may leave (at most [`MAX_VALUE`]).
    pub bound: u32,
}

/// How an acquire ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acquired {
    /// One permit is ours.
    Yes,
    /// No permit until the deadline (or at the single try).
    Busy,
    /// The semaphore is broken.
    Broken,
}

/// Why a release was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReleaseError {
    /// The count would pass its bound (a bounded semaphore's initial value, or [`MAX_VALUE`]).
    AboveBound,
    /// The semaphore is broken.
    Broken,
}

/// What a change of `state` wants.
#[derive(Clone, Copy, Debug)]
enum Change {
    /// Take one permit.
    Take,
    /// Give `n` permits back (up to the bound; the rest is dropped).
    Give(u32),
}

/// How settling a frozen tag ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Settled {
    /// The tag is copied into its record (by us or before): it may leave `state`.
    Copied,
    /// `state` no longer holds this freeze: look again.
    Moved,
    /// The record or the tag is damaged; the semaphore is now marked broken.
    Broken,
}

impl<T: Entries> Semaphore<'_, T> {
    // ---------------------------------------------------------------------------------------
    // Taking and giving

    /// Takes one permit for entry `entry` (`None`: unattributed, Python's `acquire()`),
    /// sleeping as `block` allows. Sleeps are slices ([`Owners::slice_end`]); after every sleep,
    /// whether a slice ended or a release woke us (and before a single try gives up), `reclaim`
    /// is called to give back the permits of processes that died (while live permits
    /// circulate, every release wakes a sleeper and no slice ever ends, so a waiter that looked
    /// only when a slice ended would never find a dead holder). `reclaim` must limit itself.
    #[inline]
    pub fn acquire<O: Owners>(
        &self,
        entry: Option<u32>,
        block: Block,
        owners: &O,
        reclaim: impl FnMut(),
    ) -> Acquired {
        match self.try_take(entry) {
            Acquired::Busy => self.acquire_contended(entry, block, owners, reclaim),
            done => done,
        }
    }

    #[inline]
    fn try_take(&self, entry: Option<u32>) -> Acquired {
        let outcome = match entry {
            Some(i) => self.change(i, Change::Take),
            None => self.add_unattributed(-1),
        };
        match outcome {
            Ok(()) => Acquired::Yes,
            Err(ReleaseError::AboveBound) => Acquired::Busy,
            Err(ReleaseError::Broken) => Acquired::Broken,
        }
    }

    #[cold]
    fn acquire_contended<O: Owners>(
        &self,
        entry: Option<u32>,
        block: Block,
        owners: &O,
        mut reclaim: impl FnMut(),
    ) -> Acquired {
        let deadline = block.deadline();
        let mut reclaimed = false;
        loop {
            match self.try_take(entry) {
                Acquired::Busy => {}
                done => return done,
            }
            if block == Block::Try {
                if reclaimed {
                    return Acquired::Busy;
                }
                reclaimed = true;
                reclaim();
                continue;
            }
            // Spin a while (as a contended lock does, on the same adaptive budget, kept for
            // `wakes`): a permit given back on another CPU is then taken without a system call
            // on either side.
            let state = spin_while(
                self.wakes,
                self.state.load(Relaxed),
                || self.state.load(Relaxed),
                |state| count(state) == 0 && !is_broken(state),
            );
            if count(state) != 0 || is_broken(state) {
                continue;
            }
            // SeqCst, all four: ordered against a releaser's SeqCst change of `state` and its
            // read of `sleepers` (see the module docs).
            let seen = self.wakes.load(SeqCst);
            let epoch = self.sleepers.fetch_add(1, SeqCst) & SLEEPERS_EPOCH;
            let state = self.state.load(SeqCst);
            let outcome = if count(state) == 0 && !is_broken(state) {
                self.wakes.wait(seen, owners.slice_end(deadline))
            } else {
                WaitOutcome::ValueChanged
            };
            self.unsleep(epoch);
            reclaim();
            if outcome == WaitOutcome::TimedOut && owners.expired(deadline) {
                // One last look: the permit may have come with the deadline.
                return self.try_take(entry);
            }
        }
    }

    /// Gives back one permit that entry `entry` took (a `Permit` dropped; `None`: taken
    /// unattributed), waking a sleeper. The count stops at the bound (someone released
    /// meanwhile, and that permit stands for ours); the record drops in any case. Fails only if
    /// the semaphore is broken.
    #[inline]
    pub fn give(&self, entry: Option<u32>) -> Result<(), ReleaseError> {
        match entry {
            Some(i) => self.change(i, Change::Give(1))?,
            None => match self.add_unattributed(1) {
                Err(ReleaseError::AboveBound) => return Ok(()),
                other => other?,
            },
        }
        self.wake_for(1);
        Ok(())
    }

    /// Returns `n` permits, unattributed (Python's `release(n)`), refused as a whole if the
    /// count would pass the bound. Wakes as many sleepers.
    #[inline]
    pub fn release(&self, n: u32) -> Result<(), ReleaseError> {
        self.add_unattributed(i64::from(n))?;
        self.wake_for(n);
        Ok(())
    }

    /// Adds `n` (negative: a take) to the count, keeping the tag; refused with
    /// [`ReleaseError::AboveBound`] if the count would leave `[0, bound]`.
    #[inline]
    fn add_unattributed(&self, n: i64) -> Result<(), ReleaseError> {
        let mut state = self.state.load(Relaxed);
        loop {
            if is_broken(state) {
                return Err(ReleaseError::Broken);
            }
            let new = i64::from(count(state)) + n;
            if new < 0 || new > i64::from(self.bound.min(MAX_VALUE)) {
                return Err(ReleaseError::AboveBound);
            }
            let next = (state & !COUNT_MASK) | new as u64;
            match self.state.compare_exchange(state, next, SeqCst, Relaxed) {
                Ok(_) => return Ok(()),
                Err(now) => state = now,
            }
        }
    }

    /// After permits were added: wakes a sleeper (every sleeper for `n > 1`) if `sleepers`
    /// says there may be one. The SeqCst read comes after the SeqCst compare-exchange that
    /// added the permits. A wake of one that found nobody asleep although `sleepers` counted
    /// someone starts a new sleepers epoch (see [`Semaphore::new_sleepers_epoch`]).
    #[inline]
    fn wake_for(&self, n: u32) {
        if self.sleepers.load(SeqCst) & SLEEPERS_COUNT != 0 {
            self.wakes.fetch_add(1, SeqCst);
            if n != 1 {
                self.wakes.wake_all();
            } else if !self.wakes.wake_one_counted() {
                self.new_sleepers_epoch();
            }
        }
    }

    /// A sleeper leaves (woken, timed out, or not slept at all): its count goes, unless a new
    /// epoch dropped it already.
    #[inline]
    fn unsleep(&self, epoch: u32) {
        let mut now = self.sleepers.load(Relaxed);
        while now & SLEEPERS_EPOCH == epoch && now & SLEEPERS_COUNT != 0 {
            match self
                .sleepers
                .compare_exchange(now, now - 1, Relaxed, Relaxed)
            {
                Ok(_) => return,
                Err(seen) => now = seen,
            }
        }
    }

    /// Drops every count in `sleepers` (a new epoch, count 0) and wakes every sleeper, each of
    /// which counts itself again before it sleeps again. For a count that stays although nobody
    /// sleeps: a sleeper killed in its sleep (whose count would otherwise make every give a
    /// needless wake call, for good). Also called when a waiter had counted itself but was not
    /// asleep yet (the bump of `wakes` already ends its wait): a needless wake call, once.
    #[cold]
    fn new_sleepers_epoch(&self) {
        let mut now = self.sleepers.load(Relaxed);
        loop {
            let next = (now & SLEEPERS_EPOCH).wrapping_add(SLEEPERS_EPOCH_ONE);
            match self.sleepers.compare_exchange(now, next, SeqCst, Relaxed) {
                Ok(_) => break,
                Err(seen) => now = seen,
            }
        }
        self.wakes.fetch_add(1, SeqCst);
        self.wakes.wake_all();
    }

    /// One change of `state` attributed to entry `i`: the fast path (our own tag, unfrozen,
    /// room in its delta) is one compare-exchange.
    #[inline]
    fn change(&self, i: u32, change: Change) -> Result<(), ReleaseError> {
        let state = self.state.load(Relaxed);
        let (take, n) = match change {
            Change::Take => (true, 1),
            Change::Give(n) => (false, n),
        };
        // Our tag, unfrozen, not broken, a take with a permit free or a give of one that
        // leaves the count at most at the bound, and room in the delta: everything in one
        // comparison of the bits that decide it.
        let mine = ((u64::from(i) + 1) & ENTRY_MASK) << ENTRY_SHIFT;
        let fixed = (ENTRY_MASK << ENTRY_SHIFT) | FROZEN | BROKEN;
        let delta = (state >> DELTA_SHIFT) as u8 as i8;
        if n == 1 && state & fixed == mine {
            let free = count(state);
            let (free, delta) = if take {
                (free.checked_sub(1), delta.checked_add(1))
            } else {
                (
                    Some(free + 1).filter(|&c| c <= self.bound.min(MAX_VALUE)),
                    delta.checked_sub(1),
                )
            };
            let next = free.zip(delta).map(|(free, delta)| {
                (state & !(COUNT_MASK | DELTA_MASK))
                    | u64::from(free)
                    | (u64::from(delta as u8) << DELTA_SHIFT)
            });
            if let Some(next) = next {
                match self.state.compare_exchange(state, next, SeqCst, Relaxed) {
                    Ok(_) => return Ok(()),
                    Err(now) => return self.change_slow(i, change, now),
                }
            }
        }
        self.change_slow(i, change, state)
    }

    /// [`change`](Semaphore::change) in every other case, starting from `state`.
    #[cold]
    fn change_slow(&self, i: u32, change: Change, mut state: u64) -> Result<(), ReleaseError> {
        loop {
            if is_broken(state) {
                return Err(ReleaseError::Broken);
            }
            let (new_count, delta) = match change {
                Change::Take if count(state) == 0 => return Err(ReleaseError::AboveBound),
                Change::Take => (count(state) - 1, 1),
                Change::Give(n) => (
                    count(state)
                        .saturating_add(n)
                        .min(self.bound.min(MAX_VALUE))
                        .max(count(state)),
                    -(n as i32),
                ),
            };
            let tag = tag(state);
            let next = match tag.entry {
                Some(e) if e == i && !tag.frozen && fits(tag.delta + delta) => {
                    pack(new_count, i, tag.delta + delta, tag.epoch)
                }
                // No tag was ever put in: our record's epoch cannot change while there is
                // none (only a frozen tag of ours is copied into it).
                None if !tag.frozen => pack(
                    new_count,
                    i,
                    delta,
                    epoch(self.entry(i)?.record.load(SeqCst)),
                ),
                _ if tag.frozen => match self.settle(state) {
                    Settled::Copied => {
                        // The frozen tag is copied: ours goes in its place. Our record cannot
                        // change before our compare-exchange unless `state` changes too.
                        let epoch = epoch(self.entry(i)?.record.load(SeqCst));
                        pack(new_count, i, delta, epoch)
                    }
                    Settled::Moved => {
                        state = self.state.load(Relaxed);
                        continue;
                    }
                    Settled::Broken => return Err(ReleaseError::Broken),
                },
                // Another entry's tag (or ours, full): freeze it, then settle it.
                _ if self.state.mutated(Fault::SkipHelp) => {
                    let epoch = epoch(self.entry(i)?.record.load(SeqCst));
                    pack(new_count, i, delta, epoch)
                }
                _ => {
                    match self
                        .state
                        .compare_exchange(state, state | FROZEN, SeqCst, Relaxed)
                    {
                        Ok(_) => state |= FROZEN,
                        Err(now) => state = now,
                    }
                    continue;
                }
            };
            match self.state.compare_exchange(state, next, SeqCst, Relaxed) {
                Ok(_) => return Ok(()),
                Err(now) => state = now,
            }
        }
    }

    /// Entry `i`, or the semaphore marked broken if there is no such entry (a tag another
    /// process scribbled on).
    #[inline]
    fn entry(&self, i: u32) -> Result<Entry<'_, T::Word, T::Wide>, ReleaseError> {
        if i < self.entries.len() {
            Ok(self.entries.get(i))
        } else {
            self.break_it();
            Err(ReleaseError::Broken)
        }
    }

    /// Copies the frozen tag of `state` into its entry's record, unless that was done.
    #[cold]
    fn settle(&self, state: u64) -> Settled {
        let tag = tag(state);
        debug_assert!(tag.frozen);
        let Some(Ok(entry)) = tag.entry.map(|e| self.entry(e)) else {
            // A frozen "no tag", or a tag of an entry that does not exist: damage.
            self.break_it();
            return Settled::Broken;
        };
        loop {
            let rec = entry.record.load(SeqCst);
            // The record was read while this freeze was on (its epoch is the tag's, or the
            // next if copied): otherwise it may be any later record of the entry.
            let now = self.state.load(SeqCst);
            if tag_bits(now) != tag_bits(state) || is_broken(now) {
                return Settled::Moved;
            }
            let at = epoch(rec) & TAG_EPOCH_MASK;
            if at == tag.epoch || self.state.mutated(Fault::IgnoreEpoch) {
                let held = i64::from(held(rec)) + i64::from(tag.delta);
                if held < 0 {
                    // More permits given back than recorded taken: not a state this protocol
                    // writes.
                    self.break_it();
                    return Settled::Broken;
                }
                // More than a count can hold (a process that forgets its guards while others
                // release): saturated, which gives back as much as the bound lets anyway.
                let held = held.min(HELD_MAX);
                if self.state.mutated(Fault::SkipRecord) {
                    return Settled::Copied;
                }
                let copied = record(epoch(rec).wrapping_add(1), held as u32);
                if entry
                    .record
                    .compare_exchange(rec, copied, SeqCst, Relaxed)
                    .is_ok()
                {
                    return Settled::Copied;
                }
            } else if at == (tag.epoch + 1) & TAG_EPOCH_MASK {
                return Settled::Copied;
            } else {
                self.break_it();
                return Settled::Broken;
            }
        }
    }

    /// Makes sure entry `i` has nothing in `state`: its tag, if there, is settled and left with
    /// delta 0. Afterwards `held` in its record is all the permits its process holds (as long as
    /// that process makes no new change).
    fn flush(&self, i: u32) -> Result<(), ReleaseError> {
        let mut state = self.state.load(SeqCst);
        loop {
            if is_broken(state) {
                return Err(ReleaseError::Broken);
            }
            let tag = tag(state);
            if tag.entry != Some(i) || (!tag.frozen && tag.delta == 0) {
                return Ok(());
            }
            if !tag.frozen {
                match self
                    .state
                    .compare_exchange(state, state | FROZEN, SeqCst, Relaxed)
                {
                    Ok(_) => state |= FROZEN,
                    Err(now) => state = now,
                }
                continue;
            }
            match self.settle(state) {
                Settled::Copied => {
                    let cleared = pack(count(state), i, 0, tag.epoch + 1);
                    match self.state.compare_exchange(state, cleared, SeqCst, Relaxed) {
                        Ok(_) => return Ok(()),
                        Err(now) => state = now,
                    }
                }
                Settled::Moved => state = self.state.load(SeqCst),
                Settled::Broken => return Err(ReleaseError::Broken),
            }
        }
    }

    // ---------------------------------------------------------------------------------------
    // Entries

    /// The entry of the process with `token`: the one it owns, or a free one it claims, or a
    /// dead process's it recovers and claims. `None` if every entry belongs to a live process
    /// (or is being recovered by one).
    pub fn claim<O: Owners>(&self, token: u32, owners: &O) -> Option<u32> {
        let n = self.entries.len();
        for i in 0..n {
            if self.entries.get(i).owner.load(Acquire) == token {
                return Some(i);
            }
        }
        for i in 0..n {
            let owner = self.entries.get(i).owner;
            if owner.load(Relaxed) == 0
                && owner.compare_exchange(0, token, Acquire, Relaxed).is_ok()
            {
                return Some(i);
            }
        }
        (0..n).find(|&i| self.recover_if_dead(i, token, owners, token))
    }

    /// If entry `i` belongs to a dead process (or to a recoverer that died), gives its permits
    /// back as process `me` and leaves the entry to `then` (0: free). Returns whether it did
    /// (as [`recover`](Semaphore::recover)).
    pub fn recover_if_dead<O: Owners>(&self, i: u32, me: u32, owners: &O, then: u32) -> bool {
        let owner = self.entries.get(i).owner.load(Acquire);
        let holder = owner & TOKEN_MASK;
        if owner == 0 || holder == me || owners.is_alive(holder) {
            return false;
        }
        self.recover(i, owner, me, then)
    }

    /// Gives back the permits of entry `i`, whose owner word `dead` (a dead process's token, or
    /// a dead recoverer's mark) was judged dead, as process `me` (a registered process, whose
    /// own death can be told); leaves the entry to `then`. Returns whether the entry is now
    /// `then`'s with nothing recorded: `false` if someone else got to it first, or if the
    /// semaphore is broken (then the entry is left free).
    pub fn recover(&self, i: u32, dead: u32, me: u32, then: u32) -> bool {
        let entry = self.entries.get(i);
        if entry
            .owner
            .compare_exchange(dead, RECOVERING | me, Acquire, Relaxed)
            .is_err()
        {
            return false;
        }
        // Every step is the protocol's own: a recoverer that dies here leaves a state the next
        // one finishes.
        let mut done = false;
        while self.flush(i).is_ok() {
            let held = held(entry.record.load(SeqCst));
            if held == 0 {
                done = true;
                break;
            }
            if i64::from(held) > HELD_MAX {
                // Scribbled on (no settle writes such a record).
                self.break_it();
                break;
            }
            if self.change(i, Change::Give(held.min(127))).is_err() {
                break;
            }
        }
        // Release: the next owner sees the record as we left it. An entry whose permits could
        // not all be given back (the semaphore is broken) is nobody's rather than `then`'s, so
        // that its leftovers are never counted as `then`'s.
        entry.owner.store(if done { then } else { 0 }, Release);
        self.wake_for(u32::MAX);
        done
    }

    /// Gives back the permits of every dead process's entry, as process `me`, looking only at
    /// entries that may hold permits (so a live process that holds none costs no liveness
    /// check). Returns how many entries it recovered.
    pub fn reclaim<O: Owners>(&self, me: u32, owners: &O) -> u32 {
        // SeqCst: a record copied before the tag read here left is seen below.
        let pending = tag(self.state.load(SeqCst));
        let mut recovered = 0;
        for i in 0..self.entries.len() {
            let entry = self.entries.get(i);
            let owner = entry.owner.load(Relaxed);
            if owner == 0 || owner & TOKEN_MASK == me {
                continue;
            }
            let holds = owner & RECOVERING != 0
                || held(entry.record.load(SeqCst)) != 0
                || (pending.entry == Some(i) && (pending.delta != 0 || pending.frozen));
            if holds && self.recover_if_dead(i, me, owners, 0) {
                recovered += 1;
            }
        }
        recovered
    }

    /// A repair: sets the count to `value` (at most the bound), clears [`BROKEN`], and frees
    /// every dead process's entry *without* giving its permits back (`value` stands for them).
    /// Records of live processes stay (a tag that cannot be settled, being damaged, is
    /// dropped). Wakes every sleeper.
    pub fn repair<O: Owners>(&self, value: u32, me: u32, owners: &O) {
        let value = u64::from(value.min(self.bound).min(MAX_VALUE));
        let n = self.entries.len();
        // Unbroken, with a tag that names an entry (or none), so that it can be settled; a tag
        // that cannot be settled (its record disagrees) is dropped.
        self.rewrite(|state| {
            let tag = tag(state);
            match tag.entry {
                Some(e) if e < n => state & !BROKEN,
                None if !tag.frozen => state & !BROKEN,
                _ => count(state).into(),
            }
        });
        let settle_or_drop = |e: u32| {
            if self.flush(e).is_err() {
                self.rewrite(|state| count(state).into());
            }
        };
        if let Some(e) = tag(self.state.load(SeqCst)).entry {
            settle_or_drop(e);
        }
        for i in 0..n {
            let entry = self.entries.get(i);
            let owner = entry.owner.load(Acquire);
            let holder = owner & TOKEN_MASK;
            if owner == 0 || holder == me || owners.is_alive(holder) {
                continue;
            }
            if entry
                .owner
                .compare_exchange(owner, RECOVERING | me, Acquire, Relaxed)
                .is_err()
            {
                continue;
            }
            settle_or_drop(i);
            // Same epoch: a tag of this entry left in `state` (delta 0) stays consistent.
            let rec = entry.record.load(SeqCst);
            entry.record.store(record(epoch(rec), 0), SeqCst);
            entry.owner.store(0, Release);
        }
        self.rewrite(|state| (state & !(COUNT_MASK | BROKEN)) | value);
        self.wakes.fetch_add(1, SeqCst);
        self.wakes.wake_all();
    }

    /// The part of [`repair`](Semaphore::repair) that needs no process identity: sets the
    /// count to `value` and clears [`BROKEN`], dropping a tag that names no entry; wakes every
    /// sleeper.
    pub fn repair_count(&self, value: u32) {
        let value = u64::from(value.min(self.bound).min(MAX_VALUE));
        let n = self.entries.len();
        self.rewrite(|state| match tag(state).entry {
            Some(e) if e < n => (state & !(COUNT_MASK | BROKEN)) | value,
            _ => value,
        });
        self.wakes.fetch_add(1, SeqCst);
        self.wakes.wake_all();
    }

    /// Replaces `state` by `f(state)` (a compare-exchange loop).
    fn rewrite(&self, f: impl Fn(u64) -> u64) {
        let mut state = self.state.load(SeqCst);
        while let Err(now) = self
            .state
            .compare_exchange(state, f(state), SeqCst, Relaxed)
        {
            state = now;
        }
    }

    /// Marks the semaphore broken and wakes every sleeper to hear so.
    pub fn break_it(&self) {
        self.rewrite(|state| state | BROKEN);
        self.wakes.fetch_add(1, SeqCst);
        self.wakes.wake_all();
    }

    /// The permits available now (a snapshot), or `None` if broken.
    pub fn value(&self) -> Option<u32> {
        let state = self.state.load(Relaxed);
        (!is_broken(state)).then_some(count(state))
    }

    /// The permits entry `i`'s process holds now (a snapshot): its record's `held` plus the
    /// delta of its tag if `state` has one.
    pub fn held_by(&self, i: u32) -> i64 {
        let rec = self.entries.get(i).record.load(SeqCst);
        permits_of(i, rec, self.state.load(SeqCst))
    }
}

/// The permits entry `i`'s process holds, from its record `rec` and the state word `state`
/// (exact when the record was read first, while nothing changed; else a snapshot): the
/// record's `held`, plus the delta of the tag if it names entry `i` and is not copied into the
/// record yet.
pub fn permits_of(i: u32, rec: u64, state: u64) -> i64 {
    let tag = tag(state);
    let copied = tag.frozen && epoch(rec) & TAG_EPOCH_MASK != tag.epoch;
    let pending = if tag.entry == Some(i) && !copied {
        i64::from(tag.delta)
    } else {
        0
    };
    i64::from(held(rec)) + pending
}

/// Whether a delta fits a tag's signed byte.
#[inline]
const fn fits(delta: i32) -> bool {
    delta >= i8::MIN as i32 && delta <= i8::MAX as i32
}
