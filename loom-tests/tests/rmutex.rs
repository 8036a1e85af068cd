//! loom models of `shmsync_protocol::rmutex::RMutex`: re-entrant counts, release by a
//! non-owner, and mutual exclusion across threads that re-enter.
//!
//! Each model has a `child_*` twin that runs it with the faults named in
//! `SHMSYNC_LOOM_MUTATION` (words: `lock`, `owner`, `count`), and `caught_*` tests that run that
//! twin in a child process with a mutation and assert that loom caught it.

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use shmsync_loom_tests::harness::{self, Faults, Signal, expect_caught};
use shmsync_loom_tests::{LoomOwners, LoomWord, Mutation};
use shmsync_protocol::Block;
use shmsync_protocol::mutex::{Outcome, UNLOCKED};
use shmsync_protocol::rmutex::{RError, RMutex};

/// Preemptions explored per execution.
const PREEMPTIONS: usize = 3;

/// The three words of an RLock, the data it protects, and the (all alive) holders.
struct Shared {
    lock: LoomWord,
    owner: LoomWord,
    count: LoomWord,
    owner_token: LoomWord,
    owners: LoomOwners,
    counter: UnsafeCell<u32>,
}

impl Shared {
    /// An unowned RLock whose lock word allows `slice_ends` timeouts (sleep slices that end
    /// while the holder is alive) per execution.
    fn new(faults: [Mutation; 3], slice_ends: u32) -> Arc<Shared> {
        let [lock, owner, count] = faults;
        Arc::new(Shared {
            lock: LoomWord::new(UNLOCKED).timeouts(slice_ends).mutation(lock),
            owner: LoomWord::new(0).mutation(owner),
            count: LoomWord::new(0).mutation(count),
            owner_token: LoomWord::new(0),
            owners: LoomOwners::new(),
            counter: UnsafeCell::new(0),
        })
    }

    /// Thread `me` of the process with `token` enters.
    fn acquire(&self, me: u32, token: u32, block: Block) -> Result<Outcome, RError> {
        self.rm().acquire(me, token, block, &self.owners)
    }

    /// Thread `me` of the process with `token` leaves once.
    fn release(&self, me: u32, token: u32) -> Result<(), RError> {
        self.rm().release(me, token)
    }

    fn rm(&self) -> RMutex<'_, LoomWord> {
        RMutex {
            lock: &self.lock,
            owner: &self.owner,
            count: &self.count,
            owner_token: &self.owner_token,
        }
    }

    /// The critical section of thread `me`, entered `depth` times.
    fn critical(&self, me: u32, depth: u32) {
        assert_eq!(self.rm().owner(), Some(me), "inside, the owner is not {me}");
        assert_eq!(
            self.rm().count(),
            depth,
            "inside, thread {me}'s count is wrong"
        );
        self.counter.with_mut(|p| {
            // SAFETY: only the owner touches the counter; a violation of mutual exclusion is
            // exactly what loom reports here as a causality violation instead.
            unsafe { *p += 1 }
        });
    }

    /// Thread `me` of the process with `token` enters, re-enters and leaves twice, `rounds`
    /// times, touching the counter at both depths.
    fn enter_twice(&self, me: u32, token: u32, rounds: u32) {
        for _ in 0..rounds {
            let enter = self.acquire(me, token, Block::Forever);
            assert_eq!(enter, Ok(Outcome::Acquired), "enter");
            let reenter = self.acquire(me, token, Block::Forever);
            assert_eq!(reenter, Ok(Outcome::Acquired), "re-enter");
            self.critical(me, 2);
            let first = self.release(me, token);
            assert_eq!(first, Ok(()), "first release of thread {me}");
            self.critical(me, 1);
            let last = self.release(me, token);
            assert_eq!(last, Ok(()), "last release of thread {me}");
        }
    }

    /// The counter, read after every thread was joined.
    fn total(&self) -> u32 {
        self.counter.with(|p| {
            // SAFETY: every thread that wrote it has been joined.
            unsafe { *p }
        })
    }

    /// Checks the words of an unowned RLock, after every thread was joined.
    fn assert_unowned(&self) {
        assert_eq!(self.lock.get(), UNLOCKED, "the lock word is not free");
        assert_eq!(self.owner.get(), 0, "the owner word is not cleared");
        assert_eq!(self.count.get(), 0, "the count word is not cleared");
    }
}

fn faults_of(f: &Faults) -> [Mutation; 3] {
    [f.on("lock"), f.on("owner"), f.on("count")]
}

// ---------------------------------------------------------------------------------------------
// Re-entrant counts

/// Thread 1 enters twice and leaves twice while thread 2 waits to enter: after one release
/// thread 1 still owns the lock (count 1); after the second, thread 2 gets it.
fn reentrant(faults: &Faults) {
    let f = faults_of(faults);
    harness::check(PREEMPTIONS, move || {
        let s = Shared::new(f, 1);
        assert_eq!(s.acquire(1, 1, Block::Forever), Ok(Outcome::Acquired));
        let t2 = {
            let s = s.clone();
            loom::thread::spawn(move || {
                assert_eq!(s.acquire(2, 2, Block::Forever), Ok(Outcome::Acquired));
                s.critical(2, 1);
                assert_eq!(s.release(2, 2), Ok(()));
            })
        };
        assert_eq!(s.acquire(1, 1, Block::Forever), Ok(Outcome::Acquired));
        s.critical(1, 2);
        assert_eq!(s.release(1, 1), Ok(()), "first of two releases");
        s.critical(1, 1);
        assert_eq!(s.release(1, 1), Ok(()), "second of two releases");
        t2.join().unwrap();
        assert_eq!(s.total(), 3);
        s.assert_unowned();
    });
}

#[test]
fn reentrant_2_threads() {
    reentrant(&Faults::none());
}

#[test]
fn child_reentrant_2_threads() {
    if let Some(f) = Faults::from_env() {
        reentrant(&f);
    }
}

#[test]
fn caught_count_stores_dropped_by_reentrant() {
    expect_caught(
        "child_reentrant_2_threads",
        "count=drop-stores",
        &["count is wrong"],
    );
}

// ---------------------------------------------------------------------------------------------
// Release by a non-owner

/// Thread 1 owns the lock until thread 2 has tried to release it (`NotOwner`) and to enter it
/// with `Block::Try` (`Ok(Busy)`); then thread 2 enters with `Block::Forever`. Once both have
/// left, any release is `NotLocked`.
fn not_owner(faults: &Faults) {
    let f = faults_of(faults);
    harness::check(PREEMPTIONS, move || {
        let s = Shared::new(f, 1);
        let tried = Arc::new(Signal::new());
        assert_eq!(s.acquire(1, 1, Block::Forever), Ok(Outcome::Acquired));
        let t2 = {
            let (s, tried) = (s.clone(), tried.clone());
            loom::thread::spawn(move || {
                assert_eq!(
                    s.release(2, 2),
                    Err(RError::NotOwner),
                    "release by a non-owner"
                );
                assert_eq!(
                    s.acquire(2, 2, Block::Try),
                    Ok(Outcome::Busy),
                    "Try on an owned RLock"
                );
                tried.set();
                assert_eq!(s.acquire(2, 2, Block::Forever), Ok(Outcome::Acquired));
                s.critical(2, 1);
                assert_eq!(s.release(2, 2), Ok(()));
            })
        };
        s.critical(1, 1);
        tried.wait();
        assert_eq!(s.release(1, 1), Ok(()), "release by the owner");
        t2.join().unwrap();
        assert_eq!(s.release(1, 1), Err(RError::NotLocked));
        assert_eq!(s.release(2, 2), Err(RError::NotLocked));
        assert_eq!(s.total(), 2);
        s.assert_unowned();
    });
}

#[test]
fn not_owner_2_threads() {
    not_owner(&Faults::none());
}

#[test]
fn child_not_owner_2_threads() {
    if let Some(f) = Faults::from_env() {
        not_owner(&f);
    }
}

#[test]
fn caught_owner_stores_dropped_by_not_owner() {
    expect_caught(
        "child_not_owner_2_threads",
        "owner=drop-stores",
        &["the owner is not", "release by the owner"],
    );
}

// ---------------------------------------------------------------------------------------------
// Mutual exclusion with re-entry

/// Process tokens of threads 1, 2, 3 in [`exclusion_3_threads_reentering`]: threads 1 and 2
/// belong to one process, thread 3 to another.
const TWO_PROCESSES: [u32; 3] = [1, 1, 2];
/// Process tokens of threads 1 and 2 in [`exclusion_2_threads_2_rounds`]: one process, so the
/// lock word names the same holder for both and only `owner` tells them apart.
const ONE_PROCESS: [u32; 3] = [1, 1, 1];

/// `threads` threads (ids 1, 2, 3; thread `me` in the process with token `tokens[me - 1]`)
/// each enter, re-enter, leave twice, `rounds` times, touching the counter at both depths.
/// With 3 threads no sleep slice ends (a slice end with a live holder nearly doubles the
/// search; the other models explore it), with 2 one may.
fn exclusion(threads: u32, rounds: u32, tokens: [u32; 3], faults: &Faults) {
    let f = faults_of(faults);
    let token = move |me: u32| tokens[me as usize - 1];
    let slice_ends = if threads >= 3 { 0 } else { 1 };
    harness::check(PREEMPTIONS, move || {
        let s = Shared::new(f, slice_ends);
        let handles: Vec<_> = (2..=threads)
            .map(|me| {
                let s = s.clone();
                loom::thread::spawn(move || s.enter_twice(me, token(me), rounds))
            })
            .collect();
        s.enter_twice(1, token(1), rounds);
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(s.total(), 2 * threads * rounds);
        s.assert_unowned();
    });
}

#[test]
fn exclusion_3_threads_reentering() {
    exclusion(3, 1, TWO_PROCESSES, &Faults::none());
}

#[test]
fn exclusion_2_threads_2_rounds() {
    exclusion(2, 2, ONE_PROCESS, &Faults::none());
}

#[test]
fn child_exclusion_3_threads_reentering() {
    if let Some(f) = Faults::from_env() {
        exclusion(3, 1, TWO_PROCESSES, &f);
    }
}

#[test]
fn child_exclusion_2_threads_2_rounds() {
    if let Some(f) = Faults::from_env() {
        exclusion(2, 2, ONE_PROCESS, &f);
    }
}

/// Without the lock's Acquire/Release, a new owner's Relaxed stores to `owner` and `count` may
/// be ordered before the previous owner's clearing stores: loom finds the counter race, or an
/// owner that no longer recognises itself and blocks on its own lock (a deadlock).
#[test]
fn caught_relaxed_lock_by_exclusion_3() {
    expect_caught(
        "child_exclusion_3_threads_reentering",
        "lock=relaxed-ordering",
        &[
            "Causality violation",
            "deadlock",
            "count is wrong",
            "release of thread",
        ],
    );
}

/// A release that leaves its identity in `owner` lets the same thread "re-enter" later without
/// taking the mutex while the other thread of its process holds it (the lock word names the
/// same process for both), or at least leaves the owner word set at the end.
#[test]
fn caught_owner_not_cleared_by_exclusion_2x2() {
    expect_caught(
        "child_exclusion_2_threads_2_rounds",
        "owner=drop-zero-stores",
        &[
            "Causality violation",
            "the owner is not",
            "count is wrong",
            "release of thread",
            "the owner word is not cleared",
        ],
    );
}
