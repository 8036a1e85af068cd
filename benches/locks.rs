//! Benchmarks of shmsync's locks and values.
//!
//! Group `uncontended`: one thread, nobody else touching the words. Every figure is to be read
//! against the floor, a compare-exchange 0→1 plus a store of 0 on a word of a shared mapping
//! (what any lock acquire+release must at least cost).
//!
//! Group `contended`: two processes doing lock / increment / unlock on one `Value<u64>`. This
//! binary re-executes itself with [`HELPER_ENV`] set to run the second process (the helper),
//! which opens the region by path and hammers the value until a stop flag is set. The time
//! criterion reports is per lock+increment+unlock of the bench process while the helper
//! contends; the combined throughput of both processes is printed after the group.
//!
//! Run with `cargo bench --bench locks` (about 75 seconds); one group with
//! `cargo bench --bench locks -- '^contended'` (the filter is a regex: plain `contended` also
//! matches `uncontended`).

use criterion::{BenchmarkId, Criterion, black_box, criterion_group};
use shmsync::{RawValue, Region, Value};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Set in the environment of a re-executed bench binary to make it a helper process.
const HELPER_ENV: &str = "SHMSYNC_BENCH_HELPER";
/// The region path the helper opens.
const REGION_ENV: &str = "SHMSYNC_BENCH_REGION";
/// The CPU the helper pins itself to (unset: no pinning).
const CPU_ENV: &str = "SHMSYNC_BENCH_CPU";
/// A helper never runs longer than this, whatever happens to the bench process.
const HELPER_MAX_LIFETIME: Duration = Duration::from_secs(120);

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
}

// ---------------------------------------------------------------------------------------------
// Uncontended

fn uncontended(c: &mut Criterion) {
    let mut g = c.benchmark_group("uncontended");
    let region = Region::anonymous(1 << 20).expect("anonymous region");

    // (a) The floor: the cheapest possible acquire+release of a word in the same kind of shared
    // mapping (a memfd, MAP_SHARED). RawValue's operations are SeqCst, so the store is an
    // `xchg` on x86-64, like the `swap(0)` of a lock release.
    let word = region.raw_value::<u32>("floor", 0).expect("raw value");
    g.bench_function("floor/raw_value_u32_cas_store", |b| {
        b.iter(|| {
            let _ = black_box(word.compare_exchange(0, 1));
            word.store(0);
        })
    });
    // The same pair on a process-local AtomicU32, Acquire/Release (a plain `mov` store).
    let local = AtomicU32::new(0);
    g.bench_function("floor/local_atomic_u32_cas_store", |b| {
        b.iter(|| {
            let _ = black_box(local.compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed));
            local.store(0, Ordering::Release);
        })
    });

    // (b) Lock.
    let lock = region.lock("lock").expect("lock");
    g.bench_function("lock/try_lock_guard", |b| {
        b.iter(|| drop(black_box(lock.try_lock().expect("free"))))
    });
    g.bench_function("lock/lock_guard", |b| {
        b.iter(|| drop(black_box(lock.lock().expect("lock"))))
    });
    g.bench_function("lock/acquire_release", |b| {
        b.iter(|| {
            black_box(lock.acquire(true, None));
            lock.release().expect("held");
        })
    });

    // (c) RLock: a first acquire (the owner and pid words are written too), and re-entry while
    // an outer guard is held (only the count word changes).
    let rlock = region.rlock("rlock").expect("rlock");
    g.bench_function("rlock/lock_unlock", |b| {
        b.iter(|| drop(black_box(rlock.lock().expect("rlock"))))
    });
    {
        let _outer = rlock.lock().expect("rlock");
        g.bench_function("rlock/reenter", |b| {
            b.iter(|| drop(black_box(rlock.lock().expect("rlock"))))
        });
    }

    // (d) Value<u64>: every operation takes and releases the value's lock.
    let value = region.value::<u64>("value", 0).expect("value");
    g.bench_function("value_u64/load", |b| {
        b.iter(|| black_box(value.load().expect("load")))
    });
    g.bench_function("value_u64/store", |b| {
        b.iter(|| value.store(black_box(7)).expect("store"))
    });
    g.bench_function("value_u64/fetch_add", |b| {
        b.iter(|| black_box(value.fetch_add(1).expect("fetch_add")))
    });
    g.bench_function("value_u64/guard_increment", |b| {
        b.iter(|| *value.lock().expect("lock") += 1)
    });

    // (e) RawValue<u64>: one lock-free `lock xadd`.
    let raw = region.raw_value::<u64>("raw", 0).expect("raw value");
    g.bench_function("raw_value_u64/fetch_add", |b| {
        b.iter(|| black_box(raw.fetch_add(1)))
    });

    // (f) Array<u64> of 1000 elements, copied out and in under its lock.
    let array = region.array::<u64>("array", &[0; 1000]).expect("array");
    let src: Vec<u64> = (0..1000).collect();
    g.bench_function("array_u64_1000/to_vec", |b| {
        b.iter(|| black_box(array.to_vec().expect("to_vec")))
    });
    g.bench_function("array_u64_1000/copy_from_slice", |b| {
        b.iter(|| array.copy_from_slice(black_box(&src)).expect("copy"))
    });

    // (g) For comparison: std's in-process mutex, lock+increment+unlock.
    let mutex = Mutex::new(0u64);
    g.bench_function("std_mutex_u64/increment", |b| {
        b.iter(|| *black_box(&mutex).lock().expect("not poisoned") += 1)
    });

    // (h) Finding an existing object by name: hash the name, probe the directory, validate the
    // entry, clone the region handle. Cycles through every object so that probe lengths are
    // averaged over the whole table.
    for objects in [10usize, 1000] {
        let capacity = objects.max(16);
        let region = Region::options()
            .capacity(capacity)
            .anonymous(4 << 20)
            .expect("lookup region");
        let names: Vec<String> = (0..objects).map(|i| format!("lock-{i}")).collect();
        for name in &names {
            region.lock(name).expect("create lock");
        }
        let next = Cell::new(0usize);
        g.bench_with_input(
            BenchmarkId::new("region_lookup/lock", format!("{objects}_objects")),
            &names,
            |b, names| {
                b.iter(|| {
                    let i = next.get();
                    next.set(if i + 1 == names.len() { 0 } else { i + 1 });
                    black_box(region.lock(&names[i]).expect("lookup"))
                })
            },
        );
    }

    g.finish();
}

// ---------------------------------------------------------------------------------------------
// Contended: two processes

/// A region file that is removed when dropped (if it is still there).
struct RegionFile(PathBuf);

impl Drop for RegionFile {
    fn drop(&mut self) {
        let _ = Region::remove(&self.0);
    }
}

/// A helper process; dropping it stops it (flag, then SIGKILL after a grace period) and reaps it.
struct Helper {
    child: Child,
    stop: RawValue<u32>,
}

impl Drop for Helper {
    fn drop(&mut self) {
        self.stop.store(1);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    if !status.success() {
                        eprintln!("contended helper exited with {status}");
                    }
                    return;
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                _ => break,
            }
        }
        eprintln!("contended helper did not stop; killing it");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The shared objects of the contended benchmark.
struct Shared {
    counter: Value<u64>,
    stop: RawValue<u32>,
    ready: RawValue<u32>,
}

impl Shared {
    fn open(region: &Region) -> shmsync::Result<Shared> {
        Ok(Shared {
            counter: region.value::<u64>("counter", 0)?,
            stop: region.raw_value::<u32>("stop", 0)?,
            ready: region.raw_value::<u32>("ready", 0)?,
        })
    }
}

/// Pins the calling thread to `cpu`; returns the previous affinity mask to restore, or `None`
/// if pinning is not possible here.
fn pin_to(cpu: usize) -> Option<libc::cpu_set_t> {
    // SAFETY: `cpu_set_t` is a plain bit set for which all-zero bytes are a valid value.
    let mut old: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `old` is a live, writable `cpu_set_t` of the size passed; pid 0 is this thread.
    if unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut old) } != 0 {
        return None;
    }
    // SAFETY: as above, all-zero bytes are an empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if cpu >= libc::CPU_SETSIZE as usize {
        return None;
    }
    // SAFETY: `cpu` is below CPU_SETSIZE (checked), so the bit is inside `set`.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a live `cpu_set_t` of the size passed; pid 0 is this thread.
    if unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) } != 0 {
        return None;
    }
    Some(old)
}

fn restore_affinity(old: &libc::cpu_set_t) {
    // SAFETY: `old` is a live `cpu_set_t` of the size passed; pid 0 is this thread.
    unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), old) };
}

/// Starts a helper on `region_path` (pinned to `cpu` if given) and waits until it is hammering.
fn spawn_helper(region_path: &Path, shared: &Shared, cpu: Option<usize>) -> Helper {
    shared.stop.store(0);
    shared.ready.store(0);
    let mut cmd = Command::new(std::env::current_exe().expect("current exe"));
    cmd.env(HELPER_ENV, "contend").env(REGION_ENV, region_path);
    if let Some(cpu) = cpu {
        cmd.env(CPU_ENV, cpu.to_string());
    }
    let child = cmd.spawn().expect("spawn helper");
    let helper = Helper {
        child,
        stop: shared.stop.clone(),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while shared.ready.load() == 0 {
        assert!(Instant::now() < deadline, "helper did not start");
        std::thread::sleep(Duration::from_millis(1));
    }
    helper
}

/// The helper process: open the region, signal ready, lock/increment/unlock until told to stop.
fn helper_main() {
    // If the bench process dies, die with it (the bench thread that spawned us lives as long as
    // the bench process, so PDEATHSIG is not fired early).
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes a signal number and touches no memory of ours.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    if let Some(cpu) = std::env::var(CPU_ENV).ok().and_then(|c| c.parse().ok()) {
        pin_to(cpu);
    }
    let path = std::env::var_os(REGION_ENV).expect("region path in the environment");
    let region = Region::open(&path).expect("helper: open region");
    let shared = Shared::open(&region).expect("helper: open objects");
    shared.ready.store(1);
    let started = Instant::now();
    'run: loop {
        for _ in 0..1024 {
            *shared.counter.lock().expect("lock") += 1;
            if shared.stop.load() != 0 {
                break 'run;
            }
        }
        if started.elapsed() > HELPER_MAX_LIFETIME {
            break;
        }
    }
}

/// Running totals of one contended benchmark, to compute the two processes' joint throughput.
#[derive(Default)]
struct Totals {
    own: Cell<u64>,
    all: Cell<u64>,
    time: Cell<Duration>,
}

fn contended(c: &mut Criterion) {
    let mut g = c.benchmark_group("contended");
    let path = PathBuf::from(format!("/dev/shm/shmsync-bench-{}", std::process::id()));
    let _ = Region::remove(&path);
    let file = RegionFile(path.clone());
    let region = Region::create(&path, 1 << 16).expect("create contended region");
    let shared = Shared::open(&region).expect("contended objects");

    // (bench CPU, helper CPU): on two CPUs, and both on one CPU. `None` if pinning failed.
    let cases = [("two_procs_two_cpus", 0, 1), ("two_procs_one_cpu", 0, 0)];
    let mut report = Vec::new();
    for (label, my_cpu, helper_cpu) in cases {
        let old = pin_to(my_cpu);
        let helper_cpu = old.as_ref().map(|_| helper_cpu);
        let label = if old.is_some() {
            label.to_string()
        } else {
            format!("{label}_unpinned")
        };
        let helper = spawn_helper(&path, &shared, helper_cpu);
        let totals = Totals::default();
        g.bench_function(format!("value_u64_guard_increment/{label}"), |b| {
            b.iter_custom(|iters| {
                let before = shared.counter.load().expect("load");
                let start = Instant::now();
                for _ in 0..iters {
                    *shared.counter.lock().expect("lock") += 1;
                }
                let elapsed = start.elapsed();
                let after = shared.counter.load().expect("load");
                totals.own.set(totals.own.get() + iters);
                totals.all.set(totals.all.get() + (after - before));
                totals.time.set(totals.time.get() + elapsed);
                elapsed
            })
        });
        drop(helper);
        if let Some(old) = &old {
            restore_affinity(old);
        }
        let secs = totals.time.get().as_secs_f64();
        if totals.own.get() == 0 || secs == 0.0 {
            continue; // filtered out
        }
        report.push(format!(
            "contended/{label}: bench process {:.2} Mops/s, both processes {:.2} Mops/s \
             ({:.1}% of the increments by the bench process)",
            totals.own.get() as f64 / secs / 1e6,
            totals.all.get() as f64 / secs / 1e6,
            100.0 * totals.own.get() as f64 / totals.all.get().max(1) as f64,
        ));
    }
    g.finish();
    drop(region);
    drop(file);
    for line in report {
        println!("{line}");
    }
}

criterion_group! {
    name = benches;
    config = config();
    targets = uncontended, contended
}

fn main() {
    if std::env::var_os(HELPER_ENV).is_some() {
        helper_main();
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
