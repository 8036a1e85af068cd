//! `Queue` and `ByteQueue`: Python's API and errors in one process, producers and consumers in
//! several, a consumer killed holding a guard (its item comes back), and a kill soak: producers
//! and consumers SIGKILLed at random while every item is accounted for.

use crate::common::{Child, Rng, ShmName, arg, child_path, spawn, wait_until};
use shmsync::{Error, Region};
use std::time::{Duration, Instant};

pub fn role(name: &str) -> Option<fn() -> shmsync::Result<()>> {
    Some(match name {
        "queue_producer" => child_producer,
        "queue_consumer" => child_consumer,
        "queue_guard_holder" => child_guard_holder,
        "byte_queue_guard_holder" => child_byte_guard_holder,
        _ => return None,
    })
}

const BIG: usize = 1 << 23;
/// Producer ids in a soak (each replacement of a killed producer takes a fresh one).
const MAX_PRODUCERS: usize = 64;
/// Items each producer puts.
const ITEMS: usize = 20_000;
const CAPACITY: usize = 16;

fn tag(producer: usize, seq: usize) -> u64 {
    (producer as u64) << 32 | seq as u64
}

#[test]
fn python_api_in_one_process() {
    let region = Region::anonymous(BIG).unwrap();
    let q = region.queue::<u64>("q", 3).unwrap();
    assert!(q.empty() && !q.full());
    assert_eq!(q.capacity(), 3);
    for i in 0..3 {
        q.put(i, true, None).unwrap();
    }
    assert!(q.full());
    assert_eq!(q.qsize(), 3);
    assert!(matches!(q.put_nowait(9), Err(Error::Full)));
    let start = Instant::now();
    assert!(matches!(
        q.put(9, true, Some(Duration::from_millis(30))),
        Err(Error::Full)
    ));
    assert!(start.elapsed() >= Duration::from_millis(30));
    assert_eq!(q.get_nowait().unwrap(), 0);
    q.put_nowait(3).unwrap();
    let got: Vec<u64> = (0..3).map(|_| q.get(true, None).unwrap()).collect();
    assert_eq!(got, [1, 2, 3]);
    assert!(matches!(q.get_nowait(), Err(Error::Empty)));
    let start = Instant::now();
    assert!(matches!(
        q.get(true, Some(Duration::from_millis(30))),
        Err(Error::Empty)
    ));
    assert!(start.elapsed() >= Duration::from_millis(30));
    // Many laps around the ring.
    for i in 0..10_000u64 {
        q.put_nowait(i).unwrap();
        assert_eq!(q.get_nowait().unwrap(), i);
    }
    // A guard keeps its slot until dropped.
    q.put_nowait(5).unwrap();
    let g = q.get_guard(false, None).unwrap();
    assert_eq!(*g, 5);
    assert_eq!(q.qsize(), 0);
    drop(g);
    q.put_nowait(6).unwrap();
    assert_eq!(q.get_guard(false, None).unwrap().into_inner(), 6);
}

#[test]
fn items_of_any_pod_type_and_alignment() {
    let region = Region::anonymous(BIG).unwrap();
    let q = region.queue::<[u8; 3]>("bytes3", 5).unwrap();
    q.put_nowait([1, 2, 3]).unwrap();
    assert_eq!(q.get_nowait().unwrap(), [1, 2, 3]);
    let q = region.queue::<u128>("wide", 5).unwrap();
    q.put_nowait(u128::MAX - 1).unwrap();
    assert_eq!(q.get_nowait().unwrap(), u128::MAX - 1);
    let q = region.queue::<()>("unit", 2).unwrap();
    q.put_nowait(()).unwrap();
    q.get_nowait().unwrap();
}

#[test]
fn byte_messages_up_to_the_limit() {
    let region = Region::anonymous(BIG).unwrap();
    let q = region.byte_queue("log", 4, 10).unwrap();
    q.put(b"", true, None).unwrap();
    q.put(b"0123456789", true, None).unwrap();
    assert!(matches!(
        q.put(b"0123456789x", true, None),
        Err(Error::MessageTooLong { len: 11, max: 10 })
    ));
    assert_eq!(q.qsize(), 2, "a refused message changes nothing");
    assert_eq!(q.get_nowait().unwrap(), b"");
    assert_eq!(&*q.get_guard(false, None).unwrap(), b"0123456789");
    assert!(matches!(q.get_nowait(), Err(Error::Empty)));
}

#[test]
fn bad_arguments_and_mismatches_change_nothing() {
    let region = Region::anonymous(1 << 16).unwrap();
    let free = region.free_bytes();
    assert!(matches!(
        region.queue::<u64>("q", 0),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        region.queue::<u64>("q", (1 << 24) + 1),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        region.queue::<u64>("q", 1 << 20),
        Err(Error::OutOfSpace { .. })
    ));
    assert_eq!(region.free_bytes(), free);
    assert!(region.objects().unwrap().is_empty());
    let q = region.queue::<u64>("q", 4).unwrap();
    q.put_nowait(1).unwrap();
    let e = region.queue::<u32>("q", 4).unwrap_err();
    assert!(e.to_string().contains("Queue<u64>(4 slots)"), "{e}");
    assert!(matches!(
        region.queue::<u64>("q", 5),
        Err(Error::Mismatch { .. })
    ));
    assert!(matches!(
        region.byte_queue("q", 4, 8),
        Err(Error::Mismatch { .. })
    ));
    assert!(matches!(region.lock("q"), Err(Error::Mismatch { .. })));
    let b = region.byte_queue("b", 4, 8).unwrap();
    let e = region.byte_queue("b", 4, 100).unwrap_err();
    assert!(matches!(e, Error::Mismatch { .. }), "{e}");
    drop(b);
    assert_eq!(q.get_nowait().unwrap(), 1);
}

#[test]
fn a_damaged_header_is_reported_not_used() {
    let dir = crate::common::TestDir::new("queue-damaged");
    let path = dir.join("r");
    let region = Region::create(&path, 1 << 16).unwrap();
    let q = region.queue::<u64>("q", 4).unwrap();
    q.put_nowait(7).unwrap();
    let offset = crate::common::find_entry(&path, "q");
    let object = crate::common::read_u64(&path, offset + 40);
    drop((q, region));
    // The capacity word says 1000 slots: trusting it would index past the object.
    crate::common::write_u32(&path, object, 1000);
    let region = Region::open(&path).unwrap();
    let e = region.queue::<u64>("q", 4).unwrap_err();
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains("capacity 1000"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Processes

/// Puts `items` items tagged with `id` into "q", recording in "attempt"/"done" the item it is
/// putting and the items it has put.
pub fn child_producer() -> shmsync::Result<()> {
    let region = Region::open(child_path())?;
    let q = region.queue::<u64>("q", CAPACITY)?;
    let id: usize = arg("id");
    let items: usize = arg("items");
    let attempt = region.raw_array::<u32>("attempt", &[0; MAX_PRODUCERS])?;
    let done = region.raw_array::<u32>("done", &[0; MAX_PRODUCERS])?;
    let pause: u64 = arg("pause_us");
    for seq in 0..items {
        attempt.store(id, seq as u32 + 1);
        q.put(tag(id, seq), true, None)?;
        done.store(id, seq as u32 + 1);
        if pause > 0 && seq % 16 == 15 {
            // Busy, not asleep: a soak's kills should find producers running, often in `put`.
            let until = Instant::now() + Duration::from_micros(pause);
            while Instant::now() < until {
                std::hint::spin_loop();
            }
        }
    }
    Ok(())
}

/// Takes items from "q" (with guards if `guard` is 1) and counts each delivery in "counts",
/// until "stop" is set.
pub fn child_consumer() -> shmsync::Result<()> {
    let region = Region::open(child_path())?;
    let q = region.queue::<u64>("q", CAPACITY)?;
    let guard: u32 = arg("guard");
    let counts = region.raw_array::<u32>("counts", &vec![0; MAX_PRODUCERS * ITEMS])?;
    let stop = region.raw_value::<u32>("stop", 0)?;
    let index = |item: u64| (item >> 32) as usize * ITEMS + (item & 0xffff_ffff) as usize;
    while stop.load() == 0 {
        let timeout = Some(Duration::from_millis(50));
        if guard == 1 {
            match q.get_guard(true, timeout) {
                Ok(item) => {
                    counts.fetch_add(index(*item), 1);
                    drop(item);
                }
                Err(Error::Empty) => {}
                Err(e) => return Err(e),
            }
        } else {
            match q.get(true, timeout) {
                Ok(item) => {
                    counts.fetch_add(index(item), 1);
                }
                Err(Error::Empty) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Takes one item of "q" with a guard, says so in "holding", and sleeps until killed.
pub fn child_guard_holder() -> shmsync::Result<()> {
    let region = Region::open(child_path())?;
    let q = region.queue::<u64>("q", CAPACITY)?;
    let holding = region.raw_value::<u64>("holding", 0)?;
    let item = q.get_guard(true, None)?;
    holding.store(*item + 1);
    std::thread::sleep(Duration::from_secs(120));
    Ok(())
}

/// Takes one message of "b" with a guard, says so in "holding", and sleeps until killed.
pub fn child_byte_guard_holder() -> shmsync::Result<()> {
    let region = Region::open(child_path())?;
    let q = region.byte_queue("b", 4, 16)?;
    let holding = region.raw_value::<u64>("holding", 0)?;
    let message = q.get_guard(true, None)?;
    holding.store(message.len() as u64);
    std::thread::sleep(Duration::from_secs(120));
    Ok(())
}

#[test]
fn get_nowait_finds_the_message_of_a_killed_guard_holder() {
    let shm = ShmName::new("queue-byte-guard-kill");
    let region = Region::create(shm.path(), BIG).unwrap();
    let q = region.byte_queue("b", 4, 16).unwrap();
    let holding = region.raw_value::<u64>("holding", 0).unwrap();
    q.put_nowait(b"precious").unwrap();
    let holder = spawn("byte_queue_guard_holder", &shm.path(), &[]);
    wait_until("the helper holds the message", || holding.load() != 0);
    assert!(matches!(q.get_nowait(), Err(Error::Empty)));
    holder.kill();
    // A single try looks for orphans at most once per death-check interval: retry.
    let mut again = Err(Error::Empty);
    wait_until("a single try finds the orphan", || {
        again = q.get_nowait();
        again.is_ok()
    });
    assert_eq!(again.unwrap(), b"precious");
    assert!(matches!(q.get_nowait(), Err(Error::Empty)));
    q.put_nowait(b"next").unwrap();
    assert_eq!(q.get_nowait().unwrap(), b"next");
}

#[test]
fn producers_and_consumers_in_processes_deliver_every_item_once() {
    let shm = ShmName::new("queue-mpmc");
    let region = Region::create(shm.path(), BIG).unwrap();
    let q = region.queue::<u64>("q", CAPACITY).unwrap();
    let counts = region
        .raw_array::<u32>("counts", &vec![0; MAX_PRODUCERS * ITEMS])
        .unwrap();
    let stop = region.raw_value::<u32>("stop", 0).unwrap();
    let consumers: Vec<Child> = (0..2)
        .map(|i| spawn("queue_consumer", &shm.path(), &[("guard", &(i % 2))]))
        .collect();
    let producers: Vec<Child> = (0..3)
        .map(|id| {
            spawn(
                "queue_producer",
                &shm.path(),
                &[("id", &id), ("items", &ITEMS), ("pause_us", &0)],
            )
        })
        .collect();
    crate::common::wait_all(producers);
    wait_until("the consumers drain the queue", || q.empty());
    stop.store(1);
    crate::common::wait_all(consumers);
    for id in 0..3 {
        for seq in 0..ITEMS {
            assert_eq!(counts.load(id * ITEMS + seq), 1, "item {id}/{seq}");
        }
    }
}

#[test]
fn the_item_of_a_consumer_killed_holding_a_guard_is_delivered_again() {
    let shm = ShmName::new("queue-guard-kill");
    let region = Region::create(shm.path(), BIG).unwrap();
    let q = region.queue::<u64>("q", CAPACITY).unwrap();
    let holding = region.raw_value::<u64>("holding", 0).unwrap();
    q.put_nowait(41).unwrap();
    q.put_nowait(42).unwrap();
    let holder = spawn("queue_guard_holder", &shm.path(), &[]);
    wait_until("the helper holds an item", || holding.load() != 0);
    assert_eq!(holding.load(), 42);
    assert_eq!(q.get_nowait().unwrap(), 42);
    assert!(
        matches!(q.get_nowait(), Err(Error::Empty)),
        "held, not yet free"
    );
    holder.kill();
    let killed = Instant::now();
    let again = q.get(true, Some(Duration::from_secs(10))).unwrap();
    eprintln!("redelivered after {:?}", killed.elapsed());
    assert_eq!(again, 41);
    assert!(matches!(q.get_nowait(), Err(Error::Empty)));
    // The slot is free again: the ring keeps going.
    for i in 0..100 {
        q.put_nowait(i).unwrap();
        assert_eq!(q.get_nowait().unwrap(), i);
    }
}

#[test]
fn kill_soak_accounts_for_every_item() {
    const PRODUCERS: usize = 3;
    const CONSUMERS: usize = 3;
    const KILLS: usize = 60;
    let seed = std::env::var("SHMSYNC_SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("kill soak seed {seed} (SHMSYNC_SOAK_SEED reproduces the choices)");
    let mut rng = Rng(seed);
    let shm = ShmName::new("queue-soak");
    let region = Region::create(shm.path(), 1 << 23).unwrap();
    let q = region.queue::<u64>("q", CAPACITY).unwrap();
    let counts = region
        .raw_array::<u32>("counts", &vec![0; MAX_PRODUCERS * ITEMS])
        .unwrap();
    let attempt = region
        .raw_array::<u32>("attempt", &[0; MAX_PRODUCERS])
        .unwrap();
    let done = region
        .raw_array::<u32>("done", &[0; MAX_PRODUCERS])
        .unwrap();
    let stop = region.raw_value::<u32>("stop", 0).unwrap();
    let start = Instant::now();

    let mut next_id = 0;
    let producer = |next_id: &mut usize| {
        let id = *next_id;
        *next_id += 1;
        assert!(id < MAX_PRODUCERS);
        (
            id,
            spawn(
                "queue_producer",
                &shm.path(),
                &[("id", &id), ("items", &ITEMS), ("pause_us", &20)],
            ),
        )
    };
    let consumer = |guard: usize| {
        (
            guard,
            spawn("queue_consumer", &shm.path(), &[("guard", &guard)]),
        )
    };
    let mut producers: Vec<(usize, Child)> =
        (0..PRODUCERS).map(|_| producer(&mut next_id)).collect();
    let mut consumers: Vec<(usize, Child)> = (0..CONSUMERS).map(|i| consumer(i % 2)).collect();
    let (mut producer_kills, mut guard_kills, mut plain_kills) = (0, 0, 0);
    let mut killed_producers = Vec::new();
    for _ in 0..KILLS {
        std::thread::sleep(Duration::from_millis(5 + rng.below(40)));
        if rng.below(2) == 0 {
            let i = rng.below(PRODUCERS as u64) as usize;
            let (id, child) = std::mem::replace(&mut producers[i], producer(&mut next_id));
            child.kill();
            killed_producers.push(id);
            producer_kills += 1;
        } else {
            let i = rng.below(CONSUMERS as u64) as usize;
            let guard = consumers[i].0;
            let (_, child) = std::mem::replace(&mut consumers[i], consumer(guard));
            child.kill();
            if guard == 1 {
                guard_kills += 1;
            } else {
                plain_kills += 1;
            }
        }
    }
    for (_, p) in producers {
        p.wait_ok();
    }
    // Orphans of killed consumers are adopted by a consumer that finds the queue empty.
    wait_until("the consumers drain the queue", || q.empty());
    std::thread::sleep(Duration::from_millis(200));
    stop.store(1);
    for (_, c) in consumers {
        c.wait_ok();
    }
    // Whatever is left (an orphan found late) comes out here.
    let index = |item: u64| (item >> 32) as usize * ITEMS + (item & 0xffff_ffff) as usize;
    while let Ok(item) = q.get(true, Some(Duration::from_millis(100))) {
        counts.fetch_add(index(item), 1);
    }

    let (mut once, mut twice, mut lost, mut unput, mut not_put_at_death) = (0, 0, 0, 0, 0);
    for id in 0..next_id {
        let done = done.load(id) as usize;
        let attempt = attempt.load(id) as usize;
        for seq in 0..ITEMS {
            let n = counts.load(id * ITEMS + seq);
            match n {
                1 => once += 1,
                0 if seq >= done && killed_producers.contains(&id) => {
                    if seq + 1 == attempt {
                        not_put_at_death += 1;
                    } else {
                        unput += 1;
                    }
                }
                0 => lost += 1,
                2 => twice += 1,
                n => panic!("item {id}/{seq} delivered {n} times"),
            }
            if seq >= attempt {
                assert_eq!(n, 0, "item {id}/{seq} was never put but was delivered");
            }
        }
    }
    eprintln!(
        "kill soak: {next_id} producers ({producer_kills} killed), {guard_kills} guard and \
         {plain_kills} plain consumers killed, in {:?}: {once} items delivered once, {twice} \
         twice (redelivered after a consumer died holding it), {lost} lost, {not_put_at_death} \
         not delivered because their producer died inside put, {unput} never put",
        start.elapsed()
    );
    // A consumer killed holding a guard after counting its item counts it twice (the item is
    // delivered again); a plain consumer killed between `get` and its count, or in the last
    // instructions of `get`, loses one.
    assert!(
        twice <= guard_kills,
        "{twice} redeliveries for {guard_kills} guard kills"
    );
    assert!(
        lost <= plain_kills,
        "{lost} lost for {plain_kills} plain kills"
    );
    assert!(not_put_at_death <= producer_kills);
    assert!(start.elapsed() < Duration::from_secs(60));
}
