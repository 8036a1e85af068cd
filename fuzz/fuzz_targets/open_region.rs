//! Fuzz target `open_region`: any bytes at all, written as a file and opened as a region, must
//! make every call of the library return (a value or an error) without panicking, crashing or
//! hanging.
//!
//! For each input the target writes the bytes to a file (one path per fuzzing process, reused
//! across iterations), opens it with `Region::open`, lists `objects()`, opens every listed object
//! by its kind with a matching element type where there is one, uses it with non-blocking calls
//! only (`try_lock`, zero timeouts, and blocking calls only on a lock it has just seen free), and
//! creates a few new objects. Where the library's behaviour is fully determined (a single thread,
//! nobody else using the file), it also checks it: a `Lock` that was just released can be taken,
//! a value stored under the lock reads back, and so on.
//!
//! A slow path, kept out of the way: creating an object (and looking up a name whose hash the
//! file got wrong, which then creates it) takes the header's allocation lock. A holder whose
//! process-table slot was reclaimed or whose lease is gone is taken over after one 20 ms wait
//! slice, but the token an unregistered process locks with (1) is never judged dead, so a file
//! whose allocation-lock word (bytes 128..132) holds it makes every creation wait 5 s for
//! `Error::AllocationTimeout`. The target clears that word before writing the file (which also
//! spares the fuzzer the 20 ms take-overs), unless `SHMSYNC_FUZZ_KEEP_ALLOC_LOCK` is set in the
//! environment: then such inputs are merely slow (run with `-timeout=10`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use shmsync::{Kind, ObjectInfo, Region, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::time::Duration;

/// Offset and width of the header's allocation-lock word (see `src/region/layout.rs`).
const ALLOC_LOCK: std::ops::Range<usize> = 128..132;

/// The file this process writes every input to: in /dev/shm (tmpfs, like real regions) when it
/// exists, otherwise in the temp directory.
static PATH: LazyLock<PathBuf> = LazyLock::new(|| {
    let dir = Path::new("/dev/shm");
    let dir = if dir.is_dir() {
        dir.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    dir.join(format!("shmsync-fuzz-{}", std::process::id()))
});

/// Bits of the input's last byte, for choices the target makes (such as whether to mark a
/// taken-over lock consistent), so that a given input always takes the same paths.
static CHOICES: AtomicU8 = AtomicU8::new(0);

fn coin(bit: u32) -> bool {
    CHOICES.load(Relaxed) & (1 << (bit % 8)) != 0
}

static KEEP_ALLOC_LOCK: LazyLock<bool> =
    LazyLock::new(|| std::env::var_os("SHMSYNC_FUZZ_KEEP_ALLOC_LOCK").is_some());

fuzz_target!(|data: &[u8]| {
    let path: &Path = &PATH;
    CHOICES.store(data.last().copied().unwrap_or(0), Relaxed);
    let mut bytes = data.to_vec();
    if !*KEEP_ALLOC_LOCK && bytes.len() >= ALLOC_LOCK.end {
        bytes[ALLOC_LOCK].fill(0);
    }
    let _ = std::fs::remove_file(path);
    std::fs::write(path, &bytes).expect("write the input file");
    // The inspector reads the same bytes through a read-only mapping, with loads only: it must
    // never panic, and where it and the library both list the objects, the lists agree.
    let snapshot = shmsync::inspect::Snapshot::open(path);
    let opened = Region::open(path);
    // The mapping keeps the file alive: unlink it at once so that nothing is left behind.
    let _ = std::fs::remove_file(path);
    match opened {
        Ok(region) => {
            assert_eq!(
                region.size(),
                bytes.len(),
                "the region's size is not the file's"
            );
            if let (Ok(snapshot), Ok(objects)) = (&snapshot, region.objects()) {
                let names: Vec<&str> = objects.iter().map(|o| o.name.as_str()).collect();
                let seen: Vec<&str> = snapshot.objects.iter().map(|o| o.name.as_str()).collect();
                assert_eq!(names, seen, "the inspector lists other objects");
            }
            exercise(&region)
        }
        Err(e) => {
            let _ = e.to_string();
            assert!(
                snapshot.is_err(),
                "the inspector read a file the library refuses: {e}"
            );
        }
    }
});

fn exercise(region: &Region) {
    let _ = format!("{region:?}");
    let _ = (
        region.size(),
        region.capacity(),
        region.free_bytes(),
        region.path(),
    );

    match region.objects() {
        Ok(objects) => {
            for info in &objects {
                let _ = format!("{info:?}");
                open_listed(region, info);
                // The same name asked for as a lock: a lock, a mismatch, or (if the file's hash
                // for it is wrong) a new lock.
                report(region.lock(&info.name).map(|l| drop(l.try_lock())));
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }

    // New objects (the names cannot clash with each other; they may exist in the file).
    report(region.lock("fuzz.lock").map(|l| use_lock(&l)));
    report(region.rlock("fuzz.rlock").map(|r| use_rlock(&r)));
    report(
        region
            .value::<u64>("fuzz.value", 7)
            .map(|v| use_value_int(&v)),
    );
    report(
        region
            .value::<f64>("fuzz.float", 0.5)
            .map(|v| use_value(&v, 1.5)),
    );
    report(
        region
            .array::<u8>("fuzz.array", &[1, 2, 3])
            .map(|a| use_array_int(&a)),
    );
    report(
        region
            .raw_value::<u32>("fuzz.raw", 3)
            .map(|r| use_raw_value(&r)),
    );
    report(
        region
            .raw_array::<i64>("fuzz.raw_array", &[4, 5])
            .map(|r| use_raw_array(&r)),
    );
    report(region.semaphore("fuzz.sem", 2).map(|s| use_semaphore(&s)));
    report(
        region
            .bounded_semaphore("fuzz.bsem", 1)
            .map(|s| use_semaphore(s.as_semaphore())),
    );
    report(region.condition("fuzz.cond").map(|c| use_condition(&c)));
    report(
        region
            .condition_on("fuzz.cond_on", "fuzz.rlock")
            .map(|c| use_condition(&c)),
    );
    report(region.event("fuzz.event").map(|e| use_event(&e)));
    report(region.barrier("fuzz.barrier", 2).map(|b| use_barrier(&b)));
    report(
        region
            .rwlock::<u64>("fuzz.rwlock", 9)
            .map(|l| use_rwlock(&l)),
    );
    let _ = region.objects().map(|o| o.len());
}

fn use_semaphore(sem: &shmsync::Semaphore) {
    let _ = format!("{sem:?}");
    let _ = (sem.value(), sem.is_broken());
    if sem.acquire(false, None) {
        report(sem.release());
    }
    match sem.try_permit() {
        Ok(permit) => drop(permit),
        Err(e) => {
            let _ = e.to_string();
        }
    }
    let _ = sem.acquire(true, Some(Duration::ZERO));
}

fn use_condition(cond: &shmsync::Condition) {
    let _ = format!("{cond:?}");
    match cond.try_lock() {
        Ok(guard) => {
            report(cond.notify(1));
            report(cond.notify_all());
            report(cond.wait(Some(Duration::ZERO)).map(drop));
            report(cond.wait_for(|| true, Some(Duration::ZERO)).map(drop));
            drop(guard);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    if !cond.is_owned_by_current_thread() {
        assert!(
            cond.notify(1).is_err(),
            "notify without the lock was accepted"
        );
    }
}

/// Puts and gets without blocking on a queue whose words and slots may be anything: every
/// call returns (never blocks: single tries), and nothing panics.
fn use_queue<T: shmsync::Pod>(q: &shmsync::Queue<T>) {
    let _ = format!("{q:?}");
    let _ = (q.qsize(), q.empty(), q.full(), q.capacity());
    assert!(q.qsize() <= q.capacity(), "more items than slots");
    let _ = q.put_nowait(T::zeroed());
    let _ = q.get_nowait();
    if let Ok(guard) = q.get_guard(false, None) {
        let _ = *guard;
    }
    let _ = q.put(T::zeroed(), true, Some(Duration::ZERO));
}

fn use_byte_queue(q: &shmsync::ByteQueue) {
    let _ = format!("{q:?}");
    let _ = (q.qsize(), q.empty(), q.full(), q.max_len());
    let _ = q.put_nowait(&[1; 3][..3.min(q.max_len())]);
    let _ = q.put_nowait(&vec![0; q.max_len() + 1]);
    match q.get_nowait() {
        Ok(m) => assert!(m.len() <= q.max_len(), "a message over the limit"),
        Err(e) => {
            let _ = e.to_string();
        }
    }
    if let Ok(guard) = q.get_guard(false, None) {
        assert!(guard.len() <= q.max_len());
    }
}

fn use_event(event: &shmsync::Event) {
    let _ = format!("{event:?}");
    let was = event.is_set();
    assert_eq!(
        event.wait(Some(Duration::ZERO)),
        was,
        "a zero wait disagrees with is_set"
    );
    event.set();
    assert!(
        event.is_set() && event.wait(Some(Duration::ZERO)),
        "a set event is not set"
    );
    event.clear();
    assert!(!event.is_set(), "a cleared event is set");
}

fn use_barrier(barrier: &shmsync::Barrier) {
    let _ = format!("{barrier:?}");
    let _ = (barrier.n_waiting(), barrier.broken(), barrier.parties());
    let _ = barrier.wait(Some(Duration::ZERO));
    if coin(2) {
        barrier.abort();
        assert!(barrier.broken(), "an aborted barrier is not broken");
    }
    barrier.reset();
    assert!(!barrier.broken(), "a reset barrier is broken");
    if barrier.parties() == 1 {
        assert_eq!(barrier.wait(Some(Duration::ZERO)), Ok(0));
    }
}

fn use_rwlock<T: shmsync::Pod + std::fmt::Debug>(lock: &shmsync::RwLock<T>) {
    let _ = format!("{lock:?}");
    let _ = (
        lock.readers(),
        lock.is_write_locked(),
        lock.is_poisoned(),
        lock.is_broken(),
    );
    match lock.try_read() {
        Ok(guard) => {
            let _ = format!("{:?}", *guard);
            assert!(lock.try_write().is_err(), "written while read-locked");
        }
        Err(TryLockError::OwnerDied(died)) => drop(died.into_guard()),
        Err(_) => {}
    }
    match lock.try_write() {
        Ok(mut guard) => {
            *guard = T::zeroed();
            assert!(lock.try_read().is_err(), "read while write-locked");
        }
        Err(TryLockError::OwnerDied(died)) => {
            let guard = died.into_guard();
            if coin(3) {
                guard.mark_consistent();
            }
        }
        Err(_) => {}
    }
}

/// Formats an error (its Display code runs on fuzzed contents too) and drops it.
fn report<T>(r: shmsync::Result<T>) {
    if let Err(e) = r {
        let _ = e.to_string();
    }
}

/// Opens a listed object as its kind, with its element type when the type is one we know.
fn open_listed(region: &Region, info: &ObjectInfo) {
    let name = info.name.as_str();
    let len = info.len;
    // An existing array is opened by passing a slice of its length: only allocate one if the
    // elements could fit in the region at all (a larger array can only be a mismatch).
    let fits = |elem: usize| len.checked_mul(elem).is_some_and(|b| b <= region.size());
    macro_rules! by_type {
        ($($t:ty),*; $($f:ty),*) => {
            match (info.kind, info.type_name.as_str()) {
                (Kind::Lock, _) => report(region.lock(name).map(|l| use_lock(&l))),
                (Kind::RLock, _) => report(region.rlock(name).map(|r| use_rlock(&r))),
                (Kind::Semaphore, _) => report(region.semaphore(name, 0).map(|s| use_semaphore(&s))),
                (Kind::BoundedSemaphore, _) => {
                    report(region.bounded_semaphore(name, 1).map(|s| use_semaphore(s.as_semaphore())))
                }
                (Kind::Condition, _) => report(region.condition(name).map(|c| use_condition(&c))),
                (Kind::Event, _) => report(region.event(name).map(|e| use_event(&e))),
                (Kind::Barrier, _) => {
                    let parties = u32::try_from(len).unwrap_or(u32::MAX);
                    report(region.barrier(name, parties).map(|b| use_barrier(&b)))
                }
                $(
                    (Kind::Queue, stringify!($t)) => {
                        report(region.queue::<$t>(name, len).map(|q| use_queue(&q)))
                    }
                    (Kind::RwLock, stringify!($t)) => {
                        report(region.rwlock::<$t>(name, 0).map(|l| use_rwlock(&l)))
                    }
                    (Kind::Value, stringify!($t)) => {
                        report(region.value::<$t>(name, 0).map(|v| use_value_int(&v)))
                    }
                    (Kind::Array, stringify!($t)) if fits(size_of::<$t>()) => {
                        report(region.array::<$t>(name, &vec![0; len]).map(|a| use_array_int(&a)))
                    }
                    (Kind::RawValue, stringify!($t)) => {
                        report(region.raw_value::<$t>(name, 0).map(|r| use_raw_value(&r)))
                    }
                    (Kind::RawArray, stringify!($t)) if fits(size_of::<$t>()) => {
                        report(region.raw_array::<$t>(name, &vec![0; len]).map(|r| use_raw_array(&r)))
                    }
                )*
                $(
                    (Kind::Value, stringify!($f)) => {
                        report(region.value::<$f>(name, 0.0).map(|v| use_value(&v, 2.0)))
                    }
                    (Kind::Array, stringify!($f)) if fits(size_of::<$f>()) => {
                        report(region.array::<$f>(name, &vec![0.0; len]).map(|a| use_array(&a)))
                    }
                    (Kind::RawValue, stringify!($f)) => {
                        report(region.raw_value::<$f>(name, 0.0).map(|r| use_raw_pod(&r)))
                    }
                    (Kind::RawArray, stringify!($f)) if fits(size_of::<$f>()) => {
                        report(
                            region
                                .raw_array::<$f>(name, &vec![0.0; len])
                                .map(|r| use_raw_pod_array(&r)),
                        )
                    }
                )*
                // Unknown element types: ask as bytes, which must be refused (or, if the file's
                // name hash is wrong, create a new object).
                (Kind::Value, _) => report(region.value::<u8>(name, 0).map(|v| use_value_int(&v))),
                (Kind::Queue, _) => report(region.queue::<u8>(name, len).map(|q| use_queue(&q))),
                (Kind::ByteQueue, _) => {
                    // The message limit is not listed: try the limits whose 64-byte slots fit
                    // the object's size (every wrong one must be refused: a mismatch of the
                    // slot size, or a header that disagrees).
                    let widest = (info.bytes.saturating_sub(640) / len.max(1)) / 64 * 64;
                    let limits = (widest.saturating_sub(64 + 12 + 63)..=widest.saturating_sub(12))
                        .rev();
                    for max_len in limits {
                        match region.byte_queue(name, len, max_len) {
                            Ok(q) => {
                                use_byte_queue(&q);
                                break;
                            }
                            Err(e) => report::<()>(Err(e)),
                        }
                    }
                }
                (Kind::RawValue, _) => report(region.raw_value::<u8>(name, 0).map(|r| use_raw_value(&r))),
                _ => {}
            }
        };
    }
    by_type!(u8, i8, u16, i16, u32, i32, u64, i64, usize, isize; f32, f64);
}

fn use_lock(lock: &shmsync::Lock) {
    let _ = format!("{lock:?}");
    let _ = (lock.is_poisoned(), lock.holder());
    match lock.try_lock() {
        Ok(guard) => {
            assert!(lock.is_locked(), "a held lock says it is free");
            assert!(lock.try_lock().is_err(), "a held Lock was taken twice");
            drop(guard);
        }
        Err(TryLockError::OwnerDied(died)) => {
            // Taken over from a dead holder: poisoned until marked consistent; dropped
            // without that, the lock becomes unrecoverable (both paths are taken here).
            let guard = died.into_guard();
            assert!(lock.is_poisoned(), "a taken-over lock is not poisoned");
            if coin(0) {
                guard.mark_consistent();
                assert!(!lock.is_poisoned());
            }
            drop(guard);
        }
        Err(TryLockError::WouldBlock) => {
            // Held by a holder that may be alive. Any process may release a Lock (an error if
            // the word had no holder; a poisoned one becomes unrecoverable).
            let _ = lock.release();
        }
        Err(TryLockError::NotRecoverable) => {}
    }
    if lock.is_unrecoverable() {
        assert!(
            !lock.acquire(false, None),
            "an unrecoverable lock was taken"
        );
        assert!(matches!(lock.try_lock(), Err(TryLockError::NotRecoverable)));
        return;
    }
    assert!(!lock.is_locked(), "a released lock says it is held");
    assert!(lock.acquire(false, None), "a free lock could not be taken");
    assert!(!lock.acquire(true, Some(Duration::ZERO)));
    assert!(lock.holder().is_some() || lock.holder().is_none());
    lock.mark_consistent()
        .expect("mark_consistent of a held lock");
    lock.release().expect("release");
    assert!(lock.release().is_err(), "a free lock was released");
    assert!(
        lock.mark_consistent().is_err(),
        "a free lock was marked consistent"
    );
    drop(
        lock.try_lock_for(Duration::ZERO)
            .expect("a free lock, with a zero timeout"),
    );
}

fn use_rlock(rlock: &shmsync::RLock) {
    let _ = format!("{rlock:?}");
    let _ = (
        rlock.owner(),
        rlock.count(),
        rlock.is_locked(),
        rlock.is_poisoned(),
        rlock.is_unrecoverable(),
    );
    let outer = match rlock.try_lock() {
        Ok(guard) => Some(guard),
        Err(TryLockError::OwnerDied(died)) => {
            let guard = died.into_guard();
            assert!(rlock.is_poisoned(), "a taken-over RLock is not poisoned");
            if coin(1) {
                guard.mark_consistent();
            }
            Some(guard)
        }
        Err(_) => None,
    };
    if let Some(outer) = outer {
        assert!(
            rlock.is_owned_by_current_thread(),
            "an RLock we hold is not ours"
        );
        let inner = rlock
            .try_lock_for(Duration::ZERO)
            .expect("re-entering an RLock we hold");
        drop(inner);
        assert!(rlock.is_owned_by_current_thread());
        drop(outer);
    } else {
        let _ = rlock.release();
        let _ = rlock.mark_consistent();
        assert!(!rlock.acquire(false, None) || rlock.release().is_ok());
    }
}

/// The guard of a lock attempt: taken over from a dead holder, it is marked consistent at once
/// (the value or array then counts as repaired) so the object stays usable.
macro_rules! take {
    ($attempt:expr) => {
        match $attempt {
            Ok(guard) => Some(guard),
            Err(TryLockError::OwnerDied(died)) => {
                let guard = died.into_guard();
                guard.mark_consistent();
                Some(guard)
            }
            Err(_) => None,
        }
    };
}

fn use_value<T: bytemuck::Pod + PartialEq + std::fmt::Debug>(v: &shmsync::Value<T>, x: T) {
    let _ = format!("{v:?}");
    let _ = (v.is_poisoned(), v.is_unrecoverable(), v.holder());
    let Some(mut guard) = take!(v.try_lock()) else {
        return;
    };
    let _old = *guard;
    *guard = x;
    drop(guard);
    // The lock was just free and nobody else uses the file: these take it at once.
    assert_eq!(
        v.load().expect("load"),
        x,
        "a value stored under the lock did not read back"
    );
    v.store(x).expect("store");
    let data_lock = v.get_lock();
    let mut held = data_lock.try_lock().expect("a free value lock");
    *v.get_mut(&mut held).expect("the value's own guard") = x;
    assert!(data_lock.is_locked() && v.is_locked());
    drop(held);
}

fn use_value_int<T>(v: &shmsync::Value<T>)
where
    T: Int,
{
    use_value(v, T::n(1));
    let free = v.try_lock().is_ok();
    if free {
        let before = v.fetch_add(T::n(2)).expect("fetch_add");
        let _ = v.fetch_sub(T::n(2)).expect("fetch_sub");
        assert_eq!(
            v.swap(before).expect("swap"),
            before,
            "fetch_add then fetch_sub changed the value"
        );
        let _ = v
            .compare_exchange(before, T::n(3))
            .expect("compare_exchange");
    }
}

fn use_array<T: bytemuck::Pod + std::fmt::Debug>(a: &shmsync::Array<T>) {
    let _ = format!("{a:?}");
    let _ = (a.is_poisoned(), a.is_unrecoverable(), a.holder());
    let Some(guard) = take!(a.try_lock()) else {
        return;
    };
    assert_eq!(
        guard.len(),
        a.len(),
        "an array guard's length differs from the array's"
    );
    let copy = guard.to_vec();
    drop(guard);
    // Compared as bytes: a float array may hold NaNs.
    assert_eq!(
        bytemuck::cast_slice::<T, u8>(&a.to_vec().expect("to_vec")),
        bytemuck::cast_slice::<T, u8>(&copy),
        "an array changed while nobody wrote it"
    );
    a.copy_from_slice(&copy)
        .expect("copy_from_slice of its own length");
    assert!(a.copy_from_slice(&[]).is_err() || a.is_empty());
    if let Some(&first) = copy.first() {
        a.set(0, first).expect("set(0)");
        let got = a.get(0).expect("get(0)");
        assert_eq!(bytemuck::bytes_of(&got), bytemuck::bytes_of(&first));
    }
    assert!(
        a.get(a.len()).is_err(),
        "an index past the end was accepted"
    );
}

fn use_array_int<T: Int>(a: &shmsync::Array<T>) {
    use_array(a);
}

fn use_raw_value<T: Int>(r: &shmsync::RawValue<T>) {
    let _ = format!("{r:?}");
    let old = r.load();
    r.store(T::n(5));
    assert_eq!(r.fetch_add(T::n(1)), T::n(5));
    let _ = r.fetch_sub(T::n(1));
    assert_eq!(r.compare_exchange(T::n(5), old), Ok(T::n(5)));
    assert_eq!(r.swap(old), old);
}

fn use_raw_array<T: Int>(r: &shmsync::RawArray<T>) {
    let _ = format!("{r:?}");
    let all = r.to_vec();
    assert_eq!(all.len(), r.len());
    if !r.is_empty() {
        let last = r.len() - 1;
        r.store(last, T::n(9));
        assert_eq!(r.fetch_add(last, T::n(1)), T::n(9));
        let _ = r.fetch_sub(last, T::n(1));
        let _ = r.compare_exchange(last, T::n(9), all[last]);
        let _ = r.swap(0, all[0]);
        let _ = r.load(0);
    }
}

fn use_raw_pod<T: bytemuck::Pod>(r: &shmsync::RawValue<T>) {
    // SAFETY: this thread is the only user of the file (its path was unlinked right after the
    // open, and the target is single-threaded), so nothing writes the value concurrently.
    let x = unsafe { r.read() };
    // SAFETY: as above, nothing else reads or writes it.
    unsafe { r.write(x) };
}

fn use_raw_pod_array<T: bytemuck::Pod>(r: &shmsync::RawArray<T>) {
    for i in 0..r.len() {
        // SAFETY: as in `use_raw_pod`: no other thread or process uses the file.
        let x = unsafe { r.read(i) };
        // SAFETY: as above.
        unsafe { r.write(i, x) };
    }
}

/// Small constants of any integer element type.
trait Int: shmsync::AtomicInt {
    fn n(x: u8) -> Self;
}

macro_rules! int {
    ($($t:ty),*) => {$(
        impl Int for $t {
            fn n(x: u8) -> Self {
                x as $t
            }
        }
    )*};
}
int!(u8, i8, u16, i16, u32, i32, u64, i64, usize, isize);
