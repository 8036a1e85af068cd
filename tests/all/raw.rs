//! `RawValue` and `RawArray`: lock-free atomics, exact across processes.

use crate::common::{Barrier, SIZE, TestDir, arg, child_path, spawn, wait_all};
use shmsync::{Region, Result};

const PROCS: u32 = 4;
const ITERS: u64 = 50_000;
const LEN: usize = 5;
const CAS_ITERS: u64 = 5_000;

#[test]
fn atomic_raw_operations_are_exact_across_processes() {
    let dir = TestDir::new("raw-atomics");
    let path = dir.join("region");
    let region = Region::create(&path, SIZE).unwrap();
    let up = region.raw_value::<u64>("up", 0).unwrap();
    let down = region.raw_value::<i64>("down", 0).unwrap();
    let cas = region.raw_value::<u32>("cas", 0).unwrap();
    let slots = region.raw_array::<u32>("slots", &[0; LEN]).unwrap();
    let barrier = Barrier::new(&region);
    let children = (0..PROCS)
        .map(|_| {
            spawn(
                "raw_atomics",
                &path,
                &[("iters", &ITERS), ("cas_iters", &CAS_ITERS)],
            )
        })
        .collect();
    barrier.release(PROCS);
    wait_all(children);
    let procs = u64::from(PROCS);
    assert_eq!(up.load(), procs * ITERS);
    assert_eq!(down.load(), -((procs * ITERS) as i64));
    assert_eq!(u64::from(cas.load()), procs * CAS_ITERS);
    // Element j got 1 per iteration i with i % LEN == j.
    let per_slot = procs * ITERS / LEN as u64;
    let expected: Vec<u32> = (0..LEN).map(|_| per_slot as u32).collect();
    assert_eq!(slots.to_vec(), expected);
}

/// Helper role `raw_atomics`.
pub fn child_raw_atomics() -> Result<()> {
    let region = Region::open(child_path())?;
    let up = region.raw_value::<u64>("up", 0)?;
    let down = region.raw_value::<i64>("down", 0)?;
    let cas = region.raw_value::<u32>("cas", 0)?;
    let slots = region.raw_array::<u32>("slots", &[0; LEN])?;
    let iters: u64 = arg("iters");
    let cas_iters: u64 = arg("cas_iters");
    Barrier::new(&region).arrive();
    for i in 0..iters {
        up.fetch_add(1);
        down.fetch_sub(1);
        slots.fetch_add(i as usize % LEN, 1);
    }
    // An increment built from load + compare_exchange: exact only if the CAS is atomic.
    for _ in 0..cas_iters {
        let mut cur = cas.load();
        loop {
            match cas.compare_exchange(cur, cur + 1) {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
    }
    Ok(())
}

#[test]
fn raw_value_operations() {
    let region = Region::anonymous(SIZE).unwrap();
    let v = region.raw_value::<u64>("v", 3).unwrap();
    assert_eq!(v.load(), 3);
    v.store(10);
    assert_eq!(v.fetch_add(5), 10);
    assert_eq!(v.fetch_sub(1), 15);
    assert_eq!(v.swap(100), 14);
    assert_eq!(v.compare_exchange(1, 2), Err(100));
    assert_eq!(v.compare_exchange(100, 2), Ok(100));
    assert_eq!(v.load(), 2);
    assert!(format!("{v:?}").contains('2'));
    // Wrapping.
    let b = region.raw_value::<i8>("b", i8::MAX).unwrap();
    assert_eq!(b.fetch_add(1), i8::MAX);
    assert_eq!(b.load(), i8::MIN);
    // Another handle to the same name is the same cell, and keeps its value.
    let v2 = region.raw_value::<u64>("v", 999).unwrap();
    assert_eq!(v2.load(), 2);
    v2.store(7);
    assert_eq!(v.load(), 7);
    assert_eq!(v.as_ptr(), v2.as_ptr());

    // Non-atomic types through the unsafe accessors.
    let f = region.raw_value::<f64>("f", 1.5).unwrap();
    // SAFETY: nobody else touches `f`.
    unsafe {
        assert_eq!(f.read(), 1.5);
        f.write(-2.25);
        assert_eq!(f.read(), -2.25);
    }
    let f2 = region.raw_value::<f64>("f", 0.0).unwrap();
    // SAFETY: as above.
    assert_eq!(unsafe { f2.read() }, -2.25);
}

#[test]
fn raw_array_operations() {
    let region = Region::anonymous(SIZE).unwrap();
    let a = region.raw_array::<i32>("a", &[1, 2, 3]).unwrap();
    assert_eq!(a.len(), 3);
    assert!(!a.is_empty());
    assert_eq!(a.to_vec(), [1, 2, 3]);
    a.store(0, 10);
    assert_eq!(a.fetch_add(1, 5), 2);
    assert_eq!(a.fetch_sub(2, 4), 3);
    assert_eq!(a.swap(0, -1), 10);
    assert_eq!(a.compare_exchange(1, 0, 1), Err(7));
    assert_eq!(a.compare_exchange(1, 7, 70), Ok(7));
    assert_eq!(a.to_vec(), [-1, 70, -1]);
    assert_eq!(a.load(2), -1);
    let b = region.raw_array::<i32>("a", &[0, 0, 0]).unwrap();
    assert_eq!(
        b.to_vec(),
        [-1, 70, -1],
        "an existing array keeps its elements"
    );

    let f = region.raw_array::<f32>("f", &[0.5, 1.5]).unwrap();
    // SAFETY: nobody else touches `f`.
    unsafe {
        assert_eq!(f.read(1), 1.5);
        f.write(0, 8.0);
        assert_eq!(f.read(0), 8.0);
    }

    let e = region.raw_array::<u8>("empty", &[]).unwrap();
    assert!(e.is_empty());
    assert!(e.to_vec().is_empty());
}

#[test]
#[should_panic(expected = "out of range")]
fn raw_array_index_out_of_range_panics() {
    let region = Region::anonymous(SIZE).unwrap();
    let a = region.raw_array::<u64>("a", &[0; 4]).unwrap();
    a.fetch_add(4, 1);
}

#[test]
#[should_panic(expected = "out of range")]
fn raw_array_unsafe_read_out_of_range_panics() {
    let region = Region::anonymous(SIZE).unwrap();
    let a = region.raw_array::<f64>("a", &[0.0; 2]).unwrap();
    // SAFETY: nobody else touches `a`; the index is refused before any access.
    let _ = unsafe { a.read(2) };
}
