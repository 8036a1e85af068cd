//! Liveness leases: open-file-description byte locks on the region file, which the kernel
//! drops the moment their process dies; and the fork handling that keeps a child from
//! inheriting its parent's leases. Also the in-use byte (a shared lock that every mapper of a
//! named region holds through the mapping's own descriptor, which a forked child shares on
//! purpose: it has the mapping too), the byte that `shmsync gc` must take exclusively.

use super::ids::{fork_generation, note_fork};
use rustix::fs::{Mode, OFlags};
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::Once;
use std::sync::atomic::{
    AtomicBool, AtomicU64,
    Ordering::{Acquire, Relaxed, Release},
};

/// Where lease bytes start: far beyond any region's end, so leases never overlap data. Byte
/// locks may lie past the end of a file.
const LEASE_BASE: i64 = 1 << 40;

static ATFORK: Once = Once::new();

/// Installs the fork handlers (once per process): a forked child bumps the fork generation
/// (see [`fork_generation`]) and closes the lease descriptors it inherited.
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

extern "C" fn after_fork_in_child() {
    note_fork();
    close_inherited_leases();
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

/// The *in-use* byte, just below the lease bytes: every process that has a named region mapped
/// holds a shared (read) open-file-description lock on it, through the mapping's own
/// descriptor, for as long as the mapping lives; the kernel drops it when the last descriptor
/// of that open file description goes (at the latest when the process dies, or when a forked
/// child that shares the description dies after it). A collector (`shmsync gc`) removes a
/// region file only while it holds this byte exclusively, which it can only get while nobody
/// has the file mapped, and no opener can get while the collector holds it.
const IN_USE_BYTE: i64 = LEASE_BASE - 1;

fn in_use_flock(kind: i32) -> libc::flock {
    // SAFETY: `flock` is plain data; all-zero is a valid value that we then fill in.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = kind as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock.l_start = IN_USE_BYTE;
    lock.l_len = 1;
    lock
}

/// Sets `lock` on `file` with `F_OFD_SETLK` (never blocking). `Ok(false)`: a conflicting lock
/// of another open file description is in the way.
fn set_lock(file: &File, mut lock: libc::flock) -> io::Result<bool> {
    // SAFETY: `file` is open and `lock` a valid flock.
    let r = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &mut lock) };
    if r == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EACCES) => Ok(false),
        _ => Err(e),
    }
}

/// Marks `file` (a region file this process maps, opened for reading) in use: a shared lock on
/// the in-use byte, held by `file`'s open file description until it is closed. `Ok(false)`: a
/// collector holds the byte exclusively at this moment (and is about to remove the file, or
/// has decided not to and will let go at once).
pub(crate) fn mark_in_use(file: &File) -> io::Result<bool> {
    set_lock(file, in_use_flock(libc::F_RDLCK))
}

/// Takes the in-use byte of `file` (opened for writing) exclusively, never blocking: `Ok(true)`
/// only if no other open file description has the file marked in use. Held until `file` is
/// closed.
pub(crate) fn claim_unused(file: &File) -> io::Result<bool> {
    set_lock(file, in_use_flock(libc::F_WRLCK))
}

/// Whether another open file description has `file` marked in use (or claimed), without
/// taking anything.
pub(crate) fn marked_in_use(file: &File) -> io::Result<bool> {
    let mut lock = in_use_flock(libc::F_WRLCK);
    // SAFETY: `file` is open and `lock` a valid flock the kernel fills in.
    let r = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_GETLK, &mut lock) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(i32::from(lock.l_type) != libc::F_UNLCK)
}

/// Whether another open file description holds any of the lease bytes of slots `0..slots`.
pub(crate) fn any_lease_held(file: &File, slots: u32) -> io::Result<bool> {
    let mut lock = lease_flock(0, libc::F_WRLCK);
    lock.l_len = i64::from(slots.max(1));
    // SAFETY: `file` is open and `lock` a valid flock the kernel fills in.
    let r = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_GETLK, &mut lock) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(i32::from(lock.l_type) != libc::F_UNLCK)
}
