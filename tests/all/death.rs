//! A process that dies holding a lock: the next acquirer takes the lock over and is told
//! (`OwnerDied`), the lock stays poisoned until `mark_consistent`, and becomes unrecoverable if
//! the taker releases it without that. Real processes die here: they exit, or are killed with
//! SIGKILL, while holding.

use crate::common::{LIMIT, SIZE, TestDir, arg, child_path, current_tid, spawn, wait_until};
use shmsync::{Error, LockError, Owner, Region, Result, TryLockError};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Helper role `die_holding`: takes the object `what` and reports it in `held`; then exits
/// without releasing (`hang` = 0) or waits to be killed (`hang` = 1).
pub fn child_die_holding() -> Result<()> {
    let region = Region::open(child_path())?;
    let what: String = arg("what");
    let hang: u32 = arg("hang");
    let held = region.raw_value::<u32>("held", 0)?;
    match what.as_str() {
        "lock" => assert!(region.lock("l")?.acquire(true, Some(LIMIT))),
        "value" => {
            let v = region.value::<u64>("v", 0)?;
            let mut g = v.lock()?;
            // Half an update: the taker must be told.
            *g = 7;
            std::mem::forget(g);
        }
        "array" => {
            let a = region.array::<u32>("a", &[0; 4])?;
            let mut g = a.lock()?;
            g[0] = 1;
            std::mem::forget(g);
        }
        "rlock" => {
            let r = region.rlock("r")?;
            assert!(r.acquire(true, Some(LIMIT)));
            assert!(r.acquire(true, Some(LIMIT)));
            assert_eq!(r.count(), 2);
        }
        other => panic!("unknown object {other}"),
    }
    held.store(1);
    if hang == 1 {
        // Until killed (bounded, should the parent fail to).
        std::thread::sleep(LIMIT);
    }
    Ok(())
}

/// A region whose `what` is held by a helper that then exited without releasing it.
fn held_by_a_dead_process(dir: &TestDir, what: &str) -> (Region, u32) {
    let path = dir.join("r");
    let region = Region::create(&path, SIZE).unwrap();
    let child = spawn("die_holding", &path, &[("what", &what), ("hang", &0)]);
    let pid = child.pid();
    child.wait_ok();
    assert_eq!(
        region.raw_value::<u32>("held", 0).unwrap().load(),
        1,
        "the helper did not take {what}"
    );
    (region, pid)
}

#[test]
fn a_lock_whose_holder_exited_is_taken_over_poisoned_and_repaired() {
    let dir = TestDir::new("death-lock");
    let (region, pid) = held_by_a_dead_process(&dir, "lock");
    let lock = region.lock("l").unwrap();
    assert!(lock.is_locked(), "the dead holder's lock is not held");
    assert_eq!(lock.holder(), Some(pid));
    assert!(!lock.is_poisoned());
    let guard = match lock.lock() {
        Err(LockError::OwnerDied(died)) => died.into_guard(),
        Ok(_) => panic!("took a dead holder's lock without being told"),
        Err(e) => panic!("expected OwnerDied, got {e:?}"),
    };
    assert!(lock.is_locked());
    assert!(lock.is_poisoned());
    assert_eq!(lock.holder(), Some(std::process::id()));
    guard.mark_consistent();
    assert!(!lock.is_poisoned());
    drop(guard);
    assert!(!lock.is_locked() && !lock.is_unrecoverable());
    // An ordinary lock again.
    let g = lock.lock().expect("a repaired lock is ordinary");
    drop(g);
    assert!(lock.acquire(false, None));
    lock.release().unwrap();
}

#[test]
fn python_style_acquire_takes_over_and_reports_poison_through_queries() {
    let dir = TestDir::new("death-acquire");
    let (region, _) = held_by_a_dead_process(&dir, "lock");
    let lock = region.lock("l").unwrap();
    assert!(
        lock.acquire(true, Some(LIMIT)),
        "a dead holder's lock was not taken over"
    );
    assert!(lock.is_poisoned());
    lock.mark_consistent().unwrap();
    assert!(!lock.is_poisoned());
    lock.release().unwrap();
    assert!(matches!(lock.mark_consistent(), Err(Error::NotLocked)));
    assert!(!lock.is_locked());
}

#[test]
fn releasing_a_taken_over_lock_without_repair_makes_it_unrecoverable() {
    let dir = TestDir::new("death-unrecoverable");
    let (region, _) = held_by_a_dead_process(&dir, "value");
    let v = region.value::<u64>("v", 0).unwrap();
    match v.lock() {
        Err(LockError::OwnerDied(died)) => {
            let g = died.into_guard();
            assert_eq!(*g, 7, "the dead holder's half-update is visible");
            // Dropped without mark_consistent.
        }
        Ok(_) => panic!("not told that the holder died"),
        Err(e) => panic!("expected OwnerDied, got {e:?}"),
    }
    assert!(v.is_unrecoverable());
    assert!(!v.is_locked());
    assert!(matches!(v.lock(), Err(LockError::NotRecoverable)));
    assert!(matches!(v.try_lock(), Err(TryLockError::NotRecoverable)));
    assert!(matches!(
        v.try_lock_for(Duration::from_millis(10)),
        Err(TryLockError::NotRecoverable)
    ));
    assert!(matches!(v.load(), Err(Error::NotRecoverable)));
    assert!(matches!(v.store(1), Err(Error::NotRecoverable)));
    assert!(matches!(v.fetch_add(1), Err(Error::NotRecoverable)));
    // Another process sees the same.
    let other = Region::open(dir.join("r")).unwrap();
    assert!(other.value::<u64>("v", 0).unwrap().is_unrecoverable());
}

#[test]
fn a_store_repairs_a_value_whose_holder_died() {
    let dir = TestDir::new("death-store");
    let (region, _) = held_by_a_dead_process(&dir, "value");
    let v = region.value::<u64>("v", 0).unwrap();
    v.store(5).unwrap();
    assert!(!v.is_locked() && !v.is_poisoned() && !v.is_unrecoverable());
    assert_eq!(v.load().unwrap(), 5);
}

#[test]
fn load_of_a_value_whose_holder_died_reports_it() {
    let dir = TestDir::new("death-load");
    let (region, _) = held_by_a_dead_process(&dir, "array");
    let a = region.array::<u32>("a", &[0; 4]).unwrap();
    assert!(matches!(a.to_vec(), Err(Error::OwnerDied)));
    // `to_vec` could not repair the array, so the lock was left unrecoverable.
    assert!(a.is_unrecoverable());
    assert!(matches!(a.get(0), Err(Error::NotRecoverable)));
}

#[test]
fn an_rlock_whose_owner_exited_is_taken_over_with_a_fresh_count() {
    let dir = TestDir::new("death-rlock");
    let (region, pid) = held_by_a_dead_process(&dir, "rlock");
    let r = region.rlock("r").unwrap();
    assert!(r.is_locked());
    assert_eq!(r.owner().map(|o| o.pid), Some(pid));
    assert_eq!(r.count(), 2);
    assert!(!r.is_owned_by_current_thread());
    let guard = match r.lock() {
        Err(LockError::OwnerDied(died)) => died.into_guard(),
        Ok(_) => panic!("took a dead owner's RLock without being told"),
        Err(e) => panic!("expected OwnerDied, got {e:?}"),
    };
    assert_eq!(r.count(), 1, "the dead owner's count was kept");
    assert_eq!(
        r.owner(),
        Some(Owner {
            pid: std::process::id(),
            tid: current_tid()
        })
    );
    assert!(r.is_owned_by_current_thread());
    let inner = r.lock().expect("re-entry after a take-over");
    assert_eq!(r.count(), 2);
    drop(inner);
    guard.mark_consistent();
    drop(guard);
    assert!(!r.is_locked());
    assert_eq!(r.owner(), None);
    drop(r.lock().expect("a repaired RLock is ordinary"));
}

/// The holder is killed while another process's thread sleeps in `lock()`: the sleeper notices
/// (waiters check their holder every `DEATH_CHECK_INTERVAL`) and takes the lock over.
#[test]
fn a_waiter_is_freed_when_the_holder_is_killed() {
    let dir = TestDir::new("death-killed");
    let path = dir.join("r");
    let region = Region::create(&path, SIZE).unwrap();
    let lock = region.lock("l").unwrap();
    let held = region.raw_value::<u32>("held", 0).unwrap();
    let child = spawn("die_holding", &path, &[("what", &"lock"), ("hang", &1)]);
    wait_until("the helper to take the lock", || held.load() == 1);
    assert_eq!(lock.holder(), Some(child.pid()));
    // Still alive: a timed acquire times out, and is not fooled into a take-over.
    let timeout = shmsync::DEATH_CHECK_INTERVAL * 5;
    let start = Instant::now();
    assert!(!lock.acquire(true, Some(timeout)));
    assert!(start.elapsed() >= timeout);
    assert!(!lock.is_poisoned());

    let (tx, rx) = mpsc::channel();
    let waiter_lock = lock.clone();
    std::thread::spawn(move || {
        let outcome = match waiter_lock.lock() {
            Ok(_) => "acquired",
            Err(LockError::OwnerDied(died)) => {
                let g = died.into_guard();
                g.mark_consistent();
                "owner died"
            }
            Err(LockError::NotRecoverable) => "not recoverable",
        };
        let _ = tx.send(outcome);
    });
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        rx.try_recv().is_err(),
        "the waiter got a lock whose holder lives"
    );
    child.kill();
    let outcome = rx
        .recv_timeout(LIMIT)
        .expect("the waiter was never freed after its holder was killed");
    assert_eq!(outcome, "owner died");
    assert!(!lock.is_locked() && !lock.is_poisoned());
}
