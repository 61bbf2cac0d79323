//! [`MirrorClient`]: talks to a running mirror the way a kernel Netlink socket is used —
//! requests built with `nlkit_wire::MessageBuilder`, replies as Netlink messages — and retries
//! a dump the mirror flags `NLM_F_DUMP_INTR`.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use nlkit_wire::consts::*;
use nlkit_wire::{DoneMsg, ErrorMsg, KernelError, Message, MessageBuilder, Messages};
use rustix::buffer::spare_capacity;
use rustix::io::Errno;
use rustix::net::{
    connect, recv, send, socket_with, AddressFamily, RecvFlags, SendFlags, SocketAddrUnix,
    SocketFlags, SocketType,
};

/// Receive space reserved for each datagram: the mirror sends at most about 36 KiB at once.
const RECV_SPACE: usize = 128 * 1024;

/// What a mirror request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket failed (connect, send, receive, timeout).
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

/// The messages a request returned (`NLMSG_DONE` and acks excluded).
#[derive(Debug, Clone, Default)]
pub struct Reply {
    bytes: Vec<u8>,
    count: usize,
    /// How many attempts a dump took (1 when the first was consistent).
    pub attempts: u32,
    /// A kernel warning carried by the acknowledgement.
    pub warning: Option<String>,
}

impl Reply {
    /// The reply messages.
    pub fn messages(&self) -> Messages<'_> {
        Messages::new(&self.bytes)
    }
    /// Number of reply messages.
    pub fn len(&self) -> usize {
        self.count
    }
    /// Whether there were none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
    /// The raw bytes of the reply messages, back to back.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// A connection to a mirror.
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
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
    /// Dump attempts before giving up on `NLM_F_DUMP_INTR` (default 10).
    pub max_attempts: u32,
}

impl MirrorClient {
    /// Connects to the mirror at `path`.
    pub fn connect(path: impl AsRef<Path>) -> io::Result<Self> {
        let fd = socket_with(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )?;
        connect(&fd, &SocketAddrUnix::new(path.as_ref())?)?;
        Ok(MirrorClient {
            fd,
            seq: 0,
            buf: vec![0; 128 * 1024],
            max_attempts: 10,
        })
    }

    /// Sets a timeout for each receive (`None`: wait forever).
    pub fn set_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        rustix::net::sockopt::set_socket_timeout(&self.fd, rustix::net::sockopt::Timeout::Recv, t)?;
        Ok(())
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    /// Sends raw request bytes as one datagram.
    pub fn send_raw(&self, bytes: &[u8]) -> io::Result<()> {
        loop {
            match send(&self.fd, bytes, SendFlags::NOSIGNAL) {
                Ok(_) => return Ok(()),
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Receives one datagram (at most 128 KiB); an empty slice means the mirror hung up.
    pub fn recv_raw(&mut self) -> io::Result<&[u8]> {
        loop {
            match recv(&self.fd, &mut self.buf[..], RecvFlags::empty()) {
                Ok((n, _)) => return Ok(&self.buf[..n]),
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Finishes and stamps `req` (its first message), sends it, and collects the reply until the
    /// ack, error or `NLMSG_DONE` of that sequence number. Returns the reply and whether it
    /// was flagged `NLM_F_DUMP_INTR`.
    fn exchange(
        &mut self,
        req: &mut MessageBuilder,
        dump: bool,
    ) -> Result<(Reply, bool), ClientError> {
        if let Err(e) = req.finish() {
            // "finish without begin" on an already finished request is fine.
            if req.is_empty() {
                return Err(e.into());
            }
        }
        let seq = self.next_seq();
        req.stamp_seq(seq);
        let bytes = req.as_bytes();
        if bytes.len() >= 8 && dump {
            // Make sure the dump flags are set.
            let flags = u16::from_ne_bytes([bytes[6], bytes[7]]) | NLM_F_REQUEST | NLM_F_DUMP;
            req.as_bytes_mut()[6..8].copy_from_slice(&flags.to_ne_bytes());
        } else if bytes.len() >= 8 {
            let flags = u16::from_ne_bytes([bytes[6], bytes[7]]) | NLM_F_REQUEST | NLM_F_ACK;
            req.as_bytes_mut()[6..8].copy_from_slice(&flags.to_ne_bytes());
        }
        self.send_raw(req.as_bytes())?;
        let mut reply = Reply {
            attempts: 1,
            ..Default::default()
        };
        let mut intr = false;
        loop {
            // Receive straight into the reply (no copy per datagram or per message), then
            // drop what is not a reply message of this request, in place.
            let start = reply.bytes.len();
            reply.bytes.reserve(RECV_SPACE);
            let n = loop {
                match recv(
                    &self.fd,
                    spare_capacity(&mut reply.bytes),
                    RecvFlags::empty(),
                ) {
                    Ok((n, _)) => break n,
                    Err(Errno::INTR) => continue,
                    Err(e) => return Err(ClientError::Io(e.into())),
                }
            };
            if n == 0 {
                return Err(ClientError::Io(io::ErrorKind::UnexpectedEof.into()));
            }
            let end = reply.bytes.len();
            let (mut off, mut kept) = (start, start);
            while off < end {
                let (m, advance) = Message::parse(&reply.bytes[off..end])?;
                if m.seq() == seq {
                    if m.flags() & NLM_F_DUMP_INTR != 0 {
                        intr = true;
                    }
                    match m.ty() {
                        NLMSG_ERROR => {
                            let e = ErrorMsg::parse(&m)?;
                            if let Some(err) = e.to_error() {
                                return Err(err.into());
                            }
                            reply.warning = e.warning().map(str::to_owned);
                            reply.bytes.truncate(kept);
                            return Ok((reply, intr));
                        }
                        NLMSG_DONE => {
                            let done = DoneMsg::parse(&m)?;
                            if let Some(err) = done.to_error() {
                                return Err(err.into());
                            }
                            let interrupted = intr || done.interrupted;
                            reply.bytes.truncate(kept);
                            return Ok((reply, interrupted));
                        }
                        _ => {
                            if kept != off {
                                reply.bytes.copy_within(off..off + advance, kept);
                            }
                            kept += advance;
                            reply.count += 1;
                        }
                    }
                }
                off += advance;
            }
            reply.bytes.truncate(kept);
            // A last message shorter than its aligned length: pad it.
            reply.bytes.resize(nlkit_wire::align(kept), 0);
        }
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
        self.exchange(req, false).map(|(r, _)| r)
    }

    /// Runs a dump, retrying while the mirror flags it `NLM_F_DUMP_INTR` (up to
    /// [`max_attempts`](Self::max_attempts)), and returns a consistent result.
    pub fn dump(&mut self, req: &mut MessageBuilder) -> Result<Reply, ClientError> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let (mut r, intr) = self.exchange(req, true)?;
            if !intr {
                r.attempts = attempts;
                return Ok(r);
            }
            if attempts >= self.max_attempts {
                return Err(ClientError::StillInterrupted(attempts));
            }
        }
    }

    /// Runs a dump once and returns it with its `NLM_F_DUMP_INTR` flag, without retrying.
    pub fn dump_once(&mut self, req: &mut MessageBuilder) -> Result<(Reply, bool), ClientError> {
        self.exchange(req, true)
    }
}

impl AsFd for MirrorClient {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
