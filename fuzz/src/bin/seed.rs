//! Writes real region files, made by the library, into `corpus/open_region/` as the fuzzer's
//! starting inputs: `cargo run --bin seed` from `fuzz/` (or pass another output directory).
//!
//! Every seed is small (at most 24 KiB) so that the fuzzer runs fast, and covers a different
//! part of the format: an empty directory, one object of each kind and of several element
//! types, a full directory, held locks, locks whose holder died (poisoned, unrecoverable,
//! recovered), long and non-ASCII names, the smallest directories.

use shmsync::{Region, RegionOptions, Result};
use std::path::{Path, PathBuf};

/// Creates a region of `size` bytes with room for `capacity` objects, lets `fill` add objects,
/// and copies the file to `out/name`.
fn seed(
    out: &Path,
    name: &str,
    capacity: usize,
    size: usize,
    fill: impl FnOnce(&Region) -> Result<()>,
) {
    seed_with(out, name, Region::options().capacity(capacity), size, fill)
}

/// [`seed`] with explicit region options.
fn seed_with(
    out: &Path,
    name: &str,
    options: &RegionOptions,
    size: usize,
    fill: impl FnOnce(&Region) -> Result<()>,
) {
    let tmp = std::env::temp_dir().join(format!("shmsync-seed-{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let region = options
        .create(&tmp, size)
        .unwrap_or_else(|e| panic!("create {name}: {e}"));
    fill(&region).unwrap_or_else(|e| panic!("fill {name}: {e}"));
    let bytes = std::fs::read(&tmp).expect("read the region file");
    drop(region);
    std::fs::remove_file(&tmp).expect("remove the region file");
    let dest = out.join(name);
    std::fs::write(&dest, &bytes).expect("write the seed");
    println!("{} ({} bytes)", dest.display(), bytes.len());
}

/// Child role (`seed hold PATH NAME...`): takes the named locks of the region at PATH and
/// exits holding them, so the parent finds locks whose holder died.
fn hold(path: &str, names: &[String]) {
    let region = Region::open(path).expect("open the region");
    for name in names {
        assert!(region.lock(name).expect("lock").acquire(false, None));
    }
    std::process::exit(0);
}

/// The guard of a lock whose holder died.
fn take_over(lock: &shmsync::Lock) -> shmsync::LockGuard<'_> {
    match lock.try_lock() {
        Err(shmsync::TryLockError::OwnerDied(died)) => died.into_guard(),
        other => panic!("expected the holder to be dead, got {:?}", other.map(drop)),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("hold") {
        return hold(&args[2], &args[3..]);
    }
    let out = args.get(1).map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus/open_region"),
        PathBuf::from,
    );
    std::fs::create_dir_all(&out).expect("create the corpus directory");
    // A region needs its header, directory and 8 KiB process table before any object: 16 objects
    // take 16,768 bytes at least.
    const K24: usize = 24 * 1024;

    seed(&out, "empty", 16, K24, |_| Ok(()));

    seed(&out, "every_kind", 16, K24, |r| {
        r.lock("lock")?;
        r.rlock("rlock")?;
        r.value::<u64>("counter", 42)?;
        r.value::<f64>("pi", std::f64::consts::PI)?;
        r.value::<i32>("delta", -5)?;
        r.value::<u8>("flag", 1)?;
        r.array::<i32>("ints", &[1, -2, 3, -4, 5, -6, 7, -8])?;
        r.array::<u8>("bytes", &[0xab; 100])?;
        r.array::<f32>("floats", &[0.5, 1.5])?;
        r.raw_value::<u32>("raw32", 7)?;
        r.raw_value::<i64>("raw64", -7)?;
        r.raw_array::<u64>("raw_u64", &[1, 2, 3, 4])?;
        r.raw_array::<i16>("raw_i16", &[-1; 16])?;
        Ok(())
    });

    // The synchronisation objects with hold tables (8 bytes per process slot): a small process
    // table keeps the file small.
    seed_with(
        &out,
        "sync_kinds",
        Region::options().capacity(16).max_processes(8),
        16 * 1024,
        |r| {
            let sem = r.semaphore("sem", 3)?;
            std::mem::forget(sem.permit()?); // a recorded hold in the table
            assert!(sem.acquire(false, None));
            r.bounded_semaphore("bsem", 1)?;
            let cond = r.condition("cond")?;
            std::mem::forget(cond.lock()?);
            let event = r.event("event")?;
            event.set();
            let barrier = r.barrier("barrier", 3)?;
            assert!(barrier.wait(Some(std::time::Duration::ZERO)).is_err());
            r.barrier("one", 1)?.wait(None).expect("one party");
            let rw = r.rwlock::<u64>("rw", 5)?;
            std::mem::forget(rw.read()?);
            r.rwlock::<[u8; 3]>("rw_bytes", [1, 2, 3])?;
            let w = r.rwlock::<i32>("rw_w", -1)?;
            std::mem::forget(w.write()?);
            Ok(())
        },
    );

    seed_with(
        &out,
        "queues",
        Region::options().capacity(8).max_processes(8),
        12 * 1024,
        |r| {
            let q = r.queue::<u64>("q", 4)?;
            for i in 1..=3 {
                q.put_nowait(i)?;
            }
            // A consumer that dies holding an item: an orphan when fuzzing.
            std::mem::forget(q.get_guard(false, None)?);
            let b = r.byte_queue("bytes", 3, 10)?;
            b.put_nowait(b"hello")?;
            b.put_nowait(b"")?;
            r.queue::<[u8; 3]>("empty", 2)?;
            Ok(())
        },
    );

    seed(&out, "held_locks", 16, K24, |r| {
        // Left held in the file: the fuzzer starts from locks some process still holds.
        let lock = r.lock("held")?;
        assert!(lock.acquire(false, None));
        let rlock = r.rlock("held_r")?;
        for _ in 0..3 {
            assert!(rlock.acquire(false, None));
        }
        let value = r.value::<u64>("held_v", 9)?;
        std::mem::forget(value.lock()?);
        let array = r.array::<u16>("held_a", &[1, 2, 3])?;
        std::mem::forget(array.lock()?);
        r.lock("free")?;
        Ok(())
    });

    seed(&out, "full_directory", 16, K24, |r| {
        for i in 0..16 {
            match i % 4 {
                0 => drop(r.lock(&format!("l{i}"))?),
                1 => drop(r.value::<u32>(&format!("v{i}"), i)?),
                2 => drop(r.raw_value::<u16>(&format!("r{i}"), i as u16)?),
                _ => drop(r.array::<i64>(&format!("a{i}"), &[i as i64; 3])?),
            }
        }
        Ok(())
    });

    seed(&out, "names", 16, K24, |r| {
        r.lock(&"n".repeat(128))?;
        r.value::<i8>("ünïcödé ✓", -1)?;
        r.raw_value::<usize>("a", 1)?;
        r.value::<[u8; 4]>("not_an_int", *b"abcd")?;
        r.array::<isize>("with space/and.dots", &[-1, 0, 1])?;
        Ok(())
    });

    seed(&out, "dead_holders", 16, K24, |r| {
        // A child process takes three locks and dies holding them. Then "poisoned" is taken
        // over and left held (poisoned, by this process, which exits too), "unrecoverable" is
        // taken over and released without being marked consistent, "orphan" stays as the
        // child left it; "recovered" is taken over and marked consistent.
        let names = ["poisoned", "unrecoverable", "orphan", "recovered"];
        for name in names {
            r.lock(name)?;
        }
        let path = r.path().expect("a named region");
        let status = std::process::Command::new(std::env::current_exe().expect("own path"))
            .arg("hold")
            .arg(path)
            .args(names)
            .status()
            .expect("run the child");
        assert!(status.success());
        let (poisoned, unrecoverable) = (r.lock("poisoned")?, r.lock("unrecoverable")?);
        let recovered = r.lock("recovered")?;
        std::mem::forget(take_over(&poisoned));
        drop(take_over(&unrecoverable));
        let guard = take_over(&recovered);
        guard.mark_consistent();
        drop(guard);
        assert!(poisoned.is_poisoned() && unrecoverable.is_unrecoverable());
        Ok(())
    });

    // The smallest directories: 2 slots for 1 object, 4 slots for 2.
    seed(&out, "tiny_lock", 1, 9216, |r| r.lock("l").map(drop));
    seed(&out, "tiny_value", 2, 10240, |r| {
        r.value::<u64>("v", 1)?;
        r.rlock("r").map(drop)
    });
    seed(&out, "small_mixed", 4, 12288, |r| {
        r.array::<u8>("a", &[1, 2, 3, 4, 5])?;
        r.raw_array::<u32>("ra", &[])?;
        r.value::<f32>("f", 2.5)?;
        r.lock("l").map(drop)
    });
}
