//! [`Value`] and [`Array`]: typed data next to its own lock word, Python's
//! `multiprocessing.Value` and `multiprocessing.Array` (with `lock=True`).

use crate::error::{Error, LockError, Result, TryLockError};
use crate::int::AtomicInt;
use crate::lock::{DataLock, Hold, LockGuard, RawLock, lock_queries};
use crate::protocol::Block;
use crate::region::{Kind, Region, Spec};
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
    lock: RawLock,
    data: NonNull<T>,
    _type: PhantomData<T>,
}

// SAFETY: the value is only reached through guards of its lock, which give one thread at a time
// access; moving or sharing the handle between threads is like sharing a `Mutex<T>`, which needs
// `T: Send`. The mapping stays alive through `lock`'s reference to the region.
unsafe impl<T: Send> Send for Value<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Value<T> {}

impl<T> Clone for Value<T> {
    fn clone(&self) -> Self {
        Value {
            lock: self.lock.clone(),
            data: self.data,
            _type: PhantomData,
        }
    }
}

impl<T: Pod> Value<T> {
    /// Acquires the value's lock, blocking as long as it takes; the guard derefs to the value.
    ///
    /// # Errors
    ///
    /// [`LockError::OwnerDied`] if the previous holder died holding the lock: the guard is
    /// inside; repair the value and call [`ValueGuard::mark_consistent`], or the lock becomes
    /// unrecoverable when the guard is dropped. [`LockError::NotRecoverable`] after that.
    pub fn lock(&self) -> Result<ValueGuard<'_, T>, LockError<ValueGuard<'_, T>>> {
        self.lock.lock_with(|hold| ValueGuard { value: self, hold })
    }

    /// Tries once to acquire the value's lock.
    ///
    /// # Errors
    ///
    /// [`TryLockError::WouldBlock`] if it is held.
    pub fn try_lock(&self) -> Result<ValueGuard<'_, T>, TryLockError<ValueGuard<'_, T>>> {
        self.lock
            .try_lock_with(Block::Try, |hold| ValueGuard { value: self, hold })
    }

    /// Tries to acquire the value's lock until `timeout` has passed.
    ///
    /// # Errors
    ///
    /// [`TryLockError::WouldBlock`] if it stayed held until the deadline.
    pub fn try_lock_for(
        &self,
        timeout: Duration,
    ) -> Result<ValueGuard<'_, T>, TryLockError<ValueGuard<'_, T>>> {
        self.lock
            .try_lock_with(Block::after(timeout), |hold| ValueGuard {
                value: self,
                hold,
            })
    }

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

    /// The value's lock, to hold across several operations or to share (Python's
    /// `get_lock()`). While holding its guard, reach the value with
    /// [`get_mut`](Value::get_mut); calling [`load`](Value::load) or
    /// [`lock`](Value::lock) then would wait for the guard forever (the lock is not
    /// re-entrant).
    pub fn get_lock(&self) -> DataLock {
        DataLock::new(self.lock.clone())
    }

    /// The value, reached through a guard of its own lock (from [`get_lock`](Value::get_lock)).
    ///
    /// # Errors
    ///
    /// [`Error::WrongLock`] if `guard` holds another lock.
    pub fn get_mut<'g>(&'g self, guard: &'g mut LockGuard<'_>) -> Result<&'g mut T> {
        if !guard.holds(NonNull::from(self.lock.word())) {
            return Err(Error::WrongLock);
        }
        // SAFETY: the guard proves this thread holds the value's lock for as long as the
        // returned borrow (tied to the exclusive borrow of the guard) lives, and a `DataLock`
        // cannot be released by anyone else; the pointer is aligned and inside the mapping,
        // which `self` keeps alive.
        Ok(unsafe { &mut *self.data.as_ptr() })
    }

    pub(crate) fn raw(&self) -> &RawLock {
        &self.lock
    }

    lock_queries!();
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

/// Holds a [`Value`]'s lock; derefs to the value; releases the lock when dropped.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ValueGuard<'a, T: Pod> {
    value: &'a Value<T>,
    hold: Hold,
}

impl<T: Pod> ValueGuard<'_, T> {
    /// Declares the value repaired after the lock was taken over from a holder that died (see
    /// [`LockError::OwnerDied`]); without it, dropping the guard makes the lock unrecoverable.
    pub fn mark_consistent(&self) {
        self.value.lock.mark_consistent();
    }
}

impl<T: Pod> Deref for ValueGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the value's lock, so no other thread or well-behaved process
        // writes the value while this borrow lives; the pointer is aligned, inside the mapping
        // the value keeps alive, and any bytes there are a valid `T` (`T: Pod`).
        unsafe { &*self.value.data.as_ptr() }
    }
}

impl<T: Pod> DerefMut for ValueGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; the exclusive borrow of the guard makes this the only access.
        unsafe { &mut *self.value.data.as_ptr() }
    }
}

impl<T: Pod> Drop for ValueGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.value.lock.release_guard(self.hold);
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for ValueGuard<'_, T> {
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
    lock: RawLock,
    data: NonNull<T>,
    len: usize,
}

// SAFETY: as for `Value`: the elements are only reached under the array's lock.
unsafe impl<T: Send> Send for Array<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Array<T> {}

impl<T> Clone for Array<T> {
    fn clone(&self) -> Self {
        Array {
            lock: self.lock.clone(),
            data: self.data,
            len: self.len,
        }
    }
}

impl<T: Pod> Array<T> {
    /// The number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Acquires the array's lock, blocking as long as it takes; the guard derefs to `[T]`.
    ///
    /// # Errors
    ///
    /// As [`Value::lock`], with [`ArrayGuard::mark_consistent`].
    pub fn lock(&self) -> Result<ArrayGuard<'_, T>, LockError<ArrayGuard<'_, T>>> {
        self.lock.lock_with(|hold| ArrayGuard { array: self, hold })
    }

    /// Tries once to acquire the array's lock.
    ///
    /// # Errors
    ///
    /// [`TryLockError::WouldBlock`] if it is held.
    pub fn try_lock(&self) -> Result<ArrayGuard<'_, T>, TryLockError<ArrayGuard<'_, T>>> {
        self.lock
            .try_lock_with(Block::Try, |hold| ArrayGuard { array: self, hold })
    }

    /// Tries to acquire the array's lock until `timeout` has passed.
    ///
    /// # Errors
    ///
    /// [`TryLockError::WouldBlock`] if it stayed held until the deadline.
    pub fn try_lock_for(
        &self,
        timeout: Duration,
    ) -> Result<ArrayGuard<'_, T>, TryLockError<ArrayGuard<'_, T>>> {
        self.lock
            .try_lock_with(Block::after(timeout), |hold| ArrayGuard {
                array: self,
                hold,
            })
    }

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
        if src.len() != self.len {
            return Err(Error::LengthMismatch {
                expected: self.len,
                found: src.len(),
            });
        }
        self.lock()?.copy_from_slice(src);
        Ok(())
    }

    /// The array's lock (Python's `get_lock()`); see [`Value::get_lock`].
    pub fn get_lock(&self) -> DataLock {
        DataLock::new(self.lock.clone())
    }

    /// The elements, reached through a guard of the array's own lock.
    ///
    /// # Errors
    ///
    /// [`Error::WrongLock`] if `guard` holds another lock.
    pub fn get_mut<'g>(&'g self, guard: &'g mut LockGuard<'_>) -> Result<&'g mut [T]> {
        if !guard.holds(NonNull::from(self.lock.word())) {
            return Err(Error::WrongLock);
        }
        // SAFETY: as in `Value::get_mut`, for `len` elements the directory reserved.
        Ok(unsafe { std::slice::from_raw_parts_mut(self.data.as_ptr(), self.len) })
    }

    pub(crate) fn raw(&self) -> &RawLock {
        &self.lock
    }

    lock_queries!();

    fn check(&self, index: usize) -> Result<()> {
        if index < self.len {
            Ok(())
        } else {
            Err(Error::IndexOutOfRange {
                index,
                len: self.len,
            })
        }
    }
}

impl<T: Pod> fmt::Debug for Array<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Array")
            .field("len", &self.len)
            .field("locked", &self.is_locked())
            .finish()
    }
}

/// Holds an [`Array`]'s lock; derefs to `[T]`; releases the lock when dropped.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ArrayGuard<'a, T: Pod> {
    array: &'a Array<T>,
    hold: Hold,
}

impl<T: Pod> ArrayGuard<'_, T> {
    /// Declares the elements repaired after the lock was taken over from a holder that died
    /// (see [`LockError::OwnerDied`]); without it, dropping the guard makes the lock
    /// unrecoverable.
    pub fn mark_consistent(&self) {
        self.array.lock.mark_consistent();
    }
}

impl<T: Pod> Deref for ArrayGuard<'_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: the guard holds the array's lock; the `len` elements are aligned, inside the
        // mapping the array keeps alive, and valid for any bytes (`T: Pod`).
        unsafe { std::slice::from_raw_parts(self.array.data.as_ptr(), self.array.len) }
    }
}

impl<T: Pod> DerefMut for ArrayGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`; the exclusive borrow of the guard makes this the only access.
        unsafe { std::slice::from_raw_parts_mut(self.array.data.as_ptr(), self.array.len) }
    }
}

impl<T: Pod> Drop for ArrayGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.array.lock.release_guard(self.hold);
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for ArrayGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
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
        self.inner.ensure_registered()?;
        let spec = Spec::of::<T>(Kind::Value, 1);
        let data_offset = spec.data_offset();
        let offset = self.object(name, &spec, |ptr| {
            RawLock::init(ptr);
            // SAFETY: the directory reserved `spec.bytes()` bytes at `ptr`, aligned for `T`,
            // and the data starts `data_offset` (a multiple of `align_of::<T>()`) in.
            unsafe { ptr.add(data_offset).cast::<T>().write(init) };
        })?;
        Ok(Value {
            lock: RawLock::new(self.inner.clone(), offset),
            data: NonNull::new(self.inner.ptr(offset + data_offset).cast()).expect("mapped"),
            _type: PhantomData,
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
        self.inner.ensure_registered()?;
        let spec = Spec::of::<T>(Kind::Array, init.len());
        let data_offset = spec.data_offset();
        let offset = self.object(name, &spec, |ptr| {
            RawLock::init(ptr);
            // SAFETY: the directory reserved room for `init.len()` elements after the lock
            // word, aligned for `T`; the fresh object cannot overlap `init`.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    init.as_ptr(),
                    ptr.add(data_offset).cast::<T>(),
                    init.len(),
                )
            };
        })?;
        Ok(Array {
            lock: RawLock::new(self.inner.clone(), offset),
            data: NonNull::new(self.inner.ptr(offset + data_offset).cast()).expect("mapped"),
            len: init.len(),
        })
    }
}
