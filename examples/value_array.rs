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
#![warn(clippy::undocumented_unsafe_blocks)]

use shmsync::{Array, Region, Value};
use std::error::Error;
use std::io::{self, Write};
use std::panic::{self, AssertUnwindSafe};
use std::process;

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

    let child = fork_child(|| f(&num, &arr))?; // p.start()
    wait_child(child)?; // p.join()

    println!("{}", num.load()?); // print(num.value)
    println!("{:?}", arr.to_vec()?); // print(arr[:])
    Ok(())
}

/// Runs `work` in a forked child process and returns the child's pid; the child never
/// returns into the caller. It exits with status 0 if `work` returned `Ok`, 1 if it returned
/// an error (printed to stderr), 101 if it panicked.
fn fork_child(work: impl FnOnce() -> shmsync::Result<()>) -> Result<libc::pid_t, Box<dyn Error>> {
    // Whatever is still buffered would otherwise be written twice, once by each process.
    io::stdout().flush()?;
    // SAFETY: this program has a single thread when it forks, so the child's copy of every
    // lock and of the allocator is consistent; the child runs `work` and then `_exit`s.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error().into()),
        0 => {
            let code = match panic::catch_unwind(AssertUnwindSafe(work)) {
                Ok(Ok(())) => 0,
                Ok(Err(e)) => {
                    eprintln!("child {}: {e}", process::id());
                    1
                }
                Err(_) => 101, // the panic hook has already printed the message
            };
            let _ = io::stdout().flush();
            // SAFETY: `_exit` ends the child at once, without running the exit handlers and
            // destructors that belong to the parent's copy of the program.
            unsafe { libc::_exit(code) }
        }
        pid => Ok(pid),
    }
}

/// Waits for the child `pid`; an error unless it exited with status 0.
fn wait_child(pid: libc::pid_t) -> Result<(), Box<dyn Error>> {
    let mut status = 0;
    // SAFETY: `status` is a valid `c_int` for waitpid to write into.
    while unsafe { libc::waitpid(pid, &mut status, 0) } == -1 {
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(format!("waitpid({pid}): {err}").into());
        }
    }
    if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        Ok(())
    } else if libc::WIFEXITED(status) {
        Err(format!(
            "child {pid} failed: exit status {}",
            libc::WEXITSTATUS(status)
        )
        .into())
    } else if libc::WIFSIGNALED(status) {
        Err(format!(
            "child {pid} was killed by signal {}",
            libc::WTERMSIG(status)
        )
        .into())
    } else {
        Err(format!("child {pid} ended with wait status {status:#x}").into())
    }
}
