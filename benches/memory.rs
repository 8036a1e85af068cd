//! Memory cost of shmsync objects, measured with `Region::free_bytes()` before and after
//! creating each object, and the fixed overhead of a region (header, directory, process table)
//! as `size() - free_bytes()` of a fresh region.
//!
//! Not a timing benchmark: `cargo bench --bench memory` prints one JSON object (on the line
//! after `MEMORY_JSON`), which `benches/report.py` puts into BENCHMARKS.md. It also writes the
//! object to the file named by `SHMSYNC_BENCH_MEMORY`, if set.

use shmsync::Region;

const SIZE: usize = 8 << 20;

/// Bytes of object space that `create` takes in `region`.
fn cost(region: &Region, create: impl FnOnce(&Region)) -> usize {
    let before = region.free_bytes();
    create(region);
    before - region.free_bytes()
}

fn fixed_overhead(capacity: Option<usize>, procs: Option<usize>) -> (usize, usize) {
    let mut options = Region::options();
    if let Some(c) = capacity {
        options.capacity(c);
    }
    if let Some(p) = procs {
        options.max_processes(p);
    }
    let region = options.anonymous(SIZE).expect("region");
    (region.size() - region.free_bytes(), region.capacity())
}

fn main() {
    let region = Region::anonymous(SIZE).expect("region");
    let mut objects: Vec<(String, usize)> = vec![
        (
            "Lock".into(),
            cost(&region, |r| drop(r.lock("lock").expect("lock"))),
        ),
        (
            "RLock".into(),
            cost(&region, |r| drop(r.rlock("rlock").expect("rlock"))),
        ),
        (
            "Value<u8>".into(),
            cost(&region, |r| drop(r.value::<u8>("v8", 0).expect("value"))),
        ),
        (
            "Value<u64>".into(),
            cost(&region, |r| drop(r.value::<u64>("v64", 0).expect("value"))),
        ),
        (
            "Value<[u64; 16]>".into(),
            cost(&region, |r| {
                drop(r.value::<[u64; 16]>("v128", [0; 16]).expect("value"))
            }),
        ),
        (
            "RawValue<u64>".into(),
            cost(&region, |r| {
                drop(r.raw_value::<u64>("r64", 0).expect("raw"))
            }),
        ),
        (
            "Semaphore (1024 process slots)".into(),
            cost(&region, |r| drop(r.semaphore("sem", 1).expect("semaphore"))),
        ),
        (
            "BoundedSemaphore (1024 process slots)".into(),
            cost(&region, |r| {
                drop(r.bounded_semaphore("bsem", 1).expect("semaphore"))
            }),
        ),
        (
            "Condition".into(),
            cost(&region, |r| drop(r.condition("cond").expect("condition"))),
        ),
        (
            "Event".into(),
            cost(&region, |r| drop(r.event("event").expect("event"))),
        ),
        (
            "Barrier".into(),
            cost(&region, |r| drop(r.barrier("barrier", 4).expect("barrier"))),
        ),
        (
            "RwLock<u64> (1024 process slots)".into(),
            cost(&region, |r| drop(r.rwlock::<u64>("rw", 0).expect("rwlock"))),
        ),
    ];
    // Semaphore entries and reader indicators are sized from the region's process table (at
    // most 64 and 32 of them).
    let small = Region::options()
        .max_processes(64)
        .anonymous(SIZE)
        .expect("region");
    objects.push((
        "Semaphore (64 process slots)".into(),
        cost(&small, |r| drop(r.semaphore("sem", 1).expect("semaphore"))),
    ));
    objects.push((
        "RwLock<u64> (64 process slots)".into(),
        cost(&small, |r| drop(r.rwlock::<u64>("rw", 0).expect("rwlock"))),
    ));
    let mut arrays = Vec::new();
    for n in [1usize, 64, 100, 120, 121, 1000, 4096, 65536] {
        let bytes = cost(&region, |r| {
            drop(
                r.array::<u8>(&format!("a{n}"), &vec![0u8; n])
                    .expect("array"),
            )
        });
        arrays.push((n, bytes));
        objects.push((format!("Array<u8> of {n}"), bytes));
    }
    for n in [1usize, 1000] {
        let bytes = cost(&region, |r| {
            drop(
                r.raw_array::<u8>(&format!("ra{n}"), &vec![0u8; n])
                    .expect("raw array"),
            )
        });
        objects.push((format!("RawArray<u8> of {n}"), bytes));
    }
    // Array<u8> of n costs `PAD * ceil((header + n) / PAD)`: find the largest n that fits in
    // the same number of bytes as a 1-element array, i.e. the in-object header size.
    let one = arrays[0].1;
    let mut lo = 1usize;
    let mut hi = one + 1;
    while lo + 1 < hi {
        let mid = (lo + hi) / 2;
        let bytes = cost(&region, |r| {
            drop(
                r.array::<u8>(&format!("probe{mid}"), &vec![0u8; mid])
                    .expect("array"),
            )
        });
        if bytes == one {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let array_header = one - lo;

    let (default_overhead, default_capacity) = fixed_overhead(None, None);
    let mut overheads = vec![(
        format!("default (capacity {default_capacity}, 1024 processes)"),
        default_overhead,
    )];
    for (capacity, procs) in [(16, Some(16)), (16, None), (1000, None), (100_000, None)] {
        let size_note = if capacity == 100_000 {
            // 100 000 slots need more than the SIZE of the other cases.
            let mut options = Region::options();
            options.capacity(capacity);
            let region = options.anonymous(128 << 20).expect("region");
            (region.size() - region.free_bytes(), region.capacity())
        } else {
            fixed_overhead(Some(capacity), procs)
        };
        overheads.push((
            format!(
                "capacity {capacity}, {} processes",
                procs.map_or("1024".to_string(), |p| p.to_string())
            ),
            size_note.0,
        ));
    }
    let (o16, _) = fixed_overhead(Some(16), None);
    let (o1000, _) = fixed_overhead(Some(1000), None);
    let dir_per_object = (o1000 - o16) as f64 / (1000 - 16) as f64;

    let mut json = String::from("{\"region_size\":");
    json += &format!("{SIZE},\"objects\":[");
    json += &objects
        .iter()
        .map(|(name, bytes)| format!("{{\"object\":\"{name}\",\"bytes\":{bytes}}}"))
        .collect::<Vec<_>>()
        .join(",");
    json += "],\"fixed_overhead\":[";
    json += &overheads
        .iter()
        .map(|(name, bytes)| format!("{{\"region\":\"{name}\",\"bytes\":{bytes}}}"))
        .collect::<Vec<_>>()
        .join(",");
    json += &format!(
        "],\"array_u8_in_object_header\":{array_header},\"array_u8_max_n_in_one_pad\":{lo},\
         \"directory_bytes_per_capacity_slot\":{dir_per_object:.1}}}"
    );
    println!("MEMORY_JSON");
    println!("{json}");
    if let Some(path) = std::env::var_os("SHMSYNC_BENCH_MEMORY") {
        std::fs::write(path, format!("{json}\n")).expect("write memory results");
    }
}
