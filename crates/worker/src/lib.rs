//! # nlkit-worker: a worker process for calls that can block
//!
//! A soft-real-time main loop delegates calls that may block in the kernel — netlink writes
//! waiting on RTNL or genetlink's lock, writes to regular files — to a **worker process** joined
//! by an ordered RPC channel (the design of Open vSwitch's 2012 `worker.c`, without its flaws).
//!
//! ## Why a process, and how it starts
//! A thread would keep the main loop responsive too. A process adds what a thread cannot give:
//! the worker can be killed and restarted, a crash in it does not take the daemon down, it can
//! hold different privileges, and the main process can exit while the worker is stuck in an
//! uninterruptible kernel call.
//!
//! The worker is started by **re-executing the running binary** (`/proc/self/exe`) in worker
//! mode, never by a bare `fork()`: after `fork()` in a program that already runs threads, only
//! async-signal-safe calls are allowed until `exec` (any lock another thread held — allocator,
//! stdout, the tracing subscriber, a runtime — stays locked forever). Re-exec works whatever
//! threads exist, gives the worker a clean heap and its own ASLR, and `/proc/self/exe` names the
//! running inode, so an upgrade cannot swap the binary under us. Every binary that spawns a
//! worker calls [`maybe_run_worker`] first thing in `main`; in the worker image it runs the
//! worker and exits, elsewhere it returns at once.
//!
//! The worker dies with its main process: when the channel hangs up (EOF, `ECONNRESET`) it runs
//! the requests already buffered and exits 0; `PR_SET_PDEATHSIG(SIGTERM)` (checked against
//! `getppid()` for a parent that died first) does the same if the channel somehow stays open.
//! Spawn from a long-lived thread: the parent-death signal follows the spawning *thread*.
//! When a main process with several threads is killed with SIGKILL, the spawning thread's exit
//! sends the signal at once, and the worker exits within milliseconds (`parent_sigkilled` in
//! `tests/ipc.rs`); a process's last thread first has the kernel tear its memory down, so a
//! large single-threaded main process is noticed later. The orphan then stays a zombie until
//! the init that inherits it reaps it, on that init's own schedule (`ps` and `kill -0` still
//! show it meanwhile).
//!
//! ## The channel
//! - Handlers are registered by id and name in a [`Registry`] (same code on both sides); the
//!   worker announces its table at start-up and the main process looks names up
//!   ([`Worker::opcode`]). No function pointer crosses the boundary.
//! - Every message has a fixed 24-byte [`Header`] (magic, version, opcode, sequence number,
//!   kind, capped length, descriptor count); structured payloads use `postcard`.
//! - Requests carry bytes and descriptors (`SCM_RIGHTS`, `MSG_NOSIGNAL` on sends,
//!   `MSG_CMSG_CLOEXEC` on receives, `MSG_CTRUNC` checked, descriptors owned at once).
//! - The worker runs requests one at a time in submission order; replies come back in order.
//! - The main side never blocks: poll [`Worker`]'s fd, call [`Worker::run`]. A full channel
//!   queues in user space (bounded: [`WorkerError::Backpressure`]) and `run()` keeps draining
//!   replies, so the two sides never deadlock on full buffers. [`Worker::call`] blocks.
//! - Two [`ChannelTransport`]s with one API: the `SOCK_SEQPACKET` socket pair alone, or two frame
//!   rings (`nlkit-ring`) in a sealed memfd with eventfd doorbells, the socket carrying
//!   descriptors and messages larger than a frame (COPY frames). The worker spins briefly
//!   before it sleeps; the main loop never spins except inside the blocking `call()`.
//! - Failure: hang-up, EOF, `ECONNRESET`, `EPIPE`, the pidfd reporting exit, or garbage on the
//!   channel (the worker is then killed) fail every outstanding request in order with
//!   [`WorkerError::WorkerGone`]/[`WorkerError::Protocol`]; [`Worker::restart`] starts anew.
//!
//! ## Netlink transactions
//! This crate knows nothing of netlink. A crate above it registers, for example, a
//! `"netlink-transact"` handler whose payload is raw netlink request bytes and whose reply is the
//! raw reply bytes, and the mirror submits kernel writes through it.
//!
//! ```no_run
//! use nlkit_worker::{maybe_run_worker, Registry, Response, ChannelTransport, Worker, WorkerConfig};
//!
//! fn registry() -> Registry {
//!     Registry::new().register(1, "upper", |req| {
//!         Ok(Response::bytes(req.payload.to_ascii_uppercase()))
//!     })
//! }
//!
//! fn main() -> Result<(), nlkit_worker::WorkerError> {
//!     maybe_run_worker(registry); // the worker image never returns from here
//!     let mut worker = Worker::spawn(WorkerConfig {
//!         transport: ChannelTransport::SocketPair,
//!         ..WorkerConfig::default()
//!     })?;
//!     let upper = worker.opcode("upper")?;
//!     assert_eq!(worker.call(upper, b"abc", Vec::new())?.payload, b"ABC");
//!     Ok(())
//! }
//! ```

mod error;
mod header;
mod main_loop;
mod main_side;
mod registry;
mod shm;
mod spawn;
mod sys;
mod transport;
mod worker_side;

pub use error::{ProtocolError, WorkerError};
pub use header::{Header, Kind, HEADER_LEN, MAGIC, MAX_FDS, MAX_PAYLOAD, VERSION};
pub use main_side::{ChannelTransport, Worker, WorkerConfig};
pub use registry::{HandlerError, Opcode, Registry, Request, Response, WorkerReply};
pub use spawn::{WORKER_ARG, WORKER_ENV, WORKER_FD};
pub use worker_side::maybe_run_worker;
