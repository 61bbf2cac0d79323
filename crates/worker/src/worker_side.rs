//! The worker process: runs requests one at a time, in order, and replies in order.
//!
//! Exit rules: EOF or hang-up on the channel (the main process is gone or dropped its
//! [`Worker`](crate::Worker)) → finish the requests already buffered, then exit 0. SIGTERM (also
//! the parent-death signal) → the same. A reply the main process can no longer take (`EPIPE`) is
//! dropped, and the remaining buffered requests still run — as OVS's worker did for log writes.
//! A protocol error from the main process → exit 2.

use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::{fence, AtomicBool, Ordering};

use nlkit_ring::{FrameKind, FrameMeta, MappedFrames, RingError, RingReceiver, RingSender};
use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;

use crate::error::{ProtocolError, WorkerError};
use crate::header::{Header, Kind, HEADER_LEN, MAX_PAYLOAD};
use crate::registry::{HandlerError, Hello, Registry, Request, Response, Setup};
use crate::shm::SharedRings;
use crate::spawn::{WORKER_ARG, WORKER_ENV, WORKER_FD};
use crate::sys::{eventfd_drain, eventfd_signal, recv_msg, send_msg, RecvError};

/// Set by SIGTERM (and so by the parent-death signal): drain and exit.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigterm(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// If this process was started as a worker, runs the worker with the handlers `registry`
/// builds and exits; otherwise returns at once.
///
/// Call it first thing in `main` of every binary that spawns a [`Worker`](crate::Worker) —
/// before parsing arguments, starting threads or a runtime — so the re-executed image goes
/// straight to the worker loop.
///
/// ```no_run
/// use nlkit_worker::{maybe_run_worker, Registry, Response};
/// fn registry() -> Registry {
///     Registry::new().register(1, "echo", |req| Ok(Response::bytes(req.payload.to_vec())))
/// }
/// fn main() {
///     maybe_run_worker(registry);
///     // ... the program proper; Worker::spawn(...) re-executes this binary.
/// }
/// ```
pub fn maybe_run_worker<F: FnOnce() -> Registry>(registry: F) {
    let Some(ppid) = std::env::var_os(WORKER_ENV) else {
        return;
    };
    let marked = std::env::args_os().nth(1).is_some_and(|a| a == WORKER_ARG);
    if !marked {
        return;
    }
    // Children the worker's handlers spawn are not workers.
    std::env::remove_var(WORKER_ENV);
    let ppid: u32 = ppid.to_str().and_then(|s| s.parse().ok()).unwrap_or(0);
    let code = match run_worker(ppid, registry()) {
        Ok(()) => 0,
        Err(e) => {
            let mut text = e.to_string();
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                text = format!("{text}: {c}");
                cause = c.source();
            }
            eprintln!("nlkit worker {}: {text}", std::process::id());
            2
        }
    };
    std::process::exit(code);
}

fn install_sigterm() {
    // SAFETY: a plain sigaction with a handler that only stores to an atomic (async-signal-safe);
    // no SA_RESTART, so blocking calls return EINTR and the loop sees the flag.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigterm as *const () as libc::sighandler_t;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGTERM, &sa, std::ptr::null_mut());
    }
}

fn run_worker(ppid: u32, mut registry: Registry) -> Result<(), WorkerError> {
    let io = WorkerError::from;
    let stat = rustix::fs::fstat(
        // SAFETY: borrowing fd 3 only for fstat; it is checked before anything takes ownership.
        unsafe { BorrowedFd::borrow_raw(WORKER_FD) },
    )
    .map_err(io)?;
    if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::Socket {
        return Err(WorkerError::from(ProtocolError::Unexpected(
            "fd 3 is not a socket".into(),
        )));
    }
    // SAFETY: the spawning parent placed our socket end at fd 3 (checked to be a socket) and
    // nothing else in this fresh image owns it.
    let sock = unsafe { OwnedFd::from_raw_fd(WORKER_FD) };
    rustix::io::fcntl_setfd(&sock, rustix::io::FdFlags::CLOEXEC).map_err(io)?;
    install_sigterm();
    if rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get() as u32) != ppid {
        STOP.store(true, Ordering::Relaxed);
    }

    let mut buf = vec![0u8; HEADER_LEN + MAX_PAYLOAD];
    let mut fds = Vec::new();
    let n = loop {
        match recv_msg(sock.as_fd(), &mut buf, &mut fds, false) {
            Ok(0) => return Ok(()),
            Ok(n) => break n,
            Err(RecvError::Sys(Errno::INTR)) if !STOP.load(Ordering::Relaxed) => continue,
            Err(RecvError::Sys(Errno::INTR)) => return Ok(()),
            Err(RecvError::Sys(e)) => return Err(io(e)),
            Err(RecvError::Truncated) => return Err(WorkerError::from(ProtocolError::Truncated)),
        }
    };
    let (h, payload) = Header::decode_message(&buf[..n], fds.len())?;
    if h.kind != Kind::Setup {
        return Err(WorkerError::from(ProtocolError::Unexpected(
            "first message is not setup".into(),
        )));
    }
    let setup: Setup =
        postcard::from_bytes(payload).map_err(|e| ProtocolError::Decode(e.to_string()))?;
    let hello = Hello {
        pid: std::process::id(),
        handlers: registry.names().map(|(i, n)| (i, n.to_owned())).collect(),
    };
    let hello = postcard::to_allocvec(&hello).map_err(|e| ProtocolError::Decode(e.to_string()))?;
    let hh = Header {
        kind: Kind::Hello,
        opcode: 0,
        seq: 0,
        len: hello.len() as u32,
        nfds: 0,
    };
    if send_msg(sock.as_fd(), &[&hh.encode(), &hello], &[], false).is_err() {
        return Ok(());
    }
    match setup.transport {
        0 if fds.is_empty() => SocketLoop {
            sock,
            registry: &mut registry,
            buf,
            main_gone: false,
        }
        .run(),
        1 if fds.len() == 3 => {
            let mut it = fds.into_iter();
            let (memfd, main_evt, worker_evt) = match (it.next(), it.next(), it.next()) {
                (Some(a), Some(b), Some(c)) => (a, b, c),
                _ => {
                    return Err(WorkerError::from(ProtocolError::Unexpected(
                        "ring setup without descriptors".into(),
                    )))
                }
            };
            let shared = SharedRings::attach(&memfd, setup.frame_size, setup.frame_nr)?;
            let (req_frames, rep_frames) = shared.frames();
            // SAFETY: the main process is the only other user of these rings: it sends on the
            // request ring and receives on the reply ring; this process does the opposite, once.
            let (rx, tx) = unsafe { (RingReceiver::new(req_frames), RingSender::new(rep_frames)) };
            RingLoop {
                sock,
                registry: &mut registry,
                shared,
                rx,
                tx,
                main_evt,
                worker_evt,
                spin: setup.spin.min(1_000_000),
                buf,
                main_gone: false,
                draining: false,
            }
            .run()
        }
        _ => Err(WorkerError::from(ProtocolError::Unexpected(
            "bad setup".into(),
        ))),
    }
}

/// Runs one request and builds the reply message parts (header bytes, payload, fds).
fn execute(
    registry: &mut Registry,
    h: &Header,
    payload: &[u8],
    fds: Vec<OwnedFd>,
) -> (Header, Vec<u8>, Vec<OwnedFd>) {
    let req = Request {
        opcode: crate::Opcode(h.opcode),
        seq: h.seq,
        payload,
        fds,
    };
    let (kind, payload, fds) = match registry.dispatch(req) {
        Ok(Response { payload, fds })
            if payload.len() <= MAX_PAYLOAD && fds.len() <= crate::MAX_FDS =>
        {
            (Kind::Reply, payload, fds)
        }
        Ok(r) => (
            Kind::Error,
            encode_error(&HandlerError::with_errno(
                libc::EMSGSIZE,
                format!(
                    "reply too large: {} bytes, {} descriptors",
                    r.payload.len(),
                    r.fds.len()
                ),
            )),
            Vec::new(),
        ),
        Err(e) => (Kind::Error, encode_error(&e), Vec::new()),
    };
    let h = Header {
        kind,
        opcode: h.opcode,
        seq: h.seq,
        len: payload.len() as u32,
        nfds: fds.len() as u8,
    };
    (h, payload, fds)
}

/// A handler's failure on the channel: postcard `(Option<i32>, String)`, errno and message
/// (cut to 4 KiB on a character boundary).
fn encode_error(e: &HandlerError) -> Vec<u8> {
    let mut cut = e.message.len().min(4096);
    while !e.message.is_char_boundary(cut) {
        cut -= 1;
    }
    postcard::to_allocvec(&(e.errno, &e.message[..cut])).unwrap_or_default()
}

fn check_request(h: &Header) -> Result<(), ProtocolError> {
    if h.kind != Kind::Request {
        return Err(ProtocolError::Unexpected(format!(
            "{:?} from the main process",
            h.kind
        )));
    }
    Ok(())
}

struct SocketLoop<'r> {
    sock: OwnedFd,
    registry: &'r mut Registry,
    buf: Vec<u8>,
    main_gone: bool,
}

impl SocketLoop<'_> {
    fn run(mut self) -> Result<(), WorkerError> {
        let mut fds = Vec::new();
        loop {
            fds.clear();
            let stop = STOP.load(Ordering::Relaxed);
            let n = match recv_msg(self.sock.as_fd(), &mut self.buf, &mut fds, stop) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(RecvError::Sys(Errno::INTR)) => continue,
                Err(RecvError::Sys(Errno::AGAIN)) => return Ok(()),
                Err(RecvError::Sys(Errno::CONNRESET)) => return Ok(()),
                Err(RecvError::Sys(e)) => return Err(e.into()),
                Err(RecvError::Truncated) => {
                    return Err(WorkerError::from(ProtocolError::Truncated))
                }
            };
            let (h, payload) = Header::decode_message(&self.buf[..n], fds.len())?;
            check_request(&h)?;
            let (rh, rp, rfds) = execute(self.registry, &h, payload, std::mem::take(&mut fds));
            if !self.main_gone {
                let borrowed: Vec<BorrowedFd<'_>> = rfds.iter().map(|f| f.as_fd()).collect();
                if let Err(e) = send_msg(self.sock.as_fd(), &[&rh.encode(), &rp], &borrowed, false)
                {
                    // EPIPE/ECONNRESET: the main process is gone; keep running what is buffered.
                    tracing::debug!("worker reply dropped: {e}");
                    self.main_gone = true;
                }
            }
        }
    }
}

struct RingLoop<'r> {
    sock: OwnedFd,
    registry: &'r mut Registry,
    shared: SharedRings,
    rx: RingReceiver<MappedFrames>,
    tx: RingSender<MappedFrames>,
    main_evt: OwnedFd,
    worker_evt: OwnedFd,
    spin: u32,
    buf: Vec<u8>,
    main_gone: bool,
    /// The main process hung up or SIGTERM came: run what is in the ring, then exit.
    draining: bool,
}

enum Next {
    Request(usize, Vec<OwnedFd>),
    Idle,
}

impl RingLoop<'_> {
    fn run(mut self) -> Result<(), WorkerError> {
        loop {
            match self.next_request()? {
                Next::Request(n, fds) => {
                    let buf = std::mem::take(&mut self.buf);
                    let result = self.handle(&buf[..n], fds);
                    self.buf = buf;
                    result?;
                }
                Next::Idle if self.draining || STOP.load(Ordering::Relaxed) => return Ok(()),
                Next::Idle => self.sleep(|rx, _| rx.is_ready()),
            }
        }
    }

    /// Copies the next request out of the ring (or reads its COPY message from the socket)
    /// into `self.buf`; the frame is released before the handler runs.
    fn next_request(&mut self) -> Result<Next, WorkerError> {
        for i in 0..=self.spin {
            let frame = match self.rx.try_recv() {
                Ok(f) => f,
                Err(RingError::WouldBlock) => {
                    // On a busy machine the main process may share our core: yield now and then
                    // so spinning never holds it for a whole time slice.
                    if i % 64 == 63 {
                        std::thread::yield_now();
                    } else {
                        std::hint::spin_loop();
                    }
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let len = frame.len();
            match frame.kind() {
                FrameKind::Valid => {
                    // Copy, then validate: the main process could still write the frame.
                    self.buf[..len].copy_from_slice(frame.payload());
                    drop(frame);
                    return Ok(Next::Request(len, Vec::new()));
                }
                FrameKind::Copy => {
                    drop(frame);
                    let mut fds = Vec::new();
                    let n = loop {
                        match recv_msg(self.sock.as_fd(), &mut self.buf, &mut fds, false) {
                            Ok(n) => break n,
                            Err(RecvError::Sys(Errno::INTR)) => continue,
                            Err(_) => {
                                return Err(WorkerError::from(ProtocolError::Unexpected(
                                    "COPY frame without a message".into(),
                                )))
                            }
                        }
                    };
                    if n != len {
                        return Err(WorkerError::from(ProtocolError::LengthMismatch {
                            header: len,
                            actual: n,
                        }));
                    }
                    return Ok(Next::Request(n, fds));
                }
            }
        }
        Ok(Next::Idle)
    }

    fn handle(&mut self, msg: &[u8], fds: Vec<OwnedFd>) -> Result<(), WorkerError> {
        let (h, payload) = Header::decode_message(msg, fds.len())?;
        check_request(&h)?;
        let (rh, rp, rfds) = execute(self.registry, &h, payload, fds);
        if self.main_gone {
            return Ok(());
        }
        let total = HEADER_LEN + rp.len();
        // Wait for a free reply frame (the main process releases them in `run()`).
        while !self.tx.has_free_frame() {
            if self.main_gone {
                return Ok(());
            }
            self.sleep(|_, tx| tx.has_free_frame());
        }
        if rfds.is_empty() && total <= self.tx.capacity() {
            let mut w = self.tx.try_reserve()?;
            let buf = w.buf();
            buf[..HEADER_LEN].copy_from_slice(&rh.encode());
            buf[HEADER_LEN..total].copy_from_slice(&rp);
            w.commit(total, FrameMeta::default())?;
        } else {
            // Socket first, then COPY: the ring stays the one ordering authority.
            let borrowed: Vec<BorrowedFd<'_>> = rfds.iter().map(|f| f.as_fd()).collect();
            if send_msg(self.sock.as_fd(), &[&rh.encode(), &rp], &borrowed, false).is_err() {
                self.main_gone = true;
                return Ok(());
            }
            self.tx.try_send_copy(total as u32, FrameMeta::default())?;
        }
        fence(Ordering::SeqCst);
        let armed = self.shared.main_armed();
        if armed.load(Ordering::Relaxed) != 0 && armed.swap(0, Ordering::SeqCst) == 1 {
            eventfd_signal(&self.main_evt);
        }
        Ok(())
    }

    /// Sleeps until `ready` holds, the main process wakes us, hangs up, or SIGTERM arrives.
    fn sleep(
        &mut self,
        ready: impl Fn(&RingReceiver<MappedFrames>, &RingSender<MappedFrames>) -> bool,
    ) {
        let waiting = self.shared.worker_waiting();
        waiting.store(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if ready(&self.rx, &self.tx) {
            waiting.store(0, Ordering::Relaxed);
            return;
        }
        let mut fds = [
            PollFd::new(&self.worker_evt, PollFlags::IN),
            PollFd::new(&self.sock, PollFlags::RDHUP),
        ];
        match rustix::event::poll(&mut fds, None) {
            Ok(_) => {
                if fds[1]
                    .revents()
                    .intersects(PollFlags::HUP | PollFlags::RDHUP | PollFlags::ERR)
                {
                    self.draining = true;
                    self.main_gone = true;
                }
            }
            Err(Errno::INTR) => {}
            Err(_) => self.draining = true,
        }
        if STOP.load(Ordering::Relaxed) {
            self.draining = true;
        }
        waiting.store(0, Ordering::Relaxed);
        eventfd_drain(&self.worker_evt);
    }
}
