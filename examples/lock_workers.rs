//! One `Lock` serializes three worker processes: a port of the tutorial's second program.
//!
//! ```python
//! def work(n, lock):
//!     lock.acquire()
//!     print('{} : {} is running'.format(n, os.getpid()))
//!     time.sleep(random.random())
//!     print('{} : {} is done'.format(n, os.getpid()))
//!     lock.release()
//!
//! if __name__ == '__main__':
//!     lock = Lock()
//!     for i in range(3):
//!         p = Process(target=work, args=(i, lock))
//!         p.start()
//! ```
//!
//! The three workers run twice, as the tutorial suggests comparing: first without the lock, so
//! their `running`/`done` lines interleave, then holding one shared `Lock` around each
//! `running`/`done` pair. Each worker also appends its two events, with a timestamp, to a log in
//! the shared region (lock-free `RawArray`s, a slot claimed with one atomic `fetch_add`). After
//! each run the parent reads that log back and reports what it measured: the order the events
//! were recorded in, each worker's running..done interval, and how many pairs of intervals
//! overlapped in time. With the lock there must be none (the example fails if there are).
//!
//! Run it with `cargo run --example lock_workers` (up to about 2 seconds: the workers sleep
//! 50..550 ms each).
#![forbid(unsafe_code)]

mod support;
use support::wait_all;

use shmsync::{Lock, Process, RawArray, RawValue, Region};
use std::error::Error;
use std::process;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const WORKERS: u32 = 3;
const RUNNING: u32 = 0;
const DONE: u32 = 1;

/// The worker, as in the Python `work(n, lock)`; `lock` is `None` for the run without it.
fn work(n: u32, lock: Option<&Lock>, log: &Log, epoch: Instant) -> shmsync::Result<()> {
    let pid = process::id();
    // lock.acquire(): the guard releases the lock when dropped, like lock.release(). (The
    // literal port, `lock.acquire(true, None)` ... `lock.release()?`, works too.)
    let guard = match lock {
        Some(lock) => Some(lock.lock()?),
        None => None,
    };
    println!("{n} : {pid} is running");
    log.record(n, pid, RUNNING, epoch);
    thread::sleep(random_sleep());
    println!("{n} : {pid} is done");
    log.record(n, pid, DONE, epoch);
    drop(guard);
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let region = Region::anonymous(1 << 16)?;
    let lock = region.lock("lock")?; // lock = Lock()

    println!("Without a lock:");
    let events = run(&region, "unlocked", None)?;
    let overlaps = report(&events)?;
    println!(
        "  measured: {overlaps} of {} pairs of workers overlapped in time{}",
        pairs(),
        if overlaps > 0 {
            ": their running/done lines interleaved"
        } else {
            " (not this time: the workers happened not to run at once)"
        }
    );

    println!();
    println!("With one shared Lock:");
    let events = run(&region, "locked", Some(&lock))?;
    let overlaps = report(&events)?;
    let adjacent = pairs_adjacent(&events);
    println!(
        "  measured: {overlaps} of {} pairs of workers overlapped in time; every \"done\" \
         directly follows its own \"running\" in the log: {}",
        pairs(),
        if adjacent { "yes" } else { "no" }
    );
    if overlaps > 0 || !adjacent {
        return Err("the lock did not serialize the workers".into());
    }
    println!("  the running/done pairs did not interleave");
    Ok(())
}

/// Forks the workers, waits for all of them, and returns the log they wrote.
fn run(region: &Region, name: &str, lock: Option<&Lock>) -> Result<Vec<Event>, Box<dyn Error>> {
    let log = Log::new(region, name)?;
    // CLOCK_MONOTONIC, which `Instant` reads, is one clock for the whole system, and the
    // children inherit this value: their `epoch.elapsed()` are comparable with each other.
    let epoch = Instant::now();
    let mut children = Vec::new();
    for n in 0..WORKERS {
        match Process::fork(|| work(n, lock, &log, epoch)) {
            Ok(child) => children.push(child),
            Err(e) => {
                let _ = wait_all(&children);
                return Err(e.into());
            }
        }
    }
    wait_all(&children)?;
    Ok(log.events())
}

/// One event of the shared log.
struct Event {
    worker: u32,
    pid: u32,
    kind: u32,
    at: Duration,
}

/// An append-only event log in the region: one column per field, and a cursor.
struct Log {
    next: RawValue<u32>,
    worker: RawArray<u32>,
    pid: RawArray<u32>,
    kind: RawArray<u32>,
    at_us: RawArray<u64>,
}

impl Log {
    fn new(region: &Region, name: &str) -> shmsync::Result<Log> {
        const SLOTS: usize = 2 * WORKERS as usize;
        Ok(Log {
            next: region.raw_value(&format!("{name}.next"), 0)?,
            worker: region.raw_array(&format!("{name}.worker"), &[0; SLOTS])?,
            pid: region.raw_array(&format!("{name}.pid"), &[0; SLOTS])?,
            kind: region.raw_array(&format!("{name}.kind"), &[0; SLOTS])?,
            at_us: region.raw_array(&format!("{name}.at_us"), &[0; SLOTS])?,
        })
    }

    /// Appends an event. The slot is claimed with one atomic `fetch_add`, so concurrent
    /// workers never share a slot, and slot order is the order in which they claimed them.
    fn record(&self, worker: u32, pid: u32, kind: u32, epoch: Instant) {
        let at_us = u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX);
        let i = self.next.fetch_add(1) as usize; // panics below if a worker logs too much
        self.worker.store(i, worker);
        self.pid.store(i, pid);
        self.kind.store(i, kind);
        self.at_us.store(i, at_us);
    }

    /// The events recorded so far, in slot order.
    fn events(&self) -> Vec<Event> {
        let recorded = (self.next.load() as usize).min(self.worker.len());
        (0..recorded)
            .map(|i| Event {
                worker: self.worker.load(i),
                pid: self.pid.load(i),
                kind: self.kind.load(i),
                at: Duration::from_micros(self.at_us.load(i)),
            })
            .collect()
    }
}

/// Prints the log and each worker's interval; returns how many pairs of workers' running..done
/// intervals overlapped.
fn report(events: &[Event]) -> Result<usize, Box<dyn Error>> {
    let order: Vec<String> = events
        .iter()
        .map(|e| format!("{} {}", e.worker, kind_name(e.kind)))
        .collect();
    println!("  shared log, in recording order: {}", order.join(", "));

    let mut intervals = Vec::new();
    for w in 0..WORKERS {
        let find = |kind| {
            let mut found = events.iter().filter(|e| e.worker == w && e.kind == kind);
            match (found.next(), found.next()) {
                (Some(e), None) => Ok(e),
                _ => Err(format!(
                    "worker {w} did not log exactly one \"{}\"",
                    kind_name(kind)
                )),
            }
        };
        let (running, done) = (find(RUNNING)?, find(DONE)?);
        println!(
            "  worker {w} (pid {}): running from {:6.1} ms to {:6.1} ms",
            running.pid,
            ms(running.at),
            ms(done.at)
        );
        intervals.push((running.at, done.at));
    }

    let mut overlaps = 0;
    for (i, a) in intervals.iter().enumerate() {
        for b in &intervals[i + 1..] {
            if a.0 < b.1 && b.0 < a.1 {
                overlaps += 1;
            }
        }
    }
    Ok(overlaps)
}

/// Whether the log reads `n running, n done, m running, m done, ...`.
fn pairs_adjacent(events: &[Event]) -> bool {
    events.len() == 2 * WORKERS as usize
        && events.chunks(2).all(|pair| {
            pair[0].kind == RUNNING && pair[1].kind == DONE && pair[0].worker == pair[1].worker
        })
}

fn pairs() -> u32 {
    WORKERS * (WORKERS - 1) / 2
}

fn kind_name(kind: u32) -> &'static str {
    if kind == RUNNING { "running" } else { "done" }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A sleep of 50..550 ms, standing in for Python's `time.sleep(random.random())`: a
/// splitmix64 hash of the pid and the clock, since examples carry no `rand` dependency.
fn random_sleep() -> Duration {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()));
    let mut x = (u64::from(process::id()) << 32) ^ nanos;
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    Duration::from_millis(50 + x % 500)
}
