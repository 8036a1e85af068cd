//! Reader scaling and writers among many processes, for `RwLock` against glibc's
//! process-shared `pthread_rwlock_t`, measured in one run so that the ratios compare like with
//! like (absolute figures move with the load of a shared machine).
//!
//! - `readers`: forked processes pinned to one CPU each take and drop read locks in a loop for
//!   a window; the joint throughput of two processes on two CPUs against one process alone
//!   (the median of interleaved rounds). A shared reader count makes two readers slower
//!   together than one alone; per-process reader indicators should not.
//! - `write_guard`, `read_guard`: the uncontended guards (take + drop) of a lock only this
//!   process uses, next to `pthread_rwlock_wrlock`/`rdlock` + unlock: alone, with 63 other
//!   processes registered in the region, and with those 63 having each taken a read lock once
//!   (so that every one of its 32 reader indicators is claimed by a live process, which a
//!   writer must then look at).
//!
//! `cargo bench --bench readers` (about 20 s). Not criterion: each figure is a median of
//! rounds of fixed windows, printed one per line.

#[allow(dead_code)]
mod support;

use shmsync::{Process, Region, RwLock};
use std::hint::black_box;
use std::time::{Duration, Instant};
use support::alternatives::PthreadRwLock;
use support::{Arena, allowed_cpus, pin_to, slot, thread_cpu_now};

const WINDOW: Duration = Duration::from_millis(250);
const ROUNDS: usize = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Which {
    Shmsync,
    Pthread,
}

/// One round: a process per CPU in `cpus` takes read locks for [`WINDOW`]; returns their joint
/// throughput in Mops/s (each process's read locks per second of its own CPU time, summed).
fn readers_round(
    region: &Region,
    rw: &RwLock<u64>,
    pthread: &PthreadRwLock,
    which: Which,
    cpus: &[usize],
) -> f64 {
    let ready = region.raw_value::<u32>("ready", 0).expect("ready");
    let go = region.raw_value::<u32>("go", 0).expect("go");
    let total = region.raw_value::<u64>("total", 0).expect("total");
    ready.store(0);
    go.store(0);
    total.store(0);
    let children: Vec<Process> = cpus
        .iter()
        .map(|&cpu| {
            let (ready, go, total) = (&ready, &go, &total);
            Process::fork(move || {
                let _ = pin_to(cpu);
                ready.fetch_add(1);
                while go.load() == 0 {
                    std::hint::spin_loop();
                }
                let start = Instant::now();
                let cpu = thread_cpu_now();
                let mut n = 0u64;
                while start.elapsed() < WINDOW {
                    for _ in 0..256 {
                        match which {
                            Which::Shmsync => drop(black_box(rw.read().expect("read"))),
                            Which::Pthread => black_box(pthread).read_unlock(),
                        }
                    }
                    n += 256;
                }
                // Per second of this process's CPU time: on a shared machine a process is
                // also preempted by others, which says nothing about the lock; the time lost
                // to a contended cache line is CPU time, and counts.
                let cpu = (thread_cpu_now() - cpu).as_secs_f64();
                total.fetch_add((n as f64 / cpu) as u64);
            })
            .expect("fork")
        })
        .collect();
    while ready.load() < cpus.len() as u32 {
        std::thread::sleep(Duration::from_millis(1));
    }
    go.store(1);
    for child in children {
        assert_eq!(child.join(None).expect("join"), Some(0));
    }
    total.load() as f64 / 1e6
}

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Nanoseconds of this thread's CPU time per call of `f`, over one window (CPU time, so that
/// time spent preempted by other processes on a shared machine does not count).
fn ns_per_op(f: &mut dyn FnMut()) -> f64 {
    let start = Instant::now();
    let cpu = thread_cpu_now();
    let mut n = 0u64;
    while start.elapsed() < WINDOW / 2 {
        for _ in 0..1024 {
            f();
        }
        n += 1024;
    }
    (thread_cpu_now() - cpu).as_nanos() as f64 / n as f64
}

/// Each case's ns per op, and each case's ratio to the last one, measured in alternation
/// ([`ROUNDS`] rounds, medians): cases measured minutes apart on a shared machine do not
/// compare.
fn interleaved(cases: &mut [&mut dyn FnMut()]) -> (Vec<f64>, Vec<f64>) {
    let k = cases.len();
    let mut times = vec![Vec::new(); k];
    let mut ratios = vec![Vec::new(); k];
    for _ in 0..ROUNDS {
        let round: Vec<f64> = cases.iter_mut().map(|f| ns_per_op(&mut **f)).collect();
        for i in 0..k {
            times[i].push(round[i]);
            ratios[i].push(round[i] / round[k - 1]);
        }
    }
    (
        times.iter_mut().map(|t| median(t)).collect(),
        ratios.iter_mut().map(|r| median(r)).collect(),
    )
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list`
    }
    let region = Region::anonymous(1 << 20).expect("region");
    let rw = region.rwlock::<u64>("rw", 0).expect("rwlock");
    let arena = Arena::create();
    // SAFETY: the slot is 128-byte aligned and 128 bytes long (more than a `pthread_rwlock_t`),
    // in the arena's shared mapping, which outlives the handle; nobody else uses the slot.
    let pthread = unsafe { PthreadRwLock::init(arena.slot_ptr(slot::RWLOCK)) };

    let cpus = allowed_cpus();
    if cpus.len() >= 2 {
        let (mut ratios_s, mut ratios_p) = (Vec::new(), Vec::new());
        let (mut one_s, mut two_s, mut one_p, mut two_p) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            let a = readers_round(&region, &rw, &pthread, Which::Shmsync, &cpus[..1]);
            let b = readers_round(&region, &rw, &pthread, Which::Shmsync, &cpus[..2]);
            let c = readers_round(&region, &rw, &pthread, Which::Pthread, &cpus[..1]);
            let d = readers_round(&region, &rw, &pthread, Which::Pthread, &cpus[..2]);
            ratios_s.push(b / a);
            ratios_p.push(d / c);
            one_s.push(a);
            two_s.push(b);
            one_p.push(c);
            two_p.push(d);
        }
        println!(
            "readers/shmsync_rwlock: 1 process {:.1} Mops/s, 2 processes on 2 CPUs {:.1} Mops/s, \
             ratio {:.2} (median of {ROUNDS} rounds)",
            median(&mut one_s),
            median(&mut two_s),
            median(&mut ratios_s)
        );
        println!(
            "readers/pthread_rwlock: 1 process {:.1} Mops/s, 2 processes on 2 CPUs {:.1} Mops/s, \
             ratio {:.2}",
            median(&mut one_p),
            median(&mut two_p),
            median(&mut ratios_p)
        );
    } else {
        println!("readers: skipped (fewer than 2 CPUs allowed)");
    }

    // The guards of a lock only this process has used, next to pthread's: alone in the
    // region, with 63 more processes registered in it, then with those 63 having taken a read
    // lock once each (so that all 32 reader indicators are claimed, by live processes).
    let _ = pin_to(cpus.first().copied().unwrap_or(0));
    let guards = region.rwlock::<u64>("guards", 0).expect("rwlock");
    let measure = || {
        let mut w = || drop(black_box(guards.write().expect("write")));
        let mut pw = || black_box(&pthread).write_unlock();
        let write = interleaved(&mut [&mut w, &mut pw]);
        let mut r = || drop(black_box(guards.read().expect("read")));
        let mut pr = || black_box(&pthread).read_unlock();
        let read = interleaved(&mut [&mut r, &mut pr]);
        (write, read)
    };
    let alone = measure();
    let parked = region.raw_value::<u32>("parked", 0).expect("parked");
    let claimed = region.raw_value::<u32>("claimed", 0).expect("claimed");
    let claim = region.event("claim").expect("event");
    let release = region.event("release").expect("event");
    let others: Vec<Process> = (0..63)
        .map(|_| {
            let (guards, parked, claimed) = (&guards, &parked, &claimed);
            let (claim, release, region) = (&claim, &release, &region);
            Process::fork(move || {
                drop(region.lock("registered").expect("register"));
                parked.fetch_add(1);
                claim.wait(Some(Duration::from_secs(60)));
                drop(guards.read().expect("read"));
                claimed.fetch_add(1);
                release.wait(Some(Duration::from_secs(60)));
            })
            .expect("fork")
        })
        .collect();
    while parked.load() < 63 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let registered = measure();
    claim.set();
    while claimed.load() < 63 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let full = measure();
    release.set();
    for p in others {
        let _ = p.join(None);
    }
    for (i, name) in ["write_guard", "read_guard"].into_iter().enumerate() {
        let [a, r, f] = [&alone, &registered, &full].map(|m| if i == 0 { &m.0 } else { &m.1 });
        println!(
            "{name}: shmsync vs pthread_rwlock, ns (ratio): alone {:.2} vs {:.2} ({:.2}); 64 \
             processes registered {:.2} vs {:.2} ({:.2}); and all 32 reader indicators claimed \
             {:.2} vs {:.2} ({:.2}); medians of {ROUNDS} interleaved rounds, thread CPU time",
            a.0[0], a.0[1], a.1[0], r.0[0], r.0[1], r.1[0], f.0[0], f.0[1], f.1[0]
        );
    }
}
