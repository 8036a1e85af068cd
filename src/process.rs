//! [`Process`]: Python's `multiprocessing.Process` in safe Rust, with Python's two start
//! methods on Linux.
//!
//! - [`Process::fork`] runs a closure in a forked child. Safe to call: it refuses, with
//!   [`Error::Threaded`], when the calling process has more than one thread (counted by the
//!   kernel), because a forked child of a threaded program may deadlock on a lock another
//!   thread held (the allocator's, stdout's). Python deprecates fork in threaded programs for
//!   the same reason.
//! - [`Process::spawn`] executes this program again and runs a named [`Entry`] in the new
//!   process, with arguments that travel as bytes ([`Transfer`]): region handles by name,
//!   anonymous regions as inherited memfd descriptors. It works from any program, threads or
//!   not. The program's `main` must call [`run_if_spawned`] first, with its entries.
//!
//! A child's exit is reported as Python reports it ([`Process::exitcode`]): its exit status,
//! 1 if its function returned an error or panicked (the message goes to stderr), or minus the
//! number of the signal that killed it.

use crate::error::{Error, Result};
use crate::sys;
use crate::transfer::{Decoder, Encoder, Transfer};
use std::fmt;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::panic::{self, AssertUnwindSafe};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// What a child's function returns, turned into its exit status: `()` is 0, `Ok(())` is 0,
/// `Err(e)` prints `Error: {e:?}` to stderr and is 1 (as a Rust `main` does), an `i32` is
/// itself.
pub trait Report {
    /// The exit status.
    fn report(self) -> i32;
}

impl Report for () {
    fn report(self) -> i32 {
        0
    }
}

impl Report for i32 {
    fn report(self) -> i32 {
        self
    }
}

impl<E: fmt::Debug> Report for std::result::Result<(), E> {
    fn report(self) -> i32 {
        match self {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("Error: {e:?}");
                1
            }
        }
    }
}

/// Runs `f` as a child's whole life: its report, or 1 if it panicked (the panic hook has
/// printed the message to stderr, as for any Rust panic).
fn run_to_exit_code<R: Report>(f: impl FnOnce() -> R) -> i32 {
    let code = match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result.report(),
        Err(_) => 1,
    };
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    code
}

/// A child process started by [`Process::fork`] or [`Process::spawn`].
///
/// Dropping a `Process` waits for the child to end if it is still running (as Python joins
/// its non-daemon children before exiting), so a child is always reaped and never left a
/// zombie: [`kill`](Process::kill) or [`terminate`](Process::terminate) it first to end it
/// early.
///
/// # Examples
///
/// ```
/// use shmsync::{Process, Region};
///
/// let region = Region::anonymous(1 << 16)?;
/// let total = region.value::<u64>("total", 0)?;
/// let child = Process::fork(|| total.fetch_add(5).map(drop))?;
/// child.join(None)?;
/// assert_eq!(child.exitcode(), Some(0));
/// assert_eq!(total.load()?, 5);
/// # Ok::<(), shmsync::Error>(())
/// ```
pub struct Process {
    pid: u32,
    /// The exit code once the child was reaped.
    exit: Mutex<Option<i32>>,
    /// Readable once the child has ended (`None` if the kernel has no pidfds).
    pidfd: Option<OwnedFd>,
}

impl Process {
    fn started(pid: u32) -> Process {
        Process {
            pid,
            exit: Mutex::new(None),
            pidfd: sys::pidfd(pid).ok(),
        }
    }

    /// Starts a child that runs `f` (Python's `Process(target=f).start()` with the fork start
    /// method): the child is a copy of this process, so `f` may use anything it captures,
    /// region handles included (an anonymous region is shared with the child). The child
    /// ends when `f` returns; its exit code is `f`'s [`Report`], or 1 if `f` panicked.
    ///
    /// # Errors
    ///
    /// [`Error::Threaded`] if this process has more than one thread: a forked child of a
    /// threaded program may deadlock; use [`Process::spawn`] there. [`Error::Io`] if the
    /// thread count cannot be read or `fork` fails.
    pub fn fork<R: Report>(f: impl FnOnce() -> R) -> Result<Process> {
        let threads =
            sys::thread_count().map_err(|e| Error::io("count this process's threads", None, e))?;
        if threads != 1 {
            return Err(Error::Threaded { threads });
        }
        sys::install_fork_handler();
        // Whatever is still buffered would otherwise be written twice, once by each process.
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
        // SAFETY: the process has one thread (counted just above; only this thread could have
        // started another since, and it did not), so the child's copy of every lock and of the
        // allocator is consistent.
        match unsafe { sys::fork() } {
            Err(e) => Err(Error::io("fork", None, e)),
            Ok(sys::Forked::Parent(pid)) => Ok(Process::started(pid)),
            Ok(sys::Forked::Child) => sys::exit_now(run_to_exit_code(f)),
        }
    }

    /// Starts a child that executes this program again and runs `entry` with `args` (Python's
    /// spawn start method): works from any program, threads or not. Region handles in `args`
    /// travel by name and are opened again, with every check, in the child; an anonymous
    /// region's memfd is inherited by the child only. The program's `main` must call
    /// [`run_if_spawned`] first, with a list that contains `entry`.
    ///
    /// Returns once the child has found `entry` and decoded `args` (so a bad entry or argument
    /// is an error here, not a silent exit).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use shmsync::{Entry, Lock, Process, Region};
    ///
    /// fn work((n, lock): (u32, Lock)) {
    ///     let _held = lock.lock().expect("lock");
    ///     println!("{n} : {} is running", std::process::id());
    /// }
    /// static WORK: Entry<(u32, Lock)> = Entry::new("work", work);
    ///
    /// fn main() -> Result<(), shmsync::Error> {
    ///     shmsync::run_if_spawned(&[&WORK]);
    ///     let region = Region::anonymous(1 << 16)?;
    ///     let lock = region.lock("print")?;
    ///     let children = (0..3)
    ///         .map(|n| Process::spawn(&WORK, (n, lock.clone())))
    ///         .collect::<Result<Vec<_>, _>>()?;
    ///     for child in &children {
    ///         child.join(None)?;
    ///     }
    ///     Ok(())
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Spawn`] if the child could not start `entry`: this program does not list it
    /// in [`run_if_spawned`] (or does not call it), or an argument could not be opened in the
    /// child (the message says which and why); [`Error::Io`] if the program cannot be
    /// executed; an argument's [`Transfer::encode`] error.
    pub fn spawn<A: Transfer, R: Report>(entry: &Entry<A, R>, args: A) -> Result<Process> {
        if std::env::var_os(ENTRY_VAR).is_some() && !DISPATCHED.load(Relaxed) {
            return Err(Error::Spawn {
                entry: entry.name.to_string(),
                reason: "this process was itself started by Process::spawn but its main did \
                         not call shmsync::run_if_spawned first, so spawning again would only \
                         run main again"
                    .into(),
            });
        }
        let mut out = Encoder::new();
        args.encode(&mut out)?;
        let (bytes, fds) = out.finish();
        let refuse = |reason: String| Error::Spawn {
            entry: entry.name.to_string(),
            reason,
        };
        // One environment string holds at most 128 KiB (MAX_ARG_STRLEN), hex doubles the size.
        if bytes.len() > MAX_ARGS_BYTES {
            return Err(refuse(format!(
                "the arguments take {} bytes, more than {MAX_ARGS_BYTES}: pass large data \
                 through a region object instead",
                bytes.len()
            )));
        }
        // The child's standard streams are set up before the descriptors are kept: a region
        // whose descriptor is 0, 1 or 2 (this process started with one closed) would be lost.
        if let Some(fd) = fds.iter().find(|&&fd| fd < 3) {
            return Err(refuse(format!(
                "an anonymous region's descriptor is {fd}, a standard stream's number (this \
                 process was started with it closed): it cannot be handed to a child"
            )));
        }
        let exe = std::env::current_exe().map_err(|e| Error::io("find this program", None, e))?;
        let (mut handshake, report) =
            sys::pipe().map_err(|e| Error::io("create a pipe for", None, e))?;
        let report_fd = report.as_raw_fd();
        // The running program's own file, even if its path was replaced or removed since (a
        // rebuild while it runs); argv[0] stays the program's name.
        let mut command = Command::new("/proc/self/exe");
        command
            .arg0(&exe)
            .env(ENTRY_VAR, entry.name)
            .env(ARGS_VAR, hex(&bytes))
            .env(HANDSHAKE_VAR, report_fd.to_string())
            .env(
                FDS_VAR,
                fds.iter()
                    .map(|fd| fd.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            )
            .env(PARENT_VAR, std::process::id().to_string())
            .stdin(Stdio::null());
        // SAFETY: the closure runs in the child between fork and exec and only calls fcntl,
        // which is async-signal-safe; it allocates nothing and takes no lock.
        unsafe {
            command.pre_exec(move || {
                sys::keep_across_exec(report_fd)?;
                fds.iter().try_for_each(|&fd| sys::keep_across_exec(fd))
            });
        }
        let child = command
            .spawn()
            .map_err(|e| Error::io("execute", Some(&exe), e))?;
        // `std::process::Child` does not wait on drop; this `Process` reaps the child.
        let process = Process::started(child.id());
        drop(child);
        // Our copy of the write end: the pipe reads EOF once the child closed its own.
        drop(report);
        let mut answer = Vec::new();
        let deadline = Instant::now() + SPAWN_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let _ = process.kill();
                return Err(Error::Spawn {
                    entry: entry.name.to_string(),
                    reason: format!(
                        "the child did not start the entry within {SPAWN_TIMEOUT:?}: does main \
                         call shmsync::run_if_spawned first?"
                    ),
                });
            }
            if !sys::readable_within(handshake.as_fd(), left)
                .map_err(|e| Error::io("wait for the spawned child", None, e))?
            {
                continue;
            }
            let mut chunk = [0u8; 4096];
            match handshake.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => answer.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io("read from the spawned child", None, e)),
            }
            if answer.ends_with(b"\n") {
                break;
            }
        }
        match answer.strip_prefix(b"started\n") {
            Some(_) => Ok(process),
            None => {
                // The child ends by itself after telling (or without starting); one that does
                // not within 5 s is killed, so that dropping `process` cannot wait forever.
                let code = process.join(Some(Duration::from_secs(5))).ok().flatten();
                if code.is_none() {
                    let _ = process.kill();
                }
                let reason = if answer.is_empty() {
                    format!(
                        "the child closed the report pipe (exit code {code:?}) before starting \
                         the entry: does main call shmsync::run_if_spawned first?"
                    )
                } else {
                    String::from_utf8_lossy(&answer).trim().to_string()
                };
                Err(Error::Spawn {
                    entry: entry.name.to_string(),
                    reason,
                })
            }
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Waits for the child to end, at most `timeout` (`None`: as long as it takes), and
    /// returns its exit code (see [`exitcode`](Process::exitcode)), or `None` if it is still
    /// running at the deadline (Python's `join(timeout)`, then `exitcode`).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if waiting fails (the child was reaped by other code of this program).
    pub fn join(&self, timeout: Option<Duration>) -> Result<Option<i32>> {
        // `None` inside: no limit (no timeout, or one too large for the clock).
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        loop {
            if let Some(code) = self.reap()? {
                return Ok(Some(code));
            }
            let left = match deadline {
                None => None,
                Some(d) => match d.saturating_duration_since(Instant::now()) {
                    left if left.is_zero() => return Ok(None),
                    left => Some(left),
                },
            };
            // Wait for the end without the lock (and without reaping): `kill` or `exitcode`
            // from another thread must not wait for this join.
            self.until_ended(left)
                .map_err(|e| Error::io("wait for a child", None, e))?;
        }
    }

    /// Sleeps until the child has ended (without reaping it) or `at_most` has passed.
    fn until_ended(&self, at_most: Option<Duration>) -> std::io::Result<()> {
        match (&self.pidfd, at_most) {
            (Some(fd), _) => {
                sys::readable_within(fd.as_fd(), at_most.unwrap_or(Duration::from_secs(3600)))
                    .map(drop)
            }
            // No pidfds (a kernel before 5.3): waitid(WNOWAIT) without limit, or look again
            // every few milliseconds until the deadline.
            (None, None) => sys::wait_ended(self.pid),
            (None, Some(left)) => {
                std::thread::sleep(left.min(Duration::from_millis(5)));
                Ok(())
            }
        }
    }

    /// Reaps the child if it has ended (never blocks); its exit code.
    fn reap(&self) -> Result<Option<i32>> {
        let mut exit = self.exit.lock().unwrap_or_else(|e| e.into_inner());
        if exit.is_none() {
            *exit =
                sys::wait(self.pid, false).map_err(|e| Error::io("wait for a child", None, e))?;
        }
        Ok(*exit)
    }

    /// Whether the child is still running (Python's `is_alive()`).
    pub fn is_alive(&self) -> bool {
        matches!(self.reap(), Ok(None))
    }

    /// How the child ended: its exit status, or minus the number of the signal that killed it
    /// (`-9` for SIGKILL); `None` while it runs (Python's `exitcode`).
    pub fn exitcode(&self) -> Option<i32> {
        self.reap().ok().flatten()
    }

    /// Asks the child to end with SIGTERM (Python's `terminate()`). Nothing happens if it has
    /// already ended.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the signal cannot be sent.
    pub fn terminate(&self) -> Result<()> {
        self.signal(libc::SIGTERM)
    }

    /// Ends the child with SIGKILL (Python's `kill()`): no code of the child runs, so a lock it
    /// holds is left to the owner-death recovery. Nothing happens if it has already ended.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the signal cannot be sent.
    pub fn kill(&self) -> Result<()> {
        self.signal(libc::SIGKILL)
    }

    fn signal(&self, signal: i32) -> Result<()> {
        // Under the lock, so the child cannot be reaped (and its pid reused) between the check
        // and the signal.
        let exit = self.exit.lock().unwrap_or_else(|e| e.into_inner());
        if exit.is_some() {
            return Ok(());
        }
        sys::signal(self.pid, signal).map_err(|e| Error::io("signal a child", None, e))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // Reap the child, waiting for it if it still runs: never a zombie.
        let _ = self.join(None);
    }
}

impl fmt::Debug for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Process")
            .field("pid", &self.pid)
            .field("exitcode", &self.exitcode())
            .finish()
    }
}

/// A function that [`Process::spawn`] can run in a new process: a name that the child looks it
/// up by, and the function, which takes its arguments as one [`Transfer`] value (a tuple for
/// several) and returns a [`Report`].
///
/// Declare entries as statics and list them all in [`run_if_spawned`] at the top of `main`.
pub struct Entry<A, R = ()> {
    name: &'static str,
    run: fn(A) -> R,
}

impl<A, R> Entry<A, R> {
    /// The entry `name`, running `run`.
    pub const fn new(name: &'static str, run: fn(A) -> R) -> Entry<A, R> {
        Entry { name, run }
    }

    /// The entry's name.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

/// An [`Entry`] of any argument type, as [`run_if_spawned`] lists them.
pub trait Entrypoint: Sync {
    /// The entry's name.
    fn name(&self) -> &'static str;
    /// Decodes the arguments; the returned closure runs the entry and gives its exit code.
    #[doc(hidden)]
    fn prepare(&self, input: &mut Decoder) -> Result<Box<dyn FnOnce() -> i32 + '_>>;
}

impl<A: Transfer, R: Report> Entrypoint for Entry<A, R> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn prepare(&self, input: &mut Decoder) -> Result<Box<dyn FnOnce() -> i32 + '_>> {
        let args = A::decode(input)?;
        let run = self.run;
        Ok(Box::new(move || run(args).report()))
    }
}

const ENTRY_VAR: &str = "SHMSYNC_SPAWN_ENTRY";
const ARGS_VAR: &str = "SHMSYNC_SPAWN_ARGS";
const HANDSHAKE_VAR: &str = "SHMSYNC_SPAWN_HANDSHAKE";
const PARENT_VAR: &str = "SHMSYNC_SPAWN_PARENT";
/// The region descriptors the child inherits: the only ones its arguments may name.
const FDS_VAR: &str = "SHMSYNC_SPAWN_FDS";
/// The most bytes of arguments a spawn passes (in one environment string, as hex).
const MAX_ARGS_BYTES: usize = 60 * 1024;
/// How long [`Process::spawn`] waits for the child to start its entry.
const SPAWN_TIMEOUT: Duration = Duration::from_secs(30);

/// Set once [`run_if_spawned`] ran: a spawned child that did not call it must not spawn.
static DISPATCHED: AtomicBool = AtomicBool::new(false);

/// Call this first in `main`, with every [`Entry`] the program offers: in a process started
/// by [`Process::spawn`] it runs the requested entry and exits with its code (never
/// returning); in any other process it returns at once.
///
/// A child started by a spawn whose entry is not in `entries` tells its parent (whose
/// `spawn` returns [`Error::Spawn`]) and exits with status 2.
pub fn run_if_spawned(entries: &[&dyn Entrypoint]) {
    DISPATCHED.store(true, Relaxed);
    let Some(name) = std::env::var_os(ENTRY_VAR) else {
        return;
    };
    // Only our parent's spawn is for us: a grandchild started with `Command` inherits the
    // variables, but not this parent.
    let parent = std::env::var(PARENT_VAR)
        .ok()
        .and_then(|p| p.parse::<u32>().ok());
    if parent != Some(sys::parent_pid()) {
        return;
    }
    let handshake = std::env::var(HANDSHAKE_VAR)
        .ok()
        .and_then(|fd| fd.parse::<i32>().ok());
    // Our own descriptor for the report pipe; the inherited number is closed below.
    let mut report = handshake
        .and_then(|fd| sys::dup_inherited(fd).ok())
        .map(std::fs::File::from);
    if let Some(fd) = handshake {
        sys::close_inherited(fd);
    }
    let mut tell = |message: &str| {
        if let Some(report) = &mut report {
            let _ = report.write_all(message.as_bytes());
        }
    };
    let name = name.to_string_lossy();
    let Some(entry) = entries.iter().find(|e| e.name() == name) else {
        let known: Vec<&str> = entries.iter().map(|e| e.name()).collect();
        let message = format!(
            "this program has no entry named {name:?} in run_if_spawned (it has {known:?})\n"
        );
        eprint!("shmsync: {message}");
        tell(&message);
        sys::exit_now(2);
    };
    let args = std::env::var(ARGS_VAR).ok().and_then(|a| unhex(&a));
    // The descriptors our parent kept open for us: each must be open and inheritable (every
    // descriptor this program opens itself is close-on-exec), or it is not one of them.
    let inherited: Vec<i32> = std::env::var(FDS_VAR)
        .unwrap_or_default()
        .split(',')
        .filter_map(|fd| fd.parse().ok())
        .filter(|&fd| sys::is_inherited(fd))
        .collect();
    let mut input = Decoder::new(args.unwrap_or_default(), inherited.clone());
    let prepared = entry.prepare(&mut input).and_then(|run| {
        if input.is_done() {
            Ok(run)
        } else {
            Err(Error::InvalidArgument(
                "spawned process arguments: bytes left over (the parent passed another type)"
                    .into(),
            ))
        }
    });
    // The inherited region descriptors were duplicated where they were used.
    for fd in inherited {
        sys::close_inherited(fd);
    }
    match prepared {
        Ok(run) => {
            tell("started\n");
            drop(report);
            sys::exit_now(run_to_exit_code(run));
        }
        Err(e) => {
            let message = format!("the arguments of entry {name:?} could not be opened: {e}\n");
            eprint!("shmsync: {message}");
            tell(&message);
            sys::exit_now(2);
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_junk() {
        let bytes = [0u8, 1, 0xab, 0xff];
        assert_eq!(unhex(&hex(&bytes)).unwrap(), bytes);
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex("é1"), None);
    }
}
