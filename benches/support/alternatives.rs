//! The alternatives shmsync is measured against, each living in the shared arena: a minimal
//! 3-state futex mutex (Drepper, "Futexes Are Tricky", mutex 3) on shared (non-private) futexes,
//! glibc's `pthread_mutex_t` with `PTHREAD_PROCESS_SHARED` (plain and robust), a POSIX
//! `sem_t` with `pshared = 1` used as a binary semaphore, and glibc's `pthread_rwlock_t` with
//! `PTHREAD_PROCESS_SHARED`.

use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

/// A lock usable across processes: acquire and release, with no guard and no owner check.
pub trait SharedLock {
    fn lock(&self);
    fn unlock(&self);
}

#[cold]
#[inline(never)]
fn failed(what: &str, rc: i32) -> ! {
    panic!("{what} failed: {}", std::io::Error::from_raw_os_error(rc))
}

// ---------------------------------------------------------------------------------------------
// Shared futex calls

/// Sleeps while `word` holds `expected` (shared futex: any process may wake us). May return
/// spuriously.
pub fn futex_wait(word: &AtomicU32, expected: u32) {
    // SAFETY: FUTEX_WAIT (without FUTEX_PRIVATE_FLAG, so keyed by inode and offset and woken
    // from any process) reads the aligned word at the pointer, which lives as long as `word`;
    // the null timeout means no deadline and the remaining arguments are ignored.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// Wakes at most `n` sleepers on `word`, in any process.
pub fn futex_wake(word: &AtomicU32, n: i32) {
    // SAFETY: FUTEX_WAKE only uses the address as a key (the word lives as long as `word`); the
    // trailing arguments are ignored.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            n,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// Sleeps while `word` holds `expected`, at most until `slice` from now on the monotonic clock:
/// an absolute `FUTEX_WAIT_BITSET` deadline, the kind of sleep shmsync's waiters take (they
/// wake every 20 ms to check on the holder).
fn futex_wait_slice(word: &AtomicU32, expected: u32, slice: std::time::Duration) {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a live, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    let nanos = now.tv_nsec as u64 + u64::from(slice.subsec_nanos());
    let deadline = libc::timespec {
        tv_sec: now.tv_sec
            + slice.as_secs() as libc::time_t
            + (nanos / 1_000_000_000) as libc::time_t,
        tv_nsec: (nanos % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: FUTEX_WAIT_BITSET (shared, CLOCK_MONOTONIC) reads the aligned word, which lives as
    // long as `word`, and the timespec, which lives until the call returns; the bitset matches
    // every wake.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT_BITSET,
            expected,
            &deadline as *const libc::timespec,
            std::ptr::null::<u32>(),
            libc::FUTEX_BITSET_MATCH_ANY,
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The minimal futex mutex

/// Drepper's 3-state futex mutex: 0 free, 1 locked, 2 locked with possible sleepers. Any
/// process may unlock it. With `SPIN = 0` and `TIMED = false` it is the minimal one: no spin,
/// no owner, no recovery, the least a futex lock can do.
///
/// The two parameters exist to take shmsync apart, one trait at a time: `SPIN` re-reads the
/// word up to that many times while it is held without sleepers before sleeping (shmsync spins
/// 100), `TIMED` sleeps in 20 ms slices with an absolute monotonic deadline (as shmsync's
/// waiters do, to check on the holder) instead of without a timeout.
#[derive(Clone, Copy)]
pub struct FutexMutex<'a, const SPIN: u32 = 0, const TIMED: bool = false> {
    word: &'a AtomicU32,
}

/// The futex mutex with the fixed spin shmsync used before its adaptive one (100 reads while
/// held without sleepers).
pub type SpinningFutexMutex<'a> = FutexMutex<'a, 100, false>;

impl<'a, const SPIN: u32, const TIMED: bool> FutexMutex<'a, SPIN, TIMED> {
    /// The mutex in `word`, which must be 0 (free) or hold a state written by this protocol.
    pub fn new(word: &'a AtomicU32) -> Self {
        FutexMutex { word }
    }

    #[cold]
    fn lock_contended(&self, mut c: u32) {
        for _ in 0..SPIN {
            match c {
                2 => break,
                0 => match self.word.compare_exchange(0, 1, Acquire, Relaxed) {
                    Ok(_) => return,
                    Err(now) => c = now,
                },
                _ => {
                    std::hint::spin_loop();
                    c = self.word.load(Relaxed);
                }
            }
        }
        if c != 2 {
            c = self.word.swap(2, Acquire);
        }
        while c != 0 {
            if TIMED {
                futex_wait_slice(self.word, 2, std::time::Duration::from_millis(20));
            } else {
                futex_wait(self.word, 2);
            }
            c = self.word.swap(2, Acquire);
        }
    }
}

impl<const SPIN: u32, const TIMED: bool> SharedLock for FutexMutex<'_, SPIN, TIMED> {
    #[inline]
    fn lock(&self) {
        if let Err(c) = self.word.compare_exchange(0, 1, Acquire, Relaxed) {
            self.lock_contended(c);
        }
    }

    #[inline]
    fn unlock(&self) {
        if self.word.fetch_sub(1, Release) != 1 {
            self.word.store(0, Release);
            futex_wake(self.word, 1);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// glibc pthread mutex, process-shared

/// A `pthread_mutex_t` in shared memory, `PTHREAD_PROCESS_SHARED`, optionally `ROBUST`.
#[derive(Clone, Copy)]
pub struct PthreadMutex {
    ptr: *mut libc::pthread_mutex_t,
}

impl PthreadMutex {
    /// Initialises a mutex at `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` is aligned for `pthread_mutex_t`, points to `size_of::<pthread_mutex_t>()` bytes
    /// of a shared mapping that outlives every use of the returned handle, and nobody uses a
    /// mutex there during this call.
    pub unsafe fn init(ptr: *mut u8, robust: bool) -> PthreadMutex {
        let ptr = ptr.cast::<libc::pthread_mutex_t>();
        // SAFETY: all-zero bytes are a valid `pthread_mutexattr_t` to pass to `_init`.
        let mut attr: libc::pthread_mutexattr_t = unsafe { std::mem::zeroed() };
        // SAFETY: `attr` is a live, writable attribute object; `ptr` satisfies the caller's
        // contract; each call only reads and writes those two objects.
        unsafe {
            check(
                "pthread_mutexattr_init",
                libc::pthread_mutexattr_init(&mut attr),
            );
            check(
                "pthread_mutexattr_setpshared",
                libc::pthread_mutexattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED),
            );
            if robust {
                check(
                    "pthread_mutexattr_setrobust",
                    libc::pthread_mutexattr_setrobust(&mut attr, libc::PTHREAD_MUTEX_ROBUST),
                );
            }
            check("pthread_mutex_init", libc::pthread_mutex_init(ptr, &attr));
            libc::pthread_mutexattr_destroy(&mut attr);
        }
        PthreadMutex { ptr }
    }

    /// A handle to a mutex another process initialised at `ptr`.
    ///
    /// # Safety
    ///
    /// As [`init`](PthreadMutex::init), and a mutex has been initialised there.
    pub unsafe fn existing(ptr: *mut u8) -> PthreadMutex {
        PthreadMutex { ptr: ptr.cast() }
    }
}

fn check(what: &str, rc: i32) {
    if rc != 0 {
        failed(what, rc);
    }
}

impl SharedLock for PthreadMutex {
    #[inline]
    fn lock(&self) {
        // SAFETY: `ptr` is an initialised process-shared mutex in a live mapping (the contract
        // of `init`/`existing`).
        let rc = unsafe { libc::pthread_mutex_lock(self.ptr) };
        if rc != 0 {
            // EOWNERDEAD cannot happen here: no holder of these mutexes ever dies holding one.
            failed("pthread_mutex_lock", rc);
        }
    }

    #[inline]
    fn unlock(&self) {
        // SAFETY: as in `lock`; the caller holds the mutex.
        let rc = unsafe { libc::pthread_mutex_unlock(self.ptr) };
        if rc != 0 {
            failed("pthread_mutex_unlock", rc);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// POSIX semaphore, process-shared

/// A `sem_t` with `pshared = 1` and an initial value of 1: `sem_wait` locks, `sem_post`
/// unlocks.
#[derive(Clone, Copy)]
pub struct Semaphore {
    ptr: *mut libc::sem_t,
}

impl Semaphore {
    /// Initialises a semaphore of value 1 at `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` is aligned for `sem_t`, points to `size_of::<sem_t>()` bytes of a shared mapping
    /// that outlives every use of the handle, and nobody uses a semaphore there during this
    /// call.
    pub unsafe fn init(ptr: *mut u8) -> Semaphore {
        let ptr = ptr.cast::<libc::sem_t>();
        // SAFETY: the caller's contract.
        if unsafe { libc::sem_init(ptr, 1, 1) } != 0 {
            panic!("sem_init: {}", std::io::Error::last_os_error());
        }
        Semaphore { ptr }
    }

    /// A handle to a semaphore another process initialised at `ptr`.
    ///
    /// # Safety
    ///
    /// As [`init`](Semaphore::init), and a semaphore has been initialised there.
    pub unsafe fn existing(ptr: *mut u8) -> Semaphore {
        Semaphore { ptr: ptr.cast() }
    }
}

impl SharedLock for Semaphore {
    #[inline]
    fn lock(&self) {
        loop {
            // SAFETY: `ptr` is an initialised process-shared semaphore in a live mapping.
            if unsafe { libc::sem_wait(self.ptr) } == 0 {
                return;
            }
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                panic!("sem_wait: {err}");
            }
        }
    }

    #[inline]
    fn unlock(&self) {
        // SAFETY: as in `lock`.
        if unsafe { libc::sem_post(self.ptr) } != 0 {
            panic!("sem_post: {}", std::io::Error::last_os_error());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// glibc pthread rwlock, process-shared

/// A `pthread_rwlock_t` in shared memory, `PTHREAD_PROCESS_SHARED` (glibc's default kind,
/// which prefers readers).
#[derive(Clone, Copy)]
pub struct PthreadRwLock {
    ptr: *mut libc::pthread_rwlock_t,
}

impl PthreadRwLock {
    /// Initialises a read-write lock at `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` is aligned for `pthread_rwlock_t`, points to `size_of::<pthread_rwlock_t>()` bytes
    /// of a shared mapping that outlives every use of the returned handle, and nobody uses a
    /// lock there during this call.
    pub unsafe fn init(ptr: *mut u8) -> PthreadRwLock {
        let ptr = ptr.cast::<libc::pthread_rwlock_t>();
        // SAFETY: all-zero bytes are a valid `pthread_rwlockattr_t` to pass to `_init`.
        let mut attr: libc::pthread_rwlockattr_t = unsafe { std::mem::zeroed() };
        // SAFETY: `attr` is a live, writable attribute object; `ptr` satisfies the caller's
        // contract; each call only reads and writes those two objects.
        unsafe {
            check(
                "pthread_rwlockattr_init",
                libc::pthread_rwlockattr_init(&mut attr),
            );
            check(
                "pthread_rwlockattr_setpshared",
                libc::pthread_rwlockattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED),
            );
            check("pthread_rwlock_init", libc::pthread_rwlock_init(ptr, &attr));
            libc::pthread_rwlockattr_destroy(&mut attr);
        }
        PthreadRwLock { ptr }
    }

    /// Takes and releases a read lock.
    #[inline]
    pub fn read_unlock(&self) {
        // SAFETY: `ptr` is an initialised process-shared rwlock in a live mapping (the contract
        // of `init`); the unlock releases the read lock just taken.
        unsafe {
            check(
                "pthread_rwlock_rdlock",
                libc::pthread_rwlock_rdlock(self.ptr),
            );
            check(
                "pthread_rwlock_unlock",
                libc::pthread_rwlock_unlock(self.ptr),
            );
        }
    }

    /// Takes and releases the write lock.
    #[inline]
    pub fn write_unlock(&self) {
        // SAFETY: as in `read_unlock`.
        unsafe {
            check(
                "pthread_rwlock_wrlock",
                libc::pthread_rwlock_wrlock(self.ptr),
            );
            check(
                "pthread_rwlock_unlock",
                libc::pthread_rwlock_unlock(self.ptr),
            );
        }
    }
}
