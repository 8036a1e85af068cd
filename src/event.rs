//! [`Event`]: Python's `multiprocessing.Event`, as one futex word in a region.

use crate::error::Result;
use crate::protocol::{Block, event};
use crate::region::layout::event::WORD;
use crate::region::{Kind, Object, Region, Spec};
use crate::sys::FutexWord;
use std::fmt;
use std::time::Duration;

/// A flag that processes wait for: Python's `multiprocessing.Event`.
///
/// [`set`](Event::set) raises the flag and wakes every waiter in every process;
/// [`clear`](Event::clear) lowers it; [`wait`](Event::wait) returns once it is set. A waiter
/// that was asleep when `set` was called returns `true` even if the flag was cleared again
/// before it woke, as in Python.
///
/// The event is one word and nothing holds it, so a process that dies at any point leaves it
/// valid.
///
/// # Examples
///
/// ```
/// let region = shmsync::Region::anonymous(1 << 16)?;
/// let go = region.event("go")?;
/// assert!(!go.wait(Some(std::time::Duration::from_millis(1)))); // not set: times out
/// go.set();
/// assert!(go.is_set() && go.wait(None));
/// go.clear();
/// assert!(!go.is_set());
/// # Ok::<(), shmsync::Error>(())
/// ```
#[derive(Clone)]
pub struct Event {
    object: Object,
}

impl Event {
    #[inline]
    fn word(&self) -> &FutexWord {
        self.object.word(WORD)
    }

    /// Sets the flag and wakes every waiter. What the setter wrote before is visible to a
    /// waiter that returns `true`.
    #[inline]
    pub fn set(&self) {
        event::set(self.word());
    }

    /// Clears the flag.
    #[inline]
    pub fn clear(&self) {
        event::clear(self.word());
    }

    /// Whether the flag is set (a snapshot).
    #[inline]
    pub fn is_set(&self) -> bool {
        event::get(self.word())
    }

    /// Waits until the flag is set, or `timeout` passes (`None`: no limit; zero: just look).
    /// Returns `true` if the flag was set (or set while we waited), `false` on timeout.
    #[inline]
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        event::wait(self.word(), Block::from_python(true, timeout))
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("set", &self.is_set())
            .finish()
    }
}

impl Region {
    /// Finds or creates the [`Event`] called `name` (created clear).
    ///
    /// # Errors
    ///
    /// As [`Region::lock`].
    pub fn event(&self, name: &str) -> Result<Event> {
        let object = Object::open(self, name, &Spec::plain(Kind::Event), |_| {})?;
        Ok(Event { object })
    }
}

/// An `Event` travels to a spawned child by region and name.
impl crate::Transfer for Event {
    fn encode(&self, out: &mut crate::Encoder) -> Result<()> {
        out.object(&self.object)
    }
    fn decode(input: &mut crate::Decoder) -> Result<Self> {
        let (region, name) = input.object()?;
        region.event(&name)
    }
}
