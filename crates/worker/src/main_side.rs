//! The main process's handle on its worker: [`Worker`].

use std::collections::VecDeque;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::process::Child;
use std::time::{Duration, Instant};

use rustix::event::epoll::{self, EventData, EventFlags};
use rustix::event::{PollFd, PollFlags};
use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};

use crate::error::{ProtocolError, WorkerError};
use crate::header::{Header, Kind};
use crate::registry::{Hello, Opcode, Setup, WorkerReply};
use crate::shm::SharedRings;
use crate::spawn::spawn_worker_process;
use crate::sys::{eventfd, recv_msg, send_msg};
use crate::transport::{self, RingSide, RECV_BUF};

/// Which transport carries requests and replies.
///
/// ```
/// use nlkit_worker::ChannelTransport;
/// let t = ChannelTransport::Ring { frame_size: 4096, frames: 256 };
/// assert_ne!(t, ChannelTransport::SocketPair);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelTransport {
    /// `socketpair(AF_UNIX, SOCK_SEQPACKET)`: one message per request and per reply.
    SocketPair,
    /// Two frame rings in a sealed memfd, eventfd doorbells, and the socket pair for messages
    /// with descriptors or larger than a frame (COPY frames).
    Ring {
        /// Bytes per frame (header included); a multiple of 4, at least 28.
        frame_size: u32,
        /// Frames per ring (rounded up to whole pages of frames).
        frames: u32,
    },
}

/// How to start a worker.
///
/// ```
/// use nlkit_worker::{ChannelTransport, WorkerConfig};
/// let cfg = WorkerConfig { transport: ChannelTransport::SocketPair, ..WorkerConfig::default() };
/// assert!(cfg.max_queued > 0);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct WorkerConfig {
    /// The transport.
    pub transport: ChannelTransport,
    /// High-water mark of the user-space outbound queue; beyond it `submit` returns
    /// [`WorkerError::Backpressure`].
    pub max_queued: usize,
    /// How long `spawn` waits for the worker's hello.
    pub start_timeout: Duration,
    /// Ring transport: how many empty polls the worker spins before it sleeps.
    pub worker_spin: u32,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            transport: ChannelTransport::Ring {
                frame_size: 4096 + 64,
                frames: 256,
            },
            max_queued: 1 << 16,
            start_timeout: Duration::from_secs(10),
            worker_spin: 2000,
        }
    }
}

pub(crate) type Callback = Box<dyn FnOnce(Result<WorkerReply, WorkerError>)>;

pub(crate) struct Pending {
    pub seq: u64,
    pub callback: Option<Callback>,
}

pub(crate) struct Outgoing {
    pub header: Header,
    pub payload: Vec<u8>,
    pub fds: Vec<OwnedFd>,
}

pub(crate) const TOKEN_SOCK: u64 = 1;
const TOKEN_PIDFD: u64 = 2;
const TOKEN_EVT: u64 = 3;

/// The main process's end of a worker process.
///
/// Never blocks in [`submit`](Self::submit) or [`run`](Self::run): poll [`as_fd`](AsFd::as_fd)
/// for readability and call `run()` when it is ready (and once per loop iteration). Replies are
/// delivered in submission order — to the request's callback, or to
/// [`take_reply`](Self::take_reply) for [`send`](Self::send). [`call`](Self::call) is the blocking shortcut.
///
/// Concurrency contract: a `Worker` belongs to one thread (`!Sync`, and `!Send` because callbacks
/// need not be `Send`); everything in it is owned by that thread's event loop.
///
/// ```no_run
/// use nlkit_worker::{maybe_run_worker, Registry, Response, Worker, WorkerConfig};
/// fn registry() -> Registry {
///     Registry::new().register(1, "echo", |req| Ok(Response::bytes(req.payload.to_vec())))
/// }
/// fn main() -> Result<(), nlkit_worker::WorkerError> {
///     maybe_run_worker(registry);
///     let mut worker = Worker::spawn(WorkerConfig::default())?;
///     let echo = worker.opcode("echo")?;
///     let reply = worker.call(echo, b"ping", Vec::new())?;
///     assert_eq!(reply.payload, b"ping");
///     worker.submit(echo, b"later", Vec::new(), |r| println!("{:?}", r.map(|r| r.payload)))?;
///     while worker.in_flight() > 0 {
///         worker.wait(None)?; // or: poll worker.as_fd() in your own loop, then worker.run()
///     }
///     Ok(())
/// }
/// ```
pub struct Worker {
    /// Immutable after spawn.
    pub(crate) config: WorkerConfig,
    /// Restarts so far (bumped by `restart`).
    pub(crate) epoch: u64,
    /// Our end of the SEQPACKET pair (non-blocking use only: `MSG_DONTWAIT` on every call).
    pub(crate) sock: OwnedFd,
    /// The pollable set handed out by `as_fd`: socket (+OUT while `pollout`), pidfd, doorbell.
    pub(crate) epoll: OwnedFd,
    pub(crate) pidfd: Option<OwnedFd>,
    pub(crate) child: Option<Child>,
    pub(crate) pid: u32,
    /// `Some` for the ring transport; shared memory under the protocols of `shm.rs`.
    pub(crate) ring: Option<RingSide>,
    pub(crate) handlers: Vec<(Opcode, String)>,
    /// Every unanswered request in sequence order (the tail of it is also in `outq`).
    pub(crate) pending: VecDeque<Pending>,
    /// Requests not yet in the channel, in order; bounded by `config.max_queued`.
    pub(crate) outq: VecDeque<Outgoing>,
    pub(crate) replies: VecDeque<Result<WorkerReply, WorkerError>>,
    pub(crate) next_seq: u64,
    /// Set once the worker is known gone; `run()` then fails `pending` in order.
    pub(crate) dead: Option<String>,
    pub(crate) pollout: bool,
    /// Reentrancy guard: true while a reply callback runs (`run()` is then a no-op).
    pub(crate) in_callback: bool,
    pub(crate) buf: Vec<u8>,
    /// When `run()` last polled the socket and pidfd for a silent death (ring transport).
    pub(crate) last_alive_check: Instant,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("pid", &self.pid)
            .field("epoch", &self.epoch)
            .field("transport", &self.config.transport)
            .field("in_flight", &self.pending.len())
            .field("dead", &self.dead)
            .finish()
    }
}

impl Worker {
    /// Starts a worker process (see the crate docs for how and why it re-executes this binary).
    /// Call from a long-lived thread: the worker's parent-death signal follows that thread.
    pub fn spawn(config: WorkerConfig) -> Result<Self, WorkerError> {
        let (sock, child_end) = socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )?;
        let child = spawn_worker_process(child_end)?;
        let pid = child.id();
        let pidfd = rustix::process::Pid::from_raw(pid as i32).and_then(|p| {
            rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok()
        });
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        let mut worker = Self {
            config,
            epoch: 0,
            sock,
            epoll,
            pidfd,
            child: Some(child),
            pid,
            ring: None,
            handlers: Vec::new(),
            pending: VecDeque::new(),
            outq: VecDeque::new(),
            replies: VecDeque::new(),
            next_seq: 1,
            dead: None,
            pollout: false,
            in_callback: false,
            buf: vec![0; RECV_BUF],
            last_alive_check: Instant::now(),
        };
        match worker.handshake() {
            Ok(()) => Ok(worker),
            Err(e) => {
                worker.kill();
                Err(e)
            }
        }
    }

    fn handshake(&mut self) -> Result<(), WorkerError> {
        let (setup, fds) = match self.config.transport {
            ChannelTransport::SocketPair => (
                Setup {
                    transport: 0,
                    frame_size: 0,
                    frame_nr: 0,
                    spin: 0,
                },
                Vec::new(),
            ),
            ChannelTransport::Ring { frame_size, frames } => {
                let (shared, memfd) = SharedRings::create(frame_size, frames)?;
                let req = shared.request();
                let (req_frames, rep_frames) = shared.frames();
                // SAFETY: the worker is the only other user of these rings and does the
                // opposite: it receives requests and sends replies; we create one end each.
                let (tx, rx) = unsafe {
                    (
                        nlkit_ring::RingSender::new(req_frames),
                        nlkit_ring::RingReceiver::new(rep_frames),
                    )
                };
                let (main_evt, worker_evt) = (eventfd()?, eventfd()?);
                let setup = Setup {
                    transport: 1,
                    frame_size: req.frame_size,
                    frame_nr: req.frame_nr,
                    spin: self.config.worker_spin,
                };
                let fds = vec![memfd, main_evt.try_clone()?, worker_evt.try_clone()?];
                self.ring = Some(RingSide {
                    shared,
                    tx,
                    rx,
                    main_evt,
                    worker_evt,
                    armed: false,
                });
                (setup, fds)
            }
        };
        let payload = postcard::to_allocvec(&setup)?;
        let h = Header {
            kind: Kind::Setup,
            opcode: 0,
            seq: 0,
            len: payload.len() as u32,
            nfds: fds.len() as u8,
        };
        let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(|f| f.as_fd()).collect();
        send_msg(
            self.sock.as_fd(),
            &[&h.encode(), &payload],
            &borrowed,
            false,
        )?;
        drop(fds);
        let deadline = Instant::now() + self.config.start_timeout;
        let mut fds = Vec::new();
        let n = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(WorkerError::WorkerGone(
                    "worker did not start in time".into(),
                ));
            }
            let mut pfd = [PollFd::new(&self.sock, PollFlags::IN)];
            let ts = rustix::event::Timespec::try_from(left).unwrap_or(rustix::event::Timespec {
                tv_sec: 1,
                tv_nsec: 0,
            });
            match rustix::event::poll(&mut pfd, Some(&ts)) {
                Ok(0) | Err(rustix::io::Errno::INTR) => continue,
                Ok(_) => {}
                Err(e) => return Err(e.into()),
            }
            match recv_msg(self.sock.as_fd(), &mut self.buf, &mut fds, true) {
                Ok(0) => {
                    return Err(WorkerError::WorkerGone(
                        "worker exited during start-up".into(),
                    ))
                }
                Ok(n) => break n,
                Err(crate::sys::RecvError::Sys(rustix::io::Errno::AGAIN)) => continue,
                Err(crate::sys::RecvError::Sys(e)) => {
                    return Err(WorkerError::WorkerGone(transport::gone(e)))
                }
                Err(crate::sys::RecvError::Truncated) => {
                    return Err(ProtocolError::Truncated.into())
                }
            }
        };
        let (h, payload) = Header::decode_message(&self.buf[..n], fds.len())?;
        if h.kind != Kind::Hello {
            return Err(ProtocolError::Unexpected("worker did not say hello".into()).into());
        }
        let hello: Hello =
            postcard::from_bytes(payload).map_err(|e| ProtocolError::Decode(e.to_string()))?;
        if hello.pid != self.pid {
            return Err(ProtocolError::Unexpected("hello from another process".into()).into());
        }
        self.handlers = hello.handlers;
        self.register_epoll()?;
        // Armed from the start: outside `run()` the doorbell is always either armed or rung, so
        // a caller that submits and then polls `as_fd()` is woken by the first reply.
        if let Some(ring) = self.ring.as_mut() {
            ring.arm();
        }
        Ok(())
    }

    fn register_epoll(&self) -> Result<(), WorkerError> {
        epoll::add(
            &self.epoll,
            &self.sock,
            EventData::new_u64(TOKEN_SOCK),
            EventFlags::IN | EventFlags::RDHUP,
        )?;
        if let Some(p) = &self.pidfd {
            epoll::add(
                &self.epoll,
                p,
                EventData::new_u64(TOKEN_PIDFD),
                EventFlags::IN,
            )?;
        }
        if let Some(r) = &self.ring {
            epoll::add(
                &self.epoll,
                &r.main_evt,
                EventData::new_u64(TOKEN_EVT),
                EventFlags::IN,
            )?;
        }
        Ok(())
    }

    /// The worker's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// How many times this handle has restarted its worker.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The configuration the worker was started with.
    pub fn config(&self) -> &WorkerConfig {
        &self.config
    }

    /// The worker's handler table (id, name), as it announced it.
    pub fn handlers(&self) -> &[(Opcode, String)] {
        &self.handlers
    }

    /// The id of the worker's handler `name`.
    pub fn opcode(&self, name: &str) -> Result<Opcode, WorkerError> {
        self.handlers
            .iter()
            .find(|(_, n)| n == name)
            .map(|(id, _)| *id)
            .ok_or_else(|| WorkerError::UnknownHandler(name.to_owned()))
    }

    /// Requests submitted and not yet answered (queued, in the channel, or running).
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Requests waiting in the user-space queue (the channel was full).
    pub fn queued(&self) -> usize {
        self.outq.len()
    }

    /// Whether the worker is alive as far as this handle knows.
    pub fn is_alive(&self) -> bool {
        self.dead.is_none()
    }
}
