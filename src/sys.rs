//! Every system call the library makes lives here: futex wait and wake, thread identity, file
//! creation, opening, linking and sealing, and mapping.
//!
//! Futexes are always the shared (non-private) kind: the words live in `MAP_SHARED` mappings
//! and the kernel keys them by (inode, offset), so a wake in one process reaches a sleeper in
//! another whatever address each has the word mapped at.

use crate::word::WaitOutcome;
use linux_futex::{AsFutex, Futex, Shared, TimedWaitError, WaitError};
use memmap2::{MmapOptions, MmapRaw};
use rustix::fs::{AtFlags, Mode, OFlags, SealFlags};
use std::cell::Cell;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::sync::atomic::{
    AtomicBool, AtomicU32, AtomicU64,
    Ordering::{Acquire, Relaxed, Release},
};
use std::time::Instant;

// ---------------------------------------------------------------------------------------------
// Futex

/// Sleeps on `word` while it holds `expected`, until a wake or `deadline` (absolute, monotonic).
///
/// The word must be 4-byte aligned and stay mapped for the call: every caller passes a word
/// of a live mapping at an offset the region validated as aligned, so linux-futex never meets
/// the EFAULT or EINVAL it would panic on.
#[inline]
pub(crate) fn futex_wait(
    word: &AtomicU32,
    expected: u32,
    deadline: Option<Instant>,
) -> WaitOutcome {
    let futex: &Futex<Shared> = word.as_futex();
    match deadline {
        None => match futex.wait(expected) {
            Ok(()) | Err(WaitError::Interrupted) => WaitOutcome::Woken,
            Err(WaitError::WrongValue) => WaitOutcome::ValueChanged,
        },
        // FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline (std's `Instant` clock),
        // so spurious wake-ups and EINTR never stretch the wait.
        Some(at) => match futex.wait_bitset_until(expected, !0, at) {
            Ok(()) | Err(TimedWaitError::Interrupted) => WaitOutcome::Woken,
            Err(TimedWaitError::WrongValue) => WaitOutcome::ValueChanged,
            Err(TimedWaitError::TimedOut) => WaitOutcome::TimedOut,
        },
    }
}

/// Wakes up to `n` sleepers on `word`, in any process.
#[inline]
pub(crate) fn futex_wake(word: &AtomicU32, n: i32) {
    let futex: &Futex<Shared> = word.as_futex();
    futex.wake(n);
}

// ---------------------------------------------------------------------------------------------
// CPUs online (whether spinning can pay off)

/// The number of CPUs online, once known; 0 until the first call.
static ONLINE_CPUS: AtomicU32 = AtomicU32::new(0);

/// How many CPUs the machine has online (`sysconf(_SC_NPROCESSORS_ONLN)`), read once and
/// cached: no system call after the first.
///
/// Not this process's affinity mask (`available_parallelism()`): the lock holder is another
/// thread, usually in another process, and it may well run on another CPU while we can only run
/// on ours. Both processes of a pinned two-CPU benchmark have a mask of one CPU. Only on a
/// machine with one CPU online can we be sure a spinning waiter keeps the holder from running.
#[inline]
pub(crate) fn online_cpus() -> u32 {
    match ONLINE_CPUS.load(Relaxed) {
        0 => read_online_cpus(),
        n => n,
    }
}

#[cold]
fn read_online_cpus() -> u32 {
    // SAFETY: sysconf only reads system information; `_SC_NPROCESSORS_ONLN` is a valid name.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    // An error (-1) counts as "more than one": spinning is then bounded by the adaptive budget.
    let n = u32::try_from(n).unwrap_or(2).max(1);
    ONLINE_CPUS.store(n, Relaxed);
    n
}

// ---------------------------------------------------------------------------------------------
// Thread and process identity, cached per thread and refreshed after fork

/// Bumped in every child right after `fork`, so cached identities copied from the parent are
/// recognised as stale.
static FORK_GENERATION: AtomicU32 = AtomicU32::new(0);
static ATFORK: Once = Once::new();

extern "C" fn after_fork_in_child() {
    FORK_GENERATION.fetch_add(1, Relaxed);
    close_inherited_leases();
    unlock_lease_opening();
}

thread_local! {
    /// (fork generation, pid, tid); the generation `u32::MAX` means "not filled in yet".
    static IDS: Cell<(u32, u32, u32)> = const { Cell::new((u32::MAX, 0, 0)) };
}

/// The calling thread's (process id, thread id). A system call only the first time a thread
/// asks, and again after a fork.
#[inline]
pub(crate) fn ids() -> (u32, u32) {
    install_fork_handler();
    let generation = FORK_GENERATION.load(Relaxed);
    IDS.with(|ids| {
        let (g, pid, tid) = ids.get();
        if g == generation {
            return (pid, tid);
        }
        let pid = rustix::process::getpid().as_raw_nonzero().get() as u32;
        let tid = rustix::thread::gettid().as_raw_nonzero().get() as u32;
        ids.set((generation, pid, tid));
        (pid, tid)
    })
}

// ---------------------------------------------------------------------------------------------
// Files

/// A new, empty, not yet visible file in `dir`, mode 0600: an `O_TMPFILE` file where the file
/// system supports it, otherwise a uniquely named file created with `O_EXCL | O_NOFOLLOW`
/// (whose path is returned so it can be unlinked once linked into place).
pub(crate) fn create_hidden(dir: &Path, mode: u32) -> io::Result<(File, Option<PathBuf>)> {
    let mode = Mode::from_raw_mode(mode);
    match rustix::fs::open(dir, OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC, mode) {
        Ok(fd) => return Ok((File::from(fd), None)),
        Err(e) if e == rustix::io::Errno::OPNOTSUPP || e == rustix::io::Errno::ISDIR => {}
        Err(e) => return Err(e.into()),
    }
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let (pid, _) = ids();
    loop {
        let n = COUNTER.fetch_add(1, Relaxed);
        let tmp = dir.join(format!(".shmsync-tmp.{pid}.{n}"));
        let flags =
            OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::RDWR | OFlags::CLOEXEC;
        match rustix::fs::open(&tmp, flags, mode) {
            Ok(fd) => return Ok((File::from(fd), Some(tmp))),
            Err(rustix::io::Errno::EXIST) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Gives the hidden file from [`create_hidden`] the name `path`, atomically, failing with
/// `AlreadyExists` if anything (a symlink included) is already there: `link(2)` never replaces
/// and never follows the new name.
pub(crate) fn link_into_place(file: &File, tmp: Option<&Path>, path: &Path) -> io::Result<()> {
    let result = match tmp {
        Some(tmp) => rustix::fs::link(tmp, path),
        None => {
            let proc_path = format!("/proc/self/fd/{}", file.as_raw_fd());
            rustix::fs::linkat(
                rustix::fs::CWD,
                proc_path.as_str(),
                rustix::fs::CWD,
                path,
                AtFlags::SYMLINK_FOLLOW,
            )
        }
    };
    if let Some(tmp) = tmp {
        let _ = rustix::fs::unlink(tmp);
    }
    result.map_err(io::Error::from)
}

/// Opens an existing region file read-write, refusing a symlink at `path`.
pub(crate) fn open_existing(path: &Path) -> io::Result<File> {
    let flags = OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::open(path, flags, Mode::empty()).map_err(|e| {
        if e == rustix::io::Errno::LOOP {
            io::Error::new(io::ErrorKind::InvalidInput, "the path is a symbolic link")
        } else {
            io::Error::from(e)
        }
    })?;
    let file = File::from(fd);
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok(file)
}

/// An anonymous memory file of `len` bytes, sealed so that nobody can shrink it (which would
/// turn accesses to the lost pages into SIGBUS) or grow it.
pub(crate) fn memfd(len: u64) -> io::Result<File> {
    use rustix::fs::MemfdFlags;
    let fd = rustix::fs::memfd_create("shmsync", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)?;
    let file = File::from(fd);
    file.set_len(len)?;
    rustix::fs::fcntl_add_seals(&file, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)?;
    Ok(file)
}

/// The user id that owns the file.
pub(crate) fn owner(file: &File) -> io::Result<u32> {
    use std::os::unix::fs::MetadataExt;
    Ok(file.metadata()?.uid())
}

/// This process's effective user id.
pub(crate) fn effective_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// The file's current length.
pub(crate) fn file_len(file: &File) -> io::Result<u64> {
    Ok(file.metadata()?.len())
}

/// Maps the first `len` bytes of `file` shared (`MAP_SHARED`), read-write. The mapping is only
/// ever reached through raw pointers and atomics.
pub(crate) fn map(file: &File, len: usize) -> io::Result<MmapRaw> {
    MmapOptions::new().len(len).map_raw(file)
}

/// Removes the file at `path` (the region stays alive for whoever has it mapped).
pub(crate) fn unlink(path: &Path) -> io::Result<()> {
    rustix::fs::unlink(path).map_err(io::Error::from)
}

// ---------------------------------------------------------------------------------------------
// Liveness leases: open-file-description byte locks

/// Where lease bytes start: far beyond any region's end, so leases never overlap data. Byte
/// locks may lie past the end of a file.
const LEASE_BASE: i64 = 1 << 40;

/// The fork generation: bumped in every child right after `fork`.
#[inline]
pub(crate) fn fork_generation() -> u32 {
    FORK_GENERATION.load(Relaxed)
}

/// Makes sure forked children are told (and close inherited lease descriptors).
pub(crate) fn install_fork_handler() {
    ATFORK.call_once(|| {
        // SAFETY: the handlers only perform async-signal-safe work (atomic operations and
        // close(2)) and live for the whole program, as pthread_atfork requires.
        unsafe {
            libc::pthread_atfork(
                Some(before_fork),
                Some(after_fork_in_parent),
                Some(after_fork_in_child),
            )
        };
    });
}

/// Held from the moment a lease descriptor is opened until it is in [`LEASE_FDS`], and by a
/// forking thread across `fork`: so a child never inherits a lease descriptor that its fork
/// handler does not know to close.
static LEASE_OPENING: AtomicBool = AtomicBool::new(false);

fn lock_lease_opening() {
    while LEASE_OPENING
        .compare_exchange_weak(false, true, Acquire, Relaxed)
        .is_err()
    {
        std::thread::yield_now();
    }
}

fn unlock_lease_opening() {
    LEASE_OPENING.store(false, Release);
}

extern "C" fn before_fork() {
    lock_lease_opening();
}

extern "C" fn after_fork_in_parent() {
    unlock_lease_opening();
}

/// Lease descriptors of this process, packed as `fork generation << 32 | fd`, so a forked child
/// can close every one it inherited: an inherited descriptor shares the parent's open file
/// description, and with it the parent's lease, which would otherwise outlive the parent.
static LEASE_FDS: [AtomicU64; 1024] = [const { AtomicU64::new(EMPTY_FD) }; 1024];
const EMPTY_FD: u64 = u64::MAX;

fn close_inherited_leases() {
    for entry in &LEASE_FDS {
        let v = entry.swap(EMPTY_FD, Relaxed);
        if v != EMPTY_FD {
            // SAFETY: the descriptor was registered by `Lease::open` in the parent and is owned
            // by the registry; after the swap nobody else will close it.
            unsafe { libc::close(v as u32 as i32) };
        }
    }
}

/// A descriptor of its own open file description on a region file, holding at most one lease
/// byte lock. The kernel drops the lock when the last reference to the description goes, which
/// for a descriptor nobody else has is when the process exits, however it dies.
pub(crate) struct Lease {
    fd: i32,
    index: usize,
    generation: u32,
}

impl Lease {
    /// Opens a new open file description of `file` (through `/proc/self/fd`, which works for
    /// memfds too) and registers it so forked children close their copy.
    pub(crate) fn open(file: &File) -> io::Result<Lease> {
        install_fork_handler();
        let path = format!("/proc/self/fd/{}", file.as_raw_fd());
        lock_lease_opening();
        let opened = rustix::fs::open(path.as_str(), OFlags::RDWR | OFlags::CLOEXEC, Mode::empty());
        let registered = opened.map_err(io::Error::from).and_then(Lease::register);
        unlock_lease_opening();
        registered
    }

    /// Enters `fd` in the registry of lease descriptors.
    fn register(fd: std::os::fd::OwnedFd) -> io::Result<Lease> {
        let generation = fork_generation();
        let packed = (u64::from(generation) << 32) | u64::from(fd.as_raw_fd() as u32);
        let index = LEASE_FDS
            .iter()
            .position(|e| {
                e.compare_exchange(EMPTY_FD, packed, Relaxed, Relaxed)
                    .is_ok()
            })
            .ok_or_else(|| io::Error::other("more than 1024 regions in use by this process"))?;
        Ok(Lease {
            fd: std::os::fd::IntoRawFd::into_raw_fd(fd),
            index,
            generation,
        })
    }

    /// Tries to take the lease byte of `slot` (a write lock, never blocking). `Ok(false)`:
    /// another open file description holds it.
    pub(crate) fn try_take(&self, slot: u32) -> io::Result<bool> {
        let mut lock = lease_flock(slot, libc::F_WRLCK);
        // SAFETY: `self.fd` is an open descriptor owned by this value and `lock` a valid flock.
        let r = unsafe { libc::fcntl(self.fd, libc::F_OFD_SETLK, &mut lock) };
        if r == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EACCES) => Ok(false),
            _ => Err(e),
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let packed = (u64::from(self.generation) << 32) | u64::from(self.fd as u32);
        // In a forked child the registry entry was emptied (and the descriptor closed) at fork
        // time; the number may since belong to another file, so only close what we still own.
        if LEASE_FDS[self.index]
            .compare_exchange(packed, EMPTY_FD, Relaxed, Relaxed)
            .is_ok()
        {
            // SAFETY: the registry entry proved the descriptor is still ours.
            unsafe { libc::close(self.fd) };
        }
    }
}

fn lease_flock(slot: u32, kind: i32) -> libc::flock {
    // SAFETY: `flock` is plain data; all-zero is a valid value that we then fill in.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = kind as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock.l_start = LEASE_BASE + i64::from(slot);
    lock.l_len = 1;
    lock
}

/// Whether some open file description other than `file`'s holds the lease byte of `slot`.
pub(crate) fn lease_held(file: &File, slot: u32) -> io::Result<bool> {
    let mut lock = lease_flock(slot, libc::F_WRLCK);
    // SAFETY: `file` is open and `lock` a valid flock the kernel fills in.
    let r = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_GETLK, &mut lock) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(i32::from(lock.l_type) != libc::F_UNLCK)
}
