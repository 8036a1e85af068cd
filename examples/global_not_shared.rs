//! Processes do not share globals; a shmsync `Value` is shared. A port of the tutorial's first
//! program:
//!
//! ```python
//! from multiprocessing import Process
//!
//! A = 100
//! def fun1():
//!     global A
//!     A = 300 * A
//!     print(id(A), A)
//!
//! if __name__ == '__main__':
//!     p1 = Process(target=fun1)
//!     p1.start()
//!     p1.join()
//!     print('global A ID(%d),value is %d'%(id(A), A))
//! ```
//!
//! First a forked child multiplies a plain `static` by 300: it sees 30000, but the parent
//! still sees 100, because `fork` gave the child its own copy-on-write copy of the parent's
//! memory (at the same addresses, so the printed addresses match while the values differ).
//! Then the same with a `Value<i64>` in an anonymous shmsync region created before the fork:
//! the region is a shared mapping, so the parent sees the child's 30000.
//!
//! Run it with `cargo run --example global_not_shared`.
#![forbid(unsafe_code)]

mod support;
use support::wait_all;

use shmsync::{Process, Region};
use std::error::Error;
use std::process;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};

/// The Python global `A = 100`. (A Rust global that can change must be an atomic or sit behind
/// a mutex; either way it is private to each process.)
static A: AtomicI64 = AtomicI64::new(100);

fn main() -> Result<(), Box<dyn Error>> {
    println!("A plain static, changed by a child process:");
    let child = Process::fork(|| -> shmsync::Result<()> {
        A.store(300 * A.load(Relaxed), Relaxed); // A = 300 * A
        println!(
            "  child  (pid {}): A = {} at address {:p}",
            process::id(),
            A.load(Relaxed),
            &A
        );
        Ok(())
    })?;
    wait_all(&[child])?;
    let a = A.load(Relaxed);
    println!(
        "  parent (pid {}): A = {a} at address {:p}: {}",
        process::id(),
        &A,
        sees(a)
    );

    println!();
    println!("A shmsync Value<i64> in an anonymous region, changed by a child process:");
    // Created before the fork: the child inherits the shared mapping itself, not a copy.
    let region = Region::anonymous(1 << 16)?;
    let shared_a = region.value::<i64>("A", 100)?;
    let child = Process::fork(|| -> shmsync::Result<()> {
        *shared_a.lock()? *= 300; // with A.get_lock(): A.value = 300 * A.value
        println!("  child  (pid {}): A = {}", process::id(), shared_a.load()?);
        Ok(())
    })?;
    wait_all(&[child])?;
    let a = shared_a.load()?;
    println!("  parent (pid {}): A = {a}: {}", process::id(), sees(a));
    Ok(())
}

/// What the parent's reading says about the child's write of 30000.
fn sees(a: i64) -> &'static str {
    if a == 30000 {
        "the parent sees the child's write"
    } else {
        "the parent does not see the child's write"
    }
}
