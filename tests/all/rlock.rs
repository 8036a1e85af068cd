//! `RLock`: re-entry, ownership errors, and owner/is_locked as seen from other processes.

use crate::common::{
    Barrier, LIMIT, SIZE, TestDir, arg, child_path, current_tid, spawn, wait_all, wait_until,
};
use shmsync::{Error, Owner, Region, Result, TryLockError};
use std::time::{Duration, Instant};

fn me() -> Owner {
    Owner {
        pid: std::process::id(),
        tid: current_tid(),
    }
}

#[test]
fn reentry_counts_and_the_last_release_frees() {
    let region = Region::anonymous(SIZE).unwrap();
    let rl = region.rlock("r").unwrap();
    assert!(!rl.is_locked());
    assert_eq!(rl.owner(), None);
    assert_eq!(rl.count(), 0);
    assert!(!rl.is_owned_by_current_thread());

    assert!(rl.acquire(true, None));
    assert!(
        rl.acquire(false, None),
        "the owner re-enters without blocking"
    );
    assert!(rl.acquire(true, Some(Duration::ZERO)));
    assert_eq!(rl.count(), 3);
    assert!(rl.is_locked());
    assert!(rl.is_owned_by_current_thread());
    assert_eq!(rl.owner(), Some(me()));
    {
        let g1 = rl.lock().unwrap();
        let g2 = rl.try_lock().unwrap();
        let g3 = rl.try_lock_for(Duration::from_millis(1)).unwrap();
        assert_eq!(rl.count(), 6);
        drop(g3);
        drop(g1);
        assert_eq!(rl.count(), 4);
        drop(g2);
    }
    assert_eq!(rl.count(), 3);
    rl.release().unwrap();
    rl.release().unwrap();
    assert_eq!(rl.count(), 1);
    assert!(rl.is_locked());
    assert_eq!(rl.owner(), Some(me()));
    rl.release().unwrap();
    assert!(!rl.is_locked());
    assert_eq!(rl.owner(), None);
    assert_eq!(rl.count(), 0);
    assert!(matches!(rl.release(), Err(Error::NotLocked)));
}

#[test]
fn release_of_an_unowned_rlock_is_not_locked() {
    let region = Region::anonymous(SIZE).unwrap();
    let rl = region.rlock("r").unwrap();
    assert!(matches!(rl.release(), Err(Error::NotLocked)));
    std::thread::scope(|s| {
        s.spawn(|| assert!(matches!(rl.release(), Err(Error::NotLocked))));
    });
    // Still usable.
    assert!(rl.acquire(false, None));
    rl.release().unwrap();
}

#[test]
fn another_thread_can_neither_release_nor_enter_an_owned_rlock() {
    let region = Region::anonymous(SIZE).unwrap();
    let rl = region.rlock("r").unwrap();
    let outer = rl.lock().unwrap();
    let inner = rl.lock().unwrap();
    let owner = me();
    std::thread::scope(|s| {
        s.spawn(|| {
            assert!(rl.is_locked());
            assert!(!rl.is_owned_by_current_thread());
            assert_eq!(rl.owner(), Some(owner));
            assert_ne!(current_tid(), owner.tid);
            assert!(matches!(rl.release(), Err(Error::NotOwner)));
            assert!(!rl.acquire(false, None));
            assert!(matches!(rl.try_lock(), Err(TryLockError::WouldBlock)));
            let timeout = Duration::from_millis(50);
            let start = Instant::now();
            assert!(!rl.acquire(true, Some(timeout)));
            assert!(start.elapsed() >= timeout);
            let start = Instant::now();
            assert!(rl.try_lock_for(timeout).is_err());
            assert!(start.elapsed() >= timeout);
        });
    });
    // The refused release changed nothing.
    assert_eq!(rl.count(), 2);
    assert_eq!(rl.owner(), Some(owner));
    drop(outer);
    assert_eq!(rl.count(), 1);

    // A thread blocked on it is woken only by the owner's last release, then owns it.
    std::thread::scope(|s| {
        let waiter = s.spawn(|| {
            let g = rl.try_lock_for(LIMIT).expect("woken by the last release");
            let mine = me();
            assert_eq!(rl.owner(), Some(mine));
            assert_eq!(rl.count(), 1);
            drop(g);
        });
        std::thread::sleep(Duration::from_millis(50));
        assert!(rl.is_owned_by_current_thread());
        drop(inner);
        waiter.join().unwrap();
    });
    assert!(!rl.is_locked());
}

#[test]
fn the_former_owner_gets_not_owner_while_another_thread_owns_it() {
    let region = Region::anonymous(SIZE).unwrap();
    let rl = &region.rlock("r").unwrap();
    std::thread::scope(|s| {
        // Declared inside the scope: if an assertion below fails, `done_tx` is dropped while
        // unwinding, which ends the owner thread instead of leaving the scope waiting for it.
        let (taken_tx, taken_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        s.spawn(move || {
            let _g = rl.lock().unwrap();
            taken_tx.send(current_tid()).unwrap();
            let _ = done_rx.recv();
        });
        let tid = taken_rx.recv().unwrap();
        assert_eq!(
            rl.owner(),
            Some(Owner {
                pid: std::process::id(),
                tid
            })
        );
        assert!(matches!(rl.release(), Err(Error::NotOwner)));
        assert_eq!(rl.count(), 1);
        assert!(rl.is_locked());
        done_tx.send(()).unwrap();
    });
    assert!(!rl.is_locked());
}

/// Phases, driven through raw flags:
/// 1. the parent owns the RLock twice; the helper checks what it sees and that it can neither
///    enter nor release it;
/// 2. the parent released it; the helper sees it free, then takes it twice and reports its tid;
///    the parent checks owner(), count() and that it cannot release it.
#[test]
fn owner_and_state_are_right_from_another_process() {
    let dir = TestDir::new("rlock-owner");
    let path = dir.join("region");
    let region = Region::create(&path, SIZE).unwrap();
    let rl = region.rlock("r").unwrap();
    let phase = region.raw_value::<u32>("phase", 0).unwrap();
    let child_tid = region.raw_value::<u32>("child_tid", 0).unwrap();
    let parent = me();
    assert!(rl.acquire(true, None));
    assert!(rl.acquire(true, None));
    let child = spawn(
        "rlock_observer",
        &path,
        &[("pid", &parent.pid), ("tid", &parent.tid)],
    );
    wait_until("the helper's checks of the parent's ownership", || {
        phase.load() == 1
    });
    assert_eq!(
        rl.count(),
        2,
        "the helper's refused release changed the count"
    );
    assert_eq!(rl.owner(), Some(parent));
    rl.release().unwrap();
    rl.release().unwrap();
    assert!(!rl.is_locked());
    phase.store(2);
    wait_until("the helper to take the lock", || phase.load() == 3);
    let child_owner = Owner {
        pid: child.pid(),
        tid: child_tid.load(),
    };
    assert_ne!(child_owner.tid, 0);
    assert!(rl.is_locked());
    assert_eq!(rl.owner(), Some(child_owner));
    assert_eq!(rl.count(), 2);
    assert!(!rl.is_owned_by_current_thread());
    assert!(matches!(rl.release(), Err(Error::NotOwner)));
    assert!(matches!(rl.try_lock(), Err(TryLockError::WouldBlock)));
    assert!(!rl.acquire(true, Some(Duration::from_millis(20))));
    assert_eq!(rl.count(), 2);
    phase.store(4);
    // The helper releases both levels; a waiter here must then get it.
    let g = rl
        .try_lock_for(LIMIT)
        .expect("not woken by the helper's last release");
    assert_eq!(rl.owner(), Some(parent));
    drop(g);
    child.wait_ok();
    assert!(!rl.is_locked());
    assert_eq!(rl.owner(), None);
}

/// Helper role `rlock_observer`.
pub fn child_rlock_observer() -> Result<()> {
    let region = Region::open(child_path())?;
    let rl = region.rlock("r")?;
    let phase = region.raw_value::<u32>("phase", 0)?;
    let child_tid = region.raw_value::<u32>("child_tid", 0)?;
    let parent = Owner {
        pid: arg("pid"),
        tid: arg("tid"),
    };
    assert!(rl.is_locked());
    assert_eq!(rl.owner(), Some(parent));
    assert_eq!(rl.count(), 2);
    assert!(!rl.is_owned_by_current_thread());
    assert!(matches!(rl.try_lock(), Err(TryLockError::WouldBlock)));
    assert!(!rl.acquire(false, None));
    let timeout = Duration::from_millis(50);
    let start = Instant::now();
    assert!(!rl.acquire(true, Some(timeout)));
    assert!(start.elapsed() >= timeout);
    assert!(matches!(rl.release(), Err(Error::NotOwner)));
    phase.store(1);

    wait_until("the parent to release", || phase.load() == 2);
    assert!(!rl.is_locked());
    assert_eq!(rl.owner(), None);
    assert_eq!(rl.count(), 0);
    assert!(matches!(rl.release(), Err(Error::NotLocked)));
    let g1 = rl.lock()?;
    let g2 = rl.lock()?;
    child_tid.store(current_tid());
    phase.store(3);
    wait_until("the parent's checks", || phase.load() == 4);
    // Make the parent sleep in its acquire before we release.
    std::thread::sleep(Duration::from_millis(50));
    drop(g2);
    assert!(rl.is_owned_by_current_thread(), "released after one level");
    drop(g1);
    Ok(())
}

const RLOCK_ROUNDS: u32 = 100;

/// A waiter in another process is not woken by an inner release, only by the last one.
#[test]
fn a_waiter_in_another_process_gets_the_rlock_only_after_the_last_release() {
    let dir = TestDir::new("rlock-handoff");
    let path = dir.join("region");
    let region = Region::create(&path, SIZE).unwrap();
    let rl = region.rlock("r").unwrap();
    let round = region.raw_value::<u32>("round", 0).unwrap();
    let ready = region.raw_value::<u32>("ready", 0).unwrap();
    let released = region.raw_value::<u32>("released", 0).unwrap();
    let acquired = region.raw_value::<u32>("acquired", 0).unwrap();
    let child = spawn("rlock_waiter", &path, &[("rounds", &RLOCK_ROUNDS)]);
    for r in 1..=RLOCK_ROUNDS {
        let outer = rl.try_lock_for(LIMIT).expect("the helper never released");
        let inner = rl.lock().unwrap();
        round.store(r);
        wait_until("the helper to be about to block", || ready.load() == r);
        if r <= 3 {
            std::thread::sleep(Duration::from_millis(100));
        }
        drop(inner);
        if r <= 3 {
            // Time for a wrongly woken helper to take it.
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_ne!(
            acquired.load(),
            r,
            "round {r}: got in after an inner release"
        );
        assert!(rl.is_owned_by_current_thread());
        released.store(r);
        drop(outer);
        let start = Instant::now();
        while acquired.load() != r {
            assert!(
                start.elapsed() < LIMIT,
                "round {r}: the helper was never woken by the last release"
            );
            std::thread::yield_now();
        }
    }
    child.wait_ok();
}

/// Helper role `rlock_waiter`.
pub fn child_rlock_waiter() -> Result<()> {
    let region = Region::open(child_path())?;
    let rl = region.rlock("r")?;
    let round = region.raw_value::<u32>("round", 0)?;
    let ready = region.raw_value::<u32>("ready", 0)?;
    let released = region.raw_value::<u32>("released", 0)?;
    let acquired = region.raw_value::<u32>("acquired", 0)?;
    let rounds: u32 = arg("rounds");
    for r in 1..=rounds {
        wait_until("the parent to hold the lock", || round.load() == r);
        ready.store(r);
        let g = rl.lock()?;
        assert_eq!(released.load(), r, "acquired before the last release");
        assert_eq!(rl.count(), 1);
        acquired.store(r);
        drop(g);
    }
    Ok(())
}

const RLOCK_PROCS: u32 = 3;
const RLOCK_ITERS: u64 = 5_000;

/// Processes entering an RLock twice (nested) around a non-atomic update end exact.
#[test]
fn nested_rlock_sections_are_exclusive_across_processes() {
    let dir = TestDir::new("rlock-counter");
    let path = dir.join("region");
    let region = Region::create(&path, SIZE).unwrap();
    let shared = region.raw_value::<u64>("shared", 0).unwrap();
    let _rl = region.rlock("r").unwrap();
    let barrier = Barrier::new(&region);
    let children = (0..RLOCK_PROCS)
        .map(|_| spawn("rlock_counter", &path, &[("iters", &RLOCK_ITERS)]))
        .collect();
    barrier.release(RLOCK_PROCS);
    wait_all(children);
    assert_eq!(shared.load(), u64::from(RLOCK_PROCS) * RLOCK_ITERS);
}

/// Helper role `rlock_counter`.
pub fn child_rlock_counter() -> Result<()> {
    let region = Region::open(child_path())?;
    let rl = region.rlock("r")?;
    let shared = region.raw_value::<u64>("shared", 0)?;
    let inside = region.raw_value::<u32>("inside", 0)?;
    let iters: u64 = arg("iters");
    Barrier::new(&region).arrive();
    for i in 0..iters {
        let outer = rl.lock()?;
        assert_eq!(inside.fetch_add(1), 0, "two owners at once");
        // SAFETY: the RLock serialises every access to `shared`.
        let v = unsafe { shared.read() };
        {
            let _inner = rl.lock()?;
            if i % 64 == 0 {
                std::thread::yield_now();
            }
            // SAFETY: as above.
            unsafe { shared.write(v + 1) };
        }
        inside.fetch_sub(1);
        drop(outer);
    }
    Ok(())
}

/// `owner()` must never report a half-written identity while the lock changes hands (it once
/// read the thread id and the pid from two words written one after the other, and could report
/// `pid: 0`).
#[test]
fn owner_never_reports_a_half_written_identity() {
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
    let region = Region::anonymous(SIZE).unwrap();
    let rl = region.rlock("r").unwrap();
    let stop = AtomicBool::new(false);
    let mut torn = None;
    let mut seen = 0u64;
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Relaxed) {
                drop(rl.lock().unwrap());
            }
        });
        // Watch the owner change hands for a while (or until a torn identity shows).
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(2) && torn.is_none() {
            if let Some(o) = rl.owner() {
                seen += 1;
                if o.pid != std::process::id() {
                    torn = Some(o);
                }
            }
        }
        stop.store(true, Relaxed);
    });
    assert!(seen > 0, "never saw the lock owned");
    assert_eq!(
        torn, None,
        "owner() reported a pid other than the only owner's"
    );
}
