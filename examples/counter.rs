//! The shared counter: N processes each add 1 to one shared `u64`, M times, three ways.
//!
//! 1. `Value<u64>`, each increment under the value's own lock, Python's
//!    `with v.get_lock(): v.value += 1`. No update is lost.
//! 2. `RawValue<u64>` read and then written back with no lock, Python's `v.value += 1` on a
//!    `Value(..., lock=False)`. Increments that race are lost, and the example counts them.
//! 3. `RawValue::fetch_add`: one lock-free atomic instruction per increment. No update is lost.
//!
//! For each it prints the expected total (N·M), the total the parent reads back from shared
//! memory, how many updates were lost, and the time per increment: the wall time from the
//! moment every child is released (all are forked and waiting first) until the last one has
//! exited, divided by N·M (so it includes waking and reaping the children, a fixed cost that
//! only shows when M is small). Every number printed is measured on this run, and they vary
//! from run to run: how many updates the racy version loses depends on how often the
//! processes actually run at the same moment, or are preempted between a read and its write.
//!
//! The region is anonymous (a sealed memfd: nothing to set up, no path, nothing left behind)
//! and the children are forked after it is created, so they share it.
//!
//! Run it with `cargo run --release --example counter`, or choose the numbers:
//! `cargo run --release --example counter -- [processes] [increments]` (defaults: 4 processes,
//! 1000000 increments each).
#![forbid(unsafe_code)]

mod support;
use support::wait_all;

use shmsync::{Process, Region};
use std::env;
use std::error::Error;
use std::hint;
use std::process;
use std::thread;
use std::time::{Duration, Instant};

const USAGE: &str = "\
usage: counter [processes] [increments]
  processes   how many processes to fork, 1 to 1024 (default 4)
  increments  how many times each process adds 1, at least 1 (default 1000000)";

const MAX_PROCESSES: u64 = 1024;

fn main() -> Result<(), Box<dyn Error>> {
    let (processes, increments) = match parse_args(env::args().skip(1).collect()) {
        Ok(Some(numbers)) => numbers,
        Ok(None) => {
            println!("{USAGE}");
            return Ok(());
        }
        Err(message) => {
            eprintln!("counter: {message}\n{USAGE}");
            process::exit(2);
        }
    };
    // parse_args checked that this does not overflow.
    let expected = processes as u64 * increments;
    let cpus = thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "{processes} {} x {increments} increments = {expected} expected ({cpus} CPUs available)",
        if processes == 1 {
            "process"
        } else {
            "processes"
        }
    );

    let region = Region::anonymous(1 << 16)?;

    // 1. Under the lock.
    let counter = region.value::<u64>("locked", 0)?;
    let elapsed = timed_run(&region, "run1", processes, || {
        for _ in 0..increments {
            // The guard holds the value's lock across the read, the add and the write.
            *counter.lock()? += 1;
        }
        Ok(())
    })?;
    let locked = counter.load()?;
    println!();
    println!("Value<u64>, each increment under its lock (Python: with v.get_lock(): v.value += 1)");
    print_result(expected, locked, elapsed);

    // 2. No lock, read then write: the lost update, on purpose.
    let racy = region.raw_value::<u64>("racy", 0)?;
    let elapsed = timed_run(&region, "run2", processes, || {
        for _ in 0..increments {
            // This is Python's `v.value += 1` on a `Value(..., lock=False)`, racy on purpose:
            // read the value, add one, write it back. Each step is atomic on its own, but the
            // pair is not: between our read and our write another process may write its own
            // increment, which our write then overwrites: lost. (`black_box` keeps the two
            // steps apart in the machine code, as separate instructions.)
            let v = hint::black_box(racy.load());
            racy.store(v + 1);
        }
        Ok(())
    })?;
    let unlocked = racy.load();
    println!();
    println!("RawValue<u64>, read then write, no lock (Python: v.value += 1 with lock=False)");
    print_result(expected, unlocked, elapsed);
    if processes == 1 {
        println!("    (a single process has nobody to race with: run it with 2 or more)");
    } else if unlocked < expected {
        println!(
            "    lost updates are expected without the lock: increments that raced were overwritten"
        );
    } else {
        println!(
            "    none lost on this run, though lost updates are expected without the lock: no \
             process happened to write between another's read and its write this time"
        );
    }

    // 3. Lock-free atomic increments.
    let atomic = region.raw_value::<u64>("atomic", 0)?;
    let elapsed = timed_run(&region, "run3", processes, || {
        for _ in 0..increments {
            atomic.fetch_add(1);
        }
        Ok(())
    })?;
    let atomic_total = atomic.load();
    println!();
    println!("RawValue<u64>::fetch_add, one lock-free atomic instruction");
    print_result(expected, atomic_total, elapsed);

    if locked != expected || atomic_total != expected {
        return Err("an increment was lost under the lock or with fetch_add".into());
    }
    Ok(())
}

/// Prints the observed total, the lost updates and the time per increment of one run.
fn print_result(expected: u64, observed: u64, elapsed: Duration) {
    let lost = i128::from(expected) - i128::from(observed);
    let percent = 100.0 * lost as f64 / expected as f64;
    println!("    total {observed} of {expected} expected: {lost} lost ({percent:.1}%)");
    println!(
        "    {elapsed:.2?} in all, {:.1} ns per increment",
        elapsed.as_secs_f64() * 1e9 / expected as f64
    );
}

/// Forks `processes` children that each run `work` once, all released at the same moment
/// once every one of them is ready; returns the time from that release until the last child
/// was reaped. `name` keeps each run's start flags apart in the region.
fn timed_run(
    region: &Region,
    name: &str,
    processes: usize,
    work: impl Fn() -> shmsync::Result<()>,
) -> Result<Duration, Box<dyn Error>> {
    let ready = region.raw_value::<u32>(&format!("{name}.ready"), 0)?;
    // An Event, not a polled flag: one set wakes every waiting child at once, so the children
    // really run together (polling with sleeps let them start, and finish, one by one).
    let go = region.event(&format!("{name}.go"))?;
    let mut children = Vec::with_capacity(processes);
    for _ in 0..processes {
        let forked = Process::fork(|| {
            ready.fetch_add(1);
            go.wait(None);
            work()
        });
        match forked {
            Ok(child) => children.push(child),
            Err(e) => {
                // Release the children already forked, so none is left waiting, and reap them.
                go.set();
                let _ = wait_all(&children);
                return Err(e.into());
            }
        }
    }
    while (ready.load() as usize) < processes {
        thread::sleep(Duration::from_micros(50));
    }
    let start = Instant::now();
    go.set();
    wait_all(&children)?;
    Ok(start.elapsed())
}

/// `Ok(Some((processes, increments)))`, `Ok(None)` for `--help`, or what is wrong.
fn parse_args(args: Vec<String>) -> Result<Option<(usize, u64)>, String> {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        return Ok(None);
    }
    if args.len() > 2 {
        return Err(format!("expected at most 2 arguments, got {}", args.len()));
    }
    let number = |i: usize, what: &str, default: u64| -> Result<u64, String> {
        let Some(arg) = args.get(i) else {
            return Ok(default);
        };
        match arg.parse::<u64>() {
            Ok(0) => Err(format!("{what} must be at least 1, got 0")),
            Ok(n) => Ok(n),
            Err(_) => Err(format!(
                "{what} must be a positive whole number, got {arg:?}"
            )),
        }
    };
    let processes = number(0, "processes", 4)?;
    let increments = number(1, "increments", 1_000_000)?;
    if processes > MAX_PROCESSES {
        return Err(format!(
            "processes must be at most {MAX_PROCESSES}, got {processes}"
        ));
    }
    if processes.checked_mul(increments).is_none() {
        return Err(format!(
            "{processes} x {increments} increments do not fit in a u64"
        ));
    }
    Ok(Some((processes as usize, increments)))
}
