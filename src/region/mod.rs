//! The region: one shared mapping holding a header, a directory of named objects, and the
//! objects themselves. See [`layout`] for the bytes.

mod directory;
pub(crate) mod layout;
mod procs;

use crate::error::{Error, Result};
use crate::protocol::publish;
use crate::sys;
use layout::{HEADER_SIZE, header};
use memmap2::MmapRaw;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

pub(crate) use directory::Spec;
pub use directory::{Kind, ObjectInfo};
pub use procs::DEATH_CHECK_INTERVAL;

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

/// The mapping and the geometry read (and validated) from its header when it was opened. The
/// geometry never changes after creation, so the validated copy is what every access uses,
/// whatever another process later writes into the header.
pub(crate) struct Inner {
    map: MmapRaw,
    _file: File,
    path: Option<PathBuf>,
    size: usize,
    slots: usize,
    capacity: usize,
    procs_offset: usize,
    procs: usize,
    heap_offset: usize,
    /// This process's registration as `fork generation << 32 | token` (0: none yet); the
    /// lock-free fast path of [`Inner::token`].
    me: AtomicU64,
    registration: std::sync::Mutex<Option<procs::Registration>>,
    /// The last holder token found alive, and when (see `Inner::is_alive`).
    alive_seen: AtomicU64,
    /// The object ranges this process has handed out handles on (see `claim_range`).
    ranges: std::sync::Mutex<std::collections::BTreeMap<usize, directory::Claim>>,
    /// Per object offset, the guards this process holds on it (see `object::LocalHolds`).
    local_holds: std::sync::Mutex<
        std::collections::HashMap<usize, std::sync::Arc<crate::object::LocalHolds>>,
    >,
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
        let geometry = Geometry::for_new(size, self.capacity, self.procs)?;
        let file = sys::memfd(size as u64).map_err(|e| Error::io("memfd_create", None, e))?;
        let inner = Inner::map_new(file, None, geometry)?;
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
    let inner = Inner::map_new(file, Some(path.to_path_buf()), geometry).map_err(unlink_tmp)?;
    match sys::link_into_place(&inner._file, tmp.as_deref(), path) {
        Ok(()) => {
            let inner = Arc::new(inner);
            let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
            if let Ok(id) = file_id(&inner._file) {
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
    let file = sys::open_existing(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => Error::NotFound(path.to_path_buf()),
        _ => Error::io("open", Some(path), e),
    })?;
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
    let id = file_id(&file).map_err(|e| Error::io("stat", Some(path), e))?;
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
    let len = sys::file_len(&file).map_err(|e| Error::io("stat", Some(path), e))?;
    let inner = Arc::new(Inner::map_existing(file, path.to_path_buf(), len)?);
    open.push((id, Arc::downgrade(&inner)));
    Ok(Region { inner })
}

/// A file's (device, inode).
type FileId = (u64, u64);

/// The regions this process has open by path.
static OPEN: std::sync::Mutex<Vec<(FileId, std::sync::Weak<Inner>)>> =
    std::sync::Mutex::new(Vec::new());

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

    /// The region file's path, or `None` for an anonymous region.
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// The region's size in bytes.
    pub fn size(&self) -> usize {
        self.inner.size
    }

    /// The most objects the directory accepts.
    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }

    /// Bytes of object space not yet used.
    pub fn free_bytes(&self) -> usize {
        let cursor = self.inner.u64_at(header::CURSOR).load(Relaxed);
        usize::try_from(cursor)
            .ok()
            .filter(|c| (self.inner.heap_offset..=self.inner.size).contains(c))
            .map_or(0, |c| self.inner.size - c)
    }

    /// Every object in the directory, in directory order.
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`] if an entry is damaged.
    pub fn objects(&self) -> Result<Vec<ObjectInfo>> {
        self.inner.list()
    }
}

impl std::fmt::Debug for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Region")
            .field("path", &self.inner.path)
            .field("size", &self.inner.size)
            .field("capacity", &self.inner.capacity)
            .finish_non_exhaustive()
    }
}

/// The fixed shape of a region.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    size: usize,
    slots: usize,
    capacity: usize,
    procs_offset: usize,
    procs: usize,
    heap_offset: usize,
}

impl Geometry {
    fn for_new(size: usize, capacity: Option<usize>, procs: usize) -> Result<Geometry> {
        let invalid = |reason: String| Error::InvalidSize {
            size: size as u64,
            reason,
        };
        if size > isize::MAX as usize {
            return Err(invalid("larger than the address space allows".into()));
        }
        let capacity = capacity.unwrap_or_else(|| layout::default_capacity(size as u64));
        if capacity == 0 {
            return Err(invalid("a directory capacity of 0 holds no objects".into()));
        }
        if !(1..=layout::MAX_PROCS).contains(&procs) {
            return Err(invalid(format!(
                "max_processes must be between 1 and {}, not {procs}",
                layout::MAX_PROCS
            )));
        }
        let (slots, heap_offset) = layout::slots_for(capacity)
            .and_then(|slots| Some((slots, layout::heap_offset(slots, procs)?)))
            .ok_or_else(|| invalid(format!("a directory of {capacity} objects is too large")))?;
        let least = heap_offset + layout::PAD;
        if size < least {
            return Err(invalid(format!(
                "the header and a directory of {capacity} objects need {heap_offset} bytes, \
                 so the region must have at least {least}"
            )));
        }
        Ok(Geometry {
            size,
            slots,
            capacity,
            procs_offset: layout::procs_offset(slots).expect("smaller than heap_offset"),
            procs,
            heap_offset,
        })
    }
}

impl Inner {
    fn new(map: MmapRaw, file: File, path: Option<PathBuf>, g: Geometry) -> Inner {
        Inner {
            map,
            _file: file,
            path,
            size: g.size,
            slots: g.slots,
            capacity: g.capacity,
            procs_offset: g.procs_offset,
            procs: g.procs,
            heap_offset: g.heap_offset,
            me: AtomicU64::new(0),
            registration: std::sync::Mutex::new(None),
            alive_seen: AtomicU64::new(0),
            ranges: std::sync::Mutex::new(std::collections::BTreeMap::new()),
            local_holds: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// Maps a new, zero-filled file of `geometry.size` bytes and writes its header.
    fn map_new(file: File, path: Option<PathBuf>, geometry: Geometry) -> Result<Inner> {
        let map =
            sys::map(&file, geometry.size).map_err(|e| Error::io("map", path.as_deref(), e))?;
        let inner = Inner::new(map, file, path, geometry);
        inner.write_header();
        Ok(inner)
    }

    /// Fills in the header of a fresh (zero-filled, not yet shared) region and publishes it.
    fn write_header(&self) {
        self.u64_at(header::MAGIC)
            .store(u64::from_ne_bytes(layout::MAGIC), Relaxed);
        self.u32_at(header::VERSION).store(layout::VERSION, Relaxed);
        self.u32_at(header::LAYOUT).store(layout::LAYOUT, Relaxed);
        self.u64_at(header::SIZE).store(self.size as u64, Relaxed);
        self.u64_at(header::DIR_OFFSET)
            .store(HEADER_SIZE as u64, Relaxed);
        self.u64_at(header::DIR_SLOTS)
            .store(self.slots as u64, Relaxed);
        self.u64_at(header::CAPACITY)
            .store(self.capacity as u64, Relaxed);
        self.u64_at(header::HEAP_OFFSET)
            .store(self.heap_offset as u64, Relaxed);
        self.u64_at(header::CURSOR)
            .store(self.heap_offset as u64, Relaxed);
        self.u64_at(header::COUNT).store(0, Relaxed);
        self.u64_at(header::PROCS_OFFSET)
            .store(self.procs_offset as u64, Relaxed);
        self.u64_at(header::PROCS).store(self.procs as u64, Relaxed);
        self.u32_at(header::ALLOC_LOCK).store(0, Relaxed);
        publish::publish(self.u32_at(header::STATE), layout::READY);
    }

    /// Maps an existing file of `len` bytes and validates its header: every field is checked
    /// against the file's real length before anything else is read.
    fn map_existing(file: File, path: PathBuf, len: u64) -> Result<Inner> {
        let path = Some(path);
        let corrupt = |reason: String| Error::Corrupt {
            path: path.clone(),
            reason,
        };
        if len < HEADER_SIZE as u64 {
            return Err(Error::Truncated {
                path: path.clone(),
                len,
                needed: HEADER_SIZE as u64,
            });
        }
        let size = usize::try_from(len)
            .ok()
            .filter(|&s| s <= isize::MAX as usize)
            .ok_or_else(|| corrupt(format!("{len} bytes is too large to map")))?;
        let map = sys::map(&file, size).map_err(|e| Error::io("map", path.as_deref(), e))?;
        let unknown = Geometry {
            size,
            slots: 0,
            capacity: 0,
            procs_offset: size,
            procs: 0,
            heap_offset: size,
        };
        let mut inner = Inner::new(map, file, path.clone(), unknown);

        let magic = inner.u64_at(header::MAGIC).load(Relaxed).to_ne_bytes();
        if magic != layout::MAGIC {
            return Err(corrupt("no shmsync magic number at the start".into()));
        }
        let version = inner.u32_at(header::VERSION).load(Relaxed);
        if version != layout::VERSION {
            return Err(Error::VersionMismatch {
                found: version,
                expected: layout::VERSION,
            });
        }
        let found = inner.u32_at(header::LAYOUT).load(Relaxed);
        if found != layout::LAYOUT {
            return Err(Error::LayoutMismatch {
                found: layout::describe_layout(found),
                expected: layout::describe_layout(layout::LAYOUT),
            });
        }
        // Acquire: the fields below were written before the state was published.
        if publish::state(inner.u32_at(header::STATE)) != layout::READY {
            return Err(corrupt("the header was never completed".into()));
        }
        let recorded = inner.u64_at(header::SIZE).load(Relaxed);
        if recorded != len {
            return Err(Error::SizeMismatch {
                path,
                header: recorded,
                file: len,
            });
        }
        let dir_offset = inner.u64_at(header::DIR_OFFSET).load(Relaxed);
        if dir_offset != HEADER_SIZE as u64 {
            return Err(corrupt(format!(
                "directory offset {dir_offset}, expected {HEADER_SIZE}"
            )));
        }
        let slots = inner.u64_at(header::DIR_SLOTS).load(Relaxed);
        let capacity = inner.u64_at(header::CAPACITY).load(Relaxed);
        let heap = inner.u64_at(header::HEAP_OFFSET).load(Relaxed);
        let procs = inner.u64_at(header::PROCS).load(Relaxed);
        let procs_offset = inner.u64_at(header::PROCS_OFFSET).load(Relaxed);
        if procs == 0 || procs > layout::MAX_PROCS as u64 {
            return Err(corrupt(format!("a process table of {procs} slots")));
        }
        let procs = procs as usize;
        let slots = usize::try_from(slots)
            .ok()
            .filter(|s| s.is_power_of_two() && *s >= 2)
            .ok_or_else(|| corrupt(format!("{slots} directory slots")))?;
        let expected_heap = layout::heap_offset(slots, procs)
            .filter(|&h| h as u64 <= len)
            .ok_or_else(|| {
                corrupt(format!(
                    "{slots} directory slots and {procs} process slots do not fit in {len} bytes"
                ))
            })?;
        if capacity == 0 || capacity > slots as u64 / 2 {
            return Err(corrupt(format!(
                "directory capacity {capacity} does not suit {slots} slots"
            )));
        }
        if heap != expected_heap as u64 {
            return Err(corrupt(format!(
                "object space starts at {heap}, expected {expected_heap}"
            )));
        }
        let expected_procs = layout::procs_offset(slots).expect("below expected_heap");
        if procs_offset != expected_procs as u64 {
            return Err(corrupt(format!(
                "process table at {procs_offset}, expected {expected_procs}"
            )));
        }
        inner.slots = slots;
        inner.capacity = capacity as usize;
        inner.procs_offset = expected_procs;
        inner.procs = procs;
        inner.heap_offset = expected_heap;
        Ok(inner)
    }

    /// The process-local record of the guards this process holds on the object at `offset`,
    /// shared by every handle of this process on it.
    pub(crate) fn local_holds(&self, offset: usize) -> std::sync::Arc<crate::object::LocalHolds> {
        let mut map = self.local_holds.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(offset).or_default().clone()
    }

    pub(crate) fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// A pointer to byte `offset` of the mapping.
    ///
    /// Callers only pass offsets they have checked against `self.size`; the pointer itself
    /// is computed with `wrapping_add`, so even a wrong offset cannot cause UB until used.
    pub(crate) fn ptr(&self, offset: usize) -> *mut u8 {
        debug_assert!(offset <= self.size);
        self.map.as_mut_ptr().wrapping_add(offset)
    }

    /// The 32-bit word at `offset`.
    pub(crate) fn u32_at(&self, offset: usize) -> &AtomicU32 {
        assert!(
            offset % 4 == 0 && offset + 4 <= self.size,
            "u32 at {offset}"
        );
        // SAFETY: the word is inside the mapping (asserted), 4-byte aligned (the mapping is
        // page-aligned and `offset` is a multiple of 4), and the mapping lives as long as
        // `self`, which the returned borrow cannot outlive. Other processes write it too, which
        // is why it is only ever reached as an atomic.
        unsafe { AtomicU32::from_ptr(self.ptr(offset).cast()) }
    }

    /// The 64-bit word at `offset`.
    pub(crate) fn u64_at(&self, offset: usize) -> &AtomicU64 {
        assert!(
            offset % 8 == 0 && offset + 8 <= self.size,
            "u64 at {offset}"
        );
        // SAFETY: as for `u32_at`, with 8-byte alignment.
        unsafe { AtomicU64::from_ptr(self.ptr(offset).cast()) }
    }
}

#[cfg(test)]
mod tests;
