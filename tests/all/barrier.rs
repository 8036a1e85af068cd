//! `Barrier` across processes: distinct arrival indexes every round, a timed-out waiter
//! breaking the round for the others, abort, reset, a party killed after arriving, and the
//! checks on the number of parties.

use crate::common::{
    Child, LIMIT, SIZE, ShmName, arg, child_path, spawn, wait_all, wait_for_count, wait_until,
};
use shmsync::{BrokenBarrier, Error, RawArray, Region, Result};
use std::time::{Duration, Instant};

/// The helper roles of this module, for [`crate::child::child_entry`].
pub fn role(name: &str) -> Option<fn() -> Result<()>> {
    Some(match name {
        "bar_rounds" => child_rounds,
        "bar_broken_then" => child_broken_then,
        "bar_late" => child_late,
        "bar_parties" => child_parties,
        _ => return None,
    })
}

fn new_region(shm: &ShmName) -> Region {
    Region::create(shm.name(), SIZE).expect("create region")
}

/// `counts[round * parties + index]`: how many parties got `index` in `round`.
fn counts(region: &Region, parties: u32, rounds: u32) -> Result<RawArray<u32>> {
    region.raw_array("counts", &vec![0; (parties * rounds) as usize])
}

/// Checks that every index 0..parties came out exactly once in every round.
fn assert_each_index_once(counts: &RawArray<u32>, parties: u32, rounds: u32) {
    let counts = counts.to_vec();
    for round in 0..rounds {
        let row = &counts[(round * parties) as usize..][..parties as usize];
        assert!(
            row.iter().all(|&n| n == 1),
            "round {round}: times each index was handed out: {row:?}"
        );
    }
}

// -------------------------------------------------------------------------------------------
// Helpers

/// Waits at the barrier "b" of `parties` for `rounds` rounds, counting its index each round.
pub fn child_rounds() -> Result<()> {
    let region = Region::open(child_path())?;
    let parties: u32 = arg("parties");
    let rounds: u32 = arg("rounds");
    let b = region.barrier("b", parties)?;
    let counts = counts(&region, parties, rounds)?;
    for round in 0..rounds {
        let index = b.wait(Some(LIMIT))?;
        assert!(index < parties, "index {index} of {parties} parties");
        counts.fetch_add((round * parties + index) as usize, 1);
    }
    Ok(())
}

/// Waits at the barrier "b" of `parties`, which the test breaks (a timeout, an abort, a
/// reset): must fail, counted in `broken`. Then waits for the parent's `go` and takes part in
/// one more round, counting its index in round 0 of `counts`.
pub fn child_broken_then() -> Result<()> {
    let region = Region::open(child_path())?;
    let parties: u32 = arg("parties");
    let b = region.barrier("b", parties)?;
    assert_eq!(b.wait(Some(LIMIT)), Err(BrokenBarrier));
    region.raw_value::<u32>("broken", 0)?.fetch_add(1);
    let go = region.raw_value::<u32>("go", 0)?;
    wait_until("the go for the next round", || go.load() != 0);
    let index = b.wait(Some(LIMIT))?;
    counts(&region, parties, 1)?.fetch_add(index as usize, 1);
    Ok(())
}

/// Arrives at the broken barrier "b" of `parties`: fails at once, whatever the timeout.
pub fn child_late() -> Result<()> {
    let region = Region::open(child_path())?;
    let b = region.barrier("b", arg("parties"))?;
    assert!(b.broken());
    let start = Instant::now();
    assert_eq!(b.wait(None), Err(BrokenBarrier));
    assert_eq!(b.wait(Some(LIMIT)), Err(BrokenBarrier));
    assert_eq!(b.wait(Some(Duration::ZERO)), Err(BrokenBarrier));
    let err: Error = b.wait(None).unwrap_err().into();
    assert!(matches!(err, Error::BrokenBarrier));
    eprintln!(
        "three arrivals at a broken barrier took {:?}",
        start.elapsed()
    );
    assert_eq!(b.n_waiting(), 0, "a failed arrival does not count");
    Ok(())
}

/// Opens the barrier "b" (3 parties) with other numbers of parties.
pub fn child_parties() -> Result<()> {
    let region = Region::open(child_path())?;
    match region.barrier("b", 2) {
        Err(Error::Mismatch { name, .. }) => assert_eq!(name, "b"),
        other => panic!("expected Mismatch, got {other:?}"),
    }
    assert!(matches!(
        region.barrier("b", 0),
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(region.barrier("b", 3)?.parties(), 3);
    Ok(())
}

// -------------------------------------------------------------------------------------------
// Tests

#[test]
fn four_processes_get_distinct_indexes_in_every_round() {
    const PARTIES: u32 = 4;
    const ROUNDS: u32 = 200;
    let shm = ShmName::new("bar-rounds");
    let region = new_region(&shm);
    let b = region.barrier("b", PARTIES).unwrap();
    let counts = counts(&region, PARTIES, ROUNDS).unwrap();
    let start = Instant::now();
    let helpers: Vec<Child> = (0..PARTIES)
        .map(|_| {
            spawn(
                "bar_rounds",
                &shm.path(),
                &[("parties", &PARTIES), ("rounds", &ROUNDS)],
            )
        })
        .collect();
    wait_all(helpers);
    eprintln!(
        "{PARTIES} processes x {ROUNDS} rounds in {:?}",
        start.elapsed()
    );
    assert_each_index_once(&counts, PARTIES, ROUNDS);
    assert!(!b.broken());
    assert_eq!(b.n_waiting(), 0);
}

/// Two helpers wait at a barrier of `parties`; the parent breaks it by `how` ("timeout",
/// "abort", "reset"); both helpers must fail; after a reset the barrier serves a full round.
fn break_and_reuse(how: &str, parties: u32) {
    let shm = ShmName::new(&format!("bar-{how}"));
    let region = new_region(&shm);
    let b = region.barrier("b", parties).unwrap();
    let broken = region.raw_value::<u32>("broken", 0).unwrap();
    let counts = counts(&region, parties, 1).unwrap();
    let waiters: Vec<Child> = (0..2)
        .map(|_| spawn("bar_broken_then", &shm.path(), &[("parties", &parties)]))
        .collect();
    wait_until("both helpers to arrive", || b.n_waiting() == 2);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(broken.load(), 0);
    match how {
        "timeout" => {
            // Three of four parties: our timeout breaks the round for everyone.
            let timeout = Duration::from_millis(150);
            let start = Instant::now();
            assert_eq!(b.wait(Some(timeout)), Err(BrokenBarrier));
            let waited = start.elapsed();
            assert!(waited >= timeout, "gave up after {waited:?} < {timeout:?}");
        }
        "abort" => b.abort(),
        "reset" => b.reset(),
        _ => unreachable!(),
    }
    wait_for_count(&broken, 2, "both helpers to see the barrier broken");
    if how == "reset" {
        // A reset leaves the barrier usable at once.
        assert!(!b.broken());
    } else {
        // Broken until a reset, for every process.
        assert!(b.broken());
        assert_eq!(b.wait(None), Err(BrokenBarrier));
        spawn("bar_late", &shm.path(), &[("parties", &parties)]).wait_ok();
        assert!(b.broken());
        b.reset();
        assert!(!b.broken());
    }
    assert_eq!(b.n_waiting(), 0);

    // A full round again: the two helpers, this process, and helpers for the rest.
    region.raw_value::<u32>("go", 0).unwrap().store(1);
    let rest: Vec<Child> = (3..parties)
        .map(|_| {
            spawn(
                "bar_rounds",
                &shm.path(),
                &[("parties", &parties), ("rounds", &1)],
            )
        })
        .collect();
    let index = b.wait(Some(LIMIT)).expect("the round after the reset");
    counts.fetch_add(index as usize, 1);
    wait_all(waiters);
    wait_all(rest);
    assert_each_index_once(&counts, parties, 1);
    assert!(!b.broken());
}

#[test]
fn a_waiter_that_times_out_breaks_the_barrier_for_the_other_processes() {
    break_and_reuse("timeout", 4);
}

#[test]
fn abort_breaks_the_barrier_for_waiters_and_later_arrivals_until_a_reset() {
    break_and_reuse("abort", 3);
}

#[test]
fn reset_fails_the_current_waiters_and_makes_the_barrier_reusable() {
    break_and_reuse("reset", 3);
}

#[test]
fn a_party_killed_after_arriving_still_counts_for_its_round() {
    let shm = ShmName::new("bar-killed");
    let region = new_region(&shm);
    let b = region.barrier("b", 3).unwrap();
    let counts = counts(&region, 3, 1).unwrap();
    let victim = spawn(
        "bar_rounds",
        &shm.path(),
        &[("parties", &3), ("rounds", &1)],
    );
    wait_until("the victim to arrive", || b.n_waiting() == 1);
    victim.kill();
    assert_eq!(b.n_waiting(), 1, "its arrival stays counted");
    let other = spawn(
        "bar_rounds",
        &shm.path(),
        &[("parties", &3), ("rounds", &1)],
    );
    let index = b
        .wait(Some(LIMIT))
        .expect("the dead party's arrival completes the round");
    other.wait_ok();
    counts.fetch_add(index as usize, 1);
    // Index 0 was the victim's (it died before it could record it): the live parties got
    // 1 and 2.
    assert_eq!(counts.to_vec(), [0, 1, 1]);
    assert!(!b.broken());
    assert_eq!(b.n_waiting(), 0);
}

#[test]
fn the_number_of_parties_must_match_and_be_in_range() {
    let shm = ShmName::new("bar-parties");
    let region = new_region(&shm);
    let b = region.barrier("b", 3).unwrap();
    assert_eq!(b.parties(), 3);
    assert!(matches!(
        region.barrier("b", 4),
        Err(Error::Mismatch { .. })
    ));
    spawn("bar_parties", &shm.path(), &[]).wait_ok();
    for bad in [0, 65_536, u32::MAX] {
        match region.barrier("z", bad) {
            Err(Error::InvalidArgument(why)) => assert!(why.contains("parties"), "{why}"),
            other => panic!("{bad} parties: {other:?}"),
        }
    }
    assert!(
        region.objects().unwrap().iter().all(|o| o.name != "z"),
        "a refused barrier was stored"
    );
    assert_eq!(region.barrier("max", 65_535).unwrap().parties(), 65_535);
    // One party never waits.
    let one = region.barrier("one", 1).unwrap();
    for _ in 0..3 {
        assert_eq!(one.wait(None), Ok(0));
    }
    assert_eq!(one.wait(Some(Duration::ZERO)), Ok(0));
    // A zero timeout with others missing: fails and breaks, as Python's does.
    let start = Instant::now();
    assert_eq!(b.wait(Some(Duration::ZERO)), Err(BrokenBarrier));
    assert!(start.elapsed() < LIMIT);
    assert!(b.broken());
    b.reset();
    assert!(!b.broken());
    assert_eq!(
        format!("{b:?}"),
        "Barrier { parties: 3, n_waiting: 0, broken: false }"
    );
}
