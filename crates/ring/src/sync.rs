//! Synchronisation shim: `core` atomics normally, `loom`'s under `--cfg loom`.
//!
//! Every atomic and every non-atomic frame body the ring protocol touches goes through this
//! module, so the `loom` model (`tests/loom_ring.rs`) checks the same code that runs in
//! production.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, Ordering};

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{AtomicU32, Ordering};

/// An `UnsafeCell` with loom's closure-based access API.
///
/// Under `--cfg loom` this is `loom::cell::UnsafeCell`, which reports concurrent
/// non-atomic accesses that the ring's status-word protocol failed to order.
#[cfg(loom)]
pub(crate) type BodyCell<T> = loom::cell::UnsafeCell<T>;

/// An `UnsafeCell` with loom's closure-based access API (plain `core` version).
#[cfg(not(loom))]
#[derive(Debug)]
pub(crate) struct BodyCell<T>(core::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> BodyCell<T> {
    pub(crate) fn new(value: T) -> Self {
        Self(core::cell::UnsafeCell::new(value))
    }

    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}
