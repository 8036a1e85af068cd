//! [`AtomicInt`]: the integer types that have lock-free atomic operations in shared memory.

use std::sync::atomic::Ordering;

mod sealed {
    pub trait Sealed {}
}

/// An 8- to 64-bit integer type whose values in a region can be read and updated with atomic
/// instructions: `u8`, `i8`, `u16`, `i16`, `u32`, `i32`, `u64`, `i64`, `usize`, `isize`.
///
/// [`RawValue`](crate::RawValue) and [`RawArray`](crate::RawArray) of these types offer lock-free
/// `load`, `store`, `fetch_add`, `fetch_sub`, `swap` and `compare_exchange`;
/// [`Value`](crate::Value) of these types offers the same operations under its lock. Sealed: the
/// list is fixed.
pub trait AtomicInt: bytemuck::Pod + Eq + std::fmt::Debug + sealed::Sealed {
    /// Atomic load.
    ///
    /// # Safety
    ///
    /// `ptr` must be valid for reads and writes, aligned to `size_of::<Self>()`, and only
    /// accessed atomically by everyone for the duration of the call.
    #[doc(hidden)]
    unsafe fn atomic_load(ptr: *mut Self) -> Self;
    /// Atomic store. # Safety: as [`AtomicInt::atomic_load`].
    #[doc(hidden)]
    unsafe fn atomic_store(ptr: *mut Self, value: Self);
    /// Atomic wrapping add. # Safety: as [`AtomicInt::atomic_load`].
    #[doc(hidden)]
    unsafe fn atomic_fetch_add(ptr: *mut Self, value: Self) -> Self;
    /// Atomic wrapping subtract. # Safety: as [`AtomicInt::atomic_load`].
    #[doc(hidden)]
    unsafe fn atomic_fetch_sub(ptr: *mut Self, value: Self) -> Self;
    /// Atomic swap. # Safety: as [`AtomicInt::atomic_load`].
    #[doc(hidden)]
    unsafe fn atomic_swap(ptr: *mut Self, value: Self) -> Self;
    /// Atomic compare-and-exchange. # Safety: as [`AtomicInt::atomic_load`].
    #[doc(hidden)]
    unsafe fn atomic_compare_exchange(
        ptr: *mut Self,
        current: Self,
        new: Self,
    ) -> Result<Self, Self>;
    /// Wrapping addition.
    #[doc(hidden)]
    fn wrapping_add(self, rhs: Self) -> Self;
    /// Wrapping subtraction.
    #[doc(hidden)]
    fn wrapping_sub(self, rhs: Self) -> Self;
}

macro_rules! atomic_int {
    ($($t:ty => $atomic:ty),* $(,)?) => {$(
        impl sealed::Sealed for $t {}
        const _: () = assert!(align_of::<$t>() == size_of::<$t>());
        impl AtomicInt for $t {
            #[inline]
            unsafe fn atomic_load(ptr: *mut Self) -> Self {
                // SAFETY: the caller guarantees validity, alignment and atomic-only access.
                unsafe { <$atomic>::from_ptr(ptr) }.load(Ordering::SeqCst)
            }
            #[inline]
            unsafe fn atomic_store(ptr: *mut Self, value: Self) {
                // SAFETY: as in `atomic_load`.
                unsafe { <$atomic>::from_ptr(ptr) }.store(value, Ordering::SeqCst)
            }
            #[inline]
            unsafe fn atomic_fetch_add(ptr: *mut Self, value: Self) -> Self {
                // SAFETY: as in `atomic_load`.
                unsafe { <$atomic>::from_ptr(ptr) }.fetch_add(value, Ordering::SeqCst)
            }
            #[inline]
            unsafe fn atomic_fetch_sub(ptr: *mut Self, value: Self) -> Self {
                // SAFETY: as in `atomic_load`.
                unsafe { <$atomic>::from_ptr(ptr) }.fetch_sub(value, Ordering::SeqCst)
            }
            #[inline]
            unsafe fn atomic_swap(ptr: *mut Self, value: Self) -> Self {
                // SAFETY: as in `atomic_load`.
                unsafe { <$atomic>::from_ptr(ptr) }.swap(value, Ordering::SeqCst)
            }
            #[inline]
            unsafe fn atomic_compare_exchange(ptr: *mut Self, current: Self, new: Self) -> Result<Self, Self> {
                // SAFETY: as in `atomic_load`.
                unsafe { <$atomic>::from_ptr(ptr) }.compare_exchange(
                    current,
                    new,
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                )
            }
            #[inline]
            fn wrapping_add(self, rhs: Self) -> Self {
                <$t>::wrapping_add(self, rhs)
            }
            #[inline]
            fn wrapping_sub(self, rhs: Self) -> Self {
                <$t>::wrapping_sub(self, rhs)
            }
        }
    )*};
}

use std::sync::atomic::{
    AtomicI8, AtomicI16, AtomicI32, AtomicI64, AtomicIsize, AtomicU8, AtomicU16, AtomicU32,
    AtomicU64, AtomicUsize,
};

atomic_int! {
    u8 => AtomicU8, i8 => AtomicI8, u16 => AtomicU16, i16 => AtomicI16,
    u32 => AtomicU32, i32 => AtomicI32, u64 => AtomicU64, i64 => AtomicI64,
    usize => AtomicUsize, isize => AtomicIsize,
}
