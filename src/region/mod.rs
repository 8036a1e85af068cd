//! The region: one shared mapping holding a header, a directory of named objects, a process
//! table, and the objects themselves. See [`layout`] for the bytes.
//!
//! Its parts, each a type of its own, all reading the mapping through [`Mapping`]:
//!
//! - [`geometry`]: the header, validated into a [`Geometry`] before anything is built on it;
//! - [`directory`]: the named objects ([`Directory`], [`Spec`], [`Kind`]);
//! - [`procs`]: the process table, leases and liveness ([`ProcessTable`], [`Hold`]);
//! - [`object`]: [`Object`], the one view of an object that every handle is built from.
//!
//! [`Inner`] puts them together; it implements the protocols' `Owners` (is a holder alive,
//! how long to sleep before asking again).

mod directory;
mod geometry;
pub mod inspect;
pub(crate) mod layout;
mod mapping;
mod object;
mod procs;

use crate::error::{Error, Result};
use crate::protocol::mutex::Owners;
use crate::sys;
use directory::Directory;
use geometry::Geometry;
use layout::HEADER_SIZE;
use mapping::Mapping;
use procs::ProcessTable;
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub(crate) use directory::Spec;
pub use directory::{Kind, ObjectInfo};
pub(crate) use object::{Fresh, Object};
pub use procs::DEATH_CHECK_INTERVAL;

/// The environment variable that names an inherited region descriptor (see
/// [`Region::share_with`] and [`Region::from_env`]).
pub const REGION_FD_VAR: &str = "SHMSYNC_REGION_FD";
pub(crate) use procs::Hold;

/// A shared memory region holding named synchronization objects.
///
/// A region is a file (in `/dev/shm` when given a bare name) or an anonymous memory file,
/// mapped shared. Processes that open the same path see the same objects; children forked after
/// [`Region::anonymous`] share it too. Objects are found or created by name with
/// [`lock`](Region::lock), [`rlock`](Region::rlock), [`value`](Region::value),
/// [`array`](Region::array), [`raw_value`](Region::raw_value) and
/// [`raw_array`](Region::raw_array).
///
/// Every handle keeps the mapping alive; dropping the `Region` does not invalidate them.
/// `Region` is cheap to clone (a reference count).
///
/// # Examples
///
/// ```
/// let region = shmsync::Region::anonymous(1 << 20)?;
/// let hits = region.value::<u64>("hits", 0)?;
/// hits.fetch_add(1)?;
/// assert_eq!(region.value::<u64>("hits", 0)?.load()?, 1);
/// # Ok::<(), shmsync::Error>(())
/// ```
#[derive(Clone)]
pub struct Region {
    pub(crate) inner: Arc<Inner>,
}

/// A region as this process has it: the mapped file, the geometry validated from its header
/// when it was mapped (which never changes after creation, so the validated copy is what every
/// access uses, whatever another process later writes into the header), the directory, the
/// process table, and process-local state kept per object.
pub(crate) struct Inner {
    map: Mapping,
    geometry: Geometry,
    dir: Directory,
    procs: ProcessTable,
    /// Process-local state per object offset, shared by every handle of this process on the
    /// object (see [`Inner::local`]).
    local: Mutex<HashMap<(usize, TypeId), Arc<dyn Any + Send + Sync>>>,
}

/// Options for creating a region: directory capacity and file mode.
///
/// # Examples
///
/// ```
/// let region = shmsync::Region::options().capacity(1000).anonymous(1 << 20)?;
/// assert_eq!(region.capacity(), 1000);
/// # Ok::<(), shmsync::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct RegionOptions {
    capacity: Option<usize>,
    procs: usize,
    mode: u32,
    other_owner: bool,
}

impl Default for RegionOptions {
    fn default() -> Self {
        RegionOptions {
            capacity: None,
            procs: layout::MAX_PROCS,
            mode: 0o600,
            other_owner: false,
        }
    }
}

impl RegionOptions {
    /// The most objects the region's directory will hold. The default is one per 4 KiB of
    /// region size, at least 16. Each slot costs 512 bytes of directory.
    pub fn capacity(&mut self, objects: usize) -> &mut Self {
        self.capacity = Some(objects);
        self
    }

    /// The most processes that may use the region at the same time (1 to 1024, the default).
    /// Each process that takes a lock claims a slot of the region's process table; slots of
    /// dead processes are reclaimed. Each slot costs 8 bytes.
    pub fn max_processes(&mut self, processes: usize) -> &mut Self {
        self.procs = processes;
        self
    }

    /// The permission bits of a new region file (default `0o600`: only the owner). The umask
    /// applies.
    pub fn mode(&mut self, mode: u32) -> &mut Self {
        self.mode = mode & 0o777;
        self
    }

    /// Whether [`open`](RegionOptions::open) and
    /// [`open_or_create`](RegionOptions::open_or_create) accept a region file owned by another
    /// user (default `false`). Files in `/dev/shm` can be created by any local user: trusting
    /// another user's file means trusting that user with every lock in it. Use this together
    /// with [`mode`](RegionOptions::mode) on the creating side to share a region between users
    /// on purpose.
    pub fn allow_other_owner(&mut self, allow: bool) -> &mut Self {
        self.other_owner = allow;
        self
    }

    /// Opens an existing region file; see [`Region::open`].
    pub fn open(&self, path: impl AsRef<Path>) -> Result<Region> {
        open_at(&resolve(path.as_ref())?, self)
    }

    /// Creates a new region file of `size` bytes at `path`; see [`Region::create`].
    pub fn create(&self, path: impl AsRef<Path>, size: usize) -> Result<Region> {
        let path = resolve(path.as_ref())?;
        create_at(&path, size, self)
    }

    /// Opens the region at `path`, or creates it with these options; see
    /// [`Region::open_or_create`].
    pub fn open_or_create(&self, path: impl AsRef<Path>, size: usize) -> Result<Region> {
        let path = resolve(path.as_ref())?;
        // Between our failed open and our failed create, another process may have created the
        // file and yet another removed it; a few rounds settle any realistic race.
        let mut last = None;
        for _ in 0..64 {
            match open_at(&path, self) {
                Err(Error::NotFound(_)) => {}
                other => return other,
            }
            match create_at(&path, size, self) {
                Err(e @ Error::AlreadyExists(_)) => last = Some(e),
                other => return other,
            }
        }
        Err(last.unwrap_or(Error::AlreadyExists(path)))
    }

    /// Creates an anonymous region; see [`Region::anonymous`].
    pub fn anonymous(&self, size: usize) -> Result<Region> {
        sys::install_fork_handler();
        let geometry = Geometry::for_new(size, self.capacity, self.procs)?;
        let file = sys::memfd(size as u64).map_err(|e| Error::io("memfd_create", None, e))?;
        let inner = Inner::new_region(file, None, geometry)?;
        Ok(Region {
            inner: Arc::new(inner),
        })
    }
}

/// Turns a bare name (no `/`) into a path in `/dev/shm`.
fn resolve(path: &Path) -> Result<PathBuf> {
    let bytes = path.as_os_str().as_bytes();
    if bytes.is_empty() {
        return Err(Error::io(
            "resolve region path",
            None,
            io::Error::new(io::ErrorKind::InvalidInput, "empty path"),
        ));
    }
    if bytes.contains(&b'/') {
        Ok(path.to_path_buf())
    } else {
        Ok(Path::new("/dev/shm").join(path))
    }
}

fn create_at(path: &Path, size: usize, options: &RegionOptions) -> Result<Region> {
    // Before anything caches this process's ids (`create_hidden` may): a forked child must
    // learn that it is one.
    sys::install_fork_handler();
    let geometry = Geometry::for_new(size, options.capacity, options.procs)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // Build the whole region in a file nobody can see yet, then link it into place: a process
    // that opens `path` can only ever find a complete region, and link(2) fails if anything
    // (a symlink included) already has the name, which is what makes creation exclusive.
    let (file, tmp) =
        sys::create_hidden(dir, options.mode).map_err(|e| Error::io("create", Some(dir), e))?;
    let unlink_tmp = |e| {
        if let Some(tmp) = &tmp {
            let _ = sys::unlink(tmp);
        }
        e
    };
    file.set_len(size as u64)
        .map_err(|e| unlink_tmp(Error::io("set the length of", Some(path), e)))?;
    // In use from before the file has a name, so `shmsync gc` never finds it unclaimed. (Only
    // the fallback's visible temporary file can be reached by others at all, and a collector
    // never claims a file without a valid header, which it does not have yet.)
    let marked = sys::mark_in_use(&file).and_then(|marked| {
        marked.then_some(()).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::WouldBlock,
                "another process claimed the new file",
            )
        })
    });
    marked.map_err(|e| unlink_tmp(Error::io("mark in use", Some(path), e)))?;
    let inner = Inner::new_region(file, Some(path.to_path_buf()), geometry).map_err(unlink_tmp)?;
    match sys::link_into_place(inner.map.file(), tmp.as_deref(), path) {
        Ok(()) => {
            let inner = Arc::new(inner);
            let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
            if let Ok(id) = file_id(inner.map.file()) {
                open.push((id, Arc::downgrade(&inner)));
            }
            Ok(Region { inner })
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            Err(Error::AlreadyExists(path.to_path_buf()))
        }
        Err(e) => Err(Error::io("create", Some(path), e)),
    }
}

fn open_at(path: &Path, options: &RegionOptions) -> Result<Region> {
    sys::install_fork_handler();
    let file = open_in_use(path)?;
    if !options.other_owner {
        let owner = sys::owner(&file).map_err(|e| Error::io("stat", Some(path), e))?;
        let me = sys::effective_uid();
        if owner != me {
            return Err(Error::OtherOwner {
                path: path.to_path_buf(),
                owner,
                me,
            });
        }
    }
    attach(file, Some(path.to_path_buf()))
}

/// Maps the region in `file` (found at `path`, if it has one) after validating it, or returns
/// the mapping this process already has of that file.
fn attach(file: File, path: Option<PathBuf>) -> Result<Region> {
    let stat_error = |e| Error::io("stat", path.as_deref(), e);
    let id = file_id(&file).map_err(stat_error)?;
    // One mapping (and one process registration) per file per process: opening a file this
    // process already has open returns the same region, so a thread that re-enters an RLock
    // through a second `Region` of the same file is still recognised as its owner.
    let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
    open.retain(|(_, weak)| weak.strong_count() > 0);
    if let Some(inner) = open
        .iter()
        .find(|(i, _)| *i == id)
        .and_then(|(_, w)| w.upgrade())
    {
        return Ok(Region { inner });
    }
    let len = sys::file_len(&file).map_err(stat_error)?;
    let inner = Arc::new(Inner::map_existing(file, path, len)?);
    open.push((id, Arc::downgrade(&inner)));
    Ok(Region { inner })
}

/// Opens the region file at `path` and marks it in use (see `sys::mark_in_use`) before
/// anything else: from then on `shmsync gc` cannot remove it. The collector unlinks only while
/// it holds the in-use byte exclusively, so once our shared lock is in place, a file that
/// `path` still names is safe; if `path` no longer names it, the collector removed it between
/// our open(2) and our lock, and we start again from the path (which then gives `NotFound`, or
/// the region created there since).
fn open_in_use(path: &Path) -> Result<File> {
    open_in_use_with(path, || sys::open_existing(path))
}

/// [`open_in_use`] with the open(2) step given (the unit tests run a collector inside it).
fn open_in_use_with(path: &Path, mut open: impl FnMut() -> io::Result<File>) -> Result<File> {
    let io_error = |op, e| Error::io(op, Some(path), e);
    // A collector holds the byte for the time of a few system calls; a process that keeps it
    // longer (a stopped collector, or a hostile one) gets an error rather than a hang.
    let deadline = Instant::now() + IN_USE_PATIENCE;
    loop {
        let file = open().map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::NotFound(path.to_path_buf()),
            _ => io_error("open", e),
        })?;
        let marked = sys::mark_in_use(&file).map_err(|e| io_error("mark in use", e))?;
        if marked && sys::names(path, &file).map_err(|e| io_error("stat", e))? {
            return Ok(file);
        }
        if Instant::now() >= deadline {
            return Err(io_error(
                "mark in use",
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    "another process (shmsync gc?) kept the region file claimed for 5 s",
                ),
            ));
        }
        if !marked {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}

/// How long an opener waits for a collector that holds a region file's in-use byte.
const IN_USE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);

/// The size to map for an existing region file of `len` bytes: at least a header, at most
/// what the address space allows (the header itself is validated once mapped).
fn mappable_size(len: u64, path: Option<&Path>) -> Result<usize> {
    if len < HEADER_SIZE as u64 {
        return Err(Error::Truncated {
            path: path.map(Path::to_path_buf),
            len,
            needed: HEADER_SIZE as u64,
        });
    }
    usize::try_from(len)
        .ok()
        .filter(|&s| s <= isize::MAX as usize)
        .ok_or_else(|| Error::Corrupt {
            path: path.map(Path::to_path_buf),
            reason: format!("{len} bytes is too large to map"),
        })
}

/// A file's (device, inode).
type FileId = (u64, u64);

/// The regions this process has open by path.
static OPEN: Mutex<Vec<(FileId, std::sync::Weak<Inner>)>> = Mutex::new(Vec::new());

fn file_id(file: &File) -> io::Result<FileId> {
    use std::os::unix::fs::MetadataExt;
    let m = file.metadata()?;
    Ok((m.dev(), m.ino()))
}

impl Region {
    /// Creates a new region file of `size` bytes at `path` (a bare name means a file in
    /// `/dev/shm`), with the default [`RegionOptions`].
    ///
    /// The file is created mode 0600 and made visible only once complete; creation fails if
    /// anything exists at `path`, and never follows a symlink there.
    ///
    /// # Errors
    ///
    /// [`Error::AlreadyExists`] if the path is taken; [`Error::InvalidSize`] if `size` cannot
    /// hold the header and directory; [`Error::Io`] for system errors (for instance a missing
    /// directory).
    pub fn create(path: impl AsRef<Path>, size: usize) -> Result<Region> {
        Region::options().create(path, size)
    }

    /// Opens an existing region file.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] if nothing is at `path`; [`Error::Truncated`],
    /// [`Error::SizeMismatch`], [`Error::VersionMismatch`], [`Error::LayoutMismatch`] or
    /// [`Error::Corrupt`] if the file is not a region this build can use;
    /// [`Error::OtherOwner`] if another user owns the file (see
    /// [`RegionOptions::allow_other_owner`]); [`Error::Io`] if the path is a symlink or cannot
    /// be opened.
    pub fn open(path: impl AsRef<Path>) -> Result<Region> {
        Region::options().open(path)
    }

    /// Opens the region at `path`, creating it with `size` bytes if it does not exist.
    ///
    /// Race-free: when many processes call this at once, exactly one region is published
    /// under the name and every caller gets that one, complete. An existing region keeps its
    /// own size.
    pub fn open_or_create(path: impl AsRef<Path>, size: usize) -> Result<Region> {
        Region::options().open_or_create(path, size)
    }

    /// Creates an anonymous region of `size` bytes in a memory file (`memfd`), sealed against
    /// resizing. It has no name: processes share it by being forked after it is created.
    pub fn anonymous(size: usize) -> Result<Region> {
        Region::options().anonymous(size)
    }

    /// Options for creating a region with a chosen directory capacity or file mode.
    pub fn options() -> RegionOptions {
        RegionOptions::default()
    }

    /// Removes the region file at `path` (a bare name means `/dev/shm`). Processes that have
    /// it mapped keep using it; later opens no longer find it.
    pub fn remove(path: impl AsRef<Path>) -> Result<()> {
        let path = resolve(path.as_ref())?;
        sys::unlink(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::NotFound(path.clone()),
            _ => Error::io("remove", Some(&path), e),
        })
    }

    /// Attaches to the region in the open file `fd` (a region file, or the memfd of an
    /// anonymous region, inherited from the process that created it), with the same
    /// validation as [`Region::open`]. The region keeps its own descriptor (a duplicate):
    /// `fd` stays the caller's. A process that already has the region mapped gets that same
    /// region.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if `fd` is not an open regular file (a pipe, a socket, a directory);
    /// [`Error::Truncated`], [`Error::SizeMismatch`], [`Error::VersionMismatch`],
    /// [`Error::LayoutMismatch`] or [`Error::Corrupt`] if the file is not a region this build
    /// can use.
    pub fn from_fd(fd: BorrowedFd<'_>) -> Result<Region> {
        sys::install_fork_handler();
        let file = File::from(
            fd.try_clone_to_owned()
                .map_err(|e| Error::io("duplicate the descriptor of", None, e))?,
        );
        let meta = file
            .metadata()
            .map_err(|e| Error::io("stat the descriptor of", None, e))?;
        if !meta.is_file() {
            return Err(Error::io(
                "attach to",
                None,
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "the descriptor is not a regular file (nor a memfd), so not a region",
                ),
            ));
        }
        if !sys::is_read_write(&file)
            .map_err(|e| Error::io("inspect the descriptor of", None, e))?
        {
            return Err(Error::io(
                "attach to",
                None,
                io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    "the descriptor is open read-only; a region needs read and write access",
                ),
            ));
        }
        // Mark it in use, as an opener by path does (a no-op on the open file description of a
        // `share_with` parent, which holds the mark already): `shmsync gc` then leaves the
        // file's name alone while we use it. Best effort: a file that a collector is removing
        // right now stays usable through the descriptor; only its name goes.
        let _ = sys::mark_in_use(&file);
        attach(file, None)
    }

    /// Attaches to the region whose descriptor this process inherited from a parent that
    /// called [`Region::share_with`]: the descriptor number is in the environment variable
    /// [`REGION_FD_VAR`]. `Ok(None)` if the variable is not set.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// // In a program started by a parent's `region.share_with(&mut command)`:
    /// let region = shmsync::Region::from_env()?.expect("started without a region");
    /// region.raw_value::<u64>("hits", 0)?.fetch_add(1);
    /// # Ok::<(), shmsync::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if the variable does not hold a descriptor number;
    /// [`Error::Io`] if that descriptor is not open; otherwise as [`Region::from_fd`].
    pub fn from_env() -> Result<Option<Region>> {
        let Some(value) = std::env::var_os(REGION_FD_VAR) else {
            return Ok(None);
        };
        let fd: RawFd = value
            .to_str()
            .and_then(|v| v.trim().parse().ok())
            .filter(|&fd| fd >= 0)
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "{REGION_FD_VAR} must hold a descriptor number, not {value:?}"
                ))
            })?;
        // Our own close-on-exec duplicate: the inherited number may be anything, and stays
        // open (if another part of the program owns it, it is that part's to close).
        let own = sys::dup_inherited(fd)
            .map_err(|e| Error::io("open the inherited region descriptor", None, e))?;
        Region::from_fd(own.as_fd()).map(Some)
    }

    /// Prepares `command` so that the program it starts can attach to this region with
    /// [`Region::from_env`] (or, in another language, by mapping the descriptor that the
    /// environment variable [`REGION_FD_VAR`] names): the region's descriptor is kept open
    /// across `exec` in that child only. Works for anonymous regions (which have no path) and
    /// named ones alike.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let region = shmsync::Region::anonymous(1 << 16)?;
    /// let hits = region.raw_value::<u64>("hits", 0)?;
    /// let mut child = std::process::Command::new("python3");
    /// child.arg("worker.py");
    /// region.share_with(&mut child);
    /// let status = child.status()?;
    /// println!("{status}: {} hits", hits.load());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn share_with(&self, command: &mut Command) {
        let fd = self.inner.map.file().as_raw_fd();
        command.env(REGION_FD_VAR, fd.to_string());
        // The closure owns a handle on the region, so the descriptor stays open (and this
        // region's) until the command is spawned, whatever happens to `self` meanwhile.
        let region = self.clone();
        // SAFETY: the closure runs in the child between fork and exec, and only calls fcntl,
        // which is async-signal-safe; it allocates nothing and takes no lock (the region
        // handle is only kept alive, not used).
        unsafe {
            command.pre_exec(move || {
                let _keep = &region;
                sys::keep_across_exec(fd)
            });
        }
    }

    /// The region's own descriptor (of its file, or of its memfd for an anonymous region).
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.map.file().as_fd()
    }

    /// The region file's path, or `None` for an anonymous region.
    pub fn path(&self) -> Option<&Path> {
        self.inner.map.path()
    }

    /// The region's size in bytes.
    pub fn size(&self) -> usize {
        self.inner.geometry.size
    }

    /// The most objects the directory accepts.
    pub fn capacity(&self) -> usize {
        self.inner.dir.capacity()
    }

    /// Bytes of object space not yet used.
    pub fn free_bytes(&self) -> usize {
        self.inner.dir.free_bytes(&self.inner.map)
    }

    /// Every object in the directory, in directory order.
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`] if an entry is damaged.
    pub fn objects(&self) -> Result<Vec<ObjectInfo>> {
        self.inner.dir.list(&self.inner.map)
    }
}

impl std::fmt::Debug for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Region")
            .field("path", &self.path())
            .field("size", &self.size())
            .field("capacity", &self.capacity())
            .finish_non_exhaustive()
    }
}

impl Inner {
    /// Maps a new, zero-filled file of `geometry.size` bytes and writes its header.
    fn new_region(file: File, path: Option<PathBuf>, geometry: Geometry) -> Result<Inner> {
        let map = Mapping::new(file, path, geometry.size)?;
        geometry.write_header(&map);
        Ok(Inner::new(map, geometry))
    }

    /// Maps an existing file of `len` bytes and validates its header into a [`Geometry`]
    /// before anything else is built from it.
    fn map_existing(file: File, path: Option<PathBuf>, len: u64) -> Result<Inner> {
        let size = mappable_size(len, path.as_deref())?;
        let map = Mapping::new(file, path, size)?;
        let geometry = Geometry::read(&map, map.path())?;
        Ok(Inner::new(map, geometry))
    }

    fn new(map: Mapping, geometry: Geometry) -> Inner {
        // A forked child must learn that it is one (fresh ids, no inherited leases) before it
        // uses any region.
        sys::install_fork_handler();
        Inner {
            dir: Directory::new(&geometry),
            procs: ProcessTable::new(&geometry),
            map,
            geometry,
            local: Mutex::new(HashMap::new()),
        }
    }

    /// The process-local state of type `T` kept for the object at `offset`, created on first
    /// use and shared by every handle of this process on that object.
    pub(crate) fn local<T: Default + Send + Sync + 'static>(&self, offset: usize) -> Arc<T> {
        let mut map = self.local.lock().unwrap_or_else(|e| e.into_inner());
        let state = map
            .entry((offset, TypeId::of::<T>()))
            .or_insert_with(|| Arc::new(T::default()))
            .clone();
        state
            .downcast::<T>()
            .expect("the entry of (offset, TypeId::of::<T>()) holds a T")
    }

    /// A pointer to byte `offset` of the mapping.
    #[inline]
    pub(crate) fn ptr(&self, offset: usize) -> *mut u8 {
        self.map.ptr(offset)
    }

    /// The word at `offset` of the mapping (a validated, 4-aligned offset).
    #[cfg(test)]
    pub(crate) fn word(&self, offset: usize) -> &sys::FutexWord {
        self.map.word(offset)
    }

    /// The 64-bit word at `offset` of the mapping (a validated, 8-aligned offset).
    #[cfg(test)]
    pub(crate) fn u64_at(&self, offset: usize) -> &std::sync::atomic::AtomicU64 {
        self.map.u64_at(offset)
    }

    /// Finds or creates the object `name` as `spec` (see [`Directory::get_or_create`]).
    pub(crate) fn get_or_create(
        &self,
        name: &str,
        spec: &Spec,
        init: impl FnOnce(*mut u8),
    ) -> Result<usize> {
        self.dir
            .get_or_create(&self.map, || self.token(), self, name, spec, init)
    }

    /// This process's lock token (see [`ProcessTable::token`]).
    #[inline]
    pub(crate) fn token(&self) -> u32 {
        self.procs.token(&self.map)
    }

    /// This process's token with its fork generation (see [`ProcessTable::hold`]).
    #[inline]
    pub(crate) fn hold(&self) -> Hold {
        self.procs.hold(&self.map)
    }

    /// Registers this process (if it is not yet), reporting failure.
    pub(crate) fn ensure_registered(&self) -> Result<()> {
        self.procs.ensure_registered(&self.map)
    }

    /// The token if this process is registered (in this fork generation).
    #[inline]
    pub(crate) fn current_token(&self) -> Option<u32> {
        self.procs.current_token()
    }

    /// The number of process-table slots (what semaphore entries and reader indicators are
    /// sized from).
    pub(crate) fn process_slots(&self) -> usize {
        self.procs.slots()
    }

    /// This process's token if it is registered (in this fork generation): the token of a
    /// process whose death others can tell, so the only kind that may mark another process's
    /// record as being recovered (an unregistered process's mark could never be judged dead).
    pub(crate) fn registered_token(&self) -> Option<u32> {
        let token = self.token();
        self.slot_of(token).map(|_| token)
    }

    /// The process-table slot of a registered process's token.
    #[inline]
    pub(crate) fn slot_of(&self, token: u32) -> Option<usize> {
        self.procs.slot_of(token)
    }

    /// The pid of the process that registered `token`, if its slot still belongs to it.
    pub(crate) fn pid_of(&self, token: u32) -> Option<u32> {
        self.procs.pid_of(&self.map, token)
    }
}

impl Owners for Inner {
    fn is_alive(&self, token: u32) -> bool {
        self.procs.is_alive(&self.map, token)
    }

    fn slice_end(&self, deadline: Option<Instant>) -> Option<Instant> {
        let slice = Instant::now() + DEATH_CHECK_INTERVAL;
        Some(deadline.map_or(slice, |d| d.min(slice)))
    }

    fn expired(&self, deadline: Option<Instant>) -> bool {
        deadline.is_some_and(|d| Instant::now() >= d)
    }
}

#[cfg(test)]
mod tests;
