//! `Lock`: Python semantics, timeouts, and waking waiters in other processes.

use crate::common::{
    Barrier, LIMIT, SIZE, TestDir, arg, child_path, spawn, wait_all, wait_for_count, wait_until,
};
use shmsync::{Error, Region, Result, TryLockError};
use std::time::{Duration, Instant};

#[test]
fn release_of_an_unlocked_lock_is_not_locked() {
    let region = Region::anonymous(SIZE).unwrap();
    let lock = region.lock("l").unwrap();
    assert!(matches!(lock.release(), Err(Error::NotLocked)));
    assert!(lock.acquire(true, None));
    lock.release().unwrap();
    assert!(matches!(lock.release(), Err(Error::NotLocked)));
    // A failed release did not lock it either.
    assert!(!lock.is_locked());
    assert!(lock.acquire(false, None));
    lock.release().unwrap();
}

#[test]
fn acquire_and_try_follow_python_semantics() {
    let region = Region::anonymous(SIZE).unwrap();
    let lock = region.lock("l").unwrap();
    assert!(!lock.is_locked());
    assert!(lock.acquire(true, None));
    assert!(lock.is_locked());
    // Not re-entrant: every kind of try fails while held, even by the caller.
    assert!(!lock.acquire(false, None));
    assert!(!lock.acquire(false, Some(Duration::from_secs(3600))));
    assert!(!lock.acquire(true, Some(Duration::ZERO)));
    assert!(matches!(lock.try_lock(), Err(TryLockError::WouldBlock)));
    assert!(matches!(
        lock.try_lock_for(Duration::ZERO),
        Err(TryLockError::WouldBlock)
    ));
    // Another handle to the same name is the same lock.
    let other = region.lock("l").unwrap();
    assert!(other.is_locked());
    assert!(!other.acquire(false, None));
    // Any thread may release it.
    std::thread::scope(|s| {
        s.spawn(|| other.release().unwrap());
    });
    assert!(!lock.is_locked());
    // The guard releases on drop.
    {
        let _g = lock.lock().unwrap();
        assert!(other.is_locked());
        assert!(matches!(other.try_lock(), Err(TryLockError::WouldBlock)));
    }
    assert!(!lock.is_locked());
    let g = lock.try_lock().expect("free");
    drop(g);
    let g = lock.try_lock_for(Duration::from_secs(1)).expect("free");
    drop(g);
    assert!(
        lock.acquire(true, Some(Duration::ZERO)),
        "free: one try wins"
    );
    lock.release().unwrap();
    assert!(format!("{lock:?}").contains("false"));
}

#[test]
fn timed_acquire_in_the_same_process_waits_at_least_its_timeout() {
    let region = Region::anonymous(SIZE).unwrap();
    let lock = region.lock("l").unwrap();
    assert!(lock.acquire(true, None));
    for ms in [1u64, 30, 120] {
        let timeout = Duration::from_millis(ms);
        let start = Instant::now();
        assert!(!lock.acquire(true, Some(timeout)));
        let elapsed = start.elapsed();
        assert!(elapsed >= timeout, "{timeout:?} gave up after {elapsed:?}");
        let start = Instant::now();
        assert!(lock.try_lock_for(timeout).is_err());
        let elapsed = start.elapsed();
        assert!(elapsed >= timeout, "{timeout:?} gave up after {elapsed:?}");
    }
    // A timed acquire that gave up left the lock usable: a later waiter is still woken.
    std::thread::scope(|s| {
        let waiter = s.spawn(|| lock.acquire(true, Some(LIMIT)));
        std::thread::sleep(Duration::from_millis(50));
        lock.release().unwrap();
        assert!(waiter.join().unwrap(), "waiter not woken by the release");
    });
    lock.release().unwrap();
}

#[test]
fn timed_acquire_of_a_lock_held_by_another_process_times_out_no_earlier_than_its_deadline() {
    let dir = TestDir::new("lock-timed");
    let path = dir.join("region");
    let region = Region::create(&path, SIZE).unwrap();
    let lock = region.lock("l").unwrap();
    let held = region.raw_value::<u32>("held", 0).unwrap();
    let done = region.raw_value::<u32>("done", 0).unwrap();
    let child = spawn("lock_holder", &path, &[]);
    wait_until("the helper to take the lock", || held.load() == 1);
    assert!(lock.is_locked());
    assert_eq!(lock.holder(), Some(child.pid()));

    let timeout = Duration::from_millis(300);
    let start = Instant::now();
    assert!(
        !lock.acquire(true, Some(timeout)),
        "took a lock held elsewhere"
    );
    let elapsed = start.elapsed();
    assert!(
        elapsed >= timeout,
        "gave up after {elapsed:?} < {timeout:?}"
    );

    let timeout = Duration::from_millis(200);
    let start = Instant::now();
    assert!(matches!(
        lock.try_lock_for(timeout),
        Err(TryLockError::WouldBlock)
    ));
    let elapsed = start.elapsed();
    assert!(
        elapsed >= timeout,
        "gave up after {elapsed:?} < {timeout:?}"
    );

    // Zero timeouts and block=false try once and fail.
    assert!(!lock.acquire(false, None));
    assert!(!lock.acquire(true, Some(Duration::ZERO)));
    assert!(matches!(lock.try_lock(), Err(TryLockError::WouldBlock)));
    assert!(matches!(
        lock.try_lock_for(Duration::ZERO),
        Err(TryLockError::WouldBlock)
    ));
    assert!(lock.is_locked(), "a failed try changed the lock");
    assert_eq!(held.load(), 1);

    // Now let the helper release while we wait with a (generous) deadline: we must get it.
    done.store(1);
    assert!(
        lock.acquire(true, Some(LIMIT)),
        "not woken by the other process's release"
    );
    assert_eq!(held.load(), 2, "acquired before the helper released");
    assert_eq!(lock.holder(), Some(std::process::id()));
    assert!(
        !lock.is_poisoned(),
        "a live holder's release is not a death"
    );
    lock.release().unwrap();
    assert_eq!(lock.holder(), None);
    child.wait_ok();
}

/// Helper role `lock_holder`: holds `l` until told to release it.
pub fn child_lock_holder() -> Result<()> {
    let region = Region::open(child_path())?;
    let lock = region.lock("l")?;
    let held = region.raw_value::<u32>("held", 0)?;
    let done = region.raw_value::<u32>("done", 0)?;
    assert!(lock.acquire(true, Some(LIMIT)));
    held.store(1);
    wait_until("the parent's go-ahead", || done.load() == 1);
    // Let the parent fall asleep in its acquire first.
    std::thread::sleep(Duration::from_millis(50));
    held.store(2);
    lock.release()
}

#[test]
fn another_process_may_release_the_lock() {
    let dir = TestDir::new("lock-foreign-release");
    let path = dir.join("region");
    let region = Region::create(&path, SIZE).unwrap();
    let lock = region.lock("l").unwrap();
    assert!(lock.acquire(true, None));
    spawn("lock_releaser", &path, &[]).wait_ok();
    assert!(!lock.is_locked());
    assert!(matches!(lock.release(), Err(Error::NotLocked)));
}

/// Helper role `lock_releaser`.
pub fn child_lock_releaser() -> Result<()> {
    let region = Region::open(child_path())?;
    let lock = region.lock("l")?;
    assert!(lock.is_locked(), "the parent's lock is not seen held");
    assert!(!lock.acquire(false, None));
    lock.release()?;
    assert!(matches!(lock.release(), Err(Error::NotLocked)));
    Ok(())
}

const HANDOFF_ROUNDS: u32 = 300;

/// The parent holds `l`; in each round the helper announces it is about to block in `lock()`,
/// the parent waits a little (differently each round), records the round in `released` and
/// releases; the helper must get the lock, see `released == round` (it did not get in early),
/// and report it. A lost wake-up leaves the helper asleep and fails the round after `LIMIT`.
#[test]
fn a_waiter_in_another_process_is_woken_by_release() {
    let dir = TestDir::new("lock-handoff");
    let path = dir.join("region");
    let region = Region::create(&path, SIZE).unwrap();
    let lock = region.lock("l").unwrap();
    let round = region.raw_value::<u32>("round", 0).unwrap();
    let ready = region.raw_value::<u32>("ready", 0).unwrap();
    let released = region.raw_value::<u32>("released", 0).unwrap();
    let acquired = region.raw_value::<u32>("acquired", 0).unwrap();
    let child = spawn("lock_waiter", &path, &[("rounds", &HANDOFF_ROUNDS)]);

    for r in 1..=HANDOFF_ROUNDS {
        // The helper released it at the end of the previous round (or has not started).
        assert!(
            lock.acquire(true, Some(LIMIT)),
            "round {r}: lock never freed"
        );
        round.store(r);
        wait_until("the helper to be about to block", || ready.load() == r);
        match r {
            // First rounds: long enough that the helper is surely asleep in the kernel.
            1..=3 => std::thread::sleep(Duration::from_millis(200)),
            _ => match r % 4 {
                0 => {}
                1 => std::thread::yield_now(),
                2 => std::thread::sleep(Duration::from_micros(100)),
                _ => std::thread::sleep(Duration::from_millis(2)),
            },
        }
        assert_ne!(acquired.load(), r, "round {r}: helper got a held lock");
        released.store(r);
        lock.release().unwrap();
        let start = Instant::now();
        while acquired.load() != r {
            assert!(
                start.elapsed() < LIMIT,
                "round {r}: the helper blocked in lock() was never woken by the release"
            );
            std::thread::yield_now();
        }
    }
    child.wait_ok();
    assert!(!lock.is_locked());
}

/// Helper role `lock_waiter`.
pub fn child_lock_waiter() -> Result<()> {
    let region = Region::open(child_path())?;
    let lock = region.lock("l")?;
    let round = region.raw_value::<u32>("round", 0)?;
    let ready = region.raw_value::<u32>("ready", 0)?;
    let released = region.raw_value::<u32>("released", 0)?;
    let acquired = region.raw_value::<u32>("acquired", 0)?;
    let rounds: u32 = arg("rounds");
    for r in 1..=rounds {
        wait_until("the parent to hold the lock", || round.load() == r);
        ready.store(r);
        let guard = lock.lock()?;
        assert_eq!(
            released.load(),
            r,
            "acquired the lock before it was released"
        );
        acquired.store(r);
        drop(guard);
    }
    Ok(())
}

const PING_PONG_ROUNDS: u32 = 2_000;

/// Two locks used as binary semaphores (any process may release a `Lock`): the parent releases
/// `ping` and waits on `pong`; the helper waits on `ping`, counts, releases `pong`. Every round is
/// two cross-process wake-ups; a lost one stalls the game.
#[test]
fn ping_pong_between_processes_loses_no_wake_up() {
    let dir = TestDir::new("lock-ping-pong");
    let path = dir.join("region");
    let region = Region::create(&path, SIZE).unwrap();
    let ping = region.lock("ping").unwrap();
    let pong = region.lock("pong").unwrap();
    let count = region.raw_value::<u32>("count", 0).unwrap();
    assert!(ping.acquire(false, None));
    assert!(pong.acquire(false, None));
    let child = spawn("ping_pong", &path, &[("rounds", &PING_PONG_ROUNDS)]);
    for r in 0..PING_PONG_ROUNDS {
        assert_eq!(count.load(), r);
        ping.release().unwrap();
        assert!(
            pong.acquire(true, Some(LIMIT)),
            "round {r}: no answer within {LIMIT:?} (lost wake-up?)"
        );
        assert_eq!(count.load(), r + 1, "round {r}: pong without a ping");
    }
    child.wait_ok();
    // The helper ends holding ping (its last acquire); we hold pong.
    assert!(ping.is_locked() && pong.is_locked());
}

/// Helper role `ping_pong`.
pub fn child_ping_pong() -> Result<()> {
    let region = Region::open(child_path())?;
    let ping = region.lock("ping")?;
    let pong = region.lock("pong")?;
    let count = region.raw_value::<u32>("count", 0)?;
    let rounds: u32 = arg("rounds");
    for r in 0..rounds {
        // Blocks without a deadline: a lost wake-up hangs here and the parent reports it.
        assert!(ping.acquire(true, None));
        assert_eq!(count.fetch_add(1), r);
        pong.release()?;
    }
    Ok(())
}

const WAITERS: u32 = 4;

/// Several processes asleep on one lock: each release wakes one, and each of them, releasing in
/// turn, wakes the next, until all got it.
#[test]
fn every_waiter_of_a_contended_lock_gets_it() {
    let dir = TestDir::new("lock-many-waiters");
    let path = dir.join("region");
    let region = Region::create(&path, SIZE).unwrap();
    let lock = region.lock("l").unwrap();
    let ready = region.raw_value::<u32>("ready", 0).unwrap();
    let got = region.raw_value::<u32>("got", 0).unwrap();
    assert!(lock.acquire(true, None));
    let children = (0..WAITERS)
        .map(|_| spawn("lock_waiter_once", &path, &[]))
        .collect();
    wait_for_count(&ready, WAITERS, "every helper to be about to block");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(got.load(), 0, "a helper took a held lock");
    lock.release().unwrap();
    wait_all(children);
    assert_eq!(got.load(), WAITERS);
    assert!(!lock.is_locked());
}

/// Helper role `lock_waiter_once`.
pub fn child_lock_waiter_once() -> Result<()> {
    let region = Region::open(child_path())?;
    let lock = region.lock("l")?;
    let ready = region.raw_value::<u32>("ready", 0)?;
    let got = region.raw_value::<u32>("got", 0)?;
    ready.fetch_add(1);
    let guard = lock.lock()?;
    got.fetch_add(1);
    std::thread::sleep(Duration::from_millis(5));
    drop(guard);
    Ok(())
}

const COUNTER_PROCS: u32 = 4;
const COUNTER_ITERS: u64 = 20_000;

/// A plain `Lock` guarding a non-atomic read-modify-write of a `RawValue`, half through the guard
/// and half Python style; `inside` catches two holders at once directly.
fn lock_guarded_counter(procs: u32, threads: u32, iters: u64) {
    let dir = TestDir::new("lock-raw-counter");
    let path = dir.join("region");
    let region = Region::create(&path, SIZE).unwrap();
    let shared = region.raw_value::<u64>("shared", 0).unwrap();
    let _lock = region.lock("l").unwrap();
    let barrier = Barrier::new(&region);
    let children = (0..procs)
        .map(|_| {
            spawn(
                "lock_counter",
                &path,
                &[("iters", &iters), ("threads", &threads)],
            )
        })
        .collect();
    barrier.release(procs);
    wait_all(children);
    assert_eq!(shared.load(), u64::from(procs * threads) * iters);
}

#[test]
fn lock_guarding_a_raw_value_gives_exact_counts_across_processes() {
    lock_guarded_counter(COUNTER_PROCS, 1, COUNTER_ITERS);
}

#[test]
fn lock_guarding_a_raw_value_gives_exact_counts_across_processes_and_threads() {
    lock_guarded_counter(2, 2, 10_000);
}

/// Helper role `lock_counter`.
pub fn child_lock_counter() -> Result<()> {
    let region = Region::open(child_path())?;
    let lock = region.lock("l")?;
    let shared = region.raw_value::<u64>("shared", 0)?;
    let inside = region.raw_value::<u32>("inside", 0)?;
    let iters: u64 = arg("iters");
    let threads: u32 = arg("threads");
    Barrier::new(&region).arrive();
    let work = || -> Result<()> {
        for i in 0..iters {
            let guard = if i % 2 == 0 {
                Some(lock.lock()?)
            } else {
                assert!(lock.acquire(true, None));
                None
            };
            assert_eq!(inside.fetch_add(1), 0, "two holders of the lock at once");
            // SAFETY: the lock serialises every access to `shared` (the parent reads it only
            // after all helpers exited).
            let v = unsafe { shared.read() };
            if i % 64 == 0 {
                std::thread::yield_now();
            }
            // SAFETY: as above.
            unsafe { shared.write(v + 1) };
            inside.fetch_sub(1);
            match guard {
                Some(g) => drop(g),
                None => lock.release()?,
            }
        }
        Ok(())
    };
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads).map(|_| s.spawn(work)).collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().expect("worker thread panicked"))
    })
}

/// A timeout too large for the clock (`Duration::MAX`) waits without limit, as `None` does:
/// no panic from the deadline arithmetic, and no early return.
#[test]
fn a_timeout_too_large_for_the_clock_waits_without_limit() {
    let region = Region::anonymous(SIZE).unwrap();
    let lock = region.lock("l").unwrap();
    assert!(lock.acquire(true, Some(Duration::MAX)));
    std::thread::scope(|s| {
        let releaser = s.spawn(|| {
            std::thread::sleep(Duration::from_millis(100));
            lock.release().unwrap();
        });
        let start = Instant::now();
        let guard = lock
            .try_lock_for(Duration::MAX)
            .expect("waited for the release");
        assert!(
            start.elapsed() >= Duration::from_millis(50),
            "returned before the release"
        );
        drop(guard);
        releaser.join().unwrap();
    });
    let v = region.value::<u32>("v", 1).unwrap();
    assert_eq!(*v.try_lock_for(Duration::MAX).unwrap(), 1);
}
