//! `shmsync`: look at shmsync region files from outside — which process holds which lock, who
//! waits, what is poisoned or broken — collect files nobody uses, and repair damaged objects.
//!
//! `ls`, `inspect` and `watch` only look: they map the file read-only through
//! [`shmsync::inspect`], take no lock and write nothing. `gc` removes files through
//! [`shmsync::inspect::collect`]; `repair` opens the region as a user of it would.

/// `println!` through [`emit`]: a closed pipe ends the output quietly instead of panicking.
/// For functions that return `Result<_, Failure>`.
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::emit(&format!("{}\n", format_args!($($arg)*)))?
    };
}

mod render;
mod repair;

use clap::{Parser, Subcommand};
use shmsync::inspect::{self, Collected, Snapshot};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// Inspect, collect and repair shmsync region files.
#[derive(Parser)]
#[command(name = "shmsync", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the region files of a directory: size, objects, live processes, owner.
    Ls {
        /// The directory.
        #[arg(default_value = "/dev/shm")]
        dir: PathBuf,
        /// Print JSON (see cli/README.md for the schema).
        #[arg(long)]
        json: bool,
    },
    /// Show every object of a region and its state, and the process table.
    Inspect {
        /// The region file (a bare name means /dev/shm/NAME).
        region: PathBuf,
        /// Print JSON (see cli/README.md for the schema).
        #[arg(long)]
        json: bool,
    },
    /// Show `inspect`'s view, refreshed in place.
    Watch {
        /// The region file (a bare name means /dev/shm/NAME).
        region: PathBuf,
        /// Seconds between refreshes.
        #[arg(long, short = 'n', default_value_t = 1.0)]
        interval: f64,
        /// Stop after this many refreshes (default: until interrupted).
        #[arg(long)]
        count: Option<u64>,
    },
    /// Remove the region files of a directory that no process uses.
    Gc {
        /// The directory.
        #[arg(default_value = "/dev/shm")]
        dir: PathBuf,
        /// Only say what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
    /// Clear a poisoned or broken object, after asking.
    Repair {
        /// The region file (a bare name means /dev/shm/NAME).
        region: PathBuf,
        /// The object's name.
        object: String,
        /// For a broken semaphore: how many permits are free now.
        #[arg(long)]
        value: Option<u32>,
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

/// A failure to report: the message, and the exit code.
pub struct Failure(pub String);

impl From<shmsync::Error> for Failure {
    fn from(e: shmsync::Error) -> Failure {
        Failure(e.to_string())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Ls { dir, json } => ls(&dir, json),
        Command::Inspect { region, json } => inspect_cmd(&region, json),
        Command::Watch {
            region,
            interval,
            count,
        } => watch(&region, interval, count),
        Command::Gc { dir, dry_run } => gc(&dir, dry_run),
        Command::Repair {
            region,
            object,
            value,
            yes,
        } => repair::repair(&region, &object, value, yes),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message)) => {
            eprintln!("shmsync: error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The region files of `dir` (regular files that start with the magic number), sorted.
fn region_files(dir: &Path) -> Result<Vec<PathBuf>, Failure> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Failure(format!("cannot list {}: {e}", dir.display())))?;
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .filter(|p| inspect::is_region_file(p))
        .collect();
    out.sort();
    Ok(out)
}

/// A user name for `uid`, from /etc/passwd (the number if it is not there).
fn user_name(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| {
            passwd.lines().find_map(|line| {
                let mut fields = line.split(':');
                let name = fields.next()?;
                (fields.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_string())
            })
        })
        .unwrap_or_else(|| uid.to_string())
}

fn ls(dir: &Path, json: bool) -> Result<(), Failure> {
    let files = region_files(dir)?;
    let snapshots: Vec<(PathBuf, Result<Snapshot, shmsync::Error>)> = files
        .into_iter()
        .map(|p| {
            let s = Snapshot::open(&p);
            (p, s)
        })
        .collect();
    if json {
        let regions: Vec<serde_json::Value> = snapshots
            .iter()
            .map(|(path, s)| match s {
                Ok(s) => serde_json::json!({
                    "path": path.to_string_lossy(),
                    "size": s.size,
                    "objects": s.objects.len(),
                    "live_processes": s.live_processes().count(),
                    "owner_uid": s.owner_uid,
                    "owner": user_name(s.owner_uid),
                    "error": null,
                }),
                Err(e) => serde_json::json!({
                    "path": path.to_string_lossy(),
                    "size": null,
                    "objects": null,
                    "live_processes": null,
                    "owner_uid": null,
                    "owner": null,
                    "error": e.to_string(),
                }),
            })
            .collect();
        let out = serde_json::json!({
            "schema_version": render::SCHEMA_VERSION,
            "dir": dir.to_string_lossy(),
            "regions": regions,
        });
        return emit(&format!("{out:#}\n"));
    }
    let mut rows = vec![
        ["PATH", "SIZE", "OBJECTS", "LIVE", "OWNER"]
            .map(String::from)
            .to_vec(),
    ];
    for (path, s) in &snapshots {
        rows.push(match s {
            Ok(s) => vec![
                path.display().to_string(),
                s.size.to_string(),
                s.objects.len().to_string(),
                s.live_processes().count().to_string(),
                user_name(s.owner_uid),
            ],
            Err(e) => vec![path.display().to_string(), format!("error: {e}")],
        });
    }
    if snapshots.is_empty() {
        emit(&format!("no region files in {}\n", dir.display()))
    } else {
        emit(&render::table(&rows))
    }
}

/// Writes `text` to standard output; a reader that went away (`| head`) ends the output
/// quietly.
pub(crate) fn emit(text: &str) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Failure(format!("cannot write the output: {e}")))
        }
        _ => Ok(()),
    }
}

/// A snapshot with its objects sorted by name, as both outputs show them.
fn sorted(mut snapshot: Snapshot) -> Snapshot {
    snapshot.objects.sort_by(|a, b| a.name.cmp(&b.name));
    snapshot
}

fn inspect_cmd(region: &Path, json: bool) -> Result<(), Failure> {
    let snapshot = sorted(Snapshot::open(region)?);
    if json {
        emit(&format!("{:#}\n", render::snapshot_json(&snapshot)))
    } else {
        emit(&render::snapshot_text(&snapshot))
    }
}

fn watch(region: &Path, interval: f64, count: Option<u64>) -> Result<(), Failure> {
    if !(interval.is_finite() && interval >= 0.0) {
        return Err(Failure(format!("bad interval {interval}")));
    }
    let interval = Duration::from_secs_f64(interval.min(86_400.0));
    let mut shown = 0u64;
    loop {
        let body = match Snapshot::open(region) {
            Ok(s) => render::snapshot_text(&sorted(s)),
            Err(e) => format!("{e}\n"),
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        // Home the cursor, clear the screen, as top does.
        emit(&format!(
            "\x1b[H\x1b[2J{} (every {:.1}s; at {now} s since the epoch; ctrl-C to stop)\n\n{body}",
            region.display(),
            interval.as_secs_f64()
        ))?;
        shown += 1;
        if count.is_some_and(|c| shown >= c) {
            return Ok(());
        }
        std::thread::sleep(interval);
    }
}

fn gc(dir: &Path, dry_run: bool) -> Result<(), Failure> {
    let (mut removed, mut kept, mut skipped) = (0, 0, 0);
    for path in region_files(dir)? {
        let shown = path.display();
        match inspect::collect(&path, dry_run) {
            Ok(Collected::Removed) => {
                removed += 1;
                say!("removed {shown}");
            }
            Ok(Collected::Unused) => {
                removed += 1;
                say!("would remove {shown}");
            }
            Ok(Collected::InUse) => {
                kept += 1;
                say!("kept {shown}: in use");
            }
            Ok(Collected::Leased) => {
                kept += 1;
                say!("kept {shown}: a live process is registered");
            }
            Ok(Collected::Replaced) => {
                kept += 1;
                say!("kept {shown}: replaced meanwhile");
            }
            Ok(other) => {
                kept += 1;
                say!("kept {shown}: {other:?}");
            }
            Err(shmsync::Error::NotFound(_)) => {}
            Err(e) => {
                skipped += 1;
                say!("skipped {shown}: {e}");
            }
        }
    }
    let verb = if dry_run { "would remove" } else { "removed" };
    say!("{verb} {removed}, kept {kept}, skipped {skipped}");
    Ok(())
}
