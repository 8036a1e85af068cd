//! loom models of `shmsync_protocol::semaphore` and of the hold table of
//! `shmsync_protocol::holds` that gives a dead process's permits back: a semaphore never hands
//! out more permits than it has, a sleeper is woken by a release, two racing releases of a
//! bounded semaphore cannot both pass the bound; a dead holder's permits come back exactly
//! once, a death with a change in flight breaks the semaphore, and a live recoverer is not
//! taken for dead.
//!
//! A "process" is a token of [`LoomOwners`]; its hold-table entry is a pair of [`LoomWord`]s
//! (`owner`, `counts`). A holder dies at a point the model chooses ([`LoomOwners::die`], then a
//! sleep slice's worth of time passes on the semaphore's word, [`LoomWord::tick`]) and then
//! stops touching anything, as a killed process would.
//!
//! Each model has a `child_*` twin that runs it with the faults named in
//! `SHMSYNC_LOOM_MUTATION` (words: `value`, `sleepers`, `owner`, `counts`; the liveness oracle:
//! `owners`), and `caught_*` tests that run that twin in a child process with a mutation and
//! assert that loom caught it.

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::sync::atomic::AtomicU32;
use shmsync_loom_tests::harness::{self, Faults, Signal, expect_caught};
use shmsync_loom_tests::{LoomOwners, LoomWord};
use shmsync_protocol::Block;
use shmsync_protocol::holds::{Attribution, Entry, EntryError, Holder, Unattributed};
use shmsync_protocol::semaphore::{Acquired, MAX_VALUE, ReleaseError, Semaphore};
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// Preemptions explored per execution.
const PREEMPTIONS: usize = 3;

/// A semaphore's words, the oracle, the data one permit protects, and a count of holders.
struct Sem {
    value: LoomWord,
    sleepers: LoomWord,
    owners: LoomOwners,
    /// The bound of `release` (the initial value of a bounded semaphore, or [`MAX_VALUE`]).
    bound: u32,
    /// Threads holding a permit right now (a loom atomic: one too many is reported at once;
    /// Relaxed, so that it orders nothing between holders).
    inside: AtomicU32,
    /// Touched by holders only when the semaphore has one permit (a mutex).
    counter: UnsafeCell<u32>,
    /// The token of the last process that gave a dead process's permits back (0: none).
    given_back_by: AtomicU32,
}

impl Sem {
    fn new(value: LoomWord, sleepers: LoomWord, owners: LoomOwners, bound: u32) -> Sem {
        Sem {
            value,
            sleepers,
            owners,
            bound,
            inside: AtomicU32::new(0),
            counter: UnsafeCell::new(0),
            given_back_by: AtomicU32::new(0),
        }
    }

    fn sem(&self) -> Semaphore<'_, LoomWord> {
        Semaphore {
            value: &self.value,
            sleepers: &self.sleepers,
        }
    }

    fn acquire(
        &self,
        attribution: &impl Attribution,
        block: Block,
        reclaim: impl FnMut(),
    ) -> Acquired {
        self.sem()
            .acquire(attribution, block, &self.owners, reclaim)
    }

    /// The object as the hold table of process `me` sees it (as `src/semaphore.rs` builds it:
    /// permits that would pass the bound mean the books are wrong, and break the semaphore).
    fn counter(&self, me: u32) -> Counter<'_> {
        Counter { s: self, me }
    }

    /// Holding one of `permits` permits: at most `permits` threads are here at once; with one
    /// permit, the counter must not race.
    fn critical(&self, permits: u32) {
        let before = self.inside.fetch_add(1, Relaxed);
        assert!(
            before < permits,
            "more permits handed out than exist: {} holders of {permits}",
            before + 1
        );
        if permits == 1 {
            self.counter.with_mut(|p| {
                // SAFETY: with one permit only its holder touches the counter; a violation is
                // exactly what loom reports here as a causality violation instead.
                unsafe { *p += 1 }
            });
        }
        self.inside.fetch_sub(1, Relaxed);
    }

    /// The permits left, after every thread was joined (`None`: broken).
    fn value(&self) -> Option<u32> {
        self.sem().value()
    }
}

/// [`Holder`] for the semaphore, as in `src/semaphore.rs` (plus a record of who gave back).
struct Counter<'a> {
    s: &'a Sem,
    me: u32,
}

impl Holder for Counter<'_> {
    fn give_back(&self, n: u32) {
        self.s.given_back_by.store(self.me, Relaxed);
        let _ = self.s.sem().add_up_to(n, self.s.bound);
    }
    fn break_object(&self) {
        self.s.sem().break_it();
    }
}

/// One hold-table entry.
struct EntryWords {
    owner: LoomWord,
    counts: LoomWord,
}

impl EntryWords {
    fn new(faults: &Faults) -> EntryWords {
        EntryWords {
            owner: LoomWord::new(0).mutation(faults.on("owner")),
            counts: LoomWord::new(0).mutation(faults.on("counts")),
        }
    }

    fn entry(&self) -> Entry<'_, LoomWord> {
        Entry {
            owner: &self.owner,
            counts: &self.counts,
        }
    }
}

fn sem_words(faults: &Faults, value: u32, timeouts: u32) -> (LoomWord, LoomWord) {
    (
        LoomWord::new(value)
            .timeouts(timeouts)
            .mutation(faults.on("value")),
        LoomWord::new(0).mutation(faults.on("sleepers")),
    )
}

// ---------------------------------------------------------------------------------------------
// Permits are never over-handed

/// `permits` permits, three threads (the main one included) that each acquire with
/// `Block::Forever`, hold (at most `permits` at once; with one permit the counter must not
/// race) and release. Nobody hangs, the value ends where it started.
fn exclusion(permits: u32, faults: &Faults) {
    let faults = faults.clone();
    harness::check(PREEMPTIONS, move || {
        let (value, sleepers) = sem_words(&faults, permits, 1);
        let s = Arc::new(Sem::new(value, sleepers, LoomOwners::new(), MAX_VALUE));
        fn run(s: &Sem, permits: u32) {
            let got = s.acquire(&Unattributed, Block::Forever, || {});
            assert_eq!(got, Acquired::Yes, "acquire did not get a permit");
            s.critical(permits);
            assert_eq!(s.sem().release(s.bound), Ok(()), "a release was refused");
        }
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let s = s.clone();
                loom::thread::spawn(move || run(&s, permits))
            })
            .collect();
        run(&s, permits);
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(s.value(), Some(permits), "the permits do not add up");
    });
}

#[test]
fn exclusion_1_permit_3_threads() {
    exclusion(1, &Faults::none());
}

#[test]
fn exclusion_2_permits_3_threads() {
    exclusion(2, &Faults::none());
}

#[test]
fn child_exclusion_1_permit_3_threads() {
    if let Some(f) = Faults::from_env() {
        exclusion(1, &f);
    }
}

#[test]
fn child_exclusion_2_permits_3_threads() {
    if let Some(f) = Faults::from_env() {
        exclusion(2, &f);
    }
}

/// A take or a release that is a load and a separate store: two threads take the last permit,
/// or two releases make two permits of one.
#[test]
fn caught_cas_by_load_store_by_exclusion_1() {
    expect_caught(
        "child_exclusion_1_permit_3_threads",
        "value=cas-by-load-store",
        &[
            "Causality violation",
            "more permits handed out",
            "the permits do not add up",
        ],
    );
}

/// Taking a permit without Acquire (and giving it without Release): the counter races.
#[test]
fn caught_relaxed_ordering_by_exclusion_1() {
    expect_caught(
        "child_exclusion_1_permit_3_threads",
        "value=relaxed-ordering",
        &["Causality violation"],
    );
}

/// "A permit is free" checked, then taken with an unconditional decrement: with two permits
/// and three takers a third thread gets in, or the count goes below zero (where it reads as
/// broken).
#[test]
fn caught_check_then_add_by_exclusion_2() {
    expect_caught(
        "child_exclusion_2_permits_3_threads",
        "value=check-then-add",
        &[
            "more permits handed out",
            "did not get a permit",
            "a release was refused",
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// No lost wake-up

/// Executions of [`no_lost_wakeup`] in which both acquirers were asleep at once.
static TWO_ASLEEP: AtomicUsize = AtomicUsize::new(0);
/// Executions of [`no_lost_wakeup`] in which a release found no sleeper counted and did not
/// wake, while an acquirer was on its way to sleep.
static SLEEP_AVOIDED: AtomicUsize = AtomicUsize::new(0);

/// No permit; two threads acquire with `Block::Forever` (they sleep); the main thread
/// releases twice. Both acquirers must get a permit (a lost wake-up leaves one asleep for ever,
/// which loom reports as a deadlock). One slice end (a timeout while nobody released yet) is
/// allowed per execution.
fn no_lost_wakeup(faults: &Faults) {
    let faults = faults.clone();
    harness::check(PREEMPTIONS, move || {
        let (value, sleepers) = sem_words(&faults, 0, 1);
        let s = Arc::new(Sem::new(value, sleepers, LoomOwners::new(), MAX_VALUE));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let s = s.clone();
                loom::thread::spawn(move || {
                    let got = s.acquire(&Unattributed, Block::Forever, || {});
                    assert_eq!(got, Acquired::Yes, "acquire did not get a permit");
                })
            })
            .collect();
        assert_eq!(s.sem().release(s.bound), Ok(()));
        assert_eq!(s.sem().release(s.bound), Ok(()));
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(s.value(), Some(0));
        let stats = s.value.stats();
        if stats.max_queued >= 2 {
            TWO_ASLEEP.fetch_add(1, Relaxed);
        }
        if stats.wakes < 2 {
            SLEEP_AVOIDED.fetch_add(1, Relaxed);
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
        SLEEP_AVOIDED.load(Relaxed) > 0,
        "no release ever skipped its wake call"
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

/// A sleeper that does not count itself: the release never wakes it.
#[test]
fn caught_drop_adds_by_no_lost_wakeup() {
    expect_caught(
        "child_no_lost_wakeup_3_threads",
        "sleepers=drop-adds",
        &["deadlock"],
    );
}

/// The releaser's read of `sleepers` without SeqCst: it may miss a sleeper whose futex wait
/// still read the old value (the store-buffer pattern).
#[test]
fn caught_relaxed_sleepers_by_no_lost_wakeup() {
    expect_caught(
        "child_no_lost_wakeup_3_threads",
        "sleepers=relaxed-ordering",
        &["deadlock"],
    );
}

/// Executions of [`timed_acquire`] in which the timed acquire got a permit, and gave up.
static TIMED_GOT: AtomicUsize = AtomicUsize::new(0);
static TIMED_GAVE_UP: AtomicUsize = AtomicUsize::new(0);

/// No permit; A acquires with a deadline (its wait may time out: one timeout per execution),
/// B with `Block::Forever`; the main thread releases twice. B must get a permit; A gets one,
/// or gives up (`Busy`) only after a timeout of its own, and then the permit it did not take
/// is still there. A's timeout must not strand B.
fn timed_acquire(faults: &Faults) {
    let faults = faults.clone();
    harness::check(PREEMPTIONS, move || {
        let (value, sleepers) = sem_words(&faults, 0, 1);
        let s = Arc::new(Sem::new(value, sleepers, LoomOwners::new(), MAX_VALUE));
        let a = {
            let s = s.clone();
            loom::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(1);
                s.acquire(&Unattributed, Block::Until(deadline), || {})
            })
        };
        let b = {
            let s = s.clone();
            loom::thread::spawn(move || s.acquire(&Unattributed, Block::Forever, || {}))
        };
        assert_eq!(s.sem().release(s.bound), Ok(()));
        assert_eq!(s.sem().release(s.bound), Ok(()));
        let (a, b) = (a.join().unwrap(), b.join().unwrap());
        assert_eq!(b, Acquired::Yes, "the untimed acquire did not get a permit");
        match a {
            Acquired::Yes => {
                assert_eq!(s.value(), Some(0));
                TIMED_GOT.fetch_add(1, Relaxed);
            }
            Acquired::Busy => {
                assert_eq!(s.value.stats().timeouts, 1, "gave up without timing out");
                assert_eq!(s.value(), Some(1), "the permit A did not take is gone");
                TIMED_GAVE_UP.fetch_add(1, Relaxed);
            }
            other => panic!("the timed acquire got {other:?}"),
        }
    });
}

#[test]
fn timed_acquire_3_threads() {
    timed_acquire(&Faults::none());
    assert!(
        TIMED_GOT.load(Relaxed) > 0,
        "the timed acquire never got a permit"
    );
    assert!(
        TIMED_GAVE_UP.load(Relaxed) > 0,
        "the timed acquire never gave up"
    );
}

#[test]
fn child_timed_acquire_3_threads() {
    if let Some(f) = Faults::from_env() {
        timed_acquire(&f);
    }
}

#[test]
fn caught_skip_wake_by_timed_acquire() {
    expect_caught("child_timed_acquire_3_threads", "skip-wake", &["deadlock"]);
}

// ---------------------------------------------------------------------------------------------
// The bound of a bounded semaphore

/// A bounded semaphore of one permit, taken: two threads release it at once. Exactly one
/// release passes, the other is `AboveBound`, and the value ends at the bound.
fn bounded_release_race(faults: &Faults) {
    let faults = faults.clone();
    harness::check(PREEMPTIONS, move || {
        let (value, sleepers) = sem_words(&faults, 0, 1);
        let s = Arc::new(Sem::new(value, sleepers, LoomOwners::new(), 1));
        let other = {
            let s = s.clone();
            loom::thread::spawn(move || s.sem().release(s.bound))
        };
        let mine = s.sem().release(s.bound);
        let other = other.join().unwrap();
        let ok = [mine, other].iter().filter(|r| r.is_ok()).count();
        assert_eq!(
            ok, 1,
            "not exactly one release passed the bound: {mine:?}, {other:?}"
        );
        assert!(
            [mine, other].contains(&Err(ReleaseError::AboveBound)),
            "the refused release is not AboveBound: {mine:?}, {other:?}"
        );
        assert_eq!(s.value(), Some(1), "the value passed the bound");
    });
}

#[test]
fn bounded_release_race_2_threads() {
    bounded_release_race(&Faults::none());
}

#[test]
fn child_bounded_release_race_2_threads() {
    if let Some(f) = Faults::from_env() {
        bounded_release_race(&f);
    }
}

/// The bound checked, then the increment made in a second step (Python's way).
#[test]
fn caught_check_then_add_by_bounded_release_race() {
    expect_caught(
        "child_bounded_release_race_2_threads",
        "value=check-then-add",
        &["not exactly one release passed the bound"],
    );
}

/// The release as a load and a separate store: both releases pass.
#[test]
fn caught_cas_by_load_store_by_bounded_release_race() {
    expect_caught(
        "child_bounded_release_race_2_threads",
        "value=cas-by-load-store",
        &["not exactly one release passed the bound"],
    );
}

// ---------------------------------------------------------------------------------------------
// Hold table: a dead holder's permits come back exactly once

/// The token of the process that dies, owner of slot 1's entry.
const DEAD: u32 = 1;
/// The process that takes slot 1 over after [`DEAD`] died (another generation of the slot).
const SUCCESSOR: u32 = 5;

/// One permit. The main thread (process [`DEAD`], slot 1) makes the entry its own, takes the
/// permit through it (recorded: `held` 1) and dies holding it. B (process 2, unattributed, as
/// Python's `acquire`) acquires with `Block::Forever`, scanning slot 1's entry whenever a
/// slice ends. C (process [`SUCCESSOR`], slot 1 reused), once the death happened, makes the
/// entry its own (giving the dead predecessor's permit back itself, or waiting for B, a live
/// recoverer, to finish), then acquires through it and releases. Both B and C get the permit
/// (one at a time); it came back exactly once (the value ends at 1, not broken); the entry
/// ends owned by C with nothing held or in flight.
fn dead_holder_given_back(faults: &Faults) {
    let faults = faults.clone();
    harness::check(PREEMPTIONS, move || {
        let (value, sleepers) = sem_words(&faults, 1, 0);
        let owners = LoomOwners::new().mutation(faults.on("owners"));
        let s = Arc::new(Sem::new(value, sleepers, owners, MAX_VALUE));
        let slot1 = Arc::new(EntryWords::new(&faults));
        let died = Arc::new(Signal::new());

        let e = slot1.entry();
        assert_eq!(e.own(DEAD, &s.owners, &s.counter(DEAD)), Ok(()));
        let got = s.acquire(&e, Block::Try, || {});
        assert_eq!(
            got,
            Acquired::Yes,
            "the first holder did not get the permit"
        );

        let b = {
            let (s, slot1) = (s.clone(), slot1.clone());
            loom::thread::spawn(move || {
                let got = s.acquire(&Unattributed, Block::Forever, || {
                    slot1.entry().reclaim_if_dead(2, &s.owners, &s.counter(2));
                });
                assert_eq!(got, Acquired::Yes, "B did not get the permit");
                s.critical(1);
                assert_eq!(s.sem().release(s.bound), Ok(()));
            })
        };
        let c = {
            let (s, slot1, died) = (s.clone(), slot1.clone(), died.clone());
            loom::thread::spawn(move || {
                died.wait();
                let e = slot1.entry();
                let owned = e.own(SUCCESSOR, &s.owners, &s.counter(SUCCESSOR));
                assert_eq!(
                    owned,
                    Ok(()),
                    "the successor could not own its slot's entry"
                );
                let got = s.acquire(&e, Block::Forever, || {
                    e.reclaim_if_dead(SUCCESSOR, &s.owners, &s.counter(SUCCESSOR));
                });
                assert_eq!(got, Acquired::Yes, "C did not get the permit");
                s.critical(1);
                e.begin_give();
                assert_eq!(s.sem().release(s.bound), Ok(()));
                e.end_give();
            })
        };
        s.critical(1);
        s.owners.die(DEAD);
        s.value.tick(1);
        died.set();
        b.join().unwrap();
        c.join().unwrap();
        assert_eq!(
            s.value(),
            Some(1),
            "the dead holder's permit did not come back once"
        );
        assert_eq!(
            slot1.owner.get(),
            SUCCESSOR,
            "the entry is not the successor's"
        );
        assert_eq!(slot1.counts.get(), 0, "the entry's counts are not clear");
        let by = s.given_back_by.load(Relaxed);
        let seen = match by {
            2 => &GIVEN_BACK_BY_B,
            SUCCESSOR => &GIVEN_BACK_BY_SUCCESSOR,
            _ => panic!("the permit was given back by {by}"),
        };
        seen.fetch_add(1, Relaxed);
        if slot1.owner.stats().sleeps > 0 {
            SUCCESSOR_WAITED.fetch_add(1, Relaxed);
        }
    });
}

/// Executions of [`dead_holder_given_back`] in which B gave the permit back.
static GIVEN_BACK_BY_B: AtomicUsize = AtomicUsize::new(0);
/// Executions in which the successor gave it back itself (in `own`).
static GIVEN_BACK_BY_SUCCESSOR: AtomicUsize = AtomicUsize::new(0);
/// Executions in which the successor slept on the entry's `owner` word: it found B, a live
/// recoverer, at work, and waited for it.
static SUCCESSOR_WAITED: AtomicUsize = AtomicUsize::new(0);

#[test]
fn dead_holder_given_back_once_3_threads() {
    dead_holder_given_back(&Faults::none());
    for (what, n) in [
        ("B gave the permit back", &GIVEN_BACK_BY_B),
        (
            "the successor gave the permit back",
            &GIVEN_BACK_BY_SUCCESSOR,
        ),
        (
            "the successor waited for a live recoverer",
            &SUCCESSOR_WAITED,
        ),
    ] {
        assert!(n.load(Relaxed) > 0, "no execution in which {what}");
    }
}

#[test]
fn child_dead_holder_given_back_once_3_threads() {
    if let Some(f) = Faults::from_env() {
        dead_holder_given_back(&f);
    }
}

/// Recovery claimed by a load and a store instead of a compare-exchange: B and C both give
/// the permit back.
#[test]
fn caught_cas_by_load_store_by_dead_holder() {
    expect_caught(
        "child_dead_holder_given_back_once_3_threads",
        "owner=cas-by-load-store",
        &[
            "did not come back once",
            "more permits handed out",
            "Causality violation",
        ],
    );
}

/// An oracle that calls the living dead: B gives the main thread's permit back while it holds it,
/// or C takes B, a live recoverer, for dead and breaks the semaphore.
#[test]
fn caught_says_dead_by_dead_holder() {
    expect_caught(
        "child_dead_holder_given_back_once_3_threads",
        "owners=says-dead",
        &[
            "more permits handed out",
            "Causality violation",
            "could not own its slot's entry",
            "did not get the permit",
            // Waiters scan after every sleep, so B may also take the live successor's entry
            // over (judged dead) and clear it.
            "the entry is not the successor's",
        ],
    );
}

/// An oracle that never reports the death: the successor finds a "live" process in its own
/// slot (a damaged table) and breaks the semaphore, or B sleeps for ever.
#[test]
fn caught_never_dead_by_dead_holder() {
    expect_caught(
        "child_dead_holder_given_back_once_3_threads",
        "owners=never-dead",
        &["could not own its slot's entry", "deadlock"],
    );
}

/// A recovery that does not clear the dead process's counts: the successor inherits its hold.
#[test]
fn caught_drop_stores_by_dead_holder() {
    expect_caught(
        "child_dead_holder_given_back_once_3_threads",
        "counts=drop-stores",
        &["counts are not clear"],
    );
}

// ---------------------------------------------------------------------------------------------
// Hold table: a death with a change in flight breaks the semaphore

/// Where the holder of [`dead_in_flight`] dies.
#[derive(Clone, Copy, Debug)]
enum InFlight {
    /// After the compare-exchange that took the permit, before recording it (`commit`).
    Take,
    /// Holding the permit, after `begin_give`, before the release.
    Give,
}

/// The attribution of a holder that dies between taking the permit and recording it: `commit`
/// never runs (the thread stops right after the acquire returns).
struct DiesBeforeCommit<'a>(Entry<'a, LoomWord>);

impl Attribution for DiesBeforeCommit<'_> {
    fn begin(&self) -> Result<(), EntryError> {
        self.0.begin()
    }
    fn commit(&self) {}
    fn abort(&self) {
        Attribution::abort(&self.0)
    }
}

/// One permit. The main thread (process [`DEAD`], slot 1) owns the entry and dies with a
/// change of the semaphore's word in flight (`at`): nobody can tell whether the word changed,
/// so the permit count is unknown. B (process 2) acquires with `Block::Forever`, scanning slot
/// 1's entry when a slice ends; C (process [`SUCCESSOR`], slot 1 reused) makes the entry its
/// own after the death, then acquires through it. Both must hear `Broken` (the permit is gone
/// in both cases: without the breakage they would sleep for ever).
fn dead_in_flight(at: InFlight, faults: &Faults) {
    let faults = faults.clone();
    harness::check(PREEMPTIONS, move || {
        let (value, sleepers) = sem_words(&faults, 1, 0);
        let owners = LoomOwners::new().mutation(faults.on("owners"));
        let s = Arc::new(Sem::new(value, sleepers, owners, MAX_VALUE));
        let slot1 = Arc::new(EntryWords::new(&faults));
        let died = Arc::new(Signal::new());

        let e = slot1.entry();
        assert_eq!(e.own(DEAD, &s.owners, &s.counter(DEAD)), Ok(()));
        let got = match at {
            InFlight::Take => s.acquire(&DiesBeforeCommit(slot1.entry()), Block::Try, || {}),
            InFlight::Give => s.acquire(&e, Block::Try, || {}),
        };
        assert_eq!(
            got,
            Acquired::Yes,
            "the first holder did not get the permit"
        );

        let b = {
            let (s, slot1) = (s.clone(), slot1.clone());
            loom::thread::spawn(move || {
                s.acquire(&Unattributed, Block::Forever, || {
                    slot1.entry().reclaim_if_dead(2, &s.owners, &s.counter(2));
                })
            })
        };
        let c = {
            let (s, slot1, died) = (s.clone(), slot1.clone(), died.clone());
            loom::thread::spawn(move || {
                died.wait();
                let e = slot1.entry();
                match e.own(SUCCESSOR, &s.owners, &s.counter(SUCCESSOR)) {
                    Err(EntryError::Broken) => Acquired::Broken,
                    Err(EntryError::Full) => panic!("the entry is full"),
                    Err(EntryError::Busy) => panic!("a forever wait gave up"),
                    Ok(()) => s.acquire(&e, Block::Forever, || {
                        e.reclaim_if_dead(SUCCESSOR, &s.owners, &s.counter(SUCCESSOR));
                    }),
                }
            })
        };
        if let InFlight::Give = at {
            e.begin_give();
        }
        s.owners.die(DEAD);
        s.value.tick(1);
        died.set();
        let (b, c) = (b.join().unwrap(), c.join().unwrap());
        assert_eq!(
            b,
            Acquired::Broken,
            "B was not told the semaphore is broken"
        );
        assert_eq!(
            c,
            Acquired::Broken,
            "C was not told the semaphore is broken"
        );
        assert_eq!(s.value(), None, "the semaphore is not broken");
    });
}

#[test]
fn dead_take_in_flight_3_threads() {
    dead_in_flight(InFlight::Take, &Faults::none());
}

#[test]
fn dead_give_in_flight_3_threads() {
    dead_in_flight(InFlight::Give, &Faults::none());
}

#[test]
fn child_dead_take_in_flight_3_threads() {
    if let Some(f) = Faults::from_env() {
        dead_in_flight(InFlight::Take, &f);
    }
}

#[test]
fn child_dead_give_in_flight_3_threads() {
    if let Some(f) = Faults::from_env() {
        dead_in_flight(InFlight::Give, &f);
    }
}

/// A holder that never records a change as in flight: the dead holder's entry looks clean
/// (nothing held), nothing is given back or broken, and both acquirers sleep for ever.
#[test]
fn caught_ignore_intent_by_dead_take_in_flight() {
    expect_caught(
        "child_dead_take_in_flight_3_threads",
        "counts=ignore-intent",
        &["deadlock"],
    );
}

#[test]
fn caught_ignore_intent_by_dead_give_in_flight() {
    expect_caught(
        "child_dead_give_in_flight_3_threads",
        "counts=ignore-intent",
        &["deadlock"],
    );
}
