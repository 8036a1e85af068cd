//! The queue: a bounded multi-producer multi-consumer ring of slots (Vyukov's per-slot sequence
//! numbers, as crossbeam's `ArrayQueue`), where every slot also names the process working on
//! it, so that a process killed at any instruction of a put or a get is found and its slot
//! completed or skipped.
//!
//! # The words
//!
//! Positions count puts (`tail`) and gets (`head`) modulo [`wrap`]`(capacity)`, a multiple of
//! the capacity below 2³⁰, so position `p` always lives in slot `p % capacity`.
//!
//! Per slot, `seq` says which position the slot is at and in what phase:
//!
//! ```text
//!  31 ............................... 2   1 .. 0
//! +-----------------------------------+--------+
//! |  position p (< wrap)              | phase  |
//! +-----------------------------------+--------+
//! ```
//!
//! | `seq`          | meaning                                                             |
//! |----------------|---------------------------------------------------------------------|
//! | `empty(p)`     | free, waiting for the put at position `p`                            |
//! | `full(p)`      | holds the item of the put at position `p`, for the get at `p`         |
//! | `hole(p)`      | position `p` was claimed by a producer that died before publishing:  |
//! |                | the get at `p` skips it (delivers nothing) and frees the slot        |
//!
//! and `owner` says who works on it:
//!
//! | `owner`                    | meaning                                                  |
//! |----------------------------|----------------------------------------------------------|
//! | `0`                        | nobody                                                   |
//! | `t \| PUT`                 | producer `t` claimed the slot (to write the item)          |
//! | `t \| GET`                 | consumer `t` claimed the slot (to read the item, or holds |
//! |                            | a guard on it)                                            |
//! | `r \| RECOVER \| role`     | `r` is recovering the slot from a dead `role` owner        |
//!
//! The `owner` word is the lock of the slot's bytes: only its claimer (a compare-exchange from
//! 0) writes or reads the item, and only its claimer changes `seq`, `tail` (from the slot's
//! position) or `head` (from the slot's position). So at most one process touches an item's
//! bytes at a time, whatever a damaged word says.
//!
//! # Protocol
//!
//! | step | put at position `p` = `tail`                         | get at position `p` = `head`                   |
//! |------|-------------------------------------------------------|------------------------------------------------|
//! | 1    | `seq == empty(p)`: CAS `owner` `0 → me \| PUT`, re-read `seq` | `seq ∈ {full(p), hole(p)}`: CAS `owner` `0 → me \| GET`, re-read `seq` |
//! | 2    | `tail = p + 1`                                        | `head = p + 1`                                  |
//! | 3    | copy the item in                                      | copy the item out (or hold a guard)             |
//! | 4    | `seq = full(p)` (Release)                             | `seq = empty(p + capacity)` (Release)           |
//! | 5    | `owner = 0` (swap, SeqCst), wake consumers if any sleep | `owner = 0` (swap, SeqCst), wake producers if any sleep |
//!
//! Only the claimer of slot `p % capacity` at `empty(p)` moves `tail` from `p` (and at
//! `full(p)`/`hole(p)`, `head` from `p`): that is what lets a recoverer tell from `tail`
//! (`head`) whether a dead claimer got past step 2.
//!
//! # A claimer that died
//!
//! Whoever finds a slot blocked by an `owner` whose process is dead ([`Owners::is_alive`])
//! takes the slot over with a compare-exchange from the exact dead value to
//! `me | RECOVER | role` (one recoverer wins) and completes it from what the words say; every
//! case is decided by `seq` and by whether `tail`/`head` moved past the slot's position:
//!
//! | dead owner | `seq` | `tail`/`head` | died | recovery gives |
//! |---|---|---|---|---|
//! | PUT | `empty(p)` | `tail == p` | after step 1 | nothing was put: `owner = 0` |
//! | PUT | `empty(p)` | `tail != p` | in steps 2–3 | `seq = hole(p)`: the get at `p` skips it (**not delivered**) |
//! | PUT | `full(p)` | — | in step 5 | `owner = 0`: **delivered once** |
//! | GET | `full(p)` / `hole(p)` | `head == p` | after step 1 | `owner = 0`: the item stays for the next get |
//! | GET | `full(p)` | `head != p` | in steps 2–3 (or holding a guard) | an *orphan*: a consumer adopts it (`owner = me \| GET`) and delivers it **again** |
//! | GET | `hole(p)` | `head != p` | skipping a hole | `seq = empty(p + capacity)` |
//! | GET | `empty(p + capacity)` | — | in step 5 | `owner = 0`; the item is **lost** (the get copied it but never returned it) |
//! | any \| RECOVER | — | — | while recovering | the same table again (a recovery is idempotent: it keeps the dead role) |
//!
//! A producer blocked by a dead consumer's orphan leaves it for the consumers: only a consumer
//! can deliver it. Consumers look for orphans ([`Queue::adopt_orphan`]) when the queue looks
//! empty, at most as often as the caller's `scan_due` allows and after every sleep slice.
//!
//! # Waiting
//!
//! A consumer sleeps on `not_empty`, a producer on `not_full`, each counted in its side's
//! `sleepers` word first (SeqCst), then re-checking the slot it waits for. The other side's
//! step 5 is a SeqCst swap of `owner` followed by a SeqCst read of those sleepers: either that
//! read sees the sleeper (which is then woken: the count is taken, the ticket bumped and every
//! sleeper woken),
//! or the sleeper's re-check comes after the swap and sees the slot changed (store-load
//! ordering on both sides, as in [`semaphore`](super::semaphore)). Sleeps are slices
//! ([`Owners::slice_end`]); after a slice ends the sleeper checks the slot's owner for death.
//! Before sleeping a waiter spins for the ticket word's [`Word::spin_budget`] (with growing
//! pauses, and tells the word whether the spin paid off).
//!
//! A wake wakes every sleeper of that side (a put frees one slot's worth of work, but a woken
//! waiter that then gives up, at its deadline, must not strand another): with many sleepers on
//! one side, each state change they wait for costs a herd of wake-ups. A sleeper never takes
//! its own count back: the waker takes the whole count (a swap to 0) and wakes everyone, and a
//! sleeper counts itself again before each sleep. So the count of a sleeper that left without a
//! wake (timed out, or saw the change first, or was killed asleep) costs the other side one
//! needless wake call, not one per operation for good (as the semaphore's `sleepers` does). A
//! count that wraps to 0 (2³² sleeps without a wake) could delay a sleeper by one slice.

use super::Block;
use super::mutex::{Owners, TOKEN_MASK};
use crate::word::{WaitOutcome, Word};
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release, SeqCst};

/// `owner`: a producer claimed the slot.
pub const PUT: u32 = 1 << 29;
/// `owner`: a consumer claimed the slot.
pub const GET: u32 = 1 << 30;
/// `owner`: the token in the low bits is recovering the slot from a dead owner (the role bits
/// say which).
pub const RECOVER: u32 = 1 << 31;
/// The role bits of `owner`.
pub const ROLE: u32 = PUT | GET;
/// The most slots a queue may have.
pub const MAX_CAPACITY: u32 = 1 << 24;

/// `seq` phase: free for the put at its position.
pub const EMPTY: u32 = 0;
/// `seq` phase: holds the item of its position.
pub const FULL: u32 = 1;
/// `seq` phase: its position was claimed by a producer that died; skipped by the get.
pub const HOLE: u32 = 2;
const PHASE: u32 = 3;

/// Positions run modulo this: the largest multiple of `capacity` not above 2³⁰ (so that
/// `position << 2 | phase` fits a word and `position % capacity` is the slot across the wrap).
#[inline]
pub const fn wrap(capacity: u32) -> u32 {
    if capacity.is_power_of_two() {
        // The same value, without a division on the fast path.
        1 << 30
    } else {
        (1 << 30) / capacity * capacity
    }
}

/// The `seq` of position `p` in `phase`.
#[inline]
pub const fn seq(p: u32, phase: u32) -> u32 {
    p << 2 | phase
}

/// The position a `seq` names.
#[inline]
pub const fn position(seq: u32) -> u32 {
    seq >> 2
}

/// The phase of a `seq`.
#[inline]
pub const fn phase(seq: u32) -> u32 {
    seq & PHASE
}

/// The `seq` of slot `index` in a new queue: free for the put at position `index`.
#[inline]
pub const fn initial_seq(index: u32) -> u32 {
    seq(index, EMPTY)
}

/// The two words of one slot.
#[derive(Clone, Copy, Debug)]
pub struct Slot<'a, W> {
    /// Position and phase.
    pub seq: &'a W,
    /// Who works on the slot (see the module docs).
    pub owner: &'a W,
}

/// Where a queue's slots are.
pub trait Slots {
    /// The word type.
    type W: Word;
    /// The words of slot `index` (`index < capacity`).
    fn slot(&self, index: u32) -> Slot<'_, Self::W>;
}

/// The words of a queue.
#[derive(Clone, Copy, Debug)]
pub struct Queue<'a, W, S> {
    /// The next get's position.
    pub head: &'a W,
    /// The next put's position.
    pub tail: &'a W,
    /// Consumers that may be asleep on `not_empty`.
    pub get_sleepers: &'a W,
    /// Bumped to wake consumers.
    pub not_empty: &'a W,
    /// Producers that may be asleep on `not_full`.
    pub put_sleepers: &'a W,
    /// Bumped to wake producers.
    pub not_full: &'a W,
    /// The slots.
    pub slots: &'a S,
    /// Slots (1..=[`MAX_CAPACITY`]), from the caller's validated copy, never from the region.
    pub capacity: u32,
}

/// A claimed slot: the item at `pos` in slot `index`, being written (a put) or read (a get).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Claim {
    /// The slot.
    pub index: u32,
    /// The position.
    pub pos: u32,
}

/// Why a put or get did not claim a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WouldBlock;

/// What one look at the slot of the next position found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Look {
    /// Claimed.
    Claimed(Claim),
    /// The queue is full (a put) or empty (a get) at this position: a sleep until the other
    /// side's step 5 is in order. `owner` is the slot's owner when looked at.
    Blocked { index: u32, owner: u32 },
    /// Someone of our own side is between two steps (or the words changed under us): look
    /// again soon, do not sleep (nobody would wake us). `owner` as above.
    Busy { index: u32, owner: u32 },
    /// The position moved on: look again at once.
    Moved,
}

/// What a recovery did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recovered {
    /// Nothing: the owner is alive, or was not the value judged, or another recoverer won.
    Nothing,
    /// The slot was completed or freed (see the module docs).
    Done,
    /// An orphan was adopted: the caller now holds it as a get's claim.
    Adopted(Claim),
}

impl<W: Word, S: Slots<W = W>> Queue<'_, W, S> {
    #[inline]
    fn next(&self, p: u32) -> u32 {
        let n = p.wrapping_add(1);
        if n >= wrap(self.capacity) { 0 } else { n }
    }

    #[inline]
    fn plus_lap(&self, p: u32) -> u32 {
        let w = wrap(self.capacity);
        // p < w and capacity < w: no overflow below 2^31.
        let n = p.wrapping_add(self.capacity);
        if n >= w { n - w } else { n }
    }

    #[inline]
    fn minus_lap(&self, p: u32) -> u32 {
        let w = wrap(self.capacity);
        if p >= self.capacity {
            p - self.capacity
        } else {
            p + w - self.capacity
        }
    }

    #[inline]
    fn index(&self, p: u32) -> u32 {
        if self.capacity.is_power_of_two() {
            p & (self.capacity - 1)
        } else {
            p % self.capacity
        }
    }

    /// Items in the queue now (a snapshot: claimed positions count), at most the capacity.
    pub fn len(&self) -> u32 {
        let w = wrap(self.capacity);
        let head = self.head.load(Relaxed) % w;
        let tail = self.tail.load(Relaxed) % w;
        ((tail + w - head) % w).min(self.capacity)
    }

    /// Whether [`len`](Queue::len) is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    // -----------------------------------------------------------------------------------------
    // Put

    /// One look at the put side: claims the slot of position `tail` if it is free (step 1),
    /// without moving `tail`.
    #[inline]
    fn look_put(&self, me: u32) -> Look {
        let p = self.tail.load(Acquire);
        let index = self.index(p);
        let slot = self.slots.slot(index);
        let s = slot.seq.load(Acquire);
        if s == seq(p, EMPTY) {
            return match slot.owner.compare_exchange(0, me | PUT, Acquire, Relaxed) {
                Ok(_) => {
                    // Only the owner changes `seq`: now it stays put. It may have moved between
                    // our read and our claim (another producer did the whole put meanwhile).
                    if slot.seq.load(Acquire) == s {
                        Look::Claimed(Claim { index, pos: p })
                    } else {
                        self.unclaim(slot, false);
                        Look::Moved
                    }
                }
                // A consumer between its steps 4 and 5 (its swap will wake us), or a
                // recoverer (which wakes both sides): a sleep is in order. Another producer
                // claiming the same position is a matter of instructions: look again.
                Err(owner) if owner & GET != 0 || owner & RECOVER != 0 => {
                    Look::Blocked { index, owner }
                }
                Err(owner) => Look::Busy { index, owner },
            };
        }
        if self.tail.load(Acquire) != p {
            return Look::Moved;
        }
        let owner = slot.owner.load(Relaxed);
        let prev = self.minus_lap(p);
        if s == seq(prev, FULL) || s == seq(prev, HOLE) || s == seq(prev, EMPTY) {
            // The previous lap's item is still there (or still being put): full.
            Look::Blocked { index, owner }
        } else {
            Look::Busy { index, owner }
        }
    }

    /// Step 1 of a put, one look: the claimed slot of position `tail`, if it was free and
    /// nobody else claimed it first (`tail` does not move: [`advance_tail`](Queue::advance_tail)
    /// is step 2).
    pub fn claim_put(&self, me: u32) -> Option<Claim> {
        match self.look_put(me) {
            Look::Claimed(c) => Some(c),
            _ => None,
        }
    }

    /// Step 1 and 2 of a put, waiting as `block` allows: a claimed slot for the caller to copy
    /// the item into, then [`publish`](Queue::publish) and [`release_put`](Queue::release_put).
    #[inline]
    pub fn reserve<O: Owners>(
        &self,
        me: u32,
        block: Block,
        owners: &O,
    ) -> Result<Claim, WouldBlock> {
        let claim = match self.look_put(me) {
            Look::Claimed(c) => c,
            _ => self.wait_claim(true, me, block, owners, &mut || false)?,
        };
        self.advance_tail(claim);
        Ok(claim)
    }

    /// Step 2 of a put: `tail = pos + 1`.
    #[inline]
    pub fn advance_tail(&self, claim: Claim) {
        // Release: a recoverer that owns the slot reads `tail` to learn whether we got here.
        self.tail.store(self.next(claim.pos), Release);
    }

    /// Step 4 of a put: the item is in, `seq = full(pos)`.
    #[inline]
    pub fn publish(&self, claim: Claim) {
        // Release: a consumer that sees `full` (Acquire) sees the item's bytes.
        self.slots
            .slot(claim.index)
            .seq
            .store(seq(claim.pos, FULL), Release);
    }

    /// Step 5 of a put: frees the slot's owner and wakes consumers if any sleep.
    #[inline]
    pub fn release_put(&self, claim: Claim) {
        // SeqCst: ordered before the read of the sleepers (see the module docs).
        self.slots.slot(claim.index).owner.swap(0, SeqCst);
        wake(self.get_sleepers, self.not_empty);
    }

    // -----------------------------------------------------------------------------------------
    // Get

    /// One look at the get side: claims the slot of position `head` if it holds an item or a
    /// hole (step 1), without moving `head`.
    #[inline]
    fn look_get(&self, me: u32) -> Look {
        let p = self.head.load(Acquire);
        let index = self.index(p);
        let slot = self.slots.slot(index);
        let s = slot.seq.load(Acquire);
        if s == seq(p, FULL) || s == seq(p, HOLE) {
            return match slot.owner.compare_exchange(0, me | GET, Acquire, Relaxed) {
                Ok(_) => {
                    if slot.seq.load(Acquire) == s {
                        Look::Claimed(Claim { index, pos: p })
                    } else {
                        self.unclaim(slot, true);
                        Look::Moved
                    }
                }
                // The producer between its steps 4 and 5 (its swap will wake us), or a
                // recoverer: sleep. Another consumer claiming it: look again.
                Err(owner) if owner & PUT != 0 || owner & RECOVER != 0 => {
                    Look::Blocked { index, owner }
                }
                Err(owner) => Look::Busy { index, owner },
            };
        }
        if self.head.load(Acquire) != p {
            return Look::Moved;
        }
        let owner = slot.owner.load(Relaxed);
        let prev = self.minus_lap(p);
        if s == seq(p, EMPTY) || s == seq(prev, FULL) || s == seq(prev, HOLE) {
            // Nothing published at this position yet: empty (or a producer is at work, or
            // the previous lap's item is still held by its consumer, under a guard or as an
            // orphan; its free wakes the producer, whose put wakes us).
            Look::Blocked { index, owner }
        } else {
            Look::Busy { index, owner }
        }
    }

    /// Step 1 of a get, one look: the claimed slot of position `head`, if it held an item or a
    /// hole and nobody else claimed it first (`head` does not move:
    /// [`advance_head`](Queue::advance_head) is step 2).
    pub fn claim_get(&self, me: u32) -> Option<Claim> {
        match self.look_get(me) {
            Look::Claimed(c) => Some(c),
            _ => None,
        }
    }

    /// Steps 1 and 2 of a get, waiting as `block` allows: a claimed slot holding an item, for
    /// the caller to copy out, then [`commit`](Queue::commit). Holes are skipped here. An
    /// orphan (the item of a consumer that died with it, see the module docs) may be returned
    /// instead of the item at `head`; `scan_due` says when to look for orphans while the queue
    /// looks empty (every sleep slice looks too).
    #[inline]
    pub fn take<O: Owners>(
        &self,
        me: u32,
        block: Block,
        owners: &O,
        mut scan_due: impl FnMut() -> bool,
    ) -> Result<Claim, WouldBlock> {
        loop {
            let claim = match self.look_get(me) {
                Look::Claimed(c) => {
                    self.advance_head(c);
                    c
                }
                _ => match self.wait_claim(false, me, block, owners, &mut scan_due)? {
                    // An adopted orphan is already behind `head`.
                    c if self.is_orphan(c) => return Ok(c),
                    c => {
                        self.advance_head(c);
                        c
                    }
                },
            };
            if phase(self.slots.slot(claim.index).seq.load(Relaxed)) == HOLE {
                // A dead producer's position: nothing to deliver, free the slot.
                self.commit(claim);
                continue;
            }
            return Ok(claim);
        }
    }

    /// Whether a claim returned by a wait is an adopted orphan (its position is behind `head`).
    fn is_orphan(&self, claim: Claim) -> bool {
        self.head.load(Relaxed) != claim.pos
    }

    /// Step 2 of a get: `head = pos + 1`.
    #[inline]
    pub fn advance_head(&self, claim: Claim) {
        self.head.store(self.next(claim.pos), Release);
    }

    /// Step 4 of a get: the item was copied out (or its guard dropped), `seq = empty(pos +
    /// capacity)`.
    #[inline]
    pub fn free(&self, claim: Claim) {
        // Release: the next producer's writes come after our reads of the item.
        self.slots
            .slot(claim.index)
            .seq
            .store(seq(self.plus_lap(claim.pos), EMPTY), Release);
    }

    /// Step 5 of a get: frees the slot's owner and wakes producers if any sleep.
    #[inline]
    pub fn release_get(&self, claim: Claim) {
        self.slots.slot(claim.index).owner.swap(0, SeqCst);
        wake(self.put_sleepers, self.not_full);
    }

    /// Steps 4 and 5 of a get.
    #[inline]
    pub fn commit(&self, claim: Claim) {
        self.free(claim);
        self.release_get(claim);
    }

    /// Gives a claim back after its `seq` moved between the look and the claim.
    #[cold]
    fn unclaim(&self, slot: Slot<'_, W>, get: bool) {
        slot.owner.swap(0, SeqCst);
        if get {
            wake(self.put_sleepers, self.not_full);
        } else {
            wake(self.get_sleepers, self.not_empty);
        }
    }

    // -----------------------------------------------------------------------------------------
    // Waiting

    /// The slow path of [`reserve`](Queue::reserve) (`put`) and [`take`](Queue::take).
    #[cold]
    fn wait_claim<O: Owners>(
        &self,
        put: bool,
        me: u32,
        block: Block,
        owners: &O,
        scan_due: &mut dyn FnMut() -> bool,
    ) -> Result<Claim, WouldBlock> {
        let deadline = block.deadline();
        let single_try = block == Block::Try;
        let (sleepers, ticket) = if put {
            (self.put_sleepers, self.not_full)
        } else {
            (self.get_sleepers, self.not_empty)
        };
        // A single try asks about a blocking owner at once; a waiter after each slice.
        let mut check_owner = single_try;
        let mut scan = !put && single_try && scan_due();
        let mut out_of_time = false;
        let mut spun = 0u32;
        let mut busy_looks = 0u32;
        let mut budget = ticket.spin_budget().min(W::SPIN_LIMIT);
        loop {
            let look = if put {
                self.look_put(me)
            } else {
                self.look_get(me)
            };
            if spun > 0 && !matches!(look, Look::Blocked { .. }) {
                // The spin saw the other side move: it paid off (feedback for the budget).
                ticket.spin_ended(true, spun);
                spun = 0;
            }
            let (index, owner, blocked) = match look {
                Look::Claimed(c) => return Ok(c),
                Look::Moved => continue,
                Look::Blocked { index, owner } => (index, owner, true),
                Look::Busy { index, owner } => (index, owner, false),
            };
            if check_owner && owner != 0 {
                check_owner = false;
                match self.recover(index, owner, me, !put, owners) {
                    Recovered::Adopted(c) => return Ok(c),
                    Recovered::Done => continue,
                    Recovered::Nothing => {}
                }
            }
            if scan && blocked {
                scan = false;
                if let Some(c) = self.adopt_orphan(me, owners) {
                    return Ok(c);
                }
                continue;
            }
            if single_try {
                // Someone of our side between two steps: a few more looks, then give up.
                busy_looks += 1;
                if blocked || busy_looks > 64 {
                    return Err(WouldBlock);
                }
                ticket.spin_hint();
                continue;
            }
            if out_of_time {
                return Err(WouldBlock);
            }
            if !blocked {
                // Nobody will wake us for this: look again (at the owner now, and again every
                // 64 looks: a claimer between two steps is gone in nanoseconds, unless dead).
                busy_looks += 1;
                if busy_looks % 64 == 1 {
                    check_owner = true;
                    out_of_time = owners.expired(deadline);
                }
                ticket.spin_hint();
                continue;
            }
            if spun < budget {
                // Exponentially growing pauses between looks, as the mutex's spin.
                let pause = (budget - spun).min(spun.clamp(4, 256));
                ticket.spin_pause(pause);
                spun += pause;
                continue;
            }
            if spun > 0 {
                ticket.spin_ended(false, spun);
            }
            let outcome = self.sleep(sleepers, ticket, put, owners.slice_end(deadline));
            spun = 0;
            budget = ticket.spin_budget().min(W::SPIN_LIMIT);
            if outcome == WaitOutcome::TimedOut {
                check_owner = true;
                scan = !put;
                out_of_time = owners.expired(deadline);
            } else if !put {
                scan = scan_due();
            }
        }
    }

    /// Counts us in `sleepers`, re-checks that our side is still blocked, and sleeps on
    /// `ticket` until woken or `until`.
    fn sleep(
        &self,
        sleepers: &W,
        ticket: &W,
        put: bool,
        until: Option<std::time::Instant>,
    ) -> WaitOutcome {
        // SeqCst: ordered before the re-check below, against the other side's SeqCst swap of
        // `owner` and read of `sleepers` (see the module docs).
        sleepers.fetch_add(1, SeqCst);
        let seen = ticket.load(SeqCst);
        // No decrement afterwards: the waker takes the whole count (see `wake`), so the count of
        // a sleeper that left without a wake (a timeout, a change seen first, or its death)
        // costs at most one needless wake call, never one per operation for good.
        if self.still_blocked(put) {
            ticket.wait(seen, until)
        } else {
            WaitOutcome::ValueChanged
        }
    }

    /// Whether the next position of our side still waits for the other side.
    fn still_blocked(&self, put: bool) -> bool {
        let p = if put {
            self.tail.load(SeqCst)
        } else {
            self.head.load(SeqCst)
        };
        let slot = self.slots.slot(self.index(p));
        // SeqCst on `owner`: the other side's step 5 swaps it (SeqCst) after its step 4 (so if
        // we read the swap or later, we see the new `seq`).
        let owner = slot.owner.load(SeqCst);
        let s = slot.seq.load(Acquire);
        if put {
            let prev = self.minus_lap(p);
            (s == seq(p, EMPTY) && owner & (GET | RECOVER) != 0)
                || s == seq(prev, FULL)
                || s == seq(prev, HOLE)
                || s == seq(prev, EMPTY)
        } else {
            let prev = self.minus_lap(p);
            ((s == seq(p, FULL) || s == seq(p, HOLE)) && owner & (PUT | RECOVER) != 0)
                || s == seq(p, EMPTY)
                || s == seq(prev, FULL)
                || s == seq(prev, HOLE)
        }
    }

    // -----------------------------------------------------------------------------------------
    // Recovery

    /// If `seen` (the owner of slot `index` as read) names a dead process, recovers the slot
    /// as process `me` (see the module docs). A consumer (`adopt`) adopts an orphan; anyone
    /// else leaves orphans to consumers.
    pub fn recover<O: Owners>(
        &self,
        index: u32,
        seen: u32,
        me: u32,
        adopt: bool,
        owners: &O,
    ) -> Recovered {
        let token = seen & TOKEN_MASK;
        let role = seen & ROLE;
        if seen == 0 || token == me || role == 0 || role == ROLE || owners.is_alive(token) {
            return Recovered::Nothing;
        }
        let slot = self.slots.slot(index);
        if !adopt && role == GET {
            // An orphan is for a consumer to adopt: leave it without touching its owner (a
            // borrowed owner would make a consumer that looks now take it for a live one).
            // The dead owner is frozen, and nobody changes `seq` without claiming the owner
            // first, so what we read is what a claim would find.
            let s = slot.seq.load(Acquire);
            if phase(s) == FULL && self.head.load(Acquire) != position(s) {
                return Recovered::Nothing;
            }
        }
        // From the exact dead value: one recoverer wins; the dead process cannot change
        // anything any more, and nobody else moves `tail`/`head` from this slot's position.
        if slot
            .owner
            .compare_exchange(seen, me | RECOVER | role, AcqRel, Relaxed)
            .is_err()
        {
            return Recovered::Nothing;
        }
        let s = slot.seq.load(Acquire);
        let p = position(s);
        if p >= wrap(self.capacity) || self.index(p) != index {
            // A damaged word: nothing can be completed, free the owner.
            self.end_recovery(slot);
            return Recovered::Done;
        }
        if role == PUT {
            if phase(s) == EMPTY && self.tail.load(Acquire) != p {
                // Claimed and `tail` moved: the item may be half-written. Never deliver it.
                slot.seq.store(seq(p, HOLE), Release);
            }
        } else if phase(s) != EMPTY && self.head.load(Acquire) != p {
            if phase(s) == HOLE {
                slot.seq.store(seq(self.plus_lap(p), EMPTY), Release);
            } else if adopt {
                // An orphan: the dead consumer never returned it. Deliver it again, to us.
                slot.owner.store(me | GET, Relaxed);
                return Recovered::Adopted(Claim { index, pos: p });
            } else {
                // It became an orphan after the check above (`head` moved on meanwhile):
                // give it back to the dead owner, and wake the consumers to adopt it.
                slot.owner.store(seen, Release);
                wake(self.get_sleepers, self.not_empty);
                return Recovered::Nothing;
            }
        }
        self.end_recovery(slot);
        Recovered::Done
    }

    /// Frees a recovered slot's owner and wakes both sides.
    fn end_recovery(&self, slot: Slot<'_, W>) {
        slot.owner.swap(0, SeqCst);
        wake(self.get_sleepers, self.not_empty);
        wake(self.put_sleepers, self.not_full);
    }

    /// Looks through every slot for an orphan (an item whose consumer died before freeing its
    /// slot) and adopts the first one found, as process `me`.
    pub fn adopt_orphan<O: Owners>(&self, me: u32, owners: &O) -> Option<Claim> {
        for index in 0..self.capacity {
            let owner = self.slots.slot(index).owner.load(Relaxed);
            if owner & GET != 0
                && let Recovered::Adopted(c) = self.recover(index, owner, me, true, owners)
            {
                return Some(c);
            }
        }
        None
    }
}

/// After a state change the other side may wait for: wakes its sleepers if any, taking their
/// count (each sleeper counts itself again before its next sleep).
#[inline]
fn wake<W: Word>(sleepers: &W, ticket: &W) {
    // SeqCst: after the caller's SeqCst swap of `owner` (see the module docs). The plain load
    // keeps the usual case (nobody asleep) free of a read-modify-write on a shared line.
    if sleepers.load(SeqCst) != 0 && sleepers.swap(0, SeqCst) != 0 {
        ticket.fetch_add(1, Release);
        ticket.wake_all();
    }
}
