//! `Process`: fork and spawn with real processes, exit codes as Python reports them, region
//! hand-off to a child of another language, and bad input.
//!
//! This test binary has its own `main` (`harness = false` in Cargo.toml): a program started by
//! `Process::spawn` must call `shmsync::run_if_spawned` first, and libtest's `main` would not.
//! So it is also the proof that spawn works from inside `cargo test`. Tests run one after the
//! other on the main thread; an argument that does not start with `-` filters them by name.

use shmsync::{
    ByteQueue, Entry, Error, Event, Lock, LockError, Process, Queue, REGION_FD_VAR, Region, Value,
    run_if_spawned,
};
use std::fs;
use std::io::Write;
use std::os::fd::AsFd;
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

// ------------------------------------------------------------------------------------------
// Entries a spawned child can run.

fn add((value, n): (Value<u64>, u64)) -> shmsync::Result<()> {
    value.fetch_add(n).map(drop)
}
static ADD: Entry<(Value<u64>, u64), shmsync::Result<()>> = Entry::new("add", add);

fn add_both((a, b): (Value<u64>, Value<u64>)) -> shmsync::Result<()> {
    a.fetch_add(1)?;
    b.fetch_add(1).map(drop)
}
static ADD_BOTH: Entry<(Value<u64>, Value<u64>), shmsync::Result<()>> =
    Entry::new("add_both", add_both);

fn hold((lock, held): (Lock, Event)) {
    let _guard = lock.lock().expect("lock");
    held.set();
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}
static HOLD: Entry<(Lock, Event)> = Entry::new("hold", hold);

fn exit_with(code: i32) -> i32 {
    code
}
static EXIT_WITH: Entry<i32, i32> = Entry::new("exit_with", exit_with);

fn panics(message: String) {
    panic!("{message}");
}
static PANICS: Entry<String> = Entry::new("panics", panics);

fn nothing(_: ()) {}
/// Jobs, results, a log, and how many jobs.
type Work = (Queue<u64>, Queue<u64>, ByteQueue, u64);
/// Takes `n` items from `jobs`, puts each doubled into `results` and a message into `log`.
fn double((jobs, results, log, n): Work) -> shmsync::Result<()> {
    for _ in 0..n {
        let x = jobs.get(true, Some(Duration::from_secs(30)))?;
        results.put(2 * x, true, None)?;
        log.put(format!("doubled {x}").as_bytes(), true, None)?;
    }
    Ok(())
}
static DOUBLE: Entry<Work, shmsync::Result<()>> = Entry::new("double", double);

/// Deliberately missing from `run_if_spawned`'s list.
static UNLISTED: Entry<()> = Entry::new("unlisted", nothing);

/// The role of this binary when a test starts it with `Command` (not a spawn).
const ROLE_VAR: &str = "SHMSYNC_PROCESS_TEST_ROLE";

fn main() {
    run_if_spawned(&[&ADD, &ADD_BOTH, &HOLD, &EXIT_WITH, &PANICS, &DOUBLE]);
    if let Ok(role) = std::env::var(ROLE_VAR) {
        std::process::exit(command_role(&role));
    }
    let tests: &[(&str, fn())] = &[
        (
            "fork_reports_exit_codes_as_python",
            fork_reports_exit_codes_as_python,
        ),
        (
            "join_with_a_timeout_and_is_alive",
            join_with_a_timeout_and_is_alive,
        ),
        (
            "dropping_a_process_leaves_no_zombie",
            dropping_a_process_leaves_no_zombie,
        ),
        (
            "kill_from_another_thread_while_one_joins",
            kill_from_another_thread_while_one_joins,
        ),
        (
            "a_threaded_parent_refuses_fork_and_spawns",
            a_threaded_parent_refuses_fork_and_spawns,
        ),
        (
            "spawn_passes_anonymous_and_named_regions",
            spawn_passes_anonymous_and_named_regions,
        ),
        (
            "spawn_passes_queues_to_a_worker",
            spawn_passes_queues_to_a_worker,
        ),
        (
            "spawn_reports_exit_codes_and_panics",
            spawn_reports_exit_codes_and_panics,
        ),
        (
            "a_child_killed_holding_a_lock_gives_owner_died",
            a_child_killed_holding_a_lock_gives_owner_died,
        ),
        (
            "spawn_of_an_unknown_entry_is_an_error",
            spawn_of_an_unknown_entry_is_an_error,
        ),
        (
            "spawn_with_an_argument_that_cannot_open_is_an_error",
            spawn_with_an_argument_that_cannot_open_is_an_error,
        ),
        (
            "a_command_child_attaches_through_the_descriptor",
            a_command_child_attaches_through_the_descriptor,
        ),
        (
            "a_python_child_attaches_through_the_descriptor",
            a_python_child_attaches_through_the_descriptor,
        ),
        (
            "bad_descriptors_are_clear_errors",
            bad_descriptors_are_clear_errors,
        ),
    ];
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let mut failed = vec![];
    let mut ran = 0;
    for (name, test) in tests {
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        ran += 1;
        print!("test {name} ... ");
        let _ = std::io::stdout().flush();
        match panic::catch_unwind(AssertUnwindSafe(test)) {
            Ok(()) => println!("ok"),
            Err(_) => {
                println!("FAILED");
                failed.push(*name);
            }
        }
    }
    println!(
        "\ntest result: {}. {} passed; {} failed",
        if failed.is_empty() { "ok" } else { "FAILED" },
        ran - failed.len(),
        failed.len()
    );
    if !failed.is_empty() {
        println!("failures: {failed:?}");
        std::process::exit(101);
    }
}

/// What this binary does when a test starts it with `Command` in `role`; its exit status.
fn command_role(role: &str) -> i32 {
    match role {
        "attach" => {
            let region = Region::from_env()
                .expect("attach")
                .expect("started with a region");
            region
                .raw_value::<u64>("hits", 0)
                .expect("hits")
                .fetch_add(1);
            0
        }
        "from_env" => match Region::from_env() {
            Ok(_) => 0,
            Err(e) => {
                eprintln!("{e}");
                3
            }
        },
        _ => 4,
    }
}

// ------------------------------------------------------------------------------------------
// Helpers.

/// A fresh directory for one test's region files, removed at the end.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("shmsync-process-{test}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn read_write(path: &std::path::Path) -> fs::File {
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap()
}

fn joined(p: &Process) -> i32 {
    p.join(Some(Duration::from_secs(30)))
        .expect("join")
        .expect("the child ended within 30 s")
}

// ------------------------------------------------------------------------------------------
// Tests.

fn fork_reports_exit_codes_as_python() {
    let region = Region::anonymous(1 << 16).unwrap();
    let total = region.value::<u64>("total", 0).unwrap();
    let ok = Process::fork(|| total.fetch_add(2).map(drop)).unwrap();
    assert_eq!(joined(&ok), 0);
    assert_eq!(ok.exitcode(), Some(0));
    assert_eq!(
        total.load().unwrap(),
        2,
        "the child's write is the parent's"
    );

    let err =
        Process::fork(|| Err::<(), _>("(expected) an error in a child this test started")).unwrap();
    assert_eq!(
        joined(&err),
        1,
        "an error is exit code 1, as an uncaught exception"
    );
    let panicked =
        Process::fork(|| -> () { panic!("(expected) a panic in a child this test started") })
            .unwrap();
    assert_eq!(joined(&panicked), 1, "a panic is exit code 1");
    let code = Process::fork(|| 7).unwrap();
    assert_eq!(joined(&code), 7);

    let sleeper = Process::fork(|| std::thread::sleep(Duration::from_secs(60))).unwrap();
    sleeper.kill().unwrap();
    assert_eq!(
        joined(&sleeper),
        -9,
        "killed by SIGKILL: -9, as Python says"
    );
    sleeper.kill().unwrap(); // a finished child: nothing happens
    let sleeper = Process::fork(|| std::thread::sleep(Duration::from_secs(60))).unwrap();
    sleeper.terminate().unwrap();
    assert_eq!(joined(&sleeper), -15, "terminated by SIGTERM: -15");
}

fn join_with_a_timeout_and_is_alive() {
    let region = Region::anonymous(1 << 16).unwrap();
    let go = region.event("go").unwrap();
    let child = Process::fork(|| {
        go.wait(Some(Duration::from_secs(30)));
    })
    .unwrap();
    assert!(child.pid() > 0 && child.pid() != std::process::id());
    let start = Instant::now();
    assert_eq!(child.join(Some(Duration::from_millis(100))).unwrap(), None);
    assert!(
        start.elapsed() >= Duration::from_millis(100),
        "join waited its timeout"
    );
    assert!(child.is_alive());
    assert_eq!(child.exitcode(), None);
    go.set();
    assert_eq!(joined(&child), 0);
    assert!(!child.is_alive());
}

fn dropping_a_process_leaves_no_zombie() {
    let child = Process::fork(|| ()).unwrap();
    let pid = child.pid();
    // Let it end without our reaping it, then drop the handle.
    std::thread::sleep(Duration::from_millis(100));
    drop(child);
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Field 3 is the state, field 4 the parent; a zombie of ours would be "Z" with our pid.
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ours_and_zombie = fields.first() == Some(&"Z")
        && fields.get(1) == Some(&std::process::id().to_string().as_str());
    assert!(!ours_and_zombie, "pid {pid} is still our zombie: {stat}");

    // Dropping a running child waits for it: it is reaped too.
    let region = Region::anonymous(1 << 16).unwrap();
    let done = region.raw_value::<u32>("done", 0).unwrap();
    let child = Process::fork(|| {
        std::thread::sleep(Duration::from_millis(200));
        done.store(1);
    })
    .unwrap();
    drop(child);
    assert_eq!(done.load(), 1, "the drop waited for the child to end");
}

fn kill_from_another_thread_while_one_joins() {
    let child = Process::fork(|| std::thread::sleep(Duration::from_secs(60))).unwrap();
    std::thread::scope(|s| {
        let joiner = s.spawn(|| child.join(None));
        std::thread::sleep(Duration::from_millis(100));
        // Neither blocks on the join in progress.
        assert!(child.is_alive());
        assert_eq!(child.exitcode(), None);
        child.kill().unwrap();
        assert_eq!(joiner.join().unwrap().unwrap(), Some(-9));
    });
}

fn a_threaded_parent_refuses_fork_and_spawns() {
    let (stop, stopped) = mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        let _ = stopped.recv();
    });
    let region = Region::anonymous(1 << 16).unwrap();
    let total = region.value::<u64>("total", 0).unwrap();
    match Process::fork(|| ()) {
        Err(Error::Threaded { threads }) => assert!(threads >= 2, "{threads}"),
        other => panic!("fork in a threaded process: {other:?}"),
    }
    let child = Process::spawn(&ADD, (total.clone(), 5)).unwrap();
    assert_eq!(joined(&child), 0);
    assert_eq!(total.load().unwrap(), 5);
    stop.send(()).unwrap();
    thread.join().unwrap();
}

fn spawn_passes_anonymous_and_named_regions() {
    let dir = TempDir::new("regions");
    let anonymous = Region::anonymous(1 << 16).unwrap();
    let named = Region::create(dir.0.join("named"), 1 << 16).unwrap();
    let a = anonymous.value::<u64>("a", 10).unwrap();
    let b = named.value::<u64>("b", 20).unwrap();
    let children: Vec<Process> = (0..3)
        .map(|_| Process::spawn(&ADD_BOTH, (a.clone(), b.clone())).unwrap())
        .collect();
    for child in &children {
        assert_eq!(joined(child), 0);
    }
    assert_eq!((a.load().unwrap(), b.load().unwrap()), (13, 23));
}

fn spawn_reports_exit_codes_and_panics() {
    let child = Process::spawn(&EXIT_WITH, 42).unwrap();
    assert_eq!(joined(&child), 42);
    let child = Process::spawn(
        &PANICS,
        "(expected) a panic in a spawned child this test started".to_string(),
    )
    .unwrap();
    assert_eq!(joined(&child), 1);
}

fn a_child_killed_holding_a_lock_gives_owner_died() {
    let region = Region::anonymous(1 << 16).unwrap();
    let lock = region.lock("lock").unwrap();
    let held = region.event("held").unwrap();
    let child = Process::spawn(&HOLD, (lock.clone(), held.clone())).unwrap();
    assert!(
        held.wait(Some(Duration::from_secs(30))),
        "the child took the lock"
    );
    assert_eq!(lock.holder(), Some(child.pid()));
    child.kill().unwrap();
    assert_eq!(joined(&child), -9);
    match lock.lock() {
        Err(LockError::OwnerDied(died)) => died.into_guard().mark_consistent(),
        Ok(_) => panic!("the dead child's lock was handed out as if free"),
        Err(e) => panic!("{e}"),
    }
    assert!(!lock.is_poisoned());
}

fn spawn_of_an_unknown_entry_is_an_error() {
    match Process::spawn(&UNLISTED, ()) {
        Err(Error::Spawn { entry, reason }) => {
            assert_eq!(entry, "unlisted");
            assert!(reason.contains("no entry named \"unlisted\""), "{reason}");
        }
        other => panic!("spawn of an unlisted entry: {other:?}"),
    }
}

fn spawn_with_an_argument_that_cannot_open_is_an_error() {
    let dir = TempDir::new("gone");
    let path = dir.0.join("gone");
    let region = Region::create(&path, 1 << 16).unwrap();
    let value = region.value::<u64>("v", 0).unwrap();
    Region::remove(&path).unwrap();
    match Process::spawn(&ADD, (value, 1)) {
        Err(Error::Spawn { reason, .. }) => {
            assert!(
                reason.contains("could not be opened") && reason.contains("gone"),
                "{reason}"
            );
        }
        other => panic!("spawn with a removed region: {other:?}"),
    }
}

fn a_command_child_attaches_through_the_descriptor() {
    let region = Region::anonymous(1 << 16).unwrap();
    let hits = region.raw_value::<u64>("hits", 0).unwrap();
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.env(ROLE_VAR, "attach");
    region.share_with(&mut command);
    let status = command.status().unwrap();
    assert!(status.success(), "{status}");
    assert_eq!(hits.load(), 1);
}

fn a_python_child_attaches_through_the_descriptor() {
    let region = Region::anonymous(1 << 16).unwrap();
    let hits = region.raw_value::<u64>("hits", 0).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/attach_region.py");
    let mut command = Command::new("python3");
    command.arg(script);
    region.share_with(&mut command);
    let output = command.output().expect("python3 runs");
    assert!(
        output.status.success(),
        "{}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        hits.load(),
        42,
        "the Python child wrote through the inherited memfd"
    );
}

fn bad_descriptors_are_clear_errors() {
    let dir = TempDir::new("bad");
    // Not a regular file.
    let (read, _write) = std::os::unix::net::UnixStream::pair().unwrap();
    let e = Region::from_fd(read.as_fd()).unwrap_err();
    assert!(e.to_string().contains("not a regular file"), "{e}");
    // Not a region.
    let junk = dir.0.join("junk");
    fs::write(&junk, vec![0x5a; 4096]).unwrap();
    let e = Region::from_fd(fs::File::open(&junk).unwrap().as_fd()).unwrap_err();
    assert!(e.to_string().contains("read-only"), "{e}");
    let e = Region::from_fd(read_write(&junk).as_fd()).unwrap_err();
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
    let short = dir.0.join("short");
    fs::write(&short, b"SHMSYNC").unwrap();
    let e = Region::from_fd(read_write(&short).as_fd()).unwrap_err();
    assert!(matches!(e, Error::Truncated { .. }), "{e}");
    // A region of the wrong size (grown after creation) or version.
    let grown = dir.0.join("grown");
    drop(Region::create(&grown, 1 << 16).unwrap());
    let file = read_write(&grown);
    file.set_len(1 << 17).unwrap();
    let e = Region::from_fd(file.as_fd()).unwrap_err();
    assert!(matches!(e, Error::SizeMismatch { .. }), "{e}");
    let other_version = dir.0.join("version");
    drop(Region::create(&other_version, 1 << 16).unwrap());
    let mut bytes = fs::read(&other_version).unwrap();
    bytes[8..12].copy_from_slice(&99u32.to_ne_bytes());
    fs::write(&other_version, &bytes).unwrap();
    let e = Region::from_fd(read_write(&other_version).as_fd()).unwrap_err();
    assert!(matches!(e, Error::VersionMismatch { found: 99, .. }), "{e}");
    // Nothing changed in a file that was refused.
    assert_eq!(fs::read(&other_version).unwrap(), bytes);
    // An environment variable that names no descriptor, or a closed one.
    for (value, expected) in [
        ("abc", "must hold a descriptor number"),
        ("987", "inherited region descriptor"),
    ] {
        let output = Command::new(std::env::current_exe().unwrap())
            .env(ROLE_VAR, "from_env")
            .env(REGION_FD_VAR, value)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(3), "{stderr}");
        assert!(stderr.contains(expected), "{value}: {stderr}");
    }
}

/// A worker started with `spawn` gets its queues by name (anonymous region: by descriptor).
fn spawn_passes_queues_to_a_worker() {
    let region = Region::anonymous(1 << 20).unwrap();
    let jobs = region.queue::<u64>("jobs", 4).unwrap();
    let results = region.queue::<u64>("results", 4).unwrap();
    let log = region.byte_queue("log", 4, 32).unwrap();
    let worker = Process::spawn(&DOUBLE, (jobs.clone(), results.clone(), log.clone(), 10)).unwrap();
    for x in 0..10 {
        jobs.put(x, true, None).unwrap();
        assert_eq!(
            results.get(true, Some(Duration::from_secs(30))).unwrap(),
            2 * x
        );
        assert_eq!(
            log.get(true, Some(Duration::from_secs(30))).unwrap(),
            format!("doubled {x}").as_bytes()
        );
    }
    assert_eq!(worker.join(Some(Duration::from_secs(30))).unwrap(), Some(0));
}
