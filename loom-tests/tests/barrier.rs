//! loom models of `shmsync_protocol::barrier`: every party of a round returns, with the
//! indexes `0..parties` handed out once each, and sees what the others wrote before arriving;
//! a waiter that times out breaks the round for every party; a reset fails the waiters of the
//! round it ends (and only those: a round that completed is not reported reset) and leaves the
//! barrier usable.
//!
//! Each model has a `child_*` twin that runs it with the faults named in
//! `SHMSYNC_LOOM_MUTATION` (words: `state`, `resets`), and `caught_*` tests that run that twin
//! in a child process with a mutation and assert that loom caught it.

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use shmsync_loom_tests::LoomWord;
use shmsync_loom_tests::harness::{self, Faults, expect_caught};
use shmsync_protocol::Block;
use shmsync_protocol::barrier::{self, Barrier, Broken};
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// Preemptions explored per execution.
const PREEMPTIONS: usize = 3;

/// The barrier's words and one data slot per thread, written before arriving.
struct Shared {
    state: LoomWord,
    resets: LoomWord,
    slots: [UnsafeCell<u32>; 3],
}

impl Shared {
    fn new(faults: &Faults, timeouts: u32) -> Arc<Shared> {
        Arc::new(Shared {
            state: LoomWord::new(0)
                .timeouts(timeouts)
                .mutation(faults.on("state")),
            resets: LoomWord::new(0).mutation(faults.on("resets")),
            slots: std::array::from_fn(|_| UnsafeCell::new(0)),
        })
    }

    fn barrier(&self) -> Barrier<'_, LoomWord> {
        Barrier {
            state: &self.state,
            resets: &self.resets,
        }
    }

    fn wait(&self, parties: u32, block: Block) -> Result<u32, Broken> {
        self.barrier().wait(parties, block)
    }

    /// Thread `i` writes its slot (before arriving).
    fn write(&self, i: usize, v: u32) {
        self.slots[i].with_mut(|p| {
            // SAFETY: slot `i` is written by thread `i` before it arrives and read by the
            // others after the round completed; a read not ordered after the write is exactly
            // what loom reports as a causality violation instead.
            unsafe { *p = v }
        });
    }

    fn read(&self, i: usize) -> u32 {
        self.slots[i].with(|p| {
            // SAFETY: as in `write`.
            unsafe { *p }
        })
    }
}

/// A deadline for a timed wait: the modelled futex ignores its value (the word's timeout
/// budget decides whether the wait times out).
fn deadline() -> Block {
    Block::Until(Instant::now() + Duration::from_secs(1))
}

/// The indexes of one completed round of `parties` parties: each of `0..parties` once.
fn assert_indexes(mut indexes: Vec<u32>, parties: u32) {
    indexes.sort_unstable();
    assert_eq!(
        indexes,
        (0..parties).collect::<Vec<_>>(),
        "the arrival indexes are not 0..{parties} once each"
    );
}

// ---------------------------------------------------------------------------------------------
// A round completes

/// `parties` threads (the main one included), `rounds` rounds: in each round every thread
/// writes its slot, waits with `Block::Forever`, then reads every slot of that round. Every
/// wait returns `Ok`, the indexes of each round are `0..parties` once each, and the barrier
/// ends in round `rounds` with nobody arrived.
fn rounds(parties: u32, rounds: u32, faults: &Faults) {
    let faults = faults.clone();
    harness::check(PREEMPTIONS, move || {
        let s = Shared::new(&faults, 0);
        fn party(s: &Shared, me: usize, parties: u32, rounds: u32) -> Vec<u32> {
            (0..rounds)
                .map(|round| {
                    s.write(me, 10 * round + me as u32);
                    let index = s.wait(parties, Block::Forever).expect("a round broke");
                    for other in 0..parties as usize {
                        let seen = s.read(other);
                        assert_eq!(
                            seen,
                            10 * round + other as u32,
                            "after round {round}, thread {me} read a stale slot {other}"
                        );
                    }
                    if round + 1 < rounds {
                        // Nobody writes the next round's value before everyone has read this
                        // round's: a second wait, as a program using the barrier would.
                        s.wait(parties, Block::Forever).expect("a round broke");
                    }
                    index
                })
                .collect()
        }
        let handles: Vec<_> = (1..parties as usize)
            .map(|me| {
                let s = s.clone();
                loom::thread::spawn(move || party(&s, me, parties, rounds))
            })
            .collect();
        let mut all = vec![party(&s, 0, parties, rounds)];
        all.extend(handles.into_iter().map(|h| h.join().unwrap()));
        for round in 0..rounds as usize {
            assert_indexes(all.iter().map(|r| r[round]).collect(), parties);
        }
        let state = s.state.get();
        let waits = 2 * rounds - 1;
        assert_eq!(
            barrier::round(state),
            waits,
            "the barrier is not in round {waits}"
        );
        assert_eq!(barrier::arrived(state), 0);
        assert!(!barrier::is_broken(state));
    });
}

#[test]
fn one_round_3_threads() {
    rounds(3, 1, &Faults::none());
}

#[test]
fn two_rounds_2_threads() {
    rounds(2, 2, &Faults::none());
}

#[test]
fn child_one_round_3_threads() {
    if let Some(f) = Faults::from_env() {
        rounds(3, 1, &f);
    }
}

#[test]
fn child_two_rounds_2_threads() {
    if let Some(f) = Faults::from_env() {
        rounds(2, 2, &f);
    }
}

#[test]
fn caught_skip_wake_by_one_round() {
    expect_caught("child_one_round_3_threads", "skip-wake", &["deadlock"]);
}

/// Arrivals without Acquire/Release: a party reads another's slot unordered.
#[test]
fn caught_relaxed_ordering_by_one_round() {
    expect_caught(
        "child_one_round_3_threads",
        "state=relaxed-ordering",
        &["Causality violation", "stale slot"],
    );
}

/// An arrival that is a load and a separate store: two parties get one index (and an arrival
/// is lost, so nobody completes the round).
#[test]
fn caught_cas_by_load_store_by_one_round() {
    expect_caught(
        "child_one_round_3_threads",
        "state=cas-by-load-store",
        &["are not 0..", "deadlock", "a round broke"],
    );
}

/// The second round of a reused barrier: a completion that does not publish either.
#[test]
fn caught_relaxed_ordering_by_two_rounds() {
    expect_caught(
        "child_two_rounds_2_threads",
        "state=relaxed-ordering",
        &["Causality violation", "stale slot"],
    );
}

// ---------------------------------------------------------------------------------------------
// A timeout breaks the round for everyone

/// Executions of [`timeout_breaks_all`] in which the round completed, and broke.
static COMPLETED: AtomicUsize = AtomicUsize::new(0);
static BROKE: AtomicUsize = AtomicUsize::new(0);

/// Three parties: A waits with a deadline (its wait may time out), B and the main thread with
/// `Block::Forever`. Either the round completes (all `Ok`, indexes `0..3`) or A's timeout broke
/// it, and then every party fails, B and the main thread included (whether they were asleep
/// or arrived later): nobody waits for ever on a round that can no longer complete.
fn timeout_breaks_all(faults: &Faults) {
    let faults = faults.clone();
    harness::check(PREEMPTIONS, move || {
        let s = Shared::new(&faults, 1);
        let a = {
            let s = s.clone();
            loom::thread::spawn(move || s.wait(3, deadline()))
        };
        let b = {
            let s = s.clone();
            loom::thread::spawn(move || s.wait(3, Block::Forever))
        };
        let main = s.wait(3, Block::Forever);
        let results = [a.join().unwrap(), b.join().unwrap(), main];
        if results.iter().all(Result::is_ok) {
            assert_indexes(results.iter().map(|r| r.unwrap()).collect(), 3);
            COMPLETED.fetch_add(1, Relaxed);
        } else {
            assert!(
                results.iter().all(Result::is_err),
                "some parties passed a round that broke: {results:?}"
            );
            assert!(barrier::is_broken(s.state.get()), "the round is not broken");
            assert_eq!(
                s.state.stats().timeouts,
                1,
                "a round broke without a timeout"
            );
            BROKE.fetch_add(1, Relaxed);
        }
    });
}

#[test]
fn timeout_breaks_all_3_threads() {
    timeout_breaks_all(&Faults::none());
    assert!(COMPLETED.load(Relaxed) > 0, "the round never completed");
    assert!(BROKE.load(Relaxed) > 0, "the round never broke");
}

#[test]
fn child_timeout_breaks_all_3_threads() {
    if let Some(f) = Faults::from_env() {
        timeout_breaks_all(&f);
    }
}

#[test]
fn caught_skip_wake_by_timeout_breaks_all() {
    expect_caught(
        "child_timeout_breaks_all_3_threads",
        "skip-wake",
        &["deadlock"],
    );
}

/// A break (or an arrival) that is a load and a separate store: a timed-out party's break
/// overwrites an arrival, or an arrival overwrites the break.
#[test]
fn caught_cas_by_load_store_by_timeout_breaks_all() {
    expect_caught(
        "child_timeout_breaks_all_3_threads",
        "state=cas-by-load-store",
        &["passed a round that broke", "deadlock", "are not 0.."],
    );
}

// ---------------------------------------------------------------------------------------------
// Reset

/// Two parties. A waits with `Block::Forever`; once A is asleep the main thread resets the
/// barrier: A's wait fails. Then both wait again: the barrier is usable, the new round
/// completes with indexes 0 and 1.
fn reset_then_reuse(faults: &Faults) {
    let faults = faults.clone();
    harness::check(PREEMPTIONS, move || {
        let s = Shared::new(&faults, 0);
        let a = {
            let s = s.clone();
            loom::thread::spawn(move || {
                let first = s.wait(2, Block::Forever);
                assert_eq!(first, Err(Broken), "a waiter of a reset round passed");
                s.wait(2, Block::Forever)
                    .expect("the round after the reset broke")
            })
        };
        s.state.wait_for_sleepers(1);
        s.barrier().reset();
        let mine = s
            .wait(2, Block::Forever)
            .expect("the round after the reset broke");
        assert_indexes(vec![mine, a.join().unwrap()], 2);
        assert!(!barrier::is_broken(s.state.get()));
    });
}

#[test]
fn reset_then_reuse_2_threads() {
    reset_then_reuse(&Faults::none());
}

#[test]
fn child_reset_then_reuse_2_threads() {
    if let Some(f) = Faults::from_env() {
        reset_then_reuse(&f);
    }
}

/// A reset that does not record the round it ended: the waiter believes it completed.
#[test]
fn caught_drop_ors_by_reset_then_reuse() {
    expect_caught(
        "child_reset_then_reuse_2_threads",
        "resets=drop-ors",
        &["a waiter of a reset round passed"],
    );
}

#[test]
fn caught_skip_wake_by_reset_then_reuse() {
    expect_caught(
        "child_reset_then_reuse_2_threads",
        "skip-wake",
        &["deadlock"],
    );
}

/// Executions of [`reset_races_arrival`] in which the round completed, and failed.
static RESET_COMPLETED: AtomicUsize = AtomicUsize::new(0);
static RESET_FAILED: AtomicUsize = AtomicUsize::new(0);

/// Two parties, A and B, each wait once with a deadline (two timeouts per execution: a party
/// left alone in a fresh round after the reset times out), while the main thread resets the
/// barrier. A round completes only with both parties in it, so either both pass (with
/// indexes 0 and 1) or neither does: a party must never pass a round whose other party failed.
///
/// This model found a bug (fixed, see `README.md`, "Findings"): the last party cleared its own
/// round's `resets` bit before its compare-exchange, and that clear could land after a racing
/// reset recorded the round; the last party then failed (the round was broken) while the
/// waiter, finding the bit clear, passed.
fn reset_races_arrival(faults: &Faults) {
    let faults = faults.clone();
    harness::check(PREEMPTIONS, move || {
        let s = Shared::new(&faults, 2);
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let s = s.clone();
                loom::thread::spawn(move || s.wait(2, deadline()))
            })
            .collect();
        s.barrier().reset();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        match (results[0], results[1]) {
            (Ok(a), Ok(b)) => {
                assert_indexes(vec![a, b], 2);
                RESET_COMPLETED.fetch_add(1, Relaxed);
            }
            (Err(Broken), Err(Broken)) => {
                RESET_FAILED.fetch_add(1, Relaxed);
            }
            (a, b) => panic!("one party passed a round the other failed: {a:?}, {b:?}"),
        }
    });
}

#[test]
fn reset_races_arrival_3_threads() {
    reset_races_arrival(&Faults::none());
    assert!(RESET_COMPLETED.load(Relaxed) > 0, "no round completed");
    assert!(RESET_FAILED.load(Relaxed) > 0, "no round failed");
}

#[test]
fn child_reset_races_arrival_3_threads() {
    if let Some(f) = Faults::from_env() {
        reset_races_arrival(&f);
    }
}

/// A reset that does not record the round it ended: a waiter of that round passes, while the
/// other party, arriving in the fresh round alone, times out.
#[test]
fn caught_drop_ors_by_reset_races_arrival() {
    expect_caught(
        "child_reset_races_arrival_3_threads",
        "resets=drop-ors",
        &["one party passed a round the other failed"],
    );
}
