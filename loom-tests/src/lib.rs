//! loom models of shmsync's lock protocols, run on the protocol code that ships.
//!
//! [`LoomWord`] implements [`shmsync_protocol::word::Word`] with a loom atomic and a modelled futex, so
//! the model checker explores `shmsync_protocol::{mutex, rmutex, publish, semaphore, holds,
//! event, barrier, condvar, rwlock}` unchanged. A word
//! can carry a [`Mutation`]: a deliberate fault that the models must catch (see `README.md`).
//! [`LoomOwners`] implements [`shmsync_protocol::mutex::Owners`]: which lock holders are dead,
//! and the bounded sleep slices after which a waiter looks at the holder again.
//! [`harness`] runs the models and the child processes of the mutation checks.

pub mod harness;
pub mod mortal;

use loom::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, fence};
use loom::sync::{Condvar, Mutex, MutexGuard};
use shmsync_protocol::condvar::SIGNAL_SHIFT;
use shmsync_protocol::mutex::{NOT_RECOVERABLE, Owners, POISONED, TOKEN_MASK, WAITERS};
use shmsync_protocol::word::{Fault, WaitOutcome, Word, Word64};
use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::Ordering::{self, AcqRel, Acquire, Relaxed, Release, SeqCst};
use std::time::Instant;

/// A deliberate fault carried by one [`LoomWord`] or by [`LoomOwners`], to check that the
/// models notice it.
///
/// Most variants are faults of a word; four ([`Mutation::SaysDead`] to
/// [`Mutation::SliceExpires`]) are faults of the liveness oracle and apply to [`LoomOwners`]
/// only (a word ignores them, and the owners ignore the word faults). Each mutation is caught by at least one model (the
/// `caught_*` tests); `README.md` lists which.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mutation {
    /// No fault: the word behaves as the production word.
    #[default]
    None,
    /// Every ordering the protocol passes to the word becomes `Relaxed`.
    RelaxedOrdering,
    /// The release half of every ordering is dropped (`Release` → `Relaxed`, `AcqRel` and
    /// `SeqCst` → `Acquire`): a publication store that does not publish.
    RelaxedStores,
    /// The acquire half of every ordering is dropped (`Acquire` → `Relaxed`, `AcqRel` and
    /// `SeqCst` → `Release`): a reader that does not synchronise with the publisher.
    RelaxedLoads,
    /// `wake_one` and `wake_all` do nothing: a release that forgets to wake.
    SkipWake,
    /// An *acquiring* compare-exchange (its expected value has no holder, its new value has
    /// one) that would set [`WAITERS`] stores the value without it: a re-acquire that drops
    /// the waiters mark (the classic broken futex mutex that takes the lock with CAS(0→1)
    /// after sleeping).
    ///
    /// Only acquiring exchanges are mutated: dropping the mark from the exchange that *sets*
    /// it (`held → held | WAITERS`) too means no thread ever sleeps (its wait always finds the
    /// unmarked value and returns at once), which turns the lock into a spin lock rather than
    /// one that loses wake-ups; that is [`Mutation::DropEveryWaitersMark`].
    DropWaitersMark,
    /// Every compare-exchange or swap that would store [`WAITERS`] stores the value without
    /// it. Nobody sleeps any more, so no wake-up is lost, but waiters busy-wait for as long as
    /// the lock is held: loom reports that as a model exceeding its branch limit.
    DropEveryWaitersMark,
    /// A wait that times out first clears [`WAITERS`] (`fetch_and(!WAITERS)`): a timeout
    /// path that forgets the other sleepers.
    TimeoutClearsWaiters,
    /// Every plain `store` to the word is dropped (e.g. an RLock whose count never changes).
    DropStores,
    /// A plain `store` of 0 is dropped (e.g. an RLock release that does not clear the owner).
    DropZeroStores,
    /// The takeover compare-exchange (its expected value has a holder, its new value has
    /// [`POISONED`] and a holder) stores its new value unconditionally and reports success:
    /// taking a dead holder's lock over with a plain store instead of a compare-exchange.
    TakeoverByStore,
    /// A compare-exchange that would store [`NOT_RECOVERABLE`] stores 0 instead: a release of a
    /// poisoned lock that frees it rather than making it unrecoverable.
    ForgetNotRecoverable,
    /// ([`LoomOwners`]) `is_alive` says every holder is dead: a liveness oracle that declares a
    /// live holder dead.
    SaysDead,
    /// ([`LoomOwners`]) `is_alive` says every holder is alive: a dead holder is never noticed.
    NeverDead,
    /// ([`LoomOwners`]) `slice_end` returns the caller's deadline (`None` for
    /// `Block::Forever`): a waiter without a deadline sleeps until woken and never looks at
    /// the holder again.
    NoSlices,
    /// ([`LoomOwners`]) `expired` is always true: a `Block::Forever` waiter takes the end of a
    /// sleep slice for the end of its wait and gives up.
    SliceExpires,
    /// Every compare-exchange becomes an unconditional `fetch_add(new - current)` that reports
    /// success: a check (a bound, "a permit is free") and the update in two steps, as Python's
    /// `BoundedSemaphore.release` does.
    CheckThenAdd,
    /// Every compare-exchange becomes a load, a comparison and a separate store: a
    /// read-modify-write that is not atomic (another thread may change the word between the
    /// load and the store).
    CasByLoadStore,
    /// Every `fetch_add` does nothing (and returns the current value): e.g. a condition
    /// variable's notify that wakes without bumping its sequence, a sleeper that does not
    /// count itself.
    DropAdds,
    /// Every `fetch_or` does nothing (and returns the current value): e.g. a barrier reset that
    /// does not record the round it reset.
    DropOrs,
    /// (Event word) a compare-exchange that sets the `SET` bit (bit 0) of a word without it
    /// keeps the word's generation (bits 2 and up) instead of storing the new one: a `set`
    /// that forgets to count itself, so a `set` + `clear` pulse leaves the word as it was.
    ForgetGeneration,
    /// ([`LoomWide`], the semaphore's state word) [`Fault::SkipRecord`]: a frozen tag is
    /// reported copied into its entry's record without being written there.
    SkipRecord,
    /// ([`LoomWide`]) [`Fault::SkipHelp`]: another entry's tag is replaced without being
    /// frozen and copied into its record first.
    SkipHelp,
    /// ([`LoomWide`]) [`Fault::IgnoreEpoch`]: whether a frozen tag was copied is decided
    /// without comparing the record's epoch to the tag's.
    IgnoreEpoch,
    /// (Condition variable's `sleepers` word) every load reports at least one handed-out
    /// wake-up (bits 16 and up) that nobody handed out: a waiter that finds `seq` changed always
    /// finds a wake-up to take, so every waiter returns notified on any notify (the bug of
    /// issue 12: `notify(n)` woke every waiter whose sleep slice ended).
    ForgeSignals,
    /// (Queue models, on the word named `model`) the producer publishes its slot (`seq =
    /// full`) and frees its owner before it copies the item in: the library's `put` steps in the
    /// wrong order.
    /// A fault of the model's own code (the copy is not a word operation), which the queue
    /// models read with `faults.on("model")`.
    PublishBeforeCopy,
}

impl Mutation {
    /// Every mutation, for listing and parsing.
    pub const ALL: [Mutation; 26] = [
        Mutation::None,
        Mutation::RelaxedOrdering,
        Mutation::RelaxedStores,
        Mutation::RelaxedLoads,
        Mutation::SkipWake,
        Mutation::DropWaitersMark,
        Mutation::DropEveryWaitersMark,
        Mutation::TimeoutClearsWaiters,
        Mutation::DropStores,
        Mutation::DropZeroStores,
        Mutation::TakeoverByStore,
        Mutation::ForgetNotRecoverable,
        Mutation::SaysDead,
        Mutation::NeverDead,
        Mutation::NoSlices,
        Mutation::SliceExpires,
        Mutation::CheckThenAdd,
        Mutation::CasByLoadStore,
        Mutation::DropAdds,
        Mutation::DropOrs,
        Mutation::ForgetGeneration,
        Mutation::SkipRecord,
        Mutation::SkipHelp,
        Mutation::IgnoreEpoch,
        Mutation::ForgeSignals,
        Mutation::PublishBeforeCopy,
    ];

    /// The kebab-case name used in [`harness::MUTATION_ENV`].
    pub const fn name(self) -> &'static str {
        match self {
            Mutation::None => "none",
            Mutation::RelaxedOrdering => "relaxed-ordering",
            Mutation::RelaxedStores => "relaxed-stores",
            Mutation::RelaxedLoads => "relaxed-loads",
            Mutation::SkipWake => "skip-wake",
            Mutation::DropWaitersMark => "drop-waiters-mark",
            Mutation::DropEveryWaitersMark => "drop-every-waiters-mark",
            Mutation::TimeoutClearsWaiters => "timeout-clears-waiters",
            Mutation::DropStores => "drop-stores",
            Mutation::DropZeroStores => "drop-zero-stores",
            Mutation::TakeoverByStore => "takeover-by-store",
            Mutation::ForgetNotRecoverable => "forget-not-recoverable",
            Mutation::SaysDead => "says-dead",
            Mutation::NeverDead => "never-dead",
            Mutation::NoSlices => "no-slices",
            Mutation::SliceExpires => "slice-expires",
            Mutation::CheckThenAdd => "check-then-add",
            Mutation::CasByLoadStore => "cas-by-load-store",
            Mutation::DropAdds => "drop-adds",
            Mutation::DropOrs => "drop-ors",
            Mutation::ForgetGeneration => "forget-generation",
            Mutation::SkipRecord => "skip-record",
            Mutation::SkipHelp => "skip-help",
            Mutation::IgnoreEpoch => "ignore-epoch",
            Mutation::ForgeSignals => "forge-signals",
            Mutation::PublishBeforeCopy => "publish-before-copy",
        }
    }

    /// The ordering the word really uses when the protocol asks for `order`.
    fn order(self, order: Ordering) -> Ordering {
        match (self, order) {
            (Mutation::RelaxedOrdering, _) => Relaxed,
            (Mutation::RelaxedStores, Release) => Relaxed,
            (Mutation::RelaxedStores, AcqRel | SeqCst) => Acquire,
            (Mutation::RelaxedLoads, Acquire) => Relaxed,
            (Mutation::RelaxedLoads, AcqRel | SeqCst) => Release,
            (_, order) => order,
        }
    }

    /// The failure ordering of a compare-exchange (never `Release` or `AcqRel`).
    fn failure_order(self, order: Ordering) -> Ordering {
        match (self, order) {
            (Mutation::RelaxedOrdering | Mutation::RelaxedLoads, _) => Relaxed,
            (Mutation::RelaxedStores, SeqCst) => Acquire,
            (_, order) => order,
        }
    }
}

impl fmt::Display for Mutation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Mutation {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mutation::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Mutation::ALL.iter().map(|m| m.name()).collect();
                format!("unknown mutation {s:?}; known: {}", names.join(", "))
            })
    }
}

/// The ordering a plain load may use in place of a read-modify-write with this ordering.
trait LoadHalf {
    fn load_half(self) -> Ordering;
}

impl LoadHalf for Ordering {
    fn load_half(self) -> Ordering {
        match self {
            Release | Relaxed => Relaxed,
            AcqRel | Acquire => Acquire,
            order => order,
        }
    }
}

/// What the modelled futex of one word has done so far in the current execution.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FutexStats {
    /// Calls to `wait` that found the expected value and queued the caller.
    pub sleeps: u32,
    /// The most waiters ever queued on the word at once.
    pub max_queued: u32,
    /// Waits that returned [`WaitOutcome::TimedOut`].
    pub timeouts: u32,
    /// Timeouts that happened while another waiter was still queued on the word.
    pub timeouts_with_others_queued: u32,
    /// Waits that returned [`WaitOutcome::Woken`] without a wake call.
    pub spurious: u32,
    /// Waits that could have timed out or returned spuriously but were woken first.
    pub woken_in_window: u32,
    /// Calls to `wake_one` or `wake_all` (made, not skipped by [`Mutation::SkipWake`]).
    pub wakes: u32,
    /// Calls to [`LoomWord::tick`].
    pub ticks: u32,
    /// Timeouts of waiters that were asleep (past their window) when a tick came.
    pub late_timeouts: u32,
}

/// The modelled kernel side of one futex word: its wait queue and the fault budgets.
/// Guarded by the loom mutex that plays the futex hash-bucket lock.
#[derive(Debug, Default)]
struct FutexState {
    /// Ticket numbers of queued, not yet woken, waiters, oldest first.
    queue: VecDeque<u64>,
    /// Tickets of waiters a wake call has dequeued but which have not returned yet.
    woken: Vec<u64>,
    next_ticket: u64,
    /// Timeouts still allowed for this word in the current execution.
    timeouts_left: u32,
    /// Spurious returns still allowed for this word in the current execution.
    spurious_left: u32,
    /// How many times [`LoomWord::tick`] was called: a sleeper that saw this number change
    /// while it slept may time out (budget permitting).
    ticks: u32,
    /// A thread waits in [`LoomWord::wait_for_sleepers`]: queueing notifies it.
    watched: bool,
    /// Threads that have queued on this word (see [`LoomWord::has_slept`]).
    sleepers: Vec<loom::thread::ThreadId>,
    stats: FutexStats,
}

impl FutexState {
    fn take_woken(&mut self, ticket: u64) -> bool {
        match self.woken.iter().position(|&t| t == ticket) {
            Some(i) => {
                self.woken.swap_remove(i);
                true
            }
            None => false,
        }
    }

    fn dequeue(&mut self, ticket: u64) {
        self.queue.retain(|&t| t != ticket);
    }
}

/// A [`Word`] for loom: a loom `AtomicU32` plus a modelled futex.
///
/// # The modelled futex
///
/// A loom `Mutex` plays the kernel's futex hash-bucket lock and a loom `Condvar` the sleeping.
/// `wait` takes the mutex, compares the value, and only then queues and sleeps; a wake takes
/// the same mutex before it dequeues and notifies. So a wake that follows a change of the value
/// cannot miss a waiter that saw the old value: exactly the guarantee the kernel gives, and
/// nothing more (the value read under the mutex is `Relaxed`; only the mutex orders).
///
/// Waiters hold tickets in a FIFO queue. `wake_one` dequeues the oldest ticket, `wake_all`
/// every ticket; both then `notify_all` the condvar and each sleeper checks whether its own
/// ticket was woken (a condvar cannot address one thread, and a waiter that is about to time
/// out must be able to leave the queue). Like the kernel, a waiter whose ticket was dequeued by
/// a wake returns [`WaitOutcome::Woken`] even if it was about to time out: a wake is never
/// consumed by a waiter that then reports a timeout.
///
/// # Timeouts and spurious wake-ups
///
/// loom has no time. A wait that may time out (the caller passed a deadline and the word's
/// timeout budget is not spent) or return spuriously (the spurious budget is not spent)
/// reserves one unit of budget, queues, releases the mutex, calls `loom::thread::yield_now()`,
/// takes the mutex again and then returns [`WaitOutcome::Woken`] if a wake dequeued it
/// meanwhile, or else leaves the queue and returns [`WaitOutcome::TimedOut`] (or a spurious
/// `Woken`), spending the unit. The yield is a scheduling point: loom explores the wakes and
/// other operations that may run inside the window, so both branches (woken before the
/// "timer" fired, or not) are explored without a hand-made nondeterministic choice, which loom
/// 0.7 does not offer. The budget (default: one timeout and no spurious return per word and
/// execution, see [`LoomWord::timeouts`] and [`LoomWord::spurious`]) keeps the state space
/// small and guarantees that retry loops end. A wait without remaining budget sleeps on the
/// condvar until a wake dequeues it; if none ever comes, loom reports a deadlock.
///
/// The budget is reserved when the window opens, so with a budget of one only one waiter at a
/// time can time out; a waiter that was woken in its window gives the unit back.
///
/// # Time passing: ticks
///
/// [`LoomWord::tick`] says "a whole sleep slice has passed" (the models call it when a lock
/// holder dies): it adds timeouts to the budget and wakes the condvar, and every waiter that
/// was asleep past its window when the tick came, and waits with a deadline, times out while
/// budget remains. Without ticks a waiter that spent its window sleeps until a wake call, so in
/// a model without a death a lost wake-up still shows as a deadlock (in the executions where
/// the budget was spent early); with them, a waiter asleep when the holder dies is not
/// stranded by a budget spent before the death, just as real slices keep ending.
pub struct LoomWord {
    value: AtomicU32,
    futex: Mutex<FutexState>,
    sleepers: Condvar,
    /// Signalled when a waiter queues while [`LoomWord::wait_for_sleepers`] watches.
    queue_grew: Condvar,
    mutation: Mutation,
}

impl fmt::Debug for LoomWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoomWord")
            .field("mutation", &self.mutation)
            .finish_non_exhaustive()
    }
}

impl LoomWord {
    /// A word holding `value`, with one timeout, no spurious wake-up and no mutation.
    /// Create words inside the loom model closure (they are loom objects).
    pub fn new(value: u32) -> LoomWord {
        LoomWord {
            value: AtomicU32::new(value),
            futex: Mutex::new(FutexState {
                timeouts_left: 1,
                ..FutexState::default()
            }),
            sleepers: Condvar::new(),
            queue_grew: Condvar::new(),
            mutation: Mutation::None,
        }
    }

    /// Sets the number of timed waits on this word that may time out in one execution.
    pub fn timeouts(mut self, budget: u32) -> LoomWord {
        self.futex.get_mut().unwrap().timeouts_left = budget;
        self
    }

    /// Sets the number of waits on this word that may return spuriously in one execution.
    pub fn spurious(mut self, budget: u32) -> LoomWord {
        self.futex.get_mut().unwrap().spurious_left = budget;
        self
    }

    /// Makes this word carry `mutation`.
    pub fn mutation(mut self, mutation: Mutation) -> LoomWord {
        self.mutation = mutation;
        self
    }

    /// What the modelled futex has done so far (takes the futex mutex).
    pub fn stats(&self) -> FutexStats {
        self.futex.lock().unwrap().stats
    }

    /// A sleep slice's worth of time passes (see the type docs): `budget` more waits may time
    /// out, including waits already asleep past their window. Called when a holder dies.
    pub fn tick(&self, budget: u32) {
        let mut st = self.futex.lock().unwrap();
        st.timeouts_left += budget;
        st.ticks += 1;
        st.stats.ticks += 1;
        self.sleepers.notify_all();
        drop(st);
    }

    /// How many waiters are queued on the word right now (takes the futex mutex).
    pub fn queued(&self) -> usize {
        self.futex.lock().unwrap().queue.len()
    }

    /// Blocks until at least `n` waiters are queued on the word at once (test scaffolding:
    /// "every waiter is asleep now"), without a polling loop, which would multiply the
    /// executions loom explores.
    pub fn wait_for_sleepers(&self, n: usize) {
        let mut st = self.futex.lock().unwrap();
        st.watched = true;
        while st.queue.len() < n {
            st = self.queue_grew.wait(st).unwrap();
        }
        st.watched = false;
    }

    /// Whether the calling loom thread has ever queued (slept) on this word.
    pub fn has_slept(&self) -> bool {
        let me = loom::thread::current().id();
        self.futex.lock().unwrap().sleepers.contains(&me)
    }

    /// Reads the value without any fault, `SeqCst` (for assertions after joins).
    pub fn get(&self) -> u32 {
        self.value.load(SeqCst)
    }

    /// The ordering the word really uses for the protocol's `order` (see
    /// [`Mutation::order`]). loom 0.7 treats a `SeqCst` access as `AcqRel` (it does not put
    /// `SeqCst` accesses in one total order), which would report executions that no real
    /// `SeqCst` program has; so a `SeqCst` access is preceded by `fence(SeqCst)`, which loom
    /// does order totally. That is the "leading fence" implementation of `SeqCst` (the one
    /// Power uses): it gives `SeqCst` accesses their total order and no more (a `SeqCst` store
    /// followed by a `Relaxed` load of another word stays unordered, as in C++).
    fn order(&self, order: Ordering) -> Ordering {
        let order = self.mutation.order(order);
        if order == SeqCst {
            fence(SeqCst);
        }
        order
    }

    /// Wakes one or every queued waiter; returns whether it woke one.
    fn wake(&self, all: bool) -> bool {
        if self.mutation == Mutation::SkipWake {
            return false;
        }
        let mut st = self.futex.lock().unwrap();
        st.stats.wakes += 1;
        let woke = !st.queue.is_empty();
        if all {
            let queued: Vec<u64> = st.queue.drain(..).collect();
            st.woken.extend(queued);
        } else if let Some(t) = st.queue.pop_front() {
            st.woken.push(t);
        }
        // Sleepers check their own ticket; notifying a condvar nobody waits on is harmless.
        self.sleepers.notify_all();
        drop(st);
        woke
    }

    /// The bounded "maybe it times out / returns spuriously" window (see the type docs).
    fn wait_window<'a>(
        &'a self,
        mut st: MutexGuard<'a, FutexState>,
        ticket: u64,
        timeout: bool,
    ) -> WaitOutcome {
        drop(st);
        loom::thread::yield_now();
        st = self.futex.lock().unwrap();
        if st.take_woken(ticket) {
            // A wake dequeued us first: the kernel reports success, so give the unit back.
            st.stats.woken_in_window += 1;
            if timeout {
                st.timeouts_left += 1;
            } else {
                st.spurious_left += 1;
            }
            return WaitOutcome::Woken;
        }
        st.dequeue(ticket);
        if !timeout {
            st.stats.spurious += 1;
            return WaitOutcome::Woken;
        }
        self.timed_out(&mut st)
    }

    /// Bookkeeping of a wait that times out, already dequeued and its budget unit spent.
    fn timed_out(&self, st: &mut FutexState) -> WaitOutcome {
        st.stats.timeouts += 1;
        if !st.queue.is_empty() {
            st.stats.timeouts_with_others_queued += 1;
        }
        if self.mutation == Mutation::TimeoutClearsWaiters {
            self.value.fetch_and(!WAITERS, Relaxed);
        }
        WaitOutcome::TimedOut
    }
}

impl Word for LoomWord {
    /// One re-read before sleeping: enough to explore the spin path, small enough for loom.
    const SPIN_LIMIT: u32 = 1;

    fn load(&self, order: Ordering) -> u32 {
        let order = self.order(order);
        let value = self.value.load(order);
        match self.mutation {
            Mutation::ForgeSignals if value >> SIGNAL_SHIFT == 0 => value | 1 << SIGNAL_SHIFT,
            _ => value,
        }
    }

    fn store(&self, value: u32, order: Ordering) {
        match self.mutation {
            Mutation::DropStores => {}
            Mutation::DropZeroStores if value == 0 => {}
            _ => {
                let order = self.order(order);
                self.value.store(value, order)
            }
        }
    }

    fn swap(&self, value: u32, order: Ordering) -> u32 {
        let value = match self.mutation {
            Mutation::DropEveryWaitersMark => value & !WAITERS,
            _ => value,
        };
        let order = self.order(order);
        self.value.swap(value, order)
    }

    fn compare_exchange(
        &self,
        current: u32,
        new: u32,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u32, u32> {
        let acquiring = current & TOKEN_MASK == 0 && new & TOKEN_MASK != 0;
        let taking_over = current & TOKEN_MASK != 0 && new & TOKEN_MASK != 0 && new & POISONED != 0;
        let new = match self.mutation {
            Mutation::DropEveryWaitersMark => new & !WAITERS,
            Mutation::DropWaitersMark if acquiring => new & !WAITERS,
            Mutation::ForgetNotRecoverable if new == NOT_RECOVERABLE => 0,
            Mutation::TakeoverByStore if taking_over => {
                // The plain store: whatever the word holds now is overwritten.
                let old = self.value.swap(new, self.mutation.order(success));
                return Ok(old);
            }
            Mutation::ForgetGeneration if new & 1 != 0 && current & 1 == 0 => {
                // The flag bits of the new value, the generation of the old one.
                (current & !3) | (new & 3)
            }
            Mutation::CheckThenAdd => {
                // The check was made on `current`; the update ignores what the word holds now.
                let order = self.order(success);
                return Ok(self.value.fetch_add(new.wrapping_sub(current), order));
            }
            Mutation::CasByLoadStore => {
                // Two separate atomic operations: loom may run other threads in between.
                let seen = self.value.load(self.mutation.failure_order(failure));
                if seen != current {
                    return Err(seen);
                }
                let order = self.order(success);
                self.value.store(new, order);
                return Ok(seen);
            }
            _ => new,
        };
        let order = self.order(success);
        self.value
            .compare_exchange(current, new, order, self.mutation.failure_order(failure))
    }

    fn fetch_add(&self, value: u32, order: Ordering) -> u32 {
        let order = self.order(order);
        match self.mutation {
            Mutation::DropAdds => self.value.load(order.load_half()),
            _ => self.value.fetch_add(value, order),
        }
    }

    fn fetch_sub(&self, value: u32, order: Ordering) -> u32 {
        let order = self.order(order);
        self.value.fetch_sub(value, order)
    }

    fn fetch_or(&self, value: u32, order: Ordering) -> u32 {
        let order = self.order(order);
        match self.mutation {
            Mutation::DropOrs => self.value.load(order.load_half()),
            _ => self.value.fetch_or(value, order),
        }
    }

    fn fetch_and(&self, value: u32, order: Ordering) -> u32 {
        let order = self.order(order);
        self.value.fetch_and(value, order)
    }

    fn wait(&self, expected: u32, deadline: Option<Instant>) -> WaitOutcome {
        let mut st = self.futex.lock().unwrap();
        // The kernel issues a full barrier between queueing the waiter and reading the word
        // (`smp_mb()` (A) in kernel/futex/waitwake.c, paired with the waker's (B)), so the read
        // below comes after every store the waiter made before calling `wait` in the single
        // total order of SeqCst fences: a protocol may rely on "I announced myself (a SeqCst
        // store or read-modify-write), then the futex read the word" (the semaphore's sleeper
        // count does).
        fence(SeqCst);
        // The kernel compares under the bucket lock; Relaxed, so that only the lock (as in the
        // kernel), that barrier and the protocol's own orderings create happens-before edges.
        if self.value.load(Relaxed) != expected {
            return WaitOutcome::ValueChanged;
        }
        let ticket = st.next_ticket;
        st.next_ticket += 1;
        st.queue.push_back(ticket);
        if st.watched {
            self.queue_grew.notify_all();
        }
        st.stats.sleeps += 1;
        st.stats.max_queued = st.stats.max_queued.max(st.queue.len() as u32);
        let me = loom::thread::current().id();
        if !st.sleepers.contains(&me) {
            st.sleepers.push(me);
        }

        if deadline.is_some() && st.timeouts_left > 0 {
            st.timeouts_left -= 1;
            return self.wait_window(st, ticket, true);
        }
        if st.spurious_left > 0 {
            st.spurious_left -= 1;
            return self.wait_window(st, ticket, false);
        }
        let ticks_when_asleep = st.ticks;
        loop {
            st = self.sleepers.wait(st).unwrap();
            if st.take_woken(ticket) {
                return WaitOutcome::Woken;
            }
            if deadline.is_some() && st.ticks != ticks_when_asleep && st.timeouts_left > 0 {
                // A slice passed while we slept (see `tick`): our timer fires.
                st.timeouts_left -= 1;
                st.stats.late_timeouts += 1;
                st.dequeue(ticket);
                return self.timed_out(&mut st);
            }
        }
    }

    fn wake_one(&self) {
        self.wake(false);
    }

    fn wake_all(&self) {
        self.wake(true);
    }

    fn wake_one_counted(&self) -> bool {
        self.wake(false)
    }

    fn spin_hint(&self) {
        loom::thread::yield_now();
    }
}

/// Tokens `0..MAX_TOKENS` can be declared dead in a [`LoomOwners`].
pub const MAX_TOKENS: usize = 8;

/// An [`Owners`] for loom: a fixed set of per-token "dead" flags, and sleep slices whose end is
/// decided by the word's timeout budget.
///
/// - `is_alive(t)` is `!dead[t]` (a loom `AtomicBool`, Acquire). [`LoomOwners::die`] sets the
///   flag with Release: in production the kernel drops a dead process's lease and a waiter
///   learns it through a system call, and that order holds too (everything the dead holder
///   wrote before dying is visible to the thread that learns of its death).
/// - `slice_end(deadline)` is always `Some(..)`: every wait can end with a slice end when the
///   [`LoomWord`]'s timeout budget allows it. The instant itself is ignored by the word.
/// - `expired(deadline)` is `deadline.is_some()`: a modelled timeout ends a `Block::Until`
///   wait (its deadline passed), while a `Block::Forever` waiter treats it as a slice end and
///   looks at the holder again.
///
/// Create it inside the loom model closure (it holds loom objects).
pub struct LoomOwners {
    dead: [AtomicBool; MAX_TOKENS],
    slice: Instant,
    mutation: Mutation,
}

impl fmt::Debug for LoomOwners {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoomOwners")
            .field("mutation", &self.mutation)
            .finish_non_exhaustive()
    }
}

impl Default for LoomOwners {
    fn default() -> Self {
        LoomOwners::new()
    }
}

impl LoomOwners {
    /// Every token alive, no mutation.
    pub fn new() -> LoomOwners {
        LoomOwners {
            dead: std::array::from_fn(|_| AtomicBool::new(false)),
            // Any instant will do: the word ignores the value of a deadline.
            slice: Instant::now(),
            mutation: Mutation::None,
        }
    }

    /// Makes the oracle carry `mutation` (only [`Mutation::SaysDead`], [`Mutation::NeverDead`],
    /// [`Mutation::NoSlices`] and [`Mutation::SliceExpires`] change anything).
    pub fn mutation(mut self, mutation: Mutation) -> LoomOwners {
        self.mutation = mutation;
        self
    }

    /// Declares the holder with `token` dead (Release). The caller stops using every lock
    /// afterwards: it models a process that was killed.
    pub fn die(&self, token: u32) {
        self.dead[Self::index(token)].store(true, Release);
    }

    fn index(token: u32) -> usize {
        let i = token as usize;
        assert!(i < MAX_TOKENS, "token {token} is outside the modelled set");
        i
    }
}

impl Owners for LoomOwners {
    fn is_alive(&self, token: u32) -> bool {
        match self.mutation {
            Mutation::SaysDead => false,
            Mutation::NeverDead => true,
            _ => !self.dead[Self::index(token)].load(Acquire),
        }
    }

    fn slice_end(&self, deadline: Option<Instant>) -> Option<Instant> {
        if self.mutation == Mutation::NoSlices {
            return deadline;
        }
        Some(deadline.map_or(self.slice, |d| d.min(self.slice)))
    }

    fn expired(&self, deadline: Option<Instant>) -> bool {
        self.mutation == Mutation::SliceExpires || deadline.is_some()
    }
}

/// A 64-bit word for the models ([`Word64`]): a loom `AtomicU64`. As [`LoomWord`], every
/// access whose ordering is `SeqCst` is preceded by `fence(SeqCst)` (loom 0.7 treats a `SeqCst`
/// access as `AcqRel`; see `README.md`). It may carry one of the semaphore's protocol faults
/// ([`Mutation::SkipRecord`], [`Mutation::SkipHelp`], [`Mutation::IgnoreEpoch`]), which it
/// reports through [`Word64::mutated`], an ordering mutation, [`Mutation::CheckThenAdd`] or
/// [`Mutation::CasByLoadStore`].
pub struct LoomWide {
    value: AtomicU64,
    mutation: Mutation,
}

impl fmt::Debug for LoomWide {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoomWide")
            .field("mutation", &self.mutation)
            .finish_non_exhaustive()
    }
}

impl LoomWide {
    /// A word holding `value`, without mutation.
    pub fn new(value: u64) -> LoomWide {
        LoomWide {
            value: AtomicU64::new(value),
            mutation: Mutation::None,
        }
    }

    /// Makes the word carry `mutation`.
    pub fn mutation(mut self, mutation: Mutation) -> LoomWide {
        self.mutation = mutation;
        self
    }

    /// The value (SeqCst), for assertions after the threads were joined.
    pub fn get(&self) -> u64 {
        self.value.load(SeqCst)
    }
}

impl Word64 for LoomWide {
    fn load(&self, order: Ordering) -> u64 {
        let order = self.mutation.order(order);
        if order == SeqCst {
            fence(SeqCst);
        }
        self.value.load(order.load_half())
    }
    fn store(&self, value: u64, order: Ordering) {
        let order = self.mutation.order(order);
        if order == SeqCst {
            fence(SeqCst);
        }
        let order = match order {
            Acquire | Relaxed => Relaxed,
            AcqRel | Release => Release,
            order => order,
        };
        self.value.store(value, order);
    }
    fn compare_exchange(
        &self,
        current: u64,
        new: u64,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u64, u64> {
        let (success, failure) = (
            self.mutation.order(success),
            self.mutation.failure_order(failure),
        );
        if success == SeqCst {
            fence(SeqCst);
        }
        match self.mutation {
            Mutation::CheckThenAdd => {
                let before = self.value.fetch_add(new.wrapping_sub(current), success);
                Ok(before)
            }
            Mutation::CasByLoadStore => {
                let now = self.value.load(failure);
                if now != current {
                    return Err(now);
                }
                self.value.store(
                    new,
                    match success {
                        Acquire | Relaxed => Relaxed,
                        _ => Release,
                    },
                );
                Ok(now)
            }
            _ => self.value.compare_exchange(current, new, success, failure),
        }
    }
    fn mutated(&self, fault: Fault) -> bool {
        matches!(
            (self.mutation, fault),
            (Mutation::SkipRecord, Fault::SkipRecord)
                | (Mutation::SkipHelp, Fault::SkipHelp)
                | (Mutation::IgnoreEpoch, Fault::IgnoreEpoch)
        )
    }
}
