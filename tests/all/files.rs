//! Files that are not usable regions, damaged headers and directory entries, symlinks, taken
//! and missing paths: each gives its error, never a panic, and nothing is overwritten.

use crate::common::{
    LIMIT, SIZE, ShmName, TestDir, find_entry, layout, read_u32, read_u64, write_at, write_u32,
    write_u64,
};
use shmsync::{Error, Region};
use std::fs;
use std::os::unix::fs::{FileTypeExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// A valid region at `dir/name` with a few objects, closed again.
fn make_region(dir: &TestDir, name: &str) -> PathBuf {
    let path = dir.join(name);
    let region = Region::create(&path, SIZE).unwrap();
    region.value::<u64>("victim", 42).unwrap();
    region.lock("bystander").unwrap();
    region.array::<u16>("array", &[1, 2, 3]).unwrap();
    path
}

fn copy(dir: &TestDir, from: &Path, name: &str) -> PathBuf {
    let to = dir.join(name);
    fs::copy(from, &to).unwrap();
    to
}

fn corrupt_reason(result: shmsync::Result<impl std::fmt::Debug>) -> String {
    match result {
        Err(Error::Corrupt { reason, .. }) => reason,
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

/// Pseudo-random bytes (xorshift), not starting with the magic number.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn a_file_that_is_not_a_region_is_corrupt() {
    let dir = TestDir::new("not-a-region");
    let random = dir.join("random");
    fs::write(&random, noise(SIZE, 0x1234_5678)).unwrap();
    let text = dir.join("text");
    fs::write(&text, "hello, this is not a region\n".repeat(100)).unwrap();
    let zeros = dir.join("zeros");
    fs::write(&zeros, vec![0u8; SIZE]).unwrap();
    for path in [&random, &text, &zeros] {
        let before = fs::read(path).unwrap();
        match Region::open(path) {
            Err(Error::Corrupt { path: Some(p), .. }) => assert_eq!(&p, path),
            other => panic!("{}: expected Corrupt, got {other:?}", path.display()),
        }
        let msg = Region::open(path).unwrap_err().to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        // open_or_create must not "repair" it by overwriting.
        assert!(matches!(
            Region::open_or_create(path, SIZE),
            Err(Error::Corrupt { .. })
        ));
        assert!(matches!(
            Region::create(path, SIZE),
            Err(Error::AlreadyExists(_))
        ));
        assert_eq!(fs::read(path).unwrap(), before, "the file was modified");
    }
}

#[test]
fn short_files_are_truncated() {
    let dir = TestDir::new("short");
    for len in [0usize, 1, 100, 255] {
        let path = dir.join(&format!("short{len}"));
        fs::write(&path, noise(len, len as u64 + 7)).unwrap();
        match Region::open(&path) {
            Err(Error::Truncated {
                path: Some(p),
                len: l,
                needed,
            }) => {
                assert_eq!(p, path);
                assert_eq!(l, len as u64);
                assert_eq!(needed, 256);
            }
            other => panic!("{len} bytes: expected Truncated, got {other:?}"),
        }
    }
    // The first 255 bytes of a real region are still too short.
    let real = make_region(&dir, "real");
    let head = dir.join("head");
    fs::write(&head, &fs::read(&real).unwrap()[..255]).unwrap();
    assert!(matches!(
        Region::open(&head),
        Err(Error::Truncated { len: 255, .. })
    ));
}

#[test]
fn a_region_file_truncated_or_extended_is_a_size_mismatch() {
    let dir = TestDir::new("resized");
    let real = make_region(&dir, "real");
    for (name, len) in [
        ("shorter", SIZE as u64 / 2),
        ("header-only", 256),
        ("one-less", SIZE as u64 - 1),
        ("longer", SIZE as u64 * 2),
        ("one-more", SIZE as u64 + 1),
    ] {
        let path = copy(&dir, &real, name);
        fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len)
            .unwrap();
        match Region::open(&path) {
            Err(Error::SizeMismatch {
                path: Some(p),
                header,
                file,
            }) => {
                assert_eq!(p, path);
                assert_eq!(header, SIZE as u64, "{name}");
                assert_eq!(file, len, "{name}");
            }
            other => panic!("{name}: expected SizeMismatch, got {other:?}"),
        }
    }
    // The original is fine.
    let region = Region::open(&real).unwrap();
    assert_eq!(
        region.value::<u64>("victim", 0).unwrap().load().unwrap(),
        42
    );
}

#[test]
fn another_format_version_or_layout_is_refused() {
    let dir = TestDir::new("version");
    let real = make_region(&dir, "real");
    assert_eq!(read_u32(&real, layout::VERSION), 3);

    for version in [0u32, 1, 2, 4, u32::MAX] {
        let path = copy(&dir, &real, &format!("v{version}"));
        write_u32(&path, layout::VERSION, version);
        match Region::open(&path) {
            Err(Error::VersionMismatch { found, expected }) => {
                assert_eq!((found, expected), (version, 3));
            }
            other => panic!("version {version}: expected VersionMismatch, got {other:?}"),
        }
    }

    let ours = read_u32(&real, layout::LAYOUT);
    // 32-bit big-endian with 128-byte padding; and the same with 64-byte padding.
    for found in [0x0007_0204u32, (ours & !0xff_0000) | (6 << 16), 0] {
        let path = copy(&dir, &real, &format!("layout{found:x}"));
        write_u32(&path, layout::LAYOUT, found);
        match Region::open(&path) {
            Err(Error::LayoutMismatch {
                found: f,
                expected: e,
            }) => {
                assert_eq!(e, "64-bit little-endian with 128-byte padding");
                assert_ne!(f, e);
            }
            other => panic!("layout {found:#x}: expected LayoutMismatch, got {other:?}"),
        }
    }
    let path = copy(&dir, &real, "big-endian");
    write_u32(&path, layout::LAYOUT, 0x0007_0204);
    let msg = Region::open(&path).unwrap_err().to_string();
    assert!(msg.contains("32-bit big-endian"), "{msg}");
}

#[test]
fn damaged_header_fields_are_corrupt() {
    let dir = TestDir::new("header");
    let real = make_region(&dir, "real");
    let slots = read_u64(&real, layout::DIR_SLOTS);
    let heap = read_u64(&real, layout::HEAP_OFFSET);
    let procs = read_u64(&real, layout::PROCS);
    let procs_offset = read_u64(&real, layout::PROCS_OFFSET);
    assert_eq!(slots, 32);
    assert_eq!(procs, layout::DEFAULT_PROCS);
    assert_eq!(procs_offset, 256 + 32 * 256);
    assert_eq!(heap, layout::heap_offset(32, procs));

    let u32_cases: [(&str, u64, u32); 2] = [
        ("state never completed", layout::STATE, 0),
        ("state garbage", layout::STATE, 0xdead_beef),
    ];
    for (what, offset, v) in u32_cases {
        let path = copy(&dir, &real, "patched-u32");
        write_u32(&path, offset, v);
        match Region::open(&path) {
            Err(Error::Corrupt { .. }) => {}
            other => panic!("{what}: expected Corrupt, got {other:?}"),
        }
    }
    let u64_cases: [(&str, u64, u64); 17] = [
        ("no process slots", layout::PROCS, 0),
        (
            "too many process slots",
            layout::PROCS,
            layout::DEFAULT_PROCS + 1,
        ),
        ("fewer process slots", layout::PROCS, 8),
        (
            "process table elsewhere",
            layout::PROCS_OFFSET,
            procs_offset + 8,
        ),
        ("process table at zero", layout::PROCS_OFFSET, 0),
        ("directory offset", layout::DIR_OFFSET, 512),
        ("zero slots", layout::DIR_SLOTS, 0),
        ("one slot", layout::DIR_SLOTS, 1),
        ("slots not a power of two", layout::DIR_SLOTS, 48),
        ("more slots than fit", layout::DIR_SLOTS, 1 << 20),
        ("absurd slots", layout::DIR_SLOTS, u64::MAX),
        ("top-bit slots", layout::DIR_SLOTS, 1 << 63),
        ("zero capacity", layout::CAPACITY, 0),
        (
            "capacity over half the slots",
            layout::CAPACITY,
            slots / 2 + 1,
        ),
        ("absurd capacity", layout::CAPACITY, u64::MAX),
        ("heap offset", layout::HEAP_OFFSET, heap + 128),
        ("heap offset zero", layout::HEAP_OFFSET, 0),
    ];
    for (what, offset, v) in u64_cases {
        let path = copy(&dir, &real, "patched-u64");
        write_u64(&path, offset, v);
        match Region::open(&path) {
            Err(Error::Corrupt { .. }) => {}
            other => panic!("{what}: expected Corrupt, got {other:?}"),
        }
    }
    // Sizes: a header size that disagrees with the file.
    let path = copy(&dir, &real, "size");
    write_u64(&path, layout::SIZE, SIZE as u64 * 4);
    assert!(matches!(
        Region::open(&path),
        Err(Error::SizeMismatch { header, .. }) if header == SIZE as u64 * 4
    ));
    // A damaged magic number.
    let path = copy(&dir, &real, "magic");
    write_at(&path, 0, b"SHMSYNK\0");
    corrupt_reason(Region::open(&path).map(drop));
}

#[test]
fn a_damaged_allocation_cursor_is_reported_without_harm() {
    let dir = TestDir::new("cursor");
    let real = make_region(&dir, "real");
    // Past the end: nothing is free, existing objects (which all end before it) are still found,
    // a new one is refused.
    for cursor in [SIZE as u64 + 1, SIZE as u64 + 128, u64::MAX] {
        let path = copy(&dir, &real, "cursor");
        write_u64(&path, layout::CURSOR, cursor);
        let region = Region::open(&path).unwrap();
        assert_eq!(region.free_bytes(), 0, "cursor {cursor}");
        assert_eq!(
            region.value::<u64>("victim", 0).unwrap().load().unwrap(),
            42
        );
        corrupt_reason(region.value::<u64>("new", 0));
        assert_eq!(region.objects().unwrap().len(), 3);
    }
    // Before the object space: nothing is free, and every object now lies beyond the used
    // space, so none is handed out (the next insertion could be given its bytes).
    for cursor in [0u64, 1, 255] {
        let path = copy(&dir, &real, "cursor");
        write_u64(&path, layout::CURSOR, cursor);
        let region = Region::open(&path).unwrap();
        assert_eq!(region.free_bytes(), 0, "cursor {cursor}");
        corrupt_reason(region.value::<u64>("victim", 0));
        corrupt_reason(region.lock("bystander"));
        corrupt_reason(region.value::<u64>("new", 0));
        corrupt_reason(region.objects());
    }
    // A cursor exactly at the end: valid, but the region is full.
    let path = copy(&dir, &real, "cursor-end");
    write_u64(&path, layout::CURSOR, SIZE as u64);
    let region = Region::open(&path).unwrap();
    assert!(matches!(
        region.lock("new"),
        Err(Error::OutOfSpace { available: 0, .. })
    ));
    assert_eq!(
        region.value::<u64>("victim", 0).unwrap().load().unwrap(),
        42
    );
}

/// Patches one field of the `victim` entry in a copy of a good region and returns the copy.
fn with_damaged_entry(dir: &TestDir, real: &Path, field: u64, bytes: &[u8]) -> PathBuf {
    let path = copy(dir, real, "damaged");
    let entry = find_entry(&path, "victim");
    write_at(&path, entry + field, bytes);
    path
}

#[test]
fn a_damaged_directory_entry_is_corrupt_for_its_lookup_and_the_listing() {
    let dir = TestDir::new("entry");
    let real = make_region(&dir, "real");
    let entry = find_entry(&real, "victim");
    let offset = read_u64(&real, entry + layout::E_OFFSET);
    let bytes = read_u64(&real, entry + layout::E_BYTES);
    assert!(offset >= 256 + 32 * 256 && offset % 128 == 0);
    assert_eq!(bytes, 128);

    let le32 = |v: u32| v.to_ne_bytes().to_vec();
    let le64 = |v: u64| v.to_ne_bytes().to_vec();
    let cases: Vec<(&str, u64, Vec<u8>)> = vec![
        (
            "offset past the end",
            layout::E_OFFSET,
            le64(SIZE as u64 + 4096),
        ),
        ("offset at the end", layout::E_OFFSET, le64(SIZE as u64)),
        ("offset overflowing", layout::E_OFFSET, le64(u64::MAX - 64)),
        ("offset in the header", layout::E_OFFSET, le64(0)),
        ("offset in the directory", layout::E_OFFSET, le64(256)),
        ("offset misaligned", layout::E_OFFSET, le64(offset + 4)),
        (
            "object runs past the end",
            layout::E_OFFSET,
            le64(SIZE as u64 - 64),
        ),
        ("zero bytes", layout::E_BYTES, le64(0)),
        ("absurd bytes", layout::E_BYTES, le64(u64::MAX)),
        ("too many bytes", layout::E_BYTES, le64(SIZE as u64)),
        ("unknown kind", layout::E_KIND, le32(99)),
        ("zero kind", layout::E_KIND, le32(0)),
        ("alignment 3", layout::E_ELEM_ALIGN, le32(3)),
        ("alignment 0", layout::E_ELEM_ALIGN, le32(0)),
        ("type name too long", layout::E_TYPE_LEN, le32(65)),
        ("state garbage", layout::E_STATE, le32(0x77)),
    ];
    for (what, field, bytes) in cases {
        let path = with_damaged_entry(&dir, &real, field, &bytes);
        let region = Region::open(&path).unwrap_or_else(|e| panic!("{what}: open: {e}"));
        match region.value::<u64>("victim", 0) {
            Err(Error::Corrupt { path: Some(p), .. }) => assert_eq!(p, path, "{what}"),
            other => panic!("{what}: lookup: expected Corrupt, got {other:?}"),
        }
        match region.objects() {
            Err(Error::Corrupt { .. }) => {}
            other => panic!("{what}: objects(): expected Corrupt, got {other:?}"),
        }
    }

    // Reserved bytes that are well placed but do not suit the type: the lookup refuses them
    // (the listing cannot know what the type needs, and shows the entry as it is).
    let path = with_damaged_entry(&dir, &real, layout::E_BYTES, &le64(256));
    let region = Region::open(&path).unwrap();
    corrupt_reason(region.value::<u64>("victim", 0));
    let listed = region.objects().unwrap();
    assert_eq!(
        listed.iter().find(|o| o.name == "victim").unwrap().bytes,
        256
    );

    // A damaged entry reached through a region that is already open, as another process that
    // scribbles on the file would do it.
    let path = copy(&dir, &real, "live");
    let region = Region::open(&path).unwrap();
    assert_eq!(
        region.value::<u64>("victim", 0).unwrap().load().unwrap(),
        42
    );
    write_u64(&path, entry + layout::E_OFFSET, SIZE as u64 * 16);
    let reason = corrupt_reason(region.value::<u64>("victim", 0));
    assert!(!reason.is_empty());
    corrupt_reason(region.objects());
}

/// A damaged element size or length cannot be used to reach past the object: asking for what
/// the entry now claims is refused as corrupt (the bytes reserved do not fit it), asking for what
/// it was is a mismatch.
#[test]
fn a_damaged_length_or_element_size_never_reaches_past_the_object() {
    let dir = TestDir::new("entry-len");
    let real = make_region(&dir, "real");
    let entry = find_entry(&real, "array");
    assert_eq!(read_u64(&real, entry + layout::E_LEN), 3);
    assert_eq!(read_u32(&real, entry + layout::E_ELEM_SIZE), 2);

    let path = copy(&dir, &real, "len");
    write_u64(&path, entry + layout::E_LEN, 100_000);
    let region = Region::open(&path).unwrap();
    assert!(matches!(
        region.array::<u16>("array", &[0; 3]),
        Err(Error::Mismatch { .. })
    ));
    corrupt_reason(region.array::<u16>("array", &vec![0; 100_000]));

    let path = copy(&dir, &real, "elem-size");
    write_u32(&path, entry + layout::E_ELEM_SIZE, 4096);
    let region = Region::open(&path).unwrap();
    assert!(region.array::<u16>("array", &[0; 3]).is_err());
    assert!(
        region
            .array::<[u8; 4096]>("array", &[[0; 4096]; 3])
            .is_err()
    );
}

#[test]
fn a_damaged_name_length_is_caught_by_the_listing() {
    let dir = TestDir::new("entry-name");
    let real = make_region(&dir, "real");
    for len in [0u32, 129, u32::MAX] {
        let path = with_damaged_entry(&dir, &real, layout::E_NAME_LEN, &len.to_ne_bytes());
        let region = Region::open(&path).unwrap();
        corrupt_reason(region.objects());
        // The bystanders are still found.
        assert!(!region.lock("bystander").unwrap().is_locked());
    }
    // A name that is not UTF-8.
    let path = with_damaged_entry(&dir, &real, layout::E_NAME, &[0xff, 0xfe]);
    let region = Region::open(&path).unwrap();
    corrupt_reason(region.objects());
}

/// Every 32-bit word of the `victim` entry and of the header, set to assorted values: whatever
/// open, lookups, creation and the listing answer, they must answer (no panic, no crash, no
/// hang). The sweep runs in a worker thread so that a hang fails the test, naming the case.
#[test]
fn no_single_damaged_word_makes_the_library_panic() {
    let dir = TestDir::new("sweep");
    let real = make_region(&dir, "real");
    let entry = find_entry(&real, "victim");
    let progress = Arc::new(Mutex::new(String::new()));
    let (done_tx, done_rx) = mpsc::channel();
    let worker_progress = progress.clone();
    let sweep_dir = dir.path().to_path_buf();
    std::thread::spawn(move || {
        let result = std::panic::catch_unwind(|| {
            sweep(&sweep_dir, &real, entry, &worker_progress);
        });
        let _ = done_tx.send(result.is_ok());
    });
    match done_rx.recv_timeout(LIMIT) {
        Ok(true) => {}
        Ok(false) => panic!("the sweep panicked at {}", progress.lock().unwrap()),
        Err(_) => panic!("the sweep hung at {}", progress.lock().unwrap()),
    }
}

fn sweep(dir: &Path, real: &Path, entry: u64, progress: &Mutex<String>) {
    let values = [
        0u32,
        1,
        3,
        64,
        128,
        4096,
        0x7fff_ffff,
        0x8000_0000,
        u32::MAX,
    ];
    // Bounded waits only: a damaged entry may legitimately alias another object's lock word.
    let wait = Duration::from_secs(5);
    let exercise = |path: &Path| {
        let Ok(region) = Region::open(path) else {
            return;
        };
        let _ = region.objects();
        let _ = region.free_bytes();
        if let Ok(v) = region.value::<u64>("victim", 0) {
            if let Ok(mut g) = v.try_lock_for(wait) {
                *g += 1;
            }
        }
        if let Ok(l) = region.lock("bystander") {
            if l.acquire(true, Some(wait)) {
                l.release().unwrap();
            }
        }
        if let Ok(a) = region.array::<u16>("array", &[0; 3]) {
            if let Ok(g) = a.try_lock_for(wait) {
                let _ = g.to_vec();
            }
        }
        // A new object: needs the allocation lock, the cursor and a free slot.
        let _ = region.raw_value::<u32>("newcomer", 1);
        let _ = region.objects();
    };
    let path = dir.join("sweep");
    let mut cases = Vec::new();
    for word in (0..256u64).step_by(4) {
        cases.push(("entry", entry + word));
    }
    for word in (0..256u64).step_by(4) {
        if (layout::ALLOC_LOCK..layout::ALLOC_LOCK + 4).contains(&word) {
            // A held allocation lock makes creation wait for its (dead) holder: by design, until
            // owner-death recovery exists. Not a corruption the library can detect.
            continue;
        }
        cases.push(("header", word));
    }
    for (what, offset) in cases {
        for v in values {
            *progress.lock().unwrap() = format!("{what} byte {offset} = {v:#x}");
            fs::copy(real, &path).unwrap();
            write_u32(&path, offset, v);
            exercise(&path);
        }
    }
}

#[test]
fn a_symlink_at_the_path_is_never_followed() {
    let dir = TestDir::new("symlink");
    // A dangling link: open refuses it, create does not create its target.
    let target = dir.join("target");
    let link = dir.join("link");
    symlink(&target, &link).unwrap();
    assert!(matches!(Region::open(&link), Err(Error::Io { .. })));
    assert!(matches!(Region::create(&link, SIZE), Err(Error::AlreadyExists(p)) if p == link));
    assert!(matches!(
        Region::open_or_create(&link, SIZE),
        Err(Error::Io { .. })
    ));
    assert!(
        fs::symlink_metadata(&target).is_err(),
        "the link's target was created"
    );
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );

    // A link to a valid region: still refused, and the region is untouched.
    let real = make_region(&dir, "real");
    let before = fs::read(&real).unwrap();
    let link2 = dir.join("link2");
    symlink(&real, &link2).unwrap();
    match Region::open(&link2) {
        Err(Error::Io { path: Some(p), .. }) => assert_eq!(p, link2),
        other => panic!("expected Io for a symlink, got {other:?}"),
    }
    assert!(matches!(
        Region::create(&link2, SIZE),
        Err(Error::AlreadyExists(_))
    ));
    assert!(Region::open_or_create(&link2, SIZE).is_err());
    assert_eq!(fs::read(&real).unwrap(), before);

    // A link in /dev/shm reached by bare name.
    let name = ShmName::new("symlink");
    let shm_target = dir.join("shm-target");
    symlink(&shm_target, name.path()).unwrap();
    assert!(matches!(Region::open(name.name()), Err(Error::Io { .. })));
    assert!(matches!(
        Region::create(name.name(), SIZE),
        Err(Error::AlreadyExists(_))
    ));
    assert!(!shm_target.exists());
}

#[test]
fn create_on_a_taken_path_is_already_exists_and_changes_nothing() {
    let dir = TestDir::new("taken");
    let real = make_region(&dir, "real");
    let before = fs::read(&real).unwrap();
    match Region::create(&real, SIZE) {
        Err(Error::AlreadyExists(p)) => assert_eq!(p, real),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert!(matches!(
        Region::options().capacity(3).create(&real, SIZE * 2),
        Err(Error::AlreadyExists(_))
    ));
    assert_eq!(fs::read(&real).unwrap(), before);
    let msg = Region::create(&real, SIZE).unwrap_err().to_string();
    assert!(msg.contains("exists"), "{msg}");

    let plain = dir.join("plain");
    fs::write(&plain, b"precious").unwrap();
    assert!(matches!(
        Region::create(&plain, SIZE),
        Err(Error::AlreadyExists(_))
    ));
    assert_eq!(fs::read(&plain).unwrap(), b"precious");

    // A directory at the path: taken for create, not a region for open.
    let sub = dir.join("sub");
    fs::create_dir(&sub).unwrap();
    assert!(matches!(
        Region::create(&sub, SIZE),
        Err(Error::AlreadyExists(_))
    ));
    assert!(matches!(Region::open(&sub), Err(Error::Io { .. })));
}

#[test]
fn opening_a_fifo_fails_without_blocking() {
    let dir = TestDir::new("fifo");
    let fifo = dir.join("fifo");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    assert!(fs::metadata(&fifo).unwrap().file_type().is_fifo());
    let (tx, rx) = std::sync::mpsc::channel();
    let f = fifo.clone();
    std::thread::spawn(move || {
        let _ = tx.send(Region::open(&f).map(drop));
    });
    let result = rx.recv_timeout(LIMIT).expect("open of a FIFO blocked");
    assert!(matches!(result, Err(Error::Io { .. })), "{result:?}");
}

#[test]
fn missing_paths_are_not_found() {
    let dir = TestDir::new("missing");
    let path = dir.join("nothing");
    match Region::open(&path) {
        Err(Error::NotFound(p)) => assert_eq!(p, path),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(
        Region::open(&path)
            .unwrap_err()
            .to_string()
            .contains("nothing")
    );
    assert!(matches!(Region::remove(&path), Err(Error::NotFound(_))));
    let name = ShmName::new("missing");
    assert!(matches!(Region::open(name.name()), Err(Error::NotFound(p)) if p == name.path()));
    // Creating in a missing directory is a system error, not a panic.
    let deep = dir.join("no/such/dir/r");
    assert!(matches!(Region::create(&deep, SIZE), Err(Error::Io { .. })));
    assert!(matches!(Region::open(&deep), Err(Error::NotFound(_))));
    // An empty path is refused.
    assert!(Region::open("").is_err());
    assert!(Region::create("", SIZE).is_err());
}

#[test]
fn unusable_sizes_are_invalid_size_and_leave_no_file() {
    let dir = TestDir::new("size");
    let path = dir.join("r");
    // The default directory (16 objects, 32 slots) and process table (1024 slots) need the
    // header, 32 entries and 1024 process slots, plus room for one 128-byte object.
    let least = layout::heap_offset(32, layout::DEFAULT_PROCS) as usize + 128;
    for size in [0, 1, 255, 256, least - 1] {
        match Region::create(&path, size) {
            Err(Error::InvalidSize { size: s, .. }) => assert_eq!(s, size as u64),
            other => panic!("size {size}: expected InvalidSize, got {other:?}"),
        }
        assert!(matches!(
            Region::open_or_create(&path, size),
            Err(Error::InvalidSize { .. })
        ));
        assert!(matches!(
            Region::anonymous(size),
            Err(Error::InvalidSize { .. })
        ));
        assert!(!path.exists(), "a failed create left a file");
    }
    assert!(matches!(
        Region::options().capacity(0).create(&path, SIZE),
        Err(Error::InvalidSize { .. })
    ));
    assert!(matches!(
        Region::options().capacity(usize::MAX).anonymous(SIZE),
        Err(Error::InvalidSize { .. })
    ));
    assert!(matches!(
        Region::options().capacity(1000).create(&path, SIZE),
        Err(Error::InvalidSize { .. })
    ));
    assert!(matches!(
        Region::anonymous(usize::MAX),
        Err(Error::InvalidSize { .. })
    ));
    for procs in [0, 1025, usize::MAX] {
        assert!(
            matches!(
                Region::options().max_processes(procs).create(&path, SIZE),
                Err(Error::InvalidSize { .. })
            ),
            "max_processes({procs})"
        );
    }
    assert!(!path.exists());
    assert_eq!(
        fs::read_dir(dir.path()).unwrap().count(),
        0,
        "leftover files"
    );
    let msg = Region::create(&path, 10).unwrap_err().to_string();
    assert!(msg.contains("10"), "{msg}");

    // The least size works, and holds exactly one 128-byte object.
    let region = Region::create(&path, least).unwrap();
    assert_eq!(region.free_bytes(), 128);
    region.lock("only").unwrap();
    assert!(matches!(
        region.lock("second"),
        Err(Error::OutOfSpace { .. })
    ));
    // A smaller process table makes a smaller least size.
    let small = layout::heap_offset(32, 1) as usize + 128;
    assert!(small < least);
    assert!(matches!(
        Region::options().max_processes(1).anonymous(small - 1),
        Err(Error::InvalidSize { .. })
    ));
    let region = Region::options().max_processes(1).anonymous(small).unwrap();
    assert_eq!(region.free_bytes(), 128);
}

/// An allocation lock word left held: by a dead process (its token names a process-table slot
/// whose generation moved on) it is taken over and creation goes on; by someone the library
/// cannot declare dead, creation gives up with `AllocationTimeout` instead of hanging. Lookups
/// of existing objects never need the lock.
#[test]
fn a_held_allocation_lock_is_taken_over_or_reported_never_a_hang() {
    let dir = TestDir::new("alloc-lock");
    let real = make_region(&dir, "real");
    assert_eq!(read_u32(&real, layout::ALLOC_LOCK), 0);

    // Slot 7, generation 3: slot 7 was never claimed, so that holder is certainly gone.
    let path = copy(&dir, &real, "dead-holder");
    write_u32(&path, layout::ALLOC_LOCK, (3 << 10) | 7);
    let region = Region::open(&path).unwrap();
    let fresh = region
        .value::<u32>("fresh", 5)
        .expect("a dead inserter is taken over");
    assert_eq!(fresh.load().unwrap(), 5);
    assert_eq!(
        read_u32(&path, layout::ALLOC_LOCK),
        0,
        "the lock was not freed"
    );
    region.lock("another").unwrap();

    // Generation 0 is what an unregistered process locks with: it cannot be declared dead.
    let path = copy(&dir, &real, "stuck");
    write_u32(&path, layout::ALLOC_LOCK, 1);
    let region = Region::open(&path).unwrap();
    assert_eq!(
        region.value::<u64>("victim", 0).unwrap().load().unwrap(),
        42
    );
    let start = Instant::now();
    match region.lock("new") {
        Err(Error::AllocationTimeout { waited }) => {
            assert!(start.elapsed() >= waited, "gave up early");
            assert!(waited >= Duration::from_secs(1), "{waited:?}");
        }
        other => panic!("expected AllocationTimeout, got {other:?}"),
    }
    assert!(region.objects().unwrap().iter().all(|o| o.name != "new"));
}

/// Two directory entries damaged into sharing bytes: a process never gets handles of two
/// different objects on the same memory.
#[test]
fn entries_damaged_into_overlapping_objects_are_refused() {
    let dir = TestDir::new("overlap");
    let real = make_region(&dir, "real");
    let array_entry = find_entry(&real, "array");
    let array_offset = read_u64(&real, array_entry + layout::E_OFFSET);

    for first_the_array in [true, false] {
        let path = copy(&dir, &real, &format!("overlap-{first_the_array}"));
        let victim = find_entry(&path, "victim");
        write_u64(&path, victim + layout::E_OFFSET, array_offset);
        let region = Region::open(&path).unwrap();
        if first_the_array {
            let array = region.array::<u16>("array", &[0; 3]).unwrap();
            corrupt_reason(region.value::<u64>("victim", 0));
            assert_eq!(array.to_vec().unwrap(), [1, 2, 3]);
        } else {
            region.value::<u64>("victim", 0).unwrap();
            corrupt_reason(region.array::<u16>("array", &[0; 3]));
        }
        // The same object again is fine.
        assert!(!region.lock("bystander").unwrap().is_locked());
    }
}
