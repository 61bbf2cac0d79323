//! Kernel writes: client write requests go to the kernel through the worker process (or, in
//! [`WriterMode::Thread`], a dedicated writer thread). The kernel's reply bytes (ack or error,
//! with extended-ack text) come back to the client; the change itself reaches the tables
//! through events.
//!
//! # Worker mode
//! One long-lived thread, the *writer*, owns the [`Worker`] (the worker's parent-death signal
//! follows the thread that spawned it). Client threads hand it jobs over a channel and ring
//! an eventfd; the writer submits each job at once with the worker's non-blocking
//! [`Worker::submit`] over the ring transport, so the requests of different clients are in
//! flight together, and it polls the worker's descriptor (ring doorbell, channel hang-up and
//! the worker's pidfd) with a timeout at the oldest job's deadline. Each reply goes back to
//! the client that submitted the job (matched by the job's id, not by arrival), so every
//! client sees its replies in its own order.
//!
//! Failures:
//! - A job not answered within [`MirrorConfig::write_timeout`](crate::MirrorConfig) fails
//!   with `ETIMEDOUT`; the worker (stopped, or stuck in the kernel) is killed and a fresh one
//!   started. Jobs queued behind the late one had not started (the worker runs jobs one at a
//!   time, in order): they go to the fresh worker.
//! - A worker that dies fails the job it was running with `EIO` (it may or may not have been
//!   applied); the jobs queued behind it had not started and go to the fresh worker. A worker
//!   that dies while idle is noticed through its pidfd or the channel's hang-up and restarted
//!   at once, so the next write finds a live worker.
//!
//! In the worker, each protocol's kernel socket is an `nlkit_socket::Socket`: datagrams not
//! sent by the kernel are dropped, and replies are matched to requests by the socket's own
//! sequence numbers ([`Socket::transact_raw`]).

use std::cell::RefCell;
use std::os::fd::OwnedFd;
use std::sync::mpsc::{channel, sync_channel, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nlkit_socket::{Protocol, Socket};
use nlkit_wire::consts::*;
use nlkit_worker::{HandlerError, Registry, Response};

use crate::metrics::Metrics;
use crate::MirrorError;

mod pipeline;
use pipeline::WorkerWriter;

/// Worker handler id and name of the netlink transaction the mirror submits.
pub const WORKER_HANDLER_ID: u16 = 0x6e6c;
/// See [`WORKER_HANDLER_ID`].
pub const WORKER_HANDLER_NAME: &str = "nlkit-mirror.netlink-transact";

/// Where kernel writes run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriterMode {
    /// In the worker process (`nlkit-worker`). The binary must call
    /// `nlkit_worker::maybe_run_worker(nlkit_mirror::worker_registry)` first thing in `main`.
    Worker,
    /// In a dedicated thread of the mirror process (tests, or where a worker cannot be used).
    /// A write that misses its deadline still fails, but the thread cannot be replaced.
    Thread,
    /// Write requests are refused with `EPERM` (a read-only mirror).
    Disabled,
}

/// A kernel socket's receive timeout, a last resort for [`WriterMode::Thread`] (in worker
/// mode the deadline kills the worker long before).
const KERNEL_RECV_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a client waits beyond its deadline for the writer to answer (the writer may be
/// starting a fresh worker, which has its own start-up timeout).
const CLIENT_GRACE: Duration = Duration::from_secs(15);

thread_local! {
    /// Per thread (per worker process): the route and netfilter sockets, opened on first use.
    static SOCKETS: RefCell<[Option<Socket>; 2]> = const { RefCell::new([None, None]) };
}

/// Runs one kernel transaction: `payload[0]` is the protocol (`NETLINK_ROUTE` or
/// `NETLINK_NETFILTER`), the rest the request messages, with the client's sequence numbers.
/// Returns the kernel's reply messages, verbatim except that sequence numbers are the
/// client's again (see [`Socket::transact_raw`]).
///
/// ```no_run
/// use nlkit_wire::{consts::*, IfInfoMsg, MessageBuilder};
/// let mut req = MessageBuilder::new();
/// req.begin(RTM_GETLINK, NLM_F_REQUEST, 7);
/// req.header(&IfInfoMsg { index: 1, ..Default::default() });
/// req.finish().unwrap();
/// let mut payload = vec![NETLINK_ROUTE as u8];
/// payload.extend_from_slice(req.as_bytes());
/// let reply = nlkit_mirror::kernel_transact(&payload).unwrap();
/// assert!(!reply.is_empty());
/// ```
pub fn kernel_transact(payload: &[u8]) -> Result<Vec<u8>, nlkit_socket::Error> {
    let (&proto, req) = payload
        .split_first()
        .ok_or(nlkit_socket::Error::InvalidRequest("empty write request"))?;
    let (slot, protocol) = match i32::from(proto) {
        NETLINK_ROUTE => (0, Protocol::Route),
        NETLINK_NETFILTER => (1, Protocol::Netfilter),
        _ => {
            return Err(nlkit_socket::Error::InvalidRequest(
                "unsupported netlink protocol (NETLINK_ROUTE or NETLINK_NETFILTER)",
            ))
        }
    };
    SOCKETS.with(|s| {
        let mut s = s.borrow_mut();
        let sock = match &mut s[slot] {
            Some(sock) => sock,
            empty => {
                let sock = Socket::open(protocol)?;
                let _ = rustix::net::sockopt::set_socket_timeout(
                    &sock,
                    rustix::net::sockopt::Timeout::Recv,
                    Some(KERNEL_RECV_TIMEOUT),
                );
                empty.insert(sock)
            }
        };
        let dropped = sock.stats().foreign_dropped;
        let result = sock.transact_raw(req);
        let now = sock.stats().foreign_dropped;
        if now > dropped {
            // The worker has no log of its own: stderr is the mirror's.
            eprintln!(
                "nlkit-mirror worker {}: dropped {} datagram(s) not sent by the kernel on its {protocol:?} socket (port {}); {now} so far",
                std::process::id(),
                now - dropped,
                sock.port_id(),
            );
        }
        match result {
            Ok(r) => Ok(r),
            Err(e) => {
                // A socket that failed mid-transaction may hold stale replies: drop it.
                s[slot] = None;
                Err(e)
            }
        }
    })
}

/// The worker-side handlers of the mirror. Call
/// `nlkit_worker::maybe_run_worker(nlkit_mirror::worker_registry)` first thing in the `main` of
/// any binary that runs a mirror with [`WriterMode::Worker`].
///
/// ```no_run
/// // First thing in `main`:
/// nlkit_worker::maybe_run_worker(nlkit_mirror::worker_registry);
/// // ... then parse arguments and start the mirror ...
/// ```
pub fn worker_registry() -> Registry {
    register_worker_handlers(Registry::new())
}

/// Adds the mirror's handlers to an existing worker registry.
pub fn register_worker_handlers(r: Registry) -> Registry {
    r.register(WORKER_HANDLER_ID, WORKER_HANDLER_NAME, |req| {
        kernel_transact(req.payload)
            .map(Response::bytes)
            .map_err(|e| HandlerError::with_errno(e.errno().unwrap_or(libc::EIO), error_text(&e)))
    })
}

/// What a write failed with: an errno and an extended-ack message for the client (the typed
/// error ends here: it becomes a netlink error message on the client's socket).
type WriteError = (i32, String);

/// An error and its causes as one line (`what: cause: cause`), for the client's ext-ack text.
fn error_text(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// A failed write as the client sees it: the errno behind `e` (`EIO` when it has none) and
/// `context: e`.
fn write_failed(context: &str, e: &nlkit_worker::WorkerError) -> WriteError {
    let errno = match e {
        nlkit_worker::WorkerError::Handler(h) => h.errno.unwrap_or(libc::EIO),
        _ => libc::EIO,
    };
    (errno, format!("{context}: {}", error_text(e)))
}

struct Job {
    payload: Vec<u8>,
    deadline: Instant,
    reply: SyncSender<Result<Vec<u8>, WriteError>>,
}

/// The server's handle on the write path; shared by every client thread.
///
/// Concurrency contract: `tx` and `wake` are immutable after construction; `Sender` is `Sync`,
/// and the eventfd is only written.
pub(crate) struct Writer {
    tx: Option<Sender<Job>>,
    /// Rung after each job is queued (worker mode), and on drop so the writer sees the end.
    wake: Option<Arc<OwnedFd>>,
    timeout: Duration,
    /// How long a client waits for its answer: the deadline, plus (worker mode) time for the
    /// writer to start a fresh worker.
    client_wait: Duration,
}

impl Writer {
    /// Starts the writer thread in `mode`; writes not answered within `timeout` fail.
    pub(crate) fn start(
        mode: WriterMode,
        timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> Result<Self, MirrorError> {
        if mode == WriterMode::Disabled {
            return Ok(Writer {
                tx: None,
                wake: None,
                timeout,
                client_wait: timeout,
            });
        }
        let (tx, rx) = channel::<Job>();
        let (ready_tx, ready_rx) = sync_channel::<Result<(), MirrorError>>(1);
        let wake = Arc::new(
            rustix::event::eventfd(
                0,
                rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK,
            )
            .map_err(std::io::Error::from)?,
        );
        let thread_wake = wake.clone();
        std::thread::Builder::new()
            .name("mirror-writer".into())
            .spawn(move || match mode {
                WriterMode::Worker => {
                    WorkerWriter::new(rx, thread_wake, timeout, metrics).run(ready_tx)
                }
                _ => writer_thread(rx, timeout, ready_tx),
            })?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Writer {
                tx: Some(tx),
                wake: Some(wake),
                timeout,
                client_wait: match mode {
                    WriterMode::Worker => timeout + CLIENT_GRACE,
                    _ => timeout,
                },
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => {
                Err(std::io::Error::other("the writer thread exited before it started").into())
            }
        }
    }

    /// Submits a transaction and waits for the kernel's reply bytes (or the deadline).
    pub(crate) fn transact(&self, proto: u8, req: &[u8]) -> Result<Vec<u8>, WriteError> {
        self.submit(proto, req)?.wait()
    }

    /// Submits a transaction without waiting. A caller that submits several writes and then
    /// waits for each in turn has them all in flight together, answered in its order.
    pub(crate) fn submit(&self, proto: u8, req: &[u8]) -> Result<PendingWrite, WriteError> {
        let tx = self
            .tx
            .as_ref()
            .ok_or((libc::EPERM, String::from("this mirror is read-only")))?;
        let mut payload = Vec::with_capacity(req.len() + 1);
        payload.push(proto);
        payload.extend_from_slice(req);
        let (rtx, rrx) = sync_channel(1);
        let now = Instant::now();
        tx.send(Job {
            payload,
            deadline: now + self.timeout,
            reply: rtx,
        })
        .map_err(|_| writer_gone())?;
        if let Some(w) = &self.wake {
            ring(w);
        }
        Ok(PendingWrite {
            rx: rrx,
            give_up: now + self.client_wait,
            timeout: self.timeout,
        })
    }
}

/// A write handed to the writer: [`wait`](PendingWrite::wait) for the kernel's answer.
pub(crate) struct PendingWrite {
    rx: Receiver<Result<Vec<u8>, WriteError>>,
    /// When the client stops waiting (the writer answers well before, see `client_wait`).
    give_up: Instant,
    timeout: Duration,
}

impl PendingWrite {
    /// The kernel's reply bytes, or why the write failed.
    pub(crate) fn wait(self) -> Result<Vec<u8>, WriteError> {
        let left = self.give_up.saturating_duration_since(Instant::now());
        match self.rx.recv_timeout(left) {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) => Err(timed_out_waiting(self.timeout)),
            Err(RecvTimeoutError::Disconnected) => Err(writer_gone()),
        }
    }
}

fn writer_gone() -> WriteError {
    (libc::EIO, String::from("the mirror's writer is gone"))
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Close the channel first, then wake the writer so it sees the end.
        self.tx = None;
        if let Some(w) = &self.wake {
            ring(w);
        }
    }
}

fn ring(fd: &OwnedFd) {
    // EAGAIN (counter saturated) still leaves the eventfd readable.
    let _ = rustix::io::write(fd, &1u64.to_ne_bytes());
}

/// A write the worker held past its deadline (the worker is then killed and replaced).
fn timed_out(timeout: Duration) -> WriteError {
    (
        libc::ETIMEDOUT,
        format!(
            "kernel write timed out after {timeout:?}: the mirror's worker process did not answer \
             (stopped or stuck in the kernel); it was killed and is being restarted; the write \
             may or may not have been applied"
        ),
    )
}

/// A write whose deadline passed before it reached the kernel.
fn timed_out_unsent(timeout: Duration) -> WriteError {
    (
        libc::ETIMEDOUT,
        format!(
            "kernel write timed out after {timeout:?} before it reached the kernel (the mirror's \
             writer was busy with earlier writes or restarting its worker); it was not applied"
        ),
    )
}

/// The client stopped waiting for the writer.
fn timed_out_waiting(timeout: Duration) -> WriteError {
    (
        libc::ETIMEDOUT,
        format!(
            "kernel write timed out after {timeout:?} waiting for the mirror's writer; the write \
             may or may not have been applied"
        ),
    )
}

/// [`WriterMode::Thread`]: run each job in this thread, in order.
fn writer_thread(rx: Receiver<Job>, timeout: Duration, ready: SyncSender<Result<(), MirrorError>>) {
    let _ = ready.send(Ok(()));
    for job in rx {
        if Instant::now() >= job.deadline {
            // Its client has given up (queued behind a slow write): do not apply it late.
            let _ = job.reply.send(Err(timed_out_unsent(timeout)));
            continue;
        }
        let r = kernel_transact(&job.payload).map_err(|e| {
            (
                e.errno().unwrap_or(libc::EIO),
                format!("kernel write failed: {}", error_text(&e)),
            )
        });
        let _ = job.reply.send(r);
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use nlkit_worker::{HandlerError, ProtocolError, WorkerError};

    use super::*;

    #[test]
    fn mirror_errors_chain_to_the_socket_and_the_kernel() {
        let kernel = nlkit_wire::KernelError {
            errno: libc::EPERM,
            msg: Some("Operation not permitted".into()),
            ..Default::default()
        };
        let e = MirrorError::Dump(nlkit_socket::Error::Kernel(kernel.clone()));
        let socket = e
            .source()
            .and_then(|s| s.downcast_ref::<nlkit_socket::Error>());
        assert_eq!(socket.and_then(|s| s.kernel()), Some(&kernel));
        assert_eq!(
            error_text(&e),
            "cannot dump the kernel's tables: Error: Operation not permitted."
        );

        let e = MirrorError::WorkerStart(WorkerError::from(ProtocolError::Truncated));
        let worker = e.source().and_then(|s| s.downcast_ref::<WorkerError>());
        assert!(worker.is_some_and(WorkerError::is_worker_gone));
        assert_eq!(
            error_text(&e),
            "cannot start the mirror's worker process: worker protocol error: message or \
             control data truncated"
        );
    }

    #[test]
    fn write_errors_keep_the_errno() {
        let e = WorkerError::Handler(HandlerError::with_errno(libc::ENOBUFS, "reply lost"));
        assert_eq!(
            write_failed("kernel write failed", &e),
            (
                libc::ENOBUFS,
                "kernel write failed: handler failed: reply lost".to_owned()
            )
        );
        let e = WorkerError::Backpressure(8);
        assert_eq!(write_failed("x", &e).0, libc::EIO);
        let e = kernel_transact(&[]).unwrap_err();
        assert!(matches!(e, nlkit_socket::Error::InvalidRequest(_)), "{e:?}");
        let e = kernel_transact(&[99, 0]).unwrap_err();
        assert!(matches!(e, nlkit_socket::Error::InvalidRequest(_)), "{e:?}");
    }
}
