//! [`Shutdown`]: the mirror's one stop signal, a pipe that becomes readable once and stays so.
//!
//! Every loop of the mirror that waits (the server's poll loop, the sync thread's wait on its
//! event sockets and next periodic deadline, the metrics listener, a send to a client that
//! does not read, [`Mirror::run`](crate::Mirror::run)) puts [`Shutdown::fd`]
//! in the same `poll`/`epoll` set as its other descriptors, so stopping wakes it at once: no
//! loop sleeps or polls a flag with a timeout to notice a stop. The pipe is never read, so it
//! is level-triggered for every waiter at once and for good; [`Shutdown::trigger`] is a flag
//! store and one `write(2)`, which is async-signal-safe, and a signal handler can write the
//! pipe directly through [`Shutdown::signal_pipe`].
//!
//! A self-pipe rather than an eventfd: `signal_hook::low_level::pipe::register` (what the
//! command line uses) writes one byte, which an eventfd refuses.
//!
//! Concurrency contract: the descriptors are immutable after construction; `triggered` is set
//! (`Release`) before the pipe is written, and only ever goes from false to true. A trigger
//! that came through [`signal_pipe`](Shutdown::signal_pipe) writes the pipe only:
//! [`is_triggered`](Shutdown::is_triggered) therefore also looks at the pipe, and
//! [`flag`](Shutdown::flag) is set by the next [`trigger`](Shutdown::trigger) (the mirror
//! calls it as soon as it wakes).

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::pipe::{pipe_with, PipeFlags};

/// A stop signal shared by every thread of a mirror: cheap to clone, pollable, and safe to
/// trigger from a signal handler.
///
/// ```
/// use nlkit_mirror::Shutdown;
/// use std::time::Duration;
///
/// let stop = Shutdown::new()?;
/// let waiter = stop.clone();
/// let t = std::thread::spawn(move || waiter.wait()); // blocks in poll(2), no timeout
/// assert!(!stop.wait_timeout(Duration::from_millis(1)));
/// stop.trigger();
/// t.join().unwrap();
/// assert!(stop.is_triggered());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Readable once triggered; never read.
    read: OwnedFd,
    /// Non-blocking: a full pipe (many triggers) is already readable.
    write: OwnedFd,
    triggered: AtomicBool,
}

impl Shutdown {
    /// A new, untriggered signal (a close-on-exec, non-blocking pipe).
    pub fn new() -> io::Result<Shutdown> {
        let (read, write) = pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
        Ok(Shutdown {
            inner: Arc::new(Inner {
                read,
                write,
                triggered: AtomicBool::new(false),
            }),
        })
    }

    /// Triggers the signal: every waiter wakes, now and later. Idempotent, and
    /// async-signal-safe (an atomic store and one `write(2)`; no allocation, no lock).
    pub fn trigger(&self) {
        self.inner.triggered.store(true, Ordering::Release);
        loop {
            match rustix::io::write(&self.inner.write, &[1]) {
                // Written, or the pipe is full of earlier triggers (readable already).
                Ok(_) | Err(Errno::AGAIN) => return,
                Err(Errno::INTR) => continue,
                Err(_) => return,
            }
        }
    }

    /// Whether the signal was triggered (by [`trigger`](Shutdown::trigger) or through
    /// [`signal_pipe`](Shutdown::signal_pipe)).
    pub fn is_triggered(&self) -> bool {
        self.inner.triggered.load(Ordering::Acquire) || self.wait_for(Some(Duration::ZERO))
    }

    /// The descriptor to poll for `POLLIN`/`EPOLLIN`: readable once triggered, and it stays
    /// readable (never read it).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.inner.read.as_fd()
    }

    /// A flag set by [`trigger`](Shutdown::trigger), for a loop that cannot poll the
    /// descriptor yet. Prefer [`fd`](Shutdown::fd): the flag is not set by a trigger that
    /// came through [`signal_pipe`](Shutdown::signal_pipe) until someone calls `trigger`.
    pub fn flag(&self) -> &AtomicBool {
        &self.inner.triggered
    }

    /// Blocks until the signal is triggered.
    pub fn wait(&self) {
        self.wait_for(None);
    }

    /// Blocks until the signal is triggered or `timeout` passes; returns whether it was
    /// triggered. For periodic work that must also stop promptly (a timer, not a stop poll).
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.wait_for(Some(timeout))
    }

    fn wait_for(&self, timeout: Option<Duration>) -> bool {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        loop {
            let left = match (timeout, deadline) {
                (None, _) | (Some(_), None) => None,
                (Some(_), Some(d)) => Some(d.saturating_duration_since(Instant::now())),
            };
            let ts = left.map(timespec);
            let mut fds = [PollFd::new(&self.inner.read, PollFlags::IN)];
            match poll(&mut fds, ts.as_ref()) {
                Ok(n) if n > 0 => return true,
                Ok(_) => return false,
                Err(Errno::INTR) => continue,
                // poll on a pipe we own cannot fail otherwise; report "not triggered".
                Err(_) => return self.inner.triggered.load(Ordering::Acquire),
            }
        }
    }

    /// A duplicate of the pipe's write end, for a signal handler that writes one byte to it
    /// (`signal_hook::low_level::pipe::register(SIGTERM, shutdown.signal_pipe()?)`). Such a
    /// trigger writes the pipe only; see the type's concurrency contract.
    pub fn signal_pipe(&self) -> io::Result<OwnedFd> {
        Ok(rustix::io::fcntl_dupfd_cloexec(&self.inner.write, 0)?)
    }
}

/// A `poll(2)` timeout.
pub(crate) fn timespec(d: Duration) -> Timespec {
    Timespec {
        tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(d.subsec_nanos()),
    }
}

/// Triggers the shutdown when dropped: a thread that ends (or panics) takes the mirror down
/// with it instead of leaving it half-running.
pub(crate) struct TriggerOnExit(pub Shutdown);

impl Drop for TriggerOnExit {
    fn drop(&mut self) {
        self.0.trigger();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_pipe_triggers() {
        let s = Shutdown::new().unwrap();
        assert!(!s.is_triggered());
        let w = s.signal_pipe().unwrap();
        rustix::io::write(&w, b"X").unwrap();
        assert!(s.is_triggered());
        assert!(!s.flag().load(Ordering::Relaxed));
        s.wait();
        s.trigger();
        assert!(s.flag().load(Ordering::Relaxed));
    }

    #[test]
    fn many_triggers_do_not_block() {
        let s = Shutdown::new().unwrap();
        for _ in 0..100_000 {
            s.trigger();
        }
        assert!(s.wait_timeout(Duration::ZERO));
    }
}
