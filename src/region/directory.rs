//! The directory: an open-addressing hash table of named objects.
//!
//! Entries are only ever added, never removed or changed once published, so a lookup needs no
//! lock: it probes from the name's home slot and stops at the first empty slot. Insertions are
//! serialised by the header's allocation lock (a [`mutex`](crate::protocol::mutex) word); an
//! inserter writes the object and the entry's fields, then publishes the entry's state with
//! Release ([`publish`](crate::protocol::publish)). Every field read from an entry is validated
//! before use, since any process with the file can write anything into it.

use super::layout::{self, ENTRY_SIZE, HEADER_SIZE, NAME_MAX, PAD, TYPE_NAME_MAX, entry, header};
use super::{Inner, Region};
use crate::error::{Error, Result};
use crate::protocol::mutex::{self, Outcome};
use crate::protocol::{Block, publish};
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
            _ => return None,
        })
    }

    fn has_elements(self) -> bool {
        matches!(
            self,
            Kind::Value | Kind::Array | Kind::RawValue | Kind::RawArray | Kind::RwLock
        )
    }

    fn is_array(self) -> bool {
        matches!(self, Kind::Array | Kind::RawArray)
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
        }
    }

    /// Where the data starts inside an object of this kind: after the lock word for locked
    /// kinds (aligned for the element), at once for raw kinds.
    fn data_offset(self, elem_align: usize) -> usize {
        match self {
            Kind::Value | Kind::Array => 4usize.next_multiple_of(elem_align),
            Kind::RwLock => 16usize.next_multiple_of(elem_align),
            _ => 0,
        }
    }

    /// Bytes of lock state at the start of objects of this kind.
    fn header_bytes(self) -> usize {
        match self {
            Kind::Lock => 4,
            Kind::RLock => 16,
            Kind::Semaphore | Kind::BoundedSemaphore => 16,
            Kind::Condition => 24,
            Kind::Event => 4,
            Kind::Barrier => 12,
            _ => 0,
        }
    }
}

/// What a handed-out range holds: end, kind, element size, alignment, type and length.
pub(crate) type Claim = (usize, Kind, usize, usize, &'static str, usize);

/// What a caller asks the directory for: kind, element type and length.
#[derive(Clone, Debug)]
pub(crate) struct Spec {
    kind: Kind,
    elem_size: usize,
    elem_align: usize,
    type_name: &'static str,
    len: usize,
    /// Bytes of hold table after the object's words and data (see `protocol::holds`).
    table: usize,
}

impl Spec {
    /// A lock-like object with no elements.
    pub(crate) fn plain(kind: Kind) -> Spec {
        debug_assert!(!kind.has_elements());
        Spec {
            kind,
            elem_size: 0,
            elem_align: 1,
            type_name: "",
            len: 0,
            table: 0,
        }
    }

    /// A lock-like object whose entry records `len` (a barrier's parties) and that carries a
    /// hold table of `table` bytes.
    pub(crate) fn plain_with(kind: Kind, len: usize, table: usize) -> Spec {
        Spec {
            len,
            table,
            ..Spec::plain(kind)
        }
    }

    /// Adds a hold table of `table` bytes after the data.
    pub(crate) fn with_table(self, table: usize) -> Spec {
        Spec { table, ..self }
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
            table: 0,
        }
    }

    pub(crate) fn data_offset(&self) -> usize {
        self.kind.data_offset(self.elem_align)
    }

    /// Bytes the object occupies, a multiple of [`PAD`], or `None` on overflow.
    pub(crate) fn bytes(&self) -> Option<usize> {
        let used = self.table_offset()?.checked_add(self.table)?;
        layout::round_up(used.max(1), PAD)
    }

    /// Where the hold table starts: after the words and the data, 8-aligned.
    pub(crate) fn table_offset(&self) -> Option<usize> {
        let data = if self.kind.has_elements() {
            self.elem_size.checked_mul(self.len)?
        } else {
            0
        };
        let used = (self.kind.header_bytes() + self.data_offset()).checked_add(data)?;
        if self.table == 0 {
            Some(used)
        } else {
            layout::round_up(used, 8)
        }
    }

    fn align(&self) -> usize {
        self.elem_align.max(PAD)
    }

    fn describe(&self) -> String {
        describe(self.kind, short_type_name(self.type_name), self.len)
    }
}

fn describe(kind: Kind, type_name: &str, len: usize) -> String {
    if kind == Kind::Barrier {
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

impl Inner {
    fn corrupt(&self, reason: String) -> Error {
        Error::Corrupt {
            path: self.path().map(|p| p.to_path_buf()),
            reason,
        }
    }

    fn entry_offset(&self, slot: usize) -> usize {
        HEADER_SIZE + slot * ENTRY_SIZE
    }

    /// Reads `len` bytes of a name field at `offset` in 8-byte atomic loads.
    fn read_bytes(&self, offset: usize, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len.next_multiple_of(8));
        for i in (0..len).step_by(8) {
            let word = self.u64_at(offset + i).load(Relaxed);
            out.extend_from_slice(&word.to_ne_bytes());
        }
        out.truncate(len);
        out
    }

    /// Writes `bytes` (at most `field` bytes) into a name field, zero-padded, in 8-byte stores.
    fn write_bytes(&self, offset: usize, field: usize, bytes: &[u8]) {
        for i in (0..field).step_by(8) {
            let mut chunk = [0u8; 8];
            if i < bytes.len() {
                let n = (bytes.len() - i).min(8);
                chunk[..n].copy_from_slice(&bytes[i..i + n]);
            }
            self.u64_at(offset + i)
                .store(u64::from_ne_bytes(chunk), Relaxed);
        }
    }

    /// Whether the name field at `offset` holds exactly `name` (whose length the caller already
    /// compared), compared in place, 8 bytes at a time.
    fn name_is(&self, offset: usize, name: &[u8]) -> bool {
        name.chunks(8).enumerate().all(|(i, chunk)| {
            let stored = self.u64_at(offset + 8 * i).load(Relaxed).to_ne_bytes();
            stored[..chunk.len()] == *chunk
        })
    }

    /// The element type name recorded in a validated entry (for messages and listings).
    fn type_name_of(&self, e: &Entry) -> String {
        let at = self.entry_offset(e.slot) + entry::TYPE_NAME;
        String::from_utf8_lossy(&self.read_bytes(at, e.type_len)).into_owned()
    }

    /// Validates the published entry in `slot`.
    fn read_entry(&self, slot: usize) -> Result<Entry> {
        let at = self.entry_offset(slot);
        let u32_field = |f| self.u32_at(at + f).load(Relaxed) as usize;
        let u64_field = |f| self.u64_at(at + f).load(Relaxed);
        let bad = |what: String| self.corrupt(format!("directory slot {slot}: {what}"));

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
            .filter(|&end| end <= self.size)
            .ok_or_else(|| bad(format!("object at {offset}+{bytes} beyond the region")))?;
        let align = elem_align.max(PAD);
        if offset < self.heap_offset || offset % align != 0 || end <= offset {
            return Err(bad(format!("object at {offset}+{bytes} is misplaced")));
        }
        // Inserters advance the cursor before publishing, so a published object ends at or
        // before it; one beyond it lies in free space that the next insertion would hand out
        // again.
        let cursor = self.u64_at(header::CURSOR).load(Relaxed);
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
    fn is_published(&self, slot: usize) -> Result<bool> {
        match publish::state(self.u32_at(self.entry_offset(slot) + entry::STATE)) {
            0 => Ok(false),
            layout::ENTRY_READY => Ok(true),
            other => Err(self.corrupt(format!("directory slot {slot} has state {other:#x}"))),
        }
    }

    /// Finds `name`, or the empty slot where it would go.
    fn probe(&self, name: &str, hash: u64) -> Result<Probe> {
        let mask = self.slots - 1;
        let mut slot = (hash as usize) & mask;
        for _ in 0..self.slots {
            if !self.is_published(slot)? {
                return Ok(Probe::Vacant(slot));
            }
            let at = self.entry_offset(slot);
            let same_hash = self.u64_at(at + entry::NAME_HASH).load(Relaxed) == hash;
            let same_len = self.u32_at(at + entry::NAME_LEN).load(Relaxed) as usize == name.len();
            if same_hash && same_len && self.name_is(at + entry::NAME, name.as_bytes()) {
                return Ok(Probe::Found(self.read_entry(slot)?));
            }
            slot = (slot + 1) & mask;
        }
        Ok(Probe::Full)
    }

    /// Checks that the existing entry is what `spec` asks for; returns the object's offset.
    fn matching(&self, name: &str, spec: &Spec, e: &Entry) -> Result<usize> {
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
                existing: describe(e.kind, &self.type_name_of(e), e.len),
                requested: spec.describe(),
            });
        }
        if Some(e.bytes) != spec.bytes() {
            return Err(self.corrupt(format!(
                "object {name:?} has {} bytes, its type needs {:?}",
                e.bytes,
                spec.bytes()
            )));
        }
        self.claim_range(e.offset, spec, false)?;
        Ok(e.offset)
    }

    /// Finds the object `name` if it exists as `spec`, or creates it, calling `init` with a
    /// pointer to its (not yet published) bytes. Returns the object's offset.
    pub(crate) fn get_or_create(
        &self,
        name: &str,
        spec: &Spec,
        init: impl FnOnce(*mut u8),
    ) -> Result<usize> {
        self.find_or_insert(name, spec, init)
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
    fn claim_range(&self, offset: usize, spec: &Spec, fresh: bool) -> Result<()> {
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
            return Err(self.corrupt(format!(
                "the directory places {} at bytes {offset}..{end}, overlapping another object",
                spec.describe()
            )));
        }
        ranges.insert(offset, what);
        Ok(())
    }

    fn find_or_insert(&self, name: &str, spec: &Spec, init: impl FnOnce(*mut u8)) -> Result<usize> {
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
            available: self.size.saturating_sub(self.heap_offset) as u64,
        })?;
        let hash = layout::fnv1a(name.as_bytes());
        if let Probe::Found(e) = self.probe(name, hash)? {
            return self.matching(name, spec, &e);
        }

        let lock = self.u32_at(header::ALLOC_LOCK);
        let token = self.token();
        // Bounded: honest inserters hold this lock for microseconds, and dead ones are taken
        // over within DEATH_CHECK_INTERVAL, so only a damaged word (or a stuck live process)
        // can keep us out this long; say so rather than hang.
        match mutex::lock(lock, token, Block::after(ALLOC_LOCK_TIMEOUT), self) {
            Outcome::Acquired => {}
            // An inserter died mid-way. Insertion is crash-safe (space and count are claimed
            // before the entry is published, and an unpublished entry is simply absent), so
            // the state is consistent as it stands.
            Outcome::OwnerDied => {
                mutex::mark_consistent(lock);
            }
            Outcome::NotRecoverable => {
                return Err(self.corrupt("the allocation lock is unrecoverable".into()));
            }
            Outcome::Busy => {
                return Err(Error::AllocationTimeout {
                    waited: ALLOC_LOCK_TIMEOUT,
                });
            }
        }
        let result = self.insert_locked(name, hash, spec, bytes, init);
        let _ = mutex::unlock(lock, token);
        result
    }

    fn insert_locked(
        &self,
        name: &str,
        hash: u64,
        spec: &Spec,
        bytes: usize,
        init: impl FnOnce(*mut u8),
    ) -> Result<usize> {
        let slot = match self.probe(name, hash)? {
            // Someone created it between our lookup and our taking the lock.
            Probe::Found(e) => return self.matching(name, spec, &e),
            Probe::Vacant(slot) => slot,
            Probe::Full => {
                return Err(Error::DirectoryFull {
                    capacity: self.capacity,
                });
            }
        };
        let count = self.u64_at(header::COUNT).load(Relaxed);
        if count >= self.capacity as u64 {
            return Err(Error::DirectoryFull {
                capacity: self.capacity,
            });
        }
        let cursor = self.u64_at(header::CURSOR).load(Relaxed);
        let cursor = usize::try_from(cursor)
            .ok()
            .filter(|c| (self.heap_offset..=self.size).contains(c))
            .ok_or_else(|| self.corrupt(format!("allocation cursor {cursor} out of range")))?;
        let start = layout::round_up(cursor, spec.align());
        let end = start.and_then(|s| s.checked_add(bytes));
        let (start, end) = match (start, end) {
            (Some(s), Some(e)) if e <= self.size => (s, e),
            _ => {
                return Err(Error::OutOfSpace {
                    requested: bytes as u64,
                    available: (self.size - cursor) as u64,
                });
            }
        };

        self.claim_range(start, spec, true)?;
        init(self.ptr(start));

        let at = self.entry_offset(slot);
        let type_name = short_type_name(spec.type_name);
        self.u32_at(at + entry::KIND)
            .store(spec.kind.tag(), Relaxed);
        self.u32_at(at + entry::NAME_LEN)
            .store(name.len() as u32, Relaxed);
        self.u32_at(at + entry::TYPE_LEN)
            .store(type_name.len() as u32, Relaxed);
        self.u32_at(at + entry::ELEM_SIZE)
            .store(spec.elem_size as u32, Relaxed);
        self.u32_at(at + entry::ELEM_ALIGN)
            .store(spec.elem_align as u32, Relaxed);
        self.u64_at(at + entry::NAME_HASH).store(hash, Relaxed);
        self.u64_at(at + entry::TYPE_HASH)
            .store(layout::fnv1a(spec.type_name.as_bytes()), Relaxed);
        self.u64_at(at + entry::OFFSET).store(start as u64, Relaxed);
        self.u64_at(at + entry::LEN).store(spec.len as u64, Relaxed);
        self.u64_at(at + entry::BYTES).store(bytes as u64, Relaxed);
        self.write_bytes(at + entry::NAME, NAME_MAX, name.as_bytes());
        self.write_bytes(at + entry::TYPE_NAME, TYPE_NAME_MAX, type_name.as_bytes());
        // Claim the space and the count before publishing: an inserter that dies before the
        // publication leaves an absent entry and some unused space, never an entry whose
        // memory the next object would be given too.
        self.u64_at(header::CURSOR).store(end as u64, Relaxed);
        self.u64_at(header::COUNT).store(count + 1, Relaxed);
        // Release: the object's initial contents and the fields above are visible to whoever
        // reads the state with Acquire.
        publish::publish(self.u32_at(at + entry::STATE), layout::ENTRY_READY);
        Ok(start)
    }

    /// Every published entry, validated.
    pub(crate) fn list(&self) -> Result<Vec<ObjectInfo>> {
        let mut out = Vec::new();
        for slot in 0..self.slots {
            if !self.is_published(slot)? {
                continue;
            }
            let e = self.read_entry(slot)?;
            let name = self.read_bytes(self.entry_offset(slot) + entry::NAME, e.name_len);
            let name = String::from_utf8(name)
                .map_err(|_| self.corrupt(format!("directory slot {slot}: name is not UTF-8")))?;
            out.push(ObjectInfo {
                name,
                kind: e.kind,
                type_name: self.type_name_of(&e),
                len: e.len,
                bytes: e.bytes,
            });
        }
        Ok(out)
    }
}

impl Region {
    /// Finds or creates the object `name`; returns its offset in the mapping.
    pub(crate) fn object(
        &self,
        name: &str,
        spec: &Spec,
        init: impl FnOnce(*mut u8),
    ) -> Result<usize> {
        self.inner.get_or_create(name, spec, init)
    }
}
