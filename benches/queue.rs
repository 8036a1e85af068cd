//! The queue, side by side with the alternatives, in one run: items per second from one
//! producer to one consumer, each pinned to its own CPU, with `u64` items, and the round trip
//! of one item there and back.
//!
//! Throughput cases (`N` items each, the producer timing from its first put until the
//! consumer says it got the last one):
//! - `shmsync_queue`: `Region::queue::<u64>` of 1024 slots, producer and consumer processes;
//! - `shmsync_byte_queue`: `Region::byte_queue` of 1024 slots of 8-byte messages, processes;
//! - `socketpair`: a Unix stream socketpair, one 8-byte `write` and `read_exact` per item;
//! - `pipe`: the same over a pipe;
//! - `crossbeam_array_queue`: crossbeam's in-process `ArrayQueue<u64>` of 1024 slots between
//!   two threads of one process, spinning when full or empty (the speed a shared-memory queue
//!   aims at);
//! - `python_mp_queue`: Python's `multiprocessing.Queue(1024)` of ints between two processes
//!   (`benches/python_bench.py --queue-only`, run once in the middle of the rounds).
//!
//! Round trip: the producer puts one item, the consumer takes it and puts it back through a
//! second queue (or writes it back), the producer takes it; the median over many trips.
//!
//! Every case runs once per round, rounds interleaved, and the median over rounds is reported,
//! with the range: on a shared machine the ratios within one run are what count. The figures
//! are printed as a table and written as JSON to `target/queue-bench.json` (or the file named
//! by `SHMSYNC_QUEUE_BENCH_OUT`), which `benches/report.py` renders into BENCHMARKS.md.
//!
//! Run: `cargo bench --bench queue` (about a minute).

use crossbeam_queue::ArrayQueue;
use shmsync::{Process, Region};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Items per throughput run of the fast cases.
const FAST_ITEMS: u64 = 2_000_000;
/// Items per throughput run of the cases that make a system call per item.
const SYSCALL_ITEMS: u64 = 200_000;
/// Rounds (every case once per round).
const ROUNDS: usize = 5;
/// Round trips timed per round-trip run.
const TRIPS: usize = 20_000;
const CAPACITY: usize = 1024;

fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set, and sched_getaffinity writes at most
    // its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

/// Pins the calling thread to `cpu` (if any).
fn pin(cpu: Option<usize>) {
    let Some(cpu) = cpu else { return };
    // SAFETY: as above; sched_setaffinity(0) applies to the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Where the producer and the consumer run.
#[derive(Clone, Copy)]
struct Cpus {
    producer: Option<usize>,
    consumer: Option<usize>,
}

/// Items per second through a shmsync queue between two processes, and its round trip (µs).
fn shmsync_queue(cpus: Cpus, n: u64) -> f64 {
    let region = Region::anonymous(1 << 22).expect("region");
    let q = region.queue::<u64>("q", CAPACITY).expect("queue");
    let ready = region.event("ready").expect("event");
    let done = region.event("done").expect("event");
    let child = Process::fork(|| {
        pin(cpus.consumer);
        ready.set();
        let mut sum = 0u64;
        for _ in 0..n {
            sum = sum.wrapping_add(q.get(true, None).expect("get"));
        }
        assert_eq!(sum, n * (n - 1) / 2, "items lost or changed");
        done.set();
    })
    .expect("fork");
    pin(cpus.producer);
    ready.wait(None);
    let start = Instant::now();
    for i in 0..n {
        q.put(i, true, None).expect("put");
    }
    done.wait(None);
    let elapsed = start.elapsed();
    assert_eq!(child.join(None).expect("join"), Some(0));
    n as f64 / elapsed.as_secs_f64()
}

fn shmsync_byte_queue(cpus: Cpus, n: u64) -> f64 {
    let region = Region::anonymous(1 << 22).expect("region");
    let q = region.byte_queue("q", CAPACITY, 8).expect("queue");
    let ready = region.event("ready").expect("event");
    let done = region.event("done").expect("event");
    let child = Process::fork(|| {
        pin(cpus.consumer);
        ready.set();
        let mut sum = 0u64;
        for _ in 0..n {
            let m = q.get(true, None).expect("get");
            sum = sum.wrapping_add(u64::from_le_bytes(m.try_into().expect("8 bytes")));
        }
        assert_eq!(sum, n * (n - 1) / 2, "messages lost or changed");
        done.set();
    })
    .expect("fork");
    pin(cpus.producer);
    ready.wait(None);
    let start = Instant::now();
    for i in 0..n {
        q.put(&i.to_le_bytes(), true, None).expect("put");
    }
    done.wait(None);
    let elapsed = start.elapsed();
    assert_eq!(child.join(None).expect("join"), Some(0));
    n as f64 / elapsed.as_secs_f64()
}

/// Items per second as 8-byte messages over a byte stream (`reader` in the child).
fn stream(
    cpus: Cpus,
    n: u64,
    mut writer: impl Write,
    mut reader: impl Read,
    done: &mut dyn FnMut(),
) -> f64 {
    let region = Region::anonymous(1 << 16).expect("region");
    let ready = region.event("ready").expect("event");
    let finished = region.event("done").expect("event");
    let child = Process::fork(|| {
        pin(cpus.consumer);
        ready.set();
        let mut sum = 0u64;
        let mut buf = [0u8; 8];
        for _ in 0..n {
            reader.read_exact(&mut buf).expect("read");
            sum = sum.wrapping_add(u64::from_le_bytes(buf));
        }
        assert_eq!(sum, n * (n - 1) / 2, "messages lost or changed");
        finished.set();
    })
    .expect("fork");
    pin(cpus.producer);
    ready.wait(None);
    let start = Instant::now();
    for i in 0..n {
        writer.write_all(&i.to_le_bytes()).expect("write");
    }
    finished.wait(None);
    let elapsed = start.elapsed();
    done();
    assert_eq!(child.join(None).expect("join"), Some(0));
    n as f64 / elapsed.as_secs_f64()
}

fn socketpair(cpus: Cpus, n: u64) -> f64 {
    let (a, b) = UnixStream::pair().expect("socketpair");
    stream(cpus, n, &a, &b, &mut || {})
}

fn pipe(cpus: Cpus, n: u64) -> f64 {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe(2) writes.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe");
    // SAFETY: two fresh descriptors that nothing else owns.
    let (r, w) = unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    };
    stream(cpus, n, &w, &r, &mut || {})
}

fn crossbeam(cpus: Cpus, n: u64) -> f64 {
    let q = Arc::new(ArrayQueue::<u64>::new(CAPACITY));
    let consumer = {
        let q = q.clone();
        std::thread::spawn(move || {
            pin(cpus.consumer);
            let mut sum = 0u64;
            for _ in 0..n {
                let item = loop {
                    match q.pop() {
                        Some(x) => break x,
                        None => std::hint::spin_loop(),
                    }
                };
                sum = sum.wrapping_add(item);
            }
            assert_eq!(sum, n * (n - 1) / 2);
            Instant::now()
        })
    };
    pin(cpus.producer);
    // Let the consumer start spinning.
    std::thread::sleep(Duration::from_millis(5));
    let start = Instant::now();
    for i in 0..n {
        let mut item = i;
        while let Err(back) = q.push(item) {
            item = back;
            std::hint::spin_loop();
        }
    }
    let end = consumer.join().expect("consumer");
    n as f64 / (end - start).as_secs_f64()
}

/// Median round trip in µs: `send` then `recv` in the parent, with an echo in the child.
fn median_us(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn shmsync_round_trip(cpus: Cpus) -> f64 {
    let region = Region::anonymous(1 << 20).expect("region");
    let there = region.queue::<u64>("there", CAPACITY).expect("queue");
    let back = region.queue::<u64>("back", CAPACITY).expect("queue");
    let trips = TRIPS + 100;
    let child = Process::fork(|| {
        pin(cpus.consumer);
        for _ in 0..trips {
            let x = there.get(true, None).expect("get");
            back.put(x, true, None).expect("put");
        }
    })
    .expect("fork");
    pin(cpus.producer);
    let mut samples = Vec::with_capacity(TRIPS);
    for i in 0..trips {
        let start = Instant::now();
        there.put(i as u64, true, None).expect("put");
        assert_eq!(back.get(true, None).expect("get"), i as u64);
        if i >= 100 {
            samples.push(start.elapsed().as_secs_f64() * 1e6);
        }
    }
    assert_eq!(child.join(None).expect("join"), Some(0));
    median_us(samples)
}

fn socketpair_round_trip(cpus: Cpus) -> f64 {
    let (mut a, mut b) = UnixStream::pair().expect("socketpair");
    let trips = TRIPS + 100;
    let child = Process::fork(|| {
        pin(cpus.consumer);
        let mut buf = [0u8; 8];
        for _ in 0..trips {
            b.read_exact(&mut buf).expect("read");
            b.write_all(&buf).expect("write");
        }
    })
    .expect("fork");
    pin(cpus.producer);
    let mut samples = Vec::with_capacity(TRIPS);
    let mut buf = [0u8; 8];
    for i in 0..trips {
        let start = Instant::now();
        a.write_all(&(i as u64).to_le_bytes()).expect("write");
        a.read_exact(&mut buf).expect("read");
        if i >= 100 {
            samples.push(start.elapsed().as_secs_f64() * 1e6);
        }
    }
    assert_eq!(child.join(None).expect("join"), Some(0));
    median_us(samples)
}

fn crossbeam_round_trip(cpus: Cpus) -> f64 {
    let there = Arc::new(ArrayQueue::<u64>::new(CAPACITY));
    let back = Arc::new(ArrayQueue::<u64>::new(CAPACITY));
    let trips = TRIPS + 100;
    let echo = {
        let (there, back) = (there.clone(), back.clone());
        std::thread::spawn(move || {
            pin(cpus.consumer);
            for _ in 0..trips {
                let x = loop {
                    match there.pop() {
                        Some(x) => break x,
                        None => std::hint::spin_loop(),
                    }
                };
                back.push(x).expect("room");
            }
        })
    };
    pin(cpus.producer);
    let mut samples = Vec::with_capacity(TRIPS);
    for i in 0..trips {
        let start = Instant::now();
        there.push(i as u64).expect("room");
        loop {
            if back.pop().is_some() {
                break;
            }
            std::hint::spin_loop();
        }
        if i >= 100 {
            samples.push(start.elapsed().as_secs_f64() * 1e6);
        }
    }
    echo.join().expect("echo");
    median_us(samples)
}

/// Python's figures, from `benches/python_bench.py --queue-only` (`None` without python3).
fn python() -> Option<(f64, f64)> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/python_bench.py");
    let out = std::process::Command::new("python3")
        .args([script, "--queue-only"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| -> Option<f64> {
        let at = text.find(&format!("\"{name}\": "))? + name.len() + 4;
        let rest = &text[at..];
        let end = rest.find([',', '}'])?;
        rest[..end].trim().parse().ok()
    };
    Some((field("queue_items_per_s")?, field("queue_round_trip_us")?))
}

fn stats(xs: &[f64]) -> (f64, f64, f64) {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is accepted and ignored.
    let cpus = allowed_cpus();
    let placement = if cpus.len() >= 2 {
        Cpus {
            producer: Some(cpus[0]),
            consumer: Some(cpus[1]),
        }
    } else {
        Cpus {
            producer: None,
            consumer: None,
        }
    };
    let pinned = cpus.len() >= 2;
    println!(
        "queue bench: producer and consumer {}; {ROUNDS} rounds",
        if pinned {
            format!("pinned to CPUs {} and {}", cpus[0], cpus[1])
        } else {
            "not pinned (fewer than two CPUs allowed)".to_string()
        }
    );
    type Case = (&'static str, fn(Cpus, u64) -> f64, u64);
    let cases: [Case; 5] = [
        ("shmsync_queue", shmsync_queue, FAST_ITEMS),
        ("shmsync_byte_queue", shmsync_byte_queue, FAST_ITEMS),
        ("crossbeam_array_queue", crossbeam, FAST_ITEMS),
        ("socketpair", socketpair, SYSCALL_ITEMS),
        ("pipe", pipe, SYSCALL_ITEMS),
    ];
    type Trip = (&'static str, fn(Cpus) -> f64);
    let trips: [Trip; 3] = [
        ("shmsync_queue", shmsync_round_trip),
        ("crossbeam_array_queue", crossbeam_round_trip),
        ("socketpair", socketpair_round_trip),
    ];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    let mut rts: Vec<Vec<f64>> = vec![Vec::new(); trips.len()];
    let mut py = None;
    let start = Instant::now();
    for round in 0..ROUNDS {
        for (i, (name, run, n)) in cases.iter().enumerate() {
            let r = run(placement, *n);
            println!("round {round}: {name}: {:.2} M items/s", r / 1e6);
            rates[i].push(r);
        }
        for (i, (name, run)) in trips.iter().enumerate() {
            let us = run(placement);
            println!("round {round}: {name} round trip: {us:.2} µs");
            rts[i].push(us);
        }
        if round == ROUNDS / 2 {
            py = python();
            match py {
                Some((r, us)) => println!(
                    "python multiprocessing.Queue: {:.3} M items/s, round trip {us:.1} µs",
                    r / 1e6
                ),
                None => println!("python3 not found: no Python figures"),
            }
        }
    }
    let elapsed = start.elapsed();

    println!("\n| case | items/s (median of {ROUNDS}) | range | round trip |");
    println!("|---|---|---|---|");
    let mut json = format!(
        "{{\"pinned\": {pinned}, \"rounds\": {ROUNDS}, \"seconds\": {:.1}, \"cases\": {{",
        elapsed.as_secs_f64()
    );
    for (i, (name, _, n)) in cases.iter().enumerate() {
        let (med, lo, hi) = stats(&rates[i]);
        let rt = trips
            .iter()
            .position(|t| t.0 == *name)
            .map(|j| stats(&rts[j]));
        println!(
            "| {name} | {:.2} M | {:.2}–{:.2} M | {} |",
            med / 1e6,
            lo / 1e6,
            hi / 1e6,
            rt.map_or("—".into(), |(m, _, _)| format!("{m:.2} µs"))
        );
        if i > 0 {
            json.push_str(", ");
        }
        json.push_str(&format!(
            "\"{name}\": {{\"items\": {n}, \"items_per_s\": {med:.0}, \"min\": {lo:.0}, \
             \"max\": {hi:.0}{}}}",
            rt.map_or(String::new(), |(m, l, h)| format!(
                ", \"round_trip_us\": {m:.3}, \"round_trip_min\": {l:.3}, \"round_trip_max\": {h:.3}"
            ))
        ));
    }
    if let Some((r, us)) = py {
        println!(
            "| python_mp_queue | {:.3} M | (5 runs) | {us:.1} µs |",
            r / 1e6
        );
        json.push_str(&format!(
            ", \"python_mp_queue\": {{\"items_per_s\": {r:.0}, \"round_trip_us\": {us:.3}}}"
        ));
    }
    json.push_str("}}");
    let shm = stats(&rates[0]).0;
    let ratio = |i: usize| shm / stats(&rates[i]).0;
    println!(
        "\nshmsync_queue / crossbeam {:.2}x, / socketpair {:.1}x, / pipe {:.1}x{}",
        ratio(2),
        ratio(3),
        ratio(4),
        py.map_or(String::new(), |(r, _)| format!(
            ", / Python {:.0}x",
            shm / r
        ))
    );
    let out = std::env::var_os("SHMSYNC_QUEUE_BENCH_OUT").map_or_else(
        || {
            std::path::PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/target/queue-bench.json"
            ))
        },
        std::path::PathBuf::from,
    );
    if let Err(e) = std::fs::write(&out, json + "\n") {
        eprintln!("write {}: {e}", out.display());
    } else {
        println!("wrote {}", out.display());
    }
}
