//! A region file and its shared mapping, reached only through raw pointers and atomics.

use crate::sys::FutexWord;
use memmap2::MmapRaw;
use std::fs::File;
use std::path::Path;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;

/// A region file (or memfd) and its whole `MAP_SHARED` mapping. Other processes write the
/// mapping at any time, so it is never borrowed as bytes: every access goes through
/// [`Mapping::word`], [`Mapping::u64_at`] or a raw pointer from [`Mapping::ptr`].
pub(crate) struct Mapping {
    map: MmapRaw,
    size: usize,
    file: File,
    path: Option<PathBuf>,
}

impl Mapping {
    /// Maps the first `size` bytes of `file` (whose path, if it has one, is `path`).
    pub(crate) fn new(file: File, path: Option<PathBuf>, size: usize) -> crate::Result<Mapping> {
        let map = crate::sys::map(&file, size)
            .map_err(|e| crate::Error::io("map", path.as_deref(), e))?;
        Ok(Mapping {
            map,
            size,
            file,
            path,
        })
    }

    /// Maps the first `size` bytes of `file` read-only (`PROT_READ`), for inspection.
    ///
    /// Only loads may ever reach such a mapping: a store, swap or compare-exchange would fault.
    /// Its only user, [`inspect`](super::inspect), reads it through [`Geometry::read`],
    /// the directory's listing and the process table's liveness checks (which only load), and
    /// through its own loads; none of them is given a handle that could write.
    ///
    /// [`Geometry::read`]: super::geometry::Geometry::read
    pub(crate) fn read_only(file: File, path: PathBuf, size: usize) -> crate::Result<Mapping> {
        let map = crate::sys::map_read_only(&file, size)
            .map_err(|e| crate::Error::io("map", Some(&path), e))?;
        Ok(Mapping {
            map,
            size,
            file,
            path: Some(path),
        })
    }

    /// The region file.
    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// The file's path (`None` for an anonymous region).
    pub(crate) fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// A [`crate::Error::Corrupt`] about this file.
    pub(crate) fn corrupt(&self, reason: String) -> crate::Error {
        crate::Error::Corrupt {
            path: self.path.clone(),
            reason,
        }
    }

    /// The mapping's length in bytes.
    #[inline]
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// A pointer to byte `offset` of the mapping.
    ///
    /// Callers only pass offsets they have checked against [`Mapping::size`]; the pointer
    /// itself is computed with `wrapping_add`, so even a wrong offset cannot cause UB until
    /// used.
    #[inline]
    pub(crate) fn ptr(&self, offset: usize) -> *mut u8 {
        debug_assert!(offset <= self.size);
        self.map.as_mut_ptr().wrapping_add(offset)
    }

    /// The 32-bit word at `offset`.
    ///
    /// # Panics
    ///
    /// If the word is not 4-aligned inside the mapping (callers pass validated offsets).
    #[inline]
    pub(crate) fn word(&self, offset: usize) -> &FutexWord {
        assert!(
            offset % 4 == 0 && offset + 4 <= self.size,
            "u32 at {offset}"
        );
        // SAFETY: the word is inside the mapping (asserted), 4-byte aligned (the mapping is
        // page-aligned and `offset` is a multiple of 4), and the mapping lives as long as
        // `self`, which the returned borrow cannot outlive. Other processes write it too, which
        // is why it is only ever reached as an atomic.
        unsafe { FutexWord::from_ptr(self.ptr(offset).cast()) }
    }

    /// The 64-bit word at `offset`.
    ///
    /// # Panics
    ///
    /// If the word is not 8-aligned inside the mapping (callers pass validated offsets).
    #[inline]
    pub(crate) fn u64_at(&self, offset: usize) -> &AtomicU64 {
        assert!(
            offset % 8 == 0 && offset + 8 <= self.size,
            "u64 at {offset}"
        );
        // SAFETY: as for `word`, with 8-byte alignment.
        unsafe { AtomicU64::from_ptr(self.ptr(offset).cast()) }
    }
}
