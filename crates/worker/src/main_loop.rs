//! [`Worker`]'s event-loop side: submitting, delivering replies, blocking calls, failure and
//! restart.

use std::cell::RefCell;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use rustix::event::epoll::{self, EventData, EventFlags};
use rustix::event::{PollFd, PollFlags};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{ProtocolError, WorkerError};
use crate::header::{Header, Kind, MAX_FDS, MAX_PAYLOAD};
use crate::main_side::{Callback, Outgoing, Pending, Worker, TOKEN_SOCK};
use crate::registry::{HandlerError, Opcode, WorkerReply};
use crate::transport::{self, Received, Sent};

/// Least time between two idle liveness checks of a ring transport.
const ALIVE_CHECK: Duration = Duration::from_millis(1);

/// Empty reply-ring polls `call()` spins before it sleeps (about 20–50 µs).
const CALL_SPIN: u32 = 3000;

impl AsFd for Worker {
    /// A descriptor (an epoll set of the socket, the worker's pidfd and the ring doorbell) that
    /// is readable whenever [`Worker::run`] has something to do.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.epoll.as_fd()
    }
}

impl Worker {
    /// Submits a request; `on_reply` runs from a later [`run`](Self::run) with the reply or the
    /// error, in submission order. Never blocks: if the channel is full the request waits in a
    /// user-space queue, and past [`WorkerConfig::max_queued`](crate::WorkerConfig) this
    /// returns [`WorkerError::Backpressure`]. Returns the request's sequence number.
    pub fn submit<F>(
        &mut self,
        op: Opcode,
        payload: &[u8],
        fds: Vec<OwnedFd>,
        on_reply: F,
    ) -> Result<u64, WorkerError>
    where
        F: FnOnce(Result<WorkerReply, WorkerError>) + 'static,
    {
        self.enqueue(op, payload, fds, Some(Box::new(on_reply)))
    }

    /// Like [`submit`](Self::submit), but the reply goes to [`take_reply`](Self::take_reply).
    pub fn send(
        &mut self,
        op: Opcode,
        payload: &[u8],
        fds: Vec<OwnedFd>,
    ) -> Result<u64, WorkerError> {
        self.enqueue(op, payload, fds, None)
    }

    /// The next reply (in submission order) of a request made with [`send`](Self::send).
    pub fn take_reply(&mut self) -> Option<Result<WorkerReply, WorkerError>> {
        self.replies.pop_front()
    }

    fn enqueue(
        &mut self,
        op: Opcode,
        payload: &[u8],
        fds: Vec<OwnedFd>,
        callback: Option<Callback>,
    ) -> Result<u64, WorkerError> {
        if let Some(why) = &self.dead {
            return Err(WorkerError::WorkerGone(why.clone()));
        }
        if payload.len() > MAX_PAYLOAD || fds.len() > MAX_FDS {
            return Err(WorkerError::TooLarge(format!(
                "{} bytes, {} descriptors",
                payload.len(),
                fds.len()
            )));
        }
        if self.outq.len() >= self.config.max_queued {
            return Err(WorkerError::Backpressure(self.outq.len()));
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let header = Header {
            kind: Kind::Request,
            opcode: op.0,
            seq,
            len: payload.len() as u32,
            nfds: fds.len() as u8,
        };
        self.pending.push_back(Pending { seq, callback });
        if self.outq.is_empty() {
            match transport::transmit(
                self.sock.as_fd(),
                self.ring.as_mut(),
                &header,
                payload,
                &fds,
            ) {
                Sent::Done => return Ok(seq),
                Sent::Full { socket } => self.want_pollout(socket),
                Sent::Gone(why) => {
                    // Failures are delivered by the next `run()`, never from inside `submit`.
                    self.mark_dead(why);
                    return Ok(seq);
                }
            }
        }
        self.outq.push_back(Outgoing {
            header,
            payload: payload.to_vec(),
            fds,
        });
        Ok(seq)
    }

    fn want_pollout(&mut self, on: bool) {
        if on != self.pollout && self.dead.is_none() {
            let mut flags = EventFlags::IN | EventFlags::RDHUP;
            if on {
                flags |= EventFlags::OUT;
            }
            if epoll::modify(
                &self.epoll,
                &self.sock,
                EventData::new_u64(TOKEN_SOCK),
                flags,
            )
            .is_ok()
            {
                self.pollout = on;
            }
        }
    }

    /// Does everything that can be done without blocking: delivers replies (running callbacks),
    /// flushes queued requests, and notices a dead worker (then fails every outstanding request
    /// in order). Returns how many replies or failures were delivered. Calling it from inside a
    /// reply callback does nothing (reentrancy guard).
    pub fn run(&mut self) -> Result<usize, WorkerError> {
        if self.in_callback {
            return Ok(0);
        }
        let mut delivered = 0;
        loop {
            let mut progress = false;
            while self.dead.is_none() {
                match transport::receive(self.sock.as_fd(), self.ring.as_mut(), &mut self.buf) {
                    Received::Message(m) => {
                        progress = true;
                        delivered += self.deliver(m)?;
                    }
                    Received::Empty => break,
                    Received::Gone(why) => self.mark_dead(why),
                    Received::Garbage(e) => self.protocol_failure(e),
                }
            }
            progress |= self.flush();
            if self.dead.is_some() {
                delivered += self.fail_all();
                return Ok(delivered);
            }
            if progress {
                continue;
            }
            // Idle: ask for a doorbell; if a reply slipped in, keep going.
            if self.ring.as_mut().is_some_and(|r| r.arm()) {
                continue;
            }
            // A socket pair reports death as EOF/ECONNRESET on `recv`; a ring reads its socket
            // only for COPY frames, so when woken with nothing to deliver it asks poll.
            // Rate-limited to once a millisecond, so a busy loop calling `run()` every
            // iteration does not pay a system call each time.
            if delivered == 0
                && self.ring.is_some()
                && self.last_alive_check.elapsed() >= ALIVE_CHECK
            {
                self.last_alive_check = Instant::now();
                self.check_alive();
                if self.dead.is_some() {
                    continue;
                }
            }
            return Ok(delivered);
        }
    }

    /// Sends queued requests until the channel is full. Returns whether any went out.
    fn flush(&mut self) -> bool {
        let mut any = false;
        while let Some(front) = self.outq.front() {
            if self.dead.is_some() {
                return any;
            }
            match transport::transmit(
                self.sock.as_fd(),
                self.ring.as_mut(),
                &front.header,
                &front.payload,
                &front.fds,
            ) {
                Sent::Done => {
                    self.outq.pop_front();
                    any = true;
                }
                Sent::Full { socket } => {
                    self.want_pollout(socket);
                    return any;
                }
                Sent::Gone(why) => self.mark_dead(why),
            }
        }
        self.want_pollout(false);
        any
    }

    /// Idle path only: the socket or the pidfd may say the worker is gone without a reply
    /// pending (a ring transport reads the socket only for COPY frames).
    fn check_alive(&mut self) {
        let mut fds = vec![PollFd::new(&self.sock, PollFlags::RDHUP)];
        if let Some(p) = &self.pidfd {
            fds.push(PollFd::new(p, PollFlags::IN));
        }
        if rustix::event::poll(
            &mut fds,
            Some(&rustix::event::Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            }),
        )
        .unwrap_or(0)
            > 0
        {
            let hup = fds[0]
                .revents()
                .intersects(PollFlags::HUP | PollFlags::RDHUP | PollFlags::ERR);
            let exited = fds
                .get(1)
                .is_some_and(|p| p.revents().contains(PollFlags::IN));
            if hup || exited {
                // A ring transport may still hold replies written before the exit.
                if let Some(ring) = self.ring.as_ref() {
                    if ring.rx.is_ready() {
                        return;
                    }
                }
                self.mark_dead(if exited {
                    "worker exited".into()
                } else {
                    "worker hung up".into()
                });
            }
        }
    }

    fn deliver(&mut self, m: transport::Incoming) -> Result<usize, WorkerError> {
        let expected = self.pending.front().map(|p| p.seq);
        if !matches!(m.header.kind, Kind::Reply | Kind::Error) || expected != Some(m.header.seq) {
            self.protocol_failure(ProtocolError::Unexpected(format!(
                "{:?} for request {} while waiting for {:?}",
                m.header.kind, m.header.seq, expected
            )));
            return Ok(0);
        }
        let Some(pending) = self.pending.pop_front() else {
            return Ok(0);
        };
        let result = if m.header.kind == Kind::Reply {
            Ok(WorkerReply {
                seq: m.header.seq,
                payload: m.payload,
                fds: m.fds,
            })
        } else {
            Err(WorkerError::Handler(
                postcard::from_bytes::<(Option<i32>, String)>(&m.payload)
                    .map(|(errno, message)| HandlerError { errno, message })
                    .unwrap_or_else(|_| HandlerError::new("unreadable handler error")),
            ))
        };
        self.complete(pending, result);
        Ok(1)
    }

    fn complete(&mut self, pending: Pending, result: Result<WorkerReply, WorkerError>) {
        match pending.callback {
            Some(cb) => {
                self.in_callback = true;
                cb(result);
                self.in_callback = false;
            }
            None => self.replies.push_back(result),
        }
    }

    fn protocol_failure(&mut self, e: ProtocolError) {
        tracing::warn!(
            pid = self.pid,
            "worker protocol error, killing the worker: {e}"
        );
        self.kill_process();
        self.mark_dead(format!("protocol error: {e}"));
    }

    fn mark_dead(&mut self, why: String) {
        if self.dead.is_none() {
            tracing::debug!(pid = self.pid, "worker gone: {why}");
            let _ = epoll::delete(&self.epoll, &self.sock);
            if let Some(p) = &self.pidfd {
                let _ = epoll::delete(&self.epoll, p);
            }
            if let Some(r) = &self.ring {
                let _ = epoll::delete(&self.epoll, &r.main_evt);
            }
            self.pollout = false;
            self.dead = Some(why);
        }
    }

    /// Fails every outstanding request, in order. Returns how many.
    fn fail_all(&mut self) -> usize {
        let why = self.dead.clone().unwrap_or_default();
        let why = match self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
        {
            Some(status) => format!("{why} ({status})"),
            None => why,
        };
        self.outq.clear();
        let mut n = 0;
        while let Some(p) = self.pending.pop_front() {
            self.complete(p, Err(WorkerError::WorkerGone(why.clone())));
            n += 1;
        }
        n
    }

    fn kill_process(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
        }
    }

    /// Kills the worker (SIGKILL) and fails its outstanding requests on the next `run()`.
    pub fn kill(&mut self) {
        self.kill_process();
        self.mark_dead("worker killed by its main process".into());
    }

    /// Replaces a dead (or live: it is killed) worker with a new one of the same configuration.
    /// Outstanding requests of the old worker fail first, in order; sequence numbers restart.
    pub fn restart(&mut self) -> Result<(), WorkerError> {
        if self.dead.is_none() {
            self.kill();
        }
        self.run()?;
        let mut fresh = Worker::spawn(self.config)?;
        fresh.epoch = self.epoch + 1;
        std::mem::swap(self, &mut fresh);
        Ok(())
    }

    /// Waits until the channel is ready (or `timeout` passes), then [`run`](Self::run)s.
    pub fn wait(&mut self, timeout: Option<Duration>) -> Result<usize, WorkerError> {
        if self.dead.is_none() {
            let ts = timeout.map(|t| {
                rustix::event::Timespec::try_from(t).unwrap_or(rustix::event::Timespec {
                    tv_sec: 1,
                    tv_nsec: 0,
                })
            });
            let mut fds = [PollFd::new(&self.epoll, PollFlags::IN)];
            match rustix::event::poll(&mut fds, ts.as_ref()) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.run()
    }

    /// Blocking request: submits, then runs the loop (delivering other replies as usual) until
    /// this reply arrives. With the ring transport it spins briefly before sleeping.
    pub fn call(
        &mut self,
        op: Opcode,
        payload: &[u8],
        fds: Vec<OwnedFd>,
    ) -> Result<WorkerReply, WorkerError> {
        let slot: Rc<RefCell<Option<Result<WorkerReply, WorkerError>>>> = Rc::default();
        let out = slot.clone();
        self.submit(op, payload, fds, move |r| *out.borrow_mut() = Some(r))?;
        loop {
            self.run()?;
            if let Some(r) = slot.borrow_mut().take() {
                return r;
            }
            // Ring: spin briefly (a few tens of µs) on the reply ring before sleeping.
            if let Some(ring) = self.ring.as_ref() {
                if (0..CALL_SPIN).any(|i| {
                    if i % 64 == 63 {
                        std::thread::yield_now();
                    } else {
                        std::hint::spin_loop();
                    }
                    ring.rx.is_ready()
                }) {
                    continue;
                }
            }
            self.wait(Some(Duration::from_millis(100)))?;
        }
    }

    /// [`call`](Self::call) with postcard-encoded request and reply.
    pub fn call_typed<Q: Serialize, A: DeserializeOwned>(
        &mut self,
        op: Opcode,
        request: &Q,
    ) -> Result<A, WorkerError> {
        let payload = postcard::to_allocvec(request)?;
        self.call(op, &payload, Vec::new())?.decode()
    }

    /// Runs the loop until no request is outstanding or `timeout` passes; returns whether all
    /// were answered.
    pub fn drain(&mut self, timeout: Duration) -> Result<bool, WorkerError> {
        let deadline = Instant::now() + timeout;
        while !self.pending.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            self.wait(Some(left.min(Duration::from_millis(50))))?;
        }
        Ok(true)
    }
}

impl Drop for Worker {
    /// Closing the channel tells the worker to finish what it has and exit; a thread reaps it.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if !matches!(child.try_wait(), Ok(Some(_))) {
                let _ = std::thread::Builder::new()
                    .name("nlkit-worker-reap".into())
                    .spawn(move || child.wait());
            }
        }
    }
}
