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
use shmsync_loom_tests::{LoomOwners, LoomWord};
use shmsync_protocol::Block;
use shmsync_protocol::holds::{Attribution, Entry, Holder, Unattributed};
use shmsync_protocol::rwlock::{self, Outcome, RwLock};
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;

/// Preemptions explored per execution.
const PREEMPTIONS: usize = 3;

/// The lock's words, the oracle and the data the lock protects.
struct Shared {
    state: LoomWord,
    flags: LoomWord,
    owners: LoomOwners,
    data: UnsafeCell<u32>,
}

impl Shared {
    /// A free lock whose state word allows `slice_ends` timeouts (sleep slices that end while
    /// the holder is alive) per execution.
    fn new(faults: &Faults, slice_ends: u32) -> Arc<Shared> {
        Arc::new(Shared {
            state: LoomWord::new(0)
                .timeouts(slice_ends)
                .mutation(faults.on("state")),
            flags: LoomWord::new(0).mutation(faults.on("flags")),
            owners: LoomOwners::new().mutation(faults.on("owners")),
            data: UnsafeCell::new(0),
        })
    }

    fn lock(&self) -> RwLock<'_, LoomWord> {
        RwLock {
            state: &self.state,
            flags: &self.flags,
        }
    }

    fn read(&self, attribution: &impl Attribution, block: Block, reclaim: impl FnMut()) -> Outcome {
        self.lock().read(attribution, block, &self.owners, reclaim)
    }

    fn write(&self, token: u32, block: Block, reclaim: impl FnMut()) -> Outcome {
        self.lock().write(token, block, &self.owners, reclaim)
    }

    /// Under a read lock.
    fn read_data(&self) -> u32 {
        let state = self.state.get();
        assert!(
            !rwlock::is_write_locked(state) && rwlock::readers(state) > 0,
            "a reader inside, but the word {state:#x} has no readers"
        );
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

    /// After every thread was joined.
    fn final_data(&self) -> u32 {
        self.data.with(|p| {
            // SAFETY: every thread that wrote it has been joined.
            unsafe { *p }
        })
    }

    /// The lock as a dead reader's hold table sees it (as `src/rwlock.rs` builds it: fewer
    /// readers than the dead process's record mean the books are wrong, and break the lock).
    fn readers(&self) -> Readers<'_> {
        Readers(self)
    }
}

/// [`Holder`] for the lock, as in `src/rwlock.rs`.
struct Readers<'a>(&'a Shared);

impl Holder for Readers<'_> {
    fn give_back(&self, n: u32) {
        if self.0.lock().read_unlock(n).is_err() {
            self.0.lock().break_it();
        }
    }
    fn break_object(&self) {
        self.0.lock().break_it();
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
            .map(|_| {
                let s = s.clone();
                loom::thread::spawn(move || {
                    let got = s.read(&Unattributed, Block::Forever, || {});
                    assert_eq!(got, Outcome::Acquired, "a reader did not get in");
                    let seen = s.read_data();
                    assert!(seen == 0 || seen == 7, "a reader saw {seen}");
                    assert_eq!(s.lock().read_unlock(1), Ok(()));
                })
            })
            .collect();
        assert_eq!(s.write(1, Block::Forever, || {}), Outcome::Acquired);
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
            "has no readers",
            "does not name it",
            "left == right",
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
        assert_eq!(s.write(1, Block::Forever, || {}), Outcome::Acquired);
        let reader = {
            let s = s.clone();
            loom::thread::spawn(move || {
                assert_eq!(
                    s.read(&Unattributed, Block::Forever, || {}),
                    Outcome::Acquired
                );
                let seen = s.read_data();
                assert!(seen == 1 || seen == 2, "the reader saw {seen}");
                assert_eq!(s.lock().read_unlock(1), Ok(()));
            })
        };
        let writer = {
            let s = s.clone();
            loom::thread::spawn(move || {
                assert_eq!(s.write(2, Block::Forever, || {}), Outcome::Acquired);
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
        assert_eq!(s.write(DEAD, Block::Forever, || {}), Outcome::Acquired);
        let b = {
            let s = s.clone();
            loom::thread::spawn(move || {
                let got = s.read(&Unattributed, Block::Forever, || {});
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
                assert_eq!(s.lock().read_unlock(1), Ok(()));
                got
            })
        };
        let c = {
            let s = s.clone();
            loom::thread::spawn(move || {
                let got = s.write(3, Block::Forever, || {});
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
            "has no readers",
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
        assert_eq!(s.write(DEAD, Block::Forever, || {}), Outcome::Acquired);
        let b = {
            let (s, died) = (s.clone(), died.clone());
            loom::thread::spawn(move || {
                died.wait();
                let got = match kind {
                    Try::Read => s.read(&Unattributed, Block::Try, || {}),
                    Try::Write => s.write(2, Block::Try, || {}),
                };
                assert_eq!(
                    got,
                    Outcome::Poisoned,
                    "a single try on a dead writer's lock got {got:?}"
                );
                match kind {
                    Try::Read => {
                        s.read_data();
                        assert_eq!(s.lock().read_unlock(1), Ok(()));
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
                let got = s.read(&Unattributed, Block::Forever, || {});
                assert!(
                    matches!(got, Outcome::Poisoned | Outcome::Acquired),
                    "the reader got {got:?}"
                );
                s.read_data();
                assert_eq!(s.lock().read_unlock(1), Ok(()));
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
            "has no readers",
            "left == right",
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// A reader dies holding a read lock

/// A hold-table entry.
struct EntryWords {
    owner: LoomWord,
    counts: LoomWord,
}

impl EntryWords {
    fn new(faults: &Faults) -> Arc<EntryWords> {
        Arc::new(EntryWords {
            owner: LoomWord::new(0).mutation(faults.on("owner")),
            counts: LoomWord::new(0).mutation(faults.on("counts")),
        })
    }

    fn entry(&self) -> Entry<'_, LoomWord> {
        Entry {
            owner: &self.owner,
            counts: &self.counts,
        }
    }
}

/// The main thread (process [`DEAD`], slot 1) makes slot 1's entry its own, takes a read lock
/// through it (recorded), reads, and dies holding it. A writer C (token 3) and a reader B
/// (process 2, slot 2's entry) use `Block::Forever` and scan slot 1's entry whenever a slice
/// ends. The dead reader's hold is given back exactly once: C gets the write lock (not
/// poisoned: a dead reader changed nothing), B gets a read lock and gives it back through its
/// own entry; nobody hangs, the lock ends free and unbroken, slot 1's entry ends cleared and
/// slot 2's owned by B with nothing held.
fn dead_reader(faults: &Faults) {
    let faults = faults.clone();
    harness::check(PREEMPTIONS, move || {
        let s = Shared::new(&faults, 0);
        let (slot1, slot2) = (EntryWords::new(&faults), EntryWords::new(&faults));
        let e = slot1.entry();
        assert_eq!(e.own(DEAD, &s.owners, &s.readers()), Ok(()));
        assert_eq!(s.read(&e, Block::Try, || {}), Outcome::Acquired);

        let c = {
            let (s, slot1) = (s.clone(), slot1.clone());
            loom::thread::spawn(move || {
                let got = s.write(3, Block::Forever, || {
                    slot1.entry().reclaim_if_dead(3, &s.owners, &s.readers());
                });
                assert_eq!(got, Outcome::Acquired, "the writer got {got:?}");
                s.write_data(3, 3);
                assert_eq!(s.lock().write_unlock(3), Ok(()));
            })
        };
        let b = {
            let (s, slot1, slot2) = (s.clone(), slot1.clone(), slot2.clone());
            loom::thread::spawn(move || {
                let e = slot2.entry();
                assert_eq!(e.own(2, &s.owners, &s.readers()), Ok(()));
                let got = s.read(&e, Block::Forever, || {
                    slot1.entry().reclaim_if_dead(2, &s.owners, &s.readers());
                });
                assert_eq!(got, Outcome::Acquired, "the reader got {got:?}");
                s.read_data();
                e.begin_give();
                assert_eq!(
                    s.lock().read_unlock(1),
                    Ok(()),
                    "the reader's unlock failed"
                );
                e.end_give();
            })
        };
        s.read_data();
        s.owners.die(DEAD);
        s.state.tick(2);
        c.join().unwrap();
        b.join().unwrap();
        assert_eq!(s.final_data(), 3);
        assert_eq!(s.state.get(), 0, "the lock does not end free");
        assert_eq!(
            s.flags.get(),
            0,
            "the lock ends poisoned or broken (or repaired)"
        );
        assert_eq!(slot1.owner.get(), 0, "slot 1's entry was not recovered");
        assert_eq!(slot1.counts.get(), 0, "slot 1's counts are not clear");
        assert_eq!(slot2.owner.get(), 2);
        assert_eq!(slot2.counts.get(), 0, "slot 2's counts are not clear");
    });
}

#[test]
fn dead_reader_3_threads() {
    dead_reader(&Faults::none());
}

#[test]
fn child_dead_reader_3_threads() {
    if let Some(f) = Faults::from_env() {
        dead_reader(&f);
    }
}

/// Recovery claimed by a load and a store: the dead reader's hold is given back twice (the
/// second takes B's read lock away, or fails and breaks the lock).
#[test]
fn caught_cas_by_load_store_by_dead_reader() {
    expect_caught(
        "child_dead_reader_3_threads",
        "owner=cas-by-load-store",
        &[
            "Causality violation",
            "the writer got Broken",
            "the reader got Broken",
            "unlock failed",
            "ends poisoned or broken",
        ],
    );
}

/// An oracle that calls the live reader dead: its read lock is given back while it reads (the
/// writer gets in beside it), or the books no longer add up and the lock breaks.
#[test]
fn caught_says_dead_by_dead_reader() {
    expect_caught(
        "child_dead_reader_3_threads",
        "owners=says-dead",
        &[
            "Causality violation",
            "has no readers",
            "got Broken",
            "unlock failed",
        ],
    );
}

/// An oracle that never reports the death: the writer waits for ever.
#[test]
fn caught_never_dead_by_dead_reader() {
    expect_caught(
        "child_dead_reader_3_threads",
        "owners=never-dead",
        &["deadlock"],
    );
}
