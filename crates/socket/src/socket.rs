//! One Netlink socket: open, bind, send, receive.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use rustix::io::Errno;
use rustix::net::netlink::SocketAddrNetlink;
use rustix::net::{AddressFamily, SendFlags, SocketFlags, SocketType};

use crate::options::{self, AppliedOptions, Protocol, SocketOptions};
use crate::recv::{recv_datagram, RecvBuffer};
use crate::{Error, Result};

/// Counters of what a socket discarded while receiving.
///
/// ```
/// let s = nlkit_socket::SocketStats::default();
/// assert_eq!(s.foreign_dropped + s.seq_skipped, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SocketStats {
    /// Datagrams dropped because their sender's port id was not 0 (not the kernel).
    pub foreign_dropped: u64,
    /// Messages skipped because their sequence number matched no outstanding request.
    pub seq_skipped: u64,
}

/// Which kind of descriptor a [`Socket`] carries Netlink messages over.
///
/// ```no_run
/// use nlkit_socket::{Protocol, Socket, SocketTransport};
/// let sock = Socket::connect_unix("/run/nlkit/mirror.sock", Protocol::Route)?;
/// assert_eq!(sock.transport(), SocketTransport::Unix);
/// # Ok::<(), nlkit_socket::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SocketTransport {
    /// An `AF_NETLINK` socket: the kernel answers.
    Netlink,
    /// An `AF_UNIX` `SOCK_SEQPACKET` connection to a peer that speaks Netlink framing (such as
    /// the nlkit mirror); see [`Socket::connect_unix`].
    Unix,
}

/// A Netlink socket of one protocol, close-on-exec: either bound to a port id the kernel
/// chose ([`open`](Socket::open)), or connected to a local server that speaks Netlink over a
/// Unix `SOCK_SEQPACKET` socket ([`connect_unix`](Socket::connect_unix), for example the
/// nlkit mirror). Everything built on `Socket` works on both.
///
/// Requests go through [`transact`](Socket::transact) and
/// [`transact_batch`](Socket::transact_batch); dumps through
/// [`SharedDump`](crate::SharedDump); multicast through [`EventSocket`](crate::EventSocket).
/// A `Socket` is used by one thread at a time (`&mut self`); the pool hands sockets out.
///
/// ```no_run
/// use nlkit_socket::{Protocol, Socket};
/// let sock = Socket::open(Protocol::Route)?;
/// assert_ne!(sock.port_id(), 0);
/// println!("granted rcvbuf {}", sock.applied().rcvbuf);
/// # Ok::<(), nlkit_socket::Error>(())
/// ```
#[derive(Debug)]
pub struct Socket {
    fd: OwnedFd,
    /// Immutable after construction.
    transport: SocketTransport,
    protocol: Protocol,
    port_id: u32,
    next_seq: u32,
    applied: AppliedOptions,
    pub(crate) stats: SocketStats,
    /// Set when an operation stopped before reading everything the kernel owes us (or the
    /// socket joined groups): such a socket is never returned to a pool.
    pub(crate) poisoned: bool,
    /// Receive buffer for transactions, allocated on first use and kept.
    pub(crate) scratch: Option<RecvBuffer>,
    /// A [`Transport::Unix`] socket that subscribed to the mirror's feed (see `crate::feed`).
    pub(crate) mirror_following: bool,
}

impl Socket {
    /// Opens a socket of `protocol` with the default [`SocketOptions`].
    pub fn open(protocol: Protocol) -> Result<Socket> {
        Socket::with_options(protocol, &SocketOptions::default())
    }

    /// Opens a socket of `protocol` with `opts`, binds it to a kernel-assigned port id and
    /// reads that id back.
    ///
    /// ```no_run
    /// use nlkit_socket::{Protocol, Socket, SocketOptions};
    /// let strict = SocketOptions { strict: true, rcvbuf: 256 * 1024, ..Default::default() };
    /// let sock = Socket::with_options(Protocol::Netfilter, &strict)?;
    /// # Ok::<(), nlkit_socket::Error>(())
    /// ```
    pub fn with_options(protocol: Protocol, opts: &SocketOptions) -> Result<Socket> {
        let proto = match protocol.raw() {
            0 => None,
            n => rustix::net::RawProtocol::new(n as u32).map(rustix::net::Protocol::from_raw),
        };
        let fd = rustix::net::socket_with(
            AddressFamily::NETLINK,
            SocketType::RAW,
            SocketFlags::CLOEXEC,
            proto,
        )
        .map_err(|e| Error::sys("socket(AF_NETLINK)", e))?;
        let applied = options::apply(&fd, protocol, opts)?;
        rustix::net::bind(&fd, &SocketAddrNetlink::new(0, 0)).map_err(|e| Error::sys("bind", e))?;
        let addr = rustix::net::getsockname(&fd).map_err(|e| Error::sys("getsockname", e))?;
        let port_id = SocketAddrNetlink::try_from(addr)
            .map_err(|e| Error::sys("getsockname", e))?
            .pid();
        Ok(Socket::from_parts(
            fd,
            SocketTransport::Netlink,
            protocol,
            port_id,
            applied,
        ))
    }

    /// Wraps a ready descriptor (bound or connected).
    pub(crate) fn from_parts(
        fd: OwnedFd,
        transport: SocketTransport,
        protocol: Protocol,
        port_id: u32,
        applied: AppliedOptions,
    ) -> Socket {
        // Start sequence numbers somewhere unlikely to match a stale reply from a previous
        // user of the same port id.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        Socket {
            fd,
            transport,
            protocol,
            port_id,
            next_seq: (now ^ port_id.rotate_left(16)) | 1,
            applied,
            stats: SocketStats::default(),
            poisoned: false,
            scratch: None,
            mirror_following: false,
        }
    }

    /// The protocol.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// What the socket is connected over.
    pub fn transport(&self) -> SocketTransport {
        self.transport
    }

    /// The port id the kernel assigned (0 on a [`SocketTransport::Unix`] socket: it has none, and
    /// its requests carry 0).
    pub fn port_id(&self) -> u32 {
        self.port_id
    }

    /// What the kernel applied of the requested options. On a [`SocketTransport::Unix`] socket no
    /// Netlink option applies: `rcvbuf` is the socket's `SO_RCVBUF` as read back,
    /// `rcvbuf_forced` is false and `refused` is empty.
    pub fn applied(&self) -> &AppliedOptions {
        &self.applied
    }

    /// What this socket has discarded so far.
    pub fn stats(&self) -> SocketStats {
        self.stats
    }

    /// Reserves `n` consecutive sequence numbers and returns the first.
    ///
    /// ```no_run
    /// let mut s = nlkit_socket::Socket::open(nlkit_socket::Protocol::Route)?;
    /// let a = s.alloc_seq(3);
    /// assert_eq!(s.alloc_seq(1), a.wrapping_add(3));
    /// # Ok::<(), nlkit_socket::Error>(())
    /// ```
    pub fn alloc_seq(&mut self, n: u32) -> u32 {
        let first = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(n);
        first
    }

    /// Sends `bytes` (one or more whole messages) to the kernel (or the Unix peer) in one
    /// `sendmsg`: one datagram.
    pub fn send(&mut self, bytes: &[u8]) -> Result<()> {
        // A Unix peer that went away must give EPIPE, not SIGPIPE.
        let flags = match self.transport {
            SocketTransport::Netlink => SendFlags::empty(),
            SocketTransport::Unix => SendFlags::NOSIGNAL,
        };
        loop {
            match rustix::net::send(&self.fd, bytes, flags) {
                Ok(n) if n == bytes.len() => return Ok(()),
                Ok(_) => return Err(Error::Unexpected("short send on a netlink socket")),
                Err(Errno::INTR) => continue,
                Err(e) => return Err(Error::sys("sendmsg", e)),
            }
        }
    }

    /// Receives one datagram from the kernel into `buf` (blocking), with one `recvmsg`.
    /// Datagrams from other senders (port id ≠ 0) are dropped and counted. On a
    /// [`SocketTransport::Unix`] socket every datagram comes from the connected peer, and the end
    /// of the connection is [`Error::PeerClosed`].
    ///
    /// ```no_run
    /// use nlkit_socket::{Protocol, RecvBuffer, Socket};
    /// let mut s = Socket::open(Protocol::Route)?;
    /// let mut buf = RecvBuffer::new();
    /// s.recv(&mut buf)?;
    /// while let Some(m) = buf.next_message() {
    ///     println!("type {}", m?.ty());
    /// }
    /// # Ok::<(), nlkit_socket::Error>(())
    /// ```
    pub fn recv(&mut self, buf: &mut RecvBuffer) -> Result<()> {
        self.recv_flags(buf, false)
    }

    /// Like [`recv`](Socket::recv) but returns `Ok(false)` instead of blocking when nothing
    /// is queued.
    pub fn try_recv(&mut self, buf: &mut RecvBuffer) -> Result<bool> {
        match self.recv_flags(buf, true) {
            Ok(()) => Ok(true),
            Err(Error::Sys {
                errno: Errno::AGAIN,
                ..
            }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub(crate) fn recv_flags(&mut self, buf: &mut RecvBuffer, dontwait: bool) -> Result<()> {
        let netlink = self.transport == SocketTransport::Netlink;
        loop {
            let r = recv_datagram(self.fd.as_fd(), buf, dontwait, netlink)?;
            if !netlink && buf.is_empty() {
                // A zero-length read on a connected SEQPACKET socket: the peer hung up.
                return Err(Error::PeerClosed);
            }
            if r.sender != 0 {
                self.stats.foreign_dropped += 1;
                buf.clear();
                tracing::debug!(sender = r.sender, "dropped datagram not sent by the kernel");
                continue;
            }
            return Ok(());
        }
    }

    /// Joins multicast group `group` (a number, as in `RTNLGRP_*`; not a bit mask). A socket
    /// that has joined groups is never returned to a pool. On a [`SocketTransport::Unix`] socket
    /// connected to the nlkit mirror this subscribes to the mirror's change feed for that group
    /// (see [`feed`](crate::feed)): the same events, read with [`recv`](Socket::recv), after
    /// the mirror applied them, each carrying its feed position.
    pub fn join_group(&mut self, group: u32) -> Result<()> {
        if self.transport == SocketTransport::Unix {
            return self.mirror_join(group);
        }
        self.poisoned = true;
        options::membership(&self.fd, group, true)
    }

    /// Leaves multicast group `group` ([`Error::NotNetlink`] on a [`SocketTransport::Unix`] socket).
    pub fn leave_group(&mut self, group: u32) -> Result<()> {
        self.require_netlink("leave_group")?;
        options::membership(&self.fd, group, false)
    }

    fn require_netlink(&self, op: &'static str) -> Result<()> {
        match self.transport {
            SocketTransport::Netlink => Ok(()),
            SocketTransport::Unix => Err(Error::NotNetlink { op }),
        }
    }

    /// Puts the descriptor in non-blocking mode (for async use).
    pub fn set_nonblocking(&mut self, on: bool) -> Result<()> {
        rustix::io::ioctl_fionbio(&self.fd, on).map_err(|e| Error::sys("ioctl(FIONBIO)", e))
    }

    /// True when the socket can be reused by someone else: no operation left it in an
    /// unknown state, no error is pending (`SO_ERROR`, read and thereby cleared), and no data
    /// is queued (nor, on a [`SocketTransport::Unix`] socket, has the peer hung up).
    ///
    /// ```no_run
    /// let mut s = nlkit_socket::Socket::open(nlkit_socket::Protocol::Route)?;
    /// assert!(s.is_clean());
    /// # Ok::<(), nlkit_socket::Error>(())
    /// ```
    pub fn is_clean(&mut self) -> bool {
        if self.poisoned {
            return false;
        }
        match rustix::net::sockopt::socket_error(&self.fd) {
            Ok(Ok(())) => {}
            _ => return false,
        }
        let mut fds = [rustix::event::PollFd::new(
            &self.fd,
            rustix::event::PollFlags::IN,
        )];
        let zero = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        matches!(rustix::event::poll(&mut fds, Some(&zero)), Ok(0))
    }
}

impl AsFd for Socket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Socket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
