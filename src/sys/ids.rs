//! Thread and process identity, cached per thread and refreshed after `fork`.

use std::cell::Cell;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

/// Bumped in every child right after `fork` (by the fork handler, see
/// [`install_fork_handler`](super::install_fork_handler)), so cached identities copied from
/// the parent are recognised as stale.
static FORK_GENERATION: AtomicU32 = AtomicU32::new(0);

/// The fork generation: bumped in every child right after `fork`.
#[inline]
pub(crate) fn fork_generation() -> u32 {
    FORK_GENERATION.load(Relaxed)
}

/// Called by the fork handler in a new child.
pub(super) fn note_fork() {
    FORK_GENERATION.fetch_add(1, Relaxed);
}

thread_local! {
    /// (fork generation, pid, tid); the generation `u32::MAX` means "not filled in yet".
    static IDS: Cell<(u32, u32, u32)> = const { Cell::new((u32::MAX, 0, 0)) };
}

/// The calling thread's (process id, thread id). A system call only the first time a thread
/// asks, and again after a fork (once the fork handler is installed, which every region does
/// when it is mapped).
#[inline]
pub(crate) fn ids() -> (u32, u32) {
    let generation = FORK_GENERATION.load(Relaxed);
    IDS.with(|ids| {
        let (g, pid, tid) = ids.get();
        if g == generation {
            return (pid, tid);
        }
        let pid = rustix::process::getpid().as_raw_nonzero().get() as u32;
        let tid = rustix::thread::gettid().as_raw_nonzero().get() as u32;
        ids.set((generation, pid, tid));
        (pid, tid)
    })
}
