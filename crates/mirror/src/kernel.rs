//! [`KernelSocket`]: the thin kernel Netlink socket the mirror keeps for relayed writes.
//!
//! Table dumps go through `nlkit-socket` (`consistent_dump` over a `SharedDump`) and events
//! through `nlkit_socket::EventSocket`. What remains here is what `nlkit-socket` does not offer
//! as the mirror needs it: [`KernelSocket::transact_raw`] relays a client's request bytes *as
//! the client built them* (its sequence numbers kept) and returns the kernel's reply datagrams
//! verbatim, ack and extended-ack TLVs included, so they can be passed back to the client
//! unchanged (`Socket::transact` re-stamps the request and decodes the ack). Benchmarks and
//! tests also use its bare receive loop ([`KernelSocket::dump_chunks`]) as the raw baseline.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use nlkit_wire::consts::*;
use nlkit_wire::{DoneMsg, ErrorMsg, KernelError, Messages};
use rustix::io::Errno;
use rustix::net::netlink::SocketAddrNetlink;
use rustix::net::{
    bind, recv, send, socket_with, AddressFamily, Protocol, RecvFlags, SendFlags, SocketFlags,
    SocketType,
};

/// Size of the buffer passed to `recv`: the kernel fills at most ~32 KiB per dump chunk, and
/// remembers the largest buffer it was given.
pub const RECV_BUFFER: usize = 64 * 1024;

/// What went wrong talking to the kernel.
#[derive(Debug, thiserror::Error)]
pub enum KernelSocketError {
    /// A system call failed.
    #[error("netlink socket: {0}")]
    Io(#[from] io::Error),
    /// The kernel answered with an error.
    #[error("kernel: {0}")]
    Kernel(#[from] KernelError),
    /// The event socket overflowed: events were lost.
    #[error("netlink socket overrun (ENOBUFS): events were lost")]
    Overrun,
    /// The kernel sent something that does not parse.
    #[error("malformed reply from the kernel: {0}")]
    Malformed(#[from] nlkit_wire::WireError),
}

/// How a dump ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DumpEnd {
    /// Some message (or `NLMSG_DONE`) carried `NLM_F_DUMP_INTR`: retry.
    pub interrupted: bool,
    /// Number of messages delivered.
    pub messages: usize,
}

/// A Netlink socket on `NETLINK_ROUTE` or `NETLINK_NETFILTER`.
///
/// Concurrency contract: owned by one thread (`&mut self` for everything that uses the
/// sequence counter); the fd may be polled from the same thread.
///
/// ```no_run
/// use nlkit_mirror::kernel::KernelSocket;
/// use nlkit_wire::{consts::*, MessageBuilder, RtMsg};
/// let mut s = KernelSocket::open(NETLINK_ROUTE as i32, 0).unwrap();
/// let mut req = MessageBuilder::new();
/// req.begin(RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, 0);
/// req.header(&RtMsg { family: AF_INET, ..Default::default() });
/// req.finish().unwrap();
/// let mut n = 0;
/// s.dump(req.as_bytes_mut(), |_msg| n += 1).unwrap();
/// ```
#[derive(Debug)]
pub struct KernelSocket {
    fd: OwnedFd,
    protocol: i32,
    seq: u32,
    buf: Vec<u8>,
}

/// Sets an integer option at `SOL_NETLINK` (rustix has no Netlink-level options).
fn set_netlink_opt(fd: BorrowedFd<'_>, opt: i32, value: i32) -> io::Result<()> {
    // SAFETY: `fd` is a live descriptor borrowed for the call; the value points at a local
    // `c_int` whose size is passed as the option length, and the kernel only reads it.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            SOL_NETLINK,
            opt,
            (&value as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl KernelSocket {
    /// Opens a socket on `protocol` (`NETLINK_ROUTE` or `NETLINK_NETFILTER`), joined to the
    /// multicast groups in the `groups` bit mask (bit `g - 1` for group `g`; every rtnetlink and
    /// conntrack group the mirror uses is below 32). Extended acks are on; strict checking is
    /// on for `NETLINK_ROUTE` when the kernel has it.
    pub fn open(protocol: i32, groups: u32) -> io::Result<Self> {
        let fd = socket_with(
            AddressFamily::NETLINK,
            SocketType::RAW,
            SocketFlags::CLOEXEC,
            // NETLINK_ROUTE is protocol 0: no protocol argument.
            std::num::NonZeroU32::new(protocol as u32).map(Protocol::from_raw),
        )?;
        bind(&fd, &SocketAddrNetlink::new(0, groups))?;
        let _ = set_netlink_opt(fd.as_fd(), NETLINK_EXT_ACK, 1);
        if protocol == NETLINK_ROUTE {
            let _ = set_netlink_opt(fd.as_fd(), NETLINK_GET_STRICT_CHK, 1);
        }
        Ok(KernelSocket {
            fd,
            protocol,
            seq: 1,
            buf: vec![0; RECV_BUFFER],
        })
    }

    /// The Netlink protocol.
    pub fn protocol(&self) -> i32 {
        self.protocol
    }

    /// Sets the receive buffer: `SO_RCVBUFFORCE` (needs `CAP_NET_ADMIN` in the initial
    /// namespace), else `SO_RCVBUF` (capped by `net.core.rmem_max`). Returns the size the
    /// kernel reports.
    pub fn set_recv_buffer(&self, bytes: usize) -> io::Result<usize> {
        if rustix::net::sockopt::set_socket_recv_buffer_size_force(&self.fd, bytes).is_err() {
            rustix::net::sockopt::set_socket_recv_buffer_size(&self.fd, bytes)?;
        }
        Ok(rustix::net::sockopt::socket_recv_buffer_size(&self.fd)?)
    }

    /// Asks the kernel not to report `ENOBUFS` (used by dump sockets only).
    pub fn set_no_enobufs(&self) -> io::Result<()> {
        set_netlink_opt(self.fd.as_fd(), NETLINK_NO_ENOBUFS, 1)
    }

    /// Sets a receive timeout (`None`: block).
    pub fn set_recv_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        rustix::net::sockopt::set_socket_timeout(&self.fd, rustix::net::sockopt::Timeout::Recv, t)?;
        Ok(())
    }

    /// Sends raw bytes (one or more complete messages).
    pub fn send(&self, bytes: &[u8]) -> io::Result<()> {
        send(&self.fd, bytes, SendFlags::empty())?;
        Ok(())
    }

    /// Receives one datagram into the internal buffer and returns it. `nonblocking` returns
    /// `Ok(None)` when nothing is queued. `ENOBUFS` becomes [`KernelSocketError::Overrun`].
    pub fn recv_datagram(&mut self, nonblocking: bool) -> Result<Option<&[u8]>, KernelSocketError> {
        let flags = if nonblocking {
            RecvFlags::DONTWAIT
        } else {
            RecvFlags::empty()
        };
        loop {
            match recv(&self.fd, &mut self.buf[..], flags) {
                Ok((n, _)) => return Ok(Some(&self.buf[..n])),
                Err(Errno::INTR) => continue,
                Err(Errno::AGAIN) => return Ok(None),
                Err(Errno::NOBUFS) => return Err(KernelSocketError::Overrun),
                Err(e) => return Err(KernelSocketError::Io(e.into())),
            }
        }
    }

    /// Stamps `req` (one dump request) with a fresh sequence number, sends it and calls
    /// `on_msg` for every reply message until `NLMSG_DONE`. Reports whether the kernel flagged
    /// the dump inconsistent.
    pub fn dump(
        &mut self,
        req: &mut [u8],
        mut on_msg: impl FnMut(&nlkit_wire::Message<'_>),
    ) -> Result<DumpEnd, KernelSocketError> {
        self.dump_chunks(req, |chunk| {
            for m in Messages::new(chunk).flatten() {
                on_msg(&m);
            }
        })
    }

    /// Like [`dump`](Self::dump), but hands over whole datagrams (without the final
    /// `NLMSG_DONE`), for pipelines that process chunks on another thread.
    pub fn dump_chunks(
        &mut self,
        req: &mut [u8],
        mut on_chunk: impl FnMut(&[u8]),
    ) -> Result<DumpEnd, KernelSocketError> {
        let seq = self.stamp(req);
        self.send(req)?;
        let mut end = DumpEnd::default();
        loop {
            let dgram = match self.recv_datagram(false)? {
                Some(d) => d,
                None => continue,
            };
            let mut upto = 0;
            let mut done = None;
            for m in Messages::new(dgram) {
                let m = m?;
                if m.seq() != seq {
                    upto += nlkit_wire::align(m.len());
                    continue;
                }
                if m.flags() & NLM_F_DUMP_INTR != 0 {
                    end.interrupted = true;
                }
                match m.ty() {
                    NLMSG_DONE => {
                        let d = DoneMsg::parse(&m)?;
                        done = Some(d.to_error());
                        end.interrupted |= d.interrupted;
                        break;
                    }
                    NLMSG_ERROR => {
                        let e = ErrorMsg::parse(&m)?;
                        if let Some(err) = e.to_error() {
                            return Err(err.into());
                        }
                    }
                    _ => end.messages += 1,
                }
                upto += nlkit_wire::align(m.len());
            }
            let chunk = &dgram[..upto.min(dgram.len())];
            if !chunk.is_empty() {
                on_chunk(chunk);
            }
            if let Some(err) = done {
                return match err {
                    Some(e) => Err(e.into()),
                    None => Ok(end),
                };
            }
        }
    }

    fn stamp(&mut self, req: &mut [u8]) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        let seq = self.seq;
        let mut off = 0;
        while off + NLMSG_HDRLEN_USIZE <= req.len() {
            let len = u32::from_ne_bytes([req[off], req[off + 1], req[off + 2], req[off + 3]]);
            req[off + 8..off + 12].copy_from_slice(&seq.to_ne_bytes());
            if len < 16 {
                break;
            }
            off += nlkit_wire::align(len as usize);
        }
        seq
    }

    /// Sends `req` (one or more request messages, each with `NLM_F_ACK` forced on) and returns
    /// every reply datagram's bytes until each request got its ack or error (or its dump ended).
    /// Sequence numbers are kept as the caller set them.
    pub fn transact_raw(&mut self, req: &[u8]) -> Result<Vec<u8>, KernelSocketError> {
        let mut want: Vec<u32> = Vec::new();
        let mut fixed = req.to_vec();
        let mut off = 0;
        while off + NLMSG_HDRLEN_USIZE <= fixed.len() {
            let len =
                u32::from_ne_bytes([fixed[off], fixed[off + 1], fixed[off + 2], fixed[off + 3]])
                    as usize;
            if len < NLMSG_HDRLEN_USIZE || off + len > fixed.len() {
                break;
            }
            let flags = u16::from_ne_bytes([fixed[off + 6], fixed[off + 7]]) | NLM_F_ACK;
            fixed[off + 6..off + 8].copy_from_slice(&flags.to_ne_bytes());
            want.push(u32::from_ne_bytes([
                fixed[off + 8],
                fixed[off + 9],
                fixed[off + 10],
                fixed[off + 11],
            ]));
            off += nlkit_wire::align(len);
        }
        self.send(&fixed)?;
        let mut out = Vec::new();
        while !want.is_empty() {
            let Some(d) = self.recv_datagram(false)? else {
                continue;
            };
            for m in Messages::new(d).flatten() {
                if matches!(m.ty(), NLMSG_ERROR | NLMSG_DONE) {
                    if let Some(i) = want.iter().position(|s| *s == m.seq()) {
                        want.swap_remove(i);
                    }
                }
            }
            out.extend_from_slice(d);
        }
        Ok(out)
    }
}

const NLMSG_HDRLEN_USIZE: usize = nlkit_wire::NLMSG_HDRLEN;

impl AsFd for KernelSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
