//! A `Semaphore` of `PERMITS` permits limits how many of `WORKERS` processes use a resource at
//! once (a pool of connections, say).
//!
//! The Python it ports:
//!
//! ```python
//! def worker(sem, go, pool):
//!     go.wait()                   # start together
//!     for _ in range(USES):
//!         with sem:               # at most PERMITS workers in here
//!             conn = pool.take()  # a free connection: there is always one
//!             time.sleep(0.001)
//!             pool.give(conn)
//!
//! sem, go = Semaphore(PERMITS), Event()
//! workers = [Process(target=worker, args=(sem, go, pool)) for _ in range(WORKERS)]
//! for w in workers: w.start()
//! go.set()
//! ```
//!
//! Each worker takes its permit as a `Permit` guard (`permit()`, or `try_permit()` first, to
//! count how often a worker had to wait), then claims one of the `PERMITS` connection slots
//! with a compare-exchange: if the semaphore ever let in one worker too many, that worker would
//! find no free slot. A shared counter records how many workers were inside at each entry, and
//! the most ever seen, which must not exceed `PERMITS`. An `Event` starts the workers together.
//!
//! Then two workers are killed (SIGKILL) while holding a permit, to show the difference
//! between the two ways of taking one:
//!
//! - a `Permit` guard is recorded in the semaphore's hold table: a process that waits for a
//!   permit finds the dead holder within `DEATH_CHECK_INTERVAL` and gives its permit back;
//! - a permit taken with Python's `acquire()` belongs to nobody: it is lost with its taker.
//!
//! Run it with `cargo run --release --example semaphore_pool`.
#![forbid(unsafe_code)]

mod support;
use support::{kill_and_reap, wait_all};

use shmsync::{Error as ShmError, Event, Process, RawArray, RawValue, Region, Semaphore};
use std::error::Error;
use std::process;
use std::thread;
use std::time::{Duration, Instant};

const WORKERS: usize = 8;
const PERMITS: u32 = 3;
const USES: u64 = 25; // per worker
const HOLD: Duration = Duration::from_millis(1);

/// The semaphore, the start signal, the resource and the measurements, in the region.
struct Pool {
    sem: Semaphore,
    go: Event,
    /// The resource: `PERMITS` connection slots, each 0 (free) or the pid using it.
    connections: RawArray<u32>,
    /// Workers holding a permit now, and the most seen at once.
    inside: RawValue<u32>,
    most_inside: RawValue<u32>,
    /// `entries[n]`: entries that made `n` workers inside.
    entries: RawArray<u64>,
    /// Entries that found every connection taken (must stay 0).
    no_connection: RawValue<u64>,
    /// Per worker: uses that had to wait for a permit, and the time spent waiting.
    waited: RawArray<u64>,
    waited_us: RawArray<u64>,
    /// Per worker: time spent holding a permit.
    inside_us: RawArray<u64>,
}

impl Pool {
    fn new(region: &Region) -> shmsync::Result<Pool> {
        Ok(Pool {
            sem: region.semaphore("pool", PERMITS)?,
            go: region.event("go")?,
            connections: region.raw_array("connections", &[0; PERMITS as usize])?,
            inside: region.raw_value("inside", 0)?,
            most_inside: region.raw_value("most_inside", 0)?,
            entries: region.raw_array("entries", &[0; WORKERS + 1])?,
            no_connection: region.raw_value("no_connection", 0)?,
            waited: region.raw_array("waited", &[0; WORKERS])?,
            waited_us: region.raw_array("waited_us", &[0; WORKERS])?,
            inside_us: region.raw_array("inside_us", &[0; WORKERS])?,
        })
    }
}

fn worker(pool: &Pool, w: usize) -> shmsync::Result<()> {
    let pid = process::id();
    pool.go.wait(None);
    let (mut waited, mut waited_for, mut inside_for) = (0, Duration::ZERO, Duration::ZERO);
    for _ in 0..USES {
        let asked = Instant::now();
        let permit = match pool.sem.try_permit() {
            Ok(permit) => permit,
            Err(ShmError::WouldBlock) => {
                waited += 1;
                pool.sem.permit()?
            }
            Err(e) => return Err(e),
        };
        let entered = Instant::now();
        waited_for += entered - asked;

        let now = pool.inside.fetch_add(1) + 1;
        let mut most = pool.most_inside.load();
        while now > most {
            match pool.most_inside.compare_exchange(most, now) {
                Ok(_) => break,
                Err(actual) => most = actual,
            }
        }
        pool.entries.fetch_add(now as usize, 1);
        let connection = (0..pool.connections.len())
            .find(|&c| pool.connections.compare_exchange(c, 0, pid).is_ok());
        if connection.is_none() {
            pool.no_connection.fetch_add(1);
        }

        thread::sleep(HOLD); // use the connection

        if let Some(c) = connection {
            pool.connections.store(c, 0);
        }
        pool.inside.fetch_sub(1);
        inside_for += entered.elapsed();
        drop(permit); // the permit goes back to the pool
    }
    pool.waited.store(w, waited);
    pool.waited_us.store(w, waited_for.as_micros() as u64);
    pool.inside_us.store(w, inside_for.as_micros() as u64);
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let region = Region::anonymous(1 << 20)?;
    let pool = Pool::new(&region)?;
    println!("{WORKERS} workers x {USES} uses of {HOLD:?}, a semaphore of {PERMITS} permits");

    let mut children = Vec::new();
    for w in 0..WORKERS {
        children.push(Process::fork(|| worker(&pool, w))?);
    }
    let start = Instant::now();
    pool.go.set(); // every worker is forked: start them together
    wait_all(&children)?;
    let elapsed = start.elapsed();

    let most = pool.most_inside.load();
    let waited = pool.waited.to_vec();
    let waited_ms = pool.waited_us.to_vec().iter().sum::<u64>() as f64 / 1e3;
    let inside_ms = pool.inside_us.to_vec().iter().sum::<u64>() as f64 / 1e3;
    println!(
        "{} uses in {elapsed:.2?}: {inside_ms:.1} ms holding a permit in all, {:.2} workers \
         inside on average",
        WORKERS as u64 * USES,
        inside_ms / (elapsed.as_secs_f64() * 1e3)
    );
    println!(
        "workers inside at each entry (1 to {WORKERS}): {:?}",
        &pool.entries.to_vec()[1..]
    );
    println!("most workers inside at once: {most} (permits: {PERMITS})");
    println!(
        "uses that waited for a permit, per worker: {waited:?}, {waited_ms:.1} ms waited in all"
    );
    println!(
        "entries that found no free connection: {}",
        pool.no_connection.load()
    );
    println!("permits available after the run: {}", pool.sem.value());
    if most > PERMITS || pool.no_connection.load() != 0 || pool.sem.value() != PERMITS {
        return Err("the semaphore let too many workers in, or lost a permit".into());
    }
    println!("the semaphore never let more than {PERMITS} workers in");

    println!();
    println!("A worker killed while holding a permit() guard:");
    let holding = region.event("holding.permit")?;
    let victim = Process::fork(|| -> shmsync::Result<()> {
        let _permit = pool.sem.permit()?;
        holding.set();
        loop {
            thread::sleep(Duration::from_secs(60)); // until killed, permit in hand
        }
    })?;
    let got = killed_while_holding(&pool.sem, &holding, victim)?;
    if got != PERMITS {
        return Err("the killed worker's permit was not given back".into());
    }
    println!("  its permit was given back: all {PERMITS} permits taken again");

    println!();
    println!("A worker killed while holding a permit taken with acquire():");
    let holding = region.event("holding.acquire")?;
    let victim = Process::fork(|| -> () {
        pool.sem.acquire(true, None);
        holding.set();
        loop {
            thread::sleep(Duration::from_secs(60));
        }
    })?;
    let got = killed_while_holding(&pool.sem, &holding, victim)?;
    if got != PERMITS - 1 {
        return Err("expected the permit of acquire() to be lost with its taker".into());
    }
    println!(
        "  its permit is lost (nobody owns a permit of acquire(), as in Python): {got} of \
         {PERMITS} permits left"
    );
    Ok(())
}

/// Waits until `victim` says it holds a permit, kills it, then takes as many permits as it
/// can (waiting up to 300 ms for each); prints what it saw and returns how many it got.
fn killed_while_holding(
    sem: &Semaphore,
    holding: &Event,
    victim: Process,
) -> Result<u32, Box<dyn Error>> {
    let pid = victim.pid();
    if !holding.wait(Some(Duration::from_secs(5))) {
        let _ = kill_and_reap(&victim);
        return Err("the victim never took its permit".into());
    }
    kill_and_reap(&victim)?;
    println!(
        "  killed pid {pid}; permits available right after: {}",
        sem.value()
    );
    let mut permits = Vec::new();
    let mut times = Vec::new();
    loop {
        let asked = Instant::now();
        match sem.try_permit_for(Duration::from_millis(300)) {
            Ok(permit) => {
                times.push(format!("{:.1?}", asked.elapsed()));
                permits.push(permit);
            }
            Err(ShmError::WouldBlock) => {
                times.push(format!("none in {:.1?}", asked.elapsed()));
                break;
            }
            Err(e) => return Err(e.into()),
        }
    }
    println!(
        "  took {} permits; waited for each: {}",
        permits.len(),
        times.join(", ")
    );
    Ok(permits.len() as u32)
}
