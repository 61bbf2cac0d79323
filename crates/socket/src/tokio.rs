//! Async sockets on tokio (feature `tokio`).
//!
//! [`AsyncSocket`] and [`AsyncEventSocket`] put the descriptor in non-blocking mode and wrap
//! it in [`tokio::io::unix::AsyncFd`]: a receive is tried, and when nothing is queued the task
//! waits for readability instead of blocking its thread. Sends are not awaited: a Netlink
//! `sendmsg` to the kernel is processed synchronously and does not wait for buffer space.

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use nlkit_wire::MessageBuilder;
use rustix::io::Errno;

use crate::recv::RecvBuffer;
use crate::{Error, Event, EventSocket, Result, Socket, TransactReply};

fn io_err(op: &'static str, e: std::io::Error) -> Error {
    Error::sys(
        op,
        Errno::from_raw_os_error(e.raw_os_error().unwrap_or(libc::EIO)),
    )
}

/// Registers a socket with tokio's reactor for readability.
fn register<T: std::os::fd::AsRawFd>(inner: T) -> Result<AsyncFd<T>> {
    // SAFETY: `T` is `Socket` or `EventSocket`, which own their `OwnedFd` for their whole
    // life and never replace it, so `as_raw_fd()` always returns the same open descriptor
    // until the `AsyncFd` (which owns `inner`) is dropped or unwrapped.
    unsafe { AsyncFd::register_with_interest(inner, Interest::READABLE) }
        .map_err(|e| io_err("AsyncFd::register", e.into_parts().1))
}

/// A request socket driven by tokio.
///
/// ```no_run
/// # async fn demo() -> nlkit_socket::Result<()> {
/// use nlkit_socket::{tokio::AsyncSocket, Protocol, Socket};
/// use nlkit_wire::{consts::*, IfInfoMsg, MessageBuilder};
/// let mut sock = AsyncSocket::new(Socket::open(Protocol::Route)?)?;
/// let mut req = MessageBuilder::new();
/// req.begin(RTM_GETLINK, 0, 0);
/// req.header(&IfInfoMsg { index: 1, ..Default::default() });
/// req.finish().unwrap();
/// let reply = sock.transact(&mut req).await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct AsyncSocket {
    fd: AsyncFd<Socket>,
    buf: RecvBuffer,
}

impl AsyncSocket {
    /// Wraps `sock` (switched to non-blocking mode). Must be called inside a tokio runtime.
    pub fn new(mut sock: Socket) -> Result<AsyncSocket> {
        sock.set_nonblocking(true)?;
        Ok(AsyncSocket {
            fd: register(sock)?,
            buf: RecvBuffer::new(),
        })
    }

    /// The socket.
    pub fn get_mut(&mut self) -> &mut Socket {
        self.fd.get_mut()
    }

    /// Receives one datagram into `buf`, waiting for one to arrive.
    pub async fn recv(&mut self, buf: &mut RecvBuffer) -> Result<()> {
        loop {
            let mut guard = self
                .fd
                .readable_mut()
                .await
                .map_err(|e| io_err("poll", e))?;
            if guard.get_inner_mut().try_recv(buf)? {
                return Ok(());
            }
            guard.clear_ready();
        }
    }

    /// Like [`Socket::dump`], awaiting each datagram instead of blocking: `f` gets every reply
    /// message of the dump in `req`, in order; the outcome is the same as the blocking dump's.
    ///
    /// ```no_run
    /// # async fn run() -> nlkit_socket::Result<()> {
    /// use nlkit_socket::{tokio::AsyncSocket, Protocol, Socket};
    /// use nlkit_wire::{consts::*, IfInfoMsg, MessageBuilder};
    /// let mut sock = AsyncSocket::new(Socket::open(Protocol::Route)?)?;
    /// let mut req = MessageBuilder::new();
    /// req.begin(RTM_GETLINK, 0, 0);
    /// req.header(&IfInfoMsg::default());
    /// req.finish().unwrap();
    /// let end = sock.dump(&mut req, |_m| Ok::<(), nlkit_socket::Error>(())).await?;
    /// println!("{} links", end.received);
    /// # Ok(()) }
    /// ```
    pub async fn dump<E: From<Error>>(
        &mut self,
        req: &mut MessageBuilder,
        mut f: impl FnMut(&nlkit_wire::Message<'_>) -> std::result::Result<(), E>,
    ) -> std::result::Result<crate::DumpSummary, E> {
        let seq = self.fd.get_mut().send_dump(req)?;
        let mut buf = std::mem::take(&mut self.buf);
        let mut state = crate::dump::stream::Absorb::new(seq);
        let out = loop {
            if let Err(e) = self.recv(&mut buf).await {
                break Err(e.into());
            }
            if let Some(r) = state.absorb(&mut buf, &mut f) {
                break r;
            }
        };
        self.buf = buf;
        out
    }

    /// Like [`Socket::transact`], awaiting the reply instead of blocking.
    pub async fn transact(&mut self, request: &mut MessageBuilder) -> Result<TransactReply> {
        let (seq, mut pending) = self.fd.get_mut().prepare_one(request)?;
        self.fd.get_mut().send(request.as_bytes())?;
        let mut buf = std::mem::take(&mut self.buf);
        let out = self.collect(&mut buf, seq, &mut pending).await;
        self.buf = buf;
        if out.is_err() {
            self.fd.get_mut().poisoned = true;
        }
        out?;
        pending
            .result
            .take()
            .unwrap_or(Err(Error::Unexpected("request left without a reply")))
    }

    async fn collect(
        &mut self,
        buf: &mut RecvBuffer,
        seq: u32,
        pending: &mut crate::transact::Pending,
    ) -> Result<()> {
        let mut overflowed = false;
        while pending.result.is_none() {
            let mut guard = self
                .fd
                .readable_mut()
                .await
                .map_err(|e| io_err("poll", e))?;
            let sock = guard.get_inner_mut();
            match sock.try_recv(buf) {
                Ok(true) => {
                    sock.absorb(buf, seq, std::slice::from_mut(pending))?;
                }
                Ok(false) if overflowed => break,
                Ok(false) => guard.clear_ready(),
                Err(Error::Sys {
                    errno: Errno::NOBUFS,
                    ..
                }) => overflowed = true,
                Err(e) => return Err(e),
            }
        }
        if overflowed {
            self.fd
                .get_mut()
                .mark_lost(seq, std::slice::from_mut(pending));
        }
        Ok(())
    }
}

/// An event socket driven by tokio: an async source of [`Event`]s.
///
/// ```no_run
/// # async fn demo() -> nlkit_socket::Result<()> {
/// use nlkit_socket::{tokio::AsyncEventSocket, Event, EventSocket, Protocol, RecvBuffer};
/// use nlkit_wire::consts::RTNLGRP_LINK;
/// let mut events = AsyncEventSocket::new(EventSocket::open(Protocol::Route, &[RTNLGRP_LINK])?)?;
/// let mut buf = RecvBuffer::new();
/// loop {
///     match events.recv_event(&mut buf).await? {
///         Event::Messages { messages, .. } => println!("{} messages", messages.count()),
///         Event::Overrun => println!("resync"),
///     }
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct AsyncEventSocket {
    fd: AsyncFd<EventSocket>,
}

impl AsyncEventSocket {
    /// Wraps `events` (switched to non-blocking mode). Must be called inside a tokio runtime.
    pub fn new(mut events: EventSocket) -> Result<AsyncEventSocket> {
        events.socket().set_nonblocking(true)?;
        Ok(AsyncEventSocket {
            fd: register(events)?,
        })
    }

    /// The event socket (to join or leave groups).
    pub fn get_mut(&mut self) -> &mut EventSocket {
        self.fd.get_mut()
    }

    /// Waits for the next datagram of notifications, or an overrun.
    pub async fn recv_event<'b>(&mut self, buf: &'b mut RecvBuffer) -> Result<Event<'b>> {
        loop {
            let mut guard = self
                .fd
                .readable_mut()
                .await
                .map_err(|e| io_err("poll", e))?;
            let ev = guard.get_inner_mut();
            match ev.socket().try_recv(buf) {
                Ok(true) => break,
                Ok(false) => guard.clear_ready(),
                Err(e) => return ev.overrun_or(e),
            }
        }
        Ok(Event::Messages {
            nsid: buf.nsid(),
            messages: buf.messages(),
        })
    }
}
