//! `Value` and `Array` in shared memory: a port of the tutorial's third program.
//!
//! ```python
//! from multiprocessing import Process, Value, Array
//! def f(n, a):
//!     n.value = 3.1415927
//!     for i in range(len(a)):
//!         a[i] = -a[i]
//!
//! if __name__ == '__main__':
//!     num = Value('d', 0.0)
//!     arr = Array('i', range(10))
//!     p = Process(target=f, args=(num, arr))
//!     p.start()
//!     p.join()
//!     print(num.value)
//!     print(arr[:])
//! ```
//!
//! A forked child sets a `Value<f64>` and negates every element of an `Array<i32>`; the parent
//! waits for it, then prints what it reads back from the shared memory:
//!
//! ```text
//! 3.1415927
//! [0, -1, -2, -3, -4, -5, -6, -7, -8, -9]
//! ```
//!
//! Run it with `cargo run --example value_array`.
#![forbid(unsafe_code)]

mod support;
use support::wait_all;

use shmsync::{Array, Process, Region, Value};
use std::error::Error;

/// The child's work, as in the Python `f(n, a)`.
// The tutorial's value, not an attempt at π.
#[allow(clippy::approx_constant)]
fn f(n: &Value<f64>, a: &Array<i32>) -> shmsync::Result<()> {
    n.store(3.1415927)?; // n.value = 3.1415927
    for x in a.lock()?.iter_mut() {
        *x = -*x; // a[i] = -a[i], all under the array's one lock
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    // An anonymous region (a sealed memfd): no name, no file to clean up. Children forked
    // after this line share it.
    let region = Region::anonymous(1 << 16)?;
    let num = region.value::<f64>("num", 0.0)?; // Value('d', 0.0)
    let init: Vec<i32> = (0..10).collect();
    let arr = region.array::<i32>("arr", &init)?; // Array('i', range(10))

    let child = Process::fork(|| f(&num, &arr))?; // p.start()
    wait_all(&[child])?; // p.join()

    println!("{}", num.load()?); // print(num.value)
    println!("{:?}", arr.to_vec()?); // print(arr[:])
    Ok(())
}
