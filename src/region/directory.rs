//! The directory: an open-addressing hash table of named objects.
//!
//! Entries are only ever added, never removed or changed once published, so a lookup needs no
//! lock: it probes from the name's home slot and stops at the first empty slot. Insertions are
//! serialised by the header's allocation lock (a [`mutex`](crate::protocol::mutex) word); an
//! inserter writes the object and the entry's fields, then publishes the entry's state with
//! Release ([`publish`](crate::protocol::publish)). Every field read from an entry is validated
//! before use, since any process with the file can write anything into it.

use super::geometry::Geometry;
use super::layout::{
    self, ENTRY_SIZE, HEADER_SIZE, HOLD_ENTRY, NAME_MAX, PAD, TYPE_NAME_MAX, entry, header,
};
use super::mapping::Mapping;
use crate::error::{Error, Result};
use crate::protocol::mutex::{self, Outcome, Owners};
use crate::protocol::{Block, Word, publish};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::Ordering::Relaxed;

/// What sort of object a directory entry holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// A [`Lock`](crate::Lock).
    Lock,
    /// An [`RLock`](crate::RLock).
    RLock,
    /// A [`Value`](crate::Value).
    Value,
    /// An [`Array`](crate::Array).
    Array,
    /// A [`RawValue`](crate::RawValue).
    RawValue,
    /// A [`RawArray`](crate::RawArray).
    RawArray,
    /// A [`Semaphore`](crate::Semaphore).
    Semaphore,
    /// A [`BoundedSemaphore`](crate::BoundedSemaphore).
    BoundedSemaphore,
    /// A [`Condition`](crate::Condition) (its `len` is the length of the name of the shared
    /// [`RLock`](crate::RLock) it uses, 0 for its own lock).
    Condition,
    /// An [`Event`](crate::Event).
    Event,
    /// A [`Barrier`](crate::Barrier) (its `len` is the number of parties).
    Barrier,
    /// An [`RwLock`](crate::RwLock).
    RwLock,
    /// A [`Queue`](crate::Queue) (its `len` is the capacity; its element size is the slot's).
    Queue,
    /// A [`ByteQueue`](crate::ByteQueue) (its `len` is the capacity; its element size is the
    /// slot's).
    ByteQueue,
}

impl Kind {
    fn tag(self) -> u32 {
        match self {
            Kind::Lock => 1,
            Kind::RLock => 2,
            Kind::Value => 3,
            Kind::Array => 4,
            Kind::RawValue => 5,
            Kind::RawArray => 6,
            Kind::Semaphore => 7,
            Kind::BoundedSemaphore => 8,
            Kind::Condition => 9,
            Kind::Event => 10,
            Kind::Barrier => 11,
            Kind::RwLock => 12,
            Kind::Queue => 13,
            Kind::ByteQueue => 14,
        }
    }

    fn from_tag(tag: u32) -> Option<Kind> {
        Some(match tag {
            1 => Kind::Lock,
            2 => Kind::RLock,
            3 => Kind::Value,
            4 => Kind::Array,
            5 => Kind::RawValue,
            6 => Kind::RawArray,
            7 => Kind::Semaphore,
            8 => Kind::BoundedSemaphore,
            9 => Kind::Condition,
            10 => Kind::Event,
            11 => Kind::Barrier,
            12 => Kind::RwLock,
            13 => Kind::Queue,
            14 => Kind::ByteQueue,
            _ => return None,
        })
    }

    fn has_elements(self) -> bool {
        matches!(
            self,
            Kind::Value
                | Kind::Array
                | Kind::RawValue
                | Kind::RawArray
                | Kind::RwLock
                | Kind::Queue
                | Kind::ByteQueue
        )
    }

    fn is_array(self) -> bool {
        matches!(self, Kind::Array | Kind::RawArray)
    }

    fn is_queue(self) -> bool {
        matches!(self, Kind::Queue | Kind::ByteQueue)
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Lock => "Lock",
            Kind::RLock => "RLock",
            Kind::Value => "Value",
            Kind::Array => "Array",
            Kind::RawValue => "RawValue",
            Kind::RawArray => "RawArray",
            Kind::Semaphore => "Semaphore",
            Kind::BoundedSemaphore => "BoundedSemaphore",
            Kind::Condition => "Condition",
            Kind::Event => "Event",
            Kind::Barrier => "Barrier",
            Kind::RwLock => "RwLock",
            Kind::Queue => "Queue",
            Kind::ByteQueue => "ByteQueue",
        }
    }

    /// Bytes of words at the start of objects of this kind (see [`layout`]).
    fn words(self) -> usize {
        match self {
            Kind::Lock => layout::lock::WORDS,
            Kind::RLock => layout::rlock::WORDS,
            Kind::Value | Kind::Array => layout::locked::WORDS,
            Kind::RawValue | Kind::RawArray => 0,
            Kind::Semaphore | Kind::BoundedSemaphore => layout::semaphore::WORDS,
            Kind::Condition => layout::condition::WORDS,
            Kind::Event => layout::event::WORDS,
            Kind::Barrier => layout::barrier::WORDS,
            Kind::RwLock => layout::rwlock::WORDS,
            Kind::Queue | Kind::ByteQueue => layout::queue::WORDS,
        }
    }
}

/// What a handed-out range holds: end, kind, element size, alignment, type and length.
type Claim = (usize, Kind, usize, usize, &'static str, usize);

/// What a caller asks the directory for: kind, element type, length, and what follows the
/// words. The object's byte layout follows from it (see [`layout`]): the words, the data
/// (aligned for the element), a tail of bytes, then the hold table (8-aligned).
#[derive(Clone, Debug)]
pub(crate) struct Spec {
    kind: Kind,
    elem_size: usize,
    elem_align: usize,
    type_name: &'static str,
    len: usize,
    /// Bytes after the data (a shared lock's name, for a condition).
    tail: usize,
    /// Entries of the table of per-process records (a semaphore's entries, an `RwLock`'s reader
    /// indicators), 0 for none.
    holds: usize,
    /// Bytes per entry of the hold table (also its alignment).
    stride: usize,
}

impl Spec {
    /// An object with no elements.
    pub(crate) fn plain(kind: Kind) -> Spec {
        debug_assert!(!kind.has_elements());
        Spec {
            kind,
            elem_size: 0,
            elem_align: 1,
            type_name: "",
            len: 0,
            tail: 0,
            holds: 0,
            stride: HOLD_ENTRY,
        }
    }

    /// An object of `len` elements of `T`.
    pub(crate) fn of<T>(kind: Kind, len: usize) -> Spec {
        debug_assert!(kind.has_elements() && (kind.is_array() || len == 1));
        Spec {
            kind,
            elem_size: size_of::<T>(),
            elem_align: align_of::<T>(),
            type_name: std::any::type_name::<T>(),
            len,
            tail: 0,
            holds: 0,
            stride: HOLD_ENTRY,
        }
    }

    /// A queue of `capacity` slots of `stride` bytes, aligned to `align`, holding items of
    /// `type_name`.
    pub(crate) fn queue(
        kind: Kind,
        type_name: &'static str,
        stride: usize,
        align: usize,
        capacity: usize,
    ) -> Spec {
        debug_assert!(kind.is_queue());
        Spec {
            kind,
            elem_size: stride,
            elem_align: align,
            type_name,
            len: capacity,
            tail: 0,
            holds: 0,
            stride: HOLD_ENTRY,
        }
    }

    /// Records `len` in the entry for an object without elements (a barrier's parties).
    pub(crate) fn with_len(self, len: usize) -> Spec {
        debug_assert!(!self.kind.has_elements());
        Spec { len, ..self }
    }

    /// Reserves `tail` bytes after the words and data.
    pub(crate) fn with_tail(self, tail: usize) -> Spec {
        Spec { tail, ..self }
    }

    /// Adds `entries` semaphore entries (see [`layout::permit_entries_for`]).
    pub(crate) fn with_permit_entries(self, entries: usize) -> Spec {
        Spec {
            holds: entries,
            stride: layout::PERMIT_ENTRY,
            ..self
        }
    }

    /// Adds `entries` reader indicators (see [`layout::readers_for`]).
    pub(crate) fn with_readers(self, entries: usize) -> Spec {
        Spec {
            holds: entries,
            stride: layout::READER_ENTRY,
            ..self
        }
    }

    /// Bytes per entry of the hold table.
    pub(crate) fn stride(&self) -> usize {
        self.stride
    }

    /// Whether a handle of this object takes locks or holds that must name their process (all
    /// but raw cells): such handles refuse to exist in a process that cannot register.
    pub(crate) fn attributes_holds(&self) -> bool {
        !matches!(self.kind, Kind::RawValue | Kind::RawArray)
    }

    /// Entries of the hold table.
    pub(crate) fn holds(&self) -> usize {
        self.holds
    }

    /// Where the data starts: after the words, aligned for the element.
    pub(crate) fn data_offset(&self) -> usize {
        self.kind.words().next_multiple_of(self.elem_align)
    }

    /// Where the tail starts: after the data. `None` on overflow.
    pub(crate) fn tail_offset(&self) -> Option<usize> {
        let data = if self.kind.has_elements() {
            self.elem_size.checked_mul(self.len)?
        } else {
            0
        };
        self.data_offset().checked_add(data)
    }

    /// Where the hold table starts: after the tail, aligned to its entries' size when there is
    /// one. `None` on overflow.
    pub(crate) fn table_offset(&self) -> Option<usize> {
        let used = self.tail_offset()?.checked_add(self.tail)?;
        if self.holds == 0 {
            Some(used)
        } else {
            layout::round_up(used, self.stride)
        }
    }

    /// Bytes the object occupies, a multiple of [`PAD`], or `None` on overflow.
    pub(crate) fn bytes(&self) -> Option<usize> {
        let table = self.holds.checked_mul(self.stride)?;
        let used = self.table_offset()?.checked_add(table)?;
        layout::round_up(used.max(1), PAD)
    }

    fn align(&self) -> usize {
        self.elem_align.max(PAD)
    }

    fn describe(&self) -> String {
        describe(
            self.kind,
            short_type_name(self.type_name),
            self.len,
            self.elem_size,
        )
    }
}

fn describe(kind: Kind, type_name: &str, len: usize, elem_size: usize) -> String {
    if kind == Kind::ByteQueue {
        format!("ByteQueue({len} slots of {elem_size} bytes)")
    } else if kind == Kind::Queue {
        format!("Queue<{type_name}>({len} slots)")
    } else if kind == Kind::Barrier {
        format!("Barrier({len} parties)")
    } else if kind == Kind::Condition && len > 0 {
        format!("Condition on a shared RLock (a {len}-byte name)")
    } else if kind.is_array() {
        format!("{}<{type_name}; {len}>", kind.name())
    } else if kind.has_elements() {
        format!("{}<{type_name}>", kind.name())
    } else {
        kind.name().to_string()
    }
}

/// The type name kept in an entry: at most [`TYPE_NAME_MAX`] bytes, cut on a char boundary.
fn short_type_name(name: &str) -> &str {
    let mut end = name.len().min(TYPE_NAME_MAX);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

/// One object of a region, as listed by [`Region::objects`](crate::Region::objects).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The object's name.
    pub name: String,
    /// Its kind.
    pub kind: Kind,
    /// Its element type's name (empty for locks), cut to 64 bytes.
    pub type_name: String,
    /// Elements (1 for values, 0 for locks).
    pub len: usize,
    /// Bytes it occupies in the region.
    pub bytes: usize,
}

/// The largest element alignment: a mapping's address is only page-aligned, so an offset
/// aligned to more within the file would not give an aligned address.
const MAX_ALIGN: usize = 4096;

/// How long creating an object waits for the region's allocation lock.
const ALLOC_LOCK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The directory of a region, and the object ranges this process has handed out handles on.
pub(crate) struct Directory {
    slots: usize,
    capacity: usize,
    heap_offset: usize,
    /// The object ranges this process has handed out handles on (see
    /// [`Directory::claim_range`]).
    ranges: Mutex<BTreeMap<usize, Claim>>,
}

/// A validated view of a published entry (names stay in the mapping until needed).
struct Entry {
    slot: usize,
    kind: Kind,
    name_len: usize,
    type_len: usize,
    elem_size: usize,
    elem_align: usize,
    type_hash: u64,
    offset: usize,
    len: usize,
    bytes: usize,
}

enum Probe {
    Found(Entry),
    Vacant(usize),
    Full,
}

/// Checks an object name: 1 to [`NAME_MAX`] bytes of UTF-8, no NUL.
fn check_name(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("names must not be empty");
    }
    if name.len() > NAME_MAX {
        return bad("names are at most 128 bytes");
    }
    if name.contains('\0') {
        return bad("names must not contain NUL");
    }
    Ok(())
}

impl Directory {
    /// The directory of a region of geometry `g`.
    pub(crate) fn new(g: &Geometry) -> Directory {
        Directory {
            slots: g.slots,
            capacity: g.capacity,
            heap_offset: g.heap_offset,
            ranges: Mutex::new(BTreeMap::new()),
        }
    }

    /// The most objects the directory accepts.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes of object space not yet used (0 if the cursor is damaged).
    pub(crate) fn free_bytes(&self, map: &Mapping) -> usize {
        let cursor = map.u64_at(header::CURSOR).load(Relaxed);
        usize::try_from(cursor)
            .ok()
            .filter(|c| (self.heap_offset..=map.size()).contains(c))
            .map_or(0, |c| map.size() - c)
    }

    fn entry_offset(slot: usize) -> usize {
        HEADER_SIZE + slot * ENTRY_SIZE
    }

    /// Reads `len` bytes of a name field at `offset` in 8-byte atomic loads.
    fn read_bytes(map: &Mapping, offset: usize, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len.next_multiple_of(8));
        for i in (0..len).step_by(8) {
            let word = map.u64_at(offset + i).load(Relaxed);
            out.extend_from_slice(&word.to_ne_bytes());
        }
        out.truncate(len);
        out
    }

    /// Writes `bytes` (at most `field` bytes) into a name field, zero-padded, in 8-byte stores.
    fn write_bytes(map: &Mapping, offset: usize, field: usize, bytes: &[u8]) {
        for i in (0..field).step_by(8) {
            let mut chunk = [0u8; 8];
            if i < bytes.len() {
                let n = (bytes.len() - i).min(8);
                chunk[..n].copy_from_slice(&bytes[i..i + n]);
            }
            map.u64_at(offset + i)
                .store(u64::from_ne_bytes(chunk), Relaxed);
        }
    }

    /// Whether the name field at `offset` holds exactly `name` (whose length the caller already
    /// compared), compared in place, 8 bytes at a time.
    fn name_is(map: &Mapping, offset: usize, name: &[u8]) -> bool {
        name.chunks(8).enumerate().all(|(i, chunk)| {
            let stored = map.u64_at(offset + 8 * i).load(Relaxed).to_ne_bytes();
            stored[..chunk.len()] == *chunk
        })
    }

    /// The element type name recorded in a validated entry (for messages and listings).
    fn type_name_of(&self, map: &Mapping, e: &Entry) -> String {
        let at = Self::entry_offset(e.slot) + entry::TYPE_NAME;
        String::from_utf8_lossy(&Self::read_bytes(map, at, e.type_len)).into_owned()
    }

    /// Validates the published entry in `slot`.
    fn read_entry(&self, map: &Mapping, slot: usize) -> Result<Entry> {
        let at = Self::entry_offset(slot);
        let u32_field = |f| map.word(at + f).load(Relaxed) as usize;
        let u64_field = |f| map.u64_at(at + f).load(Relaxed);
        let bad = |what: String| map.corrupt(format!("directory slot {slot}: {what}"));

        let tag = u32_field(entry::KIND) as u32;
        let kind = Kind::from_tag(tag).ok_or_else(|| bad(format!("unknown kind {tag}")))?;
        let name_len = u32_field(entry::NAME_LEN);
        if name_len == 0 || name_len > NAME_MAX {
            return Err(bad(format!("name length {name_len}")));
        }
        let type_len = u32_field(entry::TYPE_LEN);
        if type_len > TYPE_NAME_MAX {
            return Err(bad(format!("type name length {type_len}")));
        }
        let elem_size = u32_field(entry::ELEM_SIZE);
        let elem_align = u32_field(entry::ELEM_ALIGN);
        if !elem_align.is_power_of_two() || elem_align > MAX_ALIGN {
            return Err(bad(format!("element alignment {elem_align}")));
        }
        let to_usize = |v: u64, what: &str| {
            usize::try_from(v).map_err(|_| bad(format!("{what} {v} out of range")))
        };
        let offset = to_usize(u64_field(entry::OFFSET), "offset")?;
        let len = to_usize(u64_field(entry::LEN), "length")?;
        let bytes = to_usize(u64_field(entry::BYTES), "size")?;
        let end = offset
            .checked_add(bytes)
            .filter(|&end| end <= map.size())
            .ok_or_else(|| bad(format!("object at {offset}+{bytes} beyond the region")))?;
        let align = elem_align.max(PAD);
        if offset < self.heap_offset || offset % align != 0 || end <= offset {
            return Err(bad(format!("object at {offset}+{bytes} is misplaced")));
        }
        // Inserters advance the cursor before publishing, so a published object ends at or
        // before it; one beyond it lies in free space that the next insertion would hand out
        // again.
        let cursor = map.u64_at(header::CURSOR).load(Relaxed);
        if end as u64 > cursor {
            return Err(bad(format!(
                "object at {offset}+{bytes} lies beyond the used space"
            )));
        }
        Ok(Entry {
            slot,
            kind,
            name_len,
            type_len,
            elem_size,
            elem_align,
            type_hash: u64_field(entry::TYPE_HASH),
            offset,
            len,
            bytes,
        })
    }

    /// Whether `slot` holds a published entry (Acquire: its fields are then visible), or is
    /// empty; any other state is damage.
    fn is_published(&self, map: &Mapping, slot: usize) -> Result<bool> {
        match publish::state(map.word(Self::entry_offset(slot) + entry::STATE)) {
            0 => Ok(false),
            layout::ENTRY_READY => Ok(true),
            other => Err(map.corrupt(format!("directory slot {slot} has state {other:#x}"))),
        }
    }

    /// Finds `name`, or the empty slot where it would go.
    fn probe(&self, map: &Mapping, name: &str, hash: u64) -> Result<Probe> {
        let mask = self.slots - 1;
        let mut slot = (hash as usize) & mask;
        for _ in 0..self.slots {
            if !self.is_published(map, slot)? {
                return Ok(Probe::Vacant(slot));
            }
            let at = Self::entry_offset(slot);
            let same_hash = map.u64_at(at + entry::NAME_HASH).load(Relaxed) == hash;
            let same_len = map.word(at + entry::NAME_LEN).load(Relaxed) as usize == name.len();
            if same_hash && same_len && Self::name_is(map, at + entry::NAME, name.as_bytes()) {
                return Ok(Probe::Found(self.read_entry(map, slot)?));
            }
            slot = (slot + 1) & mask;
        }
        Ok(Probe::Full)
    }

    /// Checks that the existing entry is what `spec` asks for; returns the object's offset.
    fn matching(&self, map: &Mapping, name: &str, spec: &Spec, e: &Entry) -> Result<usize> {
        let type_hash = layout::fnv1a(spec.type_name.as_bytes());
        let same = e.kind == spec.kind
            && (!spec.kind.has_elements()
                || (e.elem_size == spec.elem_size
                    && e.elem_align == spec.elem_align
                    && e.type_hash == type_hash))
            && e.len == spec.len;
        if !same {
            return Err(Error::Mismatch {
                name: name.to_string(),
                existing: describe(e.kind, &self.type_name_of(map, e), e.len, e.elem_size),
                requested: spec.describe(),
            });
        }
        if Some(e.bytes) != spec.bytes() {
            return Err(map.corrupt(format!(
                "object {name:?} has {} bytes, its type needs {:?}",
                e.bytes,
                spec.bytes()
            )));
        }
        self.claim_range(map, e.offset, spec, false)?;
        Ok(e.offset)
    }

    /// Records that this process hands out a handle on `spec.bytes()` bytes at `offset`, and
    /// refuses a range that overlaps one already handed out as anything else. An honest
    /// directory never has overlapping objects, but a damaged one could, and two handles of
    /// different types on the same bytes would let safe code race non-atomic accesses against
    /// each other (or against atomics) in this very process.
    ///
    /// A `fresh` range (about to be initialised for a new object) must not touch any range
    /// handed out before, identical ones included: a damaged allocation cursor must not make
    /// a new object's initialisation overwrite a live one.
    fn claim_range(&self, map: &Mapping, offset: usize, spec: &Spec, fresh: bool) -> Result<()> {
        let end = offset + spec.bytes().expect("checked by find_or_insert");
        let what = (
            end,
            spec.kind,
            spec.elem_size,
            spec.elem_align,
            spec.type_name,
            spec.len,
        );
        let mut ranges = self.ranges.lock().unwrap_or_else(|e| e.into_inner());
        let before = ranges.range(..=offset).next_back();
        let after = ranges.range(offset + 1..).next();
        let clash = match (before, after) {
            (Some((&o, existing)), _) if o == offset => fresh || *existing != what,
            (Some((_, existing)), _) if existing.0 > offset => true,
            (_, Some((&o, _))) => o < end,
            _ => false,
        };
        if clash {
            return Err(map.corrupt(format!(
                "the directory places {} at bytes {offset}..{end}, overlapping another object",
                spec.describe()
            )));
        }
        ranges.insert(offset, what);
        Ok(())
    }

    /// Finds the object `name` if it exists as `spec`, or creates it, calling `init` with a
    /// pointer to its (not yet published) bytes. Returns the object's offset. An insertion
    /// takes the allocation lock with the token `token` gives (asked only then: a lookup
    /// registers nobody), asking `owners` about a holder that seems stuck.
    pub(crate) fn get_or_create(
        &self,
        map: &Mapping,
        token: impl FnOnce() -> u32,
        owners: &impl Owners,
        name: &str,
        spec: &Spec,
        init: impl FnOnce(*mut u8),
    ) -> Result<usize> {
        check_name(name)?;
        if spec.elem_align > MAX_ALIGN {
            return Err(Error::UnsupportedType {
                type_name: spec.type_name.to_string(),
                reason: "alignments above 4096 bytes (the page size) are not supported: the \
                         mapping itself is only page-aligned",
            });
        }
        let bytes = spec.bytes().ok_or_else(|| Error::OutOfSpace {
            requested: u64::MAX,
            available: map.size().saturating_sub(self.heap_offset) as u64,
        })?;
        let hash = layout::fnv1a(name.as_bytes());
        if let Probe::Found(e) = self.probe(map, name, hash)? {
            return self.matching(map, name, spec, &e);
        }

        let lock = map.word(header::ALLOC_LOCK);
        let token = token();
        // Bounded: honest inserters hold this lock for microseconds, and dead ones are taken
        // over within DEATH_CHECK_INTERVAL, so only a damaged word (or a stuck live process)
        // can keep us out this long; say so rather than hang.
        match mutex::lock(lock, token, Block::after(ALLOC_LOCK_TIMEOUT), owners) {
            Outcome::Acquired => {}
            // An inserter died mid-way. Insertion is crash-safe (space and count are claimed
            // before the entry is published, and an unpublished entry is simply absent), so
            // the state is consistent as it stands.
            Outcome::OwnerDied => {
                mutex::mark_consistent(lock);
            }
            Outcome::NotRecoverable => {
                return Err(map.corrupt("the allocation lock is unrecoverable".into()));
            }
            Outcome::Busy => {
                return Err(Error::AllocationTimeout {
                    waited: ALLOC_LOCK_TIMEOUT,
                });
            }
        }
        let result = self.insert_locked(map, name, hash, spec, bytes, init);
        let _ = mutex::unlock(lock, token);
        result
    }

    fn insert_locked(
        &self,
        map: &Mapping,
        name: &str,
        hash: u64,
        spec: &Spec,
        bytes: usize,
        init: impl FnOnce(*mut u8),
    ) -> Result<usize> {
        let slot = match self.probe(map, name, hash)? {
            // Someone created it between our lookup and our taking the lock.
            Probe::Found(e) => return self.matching(map, name, spec, &e),
            Probe::Vacant(slot) => slot,
            Probe::Full => {
                return Err(Error::DirectoryFull {
                    capacity: self.capacity,
                });
            }
        };
        let count = map.u64_at(header::COUNT).load(Relaxed);
        if count >= self.capacity as u64 {
            return Err(Error::DirectoryFull {
                capacity: self.capacity,
            });
        }
        let cursor = map.u64_at(header::CURSOR).load(Relaxed);
        let cursor = usize::try_from(cursor)
            .ok()
            .filter(|c| (self.heap_offset..=map.size()).contains(c))
            .ok_or_else(|| map.corrupt(format!("allocation cursor {cursor} out of range")))?;
        let start = layout::round_up(cursor, spec.align());
        let end = start.and_then(|s| s.checked_add(bytes));
        let (start, end) = match (start, end) {
            (Some(s), Some(e)) if e <= map.size() => (s, e),
            _ => {
                return Err(Error::OutOfSpace {
                    requested: bytes as u64,
                    available: (map.size() - cursor) as u64,
                });
            }
        };

        self.claim_range(map, start, spec, true)?;
        init(map.ptr(start));

        let at = Self::entry_offset(slot);
        let type_name = short_type_name(spec.type_name);
        map.word(at + entry::KIND).store(spec.kind.tag(), Relaxed);
        map.word(at + entry::NAME_LEN)
            .store(name.len() as u32, Relaxed);
        map.word(at + entry::TYPE_LEN)
            .store(type_name.len() as u32, Relaxed);
        map.word(at + entry::ELEM_SIZE)
            .store(spec.elem_size as u32, Relaxed);
        map.word(at + entry::ELEM_ALIGN)
            .store(spec.elem_align as u32, Relaxed);
        map.u64_at(at + entry::NAME_HASH).store(hash, Relaxed);
        map.u64_at(at + entry::TYPE_HASH)
            .store(layout::fnv1a(spec.type_name.as_bytes()), Relaxed);
        map.u64_at(at + entry::OFFSET).store(start as u64, Relaxed);
        map.u64_at(at + entry::LEN).store(spec.len as u64, Relaxed);
        map.u64_at(at + entry::BYTES).store(bytes as u64, Relaxed);
        Self::write_bytes(map, at + entry::NAME, NAME_MAX, name.as_bytes());
        Self::write_bytes(
            map,
            at + entry::TYPE_NAME,
            TYPE_NAME_MAX,
            type_name.as_bytes(),
        );
        // Claim the space and the count before publishing: an inserter that dies before the
        // publication leaves an absent entry and some unused space, never an entry whose
        // memory the next object would be given too.
        map.u64_at(header::CURSOR).store(end as u64, Relaxed);
        map.u64_at(header::COUNT).store(count + 1, Relaxed);
        // Release: the object's initial contents and the fields above are visible to whoever
        // reads the state with Acquire.
        publish::publish(map.word(at + entry::STATE), layout::ENTRY_READY);
        Ok(start)
    }

    /// Every published entry, validated.
    pub(crate) fn list(&self, map: &Mapping) -> Result<Vec<ObjectInfo>> {
        Ok(self
            .list_placed(map)?
            .into_iter()
            .map(|placed| placed.info)
            .collect())
    }

    /// Every published entry, validated, with where its object lies and its element's size
    /// and alignment (for [`inspect`](super::inspect)).
    pub(crate) fn list_placed(&self, map: &Mapping) -> Result<Vec<Placed>> {
        let mut out = Vec::new();
        for slot in 0..self.slots {
            if !self.is_published(map, slot)? {
                continue;
            }
            let e = self.read_entry(map, slot)?;
            let name = Self::read_bytes(map, Self::entry_offset(slot) + entry::NAME, e.name_len);
            let name = String::from_utf8(name)
                .map_err(|_| map.corrupt(format!("directory slot {slot}: name is not UTF-8")))?;
            out.push(Placed {
                info: ObjectInfo {
                    name,
                    kind: e.kind,
                    type_name: self.type_name_of(map, &e),
                    len: e.len,
                    bytes: e.bytes,
                },
                offset: e.offset,
                elem_size: e.elem_size,
                elem_align: e.elem_align,
            });
        }
        Ok(out)
    }
}

/// A listed object and where it lies (see [`Directory::list_placed`]).
pub(crate) struct Placed {
    /// What [`Region::objects`](crate::Region::objects) says about it.
    pub(crate) info: ObjectInfo,
    /// Its first byte in the region.
    pub(crate) offset: usize,
    /// Its element's size (0 for kinds without elements).
    pub(crate) elem_size: usize,
    /// Its element's alignment.
    pub(crate) elem_align: usize,
}

impl Placed {
    /// The object's layout as the handles of its kind would lay it out in a region with
    /// `process_slots` process-table slots: where its data and its hold table start. An
    /// [`Error::Corrupt`] if the entry's size disagrees (as opening the object would say), so
    /// that everything inside the returned offsets lies inside the object.
    pub(crate) fn layout(&self, map: &Mapping, process_slots: usize) -> Result<(usize, usize)> {
        let info = &self.info;
        let (holds, stride) = match info.kind {
            Kind::Semaphore | Kind::BoundedSemaphore => (
                layout::permit_entries_for(process_slots),
                layout::PERMIT_ENTRY,
            ),
            Kind::RwLock => (layout::readers_for(process_slots), layout::READER_ENTRY),
            _ => (0, HOLD_ENTRY),
        };
        let spec = Spec {
            kind: info.kind,
            elem_size: if info.kind.has_elements() {
                self.elem_size
            } else {
                0
            },
            elem_align: self.elem_align,
            type_name: "",
            len: info.len,
            tail: if info.kind == Kind::Condition {
                info.len
            } else {
                0
            },
            holds,
            stride,
        };
        match (spec.bytes(), spec.table_offset()) {
            (Some(bytes), Some(table)) if bytes == info.bytes => Ok((spec.data_offset(), table)),
            (bytes, _) => Err(map.corrupt(format!(
                "object {:?} has {} bytes, its type needs {bytes:?}",
                info.name, info.bytes
            ))),
        }
    }
}
