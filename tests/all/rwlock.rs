//! `RwLock<T>` across processes: readers share, writers exclude everyone (checked on a value
//! that writers leave inconsistent mid-write), a writer is not starved by a stream of readers,
//! a writer SIGKILLed holding the lock poisons it, a reader SIGKILLed holding read locks gives
//! them back, and the type is checked on open.

use crate::common::{
    Barrier, Child, LIMIT, ShmName, arg, child_path, find_entry, layout, read_u32, read_u64, spawn,
    wait_all, wait_for_count, wait_until, write_u32,
};
use shmsync::{Error, LockError, RawValue, Region, Result, RwLock, TryLockError};
use std::time::{Duration, Instant};

/// The helper roles of this module, for [`crate::child::child_entry`].
pub fn role(name: &str) -> Option<fn() -> Result<()>> {
    Some(match name {
        "rw_reader_hold" => child_reader_hold,
        "rw_worker" => child_worker,
        "rw_stream" => child_stream,
        "rw_write_holder" => child_write_holder,
        "rw_read_holder" => child_read_holder,
        "rw_writer_waiter" => child_writer_waiter,
        "rw_poison_check" => child_poison_check,
        "rw_types" => child_types,
        "rw_try_writer" => child_try_writer,
        "rw_broken_check" => child_broken_check,
        "rw_reuser" => child_reuser,
        "rw_soak_reader" => child_soak_reader,
        "rw_soak_writer" => child_soak_writer,
        "rw_read_once" => child_read_once,
        _ => return None,
    })
}

/// An `RwLock` carries 32 reader indicators of 128 bytes (4 KiB).
const BIG: usize = 1 << 20;

/// The protected value: both halves equal, except in the middle of a write.
type Pair = [u64; 2];

/// What a killed writer leaves: half of a write.
const HALF: Pair = [7, 0];

fn new_region(shm: &ShmName) -> Region {
    Region::create(shm.name(), BIG).expect("create region")
}

fn counter(region: &Region, name: &str) -> Result<RawValue<u32>> {
    region.raw_value(name, 0)
}

fn pair(region: &Region) -> Result<RwLock<Pair>> {
    region.rwlock::<Pair>("rw", [0, 0])
}

/// Reads both halves, one at a time, with a pause between (volatile: each read really
/// happens, in order).
fn read_halves(p: &Pair) -> (u64, u64) {
    // SAFETY: plain reads of two aligned u64s we hold a reference to.
    let a = unsafe { std::ptr::read_volatile(&p[0]) };
    for _ in 0..100 {
        std::hint::spin_loop();
    }
    // SAFETY: as above.
    let b = unsafe { std::ptr::read_volatile(&p[1]) };
    (a, b)
}

/// Writes `v` into both halves, one at a time, with a pause between (volatile: the value is
/// really inconsistent in between).
fn write_halves(p: &mut Pair, v: u64) {
    // SAFETY: plain writes of two aligned u64s we hold a unique reference to.
    unsafe { std::ptr::write_volatile(&mut p[0], v) };
    for _ in 0..200 {
        std::hint::spin_loop();
    }
    // SAFETY: as above.
    unsafe { std::ptr::write_volatile(&mut p[1], v) };
}

/// Sleeps until killed.
fn sleep_forever() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

// -------------------------------------------------------------------------------------------
// Helpers

/// Takes a read lock of "rw" once and exits (its reader indicator stays claimed).
pub fn child_read_once() -> Result<()> {
    let region = Region::open(child_path())?;
    let lock = pair(&region)?;
    drop(lock.read().map_err(|_| Error::Broken { what: "RwLock" })?);
    Ok(())
}

/// Takes a read lock, counts itself `holding`, and keeps it until `release` is set.
pub fn child_reader_hold() -> Result<()> {
    let region = Region::open(child_path())?;
    let rw = pair(&region)?;
    let release = counter(&region, "release")?;
    let g = rw.read()?;
    counter(&region, "holding")?.fetch_add(1);
    wait_until("the release signal", || release.load() != 0);
    let (a, b) = read_halves(&g);
    assert_eq!(a, b);
    drop(g);
    Ok(())
}

/// `kind` = "writer": `iters` times, under the write lock, checks that nobody else is inside
/// and the value is consistent, then increments both halves one at a time. "reader": `iters`
/// times, under a read lock, checks that no writer is inside and that both halves agree;
/// records the most readers seen inside at once in `max_readers`.
pub fn child_worker() -> Result<()> {
    let region = Region::open(child_path())?;
    let rw = pair(&region)?;
    let writers_in = counter(&region, "writers_in")?;
    let readers_in = counter(&region, "readers_in")?;
    let max_readers = counter(&region, "max_readers")?;
    let iters: u32 = arg("iters");
    let kind: String = arg("kind");
    Barrier::new(&region).arrive();
    for i in 0..iters {
        match kind.as_str() {
            "writer" => {
                let mut g = rw.write()?;
                assert_eq!(writers_in.fetch_add(1), 0, "two writers inside");
                assert_eq!(readers_in.load(), 0, "a writer inside with readers");
                let (a, b) = read_halves(&g);
                assert_eq!(a, b, "a writer found a half-written value");
                write_halves(&mut g, a + 1);
                writers_in.fetch_sub(1);
                drop(g);
            }
            "reader" => {
                let g = rw.read()?;
                let inside = readers_in.fetch_add(1) + 1;
                let mut seen = max_readers.load();
                while inside > seen {
                    match max_readers.compare_exchange(seen, inside) {
                        Ok(_) => break,
                        Err(now) => seen = now,
                    }
                }
                assert_eq!(writers_in.load(), 0, "a reader inside with a writer");
                let (a, b) = read_halves(&g);
                assert_eq!(a, b, "a reader saw a half-written value");
                readers_in.fetch_sub(1);
                drop(g);
            }
            other => panic!("unknown kind {other:?}"),
        }
        if i % 8 == 0 {
            std::thread::yield_now();
        }
    }
    Ok(())
}

/// A reader in a stream of overlapping readers: until `stop`, takes a read lock, counts it in
/// `reads`, and keeps it until another reader holds one too (and 1 ms passed), or 10 ms
/// passed; so that, without writer preference, some reader would always hold the lock.
pub fn child_stream() -> Result<()> {
    let region = Region::open(child_path())?;
    let rw = pair(&region)?;
    let stop = counter(&region, "stop")?;
    let holding = counter(&region, "holding")?;
    let reads = counter(&region, "reads")?;
    let start = Instant::now();
    while stop.load() == 0 {
        assert!(start.elapsed() < LIMIT, "never told to stop");
        let g = rw.read()?;
        let taken = Instant::now();
        holding.fetch_add(1);
        reads.fetch_add(1);
        let (a, b) = read_halves(&g);
        assert_eq!(a, b);
        loop {
            let held = taken.elapsed();
            if held >= Duration::from_millis(10)
                || (held >= Duration::from_millis(1) && holding.load() >= 2)
            {
                break;
            }
            std::thread::sleep(Duration::from_micros(100));
        }
        holding.fetch_sub(1);
        drop(g);
    }
    Ok(())
}

/// Takes the write lock, writes half of an update ([`HALF`]), says so in `held`, and sleeps
/// until killed.
pub fn child_write_holder() -> Result<()> {
    let region = Region::open(child_path())?;
    let rw = pair(&region)?;
    let mut g = rw.write()?;
    *g = HALF;
    std::mem::forget(g);
    counter(&region, "held")?.fetch_add(1);
    sleep_forever()
}

/// Takes `n` read locks, says so in `held`, and sleeps until killed.
pub fn child_read_holder() -> Result<()> {
    let region = Region::open(child_path())?;
    let rw = pair(&region)?;
    let n: u32 = arg("n");
    let guards = (0..n)
        .map(|_| rw.read())
        .collect::<std::result::Result<Vec<_>, _>>()?;
    assert_eq!(rw.readers(), n);
    counter(&region, "held")?.fetch_add(1);
    let _keep = guards;
    sleep_forever()
}

/// Says it is `waiting`, then takes the write lock (bounded by [`LIMIT`]). `expect` =
/// "poisoned": must be told a writer died, find [`HALF`], repair and mark consistent; "ok":
/// must get it normally. Then increments both halves and counts itself `done`.
pub fn child_writer_waiter() -> Result<()> {
    let region = Region::open(child_path())?;
    let rw = pair(&region)?;
    let expect: String = arg("expect");
    counter(&region, "waiting")?.fetch_add(1);
    let mut g = match (rw.try_write_for(LIMIT), expect.as_str()) {
        (Ok(g), "ok") => g,
        (Err(TryLockError::OwnerDied(died)), "poisoned") => {
            let mut g = died.into_guard();
            assert!(rw.is_poisoned());
            assert_eq!(*g, HALF, "the dead writer's half update is there");
            g[1] = g[0];
            g.mark_consistent();
            assert!(!rw.is_poisoned());
            g
        }
        (other, _) => panic!("expected {expect}, got {:?}", other.map(drop)),
    };
    assert!(rw.is_write_locked() && rw.readers() == 0);
    let v = g[0] + 1;
    *g = [v, v];
    drop(g);
    counter(&region, "done")?.fetch_add(1);
    Ok(())
}

/// In another process than the one that found the lock poisoned: every acquire reports the
/// poison (with the guard); a writer that drops its guard without `mark_consistent` leaves it
/// poisoned.
pub fn child_poison_check() -> Result<()> {
    let region = Region::open(child_path())?;
    let rw = pair(&region)?;
    assert!(rw.is_poisoned() && !rw.is_write_locked());
    match rw.try_read_for(LIMIT) {
        Err(TryLockError::OwnerDied(died)) => assert_eq!(**died.get_ref(), HALF),
        other => panic!("read of a poisoned lock: {:?}", other.map(drop)),
    }
    match rw.read() {
        Err(LockError::OwnerDied(died)) => drop(died.into_guard()),
        other => panic!("read of a poisoned lock: {:?}", other.map(drop)),
    }
    match rw.try_write() {
        Err(TryLockError::OwnerDied(died)) => {
            let g = died.into_guard();
            assert_eq!(*g, HALF);
            // Dropped without mark_consistent.
        }
        other => panic!("write of a poisoned lock: {:?}", other.map(drop)),
    }
    assert!(
        rw.is_poisoned(),
        "still poisoned: nobody marked it consistent"
    );
    assert!(!rw.is_write_locked() && rw.readers() == 0);
    Ok(())
}

/// Opens "rw" (a `RwLock<[u64; 2]>` holding [3, 3]) as other types.
pub fn child_types() -> Result<()> {
    let region = Region::open(child_path())?;
    let mismatch = |r: Result<()>, what: &str| match r {
        Err(Error::Mismatch { name, .. }) => assert_eq!(name, "rw", "{what}"),
        other => panic!("{what}: expected Mismatch, got {other:?}"),
    };
    mismatch(region.rwlock::<u64>("rw", 0).map(drop), "u64");
    mismatch(
        region.rwlock::<[u32; 4]>("rw", [0; 4]).map(drop),
        "[u32; 4]",
    );
    mismatch(
        region.rwlock::<[u64; 3]>("rw", [0; 3]).map(drop),
        "[u64; 3]",
    );
    mismatch(
        region.rwlock::<[i64; 2]>("rw", [0; 2]).map(drop),
        "[i64; 2]",
    );
    mismatch(region.value::<Pair>("rw", [0; 2]).map(drop), "a Value");
    let rw = region.rwlock::<Pair>("rw", [9, 9])?;
    assert_eq!(*rw.read()?, [3, 3], "an existing lock keeps its value");
    Ok(())
}

/// Tries to take the write lock for `ms` milliseconds (readers hold it meanwhile), gives up,
/// and counts itself `gave_up`.
pub fn child_try_writer() -> Result<()> {
    let region = Region::open(child_path())?;
    let rw = pair(&region)?;
    let timeout = Duration::from_millis(arg("ms"));
    let start = Instant::now();
    assert!(matches!(
        rw.try_write_for(timeout),
        Err(TryLockError::WouldBlock)
    ));
    assert!(start.elapsed() >= timeout);
    counter(&region, "gave_up")?.fetch_add(1);
    Ok(())
}

/// Registers in the slot of a killed reader (the region has two slots, the parent holds the
/// other), reads beside the dead reader's read lock, then takes the write lock at the first
/// try: the dead reader's indicator is cleared on the way.
pub fn child_reuser() -> Result<()> {
    let region = Region::open(child_path())?;
    let rw = pair(&region)?;
    assert_eq!(rw.readers(), 1, "the dead reader's lock is still counted");
    let g = rw.try_read().expect("a read lock");
    assert_eq!(rw.readers(), 2, "ours, in an indicator of our own");
    drop(g);
    assert_eq!(rw.readers(), 1);
    drop(rw.try_write().expect("the dead reader's lock cleared"));
    assert_eq!(rw.readers(), 0);
    Ok(())
}

/// Takes and drops read locks in a tight loop until killed, checking that no writer is ever
/// in the middle of a write (unless a dead writer's poison says so).
pub fn child_soak_reader() -> Result<()> {
    let region = Region::open(child_path())?;
    let rw = pair(&region)?;
    let started = counter(&region, "started")?;
    let torn = counter(&region, "torn")?;
    let mut first = true;
    loop {
        let (g, poisoned) = match rw.read() {
            Ok(g) => (g, false),
            Err(LockError::OwnerDied(e)) => (e.into_guard(), true),
            Err(e) => return Err(e.into()),
        };
        let (a, b) = read_halves(&g);
        if a != b && !poisoned {
            torn.fetch_add(1);
        }
        drop(g);
        if first {
            first = false;
            started.fetch_add(1);
        }
    }
}

/// Takes the write lock in a tight loop until killed, writing both halves each time (and
/// repairing a dead writer's half-write, then marking the lock consistent).
pub fn child_soak_writer() -> Result<()> {
    let region = Region::open(child_path())?;
    let rw = pair(&region)?;
    let started = counter(&region, "started")?;
    let mut first = true;
    for v in 1u64.. {
        match rw.write() {
            Ok(mut g) => write_halves(&mut g, v),
            Err(LockError::OwnerDied(e)) => {
                let mut g = e.into_guard();
                write_halves(&mut g, v);
                g.mark_consistent();
            }
            Err(e) => return Err(e.into()),
        }
        if first {
            first = false;
            started.fetch_add(1);
        }
    }
    Ok(())
}

/// Finds the lock broken: every acquire fails with `NotRecoverable`, at once.
pub fn child_broken_check() -> Result<()> {
    let region = Region::open(child_path())?;
    let rw = pair(&region)?;
    assert!(rw.is_broken());
    let start = Instant::now();
    assert!(matches!(rw.read(), Err(LockError::NotRecoverable)));
    assert!(matches!(rw.write(), Err(LockError::NotRecoverable)));
    assert!(matches!(
        rw.try_read_for(LIMIT),
        Err(TryLockError::NotRecoverable)
    ));
    assert!(matches!(
        rw.try_write_for(LIMIT),
        Err(TryLockError::NotRecoverable)
    ));
    assert!(start.elapsed() < LIMIT);
    Ok(())
}

// -------------------------------------------------------------------------------------------
// Tests

#[test]
fn reader_processes_hold_the_lock_together_and_keep_writers_out() {
    const READERS: u32 = 4;
    let shm = ShmName::new("rw-share");
    let region = new_region(&shm);
    let rw = pair(&region).unwrap();
    let readers: Vec<Child> = (0..READERS)
        .map(|_| spawn("rw_reader_hold", &shm.path(), &[]))
        .collect();
    // Each holds its read lock until all hold one: only possible if they share.
    wait_for_count(
        &region.raw_value("holding", 0).unwrap(),
        READERS,
        "every reader process to hold a read lock at once",
    );
    assert_eq!(rw.readers(), READERS);
    assert!(!rw.is_write_locked());
    {
        let mine = rw.try_read().expect("one more reader shares too");
        assert_eq!(rw.readers(), READERS + 1);
        assert_eq!(*mine, [0, 0]);
    }
    assert!(matches!(rw.try_write(), Err(TryLockError::WouldBlock)));
    let timeout = Duration::from_millis(100);
    let start = Instant::now();
    assert!(matches!(
        rw.try_write_for(timeout),
        Err(TryLockError::WouldBlock)
    ));
    assert!(start.elapsed() >= timeout);
    assert_eq!(rw.readers(), READERS);

    region.raw_value::<u32>("release", 0).unwrap().store(1);
    wait_all(readers);
    assert_eq!(rw.readers(), 0);
    let mut g = rw.try_write_for(LIMIT).expect("free once the readers left");
    *g = [1, 1];
    drop(g);
    assert_eq!(*rw.read().unwrap(), [1, 1]);
}

#[test]
fn writers_never_overlap_readers_or_each_other() {
    const READERS: u32 = 4;
    const WRITERS: u32 = 2;
    const READS: u32 = 20_000;
    const WRITES: u32 = 5_000;
    let shm = ShmName::new("rw-exclusion");
    let region = new_region(&shm);
    let rw = pair(&region).unwrap();
    let start_line = Barrier::new(&region);
    let mut workers: Vec<Child> = (0..READERS)
        .map(|_| {
            spawn(
                "rw_worker",
                &shm.path(),
                &[("kind", &"reader"), ("iters", &READS)],
            )
        })
        .collect();
    workers.extend((0..WRITERS).map(|_| {
        spawn(
            "rw_worker",
            &shm.path(),
            &[("kind", &"writer"), ("iters", &WRITES)],
        )
    }));
    let start = Instant::now();
    start_line.release(READERS + WRITERS);
    wait_all(workers);
    let max = region.raw_value::<u32>("max_readers", 0).unwrap().load();
    eprintln!(
        "{READERS} readers x {READS} and {WRITERS} writers x {WRITES} in {:?}; at most {max} readers inside at once",
        start.elapsed()
    );
    let total = u64::from(WRITERS * WRITES);
    assert_eq!(*rw.read().unwrap(), [total, total], "a write was lost");
    assert_eq!(rw.readers(), 0);
    assert!(!rw.is_write_locked() && !rw.is_poisoned() && !rw.is_broken());
}

#[test]
fn a_writer_is_not_starved_by_a_stream_of_overlapping_readers() {
    const READERS: u32 = 3;
    let shm = ShmName::new("rw-starve");
    let region = new_region(&shm);
    let rw = pair(&region).unwrap();
    let reads = region.raw_value::<u32>("reads", 0).unwrap();
    let holding = region.raw_value::<u32>("holding", 0).unwrap();
    let stream: Vec<Child> = (0..READERS)
        .map(|_| spawn("rw_stream", &shm.path(), &[]))
        .collect();
    wait_for_count(&reads, 100, "the reader stream to run");
    let start = Instant::now();
    let mut g = rw
        .try_write_for(LIMIT)
        .expect("the writer was starved by the readers");
    let waited = start.elapsed();
    eprintln!("a writer got in through a stream of {READERS} overlapping readers in {waited:?}");
    assert_eq!(holding.load(), 0, "readers inside with the writer");
    assert_eq!(rw.readers(), 0);
    let before = reads.load();
    write_halves(&mut g, 5);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        reads.load(),
        before,
        "a reader got in while the writer held the lock"
    );
    drop(g);
    // The readers go on afterwards.
    wait_for_count(&reads, before + 10, "the readers to resume");
    region.raw_value::<u32>("stop", 0).unwrap().store(1);
    wait_all(stream);
    assert_eq!(*rw.read().unwrap(), [5, 5]);
}

#[test]
fn a_writer_killed_holding_the_lock_poisons_it_for_a_waiting_writer_in_another_process() {
    let shm = ShmName::new("rw-kill-writer");
    let region = new_region(&shm);
    let rw = pair(&region).unwrap();
    let done = region.raw_value::<u32>("done", 0).unwrap();
    let holder = spawn("rw_write_holder", &shm.path(), &[]);
    wait_for_count(
        &region.raw_value("held", 0).unwrap(),
        1,
        "the writer to hold the lock",
    );
    assert!(rw.is_write_locked());
    let waiter = spawn("rw_writer_waiter", &shm.path(), &[("expect", &"poisoned")]);
    wait_for_count(
        &region.raw_value("waiting", 0).unwrap(),
        1,
        "the waiter to start",
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(done.load(), 0, "nobody gets past a live writer");
    assert!(!rw.is_poisoned());

    let killed = Instant::now();
    holder.kill();
    wait_for_count(&done, 1, "the waiter to take the lock over");
    let noticed = killed.elapsed();
    waiter.wait_ok();
    eprintln!("a waiting writer took a SIGKILLed writer's lock over {noticed:?} after the kill");
    assert!(
        noticed < Duration::from_secs(10),
        "death noticed only after {noticed:?}"
    );
    assert!(!rw.is_poisoned(), "the waiter marked it consistent");
    assert!(!rw.is_write_locked());
    assert_eq!(*rw.read().expect("a repaired lock reads normally"), [8, 8]);
    let mut g = rw.write().expect("a repaired lock writes normally");
    g[0] = 9;
    g[1] = 9;
}

#[test]
fn a_poisoned_rwlock_reports_the_dead_writer_until_marked_consistent() {
    let shm = ShmName::new("rw-poison");
    let region = new_region(&shm);
    let rw = pair(&region).unwrap();
    let holder = spawn("rw_write_holder", &shm.path(), &[]);
    wait_for_count(
        &region.raw_value("held", 0).unwrap(),
        1,
        "the writer to hold the lock",
    );
    holder.kill();
    assert!(
        rw.is_write_locked(),
        "a dead writer's lock stays held until noticed"
    );
    // A reader in this process notices the death: it gets the read lock, and the poison.
    match rw.read() {
        Err(LockError::OwnerDied(died)) => {
            let g = died.into_guard();
            assert_eq!(*g, HALF);
            assert_eq!(rw.readers(), 1);
        }
        other => panic!("expected OwnerDied, got {:?}", other.map(drop)),
    }
    assert!(rw.is_poisoned() && !rw.is_write_locked());
    spawn("rw_poison_check", &shm.path(), &[]).wait_ok();
    assert!(rw.is_poisoned());
    // A writer repairs it.
    match rw.write() {
        Err(LockError::OwnerDied(died)) => {
            let mut g = died.into_guard();
            *g = [0, 0];
            g.mark_consistent();
        }
        other => panic!("expected OwnerDied, got {:?}", other.map(drop)),
    }
    assert!(!rw.is_poisoned());
    assert_eq!(*rw.read().unwrap(), [0, 0]);
    assert!(rw.try_write().is_ok());
    assert!(rw.try_read().is_ok());
    assert_eq!(
        format!("{rw:?}"),
        "RwLock { readers: 0, write_locked: false, poisoned: false, broken: false }"
    );
}

fn reader_killed_holding_read_locks(with_waiter: bool) {
    let shm = ShmName::new(&format!("rw-kill-reader-{with_waiter}"));
    let region = new_region(&shm);
    let rw = pair(&region).unwrap();
    let holder = spawn("rw_read_holder", &shm.path(), &[("n", &2)]);
    wait_for_count(
        &region.raw_value("held", 0).unwrap(),
        1,
        "the reader to hold two read locks",
    );
    assert_eq!(rw.readers(), 2);
    let done = region.raw_value::<u32>("done", 0).unwrap();
    let waiter = with_waiter.then(|| {
        let w = spawn("rw_writer_waiter", &shm.path(), &[("expect", &"ok")]);
        wait_for_count(
            &region.raw_value("waiting", 0).unwrap(),
            1,
            "the writer to start",
        );
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(done.load(), 0, "no writer gets past a live reader");
        w
    });

    let killed = Instant::now();
    holder.kill();
    let taken = match waiter {
        Some(w) => {
            wait_for_count(&done, 1, "the writer to get the lock");
            let t = killed.elapsed();
            w.wait_ok();
            t
        }
        None => {
            let mut g = rw
                .try_write_for(LIMIT)
                .expect("a dead reader's read locks come back");
            let t = killed.elapsed();
            *g = [1, 1];
            t
        }
    };
    eprintln!(
        "a writer got a SIGKILLed reader's lock {taken:?} after the kill (waiting: {with_waiter})"
    );
    assert!(
        taken < Duration::from_secs(10),
        "the read locks came back only after {taken:?}"
    );
    assert_eq!(*rw.read().unwrap(), [1, 1]);
    assert_eq!(rw.readers(), 0, "both read locks were given back, no more");
    assert!(!rw.is_poisoned(), "a reader's death poisons nothing");
    assert!(!rw.is_broken());
    drop(rw.try_write().expect("free"));
}

#[test]
fn a_reader_killed_holding_read_locks_lets_a_waiting_writer_in() {
    reader_killed_holding_read_locks(true);
}

#[test]
fn a_reader_killed_holding_read_locks_with_nobody_waiting_gives_them_back_later() {
    reader_killed_holding_read_locks(false);
}

#[test]
fn opening_an_rwlock_as_another_type_is_a_mismatch() {
    let shm = ShmName::new("rw-types");
    let region = new_region(&shm);
    let rw = region.rwlock::<Pair>("rw", [3, 3]).unwrap();
    assert!(matches!(
        region.rwlock::<u64>("rw", 0),
        Err(Error::Mismatch { .. })
    ));
    spawn("rw_types", &shm.path(), &[]).wait_ok();
    assert_eq!(*rw.read().unwrap(), [3, 3]);
}

/// A writer that gave up waiting must not keep new readers out while earlier readers hold
/// the lock: here reader 1 (this process) holds a read lock until reader 2 (this process's
/// second thread, standing in for any other reader) has one too, and a writer in another
/// process tried and gave up in between.
#[test]
fn a_writer_that_gave_up_does_not_keep_new_readers_out() {
    let shm = ShmName::new("rw-gave-up");
    let region = new_region(&shm);
    let rw = pair(&region).unwrap();
    let first = rw.read().unwrap();
    spawn("rw_try_writer", &shm.path(), &[("ms", &50)]).wait_ok();
    assert_eq!(region.raw_value::<u32>("gave_up", 0).unwrap().load(), 1);
    // Nobody wants to write any more: a second reader must share with the first.
    let start = Instant::now();
    let second = std::thread::scope(|s| {
        s.spawn(|| rw.try_read_for(Duration::from_secs(2)).map(drop).is_ok())
            .join()
            .unwrap()
    });
    let waited = start.elapsed();
    drop(first);
    assert!(
        second,
        "a second reader waited {waited:?} behind a writer that had given up"
    );
}

/// A death never breaks the lock, but bytes another process scribbled can: here its flags
/// word is overwritten with the broken mark. Every process then fails at once, until
/// `repair`.
#[test]
fn a_scribbled_rwlock_is_broken_for_every_process_until_repaired() {
    let shm = ShmName::new("rw-broken");
    let region = new_region(&shm);
    let rw = pair(&region).unwrap();
    let object = read_u64(
        &shm.path(),
        find_entry(&shm.path(), "rw") + layout::E_OFFSET,
    );
    write_u32(&shm.path(), object + 4, 2); // flags = BROKEN
    assert!(rw.is_broken() && !rw.is_poisoned());
    assert!(matches!(rw.read(), Err(LockError::NotRecoverable)));
    assert!(matches!(rw.write(), Err(LockError::NotRecoverable)));
    assert!(matches!(rw.try_read(), Err(TryLockError::NotRecoverable)));
    assert!(matches!(rw.try_write(), Err(TryLockError::NotRecoverable)));
    assert!(matches!(
        rw.try_read_for(Duration::from_millis(20)),
        Err(TryLockError::NotRecoverable)
    ));
    spawn("rw_broken_check", &shm.path(), &[]).wait_ok();
    rw.repair();
    assert!(!rw.is_broken());
    drop(rw.write().expect("repaired"));
    drop(rw.read().expect("repaired"));
    assert_eq!(rw.readers(), 0);
}

#[test]
fn a_dead_readers_read_lock_is_cleared_by_the_next_writer_in_another_process() {
    let shm = ShmName::new("rw-reuse");
    // Two slots: this process takes one, so the helpers share the other.
    let region = Region::options()
        .max_processes(2)
        .create(shm.name(), BIG)
        .unwrap();
    let rw = pair(&region).unwrap();
    let holder = spawn("rw_read_holder", &shm.path(), &[("n", &1)]);
    wait_for_count(
        &region.raw_value("held", 0).unwrap(),
        1,
        "the reader to hold a read lock",
    );
    holder.kill();
    assert_eq!(rw.readers(), 1);
    spawn("rw_reuser", &shm.path(), &[]).wait_ok();
    assert_eq!(rw.readers(), 0);
    assert!(!rw.is_broken() && !rw.is_poisoned());
}

/// The documented residue of a writer's death while it waits: its mark keeps new readers out
/// until the current readers leave (plus a sleep slice), never longer.
#[test]
fn a_writer_killed_while_waiting_keeps_new_readers_out_only_until_the_readers_leave() {
    let shm = ShmName::new("rw-dead-waiter");
    let region = new_region(&shm);
    let rw = pair(&region).unwrap();
    let first = rw.read().unwrap();
    let writer = spawn("rw_writer_waiter", &shm.path(), &[("expect", &"ok")]);
    wait_for_count(
        &region.raw_value("waiting", 0).unwrap(),
        1,
        "the writer to wait",
    );
    std::thread::sleep(Duration::from_millis(200));
    writer.kill();
    std::thread::scope(|s| {
        let second = s.spawn(|| {
            let g = rw.try_read_for(LIMIT).map(drop);
            g.is_ok()
        });
        std::thread::sleep(Duration::from_millis(100));
        let released = Instant::now();
        drop(first);
        assert!(second.join().unwrap(), "a reader stayed shut out");
        eprintln!(
            "a reader got in {:?} after the last reader left",
            released.elapsed()
        );
    });
    assert_eq!(rw.readers(), 0);
    drop(rw.try_write_for(LIMIT).expect("free"));
    assert!(!rw.is_poisoned() && !rw.is_broken());
}

/// The kill soak: two processes take read locks and one takes the write lock in tight loops;
/// one of them, at random, is SIGKILLed every 5–50 ms and replaced, 320 times. Whatever
/// instruction each death lands on, the lock never breaks, a writer in this process always
/// gets in (within the death-check interval of the dead reader), no reader ever sees a torn
/// write outside a dead writer's poison, and once every process is gone no read lock is counted.
#[test]
fn a_kill_soak_of_readers_and_writers_never_breaks_the_rwlock_or_loses_a_read_lock() {
    const KILLS: u32 = 320;
    let shm = ShmName::new("rw-soak");
    let region = new_region(&shm);
    let rw = pair(&region).unwrap();
    let started = counter(&region, "started").unwrap();
    let torn = counter(&region, "torn").unwrap();
    let roles = ["rw_soak_reader", "rw_soak_reader", "rw_soak_writer"];
    let spawn_role = |role: &str| {
        let before = started.load();
        let child = spawn(role, &shm.path(), &[]);
        wait_until("a soak process to start its loop", || {
            started.load() > before
        });
        child
    };
    let mut children: Vec<Option<Child>> = roles.iter().map(|r| Some(spawn_role(r))).collect();
    let mut seed = (std::process::id() as u64) << 32 | 0x9e37_79b9;
    let mut random = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let start = Instant::now();
    let (mut killed_readers, mut killed_writers, mut poisoned, mut longest) =
        (0u32, 0u32, 0u32, Duration::ZERO);
    for kill in 0..KILLS {
        std::thread::sleep(Duration::from_millis(5 + random(46)));
        let victim = random(roles.len() as u64) as usize;
        children[victim].take().expect("running").kill();
        if victim == 2 {
            killed_writers += 1;
        } else {
            killed_readers += 1;
        }
        assert!(!rw.is_broken(), "broken after kill {kill}");
        if kill % 8 == 7 {
            // A writer here gets in, whatever the dead left behind.
            let asked = Instant::now();
            match rw.try_write_for(LIMIT) {
                Ok(mut g) => {
                    let (a, b) = read_halves(&g);
                    assert_eq!(a, b, "a torn value without a poison");
                    write_halves(&mut g, a);
                }
                Err(TryLockError::OwnerDied(e)) => {
                    poisoned += 1;
                    let mut g = e.into_guard();
                    let (a, _) = read_halves(&g);
                    write_halves(&mut g, a);
                    g.mark_consistent();
                }
                Err(e) => panic!("after kill {kill}: {e:?}"),
            }
            longest = longest.max(asked.elapsed());
        }
        children[victim] = Some(spawn_role(roles[victim]));
    }
    for child in children.into_iter().flatten() {
        child.kill();
    }
    // Everyone is dead: the next writer clears what the dead readers counted.
    match rw.try_write_for(LIMIT) {
        Ok(g) => drop(g),
        Err(TryLockError::OwnerDied(e)) => e.into_guard().mark_consistent(),
        Err(e) => panic!("at the end: {e:?}"),
    }
    assert_eq!(
        rw.readers(),
        0,
        "read locks counted after every reader died"
    );
    assert!(!rw.is_broken() && !rw.is_poisoned() && !rw.is_write_locked());
    assert_eq!(torn.load(), 0, "a reader saw a torn write outside a poison");
    drop(rw.try_read().expect("free"));
    drop(rw.try_write().expect("free"));
    eprintln!(
        "rwlock kill soak: {KILLS} kills ({killed_readers} readers, {killed_writers} writers), \
         0 breaks, {poisoned} poisons seen by the checking writer, longest wait for the write \
         lock {longest:?}, {:?} in all",
        start.elapsed()
    );
}

#[test]
fn a_writer_clears_the_indicators_of_readers_that_exited() {
    let shm = ShmName::new("rw-sweep");
    let region = new_region(&shm);
    let lock = pair(&region).unwrap();
    // 40 short-lived reader processes: the first 32 claim every indicator and exit.
    for _ in 0..40 {
        spawn("rw_read_once", &shm.path(), &[]).wait_ok();
    }
    let claimed = || {
        let object = read_u64(
            &shm.path(),
            find_entry(&shm.path(), "rw") + layout::E_OFFSET,
        );
        // The `claimed` word (`src/region/layout.rs`, module `rwlock`).
        read_u32(&shm.path(), object + 8)
    };
    assert_eq!(
        claimed(),
        u32::MAX,
        "every indicator claimed by a reader that exited"
    );
    // This process's first write sweeps (then one a second at most, checked every 256 writes).
    write_halves(&mut lock.write().unwrap(), 1);
    assert_eq!(
        claimed(),
        0,
        "the dead readers' indicators are still claimed"
    );
    // Reading and writing still work, with a fresh indicator.
    assert_eq!(read_halves(&lock.read().unwrap()), (1, 1));
    assert_eq!(claimed().count_ones(), 1);
}
