//! The `shmsync` command run for real against live processes.
//!
//! Helper processes are this test binary re-executed in a role (the `SHMSYNC_CLI_ROLE`
//! environment variable, see [`helper_entry`]): they open a region by path, take locks, and
//! sleep until killed, so the command sees real holders, real waiters and real deaths. Every
//! test works in its own directory under the temp dir: never in `/dev/shm`, whose regions
//! belong to other programs (and `gc` would judge them).

use shmsync::inspect::{Snapshot, State};
use shmsync::{Region, TryLockError};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const ROLE_VAR: &str = "SHMSYNC_CLI_ROLE";
const PATH_VAR: &str = "SHMSYNC_CLI_PATH";
const SIZE: usize = 1 << 16;
/// How long anything a test waits for may take (the machines are small and shared).
const LIMIT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// Helpers

/// A fresh directory under the temp dir (one per test and process), removed on drop.
struct TestDir(PathBuf);

impl TestDir {
    fn new(test: &str) -> TestDir {
        let dir = std::env::temp_dir().join(format!("shmsync-cli-{}-{test}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TestDir(dir)
    }
    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A helper process, killed on drop.
struct Helper(Child);

impl Helper {
    fn spawn(role: &str, path: &Path) -> Helper {
        let child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "helper_entry", "--nocapture", "--test-threads=1"])
            .env(ROLE_VAR, role)
            .env(PATH_VAR, path)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        Helper(child)
    }
    fn pid(&self) -> u32 {
        self.0.id()
    }
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
    fn wait_success(mut self) {
        let deadline = Instant::now() + LIMIT;
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                assert!(status.success(), "helper failed: {status}");
                return;
            }
            assert!(Instant::now() < deadline, "helper did not finish");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs the real binary.
fn shmsync(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shmsync"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `shmsync inspect PATH`, which must succeed.
fn inspect(path: &Path) -> String {
    let out = shmsync(&["inspect", path.to_str().unwrap()]);
    assert!(out.status.success(), "inspect failed: {}", stderr(&out));
    stdout(&out)
}

/// The STATE column of object `name` in `inspect`'s output.
fn state_of(text: &str, name: &str) -> String {
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no row {name} in\n{text}"))
        .to_string()
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until the helper wrote `PATH.NAME` (its way to say it is ready).
fn wait_for_mark(path: &Path, mark: &str) {
    let file = mark_path(path, mark);
    wait_until(&format!("mark {}", file.display()), || file.exists());
}

fn mark_path(path: &Path, mark: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{mark}"));
    PathBuf::from(name)
}

fn file_hash(path: &Path) -> (usize, u64) {
    let bytes = std::fs::read(path).unwrap();
    // FNV-1a: enough to see any change.
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (bytes.len(), hash)
}

/// Sets `bits` in the word at `word` of object `name`, written straight into the file (damage,
/// or a death the library would mark so), found through the directory's bytes: the header's
/// slot count at 40, entries of 256 bytes from 256 with the name length at 8, the offset at 40
/// and the name at 64.
fn set_bits(path: &Path, name: &str, word: u64, bits: u32) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let u64_at = |at: u64| {
        let mut b = [0u8; 8];
        file.read_exact_at(&mut b, at).unwrap();
        u64::from_ne_bytes(b)
    };
    let slots = u64_at(40);
    let entry = (0..slots)
        .map(|slot| 256 + slot * 256)
        .find(|&at| {
            let len = u64_at(at + 8) as u32 as usize;
            let mut stored = vec![0u8; len];
            file.read_exact_at(&mut stored, at + 64).unwrap();
            stored == name.as_bytes()
        })
        .unwrap_or_else(|| panic!("no object {name}"));
    let at = u64_at(entry + 40) + word;
    let mut b = [0u8; 4];
    file.read_exact_at(&mut b, at).unwrap();
    let value = u32::from_ne_bytes(b) | bits;
    file.write_all_at(&value.to_ne_bytes(), at).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Helper roles

#[test]
fn helper_entry() {
    let Ok(role) = std::env::var(ROLE_VAR) else {
        return;
    };
    let path = PathBuf::from(std::env::var(PATH_VAR).unwrap());
    let result = match role.as_str() {
        "holder" => holder(&path),
        "waiter" => waiter(&path),
        "opener_loop" => opener_loop(&path),
        "user" => user(&path),
        "fork_keeper" => fork_keeper(&path),
        "sharer" => sharer(&path),
        other => panic!("unknown role {other}"),
    };
    if let Err(e) = result {
        panic!("helper {role} failed: {e}");
    }
}

fn sleep_forever() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Holds "printer" (which a waiter will wait for) and "quiet", a permit of "slots" and a read
/// lock of "config"; then sleeps until killed.
fn holder(path: &Path) -> shmsync::Result<()> {
    let region = Region::open_or_create(path, SIZE)?;
    let printer = region.lock("printer")?;
    let quiet = region.lock("quiet")?;
    let slots = region.semaphore("slots", 3)?;
    let config = region.rwlock::<u32>("config", 7)?;
    let settings = region.rwlock::<u64>("settings", 1)?;
    let _w = settings.write()?;
    let _a = printer.lock()?;
    let _b = quiet.lock()?;
    let _c = slots.permit()?;
    let _d = config.read()?;
    std::fs::write(mark_path(path, "held"), b"").unwrap();
    sleep_forever()
}

/// Waits for "printer"; once it gets it (from a dead holder: poisoned), keeps it without
/// marking it consistent, and sleeps until killed.
fn waiter(path: &Path) -> shmsync::Result<()> {
    let region = Region::open(path)?;
    let printer = region.lock("printer")?;
    std::fs::write(mark_path(path, "waiting"), b"").unwrap();
    let _guard = match printer.lock() {
        Ok(g) => g,
        Err(shmsync::LockError::OwnerDied(died)) => died.into_guard(),
        Err(e) => return Err(e.into()),
    };
    std::fs::write(mark_path(path, "taken"), b"").unwrap();
    sleep_forever()
}

/// Opens the region, says so, and sleeps until killed.
fn user(path: &Path) -> shmsync::Result<()> {
    let region = Region::open_or_create(path, SIZE)?;
    region.lock("l")?;
    std::fs::write(mark_path(path, "using"), b"").unwrap();
    sleep_forever()
}

/// Opens the region, forks a child that keeps the (inherited) mapping and sleeps, and exits
/// without closing anything on purpose: the child alone keeps the region in use.
fn fork_keeper(path: &Path) -> shmsync::Result<()> {
    let region = Region::open_or_create(path, SIZE)?;
    region.lock("l")?;
    // SAFETY: the child only sleeps and writes a file (no locks of the parent's threads).
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        std::fs::write(mark_path(path, "child"), std::process::id().to_string()).unwrap();
        sleep_forever()
    }
    drop(region);
    Ok(())
}

/// Creates the region, hands it to a `sleep` started with `share_with` (the descriptor is
/// inherited across exec), and exits: the other program alone keeps the region in use.
#[expect(
    clippy::zombie_processes,
    reason = "this helper exits at once: the sleep is reparented, and the test kills it"
)]
fn sharer(path: &Path) -> shmsync::Result<()> {
    let region = Region::open_or_create(path, SIZE)?;
    let mut sleep = Command::new("sleep");
    sleep.arg("120");
    region.share_with(&mut sleep);
    let child = sleep.spawn().unwrap();
    std::fs::write(mark_path(path, "child"), child.id().to_string()).unwrap();
    Ok(())
}

/// Opens and closes the region in a loop while `gc` runs against it: every region this process
/// has open must stay the one its path names, and usable.
fn opener_loop(path: &Path) -> shmsync::Result<()> {
    let me = std::process::id();
    for i in 0..100 {
        // Room for every opener's markers when gc never gets to remove the region.
        let region = Region::options()
            .capacity(512)
            .open_or_create(path, 1 << 20)?;
        let marker = format!("opener-{me}-{i}");
        let counter = region.value::<u64>(&marker, 0)?;
        counter.fetch_add(1)?;
        std::thread::sleep(Duration::from_micros(200 * (i % 5)));
        // The file at the path is still ours: it lists our marker.
        let snapshot = Snapshot::open(path)?;
        if !snapshot.objects.iter().any(|o| o.name == marker) {
            panic!("iteration {i}: the region at the path is not the one this process has open");
        }
        let lock = region.lock("l")?;
        match lock.try_lock_for(Duration::from_secs(10)) {
            Ok(_) | Err(TryLockError::OwnerDied(_)) => {}
            Err(_) => panic!("iteration {i}: lock unusable"),
        }
        assert_eq!(counter.load()?, 1);
        drop((lock, counter, region));
        // A gap with the region closed, for gc to remove it.
        std::thread::sleep(Duration::from_micros(300));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Tests

/// inspect names the live holder, the waiter, and then the dead holder; the file stays
/// byte-identical and nobody registers; repair asks first and then clears the poison.
#[test]
fn inspect_follows_holders_waiters_and_deaths() {
    let dir = TestDir::new("live");
    let path = dir.join("jobs");
    let mut holder = Helper::spawn("holder", &path);
    wait_for_mark(&path, "held");
    let hp = holder.pid();

    let text = inspect(&path);
    assert!(
        state_of(&text, "printer").ends_with(&format!("held by pid {hp} (alive)")),
        "{text}"
    );
    assert!(
        state_of(&text, "slots").contains(&format!("2 free; held: 1 by pid {hp} (alive)")),
        "{text}"
    );
    assert!(
        state_of(&text, "config").contains(&format!("1 readers; read by: 1 by pid {hp} (alive)")),
        "{text}"
    );

    let mut waiter = Helper::spawn("waiter", &path);
    let wp = waiter.pid();
    wait_for_mark(&path, "waiting");
    wait_until("the waiter to show", || {
        state_of(&inspect(&path), "printer").contains("waiters")
    });

    // Looking changes nothing: the same bytes, and no process-table entry for the looker.
    let before = file_hash(&path);
    let looker = Command::new(env!("CARGO_BIN_EXE_shmsync"))
        .args(["inspect", path.to_str().unwrap()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let looker_pid = looker.id();
    assert!(looker.wait_with_output().unwrap().status.success());
    assert!(
        shmsync(&["inspect", "--json", path.to_str().unwrap()])
            .status
            .success()
    );
    assert!(shmsync(&["ls", dir.0.to_str().unwrap()]).status.success());
    assert_eq!(file_hash(&path), before, "inspect changed the file");
    let pids: BTreeSet<u32> = Snapshot::open(&path)
        .unwrap()
        .processes
        .iter()
        .map(|p| p.pid)
        .collect();
    assert_eq!(pids, BTreeSet::from([hp, wp]), "looker {looker_pid}");

    holder.kill();
    wait_for_mark(&path, "taken");
    let text = inspect(&path);
    assert!(
        state_of(&text, "quiet").ends_with(&format!("held by pid {hp} (dead)")),
        "{text}"
    );
    assert!(
        state_of(&text, "printer").contains(&format!("held by pid {wp} (alive), poisoned")),
        "{text}"
    );
    assert!(text.contains(&format!("{hp}  no")), "{text}");

    // The dead writer's RwLock: repaired by a writer that marks it consistent.
    assert!(
        state_of(&text, "settings").ends_with(&format!("write-locked by pid {hp} (dead)")),
        "{text}"
    );
    let out = shmsync(&["repair", "--yes", path.to_str().unwrap(), "settings"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(state_of(&inspect(&path), "settings").ends_with("free"));

    // A broken semaphore needs the free permits stated; a broken RwLock has no repair.
    set_bits(&path, "slots", 0, 1 << 24);
    set_bits(&path, "config", 4, 2);
    let text = inspect(&path);
    assert!(state_of(&text, "slots").contains("broken"), "{text}");
    assert!(state_of(&text, "config").contains("broken"), "{text}");
    let out = shmsync(&["repair", "--yes", path.to_str().unwrap(), "slots"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--value N"), "{}", stderr(&out));
    let out = shmsync(&[
        "repair",
        "--yes",
        "--value",
        "3",
        path.to_str().unwrap(),
        "slots",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(state_of(&inspect(&path), "slots").ends_with("3 free"));
    let out = shmsync(&["repair", "--yes", path.to_str().unwrap(), "config"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no repair for a broken RwLock"),
        "{}",
        stderr(&out)
    );

    waiter.kill();
    let text = inspect(&path);
    assert!(
        state_of(&text, "printer").contains(&format!("held by pid {wp} (dead), poisoned")),
        "{text}"
    );

    // repair asks first; without a terminal and without --yes it refuses.
    let out = shmsync(&["repair", path.to_str().unwrap(), "printer"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not a terminal"), "{}", stderr(&out));
    assert_eq!(
        state_of(&inspect(&path), "printer"),
        state_of(&text, "printer")
    );

    let out = shmsync(&["repair", "--yes", path.to_str().unwrap(), "printer"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("marked it consistent"),
        "{}",
        stdout(&out)
    );
    let out = shmsync(&["repair", "--yes", path.to_str().unwrap(), "quiet"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = inspect(&path);
    assert!(state_of(&text, "printer").ends_with("free"), "{text}");
    assert!(state_of(&text, "quiet").ends_with("free"), "{text}");
    let region = Region::open(&path).unwrap();
    assert!(region.lock("printer").unwrap().try_lock().is_ok());
}

/// The human output of a region with one object of every kind, against a snapshot (pids and
/// paths replaced).
#[test]
fn human_output_snapshot() {
    let dir = TestDir::new("snapshot");
    let path = dir.join("all");
    let region = Region::options()
        .max_processes(4)
        .capacity(16)
        .create(&path, SIZE)
        .unwrap();
    let lock = region.lock("lock").unwrap();
    let _held = lock.lock().unwrap();
    region.rlock("rlock").unwrap();
    region.value::<i32>("value", -5).unwrap();
    region.array::<u8>("array", &[1, 2, 3]).unwrap();
    region.raw_value::<u64>("raw", 9).unwrap();
    region.raw_array::<u16>("raw_array", &[0; 4]).unwrap();
    let sem = region.semaphore("sem", 2).unwrap();
    let _permit = sem.permit().unwrap();
    region.bounded_semaphore("bounded", 1).unwrap();
    region.condition("cond").unwrap();
    region.condition_on("cond_shared", "rlock").unwrap();
    region.event("event").unwrap().set();
    region.barrier("barrier", 3).unwrap();
    region.rwlock::<f64>("rw", 1.5).unwrap();

    let me = std::process::id();
    let text = inspect(&path)
        .replace(&path.display().to_string(), "PATH")
        .replace(&format!("pid {me} "), "pid ME ");
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    let uid = unsafe { libc::geteuid() };
    let slot = Snapshot::open(&path).unwrap().processes[0].slot;
    let pid_width = me.to_string().len().max(3);
    let expected = format!(
        r#"region PATH: 65536 bytes, 13 of 16 objects, 54528 bytes free, owner uid {uid}

NAME         KIND              TYPE  LEN  STATE
array        Array             u8    3    free
barrier      Barrier           -     3    0 of 3 arrived, round 0
bounded      BoundedSemaphore  -     -    1 free of 1
cond         Condition         -     -    lock free, 0 waiting
cond_shared  Condition         -     -    on RLock "rlock", 0 waiting
event        Event             -     -    set
lock         Lock              -     -    held by pid ME (alive)
raw          RawValue          u64   1    value 9
raw_array    RawArray          u16   4    -
rlock        RLock             -     -    free
rw           RwLock            f64   1    free
sem          Semaphore         -     -    1 free; held: 1 by pid ME (alive)
value        Value             i32   1    free, value -5

processes (1 of 4 slots used):
SLOT  {:<pid_width$}  ALIVE
{slot:<4}  {me:<pid_width$}  yes
"#,
        "PID"
    );
    assert_eq!(text, expected);
}

/// The documented schema (cli/README.md, the block after "<!-- schema -->"): `where: fields`
/// lines.
fn documented_schema() -> Vec<(String, BTreeSet<String>)> {
    let readme = include_str!("../README.md");
    let block = readme
        .split("<!-- schema -->")
        .nth(1)
        .expect("cli/README.md documents the schema")
        .split("```")
        .nth(1)
        .unwrap();
    block
        .lines()
        .skip(1)
        .filter(|l| l.contains(':'))
        .map(|l| {
            let (what, fields) = l.split_once(':').unwrap();
            let fields = fields
                .split(',')
                .map(|f| f.trim().to_string())
                .filter(|f| !f.is_empty())
                .collect();
            (what.trim().to_string(), fields)
        })
        .collect()
}

fn keys(v: &serde_json::Value) -> BTreeSet<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect()
}

/// `inspect --json` and `ls --json` have exactly the documented fields, kind by kind.
#[test]
fn json_matches_the_documented_schema() {
    let schema = documented_schema();
    let fields = |what: &str| -> BTreeSet<String> {
        schema
            .iter()
            .find(|(w, _)| w == what)
            .unwrap_or_else(|| panic!("schema documents no {what}"))
            .1
            .clone()
    };
    let dir = TestDir::new("json");
    let path = dir.join("all");
    let region = Region::create(&path, SIZE).unwrap();
    let lock = region.lock("Lock").unwrap();
    let _held = lock.lock().unwrap();
    region.rlock("RLock").unwrap();
    region.value::<u64>("Value", 3).unwrap();
    region.array::<u8>("Array", &[1]).unwrap();
    region.raw_value::<u64>("RawValue", 3).unwrap();
    region.raw_array::<u8>("RawArray", &[1]).unwrap();
    let sem = region.semaphore("Semaphore", 2).unwrap();
    let _permit = sem.permit().unwrap();
    region.bounded_semaphore("BoundedSemaphore", 1).unwrap();
    region.condition("Condition").unwrap();
    region.event("Event").unwrap();
    region.barrier("Barrier", 2).unwrap();
    let rw = region.rwlock::<u32>("RwLock", 0).unwrap();
    let _read = rw.read().unwrap();

    let out = shmsync(&["inspect", "--json", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["schema_version"], 1);
    assert_eq!(keys(&json), fields("inspect"));
    let objects = json["objects"].as_array().unwrap();
    assert_eq!(objects.len(), 12);
    for object in objects {
        assert_eq!(keys(object), fields("object"));
        let kind = object["kind"].as_str().unwrap();
        assert_eq!(object["name"], kind);
        assert_eq!(
            keys(&object["state"]),
            fields(&format!("state {kind}")),
            "{kind}"
        );
        for lock in [&object["state"]["lock"]] {
            if lock.is_object() {
                assert_eq!(keys(lock), fields("lock"));
                if lock["holder"].is_object() {
                    assert_eq!(keys(&lock["holder"]), fields("holder"));
                    assert_eq!(lock["holder"]["pid"], std::process::id());
                    assert_eq!(lock["holder"]["alive"], "alive");
                }
            }
        }
        if let Some(holders) = object["state"]["holders"].as_array() {
            let held = if kind == "BoundedSemaphore" { 0 } else { 1 };
            assert_eq!(holders.len(), held, "{kind}");
            if held == 0 {
                continue;
            }
            assert_eq!(keys(&holders[0]), fields("holds"));
            assert_eq!(keys(&holders[0]["holder"]), fields("holder"));
        }
    }
    let lock = objects.iter().find(|o| o["name"] == "Lock").unwrap();
    assert_eq!(lock["state"]["lock"]["status"], "held");
    for process in json["processes"].as_array().unwrap() {
        assert_eq!(keys(process), fields("process"));
    }

    let out = shmsync(&["ls", "--json", dir.0.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["schema_version"], 1);
    assert_eq!(keys(&json), fields("ls"));
    let regions = json["regions"].as_array().unwrap();
    assert_eq!(regions.len(), 1);
    assert_eq!(keys(&regions[0]), fields("region"));
    assert_eq!(regions[0]["objects"], 12);
    assert_eq!(regions[0]["live_processes"], 1);
}

/// A damaged or hostile file gives the library's own error, and a non-zero exit.
#[test]
fn damaged_files_give_the_library_errors() {
    let dir = TestDir::new("damaged");
    let good = dir.join("good");
    drop(Region::create(&good, SIZE).unwrap());
    let bytes = std::fs::read(&good).unwrap();

    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("short", bytes[..100].to_vec()),
        ("cut", bytes[..bytes.len() - 4096].to_vec()),
    ];
    let mut version = bytes.clone();
    version[8] ^= 0x55;
    cases.push(("version", version));
    let mut entry = bytes.clone();
    // No objects: make directory slot 0 claim to be published with a bad kind.
    entry[256] = 1;
    entry[260] = 99;
    cases.push(("entry", entry));
    for (name, content) in cases {
        let path = dir.join(name);
        std::fs::write(&path, &content).unwrap();
        // What the library says when it opens the file and lists its objects.
        let expected = Region::open(&path)
            .and_then(|r| r.objects())
            .unwrap_err()
            .to_string();
        let out = shmsync(&["inspect", path.to_str().unwrap()]);
        assert!(!out.status.success(), "{name}");
        assert!(stderr(&out).contains(&expected), "{name}: {}", stderr(&out));
        assert_eq!(std::fs::read(&path).unwrap(), content, "{name} changed");
    }
    let link = dir.join("link");
    std::os::unix::fs::symlink(&good, &link).unwrap();
    let out = shmsync(&["inspect", link.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("symbolic link"), "{}", stderr(&out));
    let out = shmsync(&["inspect", dir.join("missing").to_str().unwrap()]);
    assert!(!out.status.success());
    // ls lists the damaged regions with their errors, and goes on.
    let out = shmsync(&["ls", dir.0.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("error: "), "{}", stdout(&out));
}

/// gc removes only the unused region: not one a live process uses, nor one a forked child
/// keeps mapped after its parent exited, nor one a program started with `share_with` keeps
/// (through the inherited descriptor), nor files that are not regions; --dry-run removes
/// nothing.
#[test]
fn gc_removes_only_unused_regions() {
    let dir = TestDir::new("gc");
    let unused = dir.join("unused");
    let used = dir.join("used");
    let forked = dir.join("forked");
    let other = dir.join("not-a-region");
    drop(Region::create(&unused, SIZE).unwrap());
    std::fs::write(&other, b"hello").unwrap();
    let _user = Helper::spawn("user", &used);
    wait_for_mark(&used, "using");
    Helper::spawn("fork_keeper", &forked).wait_success();
    wait_for_mark(&forked, "child");
    let child: i32 = std::fs::read_to_string(mark_path(&forked, "child"))
        .unwrap()
        .parse()
        .unwrap();
    struct Reap(i32);
    impl Drop for Reap {
        fn drop(&mut self) {
            // SAFETY: plain kill(2) of the fork child this test started.
            unsafe { libc::kill(self.0, libc::SIGKILL) };
        }
    }
    let reap = Reap(child);
    let shared = dir.join("shared");
    Helper::spawn("sharer", &shared).wait_success();
    wait_for_mark(&shared, "child");
    let sleeper: i32 = std::fs::read_to_string(mark_path(&shared, "child"))
        .unwrap()
        .parse()
        .unwrap();
    let reap_sleeper = Reap(sleeper);

    let d = dir.0.to_str().unwrap();
    let out = shmsync(&["gc", "--dry-run", d]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("would remove {}", unused.display())),
        "{}",
        stdout(&out)
    );
    assert!(unused.exists());

    let out = shmsync(&["gc", d]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&format!("removed {}", unused.display())),
        "{text}"
    );
    assert!(
        text.contains(&format!("kept {}: in use", used.display())),
        "{text}"
    );
    assert!(
        text.contains(&format!("kept {}: in use", forked.display())),
        "{text}"
    );
    assert!(!unused.exists());
    assert!(used.exists() && forked.exists() && shared.exists() && other.exists());

    // Once the fork child is gone, nothing keeps its region.
    drop(reap);
    wait_until("the fork child's death to free the region", || {
        let _ = shmsync(&["gc", d]);
        !forked.exists()
    });
    drop(reap_sleeper);
    wait_until("the other program's death to free the region", || {
        let _ = shmsync(&["gc", d]);
        !shared.exists()
    });
    assert!(used.exists() && other.exists());
}

/// gc racing processes that open and close the region in a loop: no opener ever loses the
/// region it has open (its path always names it, its locks keep working), and gc did remove
/// the region between openers.
#[test]
fn gc_never_removes_a_region_being_opened_or_used() {
    let dir = TestDir::new("gc-race");
    let path = dir.join("contended");
    let openers: Vec<Helper> = (0..2)
        .map(|_| Helper::spawn("opener_loop", &path))
        .collect();
    let d = dir.0.to_str().unwrap().to_string();
    // The library's collector in a tight loop, beside the command (which is slower to start).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let collector = {
        let (stop, path) = (stop.clone(), path.clone());
        std::thread::spawn(move || {
            let mut removed = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match shmsync::inspect::collect(&path, false) {
                    Ok(shmsync::inspect::Collected::Removed) => removed += 1,
                    Ok(_) | Err(shmsync::Error::NotFound(_)) => {}
                    // A region caught half-way through creation by the fallback's temporary
                    // file is not at this path; anything else is a failure.
                    Err(e) => panic!("collect: {e}"),
                }
            }
            removed
        })
    };
    let mut removed = 0;
    let mut runs = 0;
    let mut openers = openers;
    while !openers.is_empty() {
        let out = shmsync(&["gc", &d]);
        assert!(out.status.success(), "{}", stderr(&out));
        removed += stdout(&out).matches("removed /").count();
        runs += 1;
        let mut still = Vec::new();
        for mut h in openers {
            match h.0.try_wait().unwrap() {
                Some(status) => assert!(status.success(), "an opener failed: {status}"),
                None => still.push(h),
            }
        }
        openers = still;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    removed += collector.join().unwrap();
    eprintln!("gc ran {runs} times and removed the region {removed} times");
    assert!(
        removed > 0,
        "gc never removed the region in {runs} runs: no race exercised"
    );
}

/// watch redraws in place, and says so when the region goes away.
#[test]
fn watch_refreshes_in_place() {
    let dir = TestDir::new("watch");
    let path = dir.join("w");
    let region = Region::create(&path, SIZE).unwrap();
    region.event("e").unwrap();
    let p = path.to_str().unwrap();
    let out = shmsync(&["watch", "-n", "0", "--count", "3", p]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.matches("\x1b[H\x1b[2J").count(), 3, "{text}");
    let rows = text
        .lines()
        .filter(|l| l.split_whitespace().take(2).eq(["e", "Event"]))
        .count();
    assert_eq!(rows, 3, "{text}");
    std::fs::remove_file(&path).unwrap();
    let out = shmsync(&["watch", "-n", "0", "--count", "1", p]);
    assert!(stdout(&out).contains("no region at"), "{}", stdout(&out));
}

/// The state enum can be matched by scripts in Rust too.
#[test]
fn library_snapshot_reports_kinds() {
    let dir = TestDir::new("lib");
    let path = dir.join("r");
    let region = Region::create(&path, SIZE).unwrap();
    region.event("e").unwrap();
    let snapshot = Snapshot::open(&path).unwrap();
    assert!(matches!(
        snapshot.objects[0].state,
        State::Event {
            set: false,
            waiters: false
        }
    ));
    // The creator registered (creating an event does); looking registered nobody else.
    let pids: Vec<u32> = snapshot.processes.iter().map(|p| p.pid).collect();
    assert_eq!(pids, [std::process::id()]);
}
