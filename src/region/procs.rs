//! The process table: who may hold a lock, and whether they are still alive.
//!
//! Each process that takes a lock in a region first registers: it claims a slot of the table by
//! taking that slot's *lease* — an open-file-description byte lock on the region file, which the
//! kernel releases the moment the process dies, however it dies — and bumps the slot's
//! generation. Its lock token is `generation << SLOT_BITS | slot`. A waiter decides a holder is
//! dead when the slot's generation moved on (the slot was reclaimed) or nobody holds the lease.
//! pids are never trusted for this (they are reused, and zombies look alive).

use super::geometry::Geometry;
use super::layout::{PROC_ENTRY, SLOT_BITS, proc};
use super::mapping::Mapping;
use crate::error::{Error, Result};
use crate::protocol::Word;
use crate::protocol::mutex::TOKEN_MASK;
use crate::sys::{self, FutexWord, Lease};
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::time::{Duration, Instant};

const SLOT_MASK: u32 = (1 << SLOT_BITS) - 1;
/// The token of a process that could not register: generation 0, which no slot ever has once
/// claimed, so it is never mistaken for a registered process (nor declared dead).
pub(crate) const UNREGISTERED: u32 = 1;
const GENERATION_MASK: u32 = TOKEN_MASK >> SLOT_BITS;

/// This process's registration in one region.
struct Registration {
    /// Holds the lease; dropping it (or dying) releases the slot.
    _lease: Lease,
}

/// What a guard needs to end its hold: the token it was taken with, and the fork generation
/// it was taken in (a forked child's copy of the guard must leave the parent's lock alone).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Hold {
    pub(crate) token: u32,
    generation: u32,
}

impl Hold {
    /// Whether the hold belongs to this process (it was not inherited through a fork).
    #[inline]
    pub(crate) fn is_ours(self) -> bool {
        sys::fork_generation() == self.generation
    }
}

/// The region's process table, and this process's place in it.
pub(crate) struct ProcessTable {
    /// Where the table starts in the mapping.
    offset: usize,
    /// Its slots.
    slots: usize,
    /// This process's registration as `fork generation << 32 | token` (0: none yet); the
    /// lock-free fast path of [`ProcessTable::hold`].
    me: AtomicU64,
    registration: Mutex<Option<Registration>>,
    /// The last holder token found alive, and when (see [`ProcessTable::is_alive`]).
    alive_seen: AtomicU64,
}

/// The slot and generation a token names.
fn split(token: u32) -> (usize, u32) {
    (
        (token & SLOT_MASK) as usize,
        (token & TOKEN_MASK) >> SLOT_BITS,
    )
}

impl ProcessTable {
    /// The table of a region of geometry `g`, with this process not registered yet.
    pub(crate) fn new(g: &Geometry) -> ProcessTable {
        ProcessTable {
            offset: g.procs_offset,
            slots: g.procs,
            me: AtomicU64::new(0),
            registration: Mutex::new(None),
            alive_seen: AtomicU64::new(0),
        }
    }

    fn proc_word<'m>(&self, map: &'m Mapping, slot: usize, field: usize) -> &'m FutexWord {
        map.word(self.offset + slot * PROC_ENTRY + field)
    }

    /// This process's lock token for the region, registering on first use and again in a
    /// forked child (which must not pass for its parent). The fast path is two relaxed loads.
    ///
    /// If registration fails (see [`Inner::register`]), the process locks with
    /// [`UNREGISTERED`]: locking still works, but a death of this process while holding a lock
    /// cannot be detected. Handle creation registers first and reports such errors.
    #[inline]
    pub(crate) fn token(&self, map: &Mapping) -> u32 {
        self.hold(map).token
    }

    /// [`Inner::token`] together with the fork generation it belongs to, from one read of
    /// each: what a guard needs to release its hold (and to leave it alone in a forked child).
    #[inline]
    pub(crate) fn hold(&self, map: &Mapping) -> Hold {
        let generation = sys::fork_generation();
        let me = self.me.load(Relaxed);
        if me != 0 && (me >> 32) as u32 == generation {
            return Hold {
                token: me as u32,
                generation,
            };
        }
        Hold {
            token: self.register(map).unwrap_or(UNREGISTERED),
            generation,
        }
    }

    /// Registers this process (if it is not yet), reporting failure.
    pub(crate) fn ensure_registered(&self, map: &Mapping) -> Result<()> {
        match self.current_token() {
            Some(token) if token != UNREGISTERED => Ok(()),
            _ => self.register(map).map(drop),
        }
    }

    /// The token if this process is registered (in this fork generation).
    pub(crate) fn current_token(&self) -> Option<u32> {
        let me = self.me.load(Relaxed);
        (me != 0 && (me >> 32) as u32 == sys::fork_generation()).then_some(me as u32)
    }

    #[cold]
    fn register(&self, map: &Mapping) -> Result<u32> {
        let mut registration = self.registration.lock().unwrap_or_else(|e| e.into_inner());
        let generation = sys::fork_generation();
        let me = self.me.load(Relaxed);
        if me != 0 && (me >> 32) as u32 == generation && me as u32 != UNREGISTERED {
            return Ok(me as u32);
        }
        let result = self.claim_slot(map, &mut registration);
        let token = *result.as_ref().unwrap_or(&UNREGISTERED);
        self.me
            .store((u64::from(generation) << 32) | u64::from(token), Relaxed);
        result
    }

    fn claim_slot(&self, map: &Mapping, registration: &mut Option<Registration>) -> Result<u32> {
        let path = map.path();
        let lease = Lease::open(map.file()).map_err(|e| Error::io("open a lease on", path, e))?;
        let (pid, _) = sys::ids();
        let start = pid as usize % self.slots;
        let mut claimed = None;
        for i in 0..self.slots {
            let slot = (start + i) % self.slots;
            if lease
                .try_take(slot as u32)
                .map_err(|e| Error::io("take a lease on", path, e))?
            {
                claimed = Some(slot);
                break;
            }
        }
        let slot = claimed.ok_or(Error::ProcessTableFull { slots: self.slots })?;
        // The lease is ours: nobody else writes this slot until we die.
        let old = self.proc_word(map, slot, proc::GENERATION).load(Relaxed);
        let next = match (old.wrapping_add(1)) & GENERATION_MASK {
            0 => 1,
            g => g,
        };
        self.proc_word(map, slot, proc::PID).store(pid, Relaxed);
        // Release: a reader that sees the new generation sees the pid too.
        self.proc_word(map, slot, proc::GENERATION)
            .store(next, Release);
        let token = (next << SLOT_BITS) | slot as u32;
        // In a forked child this drops the parent's registration, whose lease descriptor the
        // fork handler already closed.
        *registration = Some(Registration { _lease: lease });
        Ok(token)
    }

    /// The number of process-table slots (the length of every hold table).
    pub(crate) fn slots(&self) -> usize {
        self.slots
    }

    /// The process-table slot of a registered process's `token` (`None` for
    /// [`UNREGISTERED`]).
    pub(crate) fn slot_of(&self, token: u32) -> Option<usize> {
        let (slot, generation) = split(token);
        (generation != 0 && slot < self.slots).then_some(slot)
    }

    /// Whether the process that took a lock with `token` may still be alive. `false` only when
    /// it is certainly gone: its slot was reclaimed, or its lease is no longer held.
    pub(crate) fn is_alive(&self, map: &Mapping, token: u32) -> bool {
        if Some(token) == self.current_token() {
            return true;
        }
        let (slot, generation) = split(token);
        if generation == 0 {
            // UNREGISTERED (nothing to check: such a process's death cannot be seen); any
            // other token of generation 0 is one no registration ever hands out: damage, not a
            // holder.
            return token == UNREGISTERED;
        }
        if slot >= self.slots {
            // No process can hold a slot the table does not have: damage, not a holder.
            return false;
        }
        if self.reclaimed(map, slot, generation) {
            return false;
        }
        if self.recently_alive(token) {
            return true;
        }
        // If the kernel cannot tell us, assume alive: a wrong "dead" would break mutual
        // exclusion, a wrong "alive" only delays recovery.
        let alive = sys::lease_held(map.file(), slot as u32).unwrap_or(true);
        if alive {
            self.alive_seen
                .store((u64::from(token) << 32) | u64::from(now_ms()), Relaxed);
        }
        alive
    }

    /// Whether `slot` was claimed again since the process of `generation` claimed it.
    fn reclaimed(&self, map: &Mapping, slot: usize, generation: u32) -> bool {
        let current = self.proc_word(map, slot, proc::GENERATION).load(Acquire);
        // Generations only move forward (modulo 2^19): a slot whose generation is *ahead* of
        // the token's was reclaimed, so the token's process is gone. One that looks *behind* can
        // only be a stale read of a registration still in progress: ask the lease instead.
        let ahead = current.wrapping_sub(generation) & GENERATION_MASK;
        ahead != 0 && ahead <= GENERATION_MASK / 2
    }

    /// What an onlooker that never registered can tell about the process of `token`, with
    /// loads and `F_OFD_GETLK` only: `Some(true)` alive, `Some(false)` certainly gone, `None`
    /// if it cannot be told (the shared unregistered token, or the kernel would not say).
    pub(crate) fn liveness(&self, map: &Mapping, token: u32) -> Option<bool> {
        let (slot, generation) = split(token);
        if generation == 0 {
            // As in `is_alive`: only the unregistered token is a holder nobody can judge.
            return (token != UNREGISTERED).then_some(false);
        }
        if slot >= self.slots || self.reclaimed(map, slot, generation) {
            return Some(false);
        }
        sys::lease_held(map.file(), slot as u32).ok()
    }

    /// Slot `slot` of the table (below [`ProcessTable::slots`]) as an onlooker sees it: the
    /// generation and pid of its last claimer, and whether its lease is held now (`None` if
    /// the kernel would not say). `None` for a slot never claimed.
    pub(crate) fn entry(&self, map: &Mapping, slot: usize) -> Option<(u32, u32, Option<bool>)> {
        let generation = self.proc_word(map, slot, proc::GENERATION).load(Acquire);
        if generation == 0 {
            return None;
        }
        let pid = self.proc_word(map, slot, proc::PID).load(Relaxed);
        Some((
            generation,
            pid,
            sys::lease_held(map.file(), slot as u32).ok(),
        ))
    }

    /// Whether `token`'s lease was seen held within the last [`ALIVE_CACHE_MS`]: spares a
    /// system call to callers that ask again and again (a `try_lock` loop on a busy lock), at
    /// the price of noticing a death that much later.
    fn recently_alive(&self, token: u32) -> bool {
        let seen = self.alive_seen.load(Relaxed);
        seen >> 32 == u64::from(token) && now_ms().wrapping_sub(seen as u32) < ALIVE_CACHE_MS
    }

    /// The pid of the process that registered `token`, if its slot still belongs to it.
    pub(crate) fn pid_of(&self, map: &Mapping, token: u32) -> Option<u32> {
        let (slot, generation) = split(token);
        if generation == 0
            || slot >= self.slots
            || self.proc_word(map, slot, proc::GENERATION).load(Acquire) != generation
        {
            return None;
        }
        Some(self.proc_word(map, slot, proc::PID).load(Relaxed))
    }
}

/// How long a waiter sleeps before it checks whether the holder is still alive: a holder's
/// death is noticed within about this long (plus up to 5 ms, for which a holder seen alive is
/// not asked again).
pub const DEATH_CHECK_INTERVAL: Duration = Duration::from_millis(20);

/// How long a holder seen alive is believed alive without asking the kernel again.
const ALIVE_CACHE_MS: u32 = 5;

/// Milliseconds on the monotonic clock since the first call (wrapping after 49 days, which
/// the comparison above tolerates).
fn now_ms() -> u32 {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u32
}
