//! Child processes: counting this process's threads, `fork`, waiting, signals, and the
//! descriptors a child inherits across `exec`.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// How many threads this process has, counted by the kernel (`Threads:` in
/// `/proc/self/status`), not assumed.
pub(crate) fn thread_count() -> io::Result<usize> {
    let mut status = String::new();
    File::open("/proc/self/status")?.read_to_string(&mut status)?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| io::Error::other("no thread count in /proc/self/status"))
}

/// Which side of a [`fork`] we are on.
pub(crate) enum Forked {
    /// The parent, with the child's pid.
    Parent(u32),
    /// The new child.
    Child,
}

/// `fork(2)`.
///
/// # Safety
///
/// The calling process must have a single thread (see [`thread_count`]): in the child, only
/// the forking thread exists, and a lock (the allocator's, stdout's) held by another thread of
/// the parent would stay locked forever.
pub(crate) unsafe fn fork() -> io::Result<Forked> {
    // SAFETY: the caller guarantees a single thread, so the child's copy of every lock and of
    // the allocator is consistent.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid as u32)),
    }
}

/// Ends this process at once with `code`, without running exit handlers or destructors (in a
/// forked child they belong to the parent's copy of the program).
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` has no preconditions; it never returns.
    unsafe { libc::_exit(code) }
}

/// How a child ended, as Python's `Process.exitcode` says it: the exit status, or minus the
/// number of the signal that killed it.
pub(crate) fn exit_code(status: libc::c_int) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        -libc::WTERMSIG(status)
    } else {
        // Stopped or continued: waitpid without WUNTRACED never reports these.
        i32::MIN
    }
}

/// Reaps the child `pid` if it has ended (`block == false`), or once it ends (`block ==
/// true`): its exit code (see [`exit_code`]), or `None` if it is still running.
pub(crate) fn wait(pid: u32, block: bool) -> io::Result<Option<i32>> {
    let mut status: libc::c_int = 0;
    let flags = if block { 0 } else { libc::WNOHANG };
    loop {
        // SAFETY: `status` is a valid `c_int` for waitpid to write into.
        let r = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, flags) };
        match r {
            -1 => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            0 => return Ok(None),
            _ => return Ok(Some(exit_code(status))),
        }
    }
}

/// Waits until the child `pid` has ended, without reaping it (`waitid` with `WNOWAIT`): the
/// pid stays the child's until someone reaps it.
pub(crate) fn wait_ended(pid: u32) -> io::Result<()> {
    loop {
        // SAFETY: `info` is a valid siginfo_t for waitid to fill in.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid with a valid pointer has no other precondition.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Whether `fd` is open and survives exec (a descriptor a parent handed over on purpose).
pub(crate) fn is_inherited(fd: RawFd) -> bool {
    // SAFETY: F_GETFD has no memory-safety preconditions; it fails with EBADF if `fd` is not
    // open.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    flags >= 0 && flags & libc::FD_CLOEXEC == 0
}

/// A descriptor that becomes readable when the process `pid` ends (`pidfd_open(2)`).
pub(crate) fn pidfd(pid: u32) -> io::Result<OwnedFd> {
    let pid = rustix::process::Pid::from_raw(pid as i32)
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    Ok(rustix::process::pidfd_open(
        pid,
        rustix::process::PidfdFlags::empty(),
    )?)
}

/// Waits until `fd` is readable or `timeout` passes; whether it is readable.
pub(crate) fn readable_within(fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: `pfd` is one valid pollfd.
    let r = unsafe { libc::poll(&mut pfd, 1, ms) };
    match r {
        -1 => {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(e)
            }
        }
        0 => Ok(false),
        _ => Ok(true),
    }
}

/// Sends `signal` to the child `pid`. The caller has not reaped it yet, so the pid cannot
/// have been reused.
pub(crate) fn signal(pid: u32, signal: i32) -> io::Result<()> {
    // SAFETY: kill has no memory-safety preconditions.
    if unsafe { libc::kill(pid as libc::pid_t, signal) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A pipe, both ends close-on-exec: (read, write).
pub(crate) fn pipe() -> io::Result<(File, File)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 just opened both descriptors, and nothing else owns them.
    Ok(unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) })
}

/// Makes `fd` survive `exec` (clears close-on-exec). Async-signal-safe: for use between fork
/// and exec (`CommandExt::pre_exec`).
pub(crate) fn keep_across_exec(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor number has no memory-safety preconditions; it fails with
    // EBADF if the descriptor is not open.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A new close-on-exec descriptor for the open file `fd` names, if `fd` is open: the inherited
/// descriptor itself stays its owner's.
pub(crate) fn dup_inherited(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC has no memory-safety preconditions; it fails with EBADF if `fd`
    // is not open.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if new == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fcntl just opened `new`, and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Closes the inherited descriptor `fd` (one this process received across `exec` and owns).
pub(crate) fn close_inherited(fd: RawFd) {
    // SAFETY: the caller received `fd` across exec for this very purpose and owns it; nothing
    // in this process holds it as an `OwnedFd` or `File`.
    unsafe { libc::close(fd) };
}

/// This process's parent's pid.
pub(crate) fn parent_pid() -> u32 {
    rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get() as u32)
}
