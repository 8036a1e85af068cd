//! loom models of `shmsync_protocol::condvar` (Python's `Condition`: a sequence word and a
//! sleeper count next to the `RMutex` of `shmsync_protocol::rmutex`, left with
//! `RMutex::release_all` and taken back with `RMutex::restore`): a notify made after a waiter
//! let go of the lock is not lost; `wait` gives the lock back at the caller's old re-entrant
//! count; `notify` and `wait` without the lock are refused; one `notify(1)` per waiter wakes
//! them all in turn.
//!
//! Waiters use the condition variable as Python programs do: they wait in a loop until a
//! predicate (guarded by the lock) holds, since a wait may return without a notify.
//!
//! Each model has a `child_*` twin that runs it with the faults named in
//! `SHMSYNC_LOOM_MUTATION` (words: `lock`, `owner`, `count`, `seq`, `sleepers`), and `caught_*`
//! tests that run that twin in a child process with a mutation and assert that loom caught it.

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use shmsync_loom_tests::harness::{self, Faults, Signal, expect_caught};
use shmsync_loom_tests::{LoomOwners, LoomWord};
use shmsync_protocol::Block;
use shmsync_protocol::condvar::{Condvar, PlainLock};
use shmsync_protocol::mutex::{self, Outcome, UNLOCKED};
use shmsync_protocol::rmutex::{RError, RMutex};
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;

/// Preemptions explored per execution.
const PREEMPTIONS: usize = 3;
/// Preemptions explored per execution of [`notify_one_each`]: at 3 it explores 1.4 million
/// executions (about 3 minutes), 28 times as many as at 2.
const PREEMPTIONS_ONE_EACH: usize = 2;

/// A condition variable's words, the predicate it guards, and the (all alive) holders.
struct Shared {
    lock: LoomWord,
    owner: LoomWord,
    count: LoomWord,
    owner_token: LoomWord,
    seq: LoomWord,
    sleepers: LoomWord,
    owners: LoomOwners,
    /// Guarded by the lock: notifies the waiters may consume.
    tickets: UnsafeCell<u32>,
}

impl Shared {
    /// The lock's words allow no slice end (the lock is held briefly; the rmutex models explore
    /// slice ends); `seq` allows `slices` slice ends (timeouts: `wait` sleeps in slices, and a
    /// slice end must never stand in for a notify) and `spurious` spurious wake-ups per
    /// execution.
    fn new(faults: &Faults, slices: u32, spurious: u32) -> Arc<Shared> {
        Arc::new(Shared {
            lock: LoomWord::new(UNLOCKED)
                .timeouts(0)
                .mutation(faults.on("lock")),
            owner: LoomWord::new(0).mutation(faults.on("owner")),
            count: LoomWord::new(0).mutation(faults.on("count")),
            owner_token: LoomWord::new(0),
            seq: LoomWord::new(0)
                .timeouts(slices)
                .spurious(spurious)
                .mutation(faults.on("seq")),
            sleepers: LoomWord::new(0).mutation(faults.on("sleepers")),
            owners: LoomOwners::new(),
            tickets: UnsafeCell::new(0),
        })
    }

    fn rm(&self) -> RMutex<'_, LoomWord> {
        RMutex {
            lock: &self.lock,
            owner: &self.owner,
            count: &self.count,
            owner_token: &self.owner_token,
        }
    }

    fn cv(&self) -> Condvar<'_, LoomWord> {
        Condvar {
            lock: self.rm(),
            seq: &self.seq,
            sleepers: &self.sleepers,
        }
    }

    /// The condition over the lock word alone, as a plain `Lock`'s.
    fn plain_cv(&self) -> Condvar<'_, LoomWord, PlainLock<'_, LoomWord>> {
        Condvar {
            lock: PlainLock(&self.lock),
            seq: &self.seq,
            sleepers: &self.sleepers,
        }
    }

    fn enter(&self, me: u32, token: u32) {
        let got = self.rm().acquire(me, token, Block::Forever, &self.owners);
        assert_eq!(got, Ok(Outcome::Acquired), "thread {me} could not enter");
    }

    fn leave(&self, me: u32, token: u32) {
        assert_eq!(
            self.rm().release(me, token),
            Ok(()),
            "thread {me} could not leave"
        );
    }

    /// The tickets, read or changed by a lock holder (a race is a causality violation).
    fn tickets(&self, change: impl FnOnce(&mut u32)) -> u32 {
        self.tickets.with_mut(|p| {
            // SAFETY: only the lock's owner touches the tickets; a violation of mutual
            // exclusion is exactly what loom reports here as a causality violation instead.
            let t = unsafe { &mut *p };
            change(t);
            *t
        })
    }

    /// As thread `me` of process `token`, holding the lock at `depth`: waits until a ticket is
    /// there and takes it. A wait that returns must have consumed a notify's wake-up, so one
    /// wait is enough and its ticket must be there (a notify gives its ticket before it
    /// notifies, in the same hold of the lock): a wait that returns without a notify meant for
    /// it finds no ticket. After the wait the lock is ours again at `depth`.
    fn take_ticket(&self, me: u32, token: u32, depth: u32) {
        if self.tickets(|_| {}) == 0 {
            let waited = self
                .cv()
                .wait(me, token, None, &self.owners)
                .expect("wait refused to the owner");
            assert!(waited.notified, "an untimed wait timed out");
            assert_eq!(
                waited.relock,
                Outcome::Acquired,
                "relock: {:?}",
                waited.relock
            );
            assert_eq!(
                self.rm().owner(),
                Some(me),
                "after wait, the owner is not {me}"
            );
            assert_eq!(
                self.rm().count(),
                depth,
                "after wait, thread {me}'s re-entrant count is wrong"
            );
            assert!(
                self.tickets(|_| {}) > 0,
                "thread {me}'s wait returned notified without a notify left for it"
            );
        }
        self.tickets(|t| *t -= 1);
    }

    /// As thread `me` of process `token`: enter, add a ticket, notify one waiter, leave.
    fn give_ticket(&self, me: u32, token: u32) {
        self.enter(me, token);
        self.tickets(|t| *t += 1);
        assert_eq!(
            self.cv().notify(me, token, 1),
            Ok(()),
            "notify refused to the owner"
        );
        self.leave(me, token);
    }

    /// After every thread was joined: nobody owns the lock.
    fn assert_unowned(&self) {
        assert_eq!(self.lock.get(), UNLOCKED, "the lock word is not free");
        assert_eq!(self.owner.get(), 0, "the owner word is not cleared");
        assert_eq!(self.count.get(), 0, "the count word is not cleared");
    }
}

// ---------------------------------------------------------------------------------------------
// One waiter, one notify

/// Executions of [`notify_not_lost`] in which the waiter slept on `seq`, and in which its wait
/// returned spuriously.
static SLEPT: AtomicUsize = AtomicUsize::new(0);
static SPURIOUS: AtomicUsize = AtomicUsize::new(0);

/// W (thread 11 of process 1) enters the lock twice and waits for a ticket (re-entrant count
/// 2 throughout). The main thread N (thread 12 of process 2) first calls `notify` and `wait`
/// without the lock (refused: `NotOwner` while W holds it, `NotLocked` while nobody does),
/// then enters, adds a ticket, notifies one waiter and leaves. W must get the ticket (a lost
/// notify leaves it asleep for ever: a deadlock), with the lock back at count 2 after every
/// wait; one spurious wake-up is allowed.
fn notify_not_lost(faults: &Faults) {
    let faults = faults.clone();
    harness::check(PREEMPTIONS, move || {
        let s = Shared::new(&faults, 1, 1);
        let w = {
            let s = s.clone();
            loom::thread::spawn(move || {
                s.enter(11, 1);
                s.enter(11, 1);
                s.take_ticket(11, 1, 2);
                s.leave(11, 1);
                assert_eq!(
                    s.rm().owner(),
                    Some(11),
                    "one leave of two gave the lock up"
                );
                s.leave(11, 1);
                assert_eq!(s.cv().notify(11, 1, 1), Err(RError::NotLocked));
            })
        };
        for refused in [
            s.cv().notify(12, 2, 1),
            s.cv().wait(12, 2, None, &s.owners).map(|_| ()),
        ] {
            assert!(
                matches!(refused, Err(RError::NotOwner | RError::NotLocked)),
                "a call without the lock was not refused: {refused:?}"
            );
        }
        s.give_ticket(12, 2);
        w.join().unwrap();
        s.assert_unowned();
        assert_eq!(s.tickets(|_| {}), 0);
        let stats = s.seq.stats();
        if stats.sleeps > 0 {
            SLEPT.fetch_add(1, Relaxed);
        }
        if stats.spurious > 0 {
            SPURIOUS.fetch_add(1, Relaxed);
        }
    });
}

#[test]
fn notify_not_lost_2_threads() {
    notify_not_lost(&Faults::none());
    assert!(SLEPT.load(Relaxed) > 0, "the waiter never slept");
    assert!(SPURIOUS.load(Relaxed) > 0, "no wait returned spuriously");
}

#[test]
fn child_notify_not_lost_2_threads() {
    if let Some(f) = Faults::from_env() {
        notify_not_lost(&f);
    }
}

#[test]
fn caught_skip_wake_by_notify_not_lost() {
    expect_caught(
        "child_notify_not_lost_2_threads",
        "skip-wake",
        &["deadlock"],
    );
}

/// A notify that wakes without bumping `seq`: a waiter between leaving the lock and falling
/// asleep sleeps through it.
#[test]
fn caught_drop_adds_by_notify_not_lost() {
    expect_caught(
        "child_notify_not_lost_2_threads",
        "seq=drop-adds",
        &["deadlock"],
    );
}

/// A restore that does not write the count back: the waiter holds the lock at the wrong depth.
#[test]
fn caught_drop_stores_by_notify_not_lost() {
    expect_caught(
        "child_notify_not_lost_2_threads",
        "count=drop-stores",
        &[
            "re-entrant count is wrong",
            "one leave of two gave the lock up",
            "could not enter",
            "could not leave",
        ],
    );
}

/// A lock without Acquire/Release: the ticket races.
#[test]
fn caught_relaxed_ordering_by_notify_not_lost() {
    expect_caught(
        "child_notify_not_lost_2_threads",
        "lock=relaxed-ordering",
        &["Causality violation", "deadlock"],
    );
}

/// A wait that gives the lock up without recording its owner: a thread that does not hold the
/// lock passes for its owner, or the owner is refused.
#[test]
fn caught_drop_stores_owner_by_notify_not_lost() {
    expect_caught(
        "child_notify_not_lost_2_threads",
        "owner=drop-stores",
        &["not refused", "refused to the owner", "the owner is not"],
    );
}

// ---------------------------------------------------------------------------------------------
// Two waiters, one notify each

/// Executions of [`notify_one_each`] in which both waiters slept on `seq` at once.
static BOTH_ASLEEP: AtomicUsize = AtomicUsize::new(0);

/// Two threads of process 1 (threads 11 and 21) each enter the lock and wait for a ticket;
/// once both are asleep on `seq`, the main thread (thread 31 of process 2) enters and gives
/// two tickets, each with a `notify(1)`. Both waiters get one (nobody sleeps for ever) and the
/// tickets end at 0. (Waiting for both to sleep first keeps the model small; `notify_not_lost`
/// explores a notify that comes while the waiter is on its way to sleep.)
fn notify_one_each(faults: &Faults) {
    let faults = faults.clone();
    harness::check(PREEMPTIONS_ONE_EACH, move || {
        let s = Shared::new(&faults, 1, 0);
        let handles: Vec<_> = [11, 21]
            .into_iter()
            .map(|me| {
                let s = s.clone();
                loom::thread::spawn(move || {
                    s.enter(me, 1);
                    s.take_ticket(me, 1, 1);
                    s.leave(me, 1);
                })
            })
            .collect();
        s.seq.wait_for_sleepers(2);
        s.enter(31, 2);
        for _ in 0..2 {
            s.tickets(|t| *t += 1);
            assert_eq!(
                s.cv().notify(31, 2, 1),
                Ok(()),
                "notify refused to the owner"
            );
        }
        s.leave(31, 2);
        for h in handles {
            h.join().unwrap();
        }
        s.assert_unowned();
        assert_eq!(s.tickets(|_| {}), 0);
        if s.seq.stats().max_queued >= 2 {
            BOTH_ASLEEP.fetch_add(1, Relaxed);
        }
    });
}

#[test]
fn notify_one_each_3_threads() {
    notify_one_each(&Faults::none());
    assert!(
        BOTH_ASLEEP.load(Relaxed) > 0,
        "no execution had both waiters asleep: the model is vacuous"
    );
}

#[test]
fn child_notify_one_each_3_threads() {
    if let Some(f) = Faults::from_env() {
        notify_one_each(&f);
    }
}

/// Waiters that never count themselves (every `store` to `sleepers` dropped): the notifies
/// hand out no wake-up and wake nobody, and a waiter without a slice left sleeps for ever.
#[test]
fn caught_drop_stores_by_notify_one_each() {
    expect_caught(
        "child_notify_one_each_3_threads",
        "sleepers=drop-stores",
        &["deadlock"],
    );
}

// ---------------------------------------------------------------------------------------------
// Two waiters, notify(1), a slice, notify(1)

/// Preemptions explored per execution of [`notify_wakes_at_most_n`].
const PREEMPTIONS_AT_MOST_N: usize = 2;

/// Executions of [`notify_wakes_at_most_n`] in which the waiter the first `notify(1)` did not
/// wake looked at the condition when its slice ended (a timeout on `seq` after the tick), and
/// in which the second waiter took the first notify's wake-up.
static SLICE_AFTER_NOTIFY: AtomicUsize = AtomicUsize::new(0);

/// Two waiters (thread 11 of process 1, thread 21 of process 2) each enter the lock and wait
/// for a ticket; once both sleep on `seq`, the main thread (thread 31 of process 3) enters,
/// gives one ticket with `notify(1)` and leaves; then a sleep slice passes (`tick`: the
/// waiter not woken times out and looks), and the main thread waits until one waiter has
/// taken its ticket before it gives the second ticket with another `notify(1)`. A wait that
/// returns notified must find a ticket left: so a `notify(1)` wakes at most one waiter, even
/// when the other's slice ends after it, and no notify is lost (both waiters finish).
fn notify_wakes_at_most_n(faults: &Faults) {
    let faults = faults.clone();
    harness::check(PREEMPTIONS_AT_MOST_N, move || {
        let s = Shared::new(&faults, 0, 0);
        let first_done = Arc::new(Signal::new());
        let handles: Vec<_> = [(11, 1), (21, 2)]
            .into_iter()
            .map(|(me, token)| {
                let s = s.clone();
                let first_done = first_done.clone();
                loom::thread::spawn(move || {
                    s.enter(me, token);
                    s.take_ticket(me, token, 1);
                    s.leave(me, token);
                    first_done.set();
                })
            })
            .collect();
        s.seq.wait_for_sleepers(2);
        s.give_ticket(31, 3);
        // A sleep slice passes: the waiter the notify did not wake looks now.
        s.seq.tick(1);
        first_done.wait();
        s.give_ticket(31, 3);
        for h in handles {
            h.join().unwrap();
        }
        s.assert_unowned();
        assert_eq!(s.tickets(|_| {}), 0);
        assert_eq!(s.sleepers.get(), 0, "sleepers or wake-ups left over");
        if s.seq.stats().late_timeouts > 0 {
            SLICE_AFTER_NOTIFY.fetch_add(1, Relaxed);
        }
    });
}

#[test]
fn notify_wakes_at_most_n_3_threads() {
    notify_wakes_at_most_n(&Faults::none());
    assert!(
        SLICE_AFTER_NOTIFY.load(Relaxed) > 0,
        "no slice ended after the first notify: the model is vacuous"
    );
}

#[test]
fn child_notify_wakes_at_most_n_3_threads() {
    if let Some(f) = Faults::from_env() {
        notify_wakes_at_most_n(&f);
    }
}

/// Waiters that return notified on any change of `seq` (the bug of issue 12): the waiter
/// whose slice ends after the first `notify(1)` returns too, and finds no ticket.
#[test]
fn caught_forge_signals_by_notify_wakes_at_most_n() {
    expect_caught(
        "child_notify_wakes_at_most_n_3_threads",
        "sleepers=forge-signals",
        &["without a notify left for it"],
    );
}

/// A notify that skips its wake calls: the waiter not reached by the one slice end sleeps
/// for ever.
#[test]
fn caught_skip_wake_by_notify_wakes_at_most_n() {
    expect_caught(
        "child_notify_wakes_at_most_n_3_threads",
        "seq=skip-wake",
        &["deadlock"],
    );
}

// ---------------------------------------------------------------------------------------------
// A condition over a plain Lock (`PlainLock`: the word names the process, not the thread)

/// Process 1 takes the plain lock and waits until a ticket is there; process 2 takes the lock,
/// gives a ticket and `notify(1)`, and lets go. One spurious wake-up on `seq` per execution,
/// no slice end (one would stand in for a lost wake call). The waiter always consumes the ticket (a wait that returns was
/// notified, and holds the lock again), and the lock ends free; waits and notifies without the
/// lock are refused.
fn plain_notify_not_lost(faults: &Faults) {
    let faults = faults.clone();
    harness::check(PREEMPTIONS, move || {
        let s = Shared::new(&faults, 0, 1);
        let w = {
            let s = s.clone();
            loom::thread::spawn(move || {
                assert_eq!(
                    mutex::lock(&s.lock, 1, Block::Forever, &s.owners),
                    Outcome::Acquired
                );
                if s.tickets(|_| {}) == 0 {
                    let waited = s
                        .plain_cv()
                        .wait(11, 1, None, &s.owners)
                        .expect("wait refused to the holder");
                    assert!(waited.notified, "an untimed wait timed out");
                    assert_eq!(waited.relock, Outcome::Acquired);
                    assert_eq!(
                        mutex::holder(s.lock.get()),
                        1,
                        "after wait, the lock is not ours"
                    );
                }
                assert_eq!(s.tickets(|t| *t -= 1), 0, "no ticket after the wait");
                assert_eq!(mutex::unlock(&s.lock, 1), Ok(()));
                assert_eq!(s.plain_cv().notify(11, 1, 1), Err(RError::NotLocked));
            })
        };
        assert_eq!(
            mutex::lock(&s.lock, 2, Block::Forever, &s.owners),
            Outcome::Acquired
        );
        s.tickets(|t| *t += 1);
        assert_eq!(s.plain_cv().notify(12, 2, 1), Ok(()));
        assert_eq!(mutex::unlock(&s.lock, 2), Ok(()));
        w.join().unwrap();
        assert_eq!(mutex::holder(s.lock.get()), 0, "the lock does not end free");
        assert_eq!(s.tickets(|_| {}), 0);
    });
}

#[test]
fn plain_notify_not_lost_2_threads() {
    plain_notify_not_lost(&Faults::none());
}

#[test]
fn child_plain_notify_not_lost_2_threads() {
    if let Some(f) = Faults::from_env() {
        plain_notify_not_lost(&f);
    }
}

/// A notify that does not wake: the waiter sleeps for ever.
#[test]
fn caught_skip_wake_by_plain_notify_not_lost() {
    expect_caught(
        "child_plain_notify_not_lost_2_threads",
        "seq=skip-wake",
        &["deadlock"],
    );
}

/// The lock word's Release/Acquire lost: the ticket is read unordered with its writer.
#[test]
fn caught_relaxed_ordering_by_plain_notify_not_lost() {
    expect_caught(
        "child_plain_notify_not_lost_2_threads",
        "lock=relaxed-ordering",
        &["Causality violation"],
    );
}
