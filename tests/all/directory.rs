//! The directory of named objects: name rules, kind/type/length mismatches, a full directory and
//! an exhausted region.

use crate::common::SIZE;
use shmsync::{Error, Region};

/// Calls every object constructor with `name`, returning their results' errors.
fn every_kind(region: &Region, name: &str) -> Vec<(&'static str, shmsync::Result<()>)> {
    vec![
        ("lock", region.lock(name).map(drop)),
        ("rlock", region.rlock(name).map(drop)),
        ("value", region.value::<u32>(name, 0).map(drop)),
        ("array", region.array::<u32>(name, &[0; 2]).map(drop)),
        ("raw_value", region.raw_value::<u32>(name, 0).map(drop)),
        (
            "raw_array",
            region.raw_array::<u32>(name, &[0; 2]).map(drop),
        ),
    ]
}

#[test]
fn invalid_names_are_refused_by_every_constructor() {
    let region = Region::anonymous(SIZE).unwrap();
    let long = "n".repeat(129);
    let long_utf8 = "é".repeat(65); // 130 bytes, 65 chars
    let cases: [(&str, &str); 5] = [
        ("", "empty"),
        (&long, "129 bytes"),
        (&long_utf8, "130 bytes of UTF-8"),
        ("a\0b", "NUL inside"),
        ("\0", "only NUL"),
    ];
    for (name, what) in cases {
        for (kind, result) in every_kind(&region, name) {
            match result {
                Err(Error::InvalidName { name: n, .. }) => assert_eq!(n, name, "{kind} {what}"),
                other => panic!("{kind} with a name {what}: {other:?}"),
            }
        }
    }
    assert!(
        region.objects().unwrap().is_empty(),
        "a refused name was stored"
    );
    let msg = region.lock("").unwrap_err().to_string();
    assert!(msg.contains("name"), "{msg}");

    // The limits themselves are fine: 128 bytes, multi-byte UTF-8, odd characters.
    let max = "m".repeat(128);
    let max_utf8 = "é".repeat(64);
    for (i, name) in [max.as_str(), max_utf8.as_str(), "a/b c", "🦀", "x"]
        .into_iter()
        .enumerate()
    {
        let v = region.value::<usize>(name, i).unwrap();
        assert_eq!(region.value::<usize>(name, 99).unwrap().load().unwrap(), i);
        v.store(i + 10).unwrap();
    }
    let names: Vec<String> = region
        .objects()
        .unwrap()
        .into_iter()
        .map(|o| o.name)
        .collect();
    assert_eq!(names.len(), 5);
    assert!(names.contains(&max) && names.contains(&max_utf8));
    // Names differing only past a prefix are different objects.
    let other_max = format!("{}x", "m".repeat(127));
    assert_eq!(
        region
            .value::<usize>(&other_max, 77)
            .unwrap()
            .load()
            .unwrap(),
        77
    );
}

fn mismatch(result: shmsync::Result<impl Sized>) -> (String, String, String) {
    match result {
        Err(Error::Mismatch {
            name,
            existing,
            requested,
        }) => (name, existing, requested),
        Err(e) => panic!("expected Mismatch, got {e:?}"),
        Ok(_) => panic!("expected Mismatch, got an object"),
    }
}

#[test]
fn opening_a_name_as_another_kind_type_or_length_is_a_mismatch_naming_both_sides() {
    let region = Region::anonymous(SIZE).unwrap();
    region.value::<u64>("counter", 0).unwrap();
    region.array::<i32>("arr", &[0; 3]).unwrap();
    region.lock("lock").unwrap();
    region.rlock("rlock").unwrap();
    region.raw_value::<u64>("raw", 0).unwrap();
    region.raw_array::<u8>("bytes", &[0; 16]).unwrap();

    let err = region.value::<f64>("counter", 0.0).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("Value<u64>") && msg.contains("Value<f64>") && msg.contains("counter"),
        "{msg}"
    );
    let s = |x: &str| x.to_string();
    let cases = [
        (
            mismatch(region.value::<f64>("counter", 0.0)),
            ("counter", "Value<u64>", "Value<f64>"),
        ),
        // Same size and alignment, another type.
        (
            mismatch(region.value::<i64>("counter", 0)),
            ("counter", "Value<u64>", "Value<i64>"),
        ),
        (
            mismatch(region.raw_value::<u64>("counter", 0)),
            ("counter", "Value<u64>", "RawValue<u64>"),
        ),
        (
            mismatch(region.array::<u64>("counter", &[0])),
            ("counter", "Value<u64>", "Array<u64; 1>"),
        ),
        (
            mismatch(region.lock("counter")),
            ("counter", "Value<u64>", "Lock"),
        ),
        (
            mismatch(region.array::<i32>("arr", &[0; 4])),
            ("arr", "Array<i32; 3>", "Array<i32; 4>"),
        ),
        (
            mismatch(region.array::<u32>("arr", &[0; 3])),
            ("arr", "Array<i32; 3>", "Array<u32; 3>"),
        ),
        (
            mismatch(region.raw_array::<i32>("arr", &[0; 3])),
            ("arr", "Array<i32; 3>", "RawArray<i32; 3>"),
        ),
        (mismatch(region.rlock("lock")), ("lock", "Lock", "RLock")),
        (mismatch(region.lock("rlock")), ("rlock", "RLock", "Lock")),
        (
            mismatch(region.value::<u32>("lock", 0)),
            ("lock", "Lock", "Value<u32>"),
        ),
        (
            mismatch(region.value::<u64>("raw", 0)),
            ("raw", "RawValue<u64>", "Value<u64>"),
        ),
        (
            mismatch(region.raw_array::<u8>("bytes", &[0; 15])),
            ("bytes", "RawArray<u8; 16>", "RawArray<u8; 15>"),
        ),
        (
            mismatch(region.raw_array::<[u8; 16]>("bytes", &[[0; 16]])),
            ("bytes", "RawArray<u8; 16>", "RawArray<[u8; 16]; 1>"),
        ),
    ];
    for (got, (name, existing, requested)) in cases {
        assert_eq!(got, (s(name), s(existing), s(requested)));
    }
    // Nothing was created or changed by the refused requests.
    assert_eq!(region.objects().unwrap().len(), 6);
    assert_eq!(
        region.value::<u64>("counter", 5).unwrap().load().unwrap(),
        0
    );
}

#[test]
fn a_full_directory_refuses_new_objects_and_keeps_the_old_ones_working() {
    let dir = crate::common::TestDir::new("dir-full");
    let path = dir.join("r");
    let region = Region::options().capacity(3).create(&path, SIZE).unwrap();
    assert_eq!(region.capacity(), 3);
    let a = region.value::<u64>("a", 1).unwrap();
    let b = region.lock("b").unwrap();
    let c = region.raw_array::<u8>("c", &[1, 2, 3]).unwrap();
    let free = region.free_bytes();
    for (kind, result) in every_kind(&region, "d") {
        assert!(
            matches!(result, Err(Error::DirectoryFull { capacity: 3 })),
            "{kind}: {result:?}"
        );
    }
    let msg = region.rlock("e").unwrap_err().to_string();
    assert!(msg.contains("full") && msg.contains('3'), "{msg}");
    assert_eq!(region.free_bytes(), free, "a refused object took space");
    assert_eq!(region.objects().unwrap().len(), 3);

    // The existing objects still work and can still be found, also by another opener.
    a.fetch_add(1).unwrap();
    assert!(b.acquire(false, None));
    b.release().unwrap();
    c.store(0, 9);
    let again = Region::open(&path).unwrap();
    assert_eq!(again.capacity(), 3);
    assert_eq!(again.value::<u64>("a", 0).unwrap().load().unwrap(), 2);
    assert!(!again.lock("b").unwrap().is_locked());
    assert_eq!(
        again.raw_array::<u8>("c", &[0; 3]).unwrap().to_vec(),
        [9, 2, 3]
    );
    assert!(matches!(
        again.value::<u64>("z", 0),
        Err(Error::DirectoryFull { capacity: 3 })
    ));
    // A mismatch is still reported as such, not as a full directory.
    assert!(matches!(
        again.value::<u32>("a", 0),
        Err(Error::Mismatch { .. })
    ));
}

#[test]
fn an_exhausted_region_refuses_large_objects_and_keeps_the_old_ones() {
    let region = Region::anonymous(SIZE).unwrap();
    let first = region.array::<u8>("first", &[7; 1000]).unwrap();
    let v = region.value::<u32>("v", 3).unwrap();
    let free = region.free_bytes();
    assert!(free < SIZE);
    let too_big = vec![1u8; free + 1];
    match region.array::<u8>("big", &too_big) {
        Err(Error::OutOfSpace {
            requested,
            available,
        }) => {
            assert!(requested > available, "{requested} <= {available}");
            assert_eq!(available, free as u64);
        }
        other => panic!("expected OutOfSpace, got {other:?}"),
    }
    let huge = vec![0u64; SIZE];
    assert!(matches!(
        region.raw_array::<u64>("huge", &huge),
        Err(Error::OutOfSpace { .. })
    ));
    let msg = region
        .raw_array::<u64>("huge", &huge)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("space"), "{msg}");
    // Nothing was allocated or listed; the earlier objects are intact.
    assert_eq!(region.free_bytes(), free);
    assert_eq!(region.objects().unwrap().len(), 2);
    assert!(first.to_vec().unwrap().iter().all(|&b| b == 7));
    assert_eq!(v.load().unwrap(), 3);
    // The name stays free: a smaller object of that name fits.
    let small = region.array::<u8>("big", &[1; 10]).unwrap();
    assert_eq!(small.to_vec().unwrap(), [1; 10]);
    // Filling the space exactly works; then even the smallest object is refused.
    let rest = region.free_bytes();
    let fill = region.raw_array::<u8>("fill", &vec![0; rest]).unwrap();
    assert_eq!(fill.len(), rest);
    assert_eq!(region.free_bytes(), 0);
    assert!(matches!(
        region.lock("one-more"),
        Err(Error::OutOfSpace { available: 0, .. })
    ));
    assert_eq!(v.load().unwrap(), 3);
}
