//! `producer_consumer` rewritten on `Queue`: the queue is one object, and a consumer that dies
//! holding an item gives it back.
//!
//! The Python it ports:
//!
//! ```python
//! def producer(p, q):
//!     for i in range(ITEMS):
//!         q.put(p * ITEMS + i)
//!
//! def consumer(q, seen):
//!     while (item := q.get()) is not None:
//!         seen[item] += 1
//!
//! q = multiprocessing.Queue(8)
//! ...
//! for _ in range(CONSUMERS):
//!     q.put(None)              # one "stop" per consumer, after every producer finished
//! ```
//!
//! Three producers put 10 000 items each into a `Queue<u64>` of 8 slots; three consumers take
//! them until they get the stop item (`u64::MAX`), count each one in a shared tally and check
//! that each producer's items come in the order they were put. The parent checks that every
//! item was consumed exactly once. (`examples/producer_consumer.rs` builds the same queue by
//! hand from an `Array`, two counters and a `Condition`; compare the time per item.)
//!
//! Then the part Python cannot do: a consumer takes an item with `get_guard` and is killed
//! (SIGKILL) before dropping the guard. With Python's `multiprocessing.Queue`, a process killed
//! inside `get` can leave the queue's lock held, and every other process hangs; here the next
//! consumer gets the item again (within `DEATH_CHECK_INTERVAL`).
//!
//! Run it with `cargo run --release --example queue_workers`.
#![forbid(unsafe_code)]

mod support;
use support::wait_all;

use shmsync::{Process, Queue, RawArray, Region};
use std::error::Error;
use std::time::{Duration, Instant};

const PRODUCERS: u64 = 3;
const CONSUMERS: u64 = 3;
const ITEMS: u64 = 10_000; // per producer
const TOTAL: u64 = PRODUCERS * ITEMS;
const CAPACITY: usize = 8;
const STOP: u64 = u64::MAX;

fn producer(q: &Queue<u64>, p: u64) -> shmsync::Result<()> {
    for i in 0..ITEMS {
        q.put(p * ITEMS + i, true, None)?;
    }
    Ok(())
}

fn consumer(
    q: &Queue<u64>,
    seen: &RawArray<u32>,
    taken: &RawArray<u64>,
    c: u64,
) -> shmsync::Result<()> {
    let mut last: [Option<u64>; PRODUCERS as usize] = [None; PRODUCERS as usize];
    let mut n = 0;
    loop {
        let item = q.get(true, None)?;
        if item == STOP {
            break;
        }
        seen.fetch_add(item as usize, 1);
        n += 1;
        let (p, i) = ((item / ITEMS) as usize, item % ITEMS);
        assert!(
            last[p].is_none_or(|prev| prev < i),
            "consumer {c} took item {i} of producer {p} after item {:?}",
            last[p]
        );
        last[p] = Some(i);
    }
    taken.store(c as usize, n);
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let region = Region::anonymous(1 << 20)?;
    let q = region.queue::<u64>("jobs", CAPACITY)?;
    let seen = region.raw_array::<u32>("seen", &vec![0; TOTAL as usize])?;
    let taken = region.raw_array::<u64>("taken", &[0; CONSUMERS as usize])?;
    println!(
        "{PRODUCERS} producers x {ITEMS} items, {CONSUMERS} consumers, a queue of {CAPACITY} slots"
    );

    let start = Instant::now();
    let consumers = (0..CONSUMERS)
        .map(|c| Process::fork(|| consumer(&q, &seen, &taken, c)))
        .collect::<Result<Vec<_>, _>>()?;
    let producers = (0..PRODUCERS)
        .map(|p| Process::fork(|| producer(&q, p)))
        .collect::<Result<Vec<_>, _>>()?;
    wait_all(&producers)?;
    for _ in 0..CONSUMERS {
        q.put(STOP, true, None)?;
    }
    wait_all(&consumers)?;
    let elapsed = start.elapsed();

    let seen_counts = seen.to_vec();
    let once = seen_counts.iter().filter(|&&n| n == 1).count();
    println!(
        "took {} items in {elapsed:.2?} ({:.2} us per item); by consumer: {:?}",
        taken.to_vec().iter().sum::<u64>(),
        elapsed.as_secs_f64() * 1e6 / TOTAL as f64,
        taken.to_vec()
    );
    if once as u64 != TOTAL || !q.empty() {
        return Err(format!("{once} of {TOTAL} items consumed exactly once").into());
    }
    println!("every item was consumed exactly once, each producer's items in order");

    // A consumer killed holding an item.
    q.put(42, true, None)?;
    let holding = region.raw_value::<u64>("holding", 0)?;
    let doomed = Process::fork(|| -> shmsync::Result<()> {
        let item = q.get_guard(true, None)?;
        holding.store(*item);
        std::thread::sleep(Duration::from_secs(60)); // killed before the guard is dropped
        Ok(())
    })?;
    while holding.load() == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    doomed.kill()?;
    let killed = Instant::now();
    let again = q.get(true, Some(Duration::from_secs(5)))?;
    println!(
        "a consumer killed holding item {} (exit code {:?}): item {again} delivered again after {:.1?}",
        holding.load(),
        doomed.join(None)?,
        killed.elapsed()
    );
    if again != 42 {
        return Err("the killed consumer's item did not come back".into());
    }
    Ok(())
}
