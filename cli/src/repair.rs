//! `shmsync repair`: the explicit way back for a poisoned or broken object.
//!
//! What is wrong is read first from a snapshot (no lock, no write); the repair itself opens the
//! region as any user of it would (registering in its process table) and goes through the
//! library's own recovery: a lock is taken over from its dead holder (`OwnerDied`) and marked
//! consistent; a broken semaphore is given its free permits with `repair(value)`; a poisoned
//! `RwLock` is write-locked and marked consistent.

use crate::Failure;
use crate::render::{holder_text, kind_name, state_text};
use shmsync::inspect::{Liveness, LockState, ObjectState, Snapshot, State};
use shmsync::{Kind, Region, TryLockError};
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

/// How long a repair waits to take a lock over (death is noticed within about 25 ms).
const PATIENCE: Duration = Duration::from_secs(3);

/// What a repair will do.
enum Plan {
    /// Take the lock over from a dead holder (or from a poisoned state) and mark it consistent.
    Lock,
    /// `Semaphore::repair(value)`.
    Semaphore(u32),
    /// Write-lock a poisoned RwLock and mark it consistent.
    RwLock,
}

pub fn repair(region: &Path, name: &str, value: Option<u32>, yes: bool) -> Result<(), Failure> {
    let snapshot = Snapshot::open(region)?;
    let object = snapshot
        .objects
        .iter()
        .find(|o| o.name == name)
        .ok_or_else(|| {
            Failure(format!(
                "{} has no object named {name:?}",
                snapshot.path.display()
            ))
        })?;
    let what = format!("{} {name:?}", kind_name(object.kind));
    let Some(plan) = plan(object, &what, value)? else {
        return Ok(());
    };
    confirm(&what, &state_text(&object.state), yes)?;
    let region = Region::open(&snapshot.path)?;
    let done = match plan {
        Plan::Lock => repair_lock(&region, object)?,
        Plan::Semaphore(value) => {
            match object.kind {
                Kind::BoundedSemaphore => region.bounded_semaphore(name, value)?.repair(value)?,
                _ => region.semaphore(name, value)?.repair(value)?,
            }
            format!("set {value} free permits and forgot the dead processes' records")
        }
        Plan::RwLock => repair_rwlock(&region, object)?,
    };
    say!("repaired {what}: {done}");
    Ok(())
}

/// Decides what to do from the snapshot; `None` (after saying why) when there is nothing to do.
fn plan(object: &ObjectState, what: &str, value: Option<u32>) -> Result<Option<Plan>, Failure> {
    let lock = match &object.state {
        State::Lock(lock) | State::RLock { lock, .. } | State::Locked { lock, .. } => Some(lock),
        State::Condition {
            lock: Some(lock), ..
        } => Some(lock),
        _ => None,
    };
    if let Some(lock) = lock {
        return match lock {
            LockState::Free => {
                say!("{what} is free and not poisoned: nothing to repair");
                Ok(None)
            }
            LockState::NotRecoverable => Err(Failure(format!(
                "{what} is not recoverable: a holder that took it over from a dead one released \
                 it without marking it consistent, and the library has no way back from that; \
                 recreate the region"
            ))),
            LockState::Held { holder, .. } if holder.alive == Liveness::Dead => {
                Ok(Some(Plan::Lock))
            }
            LockState::Held {
                holder, poisoned, ..
            } => {
                if *poisoned {
                    Err(Failure(format!(
                        "{what} is poisoned and held by {}, which took it over from a dead \
                         holder: that process must repair the data and call mark_consistent \
                         (or exit, and then repair it here)",
                        holder_text(holder)
                    )))
                } else {
                    say!(
                        "{what} is held by {}: not damaged, nothing to repair",
                        holder_text(holder)
                    );
                    Ok(None)
                }
            }
            _ => Err(Failure(format!("{what}: a state this build cannot repair"))),
        };
    }
    match &object.state {
        State::Semaphore { broken: true, .. } => match value {
            Some(value) => Ok(Some(Plan::Semaphore(value))),
            None => Err(Failure(format!(
                "{what} is broken: nobody can tell how many permits are free; say it with \
                 --value N (the permits free now, with every live holder's permits out)"
            ))),
        },
        State::RwLock { broken: true, .. } => Err(Failure(format!(
            "{what} is broken (a reader died in the middle of changing the lock word, so the \
             reader count is unknown); the library has no repair for a broken RwLock yet: \
             recreate the object"
        ))),
        State::RwLock { poisoned: true, .. }
        | State::RwLock {
            writer: Some(_), ..
        } if rwlock_needs_repair(&object.state) => Ok(Some(Plan::RwLock)),
        State::Condition {
            shared_lock: Some(lock),
            ..
        } => {
            say!("{what} uses the RLock {lock:?}: repair that one");
            Ok(None)
        }
        _ => {
            say!("{what} is not poisoned or broken: nothing to repair");
            Ok(None)
        }
    }
}

/// A poisoned RwLock, or one write-locked by a dead writer.
fn rwlock_needs_repair(state: &State) -> bool {
    match state {
        State::RwLock {
            poisoned, writer, ..
        } => *poisoned || writer.is_some_and(|w| w.alive == Liveness::Dead),
        _ => false,
    }
}

/// Asks "repair X? [y/N]" on a terminal; refuses when nobody can be asked.
fn confirm(what: &str, state: &str, yes: bool) -> Result<(), Failure> {
    if yes {
        return Ok(());
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(Failure(format!(
            "not repairing {what} without confirmation: standard input is not a terminal \
             (pass --yes to repair anyway)"
        )));
    }
    print!("{what}: {state}\nrepair {what}? [y/N] ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Failure(format!("cannot read the answer: {e}")))?;
    if matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
        Ok(())
    } else {
        Err(Failure("not repaired".to_string()))
    }
}

/// Says what a takeover found.
fn taken<G>(
    result: Result<G, TryLockError<G>>,
    mark: impl FnOnce(G),
    what: &str,
) -> Result<String, Failure> {
    match result {
        Err(TryLockError::OwnerDied(died)) => {
            mark(died.into_guard());
            Ok("took the lock over from its dead holder and marked it consistent".to_string())
        }
        Ok(_) => Ok("someone else recovered it meanwhile: it is usable".to_string()),
        Err(TryLockError::WouldBlock) => Err(Failure(format!(
            "{what} is still held: it was not taken over within {PATIENCE:?}"
        ))),
        Err(TryLockError::NotRecoverable) => {
            Err(Failure(format!("{what} became not recoverable meanwhile")))
        }
    }
}

/// Runs `$body` with `$t` bound to the element type named `$name`, for the primitive types;
/// otherwise `$other`.
macro_rules! with_type {
    ($name:expr, $t:ident => $body:expr, $other:expr) => {
        match $name {
            "u8" => {
                type $t = u8;
                $body
            }
            "u16" => {
                type $t = u16;
                $body
            }
            "u32" => {
                type $t = u32;
                $body
            }
            "u64" => {
                type $t = u64;
                $body
            }
            "usize" => {
                type $t = usize;
                $body
            }
            "i8" => {
                type $t = i8;
                $body
            }
            "i16" => {
                type $t = i16;
                $body
            }
            "i32" => {
                type $t = i32;
                $body
            }
            "i64" => {
                type $t = i64;
                $body
            }
            "isize" => {
                type $t = isize;
                $body
            }
            "f32" => {
                type $t = f32;
                $body
            }
            "f64" => {
                type $t = f64;
                $body
            }
            _ => $other,
        }
    };
}

fn unsupported_type(object: &ObjectState) -> Failure {
    Failure(format!(
        "{} {:?} holds a {}: this command only knows primitive number types; repair it from \
         a program that knows the type (lock it, handle OwnerDied, mark_consistent)",
        kind_name(object.kind),
        object.name,
        object.type_name
    ))
}

fn repair_lock(region: &Region, object: &ObjectState) -> Result<String, Failure> {
    let name = object.name.as_str();
    let what = format!("{} {name:?}", kind_name(object.kind));
    match object.kind {
        Kind::Lock => {
            let lock = region.lock(name)?;
            taken(lock.try_lock_for(PATIENCE), |g| g.mark_consistent(), &what)
        }
        Kind::RLock => {
            let lock = region.rlock(name)?;
            taken(lock.try_lock_for(PATIENCE), |g| g.mark_consistent(), &what)
        }
        Kind::Condition => {
            let condition = region.condition(name)?;
            let lock = condition.rlock();
            taken(lock.try_lock_for(PATIENCE), |g| g.mark_consistent(), &what)
        }
        Kind::Value => with_type!(object.type_name.as_str(), T => {
            let value = region.value::<T>(name, Default::default())?;
            taken(value.try_lock_for(PATIENCE), |g| g.mark_consistent(), &what)
        }, Err(unsupported_type(object))),
        Kind::Array => with_type!(object.type_name.as_str(), T => {
            let init: Vec<T> = vec![Default::default(); object.len];
            let array = region.array::<T>(name, &init)?;
            taken(array.try_lock_for(PATIENCE), |g| g.mark_consistent(), &what)
        }, Err(unsupported_type(object))),
        _ => Err(Failure(format!("{what}: nothing this command can repair"))),
    }
}

fn repair_rwlock(region: &Region, object: &ObjectState) -> Result<String, Failure> {
    let name = object.name.as_str();
    let what = format!("RwLock {name:?}");
    with_type!(object.type_name.as_str(), T => {
        let lock = region.rwlock::<T>(name, Default::default())?;
        taken(lock.try_write_for(PATIENCE), |g| g.mark_consistent(), &what)
    }, Err(unsupported_type(object)))
}
