//! [`Object`]: the one view of an object in the mapping that every handle is built from.

use super::{DEATH_CHECK_INTERVAL, Inner, Region, Spec};
use crate::protocol::Word;
use crate::sys::{FutexWord, SharedU64};
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering::Relaxed};
use std::time::Instant;

/// An object in a region: its bytes, found or created by name through the directory (the one
/// creation path, [`Object::open`]), kept mapped by a reference to the region. Handles reach
/// their words with [`Object::word`] at the offsets [`layout`](super::layout) states, their data
/// through [`Object::ptr`], and their table of per-process records (a semaphore's entries, an
/// `RwLock`'s reader indicators) through [`Object::table_word`] and [`Object::table_wide`].
#[derive(Clone)]
pub(crate) struct Object {
    region: Arc<Inner>,
    base: NonNull<u8>,
    /// Offset of the hold table from `base` (the end of the object's used bytes when there is
    /// none).
    table: usize,
    /// Entries in the hold table.
    entries: usize,
    /// Bytes per entry of the hold table.
    stride: usize,
    /// The object's size in bytes.
    size: usize,
    /// The object's offset in the region.
    offset: usize,
    /// The object's name in the directory.
    name: Arc<str>,
    /// When this handle may next scan the table for dead holders on a failed single try (ms
    /// since `epoch()`), so that tries in a tight loop do not scan more often than a waiter.
    /// `None` for objects without a hold table.
    next_scan: Option<Arc<AtomicU64>>,
}

// SAFETY: `base` points into the mapping owned by `region`, which lives as long as this value;
// the bytes are only ever accessed atomically (or, for data, under the object's own lock),
// from any thread.
unsafe impl Send for Object {}
// SAFETY: as above: shared access is atomic.
unsafe impl Sync for Object {}

impl Object {
    /// Finds or creates the object `name` as `spec`, registering this process in the region
    /// first; a new object's bytes are zeroed, then `init` sets its words and data (before the
    /// object is published).
    pub(crate) fn open(
        region: &Region,
        name: &str,
        spec: &Spec,
        init: impl FnOnce(&Fresh),
    ) -> crate::Result<Object> {
        let inner = &region.inner;
        if spec.attributes_holds() {
            inner.ensure_registered()?;
        }
        let offset = inner.get_or_create(name, spec, |ptr| {
            // The directory calls us only for a size it could compute and allocate.
            let bytes = spec.bytes().expect("allocated, so its size is known");
            for i in 0..bytes / 4 {
                // SAFETY: a fresh, 128-byte-aligned object of `bytes` bytes (a multiple of 128)
                // inside the mapping, not yet published.
                unsafe { FutexWord::from_ptr(ptr.add(4 * i).cast()) }.store(0, Relaxed);
            }
            init(&Fresh { ptr, words: bytes });
        })?;
        // The object exists as `spec`, so both sizes were computed (and validated) above.
        let table = spec.table_offset().expect("validated by the directory");
        let size = spec.bytes().expect("validated by the directory");
        // From the raw mapping pointer, so that the provenance covers the whole object.
        let base = NonNull::new(inner.ptr(offset)).expect("mapped");
        Ok(Object {
            region: inner.clone(),
            base,
            table,
            entries: spec.holds(),
            stride: spec.stride(),
            size,
            offset,
            name: name.into(),
            next_scan: (spec.holds() > 0).then(|| Arc::new(AtomicU64::new(0))),
        })
    }

    /// The object's offset in the region (its identity within this process).
    pub(crate) fn offset(&self) -> usize {
        self.offset
    }

    /// The object's name in the directory.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The region the object lives in, as a [`Region`] handle.
    pub(crate) fn region_handle(&self) -> Region {
        Region {
            inner: self.region.clone(),
        }
    }

    /// The region the object lives in.
    #[inline]
    pub(crate) fn region(&self) -> &Inner {
        &self.region
    }

    /// The word at `offset` (a multiple of 4 inside the object's words, as
    /// [`layout`](super::layout) states them).
    #[inline]
    pub(crate) fn word(&self, offset: usize) -> &FutexWord {
        debug_assert!(offset % 4 == 0 && offset + 4 <= self.table.max(4));
        // SAFETY: the directory validated that the object spans at least `table` bytes (plus
        // the table), `base` is 128-byte aligned so `base + offset` is an aligned word inside
        // it, other processes reach it only atomically too, and `self.region` keeps the
        // mapping alive for as long as the returned borrow of `self`.
        unsafe { FutexWord::from_ptr(self.base.as_ptr().add(offset).cast()) }
    }

    /// Whether `self` and `other` are views of the same object (of the same mapping).
    #[inline]
    pub(crate) fn same(&self, other: &Object) -> bool {
        self.base == other.base
    }

    /// A pointer to the byte at `offset` of the object (for data after the words).
    #[inline]
    pub(crate) fn ptr(&self, offset: usize) -> *mut u8 {
        debug_assert!(offset <= self.size);
        // SAFETY: in bounds of the object (callers pass offsets inside it, or one past it),
        // which lies inside the mapping.
        unsafe { self.base.as_ptr().add(offset) }
    }

    /// A copy of `len` bytes at `offset` of the object, read byte by byte with atomic loads
    /// (other processes may write them).
    pub(crate) fn read_bytes(&self, offset: usize, len: usize) -> Vec<u8> {
        assert!(offset.checked_add(len).is_some_and(|end| end <= self.size));
        (0..len)
            .map(|i| {
                // SAFETY: inside the object (checked above), which `self.region` keeps mapped;
                // a byte is always aligned, and it is only read atomically.
                unsafe { AtomicU8::from_ptr(self.ptr(offset + i)) }.load(Relaxed)
            })
            .collect()
    }

    /// The number of entries in the hold table.
    #[inline]
    pub(crate) fn entries(&self) -> usize {
        self.entries
    }

    /// The 32-bit word at byte `offset` of entry `i` of the object's table (`i` < the number
    /// of entries, `offset + 4` ≤ the table's stride).
    #[inline]
    pub(crate) fn table_word(&self, i: usize, offset: usize) -> &FutexWord {
        assert!(i < self.entries && offset % 4 == 0 && offset + 4 <= self.stride);
        // SAFETY: `i < entries` and the word inside the entry's stride (asserted); the table is
        // aligned to its stride (at least 8) inside the object and holds `entries` entries of
        // `stride` bytes (the directory checked the object's size for this region's table);
        // they are reached only atomically, and `self.region` keeps them mapped.
        unsafe {
            FutexWord::from_ptr(
                self.base
                    .as_ptr()
                    .add(self.table + i * self.stride + offset)
                    .cast(),
            )
        }
    }

    /// The 64-bit word at byte `offset` of entry `i` of the object's table (`i` < the number
    /// of entries, `offset` a multiple of 8, `offset + 8` ≤ the table's stride, which is then a
    /// multiple of 8).
    #[inline]
    pub(crate) fn table_wide(&self, i: usize, offset: usize) -> &SharedU64 {
        assert!(
            i < self.entries
                && offset % 8 == 0
                && offset + 8 <= self.stride
                && self.stride % 8 == 0
                && self.table % 8 == 0
        );
        // SAFETY: as `table_word`, and 8-aligned: the object is 128-aligned, the table offset
        // and the stride multiples of 8 (asserted).
        unsafe {
            SharedU64::from_ptr(
                self.base
                    .as_ptr()
                    .add(self.table + i * self.stride + offset)
                    .cast(),
            )
        }
    }

    /// The 64-bit word at `offset` of the object's words (a multiple of 8, as
    /// [`layout`](super::layout) states them).
    #[inline]
    pub(crate) fn wide(&self, offset: usize) -> &SharedU64 {
        debug_assert!(offset % 8 == 0 && offset + 8 <= self.table);
        // SAFETY: as `word`: callers pass the offsets `layout` states for their kind, so an
        // 8-aligned word (the object is 128-aligned) inside the object's words, which precede
        // the table; reached only atomically; kept mapped by `self.region`.
        unsafe { SharedU64::from_ptr(self.base.as_ptr().add(offset).cast()) }
    }

    /// Whether this handle may scan its table for dead holders now (at most once per death-check
    /// interval; if so, the next scan is put off by one interval): for single tries, which may
    /// come in a tight loop, and for waiters, which look after every sleep and may be woken often
    /// while other permits circulate.
    pub(crate) fn scan_due(&self) -> bool {
        let Some(next_scan) = &self.next_scan else {
            return false;
        };
        let now = millis();
        if now < next_scan.load(Relaxed) {
            return false;
        }
        next_scan.store(now + DEATH_CHECK_INTERVAL.as_millis() as u64, Relaxed);
        true
    }
}

/// A fresh object's bytes, for its initialisation (before it is published).
pub(crate) struct Fresh {
    ptr: *mut u8,
    /// The object's size.
    words: usize,
}

impl Fresh {
    /// The word at `offset` of the fresh object.
    pub(crate) fn word(&self, offset: usize) -> &FutexWord {
        assert!(offset % 4 == 0 && offset + 4 <= self.words.max(4));
        // SAFETY: an aligned word inside the fresh object (checked above), which the directory
        // handed to us inside the live mapping; the borrow ends with `self`, inside `init`.
        unsafe { FutexWord::from_ptr(self.ptr.add(offset).cast()) }
    }

    /// Copies `bytes` into the fresh object at `offset`.
    pub(crate) fn write_bytes(&self, offset: usize, bytes: &[u8]) {
        assert!(
            offset
                .checked_add(bytes.len())
                .is_some_and(|end| end <= self.words)
        );
        for (i, &b) in bytes.iter().enumerate() {
            // SAFETY: inside the fresh object (checked above), not yet published.
            unsafe { AtomicU8::from_ptr(self.ptr.add(offset + i)) }.store(b, Relaxed);
        }
    }
}

/// Milliseconds on the monotonic clock since the first call.
fn millis() -> u64 {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64
}
