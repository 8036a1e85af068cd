//! loom models of owner-death recovery in `shmsync_protocol::mutex` and `rmutex`: a holder
//! that dies holding the lock is noticed by a waiter when one of its sleep slices ends, exactly
//! one waiter takes the lock over (`Outcome::OwnerDied`, the word `POISONED`), and the others
//! get the lock in turn once the taker marks it consistent, or all hear `NotRecoverable` if the
//! taker releases it poisoned. Mutual exclusion holds throughout and nobody hangs.
//!
//! A death is modelled in two halves: [`LoomOwners::die`] sets the holder's "dead" flag (what
//! the kernel does when it drops a dead process's lease), and [`LoomWord::tick`] lets a sleep
//! slice's worth of time pass (every waiter asleep on the word may then time out, one budget
//! unit each), so that a waiter that went to sleep before the death is not stranded by a
//! timeout budget spent earlier. The dead thread then stops touching the lock, as a killed
//! process would.
//!
//! Each model has a `child_*` twin that runs it with the faults named in
//! `SHMSYNC_LOOM_MUTATION` (words: `lock`, `owner`, `count`; the liveness oracle: `owners`), and
//! `caught_*` tests that run that twin in a child process with a mutation and assert that loom
//! caught it.

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::sync::atomic::AtomicU32;
use shmsync_loom_tests::harness::{self, Faults, Signal, expect_caught};
use shmsync_loom_tests::{LoomOwners, LoomWord};
use shmsync_protocol::Block;
use shmsync_protocol::mutex::{self, NOT_RECOVERABLE, Outcome, UNLOCKED, WAITERS};
use shmsync_protocol::rmutex::{RError, RMutex};
use shmsync_protocol::word::{WaitOutcome, Word};
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};

/// Preemptions explored per execution with 3 threads.
const PREEMPTIONS: usize = 3;
/// Preemptions explored per execution with 4 threads: with 2 the 4-thread models take 1 to
/// 2 minutes each (0.5 to 1.2 million executions), too long for the suite.
const PREEMPTIONS_4_THREADS: usize = 1;

/// The token (and, for the RLock, the thread id) of the holder that dies.
const DEAD: u32 = 1;

/// What the thread that took the lock over does before it releases it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Repair {
    /// `mark_consistent`, then `unlock`: the others get the lock in turn (`Acquired`).
    MarkConsistent,
    /// `unlock` without `mark_consistent`: the lock becomes unrecoverable and every other
    /// thread must return `NotRecoverable`.
    Abandon,
}

/// A lock word, the data it protects, the liveness oracle, and a count of takeovers.
struct Shared {
    word: LoomWord,
    owners: LoomOwners,
    counter: UnsafeCell<u32>,
    /// How many acquires returned `OwnerDied` (a loom atomic: a second takeover is reported
    /// the moment it happens).
    owner_died: AtomicU32,
}

impl Shared {
    fn new(word: LoomWord, owners: LoomOwners) -> Arc<Shared> {
        Arc::new(Shared {
            word,
            owners,
            counter: UnsafeCell::new(0),
            owner_died: AtomicU32::new(0),
        })
    }

    fn lock(&self, token: u32, block: Block) -> Outcome {
        mutex::lock(&self.word, token, block, &self.owners)
    }

    /// The holder with `token` dies holding the lock: its flag is set, then a slice's worth of
    /// time passes, in which up to `slice_ends` waits may end.
    fn die(&self, token: u32, slice_ends: u32) {
        self.owners.die(token);
        self.word.tick(slice_ends);
    }

    /// The critical section of `token`, which got the lock with `outcome`: the word must name
    /// us (poisoned exactly after a takeover), and the counter must not race.
    fn critical(&self, token: u32, outcome: Outcome) {
        let state = self.word.get();
        assert_eq!(
            mutex::holder(state),
            token,
            "inside the critical section the word {state:#x} does not name holder {token}"
        );
        assert_eq!(
            mutex::is_poisoned(state),
            outcome == Outcome::OwnerDied,
            "after {outcome:?} the word {state:#x} is (not) poisoned"
        );
        self.counter.with_mut(|p| {
            // SAFETY: only the lock holder touches the counter; a violation of mutual exclusion
            // is exactly what loom reports here as a causality violation instead.
            unsafe { *p += 1 }
        });
    }

    /// Counts a takeover, failing at once if it is the second.
    fn took_over(&self) {
        let before = self.owner_died.fetch_add(1, Relaxed);
        assert_eq!(before, 0, "OwnerDied was returned twice for one death");
    }

    /// A waiter that got the lock with `outcome`: the critical section (first, so that two
    /// holders show as a violation of mutual exclusion rather than as a second takeover), the
    /// repair if it took the lock over, the release.
    fn use_and_release(&self, token: u32, outcome: Outcome, repair: Repair) {
        match outcome {
            Outcome::OwnerDied => {}
            Outcome::Acquired => assert_eq!(
                repair,
                Repair::MarkConsistent,
                "a lock abandoned poisoned was acquired again"
            ),
            other => panic!("not acquired: {other:?}"),
        }
        self.critical(token, outcome);
        if outcome == Outcome::OwnerDied {
            self.took_over();
            if repair == Repair::MarkConsistent {
                assert!(
                    mutex::mark_consistent(&self.word),
                    "the lock was not poisoned"
                );
            }
        }
        assert_eq!(mutex::unlock(&self.word, token), Ok(()));
    }

    /// The counter, read after every thread was joined.
    fn total(&self) -> u32 {
        self.counter.with(|p| {
            // SAFETY: every thread that wrote it has been joined.
            unsafe { *p }
        })
    }

    /// After every thread was joined: one takeover, and the word as `repair` leaves it.
    fn assert_recovered(&self, outcomes: &[Outcome], repair: Repair) {
        let died = outcomes
            .iter()
            .filter(|&&o| o == Outcome::OwnerDied)
            .count();
        assert_eq!(died, 1, "not exactly one OwnerDied: {outcomes:?}");
        assert_eq!(self.owner_died.load(SeqCst), 1);
        let (others, total, word) = match repair {
            Repair::MarkConsistent => (Outcome::Acquired, 1 + outcomes.len() as u32, UNLOCKED),
            Repair::Abandon => (Outcome::NotRecoverable, 2, NOT_RECOVERABLE),
        };
        assert!(
            outcomes
                .iter()
                .all(|&o| o == Outcome::OwnerDied || o == others),
            "with {repair:?} every other thread must get {others:?}: {outcomes:?}"
        );
        assert_eq!(self.total(), total, "the counter is wrong");
        assert_eq!(self.word.get(), word, "the final word is wrong");
    }
}

// ---------------------------------------------------------------------------------------------
// A holder dies holding the lock

/// How a model of a dead holder is set up.
#[derive(Clone, Copy, Debug)]
struct Death {
    /// Threads that lock with `Block::Forever` (tokens 2, 3, …).
    waiters: u32,
    repair: Repair,
    /// The holder dies only once every waiter is asleep on the word; no slice ends before.
    /// Otherwise the death races with the waiters' arrival, and one slice may end (and find
    /// the holder alive) before it.
    after_all_asleep: bool,
    preemptions: usize,
}

/// The main thread (token [`DEAD`]) takes the lock, increments the counter and dies holding it
/// (never unlocks). `waiters` threads lock with `Block::Forever`: exactly one gets `OwnerDied`,
/// and the others `Acquired` in turn (the taker marks the lock consistent) or all
/// `NotRecoverable` (it does not). Mutual exclusion holds throughout, nobody hangs.
fn died_holding(d: Death, faults: &Faults) {
    let (m, o) = (faults.on("lock"), faults.on("owners"));
    harness::check(d.preemptions, move || {
        let slices_before = if d.after_all_asleep { 0 } else { 1 };
        let s = Shared::new(
            LoomWord::new(UNLOCKED).timeouts(slices_before).mutation(m),
            LoomOwners::new().mutation(o),
        );
        assert_eq!(s.lock(DEAD, Block::Forever), Outcome::Acquired);
        let handles: Vec<_> = (2..2 + d.waiters)
            .map(|token| {
                let s = s.clone();
                loom::thread::spawn(move || {
                    let outcome = s.lock(token, Block::Forever);
                    if outcome != Outcome::NotRecoverable {
                        s.use_and_release(token, outcome, d.repair);
                    } else {
                        assert_eq!(d.repair, Repair::Abandon, "NotRecoverable out of nowhere");
                    }
                    outcome
                })
            })
            .collect();
        s.critical(DEAD, Outcome::Acquired);
        if d.after_all_asleep {
            s.word.wait_for_sleepers(d.waiters as usize);
        }
        s.die(DEAD, d.waiters);
        let outcomes: Vec<Outcome> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        s.assert_recovered(&outcomes, d.repair);
        if d.after_all_asleep {
            // Nobody could time out before the death: a sleeper's slice ended after it.
            assert!(
                s.word.stats().late_timeouts > 0,
                "no sleeper's slice ended late"
            );
        }
    });
}

const TWO_CONSISTENT: Death = Death {
    waiters: 2,
    repair: Repair::MarkConsistent,
    after_all_asleep: false,
    preemptions: PREEMPTIONS,
};

const TWO_ABANDONED: Death = Death {
    repair: Repair::Abandon,
    ..TWO_CONSISTENT
};

const THREE_CONSISTENT: Death = Death {
    waiters: 3,
    preemptions: PREEMPTIONS_4_THREADS,
    ..TWO_CONSISTENT
};

const THREE_ABANDONED: Death = Death {
    repair: Repair::Abandon,
    ..THREE_CONSISTENT
};

/// Preemption bound 2: at 3 this model takes 111,558 executions (8 to 12 s), 14 times as many.
const TWO_ASLEEP: Death = Death {
    after_all_asleep: true,
    preemptions: 2,
    ..TWO_CONSISTENT
};

const ONE_ASLEEP: Death = Death {
    waiters: 1,
    preemptions: PREEMPTIONS,
    ..TWO_ASLEEP
};

#[test]
fn died_holding_2_waiters_consistent() {
    died_holding(TWO_CONSISTENT, &Faults::none());
}

#[test]
fn died_holding_2_waiters_not_recoverable() {
    died_holding(TWO_ABANDONED, &Faults::none());
}

#[test]
fn died_holding_3_waiters_consistent() {
    died_holding(THREE_CONSISTENT, &Faults::none());
}

#[test]
fn died_holding_3_waiters_not_recoverable() {
    died_holding(THREE_ABANDONED, &Faults::none());
}

/// The holder dies while every waiter is already asleep: a slice end must wake them to look.
#[test]
fn died_with_1_waiter_asleep() {
    died_holding(ONE_ASLEEP, &Faults::none());
}

#[test]
fn died_with_2_waiters_asleep() {
    died_holding(TWO_ASLEEP, &Faults::none());
}

#[test]
fn child_died_holding_2_waiters_consistent() {
    if let Some(f) = Faults::from_env() {
        died_holding(TWO_CONSISTENT, &f);
    }
}

#[test]
fn child_died_holding_2_waiters_not_recoverable() {
    if let Some(f) = Faults::from_env() {
        died_holding(TWO_ABANDONED, &f);
    }
}

#[test]
fn child_died_with_1_waiter_asleep() {
    if let Some(f) = Faults::from_env() {
        died_holding(ONE_ASLEEP, &f);
    }
}

#[test]
fn child_died_with_2_waiters_asleep() {
    if let Some(f) = Faults::from_env() {
        died_holding(TWO_ASLEEP, &f);
    }
}

/// Taking the lock over with a plain store: both waiters that noticed the death "win".
#[test]
fn caught_takeover_by_store_by_died_holding() {
    expect_caught(
        "child_died_with_2_waiters_asleep",
        "lock=takeover-by-store",
        &[
            "OwnerDied was returned twice",
            "Causality violation",
            "does not name holder",
        ],
    );
}

/// An oracle that calls a live holder dead: a waiter takes the lock from under the thread that
/// took it over (or from under the holder before it died): two threads in the critical section.
#[test]
fn caught_says_dead_by_died_holding() {
    expect_caught(
        "child_died_holding_2_waiters_consistent",
        "owners=says-dead",
        &["Causality violation", "does not name holder"],
    );
}

/// Waiters that never look at the holder again once asleep: nobody notices the death.
#[test]
fn caught_no_slices_by_died_asleep() {
    expect_caught(
        "child_died_with_1_waiter_asleep",
        "owners=no-slices",
        &["deadlock"],
    );
}

/// An oracle that never reports a death: the waiters sleep for ever.
#[test]
fn caught_never_dead_by_died_asleep() {
    expect_caught(
        "child_died_with_1_waiter_asleep",
        "owners=never-dead",
        &["deadlock"],
    );
}

/// A `Block::Forever` waiter that takes a slice end for its deadline gives up.
#[test]
fn caught_slice_expires_by_died_holding() {
    expect_caught(
        "child_died_holding_2_waiters_consistent",
        "owners=slice-expires",
        &["not acquired: Busy"],
    );
}

/// A release of a poisoned lock that frees it instead of making it unrecoverable: the other
/// waiter acquires a lock that was abandoned poisoned.
#[test]
fn caught_forget_not_recoverable_by_died_holding() {
    expect_caught(
        "child_died_holding_2_waiters_not_recoverable",
        "lock=forget-not-recoverable",
        &[
            "a lock abandoned poisoned was acquired again",
            "every other thread must get",
            "the final word is wrong",
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Block::Try on a dead holder's lock

/// The main thread (token [`DEAD`]) holds the lock; B's single try must be `Busy` while it is
/// alive (the oracle is asked and says alive); then the holder dies and B, once told so,
/// retries with `Block::Try` until it gets the lock, never sleeping. C locks with
/// `Block::Forever` throughout. Exactly one of B and C gets `OwnerDied`; both get the lock.
fn try_on_dead_holder(faults: &Faults) {
    let (m, o) = (faults.on("lock"), faults.on("owners"));
    harness::check(PREEMPTIONS, move || {
        let s = Shared::new(
            LoomWord::new(UNLOCKED).timeouts(0).mutation(m),
            LoomOwners::new().mutation(o),
        );
        let (tried, died) = (Arc::new(Signal::new()), Arc::new(Signal::new()));
        assert_eq!(s.lock(DEAD, Block::Forever), Outcome::Acquired);
        let b = {
            let (s, tried, died) = (s.clone(), tried.clone(), died.clone());
            loom::thread::spawn(move || {
                let first = s.lock(2, Block::Try);
                assert_eq!(first, Outcome::Busy, "Block::Try took a live holder's lock");
                tried.set();
                died.wait();
                let outcome = loop {
                    match s.lock(2, Block::Try) {
                        Outcome::Busy => loom::thread::yield_now(),
                        outcome => break outcome,
                    }
                };
                s.use_and_release(2, outcome, Repair::MarkConsistent);
                assert!(!s.word.has_slept(), "a Block::Try acquire slept");
                outcome
            })
        };
        let c = {
            let s = s.clone();
            loom::thread::spawn(move || {
                let outcome = s.lock(3, Block::Forever);
                s.use_and_release(3, outcome, Repair::MarkConsistent);
                outcome
            })
        };
        s.critical(DEAD, Outcome::Acquired);
        tried.wait();
        s.die(DEAD, 1);
        died.set();
        let outcomes = [b.join().unwrap(), c.join().unwrap()];
        s.assert_recovered(&outcomes, Repair::MarkConsistent);
    });
}

#[test]
fn try_on_dead_holder_3_threads() {
    try_on_dead_holder(&Faults::none());
}

#[test]
fn child_try_on_dead_holder_3_threads() {
    if let Some(f) = Faults::from_env() {
        try_on_dead_holder(&f);
    }
}

/// An oracle that calls the live holder dead: the first try takes the lock from under it.
#[test]
fn caught_says_dead_by_try_on_dead_holder() {
    expect_caught(
        "child_try_on_dead_holder_3_threads",
        "owners=says-dead",
        &["Block::Try took a live holder's lock"],
    );
}

/// The main thread (token [`DEAD`]) takes the lock and dies holding it; then B's *single*
/// `Block::Try` must take it over (`OwnerDied`) without sleeping. `others` more threads lock
/// with `Block::Forever` meanwhile, but their slices never end, so B is the only one that can
/// take the lock over.
fn single_try_on_dead_holder(others: u32, faults: &Faults) {
    let (m, o) = (faults.on("lock"), faults.on("owners"));
    harness::check(PREEMPTIONS, move || {
        let s = Shared::new(
            LoomWord::new(UNLOCKED).timeouts(0).mutation(m),
            LoomOwners::new().mutation(o),
        );
        let died = Arc::new(Signal::new());
        assert_eq!(s.lock(DEAD, Block::Forever), Outcome::Acquired);
        let b = {
            let (s, died) = (s.clone(), died.clone());
            loom::thread::spawn(move || {
                died.wait();
                let outcome = s.lock(2, Block::Try);
                assert_eq!(
                    outcome,
                    Outcome::OwnerDied,
                    "a single Block::Try did not take a dead holder's lock over"
                );
                s.use_and_release(2, outcome, Repair::MarkConsistent);
                assert!(!s.word.has_slept(), "a Block::Try acquire slept");
                outcome
            })
        };
        let handles: Vec<_> = (3..3 + others)
            .map(|token| {
                let s = s.clone();
                loom::thread::spawn(move || {
                    let outcome = s.lock(token, Block::Forever);
                    s.use_and_release(token, outcome, Repair::MarkConsistent);
                    outcome
                })
            })
            .collect();
        s.critical(DEAD, Outcome::Acquired);
        s.owners.die(DEAD);
        died.set();
        let mut outcomes = vec![b.join().unwrap()];
        outcomes.extend(handles.into_iter().map(|h| h.join().unwrap()));
        s.assert_recovered(&outcomes, Repair::MarkConsistent);
    });
}

#[test]
fn single_try_on_dead_holder_2_threads() {
    single_try_on_dead_holder(0, &Faults::none());
}

/// A thread that arrives while B tries sets `WAITERS` on the dead holder's word, so B's
/// takeover compare-exchange from the word it judged fails. This model found that B then
/// returned `Busy` although the holder was dead; the protocol now judges the holder again when
/// only the flag bits changed (see `README.md`, "Findings").
#[test]
fn single_try_on_dead_holder_next_to_arrival_3_threads() {
    single_try_on_dead_holder(1, &Faults::none());
}

// ---------------------------------------------------------------------------------------------
// Deaths elsewhere: the taker dies too, a woken waiter dies

/// The main thread (token [`DEAD`]) takes the lock and dies holding it. B (token 2) locks,
/// must take it over (`OwnerDied`), and dies too before marking it consistent (the word stays
/// poisoned, naming B). C (token 3), which starts to lock once B took the lock over, must take
/// it over from B (`OwnerDied` again: one per death), mark it consistent and release it.
fn taker_died_too(faults: &Faults) {
    let (m, o) = (faults.on("lock"), faults.on("owners"));
    harness::check(PREEMPTIONS, move || {
        let s = Shared::new(
            LoomWord::new(UNLOCKED).timeouts(0).mutation(m),
            LoomOwners::new().mutation(o),
        );
        let (died, taken) = (Arc::new(Signal::new()), Arc::new(Signal::new()));
        assert_eq!(s.lock(DEAD, Block::Forever), Outcome::Acquired);
        let b = {
            let (s, died, taken) = (s.clone(), died.clone(), taken.clone());
            loom::thread::spawn(move || {
                died.wait();
                let outcome = s.lock(2, Block::Forever);
                assert_eq!(outcome, Outcome::OwnerDied, "B did not take the lock over");
                taken.set();
                s.critical(2, outcome);
                s.die(2, 1);
            })
        };
        let c = {
            let (s, taken) = (s.clone(), taken.clone());
            loom::thread::spawn(move || {
                taken.wait();
                let outcome = s.lock(3, Block::Forever);
                assert_eq!(outcome, Outcome::OwnerDied, "C did not take the lock over");
                s.critical(3, outcome);
                assert!(mutex::mark_consistent(&s.word), "the lock was not poisoned");
                assert_eq!(mutex::unlock(&s.word, 3), Ok(()));
            })
        };
        s.critical(DEAD, Outcome::Acquired);
        s.die(DEAD, 1);
        died.set();
        b.join().unwrap();
        c.join().unwrap();
        assert_eq!(s.total(), 3);
        assert_eq!(s.word.get(), UNLOCKED);
    });
}

#[test]
fn taker_died_too_3_threads() {
    taker_died_too(&Faults::none());
}

/// The main thread (token [`DEAD`]) holds the lock and releases it normally. D (token 4) is a
/// waiter reduced to its sleeping half: it marks the word `WAITERS` and sleeps on it, and dies
/// as soon as its wait returns, so a wake-up it consumed is lost with it (a waiter killed while
/// being woken). C (token 3) locks with `Block::Forever`: when the wake-up went to D, C must
/// notice the free lock when its slice ends (D's death lets a slice pass) and take it.
fn woken_waiter_died(faults: &Faults) {
    let (m, o) = (faults.on("lock"), faults.on("owners"));
    harness::check(PREEMPTIONS, move || {
        let s = Shared::new(
            LoomWord::new(UNLOCKED).timeouts(0).mutation(m),
            LoomOwners::new().mutation(o),
        );
        assert_eq!(s.lock(DEAD, Block::Forever), Outcome::Acquired);
        let d = {
            let s = s.clone();
            loom::thread::spawn(move || {
                let state = s.word.load(Relaxed);
                let mut woken = false;
                if mutex::holder(state) == DEAD {
                    let marked = state | WAITERS;
                    let cas = s.word.compare_exchange(state, marked, Relaxed, Relaxed);
                    if state == marked || cas.is_ok() {
                        woken = s.word.wait(marked, None) == WaitOutcome::Woken;
                    }
                }
                s.die(4, 1);
                woken
            })
        };
        let c = {
            let s = s.clone();
            loom::thread::spawn(move || {
                let outcome = s.lock(3, Block::Forever);
                s.use_and_release(3, outcome, Repair::MarkConsistent);
                s.word.has_slept()
            })
        };
        s.critical(DEAD, Outcome::Acquired);
        assert_eq!(mutex::unlock(&s.word, DEAD), Ok(()));
        let d_woken = d.join().unwrap();
        let c_slept = c.join().unwrap();
        assert_eq!(s.total(), 2);
        assert_eq!(s.word.get(), UNLOCKED);
        if d_woken && c_slept && s.word.stats().late_timeouts > 0 {
            WAKE_LOST_WITH_WAITER.fetch_add(1, SeqCst);
        }
    });
}

/// Executions of [`woken_waiter_died`] in which D took the wake-up to its death while C slept,
/// and C's slice ended after the death.
static WAKE_LOST_WITH_WAITER: AtomicUsize = AtomicUsize::new(0);

#[test]
fn woken_waiter_died_3_threads() {
    woken_waiter_died(&Faults::none());
    assert!(
        WAKE_LOST_WITH_WAITER.load(SeqCst) > 0,
        "no execution lost a wake-up with a dying waiter: the model is vacuous"
    );
}

#[test]
fn child_woken_waiter_died_3_threads() {
    if let Some(f) = Faults::from_env() {
        woken_waiter_died(&f);
    }
}

/// Without slices the wake-up the dying waiter consumed is lost for good: C sleeps for ever.
#[test]
fn caught_no_slices_by_woken_waiter_died() {
    expect_caught(
        "child_woken_waiter_died_3_threads",
        "owners=no-slices",
        &["deadlock"],
    );
}

// ---------------------------------------------------------------------------------------------
// An RLock whose owner dies

/// The RLock's words, the data it protects, the oracle, and a count of takeovers.
struct RShared {
    lock: LoomWord,
    owner: LoomWord,
    count: LoomWord,
    owner_token: LoomWord,
    owners: LoomOwners,
    counter: UnsafeCell<u32>,
    owner_died: AtomicU32,
}

impl RShared {
    fn rm(&self) -> RMutex<'_, LoomWord> {
        RMutex {
            lock: &self.lock,
            owner: &self.owner,
            count: &self.count,
            owner_token: &self.owner_token,
        }
    }

    /// Thread `me` of the process with `token`, inside with `depth` entries.
    fn critical(&self, me: u32, token: u32, depth: u32) {
        assert_eq!(self.rm().owner(), Some(me), "inside, the owner is not {me}");
        assert_eq!(
            self.rm().count(),
            depth,
            "inside, thread {me}'s count is wrong"
        );
        let holder = mutex::holder(self.lock.get());
        assert_eq!(holder, token, "inside, the lock word does not name {token}");
        self.counter.with_mut(|p| {
            // SAFETY: only the owner touches the counter; a violation of mutual exclusion is
            // exactly what loom reports here as a causality violation instead.
            unsafe { *p += 1 }
        });
    }

    fn total(&self) -> u32 {
        self.counter.with(|p| {
            // SAFETY: every thread that wrote it has been joined.
            unsafe { *p }
        })
    }
}

/// Thread [`DEAD`] of process [`DEAD`] enters the RLock twice (count 2) and dies owning it.
/// Thread 2 of process 2, and thread 1 of process 3 (the dead thread's id, reused in another
/// process), each first try to release it (refused: neither owns it), then acquire with
/// `Block::Forever`: exactly one gets `OwnerDied` with a fresh count of 1 and itself as owner;
/// it marks the lock consistent, re-enters once and leaves twice; the other then gets it
/// (`Acquired`, count 1). The reused thread id is never taken for the owner.
fn rlock_owner_died(faults: &Faults) {
    let (fl, fo, fc) = (faults.on("lock"), faults.on("owner"), faults.on("count"));
    let o = faults.on("owners");
    harness::check(PREEMPTIONS, move || {
        let s = Arc::new(RShared {
            lock: LoomWord::new(UNLOCKED).timeouts(0).mutation(fl),
            owner: LoomWord::new(0).mutation(fo),
            count: LoomWord::new(0).mutation(fc),
            owner_token: LoomWord::new(0),
            owners: LoomOwners::new().mutation(o),
            counter: UnsafeCell::new(0),
            owner_died: AtomicU32::new(0),
        });
        let enter = |s: &RShared, me, token| s.rm().acquire(me, token, Block::Forever, &s.owners);
        assert_eq!(enter(&s, DEAD, DEAD), Ok(Outcome::Acquired));
        assert_eq!(enter(&s, DEAD, DEAD), Ok(Outcome::Acquired));
        // (thread id, process token): another thread, and the dead thread's id reused.
        let handles: Vec<_> = [(2, 2), (DEAD, 3)]
            .into_iter()
            .map(|(me, token)| {
                let s = s.clone();
                loom::thread::spawn(move || {
                    let early = s.rm().release(me, token);
                    assert!(
                        matches!(early, Err(RError::NotOwner | RError::NotLocked)),
                        "thread {me} of process {token} released a lock it never took: {early:?}"
                    );
                    let outcome = enter(&s, me, token).expect("acquire");
                    match outcome {
                        Outcome::OwnerDied => {
                            let before = s.owner_died.fetch_add(1, Relaxed);
                            assert_eq!(before, 0, "OwnerDied was returned twice for one death");
                        }
                        Outcome::Acquired => {}
                        other => panic!("thread {me} of process {token} got {other:?}"),
                    }
                    s.critical(me, token, 1);
                    if outcome == Outcome::OwnerDied {
                        assert!(mutex::mark_consistent(&s.lock), "the lock was not poisoned");
                    }
                    assert_eq!(enter(&s, me, token), Ok(Outcome::Acquired), "re-enter");
                    s.critical(me, token, 2);
                    assert_eq!(s.rm().release(me, token), Ok(()), "first release");
                    assert_eq!(s.rm().release(me, token), Ok(()), "last release");
                    outcome
                })
            })
            .collect();
        s.critical(DEAD, DEAD, 2);
        s.owners.die(DEAD);
        s.lock.tick(2);
        let outcomes: Vec<Outcome> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let died = outcomes
            .iter()
            .filter(|&&o| o == Outcome::OwnerDied)
            .count();
        assert_eq!(died, 1, "not exactly one OwnerDied: {outcomes:?}");
        assert_eq!(s.total(), 1 + 2 * 2);
        assert_eq!(s.lock.get(), UNLOCKED, "the lock word is not free");
        assert_eq!(s.owner.get(), 0, "the owner word is not cleared");
        assert_eq!(s.count.get(), 0, "the count word is not cleared");
    });
}

#[test]
fn rlock_owner_died_3_threads() {
    rlock_owner_died(&Faults::none());
}

#[test]
fn child_rlock_owner_died_3_threads() {
    if let Some(f) = Faults::from_env() {
        rlock_owner_died(&f);
    }
}

/// Taking the lock over with a plain store: both threads become owners.
#[test]
fn caught_takeover_by_store_by_rlock_owner_died() {
    expect_caught(
        "child_rlock_owner_died_3_threads",
        "lock=takeover-by-store",
        &[
            "OwnerDied was returned twice",
            "Causality violation",
            "the owner is not",
            "count is wrong",
            "does not name",
        ],
    );
}
