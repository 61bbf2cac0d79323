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
