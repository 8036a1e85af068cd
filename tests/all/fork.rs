//! Anonymous regions shared with forked children.
//!
//! The test harness is multi-threaded, so a forked child keeps to little: it uses the handles it
//! inherited (atomics and futex calls), reports failure through its exit status and a message
//! written straight to fd 2 (libtest's output capture does not survive a fork), and leaves with
//! `_exit` so that no destructor or atexit handler of the parent's state runs in it.

use crate::common::{LIMIT, SIZE, current_tid, wait_for_count, wait_until};
use shmsync::{Error, Owner, Region, TryLockError};
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

/// Fails the forked child with a message (instead of a panic, whose message would be lost).
macro_rules! check {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

/// A forked child; killed and reaped on drop if the test did not wait for it.
struct Forked {
    pid: libc::pid_t,
    reaped: bool,
}

/// Forks; the child runs `f` and exits with 0 if it returned `Ok`, 1 (with the message on
/// stderr) if it returned `Err`, 2 if it panicked.
fn fork(f: impl FnOnce() -> Result<(), String>) -> Forked {
    // SAFETY: the child only runs `f` (which touches shared memory through inherited handles,
    // makes system calls and may allocate, which glibc's fork-safe malloc allows) and `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let code = match std::panic::catch_unwind(AssertUnwindSafe(f)) {
            Ok(Ok(())) => 0,
            Ok(Err(msg)) => {
                let msg = format!("forked child failed: {msg}\n");
                // SAFETY: writes a valid buffer to stderr.
                unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
                1
            }
            Err(_) => 2,
        };
        // SAFETY: ends the child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    Forked { pid, reaped: false }
}

impl Forked {
    fn wait_ok(mut self) {
        let start = Instant::now();
        loop {
            let mut status = 0;
            // SAFETY: waits for our own child, writing its status into a local.
            let r = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
            if r == self.pid {
                self.reaped = true;
                assert!(
                    libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
                    "forked child failed (wait status {status:#x}; its message is on stderr)"
                );
                return;
            }
            assert_eq!(r, 0, "waitpid: {}", std::io::Error::last_os_error());
            if start.elapsed() > LIMIT {
                self.kill();
                panic!("forked child did not finish within {LIMIT:?}; killed it");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn kill(&mut self) {
        // SAFETY: signals and reaps our own child.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
            libc::waitpid(self.pid, std::ptr::null_mut(), 0);
        }
        self.reaped = true;
    }
}

impl Drop for Forked {
    fn drop(&mut self) {
        if !self.reaped {
            self.kill();
        }
    }
}

const CHILDREN: u32 = 3;
const ITERS: u64 = 20_000;

#[test]
fn forked_children_share_an_anonymous_region() {
    let region = Region::anonymous(SIZE).unwrap();
    let counter = region.value::<u64>("counter", 0).unwrap();
    let atomic = region.raw_value::<u64>("atomic", 0).unwrap();
    let arr = region.array::<u32>("arr", &[0; 4]).unwrap();
    let ready = region.raw_value::<u32>("ready", 0).unwrap();
    let go = region.raw_value::<u32>("go", 0).unwrap();
    let children: Vec<Forked> = (0..CHILDREN)
        .map(|_| {
            fork(|| {
                ready.fetch_add(1);
                let start = Instant::now();
                while go.load() == 0 {
                    check!(start.elapsed() < LIMIT, "no start signal");
                    std::thread::yield_now();
                }
                for i in 0..ITERS {
                    let mut g = counter.lock().map_err(|e| e.to_string())?;
                    let v = *g;
                    if i % 64 == 0 {
                        std::thread::yield_now();
                    }
                    *g = v + 1;
                    drop(g);
                    atomic.fetch_add(1);
                    if i % 4 == 0 {
                        let mut a = arr.lock().map_err(|e| e.to_string())?;
                        for x in a.iter_mut() {
                            *x += 1;
                        }
                    }
                }
                Ok(())
            })
        })
        .collect();
    wait_for_count(&ready, CHILDREN, "every forked child to be ready");
    go.store(1);
    for c in children {
        c.wait_ok();
    }
    let n = u64::from(CHILDREN) * ITERS;
    assert_eq!(counter.load().unwrap(), n);
    assert_eq!(atomic.load(), n);
    assert_eq!(arr.to_vec().unwrap(), [(n / 4) as u32; 4]);
}

#[test]
fn objects_created_after_fork_are_seen_on_both_sides() {
    let region = Region::anonymous(SIZE).unwrap();
    let before = region.value::<u32>("before", 5).unwrap();
    let parent_done = region.raw_value::<u32>("parent_done", 0).unwrap();
    let child_region = region.clone();
    let child = fork(move || {
        check!(before.load().unwrap() == 5, "before: wrong value");
        before.store(6).unwrap();
        let by_child = child_region
            .array::<i16>("by_child", &[1, 2, 3])
            .map_err(|e| e.to_string())?;
        by_child.set(2, 30).map_err(|e| e.to_string())?;
        let start = Instant::now();
        while parent_done.load() == 0 {
            check!(
                start.elapsed() < LIMIT,
                "the parent never created its object"
            );
            std::thread::yield_now();
        }
        let by_parent = child_region
            .value::<u64>("by_parent", 0)
            .map_err(|e| e.to_string())?;
        check!(
            by_parent.load().unwrap() == 7,
            "by_parent not found with its value"
        );
        Ok(())
    });
    region.value::<u64>("by_parent", 7).unwrap();
    let before = region.value::<u32>("before", 0).unwrap();
    region.raw_value::<u32>("parent_done", 0).unwrap().store(1);
    child.wait_ok();
    assert_eq!(before.load().unwrap(), 6);
    let by_child = region.array::<i16>("by_child", &[0; 3]).unwrap();
    assert_eq!(by_child.to_vec().unwrap(), [1, 2, 30]);
    let names: Vec<String> = region
        .objects()
        .unwrap()
        .into_iter()
        .map(|o| o.name)
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");
}

/// The RLock identity is cached per thread; a forked child must not inherit its parent's.
#[test]
fn a_forked_child_does_not_inherit_its_parents_rlock_ownership() {
    let region = Region::anonymous(SIZE).unwrap();
    let rl = region.rlock("r").unwrap();
    let lock = region.lock("l").unwrap();
    let step = region.raw_value::<u32>("step", 0).unwrap();
    let parent = Owner {
        pid: std::process::id(),
        tid: current_tid(),
    };
    // Fill the parent thread's identity cache, then fork while owning the RLock.
    assert!(rl.acquire(true, None));
    assert!(lock.acquire(true, None));
    assert_eq!(rl.owner(), Some(parent));
    let child = fork(|| {
        // SAFETY: getpid has no preconditions.
        let my_pid = unsafe { libc::getpid() } as u32;
        check!(rl.is_locked(), "the parent's RLock is not seen held");
        check!(
            rl.owner() == Some(parent),
            "owner {:?}, expected {parent:?}",
            rl.owner()
        );
        check!(
            !rl.is_owned_by_current_thread(),
            "the child believes it owns its parent's RLock"
        );
        check!(
            matches!(rl.try_lock(), Err(TryLockError::WouldBlock)),
            "the child re-entered its parent's RLock"
        );
        check!(
            matches!(rl.release(), Err(Error::NotOwner)),
            "the child released its parent's RLock"
        );
        check!(lock.is_locked() && !lock.acquire(false, None), "plain lock");
        step.store(1);
        // Blocks until the parent releases, then owns it under its own identity.
        let g = rl.lock().map_err(|e| e.to_string())?;
        let owner = rl.owner();
        check!(
            owner.map(|o| o.pid) == Some(my_pid) && owner != Some(parent),
            "owner {owner:?} after the child took it (child pid {my_pid})"
        );
        check!(rl.is_owned_by_current_thread(), "not owner after lock()");
        check!(rl.count() == 1, "count {}", rl.count());
        drop(g);
        check!(!rl.is_locked(), "still locked after the child's release");
        Ok(())
    });
    wait_until("the forked child's checks", || step.load() == 1);
    assert_eq!(rl.count(), 1);
    assert_eq!(rl.owner(), Some(parent));
    std::thread::sleep(Duration::from_millis(50));
    rl.release().unwrap();
    lock.release().unwrap();
    child.wait_ok();
    assert!(!rl.is_locked());
    assert_eq!(rl.owner(), None);
}

#[test]
fn a_forked_waiter_is_woken_by_the_parents_release() {
    let region = Region::anonymous(SIZE).unwrap();
    let lock = region.lock("l").unwrap();
    let ready = region.raw_value::<u32>("ready", 0).unwrap();
    let got = region.raw_value::<u32>("got", 0).unwrap();
    assert!(lock.acquire(true, None));
    let child = fork(|| {
        ready.store(1);
        let g = lock.lock().map_err(|e| e.to_string())?;
        got.store(1);
        drop(g);
        Ok(())
    });
    wait_until("the forked child to be about to block", || {
        ready.load() == 1
    });
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(got.load(), 0, "the child took a held lock");
    lock.release().unwrap();
    child.wait_ok();
    assert_eq!(got.load(), 1);
    assert!(!lock.is_locked());
}

/// A child forked while its parent holds guards must not release the parent's locks by dropping
/// its copies of them.
#[test]
fn a_forked_childs_copy_of_a_guard_does_not_release_the_parents_lock() {
    let region = Region::anonymous(SIZE).unwrap();
    let v = region.value::<u64>("v", 1).unwrap();
    let lock = region.lock("l").unwrap();
    let mut value_guard = Some(v.lock().unwrap());
    let mut lock_guard = Some(lock.lock().unwrap());
    let child = fork(|| {
        drop(value_guard.take());
        drop(lock_guard.take());
        check!(v.is_locked(), "the child's guard copy released the value");
        check!(lock.is_locked(), "the child's guard copy released the lock");
        check!(
            matches!(v.try_lock(), Err(TryLockError::WouldBlock)),
            "the child got the parent's value lock"
        );
        // The child's own guards work normally on other objects.
        let other = region.value::<u64>("other", 0).map_err(|e| e.to_string())?;
        *other.lock().map_err(|e| e.to_string())? += 1;
        check!(!other.is_locked(), "the child's own guard did not release");
        Ok(())
    });
    child.wait_ok();
    assert!(v.is_locked() && lock.is_locked());
    assert!(value_guard.is_some() && lock_guard.is_some());
    **value_guard.as_mut().unwrap() += 1;
    drop(value_guard);
    drop(lock_guard);
    assert!(!v.is_locked() && !lock.is_locked());
    assert_eq!(v.load().unwrap(), 2);
    assert_eq!(region.value::<u64>("other", 0).unwrap().load().unwrap(), 1);
}
