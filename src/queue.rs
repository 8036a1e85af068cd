//! [`Queue`] and [`ByteQueue`]: Python's `multiprocessing.Queue`, as a ring of slots in a
//! region that survives a producer or consumer killed at any instruction (see the protocol
//! crate's `queue` module for the slot words and the recovery table).

use crate::error::{Error, Result};
use crate::protocol::queue::{self as proto, Claim, MAX_CAPACITY, Slot, Slots};
use crate::protocol::{Block, Word};
use crate::region::layout::queue::{
    CAPACITY, GET_SLEEPERS, HEAD, MAX_LEN, MESSAGE, NOT_EMPTY, NOT_FULL, PUT_SLEEPERS, SLOT_ITEM,
    SLOT_LINE, SLOT_OWNER, SLOT_SEQ, STRIDE, TAIL,
};
use crate::region::{DEATH_CHECK_INTERVAL, Hold, Kind, Object, Region, Spec};
use crate::sys::FutexWord;
use bytemuck::Pod;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// What [`Queue`] and [`ByteQueue`] share: the object, its validated geometry, and the
/// protocol's steps with the copy in between.
#[derive(Clone)]
struct Core {
    object: Object,
    /// Slots, validated on open (never re-read from the region).
    capacity: u32,
    /// Bytes per slot.
    stride: usize,
    /// Where slot 0 starts in the object.
    slots: usize,
    /// Where the item starts in a slot.
    item: usize,
    /// A `ByteQueue`'s longest message (0 for a `Queue`).
    max_len: usize,
    /// When this handle may next look through the slots for an orphan while the queue looks
    /// empty (ms since `epoch()`); shared by clones.
    next_scan: Arc<AtomicU64>,
}

impl Slots for Core {
    type W = FutexWord;

    #[inline]
    fn slot(&self, index: u32) -> Slot<'_, FutexWord> {
        let at = self.slots + index as usize * self.stride;
        Slot {
            seq: self.object.word(at + SLOT_SEQ),
            owner: self.object.word(at + SLOT_OWNER),
        }
    }
}

impl Core {
    /// Finds or creates the queue `name` of `kind` with `capacity` slots of `stride` bytes
    /// (items at `item` in each, aligned to `align`), checking the words a new one is given.
    fn open(
        region: &Region,
        name: &str,
        kind: Kind,
        type_name: &'static str,
        (capacity, item, stride, align, max_len): (usize, usize, usize, usize, usize),
    ) -> Result<Core> {
        if capacity == 0 || capacity > MAX_CAPACITY as usize {
            return Err(Error::InvalidArgument(format!(
                "a queue's capacity must be 1 to {MAX_CAPACITY}, not {capacity}"
            )));
        }
        let spec = Spec::queue(kind, type_name, stride, align, capacity);
        let slots = spec.data_offset();
        let object = Object::open(region, name, &spec, |fresh| {
            fresh.word(CAPACITY).store(capacity as u32, Relaxed);
            fresh.word(STRIDE).store(stride as u32, Relaxed);
            fresh.word(MAX_LEN).store(max_len as u32, Relaxed);
            for i in 0..capacity {
                fresh
                    .word(slots + i * stride + SLOT_SEQ)
                    .store(proto::initial_seq(i as u32), Relaxed);
            }
        })?;
        // The directory checked kind, type, slot size and capacity; the words must agree.
        let found = (
            object.word(CAPACITY).load(Relaxed) as usize,
            object.word(STRIDE).load(Relaxed) as usize,
            object.word(MAX_LEN).load(Relaxed) as usize,
        );
        if found != (capacity, stride, max_len) {
            return Err(Error::Corrupt {
                path: region.path().map(Into::into),
                reason: format!(
                    "queue {name:?}: its header says capacity {}, slot size {} and message \
                     limit {}, its directory entry capacity {capacity}, slot size {stride} and \
                     limit {max_len}",
                    found.0, found.1, found.2
                ),
            });
        }
        Ok(Core {
            object,
            capacity: capacity as u32,
            stride,
            slots,
            item,
            max_len,
            next_scan: Arc::new(AtomicU64::new(0)),
        })
    }

    #[inline]
    fn proto(&self) -> proto::Queue<'_, FutexWord, Core> {
        let word = |at| self.object.word(at);
        proto::Queue {
            head: word(HEAD),
            tail: word(TAIL),
            get_sleepers: word(GET_SLEEPERS),
            not_empty: word(NOT_EMPTY),
            put_sleepers: word(PUT_SLEEPERS),
            not_full: word(NOT_FULL),
            slots: self,
            capacity: self.capacity,
        }
    }

    /// The item bytes of slot `index`.
    #[inline]
    fn item_ptr(&self, index: u32) -> *mut u8 {
        self.object
            .ptr(self.slots + index as usize * self.stride + self.item)
    }

    /// A put: claims a slot as `block` allows, lets `write` fill its item bytes, publishes.
    #[inline]
    fn put_with(&self, block: Block, write: impl FnOnce(*mut u8)) -> Result<()> {
        let region = self.object.region();
        let q = self.proto();
        let claim = q
            .reserve(region.token(), block, region)
            .map_err(|_| Error::Full)?;
        write(self.item_ptr(claim.index));
        q.publish(claim);
        q.release_put(claim);
        Ok(())
    }

    /// The first half of a get: a claimed slot holding an item, and the hold it was taken
    /// with.
    #[inline]
    fn take(&self, block: Block) -> Result<(Claim, Hold)> {
        let region = self.object.region();
        let hold = region.hold();
        let claim = self
            .proto()
            .take(hold.token, block, region, || self.scan_due())
            .map_err(|_| Error::Empty)?;
        Ok((claim, hold))
    }

    /// The second half of a get: frees the slot.
    #[inline]
    fn commit(&self, claim: Claim) {
        self.proto().commit(claim);
    }

    /// Whether a look for orphans is due (at most once per death-check interval per handle).
    fn scan_due(&self) -> bool {
        let now = millis();
        if now < self.next_scan.load(Relaxed) {
            return false;
        }
        self.next_scan
            .store(now + DEATH_CHECK_INTERVAL.as_millis() as u64, Relaxed);
        true
    }

    fn qsize(&self) -> usize {
        self.proto().len() as usize
    }
}

/// Milliseconds on the monotonic clock since the first call.
fn millis() -> u64 {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// Python's `(block, timeout)` for a put or get.
#[inline]
fn block(block: bool, timeout: Option<Duration>) -> Block {
    Block::from_python(block, timeout)
}

/// A bounded multi-producer multi-consumer queue of `T` shared between processes: Python's
/// `multiprocessing.Queue(maxsize)`, for `Pod` items.
///
/// [`put`](Queue::put) copies an item into a free slot, waiting while the queue is full;
/// [`get`](Queue::get) copies one out, waiting while it is empty. Each side sleeps on a shared
/// futex (after a short spin) until the other side wakes it; nothing polls. Items from one
/// producer come out in the order it put them (an item given back after its consumer died
/// comes out later, see below).
///
/// # Processes that die
///
/// Every slot records the process working on it, so nothing a process killed at any
/// instruction leaves behind blocks the others for more than
/// [`DEATH_CHECK_INTERVAL`](crate::DEATH_CHECK_INTERVAL):
///
/// - a producer killed inside `put` delivered its item once (if it got as far as publishing
///   it) or not at all (its claimed position is skipped);
/// - a consumer killed inside `get`, or while holding a [`get_guard`](Queue::get_guard) guard,
///   before the slot was freed: the item is delivered again, to another consumer; killed in
///   the last instructions of `get`, after freeing the slot: the item is lost (it was copied
///   out but never returned).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let region = shmsync::Region::anonymous(1 << 16)?;
/// let jobs = region.queue::<u64>("jobs", 4)?;
/// jobs.put(7, true, None)?;
/// jobs.put_nowait(8)?;
/// assert_eq!(jobs.qsize(), 2);
/// assert_eq!(jobs.get(true, Some(Duration::from_secs(1)))?, 7);
/// {
///     let job = jobs.get_guard(true, None)?; // given back if this process dies now
///     assert_eq!(*job, 8);
/// } // done: the slot is free
/// assert!(matches!(jobs.get_nowait(), Err(shmsync::Error::Empty)));
/// # Ok::<(), shmsync::Error>(())
/// ```
pub struct Queue<T> {
    core: Core,
    _items: PhantomData<fn(T) -> T>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue {
            core: self.core.clone(),
            _items: PhantomData,
        }
    }
}

impl<T: Pod> Queue<T> {
    /// Puts `item` at the back, waiting for a free slot as Python's `put(item, block,
    /// timeout)` does: `block == false` or a zero timeout tries once, `None` waits as long as
    /// it takes.
    ///
    /// # Errors
    ///
    /// [`Error::Full`] if no slot came free in time (nothing was put).
    #[inline]
    pub fn put(&self, item: T, block: bool, timeout: Option<Duration>) -> Result<()> {
        self.core.put_with(self::block(block, timeout), |at| {
            // SAFETY: `at` is the item of a slot this thread claimed (its owner word names
            // us, so no other thread or process touches its bytes until we publish), inside
            // the mapping the object keeps alive, aligned for `T` (the slot layout rounds the
            // item's offset up to `align_of::<T>()` from a base aligned to it).
            unsafe { at.cast::<T>().write(item) }
        })
    }

    /// `put(item, false, None)`.
    ///
    /// # Errors
    ///
    /// [`Error::Full`] if the queue is full.
    #[inline]
    pub fn put_nowait(&self, item: T) -> Result<()> {
        self.put(item, false, None)
    }

    /// Takes the item at the front, waiting for one as Python's `get(block, timeout)` does.
    ///
    /// # Errors
    ///
    /// [`Error::Empty`] if none came in time.
    #[inline]
    pub fn get(&self, block: bool, timeout: Option<Duration>) -> Result<T> {
        let (claim, _) = self.core.take(self::block(block, timeout))?;
        let item = self.read(claim);
        self.core.commit(claim);
        Ok(item)
    }

    /// `get(false, None)`.
    ///
    /// # Errors
    ///
    /// [`Error::Empty`] if the queue is empty.
    #[inline]
    pub fn get_nowait(&self) -> Result<T> {
        self.get(false, None)
    }

    /// Takes the item at the front as [`get`](Queue::get) does, but keeps its slot reserved
    /// until the guard is dropped: if this process dies first, the item is delivered again to
    /// another consumer (within [`DEATH_CHECK_INTERVAL`](crate::DEATH_CHECK_INTERVAL) of a
    /// consumer finding the queue empty). The slot stays occupied meanwhile, so guards held
    /// for long shrink the queue's room.
    ///
    /// # Errors
    ///
    /// [`Error::Empty`] if no item came in time.
    #[inline]
    pub fn get_guard(&self, block: bool, timeout: Option<Duration>) -> Result<QueueGuard<'_, T>> {
        let (claim, hold) = self.core.take(self::block(block, timeout))?;
        Ok(QueueGuard {
            core: &self.core,
            claim,
            hold,
            value: self.read(claim),
        })
    }

    #[inline]
    fn read(&self, claim: Claim) -> T {
        // SAFETY: the slot is claimed by this thread (no one else touches its bytes until we
        // free it), inside the live mapping, aligned for `T`; any bytes are a valid `T: Pod`.
        unsafe { self.core.item_ptr(claim.index).cast::<T>().read() }
    }

    /// Items in the queue now (a snapshot, as Python's `qsize()`; items being put or taken
    /// count).
    pub fn qsize(&self) -> usize {
        self.core.qsize()
    }

    /// Whether [`qsize`](Queue::qsize) is 0.
    pub fn empty(&self) -> bool {
        self.qsize() == 0
    }

    /// Whether [`qsize`](Queue::qsize) is the capacity.
    pub fn full(&self) -> bool {
        self.qsize() >= self.capacity()
    }

    /// The number of slots (Python's `maxsize`).
    pub fn capacity(&self) -> usize {
        self.core.capacity as usize
    }
}

impl<T: Pod> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("name", &self.core.object.name())
            .field("capacity", &self.capacity())
            .field("qsize", &self.qsize())
            .finish()
    }
}

/// A queue of byte messages of up to a fixed length, shared between processes: what a
/// `multiprocessing.Queue` carries once its items are serialized. The same protocol as
/// [`Queue`], with the same behaviour when processes die.
///
/// # Examples
///
/// ```
/// let region = shmsync::Region::anonymous(1 << 16)?;
/// let log = region.byte_queue("log", 8, 64)?; // 8 messages of up to 64 bytes
/// log.put(b"hello", true, None)?;
/// assert_eq!(log.get(true, None)?, b"hello");
/// assert!(matches!(
///     log.put(&[0; 65], true, None),
///     Err(shmsync::Error::MessageTooLong { len: 65, max: 64 })
/// ));
/// # Ok::<(), shmsync::Error>(())
/// ```
#[derive(Clone)]
pub struct ByteQueue {
    core: Core,
}

impl ByteQueue {
    /// Puts a copy of `message` at the back, waiting as [`Queue::put`] does.
    ///
    /// # Errors
    ///
    /// [`Error::MessageTooLong`] if it is longer than the queue's limit; [`Error::Full`] if no
    /// slot came free in time. Nothing is put either way.
    #[inline]
    pub fn put(&self, message: &[u8], block: bool, timeout: Option<Duration>) -> Result<()> {
        if message.len() > self.core.max_len {
            return Err(Error::MessageTooLong {
                len: message.len(),
                max: self.core.max_len,
            });
        }
        self.core.put_with(self::block(block, timeout), |at| {
            // SAFETY: a claimed slot's item (see `Queue::put`): a u32 length, 4-aligned, then
            // up to `max_len` bytes, which `message` does not exceed (checked above).
            unsafe {
                at.cast::<u32>().write(message.len() as u32);
                std::ptr::copy_nonoverlapping(message.as_ptr(), at.add(MESSAGE), message.len());
            }
        })
    }

    /// `put(message, false, None)`.
    ///
    /// # Errors
    ///
    /// As [`put`](ByteQueue::put).
    pub fn put_nowait(&self, message: &[u8]) -> Result<()> {
        self.put(message, false, None)
    }

    /// Takes the message at the front, waiting as [`Queue::get`] does.
    ///
    /// # Errors
    ///
    /// [`Error::Empty`] if none came in time; [`Error::Corrupt`] if the slot's length word
    /// was damaged (the slot is freed, the message dropped).
    #[inline]
    pub fn get(&self, block: bool, timeout: Option<Duration>) -> Result<Vec<u8>> {
        let (claim, _) = self.core.take(self::block(block, timeout))?;
        let message = self.read(claim);
        self.core.commit(claim);
        message
    }

    /// `get(false, None)`.
    ///
    /// # Errors
    ///
    /// As [`get`](ByteQueue::get).
    pub fn get_nowait(&self) -> Result<Vec<u8>> {
        self.get(false, None)
    }

    /// Takes the message at the front as [`Queue::get_guard`] does: delivered again to another
    /// consumer if this process dies before dropping the guard.
    ///
    /// # Errors
    ///
    /// As [`get`](ByteQueue::get).
    pub fn get_guard(
        &self,
        block: bool,
        timeout: Option<Duration>,
    ) -> Result<QueueGuard<'_, Vec<u8>>> {
        let (claim, hold) = self.core.take(self::block(block, timeout))?;
        match self.read(claim) {
            Ok(value) => Ok(QueueGuard {
                core: &self.core,
                claim,
                hold,
                value,
            }),
            Err(e) => {
                self.core.commit(claim);
                Err(e)
            }
        }
    }

    fn read(&self, claim: Claim) -> Result<Vec<u8>> {
        let at = self.core.item_ptr(claim.index);
        // SAFETY: a claimed slot's item (see `Queue::get`): its length word is 4-aligned.
        let len = unsafe { at.cast::<u32>().read() } as usize;
        if len > self.core.max_len {
            return Err(Error::Corrupt {
                path: self.core.object.region_handle().path().map(Into::into),
                reason: format!(
                    "byte queue {:?}: a message of {len} bytes in a queue of {}-byte messages",
                    self.core.object.name(),
                    self.core.max_len
                ),
            });
        }
        let mut message = vec![0; len];
        // SAFETY: `len` bytes after the length word lie inside the slot (checked above), which
        // is ours until freed.
        unsafe { std::ptr::copy_nonoverlapping(at.add(MESSAGE), message.as_mut_ptr(), len) };
        Ok(message)
    }

    /// Messages in the queue now (a snapshot).
    pub fn qsize(&self) -> usize {
        self.core.qsize()
    }

    /// Whether [`qsize`](ByteQueue::qsize) is 0.
    pub fn empty(&self) -> bool {
        self.qsize() == 0
    }

    /// Whether [`qsize`](ByteQueue::qsize) is the capacity.
    pub fn full(&self) -> bool {
        self.qsize() >= self.capacity()
    }

    /// The number of slots.
    pub fn capacity(&self) -> usize {
        self.core.capacity as usize
    }

    /// The longest message.
    pub fn max_len(&self) -> usize {
        self.core.max_len
    }
}

impl fmt::Debug for ByteQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ByteQueue")
            .field("name", &self.core.object.name())
            .field("capacity", &self.capacity())
            .field("max_len", &self.max_len())
            .field("qsize", &self.qsize())
            .finish()
    }
}

/// An item taken with [`Queue::get_guard`] or [`ByteQueue::get_guard`]: derefs to a copy of
/// it; its slot stays reserved until the guard is dropped, and if this process dies first
/// another consumer gets the item again.
pub struct QueueGuard<'a, V> {
    core: &'a Core,
    claim: Claim,
    hold: Hold,
    value: V,
}

impl<V> QueueGuard<'_, V> {
    /// Frees the slot now and returns the item.
    pub fn into_inner(self) -> V {
        let this = std::mem::ManuallyDrop::new(self);
        this.finish();
        // SAFETY: `this` is never used or dropped again; the value is moved out once.
        unsafe { std::ptr::read(&this.value) }
    }

    fn finish(&self) {
        // A forked child's copy of the guard leaves its parent's slot alone.
        if self.hold.is_ours() {
            self.core.commit(self.claim);
        }
    }
}

impl<V> Deref for QueueGuard<'_, V> {
    type Target = V;
    fn deref(&self) -> &V {
        &self.value
    }
}

impl<V> Drop for QueueGuard<'_, V> {
    fn drop(&mut self) {
        self.finish();
    }
}

impl<V: fmt::Debug> fmt::Debug for QueueGuard<'_, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("QueueGuard").field(&self.value).finish()
    }
}

/// The slot geometry of items of `size` bytes aligned to `align`: (item offset, stride, slot
/// alignment). Slots take whole cache lines ([`SLOT_LINE`]).
fn geometry(size: usize, align: usize) -> (usize, usize, usize) {
    let slot_align = align.max(8);
    let item = SLOT_ITEM.next_multiple_of(align);
    let stride = (item + size)
        .next_multiple_of(slot_align)
        .next_multiple_of(SLOT_LINE);
    (item, stride, slot_align)
}

impl Region {
    /// Finds or creates the [`Queue`] of `T` called `name`, with `capacity` slots (Python's
    /// `Queue(maxsize)`; 1 to 2²⁴).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a capacity of 0 or above 2²⁴; [`Error::OutOfSpace`] if it
    /// does not fit in the region; [`Error::Mismatch`] if `name` is another kind of object,
    /// item type or capacity; [`Error::Corrupt`] if its header disagrees with its directory
    /// entry; otherwise as [`Region::lock`]. Nothing is created or changed on error.
    pub fn queue<T: Pod>(&self, name: &str, capacity: usize) -> Result<Queue<T>> {
        let (item, stride, align) = geometry(size_of::<T>(), align_of::<T>());
        let core = Core::open(
            self,
            name,
            Kind::Queue,
            std::any::type_name::<T>(),
            (capacity, item, stride, align, 0),
        )?;
        Ok(Queue {
            core,
            _items: PhantomData,
        })
    }

    /// Finds or creates the [`ByteQueue`] called `name`, with `capacity` slots (1 to 2²⁴) of
    /// messages of up to `max_len` bytes.
    ///
    /// # Errors
    ///
    /// As [`Region::queue`]; [`Error::InvalidArgument`] also for a `max_len` above 2³¹.
    pub fn byte_queue(&self, name: &str, capacity: usize, max_len: usize) -> Result<ByteQueue> {
        if max_len > 1 << 31 {
            return Err(Error::InvalidArgument(format!(
                "a byte queue's messages are at most 2^31 bytes, not {max_len}"
            )));
        }
        let (item, stride, align) = geometry(MESSAGE + max_len, 4);
        let core = Core::open(
            self,
            name,
            Kind::ByteQueue,
            "u8",
            (capacity, item, stride, align, max_len),
        )?;
        Ok(ByteQueue { core })
    }
}

/// A `Queue` travels to a spawned child by region, name and capacity.
impl<T: Pod> crate::Transfer for Queue<T> {
    fn encode(&self, out: &mut crate::Encoder) -> Result<()> {
        out.object(&self.core.object)?;
        (self.capacity() as u64).encode(out)
    }
    fn decode(input: &mut crate::Decoder) -> Result<Self> {
        let (region, name) = input.object()?;
        let capacity = u64::decode(input)?;
        region.queue(&name, usize::try_from(capacity).unwrap_or(usize::MAX))
    }
}

/// A `ByteQueue` travels to a spawned child by region, name, capacity and message limit.
impl crate::Transfer for ByteQueue {
    fn encode(&self, out: &mut crate::Encoder) -> Result<()> {
        out.object(&self.core.object)?;
        (self.capacity() as u64).encode(out)?;
        (self.max_len() as u64).encode(out)
    }
    fn decode(input: &mut crate::Decoder) -> Result<Self> {
        let (region, name) = input.object()?;
        let capacity = u64::decode(input)?;
        let max_len = u64::decode(input)?;
        let size = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        region.byte_queue(&name, size(capacity), size(max_len))
    }
}
