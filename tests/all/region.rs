//! Regions: creating, opening, naming, removing, and several processes meeting at one path.

use crate::common::{SIZE, ShmName, TestDir, arg, child_path, spawn, wait_all, wait_until};
use shmsync::{Error, Kind, ObjectInfo, RawArray, RawValue, Region, Result};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The process umask, from /proc (reading it through umask(2) would change it for every thread).
fn umask() -> u32 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("Umask:"))
        .expect("Umask in /proc/self/status");
    u32::from_str_radix(line.trim(), 8).unwrap()
}

#[test]
fn created_file_has_mode_0600_and_the_requested_size() {
    let dir = TestDir::new("mode");
    let path = dir.join("r");
    let region = Region::create(&path, SIZE).unwrap();
    assert_eq!(mode_of(&path), 0o600);
    assert!(fs::metadata(&path).unwrap().is_file());
    assert_eq!(fs::metadata(&path).unwrap().len(), SIZE as u64);
    assert_eq!(region.size(), SIZE);
    assert_eq!(region.path(), Some(path.as_path()));
    // Nothing but the region was left in the directory (no temporary files).
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["r"]);

    let other = dir.join("r640");
    Region::options().mode(0o640).create(&other, SIZE).unwrap();
    assert_eq!(mode_of(&other), 0o640 & !umask());
}

#[test]
fn a_bare_name_is_a_file_in_dev_shm() {
    let name = ShmName::new("bare");
    let region = Region::create(name.name(), SIZE).unwrap();
    assert_eq!(region.path(), Some(name.path().as_path()));
    assert!(name.path().is_file());
    assert_eq!(mode_of(&name.path()), 0o600);
    region.value::<u32>("x", 5).unwrap();
    // Opening by bare name and by full path finds the same region.
    let by_name = Region::open(name.name()).unwrap();
    let by_path = Region::open(name.path()).unwrap();
    assert_eq!(by_name.value::<u32>("x", 0).unwrap().load().unwrap(), 5);
    by_path.value::<u32>("x", 0).unwrap().store(6).unwrap();
    assert_eq!(region.value::<u32>("x", 0).unwrap().load().unwrap(), 6);
    Region::remove(name.name()).unwrap();
    assert!(!name.path().exists());
}

#[test]
fn create_then_open_in_the_same_process_shares_memory() {
    let dir = TestDir::new("same-process");
    let path = dir.join("r");
    let a = Region::create(&path, SIZE).unwrap();
    let b = Region::open(&path).unwrap();
    assert_eq!(b.size(), SIZE);
    assert_eq!(b.capacity(), a.capacity());
    let va = a.value::<u64>("v", 1).unwrap();
    let vb = b.value::<u64>("v", 2).unwrap();
    assert_eq!(
        vb.load().unwrap(),
        1,
        "b created a second object instead of finding a's"
    );
    vb.store(9).unwrap();
    assert_eq!(va.load().unwrap(), 9);
    // A lock held through one mapping is held through the other.
    let la = a.lock("l").unwrap();
    let lb = b.lock("l").unwrap();
    let g = la.lock().unwrap();
    assert!(lb.is_locked());
    assert!(!lb.acquire(false, None));
    drop(g);
    assert!(lb.acquire(false, None));
    lb.release().unwrap();
}

#[test]
fn open_or_create_creates_once_then_opens_keeping_the_size() {
    let dir = TestDir::new("ooc");
    let path = dir.join("r");
    let a = Region::open_or_create(&path, SIZE).unwrap();
    assert_eq!(a.size(), SIZE);
    a.value::<u32>("x", 41).unwrap();
    let b = Region::open_or_create(&path, 2 * SIZE).unwrap();
    assert_eq!(b.size(), SIZE, "an existing region keeps its own size");
    assert_eq!(b.value::<u32>("x", 0).unwrap().load().unwrap(), 41);
    assert!(matches!(
        Region::create(&path, SIZE),
        Err(Error::AlreadyExists(p)) if p == path
    ));
}

#[test]
fn geometry_free_bytes_and_the_object_listing() {
    let region = Region::anonymous(1 << 20).unwrap();
    assert_eq!(region.path(), None);
    assert_eq!(region.size(), 1 << 20);
    assert_eq!(region.capacity(), 256, "default: one object per 4 KiB");
    assert_eq!(
        Region::anonymous(SIZE).unwrap().capacity(),
        16,
        "at least 16"
    );
    assert!(region.objects().unwrap().is_empty());
    let free0 = region.free_bytes();
    assert!(free0 > 0 && free0 < region.size());

    region.lock("lock").unwrap();
    region.rlock("rlock").unwrap();
    region.value::<f64>("value", 0.0).unwrap();
    region.array::<i16>("array", &[0; 100]).unwrap();
    region.raw_value::<u8>("raw_value", 0).unwrap();
    region.raw_array::<u64>("raw_array", &[0; 3]).unwrap();
    let free1 = region.free_bytes();
    assert!(free1 < free0);

    let mut objects = region.objects().unwrap();
    objects.sort_by(|a, b| a.name.cmp(&b.name));
    let summary: Vec<(String, Kind, String, usize)> = objects
        .iter()
        .map(|o| (o.name.clone(), o.kind, o.type_name.clone(), o.len))
        .collect();
    let s = |x: &str| x.to_string();
    assert_eq!(
        summary,
        [
            (s("array"), Kind::Array, s("i16"), 100),
            (s("lock"), Kind::Lock, s(""), 0),
            (s("raw_array"), Kind::RawArray, s("u64"), 3),
            (s("raw_value"), Kind::RawValue, s("u8"), 1),
            (s("rlock"), Kind::RLock, s(""), 0),
            (s("value"), Kind::Value, s("f64"), 1),
        ]
    );
    let used: usize = objects.iter().map(|o| o.bytes).sum();
    assert_eq!(
        free0 - free1,
        used,
        "free space shrank by the listed objects' bytes"
    );
    for o in &objects {
        assert!(o.bytes > 0 && o.bytes % 128 == 0, "{o:?}");
    }
    let array = objects.iter().find(|o| o.name == "array").unwrap();
    assert!(array.bytes >= 200);

    // Finding existing objects allocates nothing.
    region.array::<i16>("array", &[1; 100]).unwrap();
    region.lock("lock").unwrap();
    assert_eq!(region.free_bytes(), free1);
    assert_eq!(region.objects().unwrap().len(), 6);

    let with_capacity = Region::options().capacity(1000).anonymous(1 << 20).unwrap();
    assert_eq!(with_capacity.capacity(), 1000);
}

#[test]
fn handles_outlive_the_region_handle_and_clones_share() {
    let region = Region::anonymous(SIZE).unwrap();
    let clone = region.clone();
    let v = region.value::<u32>("v", 1).unwrap();
    let l = region.lock("l").unwrap();
    drop(region);
    v.store(2).unwrap();
    assert!(l.acquire(false, None));
    assert_eq!(clone.value::<u32>("v", 0).unwrap().load().unwrap(), 2);
    assert!(clone.lock("l").unwrap().is_locked());
    drop(clone);
    l.release().unwrap();
    // Two anonymous regions are independent.
    let a = Region::anonymous(SIZE).unwrap();
    let b = Region::anonymous(SIZE).unwrap();
    a.value::<u32>("v", 1).unwrap();
    assert_eq!(b.value::<u32>("v", 2).unwrap().load().unwrap(), 2);
}

#[test]
fn remove_unlinks_the_file_and_a_second_remove_is_not_found() {
    let dir = TestDir::new("remove");
    let path = dir.join("r");
    let region = Region::create(&path, SIZE).unwrap();
    let v = region.value::<u64>("v", 5).unwrap();
    Region::remove(&path).unwrap();
    assert!(!path.exists());
    assert!(matches!(Region::remove(&path), Err(Error::NotFound(p)) if p == path));
    assert!(matches!(Region::open(&path), Err(Error::NotFound(_))));
    // Mapped handles keep working.
    v.fetch_add(1).unwrap();
    assert_eq!(region.value::<u64>("v", 0).unwrap().load().unwrap(), 6);
    // A new region at the path is a new one.
    let fresh = Region::open_or_create(&path, SIZE).unwrap();
    assert_eq!(fresh.value::<u64>("v", 100).unwrap().load().unwrap(), 100);
    assert_eq!(v.load().unwrap(), 6);

    let name = ShmName::new("remove-bare");
    Region::create(name.name(), SIZE).unwrap();
    Region::remove(name.name()).unwrap();
    assert!(!name.path().exists());
    assert!(matches!(Region::remove(name.name()), Err(Error::NotFound(p)) if p == name.path()));
}

// ---------------------------------------------------------------------------------------------
// Unrelated processes

#[test]
fn an_unrelated_process_opening_the_path_sees_the_same_objects() {
    let dir = TestDir::new("visitor");
    let path = dir.join("r");
    let region = Region::create(&path, SIZE).unwrap();
    let lock = region.lock("held").unwrap();
    let free = region.lock("free").unwrap();
    let value = region.value::<u64>("value", 42).unwrap();
    let pi = region.value::<f64>("pi", std::f64::consts::PI).unwrap();
    let array = region.array::<i32>("array", &[1, -2, 3]).unwrap();
    let raw = region.raw_value::<u32>("raw", 7).unwrap();
    let raw_array = region.raw_array::<u16>("raw_array", &[10, 20]).unwrap();
    let rl = region.rlock("rlock").unwrap();
    assert!(lock.acquire(true, None));
    let listing_before = region.objects().unwrap();

    spawn(
        "region_visitor",
        &path,
        &[("objects", &listing_before.len())],
    )
    .wait_ok();

    // The helper's writes, through our existing handles.
    assert_eq!(value.load().unwrap(), 43);
    assert_eq!(pi.load().unwrap(), -1.0);
    assert_eq!(array.to_vec().unwrap(), [-1, 2, -3]);
    assert_eq!(raw.load(), 8);
    assert_eq!(raw_array.to_vec(), [11, 20]);
    assert!(lock.is_locked(), "the helper's failed try changed our lock");
    assert!(!free.is_locked() && !rl.is_locked());
    // The helper's new objects, found by name.
    assert_eq!(
        region
            .value::<i64>("from_child", 0)
            .unwrap()
            .load()
            .unwrap(),
        -7
    );
    assert_eq!(
        region
            .array::<u8>("child_array", &[0; 4])
            .unwrap()
            .to_vec()
            .unwrap(),
        [1, 2, 3, 4]
    );
    let from_child_lock = region.lock("child_lock").unwrap();
    assert!(
        from_child_lock.is_locked(),
        "the helper left child_lock held"
    );
    from_child_lock.release().unwrap();
    let names: Vec<String> = region
        .objects()
        .unwrap()
        .into_iter()
        .map(|o| o.name)
        .collect();
    for n in ["from_child", "child_array", "child_lock"] {
        assert!(names.iter().any(|x| x == n), "{n} missing from {names:?}");
    }
    assert_eq!(names.len(), listing_before.len() + 3);
    lock.release().unwrap();
}

/// Helper role `region_visitor`.
pub fn child_region_visitor() -> Result<()> {
    let region = Region::open(child_path())?;
    let n: usize = arg("objects");
    let objects: Vec<ObjectInfo> = region.objects()?;
    assert_eq!(objects.len(), n);
    assert!(
        objects.iter().any(|o| o.name == "array"
            && o.kind == Kind::Array
            && o.type_name == "i32"
            && o.len == 3)
    );

    let held = region.lock("held")?;
    assert!(held.is_locked());
    assert!(!held.acquire(false, None));
    assert!(!region.lock("free")?.is_locked());
    assert!(!region.rlock("rlock")?.is_locked());

    let value = region.value::<u64>("value", 0)?;
    assert_eq!(value.load()?, 42);
    value.fetch_add(1)?;
    let pi = region.value::<f64>("pi", 0.0)?;
    assert_eq!(pi.load()?, std::f64::consts::PI);
    pi.store(-1.0)?;
    let array = region.array::<i32>("array", &[0; 3])?;
    assert_eq!(array.to_vec()?, [1, -2, 3]);
    for x in array.lock()?.iter_mut() {
        *x = -*x;
    }
    let raw = region.raw_value::<u32>("raw", 0)?;
    assert_eq!(raw.fetch_add(1), 7);
    let raw_array = region.raw_array::<u16>("raw_array", &[0; 2])?;
    assert_eq!(raw_array.fetch_add(0, 1), 10);

    // Asking for an existing name as something else names both sides.
    let err = region.value::<f64>("value", 0.0).unwrap_err();
    assert!(matches!(err, Error::Mismatch { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("Value<u64>") && msg.contains("Value<f64>"),
        "{msg}"
    );

    // New objects, for the parent to find.
    region.value::<i64>("from_child", -7)?;
    region.array::<u8>("child_array", &[1, 2, 3, 4])?;
    let l = region.lock("child_lock")?;
    assert!(l.acquire(false, None));
    Ok(())
}

const RACERS: u32 = 8;
const ROUNDS: u32 = 20;

/// Starts `RACERS` helpers in `role`; in each of `ROUNDS` rounds they wait for the start signal
/// (spinning on a flag in a separate control region, so that they leave the barrier within
/// microseconds of each other), then all act at once on `paths[round]`. Returns the control
/// region once they all finished.
fn race(dir: &TestDir, role: &str, paths: &[PathBuf]) -> Region {
    assert_eq!(paths.len(), ROUNDS as usize);
    let ctl_path = dir.join("control");
    let ctl = Region::create(&ctl_path, SIZE).unwrap();
    let ready = ctl.raw_value::<u32>("ready", 0).unwrap();
    let go = ctl.raw_value::<u32>("go", 0).unwrap();
    ctl.raw_array::<u32>("created", &[0; ROUNDS as usize])
        .unwrap();
    ctl.raw_array::<u32>("winner", &[u32::MAX; ROUNDS as usize])
        .unwrap();
    let path_args: Vec<(String, String)> = paths
        .iter()
        .enumerate()
        .map(|(r, p)| (format!("path{r}"), p.display().to_string()))
        .collect();
    let ctl_arg = ctl_path.display();
    let children = (0..RACERS)
        .map(|i| {
            let mut args: Vec<(&str, &dyn std::fmt::Display)> =
                vec![("control", &ctl_arg), ("index", &i), ("size", &SIZE)];
            args.extend(path_args.iter().map(|(k, v)| (k.as_str(), v as _)));
            spawn(role, Path::new("unused"), &args)
        })
        .collect::<Vec<_>>();
    for r in 1..=ROUNDS {
        wait_until("every racer to be ready", || ready.load() == RACERS * r);
        go.store(r);
    }
    wait_all(children);
    ctl
}

/// In a racer: the region paths of the rounds, the control region, and this racer's index.
struct Racer {
    ready: RawValue<u32>,
    go: RawValue<u32>,
    created: RawArray<u32>,
    winner: RawArray<u32>,
    index: u32,
    size: usize,
}

impl Racer {
    fn new() -> Result<Racer> {
        let ctl = Region::open(arg::<String>("control"))?;
        Ok(Racer {
            ready: ctl.raw_value("ready", 0)?,
            go: ctl.raw_value("go", 0)?,
            created: ctl.raw_array("created", &[0; ROUNDS as usize])?,
            winner: ctl.raw_array("winner", &[0; ROUNDS as usize])?,
            index: arg("index"),
            size: arg("size"),
        })
    }

    /// Waits for round `r`'s start signal; returns the round's region path.
    fn start(&self, r: u32) -> PathBuf {
        self.ready.fetch_add(1);
        let started = std::time::Instant::now();
        let mut spins = 0u32;
        while self.go.load() < r {
            spins = spins.wrapping_add(1);
            if spins % 1024 == 0 {
                // Let the parent (and the other racers) run on a small machine.
                std::thread::yield_now();
                assert!(started.elapsed() < crate::common::LIMIT, "no start signal");
            }
            std::hint::spin_loop();
        }
        PathBuf::from(arg::<String>(&format!("path{}", r - 1)))
    }
}

#[test]
fn concurrent_open_or_create_publishes_exactly_one_region() {
    let dir = TestDir::new("ooc-race");
    let region_dir = dir.join("regions");
    fs::create_dir(&region_dir).unwrap();
    let paths: Vec<PathBuf> = (0..ROUNDS)
        .map(|r| region_dir.join(format!("r{r}")))
        .collect();
    race(&dir, "open_or_create_racer", &paths);
    for (r, path) in paths.iter().enumerate() {
        let region = Region::open(path).unwrap();
        assert_eq!(
            region.value::<u64>("count", 0).unwrap().load().unwrap(),
            u64::from(RACERS),
            "round {r}: the racers did not all get the same region"
        );
        // Every racer saw a complete region holding only what the racers put there.
        assert_eq!(region.objects().unwrap().len(), 1);
        assert_eq!(region.size(), SIZE);
    }
    let mut names: Vec<_> = fs::read_dir(&region_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let mut expected: Vec<String> = (0..ROUNDS).map(|r| format!("r{r}")).collect();
    expected.sort();
    assert_eq!(names, expected, "one file a round, no leftovers");
}

#[test]
fn concurrent_open_or_create_of_a_bare_name() {
    let dir = TestDir::new("ooc-race-bare");
    let names: Vec<ShmName> = (0..ROUNDS).map(|_| ShmName::new("ooc-race")).collect();
    let paths: Vec<PathBuf> = names.iter().map(|n| PathBuf::from(n.name())).collect();
    race(&dir, "open_or_create_racer", &paths);
    for n in &names {
        assert!(n.path().is_file());
        let region = Region::open(n.name()).unwrap();
        assert_eq!(
            region.value::<u64>("count", 0).unwrap().load().unwrap(),
            u64::from(RACERS)
        );
    }
}

/// Helper role `open_or_create_racer`.
pub fn child_open_or_create_racer() -> Result<()> {
    let racer = Racer::new()?;
    for r in 1..=ROUNDS {
        let path = racer.start(r);
        let region = Region::open_or_create(&path, racer.size)?;
        assert_eq!(region.size(), racer.size);
        region.value::<u64>("count", 0)?.fetch_add(1)?;
    }
    Ok(())
}

#[test]
fn concurrent_create_has_exactly_one_winner() {
    let dir = TestDir::new("create-race");
    let paths: Vec<PathBuf> = (0..ROUNDS).map(|r| dir.join(&format!("r{r}"))).collect();
    let ctl = race(&dir, "create_racer", &paths);
    let created = ctl
        .raw_array::<u32>("created", &[0; ROUNDS as usize])
        .unwrap();
    let winner = ctl
        .raw_array::<u32>("winner", &[0; ROUNDS as usize])
        .unwrap();
    for (r, path) in paths.iter().enumerate() {
        assert_eq!(created.load(r), 1, "round {r}: creators");
        let region = Region::open(path).unwrap();
        let w = region
            .value::<u32>("winner", u32::MAX)
            .unwrap()
            .load()
            .unwrap();
        assert_eq!(
            w,
            winner.load(r),
            "round {r}: the region is not the winner's"
        );
        assert!(w < RACERS);
        assert_eq!(
            region.raw_value::<u32>("losers", 0).unwrap().load(),
            RACERS - 1,
            "round {r}"
        );
    }
}

/// Helper role `create_racer`.
pub fn child_create_racer() -> Result<()> {
    let racer = Racer::new()?;
    for r in 1..=ROUNDS {
        let path = racer.start(r);
        match Region::create(&path, racer.size) {
            Ok(region) => {
                region.value::<u32>("winner", racer.index)?;
                racer.winner.store(r as usize - 1, racer.index);
                racer.created.fetch_add(r as usize - 1, 1);
            }
            Err(Error::AlreadyExists(p)) => {
                assert_eq!(p, path);
                // The name is taken, so the region behind it is complete.
                let region = Region::open(&path)?;
                assert_eq!(region.size(), racer.size);
                region.raw_value::<u32>("losers", 0)?.fetch_add(1);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A region that a helper created is complete for a process that opens it at once.
#[test]
fn a_region_created_by_another_process_is_complete_when_seen() {
    let dir = TestDir::new("created-elsewhere");
    let path = dir.join("r");
    let child = spawn("region_creator", &path, &[("size", &SIZE)]);
    wait_until("the region file", || path.exists());
    // The name appears only once the region is complete: open must succeed right away.
    let region = Region::open(&path).expect("a published region is complete");
    assert_eq!(region.size(), SIZE);
    let flag = region.raw_value::<u32>("flag", 0).unwrap();
    flag.store(1);
    child.wait_ok();
    assert_eq!(
        region.value::<u32>("answer", 0).unwrap().load().unwrap(),
        42
    );
    assert_eq!(Region::open(&path).unwrap().objects().unwrap().len(), 2);
}

/// Helper role `region_creator`.
pub fn child_region_creator() -> Result<()> {
    let size: usize = arg("size");
    let region = Region::create(child_path(), size)?;
    let flag = region.raw_value::<u32>("flag", 0)?;
    wait_until("the parent's flag", || flag.load() == 1);
    region.value::<u32>("answer", 42)?;
    Ok(())
}

/// A region with a process table of 2: this process and one helper fill it; a third process can
/// open the region but not use a lock until a slot is freed by a process exiting.
#[test]
fn a_full_process_table_refuses_a_third_process_until_one_exits() {
    let dir = TestDir::new("proc-table");
    let path = dir.join("r");
    let region = Region::options()
        .max_processes(2)
        .create(&path, SIZE)
        .unwrap();
    let lock = region.lock("l").unwrap(); // registers this process
    let step = region.raw_value::<u32>("step", 0).unwrap();
    let holder = spawn("table_member", &path, &[]);
    wait_until("the first helper to register", || step.load() == 1);
    let third = spawn("table_latecomer", &path, &[]);
    wait_until("the latecomer to be refused", || step.load() == 2);
    assert!(lock.acquire(false, None));
    lock.release().unwrap();
    step.store(3); // the member may exit now
    holder.wait_ok();
    step.store(4); // its slot is free
    third.wait_ok();
    assert_eq!(
        region.value::<u32>("latecomer", 0).unwrap().load().unwrap(),
        1
    );
}

/// Helper role `table_member`.
pub fn child_table_member() -> Result<()> {
    let region = Region::open(child_path())?;
    let lock = region.lock("l")?;
    let step = region.raw_value::<u32>("step", 0)?;
    assert!(lock.acquire(true, Some(crate::common::LIMIT)));
    lock.release()?;
    step.store(1);
    wait_until("leave to exit", || step.load() == 3);
    Ok(())
}

/// Helper role `table_latecomer`.
pub fn child_table_latecomer() -> Result<()> {
    let region = Region::open(child_path())?;
    let step = region.raw_value::<u32>("step", 0)?;
    match region.lock("l") {
        Err(Error::ProcessTableFull { slots: 2 }) => {}
        other => panic!("expected ProcessTableFull, got {other:?}"),
    }
    assert!(matches!(
        region.value::<u32>("latecomer", 0),
        Err(Error::ProcessTableFull { .. })
    ));
    step.store(2);
    wait_until("a free slot", || step.load() == 4);
    let lock = region.lock("l")?;
    assert!(lock.acquire(true, Some(crate::common::LIMIT)));
    lock.release()?;
    region.value::<u32>("latecomer", 0)?.store(1)?;
    Ok(())
}

/// Only root can give a file to another user; elsewhere this test checks only the own-user case.
#[test]
fn a_region_owned_by_another_user_is_refused_unless_allowed() {
    let dir = TestDir::new("other-owner");
    let path = dir.join("r");
    Region::options()
        .mode(0o666)
        .create(&path, SIZE)
        .unwrap()
        .value::<u32>("v", 9)
        .unwrap();
    assert!(Region::open(&path).is_ok());
    let nobody = 65534;
    if std::os::unix::fs::chown(&path, Some(nobody), None).is_err() {
        eprintln!("not root: the refusal of another user's region is not staged");
        return;
    }
    match Region::open(&path) {
        Err(Error::OtherOwner { path: p, owner, .. }) => {
            assert_eq!(p, path);
            assert_eq!(owner, nobody);
        }
        other => panic!("expected OtherOwner, got {other:?}"),
    }
    assert!(matches!(
        Region::open_or_create(&path, SIZE),
        Err(Error::OtherOwner { .. })
    ));
    let msg = Region::open(&path).unwrap_err().to_string();
    assert!(msg.contains("allow_other_owner"), "{msg}");
    let region = Region::options()
        .allow_other_owner(true)
        .open(&path)
        .unwrap();
    assert_eq!(region.value::<u32>("v", 0).unwrap().load().unwrap(), 9);
}
