//! Synchronisation shim: `loom` types under `cfg(loom)`, `std`/`parking_lot` otherwise.
//!
//! Every atomic the lock-free paths touch comes from here, so the loom models in
//! `tests/loom_*.rs` explore the very code that ships.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicPtr, AtomicU32, AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicPtr, AtomicU32, AtomicU64, Ordering};

/// Called in retry loops: a CPU pause normally, a scheduling point under loom.
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::hint::spin_loop();
}

/// Guard of a connection's entry lock ([`ConnRef::state`](crate::ConnRef::state)): `parking_lot`'s normally, loom's under `cfg(loom)`.
#[cfg(not(loom))]
pub type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;
/// Guard of a connection's entry lock ([`ConnRef::state`](crate::ConnRef::state)): `parking_lot`'s normally, loom's under `cfg(loom)`.
#[cfg(loom)]
pub type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

/// A mutex that is `parking_lot::Mutex` normally and `loom::sync::Mutex` under loom.
#[derive(Debug, Default)]
pub(crate) struct Mutex<T> {
    #[cfg(not(loom))]
    inner: parking_lot::Mutex<T>,
    #[cfg(loom)]
    inner: loom::sync::Mutex<T>,
}

impl<T> Mutex<T> {
    pub(crate) fn new(value: T) -> Self {
        Self {
            #[cfg(not(loom))]
            inner: parking_lot::Mutex::new(value),
            #[cfg(loom)]
            inner: loom::sync::Mutex::new(value),
        }
    }

    #[inline]
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        #[cfg(not(loom))]
        return self.inner.lock();
        #[cfg(loom)]
        return self.inner.lock().unwrap_or_else(|e| e.into_inner());
    }
}

/// The lock of a bucket stripe: a test-and-test-and-set spin lock, as the kernel's conntrack
/// uses for its bucket locks. Critical sections are a few loads and stores on one chain, so a
/// waiter spins briefly instead of parking; after many spins it yields the CPU (a holder may
/// have been preempted). Unlock is a plain `Release` store, one atomic read-modify-write fewer
/// per write than a parking mutex (whose unlock must check for parked waiters). Under loom it
/// is loom's mutex, whose acquire/release semantics are the same.
///
/// Written here rather than taken from a crate: `parking_lot`'s raw mutex unlocks with a
/// compare-exchange, and `spin`'s mutex never yields.
#[derive(Debug, Default)]
pub(crate) struct StripeLock {
    #[cfg(not(loom))]
    locked: std::sync::atomic::AtomicBool,
    #[cfg(loom)]
    inner: loom::sync::Mutex<()>,
}

/// Holds a [`StripeLock`]; unlocks on drop.
pub(crate) struct StripeGuard<'a> {
    #[cfg(not(loom))]
    lock: &'a StripeLock,
    #[cfg(loom)]
    _inner: loom::sync::MutexGuard<'a, ()>,
}

impl StripeLock {
    /// Spins (pausing the CPU) this many times before each yield.
    #[cfg(not(loom))]
    const SPINS: u32 = 128;

    #[inline]
    pub(crate) fn lock(&self) -> StripeGuard<'_> {
        #[cfg(not(loom))]
        {
            use std::sync::atomic::Ordering as O;
            // `Acquire` on the winning swap pairs with the `Release` store of the last unlock.
            while self.locked.swap(true, O::Acquire) {
                let mut spins = 0;
                while self.locked.load(O::Relaxed) {
                    if spins < Self::SPINS {
                        spins += 1;
                        std::hint::spin_loop();
                    } else {
                        spins = 0;
                        std::thread::yield_now();
                    }
                }
            }
            StripeGuard { lock: self }
        }
        #[cfg(loom)]
        StripeGuard {
            _inner: self.inner.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }
}

#[cfg(not(loom))]
impl Drop for StripeGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        self.lock
            .locked
            .store(false, std::sync::atomic::Ordering::Release);
    }
}
