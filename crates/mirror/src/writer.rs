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
use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::sync::mpsc::{channel, sync_channel, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nlkit_socket::{Protocol, Socket};
use nlkit_wire::consts::*;
use nlkit_worker::{HandlerError, Opcode, Registry, Response, Worker, WorkerConfig, WorkerError};

use crate::metrics::Metrics;

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

/// After a failed worker start, how long to wait before trying again with no write waiting.
const RESTART_RETRY: Duration = Duration::from_secs(1);

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
pub fn kernel_transact(payload: &[u8]) -> Result<Vec<u8>, String> {
    let (&proto, req) = payload.split_first().ok_or("empty request")?;
    let (slot, protocol) = match i32::from(proto) {
        NETLINK_ROUTE => (0, Protocol::Route),
        NETLINK_NETFILTER => (1, Protocol::Netfilter),
        _ => return Err(format!("unsupported netlink protocol {proto}")),
    };
    SOCKETS.with(|s| {
        let mut s = s.borrow_mut();
        if s[slot].is_none() {
            let sock = Socket::open(protocol).map_err(|e| e.to_string())?;
            let _ = rustix::net::sockopt::set_socket_timeout(
                &sock,
                rustix::net::sockopt::Timeout::Recv,
                Some(KERNEL_RECV_TIMEOUT),
            );
            s[slot] = Some(sock);
        }
        let sock = s[slot].as_mut().ok_or("no socket")?;
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
                Err(e.to_string())
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
            .map_err(HandlerError)
    })
}

/// What a write failed with: an errno and an extended-ack message for the client.
type WriteError = (i32, String);

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
    ) -> std::io::Result<Self> {
        if mode == WriterMode::Disabled {
            return Ok(Writer {
                tx: None,
                wake: None,
                timeout,
                client_wait: timeout,
            });
        }
        let (tx, rx) = channel::<Job>();
        let (ready_tx, ready_rx) = sync_channel::<Result<(), String>>(1);
        let wake = Arc::new(rustix::event::eventfd(
            0,
            rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK,
        )?);
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
            Ok(Err(e)) => Err(std::io::Error::other(e)),
            Err(_) => Err(std::io::Error::other("writer thread exited")),
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
fn writer_thread(rx: Receiver<Job>, timeout: Duration, ready: SyncSender<Result<(), String>>) {
    let _ = ready.send(Ok(()));
    for job in rx {
        if Instant::now() >= job.deadline {
            // Its client has given up (queued behind a slow write): do not apply it late.
            let _ = job.reply.send(Err(timed_out_unsent(timeout)));
            continue;
        }
        let r = kernel_transact(&job.payload)
            .map_err(|e| (libc::EIO, format!("kernel write failed: {e}")));
        let _ = job.reply.send(r);
    }
}

/// A job handed to the worker.
struct InFlight {
    id: u64,
    job: Job,
    /// Its deadline passed: it fails with `ETIMEDOUT` when the killed worker gives it back.
    expired: bool,
}

/// Results delivered by the worker's callbacks: (job id, result).
type Done = Rc<RefCell<VecDeque<(u64, Result<Vec<u8>, WorkerError>)>>>;

/// [`WriterMode::Worker`]: the writer thread's state (see the module docs).
///
/// Concurrency contract: owned by the writer thread; the worker's callbacks run on it too.
struct WorkerWriter {
    rx: Receiver<Job>,
    wake: Arc<OwnedFd>,
    timeout: Duration,
    metrics: Arc<Metrics>,
    worker: Option<(Worker, Opcode)>,
    /// Jobs waiting for a (fresh) worker, in order.
    backlog: VecDeque<Job>,
    /// Jobs submitted to the current worker, in submission order.
    in_flight: VecDeque<InFlight>,
    done: Done,
    next_id: u64,
    /// The clients' channel closed: finish what is in flight, then stop.
    closing: bool,
    /// Set while the worker's failures come from our kill for a missed deadline.
    killing: bool,
    /// After a failed start: when to try again without a job waiting.
    retry_at: Option<Instant>,
}

impl WorkerWriter {
    fn new(
        rx: Receiver<Job>,
        wake: Arc<OwnedFd>,
        timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        WorkerWriter {
            rx,
            wake,
            timeout,
            metrics,
            worker: None,
            backlog: VecDeque::new(),
            in_flight: VecDeque::new(),
            done: Rc::default(),
            next_id: 0,
            closing: false,
            killing: false,
            retry_at: None,
        }
    }

    fn spawn() -> Result<(Worker, Opcode), String> {
        let w = Worker::spawn(WorkerConfig::default())
            .map_err(|e| format!("cannot start the worker process: {e}"))?;
        let op = w.opcode(WORKER_HANDLER_NAME).map_err(|e| {
            format!("worker lacks {WORKER_HANDLER_NAME} (call maybe_run_worker(nlkit_mirror::worker_registry) in main): {e}")
        })?;
        Ok((w, op))
    }

    fn run(mut self, ready: SyncSender<Result<(), String>>) {
        match Self::spawn() {
            Ok(w) => {
                self.worker = Some(w);
                let _ = ready.send(Ok(()));
            }
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        }
        loop {
            self.take_jobs();
            self.ensure_worker();
            self.submit_backlog();
            self.pump();
            self.expire();
            if self.closing && self.in_flight.is_empty() && self.backlog.is_empty() {
                return;
            }
            self.sleep();
        }
    }

    /// Moves every queued client job to the backlog.
    fn take_jobs(&mut self) {
        loop {
            match self.rx.try_recv() {
                Ok(job) => self.backlog.push_back(job),
                Err(std::sync::mpsc::TryRecvError::Empty) => return,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    self.closing = true;
                    return;
                }
            }
        }
    }

    /// Replaces a dead worker (at once, even when idle, so the next write finds a live one).
    /// When no worker can be started, the waiting jobs fail.
    fn ensure_worker(&mut self) {
        if !self.needs_restart() {
            return;
        }
        if let Some((mut old, _)) = self.worker.take() {
            // Deliver the dead worker's failures before anything goes to a new one.
            let _ = old.run();
            self.deliver();
            self.metrics
                .restarts
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(pid = old.pid(), "worker process gone; starting a new one");
        }
        match Self::spawn() {
            Ok(w) => {
                self.worker = Some(w);
                self.retry_at = None;
            }
            Err(e) => {
                tracing::error!(error = %e, "worker restart failed");
                self.retry_at = Some(Instant::now() + RESTART_RETRY);
                for job in self.backlog.drain(..) {
                    let _ = job.reply.send(Err((libc::EIO, e.clone())));
                }
            }
        }
    }

    /// Whether a worker must be started now: none is alive, and a job waits (or the last
    /// failed start is old enough to try again), unless the writer is closing idle.
    fn needs_restart(&self) -> bool {
        let alive = self.worker.as_ref().is_some_and(|(w, _)| w.is_alive());
        if alive || (self.closing && self.backlog.is_empty()) {
            return false;
        }
        !self.backlog.is_empty() || self.retry_at.is_none_or(|t| t <= Instant::now())
    }

    /// Hands every backlog job to the worker.
    fn submit_backlog(&mut self) {
        let Some((worker, op)) = self.worker.as_mut() else {
            return;
        };
        while let Some(job) = self.backlog.pop_front() {
            let id = self.next_id;
            self.next_id += 1;
            let done = self.done.clone();
            let submitted = worker.submit(*op, &job.payload, Vec::new(), move |r| {
                done.borrow_mut()
                    .push_back((id, r.map(|reply| reply.payload)));
            });
            match submitted {
                Ok(_) => self.in_flight.push_back(InFlight {
                    id,
                    job,
                    expired: false,
                }),
                Err(WorkerError::Backpressure(_)) => {
                    // Full: the rest waits for replies to make room.
                    self.backlog.push_front(job);
                    return;
                }
                Err(e) => {
                    let _ = job
                        .reply
                        .send(Err((libc::EIO, format!("kernel write failed: {e}"))));
                }
            }
        }
    }

    /// Runs the worker's loop and passes its results on.
    fn pump(&mut self) {
        if let Some((w, _)) = self.worker.as_mut() {
            if let Err(e) = w.run() {
                tracing::warn!(error = %e, "worker channel failed; killing the worker");
                w.kill();
                let _ = w.run();
            }
        }
        self.deliver();
    }

    /// Sends each finished job's result to its client.
    ///
    /// The worker runs jobs one at a time, in order, and its replies arrive in order: when it
    /// is gone, only the first job it did not answer can have started. That one fails; the
    /// jobs behind it go to the next worker.
    fn deliver(&mut self) {
        let mut requeue = Vec::new();
        let mut failed_one = false;
        loop {
            let Some((id, result)) = self.done.borrow_mut().pop_front() else {
                break;
            };
            let Some(pos) = self.in_flight.iter().position(|f| f.id == id) else {
                continue;
            };
            let Some(f) = self.in_flight.remove(pos) else {
                continue;
            };
            let r = match result {
                Ok(bytes) => Ok(bytes),
                Err(_) if f.expired => Err(timed_out(self.timeout)),
                Err(e) if e.is_worker_gone() && (self.killing || failed_one) => {
                    // Queued behind the late or interrupted job: never started. The fresh
                    // worker runs it.
                    requeue.push(f.job);
                    continue;
                }
                Err(e) if e.is_worker_gone() => {
                    failed_one = true;
                    Err((
                        libc::EIO,
                        format!(
                            "the mirror's worker process died during the write ({e}); it is being \
                         restarted; the write may or may not have been applied"
                        ),
                    ))
                }
                Err(e) => Err((libc::EIO, format!("kernel write failed: {e}"))),
            };
            let _ = f.job.reply.send(r);
        }
        for job in requeue.into_iter().rev() {
            self.backlog.push_front(job);
        }
    }

    /// Fails the jobs whose deadline passed: those still waiting for a worker at once; for a
    /// job the worker holds, the worker is killed (and replaced by `ensure_worker`).
    fn expire(&mut self) {
        let now = Instant::now();
        let (late, waiting): (Vec<Job>, Vec<Job>) =
            self.backlog.drain(..).partition(|j| j.deadline <= now);
        self.backlog.extend(waiting);
        for job in late {
            let _ = job.reply.send(Err(timed_out_unsent(self.timeout)));
        }
        if self.in_flight.front().is_none_or(|f| f.job.deadline > now) {
            return;
        }
        for f in self.in_flight.iter_mut().filter(|f| f.job.deadline <= now) {
            f.expired = true;
        }
        if let Some((w, _)) = self.worker.as_mut() {
            tracing::warn!(
                pid = w.pid(),
                timeout = ?self.timeout,
                "worker missed a write deadline; killing it"
            );
            self.killing = true;
            w.kill();
            let _ = w.run();
        }
        self.deliver();
        self.killing = false;
        // Anything the kill did not give back cannot be answered any more.
        for f in self.in_flight.drain(..) {
            let r = if f.expired {
                Err(timed_out(self.timeout))
            } else {
                Err((libc::EIO, "the mirror's worker process was replaced".into()))
            };
            let _ = f.job.reply.send(r);
        }
    }

    /// Waits for a client job, the worker, or the oldest deadline.
    fn sleep(&mut self) {
        if self.needs_restart() {
            return;
        }
        let deadline = self
            .in_flight
            .iter()
            .map(|f| f.job.deadline)
            .chain(self.backlog.iter().map(|j| j.deadline))
            .chain(self.retry_at)
            .min();
        let timeout = deadline.map(|d| {
            let left = d.saturating_duration_since(Instant::now());
            rustix::event::Timespec::try_from(left).unwrap_or(rustix::event::Timespec {
                tv_sec: 1,
                tv_nsec: 0,
            })
        });
        let worker_fd = self.worker.as_ref().filter(|(w, _)| w.is_alive());
        let mut fds = vec![rustix::event::PollFd::new(
            &*self.wake,
            rustix::event::PollFlags::IN,
        )];
        if let Some((w, _)) = worker_fd {
            fds.push(rustix::event::PollFd::new(w, rustix::event::PollFlags::IN));
        }
        let _ = rustix::event::poll(&mut fds, timeout.as_ref());
        let woken = fds[0].revents().contains(rustix::event::PollFlags::IN);
        drop(fds);
        if woken {
            let mut b = [0u8; 8];
            let _ = rustix::io::read(&*self.wake, &mut b);
        }
    }
}
