//! Running the models, and the child processes of the mutation checks.
//!
//! A mutation check re-executes the current test binary for one "child" test with
//! [`MUTATION_ENV`] set, and asserts that the child failed: loom aborts the process when it
//! finds a deadlock, so `#[should_panic]` cannot catch every failure. A child test runs its
//! model only when the variable is set, and passes at once otherwise.

use crate::Mutation;
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// The environment variable that selects the faults of a child test, as parsed by
/// [`Faults::parse`].
pub const MUTATION_ENV: &str = "SHMSYNC_LOOM_MUTATION";

/// How long a child may search before the check gives up on it.
pub const CHILD_TIME_LIMIT: Duration = Duration::from_secs(150);

/// Which [`Mutation`] each named word of a model carries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// `(word name or None for every word, mutation)`; the last matching entry wins.
    entries: Vec<(Option<String>, Mutation)>,
}

impl Faults {
    /// No fault on any word.
    pub fn none() -> Faults {
        Faults::default()
    }

    /// Parses `mutation` (every word) or a comma-separated list of `word=mutation`, e.g.
    /// `owner=drop-zero-stores` or `lock=relaxed-ordering,count=drop-stores`.
    pub fn parse(spec: &str) -> Result<Faults, String> {
        let mut entries = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let entry = match part.split_once('=') {
                Some((word, m)) => (Some(word.trim().to_owned()), m.trim().parse()?),
                None => (None, part.parse()?),
            };
            entries.push(entry);
        }
        Ok(Faults { entries })
    }

    /// The faults of a child test: `None` when [`MUTATION_ENV`] is unset or empty (the child
    /// test then passes without running its model). Panics on a malformed value.
    pub fn from_env() -> Option<Faults> {
        let spec = std::env::var(MUTATION_ENV).ok()?;
        if spec.trim().is_empty() {
            return None;
        }
        match Faults::parse(&spec) {
            Ok(faults) => Some(faults),
            Err(e) => panic!("{MUTATION_ENV}={spec:?}: {e}"),
        }
    }

    /// The mutation the word called `word` carries.
    pub fn on(&self, word: &str) -> Mutation {
        self.entries
            .iter()
            .rev()
            .find(|(w, _)| w.as_deref().is_none_or(|w| w == word))
            .map_or(Mutation::None, |&(_, m)| m)
    }
}

/// Explores every execution of `model` with at most `preemptions` preemptions per execution
/// and returns how many executions that was. The bound is set here, so no
/// `LOOM_MAX_PREEMPTIONS` is needed.
pub fn check<F>(preemptions: usize, model: F) -> usize
where
    F: Fn() + Sync + Send + 'static,
{
    let executions = Arc::new(AtomicUsize::new(0));
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(preemptions);
    let counted = executions.clone();
    let start = Instant::now();
    builder.check(move || {
        counted.fetch_add(1, Relaxed);
        model();
    });
    let executions = executions.load(Relaxed);
    println!(
        "explored {executions} executions (preemption bound {preemptions}) in {:?}",
        start.elapsed()
    );
    executions
}

/// Runs the test `child_test` of the current test binary in a child process with
/// [`MUTATION_ENV`] set to `faults`, and asserts that it failed (a non-zero exit or a signal)
/// and that its output mentions one of `expected`. Returns the child's wall time.
pub fn expect_caught(child_test: &str, faults: &str, expected: &[&str]) -> Duration {
    Faults::parse(faults).expect("bad fault spec");
    let start = Instant::now();
    let (status, output) = run_child(child_test, faults);
    let elapsed = start.elapsed();
    let status = status.unwrap_or_else(|| {
        panic!(
            "{child_test} with {faults}: no verdict within {CHILD_TIME_LIMIT:?}; output:\n{output}"
        )
    });
    assert!(
        output.contains("running 1 test"),
        "{child_test} with {faults}: the child did not run exactly one test; output:\n{output}"
    );
    assert!(
        !status.success(),
        "{child_test} with {faults}: the mutation was NOT caught (the child passed in \
         {elapsed:?}); output:\n{output}"
    );
    assert!(
        expected.iter().any(|e| output.contains(e)),
        "{child_test} with {faults}: the child failed ({status}), but its output mentions none \
         of {expected:?}; output:\n{output}"
    );
    let first_panic = output
        .lines()
        .skip_while(|l| !l.contains("panicked at"))
        .nth(1)
        .unwrap_or("");
    println!("{child_test} with {faults}: caught in {elapsed:?} ({status}): {first_panic}");
    elapsed
}

/// Runs one test of the current binary with the faults set; returns its exit status (`None`
/// if it was killed for running past [`CHILD_TIME_LIMIT`]) and its stdout and stderr.
fn run_child(child_test: &str, faults: &str) -> (Option<std::process::ExitStatus>, String) {
    let exe = std::env::current_exe().expect("current_exe");
    let mut child = Command::new(exe)
        .args(["--exact", child_test, "--nocapture", "--test-threads=1"])
        .env(MUTATION_ENV, faults)
        // A loom failure report with backtraces is long and slow to produce.
        .env_remove("RUST_BACKTRACE")
        .env_remove("LOOM_LOG")
        .env_remove("LOOM_LOCATION")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the child test");

    // Drain both pipes on their own threads so a chatty child cannot block on a full pipe.
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });

    let deadline = Instant::now() + CHILD_TIME_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            // Our own child, by its handle.
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = format!(
        "--- stdout ---\n{}\n--- stderr ---\n{}",
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default()
    );
    (status, output)
}

/// A one-shot signal between loom threads, for test scaffolding ("B has tried, A may release
/// now") without a spin loop, which would multiply the executions loom explores.
#[derive(Debug, Default)]
pub struct Signal {
    set: loom::sync::Mutex<bool>,
    changed: loom::sync::Condvar,
}

impl Signal {
    /// An unset signal (a loom object: create it inside the model).
    pub fn new() -> Signal {
        Signal::default()
    }

    /// Sets the signal and wakes the waiter (Release, through the mutex).
    pub fn set(&self) {
        *self.set.lock().unwrap() = true;
        self.changed.notify_all();
    }

    /// Blocks until the signal is set (Acquire, through the mutex).
    pub fn wait(&self) {
        let mut set = self.set.lock().unwrap();
        while !*set {
            set = self.changed.wait(set).unwrap();
        }
    }
}
