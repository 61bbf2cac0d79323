//! Waiting for and waking readers on the ring's futex word (DESIGN.md §4.4).
//!
//! The futex word is the low 32 bits of a 64-bit header word that the writer bumps on every
//! publish. The futex is *shared* (no `FUTEX_PRIVATE_FLAG`): the mapping is shared between
//! processes, so the kernel keys the futex by the memfd's page, not by an address in one
//! process. `FUTEX_WAIT` only reads the word, so it works on a reader's `PROT_READ` mapping.
//! Under `cfg(loom)` there is no kernel: waking is a no-op and waiting yields to the model.

use std::time::Duration;

use crate::sync::AtomicU64;
use crate::ShmError;

/// The futex value of a word: its low 32 bits (what the kernel compares).
pub(crate) fn futex_value(word: u64) -> u32 {
    word as u32
}

/// The low half of `word`, as the kernel's 32-bit futex word.
#[cfg(not(loom))]
fn low_half(word: &AtomicU64) -> &std::sync::atomic::AtomicU32 {
    let p = (word as *const AtomicU64).cast::<std::sync::atomic::AtomicU32>();
    // The low 32 bits are the first four bytes on little-endian, the last four on big-endian.
    #[cfg(target_endian = "big")]
    // SAFETY: an `AtomicU64` is 8 bytes, so `p + 1` (4 bytes on) is inside it.
    let p = unsafe { p.add(1) };
    // Nothing in Rust ever loads or stores through the reference made here: it only gives the
    // kernel the address of the futex word, which the kernel reads atomically; all of our
    // accesses go through the `AtomicU64`.
    // SAFETY: the half lies inside `word` (8-byte aligned, so the half is 4-byte aligned, as
    // `AtomicU32` needs) and lives as long as it.
    unsafe { &*p }
}

/// Wakes every thread of every process waiting on `word` (one system call).
#[cfg(not(loom))]
pub(crate) fn wake_all(word: &AtomicU64) {
    use rustix::thread::futex;
    // An error (there is none for a valid address) would only mean nobody is woken; readers
    // bound their waits with timeouts if they care.
    let _ = futex::wake(low_half(word), futex::Flags::empty(), i32::MAX as u32);
}

/// Under loom there is no kernel to wake anybody: waiters poll.
#[cfg(loom)]
pub(crate) fn wake_all(_word: &AtomicU64) {}

/// Sleeps while the futex value of `word` is `seen`, at most `timeout` (`None`: no limit).
/// Returns on a wake-up, a change of the value, a signal or the timeout: the caller checks.
#[cfg(not(loom))]
pub(crate) fn wait(word: &AtomicU64, seen: u32, timeout: Option<Duration>) -> Result<(), ShmError> {
    use rustix::io::Errno;
    use rustix::thread::futex;
    let ts = timeout.map(|t| futex::Timespec {
        tv_sec: t.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: t.subsec_nanos().into(),
    });
    match futex::wait(low_half(word), futex::Flags::empty(), seen, ts.as_ref()) {
        Ok(()) | Err(Errno::AGAIN) | Err(Errno::INTR) | Err(Errno::TIMEDOUT) => Ok(()),
        Err(e) => Err(ShmError::os("futex wait", e)),
    }
}

/// Under loom: give the writer a chance to run.
#[cfg(loom)]
pub(crate) fn wait(
    _word: &AtomicU64,
    _seen: u32,
    _timeout: Option<Duration>,
) -> Result<(), ShmError> {
    loom::thread::yield_now();
    Ok(())
}
