//! What the examples share on top of [`shmsync::Process`]: waiting for children and turning
//! any failure (an error, a panic, a signal) into an error of the parent, and killing a child
//! with SIGKILL to show what happens when a process dies holding something. No `unsafe`: the
//! processes are `shmsync::Process`es.
//! (Not an example itself: cargo only builds `examples/*.rs` and `examples/*/main.rs`.)

// Each example uses the helpers it needs.
#![allow(dead_code)]

use shmsync::Process;
use std::error::Error;

/// Waits for every child; an error (the first one) unless all exited with status 0.
pub fn wait_all(children: &[Process]) -> Result<(), Box<dyn Error>> {
    let mut first_error = None;
    for child in children {
        let result = match child.join(None)? {
            Some(0) => Ok(()),
            Some(code) if code < 0 => Err(format!(
                "child {} was killed by signal {}",
                child.pid(),
                -code
            )),
            code => Err(format!("child {} failed: exit code {code:?}", child.pid())),
        };
        if let Err(e) = result {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), |e| Err(e.into()))
}

/// Kills `child` with SIGKILL (a death no code of the child sees coming: no destructor, no
/// unwinding) and reaps it; an error unless SIGKILL is what ended it.
pub fn kill_and_reap(child: &Process) -> Result<(), Box<dyn Error>> {
    child.kill()?;
    match child.join(None)? {
        Some(-9) => Ok(()),
        code => Err(format!(
            "child {} was not killed by SIGKILL: exit code {code:?}",
            child.pid()
        )
        .into()),
    }
}
