#![doc = include_str!("../README.md")]
#![deny(unsafe_op_in_unsafe_fn, missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

#[cfg(not(target_os = "linux"))]
compile_error!("shmsync supports Linux only: it relies on shared futexes and memfd");

/// The protocols, from their own crate (which forbids `unsafe` and has no dependencies).
use shmsync_protocol as protocol;

mod barrier;
mod condition;
mod error;
mod event;
mod int;
mod lock;
mod process;
mod queue;
mod raw;
mod region;
mod rlock;
mod rwlock;
mod semaphore;
mod sys;
mod transfer;
mod value;

pub use barrier::{Barrier, BrokenBarrier};
pub use bytemuck::{Pod, Zeroable};
pub use condition::{Condition, LockCondition};
pub use error::{Error, LockError, OwnerDied, Result, TryLockError};
pub use event::Event;
pub use int::AtomicInt;
pub use lock::{DataLock, Lock, LockGuard};
pub use process::{Entry, Entrypoint, Process, Report, run_if_spawned};
pub use queue::{ByteQueue, Queue, QueueGuard};
pub use raw::{RawArray, RawValue};
pub use region::inspect;
pub use region::{DEATH_CHECK_INTERVAL, Kind, ObjectInfo, REGION_FD_VAR, Region, RegionOptions};
pub use rlock::{Owner, RLock, RLockGuard};
pub use rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard};
pub use semaphore::{BoundedSemaphore, Permit, SEM_VALUE_MAX, Semaphore};
pub use transfer::{Decoder, Encoder, Transfer};
pub use value::{Array, ArrayGuard, DataGuard, Value, ValueGuard};
