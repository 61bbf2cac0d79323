//! The main process's end of the two transports: transmit one request without blocking, and
//! receive replies without blocking.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{fence, Ordering};

use nlkit_ring::{FrameKind, FrameMeta, MappedFrames, RingError, RingReceiver, RingSender};
use rustix::io::Errno;

use crate::error::ProtocolError;
use crate::header::{Header, HEADER_LEN, MAX_PAYLOAD};
use crate::shm::SharedRings;
use crate::sys::{eventfd_drain, eventfd_signal, recv_msg, send_msg, RecvError};

/// Outcome of a non-blocking transmit.
pub(crate) enum Sent {
    Done,
    /// No room: in the ring (wait for replies) or in the socket (wait for POLLOUT).
    Full {
        socket: bool,
    },
    Gone(String),
}

/// A reply taken off the channel, validated.
pub(crate) struct Incoming {
    pub header: Header,
    pub payload: Vec<u8>,
    pub fds: Vec<OwnedFd>,
}

pub(crate) enum Received {
    Message(Incoming),
    Empty,
    Gone(String),
    Garbage(ProtocolError),
}

/// The ring transport's main-process state.
///
/// Concurrency contract: owned by the main process's event loop (`&mut`); the rings and control
/// words it points into are shared with the worker under the frame and wake-up protocols of
/// `shm.rs`.
pub(crate) struct RingSide {
    pub shared: SharedRings,
    pub tx: RingSender<MappedFrames>,
    pub rx: RingReceiver<MappedFrames>,
    /// Worker → main doorbell (polled by the main loop).
    pub main_evt: OwnedFd,
    /// Main → worker doorbell.
    pub worker_evt: OwnedFd,
    /// Whether we set `MAIN_ARMED` and have not yet seen the worker consume it.
    pub armed: bool,
}

impl RingSide {
    /// Wakes the worker if it said it is going to sleep.
    pub fn kick_worker(&self) {
        fence(Ordering::SeqCst);
        let w = self.shared.worker_waiting();
        if w.load(Ordering::Relaxed) != 0 && w.swap(0, Ordering::SeqCst) == 1 {
            eventfd_signal(&self.worker_evt);
        }
    }

    /// Before the main loop goes idle: ask for a doorbell on the next reply. Returns whether a
    /// reply is already there (then the caller keeps draining instead).
    pub fn arm(&mut self) -> bool {
        let armed = self.shared.main_armed();
        if self.armed {
            if armed.load(Ordering::Relaxed) != 0 {
                // Still armed: the doorbell was not rung, nothing to reset.
                return self.rx.is_ready();
            }
            // The worker consumed the arm and rang: reset the eventfd.
            eventfd_drain(&self.main_evt);
        }
        armed.store(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        self.armed = true;
        self.rx.is_ready()
    }
}

pub(crate) fn gone(e: Errno) -> String {
    match e {
        Errno::PIPE | Errno::CONNRESET => "worker hung up".to_owned(),
        e => format!("channel error: {e}"),
    }
}

/// Transmits one request without blocking.
pub(crate) fn transmit(
    sock: BorrowedFd<'_>,
    ring: Option<&mut RingSide>,
    header: &Header,
    payload: &[u8],
    fds: &[OwnedFd],
) -> Sent {
    let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(|f| f.as_fd()).collect();
    let via_socket = |sock| match send_msg(sock, &[&header.encode(), payload], &borrowed, true) {
        Ok(()) => Sent::Done,
        Err(Errno::AGAIN) => Sent::Full { socket: true },
        Err(e) => Sent::Gone(gone(e)),
    };
    let Some(ring) = ring else {
        return via_socket(sock);
    };
    let total = HEADER_LEN + payload.len();
    if fds.is_empty() && total <= ring.tx.capacity() {
        let mut w = match ring.tx.try_reserve() {
            Ok(w) => w,
            Err(_) => return Sent::Full { socket: false },
        };
        let buf = w.buf();
        buf[..HEADER_LEN].copy_from_slice(&header.encode());
        buf[HEADER_LEN..total].copy_from_slice(payload);
        if w.commit(total, FrameMeta::default()).is_err() {
            return Sent::Full { socket: false };
        }
    } else {
        if !ring.tx.has_free_frame() {
            return Sent::Full { socket: false };
        }
        match via_socket(sock) {
            Sent::Done => {}
            other => return other,
        }
        if ring
            .tx
            .try_send_copy(total as u32, FrameMeta::default())
            .is_err()
        {
            return Sent::Gone("request ring lost its free frame".into());
        }
    }
    ring.kick_worker();
    Sent::Done
}

/// Takes one reply without blocking.
pub(crate) fn receive(
    sock: BorrowedFd<'_>,
    ring: Option<&mut RingSide>,
    buf: &mut [u8],
) -> Received {
    let mut fds = Vec::new();
    let from_socket = |buf: &mut [u8],
                       fds: &mut Vec<OwnedFd>,
                       expect: Option<usize>|
     -> Result<usize, Received> {
        match recv_msg(sock, buf, fds, true) {
            Ok(0) => Err(Received::Gone("worker closed the channel".into())),
            Ok(n) if expect.is_some_and(|e| e != n) => {
                Err(Received::Garbage(ProtocolError::LengthMismatch {
                    header: expect.unwrap_or(0),
                    actual: n,
                }))
            }
            Ok(n) => Ok(n),
            Err(RecvError::Sys(Errno::AGAIN)) if expect.is_none() => Err(Received::Empty),
            Err(RecvError::Sys(Errno::AGAIN)) => Err(Received::Garbage(ProtocolError::Unexpected(
                "COPY frame without a message".into(),
            ))),
            Err(RecvError::Sys(e)) => Err(Received::Gone(gone(e))),
            Err(RecvError::Truncated) => Err(Received::Garbage(ProtocolError::Truncated)),
        }
    };
    let n = match ring {
        None => match from_socket(buf, &mut fds, None) {
            Ok(n) => n,
            Err(r) => return r,
        },
        Some(ring) => {
            let frame = match ring.rx.try_recv() {
                Ok(f) => f,
                Err(RingError::WouldBlock) => return Received::Empty,
                Err(e) => return Received::Garbage(e.into()),
            };
            let len = frame.len();
            let n = match frame.kind() {
                FrameKind::Valid => {
                    // Copy, then validate (the worker could still write the frame).
                    buf[..len].copy_from_slice(frame.payload());
                    drop(frame);
                    len
                }
                FrameKind::Copy => {
                    drop(frame);
                    if len > buf.len() {
                        return Received::Garbage(ProtocolError::TooLong(len));
                    }
                    match from_socket(buf, &mut fds, Some(len)) {
                        Ok(n) => n,
                        Err(r) => return r,
                    }
                }
            };
            // A reply frame was freed: the worker may be waiting for one.
            ring.kick_worker();
            n
        }
    };
    match Header::decode_message(&buf[..n], fds.len()) {
        Ok((header, payload)) => Received::Message(Incoming {
            header,
            payload: payload.to_vec(),
            fds,
        }),
        Err(e) => Received::Garbage(e),
    }
}

/// Size of the receive buffer: one maximal message.
pub(crate) const RECV_BUF: usize = HEADER_LEN + MAX_PAYLOAD;
