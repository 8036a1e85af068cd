//! What every handle of a multi-word object needs: the words at fixed offsets, and the hold
//! table (see [`holds`](crate::protocol::holds)) of the objects that have one.

use crate::lock::Hold;
use crate::protocol::holds::{Entry, Holder};
use crate::region::{Inner, Region, Spec};
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Instant;

/// Bytes of one hold-table entry: the owner word and the counts word.
pub(crate) const ENTRY_BYTES: usize = 8;

/// An object's words in a region, kept alive by a reference to the mapping.
#[derive(Clone)]
pub(crate) struct Words {
    region: Arc<Inner>,
    base: NonNull<AtomicU32>,
    /// Offset of the hold table from `base` (the end of the words when there is none).
    table: usize,
    /// Entries in the hold table.
    entries: usize,
    /// The object's size in bytes.
    size: usize,
    /// The object's offset in the region.
    offset: usize,
    /// When this handle may next scan the table for dead holders on a failed single try (ms
    /// since `epoch()`), so that tries in a tight loop do not scan more often than a waiter.
    next_scan: Arc<AtomicU64>,
}

// SAFETY: `base` points into the mapping owned by `region`, which lives as long as this value;
// the words are only ever accessed atomically, from any thread.
unsafe impl Send for Words {}
// SAFETY: as above: shared access is atomic.
unsafe impl Sync for Words {}

impl Words {
    /// Finds or creates the object `name` as `spec`; a new object's bytes are zeroed, then
    /// `init` sets its words (before the object is published).
    pub(crate) fn open(
        region: &Region,
        name: &str,
        spec: &Spec,
        entries: usize,
        init: impl FnOnce(&Fresh),
    ) -> crate::Result<Words> {
        region.inner.ensure_registered()?;
        let offset = region.object(name, spec, |ptr| {
            // The directory calls us only for a size it could compute and allocate.
            let bytes = spec.bytes().expect("allocated, so its size is known");
            for i in 0..bytes / 4 {
                // SAFETY: a fresh, 128-byte-aligned object of `bytes` bytes (a multiple of 128)
                // inside the mapping, not yet published.
                unsafe { AtomicU32::from_ptr(ptr.add(4 * i).cast()) }.store(0, Relaxed);
            }
            init(&Fresh { ptr, words: bytes });
        })?;
        // The object exists as `spec`, so both sizes were computed (and validated) above.
        let table = spec.table_offset().expect("validated by the directory");
        let size = spec.bytes().expect("validated by the directory");
        // From the raw mapping pointer, so that the provenance covers the whole object.
        let base = NonNull::new(region.inner.ptr(offset).cast()).expect("mapped");
        Ok(Words {
            region: region.inner.clone(),
            base,
            table,
            entries,
            size,
            offset,
            next_scan: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The object's offset in the region (its identity within this process).
    pub(crate) fn offset(&self) -> usize {
        self.offset
    }

    /// The region the object lives in.
    #[inline]
    pub(crate) fn region(&self) -> &Inner {
        &self.region
    }

    /// The region and the object's first word, for handles built on others (a
    /// [`Condition`](crate::Condition)'s [`RLock`](crate::RLock)).
    pub(crate) fn parts(&self) -> (Arc<Inner>, NonNull<AtomicU32>) {
        (self.region.clone(), self.base)
    }

    /// The word at `offset` (a multiple of 4 below the hold table).
    #[inline]
    pub(crate) fn at(&self, offset: usize) -> &AtomicU32 {
        debug_assert!(offset % 4 == 0 && offset + 4 <= self.table.max(4));
        // SAFETY: the directory validated that the object spans at least `table` bytes (plus
        // the table), `base` is 128-byte aligned so `base + offset` is an aligned word inside
        // it, and `self.region` keeps the mapping alive for as long as `self`.
        unsafe { &*self.base.as_ptr().byte_add(offset) }
    }

    /// A pointer to the byte at `offset` of the object (for data after the words).
    #[inline]
    pub(crate) fn ptr(&self, offset: usize) -> *mut u8 {
        // SAFETY: in bounds of the object (callers pass offsets inside it).
        unsafe { self.base.as_ptr().cast::<u8>().add(offset) }
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

    /// The hold-table entry of process-table slot `slot` (< the number of entries).
    #[inline]
    pub(crate) fn entry(&self, slot: usize) -> Entry<'_, AtomicU32> {
        debug_assert!(slot < self.entries);
        let at = self.table + slot * ENTRY_BYTES;
        // SAFETY: the table is 8-aligned inside the object and holds `entries` entries of
        // two words each (the directory checked the object's size for this region's table).
        let word = |off: usize| unsafe { &*self.base.as_ptr().byte_add(at + off) };
        Entry {
            owner: word(0),
            counts: word(4),
        }
    }

    /// The entry of the process with `hold`'s token, or `None` if it is not registered.
    #[inline]
    pub(crate) fn entry_of(&self, hold: Hold) -> Option<Entry<'_, AtomicU32>> {
        let slot = self.region.slot_of(hold.token)?;
        (slot < self.entries).then(|| self.entry(slot))
    }

    /// Gives back the holds of every dead process in the table, as process `me`.
    pub(crate) fn reclaim(&self, me: u32, object: &impl Holder) {
        self.next_scan.store(
            millis() + crate::DEATH_CHECK_INTERVAL.as_millis() as u64,
            Relaxed,
        );
        for slot in 0..self.entries {
            self.entry(slot).reclaim_if_dead(me, &*self.region, object);
        }
    }

    /// Clears the entries of every dead process in the table without giving their holds back
    /// (a repair), as process `me`.
    pub(crate) fn forget_dead(&self, me: u32) {
        for slot in 0..self.entries {
            self.entry(slot).forget_if_dead(me, &*self.region);
        }
    }

    /// [`Words::reclaim`], unless this handle scanned less than a death-check interval ago
    /// (for single tries, which may come in a tight loop).
    pub(crate) fn reclaim_now_and_then(&self, me: u32, object: &impl Holder) {
        if millis() >= self.next_scan.load(Relaxed) {
            self.reclaim(me, object);
        }
    }
}

/// What this process holds of one object through guards, kept in process memory: the
/// in-process check that a reader-writer lock never hands this process a write guard while it
/// holds a read guard (or the reverse), whatever the shared words say. Another process, or a
/// damaged file, can make the shared words lie (a hold table that gives back more read locks
/// than its process held, a state word overwritten); without this check such a lie would let
/// safe code in this process hold `&T` and `&mut T` to the same value at once.
///
/// The word is `fork generation << 32 | WRITER | readers`: a forked child, whose copies of the
/// parent's guards are not its own, starts from nothing.
#[derive(Debug, Default)]
pub(crate) struct LocalHolds(AtomicU64);

/// In [`LocalHolds`]: this process holds the write guard.
const LOCAL_WRITER: u32 = 1 << 31;

impl LocalHolds {
    /// Applies `f` to this fork generation's count; returns the count before, or `None` (and
    /// changes nothing) if `f` refuses.
    fn update(&self, f: impl Fn(u32) -> Option<u32>) -> Option<u32> {
        let generation = u64::from(crate::sys::fork_generation());
        let mut old = self.0.load(Relaxed);
        loop {
            let count = if old >> 32 == generation {
                old as u32
            } else {
                0
            };
            let new = (generation << 32) | u64::from(f(count)?);
            match self.0.compare_exchange_weak(old, new, Relaxed, Relaxed) {
                Ok(_) => return Some(count),
                Err(v) => old = v,
            }
        }
    }

    /// Records a read guard; `false` (nothing recorded) if this process holds the write guard.
    #[inline]
    pub(crate) fn add_reader(&self) -> bool {
        self.update(|c| (c & LOCAL_WRITER == 0).then(|| c + 1))
            .is_some()
    }

    /// Forgets a read guard.
    #[inline]
    pub(crate) fn remove_reader(&self) {
        self.update(|c| Some((c & LOCAL_WRITER) | (c & !LOCAL_WRITER).saturating_sub(1)));
    }

    /// Records the write guard; `false` (nothing recorded) if this process holds any guard.
    #[inline]
    pub(crate) fn set_writer(&self) -> bool {
        self.update(|c| (c == 0).then_some(LOCAL_WRITER)).is_some()
    }

    /// Forgets the write guard.
    #[inline]
    pub(crate) fn clear_writer(&self) {
        self.update(|c| Some(c & !LOCAL_WRITER));
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
    pub(crate) fn at(&self, offset: usize) -> &AtomicU32 {
        assert!(offset % 4 == 0 && offset + 4 <= self.words.max(4));
        // SAFETY: an aligned word inside the fresh object (checked above), which the directory
        // handed to us inside the live mapping; the borrow ends with `self`, inside `init`.
        unsafe { AtomicU32::from_ptr(self.ptr.add(offset).cast()) }
    }
}

impl Fresh {
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

    /// A pointer to the byte at `offset` of the fresh object (for its data).
    pub(crate) fn ptr(&self, offset: usize) -> *mut u8 {
        assert!(offset <= self.words);
        // SAFETY: inside (or one past) the fresh object, checked above.
        unsafe { self.ptr.add(offset) }
    }
}

/// Milliseconds on the monotonic clock since the first call.
fn millis() -> u64 {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64
}
