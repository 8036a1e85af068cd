//! Fuzz target `api_model`: a random sequence of API calls on one anonymous region, every result
//! compared with a small in-memory model of what the library must do.
//!
//! The input decodes (with `arbitrary`) into a directory capacity, a region size and a list of
//! operations. The region is `Region::options().capacity(C).anonymous(S)`; sizes too small for
//! the header, directory and process table must give `Error::InvalidSize`. Then each operation
//! runs against the region and against the model:
//!
//! - creating or opening an object by name (a small set of names, so that they collide, plus
//!   names that are empty, 128 or 129 bytes long, or contain NUL) as a `Lock`, `RLock`,
//!   `Value<u64>`, `Value<f64>`, `Array<i32>`, `RawValue<u32>` or `RawArray<u8>`: the model
//!   predicts the handle of an existing object, a new object, or `InvalidName`, `Mismatch` (with
//!   its two descriptions), `DirectoryFull` or `OutOfSpace` (with the exact byte counts: objects
//!   are allocated one after another, each padded to a multiple of 128 bytes);
//! - non-blocking lock calls (`try_lock`, zero timeouts, `acquire(false, _)`), `release`,
//!   `mark_consistent`; blocking calls (`lock()`, `acquire(true, None)`, `load`, `store`, ...)
//!   only where the model says they return at once; guards are kept in a list and dropped at
//!   random, or dropped at once;
//! - the data operations of each kind, including out-of-range indexes and wrong slice lengths on
//!   arrays (`RawArray` is only indexed in range: out of range it panics by design);
//!   while the fuzzing thread holds a value's lock, its data is read and written through the
//!   guard instead.
//!
//! After every operation every handle of every object is checked against the model (its value,
//! lock state, holder, RLock count and owner), `objects()` must list exactly the model's objects
//! and `free_bytes()` must match the model's allocation cursor: whatever fails, nothing already
//! stored may change. Any difference panics with the step, the operation and what differed.

#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use shmsync::{
    Array, ArrayGuard, DataLock, Error, Kind, Lock, LockGuard, ObjectInfo, Owner, RLock,
    RLockGuard, RawArray, RawValue, Region, TryLockError, Value, ValueGuard,
};
use std::cell::UnsafeCell;
use std::fmt;
use std::time::Duration;

// The region layout (src/region/layout.rs), for the model of the allocator.
const PAD: usize = 128;
const HEADER_SIZE: usize = 256;
const ENTRY_SIZE: usize = 256;
/// The default process table: 1024 slots of 8 bytes.
const PROC_TABLE: usize = 1024 * 8;
const NAME_MAX: usize = 128;

/// Operations run per input (the rest are ignored), so that every input runs fast.
const MAX_OPS: usize = 200;
/// Handles kept per object for the checks (more are checked once, when they are made).
const MAX_HANDLES: usize = 4;

fn round_up(n: usize) -> usize {
    n.div_ceil(PAD) * PAD
}

/// Where object space starts in a region whose directory holds `capacity` objects.
fn heap_offset(capacity: usize) -> usize {
    let slots = (2 * capacity).next_power_of_two();
    round_up(HEADER_SIZE + slots * ENTRY_SIZE + PROC_TABLE)
}

#[derive(Arbitrary, Debug)]
struct Input {
    capacity: u8,
    size: SizeSel,
    ops: Vec<Op>,
}

/// The region size: mostly sizes a few objects fill (so that `OutOfSpace` happens), some
/// too small (`InvalidSize`), some large (where only the directory fills up).
#[derive(Arbitrary, Debug, Clone, Copy)]
struct SizeSel {
    sel: u8,
    pads: u8,
    extra: u8,
}

impl SizeSel {
    fn size(self, heap: usize) -> usize {
        match self.sel {
            // Too small by 1 to 256 bytes.
            0..=15 => heap + PAD - 1 - self.extra as usize,
            16..=63 => 256 * 1024,
            // 0 to 23 objects of 128 bytes (0: too small), and an odd tail.
            _ => heap + (self.pads as usize % 24) * PAD + self.extra as usize % PAD,
        }
    }
}

/// Names: ten short ones (more than a directory holds), two 128-byte ones that differ only in
/// their last byte, a 128-byte non-ASCII one, and invalid ones.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum NameSel {
    Short(u8),
    Long128,
    Long128Other,
    Unicode128,
    Empty,
    Long129,
    Unicode129,
    Nul,
    NulOnly,
}

const SHORT: [&str; 10] = [
    "a",
    "b",
    "c",
    "d",
    "e",
    "counter",
    "counter2",
    "abcdefgh1",
    "abcdefgh2",
    "é",
];

impl NameSel {
    fn name(self) -> String {
        match self {
            NameSel::Short(i) => SHORT[i as usize % SHORT.len()].to_string(),
            NameSel::Long128 => "x".repeat(128),
            NameSel::Long128Other => "x".repeat(127) + "y",
            NameSel::Unicode128 => "é".repeat(64),
            NameSel::Empty => String::new(),
            NameSel::Long129 => "x".repeat(129),
            NameSel::Unicode129 => "é".repeat(64) + "x",
            NameSel::Nul => "a\0b".to_string(),
            NameSel::NulOnly => "\0".to_string(),
        }
    }
}

/// What to create (or open), with the initial contents of a new object.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum What {
    Lock,
    RLock,
    U64(u64),
    F64(u64),
    Array { len: u8, seed: i32 },
    RawU32(u32),
    RawU8 { len: u8, seed: u8 },
}

impl What {
    fn shape(self) -> Shape {
        match self {
            What::Lock => Shape::Lock,
            What::RLock => Shape::RLock,
            What::U64(_) => Shape::U64,
            What::F64(_) => Shape::F64,
            What::Array { len, .. } => Shape::Arr(match len {
                0..=239 => len as usize % 9,
                // 31 elements fill 128 bytes after the lock word, 32 need 256.
                240..=247 => 31,
                _ => 32,
            }),
            What::RawU32(_) => Shape::RawU32,
            What::RawU8 { len, .. } => Shape::RawU8(match len % 16 {
                l @ 0..=8 => l as usize,
                9 => 127,
                10 => 128,
                11 => 129,
                12 => 255,
                13 => 256,
                14 => 257,
                _ => 1000,
            }),
        }
    }
}

fn ints(seed: i32, len: usize) -> Vec<i32> {
    (0..len)
        .map(|i| seed.wrapping_add((i as i32).wrapping_mul(7919)))
        .collect()
}

fn bytes(seed: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| seed.wrapping_add(i as u8)).collect()
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Op {
    Create {
        name: NameSel,
        what: What,
    },
    /// A call on handle `h` of object `obj` (both taken modulo what exists).
    On {
        obj: u8,
        h: u8,
        call: Call,
    },
    /// `Value::get_mut` / `Array::get_mut` with a held `LockGuard`: refused with `WrongLock`
    /// unless it is the object's own lock.
    GetMut {
        guard: u8,
        obj: u8,
        h: u8,
        v: u64,
    },
    DropGuard {
        which: u8,
    },
    DropAll,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Call {
    /// `try_lock` (`how` 0), `try_lock_for(ZERO)` (1), or `get_lock().try_lock()` (2, for values
    /// and arrays); the guard is kept or dropped at once.
    Try {
        keep: bool,
        how: u8,
    },
    /// The blocking `lock()`, only when the model says it returns at once.
    Lock {
        keep: bool,
    },
    /// `acquire(false, None)`, `acquire(true, Some(ZERO))`, or `acquire(true, None)` when that
    /// returns at once; for values and arrays `get_lock().lock()` / `.try_lock()`.
    Acquire {
        how: u8,
    },
    /// `release()`; for values and arrays, drops the guard held on them, if any.
    Release,
    MarkConsistent,
    Store {
        i: u8,
        v: u64,
    },
    Load {
        i: u8,
    },
    FetchAdd {
        i: u8,
        v: u64,
        sub: bool,
    },
    Swap {
        i: u8,
        v: u64,
    },
    Cas {
        i: u8,
        hit: bool,
        current: u64,
        new: u64,
    },
    Set {
        index: Index,
        v: i32,
    },
    Get {
        index: Index,
    },
    /// With the array's length (`None`) or `len % 10`.
    CopyFrom {
        len: Option<u8>,
        seed: i32,
    },
    ToVec,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Index {
    In(u8),
    Past(u8),
    Max,
}

impl Index {
    /// The index for an array of `len` elements (`In` of an empty array is past its end).
    fn resolve(self, len: usize) -> usize {
        match self {
            Index::In(i) if len > 0 => i as usize % len,
            Index::In(i) | Index::Past(i) => len + i as usize,
            Index::Max => usize::MAX,
        }
    }
}

/// The kind, element type and length of an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    Lock,
    RLock,
    U64,
    F64,
    Arr(usize),
    RawU32,
    RawU8(usize),
}

impl Shape {
    fn kind(self) -> Kind {
        match self {
            Shape::Lock => Kind::Lock,
            Shape::RLock => Kind::RLock,
            Shape::U64 | Shape::F64 => Kind::Value,
            Shape::Arr(_) => Kind::Array,
            Shape::RawU32 => Kind::RawValue,
            Shape::RawU8(_) => Kind::RawArray,
        }
    }

    fn type_name(self) -> &'static str {
        match self {
            Shape::Lock | Shape::RLock => "",
            Shape::U64 => "u64",
            Shape::F64 => "f64",
            Shape::Arr(_) => "i32",
            Shape::RawU32 => "u32",
            Shape::RawU8(_) => "u8",
        }
    }

    fn len(self) -> usize {
        match self {
            Shape::Lock | Shape::RLock => 0,
            Shape::U64 | Shape::F64 | Shape::RawU32 => 1,
            Shape::Arr(n) | Shape::RawU8(n) => n,
        }
    }

    /// Bytes the object takes in the region: lock state, the data (after the lock word,
    /// aligned for the element, for locked kinds), rounded up to the padding unit.
    fn bytes(self) -> usize {
        let used = match self {
            Shape::Lock => 4,
            Shape::RLock => 16,
            Shape::U64 | Shape::F64 => 8 + 8,
            Shape::Arr(n) => 4 + 4 * n,
            Shape::RawU32 => 4,
            Shape::RawU8(n) => n,
        };
        round_up(used.max(1))
    }

    /// As `Error::Mismatch` describes it.
    fn describe(self) -> String {
        match self {
            Shape::Lock => "Lock".into(),
            Shape::RLock => "RLock".into(),
            Shape::U64 => "Value<u64>".into(),
            Shape::F64 => "Value<f64>".into(),
            Shape::Arr(n) => format!("Array<i32; {n}>"),
            Shape::RawU32 => "RawValue<u32>".into(),
            Shape::RawU8(n) => format!("RawArray<u8; {n}>"),
        }
    }
}

enum Handle {
    Lock(Lock),
    RLock(RLock),
    U64(Value<u64>),
    F64(Value<f64>),
    Arr(Array<i32>),
    RawU32(RawValue<u32>),
    RawU8(RawArray<u8>),
}

enum Guard<'a> {
    /// Of a `Lock`, or of a value's or array's `get_lock()`.
    Lock(LockGuard<'a>),
    /// Only ever dropped: an `RLock` is read through its handle.
    #[allow(dead_code)]
    RLock(RLockGuard<'a>),
    U64(ValueGuard<'a, u64>),
    F64(ValueGuard<'a, f64>),
    Arr(ArrayGuard<'a, i32>),
}

struct Held<'a> {
    obj: usize,
    guard: Guard<'a>,
}

/// An object as the model knows it.
struct Obj<'a> {
    name: String,
    shape: Shape,
    /// Handles kept for the checks (the first `MAX_HANDLES` made).
    handles: Vec<&'a Handle>,
    /// `Lock`, `Value`, `Array`: whether the lock word is held (by this thread: nobody else
    /// uses the region).
    locked: bool,
    /// `RLock`: how many times this thread holds it.
    count: u32,
    /// `Value<u64>`, `Value<f64>` (its bits), `RawValue<u32>`.
    val: u64,
    /// `Array<i32>`.
    ints: Vec<i32>,
    /// `RawArray<u8>`.
    bytes: Vec<u8>,
}

/// Allocates values that stay put until the arena is dropped, so that guards can borrow
/// handles created after other guards were taken.
struct Arena<T> {
    items: UnsafeCell<Vec<*mut T>>,
}

impl<T> Arena<T> {
    fn new() -> Self {
        Arena {
            items: UnsafeCell::new(Vec::new()),
        }
    }

    fn alloc(&self, value: T) -> &T {
        let ptr = Box::into_raw(Box::new(value));
        // SAFETY: the vector is only reached here and in `drop`, and no reference to it (only
        // copies of the pointers it holds) ever leaves either; the arena is not `Sync`.
        unsafe { (*self.items.get()).push(ptr) };
        // SAFETY: the box is only freed when the arena is dropped, which the borrow of `self`
        // the result carries rules out while it lives; nothing writes through the pointer.
        unsafe { &*ptr }
    }
}

impl<T> Drop for Arena<T> {
    fn drop(&mut self) {
        for ptr in self.items.get_mut().drain(..) {
            // SAFETY: made by `Box::into_raw` in `alloc`, freed once, here, after every borrow
            // of the arena has ended.
            drop(unsafe { Box::from_raw(ptr) });
        }
    }
}

/// Where the run is, for failure messages.
struct Ctx {
    size: usize,
    capacity: usize,
    step: usize,
    op: Option<Op>,
}

#[track_caller]
fn fail(ctx: &Ctx, msg: impl fmt::Display) -> ! {
    panic!(
        "api_model: region of {} bytes, capacity {}: step {} ({:?}): {msg}",
        ctx.size, ctx.capacity, ctx.step, ctx.op
    )
}

/// The outcome of a `try_lock`, without the guard.
fn outcome<G>(r: &Result<G, TryLockError<G>>) -> &'static str {
    match r {
        Ok(_) => "Ok(guard)",
        Err(TryLockError::WouldBlock) => "WouldBlock",
        Err(TryLockError::OwnerDied(_)) => "OwnerDied",
        Err(TryLockError::NotRecoverable) => "NotRecoverable",
    }
}

/// What the model predicts for a create/open.
enum Expect {
    Existing(usize),
    New,
    Err(ExpErr),
}

#[derive(Debug)]
enum ExpErr {
    InvalidName,
    Mismatch { existing: String, requested: String },
    DirectoryFull,
    OutOfSpace { requested: u64, available: u64 },
}

struct Model<'a> {
    region: &'a Region,
    handles: &'a Arena<Handle>,
    data_locks: &'a Arena<DataLock>,
    ctx: Ctx,
    heap: usize,
    /// First free byte of object space.
    cursor: usize,
    objs: Vec<Obj<'a>>,
    held: Vec<Held<'a>>,
    pid: u32,
    tid: u32,
}

fuzz_target!(|input: Input| run(input));

fn run(input: Input) {
    // 1 to 8 objects; 0 is refused (`InvalidSize`).
    let capacity = match input.capacity {
        0 => 0,
        c => (c as usize - 1) % 8 + 1,
    };
    let heap = heap_offset(capacity.max(1));
    let size = input.size.size(heap);
    let ctx = Ctx {
        size,
        capacity,
        step: 0,
        op: None,
    };
    let valid = capacity > 0 && size >= heap + PAD;
    let region = match (Region::options().capacity(capacity).anonymous(size), valid) {
        (Ok(region), true) => region,
        (Err(Error::InvalidSize { size: s, .. }), false) if s == size as u64 => return,
        (r, _) => fail(
            &ctx,
            format!(
                "creating the region gave {:?}, the model expected {}",
                r.map(drop),
                if valid { "a region" } else { "InvalidSize" }
            ),
        ),
    };
    if region.size() != size
        || region.capacity() != capacity
        || region.path().is_some()
        || region.free_bytes() != size - heap
        || !region.objects().is_ok_and(|o| o.is_empty())
    {
        fail(
            &ctx,
            format!(
                "new region: size {}, capacity {}, path {:?}, free {} (expected {}), objects {:?}",
                region.size(),
                region.capacity(),
                region.path(),
                region.free_bytes(),
                size - heap,
                region.objects()
            ),
        );
    }
    let handles = Arena::new();
    let data_locks = Arena::new();
    let mut model = Model {
        region: &region,
        handles: &handles,
        data_locks: &data_locks,
        ctx,
        heap,
        cursor: heap,
        objs: Vec::new(),
        held: Vec::new(),
        pid: std::process::id(),
        // SAFETY: gettid has no preconditions.
        tid: unsafe { libc::gettid() } as u32,
    };
    for (step, op) in input.ops.iter().take(MAX_OPS).enumerate() {
        model.ctx.step = step;
        model.ctx.op = Some(*op);
        model.apply(*op);
        model.check_all();
    }
    model.ctx.op = Some(Op::DropAll);
    model.apply(Op::DropAll);
    model.check_all();
}

impl<'a> Model<'a> {
    #[track_caller]
    fn fail(&self, msg: impl fmt::Display) -> ! {
        fail(&self.ctx, msg)
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Create { name, what } => self.create(&name.name(), what),
            Op::On { obj, h, call } => {
                if let Some((i, handle)) = self.pick(obj, h) {
                    self.call(i, handle, call);
                }
            }
            Op::GetMut { guard, obj, h, v } => self.get_mut(guard, obj, h, v),
            Op::DropGuard { which } => {
                if !self.held.is_empty() {
                    let held = self.held.remove(which as usize % self.held.len());
                    self.release_guard(held);
                }
            }
            Op::DropAll => {
                // Last taken first, as nested scopes would.
                while let Some(held) = self.held.pop() {
                    self.release_guard(held);
                }
            }
        }
    }

    /// Drops a guard; the model follows what dropping does: a `Lock`'s, value's or array's
    /// guard frees the word (whoever holds it, for a plain `Lock` released and re-taken in the
    /// meantime, as in Python), an `RLock`'s releases one level if this thread owns it.
    fn release_guard(&mut self, held: Held<'a>) {
        let obj = &mut self.objs[held.obj];
        match obj.shape {
            Shape::RLock => obj.count = obj.count.saturating_sub(1),
            _ => obj.locked = false,
        }
        drop(held);
    }

    fn pick(&self, obj: u8, h: u8) -> Option<(usize, &'a Handle)> {
        if self.objs.is_empty() {
            return None;
        }
        let i = obj as usize % self.objs.len();
        let handles = &self.objs[i].handles;
        Some((i, handles[h as usize % handles.len()]))
    }

    fn predict(&self, name: &str, shape: Shape) -> Expect {
        if name.is_empty() || name.len() > NAME_MAX || name.contains('\0') {
            return Expect::Err(ExpErr::InvalidName);
        }
        if let Some(i) = self.objs.iter().position(|o| o.name == name) {
            let existing = self.objs[i].shape;
            return if existing == shape {
                Expect::Existing(i)
            } else {
                Expect::Err(ExpErr::Mismatch {
                    existing: existing.describe(),
                    requested: shape.describe(),
                })
            };
        }
        if self.objs.len() >= self.ctx.capacity {
            return Expect::Err(ExpErr::DirectoryFull);
        }
        let bytes = shape.bytes();
        if self.cursor + bytes > self.ctx.size {
            return Expect::Err(ExpErr::OutOfSpace {
                requested: bytes as u64,
                available: (self.ctx.size - self.cursor) as u64,
            });
        }
        Expect::New
    }

    fn create(&mut self, name: &str, what: What) {
        let shape = what.shape();
        let expect = self.predict(name, shape);
        let r = self.region;
        let result = match what {
            What::Lock => r.lock(name).map(Handle::Lock),
            What::RLock => r.rlock(name).map(Handle::RLock),
            What::U64(v) => r.value::<u64>(name, v).map(Handle::U64),
            What::F64(bits) => r.value::<f64>(name, f64::from_bits(bits)).map(Handle::F64),
            What::Array { seed, .. } => r
                .array::<i32>(name, &ints(seed, shape.len()))
                .map(Handle::Arr),
            What::RawU32(v) => r.raw_value::<u32>(name, v).map(Handle::RawU32),
            What::RawU8 { seed, .. } => r
                .raw_array::<u8>(name, &bytes(seed, shape.len()))
                .map(Handle::RawU8),
        };
        match (expect, result) {
            (Expect::Existing(i), Ok(handle)) => {
                let handle = self.handles.alloc(handle);
                // An existing object keeps its contents, whatever the initial value given.
                self.check_obj(i, handle);
                if self.objs[i].handles.len() < MAX_HANDLES {
                    self.objs[i].handles.push(handle);
                }
            }
            (Expect::New, Ok(handle)) => {
                let handle = self.handles.alloc(handle);
                let (val, ints0, bytes0) = match what {
                    What::U64(v) | What::F64(v) => (v, vec![], vec![]),
                    What::RawU32(v) => (v as u64, vec![], vec![]),
                    What::Array { seed, .. } => (0, ints(seed, shape.len()), vec![]),
                    What::RawU8 { seed, .. } => (0, vec![], bytes(seed, shape.len())),
                    What::Lock | What::RLock => (0, vec![], vec![]),
                };
                self.cursor += shape.bytes();
                self.objs.push(Obj {
                    name: name.to_string(),
                    shape,
                    handles: vec![handle],
                    locked: false,
                    count: 0,
                    val,
                    ints: ints0,
                    bytes: bytes0,
                });
            }
            (Expect::Err(expected), Err(e)) => {
                let same = match (&expected, &e) {
                    (ExpErr::InvalidName, Error::InvalidName { name: n, .. }) => n == name,
                    (
                        ExpErr::Mismatch {
                            existing,
                            requested,
                        },
                        Error::Mismatch {
                            name: n,
                            existing: e2,
                            requested: r2,
                        },
                    ) => n == name && e2 == existing && r2 == requested,
                    (ExpErr::DirectoryFull, Error::DirectoryFull { capacity }) => {
                        *capacity == self.ctx.capacity
                    }
                    (
                        ExpErr::OutOfSpace {
                            requested,
                            available,
                        },
                        Error::OutOfSpace {
                            requested: r2,
                            available: a2,
                        },
                    ) => r2 == requested && a2 == available,
                    _ => false,
                };
                if !same {
                    self.fail(format!(
                        "creating {name:?} as {}: got {e:?}, the model expected {expected:?}",
                        shape.describe()
                    ));
                }
                // Checked after every step anyway: nothing stored may have changed.
            }
            (expect, result) => self.fail(format!(
                "creating {name:?} as {}: got {:?}, the model expected {}",
                shape.describe(),
                result.map(|_| "a handle"),
                match expect {
                    Expect::Existing(i) => format!("the existing object #{i}"),
                    Expect::New => "a new object".to_string(),
                    Expect::Err(e) => format!("{e:?}"),
                }
            )),
        }
    }

    fn call(&mut self, i: usize, handle: &'a Handle, call: Call) {
        match handle {
            Handle::Lock(l) => self.lock_call(i, l, call),
            Handle::RLock(r) => self.rlock_call(i, r, call),
            Handle::U64(v) => self.u64_call(i, v, call),
            Handle::F64(v) => self.f64_call(i, v, call),
            Handle::Arr(a) => self.array_call(i, a, call),
            Handle::RawU32(r) => self.raw_u32_call(i, r, call),
            Handle::RawU8(r) => self.raw_u8_call(i, r, call),
        }
    }

    fn keep(&mut self, obj: usize, guard: Guard<'a>) {
        match self.objs[obj].shape {
            Shape::RLock => self.objs[obj].count += 1,
            _ => self.objs[obj].locked = true,
        }
        self.held.push(Held { obj, guard });
    }

    fn lock_call(&mut self, i: usize, l: &'a Lock, call: Call) {
        let locked = self.objs[i].locked;
        let state = if locked { "held" } else { "free" };
        match call {
            Call::Try { keep, how } => {
                let r = if how % 2 == 0 {
                    l.try_lock()
                } else {
                    l.try_lock_for(Duration::ZERO)
                };
                match (locked, r) {
                    (false, Ok(g)) if keep => self.keep(i, Guard::Lock(g)),
                    (false, Ok(g)) => drop(g),
                    (true, Err(TryLockError::WouldBlock)) => {}
                    (_, r) => {
                        self.fail(format!("Lock::try_lock of a {state} lock: {}", outcome(&r)))
                    }
                }
            }
            Call::Lock { keep } if !locked => match l.lock() {
                Ok(g) if keep => self.keep(i, Guard::Lock(g)),
                Ok(g) => drop(g),
                Err(e) => self.fail(format!("Lock::lock of a free lock: {e:?}")),
            },
            Call::Acquire { how } => {
                let got = match how % 3 {
                    0 => l.acquire(false, None),
                    1 => l.acquire(true, Some(Duration::ZERO)),
                    _ if !locked => l.acquire(true, None),
                    _ => l.acquire(false, None),
                };
                if got == locked {
                    self.fail(format!("Lock::acquire of a {state} lock returned {got}"));
                }
                self.objs[i].locked = true;
            }
            Call::Release => match (locked, l.release()) {
                (true, Ok(())) => self.objs[i].locked = false,
                (false, Err(Error::NotLocked)) => {}
                (_, r) => self.fail(format!("Lock::release of a {state} lock: {r:?}")),
            },
            Call::MarkConsistent => match (locked, l.mark_consistent()) {
                (true, Ok(())) | (false, Err(Error::NotLocked)) => {}
                (_, r) => self.fail(format!("Lock::mark_consistent of a {state} lock: {r:?}")),
            },
            _ => {}
        }
    }

    fn rlock_call(&mut self, i: usize, r: &'a RLock, call: Call) {
        let count = self.objs[i].count;
        match call {
            Call::Try { keep, how } => {
                let res = if how % 2 == 0 {
                    r.try_lock()
                } else {
                    r.try_lock_for(Duration::ZERO)
                };
                match res {
                    Ok(g) if keep => self.keep(i, Guard::RLock(g)),
                    Ok(g) => drop(g),
                    res => self.fail(format!(
                        "RLock::try_lock by the only thread (count {count}): {}",
                        outcome(&res)
                    )),
                }
            }
            Call::Lock { keep } => match r.lock() {
                Ok(g) if keep => self.keep(i, Guard::RLock(g)),
                Ok(g) => drop(g),
                Err(e) => self.fail(format!("RLock::lock (count {count}): {e:?}")),
            },
            Call::Acquire { how } => {
                let got = match how % 3 {
                    0 => r.acquire(false, None),
                    1 => r.acquire(true, Some(Duration::ZERO)),
                    _ => r.acquire(true, None),
                };
                if !got {
                    self.fail(format!("RLock::acquire (count {count}) returned false"));
                }
                self.objs[i].count += 1;
            }
            Call::Release => match (count, r.release()) {
                (0, Err(Error::NotLocked)) => {}
                (1.., Ok(())) => self.objs[i].count -= 1,
                (_, res) => self.fail(format!("RLock::release (count {count}): {res:?}")),
            },
            Call::MarkConsistent => match (count, r.mark_consistent()) {
                (0, Err(Error::NotLocked)) | (1.., Ok(())) => {}
                (_, res) => self.fail(format!("RLock::mark_consistent (count {count}): {res:?}")),
            },
            _ => {}
        }
    }

    /// The guard this thread holds on object `i` (the model says it is locked).
    fn held_guard(&mut self, i: usize) -> &mut Guard<'a> {
        let ctx = &self.ctx;
        match self.held.iter_mut().find(|h| h.obj == i) {
            Some(held) => &mut held.guard,
            None => fail(
                ctx,
                format!("model: object #{i} is locked but no guard is held"),
            ),
        }
    }

    /// The value of object `i`, through the guard this thread holds on it.
    fn guarded_u64(&mut self, i: usize, v: &'a Value<u64>) -> &mut u64 {
        match self.held_guard(i) {
            Guard::U64(g) => g,
            Guard::Lock(g) => match v.get_mut(g) {
                Ok(x) => x,
                Err(e) => panic!("api_model: Value::get_mut with its own lock's guard: {e:?}"),
            },
            _ => panic!("api_model: model: a Value<u64> held with another guard type"),
        }
    }

    fn guarded_f64(&mut self, i: usize, v: &'a Value<f64>) -> &mut f64 {
        match self.held_guard(i) {
            Guard::F64(g) => g,
            Guard::Lock(g) => match v.get_mut(g) {
                Ok(x) => x,
                Err(e) => panic!("api_model: Value::get_mut with its own lock's guard: {e:?}"),
            },
            _ => panic!("api_model: model: a Value<f64> held with another guard type"),
        }
    }

    fn guarded_ints(&mut self, i: usize, a: &'a Array<i32>) -> &mut [i32] {
        match self.held_guard(i) {
            Guard::Arr(g) => g,
            Guard::Lock(g) => match a.get_mut(g) {
                Ok(x) => x,
                Err(e) => panic!("api_model: Array::get_mut with its own lock's guard: {e:?}"),
            },
            _ => panic!("api_model: model: an Array held with another guard type"),
        }
    }

    /// The lock calls every value and array answers the same way: `try_lock` variants,
    /// `lock()` when free, the `DataLock` of `get_lock()`, and dropping the guard held. `lock`
    /// and `try_lock` are given, and `wrap` makes the kept guard.
    fn data_lock_call<G>(
        &mut self,
        i: usize,
        call: Call,
        get_lock: impl FnOnce() -> DataLock,
        lock: impl FnOnce() -> Result<G, shmsync::LockError<G>>,
        try_lock: impl FnOnce(bool) -> Result<G, TryLockError<G>>,
        wrap: impl FnOnce(G) -> Guard<'a>,
    ) {
        let locked = self.objs[i].locked;
        let state = if locked { "held" } else { "free" };
        match call {
            Call::Try { keep, how } if how % 3 == 2 => {
                let dl = self.data_locks.alloc(get_lock());
                match (locked, dl.try_lock()) {
                    (false, Ok(g)) if keep => self.keep(i, Guard::Lock(g)),
                    (false, Ok(g)) => drop(g),
                    (true, Err(TryLockError::WouldBlock)) => {}
                    (_, r) => self.fail(format!(
                        "get_lock().try_lock() of a {state} lock: {}",
                        outcome(&r)
                    )),
                }
            }
            Call::Try { keep, how } => match (locked, try_lock(how % 3 == 1)) {
                (false, Ok(g)) if keep => self.keep(i, wrap(g)),
                (false, Ok(g)) => drop(g),
                (true, Err(TryLockError::WouldBlock)) => {}
                (_, r) => self.fail(format!("try_lock of a {state} lock: {}", outcome(&r))),
            },
            Call::Lock { keep } if !locked => match lock() {
                Ok(g) if keep => self.keep(i, wrap(g)),
                Ok(g) => drop(g),
                Err(e) => self.fail(format!("lock() of a free lock: {e:?}")),
            },
            Call::Acquire { how } => {
                let dl = self.data_locks.alloc(get_lock());
                let r = if locked || how % 2 == 0 {
                    dl.try_lock_for(Duration::ZERO)
                } else {
                    // Blocking, only on a free lock; its errors spelled as `try_lock`'s.
                    dl.lock().map_err(|e| match e {
                        shmsync::LockError::OwnerDied(died) => TryLockError::OwnerDied(died),
                        shmsync::LockError::NotRecoverable => TryLockError::NotRecoverable,
                    })
                };
                match (locked, r) {
                    (false, Ok(g)) => self.keep(i, Guard::Lock(g)),
                    (true, Err(TryLockError::WouldBlock)) => {}
                    (_, r) => self.fail(format!(
                        "get_lock() lock of a {state} lock: {}",
                        outcome(&r)
                    )),
                }
            }
            Call::Release => {
                if let Some(k) = self.held.iter().position(|h| h.obj == i) {
                    let held = self.held.remove(k);
                    self.release_guard(held);
                }
            }
            _ => {}
        }
    }

    fn u64_call(&mut self, i: usize, v: &'a Value<u64>, call: Call) {
        let locked = self.objs[i].locked;
        let model = self.objs[i].val;
        // The result of a read-modify-write: (returned, new value).
        let (desc, ret, new) = match call {
            Call::Store { v: x, .. } => ("store", None, x),
            Call::Load { .. } => ("load", Some(model), model),
            Call::FetchAdd {
                v: x, sub: false, ..
            } => ("fetch_add", Some(model), model.wrapping_add(x)),
            Call::FetchAdd {
                v: x, sub: true, ..
            } => ("fetch_sub", Some(model), model.wrapping_sub(x)),
            Call::Swap { v: x, .. } => ("swap", Some(model), x),
            Call::Cas { .. } => ("compare_exchange", Some(model), model),
            _ => {
                return self.data_lock_call(
                    i,
                    call,
                    || v.get_lock(),
                    || v.lock(),
                    |zero| {
                        if zero {
                            v.try_lock_for(Duration::ZERO)
                        } else {
                            v.try_lock()
                        }
                    },
                    Guard::U64,
                );
            }
        };
        if let Call::Cas {
            hit, current, new, ..
        } = call
        {
            let current = if hit { model } else { current };
            let (expected, after) = if model == current {
                (Ok(model), new)
            } else {
                (Err(model), model)
            };
            let got = if locked {
                let slot = self.guarded_u64(i, v);
                let old = *slot;
                if old == current {
                    *slot = new;
                    Ok(old)
                } else {
                    Err(old)
                }
            } else {
                match v.compare_exchange(current, new) {
                    Ok(r) => r,
                    Err(e) => self.fail(format!("Value::compare_exchange: {e:?}")),
                }
            };
            if got != expected {
                self.fail(format!(
                    "Value<u64>::compare_exchange({current}, {new}) (locked: {locked}): {got:?}, the model expected {expected:?}"
                ));
            }
            self.objs[i].val = after;
            return;
        }
        let got = if locked {
            let slot = self.guarded_u64(i, v);
            let old = *slot;
            *slot = new;
            Ok(ret.map(|_| old))
        } else {
            match call {
                Call::Store { v: x, .. } => v.store(x).map(|()| None),
                Call::Load { .. } => v.load().map(Some),
                Call::FetchAdd { v: x, sub, .. } => {
                    if sub { v.fetch_sub(x) } else { v.fetch_add(x) }.map(Some)
                }
                Call::Swap { v: x, .. } => v.swap(x).map(Some),
                _ => unreachable!(),
            }
        };
        match got {
            Ok(r) if r == ret => self.objs[i].val = new,
            got => self.fail(format!(
                "Value<u64>::{desc} (locked: {locked}): {got:?}, the model expected Ok({ret:?})"
            )),
        }
    }

    fn f64_call(&mut self, i: usize, v: &'a Value<f64>, call: Call) {
        let locked = self.objs[i].locked;
        let model = self.objs[i].val;
        match call {
            Call::Store { v: bits, .. } | Call::Swap { v: bits, .. } => {
                if locked {
                    *self.guarded_f64(i, v) = f64::from_bits(bits);
                } else if let Err(e) = v.store(f64::from_bits(bits)) {
                    self.fail(format!("Value<f64>::store: {e:?}"));
                }
                self.objs[i].val = bits;
            }
            Call::Load { .. } => {
                let got = if locked {
                    Ok(*self.guarded_f64(i, v))
                } else {
                    v.load()
                };
                match got {
                    Ok(x) if x.to_bits() == model => {}
                    got => self.fail(format!(
                        "Value<f64>::load (locked: {locked}): {got:?}, the model expected {:?}",
                        f64::from_bits(model)
                    )),
                }
            }
            _ => self.data_lock_call(
                i,
                call,
                || v.get_lock(),
                || v.lock(),
                |zero| {
                    if zero {
                        v.try_lock_for(Duration::ZERO)
                    } else {
                        v.try_lock()
                    }
                },
                Guard::F64,
            ),
        }
    }

    fn array_call(&mut self, i: usize, a: &'a Array<i32>, call: Call) {
        let locked = self.objs[i].locked;
        let len = self.objs[i].ints.len();
        match call {
            Call::Set { index, v: x } => {
                let index = index.resolve(len);
                // Indexes are checked before the lock is taken: refused even while held.
                let got = if index >= len || !locked {
                    a.set(index, x)
                } else {
                    self.guarded_ints(i, a)[index] = x;
                    Ok(())
                };
                match got {
                    Ok(()) if index < len => self.objs[i].ints[index] = x,
                    Err(Error::IndexOutOfRange { index: j, len: l })
                        if index >= len && j == index && l == len => {}
                    got => self.fail(format!(
                        "Array::set({index}) of {len} elements (locked: {locked}): {got:?}"
                    )),
                }
            }
            Call::Get { index } => {
                let index = index.resolve(len);
                let got = if index >= len || !locked {
                    a.get(index)
                } else {
                    Ok(self.guarded_ints(i, a)[index])
                };
                match got {
                    Ok(x) if index < len && x == self.objs[i].ints[index] => {}
                    Err(Error::IndexOutOfRange { index: j, len: l })
                        if index >= len && j == index && l == len => {}
                    got => self.fail(format!(
                        "Array::get({index}) of {:?} (locked: {locked}): {got:?}",
                        self.objs[i].ints
                    )),
                }
            }
            Call::CopyFrom { len: n, seed } => {
                let n = n.map_or(len, |n| n as usize % 10);
                let src = ints(seed, n);
                let got = if n != len || !locked {
                    a.copy_from_slice(&src)
                } else {
                    self.guarded_ints(i, a).copy_from_slice(&src);
                    Ok(())
                };
                match got {
                    Ok(()) if n == len => self.objs[i].ints = src,
                    Err(Error::LengthMismatch { expected, found })
                        if n != len && expected == len && found == n => {}
                    got => self.fail(format!(
                        "Array::copy_from_slice of {n} elements into {len} (locked: {locked}): {got:?}"
                    )),
                }
            }
            Call::ToVec | Call::Load { .. } => {
                let got = if locked {
                    Ok(self.guarded_ints(i, a).to_vec())
                } else {
                    a.to_vec()
                };
                match got {
                    Ok(v) if v == self.objs[i].ints => {}
                    got => self.fail(format!(
                        "Array::to_vec (locked: {locked}): {got:?}, the model expected {:?}",
                        self.objs[i].ints
                    )),
                }
            }
            _ => self.data_lock_call(
                i,
                call,
                || a.get_lock(),
                || a.lock(),
                |zero| {
                    if zero {
                        a.try_lock_for(Duration::ZERO)
                    } else {
                        a.try_lock()
                    }
                },
                Guard::Arr,
            ),
        }
    }

    fn raw_u32_call(&mut self, i: usize, r: &'a RawValue<u32>, call: Call) {
        let model = self.objs[i].val as u32;
        let (desc, got, expected, new) = match call {
            Call::Store { v, .. } => {
                r.store(v as u32);
                ("store", None, None, v as u32)
            }
            Call::Load { .. } | Call::Get { .. } => ("load", Some(r.load()), Some(model), model),
            Call::FetchAdd { v, sub: false, .. } => (
                "fetch_add",
                Some(r.fetch_add(v as u32)),
                Some(model),
                model.wrapping_add(v as u32),
            ),
            Call::FetchAdd { v, sub: true, .. } => (
                "fetch_sub",
                Some(r.fetch_sub(v as u32)),
                Some(model),
                model.wrapping_sub(v as u32),
            ),
            Call::Swap { v, .. } => ("swap", Some(r.swap(v as u32)), Some(model), v as u32),
            Call::Cas {
                hit, current, new, ..
            } => {
                let current = if hit { model } else { current as u32 };
                let got = r.compare_exchange(current, new as u32);
                let expected = if model == current {
                    Ok(model)
                } else {
                    Err(model)
                };
                if got != expected {
                    self.fail(format!(
                        "RawValue<u32>::compare_exchange({current}, {}): {got:?}, the model expected {expected:?}",
                        new as u32
                    ));
                }
                self.objs[i].val = u64::from(if got.is_ok() { new as u32 } else { model });
                return;
            }
            _ => return,
        };
        if got != expected {
            self.fail(format!(
                "RawValue<u32>::{desc}: {got:?}, the model expected {expected:?}"
            ));
        }
        self.objs[i].val = u64::from(new);
    }

    fn raw_u8_call(&mut self, i: usize, r: &'a RawArray<u8>, call: Call) {
        let len = self.objs[i].bytes.len();
        if r.len() != len {
            self.fail(format!("RawArray::len {}, the model has {len}", r.len()));
        }
        if let Call::ToVec = call {
            let got = r.to_vec();
            if got != self.objs[i].bytes {
                self.fail(format!(
                    "RawArray::to_vec: {got:?}, the model has {:?}",
                    self.objs[i].bytes
                ));
            }
            return;
        }
        // Out of range indexes panic by design: only in-range ones are used.
        if len == 0 {
            return;
        }
        let index = match call {
            Call::Set {
                index: Index::In(k),
                ..
            }
            | Call::Get {
                index: Index::In(k),
            }
            | Call::Store { i: k, .. }
            | Call::Load { i: k }
            | Call::FetchAdd { i: k, .. }
            | Call::Swap { i: k, .. }
            | Call::Cas { i: k, .. } => k as usize % len,
            _ => return,
        };
        let model = self.objs[i].bytes[index];
        let (desc, got, expected, new) = match call {
            Call::Store { v, .. } => {
                r.store(index, v as u8);
                ("store", None, None, v as u8)
            }
            Call::Set { v, .. } => {
                r.store(index, v as u8);
                ("store", None, None, v as u8)
            }
            Call::Load { .. } | Call::Get { .. } => {
                ("load", Some(r.load(index)), Some(model), model)
            }
            Call::FetchAdd { v, sub: false, .. } => (
                "fetch_add",
                Some(r.fetch_add(index, v as u8)),
                Some(model),
                model.wrapping_add(v as u8),
            ),
            Call::FetchAdd { v, sub: true, .. } => (
                "fetch_sub",
                Some(r.fetch_sub(index, v as u8)),
                Some(model),
                model.wrapping_sub(v as u8),
            ),
            Call::Swap { v, .. } => ("swap", Some(r.swap(index, v as u8)), Some(model), v as u8),
            Call::Cas {
                hit, current, new, ..
            } => {
                let current = if hit { model } else { current as u8 };
                let got = r.compare_exchange(index, current, new as u8);
                let expected = if model == current {
                    Ok(model)
                } else {
                    Err(model)
                };
                if got != expected {
                    self.fail(format!(
                        "RawArray<u8>::compare_exchange({index}, {current}, {}): {got:?}, the model expected {expected:?}",
                        new as u8
                    ));
                }
                self.objs[i].bytes[index] = if got.is_ok() { new as u8 } else { model };
                return;
            }
            _ => return,
        };
        if got != expected {
            self.fail(format!(
                "RawArray<u8>::{desc}({index}): {got:?}, the model expected {expected:?}"
            ));
        }
        self.objs[i].bytes[index] = new;
    }

    fn get_mut(&mut self, guard: u8, obj: u8, h: u8, v: u64) {
        if self.held.is_empty() {
            return;
        }
        let Some((i, handle)) = self.pick(obj, h) else {
            return;
        };
        let g = guard as usize % self.held.len();
        let own = self.held[g].obj == i;
        let ctx = &self.ctx;
        let Guard::Lock(guard) = &mut self.held[g].guard else {
            return;
        };
        let obj = &mut self.objs[i];
        match handle {
            Handle::U64(value) => match (own, value.get_mut(guard)) {
                (true, Ok(x)) => {
                    if *x != obj.val {
                        fail(
                            ctx,
                            format!("Value<u64>::get_mut read {x}, the model has {}", obj.val),
                        );
                    }
                    *x = v;
                    obj.val = v;
                }
                (false, Err(Error::WrongLock)) => {}
                (_, r) => fail(
                    ctx,
                    format!("Value<u64>::get_mut (own guard: {own}): {r:?}"),
                ),
            },
            Handle::F64(value) => match (own, value.get_mut(guard)) {
                (true, Ok(x)) => {
                    *x = f64::from_bits(v);
                    obj.val = v;
                }
                (false, Err(Error::WrongLock)) => {}
                (_, r) => fail(
                    ctx,
                    format!("Value<f64>::get_mut (own guard: {own}): {r:?}"),
                ),
            },
            Handle::Arr(array) => match (own, array.get_mut(guard)) {
                (true, Ok(x)) => {
                    if *x != *obj.ints {
                        fail(
                            ctx,
                            format!("Array::get_mut read {x:?}, the model has {:?}", obj.ints),
                        );
                    }
                    if let Some(first) = x.first_mut() {
                        *first = v as i32;
                        obj.ints[0] = v as i32;
                    }
                }
                (false, Err(Error::WrongLock)) => {}
                (_, r) => fail(ctx, format!("Array::get_mut (own guard: {own}): {r:?}")),
            },
            _ => {}
        }
    }

    /// Checks one handle of object `i` against the model.
    fn check_obj(&mut self, i: usize, handle: &'a Handle) {
        let pid = self.pid;
        let locked = self.objs[i].locked;
        let holder = locked.then_some(pid);
        let what = format!(
            "object #{i} {:?} ({:?})",
            self.objs[i].name, self.objs[i].shape
        );
        match handle {
            Handle::Lock(l) => {
                if l.is_locked() != locked
                    || l.holder() != holder
                    || l.is_poisoned()
                    || l.is_unrecoverable()
                {
                    self.fail(format!(
                        "{what}: is_locked {}, holder {:?}, poisoned {}, unrecoverable {}; the model has locked {locked}",
                        l.is_locked(),
                        l.holder(),
                        l.is_poisoned(),
                        l.is_unrecoverable()
                    ));
                }
            }
            Handle::RLock(r) => {
                let count = self.objs[i].count;
                let owner = (count > 0).then_some(Owner { pid, tid: self.tid });
                if r.count() != count
                    || r.is_locked() != (count > 0)
                    || r.owner() != owner
                    || r.is_owned_by_current_thread() != (count > 0)
                    || r.is_poisoned()
                    || r.is_unrecoverable()
                {
                    self.fail(format!(
                        "{what}: count {}, is_locked {}, owner {:?}, ours {}, poisoned {}, unrecoverable {}; the model has count {count}",
                        r.count(),
                        r.is_locked(),
                        r.owner(),
                        r.is_owned_by_current_thread(),
                        r.is_poisoned(),
                        r.is_unrecoverable()
                    ));
                }
            }
            Handle::U64(v) => {
                self.check_lock_state(&what, locked, v.is_locked(), v.holder(), v.is_poisoned());
                let model = self.objs[i].val;
                let got = if locked {
                    if !matches!(v.try_lock(), Err(TryLockError::WouldBlock)) {
                        self.fail(format!(
                            "{what}: try_lock of a held value did not say WouldBlock"
                        ));
                    }
                    Ok(*self.guarded_u64(i, v))
                } else {
                    v.load()
                };
                if !matches!(got, Ok(x) if x == model) {
                    self.fail(format!("{what}: reads {got:?}, the model has {model}"));
                }
            }
            Handle::F64(v) => {
                self.check_lock_state(&what, locked, v.is_locked(), v.holder(), v.is_poisoned());
                let model = self.objs[i].val;
                let got = if locked {
                    Ok(*self.guarded_f64(i, v))
                } else {
                    v.load()
                };
                if !matches!(got, Ok(x) if x.to_bits() == model) {
                    self.fail(format!(
                        "{what}: reads {got:?}, the model has {:?}",
                        f64::from_bits(model)
                    ));
                }
            }
            Handle::Arr(a) => {
                self.check_lock_state(&what, locked, a.is_locked(), a.holder(), a.is_poisoned());
                let len = self.objs[i].ints.len();
                if a.len() != len || a.is_empty() != (len == 0) {
                    self.fail(format!("{what}: len {}, the model has {len}", a.len()));
                }
                let got = if locked {
                    if !matches!(a.try_lock(), Err(TryLockError::WouldBlock)) {
                        self.fail(format!(
                            "{what}: try_lock of a held array did not say WouldBlock"
                        ));
                    }
                    Ok(self.guarded_ints(i, a).to_vec())
                } else {
                    a.to_vec()
                };
                if !matches!(&got, Ok(x) if *x == self.objs[i].ints) {
                    self.fail(format!(
                        "{what}: reads {got:?}, the model has {:?}",
                        self.objs[i].ints
                    ));
                }
            }
            Handle::RawU32(r) => {
                if u64::from(r.load()) != self.objs[i].val {
                    self.fail(format!(
                        "{what}: reads {}, the model has {}",
                        r.load(),
                        self.objs[i].val
                    ));
                }
            }
            Handle::RawU8(r) => {
                if r.len() != self.objs[i].bytes.len() || r.to_vec() != self.objs[i].bytes {
                    self.fail(format!(
                        "{what}: reads {:?}, the model has {:?}",
                        r.to_vec(),
                        self.objs[i].bytes
                    ));
                }
            }
        }
    }

    fn check_lock_state(
        &self,
        what: &str,
        locked: bool,
        is_locked: bool,
        holder: Option<u32>,
        poisoned: bool,
    ) {
        if is_locked != locked || holder != locked.then_some(self.pid) || poisoned {
            self.fail(format!(
                "{what}: is_locked {is_locked}, holder {holder:?}, poisoned {poisoned}; the model has locked {locked}"
            ));
        }
    }

    /// Every handle of every object, the directory listing and the free space.
    fn check_all(&mut self) {
        for i in 0..self.objs.len() {
            for h in 0..self.objs[i].handles.len() {
                let handle = self.objs[i].handles[h];
                self.check_obj(i, handle);
            }
        }
        let mut listed = match self.region.objects() {
            Ok(listed) => listed,
            Err(e) => self.fail(format!("objects(): {e:?}")),
        };
        listed.sort_by(|a, b| a.name.cmp(&b.name));
        let mut expected: Vec<ObjectInfo> = self
            .objs
            .iter()
            .map(|o| ObjectInfo {
                name: o.name.clone(),
                kind: o.shape.kind(),
                type_name: o.shape.type_name().to_string(),
                len: o.shape.len(),
                bytes: o.shape.bytes(),
            })
            .collect();
        expected.sort_by(|a, b| a.name.cmp(&b.name));
        if listed != expected {
            self.fail(format!(
                "objects() lists {listed:?}, the model has {expected:?}"
            ));
        }
        let free = self.ctx.size - self.cursor;
        if self.region.free_bytes() != free {
            self.fail(format!(
                "free_bytes() is {}, the model has {free} (object space starts at {})",
                self.region.free_bytes(),
                self.heap
            ));
        }
    }
}
