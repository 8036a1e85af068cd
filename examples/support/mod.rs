//! Process helpers shared by the examples: fork a child that runs a closure, wait for
//! children, turning any failure (an error, a panic, a signal) into an error of the parent,
//! and kill a child with SIGKILL (to show what happens when a process dies holding something).
//! (Not an example itself: cargo only builds `examples/*.rs` and `examples/*/main.rs`.)

// Each example uses the helpers it needs.
#![allow(dead_code)]

use std::error::Error;
use std::io::{self, Write};
use std::panic::{self, AssertUnwindSafe};
use std::process;

/// Runs `work` in a forked child process and returns the child's pid; the child never
/// returns into the caller. It exits with status 0 if `work` returned `Ok`, 1 if it returned
/// an error (printed to stderr), 101 if it panicked.
pub fn fork_child(
    work: impl FnOnce() -> shmsync::Result<()>,
) -> Result<libc::pid_t, Box<dyn Error>> {
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

/// Waits for every child in `pids`; an error (the first one) unless all exited with status 0.
pub fn wait_children(pids: &[libc::pid_t]) -> Result<(), Box<dyn Error>> {
    let mut first_error = None;
    for &pid in pids {
        if let Err(e) = wait_child(pid) {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Waits for the child `pid`; an error unless it exited with status 0.
pub fn wait_child(pid: libc::pid_t) -> Result<(), Box<dyn Error>> {
    let status = reap(pid)?;
    if libc::WIFEXITED(status) {
        match libc::WEXITSTATUS(status) {
            0 => Ok(()),
            code => Err(format!("child {pid} failed: exit status {code}").into()),
        }
    } else if libc::WIFSIGNALED(status) {
        let signal = libc::WTERMSIG(status);
        Err(format!("child {pid} was killed by signal {signal}").into())
    } else {
        Err(format!("child {pid} ended with wait status {status:#x}").into())
    }
}

/// Kills the child `pid` with SIGKILL (a death no code of the child sees coming: no
/// destructor, no unwinding) and reaps it; an error unless SIGKILL is what ended it.
pub fn kill_child(pid: libc::pid_t) -> Result<(), Box<dyn Error>> {
    // SAFETY: kill has no memory-safety preconditions; `pid` is our unreaped child, so the
    // pid cannot have been reused by another process.
    if unsafe { libc::kill(pid, libc::SIGKILL) } == -1 {
        return Err(format!("kill({pid}): {}", io::Error::last_os_error()).into());
    }
    let status = reap(pid)?;
    if libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL {
        Ok(())
    } else {
        Err(format!("child {pid} was not killed by SIGKILL: wait status {status:#x}").into())
    }
}

/// Waits for the child `pid` to end and returns its wait status.
fn reap(pid: libc::pid_t) -> Result<libc::c_int, Box<dyn Error>> {
    let mut status = 0;
    // SAFETY: `status` is a valid `c_int` for waitpid to write into.
    while unsafe { libc::waitpid(pid, &mut status, 0) } == -1 {
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(format!("waitpid({pid}): {err}").into());
        }
    }
    Ok(status)
}
