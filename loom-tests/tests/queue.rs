//! loom models of `shmsync_protocol::queue`: each item is delivered once (two producers racing
//! for one slot never share it, a consumer never reads a slot before its item is in), no
//! wake-up is lost (only wake calls end a sleep here), and the death cases of the module docs:
//! a producer that dies after any step never blocks the consumers and its item is delivered
//! once or not at all; a consumer that dies after any step leaves its item to another
//! consumer (or, after freeing the slot, loses it); an orphan is adopted by exactly one of two
//! consumers.
//!
//! A slot's item is a loom `UnsafeCell<u32>` written between the claim and the publication and
//! read between the claim and the free, as `src/queue.rs` copies bytes: two claimers of one
//! slot, or a reader not ordered after the writer, are reported by loom as a causality
//! violation. A process is a token of [`LoomOwners`] (1, 2, 3); a dying one stops after the
//! step the model names, as a killed process would, then the model ticks the tickets (a sleep
//! slice passes).
//!
//! Each model has a `child_*` twin that runs it with the faults named in
//! `SHMSYNC_LOOM_MUTATION` (words: `head`, `tail`, `seq`, `owner`, `get_sleepers`,
//! `not_empty`, `put_sleepers`, `not_full`; the oracle: `owners`; the model's own put order:
//! `model`), and `caught_*` tests that run that twin in a child process with a mutation and
//! assert that loom caught it.

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::sync::atomic::AtomicU32;
use shmsync_loom_tests::harness::{self, Faults, Signal, expect_caught};
use shmsync_loom_tests::{LoomOwners, LoomWord, Mutation};
use shmsync_protocol::Block;
use shmsync_protocol::queue::{Claim, Queue, Slot, Slots, initial_seq};
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;

/// Preemptions explored per execution.
const PREEMPTIONS: usize = 2;

/// The modelled items: 1 and 2 (index 0 unused).
const ITEMS: usize = 3;

struct LoomSlots {
    seq: Vec<LoomWord>,
    owner: Vec<LoomWord>,
    item: Vec<UnsafeCell<u32>>,
}

impl Slots for LoomSlots {
    type W = LoomWord;
    fn slot(&self, index: u32) -> Slot<'_, LoomWord> {
        Slot {
            seq: &self.seq[index as usize],
            owner: &self.owner[index as usize],
        }
    }
}

/// A queue's words, its slots, the oracle, and how often each item was delivered.
struct Q {
    head: LoomWord,
    tail: LoomWord,
    get_sleepers: LoomWord,
    not_empty: LoomWord,
    put_sleepers: LoomWord,
    not_full: LoomWord,
    slots: LoomSlots,
    owners: LoomOwners,
    capacity: u32,
    delivered: [AtomicU32; ITEMS],
    publish_first: bool,
}

impl Q {
    /// A queue of `capacity` slots whose tickets never time out unless ticked (so a lost
    /// wake-up is a deadlock).
    fn new(capacity: u32, faults: &Faults) -> Q {
        let word = |name: &str, v: u32| LoomWord::new(v).timeouts(0).mutation(faults.on(name));
        Q {
            head: word("head", 0),
            tail: word("tail", 0),
            get_sleepers: word("get_sleepers", 0),
            not_empty: word("not_empty", 0),
            put_sleepers: word("put_sleepers", 0),
            not_full: word("not_full", 0),
            slots: LoomSlots {
                seq: (0..capacity).map(|i| word("seq", initial_seq(i))).collect(),
                owner: (0..capacity).map(|_| word("owner", 0)).collect(),
                item: (0..capacity).map(|_| UnsafeCell::new(0)).collect(),
            },
            owners: LoomOwners::new().mutation(faults.on("owners")),
            capacity,
            delivered: std::array::from_fn(|_| AtomicU32::new(0)),
            publish_first: faults.on("model") == Mutation::PublishBeforeCopy,
        }
    }

    fn q(&self) -> Queue<'_, LoomWord, LoomSlots> {
        Queue {
            head: &self.head,
            tail: &self.tail,
            get_sleepers: &self.get_sleepers,
            not_empty: &self.not_empty,
            put_sleepers: &self.put_sleepers,
            not_full: &self.not_full,
            slots: &self.slots,
            capacity: self.capacity,
        }
    }

    fn write(&self, c: Claim, item: u32) {
        self.slots.item[c.index as usize].with_mut(|p| {
            // SAFETY: the slot is claimed by this thread; a second claimer is what loom
            // reports here as a causality violation.
            unsafe { *p = item }
        });
    }

    fn read(&self, c: Claim) -> u32 {
        self.slots.item[c.index as usize].with(|p| {
            // SAFETY: as in `write`.
            unsafe { *p }
        })
    }

    /// `src/queue.rs`'s `put`: reserve, copy, publish, release.
    fn put(&self, me: u32, item: u32) {
        let q = self.q();
        let c = q
            .reserve(me, Block::Forever, &self.owners)
            .expect("a waiting put gave up");
        if self.publish_first {
            q.publish(c);
            q.release_put(c);
            self.write(c, item);
        } else {
            self.write(c, item);
            q.publish(c);
            q.release_put(c);
        }
    }

    /// `src/queue.rs`'s `get`: take, copy, commit; counts the delivery.
    fn get(&self, me: u32, block: Block) -> Option<u32> {
        let q = self.q();
        let c = q.take(me, block, &self.owners, || true).ok()?;
        let item = self.read(c);
        q.commit(c);
        self.deliver(item);
        Some(item)
    }

    fn deliver(&self, item: u32) {
        assert!(
            (1..ITEMS as u32).contains(&item),
            "a consumer read {item}, which nobody put (a slot read before its item was in)"
        );
        let before = self.delivered[item as usize].fetch_add(1, Relaxed);
        assert_eq!(before, 0, "item {item} was delivered twice");
    }

    fn delivered(&self, item: u32) -> u32 {
        self.delivered[item as usize].load(Relaxed)
    }

    /// A process dies: the oracle says so, and a sleep slice passes on every ticket.
    fn die(&self, token: u32) {
        self.owners.die(token);
        self.not_empty.tick(1);
        self.not_full.tick(1);
    }
}

// ---------------------------------------------------------------------------------------------
// Exclusion and wake-ups

/// One slot; two producers (tokens 1, 2) put items 1 and 2; the main thread (token 3) gets
/// twice, waiting as long as it takes. Both items come out once; since nothing ticks, a lost
/// wake-up is a deadlock. With one slot, the second producer waits for the consumer and the
/// consumer for the producers.
fn two_producers_one_consumer(faults: &Faults) {
    let faults = faults.clone();
    harness::check(PREEMPTIONS, move || {
        let q = Arc::new(Q::new(1, &faults));
        let producers: Vec<_> = (1..=2)
            .map(|me| {
                let q = q.clone();
                loom::thread::spawn(move || q.put(me, me))
            })
            .collect();
        let a = q.get(3, Block::Forever).expect("a waiting get gave up");
        let b = q.get(3, Block::Forever).expect("a waiting get gave up");
        for p in producers {
            p.join().unwrap();
        }
        assert_eq!(a + b, 3, "items {a} and {b} came out");
        if q.not_full.stats().sleeps > 0 {
            PRODUCER_SLEPT.fetch_add(1, Relaxed);
        }
        if q.not_empty.stats().sleeps > 0 {
            CONSUMER_SLEPT.fetch_add(1, Relaxed);
        }
    });
}

/// Executions in which a producer slept while the slot was full.
static PRODUCER_SLEPT: AtomicUsize = AtomicUsize::new(0);
/// Executions in which the consumer slept while the queue was empty.
static CONSUMER_SLEPT: AtomicUsize = AtomicUsize::new(0);

#[test]
fn two_producers_one_consumer_3_threads() {
    two_producers_one_consumer(&Faults::none());
    assert!(PRODUCER_SLEPT.load(Relaxed) > 0, "no producer ever slept");
    assert!(CONSUMER_SLEPT.load(Relaxed) > 0, "the consumer never slept");
}

#[test]
fn child_two_producers_one_consumer_3_threads() {
    if let Some(f) = Faults::from_env() {
        two_producers_one_consumer(&f);
    }
}

/// Claims by a load and a store: two producers write one slot.
#[test]
fn caught_cas_by_load_store_by_two_producers() {
    expect_caught(
        "child_two_producers_one_consumer_3_threads",
        "owner=cas-by-load-store",
        &[
            "Causality violation",
            "delivered twice",
            "came out",
            "deadlock",
        ],
    );
}

/// Publications without Release, on every word: the consumer reads the slot before the item
/// is visible. (On `seq` alone, or on `owner` alone, it is not caught, and rightly: each of the
/// two words carries the item to the consumer on its own, `seq` by its Release store and
/// Acquire load, `owner` by the producer's SeqCst swap and the consumer's Acquire claim.)
#[test]
fn caught_relaxed_publish_by_two_producers() {
    expect_caught(
        "child_two_producers_one_consumer_3_threads",
        "relaxed-stores",
        &["Causality violation"],
    );
}

/// The item copied in after the slot was published and its owner freed (steps 4 and 5 before
/// step 3). Publishing `seq` alone before the copy is not caught, and rightly: the consumer
/// cannot claim the slot while the producer's owner mark is on it.
#[test]
fn caught_publish_before_copy_by_two_producers() {
    expect_caught(
        "child_two_producers_one_consumer_3_threads",
        "model=publish-before-copy",
        &["Causality violation", "nobody put"],
    );
}

/// A publisher that never wakes the sleeping consumer.
#[test]
fn caught_missing_wake_by_two_producers() {
    expect_caught(
        "child_two_producers_one_consumer_3_threads",
        "not_empty=skip-wake",
        &["deadlock"],
    );
}

/// A consumer that does not count itself as a sleeper: nobody wakes it.
#[test]
fn caught_uncounted_sleeper_by_two_producers() {
    expect_caught(
        "child_two_producers_one_consumer_3_threads",
        "get_sleepers=drop-adds",
        &["deadlock"],
    );
}

/// A consumer's commit that forgets to wake the producer waiting for the slot.
#[test]
fn caught_missing_wake_of_producer_by_two_producers() {
    expect_caught(
        "child_two_producers_one_consumer_3_threads",
        "not_full=skip-wake",
        &["deadlock"],
    );
}

// ---------------------------------------------------------------------------------------------
// A producer dies

/// Where a dying producer stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PutStep {
    /// Step 1: the slot claimed, `tail` not moved.
    Claimed,
    /// Step 2: `tail` moved, the item not (fully) copied.
    Advanced,
    /// Step 4: published, the owner not freed.
    Published,
}

/// One slot. Producer A (token 1) puts item 1 and dies after `at`; producer B (token 2) puts
/// item 2; the main thread (token 3) gets until it has item 2 and, if A published, item 1.
/// Nobody hangs (a dead claimer is recovered), item 1 comes out once if A published and never
/// otherwise, item 2 once.
fn dead_producer(at: PutStep, faults: &Faults) {
    let faults = faults.clone();
    harness::check(PREEMPTIONS, move || {
        let q = Arc::new(Q::new(1, &faults));
        let a = {
            let q = q.clone();
            loom::thread::spawn(move || {
                let p = q.q();
                let c = loop {
                    if let Some(c) = p.claim_put(1) {
                        break c;
                    }
                    loom::thread::yield_now();
                };
                if at != PutStep::Claimed {
                    p.advance_tail(c);
                    q.write(c, 1);
                }
                if at == PutStep::Published {
                    p.publish(c);
                }
                q.die(1);
            })
        };
        let b = {
            let q = q.clone();
            loom::thread::spawn(move || q.put(2, 2))
        };
        let expected = if at == PutStep::Published { 2 } else { 1 };
        for _ in 0..expected {
            q.get(3, Block::Forever).expect("a waiting get gave up");
        }
        a.join().unwrap();
        b.join().unwrap();
        assert_eq!(q.delivered(2), 1, "B's item was not delivered");
        assert_eq!(
            q.delivered(1),
            u32::from(at == PutStep::Published),
            "A's item delivered {} times after A died {at:?}",
            q.delivered(1)
        );
    });
}

#[test]
fn dead_producer_after_claim_3_threads() {
    dead_producer(PutStep::Claimed, &Faults::none());
}

#[test]
fn dead_producer_after_advance_3_threads() {
    dead_producer(PutStep::Advanced, &Faults::none());
}

#[test]
fn dead_producer_after_publish_3_threads() {
    dead_producer(PutStep::Published, &Faults::none());
}

#[test]
fn child_dead_producer_after_advance_3_threads() {
    if let Some(f) = Faults::from_env() {
        dead_producer(PutStep::Advanced, &f);
    }
}

#[test]
fn child_dead_producer_after_claim_3_threads() {
    if let Some(f) = Faults::from_env() {
        dead_producer(PutStep::Claimed, &f);
    }
}

/// A dead producer is never noticed: its claimed position blocks everyone.
#[test]
fn caught_never_dead_by_dead_producer() {
    expect_caught(
        "child_dead_producer_after_advance_3_threads",
        "owners=never-dead",
        &["deadlock"],
    );
}

/// A recovery that takes a live producer for dead makes a hole of a position being written.
#[test]
fn caught_says_dead_by_dead_producer() {
    expect_caught(
        "child_dead_producer_after_claim_3_threads",
        "owners=says-dead",
        &["Causality violation", "delivered", "deadlock"],
    );
}

/// A recovery that cannot mark the hole (its `seq` store is lost): the consumer waits for an
/// item that will never come.
#[test]
fn caught_lost_hole_by_dead_producer() {
    expect_caught(
        "child_dead_producer_after_advance_3_threads",
        "seq=drop-stores",
        &["deadlock", "delivered", "nobody put"],
    );
}

// ---------------------------------------------------------------------------------------------
// A consumer dies

/// Where a dying consumer stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GetStep {
    /// Step 1: the slot claimed, `head` not moved.
    Claimed,
    /// Step 2: `head` moved, the item read (or held under a guard), the slot not freed.
    Holding,
    /// Step 4: the slot freed, the owner not.
    Freed,
}

/// One slot holding item 1. Consumer A (token 1) takes it and dies after `at`; consumer B
/// (token 2), once A has claimed the item, gets until it has what it should; the main thread (token 3) puts item 2. Item 1
/// comes out once unless A died after freeing its slot (then never: it was lost with A), item 2
/// once; nobody hangs.
fn dead_consumer(at: GetStep, faults: &Faults) {
    let faults = faults.clone();
    harness::check(PREEMPTIONS, move || {
        let q = Arc::new(Q::new(1, &faults));
        q.put(3, 1);
        let claimed = Arc::new(Signal::new());
        let a = {
            let (q, claimed) = (q.clone(), claimed.clone());
            loom::thread::spawn(move || {
                let p = q.q();
                let c = p.claim_get(1).expect("the item is there");
                claimed.set();
                if at != GetStep::Claimed {
                    p.advance_head(c);
                    assert_eq!(q.read(c), 1);
                }
                if at == GetStep::Freed {
                    p.free(c);
                }
                q.die(1);
            })
        };
        let b = {
            let q = q.clone();
            let claimed = claimed.clone();
            loom::thread::spawn(move || {
                claimed.wait();
                let expected = if at == GetStep::Freed { 1 } else { 2 };
                for _ in 0..expected {
                    q.get(2, Block::Forever).expect("a waiting get gave up");
                }
            })
        };
        q.put(3, 2);
        a.join().unwrap();
        b.join().unwrap();
        assert_eq!(q.delivered(2), 1, "item 2 was not delivered");
        assert_eq!(
            q.delivered(1),
            u32::from(at != GetStep::Freed),
            "item 1 delivered {} times after its consumer died {at:?}",
            q.delivered(1)
        );
    });
}

#[test]
fn dead_consumer_after_claim_3_threads() {
    dead_consumer(GetStep::Claimed, &Faults::none());
}

#[test]
fn dead_consumer_holding_3_threads() {
    dead_consumer(GetStep::Holding, &Faults::none());
}

#[test]
fn dead_consumer_after_free_3_threads() {
    dead_consumer(GetStep::Freed, &Faults::none());
}

#[test]
fn child_dead_consumer_holding_3_threads() {
    if let Some(f) = Faults::from_env() {
        dead_consumer(GetStep::Holding, &f);
    }
}

/// The orphan of a dead consumer is never found.
#[test]
fn caught_never_dead_by_dead_consumer() {
    expect_caught(
        "child_dead_consumer_holding_3_threads",
        "owners=never-dead",
        &["deadlock"],
    );
}

// ---------------------------------------------------------------------------------------------
// An orphan is adopted once

/// Slot 0 holds the orphan item 1 of consumer A (token 1), dead after moving `head`; two
/// consumers (tokens 2 and 3) each make one single try. Exactly one of them gets item 1.
fn orphan_adopted_once(faults: &Faults) {
    let faults = faults.clone();
    harness::check(PREEMPTIONS, move || {
        let q = Arc::new(Q::new(1, &faults));
        q.put(3, 1);
        let p = q.q();
        let c = p.claim_get(1).expect("the item is there");
        p.advance_head(c);
        q.owners.die(1);
        let b = {
            let q = q.clone();
            loom::thread::spawn(move || q.get(2, Block::Try))
        };
        let mine = q.get(3, Block::Try);
        let theirs = b.join().unwrap();
        assert_eq!(q.delivered(1), 1, "got {mine:?} and {theirs:?}");
    });
}

#[test]
fn orphan_adopted_once_2_threads() {
    orphan_adopted_once(&Faults::none());
}

#[test]
fn child_orphan_adopted_once_2_threads() {
    if let Some(f) = Faults::from_env() {
        orphan_adopted_once(&f);
    }
}

/// Adoption by a load and a store: both consumers adopt the orphan (delivered twice).
#[test]
fn caught_cas_by_load_store_by_orphan() {
    expect_caught(
        "child_orphan_adopted_once_2_threads",
        "owner=cas-by-load-store",
        &["delivered twice", "Causality violation"],
    );
}

/// An oracle that takes the adopter for dead: the second consumer adopts it again (a recovery
/// that delivers twice).
#[test]
fn caught_says_dead_by_orphan() {
    expect_caught(
        "child_orphan_adopted_once_2_threads",
        "owners=says-dead",
        &["delivered twice", "Causality violation"],
    );
}
