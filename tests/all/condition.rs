//! `Condition` across processes: a producer and consumers, `wait` without the lock, the RLock
//! count that `wait` restores, notify with a waiter SIGKILLed in its wait, timeouts.

use crate::common::{
    Child, LIMIT, ShmName, arg, child_path, spawn, wait_all, wait_for_count, wait_until,
};
use shmsync::{Error, RawValue, Region, Result};
use std::time::{Duration, Instant};

/// The helper roles of this module, for [`crate::child::child_entry`].
pub fn role(name: &str) -> Option<fn() -> Result<()>> {
    Some(match name {
        "cond_producer" => child_producer,
        "cond_consumer" => child_consumer,
        "cond_waiter" => child_waiter,
        "cond_bare_waiter" => child_bare_waiter,
        "cond_notifier" => child_notifier,
        "cond_holder" => child_holder,
        "cond_ping" => child_ping,
        "cond_shared_producer" => child_shared_producer,
        "cond_shared_consumer" => child_shared_consumer,
        "cond_on_lock_consumer" => child_on_lock_consumer,
        _ => return None,
    })
}

const SIZE: usize = 1 << 18;

fn new_region(shm: &ShmName) -> Region {
    Region::create(shm.name(), SIZE).expect("create region")
}

fn counter(region: &Region, name: &str) -> Result<RawValue<u32>> {
    region.raw_value(name, 0)
}

// -------------------------------------------------------------------------------------------
// A condition over a plain Lock (Python's `Condition(Lock())`)

/// Takes `items` items one at a time from the counter "queued" under the condition "ready"
/// over the Lock "q", waiting while there are none; counts them in "taken".
pub fn child_on_lock_consumer() -> Result<()> {
    let region = Region::open(child_path())?;
    let ready = region.condition_on_lock("ready", "q")?;
    let queued = counter(&region, "queued")?;
    let taken = counter(&region, "taken")?;
    for _ in 0..arg::<u32>("items") {
        let _g = ready.lock().map_err(|_| Error::NotRecoverable)?;
        assert!(
            ready.wait_for(|| queued.load() > 0, Some(LIMIT))?,
            "no item came"
        );
        queued.fetch_sub(1);
        taken.fetch_add(1);
    }
    Ok(())
}

// -------------------------------------------------------------------------------------------
// Producer and consumers: a ring of CAP slots in a raw array, guarded by the condition's lock.

const CAP: u64 = 4;
const ITEMS: u64 = 400;

/// The queue's shared state (all accessed with the condition's lock held).
struct Queue {
    ring: shmsync::RawArray<u64>,
    head: RawValue<u64>,
    tail: RawValue<u64>,
    done: RawValue<u32>,
}

impl Queue {
    fn open(region: &Region) -> Result<Queue> {
        Ok(Queue {
            ring: region.raw_array("ring", &[0; CAP as usize])?,
            head: region.raw_value("head", 0)?,
            tail: region.raw_value("tail", 0)?,
            done: region.raw_value("done", 0)?,
        })
    }
    fn len(&self) -> u64 {
        self.head.load() - self.tail.load()
    }
}

/// Puts 1..=ITEMS into the ring, waiting (`wait_for`) while it is full; `notify(1)` after
/// each item (only consumers can be waiting then), `notify_all` when done.
pub fn child_producer() -> Result<()> {
    let region = Region::open(child_path())?;
    let c = region.condition("c")?;
    let q = Queue::open(&region)?;
    for item in 1..=ITEMS {
        let _g = c.lock()?;
        assert!(
            c.wait_for(|| q.len() < CAP, Some(LIMIT))?,
            "the ring stayed full for {LIMIT:?}"
        );
        let head = q.head.load();
        q.ring.store((head % CAP) as usize, item);
        q.head.store(head + 1);
        c.notify(1)?;
    }
    let _g = c.lock()?;
    q.done.store(1);
    c.notify_all()?;
    Ok(())
}

/// Takes items until the ring is empty and the producer is done; counts each item in
/// `seen[item - 1]`. `style` = "wait_for" waits with `wait_for`; "wait" loops on `wait`.
pub fn child_consumer() -> Result<()> {
    let region = Region::open(child_path())?;
    let c = region.condition("c")?;
    let q = Queue::open(&region)?;
    let seen = region.raw_array::<u32>("seen", &[0; ITEMS as usize])?;
    let taken = region.raw_value::<u64>("taken", 0)?;
    let style: String = arg("style");
    loop {
        let g = c.lock()?;
        let ready = || q.len() > 0 || q.done.load() != 0;
        match style.as_str() {
            "wait_for" => assert!(c.wait_for(ready, Some(LIMIT))?, "nothing came"),
            "wait" => {
                let deadline = Instant::now() + LIMIT;
                while !ready() {
                    assert!(Instant::now() < deadline, "nothing came");
                    c.wait(Some(Duration::from_secs(1)))?;
                    assert!(c.is_owned_by_current_thread() && c.count() == 1);
                }
            }
            other => panic!("unknown style {other:?}"),
        }
        if q.len() == 0 {
            // Done and empty.
            return Ok(());
        }
        let tail = q.tail.load();
        let item = q.ring.load((tail % CAP) as usize);
        q.tail.store(tail + 1);
        // The producer may wait for room: wake everyone (consumers re-check and sleep).
        c.notify_all()?;
        drop(g);
        assert!((1..=ITEMS).contains(&item), "item {item} out of range");
        seen.fetch_add(item as usize - 1, 1);
        taken.fetch_add(1);
    }
}

/// Takes the lock, counts itself `waiting`, and waits (lock released) until `flag` is set;
/// counts itself `woken` when it returns, with the lock held again.
pub fn child_waiter() -> Result<()> {
    let region = Region::open(child_path())?;
    let c = region.condition("c")?;
    let flag = counter(&region, "flag")?;
    let _g = c.lock()?;
    counter(&region, "waiting")?.fetch_add(1);
    assert!(
        c.wait_for(|| flag.load() != 0, Some(LIMIT))?,
        "not notified within {LIMIT:?}"
    );
    assert!(c.is_owned_by_current_thread());
    assert_eq!(c.count(), 1);
    counter(&region, "woken")?.fetch_add(1);
    Ok(())
}

/// Takes the lock, counts itself `waiting`, and waits once with a bare `wait` (no predicate);
/// counts itself `returned` when the wait returns `true` (with the lock held again), and
/// fails if it returned `false` (timed out after [`LIMIT`]).
pub fn child_bare_waiter() -> Result<()> {
    let region = Region::open(child_path())?;
    let c = region.condition("c")?;
    let _g = c.lock()?;
    counter(&region, "waiting")?.fetch_add(1);
    assert!(c.wait(Some(LIMIT))?, "not notified within {LIMIT:?}");
    assert!(c.is_owned_by_current_thread());
    counter(&region, "returned")?.fetch_add(1);
    Ok(())
}

/// Waits for the parent to be `waiting` (with the lock entered twice), then takes the lock:
/// possible only once the parent's `wait` released it entirely. Sets `flag`, notifies one.
pub fn child_notifier() -> Result<()> {
    let region = Region::open(child_path())?;
    let c = region.condition("c")?;
    wait_for_count(&counter(&region, "waiting")?, 1, "the parent to wait");
    let g = c
        .try_lock_for(LIMIT)
        .expect("the waiting parent never released its lock entirely");
    assert_eq!(c.count(), 1, "a fresh count for us");
    counter(&region, "flag")?.store(1);
    c.notify(1)?;
    drop(g);
    Ok(())
}

/// Takes the lock (once the parent is `waiting`, if `after_wait` is 1) and says so in `held`;
/// checks that the parent cannot use the condition as its own meanwhile; releases after
/// `hold_ms` milliseconds, or once `stop` is set if `hold_ms` is 0, and says so in `released`.
pub fn child_holder() -> Result<()> {
    let region = Region::open(child_path())?;
    let c = region.condition("c")?;
    if arg::<u32>("after_wait") == 1 {
        wait_for_count(&counter(&region, "waiting")?, 1, "the parent to wait");
    }
    let g = c.try_lock_for(LIMIT).expect("the lock stayed held");
    counter(&region, "held")?.fetch_add(1);
    match arg::<u64>("hold_ms") {
        0 => {
            let stop = counter(&region, "stop")?;
            wait_until("the stop signal", || stop.load() != 0);
        }
        ms => std::thread::sleep(Duration::from_millis(ms)),
    }
    counter(&region, "released")?.fetch_add(1);
    drop(g);
    Ok(())
}

/// One side of a ping-pong: `rounds` times, waits for `turn` to be `me`, hands the turn to
/// the other side and notifies it. The lock is held throughout except while waiting, so the
/// other side gets the lock (and notifies) the moment `wait` releases it: a notify that came
/// between the release and the sleep would be lost if the wait could miss it.
fn ping(region: &Region, me: u32, rounds: u32) -> Result<()> {
    let c = region.condition("c")?;
    let turn = counter(region, "turn")?;
    let _g = c.lock()?;
    for round in 0..rounds {
        assert!(
            c.wait_for(|| turn.load() == me, Some(LIMIT))?,
            "side {me}, round {round}: a notify was lost"
        );
        turn.store(1 - me);
        c.notify(1)?;
    }
    Ok(())
}

/// The helper's side of the ping-pong (side 1).
pub fn child_ping() -> Result<()> {
    let region = Region::open(child_path())?;
    ping(&region, 1, arg("rounds"))
}

// -------------------------------------------------------------------------------------------
// The same queue with Python's two conditions on one lock (`Condition(lock)`): producers wait on
// "not_full" and wake one consumer on "not_empty", consumers the other way round, each with
// `notify(1)`: with one condition for both sides, `notify(1)` could wake the wrong side and
// stall the queue.

fn two_conditions(region: &Region) -> Result<(shmsync::Condition, shmsync::Condition)> {
    Ok((
        region.condition_on("not_full", "queue")?,
        region.condition_on("not_empty", "queue")?,
    ))
}

/// Puts 1..=ITEMS into the ring under the shared lock, waiting on `not_full`.
pub fn child_shared_producer() -> Result<()> {
    let region = Region::open(child_path())?;
    let (not_full, not_empty) = two_conditions(&region)?;
    let q = Queue::open(&region)?;
    for item in 1..=ITEMS {
        let _g = not_full.lock()?;
        assert!(
            not_full.wait_for(|| q.len() < CAP, Some(LIMIT))?,
            "the ring stayed full for {LIMIT:?}"
        );
        let head = q.head.load();
        q.ring.store((head % CAP) as usize, item);
        q.head.store(head + 1);
        not_empty.notify(1)?;
    }
    let _g = not_empty.lock()?;
    q.done.store(1);
    not_empty.notify_all()?;
    Ok(())
}

/// Takes items, waiting on `not_empty`, and wakes the producer on `not_full`.
pub fn child_shared_consumer() -> Result<()> {
    let region = Region::open(child_path())?;
    let (not_full, not_empty) = two_conditions(&region)?;
    let q = Queue::open(&region)?;
    let seen = region.raw_array::<u32>("seen", &[0; ITEMS as usize])?;
    loop {
        let g = not_empty.lock()?;
        assert!(
            not_empty.wait_for(|| q.len() > 0 || q.done.load() != 0, Some(LIMIT))?,
            "nothing came for {LIMIT:?}"
        );
        if q.len() == 0 {
            // Another consumer may still sleep on `not_empty`: pass the end on.
            not_empty.notify_all()?;
            return Ok(());
        }
        let tail = q.tail.load();
        let item = q.ring.load((tail % CAP) as usize);
        q.tail.store(tail + 1);
        not_full.notify(1)?;
        drop(g);
        assert!((1..=ITEMS).contains(&item), "item {item} out of range");
        seen.fetch_add(item as usize - 1, 1);
    }
}

// -------------------------------------------------------------------------------------------
// Tests

#[test]
fn two_conditions_sharing_one_lock_pass_every_item_once_with_notify_one() {
    let shm = ShmName::new("cond-shared");
    let region = new_region(&shm);
    let (not_full, not_empty) = two_conditions(&region).unwrap();
    let seen = region
        .raw_array::<u32>("seen", &[0; ITEMS as usize])
        .unwrap();
    let consumers: Vec<Child> = (0..2)
        .map(|_| spawn("cond_shared_consumer", &shm.path(), &[]))
        .collect();
    let producer = spawn("cond_shared_producer", &shm.path(), &[]);
    producer.wait_ok();
    wait_all(consumers);
    for (i, n) in seen.to_vec().iter().enumerate() {
        assert_eq!(*n, 1, "item {} was taken {n} times", i + 1);
    }
    // One lock: holding it through one condition is holding it for the other, and for the
    // plain RLock of that name.
    let g = not_full.lock().unwrap();
    assert!(not_empty.is_owned_by_current_thread());
    assert!(region.rlock("queue").unwrap().is_owned_by_current_thread());
    drop(g);
    // The lock a condition uses is fixed when it is created.
    assert!(matches!(
        region.condition_on("not_full", "other"),
        Err(Error::Mismatch { .. })
    ));
    assert!(matches!(
        region.condition_on("not_full", "queuf"),
        Err(Error::Mismatch { .. })
    ));
    assert!(matches!(
        region.condition("not_full"),
        Err(Error::Mismatch { .. })
    ));
    assert!(matches!(
        region.condition_on("q2", "seen"),
        Err(Error::Mismatch { .. })
    ));
}

#[test]
fn a_producer_and_two_consumers_in_three_processes_pass_every_item_once() {
    let shm = ShmName::new("cond-pc");
    let region = new_region(&shm);
    let c = region.condition("c").unwrap();
    let seen = region
        .raw_array::<u32>("seen", &[0; ITEMS as usize])
        .unwrap();
    let consumers: Vec<Child> = ["wait_for", "wait"]
        .iter()
        .map(|style| spawn("cond_consumer", &shm.path(), &[("style", style)]))
        .collect();
    let producer = spawn("cond_producer", &shm.path(), &[]);
    producer.wait_ok();
    wait_all(consumers);
    let counts = seen.to_vec();
    for (i, n) in counts.iter().enumerate() {
        assert_eq!(*n, 1, "item {} was taken {n} times", i + 1);
    }
    assert_eq!(region.raw_value::<u64>("taken", 0).unwrap().load(), ITEMS);
    assert!(!c.is_locked());
}

#[test]
fn a_ping_pong_between_two_processes_loses_no_notify() {
    const ROUNDS: u32 = 2000;
    let shm = ShmName::new("cond-ping");
    let region = new_region(&shm);
    let other = spawn("cond_ping", &shm.path(), &[("rounds", &ROUNDS)]);
    let start = Instant::now();
    ping(&region, 0, ROUNDS).unwrap();
    other.wait_ok();
    eprintln!("{ROUNDS} round trips in {:?}", start.elapsed());
    assert_eq!(region.raw_value::<u32>("turn", 0).unwrap().load(), 0);
}

#[test]
fn wait_notify_and_wait_for_without_the_lock_are_refused() {
    let shm = ShmName::new("cond-unlocked");
    let region = new_region(&shm);
    let c = region.condition("c").unwrap();
    let refused = |c: &shmsync::Condition, want: fn(&Error) -> bool, what: &str| {
        let errors = [
            ("wait", c.wait(Some(Duration::from_millis(1))).map(drop)),
            ("wait(None)", c.wait(None).map(drop)),
            ("wait_for", c.wait_for(|| true, None).map(drop)),
            ("notify", c.notify(1)),
            ("notify_one", c.notify_one()),
            ("notify_all", c.notify_all()),
        ];
        for (op, result) in errors {
            match result {
                Err(ref e) if want(e) => {}
                other => panic!("{op} {what}: {other:?}"),
            }
        }
    };
    refused(
        &c,
        |e| matches!(e, Error::NotLocked),
        "without the lock (NotLocked)",
    );
    assert!(!c.is_locked());

    // Held by another process: NotOwner, and nothing changes hands.
    let holder = spawn(
        "cond_holder",
        &shm.path(),
        &[("after_wait", &0), ("hold_ms", &0)],
    );
    wait_for_count(
        &region.raw_value("held", 0).unwrap(),
        1,
        "the other process to lock",
    );
    refused(
        &c,
        |e| matches!(e, Error::NotOwner),
        "while another process holds the lock (NotOwner)",
    );
    assert!(c.is_locked() && !c.is_owned_by_current_thread());
    region.raw_value::<u32>("stop", 0).unwrap().store(1);
    holder.wait_ok();

    // Held by another thread of this process: NotOwner too.
    let g = c.lock().unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            refused(
                &c,
                |e| matches!(e, Error::NotOwner),
                "from a thread that does not own it",
            )
        });
    });
    // The owner can.
    c.notify_all().unwrap();
    assert!(!c.wait(Some(Duration::from_millis(1))).unwrap());
    drop(g);
    assert!(!c.is_locked());
}

#[test]
fn wait_releases_an_rlock_entered_twice_entirely_and_restores_the_count() {
    let shm = ShmName::new("cond-count");
    let region = new_region(&shm);
    let c = region.condition("c").unwrap();
    let flag = region.raw_value::<u32>("flag", 0).unwrap();
    let outer = c.lock().unwrap();
    assert!(c.acquire(true, None));
    assert_eq!(c.count(), 2);
    let notifier = spawn("cond_notifier", &shm.path(), &[]);
    region.raw_value::<u32>("waiting", 0).unwrap().store(1);
    // The notifier can only lock (and set the flag) once our wait released both levels.
    assert!(c.wait_for(|| flag.load() != 0, Some(LIMIT)).unwrap());
    notifier.wait_ok();
    assert!(c.is_owned_by_current_thread());
    assert_eq!(c.count(), 2, "wait gave the lock back at its old count");
    assert_eq!(c.rlock().count(), 2);
    c.release().unwrap();
    assert_eq!(c.count(), 1);
    assert!(c.is_locked());
    drop(outer);
    assert!(!c.is_locked());
    assert!(matches!(c.release(), Err(Error::NotLocked)));
}

#[test]
fn notify_never_blocks_on_a_waiter_killed_in_its_wait() {
    let shm = ShmName::new("cond-killed");
    let region = new_region(&shm);
    let c = region.condition("c").unwrap();
    let flag = region.raw_value::<u32>("flag", 0).unwrap();
    let woken = region.raw_value::<u32>("woken", 0).unwrap();
    let victim = spawn("cond_waiter", &shm.path(), &[]);
    let survivor = spawn("cond_waiter", &shm.path(), &[]);
    wait_for_count(
        &region.raw_value("waiting", 0).unwrap(),
        2,
        "both waiters to start",
    );
    // Both counted themselves with the lock held, so once we hold it both are in their wait.
    let g = c
        .try_lock_for(LIMIT)
        .expect("the waiters released the lock");
    drop(g);
    std::thread::sleep(Duration::from_millis(200));
    victim.kill();

    let start = Instant::now();
    {
        let _g = c.try_lock_for(LIMIT).expect("a dead waiter holds nothing");
        assert!(!c.is_poisoned(), "a waiter killed in its wait held no lock");
        flag.store(1);
        c.notify(1).unwrap();
        c.notify_all().unwrap();
        c.notify(3).unwrap();
    }
    eprintln!(
        "lock and three notifies with a dead waiter took {:?}",
        start.elapsed()
    );
    survivor.wait_ok();
    assert_eq!(woken.load(), 1, "the live waiter was woken");

    // And later rounds work as before.
    flag.store(0);
    let next = spawn("cond_waiter", &shm.path(), &[]);
    wait_for_count(
        &region.raw_value("waiting", 0).unwrap(),
        3,
        "the next waiter to start",
    );
    let _g = c
        .try_lock_for(LIMIT)
        .expect("the next waiter released the lock");
    flag.store(1);
    c.notify(1).unwrap();
    drop(_g);
    next.wait_ok();
    assert_eq!(woken.load(), 2);
}

#[test]
fn wait_timeouts_return_false_after_at_least_the_timeout() {
    let shm = ShmName::new("cond-timeout");
    let region = new_region(&shm);
    let c = region.condition("c").unwrap();
    let g = c.lock().unwrap();
    for timeout in [Duration::from_millis(30), Duration::from_millis(150)] {
        let start = Instant::now();
        assert!(!c.wait(Some(timeout)).unwrap());
        let waited = start.elapsed();
        assert!(
            waited >= timeout,
            "wait gave up after {waited:?} < {timeout:?}"
        );
        assert!(c.is_owned_by_current_thread() && c.count() == 1);

        let mut calls = 0;
        let start = Instant::now();
        let outcome = c
            .wait_for(
                || {
                    calls += 1;
                    false
                },
                Some(timeout),
            )
            .unwrap();
        let waited = start.elapsed();
        assert!(!outcome);
        assert!(
            waited >= timeout,
            "wait_for gave up after {waited:?} < {timeout:?}"
        );
        assert!(calls >= 1, "the predicate is called before any wait");
        assert!(c.is_owned_by_current_thread() && c.count() == 1);
    }
    assert!(!c.wait(Some(Duration::ZERO)).unwrap());
    assert!(!c.wait_for(|| false, Some(Duration::ZERO)).unwrap());
    assert!(c.wait_for(|| true, Some(Duration::ZERO)).unwrap());
    drop(g);

    // A wait whose deadline passes while another process holds the lock returns (false) only
    // once it has the lock back.
    let holder = spawn(
        "cond_holder",
        &shm.path(),
        &[("after_wait", &1), ("hold_ms", &400)],
    );
    let held = region.raw_value::<u32>("held", 0).unwrap();
    let released = region.raw_value::<u32>("released", 0).unwrap();
    let _g = c.lock().unwrap();
    region.raw_value::<u32>("waiting", 0).unwrap().store(1);
    let timeout = Duration::from_millis(200);
    // Normally the holder takes the lock during the first wait; a slow one is already blocked
    // on the lock by the second.
    for attempt in 1.. {
        let start = Instant::now();
        let notified = c.wait(Some(timeout)).unwrap();
        let waited = start.elapsed();
        assert!(!notified);
        assert!(waited >= timeout);
        assert!(c.is_owned_by_current_thread() && c.count() == 1);
        // We hold the lock: the holder either never had it, or had it and let it go.
        assert_eq!(
            held.load(),
            released.load(),
            "wait returned while the other process held the lock ({waited:?})"
        );
        if held.load() == 1 {
            eprintln!("the timed-out wait returned after the holder's release, in {waited:?}");
            break;
        }
        assert!(attempt < 20, "the holder never took the lock during a wait");
    }
    drop(_g);
    holder.wait_ok();
}

#[test]
fn a_wait_whose_lock_holder_is_killed_takes_the_lock_over_and_says_so() {
    let shm = ShmName::new("cond-owner-died");
    let region = new_region(&shm);
    let c = region.condition("c").unwrap();
    let held = region.raw_value::<u32>("held", 0).unwrap();
    // Holds the lock from inside our wait until it is killed.
    let holder = spawn(
        "cond_holder",
        &shm.path(),
        &[("after_wait", &1), ("hold_ms", &0)],
    );
    std::thread::scope(|s| {
        let waiter = s.spawn(|| {
            let outer = c.lock().unwrap();
            assert!(c.acquire(true, None));
            region.raw_value::<u32>("waiting", 0).unwrap().store(1);
            // Normally the first wait is the one during which the holder takes the lock and
            // dies; a slow holder is blocked on the lock by the next.
            for _ in 0..20 {
                match c.wait(Some(Duration::from_millis(300))) {
                    Ok(_) => continue,
                    Err(Error::OwnerDied) => {
                        assert!(c.is_owned_by_current_thread());
                        assert_eq!(c.count(), 2, "the taken-over lock has our old count");
                        assert!(c.is_poisoned());
                        c.mark_consistent().unwrap();
                        assert!(!c.is_poisoned());
                        c.release().unwrap();
                        drop(outer);
                        return true;
                    }
                    Err(e) => panic!("wait: {e}"),
                }
            }
            false
        });
        wait_for_count(&held, 1, "the other process to take the lock");
        holder.kill();
        assert!(
            waiter.join().unwrap(),
            "the wait never reported the holder's death"
        );
    });
    assert!(!c.is_locked() && !c.is_poisoned());
    let _g = c.try_lock().expect("a repaired lock works normally");
}

/// `waiters` processes wait with a bare `wait`; one `notify(n)` must let exactly `n` of them
/// return (Python: at most `n`, and a bare `wait` that returns `True` was notified), and the
/// others must still be waiting well after (many sleep slices later); a `notify_all` then
/// releases the rest.
fn notify_n_wakes_n_of(waiters: u32, n: u32) {
    let shm = ShmName::new("cond-notify-n");
    let region = new_region(&shm);
    let c = region.condition("c").unwrap();
    let waiting = region.raw_value::<u32>("waiting", 0).unwrap();
    let returned = region.raw_value::<u32>("returned", 0).unwrap();
    let children: Vec<_> = (0..waiters)
        .map(|_| spawn("cond_bare_waiter", &shm.path(), &[]))
        .collect();
    wait_for_count(&waiting, waiters, "every waiter to start");
    {
        // Each counted itself with the lock held, so once we hold it all are in their wait.
        let _g = c
            .try_lock_for(LIMIT)
            .expect("the waiters released the lock");
        c.notify(n).unwrap();
    }
    wait_for_count(&returned, n, "the notified waiters to return");
    // Fifteen sleep slices: a waiter that takes a slice end for a notify has returned by now.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        returned.load(),
        n,
        "notify({n}) with {waiters} waiters let {} return",
        returned.load()
    );
    {
        let _g = c.try_lock_for(LIMIT).expect("the lock is free");
        c.notify_all().unwrap();
    }
    wait_all(children);
    assert_eq!(returned.load(), waiters);
}

#[test]
fn notify_1_with_2_waiting_processes_wakes_exactly_one() {
    notify_n_wakes_n_of(2, 1);
}

#[test]
fn notify_3_with_5_waiting_processes_wakes_exactly_three() {
    notify_n_wakes_n_of(5, 3);
}

#[test]
fn a_condition_over_a_plain_lock_passes_items_between_processes() {
    const ITEMS: u32 = 200;
    let shm = ShmName::new("cond-on-lock");
    let region = new_region(&shm);
    let ready = region.condition_on_lock("ready", "q").unwrap();
    let queued = counter(&region, "queued").unwrap();
    let taken = counter(&region, "taken").unwrap();
    let consumers: Vec<Child> = (0..2)
        .map(|_| {
            spawn(
                "cond_on_lock_consumer",
                &shm.path(),
                &[("items", &(ITEMS / 2))],
            )
        })
        .collect();
    for i in 0..ITEMS {
        let _g = ready.lock().unwrap();
        queued.fetch_add(1);
        if i % 2 == 0 {
            ready.notify(1).unwrap();
        } else {
            ready.notify_all().unwrap();
        }
    }
    wait_all(consumers);
    assert_eq!(taken.load(), ITEMS);
    assert_eq!(queued.load(), 0);
    // The lock is an ordinary Lock, free again.
    assert!(!region.lock("q").unwrap().is_locked());
}

#[test]
fn a_condition_over_a_plain_lock_refuses_a_lock_it_does_not_hold_and_other_kinds() {
    let shm = ShmName::new("cond-on-lock-refuse");
    let region = new_region(&shm);
    let ready = region.condition_on_lock("ready", "q").unwrap();
    assert!(matches!(
        ready.wait(Some(Duration::from_millis(1))),
        Err(Error::NotLocked)
    ));
    assert!(matches!(ready.notify(1), Err(Error::NotLocked)));
    assert!(matches!(
        ready.wait_for(|| true, None),
        Err(Error::NotLocked)
    ));
    {
        let _g = ready.lock().unwrap();
        let start = Instant::now();
        assert!(!ready.wait(Some(Duration::from_millis(30))).unwrap());
        assert!(start.elapsed() >= Duration::from_millis(30));
        // Taken back before it returned.
        assert!(ready.as_lock().is_locked());
        ready.notify_all().unwrap();
    }
    assert!(!ready.as_lock().is_locked());
    // The same name as a condition on an RLock, or a lock of another kind: mismatches.
    assert!(matches!(
        region.condition_on("ready", "q"),
        Err(Error::Mismatch { .. })
    ));
    let _ = region.condition_on("on_rlock", "r").unwrap();
    assert!(matches!(
        region.condition_on_lock("on_rlock", "r"),
        Err(Error::Mismatch { .. })
    ));
    assert!(matches!(
        region.condition_on_lock("other", "r"),
        Err(Error::Mismatch { .. })
    ));
    assert!(matches!(
        region.condition_on_lock("ready", "q2"),
        Err(Error::Mismatch { .. })
    ));
}
