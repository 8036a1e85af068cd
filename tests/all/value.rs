//! `Value` and `Array`: their operations, their errors, and exact counts when several processes
//! update them under their locks.

use crate::common::{Barrier, SIZE, TestDir, arg, child_path, spawn, wait_all};
use shmsync::{Error, Region, Result, TryLockError};
use std::time::{Duration, Instant};

const PROCS: u64 = 4;
const ITERS: u64 = 20_000;

/// Every this many iterations a helper yields *inside* its critical section, between the read
/// and the write: if the lock ever let two processes in at once, updates would be lost.
const YIELD_EVERY: u64 = 64;

/// `PROCS` helpers each add 1 to the shared `Value<u64>` `ITERS` times in `mode`.
fn counter_across_processes(mode: &str) {
    let dir = TestDir::new("value-counter");
    let path = dir.join("region");
    let region = Region::create(&path, SIZE).unwrap();
    let counter = region.value::<u64>("counter", 0).unwrap();
    let barrier = Barrier::new(&region);
    let children = (0..PROCS)
        .map(|_| {
            spawn(
                "value_counter",
                &path,
                &[("mode", &mode), ("iters", &ITERS)],
            )
        })
        .collect();
    barrier.release(PROCS as u32);
    wait_all(children);
    let per_child = if mode == "fetch_add" {
        ITERS * 5
    } else {
        ITERS
    };
    assert_eq!(counter.load().unwrap(), PROCS * per_child, "mode {mode}");
    assert!(!counter.is_locked(), "a helper left the value locked");
}

/// Helper role `value_counter`.
pub fn child_counter() -> Result<()> {
    let region = Region::open(child_path())?;
    let counter = region.value::<u64>("counter", 0)?;
    let mode: String = arg("mode");
    let iters: u64 = arg("iters");
    Barrier::new(&region).arrive();
    match mode.as_str() {
        "guard" => {
            for i in 0..iters {
                let mut guard = counter.lock()?;
                let v = *guard;
                if i % YIELD_EVERY == 0 {
                    std::thread::yield_now();
                }
                *guard = v + 1;
            }
        }
        "fetch_add" => {
            // Nothing can be slowed down inside this critical section, so more iterations give
            // a broken lock more chances to lose an update.
            for _ in 0..iters * 5 {
                counter.fetch_add(1)?;
            }
        }
        "get_lock" => {
            let lock = counter.get_lock();
            for i in 0..iters {
                let mut guard = lock.lock()?;
                let v = counter.get_mut(&mut guard)?;
                let old = *v;
                if i % YIELD_EVERY == 0 {
                    std::thread::yield_now();
                }
                *v = old + 1;
            }
        }
        other => panic!("unknown mode {other}"),
    }
    Ok(())
}

#[test]
fn locked_increments_through_the_guard_are_exact_across_processes() {
    counter_across_processes("guard");
}

#[test]
fn fetch_add_is_exact_across_processes() {
    counter_across_processes("fetch_add");
}

#[test]
fn get_lock_and_get_mut_increments_are_exact_across_processes() {
    counter_across_processes("get_lock");
}

const ARRAY_LEN: usize = 8;
const ARRAY_ITERS: u64 = 5_000;

#[test]
fn locked_array_updates_are_exact_across_processes() {
    let dir = TestDir::new("array-counter");
    let path = dir.join("region");
    let region = Region::create(&path, SIZE).unwrap();
    let arr = region.array::<u64>("arr", &[0; ARRAY_LEN]).unwrap();
    let barrier = Barrier::new(&region);
    let children = (0..PROCS)
        .map(|_| spawn("array_counter", &path, &[("iters", &ARRAY_ITERS)]))
        .collect();
    barrier.release(PROCS as u32);
    wait_all(children);
    // Every element was incremented once per iteration, and element i also got i per iteration
    // through set(): a torn or lost update of any element shows.
    let expected: Vec<u64> = (0..ARRAY_LEN as u64)
        .map(|i| PROCS * ARRAY_ITERS * (i + 1))
        .collect();
    assert_eq!(arr.to_vec().unwrap(), expected);
}

/// Helper role `array_counter`.
pub fn child_array_counter() -> Result<()> {
    let region = Region::open(child_path())?;
    let arr = region.array::<u64>("arr", &[0; ARRAY_LEN])?;
    let iters: u64 = arg("iters");
    Barrier::new(&region).arrive();
    for i in 0..iters {
        let mut guard = arr.lock()?;
        let snapshot: Vec<u64> = guard.to_vec();
        if i % YIELD_EVERY == 0 {
            std::thread::yield_now();
        }
        for (j, x) in guard.iter_mut().enumerate() {
            *x = snapshot[j] + 1 + j as u64;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// In one process

#[test]
fn value_operations() {
    let region = Region::anonymous(SIZE).unwrap();
    let v = region.value::<u64>("v", 10).unwrap();
    assert_eq!(v.load().unwrap(), 10);
    v.store(20).unwrap();
    assert_eq!(v.load().unwrap(), 20);
    assert_eq!(v.fetch_add(5).unwrap(), 20);
    assert_eq!(v.fetch_sub(3).unwrap(), 25);
    assert_eq!(v.swap(100).unwrap(), 22);
    assert_eq!(v.compare_exchange(1, 2).unwrap(), Err(100));
    assert_eq!(v.load().unwrap(), 100);
    assert_eq!(v.compare_exchange(100, 7).unwrap(), Ok(100));
    assert_eq!(v.load().unwrap(), 7);
    {
        let mut g = v.lock().unwrap();
        *g *= 6;
        assert!(v.is_locked());
    }
    assert!(!v.is_locked());
    assert_eq!(v.load().unwrap(), 42);

    // Wrapping arithmetic, as documented.
    let b = region.value::<u8>("byte", 255).unwrap();
    assert_eq!(b.fetch_add(1).unwrap(), 255);
    assert_eq!(b.load().unwrap(), 0);
    assert_eq!(b.fetch_sub(1).unwrap(), 0);
    assert_eq!(b.load().unwrap(), 255);

    // Non-integer Pod types.
    let f = region.value::<f64>("pi", 0.0).unwrap();
    f.store(std::f64::consts::PI).unwrap();
    assert_eq!(f.load().unwrap(), std::f64::consts::PI);
    let quad = region.value::<[u32; 4]>("quad", [1, 2, 3, 4]).unwrap();
    quad.lock().unwrap()[2] = 30;
    assert_eq!(quad.load().unwrap(), [1, 2, 30, 4]);
    let wide = region.value::<u128>("wide", u128::MAX - 1).unwrap();
    assert_eq!(wide.load().unwrap(), u128::MAX - 1);
}

#[test]
fn an_existing_value_keeps_its_contents_and_handles_share_them() {
    let region = Region::anonymous(SIZE).unwrap();
    let a = region.value::<i32>("x", 5).unwrap();
    a.store(-9).unwrap();
    // The init of a second lookup is ignored: the object exists.
    let b = region.value::<i32>("x", 1234).unwrap();
    assert_eq!(b.load().unwrap(), -9);
    b.store(77).unwrap();
    assert_eq!(a.load().unwrap(), 77);
    // Clones share too, and outlive the Region handle.
    let c = a.clone();
    drop(region);
    drop(a);
    c.fetch_add(1).unwrap();
    assert_eq!(b.load().unwrap(), 78);

    let region = Region::anonymous(SIZE).unwrap();
    let arr = region.array::<u16>("arr", &[1, 2, 3]).unwrap();
    arr.set(1, 20).unwrap();
    let again = region.array::<u16>("arr", &[9, 9, 9]).unwrap();
    assert_eq!(again.to_vec().unwrap(), [1, 20, 3]);
}

#[test]
fn value_lock_excludes_try_lock_and_times_out() {
    let region = Region::anonymous(SIZE).unwrap();
    let v = region.value::<u32>("v", 1).unwrap();
    let lock = v.get_lock();
    let mut guard = lock.lock().unwrap();
    assert!(v.is_locked() && lock.is_locked());
    assert!(matches!(v.try_lock(), Err(TryLockError::WouldBlock)));
    assert!(matches!(lock.try_lock(), Err(TryLockError::WouldBlock)));
    let timeout = Duration::from_millis(50);
    let start = Instant::now();
    assert!(matches!(
        v.try_lock_for(timeout),
        Err(TryLockError::WouldBlock)
    ));
    assert!(
        start.elapsed() >= timeout,
        "gave up early: {:?}",
        start.elapsed()
    );
    let start = Instant::now();
    assert!(matches!(
        lock.try_lock_for(timeout),
        Err(TryLockError::WouldBlock)
    ));
    assert!(
        start.elapsed() >= timeout,
        "gave up early: {:?}",
        start.elapsed()
    );
    // The holder reaches the value through its guard.
    *v.get_mut(&mut guard).unwrap() = 5;
    drop(guard);
    assert!(!v.is_locked());
    assert_eq!(v.load().unwrap(), 5);
    let g = v.try_lock_for(timeout).expect("free now");
    assert_eq!(*g, 5);
}

#[test]
fn debug_shows_the_value_or_that_it_is_locked() {
    let region = Region::anonymous(SIZE).unwrap();
    let v = region.value::<u32>("v", 4242).unwrap();
    assert!(format!("{v:?}").contains("4242"));
    let g = v.lock().unwrap();
    assert!(format!("{v:?}").contains("<locked>"));
    assert!(format!("{g:?}").contains("4242"));
}

#[test]
fn get_mut_with_another_locks_guard_is_wrong_lock() {
    let region = Region::anonymous(SIZE).unwrap();
    let v = region.value::<u64>("v", 1).unwrap();
    let w = region.value::<u64>("w", 2).unwrap();
    let arr = region.array::<u8>("arr", &[1, 2]).unwrap();
    let plain = region.lock("plain").unwrap();

    let mut g = plain.lock().unwrap();
    assert!(matches!(v.get_mut(&mut g), Err(Error::WrongLock)));
    assert!(matches!(arr.get_mut(&mut g), Err(Error::WrongLock)));
    drop(g);

    let w_lock = w.get_lock();
    let mut g = w_lock.lock().unwrap();
    assert!(matches!(v.get_mut(&mut g), Err(Error::WrongLock)));
    assert!(matches!(arr.get_mut(&mut g), Err(Error::WrongLock)));
    // The guard's own object accepts it.
    *w.get_mut(&mut g).unwrap() += 40;
    drop(g);
    assert_eq!(w.load().unwrap(), 42);

    let a_lock = arr.get_lock();
    let mut g = a_lock.lock().unwrap();
    assert!(matches!(v.get_mut(&mut g), Err(Error::WrongLock)));
    arr.get_mut(&mut g).unwrap()[1] = 9;
    drop(g);
    assert_eq!(arr.to_vec().unwrap(), [1, 9]);
    // Nothing was written through the refused guards.
    assert_eq!(v.load().unwrap(), 1);

    // A guard of the same value's lock taken through another handle is the right lock.
    let v2 = region.value::<u64>("v", 0).unwrap();
    let v2_lock = v2.get_lock();
    let mut g = v2_lock.lock().unwrap();
    *v.get_mut(&mut g).unwrap() = 11;
    drop(g);
    assert_eq!(v.load().unwrap(), 11);
}

#[test]
fn array_operations_and_errors() {
    let region = Region::anonymous(SIZE).unwrap();
    let arr = region.array::<i32>("arr", &[0, 1, 2, 3]).unwrap();
    assert_eq!(arr.len(), 4);
    assert!(!arr.is_empty());
    assert_eq!(arr.get(3).unwrap(), 3);
    arr.set(0, -5).unwrap();
    assert_eq!(arr.to_vec().unwrap(), [-5, 1, 2, 3]);
    for x in arr.lock().unwrap().iter_mut() {
        *x *= 2;
    }
    assert_eq!(arr.to_vec().unwrap(), [-10, 2, 4, 6]);

    assert!(matches!(
        arr.get(4),
        Err(Error::IndexOutOfRange { index: 4, len: 4 })
    ));
    assert!(matches!(
        arr.set(usize::MAX, 1),
        Err(Error::IndexOutOfRange {
            index: usize::MAX,
            len: 4
        })
    ));
    assert!(matches!(
        arr.copy_from_slice(&[1, 2, 3]),
        Err(Error::LengthMismatch {
            expected: 4,
            found: 3
        })
    ));
    assert!(matches!(
        arr.copy_from_slice(&[1, 2, 3, 4, 5]),
        Err(Error::LengthMismatch {
            expected: 4,
            found: 5
        })
    ));
    // Failed calls changed nothing and left the lock free.
    assert_eq!(arr.to_vec().unwrap(), [-10, 2, 4, 6]);
    assert!(!arr.is_locked());
    arr.copy_from_slice(&[7, 8, 9, 10]).unwrap();
    assert_eq!(arr.to_vec().unwrap(), [7, 8, 9, 10]);

    let msg = arr.get(9).unwrap_err().to_string();
    assert!(msg.contains('9') && msg.contains('4'), "{msg}");

    // Locked: try_lock refuses, the guard derefs to the slice.
    let g = arr.lock().unwrap();
    assert!(matches!(arr.try_lock(), Err(TryLockError::WouldBlock)));
    assert!(matches!(
        arr.try_lock_for(Duration::from_millis(20)),
        Err(TryLockError::WouldBlock)
    ));
    assert_eq!(&*g, &[7, 8, 9, 10]);
    drop(g);

    let empty = region.array::<u64>("empty", &[]).unwrap();
    assert!(empty.is_empty());
    assert_eq!(empty.to_vec().unwrap(), Vec::<u64>::new());
    assert!(matches!(
        empty.get(0),
        Err(Error::IndexOutOfRange { index: 0, len: 0 })
    ));
    empty.copy_from_slice(&[]).unwrap();
}

/// A `Pod` type with a large alignment, implemented by hand (the test crate has no bytemuck).
#[derive(Clone, Copy)]
#[repr(C, align(4096))]
struct Page([u8; 4096]);
// SAFETY: a byte array with no padding (size == align == 4096); any bytes are valid.
unsafe impl shmsync::Zeroable for Page {}
// SAFETY: as above; `Copy + 'static`.
unsafe impl shmsync::Pod for Page {}

#[derive(Clone, Copy)]
#[repr(C, align(8192))]
struct TwoPages([u8; 8192]);
// SAFETY: a byte array with no padding (size == align == 8192); any bytes are valid.
unsafe impl shmsync::Zeroable for TwoPages {}
// SAFETY: as above.
unsafe impl shmsync::Pod for TwoPages {}

#[test]
fn over_aligned_elements_up_to_a_page_are_aligned_in_file_regions() {
    let dir = TestDir::new("align");
    let region = Region::create(dir.join("r"), 1 << 20).unwrap();
    region.lock("pad").unwrap();
    let v = region.value::<Page>("page", Page([3; 4096])).unwrap();
    let g = v.lock().unwrap();
    assert_eq!(&*g as *const Page as usize % 4096, 0);
    assert_eq!(g.0[4095], 3);
    drop(g);
    let raw = region
        .raw_array::<Page>("pages", &[Page([1; 4096]); 2])
        .unwrap();
    assert_eq!(raw.as_ptr() as usize % 4096, 0);
}

/// Object offsets are aligned within the file, but a mapping's address is only page-aligned,
/// so an element aligned to more than a page would land misaligned: such types are refused.
#[test]
fn elements_aligned_beyond_a_page_are_refused() {
    let dir = TestDir::new("align-big");
    let region = Region::create(dir.join("r"), 1 << 20).unwrap();
    match region.raw_value::<TwoPages>("big", TwoPages([0; 8192])) {
        Err(Error::UnsupportedType { .. }) => {}
        Ok(v) => panic!("accepted, at {:p}", v.as_ptr()),
        Err(e) => panic!("refused with the wrong error: {e}"),
    }
    assert!(
        region.objects().unwrap().is_empty(),
        "nothing was allocated"
    );
}

/// A zero-length array is allowed (as Python's `Array('i', 0)` is): every index is out of range.
#[test]
fn a_zero_length_array_is_empty_and_refuses_every_index() {
    let region = Region::anonymous(SIZE).unwrap();
    let a = region.array::<i32>("empty", &[]).unwrap();
    assert!(a.is_empty());
    assert_eq!(a.len(), 0);
    assert!(a.to_vec().unwrap().is_empty());
    assert!(matches!(
        a.get(0),
        Err(Error::IndexOutOfRange { index: 0, len: 0 })
    ));
    assert!(matches!(a.set(0, 1), Err(Error::IndexOutOfRange { .. })));
    a.copy_from_slice(&[]).unwrap();
    assert!(a.lock().unwrap().is_empty());
    // Reopening it requires the same (zero) length.
    assert!(region.array::<i32>("empty", &[]).is_ok());
    assert!(matches!(
        region.array::<i32>("empty", &[0]),
        Err(Error::Mismatch { .. })
    ));
}
