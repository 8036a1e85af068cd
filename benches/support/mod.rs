//! Shared pieces of the `locks` benchmark: the shared-memory arena the alternatives live in, the
//! alternatives themselves (a minimal futex mutex, glibc pthread mutexes and POSIX semaphores),
//! CPU pinning, and the helper processes of the two-process benchmarks.

pub mod alternatives;

use std::io::Write;
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Set in the environment of a re-executed bench binary to make it a helper process; the value
/// names the helper's job (`contend/<impl>` or `pingpong/<impl>`).
pub const HELPER_ENV: &str = "SHMSYNC_BENCH_HELPER";
/// The shmsync region path the helper opens.
pub const REGION_ENV: &str = "SHMSYNC_BENCH_REGION";
/// The descriptor of the arena (a memfd the helper inherits).
pub const ARENA_FD_ENV: &str = "SHMSYNC_BENCH_ARENA_FD";
/// The CPU the helper pins itself to (unset: no pinning).
pub const CPU_ENV: &str = "SHMSYNC_BENCH_CPU";
/// Where to append one JSON line per contended benchmark (unset: print only).
pub const EXTRA_ENV: &str = "SHMSYNC_BENCH_EXTRA";
/// A helper never runs longer than this, whatever happens to the bench process.
pub const HELPER_MAX_LIFETIME: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------------------------
// The arena: a memfd mapped MAP_SHARED, cut into 128-byte slots

/// Bytes per arena slot: every object gets its own pair of cache lines, as in a shmsync region.
pub const SLOT: usize = 128;
/// Offset of the counter inside a slot: after the largest lock object (`pthread_mutex_t`, 40
/// bytes on x86-64), on the same 64-byte cache line as the lock, as shmsync's `Value` does.
pub const COUNTER_OFFSET: usize = 48;
const _: () = assert!(size_of::<libc::pthread_mutex_t>() <= COUNTER_OFFSET);
const _: () = assert!(size_of::<libc::sem_t>() <= COUNTER_OFFSET);

/// The slots of the arena.
pub mod slot {
    /// Stop and ready flags of the helper protocol.
    pub const CONTROL: usize = 0;
    pub const FLOOR: usize = 1;
    pub const FUTEX: usize = 2;
    pub const PTHREAD: usize = 3;
    pub const ROBUST: usize = 4;
    pub const SEM: usize = 5;
    pub const RAW_SYNC: usize = 6;
    /// The counter of the shmsync `Lock` contended benchmark (a `Lock` has no data of its own).
    pub const SHMSYNC_LOCK_COUNTER: usize = 7;
    /// The futex mutex with a fixed 100-read spin, for the contended benchmark.
    pub const FUTEX_SPIN: usize = 8;
    /// The ping-pong cases: two lock words each (offsets 0 and 4) and a round counter.
    pub const PP_SHMSYNC: usize = 9;
    pub const PP_FUTEX: usize = 10;
    pub const PP_FUTEX_SPIN: usize = 11;
    pub const PP_FUTEX_TIMED: usize = 12;
    pub const PP_FLAG: usize = 13;
    /// The interleaved contended pass: one "go" word and one "active" word per case.
    pub const GO: usize = 14;
    pub const ACTIVE: usize = 15;
    /// glibc's process-shared `pthread_rwlock_t`, uncontended only.
    pub const RWLOCK: usize = 16;
    /// A flag word read by the `Event::is_set` comparison (an Acquire load).
    pub const FLAG: usize = 17;
    /// The counter of the shmsync `Semaphore` permit contended benchmark.
    pub const PERMIT_COUNTER: usize = 18;
    pub const COUNT: usize = 19;
}

/// A memfd mapped `MAP_SHARED`: what any process-shared lock lives in. The descriptor is
/// inheritable (no close-on-exec), so a helper started with [`Command`] maps the same pages.
pub struct Arena {
    ptr: *mut u8,
    len: usize,
    fd: RawFd,
}

impl Arena {
    /// A fresh, zeroed arena.
    pub fn create() -> Arena {
        let len = slot::COUNT * SLOT;
        // SAFETY: the name is a NUL-terminated string; flags 0 (not close-on-exec, so helpers
        // inherit it) is valid.
        let fd = unsafe { libc::memfd_create(c"shmsync-bench-arena".as_ptr(), 0) };
        assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
        // SAFETY: `fd` is the memfd just created and owned by us.
        let rc = unsafe { libc::ftruncate(fd, len as libc::off_t) };
        assert_eq!(rc, 0, "ftruncate: {}", std::io::Error::last_os_error());
        Arena::map(fd, len)
    }

    /// The arena created by the bench process, in a helper (inherited descriptor).
    pub fn inherited() -> Arena {
        let fd: RawFd = std::env::var(ARENA_FD_ENV)
            .ok()
            .and_then(|v| v.parse().ok())
            .expect("arena descriptor in the environment");
        Arena::map(fd, slot::COUNT * SLOT)
    }

    fn map(fd: RawFd, len: usize) -> Arena {
        // SAFETY: a fresh shared mapping of `len` bytes of the open file `fd` (at least `len`
        // bytes long), at an address the kernel chooses; nothing else is touched.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        assert!(
            ptr != libc::MAP_FAILED,
            "mmap: {}",
            std::io::Error::last_os_error()
        );
        Arena {
            ptr: ptr.cast(),
            len,
            fd,
        }
    }

    /// The descriptor, to pass to a helper.
    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// The first byte of slot `index` (128-byte aligned, since the mapping is page-aligned).
    pub fn slot_ptr(&self, index: usize) -> *mut u8 {
        assert!(index < slot::COUNT);
        // SAFETY: `index * SLOT < len`, so the result stays inside the mapping.
        unsafe { self.ptr.add(index * SLOT) }
    }

    /// The 32-bit word at the start of slot `index`.
    pub fn word(&self, index: usize) -> &AtomicU32 {
        // SAFETY: 128-byte aligned, inside the mapping, which lives as long as `self`; the word
        // is only ever accessed atomically (by any process).
        unsafe { AtomicU32::from_ptr(self.slot_ptr(index).cast()) }
    }

    /// The 32-bit word at byte `offset` (a multiple of 4, below 48) of slot `index`.
    pub fn word_at(&self, index: usize, offset: usize) -> &AtomicU32 {
        assert!(offset % 4 == 0 && offset < COUNTER_OFFSET);
        // SAFETY: 4-byte aligned, inside the slot and the mapping, which lives as long as
        // `self`; only ever accessed atomically.
        unsafe { AtomicU32::from_ptr(self.slot_ptr(index).add(offset).cast()) }
    }

    /// The 64-bit counter of slot `index`, on the same cache line as the slot's lock.
    pub fn counter(&self, index: usize) -> &AtomicU64 {
        // SAFETY: 8-byte aligned (48 bytes into a 128-byte aligned slot), inside the mapping,
        // which lives as long as `self`; only ever accessed atomically.
        unsafe { AtomicU64::from_ptr(self.slot_ptr(index).add(COUNTER_OFFSET).cast()) }
    }

    /// The helper protocol's stop flag.
    pub fn stop(&self) -> &AtomicU32 {
        self.word_at(slot::CONTROL, 0)
    }

    /// The helper protocol's ready flag.
    pub fn ready(&self) -> &AtomicU32 {
        self.word_at(slot::CONTROL, 4)
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly the mapping made in `map`, and every reference handed
        // out borrows `self`, so none outlives it; `fd` is ours to close.
        unsafe {
            libc::munmap(self.ptr.cast(), self.len);
            libc::close(self.fd);
        }
    }
}

/// Adds one to a counter protected by a lock the caller holds: a relaxed load and store (plain
/// `mov`s), as an increment of a plain integer under a lock compiles to.
#[inline]
pub fn bump(counter: &AtomicU64) {
    counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

// ---------------------------------------------------------------------------------------------
// CPU pinning

/// The CPUs this process may run on, in order.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: `cpu_set_t` is a plain bit set for which all-zero bytes are a valid value.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a live, writable `cpu_set_t` of the size passed; pid 0 is this thread.
    if unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) } != 0 {
        return Vec::new();
    }
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: every `cpu` is below CPU_SETSIZE, so the bit is inside `set`.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect()
}

/// Pins the calling thread to `cpu`; returns the previous affinity mask to restore, or `None`
/// if pinning is not possible here.
pub fn pin_to(cpu: usize) -> Option<libc::cpu_set_t> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return None;
    }
    // SAFETY: all-zero bytes are a valid (empty) `cpu_set_t`.
    let mut old: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `old` is a live, writable `cpu_set_t` of the size passed; pid 0 is this thread.
    if unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut old) } != 0 {
        return None;
    }
    // SAFETY: as above, all-zero bytes are an empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` is below CPU_SETSIZE (checked), so the bit is inside `set`.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a live `cpu_set_t` of the size passed; pid 0 is this thread.
    if unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) } != 0 {
        return None;
    }
    Some(old)
}

pub fn restore_affinity(old: &libc::cpu_set_t) {
    // SAFETY: `old` is a live `cpu_set_t` of the size passed; pid 0 is this thread.
    unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), old) };
}

/// Where the two processes of a two-process benchmark run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// The bench process and the helper on two different CPUs.
    TwoCpus,
    /// Both on one CPU: every handoff is a context switch.
    OneCpu,
}

impl Placement {
    pub fn label(self) -> &'static str {
        match self {
            Placement::TwoCpus => "two_cpus",
            Placement::OneCpu => "one_cpu",
        }
    }

    /// (bench CPU, helper CPU), if this machine lets us pin that way.
    pub fn cpus(self) -> Option<(usize, usize)> {
        let cpus = allowed_cpus();
        match self {
            Placement::TwoCpus if cpus.len() >= 2 => Some((cpus[0], cpus[1])),
            Placement::OneCpu if !cpus.is_empty() => Some((cpus[0], cpus[0])),
            _ => None,
        }
    }
}

/// The bench thread pinned for one case; restores the old affinity when dropped.
pub struct Pinned {
    old: Option<libc::cpu_set_t>,
    /// The helper's CPU, if the bench thread could be pinned.
    pub helper_cpu: Option<usize>,
}

impl Pinned {
    pub fn new(placement: Placement) -> Pinned {
        match placement.cpus() {
            Some((mine, helper)) => match pin_to(mine) {
                Some(old) => Pinned {
                    old: Some(old),
                    helper_cpu: Some(helper),
                },
                None => Pinned {
                    old: None,
                    helper_cpu: None,
                },
            },
            None => Pinned {
                old: None,
                helper_cpu: None,
            },
        }
    }

    pub fn pinned(&self) -> bool {
        self.old.is_some()
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        if let Some(old) = &self.old {
            restore_affinity(old);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Helper processes

/// A helper process; dropping it runs `stop` (which must make the helper leave its loop), then
/// waits for it to exit (SIGKILL after a grace period) and reaps it.
pub struct Helper<'a> {
    child: Child,
    stop: Box<dyn Fn() + 'a>,
}

impl<'a> Helper<'a> {
    /// Starts this binary again as helper `job`, pinned to `cpu` if given, and waits until it
    /// sets the arena's ready flag.
    pub fn spawn(
        job: &str,
        arena: &'a Arena,
        region: Option<&std::path::Path>,
        cpu: Option<usize>,
        stop: impl Fn() + 'a,
    ) -> Helper<'a> {
        arena.stop().store(0, Ordering::SeqCst);
        arena.ready().store(0, Ordering::SeqCst);
        let mut cmd = Command::new(std::env::current_exe().expect("current exe"));
        cmd.env(HELPER_ENV, job)
            .env(ARENA_FD_ENV, arena.fd().to_string());
        if let Some(path) = region {
            cmd.env(REGION_ENV, path);
        }
        if let Some(cpu) = cpu {
            cmd.env(CPU_ENV, cpu.to_string());
        }
        let child = cmd.spawn().expect("spawn helper");
        let helper = Helper {
            child,
            stop: Box::new(stop),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while arena.ready().load(Ordering::SeqCst) == 0 {
            assert!(Instant::now() < deadline, "helper {job} did not start");
            std::thread::sleep(Duration::from_millis(1));
        }
        helper
    }
}

impl Drop for Helper<'_> {
    fn drop(&mut self) {
        (self.stop)();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    if !status.success() {
                        eprintln!("helper exited with {status}");
                    }
                    return;
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                _ => break,
            }
        }
        eprintln!("helper did not stop; killing it");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Set up in a helper: die with the bench process, and pin to the CPU we were given.
pub fn helper_prologue() {
    // If the bench process dies, die with it (the thread that spawned us is the bench's main
    // thread, which lives as long as the bench process, so PDEATHSIG is not fired early).
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes a signal number and touches no memory of ours.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    if let Some(cpu) = std::env::var(CPU_ENV).ok().and_then(|c| c.parse().ok()) {
        pin_to(cpu);
    }
}

// ---------------------------------------------------------------------------------------------
// Extra results (joint throughput of two processes), one JSON line per benchmark

/// Appends `json` (one object) to the file named by [`EXTRA_ENV`], and prints `line`.
pub fn report_extra(json: &str, line: &str) {
    println!("{line}");
    if let Some(path) = std::env::var_os(EXTRA_ENV).map(PathBuf::from) {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .expect("open extra-results file");
        writeln!(file, "{json}").expect("write extra-results file");
    }
}

/// The median of `xs` (which it sorts); `NaN` if empty.
pub fn median(xs: &mut [f64]) -> f64 {
    quantile(xs, 0.5)
}

/// The `q` quantile of `xs` (which it sorts), interpolating linearly; `NaN` if empty.
pub fn quantile(xs: &mut [f64], q: f64) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.sort_by(f64::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (xs.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    xs[lo] + (xs[hi] - xs[lo]) * (pos - lo as f64)
}

// ---------------------------------------------------------------------------------------------
// Thread CPU time, the clock of the single-process benchmarks

/// A criterion measurement that reads the calling thread's CPU clock
/// (`CLOCK_THREAD_CPUTIME_ID`, user + system time) instead of the wall clock: on a shared
/// machine, time the bench thread spends preempted by other processes does not count. Only for
/// benchmarks that never sleep or wait on another process.
pub struct ThreadCpuTime;

/// The calling thread's CPU time so far.
pub fn thread_cpu_now() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a live, writable timespec; CLOCK_THREAD_CPUTIME_ID always exists on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Criterion's own formatter for durations (that of `WallTime`), reused for CPU time.
static WALL: criterion::measurement::WallTime = criterion::measurement::WallTime;

impl criterion::measurement::Measurement for ThreadCpuTime {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        thread_cpu_now()
    }
    fn end(&self, start: Duration) -> Duration {
        thread_cpu_now().saturating_sub(start)
    }
    fn add(&self, v1: &Duration, v2: &Duration) -> Duration {
        *v1 + *v2
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn criterion::measurement::ValueFormatter {
        criterion::measurement::Measurement::formatter(&WALL)
    }
}
