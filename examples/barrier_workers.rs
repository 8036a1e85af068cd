//! Workers compute in phases and meet at a `Barrier` after each one.
//!
//! The Python it ports:
//!
//! ```python
//! def worker(i, barrier, cells):
//!     for r in range(ROUNDS):
//!         old, new = cells[r % 2], cells[(r + 1) % 2]
//!         new[i] = step(old[i], old[(i + 1) % WORKERS], r)
//!         time.sleep(uneven(i, r))    # some workers are slower in some rounds
//!         if barrier.wait() == WORKERS - 1:
//!             checksums[r] = sum(new) # the last to arrive: every cell of round r is written
//! ```
//!
//! The cells are double-buffered: round `r` reads row `r % 2` and writes row `(r + 1) % 2`, so
//! a worker must not start round `r + 1` (which overwrites row `r % 2`) before every worker has
//! finished reading it in round `r`, nor read row `(r + 1) % 2` before every worker has written
//! it: that is what the barrier guarantees. Workers sleep unevenly (0 to 3 ms, the slowest one
//! changing every round), so they arrive in a different order each round.
//!
//! `wait` returns each party's arrival index (0 for the first, `WORKERS - 1` for the last), as
//! Python's does. The last party of each round reads the whole new row (every other worker
//! wrote its cell before arriving) and records a checksum; every party records its index. The
//! parent computes the same rounds in one process and checks every round's checksum and the
//! final cells, and that each round handed out every index exactly once.
//!
//! Then one worker dies before it arrives. A barrier cannot tell a dead party from a late one,
//! so only a timeout helps: the others wait with one, and the first to time out breaks the
//! barrier for all (Python's `BrokenBarrierError`). `reset` makes it usable again.
//!
//! Run it with `cargo run --release --example barrier_workers`.
#![forbid(unsafe_code)]

mod support;
use support::{kill_and_reap, wait_all};

use shmsync::{Barrier, BrokenBarrier, Process, RawArray, Region};
use std::error::Error;
use std::thread;
use std::time::{Duration, Instant};

const WORKERS: usize = 4;
const ROUNDS: usize = 50;

/// One cell's next value from its own and its right neighbour's (wrapping arithmetic).
fn step(own: u64, right: u64, round: usize) -> u64 {
    own.wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(right ^ (round as u64 + 1))
        .rotate_left(17)
}

/// How long worker `i` works in round `r`: 0 to `WORKERS - 1` ms, a different worker being
/// the slowest each round.
fn uneven(i: usize, r: usize) -> Duration {
    Duration::from_millis(((i + WORKERS - r % WORKERS) % WORKERS) as u64)
}

/// The checksum of a row.
fn checksum(row: &[u64]) -> u64 {
    row.iter().fold(0, |acc: u64, &x| acc.rotate_left(5) ^ x)
}

/// What the workers share.
struct Shared {
    barrier: Barrier,
    /// Two rows of `WORKERS` cells.
    cells: RawArray<u64>,
    /// Per round: the checksum of the row written in it, recorded by its last party.
    checksums: RawArray<u64>,
    /// `indexes[r * WORKERS + k]`: parties that got arrival index `k` in round `r`.
    indexes: RawArray<u32>,
    /// Per worker: rounds in which it arrived last.
    last: RawArray<u32>,
}

fn initial() -> Vec<u64> {
    (0..WORKERS as u64).map(|i| i + 1).collect()
}

fn worker(s: &Shared, i: usize) -> shmsync::Result<()> {
    for r in 0..ROUNDS {
        let (old, new) = ((r % 2) * WORKERS, ((r + 1) % 2) * WORKERS);
        let value = step(
            s.cells.load(old + i),
            s.cells.load(old + (i + 1) % WORKERS),
            r,
        );
        s.cells.store(new + i, value);
        thread::sleep(uneven(i, r));
        let index = s.barrier.wait(None)? as usize;
        s.indexes.fetch_add(r * WORKERS + index, 1);
        if index == WORKERS - 1 {
            // Every other party wrote its cell before it arrived, and nobody writes this row
            // again before the next round's barrier, which needs us.
            let row: Vec<u64> = (0..WORKERS).map(|k| s.cells.load(new + k)).collect();
            s.checksums.store(r, checksum(&row));
            s.last.fetch_add(i, 1);
        }
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let region = Region::anonymous(1 << 16)?;
    let mut cells = initial();
    cells.extend(initial());
    let s = Shared {
        barrier: region.barrier("rounds", WORKERS as u32)?,
        cells: region.raw_array("cells", &cells)?,
        checksums: region.raw_array("checksums", &[0; ROUNDS])?,
        indexes: region.raw_array("indexes", &[0; ROUNDS * WORKERS])?,
        last: region.raw_array("last", &[0; WORKERS])?,
    };
    println!("{WORKERS} workers, {ROUNDS} rounds, a barrier after each");

    let start = Instant::now();
    let mut children = Vec::new();
    for i in 0..WORKERS {
        children.push(Process::fork(|| worker(&s, i))?);
    }
    wait_all(&children)?;
    let elapsed = start.elapsed();

    // The same rounds in one process.
    let mut row = initial();
    let mut expected = Vec::new();
    for r in 0..ROUNDS {
        row = (0..WORKERS)
            .map(|i| step(row[i], row[(i + 1) % WORKERS], r))
            .collect();
        expected.push(checksum(&row));
    }
    let checksums = s.checksums.to_vec();
    let matching = (0..ROUNDS).filter(|&r| checksums[r] == expected[r]).count();
    let final_row = &s.cells.to_vec()[(ROUNDS % 2) * WORKERS..][..WORKERS];
    let indexes = s.indexes.to_vec();
    let each_index_once = indexes.iter().filter(|&&n| n == 1).count() / WORKERS;

    println!(
        "{ROUNDS} rounds in {elapsed:.2?} ({:.2?} per round)",
        elapsed / ROUNDS as u32
    );
    println!("rounds whose checksum matches a one-process run: {matching} of {ROUNDS}");
    let cells_match = final_row == row.as_slice();
    println!("final cells match a one-process run: {cells_match}");
    println!(
        "rounds that handed out each arrival index 0..{WORKERS} once: {each_index_once} of {ROUNDS}"
    );
    println!(
        "rounds in which each worker arrived last: {:?}",
        s.last.to_vec()
    );
    if matching != ROUNDS || !cells_match || each_index_once != ROUNDS {
        return Err("a worker ran ahead of the barrier".into());
    }
    println!("every round saw every cell of the round before");

    println!();
    println!("A worker killed before it arrives; the others wait with a 200 ms timeout:");
    let barrier = region.barrier("dead-party", WORKERS as u32)?;
    let outcome = region.raw_array::<u32>("outcome", &[0; WORKERS])?; // 1 broken, 2 passed
    let waited_us = region.raw_array::<u64>("waited_us", &[0; WORKERS])?;
    let victim = Process::fork(|| -> () {
        loop {
            thread::sleep(Duration::from_secs(60)); // never arrives
        }
    })?;
    let start = Instant::now();
    let mut children = Vec::new();
    for i in 1..WORKERS {
        children.push(Process::fork(|| {
            let waited = Instant::now();
            let result = barrier.wait(Some(Duration::from_millis(200)));
            waited_us.store(i, waited.elapsed().as_micros() as u64);
            outcome.store(i, if result == Err(BrokenBarrier) { 1 } else { 2 });
        })?);
    }
    kill_and_reap(&victim)?;
    wait_all(&children)?;
    let elapsed = start.elapsed();
    let broken = (1..WORKERS).filter(|&i| outcome.load(i) == 1).count();
    let waited: Vec<String> = (1..WORKERS)
        .map(|i| format!("{:.1} ms", waited_us.load(i) as f64 / 1e3))
        .collect();
    println!(
        "  {broken} of {} waiters got BrokenBarrier, after {} (all done in {elapsed:.2?})",
        WORKERS - 1,
        waited.join(", ")
    );
    println!("  broken afterwards: {}", barrier.broken());
    barrier.reset();
    println!(
        "  after reset(): broken: {}, waiting: {}",
        barrier.broken(),
        barrier.n_waiting()
    );
    if broken != WORKERS - 1 || barrier.broken() {
        return Err("the barrier did not break, or reset did not mend it".into());
    }
    Ok(())
}
