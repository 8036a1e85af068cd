//! [`Barrier`]: Python's `multiprocessing.Barrier`, as two words in a region.

use crate::error::{Error, Result};
use crate::protocol::barrier::{self as proto, MAX_PARTIES};
use crate::protocol::{Block, Word};
use crate::region::layout::barrier::{PARTIES, RESETS, STATE};
use crate::region::{Kind, Object, Region, Spec};
use crate::sys::FutexWord;
use std::fmt;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

/// A meeting point for a fixed number of parties: Python's `multiprocessing.Barrier`.
///
/// Each party calls [`wait`](Barrier::wait); all return together once `parties` have arrived,
/// and the barrier is ready for the next round. A waiter that times out breaks the barrier for
/// everyone (every waiter of the round, and every later arrival, gets [`BrokenBarrier`]) until
/// [`reset`](Barrier::reset), as in Python.
///
/// # Dying processes
///
/// The barrier's state is one word, so a process that dies never leaves it half-changed, and
/// a party that died after arriving still counts for its round. A party that dies *before*
/// arriving cannot be told from a late one: the others wait for it until their timeout, which
/// then breaks the barrier. Pass a timeout when parties may die.
///
/// # Examples
///
/// ```
/// let region = shmsync::Region::anonymous(1 << 16)?;
/// let start = region.barrier("start", 1)?; // one party: never waits
/// assert_eq!(start.wait(None), Ok(0));
/// assert_eq!(start.parties(), 1);
/// # Ok::<(), shmsync::Error>(())
/// ```
#[derive(Clone)]
pub struct Barrier {
    object: Object,
    parties: u32,
}

/// [`Barrier::wait`] failed: the barrier was broken (by a timeout, [`Barrier::abort`],
/// [`Barrier::reset`]) before the round completed. Python's `BrokenBarrierError`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BrokenBarrier;

impl fmt::Display for BrokenBarrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&Error::BrokenBarrier, f)
    }
}

impl std::error::Error for BrokenBarrier {}

impl From<BrokenBarrier> for Error {
    fn from(_: BrokenBarrier) -> Error {
        Error::BrokenBarrier
    }
}

impl Barrier {
    fn proto(&self) -> proto::Barrier<'_, FutexWord> {
        proto::Barrier {
            state: self.object.word(STATE),
            resets: self.object.word(RESETS),
        }
    }

    /// Arrives and waits until all parties have, or until `timeout` passes (`None`: no limit;
    /// zero: do not wait). Returns this party's arrival index in the round, from 0 (first) to
    /// `parties - 1` (last), as Python does.
    ///
    /// # Errors
    ///
    /// [`BrokenBarrier`] if the barrier is or becomes broken before the round completes: by
    /// this call's own timeout, another waiter's, [`abort`](Barrier::abort) or
    /// [`reset`](Barrier::reset).
    pub fn wait(&self, timeout: Option<Duration>) -> std::result::Result<u32, BrokenBarrier> {
        self.proto()
            .wait(self.parties, Block::from_python(true, timeout))
            .map_err(|proto::Broken| BrokenBarrier)
    }

    /// Breaks the barrier: current and later waiters get [`BrokenBarrier`] until a
    /// [`reset`](Barrier::reset).
    pub fn abort(&self) {
        self.proto().abort();
    }

    /// Returns the barrier to its empty, unbroken state; parties waiting now get
    /// [`BrokenBarrier`].
    pub fn reset(&self) {
        self.proto().reset();
    }

    /// The number of parties.
    pub fn parties(&self) -> u32 {
        self.parties
    }

    /// Parties waiting in the current round (a snapshot).
    pub fn n_waiting(&self) -> u32 {
        self.proto().n_waiting()
    }

    /// Whether the barrier is broken (a snapshot).
    pub fn broken(&self) -> bool {
        self.proto().is_broken()
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier")
            .field("parties", &self.parties)
            .field("n_waiting", &self.n_waiting())
            .field("broken", &self.broken())
            .finish()
    }
}

impl Region {
    /// Finds or creates the [`Barrier`] called `name` for `parties` parties.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] unless `parties` is between 1 and 65 535;
    /// [`Error::Mismatch`] if it exists with another number of parties; otherwise as
    /// [`Region::lock`].
    pub fn barrier(&self, name: &str, parties: u32) -> Result<Barrier> {
        if !(1..=MAX_PARTIES).contains(&parties) {
            return Err(Error::InvalidArgument(format!(
                "a barrier has 1 to {MAX_PARTIES} parties, not {parties}"
            )));
        }
        let spec = Spec::plain(Kind::Barrier).with_len(parties as usize);
        let object = Object::open(self, name, &spec, |fresh| {
            fresh.word(PARTIES).store(parties, Relaxed);
        })?;
        Ok(Barrier { object, parties })
    }
}

/// A `Barrier` travels to a spawned child by region, name and parties.
impl crate::Transfer for Barrier {
    fn encode(&self, out: &mut crate::Encoder) -> Result<()> {
        out.object(&self.object)?;
        crate::Transfer::encode(&self.parties, out)
    }
    fn decode(input: &mut crate::Decoder) -> Result<Self> {
        let (region, name) = input.object()?;
        let parties = <u32 as crate::Transfer>::decode(input)?;
        region.barrier(&name, parties)
    }
}
