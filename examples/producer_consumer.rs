//! A bounded queue between processes: producers and consumers meet on one `Condition`.
//!
//! The Python it ports (a queue written by hand over shared memory, which is what
//! `multiprocessing.Queue` hides):
//!
//! ```python
//! def producer(p, cond, slots, head, tail):
//!     for i in range(ITEMS):
//!         with cond:
//!             cond.wait_for(lambda: tail.value - head.value < len(slots))
//!             slots[tail.value % len(slots)] = p * ITEMS + i
//!             tail.value += 1
//!             cond.notify_all()
//!
//! def consumer(cond, slots, head, tail, seen):
//!     while True:
//!         with cond:
//!             cond.wait_for(lambda: tail.value > head.value or head.value == TOTAL)
//!             if head.value == TOTAL:
//!                 return
//!             item = slots[head.value % len(slots)]
//!             head.value += 1
//!             cond.notify_all()
//!         seen[item] += 1
//! ```
//!
//! The queue is an `Array<u64>` of `CAPACITY` slots and two counters, `head` (items taken)
//! and `tail` (items put), only read or changed while the `Condition`'s lock is held. A
//! producer waits while the queue is full, a consumer while it is empty; each change is
//! followed by `notify_all`. (One condition serves both "not full" and "not empty", so
//! `notify(1)` could wake a process of the wrong side and leave the right one asleep:
//! Python's `Condition(lock)` would let two conditions share one lock, but a shmsync
//! `Condition` has its own lock.)
//!
//! Every consumer counts each item it takes in a shared tally (one lock-free counter per
//! item) and checks that it receives each producer's items in the order they were put. The
//! parent then checks that every item was consumed exactly once, and prints what it measured:
//! how the items were spread over the consumers, how often a producer found the queue full
//! and a consumer found it empty, and how full the queue was at each take.
//!
//! Run it with `cargo run --release --example producer_consumer`.
#![forbid(unsafe_code)]

mod support;
use support::wait_all;

use shmsync::{Array, Condition, Process, RawArray, RawValue, Region};
use std::error::Error;
use std::time::Instant;

const PRODUCERS: u64 = 3;
const CONSUMERS: u64 = 3;
const ITEMS: u64 = 10_000; // per producer
const TOTAL: u64 = PRODUCERS * ITEMS;
const CAPACITY: usize = 8;

/// The queue and the measurements, all in the shared region.
struct Queue {
    cond: Condition,
    slots: Array<u64>,
    /// Items taken so far (the next slot to take is `head % CAPACITY`).
    head: RawValue<u64>,
    /// Items put so far (the next slot to fill is `tail % CAPACITY`).
    tail: RawValue<u64>,
    /// How many times each item was consumed.
    seen: RawArray<u32>,
    /// Items taken by each consumer.
    taken: RawArray<u64>,
    /// Waits because the queue was full (per producer) / empty (per consumer).
    full_waits: RawArray<u64>,
    empty_waits: RawArray<u64>,
    /// `occupancy[n]`: takes that found `n` items in the queue.
    occupancy: RawArray<u64>,
}

impl Queue {
    fn new(region: &Region) -> shmsync::Result<Queue> {
        Ok(Queue {
            cond: region.condition("queue.cond")?,
            slots: region.array("queue.slots", &[0; CAPACITY])?,
            head: region.raw_value("queue.head", 0)?,
            tail: region.raw_value("queue.tail", 0)?,
            seen: region.raw_array("seen", &vec![0; TOTAL as usize])?,
            taken: region.raw_array("taken", &[0; CONSUMERS as usize])?,
            full_waits: region.raw_array("full_waits", &[0; PRODUCERS as usize])?,
            empty_waits: region.raw_array("empty_waits", &[0; CONSUMERS as usize])?,
            occupancy: region.raw_array("occupancy", &[0; CAPACITY + 1])?,
        })
    }

    fn len(&self) -> u64 {
        self.tail.load() - self.head.load()
    }
}

fn producer(q: &Queue, p: u64) -> shmsync::Result<()> {
    let mut waits = 0;
    for i in 0..ITEMS {
        let _locked = q.cond.lock()?; // with cond:
        let mut first = true;
        q.cond.wait_for(
            || {
                let room = q.len() < CAPACITY as u64;
                if !room && first {
                    waits += 1;
                }
                first = false;
                room
            },
            None,
        )?;
        let tail = q.tail.load();
        q.slots.set(tail as usize % CAPACITY, p * ITEMS + i)?;
        q.tail.store(tail + 1);
        q.cond.notify_all()?;
    }
    q.full_waits.store(p as usize, waits);
    Ok(())
}

fn consumer(q: &Queue, c: u64) -> shmsync::Result<()> {
    let (mut waits, mut taken) = (0, 0);
    // The sequence number of the last item taken from each producer, to check FIFO order.
    let mut last: [Option<u64>; PRODUCERS as usize] = [None; PRODUCERS as usize];
    loop {
        let item = {
            let _locked = q.cond.lock()?;
            let mut first = true;
            q.cond.wait_for(
                || {
                    let ready = q.len() > 0 || q.head.load() == TOTAL;
                    if !ready && first {
                        waits += 1;
                    }
                    first = false;
                    ready
                },
                None,
            )?;
            let head = q.head.load();
            if head == TOTAL {
                break; // every item has been taken
            }
            q.occupancy.fetch_add(q.len() as usize, 1);
            let item = q.slots.get(head as usize % CAPACITY)?;
            q.head.store(head + 1);
            q.cond.notify_all()?;
            item
        };
        // Outside the lock: the bookkeeping of the consumed item.
        q.seen.fetch_add(item as usize, 1);
        taken += 1;
        let (p, i) = ((item / ITEMS) as usize, item % ITEMS);
        assert!(
            last[p].is_none_or(|prev| prev < i),
            "consumer {c} took item {i} of producer {p} after item {:?}",
            last[p]
        );
        last[p] = Some(i);
    }
    q.taken.store(c as usize, taken);
    q.empty_waits.store(c as usize, waits);
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let region = Region::anonymous(1 << 20)?;
    let q = Queue::new(&region)?;
    println!(
        "{PRODUCERS} producers x {ITEMS} items, {CONSUMERS} consumers, a queue of {CAPACITY} slots"
    );

    let start = Instant::now();
    let mut children = Vec::new();
    for c in 0..CONSUMERS {
        children.push(Process::fork(|| consumer(&q, c))?);
    }
    for p in 0..PRODUCERS {
        children.push(Process::fork(|| producer(&q, p))?);
    }
    wait_all(&children)?;
    let elapsed = start.elapsed();

    let seen = q.seen.to_vec();
    let once = seen.iter().filter(|&&n| n == 1).count();
    let never = seen.iter().filter(|&&n| n == 0).count();
    let twice = seen.len() - once - never;
    let taken = q.taken.to_vec();
    println!(
        "put {} and took {} items in {elapsed:.2?} ({:.1} us per item)",
        q.tail.load(),
        q.head.load(),
        elapsed.as_secs_f64() * 1e6 / TOTAL as f64
    );
    println!("items taken by each consumer: {taken:?}");
    println!("consumed exactly once: {once} of {TOTAL}; never: {never}; more than once: {twice}");
    println!(
        "a producer found the queue full {:?} times, a consumer found it empty {:?} times",
        q.full_waits.to_vec(),
        q.empty_waits.to_vec()
    );
    println!(
        "items in the queue at each take (1 to {CAPACITY}): {:?}",
        &q.occupancy.to_vec()[1..]
    );
    if once as u64 != TOTAL || taken.iter().sum::<u64>() != TOTAL || q.len() != 0 {
        return Err("items were lost or consumed twice".into());
    }
    println!("every item was consumed exactly once, each producer's items in order");
    Ok(())
}
