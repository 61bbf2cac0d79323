//! Time source for conntrack timeouts: wrapping `u32` milliseconds, like the kernel's jiffies.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Where a [`ConnTable`](crate::ConnTable) gets "now" from, in wrapping milliseconds.
///
/// ```
/// use nlkit_table::{Clock, ManualClock};
/// let manual = ManualClock::new(1000);
/// let clock = Clock::Manual(manual.clone());
/// manual.advance(500);
/// assert_eq!(clock.now_ms(), 1500);
/// assert!(Clock::monotonic().now_ms() < 1000);
/// ```
#[derive(Debug, Clone)]
pub enum Clock {
    /// Milliseconds since the given instant.
    Monotonic(Instant),
    /// A clock the caller moves (for tests and simulations).
    Manual(ManualClock),
}

impl Clock {
    /// A monotonic clock starting at zero now.
    pub fn monotonic() -> Self {
        Clock::Monotonic(Instant::now())
    }

    /// The current time in wrapping milliseconds.
    pub fn now_ms(&self) -> u32 {
        match self {
            Clock::Monotonic(start) => start.elapsed().as_millis() as u32,
            Clock::Manual(m) => m.now_ms(),
        }
    }
}

/// A shared, manually advanced millisecond clock.
///
/// ```
/// let c = nlkit_table::ManualClock::new(0);
/// c.set(10);
/// c.advance(5);
/// assert_eq!(c.now_ms(), 15);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicU32>);

impl ManualClock {
    /// A clock reading `start_ms`.
    pub fn new(start_ms: u32) -> Self {
        Self(Arc::new(AtomicU32::new(start_ms)))
    }
    /// The current reading.
    pub fn now_ms(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }
    /// Sets the reading.
    pub fn set(&self, ms: u32) {
        self.0.store(ms, Ordering::Relaxed);
    }
    /// Moves the clock forward (wrapping).
    pub fn advance(&self, ms: u32) {
        self.0.fetch_add(ms, Ordering::Relaxed);
    }
}

/// Whether an absolute expiry stamp has passed (wrapping signed difference, as the kernel's
/// `nf_ct_is_expired`).
#[inline]
pub(crate) fn expired(expires_at: u32, now: u32) -> bool {
    (expires_at.wrapping_sub(now) as i32) <= 0
}
