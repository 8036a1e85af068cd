//! A Rust process sharing a region with Python processes (the `shmsync` Python module,
//! `python/`): `python_peer PATH N` opens the named region at PATH and adds 1, N times, to the
//! Python `Value('Q')` called "counter", under its lock, as Python's
//! `with v.get_lock(): v.value += 1` does.
//!
//! The Python module stores a `Value(typecode)` as a `RawArray` of one unsigned integer of the
//! typecode's size called by the value's name, guarded by the `RLock` called `name + ".lock"`:
//! a Rust program opens the same two objects. `python/tests/test_shmsync.py` runs this example
//! beside Python processes and checks that no increment is lost.
#![forbid(unsafe_code)]

use shmsync::Region;
use std::error::Error;

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(path), Some(n)) = (args.next(), args.next()) else {
        return Err("usage: python_peer PATH N".into());
    };
    let n: u64 = n.parse()?;
    let region = Region::open(&path)?;
    let lock = region.rlock("counter.lock")?;
    let counter = region.raw_array::<u64>("counter", &[0])?;
    for _ in 0..n {
        let _held = lock.lock()?;
        counter.store(0, counter.load(0) + 1);
    }
    println!("python_peer: added {n}; counter = {}", counter.load(0));
    Ok(())
}
