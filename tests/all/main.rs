//! shmsync's integration tests: one test crate, a module per topic.
//!
//! Cross-process behaviour is tested with real processes. Most tests re-execute this very test
//! binary in a helper role (see [`common::Child`] and [`child::child_entry`]): the helper opens
//! the region by path, plays its part, and reports through the region and its exit status. The
//! tests of anonymous regions fork instead (see [`fork`]), since an anonymous region cannot be
//! reached by re-executing.
//!
//! Every test uses its own region path (a fresh directory under the temp dir, or a unique name in
//! `/dev/shm`), removed at the end by a drop guard. Waits are bounded generously and nothing
//! asserts a speed: only results, and lower bounds for timeouts.

mod barrier;
mod child;
mod common;
mod condition;
mod death;
mod directory;
mod event;
mod files;
mod fork;
mod layers;
mod lock;
mod owner_death;
mod queue;
mod raw;
mod region;
mod rlock;
mod rwlock;
mod semaphore;
mod value;
