//! The fixed shape of a region: where its directory, process table and object space lie.

use super::layout::{self, HEADER_SIZE, header};
use super::mapping::Mapping;
use crate::error::{Error, Result};
use crate::protocol::{Word, publish};
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;

/// The fixed shape of a region.
///
/// Read from the header, and validated against the file's length, once when a region is
/// mapped ([`Geometry::read`]); every later access uses this copy, whatever another process
/// writes into the header afterwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geometry {
    /// Bytes in the region (the file's length).
    pub(crate) size: usize,
    /// Directory hash-table slots (a power of two, at least 2).
    pub(crate) slots: usize,
    /// Most objects the directory accepts (at most half the slots).
    pub(crate) capacity: usize,
    /// Where the process table starts.
    pub(crate) procs_offset: usize,
    /// Process-table slots (1..=MAX_PROCS).
    pub(crate) procs: usize,
    /// Where object space starts.
    pub(crate) heap_offset: usize,
}

impl Geometry {
    /// The geometry of a new region of `size` bytes.
    pub(crate) fn for_new(size: usize, capacity: Option<usize>, procs: usize) -> Result<Geometry> {
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

    /// Fills in the header of a fresh (zero-filled, not yet shared) region and publishes it.
    pub(crate) fn write_header(&self, map: &Mapping) {
        map.u64_at(header::MAGIC)
            .store(u64::from_ne_bytes(layout::MAGIC), Relaxed);
        map.word(header::VERSION).store(layout::VERSION, Relaxed);
        map.word(header::LAYOUT).store(layout::LAYOUT, Relaxed);
        map.u64_at(header::SIZE).store(self.size as u64, Relaxed);
        map.u64_at(header::DIR_OFFSET)
            .store(HEADER_SIZE as u64, Relaxed);
        map.u64_at(header::DIR_SLOTS)
            .store(self.slots as u64, Relaxed);
        map.u64_at(header::CAPACITY)
            .store(self.capacity as u64, Relaxed);
        map.u64_at(header::HEAP_OFFSET)
            .store(self.heap_offset as u64, Relaxed);
        map.u64_at(header::CURSOR)
            .store(self.heap_offset as u64, Relaxed);
        map.u64_at(header::COUNT).store(0, Relaxed);
        map.u64_at(header::PROCS_OFFSET)
            .store(self.procs_offset as u64, Relaxed);
        map.u64_at(header::PROCS).store(self.procs as u64, Relaxed);
        map.word(header::ALLOC_LOCK).store(0, Relaxed);
        publish::publish(map.word(header::STATE), layout::READY);
    }

    /// Reads and validates the header of an existing region, mapped whole in `map` (at least
    /// [`HEADER_SIZE`] bytes): every field is checked against the file's real length before
    /// anything else is built from it.
    pub(crate) fn read(map: &Mapping, path: Option<&Path>) -> Result<Geometry> {
        let corrupt = |reason: String| Error::Corrupt {
            path: path.map(Path::to_path_buf),
            reason,
        };
        let len = map.size() as u64;
        let magic = map.u64_at(header::MAGIC).load(Relaxed).to_ne_bytes();
        if magic != layout::MAGIC {
            return Err(corrupt("no shmsync magic number at the start".into()));
        }
        let version = map.word(header::VERSION).load(Relaxed);
        if version != layout::VERSION {
            return Err(Error::VersionMismatch {
                found: version,
                expected: layout::VERSION,
            });
        }
        let found = map.word(header::LAYOUT).load(Relaxed);
        if found != layout::LAYOUT {
            return Err(Error::LayoutMismatch {
                found: layout::describe_layout(found),
                expected: layout::describe_layout(layout::LAYOUT),
            });
        }
        // Acquire: the fields below were written before the state was published.
        if publish::state(map.word(header::STATE)) != layout::READY {
            return Err(corrupt("the header was never completed".into()));
        }
        let recorded = map.u64_at(header::SIZE).load(Relaxed);
        if recorded != len {
            return Err(Error::SizeMismatch {
                path: path.map(Path::to_path_buf),
                header: recorded,
                file: len,
            });
        }
        let dir_offset = map.u64_at(header::DIR_OFFSET).load(Relaxed);
        if dir_offset != HEADER_SIZE as u64 {
            return Err(corrupt(format!(
                "directory offset {dir_offset}, expected {HEADER_SIZE}"
            )));
        }
        let slots = map.u64_at(header::DIR_SLOTS).load(Relaxed);
        let capacity = map.u64_at(header::CAPACITY).load(Relaxed);
        let heap = map.u64_at(header::HEAP_OFFSET).load(Relaxed);
        let procs = map.u64_at(header::PROCS).load(Relaxed);
        let procs_offset = map.u64_at(header::PROCS_OFFSET).load(Relaxed);
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
        Ok(Geometry {
            size: map.size(),
            slots,
            capacity: capacity as usize,
            procs_offset: expected_procs,
            procs,
            heap_offset: expected_heap,
        })
    }
}
