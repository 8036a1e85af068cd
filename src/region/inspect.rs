//! Looking at a region from outside: who holds what, read without taking a lock or writing a
//! byte, and collecting region files that nobody uses.
//!
//! [`Snapshot::open`] maps a region file read-only (`O_RDONLY | O_NOFOLLOW`, a `PROT_READ`
//! shared mapping), validates its header and directory with the very code that
//! [`Region::open`](crate::Region::open) uses (so a damaged or hostile file gives the same
//! errors), and decodes every object's words with atomic loads. Whether a holder is alive is
//! asked of its process-table slot (the generation) and of the kernel (`F_OFD_GETLK` on the
//! slot's lease byte): the onlooker never registers in the process table, never takes a lock,
//! and never writes into the file.
//!
//! A snapshot is a moment's picture: the words are read one by one while other processes go on
//! changing them, so two objects (or two words of one object, or the bytes of a value being
//! written) may be seen at slightly different moments.
//!
//! [`collect`] removes a region file that no process has mapped (the `shmsync gc` command).
//!
//! # Examples
//!
//! ```
//! use shmsync::inspect::{LockState, Snapshot, State};
//!
//! let dir = std::env::temp_dir().join(format!("shmsync-inspect-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let path = dir.join("jobs");
//! let region = shmsync::Region::create(&path, 1 << 16)?;
//! let lock = region.lock("printer")?;
//! let _guard = lock.lock()?;
//!
//! let snapshot = Snapshot::open(&path)?;
//! let printer = &snapshot.objects[0];
//! assert_eq!(printer.name, "printer");
//! match &printer.state {
//!     State::Lock(LockState::Held { holder, .. }) => {
//!         assert_eq!(holder.pid, Some(std::process::id()));
//!     }
//!     other => panic!("{other:?}"),
//! }
//! # drop(_guard);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use super::directory::{Directory, Placed};
use super::geometry::Geometry;
use super::layout;
use super::mapping::Mapping;
use super::procs::ProcessTable;
use super::{Kind, mappable_size, resolve};
use crate::error::{Error, Result};
use crate::protocol::mutex::{self, RECOVERING, TOKEN_MASK};
use crate::protocol::{Word, barrier, event, queue, rwlock, semaphore};
use crate::sys;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;

/// A picture of a region file: its shape, every object's state, and its process table.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Snapshot {
    /// The file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: usize,
    /// The user id that owns it.
    pub owner_uid: u32,
    /// The most objects its directory accepts.
    pub capacity: usize,
    /// Bytes of object space not yet used.
    pub free_bytes: usize,
    /// Slots of its process table (the most processes that may use it at once).
    pub process_slots: usize,
    /// Every object, in directory order.
    pub objects: Vec<ObjectState>,
    /// Every process-table slot that was ever claimed, in slot order.
    pub processes: Vec<Process>,
}

/// One claimed slot of a region's process table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Process {
    /// The slot.
    pub slot: usize,
    /// How many times the slot was claimed (wrapping).
    pub generation: u32,
    /// The pid of the process that claimed it last.
    pub pid: u32,
    /// Whether that process is alive: it still holds the slot's lease (`None`: the kernel
    /// would not say).
    pub alive: Option<bool>,
}

/// One object of a region and its state.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ObjectState {
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: Kind,
    /// Its element type's name (empty for kinds without elements), cut to 64 bytes.
    pub type_name: String,
    /// Elements (1 for values; the parties of a barrier; the shared lock's name length of a
    /// condition; 0 otherwise).
    pub len: usize,
    /// Bytes it occupies in the region.
    pub bytes: usize,
    /// What its words say.
    pub state: State,
}

/// What an object's words say, by kind. New kinds (a queue) will add variants.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum State {
    /// A [`Lock`](crate::Lock).
    Lock(LockState),
    /// An [`RLock`](crate::RLock).
    RLock {
        /// Its lock word.
        lock: LockState,
        /// How many times the owner entered.
        count: u32,
        /// The owning thread's id, if owned.
        owner_tid: Option<u32>,
    },
    /// A [`Value`](crate::Value) or an [`Array`](crate::Array): its lock, and for a value of
    /// a primitive number type, the value.
    Locked {
        /// Its lock word.
        lock: LockState,
        /// The value (read without the lock, so possibly mid-update), for a `Value` of a
        /// primitive number type.
        value: Option<Scalar>,
    },
    /// A [`RawValue`](crate::RawValue) or a [`RawArray`](crate::RawArray).
    Raw {
        /// The value, for a `RawValue` of a primitive number type.
        value: Option<Scalar>,
    },
    /// A [`Semaphore`](crate::Semaphore) or a [`BoundedSemaphore`](crate::BoundedSemaphore).
    Semaphore {
        /// Free permits.
        permits: u32,
        /// Whether it is broken (see [`Semaphore::repair`](crate::Semaphore::repair)).
        broken: bool,
        /// The bound of a bounded semaphore.
        bound: Option<u32>,
        /// Threads that may be asleep waiting for a permit.
        sleepers: u32,
        /// The processes that hold `permit()` guards, from its entries.
        holders: Vec<Holds>,
    },
    /// A [`Condition`](crate::Condition).
    Condition {
        /// Its own RLock's lock word (`None` for a condition on a shared RLock).
        lock: Option<LockState>,
        /// The name of the shared RLock it uses, if it does.
        shared_lock: Option<String>,
        /// Threads that may be waiting.
        sleepers: u32,
    },
    /// An [`Event`](crate::Event).
    Event {
        /// Whether the flag is set.
        set: bool,
        /// Whether a thread may be waiting.
        waiters: bool,
    },
    /// A [`Barrier`](crate::Barrier).
    Barrier {
        /// Parties that must meet.
        parties: u32,
        /// Parties arrived in the current round.
        arrived: u32,
        /// The current round (wrapping).
        round: u32,
        /// Whether the round is broken (until `reset`).
        broken: bool,
    },
    /// An [`RwLock`](crate::RwLock).
    RwLock {
        /// The writer, if one holds it.
        writer: Option<Holder>,
        /// Readers holding it.
        readers: u32,
        /// Whether a writer may be waiting.
        writers_waiting: bool,
        /// Whether a reader may be waiting.
        readers_waiting: bool,
        /// Whether a writer died holding it (until `mark_consistent`).
        poisoned: bool,
        /// Whether its reader count can no longer be trusted.
        broken: bool,
        /// The processes that hold read locks, from its reader indicators.
        holders: Vec<Holds>,
    },
    /// A [`Queue`](crate::Queue) or a [`ByteQueue`](crate::ByteQueue).
    Queue {
        /// Its slots.
        capacity: u32,
        /// Items in it (claimed positions count).
        items: u32,
        /// Producers that may be asleep (waiting for room).
        producers_asleep: u32,
        /// Consumers that may be asleep (waiting for an item).
        consumers_asleep: u32,
    },
}

/// A lock word's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LockState {
    /// Nobody holds it.
    Free,
    /// Held.
    Held {
        /// By whom.
        holder: Holder,
        /// Whether a thread may be asleep waiting for it.
        waiters: bool,
        /// Whether the holder took it over from a dead holder and has not marked it consistent.
        poisoned: bool,
    },
    /// A poisoned lock was released without being marked consistent: unusable for good.
    NotRecoverable,
}

/// The process behind a token found in a lock word, a semaphore entry or a reader indicator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Holder {
    /// The token (process-table slot and generation).
    pub token: u32,
    /// Its process-table slot (`None`: a process that could not register).
    pub slot: Option<usize>,
    /// Its pid, while its slot still names it.
    pub pid: Option<u32>,
    /// Whether it is alive.
    pub alive: Liveness,
}

/// Whether a holder is alive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Liveness {
    /// It holds its lease.
    Alive,
    /// It is gone: its lease is free, or its slot was claimed again since.
    Dead,
    /// Cannot be told: a process that could not register, or the kernel would not say.
    Unknown,
}

/// What one process holds of a semaphore or a reader-writer lock, from its entry or reader
/// indicator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Holds {
    /// The process.
    pub holder: Holder,
    /// Permits or read locks it holds.
    pub held: u32,
    /// Changes of the object's word it has in flight (begun, not yet recorded). Always 0 since
    /// region format 3: a semaphore's permit change and its record are one atomic change, and
    /// a read lock's count is its record. Kept for the JSON schema.
    pub in_flight: u32,
    /// Whether another process is giving its holds back right now.
    pub recovering: bool,
}

/// A number read from a value of a primitive number type.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Scalar {
    /// An unsigned integer (`u8` .. `u64`, `usize`).
    Unsigned(u64),
    /// A signed integer (`i8` .. `i64`, `isize`).
    Signed(i64),
    /// A float (`f32`, `f64`).
    Float(f64),
}

impl Snapshot {
    /// Reads the region file at `path` (a bare name means a file in `/dev/shm`), taking no
    /// lock and writing nothing.
    ///
    /// Files owned by other users are read too (reading cannot be abused the way using a
    /// region can); [`Snapshot::owner_uid`] says whose it is.
    ///
    /// # Errors
    ///
    /// As [`Region::open`](crate::Region::open): [`Error::NotFound`], [`Error::Truncated`],
    /// [`Error::SizeMismatch`], [`Error::VersionMismatch`], [`Error::LayoutMismatch`],
    /// [`Error::Corrupt`] (a damaged header, directory entry, or an object whose size does
    /// not fit its kind), [`Error::Io`] (a symlink, not a regular file, no permission).
    pub fn open(path: impl AsRef<Path>) -> Result<Snapshot> {
        let path = resolve(path.as_ref())?;
        let file = sys::open_read_only(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::NotFound(path.clone()),
            _ => Error::io("open", Some(&path), e),
        })?;
        let stat = |e| Error::io("stat", Some(&path), e);
        let owner_uid = sys::owner(&file).map_err(stat)?;
        let len = sys::file_len(&file).map_err(stat)?;
        let size = mappable_size(len, Some(&path))?;
        let map = Mapping::read_only(file, path.clone(), size)?;
        let geometry = Geometry::read(&map, map.path())?;
        let view = View {
            map: &map,
            procs: ProcessTable::new(&geometry),
        };
        let dir = Directory::new(&geometry);
        let objects = dir
            .list_placed(&map)?
            .into_iter()
            .map(|placed| view.object(placed))
            .collect::<Result<Vec<_>>>()?;
        let processes = (0..geometry.procs)
            .filter_map(|slot| {
                let (generation, pid, alive) = view.procs.entry(&map, slot)?;
                Some(Process {
                    slot,
                    generation,
                    pid,
                    alive,
                })
            })
            .collect();
        Ok(Snapshot {
            path,
            size,
            owner_uid,
            capacity: geometry.capacity,
            free_bytes: dir.free_bytes(&map),
            process_slots: geometry.procs,
            objects,
            processes,
        })
    }

    /// The processes of the table that are alive now.
    pub fn live_processes(&self) -> impl Iterator<Item = &Process> {
        self.processes.iter().filter(|p| p.alive == Some(true))
    }
}

/// A read-only mapping and its process table, for decoding objects.
struct View<'m> {
    map: &'m Mapping,
    procs: ProcessTable,
}

impl View<'_> {
    /// Loads the word at `offset` (validated: inside the object, 4-aligned).
    fn load(&self, offset: usize) -> u32 {
        // Relaxed: a snapshot orders nothing; and it keeps the load one that std documents as
        // sound on read-only memory.
        self.map.word(offset).load(Relaxed)
    }

    fn holder(&self, token: u32) -> Holder {
        Holder {
            token,
            slot: self.procs.slot_of(token),
            pid: self.procs.pid_of(self.map, token),
            alive: match self.procs.liveness(self.map, token) {
                Some(true) => Liveness::Alive,
                Some(false) => Liveness::Dead,
                None => Liveness::Unknown,
            },
        }
    }

    fn lock_state(&self, offset: usize) -> LockState {
        let word = self.load(offset);
        if mutex::is_locked(word) {
            LockState::Held {
                holder: self.holder(mutex::holder(word)),
                waiters: mutex::has_waiters(word),
                poisoned: mutex::is_poisoned(word),
            }
        } else if mutex::is_not_recoverable(word) {
            LockState::NotRecoverable
        } else {
            LockState::Free
        }
    }

    /// The 64-bit word at `offset` (8-aligned, validated).
    fn load_wide(&self, offset: usize) -> u64 {
        // Relaxed, as `load`.
        self.map.u64_at(offset).load(Relaxed)
    }

    /// The entries of the semaphore whose state word is `state` and whose table is at `table`
    /// that record permits or a recovery: each holder's permits are its record's plus the
    /// delta of the state word's tag if the tag names its entry and is not copied yet.
    fn permit_holders(&self, state: u64, table: usize) -> Vec<Holds> {
        (0..layout::permit_entries_for(self.procs.slots()))
            .filter_map(|i| {
                let at = table + i * layout::PERMIT_ENTRY;
                let owner = self.load(at + layout::semaphore::OWNER);
                let record = self.load_wide(at + layout::semaphore::RECORD);
                let held = semaphore::permits_of(i as u32, record, state);
                let held = held.clamp(0, i64::from(u32::MAX)) as u32;
                if owner == 0 || (held == 0 && owner & RECOVERING == 0) {
                    return None;
                }
                Some(Holds {
                    holder: self.holder(owner & TOKEN_MASK),
                    held,
                    in_flight: 0,
                    recovering: owner & RECOVERING != 0,
                })
            })
            .collect()
    }

    /// An `RwLock`'s read locks: every claimed reader indicator's, and the anonymous ones.
    fn readers(&self, base: usize, table: usize) -> u32 {
        self.reader_indicators(base, table)
            .iter()
            .fold(self.load(base + layout::rwlock::ANONYMOUS), |n, h| {
                n.saturating_add(h.held)
            })
    }

    /// The claimed reader indicators of the `RwLock` at `base` (its table at `table`) that
    /// record read locks or a recovery.
    fn reader_indicators(&self, base: usize, table: usize) -> Vec<Holds> {
        let claimed = self.load(base + layout::rwlock::CLAIMED);
        (0..layout::readers_for(self.procs.slots()))
            .filter(|&i| i < 32 && claimed & (1 << i) != 0)
            .filter_map(|i| {
                let at = base + table + i * layout::READER_ENTRY;
                let (owner, count) = (self.load(at), self.load(at + 4));
                let held = rwlock::reads(count);
                if owner == 0 || (held == 0 && owner & RECOVERING == 0) {
                    return None;
                }
                Some(Holds {
                    holder: self.holder(owner & TOKEN_MASK),
                    held,
                    in_flight: 0,
                    recovering: owner & RECOVERING != 0,
                })
            })
            .collect()
    }

    /// `len` bytes at `offset` (inside the object), read with word loads.
    fn bytes(&self, offset: usize, len: usize) -> Vec<u8> {
        let start = offset & !3;
        let mut out = Vec::with_capacity(len + 8);
        let mut at = start;
        while at < offset + len {
            out.extend_from_slice(&self.load(at).to_ne_bytes());
            at += 4;
        }
        out.drain(..offset - start);
        out.truncate(len);
        out
    }

    /// The value at `offset` if `type_name` is a primitive number type of `size` bytes.
    fn scalar(&self, offset: usize, type_name: &str, size: usize) -> Option<Scalar> {
        let expected = match type_name {
            "u8" | "i8" => 1,
            "u16" | "i16" => 2,
            "u32" | "i32" | "f32" => 4,
            "u64" | "i64" | "f64" => 8,
            "usize" | "isize" => size_of::<usize>(),
            _ => return None,
        };
        if expected != size {
            return None;
        }
        let bytes = self.bytes(offset, size);
        let mut wide = [0u8; 8];
        let raw = if cfg!(target_endian = "little") {
            wide[..size].copy_from_slice(&bytes);
            u64::from_le_bytes(wide)
        } else {
            wide[8 - size..].copy_from_slice(&bytes);
            u64::from_be_bytes(wide)
        };
        let bits = 8 * size as u32;
        Some(match type_name {
            "f32" => Scalar::Float(f64::from(f32::from_bits(raw as u32))),
            "f64" => Scalar::Float(f64::from_bits(raw)),
            t if t.starts_with('i') => {
                // Sign-extend from the type's width.
                let shift = 64 - bits;
                Scalar::Signed(((raw << shift) as i64) >> shift)
            }
            _ => Scalar::Unsigned(raw),
        })
    }

    fn object(&self, placed: Placed) -> Result<ObjectState> {
        let (data, table) = placed.layout(self.map, self.procs.slots())?;
        let base = placed.offset;
        let info = placed.info;
        let value = |kind_has_value: bool| {
            if kind_has_value {
                self.scalar(base + data, &info.type_name, placed.elem_size)
            } else {
                None
            }
        };
        let state = match info.kind {
            Kind::Lock => State::Lock(self.lock_state(base + layout::lock::WORD)),
            Kind::RLock => self.rlock(base),
            Kind::Value | Kind::Array => State::Locked {
                lock: self.lock_state(base + layout::locked::LOCK),
                value: value(info.kind == Kind::Value),
            },
            Kind::RawValue | Kind::RawArray => State::Raw {
                value: value(info.kind == Kind::RawValue),
            },
            Kind::Semaphore | Kind::BoundedSemaphore => {
                let state = self.load_wide(base + layout::semaphore::STATE);
                State::Semaphore {
                    permits: semaphore::count(state),
                    broken: semaphore::is_broken(state),
                    bound: (info.kind == Kind::BoundedSemaphore)
                        .then(|| self.load(base + layout::semaphore::BOUND)),
                    sleepers: self.load(base + layout::semaphore::SLEEPERS)
                        & semaphore::SLEEPERS_COUNT,
                    holders: self.permit_holders(state, base + table),
                }
            }
            Kind::Condition => {
                let shared = info.len > 0;
                State::Condition {
                    lock: (!shared).then(|| self.lock_state(base + layout::condition::RLOCK)),
                    shared_lock: shared.then(|| {
                        let name = self.bytes(base + layout::condition::LOCK_NAME, info.len);
                        String::from_utf8_lossy(&name).into_owned()
                    }),
                    sleepers: self.load(base + layout::condition::SLEEPERS),
                }
            }
            Kind::Event => {
                let word = self.load(base + layout::event::WORD);
                State::Event {
                    set: event::is_set(word),
                    waiters: word & event::WAITERS != 0,
                }
            }
            Kind::Barrier => {
                let word = self.load(base + layout::barrier::STATE);
                State::Barrier {
                    parties: self.load(base + layout::barrier::PARTIES),
                    arrived: barrier::arrived(word),
                    round: barrier::round(word),
                    broken: barrier::is_broken(word),
                }
            }
            Kind::RwLock => {
                let word = self.load(base + layout::rwlock::STATE);
                let flags = self.load(base + layout::rwlock::FLAGS);
                State::RwLock {
                    writer: rwlock::is_write_locked(word)
                        .then(|| self.holder(rwlock::writer(word))),
                    readers: self.readers(base, table),
                    writers_waiting: word & rwlock::WRITERS_WAITING != 0,
                    readers_waiting: word & rwlock::READERS_WAITING != 0,
                    poisoned: flags & rwlock::POISONED != 0,
                    broken: flags & rwlock::BROKEN != 0,
                    holders: self.reader_indicators(base, table),
                }
            }
            Kind::Queue | Kind::ByteQueue => {
                // The capacity from the directory entry (validated with the object's size),
                // not from the object's own word.
                let capacity = u32::try_from(info.len).unwrap_or(u32::MAX).max(1);
                let w = queue::wrap(capacity);
                let head = self.load(base + layout::queue::HEAD) % w;
                let tail = self.load(base + layout::queue::TAIL) % w;
                State::Queue {
                    capacity,
                    items: ((tail + w - head) % w).min(capacity),
                    producers_asleep: self.load(base + layout::queue::PUT_SLEEPERS),
                    consumers_asleep: self.load(base + layout::queue::GET_SLEEPERS),
                }
            }
        };
        Ok(ObjectState {
            name: info.name,
            kind: info.kind,
            type_name: info.type_name,
            len: info.len,
            bytes: info.bytes,
            state,
        })
    }

    fn rlock(&self, base: usize) -> State {
        let owner_tid = self.load(base + layout::rlock::OWNER_TID);
        State::RLock {
            lock: self.lock_state(base + layout::rlock::LOCK),
            count: self.load(base + layout::rlock::COUNT),
            owner_tid: (owner_tid != 0).then_some(owner_tid),
        }
    }
}

/// What [`collect`] found, or did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Collected {
    /// Nobody used the file: it was removed.
    Removed,
    /// Nobody uses the file: it would be removed (a dry run).
    Unused,
    /// A process has the file mapped (or is opening it, or another collector holds it).
    InUse,
    /// Nobody has the file mapped, but a process holds a lease in its process table (a process
    /// of a shmsync version without the in-use mark): kept.
    Leased,
    /// The path named another file (or nothing) by the time the file was claimed: someone
    /// else removed or replaced it. Nothing was removed.
    Replaced,
}

/// Removes the region file at `path` (a bare name means a file in `/dev/shm`) if no process
/// uses it, or with `dry_run` only says whether it would.
///
/// A process that has a region file mapped holds a shared lock on the file's *in-use* byte
/// (an open-file-description lock beside the lease bytes, which the kernel drops when the
/// process dies); an opener takes it right after open(2), then checks that the path still
/// names the file it opened. `collect` removes a file only while it holds that byte
/// exclusively (`F_OFD_SETLK`, never blocking), which it cannot get while anyone has the file
/// mapped, and which keeps every opener out until the file is gone; so a file that a process
/// is opening or using is never removed, and an opener never keeps a file that was removed.
/// Besides, the file must be a valid region owned by this user, and no slot of its process
/// table may be leased. A dry run takes nothing: it asks the kernel (`F_OFD_GETLK`).
///
/// One race remains that no lock can close: if a third party removes the file and creates a
/// new one at the same path between this function's last check and its unlink(2) (a window of
/// one system call), the new file's name is what gets removed.
///
/// # Errors
///
/// [`Error::NotFound`]; [`Error::OtherOwner`] for another user's file (never removed);
/// [`Error::Truncated`], [`Error::SizeMismatch`], [`Error::VersionMismatch`],
/// [`Error::LayoutMismatch`] or [`Error::Corrupt`] for a file that is not a valid region
/// (never removed); [`Error::Io`] for system errors.
pub fn collect(path: impl AsRef<Path>, dry_run: bool) -> Result<Collected> {
    let path = resolve(path.as_ref())?;
    let io_error = |op, e| Error::io(op, Some(&path), e);
    let file = sys::open_existing(&path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => Error::NotFound(path.clone()),
        _ => io_error("open", e),
    })?;
    let owner = sys::owner(&file).map_err(|e| io_error("stat", e))?;
    let me = sys::effective_uid();
    if owner != me {
        return Err(Error::OtherOwner {
            path: path.clone(),
            owner,
            me,
        });
    }
    let len = sys::file_len(&file).map_err(|e| io_error("stat", e))?;
    let size = mappable_size(len, Some(&path))?;
    // Validate before claiming anything: a file that is not (yet) a complete region, such as
    // a region being built under a temporary name, is never claimed.
    let map = Mapping::read_only(file, path.clone(), size)?;
    let geometry = Geometry::read(&map, map.path())?;
    let file = map.file();
    let slots = geometry.procs as u32;
    if dry_run {
        if sys::marked_in_use(file).map_err(|e| io_error("query the in-use mark of", e))? {
            return Ok(Collected::InUse);
        }
        if sys::any_lease_held(file, slots).map_err(|e| io_error("query the leases of", e))? {
            return Ok(Collected::Leased);
        }
        return Ok(Collected::Unused);
    }
    if !sys::claim_unused(file).map_err(|e| io_error("claim", e))? {
        return Ok(Collected::InUse);
    }
    // The byte is ours until `map` (and with it `file`) is dropped: no process maps the file,
    // and any opener waits. Checked while holding it: the path still names the file.
    if !sys::names(&path, file).map_err(|e| io_error("stat", e))? {
        return Ok(Collected::Replaced);
    }
    if sys::any_lease_held(file, slots).map_err(|e| io_error("query the leases of", e))? {
        return Ok(Collected::Leased);
    }
    sys::unlink(&path).map_err(|e| io_error("remove", e))?;
    Ok(Collected::Removed)
}

/// Whether the file at `path` starts like a region (the magic number), without validating
/// anything else: for listing a directory such as `/dev/shm` that holds other programs' files
/// too. Opens the file read-only, never follows a symlink, and reads 8 bytes.
pub fn is_region_file(path: impl AsRef<Path>) -> bool {
    use std::io::Read;
    let Ok(mut file) = sys::open_read_only(path.as_ref()) else {
        return false;
    };
    let mut magic = [0u8; 8];
    file.read_exact(&mut magic).is_ok() && magic == layout::MAGIC
}
