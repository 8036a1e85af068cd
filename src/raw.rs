//! [`RawValue`] and [`RawArray`]: data in a region without a lock (Python's `lock=False`).

use crate::error::Result;
use crate::int::AtomicInt;
use crate::region::{Kind, Object, Region, Spec};
use crate::value::cell;
use bytemuck::Pod;
use std::fmt;
use std::ptr::NonNull;

/// A `T` in a region with no lock: Python's `Value(..., lock=False)`.
///
/// For the integer types of [`AtomicInt`] every operation is one lock-free atomic instruction
/// on the shared word: the fastest way to keep counters and flags across processes. For any
/// other `T`, reads and writes are `unsafe`: the caller must rule out concurrent writers.
///
/// # Examples
///
/// ```
/// let region = shmsync::Region::anonymous(1 << 16)?;
/// let hits = region.raw_value::<u64>("hits", 0)?;
/// hits.fetch_add(5);
/// assert_eq!(hits.compare_exchange(5, 6), Ok(5));
/// assert_eq!(hits.load(), 6);
/// # Ok::<(), shmsync::Error>(())
/// ```
pub struct RawValue<T> {
    _object: Object,
    data: NonNull<T>,
}

// SAFETY: the data is reached only through atomics (for `AtomicInt`) or through `unsafe`
// methods whose callers rule out races; the mapping lives as long as `_object`.
unsafe impl<T: Send> Send for RawValue<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for RawValue<T> {}

impl<T> Clone for RawValue<T> {
    fn clone(&self) -> Self {
        RawValue {
            _object: self._object.clone(),
            data: self.data,
        }
    }
}

impl<T: Pod> RawValue<T> {
    /// A pointer to the value in the mapping (valid while this handle, or a clone, lives).
    pub fn as_ptr(&self) -> *mut T {
        self.data.as_ptr()
    }

    /// Reads the value with a volatile read.
    ///
    /// # Safety
    ///
    /// No thread or process may write the value during the read (a torn or racing read is a
    /// data race).
    pub unsafe fn read(&self) -> T {
        // SAFETY: aligned and inside the live mapping; the caller rules out concurrent writes.
        unsafe { self.data.as_ptr().read_volatile() }
    }

    /// Writes the value with a volatile write.
    ///
    /// # Safety
    ///
    /// No other thread or process may read or write the value during the write.
    pub unsafe fn write(&self, value: T) {
        // SAFETY: aligned and inside the live mapping; the caller rules out concurrent access.
        unsafe { self.data.as_ptr().write_volatile(value) }
    }
}

impl<T: AtomicInt> RawValue<T> {
    /// Atomically loads the value (sequentially consistent).
    pub fn load(&self) -> T {
        // SAFETY: aligned to its size (the object is 128-aligned and `AtomicInt` types have
        // `align == size`), inside the live mapping, and only accessed atomically in safe code.
        unsafe { T::atomic_load(self.data.as_ptr()) }
    }
    /// Atomically stores `value`.
    pub fn store(&self, value: T) {
        // SAFETY: as in `load`.
        unsafe { T::atomic_store(self.data.as_ptr(), value) }
    }
    /// Atomically adds `delta` (wrapping); returns the previous value.
    pub fn fetch_add(&self, delta: T) -> T {
        // SAFETY: as in `load`.
        unsafe { T::atomic_fetch_add(self.data.as_ptr(), delta) }
    }
    /// Atomically subtracts `delta` (wrapping); returns the previous value.
    pub fn fetch_sub(&self, delta: T) -> T {
        // SAFETY: as in `load`.
        unsafe { T::atomic_fetch_sub(self.data.as_ptr(), delta) }
    }
    /// Atomically replaces the value; returns the previous one.
    pub fn swap(&self, value: T) -> T {
        // SAFETY: as in `load`.
        unsafe { T::atomic_swap(self.data.as_ptr(), value) }
    }
    /// Atomically replaces the value with `new` if it equals `current`: `Ok(previous)` if it
    /// did, `Err(actual)` if not.
    pub fn compare_exchange(&self, current: T, new: T) -> Result<T, T> {
        // SAFETY: as in `load`.
        unsafe { T::atomic_compare_exchange(self.data.as_ptr(), current, new) }
    }
}

impl<T: AtomicInt> fmt::Debug for RawValue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawValue")
            .field("value", &self.load())
            .finish()
    }
}

/// A fixed-length array of `T` in a region with no lock: Python's `Array(..., lock=False)`.
///
/// For [`AtomicInt`] element types each element is read and updated with lock-free atomics;
/// for other types element access is `unsafe`. Indexing past the end panics, as slice indexing
/// does.
///
/// # Examples
///
/// ```
/// let region = shmsync::Region::anonymous(1 << 16)?;
/// let slots = region.raw_array::<u32>("slots", &[0; 8])?;
/// slots.store(3, 42);
/// assert_eq!(slots.fetch_add(3, 1), 42);
/// assert_eq!(slots.to_vec()[3], 43);
/// # Ok::<(), shmsync::Error>(())
/// ```
pub struct RawArray<T> {
    _object: Object,
    data: NonNull<T>,
    len: usize,
}

// SAFETY: as for `RawValue`.
unsafe impl<T: Send> Send for RawArray<T> {}
// SAFETY: as for `RawValue`.
unsafe impl<T: Send> Sync for RawArray<T> {}

impl<T> Clone for RawArray<T> {
    fn clone(&self) -> Self {
        RawArray {
            _object: self._object.clone(),
            data: self.data,
            len: self.len,
        }
    }
}

impl<T: Pod> RawArray<T> {
    /// The number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A pointer to the first element (valid while this handle, or a clone, lives).
    pub fn as_ptr(&self) -> *mut T {
        self.data.as_ptr()
    }

    /// A pointer to element `index`.
    ///
    /// # Panics
    ///
    /// If `index >= self.len()`.
    #[inline]
    fn at(&self, index: usize) -> *mut T {
        assert!(
            index < self.len,
            "index {index} out of range for a RawArray of length {}",
            self.len
        );
        // SAFETY: `index < len`, and the directory reserved `len` elements at `data`.
        unsafe { self.data.as_ptr().add(index) }
    }

    /// Reads element `index` with a volatile read.
    ///
    /// # Safety
    ///
    /// No thread or process may write the element during the read.
    ///
    /// # Panics
    ///
    /// If `index >= self.len()`.
    pub unsafe fn read(&self, index: usize) -> T {
        // SAFETY: in bounds (checked by `at`) and aligned; the caller rules out races.
        unsafe { self.at(index).read_volatile() }
    }

    /// Writes element `index` with a volatile write.
    ///
    /// # Safety
    ///
    /// No other thread or process may access the element during the write.
    ///
    /// # Panics
    ///
    /// If `index >= self.len()`.
    pub unsafe fn write(&self, index: usize, value: T) {
        // SAFETY: in bounds (checked by `at`) and aligned; the caller rules out races.
        unsafe { self.at(index).write_volatile(value) }
    }
}

impl<T: AtomicInt> RawArray<T> {
    /// Atomically loads element `index`.
    ///
    /// # Panics
    ///
    /// If `index >= self.len()` (as for every method taking an index).
    pub fn load(&self, index: usize) -> T {
        // SAFETY: in bounds (checked by `at`), aligned to its size, in the live mapping, and
        // only accessed atomically in safe code.
        unsafe { T::atomic_load(self.at(index)) }
    }
    /// Atomically stores `value` into element `index`.
    pub fn store(&self, index: usize, value: T) {
        // SAFETY: as in `load`.
        unsafe { T::atomic_store(self.at(index), value) }
    }
    /// Atomically adds `delta` (wrapping) to element `index`; returns the previous value.
    pub fn fetch_add(&self, index: usize, delta: T) -> T {
        // SAFETY: as in `load`.
        unsafe { T::atomic_fetch_add(self.at(index), delta) }
    }
    /// Atomically subtracts `delta` (wrapping) from element `index`; returns the previous value.
    pub fn fetch_sub(&self, index: usize, delta: T) -> T {
        // SAFETY: as in `load`.
        unsafe { T::atomic_fetch_sub(self.at(index), delta) }
    }
    /// Atomically replaces element `index`; returns the previous value.
    pub fn swap(&self, index: usize, value: T) -> T {
        // SAFETY: as in `load`.
        unsafe { T::atomic_swap(self.at(index), value) }
    }
    /// Atomically replaces element `index` with `new` if it equals `current`.
    pub fn compare_exchange(&self, index: usize, current: T, new: T) -> Result<T, T> {
        // SAFETY: as in `load`.
        unsafe { T::atomic_compare_exchange(self.at(index), current, new) }
    }
    /// Every element, each loaded atomically (not a snapshot of the whole array).
    pub fn to_vec(&self) -> Vec<T> {
        (0..self.len).map(|i| self.load(i)).collect()
    }
}

impl<T: Pod> fmt::Debug for RawArray<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawArray").field("len", &self.len).finish()
    }
}

impl Region {
    /// Finds or creates the [`RawValue`] called `name`; a new one starts as `init`.
    ///
    /// # Errors
    ///
    /// As [`Region::value`].
    pub fn raw_value<T: Pod>(&self, name: &str, init: T) -> Result<RawValue<T>> {
        let (object, data) = cell(self, name, Spec::of::<T>(Kind::RawValue, 1), &[init])?;
        Ok(RawValue {
            _object: object,
            data,
        })
    }

    /// Finds or creates the [`RawArray`] called `name`, of `init.len()` elements; a new one
    /// starts as a copy of `init`.
    ///
    /// # Errors
    ///
    /// As [`Region::array`].
    pub fn raw_array<T: Pod>(&self, name: &str, init: &[T]) -> Result<RawArray<T>> {
        let (object, data) = cell(self, name, Spec::of::<T>(Kind::RawArray, init.len()), init)?;
        Ok(RawArray {
            _object: object,
            data,
            len: init.len(),
        })
    }
}

/// A `RawValue` travels to a spawned child by region and name.
impl<T: Pod> crate::Transfer for RawValue<T> {
    fn encode(&self, out: &mut crate::Encoder) -> Result<()> {
        out.object(&self._object)
    }
    fn decode(input: &mut crate::Decoder) -> Result<Self> {
        let (region, name) = input.object()?;
        region.raw_value(&name, T::zeroed())
    }
}

/// A `RawArray` travels to a spawned child by region, name and length.
impl<T: Pod> crate::Transfer for RawArray<T> {
    fn encode(&self, out: &mut crate::Encoder) -> Result<()> {
        out.object(&self._object)?;
        crate::Transfer::encode(&self.len, out)
    }
    fn decode(input: &mut crate::Decoder) -> Result<Self> {
        let (region, name) = input.object()?;
        let len = <usize as crate::Transfer>::decode(input)?;
        if len.saturating_mul(size_of::<T>()) > region.size() {
            return Err(crate::Error::InvalidArgument(format!(
                "a RawArray of {len} elements cannot be in a region of {} bytes",
                region.size()
            )));
        }
        region.raw_array(&name, &vec![T::zeroed(); len])
    }
}
