//! loom models of `shmsync_protocol::publish`: a reader that sees a record published sees
//! every field the writer wrote before publishing it.
//!
//! Two models: one whose fields are Relaxed loom atomics (a stale field is a wrong value, which
//! the readers assert against) and one whose fields are plain memory in a loom `UnsafeCell`
//! (a stale field is a data race, which loom reports). Each has a `child_*` twin that runs it
//! with the faults named in `SHMSYNC_LOOM_MUTATION` (word: `state`), and `caught_*` tests.

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::sync::atomic::AtomicU32;
use shmsync_loom_tests::LoomWord;
use shmsync_loom_tests::harness::{self, Faults, expect_caught};
use shmsync_protocol::publish::{publish, state};
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};

/// Preemptions explored per execution.
const PREEMPTIONS: usize = 3;

/// The state of a record being written.
const WRITING: u32 = 0;
/// The state of a published record.
const READY: u32 = 0x5EAD;

/// The field values the writer stores.
const FIELDS: [u32; 3] = [11, 22, 33];

/// Executions in which some reader saw the record published.
static SAW_READY: AtomicUsize = AtomicUsize::new(0);
/// Executions in which some reader saw it unpublished.
static SAW_WRITING: AtomicUsize = AtomicUsize::new(0);

fn note(seen: u32) {
    match seen {
        READY => SAW_READY.fetch_add(1, SeqCst),
        WRITING => SAW_WRITING.fetch_add(1, SeqCst),
        other => panic!("state {other:#x} was never written"),
    };
}

fn assert_both_seen() {
    assert!(SAW_READY.load(SeqCst) > 0, "no reader ever saw READY");
    assert!(SAW_WRITING.load(SeqCst) > 0, "no reader ever saw WRITING");
}

// ---------------------------------------------------------------------------------------------
// Fields as Relaxed atomics

struct AtomicRecord {
    state: LoomWord,
    fields: [AtomicU32; 3],
}

/// One writer fills three Relaxed atomic fields, then publishes; two readers (the main thread
/// and one more) each look once, and one that sees READY must read every field's final value.
fn atomic_fields(faults: &Faults) {
    let m = faults.on("state");
    harness::check(PREEMPTIONS, move || {
        let r = Arc::new(AtomicRecord {
            state: LoomWord::new(WRITING).mutation(m),
            fields: [AtomicU32::new(0), AtomicU32::new(0), AtomicU32::new(0)],
        });
        let read = |r: &AtomicRecord| {
            let seen = state(&r.state);
            if seen == READY {
                for (i, f) in r.fields.iter().enumerate() {
                    assert_eq!(
                        f.load(Relaxed),
                        FIELDS[i],
                        "a reader saw READY but a stale field {i}"
                    );
                }
            }
            seen
        };
        let writer = {
            let r = r.clone();
            loom::thread::spawn(move || {
                for (f, v) in r.fields.iter().zip(FIELDS) {
                    f.store(v, Relaxed);
                }
                publish(&r.state, READY);
            })
        };
        let reader = {
            let r = r.clone();
            loom::thread::spawn(move || read(&r))
        };
        let mine = read(&r);
        writer.join().unwrap();
        let theirs = reader.join().unwrap();
        note(mine);
        note(theirs);
        assert_eq!(state(&r.state), READY);
    });
}

#[test]
fn atomic_fields_1_writer_2_readers() {
    atomic_fields(&Faults::none());
    assert_both_seen();
}

#[test]
fn child_atomic_fields_1_writer_2_readers() {
    if let Some(f) = Faults::from_env() {
        atomic_fields(&f);
    }
}

/// The publishing store without Release: a reader sees READY before the fields.
#[test]
fn caught_relaxed_publish_store_by_atomic_fields() {
    expect_caught(
        "child_atomic_fields_1_writer_2_readers",
        "state=relaxed-stores",
        &["a reader saw READY but a stale field"],
    );
}

/// The reader's load without Acquire: same outcome from the other side.
#[test]
fn caught_relaxed_state_load_by_atomic_fields() {
    expect_caught(
        "child_atomic_fields_1_writer_2_readers",
        "state=relaxed-loads",
        &["a reader saw READY but a stale field"],
    );
}

// ---------------------------------------------------------------------------------------------
// Fields as plain memory

struct PlainRecord {
    state: LoomWord,
    fields: UnsafeCell<[u32; 3]>,
}

/// As [`atomic_fields`], but the fields are plain memory written without synchronisation: a
/// reader that sees READY and reads them must be ordered after the writer's writes, or loom
/// reports a data race.
fn plain_fields(faults: &Faults) {
    let m = faults.on("state");
    harness::check(PREEMPTIONS, move || {
        let r = Arc::new(PlainRecord {
            state: LoomWord::new(WRITING).mutation(m),
            fields: UnsafeCell::new([0; 3]),
        });
        let read = |r: &PlainRecord| {
            let seen = state(&r.state);
            if seen == READY {
                let fields = r.fields.with(|p| {
                    // SAFETY: the record was published (Acquire saw the Release store), so the
                    // writer's writes happen before this read and nobody writes it any more.
                    unsafe { *p }
                });
                assert_eq!(fields, FIELDS, "a reader saw READY but stale fields");
            }
            seen
        };
        let writer = {
            let r = r.clone();
            loom::thread::spawn(move || {
                r.fields.with_mut(|p| {
                    // SAFETY: readers touch the fields only after seeing READY, stored below.
                    unsafe { *p = FIELDS }
                });
                publish(&r.state, READY);
            })
        };
        let reader = {
            let r = r.clone();
            loom::thread::spawn(move || read(&r))
        };
        let mine = read(&r);
        writer.join().unwrap();
        let theirs = reader.join().unwrap();
        note(mine);
        note(theirs);
    });
}

#[test]
fn plain_fields_1_writer_2_readers() {
    plain_fields(&Faults::none());
    assert_both_seen();
}

#[test]
fn child_plain_fields_1_writer_2_readers() {
    if let Some(f) = Faults::from_env() {
        plain_fields(&f);
    }
}

#[test]
fn caught_relaxed_ordering_by_plain_fields() {
    expect_caught(
        "child_plain_fields_1_writer_2_readers",
        "state=relaxed-ordering",
        &["Causality violation"],
    );
}
