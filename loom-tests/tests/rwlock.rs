//! loom models of `shmsync_protocol::rwlock`: a writer excludes readers and writers, readers
//! share; nobody sleeps for ever; a writer that dies holding the lock is noticed when a
//! waiter's sleep slice ends, the lock is freed (or taken over by a writer) and reported
//! poisoned until a writer marks it consistent, and only until then; a single try on a dead
//! writer's lock does not report it busy; a reader that dies holding a read lock is given back
//! exactly once through the hold table (`shmsync_protocol::holds`).
//!
//! The data the lock protects is a loom `UnsafeCell`: readers read it, writers write it, so a
//! violation of mutual exclusion is a data race that loom reports as a causality violation.
//! A death is [`LoomOwners::die`], then a sleep slice's worth of time on the state word
//! ([`LoomWord::tick`]); the dead thread then stops touching the lock.
//!
//! Each model has a `child_*` twin that runs it with the faults named in
//! `SHMSYNC_LOOM_MUTATION` (words: `state`, `flags`, `owner`, `counts`; the liveness oracle:
//! `owners`), and `caught_*` tests that run that twin in a child process with a mutation and
//! assert that loom caught it.

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use shmsync_loom_tests::harness::{self, Faults, Signal, expect_caught};
use shmsync_loom_tests::mortal::{Died, Fuse, Mortal, quiet_deaths};
use shmsync_loom_tests::{LoomOwners, LoomWord};
use shmsync_protocol::Block;
use shmsync_protocol::rwlock::{self, Indicator, Indicators, Outcome, RwLock};
use std::cell::Cell;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;

/// Preemptions explored per execution.
const PREEMPTIONS: usize = 3;

/// How many reader indicators the models give the lock.
const INDICATORS: usize = 3;

/// The token of the process that owns indicator 0 (indicator `i`: `READER_TOKEN + i`), apart
/// from the writers' tokens.
const READER_TOKEN: u32 = 4;

/// One reader indicator's words.
struct IndicatorWords {
    owner: LoomWord,
    count: LoomWord,
}

/// The lock's words, its reader indicators, the oracle and the data the lock protects.
struct Shared {
    state: LoomWord,
    flags: LoomWord,
    claimed: LoomWord,
    anonymous: LoomWord,
    indicators: [IndicatorWords; INDICATORS],
    owners: LoomOwners,
    data: UnsafeCell<u32>,
}

/// The indicators as the protocol sees them.
struct Table<'a>(&'a [IndicatorWords; INDICATORS]);

impl Indicators for Table<'_> {
    type Word = LoomWord;
    fn len(&self) -> u32 {
        INDICATORS as u32
    }
    fn get(&self, i: u32) -> Indicator<'_, LoomWord> {
        let w = &self.0[i as usize];
        Indicator {
            owner: &w.owner,
            count: &w.count,
        }
    }
}

impl Shared {
    /// A free lock whose state word allows `slice_ends` timeouts (sleep slices that end while
    /// the holder is alive) per execution. Reader `i` owns indicator `i`.
    fn new(faults: &Faults, slice_ends: u32) -> Arc<Shared> {
        Self::with_free(faults, slice_ends, 0)
    }

    /// As [`Shared::new`], but the last `free` indicators belong to nobody yet.
    fn with_free(faults: &Faults, slice_ends: u32, free: usize) -> Arc<Shared> {
        let owned = INDICATORS - free;
        Arc::new(Shared {
            state: LoomWord::new(0)
                .timeouts(slice_ends)
                .mutation(faults.on("state")),
            flags: LoomWord::new(0).mutation(faults.on("flags")),
            claimed: LoomWord::new((1 << owned) - 1).mutation(faults.on("claimed")),
            anonymous: LoomWord::new(0).mutation(faults.on("anonymous")),
            indicators: std::array::from_fn(|i| IndicatorWords {
                owner: LoomWord::new(if i < owned {
                    READER_TOKEN + i as u32
                } else {
                    0
                })
                .mutation(faults.on("owner")),
                count: LoomWord::new(0).mutation(faults.on("count")),
            }),
            owners: LoomOwners::new().mutation(faults.on("owners")),
            data: UnsafeCell::new(0),
        })
    }

    fn lock(&self) -> RwLock<'_, LoomWord> {
        RwLock {
            state: &self.state,
            flags: &self.flags,
            claimed: &self.claimed,
            anonymous: &self.anonymous,
        }
    }

    fn table(&self) -> Table<'_> {
        Table(&self.indicators)
    }

    /// A read lock counted in indicator `reader`.
    fn read(&self, reader: usize, block: Block) -> Outcome {
        self.lock()
            .read(&self.indicators[reader].count, block, &self.owners)
    }

    fn read_unlock(&self, reader: usize) -> Result<(), rwlock::NotLocked> {
        self.lock().read_unlock(&self.indicators[reader].count)
    }

    fn write(&self, token: u32, block: Block) -> Outcome {
        self.lock().write(token, &self.table(), block, &self.owners)
    }

    /// Under a read lock.
    fn read_data(&self) -> u32 {
        let readers = self.lock().readers(&self.table());
        assert!(readers > 0, "a reader inside, but no indicator counts it");
        self.data.with(|p| {
            // SAFETY: readers only read; a writer inside at the same time is exactly what loom
            // reports here as a causality violation instead.
            unsafe { *p }
        })
    }

    /// Under the write lock of `token`.
    fn write_data(&self, token: u32, v: u32) {
        let state = self.state.get();
        assert_eq!(
            rwlock::writer(state),
            token,
            "a writer inside, but the word {state:#x} does not name it"
        );
        self.data.with_mut(|p| {
            // SAFETY: only the writer touches the data; anyone else inside is exactly what
            // loom reports here as a causality violation instead.
            unsafe { *p = v }
        });
    }

    /// The value, read by the holder of the write lock.
    fn final_data_under_lock(&self) -> u32 {
        self.data.with(|p| {
            // SAFETY: the caller holds the write lock; anyone else inside is what loom
            // reports as a causality violation instead.
            unsafe { *p }
        })
    }

    /// After every thread was joined.
    fn final_data(&self) -> u32 {
        self.data.with(|p| {
            // SAFETY: every thread that wrote it has been joined.
            unsafe { *p }
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Mutual exclusion, no lost wake-up (nobody dies)

/// A writer (token 1) writes under the write lock while two readers read under read locks;
/// everyone uses `Block::Forever`, and one sleep slice may end per execution. Nobody hangs,
/// the writer never overlaps a reader, the readers see 0 or the writer's value, and the lock
/// ends free (waiting bits included).
fn exclusion(faults: &Faults) {
    let faults = faults.clone();
    harness::check(PREEMPTIONS, move || {
        let s = Shared::new(&faults, 1);
        let readers: Vec<_> = (0..2)
            .map(|i| {
                let s = s.clone();
                loom::thread::spawn(move || {
                    let got = s.read(i, Block::Forever);
                    assert_eq!(got, Outcome::Acquired, "a reader did not get in");
                    let seen = s.read_data();
                    assert!(seen == 0 || seen == 7, "a reader saw {seen}");
                    assert_eq!(s.read_unlock(i), Ok(()));
                })
            })
            .collect();
        assert_eq!(s.write(1, Block::Forever), Outcome::Acquired);
        s.write_data(1, 7);
        assert_eq!(s.lock().write_unlock(1), Ok(()));
        for h in readers {
            h.join().unwrap();
        }
        assert_eq!(s.state.get(), 0, "the lock does not end free");
        assert_eq!(s.flags.get(), 0);
    });
}

#[test]
fn exclusion_1_writer_2_readers() {
    exclusion(&Faults::none());
}

#[test]
fn child_exclusion_1_writer_2_readers() {
    if let Some(f) = Faults::from_env() {
        exclusion(&f);
    }
}

#[test]
fn caught_relaxed_ordering_by_exclusion() {
    expect_caught(
        "child_exclusion_1_writer_2_readers",
        "state=relaxed-ordering",
        &["Causality violation"],
    );
}

/// A reader that enters with a load and a separate store: the writer gets in beside it, or
/// the count loses a reader.
#[test]
fn caught_cas_by_load_store_by_exclusion() {
    expect_caught(
        "child_exclusion_1_writer_2_readers",
        "state=cas-by-load-store",
        &[
            "Causality violation",
            "does not end free",
            "no indicator counts it",
            "does not name it",
            "left == right",
            "deadlock",
        ],
    );
}

#[test]
fn caught_skip_wake_by_exclusion() {
    expect_caught(
        "child_exclusion_1_writer_2_readers",
        "skip-wake",
        &["deadlock"],
    );
}

/// Executions of [`no_lost_wakeup`] in which the reader and the writer slept at once.
static BOTH_ASLEEP: AtomicUsize = AtomicUsize::new(0);

/// The main thread holds the write lock; a reader and a writer (token 2) wait with
/// `Block::Forever` (no slice ends: only wake calls can end their sleep). The main thread
/// writes and unlocks; both must get the lock in turn.
fn no_lost_wakeup(faults: &Faults) {
    let faults = faults.clone();
    harness::check(PREEMPTIONS, move || {
        let s = Shared::new(&faults, 0);
        assert_eq!(s.write(1, Block::Forever), Outcome::Acquired);
        let reader = {
            let s = s.clone();
            loom::thread::spawn(move || {
                assert_eq!(s.read(0, Block::Forever), Outcome::Acquired);
                let seen = s.read_data();
                assert!(seen == 1 || seen == 2, "the reader saw {seen}");
                assert_eq!(s.read_unlock(0), Ok(()));
            })
        };
        let writer = {
            let s = s.clone();
            loom::thread::spawn(move || {
                assert_eq!(s.write(2, Block::Forever), Outcome::Acquired);
                s.write_data(2, 2);
                assert_eq!(s.lock().write_unlock(2), Ok(()));
            })
        };
        s.write_data(1, 1);
        assert_eq!(s.lock().write_unlock(1), Ok(()));
        reader.join().unwrap();
        writer.join().unwrap();
        assert_eq!(s.final_data(), 2);
        assert_eq!(s.state.get(), 0, "the lock does not end free");
        if s.state.stats().max_queued >= 2 {
            BOTH_ASLEEP.fetch_add(1, Relaxed);
        }
    });
}

#[test]
fn no_lost_wakeup_3_threads() {
    no_lost_wakeup(&Faults::none());
    assert!(
        BOTH_ASLEEP.load(Relaxed) > 0,
        "the reader and the writer never slept at once: the model is vacuous"
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

/// Waiting marks that are lost (a mark set with a load and a store, overwritten by the
/// holder's unlock, or the other way round).
#[test]
fn caught_cas_by_load_store_by_no_lost_wakeup() {
    expect_caught(
        "child_no_lost_wakeup_3_threads",
        "state=cas-by-load-store",
        &["deadlock", "Causality violation", "does not end free"],
    );
}

// ---------------------------------------------------------------------------------------------
// A writer dies holding the lock

/// The token of the writer that dies.
const DEAD: u32 = 1;

/// Executions of [`dead_writer`] in which the reader was told `Poisoned`, and `Acquired`.
static READER_POISONED: AtomicUsize = AtomicUsize::new(0);
static READER_CLEAN: AtomicUsize = AtomicUsize::new(0);

/// The main thread (token [`DEAD`]) takes the write lock, half-writes the data (1) and dies
/// holding the lock. A reader (B) and a writer (C, token 3) wait with `Block::Forever`; their
/// slices end after the death. The lock is freed (by the reader) or taken over (by the
/// writer): C always gets it `Poisoned` (it comes after the death), repairs the data (3),
/// marks the lock consistent and unlocks. B gets it `Poisoned` exactly when it reads before
/// the repair (it sees 1), and `Acquired` after it (it sees 3): a poison that outlives the
/// repair, or a reader let in unwarned before it, is a failure. The lock ends free and
/// unpoisoned.
fn dead_writer(faults: &Faults) {
    let faults = faults.clone();
    harness::check(PREEMPTIONS, move || {
        let s = Shared::new(&faults, 0);
        assert_eq!(s.write(DEAD, Block::Forever), Outcome::Acquired);
        let b = {
            let s = s.clone();
            loom::thread::spawn(move || {
                let got = s.read(0, Block::Forever);
                let seen = s.read_data();
                match got {
                    Outcome::Poisoned => assert_eq!(
                        seen, 1,
                        "a reader was told Poisoned after the lock was repaired"
                    ),
                    Outcome::Acquired => assert_eq!(
                        seen, 3,
                        "a reader got the dead writer's lock unwarned before the repair"
                    ),
                    other => panic!("the reader got {other:?}"),
                }
                assert_eq!(s.read_unlock(0), Ok(()));
                got
            })
        };
        let c = {
            let s = s.clone();
            loom::thread::spawn(move || {
                let got = s.write(3, Block::Forever);
                assert_eq!(
                    got,
                    Outcome::Poisoned,
                    "the writer after the death got {got:?}"
                );
                s.write_data(3, 3);
                assert!(s.lock().mark_consistent(), "the lock was not poisoned");
                assert_eq!(s.lock().write_unlock(3), Ok(()));
            })
        };
        s.write_data(DEAD, 1);
        s.owners.die(DEAD);
        s.state.tick(2);
        let b = b.join().unwrap();
        c.join().unwrap();
        assert_eq!(s.state.get(), 0, "the lock does not end free");
        let flags = s.flags.get();
        assert_eq!(
            flags & (rwlock::POISONED | rwlock::BROKEN),
            0,
            "the lock ends poisoned"
        );
        assert_eq!(flags / rwlock::REPAIR, 1, "not one repair counted");
        match b {
            Outcome::Poisoned => READER_POISONED.fetch_add(1, Relaxed),
            _ => READER_CLEAN.fetch_add(1, Relaxed),
        };
    });
}

#[test]
fn dead_writer_3_threads() {
    dead_writer(&Faults::none());
    assert!(
        READER_POISONED.load(Relaxed) > 0,
        "the reader was never told Poisoned"
    );
    assert!(
        READER_CLEAN.load(Relaxed) > 0,
        "the reader never came after the repair"
    );
}

#[test]
fn child_dead_writer_3_threads() {
    if let Some(f) = Faults::from_env() {
        dead_writer(&f);
    }
}

/// An oracle that calls the live writer dead: a waiter gets in beside it, or frees the lock
/// of the writer that is repairing it (poisoning it again).
#[test]
fn caught_says_dead_by_dead_writer() {
    expect_caught(
        "child_dead_writer_3_threads",
        "owners=says-dead",
        &[
            "Causality violation",
            "does not name it",
            "no indicator counts it",
            "told Poisoned after the lock was repaired",
        ],
    );
}

/// An oracle that never reports the death: both waiters sleep for ever.
#[test]
fn caught_never_dead_by_dead_writer() {
    expect_caught(
        "child_dead_writer_3_threads",
        "owners=never-dead",
        &["deadlock"],
    );
}

/// Waiters that never look at the holder again once asleep.
#[test]
fn caught_no_slices_by_dead_writer() {
    expect_caught(
        "child_dead_writer_3_threads",
        "owners=no-slices",
        &["deadlock"],
    );
}

/// A reader's poison set without checking that no repair came since it saw the dead writer
/// (the compare-exchange on `flags` made unconditional): a reader that lost the race to
/// recover the lock poisons it again after the winner repaired it. (The protocol did that
/// before this model found it: see `README.md`, "Findings".)
#[test]
fn caught_check_then_add_by_dead_writer() {
    expect_caught(
        "child_dead_writer_3_threads",
        "flags=check-then-add",
        &[
            "told Poisoned after the lock was repaired",
            "the lock ends poisoned",
        ],
    );
}

/// A poison mark that is not stored: the lock is handed on unwarned.
#[test]
fn caught_drop_ors_by_dead_writer() {
    expect_caught(
        "child_dead_writer_3_threads",
        "flags=drop-ors",
        &[
            "unwarned",
            "the writer after the death got",
            "was not poisoned",
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// A single try on a dead writer's lock

/// How the single try of [`try_on_dead_writer`] asks for the lock.
#[derive(Clone, Copy, Debug)]
enum Try {
    Read,
    Write,
}

/// The main thread (token [`DEAD`]) takes the write lock and dies holding it. Then B's single
/// try (`Block::Try`, a read or a write) must get the lock, `Poisoned`, and not report a dead
/// writer's lock `Busy`. Meanwhile C reads with `Block::Forever` (its slices never end, so B
/// is the only one that can notice the death); C's waiting mark may land between B's look at
/// the word and B's compare-exchange.
fn try_on_dead_writer(kind: Try, faults: &Faults) {
    let faults = faults.clone();
    harness::check(PREEMPTIONS, move || {
        let s = Shared::new(&faults, 0);
        let died = Arc::new(Signal::new());
        assert_eq!(s.write(DEAD, Block::Forever), Outcome::Acquired);
        let b = {
            let (s, died) = (s.clone(), died.clone());
            loom::thread::spawn(move || {
                died.wait();
                let got = match kind {
                    Try::Read => s.read(0, Block::Try),
                    Try::Write => s.write(2, Block::Try),
                };
                if matches!(kind, Try::Write) && got == Outcome::Busy {
                    // A writer's single try also fails while a reader is counted, and C may be
                    // in the middle of backing out of its increment: but the try must have
                    // freed the dead writer's word on the way, poisoned.
                    let state = s.state.get();
                    assert_ne!(
                        rwlock::writer(state),
                        DEAD,
                        "a single try left the dead writer's lock in place"
                    );
                    assert!(
                        s.flags.get() & rwlock::POISONED != 0,
                        "a single try freed a dead writer's lock unpoisoned"
                    );
                    return;
                }
                assert_eq!(
                    got,
                    Outcome::Poisoned,
                    "a single try on a dead writer's lock got {got:?}"
                );
                match kind {
                    Try::Read => {
                        s.read_data();
                        assert_eq!(s.read_unlock(0), Ok(()));
                    }
                    Try::Write => {
                        s.write_data(2, 2);
                        assert!(s.lock().mark_consistent());
                        assert_eq!(s.lock().write_unlock(2), Ok(()));
                    }
                }
            })
        };
        let c = {
            let s = s.clone();
            loom::thread::spawn(move || {
                let got = s.read(1, Block::Forever);
                assert!(
                    matches!(got, Outcome::Poisoned | Outcome::Acquired),
                    "the reader got {got:?}"
                );
                s.read_data();
                assert_eq!(s.read_unlock(1), Ok(()));
            })
        };
        s.write_data(DEAD, 1);
        s.owners.die(DEAD);
        died.set();
        b.join().unwrap();
        c.join().unwrap();
        assert_eq!(s.state.get(), 0, "the lock does not end free");
    });
}

#[test]
fn try_read_on_dead_writer_3_threads() {
    try_on_dead_writer(Try::Read, &Faults::none());
}

#[test]
fn try_write_on_dead_writer_3_threads() {
    try_on_dead_writer(Try::Write, &Faults::none());
}

#[test]
fn child_try_read_on_dead_writer_3_threads() {
    if let Some(f) = Faults::from_env() {
        try_on_dead_writer(Try::Read, &f);
    }
}

#[test]
fn child_try_write_on_dead_writer_3_threads() {
    if let Some(f) = Faults::from_env() {
        try_on_dead_writer(Try::Write, &f);
    }
}

/// An oracle that never reports the death: the single try is `Busy`.
#[test]
fn caught_never_dead_by_try_read_on_dead_writer() {
    expect_caught(
        "child_try_read_on_dead_writer_3_threads",
        "owners=never-dead",
        &["a single try on a dead writer's lock got Busy"],
    );
}

/// A takeover by a plain store: the writer's single try overwrites the reader that got in
/// after a free, or the other way round.
#[test]
fn caught_cas_by_load_store_by_try_write_on_dead_writer() {
    expect_caught(
        "child_try_write_on_dead_writer_3_threads",
        "state=cas-by-load-store",
        &[
            "Causality violation",
            "does not end free",
            "does not name it",
            "no indicator counts it",
            "left == right",
            "deadlock",
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// A reader dies at any step

/// The dying process's view of the indicators.
struct MortalTable<'a>(Vec<(Mortal<'a>, Mortal<'a>)>);

impl<'a> Indicators for MortalTable<'a> {
    type Word = Mortal<'a>;
    fn len(&self) -> u32 {
        self.0.len() as u32
    }
    fn get(&self, i: u32) -> Indicator<'_, Mortal<'a>> {
        let (owner, count) = &self.0[i as usize];
        Indicator { owner, count }
    }
}

/// The dying reader's token.
const MORTAL: u32 = 6;

/// The life of the dying reader (process [`MORTAL`], the main thread): claims a free
/// indicator, takes a read lock, reads, drops it, takes another and holds it. It dies just
/// before its word operation number `at` (or, if it gets through, holding that last read lock).
/// Returns how many operations it made.
fn mortal_reader(s: &Shared, at: u32) -> u32 {
    let fuse = Fuse::new(at);
    let m = |word| Mortal { word, fuse: &fuse };
    let lock = RwLock {
        state: &m(&s.state),
        flags: &m(&s.flags),
        claimed: &m(&s.claimed),
        anonymous: &m(&s.anonymous),
    };
    let table = MortalTable(
        s.indicators
            .iter()
            .map(|w| (m(&w.owner), m(&w.count)))
            .collect(),
    );
    let life = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let i = lock
            .claim(&table, MORTAL, &s.owners)
            .expect("a free indicator");
        let count = table.get(i).count;
        assert_eq!(
            lock.read(count, Block::Forever, &s.owners),
            Outcome::Acquired
        );
        s.read_data();
        assert_eq!(lock.read_unlock(count), Ok(()));
        assert_eq!(
            lock.read(count, Block::Forever, &s.owners),
            Outcome::Acquired
        );
        s.read_data();
    }));
    if let Err(payload) = life
        && !payload.is::<Died>()
    {
        std::panic::resume_unwind(payload);
    }
    fuse.done()
}

/// A reader process dies at any step of claiming an indicator, taking, dropping and taking a
/// read lock (every word operation: one loom model per death point, up to twice the steps of
/// an uncontended life plus 8, so that deaths while backing out or sleeping are injected too;
/// past its last step it dies holding a read lock), while a writer (token 3) and another reader
/// (indicator 0) take the lock with `Block::Forever`. Nothing is left that cannot be
/// attributed: the writer gets the lock unpoisoned and unbroken (clearing the dead reader's
/// indicator if it counted anything), the other reader gets in and out, and at the end no read
/// lock is counted anywhere and the lock is free, neither poisoned nor broken.
fn reader_dies_anywhere(faults: &Faults) {
    quiet_deaths();
    // How many operations a full life takes (found by a first run that never dies).
    let steps = {
        let faults = faults.clone();
        let steps = std::sync::Arc::new(AtomicUsize::new(0));
        let seen = steps.clone();
        loom::model::Builder::new().check(move || {
            let s = Shared::with_free(&faults, 0, 1);
            seen.fetch_max(mortal_reader(&s, u32::MAX) as usize, Relaxed);
        });
        steps.load(Relaxed) as u32
    };
    let mut executions = 0;
    // Contended executions take more steps (backing out, draining, sleeping, waking) than the
    // uncontended life measured above: the death points run well past it.
    let last = 2 * steps + 8;
    for at in 0..=last {
        let faults = faults.clone();
        executions += harness::check(DEATH_PREEMPTIONS, move || {
            let s = Shared::with_free(&faults, 0, 1);
            let w = {
                let s = s.clone();
                loom::thread::spawn(move || {
                    let got = s.write(3, Block::Forever);
                    assert_eq!(got, Outcome::Acquired, "the writer got {got:?}");
                    s.write_data(3, 3);
                    assert_eq!(s.lock().write_unlock(3), Ok(()));
                })
            };
            let r = {
                let s = s.clone();
                loom::thread::spawn(move || {
                    let got = s.read(0, Block::Forever);
                    assert_eq!(got, Outcome::Acquired, "the reader got {got:?}");
                    s.read_data();
                    assert_eq!(s.read_unlock(0), Ok(()), "the reader's unlock failed");
                })
            };
            mortal_reader(&s, at);
            s.owners.die(MORTAL);
            for w in &s.indicators {
                w.count.tick(1);
            }
            w.join().unwrap();
            r.join().unwrap();
            assert_eq!(s.final_data(), 3);
            assert_eq!(s.state.get(), 0, "the lock does not end free");
            assert_eq!(s.flags.get(), 0, "the lock ends poisoned or broken");
            // The next process's single try gets the write lock at once, clearing what the
            // dead reader may still count (if the writer came and went before it died).
            let got = s.write(5, Block::Try);
            assert_eq!(got, Outcome::Acquired, "the next writer's try got {got:?}");
            assert_eq!(s.lock().write_unlock(5), Ok(()));
            assert_eq!(
                s.lock().readers(&s.table()),
                0,
                "read locks are still counted (the dead reader's was not given back)"
            );
        });
    }
    println!("death points: {}, executions: {executions}", last + 1);
}

/// Preemptions per execution of the death models (one model per death point).
const DEATH_PREEMPTIONS: usize = 2;

#[test]
fn reader_dies_anywhere_3_threads() {
    reader_dies_anywhere(&Faults::none());
}

#[test]
fn child_reader_dies_anywhere_3_threads() {
    if let Some(f) = Faults::from_env() {
        reader_dies_anywhere(&f);
    }
}

/// A reader whose increment is not made (the record skipped): the writer gets in beside it.
#[test]
fn caught_drop_adds_by_reader_dies_anywhere() {
    expect_caught(
        "child_reader_dies_anywhere_3_threads",
        "count=drop-adds",
        &["Causality violation", "no indicator counts it"],
    );
}

/// The reader reads the writer word without its SeqCst (Dekker's store-load order lost): a
/// reader and the writer each miss the other.
#[test]
fn caught_relaxed_loads_by_reader_dies_anywhere() {
    expect_caught(
        "child_reader_dies_anywhere_3_threads",
        "state=relaxed-loads,count=relaxed-loads",
        &["Causality violation"],
    );
}

/// An oracle that calls the live reader dead: the writer clears its count while it reads.
#[test]
fn caught_says_dead_by_reader_dies_anywhere() {
    expect_caught(
        "child_reader_dies_anywhere_3_threads",
        "owners=says-dead",
        &[
            "Causality violation",
            "no indicator counts it",
            "unlock failed",
            "still counted",
        ],
    );
}

/// An oracle that never reports the death: the writer waits for the dead reader for ever, or
/// the next writer's single try finds it still counted.
#[test]
fn caught_never_dead_by_reader_dies_anywhere() {
    expect_caught(
        "child_reader_dies_anywhere_3_threads",
        "owners=never-dead",
        &["deadlock", "try got Busy"],
    );
}

/// A claim whose `claimed` bit is never set (the record of the indicator skipped): a writer
/// does not look at the dying reader's indicator, so it gets in beside its read lock, or never
/// clears the dead reader's count.
#[test]
fn caught_drop_ors_by_reader_dies_anywhere() {
    expect_caught(
        "child_reader_dies_anywhere_3_threads",
        "claimed=drop-ors",
        &[
            "Causality violation",
            "no indicator counts it",
            "still counted",
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// A writer dies at any step

/// The dying writer's token.
const MORTAL_WRITER: u32 = 7;

/// How far the dying writer got.
#[derive(Clone, Copy, Debug, Default)]
struct WriterLife {
    /// `write` returned: it may have touched the value.
    entered: bool,
    /// Word operations made.
    steps: u32,
}

/// The life of the dying writer (process [`MORTAL_WRITER`], the main thread): takes the write
/// lock (draining the reader, if it is inside), half-writes, writes, releases. Dies just
/// before its word operation number `at`.
fn mortal_writer(s: &Shared, at: u32) -> WriterLife {
    let fuse = Fuse::new(at);
    let m = |word| Mortal { word, fuse: &fuse };
    let lock = RwLock {
        state: &m(&s.state),
        flags: &m(&s.flags),
        claimed: &m(&s.claimed),
        anonymous: &m(&s.anonymous),
    };
    let table = MortalTable(
        s.indicators
            .iter()
            .map(|w| (m(&w.owner), m(&w.count)))
            .collect(),
    );
    let life = Cell::new(WriterLife::default());
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let got = lock.write(MORTAL_WRITER, &table, Block::Forever, &s.owners);
        assert_eq!(got, Outcome::Acquired, "the mortal writer got {got:?}");
        life.set(WriterLife {
            entered: true,
            ..life.get()
        });
        s.write_data(MORTAL_WRITER, 1);
        s.write_data(MORTAL_WRITER, 2);
        assert_eq!(lock.write_unlock(MORTAL_WRITER), Ok(()));
    }));
    if let Err(payload) = run
        && !payload.is::<Died>()
    {
        std::panic::resume_unwind(payload);
    }
    WriterLife {
        steps: fuse.done(),
        ..life.get()
    }
}

/// A writer process dies at any step of taking the write lock (draining a reader), writing and
/// releasing it (one loom model per death point), while a reader (indicator 0) and another
/// writer (token 3) use `Block::Forever`. The lock is freed or taken over whatever the step:
/// everyone gets in; someone is told `Poisoned` if the dead writer may have touched the value
/// (it died after `write` returned and before its unlock), and nobody if it died before its
/// compare-exchange on the writer word. Then the next process's single try takes the lock
/// (over) at once. The lock ends free, unpoisoned after the repairs, no read lock counted.
fn writer_dies_anywhere(faults: &Faults) {
    quiet_deaths();
    let steps = {
        let faults = faults.clone();
        let steps = std::sync::Arc::new(AtomicUsize::new(0));
        let seen = steps.clone();
        loom::model::Builder::new().check(move || {
            let s = Shared::new(&faults, 0);
            seen.fetch_max(mortal_writer(&s, u32::MAX).steps as usize, Relaxed);
        });
        steps.load(Relaxed) as u32
    };
    let mut executions = 0;
    // Contended executions take more steps (backing out, draining, sleeping, waking) than the
    // uncontended life measured above: the death points run well past it.
    let last = 2 * steps + 8;
    for at in 0..=last {
        let faults = faults.clone();
        executions += harness::check(DEATH_PREEMPTIONS, move || {
            let s = Shared::new(&faults, 0);
            let r = {
                let s = s.clone();
                loom::thread::spawn(move || {
                    let got = s.read(0, Block::Forever);
                    assert!(
                        matches!(got, Outcome::Acquired | Outcome::Poisoned),
                        "the reader got {got:?}"
                    );
                    let seen = s.read_data();
                    assert!(
                        got == Outcome::Poisoned || seen != 1,
                        "the reader saw a half-write unwarned"
                    );
                    assert_eq!(s.read_unlock(0), Ok(()), "the reader's unlock failed");
                })
            };
            let w = {
                let s = s.clone();
                loom::thread::spawn(move || {
                    let got = s.write(3, Block::Forever);
                    let seen = s.final_data_under_lock();
                    assert!(
                        got == Outcome::Poisoned || seen != 1,
                        "the writer found a half-write unwarned ({got:?})"
                    );
                    s.write_data(3, 3);
                    if got == Outcome::Poisoned {
                        assert!(s.lock().mark_consistent());
                    } else {
                        assert_eq!(got, Outcome::Acquired, "the writer got {got:?}");
                    }
                    assert_eq!(s.lock().write_unlock(3), Ok(()));
                    got
                })
            };
            let life = mortal_writer(&s, at);
            // Whether it died holding the lock after `write` returned (a death inside its
            // unlock, after the word was freed, leaves a complete value).
            let holding = life.entered && rwlock::writer(s.state.get()) == MORTAL_WRITER;
            s.owners.die(MORTAL_WRITER);
            s.state.tick(2);
            r.join().unwrap();
            let got = w.join().unwrap();
            // The next process's single try: frees (takes over) what the dead writer may
            // still hold, if the others came and went before it died.
            let next = s.write(5, Block::Try);
            assert!(
                matches!(next, Outcome::Acquired | Outcome::Poisoned),
                "the next writer's try got {next:?}"
            );
            let seen = s.final_data_under_lock();
            assert!(
                next == Outcome::Poisoned || seen != 1,
                "the next writer found a half-write unwarned"
            );
            if next == Outcome::Poisoned {
                assert!(s.lock().mark_consistent());
            }
            assert_eq!(s.lock().write_unlock(5), Ok(()));
            let warned = got == Outcome::Poisoned || next == Outcome::Poisoned;
            if holding {
                // It may have touched the value: whoever came next was warned.
                assert!(warned, "a dead holder's lock unpoisoned");
            }
            if at <= 1 {
                assert!(!warned, "poisoned by a writer that never got in");
            }
            assert_eq!(s.state.get(), 0, "the lock does not end free");
            assert_eq!(
                s.flags.get() & !(rwlock::REPAIR * 3),
                0,
                "the lock ends poisoned, broken or draining"
            );
            assert_eq!(s.lock().readers(&s.table()), 0, "read locks still counted");
        });
    }
    println!("death points: {}, executions: {executions}", last + 1);
}

#[test]
fn writer_dies_anywhere_3_threads() {
    writer_dies_anywhere(&Faults::none());
}

#[test]
fn child_writer_dies_anywhere_3_threads() {
    if let Some(f) = Faults::from_env() {
        writer_dies_anywhere(&f);
    }
}

/// A recoverer that ignores the draining mark poisons nothing... here: the poison is never
/// set (`flags=drop-ors`), so a dead holder's half-write goes unwarned.
#[test]
fn caught_drop_ors_by_writer_dies_anywhere() {
    expect_caught(
        "child_writer_dies_anywhere_3_threads",
        "flags=drop-ors",
        &["unwarned", "unpoisoned", "draining"],
    );
}
