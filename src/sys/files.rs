//! Region files: hidden creation and atomic publication, opening, memfds, mapping.

use super::ids::ids;
use memmap2::{MmapOptions, MmapRaw};
use rustix::fs::{AtFlags, Mode, OFlags, SealFlags};
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

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
    open_regular(path, OFlags::RDWR)
}

/// Opens an existing file read-only for inspection, refusing a symlink at `path` and anything
/// but a regular file (`O_NONBLOCK`, so that a FIFO planted in the directory cannot make the
/// open hang).
pub(crate) fn open_read_only(path: &Path) -> io::Result<File> {
    open_regular(path, OFlags::RDONLY | OFlags::NONBLOCK)
}

/// Opens the regular file at `path` with `mode` (never following a symlink there).
fn open_regular(path: &Path, mode: OFlags) -> io::Result<File> {
    let flags = mode | OFlags::NOFOLLOW | OFlags::CLOEXEC;
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

/// Whether `path` names `file` right now (same device and inode, not following a symlink at
/// `path`); `false` if nothing is there any more.
pub(crate) fn names(path: &Path, file: &File) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let at_path = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let ours = file.metadata()?;
    Ok(at_path.dev() == ours.dev() && at_path.ino() == ours.ino())
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

/// Whether `file` was opened for reading and writing (a region is mapped read-write).
pub(crate) fn is_read_write(file: &File) -> io::Result<bool> {
    let flags = rustix::fs::fcntl_getfl(file)?;
    Ok(flags & OFlags::RWMODE == OFlags::RDWR)
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

/// Maps the first `len` bytes of `file` shared and read-only (`PROT_READ`, `MAP_SHARED`): the
/// mapping of [`shmsync::inspect`](crate::inspect), from which words are only ever loaded.
pub(crate) fn map_read_only(file: &File, len: usize) -> io::Result<MmapRaw> {
    MmapOptions::new().len(len).map_raw_read_only(file)
}

/// Removes the file at `path` (the region stays alive for whoever has it mapped).
pub(crate) fn unlink(path: &Path) -> io::Result<()> {
    rustix::fs::unlink(path).map_err(io::Error::from)
}
