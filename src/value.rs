//! [`Value`] and [`Array`]: typed data next to its own lock word, Python's
//! `multiprocessing.Value` and `multiprocessing.Array` (with `lock=True`).

use crate::error::{Error, LockError, Result, TryLockError};
use crate::int::AtomicInt;
use crate::lock::{DataLock, LockGuard, RawLock, lock_queries};
use crate::protocol::Block;
use crate::region::{Fresh, Hold, Kind, Object, Region, Spec};
use bytemuck::Pod;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::time::Duration;

/// A `T` in a region with its own lock: Python's `multiprocessing.Value`.
///
/// The lock word and the value sit side by side on one cache line. [`lock`](Value::lock)
/// returns a guard that derefs to the value; [`load`](Value::load), [`store`](Value::store)
/// and, for integers, [`fetch_add`](Value::fetch_add) and friends take the lock for one
/// operation. `v.value += 1` in Python is not atomic and neither would be a `load` followed by
/// a `store` here: hold the guard across the read-modify-write instead.
///
/// Processes that do not use this library, or use it through unsafe code, can of course still
/// write the memory without the lock; `T: Pod` guarantees that whatever bytes they leave there
/// are a valid `T`.
///
/// # Examples
///
/// ```
/// let region = shmsync::Region::anonymous(1 << 16)?;
/// let counter = region.value::<u64>("counter", 0)?;
/// *counter.lock()? += 1;           // Python: with counter.get_lock(): counter.value += 1
/// counter.fetch_add(2)?;            // the same, as one call
/// assert_eq!(counter.load()?, 3);
///
/// let pi = region.value::<f64>("pi", 0.0)?;
/// pi.store(3.1415927)?;
/// assert_eq!(pi.load()?, 3.1415927);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Value<T> {
    cell: Locked<T>,
}

impl<T> Clone for Value<T> {
    fn clone(&self) -> Self {
        Value {
            cell: self.cell.clone(),
        }
    }
}

/// What [`Value`] and [`Array`] share: a lock word, and the data after it (a `T` or a `[T]`),
/// reached only through guards of that lock.
struct Locked<S: ?Sized> {
    lock: RawLock,
    data: NonNull<S>,
}

// SAFETY: the data is only reached through guards of its lock, which give one thread at a time
// access; moving or sharing the handle between threads is like sharing a `Mutex<S>`, which needs
// `S: Send`. The mapping stays alive through `lock`'s reference to the region.
unsafe impl<S: ?Sized + Send> Send for Locked<S> {}
// SAFETY: as above.
unsafe impl<S: ?Sized + Send> Sync for Locked<S> {}

impl<S: ?Sized> Clone for Locked<S> {
    fn clone(&self) -> Self {
        Locked {
            lock: self.lock.clone(),
            data: self.data,
        }
    }
}

impl<S: ?Sized> Locked<S> {
    /// The cell of `object`, whose data is at `data` (inside the object, aligned for it, and
    /// valid for any bytes).
    fn new(object: Object, data: NonNull<S>) -> Locked<S> {
        Locked {
            lock: RawLock::new(object),
            data,
        }
    }

    #[inline]
    fn guard(&self, hold: Hold) -> DataGuard<'_, S> {
        DataGuard {
            lock: &self.lock,
            data: self.data,
            hold,
            _borrow: PhantomData,
        }
    }

    #[inline]
    fn lock(&self) -> Result<DataGuard<'_, S>, LockError<DataGuard<'_, S>>> {
        self.lock.lock_with(|hold| self.guard(hold))
    }

    #[inline]
    fn try_lock_within(
        &self,
        block: Block,
    ) -> Result<DataGuard<'_, S>, TryLockError<DataGuard<'_, S>>> {
        self.lock.try_lock_with(block, |hold| self.guard(hold))
    }

    fn get_lock(&self) -> DataLock {
        DataLock::new(self.lock.clone())
    }

    fn get_mut<'g>(&'g self, guard: &'g mut LockGuard<'_>) -> Result<&'g mut S> {
        if !guard.holds(&self.lock) {
            return Err(Error::WrongLock);
        }
        // SAFETY: the guard proves this thread holds the cell's lock for as long as the
        // returned borrow (tied to the exclusive borrow of the guard) lives, and a `DataLock`
        // cannot be released by anyone else; the data is aligned, inside the mapping, which
        // `self` keeps alive, and valid for any bytes.
        Ok(unsafe { &mut *self.data.as_ptr() })
    }
}

/// The guard-taking methods of [`Value`] and [`Array`], on their cell.
macro_rules! cell_methods {
    ($target:ty, $what:literal) => {
        #[doc = concat!("Acquires the ", $what, "'s lock, blocking as long as it takes; the guard derefs to the ", $what, ".")]
        ///
        /// # Errors
        ///
        /// [`LockError::OwnerDied`] if the previous holder died holding the lock: the guard is
        /// inside; repair the data and call [`DataGuard::mark_consistent`], or the lock becomes
        /// unrecoverable when the guard is dropped. [`LockError::NotRecoverable`] after that.
        #[inline]
        pub fn lock(&self) -> Result<DataGuard<'_, $target>, LockError<DataGuard<'_, $target>>> {
            self.cell.lock()
        }

        #[doc = concat!("Tries once to acquire the ", $what, "'s lock.")]
        ///
        /// # Errors
        ///
        /// [`TryLockError::WouldBlock`] if it is held.
        #[inline]
        pub fn try_lock(
            &self,
        ) -> Result<DataGuard<'_, $target>, TryLockError<DataGuard<'_, $target>>> {
            self.cell.try_lock_within(Block::Try)
        }

        #[doc = concat!("Tries to acquire the ", $what, "'s lock until `timeout` has passed.")]
        ///
        /// # Errors
        ///
        /// [`TryLockError::WouldBlock`] if it stayed held until the deadline.
        pub fn try_lock_for(
            &self,
            timeout: Duration,
        ) -> Result<DataGuard<'_, $target>, TryLockError<DataGuard<'_, $target>>> {
            self.cell.try_lock_within(Block::after(timeout))
        }

        #[doc = concat!("The ", $what, "'s lock, to hold across several operations or to share (Python's")]
        /// `get_lock()`). While holding its guard, reach the data with `get_mut`; calling
        /// `lock` (or a one-operation method) then would wait for the guard forever (the
        /// lock is not re-entrant).
        pub fn get_lock(&self) -> DataLock {
            self.cell.get_lock()
        }

        #[doc = concat!("The ", $what, ", reached through a guard of its own lock (from `get_lock`).")]
        ///
        /// # Errors
        ///
        /// [`Error::WrongLock`] if `guard` holds another lock.
        pub fn get_mut<'g>(&'g self, guard: &'g mut LockGuard<'_>) -> Result<&'g mut $target> {
            self.cell.get_mut(guard)
        }
    };
}

impl<T: Pod> Value<T> {
    cell_methods!(T, "value");

    /// Reads the value under its lock.
    ///
    /// # Errors
    ///
    /// [`Error::OwnerDied`] if the previous holder died holding the lock: the value may be
    /// half-updated, and since this call cannot repair it, the lock is left unrecoverable. Use
    /// [`lock`](Value::lock) to recover instead. [`Error::NotRecoverable`] after that.
    pub fn load(&self) -> Result<T> {
        Ok(*self.lock()?)
    }

    /// Writes the value under its lock.
    ///
    /// A store replaces the whole value, so it also repairs a value whose previous holder died:
    /// the lock is then marked consistent and the store succeeds.
    ///
    /// # Errors
    ///
    /// [`Error::NotRecoverable`] if the lock is unrecoverable.
    pub fn store(&self, value: T) -> Result<()> {
        let mut guard = match self.lock() {
            Ok(guard) => guard,
            Err(LockError::OwnerDied(died)) => {
                let guard = died.into_guard();
                guard.mark_consistent();
                guard
            }
            Err(LockError::NotRecoverable) => return Err(Error::NotRecoverable),
        };
        *guard = value;
        Ok(())
    }

    lock_queries!();

    pub(crate) fn raw(&self) -> &RawLock {
        &self.cell.lock
    }
}

/// The integer operations take the lock for one operation each. If the previous holder died
/// holding it, they return [`Error::OwnerDied`] and, since they cannot repair the value, leave
/// the lock unrecoverable (as [`Value::load`] does); use [`Value::lock`] to recover instead.
impl<T: Pod + AtomicInt> Value<T> {
    /// Adds `delta` (wrapping) under the lock; returns the previous value.
    ///
    /// # Errors
    ///
    /// As [`lock`](Value::lock).
    pub fn fetch_add(&self, delta: T) -> Result<T> {
        self.update(|v| v.wrapping_add(delta))
    }

    /// Subtracts `delta` (wrapping) under the lock; returns the previous value.
    ///
    /// # Errors
    ///
    /// As [`lock`](Value::lock).
    pub fn fetch_sub(&self, delta: T) -> Result<T> {
        self.update(|v| v.wrapping_sub(delta))
    }

    /// Replaces the value under the lock; returns the previous value.
    ///
    /// # Errors
    ///
    /// As [`lock`](Value::lock).
    pub fn swap(&self, value: T) -> Result<T> {
        self.update(|_| value)
    }

    /// Under the lock, replaces the value with `new` if it equals `current`. The inner result
    /// is `Ok(previous)` if it was replaced, `Err(actual)` if not.
    ///
    /// # Errors
    ///
    /// As [`lock`](Value::lock).
    pub fn compare_exchange(&self, current: T, new: T) -> Result<Result<T, T>> {
        let mut guard = self.lock()?;
        let old = *guard;
        if old != current {
            return Ok(Err(old));
        }
        *guard = new;
        Ok(Ok(old))
    }

    fn update(&self, f: impl FnOnce(T) -> T) -> Result<T> {
        let mut guard = self.lock()?;
        let old = *guard;
        *guard = f(old);
        Ok(old)
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for Value<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.try_lock() {
            Ok(guard) => f.debug_struct("Value").field("value", &*guard).finish(),
            Err(_) => f.debug_struct("Value").field("value", &"<locked>").finish(),
        }
    }
}

/// Holds the lock of a [`Value`] (`S = T`) or an [`Array`] (`S = [T]`); derefs to the data;
/// releases the lock when dropped.
///
/// A copy of the guard in a child forked while it was held does not release the parent's lock
/// when dropped.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct DataGuard<'a, S: ?Sized> {
    lock: &'a RawLock,
    data: NonNull<S>,
    hold: Hold,
    _borrow: PhantomData<&'a S>,
}

/// A [`Value`]'s guard.
pub type ValueGuard<'a, T> = DataGuard<'a, T>;
/// An [`Array`]'s guard.
pub type ArrayGuard<'a, T> = DataGuard<'a, [T]>;

// SAFETY: the guard is an exclusive borrow of the data (a `&mut S`) plus a lock release that
// any thread may do; it may move to another thread when `S` may.
unsafe impl<S: ?Sized + Send> Send for DataGuard<'_, S> {}
// SAFETY: a shared guard hands out `&S` only.
unsafe impl<S: ?Sized + Sync> Sync for DataGuard<'_, S> {}

impl<S: ?Sized> DataGuard<'_, S> {
    /// Declares the data repaired after the lock was taken over from a holder that died (see
    /// [`LockError::OwnerDied`]); without it, dropping the guard makes the lock unrecoverable.
    pub fn mark_consistent(&self) {
        self.lock.mark_consistent();
    }
}

impl<S: ?Sized> Deref for DataGuard<'_, S> {
    type Target = S;
    #[inline]
    fn deref(&self) -> &S {
        // SAFETY: the guard holds the cell's lock, so no other thread or well-behaved process
        // writes the data while this borrow lives; it is aligned, inside the mapping the cell
        // keeps alive, and valid for any bytes (only `Pod` data is ever put in a cell).
        unsafe { &*self.data.as_ptr() }
    }
}

impl<S: ?Sized> DerefMut for DataGuard<'_, S> {
    #[inline]
    fn deref_mut(&mut self) -> &mut S {
        // SAFETY: as in `deref`; the exclusive borrow of the guard makes this the only access.
        unsafe { &mut *self.data.as_ptr() }
    }
}

impl<S: ?Sized> Drop for DataGuard<'_, S> {
    #[inline]
    fn drop(&mut self) {
        self.lock.release_guard(self.hold);
    }
}

impl<S: ?Sized + fmt::Debug> fmt::Debug for DataGuard<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// A fixed-length array of `T` in a region with one lock: Python's `multiprocessing.Array`.
///
/// # Examples
///
/// ```
/// let region = shmsync::Region::anonymous(1 << 16)?;
/// let arr = region.array::<i32>("arr", &[0, 1, 2, 3])?;
/// for x in arr.lock()?.iter_mut() {
///     *x = -*x;
/// }
/// assert_eq!(arr.to_vec()?, [0, -1, -2, -3]);
/// arr.set(0, 7)?;
/// assert_eq!(arr.get(0)?, 7);
/// assert!(arr.get(4).is_err()); // out of range: an error, never UB
/// # Ok::<(), shmsync::Error>(())
/// ```
pub struct Array<T> {
    cell: Locked<[T]>,
}

impl<T> Clone for Array<T> {
    fn clone(&self) -> Self {
        Array {
            cell: self.cell.clone(),
        }
    }
}

impl<T: Pod> Array<T> {
    /// The number of elements.
    pub fn len(&self) -> usize {
        self.cell.data.len()
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    cell_methods!([T], "array");

    /// Element `index`, read under the lock. (Like every one-operation method of `Array`, it
    /// returns [`Error::OwnerDied`] after a holder died and leaves the lock unrecoverable; use
    /// [`lock`](Array::lock) to recover.)
    ///
    /// # Errors
    ///
    /// [`Error::IndexOutOfRange`]; otherwise as [`lock`](Array::lock).
    pub fn get(&self, index: usize) -> Result<T> {
        self.check(index)?;
        Ok(self.lock()?[index])
    }

    /// Sets element `index` under the lock.
    ///
    /// # Errors
    ///
    /// [`Error::IndexOutOfRange`]; otherwise as [`lock`](Array::lock).
    pub fn set(&self, index: usize, value: T) -> Result<()> {
        self.check(index)?;
        self.lock()?[index] = value;
        Ok(())
    }

    /// A copy of every element, taken under the lock (Python's `arr[:]`).
    ///
    /// # Errors
    ///
    /// As [`lock`](Array::lock).
    pub fn to_vec(&self) -> Result<Vec<T>> {
        Ok(self.lock()?.to_vec())
    }

    /// Overwrites every element from `src`, under the lock.
    ///
    /// # Errors
    ///
    /// [`Error::LengthMismatch`] if `src.len() != self.len()`; otherwise as
    /// [`lock`](Array::lock).
    pub fn copy_from_slice(&self, src: &[T]) -> Result<()> {
        if src.len() != self.len() {
            return Err(Error::LengthMismatch {
                expected: self.len(),
                found: src.len(),
            });
        }
        self.lock()?.copy_from_slice(src);
        Ok(())
    }

    lock_queries!();

    pub(crate) fn raw(&self) -> &RawLock {
        &self.cell.lock
    }

    fn check(&self, index: usize) -> Result<()> {
        if index < self.len() {
            Ok(())
        } else {
            Err(Error::IndexOutOfRange {
                index,
                len: self.len(),
            })
        }
    }
}

impl<T: Pod> fmt::Debug for Array<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Array")
            .field("len", &self.len())
            .field("locked", &self.is_locked())
            .finish()
    }
}

impl Region {
    /// Finds or creates the [`Value`] called `name`; a new one starts as `init` (an existing
    /// one keeps its value).
    ///
    /// # Errors
    ///
    /// [`Error::Mismatch`] if `name` holds another kind of object or another element type;
    /// otherwise as [`Region::lock`].
    pub fn value<T: Pod>(&self, name: &str, init: T) -> Result<Value<T>> {
        let (object, data) = cell(self, name, Spec::of::<T>(Kind::Value, 1), &[init])?;
        Ok(Value {
            cell: Locked::new(object, data.cast()),
        })
    }

    /// Finds or creates the [`Array`] called `name`, of `init.len()` elements; a new one starts
    /// as a copy of `init` (an existing one keeps its elements, but must have that length).
    ///
    /// # Errors
    ///
    /// [`Error::Mismatch`] if `name` holds another kind of object, element type or length;
    /// [`Error::OutOfSpace`] if the array does not fit; otherwise as [`Region::lock`].
    pub fn array<T: Pod>(&self, name: &str, init: &[T]) -> Result<Array<T>> {
        let (object, data) = cell(self, name, Spec::of::<T>(Kind::Array, init.len()), init)?;
        Ok(Array {
            cell: Locked::new(object, NonNull::slice_from_raw_parts(data, init.len())),
        })
    }
}

/// Finds or creates the cell `name` as `spec` (a [`Value`], [`Array`],
/// [`RawValue`](crate::RawValue) or [`RawArray`](crate::RawArray) of `init.len()` elements of
/// `T`); a new one starts as a copy of `init`. Returns the object and its data: the one
/// creation path of every cell.
pub(crate) fn cell<T: Pod>(
    region: &Region,
    name: &str,
    spec: Spec,
    init: &[T],
) -> Result<(Object, NonNull<T>)> {
    let data = spec.data_offset();
    let object = Object::open(region, name, &spec, |fresh| {
        fresh_elements(fresh, data, init)
    })?;
    let ptr = NonNull::new(object.ptr(data).cast::<T>()).expect("inside the mapping");
    Ok((object, ptr))
}

/// Copies `init` into a fresh object at `data`.
fn fresh_elements<T: Pod>(fresh: &Fresh, data: usize, init: &[T]) {
    fresh.write_bytes(data, bytemuck::cast_slice(init));
}

/// A `Value` travels to a spawned child by region and name.
impl<T: Pod> crate::Transfer for Value<T> {
    fn encode(&self, out: &mut crate::Encoder) -> Result<()> {
        out.object(self.cell.lock.object())
    }
    fn decode(input: &mut crate::Decoder) -> Result<Self> {
        let (region, name) = input.object()?;
        // The object exists (the parent holds a handle): the initial value is not used.
        region.value(&name, T::zeroed())
    }
}

/// An `Array` travels to a spawned child by region, name and length.
impl<T: Pod> crate::Transfer for Array<T> {
    fn encode(&self, out: &mut crate::Encoder) -> Result<()> {
        out.object(self.cell.lock.object())?;
        self.len().encode(out)
    }
    fn decode(input: &mut crate::Decoder) -> Result<Self> {
        let (region, name) = input.object()?;
        let len = usize::decode(input)?;
        // Refuse a length no region could hold before allocating the initial copy.
        if len.saturating_mul(size_of::<T>()) > region.size() {
            return Err(Error::InvalidArgument(format!(
                "an Array of {len} elements cannot be in a region of {} bytes",
                region.size()
            )));
        }
        region.array(&name, &vec![T::zeroed(); len])
    }
}
