//! Unit tests of the header and directory logic (multi-process behaviour is in `tests/`).

use super::layout::{self, ENTRY_SIZE, HEADER_SIZE, PAD, entry, header};
use super::*;
use crate::Kind;
use crate::protocol::Word;
use std::sync::atomic::Ordering::Relaxed;

fn region(capacity: usize) -> Region {
    Region::options()
        .capacity(capacity)
        .anonymous(64 * 1024)
        .unwrap()
}

#[test]
fn new_header_is_complete_and_valid() {
    let r = region(16);
    let i = &r.inner;
    assert_eq!(
        i.u64_at(header::MAGIC).load(Relaxed).to_ne_bytes(),
        layout::MAGIC
    );
    assert_eq!(i.word(header::VERSION).load(Relaxed), layout::VERSION);
    assert_eq!(i.word(header::LAYOUT).load(Relaxed), layout::LAYOUT);
    assert_eq!(i.word(header::STATE).load(Relaxed), layout::READY);
    assert_eq!(i.u64_at(header::SIZE).load(Relaxed), 64 * 1024);
    assert_eq!(i.u64_at(header::DIR_SLOTS).load(Relaxed), 32);
    assert_eq!(i.u64_at(header::CAPACITY).load(Relaxed), 16);
    let heap = i.u64_at(header::HEAP_OFFSET).load(Relaxed) as usize;
    assert_eq!(heap, layout::heap_offset(32, layout::MAX_PROCS).unwrap());
    assert_eq!(heap % PAD, 0);
    assert_eq!(i.u64_at(header::CURSOR).load(Relaxed) as usize, heap);
    assert_eq!(r.free_bytes(), 64 * 1024 - heap);
}

#[test]
fn geometry_rejects_unusable_sizes() {
    for (size, capacity) in [
        (0, None),
        (1000, None),
        (
            layout::heap_offset(32, layout::MAX_PROCS).unwrap(),
            Some(16),
        ),
    ] {
        assert!(
            matches!(
                Geometry::for_new(size, capacity, layout::MAX_PROCS),
                Err(Error::InvalidSize { .. })
            ),
            "size {size} capacity {capacity:?}"
        );
    }
    assert!(matches!(
        Geometry::for_new(1 << 20, Some(0), layout::MAX_PROCS),
        Err(Error::InvalidSize { .. })
    ));
    assert!(matches!(
        Geometry::for_new(1 << 20, Some(usize::MAX / 2), layout::MAX_PROCS),
        Err(Error::InvalidSize { .. })
    ));
    assert!(matches!(
        Geometry::for_new(usize::MAX, None, layout::MAX_PROCS),
        Err(Error::InvalidSize { .. })
    ));
    // The smallest usable region: header, directory and one padding unit of objects.
    let least = layout::heap_offset(32, layout::MAX_PROCS).unwrap() + PAD;
    assert!(Geometry::for_new(least, Some(16), layout::MAX_PROCS).is_ok());
}

#[test]
fn objects_are_padded_apart_and_listed() {
    let r = region(16);
    let a = r
        .inner
        .get_or_create("a", &Spec::plain(Kind::Lock), |_| {})
        .unwrap();
    let b = r
        .inner
        .get_or_create("b", &Spec::plain(Kind::Lock), |_| {})
        .unwrap();
    let v = r
        .inner
        .get_or_create("v", &Spec::of::<u64>(Kind::Value, 1), |_| {})
        .unwrap();
    assert_eq!(b - a, PAD, "two locks never share a padding unit");
    assert_eq!(v - b, PAD);
    assert_eq!(
        r.inner
            .get_or_create("a", &Spec::plain(Kind::Lock), |_| panic!())
            .unwrap(),
        a
    );
    let names: Vec<_> = r
        .objects()
        .unwrap()
        .into_iter()
        .map(|o| (o.name, o.kind))
        .collect();
    assert_eq!(names.len(), 3);
    for (n, k) in [("a", Kind::Lock), ("b", Kind::Lock), ("v", Kind::Value)] {
        assert!(
            names.contains(&(n.to_string(), k)),
            "{n} missing from {names:?}"
        );
    }
}

#[test]
fn over_aligned_elements_are_aligned() {
    #[derive(Clone, Copy, bytemuck::Zeroable, bytemuck::Pod)]
    #[repr(C, align(256))]
    struct Big([u8; 256]);
    let r = region(16);
    r.lock("pad").unwrap();
    let v = r.value("big", Big([7; 256])).unwrap();
    let g = v.lock().unwrap();
    assert_eq!(&*g as *const Big as usize % 256, 0);
    assert_eq!(g.0[255], 7);
}

#[test]
fn colliding_names_probe_past_each_other() {
    // Find names that share a home slot in a 32-slot table.
    let home = |n: &str| layout::fnv1a(n.as_bytes()) as usize & 31;
    let first = "x0".to_string();
    let twins: Vec<String> = (1..10_000)
        .map(|i| format!("x{i}"))
        .filter(|n| home(n) == home(&first))
        .take(3)
        .collect();
    assert_eq!(twins.len(), 3);
    let r = region(16);
    let mut offsets = vec![r.value(&first, 0u32).unwrap()];
    for (i, n) in twins.iter().enumerate() {
        let v = r.value(n, i as u32 + 1).unwrap();
        offsets.push(v);
    }
    assert_eq!(offsets[0].load().unwrap(), 0);
    for (i, n) in twins.iter().enumerate() {
        assert_eq!(r.value(n, 99u32).unwrap().load().unwrap(), i as u32 + 1);
    }
}

#[test]
fn capacity_is_enforced_and_nothing_is_lost() {
    let r = region(3);
    for n in ["a", "b", "c"] {
        r.value(n, 5u8).unwrap();
    }
    assert!(matches!(
        r.lock("d"),
        Err(Error::DirectoryFull { capacity: 3 })
    ));
    assert!(matches!(r.value("a", 0u8), Ok(v) if v.load().unwrap() == 5));
    assert_eq!(r.objects().unwrap().len(), 3);
}

#[test]
fn space_is_enforced_and_nothing_is_lost() {
    let r = region(16);
    let small = r.array("small", &[1u8; 100]).unwrap();
    let free = r.free_bytes();
    assert!(matches!(
        r.array("big", &vec![0u8; free]),
        Err(Error::OutOfSpace { .. })
    ));
    assert_eq!(r.free_bytes(), free);
    assert_eq!(small.to_vec().unwrap(), vec![1u8; 100]);
    // The largest array that fits (lock word and padding included) still fits.
    assert!(r.array("fits", &vec![0u8; free - 4]).is_ok());
    assert_eq!(r.free_bytes(), 0);
}

#[test]
fn mismatches_name_both_sides() {
    let r = region(16);
    r.value("x", 1.5f64).unwrap();
    r.array("arr", &[0i32; 10]).unwrap();
    let msg = |e: Error| e.to_string();
    let e = msg(r.value::<u64>("x", 0).unwrap_err());
    assert!(e.contains("Value<f64>") && e.contains("Value<u64>"), "{e}");
    let e = msg(r.lock("x").unwrap_err());
    assert!(e.contains("Value<f64>") && e.contains("Lock"), "{e}");
    let e = msg(r.array("arr", &[0i32; 11]).unwrap_err());
    assert!(
        e.contains("Array<i32; 10>") && e.contains("Array<i32; 11>"),
        "{e}"
    );
    let e = msg(r.raw_array("arr", &[0i32; 10]).unwrap_err());
    assert!(e.contains("RawArray<i32; 10>"), "{e}");
}

#[test]
fn bad_names_are_refused() {
    let r = region(16);
    for name in ["", "a\0b", &"n".repeat(129)] {
        assert!(
            matches!(r.lock(name), Err(Error::InvalidName { .. })),
            "{name:?}"
        );
    }
    assert!(r.lock(&"n".repeat(128)).is_ok());
    assert!(r.lock("ünïcödé ✓").is_ok());
    assert_eq!(r.objects().unwrap().len(), 2);
}

#[test]
fn damaged_entries_are_reported_not_trusted() {
    let r = region(16);
    r.value("v", 1u64).unwrap();
    let slot = (0..32)
        .find(|s| r.inner.word(HEADER_SIZE + s * ENTRY_SIZE).load(Relaxed) != 0)
        .unwrap();
    let at = HEADER_SIZE + slot * ENTRY_SIZE;
    let check = |field: usize, value: u64, wide: bool| {
        let old = if wide {
            r.inner.u64_at(at + field).swap(value, Relaxed)
        } else {
            u64::from(r.inner.word(at + field).swap(value as u32, Relaxed))
        };
        let e = r.value("v", 0u64).unwrap_err();
        assert!(matches!(e, Error::Corrupt { .. }), "field {field}: {e}");
        assert!(matches!(r.objects(), Err(Error::Corrupt { .. })));
        if wide {
            r.inner.u64_at(at + field).store(old, Relaxed);
        } else {
            r.inner.word(at + field).store(old as u32, Relaxed);
        }
        assert_eq!(r.value("v", 0u64).unwrap().load().unwrap(), 1);
    };
    check(entry::OFFSET, 64 * 1024 - 8, true); // runs past the end
    check(entry::OFFSET, 8, true); // inside the header
    check(entry::OFFSET, u64::MAX, true);
    check(entry::BYTES, u64::MAX, true);
    check(entry::KIND, 99, false);
    check(entry::ELEM_ALIGN, 3, false);
    check(entry::TYPE_LEN, 65, false);
    check(entry::STATE, 7, false);
    // A lying length is a mismatch with a clear message, not an out-of-bounds access.
    r.inner.u64_at(at + entry::LEN).store(1 << 40, Relaxed);
    assert!(r.value("v", 0u64).is_err());
}

#[test]
fn process_table_size_is_validated_and_recorded() {
    for bad in [0, layout::MAX_PROCS + 1] {
        assert!(matches!(
            Region::options().max_processes(bad).anonymous(1 << 16),
            Err(Error::InvalidSize { .. })
        ));
    }
    let r = Region::options()
        .max_processes(1)
        .anonymous(1 << 16)
        .unwrap();
    assert_eq!(r.inner.u64_at(header::PROCS).load(Relaxed), 1);
    let lock = r.lock("l").unwrap();
    let _g = lock.lock().unwrap();
    assert_eq!(lock.holder(), Some(std::process::id()));
}

/// A lock word holding the token of a slot whose generation moved on: its holder is gone.
fn dead_token() -> u32 {
    (7 << layout::SLOT_BITS) | 5
}

#[test]
fn a_dead_holder_is_taken_over_then_unrecoverable_unless_marked() {
    use crate::{LockError, TryLockError};
    let r = region(16);
    let v = r.value("v", 1u64).unwrap();
    let word = v.get_lock();
    let at = |v: &crate::Value<u64>| v.raw().word().store(dead_token(), Relaxed);

    // Taken over, repaired, marked: back to normal.
    at(&v);
    assert!(v.is_locked() && v.holder().is_none());
    match v.lock() {
        Err(LockError::OwnerDied(died)) => {
            let mut g = died.into_guard();
            assert!(v.is_poisoned());
            *g = 10;
            g.mark_consistent();
        }
        other => panic!("expected OwnerDied, got {other:?}"),
    }
    assert!(!v.is_poisoned() && !v.is_locked());
    assert_eq!(v.load().unwrap(), 10);

    // Taken over by try_lock, dropped without marking: unrecoverable for everyone.
    at(&v);
    match word.try_lock() {
        Err(TryLockError::OwnerDied(died)) => drop(died.into_guard()),
        other => panic!("expected OwnerDied, got {other:?}"),
    }
    assert!(v.is_unrecoverable());
    assert!(matches!(v.lock(), Err(LockError::NotRecoverable)));
    assert!(matches!(v.try_lock(), Err(TryLockError::NotRecoverable)));
    assert!(matches!(v.load(), Err(Error::NotRecoverable)));
    assert!(matches!(v.store(3), Err(Error::NotRecoverable)));
}

#[test]
fn python_style_acquire_reports_poison_through_queries() {
    let r = region(16);
    let lock = r.lock("l").unwrap();
    lock.raw().word().store(dead_token(), Relaxed);
    assert!(lock.acquire(false, None));
    assert!(lock.is_poisoned());
    assert_eq!(lock.holder(), Some(std::process::id()));
    lock.mark_consistent().unwrap();
    lock.release().unwrap();
    assert!(!lock.is_locked() && !lock.is_unrecoverable());
    assert!(matches!(lock.mark_consistent(), Err(Error::NotLocked)));

    // A store repairs a value whose holder died.
    let v = r.value("v", 0u32).unwrap();
    v.raw().word().store(dead_token(), Relaxed);
    v.store(9).unwrap();
    assert!(!v.is_poisoned() && !v.is_unrecoverable());
    assert_eq!(v.load().unwrap(), 9);
}

#[test]
fn a_stuck_allocation_lock_is_an_error_not_a_hang() {
    let r = region(16);
    r.lock("before").unwrap();
    // A live-looking holder (an unregistered process's token is never judged dead) that never
    // lets go.
    r.inner
        .word(header::ALLOC_LOCK)
        .store(super::procs::UNREGISTERED, Relaxed);
    assert!(matches!(
        r.lock("new"),
        Err(Error::AllocationTimeout { .. })
    ));
    // Existing objects are found without the allocation lock.
    assert!(r.lock("before").is_ok());
}

#[test]
fn a_damaged_rlock_count_never_makes_a_try_panic() {
    use crate::TryLockError;
    let r = region(16);
    let rl = r.rlock("r").unwrap();
    let g = rl.lock().unwrap();
    // Another process scribbles u32::MAX into the count word while we own the lock.
    rl.count_word().store(u32::MAX, Relaxed);
    assert!(matches!(rl.try_lock(), Err(TryLockError::WouldBlock)));
    assert!(!rl.acquire(false, None));
    rl.count_word().store(1, Relaxed);
    drop(g);
    assert!(!rl.is_locked());
}

#[test]
fn overlapping_objects_from_a_damaged_directory_are_refused() {
    let r = region(16);
    let a = r.value("a", 1u64).unwrap();
    r.raw_array("b", &[0u8; 200]).unwrap();
    let slot_of = |name: &str| {
        (0..32)
            .map(|s| HEADER_SIZE + s * ENTRY_SIZE)
            .find(|&at| {
                r.inner.word(at).load(Relaxed) == layout::ENTRY_READY
                    && r.inner.u64_at(at + entry::NAME_HASH).load(Relaxed)
                        == layout::fnv1a(name.as_bytes())
            })
            .unwrap()
    };
    let a_offset = r.inner.u64_at(slot_of("a") + entry::OFFSET).load(Relaxed);
    let b_entry = slot_of("b");
    // "b" now claims to start where "a" lives: a handle on it would alias a's lock and value.
    r.inner
        .u64_at(b_entry + entry::OFFSET)
        .store(a_offset, Relaxed);
    let e = r.raw_array::<u8>("b", &[0; 200]).unwrap_err();
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains("overlapping"), "{e}");
    assert_eq!(a.load().unwrap(), 1);

    // An object placed in free space, beyond the allocation cursor, is refused too.
    let cursor = r.inner.u64_at(header::CURSOR).load(Relaxed);
    r.inner
        .u64_at(b_entry + entry::OFFSET)
        .store(cursor, Relaxed);
    assert!(matches!(
        r.raw_array::<u8>("b", &[0; 200]),
        Err(Error::Corrupt { .. })
    ));
}

#[test]
fn a_region_owned_by_another_user_is_refused_unless_allowed() {
    let dir = std::env::temp_dir().join(format!("shmsync-owner-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("r");
    Region::options()
        .mode(0o666)
        .create(&path, 1 << 16)
        .unwrap()
        .lock("l")
        .unwrap();
    assert!(Region::open(&path).is_ok(), "our own file opens");
    // Only root can give a file away; elsewhere the refusal cannot be staged.
    let nobody = 65534;
    match std::os::unix::fs::chown(&path, Some(nobody), None) {
        Ok(()) => {
            let e = Region::open(&path).unwrap_err();
            assert!(
                matches!(e, Error::OtherOwner { owner, .. } if owner == nobody),
                "{e}"
            );
            let e = Region::open_or_create(&path, 1 << 16).unwrap_err();
            assert!(matches!(e, Error::OtherOwner { .. }), "{e}");
            let r = Region::options()
                .allow_other_owner(true)
                .open(&path)
                .unwrap();
            assert!(r.lock("l").is_ok());
        }
        Err(e) => eprintln!("not root ({e}): the refusal of another user's file is not staged"),
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_damaged_cursor_never_makes_a_new_object_overwrite_a_live_one() {
    let r = region(16);
    let a = r.value("a", 5u64).unwrap();
    let guard = a.lock().unwrap();
    let heap = r.inner.u64_at(header::HEAP_OFFSET).load(Relaxed);
    r.inner.u64_at(header::CURSOR).store(heap, Relaxed);
    let e = r.value::<u64>("b", 7).unwrap_err();
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
    assert!(a.is_locked(), "a's lock word was not reset under its guard");
    assert_eq!(*guard, 5);
    drop(guard);
    assert!(a.try_lock().is_ok());
}

/// A fresh directory under the temp dir (one per test and process), removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("shmsync-unit-{}-{test}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_collector_between_open_and_mark_sends_the_opener_back_to_the_path() {
    let dir = TempDir::new("collected");
    let path = dir.0.join("r");
    drop(Region::create(&path, 64 * 1024).unwrap());
    // The collector runs right after the opener's open(2), before its mark: it finds the file
    // unmarked and removes it. The opener must notice, and not use the removed file.
    let mut opens = 0;
    let result = open_in_use_with(&path, || {
        opens += 1;
        let file = sys::open_existing(&path)?;
        if opens == 1 {
            assert_eq!(
                inspect::collect(&path, false).unwrap(),
                inspect::Collected::Removed
            );
        }
        Ok(file)
    });
    assert!(matches!(result, Err(Error::NotFound(_))), "{result:?}");
    assert_eq!(opens, 2);

    // The same with a new region created at the path meanwhile: the opener gets that one.
    let _keep = Region::create(&path, 64 * 1024).unwrap();
    drop(_keep);
    let mut opens = 0;
    let file = open_in_use_with(&path, || {
        opens += 1;
        let file = sys::open_existing(&path)?;
        if opens == 1 {
            assert_eq!(
                inspect::collect(&path, false).unwrap(),
                inspect::Collected::Removed
            );
            drop(Region::create(&path, 64 * 1024).unwrap());
        }
        Ok(file)
    })
    .unwrap();
    assert!(sys::names(&path, &file).unwrap());
    // Marked: a collector now keeps its hands off.
    assert_eq!(
        inspect::collect(&path, false).unwrap(),
        inspect::Collected::InUse
    );
    assert_eq!(
        inspect::collect(&path, true).unwrap(),
        inspect::Collected::InUse
    );
    drop(file);
    assert_eq!(
        inspect::collect(&path, true).unwrap(),
        inspect::Collected::Unused
    );
}

#[test]
fn an_opener_waits_out_a_collector_that_keeps_the_file() {
    let dir = TempDir::new("claimed");
    let path = dir.0.join("r");
    drop(Region::create(&path, 64 * 1024).unwrap());
    // A collector that claimed the file and then decided to keep it (say it found a lease):
    // openers wait for it to let go, and then use the file.
    let claim = sys::open_existing(&path).unwrap();
    assert!(sys::claim_unused(&claim).unwrap());
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(50));
        drop(claim);
    });
    let region = Region::open(&path).unwrap();
    releaser.join().unwrap();
    assert!(sys::names(&path, region.inner.map.file()).unwrap());
    assert_eq!(
        inspect::collect(&path, false).unwrap(),
        inspect::Collected::InUse
    );
}
