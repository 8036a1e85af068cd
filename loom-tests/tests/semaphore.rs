//! loom models of `shmsync_protocol::semaphore`: a semaphore never hands out more permits than
//! it has, a sleeper is woken by a release, a tag is copied into its entry's record exactly
//! once however many processes help, and a process that dies at *any* step of taking or giving
//! a permit (or of giving a dead process's permits back) leaves a state from which its permits
//! come back exactly, with no break.
//!
//! A "process" is a token of [`LoomOwners`] with an entry (an owner [`LoomWord`] and a record
//! [`LoomWide`]); the state word is a [`LoomWide`]. A dying process runs its words through a
//! [`Fuse`] that unwinds before its operation number `at`; one model per death point.
//!
//! Each model has a `child_*` twin that runs it with the faults named in
//! `SHMSYNC_LOOM_MUTATION` (words: `state`, `sleepers`, `wakes`, `owner`, `record`; the liveness
//! oracle: `owners`), and `caught_*` tests that run that twin in a child process with a
//! mutation and assert that loom caught it.

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::sync::atomic::AtomicU32;
use shmsync_loom_tests::harness::{self, Faults, expect_caught};
use shmsync_loom_tests::mortal::{Fuse, Mortal, MortalWide, live, quiet_deaths};
use shmsync_loom_tests::{LoomOwners, LoomWide, LoomWord};
use shmsync_protocol::Block;
use shmsync_protocol::semaphore::{Acquired, Entries, Entry, MAX_VALUE, ReleaseError, Semaphore};
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;

/// Preemptions explored per execution of the models without deaths.
const PREEMPTIONS: usize = 3;
/// Preemptions per execution of the death models (one model per death point).
const DEATH_PREEMPTIONS: usize = 2;

/// One entry's words.
struct EntryWords {
    owner: LoomWord,
    record: LoomWide,
}

/// The entries, as the protocol sees them.
struct Table(Vec<EntryWords>);

impl Entries for Table {
    type Word = LoomWord;
    type Wide = LoomWide;
    fn len(&self) -> u32 {
        self.0.len() as u32
    }
    fn get(&self, i: u32) -> Entry<'_, LoomWord, LoomWide> {
        let e = &self.0[i as usize];
        Entry {
            owner: &e.owner,
            record: &e.record,
        }
    }
}

/// A semaphore's words, the oracle, and what the permits protect.
struct Shared {
    state: LoomWide,
    sleepers: LoomWord,
    wakes: LoomWord,
    table: Table,
    owners: LoomOwners,
    bound: u32,
    /// Threads holding a permit right now (Relaxed: it orders nothing between holders).
    inside: AtomicU32,
    /// Touched by holders only when the semaphore has one permit (a mutex).
    counter: UnsafeCell<u32>,
}

impl Shared {
    fn new(faults: &Faults, value: u32, bound: u32, entries: usize) -> Arc<Shared> {
        Shared::with_wakes(faults, value, bound, entries, LoomWord::new(0))
    }

    /// As [`Shared::new`], with no sleep slice ever ending (for models where nobody dies):
    /// a lost wake-up is then a deadlock.
    fn without_slices(faults: &Faults, value: u32, bound: u32, entries: usize) -> Arc<Shared> {
        Shared::with_wakes(faults, value, bound, entries, LoomWord::new(0).timeouts(0))
    }

    fn with_wakes(
        faults: &Faults,
        value: u32,
        bound: u32,
        entries: usize,
        wakes: LoomWord,
    ) -> Arc<Shared> {
        Arc::new(Shared {
            state: LoomWide::new(u64::from(value)).mutation(faults.on("state")),
            sleepers: LoomWord::new(0).mutation(faults.on("sleepers")),
            wakes: wakes.mutation(faults.on("wakes")),
            table: Table(
                (0..entries)
                    .map(|_| EntryWords {
                        owner: LoomWord::new(0).mutation(faults.on("owner")),
                        record: LoomWide::new(0).mutation(faults.on("record")),
                    })
                    .collect(),
            ),
            owners: LoomOwners::new().mutation(faults.on("owners")),
            bound,
            inside: AtomicU32::new(0),
            counter: UnsafeCell::new(0),
        })
    }

    fn sem(&self) -> Semaphore<'_, Table> {
        Semaphore {
            state: &self.state,
            sleepers: &self.sleepers,
            wakes: &self.wakes,
            entries: &self.table,
            bound: self.bound,
        }
    }

    /// Process `me` takes a permit for `entry` (`None`: unattributed), giving dead processes'
    /// permits back after every sleep (as the library does, without its rate limit).
    fn take(&self, me: u32, entry: Option<u32>, block: Block) -> Acquired {
        self.sem().acquire(entry, block, &self.owners, || {
            self.sem().reclaim(me, &self.owners);
        })
    }

    /// The entry of process `me` (claimed).
    fn claim(&self, me: u32) -> u32 {
        self.sem().claim(me, &self.owners).expect("a free entry")
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

    /// Process `me` takes a permit for its entry, uses it and gives it back.
    fn use_permit(&self, me: u32, entry: Option<u32>, permits: u32) {
        let got = self.take(me, entry, Block::Forever);
        assert_eq!(got, Acquired::Yes, "process {me} got {got:?}");
        self.critical(permits);
        assert_eq!(self.sem().give(entry), Ok(()), "process {me}'s give failed");
    }

    /// The end state, after every thread was joined: `value` permits free, not broken, and no
    /// entry records (or has in the state word's tag) any permit.
    fn assert_settled(&self, value: u32) {
        let sem = self.sem();
        assert_eq!(
            sem.value(),
            Some(value),
            "the semaphore ends with the wrong count or broken (state {:#x})",
            self.state.get()
        );
        for i in 0..self.table.len() {
            assert_eq!(
                sem.held_by(i),
                0,
                "entry {i} still records permits (state {:#x}, record {:#x})",
                self.state.get(),
                self.table.0[i as usize].record.get()
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Permits, tags and wake-ups (nobody dies)

/// One permit; processes 1 and 2 (each with an entry) take it, use it and give it back, while
/// the main thread takes and releases it unattributed (Python's `acquire`/`release`). Each
/// attributed take replaces the other process's tag, so every change settles one: the permit
/// is never held twice, nobody sleeps for ever, and at the end the permit is free and no entry
/// records anything.
fn alternating_permits(faults: &Faults) {
    let faults = faults.clone();
    harness::check(PREEMPTIONS, move || {
        let s = Shared::without_slices(&faults, 1, MAX_VALUE, 2);
        let threads: Vec<_> = [1, 2]
            .into_iter()
            .map(|me| {
                let s = s.clone();
                loom::thread::spawn(move || {
                    let entry = s.claim(me);
                    s.use_permit(me, Some(entry), 1);
                })
            })
            .collect();
        s.use_permit(4, None, 1);
        for t in threads {
            t.join().unwrap();
        }
        s.counter.with(|p| {
            // SAFETY: every thread was joined.
            assert_eq!(unsafe { *p }, 3, "a permit holder's update was lost");
        });
        s.assert_settled(1);
    });
}

#[test]
fn alternating_permits_3_threads() {
    alternating_permits(&Faults::none());
}

#[test]
fn child_alternating_permits_3_threads() {
    if let Some(f) = Faults::from_env() {
        alternating_permits(&f);
    }
}

/// A give that forgets to wake: a sleeper waits for ever.
#[test]
fn caught_skip_wake_by_alternating_permits() {
    expect_caught(
        "child_alternating_permits_3_threads",
        "wakes=skip-wake",
        &["deadlock"],
    );
}

/// A sleeper that does not count itself: the giver does not wake it.
#[test]
fn caught_drop_adds_by_alternating_permits() {
    expect_caught(
        "child_alternating_permits_3_threads",
        "sleepers=drop-adds",
        &["deadlock"],
    );
}

/// A giver that wakes without bumping the wake sequence: a taker between its read of the
/// sequence and its sleep sleeps through the wake.
#[test]
fn caught_drop_wake_bump_by_alternating_permits() {
    expect_caught(
        "child_alternating_permits_3_threads",
        "wakes=drop-adds",
        &["deadlock"],
    );
}

/// The state word's compare-exchanges and loads lose their SeqCst: a taker's re-read before it
/// sleeps and a giver's read of `sleepers` can miss each other.
#[test]
fn caught_relaxed_ordering_by_alternating_permits() {
    expect_caught(
        "child_alternating_permits_3_threads",
        "state=relaxed-ordering,sleepers=relaxed-ordering,wakes=relaxed-ordering",
        &["deadlock", "Causality violation"],
    );
}

/// Three permits; the main process (entry 0) takes one before the others start, so its tag is
/// in the state word; processes 1 and 2 then take and give one each, and both may settle the
/// main process's tag at once; then the main process gives its permit back, and takes and gives
/// one more (on a tag that may count below zero). The tag is copied exactly once: at the end
/// every record is 0.
fn two_settlers(faults: &Faults) {
    let faults = faults.clone();
    harness::check(PREEMPTIONS, move || {
        let s = Shared::without_slices(&faults, 3, MAX_VALUE, 3);
        let main = s.claim(3);
        assert_eq!(s.take(3, Some(main), Block::Try), Acquired::Yes);
        let threads: Vec<_> = [1, 2]
            .into_iter()
            .map(|me| {
                let s = s.clone();
                loom::thread::spawn(move || {
                    let entry = s.claim(me);
                    s.use_permit(me, Some(entry), 3);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(s.sem().held_by(main), 1, "the main process's permit");
        assert_eq!(s.sem().give(Some(main)), Ok(()));
        // Its tag may now count -1 against its record (if a settler copied the +1): take and
        // give again on that tag.
        assert_eq!(s.take(3, Some(main), Block::Try), Acquired::Yes);
        assert_eq!(s.sem().held_by(main), 1, "the main process's second permit");
        assert_eq!(s.sem().give(Some(main)), Ok(()));
        s.assert_settled(3);
    });
}

#[test]
fn two_settlers_3_threads() {
    two_settlers(&Faults::none());
}

#[test]
fn child_two_settlers_3_threads() {
    if let Some(f) = Faults::from_env() {
        two_settlers(&f);
    }
}

/// Another process's tag replaced without being recorded (helping skipped): the main
/// process's permit is counted nowhere.
#[test]
fn caught_skip_help_by_two_settlers() {
    expect_caught(
        "child_two_settlers_3_threads",
        "state=skip-help",
        &[
            "the main process's permit",
            "still records",
            "wrong count or broken",
        ],
    );
}

/// A frozen tag reported copied without being written (the record skipped): as above.
#[test]
fn caught_skip_record_by_two_settlers() {
    expect_caught(
        "child_two_settlers_3_threads",
        "state=skip-record",
        &[
            "the main process's permit",
            "still records",
            "wrong count or broken",
        ],
    );
}

/// Whether a tag was copied decided without its epoch: both settlers copy it.
#[test]
fn caught_ignore_epoch_by_two_settlers() {
    expect_caught(
        "child_two_settlers_3_threads",
        "state=ignore-epoch",
        &[
            "the main process's permit",
            "still records",
            "wrong count or broken",
        ],
    );
}

/// A bounded semaphore (bound 1) with no permit free: two racing releases, exactly one of
/// which passes the bound check (it and the increment are one compare-exchange).
fn bounded_release_once(faults: &Faults) {
    let faults = faults.clone();
    harness::check(PREEMPTIONS, move || {
        let s = Shared::new(&faults, 0, 1, 1);
        let other = {
            let s = s.clone();
            loom::thread::spawn(move || s.sem().release(1))
        };
        let mine = s.sem().release(1);
        let theirs = other.join().unwrap();
        let mut outcomes = [mine, theirs];
        outcomes.sort_by_key(|o| o.is_err());
        assert_eq!(
            outcomes,
            [Ok(()), Err(ReleaseError::AboveBound)],
            "not exactly one release passed the bound"
        );
        s.assert_settled(1);
    });
}

#[test]
fn bounded_release_once_2_threads() {
    bounded_release_once(&Faults::none());
}

#[test]
fn child_bounded_release_once_2_threads() {
    if let Some(f) = Faults::from_env() {
        bounded_release_once(&f);
    }
}

/// The bound checked, then the count added, in two steps (Python's `BoundedSemaphore.release`).
#[test]
fn caught_check_then_add_by_bounded_release_once() {
    expect_caught(
        "child_bounded_release_once_2_threads",
        "state=check-then-add",
        &["not exactly one release passed the bound"],
    );
}

/// A compare-exchange of the state word that is a load and a store.
#[test]
fn caught_cas_by_load_store_by_bounded_release_once() {
    expect_caught(
        "child_bounded_release_once_2_threads",
        "state=cas-by-load-store",
        &["not exactly one release passed the bound", "wrong count"],
    );
}

// ---------------------------------------------------------------------------------------------
// A process dies at any step

/// The dying process's token.
const MORTAL: u32 = 6;

/// The dying process's view of the entries.
struct MortalTable<'a>(Vec<(Mortal<'a>, MortalWide<'a>)>);

impl<'a> Entries for MortalTable<'a> {
    type Word = Mortal<'a>;
    type Wide = MortalWide<'a>;
    fn len(&self) -> u32 {
        self.0.len() as u32
    }
    fn get(&self, i: u32) -> Entry<'_, Mortal<'a>, MortalWide<'a>> {
        let (owner, record) = &self.0[i as usize];
        Entry { owner, record }
    }
}

/// Runs `life` on the semaphore as process `me`, every word operation one step of a fuse that
/// dies before step `at`. Returns how many steps were made.
fn mortal_life(
    s: &Shared,
    at: u32,
    life: impl FnOnce(&Semaphore<'_, MortalTable<'_>>, &LoomOwners),
) -> u32 {
    let fuse = Fuse::new(at);
    let word = |word| Mortal { word, fuse: &fuse };
    let wide = |word| MortalWide { word, fuse: &fuse };
    let (state, sleepers, wakes) = (wide(&s.state), word(&s.sleepers), word(&s.wakes));
    let table = MortalTable(
        s.table
            .0
            .iter()
            .map(|e| (word(&e.owner), wide(&e.record)))
            .collect(),
    );
    let sem = Semaphore {
        state: &state,
        sleepers: &sleepers,
        wakes: &wakes,
        entries: &table,
        bound: s.bound,
    };
    live(|| life(&sem, &s.owners));
    fuse.done()
}

/// How many steps `life` takes when nobody dies and nobody else runs (loom's first run).
fn steps_of(model: impl Fn(u32) -> u32 + Sync + Send + 'static) -> u32 {
    let steps = std::sync::Arc::new(AtomicUsize::new(0));
    let seen = steps.clone();
    loom::model::Builder::new().check(move || {
        seen.fetch_max(model(u32::MAX) as usize, Relaxed);
    });
    steps.load(Relaxed) as u32
}

/// The mortal holder's life: claims an entry, takes a permit, gives it back, takes another and
/// keeps it.
fn holder_life(sem: &Semaphore<'_, MortalTable<'_>>, owners: &LoomOwners) {
    let entry = sem.claim(MORTAL, owners).expect("a free entry");
    let take = || sem.acquire(Some(entry), Block::Forever, owners, || {});
    assert_eq!(take(), Acquired::Yes);
    assert_eq!(sem.give(Some(entry)), Ok(()));
    assert_eq!(take(), Acquired::Yes);
}

/// One permit. The mortal process ([`holder_life`]) dies at any step (one model per step, up to
/// twice the steps of an uncontended life plus 8, so that deaths while settling another's tag
/// or sleeping are injected too; past its last step it dies holding the permit), while process
/// 3 takes and gives the permit twice with `Block::Forever`, giving dead processes' permits
/// back after its sleeps. After the death a sleep slice passes. Process 3 gets through, and a
/// last look by process 5 leaves the permit free, no record, no break.
fn holder_dies_anywhere(faults: &Faults) {
    quiet_deaths();
    let steps = {
        let faults = faults.clone();
        steps_of(move |at| {
            let s = Shared::new(&faults, 1, MAX_VALUE, 2);
            mortal_life(&s, at, holder_life)
        })
    };
    let mut executions = 0;
    let last = 2 * steps + 8;
    for at in 0..=last {
        let faults = faults.clone();
        executions += harness::check(DEATH_PREEMPTIONS, move || {
            let s = Shared::new(&faults, 1, MAX_VALUE, 2);
            let other = {
                let s = s.clone();
                loom::thread::spawn(move || {
                    let entry = s.claim(3);
                    s.use_permit(3, Some(entry), 1);
                    s.use_permit(3, Some(entry), 1);
                })
            };
            mortal_life(&s, at, holder_life);
            s.owners.die(MORTAL);
            s.wakes.tick(1);
            other.join().unwrap();
            s.sem().reclaim(5, &s.owners);
            s.assert_settled(1);
        });
    }
    println!("death points: {}, executions: {executions}", last + 1);
}

#[test]
fn holder_dies_anywhere_2_threads() {
    holder_dies_anywhere(&Faults::none());
}

#[test]
fn child_holder_dies_anywhere_2_threads() {
    if let Some(f) = Faults::from_env() {
        holder_dies_anywhere(&f);
    }
}

/// A frozen tag reported copied without being written: the dead process's permit is given
/// back wrong (or not at all).
#[test]
fn caught_skip_record_by_holder_dies_anywhere() {
    expect_caught(
        "child_holder_dies_anywhere_2_threads",
        "state=skip-record",
        &[
            "give failed",
            "wrong count or broken",
            "still records",
            "deadlock",
        ],
    );
}

/// An oracle that never reports the death: the permit the dead process held never comes back.
#[test]
fn caught_never_dead_by_holder_dies_anywhere() {
    expect_caught(
        "child_holder_dies_anywhere_2_threads",
        "owners=never-dead",
        &["deadlock", "wrong count or broken", "still records"],
    );
}

/// The recoverer's life: gives back the permits of every dead process (process 7).
fn recoverer_life(sem: &Semaphore<'_, MortalTable<'_>>, owners: &LoomOwners) {
    sem.reclaim(RECOVERER, owners);
}

/// The dying recoverer's token.
const RECOVERER: u32 = 7;

/// Two permits. Process 2 took both (one is in its record, one in its tag) and died. The
/// mortal recoverer gives them back and dies at any step of it, while process 3 takes and
/// gives a permit (`Block::Forever`, reclaiming after its sleeps). A last look by process 5
/// leaves both permits free, no record, no break: every step a recoverer leaves is one the
/// next recoverer finishes exactly.
fn recoverer_dies_anywhere(faults: &Faults) {
    quiet_deaths();
    let setup = |faults: &Faults| {
        let s = Shared::new(faults, 2, MAX_VALUE, 2);
        let dead = s.claim(2);
        assert_eq!(s.take(2, Some(dead), Block::Try), Acquired::Yes);
        // Process 3 claims its entry and settles process 2's tag into its record.
        let entry = s.claim(3);
        assert_eq!(s.take(3, Some(entry), Block::Try), Acquired::Yes);
        assert_eq!(s.sem().give(Some(entry)), Ok(()));
        assert_eq!(s.take(2, Some(dead), Block::Try), Acquired::Yes);
        s.owners.die(2);
        (s, entry)
    };
    let steps = {
        let faults = faults.clone();
        steps_of(move |at| {
            let (s, _) = setup(&faults);
            mortal_life(&s, at, recoverer_life)
        })
    };
    let mut executions = 0;
    let last = 2 * steps + 8;
    for at in 0..=last {
        let faults = faults.clone();
        executions += harness::check(DEATH_PREEMPTIONS, move || {
            let (s, entry) = setup(&faults);
            let other = {
                let s = s.clone();
                loom::thread::spawn(move || s.use_permit(3, Some(entry), 2))
            };
            mortal_life(&s, at, recoverer_life);
            s.owners.die(RECOVERER);
            s.wakes.tick(1);
            other.join().unwrap();
            s.sem().reclaim(5, &s.owners);
            s.assert_settled(2);
        });
    }
    println!("death points: {}, executions: {executions}", last + 1);
}

#[test]
fn recoverer_dies_anywhere_2_threads() {
    recoverer_dies_anywhere(&Faults::none());
}

#[test]
fn child_recoverer_dies_anywhere_2_threads() {
    if let Some(f) = Faults::from_env() {
        recoverer_dies_anywhere(&f);
    }
}

/// Helping skipped: process 3's take replaces the dead process's tag without recording it.
#[test]
fn caught_skip_help_by_recoverer_dies_anywhere() {
    expect_caught(
        "child_recoverer_dies_anywhere_2_threads",
        "state=skip-help",
        &["give failed", "wrong count or broken", "still records"],
    );
}

/// An oracle that says every holder is dead: a live process's permits are "given back" while
/// it holds them (two holders of one permit, or a record below zero).
#[test]
fn caught_says_dead_by_alternating_permits() {
    expect_caught(
        "child_alternating_permits_3_threads",
        "owners=says-dead",
        &[
            "more permits handed out",
            "Causality violation",
            "give failed",
            "wrong count or broken",
            "still records",
        ],
    );
}
