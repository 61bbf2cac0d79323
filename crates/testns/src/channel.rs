//! A minimal Netlink request channel for fixtures.
//!
//! This is intentionally not `nlkit-socket`: the harness must not depend on the crate it tests.
//! It sends requests (singly or in batches) and waits for the kernel's acknowledgement.
//! Like every kernel socket of the project it reads the sender of each datagram and drops
//! those not sent by the kernel (port id 0), and it matches acknowledgements to its requests
//! by sequence number.

use std::os::fd::OwnedFd;

use nlkit_wire::consts::*;
use nlkit_wire::{ErrorMsg, KernelError, MessageBuilder, MessageHeaderMut, Messages, WireError};
use rustix::net::{
    bind, netlink, recvfrom, send, socket_with, AddressFamily, RecvFlags, SendFlags, SocketFlags,
    SocketType,
};

/// Why a fixture request failed.
#[derive(Debug)]
pub enum ChannelError {
    /// A system call failed.
    Io(std::io::Error),
    /// The kernel refused a request.
    Kernel(KernelError),
    /// The kernel's answer could not be decoded.
    Wire(WireError),
}

impl std::fmt::Display for ChannelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChannelError::Io(e) => write!(f, "netlink I/O: {e}"),
            ChannelError::Kernel(e) => write!(f, "kernel: {e} (errno {})", e.errno),
            ChannelError::Wire(e) => write!(f, "bad reply: {e}"),
        }
    }
}

impl std::error::Error for ChannelError {}

impl From<rustix::io::Errno> for ChannelError {
    fn from(e: rustix::io::Errno) -> Self {
        ChannelError::Io(e.into())
    }
}

/// A Netlink socket that sends requests and collects acknowledgements.
///
/// ```no_run
/// use nlkit_testns::Channel;
/// use nlkit_wire::{consts::*, IfInfoMsg, MessageBuilder};
/// let mut ch = Channel::open(NETLINK_ROUTE).unwrap();
/// let mut b = MessageBuilder::new();
/// b.begin(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, 0);
/// b.header(&IfInfoMsg { index: 1, flags: IFF_UP, change: IFF_UP, ..Default::default() });
/// b.finish().unwrap();
/// ch.request(&mut b).unwrap();
/// ```
pub struct Channel {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
    /// Datagrams dropped because their sender was not the kernel.
    foreign_dropped: u64,
}

impl Channel {
    /// Opens a socket of Netlink protocol `proto` (`NETLINK_ROUTE`, `NETLINK_NETFILTER`, …).
    pub fn open(proto: i32) -> Result<Self, ChannelError> {
        let protocol = match proto {
            // NETLINK_ROUTE is protocol 0, the default.
            NETLINK_ROUTE => None,
            NETLINK_NETFILTER => Some(netlink::NETFILTER),
            NETLINK_GENERIC => Some(netlink::GENERIC),
            _ => return Err(ChannelError::Io(std::io::ErrorKind::Unsupported.into())),
        };
        let fd = socket_with(
            AddressFamily::NETLINK,
            SocketType::RAW,
            SocketFlags::CLOEXEC,
            protocol,
        )?;
        bind(&fd, &netlink::SocketAddrNetlink::new(0, 0))?;
        // Errors are small with CAP_ACK; a failure here only costs echoed payloads.
        let one: libc::c_int = 1;
        // SAFETY: `one` is a valid c_int for the duration of the call; fd is open.
        unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&fd),
                SOL_NETLINK,
                NETLINK_CAP_ACK,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        let _ = rustix::net::sockopt::set_socket_recv_buffer_size(&fd, 1 << 20);
        Ok(Channel {
            fd,
            seq: 1,
            buf: vec![0; 64 * 1024],
            foreign_dropped: 0,
        })
    }

    /// The port id the kernel assigned to this channel's socket.
    pub fn port_id(&self) -> Result<u32, ChannelError> {
        let addr = rustix::net::getsockname(&self.fd)?;
        Ok(netlink::SocketAddrNetlink::try_from(addr)?.pid())
    }

    /// How many datagrams this channel dropped because their sender's port id was not 0
    /// (not the kernel).
    pub fn foreign_dropped(&self) -> u64 {
        self.foreign_dropped
    }

    /// Sends every message in `b` (each should carry `NLM_F_REQUEST`) with fresh sequence
    /// numbers, and waits until the last one is acknowledged. The last message is given
    /// `NLM_F_ACK`; the kernel reports errors for the others unasked. Returns the first error.
    pub fn request(&mut self, b: &mut MessageBuilder) -> Result<(), ChannelError> {
        let first = self.seq;
        let next = b.stamp_seq(first);
        if next == first {
            return Ok(());
        }
        self.seq = next;
        let last_seq = next.wrapping_sub(1);
        set_ack_on_last(b.as_bytes_mut());
        let bytes = b.as_bytes();
        let sent = send(&self.fd, bytes, SendFlags::empty())?;
        if sent != bytes.len() {
            return Err(ChannelError::Io(std::io::ErrorKind::WriteZero.into()));
        }
        let mut first_err = None;
        loop {
            let (_, n, from) = recvfrom(&self.fd, &mut self.buf[..], RecvFlags::empty())?;
            let sender = from
                .and_then(|a| netlink::SocketAddrNetlink::try_from(a).ok())
                .map(|a| a.pid());
            if sender != Some(0) {
                self.foreign_dropped += 1;
                continue;
            }
            let n = n.min(self.buf.len());
            for m in Messages::new(&self.buf[..n]) {
                let m = m.map_err(ChannelError::Wire)?;
                let ours = m.seq().wrapping_sub(first) < next.wrapping_sub(first);
                if m.ty() != NLMSG_ERROR || !ours {
                    continue;
                }
                let e = ErrorMsg::parse(&m).map_err(ChannelError::Wire)?;
                if let Some(err) = e.to_error() {
                    first_err.get_or_insert(err);
                }
                if e.request.seq == last_seq {
                    return match first_err {
                        Some(err) => Err(ChannelError::Kernel(err)),
                        None => Ok(()),
                    };
                }
            }
        }
    }
}

/// Sets `NLM_F_ACK` on the last message of a batch.
fn set_ack_on_last(buf: &mut [u8]) {
    let mut last = None;
    // A malformed tail only ends the walk: the last well-formed message gets the flag.
    let _ = MessageHeaderMut::for_each(buf, |off, _| last = Some(off));
    if let Some(Ok(mut h)) = last.map(|o| MessageHeaderMut::new(&mut buf[o..])) {
        h.insert_flags(NLM_F_ACK);
    }
}
