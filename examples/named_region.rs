//! Two unrelated processes share a region by name: `Region::open_or_create` and
//! `Region::remove`.
//!
//! Forking is not the only way to share a region. This program starts a second copy of itself
//! with `std::process::Command` (a new program image, not a fork: it inherits nothing from
//! the parent), and the two find the same region through its name, a file in `/dev/shm`:
//!
//! 1. the parent calls `Region::open_or_create(name)`, which creates the region;
//! 2. the child calls `Region::open_or_create(name)` too, which opens that same region (an
//!    existing region keeps its size and objects; the child's `0` for the counter is ignored);
//! 3. once the child has it open, the parent calls `Region::remove(name)`: the name is gone
//!    (a later `Region::open` fails, and nothing is left behind in `/dev/shm` whatever happens
//!    next), but both processes keep using the region they have mapped;
//! 4. both add 1 to the same `Value<u64>` under its lock, 1000000 times each, and the parent
//!    checks the total.
//!
//! Run it with `cargo run --release --example named_region`.
#![forbid(unsafe_code)]

use shmsync::{RawValue, Region, Value};
use std::env;
use std::error::Error;
use std::process::{self, Child, Command};
use std::thread;
use std::time::{Duration, Instant};

const SIZE: usize = 1 << 16;
const INCREMENTS: u64 = 1_000_000;
/// The values of the "child ready" word: 0, then the child's "opened", then the parent's "go".
const OPENED: u32 = 1;
const GO: u32 = 2;

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = env::args().skip(1).collect();
    match args.as_slice() {
        [] => parent(),
        [role, name] if role == "child" => child(name),
        _ => Err("usage: named_region (it runs `named_region child NAME` itself)".into()),
    }
}

fn parent() -> Result<(), Box<dyn Error>> {
    // A name of our own for this run; a bare name (no `/`) means a file in /dev/shm.
    let name = format!("shmsync-example-{}", process::id());
    let region = Region::open_or_create(&name, SIZE)?;
    // Until the name is removed below, remove it on any early return too.
    let mut cleanup = RemoveOnDrop(Some(&name));
    let path = region.path().ok_or("a named region has a path")?;
    println!("parent (pid {}): created {}", process::id(), path.display());
    let counter = region.value::<u64>("counter", 0)?;
    let ready = region.raw_value::<u32>("child ready", 0)?;

    let mut child = Command::new(env::current_exe()?)
        .args(["child", &name])
        .spawn()?;
    let outcome = share_with(&mut child, &mut cleanup, &counter, &ready);
    if outcome.is_err() {
        // Leave no child behind waiting for a parent that gave up.
        let _ = child.kill();
        let _ = child.wait();
    }
    outcome?;

    let total = counter.load()?;
    let expected = 2 * INCREMENTS;
    println!(
        "parent: counter = {total} (expected {expected}: {INCREMENTS} from each process); \
         objects in the region: {}",
        region
            .objects()?
            .iter()
            .map(|o| o.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if total != expected {
        return Err("increments were lost".into());
    }
    Ok(())
}

/// The parent's side once the child is started: wait until the child has the region open,
/// remove the name, then increment alongside the child and wait for it to succeed.
fn share_with(
    child: &mut Child,
    cleanup: &mut RemoveOnDrop<'_>,
    counter: &Value<u64>,
    ready: &RawValue<u32>,
) -> Result<(), Box<dyn Error>> {
    while ready.load() == 0 {
        if let Some(status) = child.try_wait()? {
            return Err(format!("the child exited before opening the region: {status}").into());
        }
        thread::sleep(Duration::from_millis(1));
    }

    let name = cleanup.0.take().ok_or("the name was already removed")?;
    Region::remove(name)?;
    let reopen = match Region::open(name) {
        Ok(_) => "it still opens".to_string(),
        Err(e) => e.to_string(),
    };
    println!("parent: removed the name; Region::open now says: {reopen}");

    ready.store(GO); // both increment now
    increment(counter)?;
    let status = child.wait()?;
    if !status.success() {
        return Err(format!("the child failed: {status}").into());
    }
    Ok(())
}

fn child(name: &str) -> Result<(), Box<dyn Error>> {
    // The same call as the parent's: the region exists, so this opens it.
    let region = Region::open_or_create(name, SIZE)?;
    let counter = region.value::<u64>("counter", 0)?; // exists: keeps its value
    let ready = region.raw_value::<u32>("child ready", 0)?;
    let path = region.path().ok_or("a named region has a path")?;
    println!(
        "child  (pid {}): opened {} ({} bytes), counter = {}",
        process::id(),
        path.display(),
        region.size(),
        counter.load()?
    );
    ready.store(OPENED);
    // Wait for the parent's go, but not forever: it may have failed.
    let deadline = Instant::now() + Duration::from_secs(10);
    while ready.load() != GO {
        if Instant::now() > deadline {
            return Err("no go from the parent in 10 s".into());
        }
        thread::sleep(Duration::from_millis(1));
    }
    increment(&counter)?;
    println!("child  (pid {}): done", process::id());
    Ok(())
}

/// Adds 1 to `counter`, under its lock, `INCREMENTS` times.
fn increment(counter: &Value<u64>) -> shmsync::Result<()> {
    for _ in 0..INCREMENTS {
        *counter.lock()? += 1;
    }
    Ok(())
}

/// Removes the region's name when dropped, unless disarmed by setting it to `None`.
struct RemoveOnDrop<'a>(Option<&'a str>);

impl Drop for RemoveOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(name) = self.0 {
            let _ = Region::remove(name);
        }
    }
}
