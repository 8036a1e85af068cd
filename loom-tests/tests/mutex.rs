//! loom models of `shmsync_protocol::mutex`: mutual exclusion, no lost wake-up, `Block::Try`
//! never sleeps, and a timed acquire that gives up without stranding the other sleepers.
//!
//! Holders never die here (see `owner_death.rs`), but every wait sleeps in slices
//! ([`LoomOwners`]): a waiter's slice may end (one timeout per word and execution) while the
//! holder is alive, and the waiter must look at the holder, find it alive and sleep again.
//!
//! Each model has a `child_*` twin that runs it with the faults named in
//! `SHMSYNC_LOOM_MUTATION` (and passes at once without it), and `caught_*` tests that run that
//! twin in a child process with a mutation and assert that loom caught it.

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use shmsync_loom_tests::harness::{self, Faults, Signal, expect_caught};
use shmsync_loom_tests::{LoomOwners, LoomWord, Mutation};
use shmsync_protocol::Block;
use shmsync_protocol::mutex::{self, NotLocked, Outcome, UNLOCKED};
use shmsync_protocol::word::Word;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::time::{Duration, Instant};

/// Preemptions explored per execution.
const PREEMPTIONS: usize = 3;

/// A lock word, the data it protects, and the (all alive) holders.
struct Locked {
    word: LoomWord,
    owners: LoomOwners,
    counter: UnsafeCell<u32>,
}

impl Locked {
    fn new(word: LoomWord) -> Arc<Locked> {
        Arc::new(Locked {
            word,
            owners: LoomOwners::new(),
            counter: UnsafeCell::new(0),
        })
    }

    fn lock(&self, token: u32, block: Block) -> Outcome {
        mutex::lock(&self.word, token, block, &self.owners)
    }

    /// The critical section of `token`: the word must name us, and the counter must not race.
    fn critical(&self, token: u32) {
        let state = self.word.load(Relaxed);
        assert_eq!(
            mutex::holder(state),
            token,
            "inside the critical section the word {state:#x} does not name holder {token}"
        );
        self.counter.with_mut(|p| {
            // SAFETY: only the lock holder touches the counter; a violation of mutual exclusion
            // is exactly what loom reports here as a causality violation instead.
            unsafe { *p += 1 }
        });
    }

    /// The counter, read after every thread was joined.
    fn total(&self) -> u32 {
        self.counter.with(|p| {
            // SAFETY: every thread that wrote it has been joined.
            unsafe { *p }
        })
    }

    fn lock_increment_unlock(&self, token: u32) {
        assert_eq!(self.lock(token, Block::Forever), Outcome::Acquired);
        self.critical(token);
        assert_eq!(mutex::unlock(&self.word, token), Ok(()));
    }
}

// ---------------------------------------------------------------------------------------------
// Mutual exclusion

/// `threads` threads (the main one included) each lock with `Block::Forever`, increment the
/// counter, unlock. The total is exact, the word ends unlocked, nobody deadlocks. Returns in
/// how many executions a sleep slice ended while the holder was alive (the waiter looked at
/// the holder, found it alive, and went back to sleep or took the freed lock).
fn exclusion(threads: u32, faults: &Faults) -> usize {
    let m = faults.on("lock");
    let slice_ends = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = slice_ends.clone();
    harness::check(PREEMPTIONS, move || {
        let s = Locked::new(LoomWord::new(UNLOCKED).mutation(m));
        let handles: Vec<_> = (2..=threads)
            .map(|token| {
                let s = s.clone();
                loom::thread::spawn(move || s.lock_increment_unlock(token))
            })
            .collect();
        s.lock_increment_unlock(1);
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(s.total(), threads);
        assert_eq!(s.word.get(), UNLOCKED);
        if s.word.stats().timeouts > 0 {
            counted.fetch_add(1, Relaxed);
        }
    });
    slice_ends.load(Relaxed)
}

#[test]
fn exclusion_2_threads() {
    assert!(
        exclusion(2, &Faults::none()) > 0,
        "no sleep slice ever ended"
    );
}

#[test]
fn exclusion_3_threads() {
    assert!(
        exclusion(3, &Faults::none()) > 0,
        "no sleep slice ever ended"
    );
}

#[test]
fn child_exclusion_2_threads() {
    if let Some(f) = Faults::from_env() {
        exclusion(2, &f);
    }
}

#[test]
fn child_exclusion_3_threads() {
    if let Some(f) = Faults::from_env() {
        exclusion(3, &f);
    }
}

#[test]
fn caught_relaxed_ordering_by_exclusion_2() {
    expect_caught(
        "child_exclusion_2_threads",
        "relaxed-ordering",
        &["Causality violation"],
    );
}

#[test]
fn caught_relaxed_stores_by_exclusion_2() {
    expect_caught(
        "child_exclusion_2_threads",
        "relaxed-stores",
        &["Causality violation"],
    );
}

#[test]
fn caught_relaxed_loads_by_exclusion_2() {
    expect_caught(
        "child_exclusion_2_threads",
        "relaxed-loads",
        &["Causality violation"],
    );
}

#[test]
fn caught_skip_wake_by_exclusion_2() {
    expect_caught("child_exclusion_2_threads", "skip-wake", &["deadlock"]);
}

#[test]
fn caught_drop_waiters_mark_by_exclusion_3() {
    expect_caught(
        "child_exclusion_3_threads",
        "drop-waiters-mark",
        &["deadlock"],
    );
}

/// Dropping the mark everywhere, even where it is set, means nobody ever sleeps: waiters spin
/// without bound while the holder runs, which loom reports as a model that needs the processor
/// to make progress.
#[test]
fn caught_drop_every_waiters_mark_by_exclusion_3() {
    expect_caught(
        "child_exclusion_3_threads",
        "drop-every-waiters-mark",
        &["Model exceeded maximum number of branches"],
    );
}

// ---------------------------------------------------------------------------------------------
// No lost wake-up

/// Executions of [`no_lost_wakeup`] in which two threads were asleep on the word together.
static TWO_ASLEEP: AtomicUsize = AtomicUsize::new(0);
/// Executions of [`no_lost_wakeup`] in which a wait returned spuriously.
static SPURIOUS: AtomicUsize = AtomicUsize::new(0);

/// The main thread holds the lock while two threads contend with `Block::Forever`, each
/// entering twice; waits may also return spuriously (one per execution). Every thread must
/// finish (loom reports a deadlock otherwise) and the word ends unlocked.
fn no_lost_wakeup(faults: &Faults) {
    let m = faults.on("lock");
    harness::check(PREEMPTIONS, move || {
        let s = Locked::new(LoomWord::new(UNLOCKED).spurious(1).mutation(m));
        assert_eq!(s.lock(1, Block::Forever), Outcome::Acquired);
        let handles: Vec<_> = [2, 3]
            .into_iter()
            .map(|token| {
                let s = s.clone();
                loom::thread::spawn(move || {
                    s.lock_increment_unlock(token);
                    s.lock_increment_unlock(token);
                })
            })
            .collect();
        s.critical(1);
        assert_eq!(mutex::unlock(&s.word, 1), Ok(()));
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(s.total(), 5);
        assert_eq!(s.word.get(), UNLOCKED);
        let stats = s.word.stats();
        if stats.max_queued >= 2 {
            TWO_ASLEEP.fetch_add(1, Relaxed);
        }
        if stats.spurious > 0 {
            SPURIOUS.fetch_add(1, Relaxed);
        }
    });
}

#[test]
fn no_lost_wakeup_3_threads() {
    no_lost_wakeup(&Faults::none());
    assert!(
        TWO_ASLEEP.load(Relaxed) > 0,
        "no execution had two sleepers: the model is vacuous"
    );
    assert!(
        SPURIOUS.load(Relaxed) > 0,
        "no execution had a spurious wake-up"
    );
}

#[test]
fn child_no_lost_wakeup_3_threads() {
    if let Some(f) = Faults::from_env() {
        no_lost_wakeup(&f);
    }
}

#[test]
fn caught_skip_wake_by_no_lost_wakeup() {
    expect_caught("child_no_lost_wakeup_3_threads", "skip-wake", &["deadlock"]);
}

#[test]
fn caught_drop_waiters_mark_by_no_lost_wakeup() {
    expect_caught(
        "child_no_lost_wakeup_3_threads",
        "drop-waiters-mark",
        &["deadlock"],
    );
}

// ---------------------------------------------------------------------------------------------
// Block::Try never sleeps

/// The main thread holds the lock; thread B tries twice with `lock(.., Block::Try)`, which must
/// be `Busy` without sleeping (a single try asks the oracle about the live holder); then the
/// main thread releases and B takes the lock by retrying `Block::Try` (never sleeping either)
/// and increments the counter the main thread incremented. A third thread contends with `Block::Forever` throughout, so B's failed tries
/// happen next to a real sleeper whose mark they must not disturb. The sleeper's slices never
/// end here (a slice end with a live holder triples the search; the other models explore it).
fn try_never_blocks(faults: &Faults) {
    let m = faults.on("lock");
    harness::check(PREEMPTIONS, move || {
        let s = Locked::new(LoomWord::new(UNLOCKED).timeouts(0).mutation(m));
        let tried = Arc::new(Signal::new());
        assert_eq!(s.lock(1, Block::Forever), Outcome::Acquired);

        let b = {
            let (s, tried) = (s.clone(), tried.clone());
            loom::thread::spawn(move || {
                for _ in 0..2 {
                    assert_eq!(
                        s.lock(2, Block::Try),
                        Outcome::Busy,
                        "Block::Try took a held lock"
                    );
                }
                tried.set();
                let got = loop {
                    match s.lock(2, Block::Try) {
                        Outcome::Busy => loom::thread::yield_now(),
                        got => break got,
                    }
                };
                assert_eq!(got, Outcome::Acquired);
                s.critical(2);
                assert_eq!(mutex::unlock(&s.word, 2), Ok(()));
                assert!(!s.word.has_slept(), "a Block::Try acquire slept");
            })
        };
        let c = {
            let s = s.clone();
            loom::thread::spawn(move || s.lock_increment_unlock(3))
        };

        s.critical(1);
        tried.wait();
        assert_eq!(mutex::unlock(&s.word, 1), Ok(()));
        b.join().unwrap();
        c.join().unwrap();
        assert_eq!(s.total(), 3);
        assert_eq!(s.word.get(), UNLOCKED);
        assert_eq!(mutex::unlock(&s.word, 1), Err(NotLocked));
    });
}

#[test]
fn try_never_blocks_3_threads() {
    try_never_blocks(&Faults::none());
}

#[test]
fn child_try_never_blocks_3_threads() {
    if let Some(f) = Faults::from_env() {
        try_never_blocks(&f);
    }
}

#[test]
fn caught_relaxed_ordering_by_try_never_blocks() {
    expect_caught(
        "child_try_never_blocks_3_threads",
        "relaxed-ordering",
        &["Causality violation"],
    );
}

// ---------------------------------------------------------------------------------------------
// A timed acquire that gives up

/// Executions of [`timed_give_up`] in which one waiter timed out while the other was still
/// asleep on the word.
static GAVE_UP_NEXT_TO_SLEEPER: AtomicUsize = AtomicUsize::new(0);
/// Executions of [`timed_give_up`] in which a wait that could have timed out was woken first.
static WOKEN_BEFORE_TIMEOUT: AtomicUsize = AtomicUsize::new(0);

/// The main thread (A) holds the lock; B and C acquire with `Block::Until(..)`, and one wait on
/// the word may time out per execution. A releases. Whoever did not give up must still be
/// woken and finish; a waiter gives up (`Busy`) only after a timeout of its own (a timed-out
/// waiter that finds the lock free on its last look takes it); the counter counts exactly the
/// acquisitions; the word ends unlocked.
fn timed_give_up(timeouts: u32, spurious: u32, faults: &Faults) {
    let m = faults.on("lock");
    harness::check(PREEMPTIONS, move || {
        let s = Locked::new(
            LoomWord::new(UNLOCKED)
                .timeouts(timeouts)
                .spurious(spurious)
                .mutation(m),
        );
        assert_eq!(s.lock(1, Block::Forever), Outcome::Acquired);
        // loom has no time: the word's timeout budget decides whether a wait times out.
        let deadline = Instant::now() + Duration::from_secs(1);
        let handles: Vec<_> = [2, 3]
            .into_iter()
            .map(|token| {
                let s = s.clone();
                loom::thread::spawn(move || match s.lock(token, Block::Until(deadline)) {
                    Outcome::Busy => false,
                    Outcome::Acquired => {
                        s.critical(token);
                        assert_eq!(mutex::unlock(&s.word, token), Ok(()));
                        true
                    }
                    other => panic!("a timed acquire of a live holder's lock: {other:?}"),
                })
            })
            .collect();
        s.critical(1);
        assert_eq!(mutex::unlock(&s.word, 1), Ok(()));
        let acquired = handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|&got| got)
            .count() as u32;
        let stats = s.word.stats();
        assert!(
            2 - acquired <= stats.timeouts,
            "a timed acquire gave up without a timeout"
        );
        assert!(stats.timeouts <= timeouts);
        assert_eq!(s.total(), 1 + acquired);
        assert_eq!(s.word.get(), UNLOCKED);
        if stats.timeouts_with_others_queued > 0 {
            GAVE_UP_NEXT_TO_SLEEPER.fetch_add(1, SeqCst);
        }
        if stats.woken_in_window > 0 {
            WOKEN_BEFORE_TIMEOUT.fetch_add(1, SeqCst);
        }
    });
}

#[test]
fn timed_give_up_3_threads() {
    timed_give_up(1, 0, &Faults::none());
    assert!(
        GAVE_UP_NEXT_TO_SLEEPER.load(SeqCst) > 0,
        "no execution timed out next to a sleeper: the model is vacuous"
    );
    assert!(
        WOKEN_BEFORE_TIMEOUT.load(SeqCst) > 0,
        "no timed wait was ever woken before its timeout"
    );
}

#[test]
fn child_timed_give_up_3_threads() {
    if let Some(f) = Faults::from_env() {
        timed_give_up(1, 0, &f);
    }
}

/// Both timed waiters may give up, and any wait may also return spuriously once.
#[test]
fn timed_give_up_both_and_spurious_3_threads() {
    timed_give_up(2, 1, &Faults::none());
}

#[test]
fn caught_timeout_clears_waiters_by_timed_give_up() {
    expect_caught(
        "child_timed_give_up_3_threads",
        "timeout-clears-waiters",
        &["deadlock"],
    );
}

#[test]
fn caught_skip_wake_by_timed_give_up() {
    expect_caught("child_timed_give_up_3_threads", "skip-wake", &["deadlock"]);
}

/// Mutation::None is a valid spec and changes nothing.
#[test]
fn fault_spec_parses() {
    let f = Faults::parse("lock=relaxed-ordering, owner=drop-zero-stores").unwrap();
    assert_eq!(f.on("lock"), Mutation::RelaxedOrdering);
    assert_eq!(f.on("owner"), Mutation::DropZeroStores);
    assert_eq!(f.on("count"), Mutation::None);
    assert_eq!(
        Faults::parse("skip-wake").unwrap().on("any"),
        Mutation::SkipWake
    );
    assert!(Faults::parse("lock=no-such-mutation").is_err());
    for m in Mutation::ALL {
        assert_eq!(m.name().parse::<Mutation>(), Ok(m));
    }
}
