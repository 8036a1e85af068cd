//! Benchmarks of shmsync's locks and values, side by side with the alternatives, in one run.
//!
//! Group `uncontended`: one thread, nobody else touching the words, timed with the thread's CPU
//! clock (see [`config_uncontended`]). Two workloads are measured for every lock:
//! - `lock_unlock/<impl>`: acquire + release;
//! - `increment/<impl>`: acquire, add one to a `u64` next to the lock, release.
//!
//! Every figure is to be read against the floor (`lock_unlock/floor`, `increment/floor`): a
//! compare-exchange 0→1 (Acquire) plus a store of 0 (Release) on an `AtomicU32` in a MAP_SHARED
//! mapping, what any lock acquire+release must at least cost. The alternatives are a minimal
//! 3-state futex mutex on shared futexes, glibc's `pthread_mutex_t` PROCESS_SHARED (plain and
//! ROBUST), a POSIX `sem_t` with pshared, std's and parking_lot's in-process mutexes, and the
//! `raw_sync` crate. All the process-shared ones live in a memfd mapped MAP_SHARED (see
//! `support/mod.rs`); `floor_variants/*` decompose the cost of a release; `shmsync/*` covers
//! the rest of the Lock/Value API, and `primitives/*` the Semaphore, RwLock and Event, next to
//! glibc's process-shared `pthread_rwlock_t` (and `sem_t`, measured above).
//!
//! Group `contended`: two processes, pinned to two CPUs (`two_cpus/*`) or to one
//! (`one_cpu/*`), doing lock / increment / unlock on one shared counter. This binary
//! re-executes itself with `SHMSYNC_BENCH_HELPER` set to run the second process (the helper).
//! The time criterion reports is per lock+increment+unlock of the bench process while the helper
//! contends; the joint throughput of both processes (the median over samples of the counter's
//! growth per second) is printed after each benchmark and appended as a JSON line to the file
//! named by `SHMSYNC_BENCH_EXTRA`, if set. After the group, an interleaved pass measures all the
//! two-CPU cases in turn with every helper alive (idle ones asleep), so that they can be
//! compared under the same load ([`contended_interleaved`]).
//!
//! Group `pingpong`: two processes hand two locks back and forth (the bench process releases
//! lock A and waits for lock B; the helper waits for A, then releases B: a lock used as a
//! signal, as Python allows). Criterion's time is one round trip (two handoffs); the helper
//! counts its rounds and the bench checks them. Each case is followed by a pass timing single
//! round trips ([`pingpong_modes`]), and the group by an interleaved pass
//! ([`pingpong_interleaved`]).
//!
//! Both two-process groups include *diagnostic* variants of the futex mutex that each add one of
//! shmsync's traits (the fixed 100-read spin it used before the adaptive one, its 20 ms timed
//! sleeps), to tell which costs what.
//!
//! Group `region_lookup`: finding an existing object by name in a directory of 10, 1 000 and
//! 100 000 objects; `region_open`: opening a region file by path.
//!
//! Run with `cargo bench --bench locks` (about 2 minutes after the build), or the whole
//! comparison and report with `python3 benches/report.py`. One group:
//! `cargo bench --bench locks -- '^contended'` (the filter is a regex).

mod support;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, criterion_group};
use shmsync::{Lock, Region, Value};
use std::cell::{Cell, RefCell};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::time::{Duration, Instant};
use support::alternatives::{
    FutexMutex, PthreadMutex, PthreadRwLock, Semaphore, SharedLock, SpinningFutexMutex,
};
use support::{
    Arena, HELPER_ENV, HELPER_MAX_LIFETIME, Helper, Pinned, Placement, REGION_ENV, ThreadCpuTime,
    bump, slot,
};

/// Short runs: the whole `cargo bench --bench locks` stays around two to three minutes.
///
/// The single-process groups are timed with the thread's CPU clock ([`ThreadCpuTime`]): on a
/// shared machine, time spent preempted by other processes would otherwise dominate a 2 ns
/// operation. Criterion still plans the samples on the wall clock, so a loaded machine makes
/// these groups take longer, not read higher.
fn config_uncontended() -> Criterion<ThreadCpuTime> {
    Criterion::default()
        .with_measurement(ThreadCpuTime)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(800))
        .sample_size(20)
}

fn config_two_processes() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_millis(1500))
        .sample_size(15)
}

// ---------------------------------------------------------------------------------------------
// The alternatives in the arena

/// The process-shared alternatives, each in its arena slot.
struct Alternatives<'a> {
    futex: FutexMutex<'a>,
    futex_spin: SpinningFutexMutex<'a>,
    pthread: PthreadMutex,
    robust: PthreadMutex,
    sem: Semaphore,
}

impl<'a> Alternatives<'a> {
    /// Initialises every alternative in a fresh arena (before any helper maps it).
    fn init(arena: &'a Arena) -> Self {
        arena.word(slot::FUTEX).store(0, SeqCst);
        arena.word(slot::FUTEX_SPIN).store(0, SeqCst);
        Alternatives {
            futex: FutexMutex::new(arena.word(slot::FUTEX)),
            futex_spin: FutexMutex::new(arena.word(slot::FUTEX_SPIN)),
            // SAFETY: each slot is 128-byte aligned, 128 bytes long (more than a
            // `pthread_mutex_t` or `sem_t`), in the arena's shared mapping, which outlives the
            // handles (they borrow nothing, but are only used while `arena` lives); nobody else
            // maps the arena yet.
            pthread: unsafe { PthreadMutex::init(arena.slot_ptr(slot::PTHREAD), false) },
            // SAFETY: as above.
            robust: unsafe { PthreadMutex::init(arena.slot_ptr(slot::ROBUST), true) },
            // SAFETY: as above.
            sem: unsafe { Semaphore::init(arena.slot_ptr(slot::SEM)) },
        }
    }

    /// The alternatives the bench process initialised, seen from a helper.
    fn existing(arena: &'a Arena) -> Self {
        Alternatives {
            futex: FutexMutex::new(arena.word(slot::FUTEX)),
            futex_spin: FutexMutex::new(arena.word(slot::FUTEX_SPIN)),
            // SAFETY: the bench process initialised these slots with `init` before starting
            // us; the arena mapping lives as long as this helper uses the handles.
            pthread: unsafe { PthreadMutex::existing(arena.slot_ptr(slot::PTHREAD)) },
            // SAFETY: as above.
            robust: unsafe { PthreadMutex::existing(arena.slot_ptr(slot::ROBUST)) },
            // SAFETY: as above.
            sem: unsafe { Semaphore::existing(arena.slot_ptr(slot::SEM)) },
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Uncontended

fn bench_shared_lock<L: SharedLock>(
    g: &mut BenchmarkGroup<'_, ThreadCpuTime>,
    name: &str,
    lock: &L,
    counter: &AtomicU64,
) {
    g.bench_function(format!("lock_unlock/{name}"), |b| {
        b.iter(|| {
            let lock = black_box(lock);
            lock.lock();
            lock.unlock();
        })
    });
    g.bench_function(format!("increment/{name}"), |b| {
        b.iter(|| {
            let lock = black_box(lock);
            lock.lock();
            bump(counter);
            lock.unlock();
        })
    });
}

fn uncontended(c: &mut Criterion<ThreadCpuTime>) {
    let arena = Arena::create();
    let alt = Alternatives::init(&arena);
    let region = Region::anonymous(1 << 20).expect("anonymous region");
    let mut g = c.benchmark_group("uncontended");

    // (a) The floor: the cheapest possible acquire+release of a word of a shared mapping.
    let floor = arena.word(slot::FLOOR);
    let floor_counter = arena.counter(slot::FLOOR);
    g.bench_function("lock_unlock/floor", |b| {
        b.iter(|| {
            let w = black_box(floor);
            let _ = black_box(w.compare_exchange(0, 1, Acquire, Relaxed));
            w.store(0, Release);
        })
    });
    g.bench_function("increment/floor", |b| {
        b.iter(|| {
            let w = black_box(floor);
            let _ = black_box(w.compare_exchange(0, 1, Acquire, Relaxed));
            bump(floor_counter);
            w.store(0, Release);
        })
    });
    // What a release costs when it is more than a plain store: a SeqCst store (`xchg` on
    // x86-64), and a compare-exchange (what a release that checks the holder needs).
    g.bench_function("floor_variants/cas_swap", |b| {
        b.iter(|| {
            let w = black_box(floor);
            let _ = black_box(w.compare_exchange(0, 1, Acquire, Relaxed));
            black_box(w.swap(0, Release));
        })
    });
    g.bench_function("floor_variants/cas_cas", |b| {
        b.iter(|| {
            let w = black_box(floor);
            let _ = black_box(w.compare_exchange(0, 1, Acquire, Relaxed));
            let _ = black_box(w.compare_exchange(1, 0, Release, Relaxed));
        })
    });
    // The floor pair on a process-local word (private memory).
    let local = AtomicU32::new(0);
    g.bench_function("floor_variants/local_cas_store", |b| {
        b.iter(|| {
            let w = black_box(&local);
            let _ = black_box(w.compare_exchange(0, 1, Acquire, Relaxed));
            w.store(0, Release);
        })
    });
    // The floor pair through shmsync's RawValue, whose operations are SeqCst.
    let word = region.raw_value::<u32>("floor", 0).expect("raw value");
    g.bench_function("floor_variants/raw_value_seqcst", |b| {
        b.iter(|| {
            let _ = black_box(word.compare_exchange(0, 1));
            word.store(0);
        })
    });

    // (b) shmsync Lock and Value<u64>.
    let lock = region.lock("lock").expect("lock");
    g.bench_function("lock_unlock/shmsync_lock_acquire_release", |b| {
        b.iter(|| {
            black_box(lock.acquire(true, None));
            lock.release().expect("held");
        })
    });
    g.bench_function("lock_unlock/shmsync_lock_guard", |b| {
        b.iter(|| drop(black_box(lock.lock().expect("lock"))))
    });
    g.bench_function("lock_unlock/shmsync_lock_try_lock_guard", |b| {
        b.iter(|| drop(black_box(lock.try_lock().expect("free"))))
    });
    let value = region.value::<u64>("value", 0).expect("value");
    g.bench_function("increment/shmsync_value_guard", |b| {
        b.iter(|| *value.lock().expect("lock") += 1)
    });
    g.bench_function("increment/shmsync_value_fetch_add", |b| {
        b.iter(|| black_box(value.fetch_add(1).expect("fetch_add")))
    });

    // (c) The process-shared alternatives, in the arena.
    bench_shared_lock(
        &mut g,
        "futex_mutex",
        &alt.futex,
        arena.counter(slot::FUTEX),
    );
    bench_shared_lock(
        &mut g,
        "pthread_pshared",
        &alt.pthread,
        arena.counter(slot::PTHREAD),
    );
    bench_shared_lock(
        &mut g,
        "pthread_robust",
        &alt.robust,
        arena.counter(slot::ROBUST),
    );
    bench_shared_lock(&mut g, "sem_t", &alt.sem, arena.counter(slot::SEM));

    // (d) In-process mutexes.
    let std_mutex = std::sync::Mutex::new(0u64);
    g.bench_function("lock_unlock/std_mutex", |b| {
        b.iter(|| drop(black_box(&std_mutex).lock().expect("not poisoned")))
    });
    g.bench_function("increment/std_mutex", |b| {
        b.iter(|| *black_box(&std_mutex).lock().expect("not poisoned") += 1)
    });
    let pl_mutex = parking_lot::Mutex::new(0u64);
    g.bench_function("lock_unlock/parking_lot", |b| {
        b.iter(|| drop(black_box(&pl_mutex).lock()))
    });
    g.bench_function("increment/parking_lot", |b| {
        b.iter(|| *black_box(&pl_mutex).lock() += 1)
    });

    // (e) raw_sync's Mutex (a process-shared pthread mutex behind a boxed trait object), with
    // its data pointer on the slot's counter. Only this process touches that slot.
    let data = arena.counter(slot::RAW_SYNC).as_ptr().cast::<u8>();
    // SAFETY: the slot is 128 bytes of the live shared mapping, enough for raw_sync's
    // `pthread_mutex_t` plus its alignment padding; `data` points to a `u64` of the same slot
    // past the mutex; both outlive `raw` (dropped at the end of this function, before `arena`).
    let (raw, _) = unsafe {
        <raw_sync::locks::Mutex as raw_sync::locks::LockInit>::new(
            arena.slot_ptr(slot::RAW_SYNC),
            data,
        )
    }
    .expect("raw_sync mutex");
    g.bench_function("lock_unlock/raw_sync", |b| {
        b.iter(|| drop(black_box(raw.lock().expect("raw_sync lock"))))
    });
    g.bench_function("increment/raw_sync", |b| {
        b.iter(|| {
            let guard = raw.lock().expect("raw_sync lock");
            // SAFETY: the guard's pointer is `data`, an aligned `u64` in the live mapping,
            // reached only while holding the lock, by this thread only.
            unsafe { *(*guard).cast::<u64>() += 1 };
        })
    });

    // (f) The rest of shmsync's API.
    let rlock = region.rlock("rlock").expect("rlock");
    g.bench_function("shmsync/rlock_lock_unlock", |b| {
        b.iter(|| drop(black_box(rlock.lock().expect("rlock"))))
    });
    {
        let _outer = rlock.lock().expect("rlock");
        g.bench_function("shmsync/rlock_reenter", |b| {
            b.iter(|| drop(black_box(rlock.lock().expect("rlock"))))
        });
    }
    g.bench_function("shmsync/value_u64_load", |b| {
        b.iter(|| black_box(value.load().expect("load")))
    });
    g.bench_function("shmsync/value_u64_store", |b| {
        b.iter(|| value.store(black_box(7)).expect("store"))
    });
    let raw_value = region.raw_value::<u64>("raw", 0).expect("raw value");
    g.bench_function("shmsync/raw_value_u64_fetch_add", |b| {
        b.iter(|| black_box(raw_value.fetch_add(1)))
    });
    let array = region.array::<u64>("array", &[0; 1000]).expect("array");
    let src: Vec<u64> = (0..1000).collect();
    g.bench_function("shmsync/array_u64_1000_to_vec", |b| {
        b.iter(|| black_box(array.to_vec().expect("to_vec")))
    });
    g.bench_function("shmsync/array_u64_1000_copy_from_slice", |b| {
        b.iter(|| array.copy_from_slice(black_box(&src)).expect("copy"))
    });

    // (g) shmsync's other primitives, next to the POSIX object that does the same where there
    // is one (`sem_t` is `lock_unlock/sem_t` above: `sem_wait` + `sem_post`).
    let sem = region.semaphore("semaphore", 1).expect("semaphore");
    g.bench_function("primitives/semaphore_acquire_release", |b| {
        b.iter(|| {
            black_box(sem.acquire(true, None));
            sem.release().expect("release");
        })
    });
    g.bench_function("primitives/semaphore_permit", |b| {
        b.iter(|| drop(black_box(sem.permit().expect("permit"))))
    });
    let rwlock = region.rwlock::<u64>("rwlock", 0).expect("rwlock");
    g.bench_function("primitives/rwlock_read_guard", |b| {
        b.iter(|| drop(black_box(rwlock.read().expect("read"))))
    });
    g.bench_function("primitives/rwlock_write_guard", |b| {
        b.iter(|| drop(black_box(rwlock.write().expect("write"))))
    });
    // SAFETY: the slot is 128-byte aligned and 128 bytes long (more than a
    // `pthread_rwlock_t`), in the arena's shared mapping, which outlives the handle (used only
    // in this function); nobody else uses the slot.
    let pthread_rw = unsafe { PthreadRwLock::init(arena.slot_ptr(slot::RWLOCK)) };
    g.bench_function("primitives/pthread_rwlock_read", |b| {
        b.iter(|| black_box(&pthread_rw).read_unlock())
    });
    g.bench_function("primitives/pthread_rwlock_write", |b| {
        b.iter(|| black_box(&pthread_rw).write_unlock())
    });
    let event = region.event("event").expect("event");
    event.set();
    g.bench_function("primitives/event_is_set", |b| {
        b.iter(|| black_box(black_box(&event).is_set()))
    });
    let flag = arena.word(slot::FLAG);
    flag.store(1, SeqCst);
    g.bench_function("primitives/acquire_load", |b| {
        b.iter(|| black_box(black_box(flag).load(Acquire)))
    });

    g.finish();
    drop(raw);
}

// ---------------------------------------------------------------------------------------------
// Region lookup and open

fn region_lookup(c: &mut Criterion<ThreadCpuTime>) {
    let mut g = c.benchmark_group("region_lookup");
    // Finding an existing object by name: hash the name, probe the directory, validate the
    // entry, clone the region handle. Cycles through every object so that probe lengths are
    // averaged over the whole table.
    for objects in [10usize, 1000, 100_000] {
        let capacity = objects.max(16);
        let region = Region::options()
            .capacity(capacity)
            .anonymous(128 * objects + (96 << 20))
            .expect("lookup region");
        let names: Vec<String> = (0..objects).map(|i| format!("lock-{i}")).collect();
        for name in &names {
            region.lock(name).expect("create lock");
        }
        let next = Cell::new(0usize);
        g.bench_with_input(
            BenchmarkId::new("lock", format!("{objects}_objects")),
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

    // Opening a region file by path (map, validate, register with a lease) and dropping it.
    let mut g = c.benchmark_group("region_open");
    let path = PathBuf::from(format!(
        "/dev/shm/shmsync-bench-open-{}",
        std::process::id()
    ));
    let _ = Region::remove(&path);
    let file = RegionFile(path.clone());
    let region = Region::create(&path, 1 << 20).expect("create region");
    region.lock("x").expect("lock");
    g.bench_function("open_existing_1MiB", |b| {
        b.iter(|| black_box(Region::open(&path).expect("open")))
    });
    g.finish();
    drop(region);
    drop(file);
}

// ---------------------------------------------------------------------------------------------
// Two processes

/// A region file that is removed when dropped (if it is still there).
struct RegionFile(PathBuf);

impl Drop for RegionFile {
    fn drop(&mut self) {
        let _ = Region::remove(&self.0);
    }
}

/// The locks of the two-process benchmarks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Impl {
    ShmsyncValue,
    ShmsyncLock,
    FutexMutex,
    FutexMutexSpin,
    PthreadPshared,
    PthreadRobust,
    SemT,
    ShmsyncPermit,
}

impl Impl {
    const ALL: [Impl; 8] = [
        Impl::ShmsyncValue,
        Impl::ShmsyncLock,
        Impl::ShmsyncPermit,
        Impl::FutexMutex,
        Impl::FutexMutexSpin,
        Impl::PthreadPshared,
        Impl::PthreadRobust,
        Impl::SemT,
    ];

    fn name(self) -> &'static str {
        match self {
            Impl::ShmsyncValue => "shmsync_value",
            Impl::ShmsyncLock => "shmsync_lock",
            Impl::FutexMutex => "futex_mutex",
            Impl::FutexMutexSpin => "futex_mutex_spin100",
            Impl::PthreadPshared => "pthread_pshared",
            Impl::PthreadRobust => "pthread_robust",
            Impl::SemT => "sem_t",
            Impl::ShmsyncPermit => "shmsync_permit",
        }
    }

    fn parse(name: &str) -> Option<Impl> {
        Impl::ALL.into_iter().find(|i| i.name() == name)
    }
}

/// One side of a contended benchmark: lock / increment / unlock on the shared counter.
trait Contender {
    fn increment(&self);
    /// The counter (read without the lock where the counter is an atomic).
    fn count(&self) -> u64;
}

struct ValueContender(Value<u64>);

impl Contender for ValueContender {
    #[inline]
    fn increment(&self) {
        *self.0.lock().expect("lock") += 1;
    }
    fn count(&self) -> u64 {
        self.0.load().expect("load")
    }
}

struct LockContender<'a> {
    lock: Lock,
    counter: &'a AtomicU64,
}

impl Contender for LockContender<'_> {
    #[inline]
    fn increment(&self) {
        let _guard = self.lock.lock().expect("lock");
        bump(self.counter);
    }
    fn count(&self) -> u64 {
        self.counter.load(Relaxed)
    }
}

/// A `Semaphore` of one permit used as a lock: a `permit()` guard, then the counter beside it.
/// The two processes' entries take turns in the semaphore's tag, so every take and drop settles
/// the other's tag first.
struct PermitContender<'a> {
    sem: shmsync::Semaphore,
    counter: &'a AtomicU64,
}

impl Contender for PermitContender<'_> {
    #[inline]
    fn increment(&self) {
        let _permit = self.sem.permit().expect("permit");
        bump(self.counter);
    }
    fn count(&self) -> u64 {
        self.counter.load(Relaxed)
    }
}

struct AltContender<'a, L> {
    lock: L,
    counter: &'a AtomicU64,
}

impl<L: SharedLock> Contender for AltContender<'_, L> {
    #[inline]
    fn increment(&self) {
        self.lock.lock();
        bump(self.counter);
        self.lock.unlock();
    }
    fn count(&self) -> u64 {
        self.counter.load(Relaxed)
    }
}

/// Something to do with a contender of a statically known type (so each loop is
/// monomorphised: no dynamic call in the measured loops).
trait WithContender {
    fn run<C: Contender>(self, c: C);
}

fn with_contender<W: WithContender>(
    imp: Impl,
    arena: &Arena,
    alt: &Alternatives,
    region: &Region,
    w: W,
) {
    match imp {
        Impl::ShmsyncValue => w.run(ValueContender(
            region.value::<u64>("counter", 0).expect("value"),
        )),
        Impl::ShmsyncLock => w.run(LockContender {
            lock: region.lock("lock").expect("lock"),
            counter: arena.counter(slot::SHMSYNC_LOCK_COUNTER),
        }),
        Impl::FutexMutex => w.run(AltContender {
            lock: alt.futex,
            counter: arena.counter(slot::FUTEX),
        }),
        Impl::FutexMutexSpin => w.run(AltContender {
            lock: alt.futex_spin,
            counter: arena.counter(slot::FUTEX_SPIN),
        }),
        Impl::PthreadPshared => w.run(AltContender {
            lock: alt.pthread,
            counter: arena.counter(slot::PTHREAD),
        }),
        Impl::PthreadRobust => w.run(AltContender {
            lock: alt.robust,
            counter: arena.counter(slot::ROBUST),
        }),
        Impl::SemT => w.run(AltContender {
            lock: alt.sem,
            counter: arena.counter(slot::SEM),
        }),
        Impl::ShmsyncPermit => w.run(PermitContender {
            sem: region.semaphore("permit", 1).expect("semaphore"),
            counter: arena.counter(slot::PERMIT_COUNTER),
        }),
    }
}

/// The bench side of a contended benchmark.
struct MeasureContended<'g, 'c> {
    g: &'g mut BenchmarkGroup<'c, WallTime>,
    id: String,
    pinned: bool,
}

impl WithContender for MeasureContended<'_, '_> {
    fn run<C: Contender>(self, c: C) {
        // (own increments, increments of both processes, elapsed) per call of the routine.
        let samples = RefCell::new(Vec::new());
        self.g.bench_function(&self.id, |b| {
            b.iter_custom(|iters| {
                let before = c.count();
                let start = Instant::now();
                for _ in 0..iters {
                    c.increment();
                }
                let elapsed = start.elapsed();
                let after = c.count();
                samples
                    .borrow_mut()
                    .push((iters, after.wrapping_sub(before), elapsed));
                elapsed
            })
        });
        let samples = samples.into_inner();
        // Warm-up calls too short to say anything are left out.
        let timed: Vec<_> = samples
            .iter()
            .filter(|(_, _, t)| *t >= Duration::from_millis(1))
            .collect();
        if timed.is_empty() {
            return; // filtered out
        }
        let mut both: Vec<f64> = timed
            .iter()
            .map(|(_, all, t)| *all as f64 / t.as_secs_f64() / 1e6)
            .collect();
        let mut own: Vec<f64> = timed
            .iter()
            .map(|(own, _, t)| *own as f64 / t.as_secs_f64() / 1e6)
            .collect();
        let own_total: u64 = timed.iter().map(|s| s.0).sum();
        let all_total: u64 = timed.iter().map(|s| s.1).sum();
        let share = 100.0 * own_total as f64 / all_total.max(1) as f64;
        let both_p25 = support::quantile(&mut both, 0.25);
        let both_p75 = support::quantile(&mut both, 0.75);
        let both = support::median(&mut both);
        let own = support::median(&mut own);
        support::report_extra(
            &format!(
                "{{\"kind\":\"contended\",\"id\":\"contended/{}\",\"both_mops\":{both:.4},\
                 \"both_mops_p25\":{both_p25:.4},\"both_mops_p75\":{both_p75:.4},\
                 \"own_mops\":{own:.4},\"bench_share_pct\":{share:.2},\"pinned\":{},\
                 \"samples\":{}}}",
                self.id,
                self.pinned,
                timed.len()
            ),
            &format!(
                "contended/{}: both processes {both:.2} Mops/s (median of {} samples), bench \
                 process {own:.2} Mops/s, {share:.1}% of the increments by the bench process{}",
                self.id,
                timed.len(),
                if self.pinned { "" } else { " (NOT PINNED)" }
            ),
        );
    }
}

/// The helper side of a contended benchmark: increment until told to stop.
struct HelperContend<'a> {
    stop: &'a AtomicU32,
}

impl WithContender for HelperContend<'_> {
    fn run<C: Contender>(self, c: C) {
        let started = Instant::now();
        'run: loop {
            for _ in 0..64 {
                for _ in 0..16 {
                    c.increment();
                }
                if self.stop.load(Relaxed) != 0 {
                    break 'run;
                }
            }
            if started.elapsed() > HELPER_MAX_LIFETIME {
                break;
            }
        }
    }
}

/// The bench side of one window of the interleaved contended pass: increments for `window`
/// while the helper does the same; returns (both processes, bench process) in Mops/s.
struct ContendWindow<'a> {
    window: Duration,
    out: &'a Cell<(f64, f64)>,
}

impl WithContender for ContendWindow<'_> {
    fn run<C: Contender>(self, c: C) {
        let before = c.count();
        let start = Instant::now();
        let mut own = 0u64;
        while start.elapsed() < self.window {
            for _ in 0..256 {
                c.increment();
            }
            own += 256;
        }
        let secs = start.elapsed().as_secs_f64();
        let all = c.count().wrapping_sub(before);
        self.out
            .set((all as f64 / secs / 1e6, own as f64 / secs / 1e6));
    }
}

/// The helper side of the interleaved contended pass: increments while its `go` word is set,
/// says so in its `active` word, and otherwise sleeps on the `go` word (a futex: an idle helper
/// takes no CPU from the pair being measured), until told to stop.
struct HelperInterleaved<'a> {
    arena: &'a Arena,
    index: usize,
}

impl WithContender for HelperInterleaved<'_> {
    fn run<C: Contender>(self, c: C) {
        let go = self.arena.word_at(slot::GO, 4 * self.index);
        let active = self.arena.word_at(slot::ACTIVE, 4 * self.index);
        let stop = self.arena.stop();
        let started = Instant::now();
        self.arena.ready().store(1, SeqCst);
        while stop.load(SeqCst) == 0 && started.elapsed() < HELPER_MAX_LIFETIME {
            match go.load(SeqCst) {
                0 => support::alternatives::futex_wait(go, 0),
                1 => {
                    active.store(1, SeqCst);
                    while go.load(Relaxed) == 1 {
                        for _ in 0..16 {
                            c.increment();
                        }
                    }
                    active.store(0, SeqCst);
                }
                _ => {} // being stopped: the loop condition sees it
            }
        }
    }
}

/// Waits until `word` holds `value` (the helper's answer), for at most 5 s.
fn await_word(word: &AtomicU32, value: u32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while word.load(SeqCst) != value {
        assert!(Instant::now() < deadline, "helper did not answer");
        std::thread::sleep(Duration::from_micros(100));
    }
}

/// Every two-CPU contended case at once, measured in alternation: each helper is started
/// first and idles until its turn; then 8 rounds of a 50 ms window per case, so that all
/// cases see the same load from the rest of the machine. Per case: the median over rounds of
/// both processes' throughput. Criterion's sequential measurements of the same cases can be
/// minutes apart on a shared machine; these are for comparing the cases with each other.
fn contended_interleaved(arena: &Arena, alt: &Alternatives, region: &Region, region_path: &Path) {
    const ROUNDS: usize = 8;
    const WINDOW: Duration = Duration::from_millis(50);
    let pinned = Pinned::new(Placement::TwoCpus);
    for i in 0..Impl::ALL.len() {
        arena.word_at(slot::GO, 4 * i).store(0, SeqCst);
        arena.word_at(slot::ACTIVE, 4 * i).store(0, SeqCst);
    }
    // Stopping a helper: set the stop flag and wake it from its `go` word (a helper only
    // checks the flag when it wakes).
    let stop = || {
        arena.stop().store(1, SeqCst);
        for i in 0..Impl::ALL.len() {
            let go = arena.word_at(slot::GO, 4 * i);
            go.store(2, SeqCst);
            support::alternatives::futex_wake(go, i32::MAX);
        }
    };
    let helpers: Vec<Helper<'_>> = Impl::ALL
        .iter()
        .enumerate()
        .map(|(i, imp)| {
            let job = format!("contend_interleaved/{}/{i}", imp.name());
            Helper::spawn(&job, arena, Some(region_path), pinned.helper_cpu, stop)
        })
        .collect();
    let mut both = vec![Vec::with_capacity(ROUNDS); Impl::ALL.len()];
    let mut own = vec![Vec::with_capacity(ROUNDS); Impl::ALL.len()];
    for _ in 0..ROUNDS {
        for (i, imp) in Impl::ALL.into_iter().enumerate() {
            let go = arena.word_at(slot::GO, 4 * i);
            let active = arena.word_at(slot::ACTIVE, 4 * i);
            go.store(1, SeqCst);
            support::alternatives::futex_wake(go, 1);
            await_word(active, 1);
            let out = Cell::new((0.0, 0.0));
            with_contender(
                imp,
                arena,
                alt,
                region,
                ContendWindow {
                    window: WINDOW,
                    out: &out,
                },
            );
            go.store(0, SeqCst);
            await_word(active, 0);
            both[i].push(out.get().0);
            own[i].push(out.get().1);
        }
    }
    drop(helpers);
    for (i, imp) in Impl::ALL.into_iter().enumerate() {
        let lo = both[i].iter().copied().fold(f64::INFINITY, f64::min);
        let hi = both[i].iter().copied().fold(0.0, f64::max);
        let median = support::median(&mut both[i]);
        let own = support::median(&mut own[i]);
        let id = format!("contended/two_cpus/{}", imp.name());
        support::report_extra(
            &format!(
                "{{\"kind\":\"contended_interleaved\",\"id\":\"{id}\",\"rounds\":{ROUNDS},\
                 \"both_mops\":{median:.4},\"min_mops\":{lo:.4},\"max_mops\":{hi:.4},\
                 \"own_mops\":{own:.4},\"pinned\":{}}}",
                pinned.pinned()
            ),
            &format!(
                "{id} (interleaved): both processes {median:.2} Mops/s, median over {ROUNDS} \
                 rounds ({lo:.2} – {hi:.2})"
            ),
        );
    }
}

/// Two locks handed back and forth between two processes.
trait Handoff {
    /// Waits for lock `i` (0 or 1).
    fn acquire(&self, i: usize);
    /// Releases lock `i`, whoever holds it.
    fn release(&self, i: usize);
}

struct ShmsyncHandoff([Lock; 2]);

impl Handoff for ShmsyncHandoff {
    #[inline]
    fn acquire(&self, i: usize) {
        assert!(self.0[i].acquire(true, None));
    }
    #[inline]
    fn release(&self, i: usize) {
        self.0[i].release().expect("held");
    }
}

struct FutexHandoff<'a, const SPIN: u32, const TIMED: bool>([FutexMutex<'a, SPIN, TIMED>; 2]);

impl<const SPIN: u32, const TIMED: bool> Handoff for FutexHandoff<'_, SPIN, TIMED> {
    #[inline]
    fn acquire(&self, i: usize) {
        self.0[i].lock();
    }
    #[inline]
    fn release(&self, i: usize) {
        self.0[i].unlock();
    }
}

/// Two flags spun on (1 free, 0 held), no futex at all: the hardware's cross-CPU handoff, for
/// reference. Only meaningful with the two processes on two CPUs.
struct SpinHandoff<'a>([&'a AtomicU32; 2]);

impl Handoff for SpinHandoff<'_> {
    #[inline]
    fn acquire(&self, i: usize) {
        let word = self.0[i];
        let mut spins = 0u64;
        let mut since = None;
        loop {
            if word.load(Relaxed) == 1 && word.compare_exchange(1, 0, Acquire, Relaxed).is_ok() {
                return;
            }
            std::hint::spin_loop();
            spins += 1;
            // Never hang if the other side is gone (no clock read on the usual, short waits).
            if spins % (1 << 20) == 0
                && since.get_or_insert_with(Instant::now).elapsed() > Duration::from_secs(10)
            {
                panic!("spin handoff: no answer for 10 s");
            }
        }
    }
    #[inline]
    fn release(&self, i: usize) {
        self.0[i].store(1, Release);
    }
}

/// The ping-pong cases: shmsync, the minimal futex mutex, the futex mutex with the fixed spin
/// shmsync used before (100 reads) or with shmsync's kind of sleep (one trait at a time), and
/// spinning on flags (no futex).
const PINGPONG_CASES: [&str; 5] = [
    "shmsync_lock",
    "futex_mutex",
    "futex_mutex_spin100",
    "futex_mutex_timed",
    "spin_flag",
];

/// The cases run with both processes on `placement`: spinning on flags only on two CPUs (on one,
/// a spinning waiter only burns the time slice the other side needs).
fn pingpong_cases(placement: Placement) -> impl Iterator<Item = &'static str> {
    PINGPONG_CASES
        .into_iter()
        .filter(move |name| !(*name == "spin_flag" && placement == Placement::OneCpu))
}

/// The arena slot of ping-pong case `name`: lock A in its word at offset 0, lock B at offset 4,
/// the helper's round counter in the slot's counter. (shmsync's locks are in the region.)
fn pingpong_slot(name: &str) -> usize {
    match name {
        "shmsync_lock" => slot::PP_SHMSYNC,
        "futex_mutex" => slot::PP_FUTEX,
        "futex_mutex_spin100" => slot::PP_FUTEX_SPIN,
        "futex_mutex_timed" => slot::PP_FUTEX_TIMED,
        "spin_flag" => slot::PP_FLAG,
        _ => panic!("unknown ping-pong case {name:?}"),
    }
}

/// The two locks of ping-pong case `name`; `tag` names shmsync's locks (one pair per tag).
/// With `fresh`, the words are reset to "free" first (the bench side, before any helper).
fn make_handoff<'a>(
    name: &str,
    tag: &str,
    arena: &'a Arena,
    region: &Region,
    fresh: bool,
) -> Box<dyn Handoff + 'a> {
    let s = pingpong_slot(name);
    let (a, b) = (arena.word_at(s, 0), arena.word_at(s, 4));
    if fresh {
        let free = u32::from(name == "spin_flag");
        a.store(free, SeqCst);
        b.store(free, SeqCst);
    }
    match name {
        "shmsync_lock" => {
            let lock = |n: &str| region.lock(&format!("pingpong-{n}-{tag}")).expect("lock");
            Box::new(ShmsyncHandoff([lock("a"), lock("b")]))
        }
        "futex_mutex" => Box::new(FutexHandoff::<0, false>([
            FutexMutex::new(a),
            FutexMutex::new(b),
        ])),
        "futex_mutex_spin100" => Box::new(FutexHandoff::<100, false>([
            FutexMutex::new(a),
            FutexMutex::new(b),
        ])),
        "futex_mutex_timed" => Box::new(FutexHandoff::<0, true>([
            FutexMutex::new(a),
            FutexMutex::new(b),
        ])),
        "spin_flag" => Box::new(SpinHandoff([a, b])),
        _ => panic!("unknown ping-pong case {name:?}"),
    }
}

/// Takes both locks of `h` and starts the helper of case `name`, which then waits for lock A.
fn start_pingpong<'a>(
    name: &str,
    tag: &str,
    h: &'a dyn Handoff,
    arena: &'a Arena,
    region_path: &Path,
    pinned: &Pinned,
) -> Helper<'a> {
    h.acquire(0);
    h.acquire(1);
    let stop = move || {
        arena.stop().store(1, SeqCst);
        h.release(0);
    };
    let job = format!("pingpong/{name}/{tag}");
    Helper::spawn(&job, arena, Some(region_path), pinned.helper_cpu, stop)
}

/// One round trip: release A (the helper takes it and releases B), then wait for B.
#[inline]
fn round_trip(h: &dyn Handoff) {
    h.release(0);
    h.acquire(1);
}

/// The bench side of a ping-pong benchmark, with its helper running.
fn measure_pingpong(
    g: &mut BenchmarkGroup<'_, WallTime>,
    id: &str,
    h: &dyn Handoff,
    rounds: &AtomicU64,
    pinned: bool,
) {
    let measured = Cell::new(false);
    g.bench_function(id, |b| {
        b.iter_custom(|iters| {
            measured.set(true);
            let before = rounds.load(Relaxed);
            let start = Instant::now();
            for _ in 0..iters {
                round_trip(h);
            }
            let elapsed = start.elapsed();
            // Every round trip must have been answered by exactly one round of the helper.
            assert_eq!(
                rounds.load(Relaxed) - before,
                iters,
                "{id}: the helper's rounds do not match the round trips"
            );
            elapsed
        })
    });
    if measured.get() {
        pingpong_modes(id, h, pinned);
    }
}

/// After criterion's measurement: times each of a few thousand round trips, to tell a steady
/// handoff from one that flips between a fast mode (the waiter caught the handoff while
/// spinning) and a slow one (it slept on the futex). Appends the shares to the extra results.
fn pingpong_modes(id: &str, h: &dyn Handoff, pinned: bool) {
    const FAST: Duration = Duration::from_micros(2);
    let budget = Duration::from_millis(300);
    let started = Instant::now();
    let mut trips: Vec<Duration> = Vec::with_capacity(100_000);
    while trips.len() < 100_000 && started.elapsed() < budget {
        let t0 = Instant::now();
        round_trip(h);
        trips.push(t0.elapsed());
    }
    let fast = trips.iter().filter(|d| **d < FAST).count();
    let switches = trips
        .windows(2)
        .filter(|w| (w[0] < FAST) != (w[1] < FAST))
        .count();
    let nanos = |keep: fn(&Duration) -> bool| -> Vec<f64> {
        trips
            .iter()
            .filter(|d| keep(d))
            .map(|d| d.as_nanos() as f64)
            .collect()
    };
    let fast_median = support::median(&mut nanos(|d| *d < FAST));
    let slow_median = support::median(&mut nanos(|d| *d >= FAST));
    let n = trips.len();
    let fast_pct = 100.0 * fast as f64 / n.max(1) as f64;
    support::report_extra(
        &format!(
            "{{\"kind\":\"pingpong_modes\",\"id\":\"pingpong/{id}\",\"trips\":{n},\
             \"fast_pct\":{fast_pct:.2},\"switches\":{switches},\"fast_median_ns\":{},\
             \"slow_median_ns\":{},\"pinned\":{pinned}}}",
            json_num(fast_median),
            json_num(slow_median)
        ),
        &format!(
            "pingpong/{id}: {n} timed round trips, {fast_pct:.1}% under 2 µs (median {} ns), \
             the rest median {} ns; {switches} switches between the two",
            json_num(fast_median),
            json_num(slow_median)
        ),
    );
}

/// A JSON number, or `null` for NaN.
fn json_num(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.1}")
    } else {
        "null".to_string()
    }
}

/// Every ping-pong case on `placement` at once, measured in alternation: 8 rounds of 40 ms per
/// case, so that all cases see the same load from the rest of the machine. The per-case figure
/// is the median over rounds of the mean round trip. Criterion's sequential measurements of
/// the same cases can be minutes apart on a shared machine; these are for comparing the cases.
fn pingpong_interleaved(placement: Placement, arena: &Arena, region: &Region, region_path: &Path) {
    const ROUNDS: usize = 8;
    const SLICE: Duration = Duration::from_millis(40);
    let tag = format!("{}-interleaved", placement.label());
    let pinned = Pinned::new(placement);
    // Not the spin flags: an idle helper spinning on its flag would take the helper CPU from
    // the pair being measured.
    let names: Vec<&str> = pingpong_cases(placement)
        .filter(|name| *name != "spin_flag")
        .collect();
    let handoffs: Vec<Box<dyn Handoff + '_>> = names
        .iter()
        .map(|name| make_handoff(name, &tag, arena, region, true))
        .collect();
    let helpers: Vec<Helper<'_>> = names
        .iter()
        .zip(&handoffs)
        .map(|(name, h)| start_pingpong(name, &tag, &**h, arena, region_path, &pinned))
        .collect();
    let mut means = vec![Vec::with_capacity(ROUNDS); names.len()];
    for _ in 0..ROUNDS {
        for (i, h) in handoffs.iter().enumerate() {
            round_trip(&**h); // wake this pair up
            let start = Instant::now();
            let mut trips = 0u64;
            loop {
                round_trip(&**h);
                trips += 1;
                if trips % 16 == 0 && start.elapsed() >= SLICE {
                    break;
                }
            }
            means[i].push(start.elapsed().as_nanos() as f64 / trips as f64);
        }
    }
    drop(helpers);
    for (name, means) in names.iter().zip(&mut means) {
        let lo = means.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = means.iter().copied().fold(0.0, f64::max);
        let median = support::median(means);
        let id = format!("pingpong/{}/{name}", placement.label());
        support::report_extra(
            &format!(
                "{{\"kind\":\"pingpong_interleaved\",\"id\":\"{id}\",\"rounds\":{ROUNDS},\
                 \"median_ns\":{median:.1},\"min_ns\":{lo:.1},\"max_ns\":{hi:.1},\
                 \"pinned\":{}}}",
                pinned.pinned()
            ),
            &format!(
                "{id} (interleaved): median round trip {median:.0} ns over {ROUNDS} rounds \
                 ({lo:.0} – {hi:.0} ns)"
            ),
        );
    }
}

/// The helper side of a ping-pong benchmark; counts its rounds in `rounds` (ordered by the
/// handoffs themselves), which the bench side checks.
fn helper_pingpong(h: &dyn Handoff, arena: &Arena, rounds: &AtomicU64) {
    arena.ready().store(1, SeqCst);
    loop {
        h.acquire(0);
        if arena.stop().load(SeqCst) != 0 {
            h.release(0);
            return;
        }
        bump(rounds);
        h.release(1);
    }
}

fn two_processes(c: &mut Criterion) {
    let arena = Arena::create();
    let alt = Alternatives::init(&arena);
    let path = PathBuf::from(format!("/dev/shm/shmsync-bench-{}", std::process::id()));
    let _ = Region::remove(&path);
    let file = RegionFile(path.clone());
    let region = Region::create(&path, 1 << 16).expect("create two-process region");

    let mut g = c.benchmark_group("contended");
    let cases = Impl::ALL
        .map(|i| (Placement::TwoCpus, i))
        .into_iter()
        .chain([
            (Placement::OneCpu, Impl::ShmsyncValue),
            (Placement::OneCpu, Impl::FutexMutex),
        ]);
    for (placement, imp) in cases {
        let id = format!("{}/{}", placement.label(), imp.name());
        if !filter_allows(&format!("contended/{id}")) {
            continue;
        }
        let pinned = Pinned::new(placement);
        let job = format!("contend/{}", imp.name());
        let stop = || arena.stop().store(1, SeqCst);
        let helper = Helper::spawn(&job, &arena, Some(&path), pinned.helper_cpu, stop);
        with_contender(
            imp,
            &arena,
            &alt,
            &region,
            MeasureContended {
                g: &mut g,
                id,
                pinned: pinned.pinned(),
            },
        );
        drop(helper);
        drop(pinned);
    }
    g.finish();

    if filter_allows("contended/two_cpus/interleaved") {
        contended_interleaved(&arena, &alt, &region, &path);
    }

    let mut g = c.benchmark_group("pingpong");
    for placement in [Placement::TwoCpus, Placement::OneCpu] {
        for name in pingpong_cases(placement) {
            let id = format!("{}/{name}", placement.label());
            if !filter_allows(&format!("pingpong/{id}")) {
                continue;
            }
            let pinned = Pinned::new(placement);
            let tag = placement.label();
            let h = make_handoff(name, tag, &arena, &region, true);
            let helper = start_pingpong(name, tag, &*h, &arena, &path, &pinned);
            let rounds = arena.counter(pingpong_slot(name));
            measure_pingpong(&mut g, &id, &*h, rounds, pinned.pinned());
            drop(helper);
            drop(pinned);
        }
    }
    g.finish();
    for placement in [Placement::TwoCpus, Placement::OneCpu] {
        if filter_allows(&format!("pingpong/{}/interleaved", placement.label())) {
            pingpong_interleaved(placement, &arena, &region, &path);
        }
    }
    drop(region);
    drop(file);
}

/// Whether criterion's command-line filter (a regex on the benchmark id) may select `id`.
/// Criterion itself skips filtered benchmarks, but would not stop us from starting their helper
/// processes; this cheap check handles the common case of a plain substring or `^prefix`.
fn filter_allows(id: &str) -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut filter = None;
    let mut skip_next = false;
    for arg in &args {
        if skip_next {
            skip_next = false;
            continue;
        }
        if arg.starts_with("--") {
            // Options that take a value.
            skip_next = matches!(
                arg.as_str(),
                "--save-baseline"
                    | "--baseline"
                    | "--load-baseline"
                    | "--measurement-time"
                    | "--warm-up-time"
                    | "--sample-size"
                    | "--noise-threshold"
                    | "--significance-level"
                    | "--confidence-level"
                    | "--nresamples"
                    | "--color"
                    | "--output-format"
                    | "--plotting-backend"
                    | "--profile-time"
            );
            continue;
        }
        filter = Some(arg.as_str());
    }
    match filter {
        None => true,
        Some(f)
            if f.chars()
                .all(|ch| ch.is_alphanumeric() || "_/-".contains(ch)) =>
        {
            id.contains(f)
        }
        Some(f) => match f.strip_prefix('^') {
            Some(p)
                if p.chars()
                    .all(|ch| ch.is_alphanumeric() || "_/-".contains(ch)) =>
            {
                id.starts_with(p)
            }
            // A real regex: let criterion decide (the helper may then start for nothing).
            _ => true,
        },
    }
}

/// A helper process: `contend/<impl>` or `pingpong/<impl>/<placement>`.
fn helper_main(job: &str) {
    support::helper_prologue();
    let arena = Arena::inherited();
    let alt = Alternatives::existing(&arena);
    let path = std::env::var_os(REGION_ENV).expect("region path in the environment");
    let region = Region::open(&path).expect("helper: open region");
    let parts: Vec<&str> = job.split('/').collect();
    match parts.as_slice() {
        ["contend", name] => {
            let imp = Impl::parse(name).expect("known implementation");
            // Open the objects before saying we are ready.
            let stop = arena.stop();
            struct Ready<'a, W> {
                arena: &'a Arena,
                then: W,
            }
            impl<W: WithContender> WithContender for Ready<'_, W> {
                fn run<C: Contender>(self, c: C) {
                    self.arena.ready().store(1, SeqCst);
                    self.then.run(c);
                }
            }
            with_contender(
                imp,
                &arena,
                &alt,
                &region,
                Ready {
                    arena: &arena,
                    then: HelperContend { stop },
                },
            );
        }
        ["contend_interleaved", name, index] => {
            let imp = Impl::parse(name).expect("known implementation");
            let index = index.parse().expect("case index");
            let run = HelperInterleaved {
                arena: &arena,
                index,
            };
            with_contender(imp, &arena, &alt, &region, run);
        }
        ["pingpong", name, tag] => {
            let h = make_handoff(name, tag, &arena, &region, false);
            helper_pingpong(&*h, &arena, arena.counter(pingpong_slot(name)));
        }
        _ => panic!("unknown helper job {job:?}"),
    }
}

criterion_group! {
    name = single_process;
    config = config_uncontended();
    targets = uncontended, region_lookup
}

criterion_group! {
    name = multi_process;
    config = config_two_processes();
    targets = two_processes
}

fn main() {
    if let Ok(job) = std::env::var(HELPER_ENV) {
        helper_main(&job);
        return;
    }
    single_process();
    multi_process();
    Criterion::default().configure_from_args().final_summary();
}
