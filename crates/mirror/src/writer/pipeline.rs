//! [`WriterMode::Worker`](super::WriterMode::Worker): the writer thread that owns the worker
//! process and pipelines the clients' writes to it (see the parent module's docs).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nlkit_worker::{Opcode, Worker, WorkerConfig, WorkerError};

use super::{error_text, timed_out, timed_out_unsent, write_failed, Job, WORKER_HANDLER_NAME};
use crate::metrics::Metrics;
use crate::MirrorError;

/// After a failed worker start, how long to wait before trying again with no write waiting.
const RESTART_RETRY: Duration = Duration::from_secs(1);

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
pub(super) struct WorkerWriter {
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
    pub(super) fn new(
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

    fn spawn() -> Result<(Worker, Opcode), MirrorError> {
        let w = Worker::spawn(WorkerConfig::default()).map_err(MirrorError::WorkerStart)?;
        let op = w
            .opcode(WORKER_HANDLER_NAME)
            .map_err(MirrorError::WorkerHandlerMissing)?;
        Ok((w, op))
    }

    pub(super) fn run(mut self, ready: SyncSender<Result<(), MirrorError>>) {
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
                let text = error_text(&e);
                tracing::error!(error = %text, "worker restart failed");
                self.retry_at = Some(Instant::now() + RESTART_RETRY);
                for job in self.backlog.drain(..) {
                    let _ = job.reply.send(Err((libc::EIO, text.clone())));
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
                    let _ = job.reply.send(Err(write_failed("kernel write failed", &e)));
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
                            "the mirror's worker process died during the write ({}); it is being \
                         restarted; the write may or may not have been applied",
                            error_text(&e)
                        ),
                    ))
                }
                Err(e) => Err(write_failed("kernel write failed", &e)),
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
