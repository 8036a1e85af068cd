//! loom models of `shmsync_protocol::event`: `set` wakes every waiter and publishes what the
//! setter wrote before; a `set` + `clear` pulse still wakes the threads asleep at the time
//! (their `wait` returns `true`, as Python's `Event.wait` does); a timed wait returns `false`
//! only after its own timeout, and its timeout strands nobody.
//!
//! Each model has a `child_*` twin that runs it with the faults named in
//! `SHMSYNC_LOOM_MUTATION` (word: `event`), and `caught_*` tests that run that twin in a child
//! process with a mutation and assert that loom caught it.

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use shmsync_loom_tests::LoomWord;
use shmsync_loom_tests::harness::{self, Faults, expect_caught};
use shmsync_protocol::Block;
use shmsync_protocol::event;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// Preemptions explored per execution.
const PREEMPTIONS: usize = 3;

/// The event's word and the data its setter publishes.
struct Shared {
    word: LoomWord,
    data: UnsafeCell<u32>,
}

impl Shared {
    fn new(word: LoomWord) -> Arc<Shared> {
        Arc::new(Shared {
            word,
            data: UnsafeCell::new(0),
        })
    }

    /// The setter's write before `set`.
    fn write(&self, v: u32) {
        self.data.with_mut(|p| {
            // SAFETY: readers read only after they saw the flag; a read that is not ordered
            // after this write is exactly what loom reports as a causality violation instead.
            unsafe { *p = v }
        });
    }

    fn read(&self) -> u32 {
        self.data.with(|p| {
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

// ---------------------------------------------------------------------------------------------
// set wakes every waiter

/// Two threads wait with `Block::Forever` (one spurious wake-up allowed); the main thread
/// writes the data and sets the flag. Both waits return `true` and read the data; nobody
/// hangs. Afterwards a single try sees the flag, and after `clear` it does not.
fn set_wakes_all(faults: &Faults) {
    let m = faults.on("event");
    harness::check(PREEMPTIONS, move || {
        let s = Shared::new(LoomWord::new(0).spurious(1).mutation(m));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let s = s.clone();
                loom::thread::spawn(move || {
                    assert!(
                        event::wait(&s.word, Block::Forever),
                        "a wait returned false"
                    );
                    assert_eq!(s.read(), 7, "a waiter saw the flag but not the data");
                })
            })
            .collect();
        s.write(7);
        event::set(&s.word);
        for h in handles {
            h.join().unwrap();
        }
        assert!(event::get(&s.word));
        assert!(event::wait(&s.word, Block::Try));
        event::clear(&s.word);
        assert!(!event::get(&s.word));
        assert!(!event::wait(&s.word, Block::Try));
    });
}

#[test]
fn set_wakes_all_3_threads() {
    set_wakes_all(&Faults::none());
}

#[test]
fn child_set_wakes_all_3_threads() {
    if let Some(f) = Faults::from_env() {
        set_wakes_all(&f);
    }
}

#[test]
fn caught_skip_wake_by_set_wakes_all() {
    expect_caught("child_set_wakes_all_3_threads", "skip-wake", &["deadlock"]);
}

/// A `set` that does not publish (its Release dropped): a waiter reads the data unordered.
#[test]
fn caught_relaxed_stores_by_set_wakes_all() {
    expect_caught(
        "child_set_wakes_all_3_threads",
        "event=relaxed-stores",
        &["Causality violation"],
    );
}

/// A waiter that does not synchronise with the setter (its Acquire dropped).
#[test]
fn caught_relaxed_loads_by_set_wakes_all() {
    expect_caught(
        "child_set_wakes_all_3_threads",
        "event=relaxed-loads",
        &["Causality violation"],
    );
}

// ---------------------------------------------------------------------------------------------
// A set + clear pulse wakes the sleepers

/// Two threads wait with `Block::Forever`; once both are asleep on the word, the main thread
/// sets the flag and clears it at once. Both waits must return `true` (the generation changed
/// while they slept), although the flag is clear when they look.
fn pulse(faults: &Faults) {
    let m = faults.on("event");
    harness::check(PREEMPTIONS, move || {
        let s = Shared::new(LoomWord::new(0).mutation(m));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let s = s.clone();
                loom::thread::spawn(move || event::wait(&s.word, Block::Forever))
            })
            .collect();
        s.word.wait_for_sleepers(2);
        event::set(&s.word);
        event::clear(&s.word);
        for h in handles {
            assert!(
                h.join().unwrap(),
                "a sleeper woken by a pulse returned false"
            );
        }
        assert!(!event::get(&s.word));
    });
}

#[test]
fn pulse_wakes_sleepers_3_threads() {
    pulse(&Faults::none());
}

#[test]
fn child_pulse_wakes_sleepers_3_threads() {
    if let Some(f) = Faults::from_env() {
        pulse(&f);
    }
}

/// A `set` that keeps the old generation: after the pulse the word is as the sleepers left it,
/// so they sleep again, for ever.
#[test]
fn caught_forget_generation_by_pulse() {
    expect_caught(
        "child_pulse_wakes_sleepers_3_threads",
        "event=forget-generation",
        &["deadlock"],
    );
}

#[test]
fn caught_skip_wake_by_pulse() {
    expect_caught(
        "child_pulse_wakes_sleepers_3_threads",
        "skip-wake",
        &["deadlock"],
    );
}

// ---------------------------------------------------------------------------------------------
// A timed wait

/// Executions of [`timed_wait`] in which the timed wait returned `true`, and `false`.
static TIMED_TRUE: AtomicUsize = AtomicUsize::new(0);
static TIMED_FALSE: AtomicUsize = AtomicUsize::new(0);
/// Executions in which the timed wait timed out while B was asleep on the word.
static TIMED_OUT_NEXT_TO_SLEEPER: AtomicUsize = AtomicUsize::new(0);

/// A waits with a deadline (its wait may time out: one timeout per execution), B with
/// `Block::Forever`; the main thread sets the flag. B must return `true`; A returns `true`
/// if the set came before its timeout and `false` only after a timeout of its own. A's
/// timeout must not strand B (B may be asleep next to A when A times out).
///
/// (No pulse here: a thread that arrives after a `set` + `clear` sleeps for ever, as it
/// should, and loom has no way to wait for "B asleep" while A may already have left the
/// queue.)
fn timed_wait(faults: &Faults) {
    let m = faults.on("event");
    harness::check(PREEMPTIONS, move || {
        let s = Shared::new(LoomWord::new(0).timeouts(1).mutation(m));
        let a = {
            let s = s.clone();
            loom::thread::spawn(move || event::wait(&s.word, deadline()))
        };
        let b = {
            let s = s.clone();
            loom::thread::spawn(move || event::wait(&s.word, Block::Forever))
        };
        event::set(&s.word);
        let (a, b) = (a.join().unwrap(), b.join().unwrap());
        assert!(b, "the untimed waiter returned false");
        let stats = s.word.stats();
        if a {
            TIMED_TRUE.fetch_add(1, Relaxed);
        } else {
            assert_eq!(
                stats.timeouts, 1,
                "the timed wait returned false without timing out"
            );
            TIMED_FALSE.fetch_add(1, Relaxed);
            if stats.timeouts_with_others_queued > 0 {
                TIMED_OUT_NEXT_TO_SLEEPER.fetch_add(1, Relaxed);
            }
        }
    });
}

#[test]
fn timed_wait_3_threads() {
    timed_wait(&Faults::none());
    assert!(
        TIMED_TRUE.load(Relaxed) > 0,
        "the timed wait never saw the pulse"
    );
    assert!(
        TIMED_FALSE.load(Relaxed) > 0,
        "the timed wait never timed out"
    );
}

#[test]
fn child_timed_wait_3_threads() {
    if let Some(f) = Faults::from_env() {
        timed_wait(&f);
    }
}

#[test]
fn caught_skip_wake_by_timed_wait() {
    expect_caught("child_timed_wait_3_threads", "skip-wake", &["deadlock"]);
}
