//! How snapshots are shown: a stable human table, and JSON (schema version [`SCHEMA_VERSION`],
//! documented in `cli/README.md`).

use serde_json::{Value as Json, json};
use shmsync::Kind;
use shmsync::inspect::{Holder, Holds, Liveness, LockState, Scalar, Snapshot, State};
use std::fmt::Write;

/// The version of the JSON output's schema. Adding fields keeps it; renaming, removing or
/// changing the meaning of one bumps it.
pub const SCHEMA_VERSION: u32 = 1;

/// A kind's name as printed and in JSON.
pub fn kind_name(kind: Kind) -> String {
    format!("{kind:?}")
}

fn liveness(alive: Liveness) -> &'static str {
    match alive {
        Liveness::Alive => "alive",
        Liveness::Dead => "dead",
        _ => "unknown",
    }
}

/// "pid 1234 (alive)", "pid 1234 (dead)", "an unregistered process", "slot 3 (dead)".
pub fn holder_text(h: &Holder) -> String {
    match (h.pid, h.slot) {
        (Some(pid), _) => format!("pid {pid} ({})", liveness(h.alive)),
        (None, Some(slot)) => format!("a process of slot {slot} ({})", liveness(h.alive)),
        (None, None) => "an unregistered process".to_string(),
    }
}

fn lock_text(lock: &LockState) -> String {
    match lock {
        LockState::Free => "free".to_string(),
        LockState::Held {
            holder,
            waiters,
            poisoned,
        } => {
            let mut s = format!("held by {}", holder_text(holder));
            if *poisoned {
                s.push_str(", poisoned");
            }
            if *waiters {
                s.push_str(", waiters");
            }
            s
        }
        LockState::NotRecoverable => "broken (not recoverable)".to_string(),
        _ => "unknown".to_string(),
    }
}

fn scalar_text(value: &Scalar) -> String {
    match value {
        Scalar::Unsigned(v) => v.to_string(),
        Scalar::Signed(v) => v.to_string(),
        Scalar::Float(v) => v.to_string(),
        _ => "?".to_string(),
    }
}

fn holds_text(holds: &[Holds], what: &str) -> String {
    holds
        .iter()
        .map(|h| {
            let mut s = format!("{} {what} {}", h.held, holder_text(&h.holder));
            if h.in_flight > 0 {
                s.push_str(&format!(" +{} in flight", h.in_flight));
            }
            if h.recovering {
                s.push_str(" (being recovered)");
            }
            s
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// One object's state in words.
pub fn state_text(state: &State) -> String {
    match state {
        State::Lock(lock) => lock_text(lock),
        State::RLock {
            lock,
            count,
            owner_tid,
        } => match (lock, owner_tid) {
            (LockState::Held { .. }, Some(tid)) => {
                format!("{}, thread {tid}, count {count}", lock_text(lock))
            }
            _ => lock_text(lock),
        },
        State::Locked { lock, value } => match value {
            Some(v) => format!("{}, value {}", lock_text(lock), scalar_text(v)),
            None => lock_text(lock),
        },
        State::Raw { value } => match value {
            Some(v) => format!("value {}", scalar_text(v)),
            None => "-".to_string(),
        },
        State::Semaphore {
            permits,
            broken,
            bound,
            sleepers,
            holders,
        } => {
            let mut s = if *broken {
                "broken (needs repair --value N)".to_string()
            } else {
                format!("{permits} free")
            };
            if let Some(bound) = bound {
                s.push_str(&format!(" of {bound}"));
            }
            if *sleepers > 0 {
                s.push_str(&format!(", {sleepers} waiting"));
            }
            if !holders.is_empty() {
                s.push_str(&format!("; held: {}", holds_text(holders, "by")));
            }
            s
        }
        State::Condition {
            lock,
            shared_lock,
            sleepers,
        } => {
            let mut s = match (lock, shared_lock) {
                (Some(lock), _) => format!("lock {}", lock_text(lock)),
                (None, Some(name)) => format!("on RLock {name:?}"),
                (None, None) => String::new(),
            };
            s.push_str(&format!(", {sleepers} waiting"));
            s
        }
        State::Event { set, waiters } => {
            let mut s = if *set { "set" } else { "clear" }.to_string();
            if *waiters {
                s.push_str(", waiters");
            }
            s
        }
        State::Barrier {
            parties,
            arrived,
            round,
            broken,
        } => {
            let mut s = format!("{arrived} of {parties} arrived, round {round}");
            if *broken {
                s.push_str(", broken");
            }
            s
        }
        State::RwLock {
            writer,
            readers,
            writers_waiting,
            readers_waiting,
            poisoned,
            broken,
            holders,
        } => {
            let mut s = match writer {
                Some(w) => format!("write-locked by {}", holder_text(w)),
                None if *readers > 0 => format!("{readers} readers"),
                None => "free".to_string(),
            };
            if *poisoned {
                s.push_str(", poisoned");
            }
            if *broken {
                s.push_str(", broken (no repair yet)");
            }
            if *writers_waiting {
                s.push_str(", writers waiting");
            }
            if *readers_waiting {
                s.push_str(", readers waiting");
            }
            if !holders.is_empty() {
                s.push_str(&format!("; read by: {}", holds_text(holders, "by")));
            }
            s
        }
        State::Queue {
            capacity,
            items,
            producers_asleep,
            consumers_asleep,
        } => {
            let mut s = format!("{items} of {capacity} items");
            if *producers_asleep > 0 {
                s.push_str(&format!(", {producers_asleep} producers waiting"));
            }
            if *consumers_asleep > 0 {
                s.push_str(&format!(", {consumers_asleep} consumers waiting"));
            }
            s
        }
        _ => "(a kind this build cannot show)".to_string(),
    }
}

/// Pads the columns of `rows` to a table (the last column is not padded).
pub fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}  ", width = widths[c]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `inspect`'s human output.
pub fn snapshot_text(s: &Snapshot) -> String {
    let mut out = format!(
        "region {}: {} bytes, {} of {} objects, {} bytes free, owner uid {}\n\n",
        s.path.display(),
        s.size,
        s.objects.len(),
        s.capacity,
        s.free_bytes,
        s.owner_uid
    );
    let mut rows = vec![vec![
        "NAME".to_string(),
        "KIND".to_string(),
        "TYPE".to_string(),
        "LEN".to_string(),
        "STATE".to_string(),
    ]];
    for o in &s.objects {
        let has_elements = matches!(
            o.kind,
            Kind::Value | Kind::Array | Kind::RawValue | Kind::RawArray | Kind::RwLock
        );
        rows.push(vec![
            o.name.clone(),
            kind_name(o.kind),
            if o.type_name.is_empty() {
                "-".to_string()
            } else {
                o.type_name.clone()
            },
            if has_elements || o.kind == Kind::Barrier {
                o.len.to_string()
            } else {
                "-".to_string()
            },
            state_text(&o.state),
        ]);
    }
    if s.objects.is_empty() {
        out.push_str("(no objects)\n");
    } else {
        out.push_str(&table(&rows));
    }
    out.push_str(&format!(
        "\nprocesses ({} of {} slots used):\n",
        s.processes.len(),
        s.process_slots
    ));
    let mut rows = vec![vec![
        "SLOT".to_string(),
        "PID".to_string(),
        "ALIVE".to_string(),
    ]];
    for p in &s.processes {
        rows.push(vec![
            p.slot.to_string(),
            p.pid.to_string(),
            match p.alive {
                Some(true) => "yes",
                Some(false) => "no",
                None => "unknown",
            }
            .to_string(),
        ]);
    }
    if s.processes.is_empty() {
        out.push_str("(none)\n");
    } else {
        out.push_str(&table(&rows));
    }
    out
}

fn holder_json(h: &Holder) -> Json {
    json!({
        "token": h.token,
        "slot": h.slot,
        "pid": h.pid,
        "alive": liveness(h.alive),
    })
}

fn lock_json(lock: &LockState) -> Json {
    match lock {
        LockState::Held {
            holder,
            waiters,
            poisoned,
        } => json!({
            "status": "held",
            "holder": holder_json(holder),
            "waiters": waiters,
            "poisoned": poisoned,
        }),
        LockState::NotRecoverable => json!({
            "status": "not_recoverable",
            "holder": null,
            "waiters": false,
            "poisoned": false,
        }),
        _ => json!({"status": "free", "holder": null, "waiters": false, "poisoned": false}),
    }
}

fn scalar_json(value: &Option<Scalar>) -> Json {
    match value {
        Some(Scalar::Unsigned(v)) => json!(v),
        Some(Scalar::Signed(v)) => json!(v),
        Some(Scalar::Float(v)) => json!(v),
        _ => Json::Null,
    }
}

fn holds_json(holds: &[Holds]) -> Json {
    holds
        .iter()
        .map(|h| {
            json!({
                "holder": holder_json(&h.holder),
                "held": h.held,
                "in_flight": h.in_flight,
                "recovering": h.recovering,
            })
        })
        .collect()
}

fn state_json(state: &State) -> Json {
    match state {
        State::Lock(lock) => json!({ "lock": lock_json(lock) }),
        State::RLock {
            lock,
            count,
            owner_tid,
        } => json!({ "lock": lock_json(lock), "count": count, "owner_tid": owner_tid }),
        State::Locked { lock, value } => {
            json!({ "lock": lock_json(lock), "value": scalar_json(value) })
        }
        State::Raw { value } => json!({ "value": scalar_json(value) }),
        State::Semaphore {
            permits,
            broken,
            bound,
            sleepers,
            holders,
        } => json!({
            "permits": permits,
            "broken": broken,
            "bound": bound,
            "sleepers": sleepers,
            "holders": holds_json(holders),
        }),
        State::Condition {
            lock,
            shared_lock,
            sleepers,
        } => json!({
            "lock": lock.as_ref().map(lock_json),
            "shared_lock": shared_lock,
            "sleepers": sleepers,
        }),
        State::Event { set, waiters } => json!({ "set": set, "waiters": waiters }),
        State::Barrier {
            parties,
            arrived,
            round,
            broken,
        } => json!({
            "parties": parties,
            "arrived": arrived,
            "round": round,
            "broken": broken,
        }),
        State::RwLock {
            writer,
            readers,
            writers_waiting,
            readers_waiting,
            poisoned,
            broken,
            holders,
        } => json!({
            "writer": writer.as_ref().map(holder_json),
            "readers": readers,
            "writers_waiting": writers_waiting,
            "readers_waiting": readers_waiting,
            "poisoned": poisoned,
            "broken": broken,
            "holders": holds_json(holders),
        }),
        State::Queue {
            capacity,
            items,
            producers_asleep,
            consumers_asleep,
        } => json!({
            "capacity": capacity,
            "items": items,
            "producers_asleep": producers_asleep,
            "consumers_asleep": consumers_asleep,
        }),
        _ => json!({}),
    }
}

/// `inspect --json`.
pub fn snapshot_json(s: &Snapshot) -> Json {
    json!({
        "schema_version": SCHEMA_VERSION,
        "path": s.path.to_string_lossy(),
        "size": s.size,
        "owner_uid": s.owner_uid,
        "capacity": s.capacity,
        "free_bytes": s.free_bytes,
        "process_slots": s.process_slots,
        "objects": s.objects.iter().map(|o| json!({
            "name": o.name,
            "kind": kind_name(o.kind),
            "type": if o.type_name.is_empty() { None } else { Some(&o.type_name) },
            "len": o.len,
            "bytes": o.bytes,
            "state": state_json(&o.state),
        })).collect::<Vec<_>>(),
        "processes": s.processes.iter().map(|p| json!({
            "slot": p.slot,
            "generation": p.generation,
            "pid": p.pid,
            "alive": p.alive,
        })).collect::<Vec<_>>(),
    })
}
