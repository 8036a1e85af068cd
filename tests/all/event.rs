//! `Event` across processes: a set wakes waiters in several processes, clear, timeouts, and a
//! pulse (set then clear at once) that still wakes waiters already asleep.

use crate::common::{
    Child, LIMIT, SIZE, ShmName, arg, child_path, spawn, wait_all, wait_for_count, wait_until,
};
use shmsync::{RawValue, Region, Result};
use std::time::{Duration, Instant};

/// The helper roles of this module, for [`crate::child::child_entry`].
pub fn role(name: &str) -> Option<fn() -> Result<()>> {
    Some(match name {
        "ev_waiter" => child_waiter,
        "ev_check" => child_check,
        _ => return None,
    })
}

fn new_region(shm: &ShmName) -> Region {
    Region::create(shm.name(), SIZE).expect("create region")
}

fn counter(region: &Region, name: &str) -> Result<RawValue<u32>> {
    region.raw_value(name, 0)
}

/// Waits until every thread of process `pid` sleeps (state `S`). The helpers here announce
/// themselves and then go straight into `Event::wait`, which makes no other system call than
/// the futex wait: once they announced, a sleeping helper is asleep on the event.
fn wait_asleep(pid: u32) {
    let all_sleeping = || {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return false;
        };
        let mut any = false;
        for task in tasks.flatten() {
            let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
                return false;
            };
            // "tid (comm) S ...": the state follows the last ')'.
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next());
            if state != Some('S') {
                return false;
            }
            any = true;
        }
        any
    };
    wait_until(&format!("helper {pid} to fall asleep"), all_sleeping);
}

// -------------------------------------------------------------------------------------------
// Helpers

/// For each of `rounds` rounds: counts itself `ready`, waits for the event (up to
/// [`LIMIT`]), which must return true, and counts itself `woken`. With `stays_set` = 1 it also
/// checks that the flag is still set when it wakes (a plain set); otherwise (pulses) it waits
/// for the parent's `go` to reach the round before the next one, so that it cannot wake in the
/// moment between a set and its clear and count a pulse twice.
pub fn child_waiter() -> Result<()> {
    let region = Region::open(child_path())?;
    let ev = region.event("e")?;
    let ready = counter(&region, "ready")?;
    let woken = counter(&region, "woken")?;
    let rounds: u32 = arg("rounds");
    let stays_set = arg::<u32>("stays_set") == 1;
    for round in 1..=rounds {
        ready.fetch_add(1);
        assert!(
            ev.wait(Some(LIMIT)),
            "round {round}: not woken within {LIMIT:?}"
        );
        if stays_set {
            assert!(ev.is_set());
        }
        woken.fetch_add(1);
        if !stays_set {
            let go = counter(&region, "go")?;
            wait_until("the next round", || go.load() >= round);
        }
    }
    Ok(())
}

/// Checks the flag as the parent left it: `set` = 1 or 0.
pub fn child_check() -> Result<()> {
    let region = Region::open(child_path())?;
    let ev = region.event("e")?;
    if arg::<u32>("set") == 1 {
        assert!(ev.is_set());
        assert!(ev.wait(None));
        assert!(ev.wait(Some(Duration::ZERO)));
        assert!(ev.wait(Some(Duration::from_millis(1))));
    } else {
        assert!(!ev.is_set());
        assert!(!ev.wait(Some(Duration::ZERO)));
        let timeout = Duration::from_millis(100);
        let start = Instant::now();
        assert!(!ev.wait(Some(timeout)));
        let waited = start.elapsed();
        assert!(waited >= timeout, "gave up after {waited:?} < {timeout:?}");
    }
    Ok(())
}

// -------------------------------------------------------------------------------------------
// Tests

#[test]
fn a_set_in_one_process_wakes_waiters_in_three_others() {
    let shm = ShmName::new("ev-set");
    let region = new_region(&shm);
    let ev = region.event("e").unwrap();
    let woken = region.raw_value::<u32>("woken", 0).unwrap();
    let waiters: Vec<Child> = (0..3)
        .map(|_| {
            spawn(
                "ev_waiter",
                &shm.path(),
                &[("rounds", &1), ("stays_set", &1)],
            )
        })
        .collect();
    wait_for_count(
        &region.raw_value("ready", 0).unwrap(),
        3,
        "the waiters to start",
    );
    for w in &waiters {
        wait_asleep(w.pid());
    }
    assert_eq!(woken.load(), 0, "nobody returns before the set");
    assert!(!ev.is_set());
    ev.set();
    wait_all(waiters);
    assert_eq!(woken.load(), 3);
    assert!(ev.is_set());
    assert_eq!(format!("{ev:?}"), "Event { set: true }");
    // Set stays set: a later waiter in any process returns at once.
    assert!(ev.wait(None));
    spawn("ev_check", &shm.path(), &[("set", &1)]).wait_ok();
}

#[test]
fn clear_lowers_the_flag_for_every_process() {
    let shm = ShmName::new("ev-clear");
    let region = new_region(&shm);
    let ev = region.event("e").unwrap();
    ev.set();
    ev.set(); // idempotent
    assert!(ev.is_set());
    spawn("ev_check", &shm.path(), &[("set", &1)]).wait_ok();
    ev.clear();
    ev.clear(); // idempotent
    assert!(!ev.is_set());
    spawn("ev_check", &shm.path(), &[("set", &0)]).wait_ok();
    // Set again after a clear: seen again.
    ev.set();
    spawn("ev_check", &shm.path(), &[("set", &1)]).wait_ok();
    // A clear from another process is seen here (the helper's handle is another mapping).
    let other = Region::open(shm.path()).unwrap().event("e").unwrap();
    other.clear();
    assert!(!ev.is_set());
}

#[test]
fn wait_times_out_after_at_least_the_timeout() {
    let shm = ShmName::new("ev-timeout");
    let region = new_region(&shm);
    let ev = region.event("e").unwrap();
    let start = Instant::now();
    assert!(!ev.wait(Some(Duration::ZERO)));
    eprintln!("a zero-timeout wait took {:?}", start.elapsed());
    for timeout in [Duration::from_millis(30), Duration::from_millis(150)] {
        let start = Instant::now();
        assert!(!ev.wait(Some(timeout)));
        let waited = start.elapsed();
        assert!(waited >= timeout, "gave up after {waited:?} < {timeout:?}");
    }
    // In another process too, while this one waits as well.
    let checker = spawn("ev_check", &shm.path(), &[("set", &0)]);
    assert!(!ev.wait(Some(Duration::from_millis(50))));
    checker.wait_ok();
    assert!(!ev.is_set());
}

#[test]
fn a_pulse_still_wakes_every_waiter_already_asleep() {
    const ROUNDS: u32 = 10;
    const WAITERS: u32 = 2;
    let shm = ShmName::new("ev-pulse");
    let region = new_region(&shm);
    let ev = region.event("e").unwrap();
    let ready = region.raw_value::<u32>("ready", 0).unwrap();
    let woken = region.raw_value::<u32>("woken", 0).unwrap();
    let go = region.raw_value::<u32>("go", 0).unwrap();
    let waiters: Vec<Child> = (0..WAITERS)
        .map(|_| {
            spawn(
                "ev_waiter",
                &shm.path(),
                &[("rounds", &ROUNDS), ("stays_set", &0)],
            )
        })
        .collect();
    for round in 1..=ROUNDS {
        wait_for_count(&ready, WAITERS * round, "the waiters to come back");
        for w in &waiters {
            wait_asleep(w.pid());
        }
        assert_eq!(woken.load(), WAITERS * (round - 1));
        // The pulse: nobody can see the flag set, yet everyone asleep was waiting when it was.
        ev.set();
        ev.clear();
        assert!(!ev.is_set());
        wait_for_count(&woken, WAITERS * round, "the pulse to wake every waiter");
        go.store(round);
    }
    wait_all(waiters);
    assert!(!ev.is_set());
    // After all those pulses, a wait with the flag clear still waits.
    assert!(!ev.wait(Some(Duration::from_millis(20))));
}
