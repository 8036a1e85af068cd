//! Helpers shared by the tests: unique region paths removed on drop, helper processes, bounded
//! waits, and byte-level access to region files.

use shmsync::{RawValue, Region};
use std::fmt::Display;
use std::fs;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a helper process (or anything a test waits for) may take before the test fails.
/// Generous on purpose: the machines are small and shared.
pub const LIMIT: Duration = Duration::from_secs(60);

/// The environment variable that makes a re-executed test binary a helper, naming its role.
pub const ROLE_VAR: &str = "SHMSYNC_TEST_ROLE";
/// The region path handed to a helper.
pub const PATH_VAR: &str = "SHMSYNC_TEST_PATH";
/// Prefix of the helper's other arguments (`SHMSYNC_TEST_ARG_<NAME>`).
const ARG_PREFIX: &str = "SHMSYNC_TEST_ARG_";
/// What a helper prints once its role returned successfully. The parent requires it, so that a
/// helper that ran no test at all (a wrong filter) cannot pass for one that succeeded.
pub const CHILD_OK: &str = "shmsync-test-child-ok:";
/// The full name of the helper test, as libtest's `--exact` wants it.
const CHILD_TEST: &str = "child::child_entry";

/// Region size most tests use.
pub const SIZE: usize = 1 << 16;

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn unique(test: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("shmsync-test-{}-{test}-{n}", std::process::id())
}

/// A fresh, empty directory under the temp dir; removed with its contents on drop.
pub struct TestDir {
    path: PathBuf,
}

impl TestDir {
    pub fn new(test: &str) -> TestDir {
        let path = std::env::temp_dir().join(unique(test));
        fs::create_dir(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        TestDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// A unique bare region name (a file in `/dev/shm`); the file is removed on drop.
pub struct ShmName {
    name: String,
}

impl ShmName {
    pub fn new(test: &str) -> ShmName {
        ShmName { name: unique(test) }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where the library puts a region of this bare name.
    pub fn path(&self) -> PathBuf {
        Path::new("/dev/shm").join(&self.name)
    }
}

impl Drop for ShmName {
    fn drop(&mut self) {
        let _ = fs::remove_file(self.path());
    }
}

/// Polls `cond` every `pause` until it holds; panics naming `what` after [`LIMIT`].
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    let mut spins = 0u32;
    while !cond() {
        if start.elapsed() > LIMIT {
            panic!("timed out after {LIMIT:?} waiting for {what}");
        }
        // Spin a little (cheap when the other side is about to answer), then back off.
        spins += 1;
        if spins < 100 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

/// Waits until the raw counter `name` reaches `n` (children increment it when ready).
pub fn wait_for_count(counter: &RawValue<u32>, n: u32, what: &str) {
    wait_until(what, || counter.load() >= n);
}

/// The start barrier of the many-process tests. Each child calls [`Barrier::arrive`]; the parent
/// calls [`Barrier::release`] once all `n` have arrived, so that they all start hammering at once.
pub struct Barrier {
    ready: RawValue<u32>,
    go: RawValue<u32>,
}

impl Barrier {
    pub fn new(region: &Region) -> Barrier {
        Barrier {
            ready: region.raw_value("barrier.ready", 0).expect("barrier"),
            go: region.raw_value("barrier.go", 0).expect("barrier"),
        }
    }

    pub fn arrive(&self) {
        self.ready.fetch_add(1);
        wait_until("the start signal", || self.go.load() == 1);
    }

    pub fn release(&self, n: u32) {
        wait_for_count(&self.ready, n, "every child to reach the start barrier");
        self.go.store(1);
    }
}

/// The calling thread's kernel thread id (what `RLock::owner` reports), without libc.
pub fn current_tid() -> u32 {
    let link = fs::read_link("/proc/thread-self").expect("read /proc/thread-self");
    // "<pid>/task/<tid>"
    link.file_name()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("unexpected /proc/thread-self: {}", link.display()))
}

// -------------------------------------------------------------------------------------------
// Helper processes

/// A helper process: this test binary re-executed to run [`child::child_entry`] in `role`.
/// Killed on drop if it is still running (so a failing test leaves no process behind).
pub struct Child {
    role: String,
    child: std::process::Child,
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<String>>,
    done: bool,
}

/// Starts a helper in `role` on the region at `path`, with `args` as `(name, value)` pairs the
/// helper reads with [`arg`].
pub fn spawn(role: &str, path: &Path, args: &[(&str, &dyn Display)]) -> Child {
    let exe = std::env::current_exe().expect("current_exe");
    let mut cmd = Command::new(exe);
    cmd.args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
        .env(ROLE_VAR, role)
        .env(PATH_VAR, path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in args {
        cmd.env(
            format!("{ARG_PREFIX}{}", name.to_uppercase()),
            value.to_string(),
        );
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn helper {role}: {e}"));
    let stdout = child.stdout.take().map(drain);
    let stderr = child.stderr.take().map(drain);
    Child {
        role: role.to_string(),
        child,
        stdout,
        stderr,
        done: false,
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = pipe.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    })
}

impl Child {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (at most [`LIMIT`]) for the helper to exit, and requires that it succeeded.
    pub fn wait_ok(mut self) {
        let status = self.wait_bounded();
        let (out, err) = self.output();
        if !status.success() || !out.contains(&format!("{CHILD_OK}{}", self.role)) {
            panic!(
                "helper {} failed ({status})\n--- helper stdout ---\n{out}\n--- helper stderr ---\n{err}",
                self.role
            );
        }
    }

    /// Kills the helper (SIGKILL: no cleanup of any kind runs in it) and reaps it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.done = true;
    }

    fn wait_bounded(&mut self) -> ExitStatus {
        let start = Instant::now();
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.done = true;
                    return status;
                }
                Ok(None) => {}
                Err(e) => panic!("wait for helper {}: {e}", self.role),
            }
            if start.elapsed() > LIMIT {
                let _ = self.child.kill();
                let _ = self.child.wait();
                self.done = true;
                let (out, err) = self.output();
                panic!(
                    "helper {} did not finish within {LIMIT:?}; killed it\n--- helper stdout ---\n{out}\n--- helper stderr ---\n{err}",
                    self.role
                );
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn output(&mut self) -> (String, String) {
        let take = |h: Option<JoinHandle<String>>| h.map(|h| h.join().unwrap_or_default());
        (
            take(self.stdout.take()).unwrap_or_default(),
            take(self.stderr.take()).unwrap_or_default(),
        )
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits for every helper; panics with the first failure (the rest are killed by their drop).
pub fn wait_all(children: Vec<Child>) {
    for c in children {
        c.wait_ok();
    }
}

/// In a helper: the region path it was given.
pub fn child_path() -> PathBuf {
    PathBuf::from(std::env::var_os(PATH_VAR).expect("helper started without a region path"))
}

/// In a helper: the argument `name`, parsed.
pub fn arg<T: FromStr>(name: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    let var = format!("{ARG_PREFIX}{}", name.to_uppercase());
    let s = std::env::var(&var).unwrap_or_else(|_| panic!("helper argument {var} missing"));
    s.parse()
        .unwrap_or_else(|e| panic!("helper argument {var}={s:?}: {e:?}"))
}

// -------------------------------------------------------------------------------------------
// Region files as bytes

pub fn read_u32(path: &Path, offset: u64) -> u32 {
    let mut b = [0u8; 4];
    fs::File::open(path)
        .and_then(|f| f.read_exact_at(&mut b, offset))
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    u32::from_ne_bytes(b)
}

pub fn read_u64(path: &Path, offset: u64) -> u64 {
    let mut b = [0u8; 8];
    fs::File::open(path)
        .and_then(|f| f.read_exact_at(&mut b, offset))
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    u64::from_ne_bytes(b)
}

pub fn write_at(path: &Path, offset: u64, bytes: &[u8]) {
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.write_all_at(bytes, offset))
        .unwrap_or_else(|e| panic!("patch {}: {e}", path.display()));
}

pub fn write_u32(path: &Path, offset: u64, v: u32) {
    write_at(path, offset, &v.to_ne_bytes());
}

pub fn write_u64(path: &Path, offset: u64, v: u64) {
    write_at(path, offset, &v.to_ne_bytes());
}

/// Header and directory-entry offsets, from `src/region/layout.rs` (the file format).
pub mod layout {
    pub const HEADER_SIZE: u64 = 256;
    pub const ENTRY_SIZE: u64 = 256;
    pub const VERSION: u64 = 8;
    pub const LAYOUT: u64 = 12;
    pub const STATE: u64 = 16;
    pub const SIZE: u64 = 24;
    pub const DIR_OFFSET: u64 = 32;
    pub const DIR_SLOTS: u64 = 40;
    pub const CAPACITY: u64 = 48;
    pub const HEAP_OFFSET: u64 = 56;
    pub const CURSOR: u64 = 64;
    pub const PROCS_OFFSET: u64 = 80;
    pub const PROCS: u64 = 88;
    pub const ALLOC_LOCK: u64 = 128;

    pub const E_STATE: u64 = 0;
    pub const E_KIND: u64 = 4;
    pub const E_NAME_LEN: u64 = 8;
    pub const E_TYPE_LEN: u64 = 12;
    pub const E_ELEM_SIZE: u64 = 16;
    pub const E_ELEM_ALIGN: u64 = 20;
    pub const E_OFFSET: u64 = 40;
    pub const E_LEN: u64 = 48;
    pub const E_BYTES: u64 = 56;
    pub const E_NAME: u64 = 64;

    /// Process-table slots of a region created with the default options.
    pub const DEFAULT_PROCS: u64 = 1024;
    /// Bytes per process-table slot.
    pub const PROC_ENTRY: u64 = 8;

    /// Where object space starts for `slots` directory slots and `procs` process slots.
    pub fn heap_offset(slots: u64, procs: u64) -> u64 {
        (HEADER_SIZE + slots * ENTRY_SIZE + procs * PROC_ENTRY).next_multiple_of(128)
    }
}

/// The file offset of the published directory entry named `name`, found by scanning the
/// directory (entries of 256 bytes from offset 256 up to the object space).
pub fn find_entry(path: &Path, name: &str) -> u64 {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let u32_at = |o: usize| u32::from_ne_bytes(bytes[o..o + 4].try_into().unwrap());
    let heap = u64::from_ne_bytes(
        bytes[layout::HEAP_OFFSET as usize..][..8]
            .try_into()
            .unwrap(),
    ) as usize;
    let mut at = layout::HEADER_SIZE as usize;
    while at + layout::ENTRY_SIZE as usize <= heap {
        let name_len = u32_at(at + layout::E_NAME_LEN as usize) as usize;
        let stored = &bytes[at + layout::E_NAME as usize..][..name_len.min(128)];
        if u32_at(at) == 1 && stored == name.as_bytes() {
            return at as u64;
        }
        at += layout::ENTRY_SIZE as usize;
    }
    panic!("no directory entry named {name:?} in {}", path.display())
}

/// A small xorshift generator for the kill soaks' choices (reproducible from its seed).
pub struct Rng(pub u64);

impl Rng {
    /// Seeded from the clock (never 0, which xorshift would keep).
    pub fn from_clock() -> Rng {
        Rng(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos() as u64
            | 1)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}
