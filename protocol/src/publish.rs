//! One-way publication: a writer fills a record with plain writes, then stores a state word
//! with Release ordering; a reader that loads that state with Acquire ordering sees the whole
//! record. Used for the region header (written once by the creator before anyone can open the
//! file) and for directory entries (written by an inserter while other processes look names up
//! without taking any lock).
//!
//! A record is never un-published, so a reader that saw it published may keep using what it read.

use crate::word::Word;
use std::sync::atomic::Ordering::{Acquire, Release};

/// Publishes a record whose fields have all been written: stores `ready` into `state`
/// (Release). Nobody sleeps on a record's state, so no wake is needed: a reader that finds the
/// record unpublished treats it as absent.
pub fn publish<W: Word>(state: &W, ready: u32) {
    state.store(ready, Release);
}

/// Reads the state of a record (Acquire): if it equals the `ready` value passed to
/// [`publish`], every field written before publication is visible to the caller.
pub fn state<W: Word>(state: &W) -> u32 {
    state.load(Acquire)
}
