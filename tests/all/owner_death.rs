//! Processes that die holding a lock: SIGKILLed holders, takeover by exactly one waiter,
//! poisoning and unrecoverable locks, slot reuse, fork, and a kill-and-restart soak.
//!
//! Every holder here is a real process killed with SIGKILL while it holds the lock, so it
//! never runs any cleanup: the kernel dropping its lease is the only trace of its death.

use crate::common::{Child, LIMIT, SIZE, ShmName, arg, child_path, spawn, wait_for_count};
use shmsync::{Error, LockError, Region, TryLockError};
use std::time::{Duration, Instant};

/// The helper roles of this module, for [`crate::child::child_entry`].
pub fn role(name: &str) -> Option<fn() -> shmsync::Result<()>> {
    Some(match name {
        "od_holder" => child_holder,
        "od_waiter" => child_waiter,
        "od_unrecoverable" => child_unrecoverable,
        "od_registered" => child_registered,
        "od_table_full" => child_table_full,
        "od_fork_guard" => child_fork_guard,
        "od_soak_worker" => child_soak_worker,
        _ => return None,
    })
}

/// The value a holder leaves behind, "half-updated", before it is killed.
const HALF_DONE: u64 = 41;

fn new_region(shm: &ShmName) -> Region {
    Region::create(shm.name(), SIZE).expect("create region")
}

/// Opens the objects every test here shares.
struct Objects {
    region: Region,
}

impl Objects {
    fn open() -> shmsync::Result<Objects> {
        Ok(Objects {
            region: Region::open(child_path())?,
        })
    }
    fn counter(&self, name: &str) -> shmsync::Result<shmsync::RawValue<u32>> {
        self.region.raw_value(name, 0)
    }
}

/// Sleeps until killed.
fn sleep_forever() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Holder: takes the lock of kind `kind` ("lock", "rlock", "value", "array"), leaves the data
/// half-updated, says it is ready, and sleeps until it is killed. With `fork` = 1 it first
/// forks a child that sleeps too (and records its pid), to show the child does not keep the
/// holder's lease alive.
pub fn child_holder() -> shmsync::Result<()> {
    let o = Objects::open()?;
    let kind: String = arg("kind");
    match kind.as_str() {
        "lock" => assert!(o.region.lock("l")?.acquire(true, None)),
        "rlock" => {
            let r = o.region.rlock("r")?;
            assert!(r.acquire(true, None) && r.acquire(true, None));
        }
        "value" => {
            let v = o.region.value::<u64>("v", 0)?;
            let mut g = v.lock()?;
            *g = HALF_DONE;
            std::mem::forget(g);
        }
        "array" => {
            let a = o.region.array::<u64>("a", &[0; 4])?;
            let mut g = a.lock()?;
            g[0] = HALF_DONE;
            std::mem::forget(g);
        }
        other => panic!("unknown kind {other}"),
    }
    if arg::<u32>("fork") == 1 {
        // SAFETY: the helper is single-threaded here (libtest runs one test on the main
        // thread); the child only sleeps until it is killed.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            sleep_forever();
        }
        o.counter("grandchild")?.store(pid as u32);
    }
    o.counter("held")?.fetch_add(1);
    sleep_forever()
}

/// The guard of a `lock()`: if the holder died, counts it in `told` and marks the lock
/// consistent (these tests' data needs no repair beyond what the waiter then writes).
fn take<G>(
    result: Result<G, LockError<G>>,
    told: &shmsync::RawValue<u32>,
    mark_consistent: impl FnOnce(&G),
) -> shmsync::Result<G> {
    match result {
        Ok(g) => Ok(g),
        Err(LockError::OwnerDied(died)) => {
            told.fetch_add(1);
            let g = died.into_guard();
            mark_consistent(&g);
            Ok(g)
        }
        Err(e) => Err(e.into()),
    }
}

/// Waiter: locks the object of kind `kind`; if told its holder died, counts it in `told`,
/// repairs and marks consistent; then increments the data and counts itself `done`.
pub fn child_waiter() -> shmsync::Result<()> {
    let o = Objects::open()?;
    let told = o.counter("told")?;
    let kind: String = arg("kind");
    o.counter("waiting")?.fetch_add(1);
    match kind.as_str() {
        "value" => {
            let v = o.region.value::<u64>("v", 0)?;
            *take(v.lock(), &told, |g| g.mark_consistent())? += 1;
        }
        "array" => {
            let a = o.region.array::<u64>("a", &[0; 4])?;
            take(a.lock(), &told, |g| g.mark_consistent())?[0] += 1;
        }
        "rlock" => {
            let r = o.region.rlock("r")?;
            let g = take(r.lock(), &told, |g| g.mark_consistent())?;
            assert_eq!(r.count(), 1, "a taken-over RLock starts a fresh count");
            assert!(r.is_owned_by_current_thread());
            drop(g);
        }
        other => panic!("unknown kind {other}"),
    }
    o.counter("done")?.fetch_add(1);
    Ok(())
}

/// Checks from another process that a lock left poisoned is unrecoverable for everyone.
pub fn child_unrecoverable() -> shmsync::Result<()> {
    let o = Objects::open()?;
    let l = o.region.lock("l")?;
    assert!(l.is_unrecoverable());
    assert!(matches!(l.lock(), Err(LockError::NotRecoverable)));
    assert!(matches!(l.try_lock(), Err(TryLockError::NotRecoverable)));
    assert!(matches!(
        l.try_lock_for(Duration::from_millis(50)),
        Err(TryLockError::NotRecoverable)
    ));
    assert!(
        !l.acquire(true, None),
        "acquire of an unrecoverable lock must fail"
    );
    Ok(())
}

/// Registers in the region's process table and stays alive until killed.
pub fn child_registered() -> shmsync::Result<()> {
    let o = Objects::open()?;
    o.region.lock("l")?;
    o.counter("registered")?.fetch_add(1);
    sleep_forever()
}

/// Expects the process table to be full.
pub fn child_table_full() -> shmsync::Result<()> {
    let region = Region::open(child_path())?;
    match region.lock("l") {
        Err(Error::ProcessTableFull { slots: 2 }) => Ok(()),
        other => panic!("expected ProcessTableFull, got {other:?}"),
    }
}

/// Holds a guard, forks; the child drops its copy of the guard, which must not release the
/// parent's lock.
pub fn child_fork_guard() -> shmsync::Result<()> {
    let region = Region::open(child_path())?;
    let l = region.lock("l")?;
    let v = region.value::<u64>("v", 0)?;
    let guard = l.lock()?;
    let vguard = v.lock()?;
    // SAFETY: single-threaded helper; the child only drops two guards, reads two atomics and
    // leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        drop(guard);
        drop(vguard);
        let ok = l.is_locked() && v.is_locked();
        // SAFETY: ends the child without running the parent's destructors.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: waits for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the forked child saw the lock released after dropping its guard copies"
    );
    assert!(l.is_locked() && v.is_locked());
    assert_eq!(l.holder(), Some(std::process::id()));
    drop(vguard);
    drop(guard);
    assert!(!l.is_locked() && !v.is_locked());
    Ok(())
}

/// Kills a helper with SIGKILL and reaps it.
fn kill(child: Child) {
    child.kill();
}

/// Spawns a holder of `kind` and waits until it holds the lock.
fn holder(shm: &ShmName, kind: &str, fork: u32) -> Child {
    let held = Region::open(shm.name())
        .unwrap()
        .raw_value::<u32>("held", 0)
        .unwrap();
    let before = held.load();
    let child = spawn(
        "od_holder",
        &shm.path(),
        &[("kind", &kind), ("fork", &fork)],
    );
    wait_for_count(&held, before + 1, "the holder to take the lock");
    child
}

/// Waits until `n` waiters announced themselves, then a little longer so that they are asleep
/// in the kernel (not required for correctness: a waiter that is not asleep yet just finds the
/// holder dead sooner).
fn wait_for_waiters(region: &Region, n: u32) {
    wait_for_count(
        &region.raw_value("waiting", 0).unwrap(),
        n,
        "the waiters to start",
    );
    std::thread::sleep(Duration::from_millis(200));
}

fn takeover_by_waiters(kind: &str, waiters: u32) {
    let shm = ShmName::new(&format!("od-{kind}-{waiters}"));
    let region = new_region(&shm);
    let h = holder(&shm, kind, 0);
    let holder_pid = h.pid();
    let lock_holder = match kind {
        "value" => region.value::<u64>("v", 0).unwrap().holder(),
        "array" => region.array::<u64>("a", &[0; 4]).unwrap().holder(),
        "rlock" => region.rlock("r").unwrap().owner().map(|o| o.pid),
        _ => unreachable!(),
    };
    assert_eq!(
        lock_holder,
        Some(holder_pid),
        "holder() names the holding process"
    );

    let ws: Vec<Child> = (0..waiters)
        .map(|_| spawn("od_waiter", &shm.path(), &[("kind", &kind)]))
        .collect();
    wait_for_waiters(&region, waiters);
    let done = region.raw_value::<u32>("done", 0).unwrap();
    assert_eq!(done.load(), 0, "no waiter may get past a live holder");

    let killed = Instant::now();
    kill(h);
    wait_for_count(&done, 1, "the first waiter to take the lock over");
    let noticed = killed.elapsed();
    for w in ws {
        w.wait_ok();
    }
    eprintln!("{kind}: the first of {waiters} waiters took over {noticed:?} after SIGKILL");
    assert!(
        noticed < Duration::from_secs(10),
        "death noticed only after {noticed:?}"
    );
    assert_eq!(done.load(), waiters);
    assert_eq!(
        region.raw_value::<u32>("told", 0).unwrap().load(),
        1,
        "exactly one waiter is told the owner died"
    );
    match kind {
        "value" => {
            let v = region.value::<u64>("v", 0).unwrap();
            assert_eq!(v.load().unwrap(), HALF_DONE + u64::from(waiters));
            assert!(!v.is_poisoned() && !v.is_locked());
        }
        "array" => {
            let a = region.array::<u64>("a", &[0; 4]).unwrap();
            assert_eq!(a.get(0).unwrap(), HALF_DONE + u64::from(waiters));
        }
        "rlock" => assert!(!region.rlock("r").unwrap().is_locked()),
        _ => unreachable!(),
    }
}

#[test]
fn a_sleeping_waiter_takes_a_value_over_from_a_killed_holder() {
    takeover_by_waiters("value", 1);
}

#[test]
fn exactly_one_of_several_waiters_is_told_and_all_get_the_lock() {
    takeover_by_waiters("value", 3);
}

#[test]
fn an_array_lock_is_taken_over_from_a_killed_holder() {
    takeover_by_waiters("array", 2);
}

#[test]
fn an_rlock_held_twice_by_a_killed_owner_is_taken_over() {
    takeover_by_waiters("rlock", 2);
}

#[test]
fn a_lock_whose_holder_was_killed_with_nobody_waiting_is_taken_over_later() {
    let shm = ShmName::new("od-later");
    let region = new_region(&shm);
    let lock = region.lock("l").unwrap();
    kill(holder(&shm, "lock", 0));
    assert!(
        lock.is_locked(),
        "a dead holder's lock stays held until someone takes it over"
    );

    let start = Instant::now();
    assert!(
        lock.acquire(true, Some(LIMIT)),
        "the lock was not taken over"
    );
    eprintln!(
        "acquire took a dead holder's lock over in {:?}",
        start.elapsed()
    );
    assert!(lock.is_poisoned());
    assert_eq!(lock.holder(), Some(std::process::id()));
    lock.mark_consistent().unwrap();
    lock.release().unwrap();
    let guard = lock.try_lock().expect("a repaired lock works normally");
    assert!(!lock.is_poisoned());
    drop(guard);
}

#[test]
fn a_taken_over_lock_dropped_unrepaired_is_unrecoverable_for_every_process() {
    let shm = ShmName::new("od-unrecoverable");
    let region = new_region(&shm);
    let lock = region.lock("l").unwrap();
    kill(holder(&shm, "lock", 0));
    match lock.lock() {
        Err(LockError::OwnerDied(died)) => drop(died.into_guard()),
        other => panic!("expected OwnerDied, got {other:?}"),
    }
    assert!(lock.is_unrecoverable());
    spawn("od_unrecoverable", &shm.path(), &[]).wait_ok();
}

#[test]
fn a_reused_process_slot_is_not_mistaken_for_its_dead_owner() {
    let shm = ShmName::new("od-reuse");
    // Two slots: this process takes one, so every other process must use the other.
    let region = Region::options()
        .max_processes(2)
        .create(shm.name(), SIZE)
        .unwrap();
    let lock = region.lock("l").unwrap();
    let h = holder(&shm, "lock", 0);
    assert_eq!(lock.holder(), Some(h.pid()));
    kill(h);

    // A new process registers in the dead holder's slot, with the next generation.
    let registered = region.raw_value::<u32>("registered", 0).unwrap();
    let reuser = spawn("od_registered", &shm.path(), &[]);
    wait_for_count(&registered, 1, "the new process to register");
    // The table is full now, and says so.
    spawn("od_table_full", &shm.path(), &[]).wait_ok();

    // The lock still carries the dead holder's token: the live process in its slot must not
    // pass for it.
    assert_eq!(lock.holder(), None, "the slot belongs to someone else now");
    match lock.try_lock_for(LIMIT) {
        Err(TryLockError::OwnerDied(died)) => died.into_guard().mark_consistent(),
        other => panic!("expected OwnerDied, got {other:?}"),
    }
    kill(reuser);
}

#[test]
fn a_child_forked_while_a_guard_is_held_does_not_release_the_lock() {
    let shm = ShmName::new("od-fork-guard");
    let _region = new_region(&shm);
    spawn("od_fork_guard", &shm.path(), &[]).wait_ok();
}

#[test]
fn a_forked_child_does_not_keep_its_dead_parents_lease_alive() {
    let shm = ShmName::new("od-fork-lease");
    let region = new_region(&shm);
    let v = region.value::<u64>("v", 0).unwrap();
    let h = holder(&shm, "value", 1);
    let grandchild = region.raw_value::<u32>("grandchild", 0).unwrap().load() as i32;
    assert!(grandchild > 0);
    kill(h);
    // The holder's forked child is still alive, with copies of all its descriptors: recovery
    // must not wait for it.
    let result = v.try_lock_for(LIMIT);
    // SAFETY: plain kill(2) of the process the holder forked.
    let alive = unsafe { libc::kill(grandchild, 0) } == 0;
    // SAFETY: as above; the grandchild is not ours to reap (it was re-parented).
    unsafe { libc::kill(grandchild, libc::SIGKILL) };
    assert!(
        alive,
        "the holder's child should still have been alive during the takeover"
    );
    match result {
        Err(TryLockError::OwnerDied(died)) => died.into_guard().mark_consistent(),
        other => panic!("expected OwnerDied, got {other:?}"),
    }
}

// -------------------------------------------------------------------------------------------
// Soak: workers increment under one lock while workers are killed and replaced.

const SOAK_IDS: usize = 64;

/// Worker `id`: repeatedly, under the array's lock, increments the total (element 0) and its
/// own count (element 1 + id), with a pause between the two so that kills land mid-update. A
/// worker that takes the lock over from a killed one repairs the total from the per-worker
/// counts. When told to stop it records how many increments it made.
pub fn child_soak_worker() -> shmsync::Result<()> {
    let o = Objects::open()?;
    let id: usize = arg("id");
    let counts = o.region.array::<u64>("soak", &[0; SOAK_IDS + 1])?;
    let local_counts = o.region.raw_array::<u64>("local", &[0; SOAK_IDS])?;
    let stop = o.counter("stop")?;
    let recoveries = o.counter("recoveries")?;
    o.counter("started")?.fetch_add(1);
    let mut local = 0u64;
    while stop.load() == 0 {
        let mut g = match counts.lock() {
            Ok(g) => g,
            Err(LockError::OwnerDied(died)) => {
                let mut g = died.into_guard();
                repair(&mut g);
                g.mark_consistent();
                recoveries.fetch_add(1);
                g
            }
            Err(e) => return Err(e.into()),
        };
        g[0] += 1;
        for _ in 0..200 {
            std::hint::spin_loop();
        }
        g[1 + id] += 1;
        local += 1;
    }
    local_counts.store(id, local);
    Ok(())
}

/// Recomputes the total from the per-worker counts (a killed worker may have bumped the total
/// but not its own count).
fn repair(counts: &mut [u64]) {
    counts[0] = counts[1..].iter().sum();
}

#[test]
fn soak_killing_and_replacing_workers_never_hangs_and_loses_no_count() {
    let shm = ShmName::new("od-soak");
    let region = new_region(&shm);
    let counts = region.array::<u64>("soak", &[0; SOAK_IDS + 1]).unwrap();
    let local = region.raw_array::<u64>("local", &[0; SOAK_IDS]).unwrap();
    let started = region.raw_value::<u32>("started", 0).unwrap();

    let mut next_id = 0usize;
    let start_worker = |next_id: &mut usize| {
        let id = *next_id;
        *next_id += 1;
        (id, spawn("od_soak_worker", &shm.path(), &[("id", &id)]))
    };
    let mut workers: Vec<(usize, Child)> = (0..4).map(|_| start_worker(&mut next_id)).collect();
    wait_for_count(&started, 4, "the first workers to start");

    // A small deterministic generator picks victims and pauses.
    let mut seed = 0x9e37_79b9_u32 ^ std::process::id();
    let mut random = move |n: u32| {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed % n
    };
    let mut kills = 0;
    let soak = Instant::now();
    while soak.elapsed() < Duration::from_secs(4) && next_id < SOAK_IDS - 1 {
        std::thread::sleep(Duration::from_millis(40 + u64::from(random(120))));
        let victim = random(workers.len() as u32) as usize;
        let (_, child) = workers.swap_remove(victim);
        kill(child);
        kills += 1;
        workers.push(start_worker(&mut next_id));
    }
    region.raw_value::<u32>("stop", 0).unwrap().store(1);
    let survivors: Vec<usize> = workers.iter().map(|(id, _)| *id).collect();
    for (_, w) in workers {
        w.wait_ok();
    }

    // Nothing may hang: the lock must be obtainable, possibly from a worker killed last.
    let g = match counts.try_lock_for(LIMIT) {
        Ok(g) => g,
        Err(TryLockError::OwnerDied(died)) => {
            let mut g = died.into_guard();
            repair(&mut g);
            g.mark_consistent();
            g
        }
        Err(e) => panic!("the lock is stuck after the soak: {e}"),
    };
    let total: u64 = g[1..].iter().sum();
    assert_eq!(
        g[0], total,
        "the total disagrees with the per-worker counts"
    );
    for id in &survivors {
        assert_eq!(
            g[1 + id],
            local.load(*id),
            "surviving worker {id}'s count in the region disagrees with its own"
        );
    }
    let recoveries = region.raw_value::<u32>("recoveries", 0).unwrap().load();
    eprintln!(
        "soak: {kills} workers killed, {recoveries} takeovers, {total} increments, survivors {survivors:?}"
    );
    assert!(total > 0);
}
