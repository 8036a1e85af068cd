//! Every system call the library makes, one file per job:
//!
//! - [`futex`]: shared futex wait and wake, and [`FutexWord`], the word the protocols run on;
//! - [`spin`]: the adaptive spin before a futex wait (and how many CPUs are online);
//! - [`ids`]: thread and process ids, and the fork generation;
//! - [`files`]: creating, publishing, opening and mapping region files and memfds;
//! - [`lease`]: liveness leases (byte locks the kernel drops when their process dies), the
//!   in-use byte that keeps `shmsync gc` off mapped region files, and the fork handler;
//! - [`child`]: child processes: thread count, fork, wait, signals, inherited descriptors.
//!
//! Dependencies point one way inside: `futex` → `spin`, `files` → `ids`, `lease` → `ids`.

mod child;
mod files;
mod futex;
mod ids;
mod lease;
mod spin;

pub(crate) use child::{
    Forked, close_inherited, dup_inherited, exit_now, fork, is_inherited, keep_across_exec,
    parent_pid, pidfd, pipe, readable_within, signal, thread_count, wait, wait_ended,
};
pub(crate) use files::{
    create_hidden, effective_uid, file_len, is_read_write, link_into_place, map, map_read_only,
    memfd, names, open_existing, open_read_only, owner, unlink,
};
pub(crate) use futex::{FutexWord, SharedU64};
pub(crate) use ids::{fork_generation, ids};
pub(crate) use lease::{
    Lease, any_lease_held, claim_unused, install_fork_handler, lease_held, mark_in_use,
    marked_in_use,
};
