//! The connection loop: one epoll thread holds every connection that has no request pending,
//! and a small fixed pool of serving threads takes the ones that do.
//!
//! * The poll thread accepts (checking `SO_PEERCRED` and the client limit), parks each
//!   connection in epoll (`EPOLLONESHOT`) and closes it when it stays idle for the idle
//!   timeout. A readable connection leaves the epoll set for the ready queue.
//! * A serving thread takes a connection from the ready queue, answers the requests queued on
//!   it (a few datagrams at most, for fairness; a dump is sent whole, its iterator on the
//!   thread's stack) and hands it back through the return queue and an eventfd; the poll
//!   thread re-arms it.
//! * A refused client (another uid, or over `max_clients`) gets an `NLMSG_ERROR` with the
//!   refusal text at once (sequence number 0, for a client that reads first), and is parked
//!   until its first request arrives: that is answered with the same error and the request's
//!   sequence number, then the connection is closed — the client reads the reason instead of
//!   `EPIPE`.
//!   At most [`MAX_REFUSING`] wait like this, each at most [`REFUSE_WAIT`]; beyond that a
//!   refused connection is closed at once.
//! * Everything waits on the mirror's [`Shutdown`] descriptor as well, and nothing waits with
//!   a polling timeout: the only epoll timeout is the next idle deadline.
//!
//! Concurrency contract: the poll thread owns the epoll set and every parked connection; a
//! connection in the ready queue or on a serving thread is owned by that queue or thread
//! (moved, never shared). `ready` and `returned` are each protected by their mutex; `active`
//! counts open client connections (`Relaxed`: a gauge and a limit, no ordering implied).

use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nlkit_wire::MessageHeader;
use parking_lot::{Condvar, Mutex};
use rustix::event::epoll::{self, EventData, EventFlags};
use rustix::event::{eventfd, EventfdFlags};
use rustix::io::Errno;
use rustix::net::sockopt::socket_peercred;
use rustix::net::{accept_with, recv, RecvFlags, SocketFlags};

use super::out::{Link, Out};
use super::{serve_ready, Ctx, Registry, Served, ServerConfig};
use crate::feed::subscriber::{pump, Pumped, Subscription};
use crate::feed::Feed;
use crate::stop::{timespec, Shutdown};

/// Refused connections that may wait for their first request at once.
pub(crate) const MAX_REFUSING: usize = 64;
/// How long a refused connection may take to send its first request.
pub(crate) const REFUSE_WAIT: Duration = Duration::from_secs(2);
/// How long shutdown waits for busy serving threads.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// After `accept` failed (out of descriptors), accepting is retried when a client leaves, or
/// after this long.
const RESUME_ACCEPT: Duration = Duration::from_secs(1);

const TOKEN_LISTENER: u64 = u64::MAX;
const TOKEN_STOP: u64 = u64::MAX - 1;
const TOKEN_WAKE: u64 = u64::MAX - 2;
const TOKEN_FEED: u64 = u64::MAX - 3;
/// Datagrams sent to one feed subscriber per round (then the others get theirs).
const FEED_BUDGET: usize = 16;
/// Send buffer of a feed subscriber's connection.
const FEED_SNDBUF: usize = 256 * 1024;

/// One client connection (non-blocking).
pub(crate) struct Conn {
    pub fd: OwnedFd,
    /// Protocol errors answered so far.
    pub errors: u32,
    /// Its feed subscription: while it has one and no request pending, the poll thread sends
    /// it the feed's events (`crate::feed::subscriber`).
    pub sub: Option<Subscription>,
    _slot: Slot,
}

/// Counts the connection in `active` while it is open.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a serving thread hands back.
enum Returned {
    /// Served, nothing pending: park it again.
    Keep(Conn),
    /// Closed (a slot is free: accepting may resume).
    Closed,
}

/// State shared by the poll thread and the serving threads.
struct Queues {
    ready: Mutex<Ready>,
    ready_cv: Condvar,
    returned: Mutex<Vec<Returned>>,
    /// Written (1) by a serving thread after it pushed to `returned`.
    wake: OwnedFd,
    /// Serving threads not yet exited; `exited_cv` is notified as each exits.
    running: Mutex<usize>,
    exited_cv: Condvar,
}

struct Ready {
    conns: VecDeque<Conn>,
    closed: bool,
}

impl Queues {
    fn give_back(&self, r: Returned) {
        self.returned.lock().push(r);
        let _ = rustix::io::write(&self.wake, &1u64.to_ne_bytes());
    }
}

/// A parked connection.
enum Parked {
    Idle(Conn),
    /// Waiting for the first request, to answer it with `errno` and `text`.
    Refusing {
        fd: OwnedFd,
        errno: i32,
        text: String,
    },
}

struct ParkedConn {
    parked: Parked,
    deadline: Option<Instant>,
}

/// Runs the server until the shutdown: spawns the serving threads, then polls.
pub(crate) fn run(
    listener: OwnedFd,
    ctx: Arc<Ctx>,
    registry: Arc<Registry>,
    cfg: ServerConfig,
    shutdown: Shutdown,
    active: Arc<AtomicUsize>,
) -> std::io::Result<()> {
    let queues = Arc::new(Queues {
        ready: Mutex::new(Ready {
            conns: VecDeque::new(),
            closed: false,
        }),
        ready_cv: Condvar::new(),
        returned: Mutex::new(Vec::new()),
        wake: eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?,
        running: Mutex::new(0),
        exited_cv: Condvar::new(),
    });
    let mut workers = Vec::new();
    for i in 0..cfg.serve_threads.max(1) {
        let (q, ctx, reg, sd, cfg) = (
            queues.clone(),
            ctx.clone(),
            registry.clone(),
            shutdown.clone(),
            cfg.clone(),
        );
        *queues.running.lock() += 1;
        let spawned = std::thread::Builder::new()
            .name(format!("mirror-serve-{i}"))
            .spawn(move || {
                serving_thread(&q, &ctx, &reg, &cfg, &sd);
                *q.running.lock() -= 1;
                q.exited_cv.notify_all();
            });
        match spawned {
            Ok(h) => workers.push(h),
            Err(e) => {
                *queues.running.lock() -= 1;
                queues.ready.lock().closed = true;
                queues.ready_cv.notify_all();
                join_all(workers, &queues);
                return Err(e);
            }
        }
    }
    let feed = ctx.feed.clone();
    let mut poller = Poller {
        subs: HashMap::new(),
        feed,
        pump_buf: Vec::with_capacity(64 * 1024),
        epoll: epoll::create(epoll::CreateFlags::CLOEXEC)?,
        listener,
        listening: true,
        resume_at: None,
        parked: HashMap::new(),
        next_check: None,
        refusing: 0,
        ctx,
        cfg,
        active,
        queues: queues.clone(),
        shutdown,
    };
    let r = poller.run();
    // Stop the serving threads (a waiting send also watches the shutdown descriptor).
    queues.ready.lock().closed = true;
    queues.ready_cv.notify_all();
    join_all(workers, &queues);
    r
}

/// Joins the serving threads, waiting at most [`STOP_GRACE`] for them: one may be inside a
/// kernel write through the worker, which has its own deadline; it is left to finish alone.
fn join_all(workers: Vec<JoinHandle<()>>, q: &Queues) {
    let deadline = Instant::now() + STOP_GRACE;
    let mut running = q.running.lock();
    while *running > 0 {
        if q.exited_cv.wait_until(&mut running, deadline).timed_out() {
            tracing::warn!(
                threads = *running,
                "mirror serving threads still busy at shutdown"
            );
            return;
        }
    }
    drop(running);
    for w in workers {
        let _ = w.join();
    }
}

struct Poller {
    epoll: OwnedFd,
    listener: OwnedFd,
    /// False while accepting is paused (out of descriptors).
    listening: bool,
    /// When a paused listener is tried again even if no client left (the descriptors may be
    /// held by something else).
    resume_at: Option<Instant>,
    parked: HashMap<RawFd, ParkedConn>,
    /// Connections following the feed (no request pending), armed for input and, when their
    /// socket was full, for room.
    subs: HashMap<RawFd, Conn>,
    feed: Arc<Feed>,
    pump_buf: Vec<u8>,
    /// The earliest deadline of a parked connection (no later than the real one).
    next_check: Option<Instant>,
    refusing: usize,
    ctx: Arc<Ctx>,
    cfg: ServerConfig,
    active: Arc<AtomicUsize>,
    queues: Arc<Queues>,
    shutdown: Shutdown,
}

impl Poller {
    fn run(&mut self) -> std::io::Result<()> {
        let flags = EventFlags::IN;
        epoll::add(
            &self.epoll,
            &self.listener,
            EventData::new_u64(TOKEN_LISTENER),
            flags,
        )?;
        epoll::add(
            &self.epoll,
            self.shutdown.fd(),
            EventData::new_u64(TOKEN_STOP),
            flags,
        )?;
        epoll::add(
            &self.epoll,
            &self.queues.wake,
            EventData::new_u64(TOKEN_WAKE),
            flags,
        )?;
        epoll::add(
            &self.epoll,
            self.feed.wake_fd(),
            EventData::new_u64(TOKEN_FEED),
            flags,
        )?;
        let mut events = Vec::with_capacity(128);
        loop {
            let timeout = self
                .next_check
                .map(|t| timespec(t.saturating_duration_since(Instant::now())));
            events.clear();
            match epoll::wait(
                &self.epoll,
                rustix::buffer::spare_capacity(&mut events),
                timeout.as_ref(),
            ) {
                Ok(_) | Err(Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
            for ev in &events {
                match ev.data.u64() {
                    TOKEN_STOP => return Ok(()),
                    TOKEN_LISTENER => self.accept_all(),
                    TOKEN_WAKE => self.take_returned(),
                    TOKEN_FEED => self.feed_advanced(),
                    fd if self.subs.contains_key(&(fd as RawFd)) => {
                        self.sub_event(fd as RawFd, ev.flags)
                    }
                    fd => self.ready(fd as RawFd),
                }
            }
            if self.next_check.is_some_and(|t| t <= Instant::now()) {
                self.expire();
            }
        }
    }

    fn accept_all(&mut self) {
        loop {
            let conn = match accept_with(
                &self.listener,
                SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            ) {
                Ok(c) => c,
                Err(Errno::AGAIN) => return,
                Err(Errno::INTR | Errno::CONNABORTED) => continue,
                Err(e) => {
                    // Out of descriptors or memory: stop accepting until a connection closes
                    // (the listener would stay readable and spin otherwise).
                    tracing::warn!(error = %e, "mirror accept failed; pausing until a client leaves");
                    self.pause_listener(true);
                    return;
                }
            };
            self.admit(conn);
        }
    }

    fn pause_listener(&mut self, pause: bool) {
        if self.listening != pause {
            return;
        }
        let flags = if pause {
            EventFlags::empty()
        } else {
            EventFlags::IN
        };
        if epoll::modify(
            &self.epoll,
            &self.listener,
            EventData::new_u64(TOKEN_LISTENER),
            flags,
        )
        .is_ok()
        {
            self.listening = !pause;
        }
        self.resume_at = None;
        if pause {
            let at = Instant::now() + RESUME_ACCEPT;
            self.resume_at = Some(at);
            self.next_check = Some(self.next_check.map_or(at, |t| t.min(at)));
        }
    }

    /// Checks a new connection's credentials and the limit; parks it (served or refused).
    fn admit(&mut self, fd: OwnedFd) {
        let me = rustix::process::geteuid();
        let refusal = match socket_peercred(&fd) {
            Ok(cred) if cred.uid == me || cred.uid.is_root() => None,
            Ok(cred) => {
                tracing::info!(
                    uid = cred.uid.as_raw(),
                    pid = cred.pid.as_raw_nonzero().get(),
                    "mirror client refused: uid"
                );
                Some((
                    libc::EACCES,
                    String::from("permission denied: the mirror serves its own user and root only"),
                ))
            }
            Err(e) => Some((libc::EACCES, format!("cannot check peer credentials: {e}"))),
        };
        let refusal = refusal.or_else(|| {
            (self.active.load(Ordering::Relaxed) >= self.cfg.max_clients).then(|| {
                tracing::debug!(max = self.cfg.max_clients, "mirror client refused: limit");
                (
                    libc::EBUSY,
                    format!(
                        "too many mirror clients (the limit is {})",
                        self.cfg.max_clients
                    ),
                )
            })
        });
        if let Some((errno, text)) = refusal {
            self.ctx
                .metrics
                .clients_refused
                .fetch_add(1, Ordering::Relaxed);
            // At once, for a client that reads first (sequence number 0: a client waiting
            // for its own request's answer skips it), then again answering the first request.
            send_refusal(&fd, &MessageHeader::default(), errno, &text, &self.shutdown);
            if self.refusing >= MAX_REFUSING {
                return; // dropped: closed at once
            }
            self.refusing += 1;
            let raw = fd.as_raw_fd();
            let parked = Parked::Refusing { fd, errno, text };
            self.park(raw, parked, Some(REFUSE_WAIT), true);
            return;
        }
        self.ctx.metrics.clients.fetch_add(1, Ordering::Relaxed);
        self.active.fetch_add(1, Ordering::Relaxed);
        let conn = Conn {
            fd,
            errors: 0,
            sub: None,
            _slot: Slot(self.active.clone()),
        };
        let raw = conn.fd.as_raw_fd();
        self.park(raw, Parked::Idle(conn), Some(self.cfg.idle_timeout), true);
    }

    /// Puts a connection in the epoll set (once-only readiness) with a deadline.
    fn park(&mut self, raw: RawFd, parked: Parked, wait: Option<Duration>, new: bool) {
        let fd = match &parked {
            Parked::Idle(c) => c.fd.as_fd(),
            Parked::Refusing { fd, .. } => fd.as_fd(),
        };
        let flags = EventFlags::IN | EventFlags::RDHUP | EventFlags::ONESHOT;
        let data = EventData::new_u64(raw as u64);
        let r = if new {
            epoll::add(&self.epoll, fd, data, flags)
        } else {
            epoll::modify(&self.epoll, fd, data, flags)
        };
        if let Err(e) = r {
            tracing::warn!(error = %e, "cannot watch a mirror client; closing it");
            self.forget(parked);
            return;
        }
        let deadline = wait.and_then(|w| Instant::now().checked_add(w));
        if let Some(d) = deadline {
            if self.next_check.is_none_or(|t| d < t) {
                self.next_check = Some(d);
            }
        }
        self.parked.insert(raw, ParkedConn { parked, deadline });
    }

    /// Drops a parked connection (closing it).
    fn forget(&mut self, parked: Parked) {
        if let Parked::Refusing { .. } = parked {
            self.refusing -= 1;
        }
        drop(parked);
        self.pause_listener(false);
    }

    /// A parked connection became readable (a request, or a hang-up).
    fn ready(&mut self, raw: RawFd) {
        let Some(slot) = self.parked.remove(&raw) else {
            return;
        };
        match slot.parked {
            Parked::Idle(conn) => {
                let mut q = self.queues.ready.lock();
                q.conns.push_back(conn);
                drop(q);
                self.queues.ready_cv.notify_one();
            }
            Parked::Refusing { fd, errno, text } => {
                refuse(&fd, errno, &text, &self.shutdown);
                self.forget(Parked::Refusing { fd, errno, text });
            }
        }
    }

    fn take_returned(&mut self) {
        let mut n = [0u8; 8];
        let _ = rustix::io::read(&self.queues.wake, &mut n);
        let returned = std::mem::take(&mut *self.queues.returned.lock());
        for r in returned {
            match r {
                Returned::Keep(conn) if conn.sub.is_some() => self.follow(conn),
                Returned::Keep(conn) => {
                    let raw = conn.fd.as_raw_fd();
                    self.park(raw, Parked::Idle(conn), Some(self.cfg.idle_timeout), false);
                }
                Returned::Closed => self.pause_listener(false),
            }
        }
    }

    /// The feed's head advanced: every subscriber not waiting for room gets what follows.
    fn feed_advanced(&mut self) {
        self.feed.clear_wake();

        let fds: Vec<RawFd> = self
            .subs
            .iter()
            .filter(|(_, c)| c.sub.as_ref().is_some_and(|s| !s.blocked))
            .map(|(fd, _)| *fd)
            .collect();
        for fd in fds {
            if let Some(conn) = self.subs.remove(&fd) {
                self.follow(conn);
            }
        }
    }

    /// A subscriber's descriptor is ready: a request or hang-up goes to a serving thread
    /// (the subscription waits meanwhile), room resumes sending.
    fn sub_event(&mut self, raw: RawFd, flags: EventFlags) {
        let Some(conn) = self.subs.remove(&raw) else {
            return;
        };
        let input = EventFlags::IN | EventFlags::RDHUP | EventFlags::HUP | EventFlags::ERR;

        if flags.intersects(input) {
            self.queues.ready.lock().conns.push_back(conn);
            self.queues.ready_cv.notify_one();
            return;
        }
        self.follow(conn);
    }

    /// Sends a subscriber what follows its cursor (a budget of datagrams), then watches it:
    /// for input, and for room when its socket is full.
    fn follow(&mut self, mut conn: Conn) {
        let raw = conn.fd.as_raw_fd();
        let Some(sub) = conn.sub.as_mut() else {
            self.park(raw, Parked::Idle(conn), Some(self.cfg.idle_timeout), false);
            return;
        };
        if !sub.sized {
            // What a subscriber that stops reading holds besides its lag: a bounded socket
            // buffer (the kernel's default may be large).
            sub.sized = true;
            let _ = rustix::net::sockopt::set_socket_send_buffer_size(&conn.fd, FEED_SNDBUF);
        }
        let r = pump(
            conn.fd.as_fd(),
            sub,
            &self.feed,
            self.cfg.feed_max_lag,
            FEED_BUDGET,
            &mut self.pump_buf,
        );
        match r {
            Pumped::Failed => {
                drop(conn);
                self.pause_listener(false);
                return;
            }
            Pumped::Ended => {
                conn.sub = None;
                self.park(raw, Parked::Idle(conn), Some(self.cfg.idle_timeout), false);
                return;
            }
            // More is pending: come back after the others had their turn.
            Pumped::More => {
                let _ = rustix::io::write(self.feed.wake_fd(), &1u64.to_ne_bytes());
            }
            Pumped::CaughtUp | Pumped::Blocked => {}
        }
        let mut flags = EventFlags::IN | EventFlags::RDHUP | EventFlags::ONESHOT;
        if conn.sub.as_ref().is_some_and(|s| s.blocked) {
            flags |= EventFlags::OUT;
        }
        if let Err(e) = epoll::modify(&self.epoll, &conn.fd, EventData::new_u64(raw as u64), flags)
        {
            tracing::warn!(error = %e, "cannot watch a feed subscriber; closing it");
            drop(conn);
            self.pause_listener(false);
            return;
        }
        self.subs.insert(raw, conn);
    }

    /// Closes parked connections whose deadline passed, retries a paused listener when due,
    /// and finds the next deadline.
    fn expire(&mut self) {
        let now = Instant::now();
        if self.resume_at.is_some_and(|t| t <= now) {
            self.pause_listener(false);
        }
        let expired: Vec<RawFd> = self
            .parked
            .iter()
            .filter(|(_, s)| s.deadline.is_some_and(|d| d <= now))
            .map(|(fd, _)| *fd)
            .collect();
        for fd in expired {
            if let Some(s) = self.parked.remove(&fd) {
                if let Parked::Idle(_) = s.parked {
                    self.ctx
                        .metrics
                        .clients_idle_closed
                        .fetch_add(1, Ordering::Relaxed);
                }
                self.forget(s.parked);
            }
        }
        self.next_check = self
            .parked
            .values()
            .filter_map(|s| s.deadline)
            .chain(self.resume_at)
            .min();
    }
}

/// Answers a refused client's first request with the refusal.
fn refuse(fd: &OwnedFd, errno: i32, text: &str, shutdown: &Shutdown) {
    let mut buf = [0u8; 64];
    let hdr = match recv(fd, &mut buf[..], RecvFlags::DONTWAIT) {
        Ok((_, n)) if n > 0 => MessageHeader::parse(&buf[..n.min(buf.len())]).unwrap_or_default(),
        _ => return, // hung up, or nothing after all
    };
    if hdr.ty == nlkit_view::schema::MSG_MAP && errno == libc::EACCES {
        // The region request of a peer refused for its uid: no descriptor, and the errno
        // the request documents (a client over the limit keeps its EBUSY).
        let text = "the mirror hands its tables to its own user and root only";
        send_refusal(fd, &hdr, libc::EPERM, text, shutdown);
        return;
    }
    send_refusal(fd, &hdr, errno, text, shutdown);
}

/// Sends an `NLMSG_ERROR` answering `hdr`, never waiting for room.
fn send_refusal(fd: &OwnedFd, hdr: &MessageHeader, errno: i32, text: &str, shutdown: &Shutdown) {
    let link = Link::new(fd.as_fd(), shutdown.fd(), Duration::ZERO);
    let mut out = Out::new(&link, hdr.seq, hdr.pid);
    let _ = out.error(hdr, errno, text).and_then(|_| out.flush());
}

/// A serving thread: takes ready connections until the queue closes.
fn serving_thread(
    q: &Queues,
    ctx: &Ctx,
    registry: &Registry,
    cfg: &ServerConfig,
    shutdown: &Shutdown,
) {
    let mut buf = vec![0u8; super::MAX_REQUEST];
    loop {
        let mut conn = {
            let mut r = q.ready.lock();
            loop {
                if r.closed {
                    return;
                }
                if let Some(c) = r.conns.pop_front() {
                    break c;
                }
                q.ready_cv.wait(&mut r);
            }
        };
        match serve_ready(&mut conn, &mut buf, ctx, registry, cfg, shutdown) {
            Served::Keep => q.give_back(Returned::Keep(conn)),
            Served::Close => {
                drop(conn);
                q.give_back(Returned::Closed);
            }
        }
    }
}
