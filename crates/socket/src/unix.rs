//! Netlink over a Unix `SOCK_SEQPACKET` connection: [`Socket::connect_unix`].
//!
//! A local server can answer Netlink requests in the kernel's own format — the nlkit mirror
//! does, from its copy of the kernel's tables. A [`Socket`] connected to such a server is used
//! exactly like a kernel socket: [`transact`](Socket::transact),
//! [`transact_batch`](Socket::transact_batch), [`dump`](Socket::dump),
//! [`SharedDump`](crate::SharedDump) (over [`Pool::connect_unix`](crate::Pool::connect_unix)),
//! [`consistent_dump`](crate::consistent_dump), and the typed layers built on them.
//!
//! What the peer must do (the kernel's behaviour, carried over a stream of datagrams):
//! * take one request datagram of one or more whole messages, at most [`UNIX_MAX_REQUEST`]
//!   bytes (larger request batches are split into windows below that size);
//! * answer each request in datagrams of whole messages carrying the request's
//!   `nlmsg_seq`: reply objects, then an `NLMSG_ERROR` acknowledgement (when `NLM_F_ACK` was
//!   set) or error — with extended-ack TLVs if it has a text — or, for a dump, `NLMSG_DONE`
//!   (flagged `NLM_F_DUMP_INTR` when the dump overlapped a change);
//! * keep each datagram within what a [`RecvBuffer`](crate::RecvBuffer) receives whole (its
//!   primary region plus spare tail: 96 KiB at least).
//!
//! Who answers: after connecting, the server's credentials (`SO_PEERCRED`, taken by the
//! kernel when the server called `listen`) are checked, and a server that runs as neither the
//! caller's effective uid nor root is refused with [`Error::UntrustedPeer`] — whoever could
//! create a socket at the path could otherwise answer with forged routes.
//!
//! What differs from a kernel socket: there is no port id (it is 0, and requests carry 0),
//! no Netlink socket option applies, multicast groups are the mirror's change feed
//! ([`join_group`](Socket::join_group) subscribes; see [`feed`](crate::feed); leaving a group
//! is [`Error::NotNetlink`]), and the connection can end ([`Error::PeerClosed`]). Replies are
//! matched by sequence number as on a kernel socket, and every datagram is taken as coming
//! from the peer (a Unix source address is a path, never a port id).

use std::path::{Path, PathBuf};

use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

use crate::options::{AppliedOptions, Protocol};
use crate::socket::SocketTransport;
use crate::{Error, Result, Socket};

/// The largest request datagram a [`SocketTransport::Unix`] socket sends (64 KiB; what the nlkit
/// mirror accepts). A bigger batch is sent in several windows; a single bigger message goes
/// alone, and the peer answers it with an error (`EMSGSIZE`).
pub const UNIX_MAX_REQUEST: usize = 64 * 1024;

/// Where the nlkit mirror listens unless configured otherwise: `/run/nlkit/mirror.sock` as
/// root, else `$XDG_RUNTIME_DIR/nlkit/mirror.sock` (or `/tmp/nlkit-$UID/mirror.sock` without
/// it). Clients pass it to [`Socket::connect_unix`]; the mirror binds it (and re-exports it as
/// `nlkit_mirror::default_socket_path`).
///
/// ```
/// use nlkit_socket::unix::default_mirror_path;
/// assert!(default_mirror_path().ends_with("mirror.sock"));
/// // With a mirror running: Socket::connect_unix(default_mirror_path(), Protocol::Route)
/// ```
pub fn default_mirror_path() -> PathBuf {
    let euid = rustix::process::geteuid();
    if euid.is_root() {
        return PathBuf::from("/run/nlkit/mirror.sock");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("nlkit/mirror.sock"),
        _ => PathBuf::from(format!("/tmp/nlkit-{}/mirror.sock", euid.as_raw())),
    }
}

impl Socket {
    /// Connects to the Unix `SOCK_SEQPACKET` socket at `path` (close-on-exec), whose server
    /// speaks Netlink framing — for example the nlkit mirror — and returns a socket used like
    /// one opened with [`open`](Socket::open). `protocol` is recorded (pools and typed layers
    /// check it); the server tells requests apart by their message type.
    ///
    /// The server must run as the caller's effective uid or as root (`SO_PEERCRED`);
    /// otherwise the connection is closed and [`Error::UntrustedPeer`] returned.
    ///
    /// See the [module docs](crate::unix) for how this transport differs from a kernel
    /// socket.
    ///
    /// ```no_run
    /// use nlkit_socket::{Protocol, Socket};
    /// use nlkit_wire::{consts::*, IfInfoMsg, MessageBuilder};
    ///
    /// // The mirror answers like the kernel, from its tables.
    /// let mut sock = Socket::connect_unix("/run/nlkit/mirror.sock", Protocol::Route)?;
    /// let mut req = MessageBuilder::new();
    /// req.begin(RTM_GETLINK, 0, 0);
    /// req.header(&IfInfoMsg { index: 1, ..Default::default() });
    /// req.finish().unwrap();
    /// let lo = sock.transact(&mut req)?;
    /// assert_eq!(lo.len(), 1);
    /// # Ok::<(), nlkit_socket::Error>(())
    /// ```
    pub fn connect_unix(path: impl AsRef<Path>, protocol: Protocol) -> Result<Socket> {
        let path = path.as_ref();
        let refused = |errno| Error::Connect {
            path: path.display().to_string(),
            errno,
        };
        let fd = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|e| Error::sys("socket(AF_UNIX)", e))?;
        let addr = SocketAddrUnix::new(path).map_err(refused)?;
        loop {
            match rustix::net::connect(&fd, &addr) {
                Ok(()) => break,
                // Interrupted while waiting for room in the listen backlog: the socket is
                // still unconnected, so connecting again is correct.
                Err(Errno::INTR) => continue,
                Err(e) => return Err(refused(e)),
            }
        }
        check_peer(&fd, path)?;
        let applied = AppliedOptions {
            rcvbuf: rustix::net::sockopt::socket_recv_buffer_size(&fd)
                .map_err(|e| Error::sys("getsockopt(SO_RCVBUF)", e))?,
            ..AppliedOptions::default()
        };
        Ok(Socket::from_parts(
            fd,
            SocketTransport::Unix,
            protocol,
            0,
            applied,
        ))
    }
}

/// Refuses a server that runs as neither our effective uid nor root.
fn check_peer(fd: &impl std::os::fd::AsFd, path: &Path) -> Result<()> {
    let cred = rustix::net::sockopt::socket_peercred(fd)
        .map_err(|e| Error::sys("getsockopt(SO_PEERCRED)", e))?;
    if cred.uid == rustix::process::geteuid() || cred.uid.is_root() {
        return Ok(());
    }
    Err(Error::UntrustedPeer {
        path: path.display().to_string(),
        uid: cred.uid.as_raw(),
    })
}

/// The most file descriptors [`Socket::recv_with_fds`] accepts in one datagram; more is an
/// error (`MSG_CTRUNC`), and every fd that did arrive is closed.
pub const MAX_RECV_FDS: usize = 8;

impl Socket {
    /// Receives one datagram into `buf` together with the file descriptors it carries in
    /// `SCM_RIGHTS` (received close-on-exec, appended to `fds`); returns the datagram's length.
    ///
    /// For servers that hand descriptors over on a Unix connection (the nlkit mirror answers
    /// its `MSG_MAP` request with its shared region's memfd). A datagram longer than `buf`
    /// is [`Error::Truncated`]; ancillary data cut short (`MSG_CTRUNC`, more than
    /// [`MAX_RECV_FDS`] descriptors) is an error too, and every descriptor that did arrive is
    /// closed on any error. A kernel Netlink socket carries no descriptors: this is only
    /// useful on a socket from [`connect_unix`](Socket::connect_unix).
    ///
    /// ```no_run
    /// use nlkit_socket::{Protocol, Socket};
    /// let mut sock = Socket::connect_unix("/run/nlkit/mirror.sock", Protocol::Route)?;
    /// let mut buf = [0u8; 256];
    /// let mut fds = Vec::new();
    /// let n = sock.recv_with_fds(&mut buf, &mut fds)?;
    /// println!("{n} bytes, {} fds", fds.len());
    /// # Ok::<(), nlkit_socket::Error>(())
    /// ```
    pub fn recv_with_fds(
        &mut self,
        buf: &mut [u8],
        fds: &mut Vec<std::os::fd::OwnedFd>,
    ) -> Result<usize> {
        use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags};
        let mut space =
            [std::mem::MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_RECV_FDS))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let capacity = buf.len();
        let mut iov = [std::io::IoSliceMut::new(buf)];
        let msg = loop {
            match rustix::net::recvmsg(
                &*self,
                &mut iov,
                &mut control,
                RecvFlags::CMSG_CLOEXEC | RecvFlags::TRUNC,
            ) {
                Ok(m) => break m,
                Err(Errno::INTR) => continue,
                Err(e) => return Err(Error::sys("recvmsg", e)),
            }
        };
        // Take every descriptor first, so that each is closed (dropped) on any error below.
        let mut got = Vec::new();
        for m in control.drain() {
            if let RecvAncillaryMessage::ScmRights(rights) = m {
                got.extend(rights);
            }
        }
        if msg.flags.contains(ReturnFlags::CTRUNC) {
            return Err(Error::sys(
                "recvmsg: ancillary data truncated (MSG_CTRUNC)",
                Errno::NOBUFS,
            ));
        }
        if msg.bytes > capacity || msg.flags.contains(ReturnFlags::TRUNC) {
            return Err(Error::Truncated {
                size: msg.bytes,
                capacity,
            });
        }
        if msg.bytes == 0 {
            return Err(Error::PeerClosed);
        }
        fds.extend(got);
        Ok(msg.bytes)
    }
}
