//! Synchronisation primitives, swapped for `loom`'s under `--cfg loom` so the shared dump's
//! protocol can be model-checked.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU64, Ordering};

/// A mutex with `parking_lot`'s infallible `lock()`, backed by `loom`'s under `--cfg loom`.
#[derive(Debug)]
pub(crate) struct Mutex<T>(
    #[cfg(loom)] loom::sync::Mutex<T>,
    #[cfg(not(loom))] parking_lot::Mutex<T>,
);

#[cfg(not(loom))]
pub(crate) type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;
#[cfg(loom)]
pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

impl<T> Mutex<T> {
    pub(crate) fn new(v: T) -> Self {
        #[cfg(loom)]
        return Mutex(loom::sync::Mutex::new(v));
        #[cfg(not(loom))]
        return Mutex(parking_lot::Mutex::new(v));
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        #[cfg(loom)]
        // A panic while holding the lock already fails the model; poisoning adds nothing.
        return self.0.lock().unwrap_or_else(|p| p.into_inner());
        #[cfg(not(loom))]
        return self.0.lock();
    }

    pub(crate) fn into_inner(self) -> T {
        #[cfg(loom)]
        return self.0.into_inner().unwrap_or_else(|p| p.into_inner());
        #[cfg(not(loom))]
        return self.0.into_inner();
    }
}
