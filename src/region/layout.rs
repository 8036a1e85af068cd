//! The byte layout of a region. Every number here is part of the file format: changing one
//! means bumping [`VERSION`].
//!
//! ```text
//! 0             HEADER_SIZE          procs_offset        heap_offset                  size
//! +-------------+--------------------+-------------------+----------------------------+
//! | header      | directory          | process table     | objects, each aligned to   |
//! | (256 bytes) | slots × ENTRY_SIZE | procs × 8 bytes   | PAD and padded to it       |
//! +-------------+--------------------+-------------------+----------------------------+
//! ```
//!
//! # Header
//!
//! | offset | field            | type | meaning                                          |
//! |--------|------------------|------|--------------------------------------------------|
//! | 0      | magic            | [u8; 8] | `b"SHMSYNC\0"`                                |
//! | 8      | version          | u32  | [`VERSION`]                                       |
//! | 12     | layout           | u32  | [`LAYOUT`]: pointer width, endianness, padding    |
//! | 16     | state            | u32  | [`READY`] once the header is complete             |
//! | 24     | size             | u64  | total bytes, equal to the file's length           |
//! | 32     | dir_offset       | u64  | always [`HEADER_SIZE`]                            |
//! | 40     | dir_slots        | u64  | hash-table slots, a power of two                   |
//! | 48     | capacity         | u64  | most objects the directory accepts (≤ slots / 2)   |
//! | 56     | heap_offset      | u64  | first byte of object space, a multiple of PAD      |
//! | 64     | cursor           | u64  | first free byte of object space                   |
//! | 72     | count            | u64  | objects in the directory                          |
//! | 80     | procs_offset     | u64  | the process table, right after the directory      |
//! | 88     | procs            | u64  | process-table slots, 1..=[`MAX_PROCS`]              |
//! | 128    | alloc lock       | u32  | a mutex word serialising insertions (own line)     |
//!
//! # Directory entry (ENTRY_SIZE = 256 bytes)
//!
//! | offset | field      | type      |
//! |--------|------------|-----------|
//! | 0      | state      | u32: 0 empty, [`ENTRY_READY`] published |
//! | 4      | kind       | u32: [`Kind`](super::Kind) tag |
//! | 8      | name_len   | u32 (1..=[`NAME_MAX`]) |
//! | 12     | type_len   | u32 (0..=[`TYPE_NAME_MAX`]) |
//! | 16     | elem_size  | u32 |
//! | 20     | elem_align | u32 |
//! | 24     | name_hash  | u64 |
//! | 32     | type_hash  | u64 |
//! | 40     | offset     | u64: the object's first byte |
//! | 48     | len        | u64: elements (1 for values) |
//! | 56     | bytes      | u64: bytes reserved for the object |
//! | 64     | name       | [u8; 128] |
//! | 192    | type_name  | [u8; 64] |
//!
//! # Process table (procs × 8 bytes)
//!
//! | offset | field      | type |
//! |--------|------------|------|
//! | 0      | generation | u32: bumped by each process that claims the slot; 0 = never used |
//! | 4      | pid        | u32: the claiming process |
//!
//! A process claims a slot by taking an open-file-description write lock on byte
//! `2^40 + slot` of the region file (its *lease*, which the kernel drops when the process dies),
//! then bumping the generation. Its lock token is `generation << 10 | slot`.
//!
//! Byte `2^40 - 1` is the *in-use* byte: every process that maps a named region holds a shared
//! open-file-description lock on it, and `shmsync gc` removes a file only while it holds the
//! byte exclusively (see [`inspect::collect`](super::inspect::collect)).
//!
//! # Objects
//!
//! Each object starts on a [`PAD`] boundary and takes a whole number of [`PAD`]s: its words
//! (the table below, in the modules named after each kind), then its data (aligned for the
//! element type), then, for the kinds that have one, its table of per-process records: a
//! semaphore's has [`permit_entries_for`]`(procs)` entries (at most 64, one per process that
//! takes `Permit`s, claimed on first use), [`PERMIT_ENTRY`] bytes each; an `RwLock`'s has
//! [`readers_for`]`(procs)` reader indicators (at most 32, one per process that uses the lock,
//! claimed on first use), [`READER_ENTRY`] bytes each, [`PAD`]-aligned so that each process's
//! read locks touch a cache line of their own.
//!
//! | kind | words (offset: meaning) | bytes of words | after the words |
//! |------|-------------------------|----------------|-----------------|
//! | Lock | 0: lock word | 4 | — |
//! | RLock | 0: lock word, 4: owner thread, 8: count, 12: owner token | 16 | — |
//! | Value, Array | 0: lock word | 4 | the elements |
//! | RawValue, RawArray | none | 0 | the elements |
//! | Semaphore, BoundedSemaphore | 0: state (64-bit: count, broken mark and in-flight tag), 8: bound, 64: sleepers, 68: wake sequence | 128 | the entries (each 0: owner token, 4: unused, 8: record (64-bit: epoch, permits held)) |
//! | Condition | 0..16: its RLock's words (on a shared lock: 0 is 0 for an RLock, `ON_LOCK` for a Lock), 16: sequence, 20: sleepers | 24 | a shared lock's name (the entry's `len` bytes) |
//! | Event | 0: flag | 4 | — |
//! | Barrier | 0: state, 4: resets, 8: parties | 12 | — |
//! | RwLock | 0: state, 4: flags, 8: claimed indicators, 12: anonymous readers | 16 | the value, then the reader indicators (each 0: owner token, 4: read count, 8..128: unused) |
//! | Queue, ByteQueue | 0: capacity, 4: slot stride, 8: message limit (ByteQueue; 0 for Queue), 128: tail, 256: head, 384: consumers asleep, 388: not-empty ticket, 512: producers asleep, 516: not-full ticket | 640 | `capacity` slots of `stride` bytes (a multiple of 64): seq, owner, then the item (a `ByteQueue`'s: a u32 length and up to the limit's bytes) |

const _: () = assert!(semaphore::WORDS == PAD);

/// The first eight bytes of every region.
pub const MAGIC: [u8; 8] = *b"SHMSYNC\0";
/// The format version this build reads and writes.
/// 2: an `RwLock` keeps reader indicators (claimed on first use, [`READER_ENTRY`] bytes each)
/// instead of a hold table per process slot, and two more words. The queue kinds (tags 13 and
/// 14) came in the same version, as pure additions.
/// 3: a semaphore keeps its count and an in-flight tag in one 64-bit word, a wake sequence, and
/// [`permit_entries_for`]`(procs)` entries claimed on first use instead of a hold table per
/// process slot.
pub const VERSION: u32 = 3;
/// The padding unit: objects start on, and are padded to, multiples of it, so no two objects
/// share a cache line (128 bytes covers the adjacent-line prefetcher of x86-64, as
/// crossbeam-utils' `CachePadded` does).
pub const PAD: usize = 128;
const _: () = assert!(PAD >= std::mem::align_of::<crossbeam_utils::CachePadded<u8>>());

/// The layout fingerprint: pointer width in bytes (bits 0..8), 1 for little-endian or 2 for
/// big-endian (bits 8..16), log2 of [`PAD`] (bits 16..24).
pub const LAYOUT: u32 = layout_fingerprint(
    std::mem::size_of::<usize>() as u32,
    cfg!(target_endian = "little"),
    PAD.trailing_zeros(),
);

const fn layout_fingerprint(ptr_bytes: u32, little: bool, pad_log2: u32) -> u32 {
    ptr_bytes | (if little { 1 } else { 2 }) << 8 | pad_log2 << 16
}

/// A human-readable form of a layout fingerprint, for error messages.
pub fn describe_layout(layout: u32) -> String {
    let endian = match (layout >> 8) & 0xff {
        1 => "little-endian",
        2 => "big-endian",
        _ => "unknown-endian",
    };
    let pad = 1u64.checked_shl((layout >> 16) & 0xff).unwrap_or(0);
    format!(
        "{}-bit {endian} with {pad}-byte padding",
        (layout & 0xff) * 8
    )
}

/// The header's state once it is complete.
pub const READY: u32 = 0x5245_4459; // "READ" + "Y"
/// A directory entry's state once it is published.
pub const ENTRY_READY: u32 = 1;

pub const HEADER_SIZE: usize = 256;
pub const ENTRY_SIZE: usize = 256;
/// Longest object name, in bytes of UTF-8.
pub const NAME_MAX: usize = 128;
/// Longest element type name kept in an entry (longer names are cut, on a char boundary).
pub const TYPE_NAME_MAX: usize = 64;

pub mod header {
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = 8;
    pub const LAYOUT: usize = 12;
    pub const STATE: usize = 16;
    pub const SIZE: usize = 24;
    pub const DIR_OFFSET: usize = 32;
    pub const DIR_SLOTS: usize = 40;
    pub const CAPACITY: usize = 48;
    pub const HEAP_OFFSET: usize = 56;
    pub const CURSOR: usize = 64;
    pub const COUNT: usize = 72;
    pub const PROCS_OFFSET: usize = 80;
    pub const PROCS: usize = 88;
    pub const ALLOC_LOCK: usize = 128;
}

/// The largest process table (and the default): at most this many processes use one region at
/// a time.
pub const MAX_PROCS: usize = 1 << SLOT_BITS;
/// Bytes per process-table slot.
pub const PROC_ENTRY: usize = 8;
/// Bits of a lock token that name the process-table slot.
pub const SLOT_BITS: u32 = 10;

pub mod proc {
    pub const GENERATION: usize = 0;
    pub const PID: usize = 4;
}

/// The stride of a table for kinds that have none (any non-zero value).
pub const HOLD_ENTRY: usize = 8;

/// Bytes of one semaphore entry: an owner word, an unused word, and a 64-bit record (see the
/// protocol crate's `semaphore` module).
pub const PERMIT_ENTRY: usize = 16;

/// The entries of a semaphore in a region of `procs` process slots: one per process that may
/// take `Permit`s, at most 64; processes beyond that take permits that are not given back if
/// they die (as Python's `acquire()`).
pub fn permit_entries_for(procs: usize) -> usize {
    procs.clamp(1, 64)
}

/// Bytes of one `RwLock` reader indicator: an owner word and a read-count word, padded to a
/// cache-line pair of its own (see the protocol crate's `rwlock` module).
pub const READER_ENTRY: usize = PAD;

/// The reader indicators of an `RwLock` in a region of `procs` process slots: one per process
/// that may use it, at most 32 (the width of the `claimed` word); processes beyond that read
/// through the lock's anonymous count.
pub fn readers_for(procs: usize) -> usize {
    procs.clamp(1, 32)
}

/// A [`Lock`](crate::Lock)'s word.
pub mod lock {
    /// The mutex word.
    pub const WORD: usize = 0;
    /// Bytes of words.
    pub const WORDS: usize = 4;
}

/// An [`RLock`](crate::RLock)'s words (also the first words of a
/// [`Condition`](crate::Condition)).
pub mod rlock {
    /// The mutex word.
    pub const LOCK: usize = 0;
    /// The owning thread's id.
    pub const OWNER_TID: usize = 4;
    /// The recursion count.
    pub const COUNT: usize = 8;
    /// The owning process's token.
    pub const OWNER_TOKEN: usize = 12;
    /// Bytes of words.
    pub const WORDS: usize = 16;
}

/// A [`Value`](crate::Value)'s or an [`Array`](crate::Array)'s lock word, before the data.
pub mod locked {
    /// The mutex word.
    pub const LOCK: usize = 0;
    /// Bytes of words (the data starts here, rounded up to the element's alignment).
    pub const WORDS: usize = 4;
}

/// A [`Semaphore`](crate::Semaphore)'s or a [`BoundedSemaphore`](crate::BoundedSemaphore)'s
/// words, before its entries.
pub mod semaphore {
    /// The 64-bit state: free permits, broken mark, in-flight tag.
    pub const STATE: usize = 0;
    /// The most permits a release may make.
    pub const BOUND: usize = 8;
    /// Threads that may be sleeping (on a cache line of its own: a sleeper's count and a wake's
    /// bump do not take the state word's line away from the process holding it).
    pub const SLEEPERS: usize = 64;
    /// The word sleepers sleep on, bumped to wake them.
    pub const WAKES: usize = 68;
    /// Bytes of words: a cache-line pair ([`PAD`](super::PAD)), so that entries written by
    /// settling tags never share a line with the state word.
    pub const WORDS: usize = 128;
    /// In an entry: the owner's token.
    pub const OWNER: usize = 0;
    /// In an entry: the 64-bit record.
    pub const RECORD: usize = 8;
}

/// A [`Condition`](crate::Condition)'s words: its [`RLock`](crate::RLock)'s, then its own.
pub mod condition {
    /// Where its RLock's words start (used when the condition has its own lock).
    pub const RLOCK: usize = 0;
    /// Bumped by each notify.
    pub const SEQ: usize = crate::region::layout::rlock::WORDS;
    /// Threads that may be waiting.
    pub const SLEEPERS: usize = SEQ + 4;
    /// Bytes of words.
    pub const WORDS: usize = SLEEPERS + 4;
    /// Where a condition on a shared RLock keeps that lock's name (as many bytes as the
    /// directory entry's `len`).
    pub const LOCK_NAME: usize = WORDS;
    /// In a condition on a shared lock, the first word (unused by the lock, which lives
    /// elsewhere) says which kind of lock: 0 an RLock, [`ON_LOCK`] a Lock.
    pub const SHARED_KIND: usize = 0;
    /// [`SHARED_KIND`] of a condition on a `Lock` ("LOCK").
    pub const ON_LOCK: u32 = 0x4c4f_434b;
}

/// An [`Event`](crate::Event)'s word.
pub mod event {
    /// The flag, waiters bit and generation.
    pub const WORD: usize = 0;
    /// Bytes of words.
    pub const WORDS: usize = 4;
}

/// A [`Barrier`](crate::Barrier)'s words.
pub mod barrier {
    /// The round and the arrivals.
    pub const STATE: usize = 0;
    /// Which rounds ended by a reset.
    pub const RESETS: usize = 4;
    /// The number of parties (also in the directory entry's `len`).
    pub const PARTIES: usize = 8;
    /// Bytes of words.
    pub const WORDS: usize = 12;
}

/// A [`Queue`](crate::Queue)'s or a [`ByteQueue`](crate::ByteQueue)'s words, then its slots
/// (see the protocol crate's `queue` module). The words each side writes sit on cache lines of
/// their own.
pub mod queue {
    /// The number of slots (also the directory entry's `len`), checked on open.
    pub const CAPACITY: usize = 0;
    /// Bytes per slot (also the directory entry's `elem_size`), checked on open.
    pub const STRIDE: usize = 4;
    /// A `ByteQueue`'s longest message (0 for a `Queue`), checked on open.
    pub const MAX_LEN: usize = 8;
    /// The next put's position.
    pub const TAIL: usize = 128;
    /// The next get's position.
    pub const HEAD: usize = 256;
    /// Consumers that may be asleep.
    pub const GET_SLEEPERS: usize = 384;
    /// Bumped to wake consumers.
    pub const NOT_EMPTY: usize = 388;
    /// Producers that may be asleep.
    pub const PUT_SLEEPERS: usize = 512;
    /// Bumped to wake producers.
    pub const NOT_FULL: usize = 516;
    /// Bytes of words (the slots start here, rounded up to the item's alignment).
    pub const WORDS: usize = 640;
    /// In a slot: position and phase.
    pub const SLOT_SEQ: usize = 0;
    /// In a slot: who works on it.
    pub const SLOT_OWNER: usize = 4;
    /// In a slot: where the item starts (rounded up to its alignment).
    pub const SLOT_ITEM: usize = 8;
    /// In a `ByteQueue` slot's item: the message's length (a u32), then its bytes.
    pub const MESSAGE: usize = 4;
    /// A slot's stride is a multiple of this (a cache line): a producer filling one slot and
    /// a consumer emptying the one before never share a line. With 16-byte slots (four to a
    /// line, as crossbeam's `ArrayQueue` packs them) one producer and one consumer process
    /// moved 4.3 M `u64` items/s on the 2-CPU VM; with 64-byte slots 11.3 M, same run
    /// conditions (128-byte slots were no faster).
    pub const SLOT_LINE: usize = 64;
}

/// An [`RwLock`](crate::RwLock)'s words, before the value and the reader indicators.
pub mod rwlock {
    /// Readers or the writer's token, and the waiting bits.
    pub const STATE: usize = 0;
    /// Poison and breakage.
    pub const FLAGS: usize = 4;
    /// Bit `i`: reader indicator `i` belongs to a process.
    pub const CLAIMED: usize = 8;
    /// Read locks of readers without an indicator.
    pub const ANONYMOUS: usize = 12;
    /// Bytes of words (the value starts here, rounded up to its alignment).
    pub const WORDS: usize = 16;
}

pub mod entry {
    pub const STATE: usize = 0;
    pub const KIND: usize = 4;
    pub const NAME_LEN: usize = 8;
    pub const TYPE_LEN: usize = 12;
    pub const ELEM_SIZE: usize = 16;
    pub const ELEM_ALIGN: usize = 20;
    pub const NAME_HASH: usize = 24;
    pub const TYPE_HASH: usize = 32;
    pub const OFFSET: usize = 40;
    pub const LEN: usize = 48;
    pub const BYTES: usize = 56;
    pub const NAME: usize = 64;
    pub const TYPE_NAME: usize = 192;
}

const _: () = assert!(entry::NAME + NAME_MAX == entry::TYPE_NAME);
const _: () = assert!(entry::TYPE_NAME + TYPE_NAME_MAX == ENTRY_SIZE);
const _: () = assert!(header::ALLOC_LOCK + 4 <= HEADER_SIZE);
const _: () = assert!(HEADER_SIZE % PAD == 0 && ENTRY_SIZE % 8 == 0);

/// Objects a region of `size` bytes holds by default: one per 4 KiB, at least 16.
pub fn default_capacity(size: u64) -> usize {
    (size / 4096).clamp(16, 1 << 24) as usize
}

/// Hash-table slots for `capacity` objects: at least twice as many, a power of two, so the
/// table stays at most half full and probe sequences stay short.
pub fn slots_for(capacity: usize) -> Option<usize> {
    capacity.checked_mul(2)?.checked_next_power_of_two()
}

/// Where the process table starts for a directory of `slots`.
pub fn procs_offset(slots: usize) -> Option<usize> {
    slots.checked_mul(ENTRY_SIZE)?.checked_add(HEADER_SIZE)
}

/// Where object space starts for a directory of `slots` and a table of `procs` processes.
pub fn heap_offset(slots: usize, procs: usize) -> Option<usize> {
    let end = procs_offset(slots)?.checked_add(procs.checked_mul(PROC_ENTRY)?)?;
    round_up(end, PAD)
}

/// `n` rounded up to a multiple of `align` (a power of two).
pub fn round_up(n: usize, align: usize) -> Option<usize> {
    debug_assert!(align.is_power_of_two());
    Some(n.checked_add(align - 1)? & !(align - 1))
}

/// 64-bit FNV-1a, the directory's hash (the same in every process and build).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_description_is_readable() {
        assert_eq!(
            describe_layout(LAYOUT),
            "64-bit little-endian with 128-byte padding"
        );
        assert_eq!(
            describe_layout(0x0007_0204),
            "32-bit big-endian with 128-byte padding"
        );
    }

    #[test]
    fn geometry_arithmetic_refuses_overflow() {
        assert_eq!(slots_for(16), Some(32));
        assert_eq!(slots_for(17), Some(64));
        assert_eq!(slots_for(usize::MAX), None);
        assert_eq!(
            heap_offset(32, MAX_PROCS),
            Some(HEADER_SIZE + 32 * ENTRY_SIZE + MAX_PROCS * PROC_ENTRY)
        );
        assert_eq!(
            heap_offset(32, 1),
            Some(HEADER_SIZE + 32 * ENTRY_SIZE + PAD)
        );
        assert_eq!(heap_offset(usize::MAX / 2, 1), None);
        assert_eq!(round_up(129, 128), Some(256));
        assert_eq!(round_up(usize::MAX, 128), None);
    }

    #[test]
    fn fnv_matches_reference_values() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
