//! Synchronisation shim: `loom` atomics under `cfg(loom)`, `std` otherwise.
//!
//! Every atomic that the shared structures are made of comes from here, so the loom models in
//! `tests/loom_*.rs` explore the very code that ships.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU64, Ordering};
#[cfg(not(loom))]
#[allow(unused_imports)] // skeleton: used once the map and the feed are written
pub(crate) use std::sync::atomic::{fence, AtomicU64, Ordering};

/// Called in retry loops: a CPU pause normally, a scheduling point under loom.
#[inline]
#[allow(dead_code)] // skeleton
pub(crate) fn spin() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::hint::spin_loop();
}
