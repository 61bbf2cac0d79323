//! [`MirrorClient`]: the mirror's original client type, now a thin layer over
//! [`nlkit_socket::Socket`] connected with [`Socket::connect_unix`]. New code should open that
//! socket directly: every transaction, dump, shared dump and typed request of `nlkit-socket`,
//! `nlkit-route` and `nlkit-conntrack` then runs on the mirror unchanged. This type keeps the
//! older calls — a dump retried while the mirror flags it `NLM_F_DUMP_INTR`, raw datagrams,
//! `io::Error`s — for the code that uses them.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::time::Duration;

use nlkit_socket::{Error, Protocol, RecvBuffer, Socket};
use nlkit_wire::consts::*;
use nlkit_wire::{KernelError, MessageBuilder, Messages};

/// What a mirror request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket failed (connect, send, receive, timeout, the mirror hung up).
    #[error("mirror socket: {0}")]
    Io(#[from] io::Error),
    /// The mirror (or, for writes, the kernel) answered with an error.
    #[error("{0}")]
    Kernel(#[from] KernelError),
    /// The reply did not parse.
    #[error("malformed reply from the mirror: {0}")]
    Malformed(#[from] nlkit_wire::WireError),
    /// A dump stayed inconsistent after every retry.
    #[error("dump still interrupted after {0} attempts")]
    StillInterrupted(u32),
}

impl From<Error> for ClientError {
    fn from(e: Error) -> Self {
        match e {
            Error::Kernel(k) => ClientError::Kernel(k),
            Error::Protocol(w) => ClientError::Malformed(w),
            Error::PeerClosed => ClientError::Io(io::ErrorKind::UnexpectedEof.into()),
            e => ClientError::Io(socket_io_error(e)),
        }
    }
}

/// An `io::Error` carrying the socket error's errno when it has one (a receive timeout stays
/// `WouldBlock`), its text otherwise.
fn socket_io_error(e: Error) -> io::Error {
    match e.errno() {
        Some(errno) if matches!(e, Error::Sys { .. } | Error::Connect { .. }) => {
            io::Error::from_raw_os_error(errno)
        }
        _ => io::Error::other(e),
    }
}

/// The messages a request returned (`NLMSG_DONE` and acks excluded).
///
/// ```
/// let r = nlkit_mirror::Reply::default();
/// assert!(r.is_empty() && r.warning.is_none());
/// ```
#[derive(Debug, Clone, Default)]
pub struct Reply {
    inner: nlkit_socket::Reply,
    /// How many attempts a dump took (1 when the first was consistent).
    pub attempts: u32,
    /// A kernel warning carried by the acknowledgement.
    pub warning: Option<String>,
}

impl Reply {
    fn new(inner: nlkit_socket::Reply) -> Self {
        Reply {
            warning: inner.warning().map(str::to_owned),
            inner,
            attempts: 1,
        }
    }
    /// The reply messages.
    pub fn messages(&self) -> Messages<'_> {
        self.inner.messages()
    }
    /// Number of reply messages.
    pub fn len(&self) -> usize {
        self.inner.len()
    }
    /// Whether there were none.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
    /// The raw bytes of the reply messages, back to back.
    pub fn as_bytes(&self) -> &[u8] {
        self.inner.as_bytes()
    }
}

/// The pause before retrying a dump after `attempts` flagged ones: 1 ms, doubling, at most
/// 100 ms (ten attempts wait about a third of a second in all).
fn retry_pause(attempts: u32) -> Duration {
    Duration::from_millis((1u64 << attempts.saturating_sub(1).min(7)).min(100))
}

/// A connection to a mirror: a [`Socket`] opened with [`Socket::connect_unix`], plus the
/// mirror client's older conveniences — a dump retried while the mirror flags it
/// `NLM_F_DUMP_INTR`, raw datagrams, `io::Error`s. New code can use the socket directly (see
/// [`socket`](Self::socket)): everything built on [`Socket`] runs on the mirror unchanged.
///
/// Concurrency contract: one request at a time (`&mut self`); open one client per thread.
///
/// ```no_run
/// use nlkit_mirror::MirrorClient;
/// use nlkit_wire::{consts::*, MessageBuilder, RtMsg};
///
/// let mut c = MirrorClient::connect(nlkit_mirror::default_socket_path()).unwrap();
/// let mut req = MessageBuilder::new();
/// req.begin(RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, 0);
/// req.header(&RtMsg { family: AF_INET, ..Default::default() });
/// let routes = c.dump(&mut req).unwrap(); // retried until consistent
/// println!("{} IPv4 routes", routes.len());
/// ```
#[derive(Debug)]
pub struct MirrorClient {
    sock: Socket,
    /// For [`recv_raw`](Self::recv_raw).
    buf: RecvBuffer,
    /// Dump attempts before giving up on `NLM_F_DUMP_INTR` (default 10).
    pub max_attempts: u32,
}

impl MirrorClient {
    /// Connects to the mirror at `path`.
    pub fn connect(path: impl AsRef<Path>) -> io::Result<Self> {
        // The protocol is only recorded: the mirror tells requests apart by message type.
        let sock = Socket::connect_unix(path, Protocol::Route).map_err(socket_io_error)?;
        Ok(MirrorClient::from_socket(sock))
    }

    /// Wraps a socket already connected to a mirror.
    ///
    /// ```no_run
    /// use nlkit_socket::{Protocol, Socket};
    /// let sock = Socket::connect_unix("/run/nlkit/mirror.sock", Protocol::Route)?;
    /// let client = nlkit_mirror::MirrorClient::from_socket(sock);
    /// # Ok::<(), nlkit_socket::Error>(())
    /// ```
    pub fn from_socket(sock: Socket) -> Self {
        MirrorClient {
            sock,
            buf: RecvBuffer::new(),
            max_attempts: 10,
        }
    }

    /// The underlying socket, for everything built on [`Socket`].
    ///
    /// ```no_run
    /// use nlkit_wire::{consts::*, IfInfoMsg, MessageBuilder};
    /// let mut c = nlkit_mirror::MirrorClient::connect("/run/nlkit/mirror.sock").unwrap();
    /// let mut req = MessageBuilder::new();
    /// req.begin(RTM_GETLINK, NLM_F_DUMP, 0);
    /// req.header(&IfInfoMsg::default());
    /// req.finish().unwrap();
    /// let end = c.socket().dump(&mut req, |_link| Ok::<(), nlkit_socket::Error>(()))?;
    /// println!("{} links", end.received);
    /// # Ok::<(), nlkit_socket::Error>(())
    /// ```
    pub fn socket(&mut self) -> &mut Socket {
        &mut self.sock
    }

    /// Unwraps the socket.
    pub fn into_socket(self) -> Socket {
        self.sock
    }

    /// Sets a timeout for each receive (`None`: wait forever); a receive that times out fails
    /// with [`io::ErrorKind::WouldBlock`].
    pub fn set_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        rustix::net::sockopt::set_socket_timeout(
            &self.sock,
            rustix::net::sockopt::Timeout::Recv,
            t,
        )?;
        Ok(())
    }

    /// Sends raw request bytes as one datagram, as they are (no flags or sequence number
    /// set).
    pub fn send_raw(&self, bytes: &[u8]) -> io::Result<()> {
        loop {
            match rustix::net::send(&self.sock, bytes, rustix::net::SendFlags::NOSIGNAL) {
                Ok(_) => return Ok(()),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Receives one datagram; an empty slice means the mirror hung up.
    pub fn recv_raw(&mut self) -> io::Result<&[u8]> {
        match self.sock.recv(&mut self.buf) {
            Ok(()) => Ok(self.buf.unread()),
            Err(Error::PeerClosed) => Ok(&[]),
            Err(e) => Err(socket_io_error(e)),
        }
    }

    /// Finishes `req` if its message is still open, marks it a dump when asked, and runs it as
    /// one transaction (which sets `NLM_F_REQUEST | NLM_F_ACK` and a fresh sequence number).
    fn exchange(&mut self, req: &mut MessageBuilder, dump: bool) -> Result<Reply, ClientError> {
        if let Err(e) = req.finish() {
            // "finish without begin" on an already finished request is fine.
            if req.is_empty() {
                return Err(e.into());
            }
        }
        if dump && req.len() >= nlkit_wire::NLMSG_HDRLEN {
            let b = req.as_bytes_mut();
            let flags = u16::from_ne_bytes([b[6], b[7]]) | NLM_F_REQUEST | NLM_F_DUMP;
            b[6..8].copy_from_slice(&flags.to_ne_bytes());
        }
        Ok(Reply::new(self.sock.transact(req)?))
    }

    /// Sends one request (a get or a write; `NLM_F_ACK` is added) and returns its reply.
    ///
    /// ```no_run
    /// use nlkit_mirror::MirrorClient;
    /// use nlkit_wire::{consts::*, IfInfoMsg, MessageBuilder};
    /// let mut c = MirrorClient::connect("/run/nlkit/mirror.sock").unwrap();
    /// let mut req = MessageBuilder::new();
    /// req.begin(RTM_GETLINK, NLM_F_REQUEST, 0);
    /// req.header(&IfInfoMsg { index: 1, ..Default::default() });
    /// let lo = c.transact(&mut req).unwrap();
    /// assert_eq!(lo.len(), 1);
    /// ```
    pub fn transact(&mut self, req: &mut MessageBuilder) -> Result<Reply, ClientError> {
        self.exchange(req, false)
    }

    /// Runs a dump, retrying while the mirror flags it `NLM_F_DUMP_INTR` (up to
    /// [`max_attempts`](Self::max_attempts), pausing 1 ms, 2 ms, 4 ms … at most 100 ms between
    /// attempts), and returns a consistent result.
    pub fn dump(&mut self, req: &mut MessageBuilder) -> Result<Reply, ClientError> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let (mut r, intr) = self.dump_once(req)?;
            if !intr {
                r.attempts = attempts;
                return Ok(r);
            }
            if attempts >= self.max_attempts {
                return Err(ClientError::StillInterrupted(attempts));
            }
            // The table is changing (often a resync the mirror is applying): give the change
            // time to finish instead of racing it, 1 ms doubling up to 100 ms.
            std::thread::sleep(retry_pause(attempts));
        }
    }

    /// Runs a dump once and returns it with its `NLM_F_DUMP_INTR` flag, without retrying.
    pub fn dump_once(&mut self, req: &mut MessageBuilder) -> Result<(Reply, bool), ClientError> {
        let r = self.exchange(req, true)?;
        let intr = r.inner.interrupted();
        Ok((r, intr))
    }
}

impl AsFd for MirrorClient {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}
