//! A process to look at with the `shmsync` command: opens (or creates) the region at the path
//! given, takes a lock, a semaphore permit and a read lock, sets a counter, starts a thread
//! that waits for another lock, prints its pid, and sleeps until killed.
//!
//! ```sh
//! cargo run --release --example hold_locks -- /dev/shm/demo &
//! cargo run --release --bin shmsync -- inspect demo
//! ```

#![forbid(unsafe_code)]

use shmsync::Region;
use std::time::Duration;

fn main() -> Result<(), shmsync::Error> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "demo".to_string());
    let region = Region::open_or_create(&path, 1 << 20)?;
    let printer = region.lock("printer")?;
    let _printing = printer.lock()?;
    let jobs = region.value::<u64>("jobs", 0)?;
    jobs.store(42)?;
    let slots = region.semaphore("slots", 3)?;
    let _slot = slots.permit()?;
    let config = region.rwlock::<u32>("config", 7)?;
    let _reading = config.read()?;
    region.event("ready")?.set();
    // A thread that waits for a lock this process holds through another handle.
    let spool = region.lock("spool")?;
    let _spooling = spool.lock()?;
    let waiter = region.lock("spool")?;
    std::thread::spawn(move || drop(waiter.lock()));
    println!("{}", std::process::id());
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
