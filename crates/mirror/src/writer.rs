//! Kernel writes: client write requests go to the kernel through the worker process (or, in
//! [`WriterMode::Thread`], a dedicated writer thread), one at a time and in order, so a slow
//! RTNL never blocks a reader. The kernel's reply bytes (ack or error, with extended-ack text)
//! come back to the client; the change itself reaches the tables through events.

use std::cell::RefCell;
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::Arc;

use nlkit_wire::consts::*;
use nlkit_worker::{HandlerError, Registry, Response, Worker, WorkerConfig};

use crate::kernel::KernelSocket;
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
    Thread,
    /// Write requests are refused with `EPERM` (a read-only mirror).
    Disabled,
}

thread_local! {
    static SOCKETS: RefCell<[Option<KernelSocket>; 2]> = const { RefCell::new([None, None]) };
}

/// Runs one kernel transaction: `payload[0]` is the protocol (`NETLINK_ROUTE` or
/// `NETLINK_NETFILTER`), the rest the request messages. Returns the reply bytes.
pub fn kernel_transact(payload: &[u8]) -> Result<Vec<u8>, String> {
    let (&proto, req) = payload.split_first().ok_or("empty request")?;
    let slot = match proto {
        p if i32::from(p) == NETLINK_ROUTE => 0,
        p if i32::from(p) == NETLINK_NETFILTER => 1,
        _ => return Err(format!("unsupported netlink protocol {proto}")),
    };
    SOCKETS.with(|s| {
        let mut s = s.borrow_mut();
        if s[slot].is_none() {
            let sock = KernelSocket::open(i32::from(proto), 0).map_err(|e| e.to_string())?;
            let _ = sock.set_recv_timeout(Some(std::time::Duration::from_secs(60)));
            s[slot] = Some(sock);
        }
        let sock = s[slot].as_mut().ok_or("no socket")?;
        match sock.transact_raw(req) {
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

struct Job {
    payload: Vec<u8>,
    reply: SyncSender<Result<Vec<u8>, String>>,
}

/// The server's handle on the write path. Cloning the sender is what the server-wide lock
/// guards (see `server::registry`).
pub(crate) struct Writer {
    tx: Option<Sender<Job>>,
}

impl Writer {
    /// Starts the writer thread in `mode`.
    pub(crate) fn start(mode: WriterMode, metrics: Arc<Metrics>) -> std::io::Result<Self> {
        if mode == WriterMode::Disabled {
            return Ok(Writer { tx: None });
        }
        let (tx, rx) = channel::<Job>();
        let (ready_tx, ready_rx) = sync_channel::<Result<(), String>>(1);
        std::thread::Builder::new()
            .name("mirror-writer".into())
            .spawn(move || writer_thread(mode, rx, ready_tx, metrics))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Writer { tx: Some(tx) }),
            Ok(Err(e)) => Err(std::io::Error::other(e)),
            Err(_) => Err(std::io::Error::other("writer thread exited")),
        }
    }

    /// Submits a transaction and waits for the kernel's reply bytes.
    pub(crate) fn transact(&self, proto: u8, req: &[u8]) -> Result<Vec<u8>, (i32, String)> {
        let tx = self
            .tx
            .as_ref()
            .ok_or((libc::EPERM, String::from("this mirror is read-only")))?;
        let mut payload = Vec::with_capacity(req.len() + 1);
        payload.push(proto);
        payload.extend_from_slice(req);
        let (rtx, rrx) = sync_channel(1);
        tx.send(Job {
            payload,
            reply: rtx,
        })
        .map_err(|_| (libc::EIO, String::from("mirror writer is gone")))?;
        rrx.recv()
            .map_err(|_| (libc::EIO, String::from("mirror writer is gone")))?
            .map_err(|e| (libc::EIO, format!("kernel write failed: {e}")))
    }
}

fn writer_thread(
    mode: WriterMode,
    rx: Receiver<Job>,
    ready: SyncSender<Result<(), String>>,
    metrics: Arc<Metrics>,
) {
    if mode == WriterMode::Thread {
        let _ = ready.send(Ok(()));
        for job in rx {
            let _ = job.reply.send(kernel_transact(&job.payload));
        }
        return;
    }
    // Worker mode: this long-lived thread spawns and owns the worker (its parent-death signal
    // follows the spawning thread).
    let spawn = || -> Result<(Worker, nlkit_worker::Opcode), String> {
        let w = Worker::spawn(WorkerConfig {
            transport: nlkit_worker::Transport::SocketPair,
            ..WorkerConfig::default()
        })
        .map_err(|e| format!("cannot start the worker process: {e}"))?;
        let op = w.opcode(WORKER_HANDLER_NAME).map_err(|e| {
            format!("worker lacks {WORKER_HANDLER_NAME} (call maybe_run_worker(nlkit_mirror::worker_registry) in main): {e}")
        })?;
        Ok((w, op))
    };
    let (mut worker, mut op) = match spawn() {
        Ok(x) => {
            let _ = ready.send(Ok(()));
            x
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    for job in rx {
        let r = match worker.call(op, &job.payload, Vec::new()) {
            Ok(reply) => Ok(reply.payload),
            Err(e) if e.is_worker_gone() => {
                metrics
                    .restarts
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(error = %e, "worker process gone; restarting it");
                match spawn() {
                    Ok((w, o)) => {
                        worker = w;
                        op = o;
                    }
                    Err(e) => tracing::error!(error = %e, "worker restart failed"),
                }
                Err(e.to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        let _ = job.reply.send(r);
    }
}
