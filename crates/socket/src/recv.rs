//! Caller-owned receive buffers and the one `recvmsg` call that fills them.

use std::os::fd::{AsRawFd, BorrowedFd};

use nlkit_wire::consts::{NETLINK_LISTEN_ALL_NSID, SOL_NETLINK};
use nlkit_wire::{Message, Messages};
use rustix::io::Errno;

use crate::{Error, Result};

/// The smallest receive buffer: the kernel sizes dump chunks from the largest buffer a socket
/// has been given, up to 32 KiB, so anything smaller makes every dump slower.
pub const MIN_RECV_BUFFER: usize = 32 * 1024;

/// Size of the spare tail that catches a message larger than the buffer (as Open vSwitch's
/// `nl_sock_recv__` does with its 64 KiB stack tail).
const TAIL: usize = 64 * 1024;

/// A receive buffer owned by its caller: one datagram at a time, read by one `recvmsg`.
///
/// The buffer has a primary region (at least [`MIN_RECV_BUFFER`]) and a spare tail passed as
/// a second iovec: a datagram larger than the primary region still arrives whole, and the
/// primary region grows to keep it. A datagram larger than both is reported as
/// [`Error::Truncated`] (never silently cut short) and the buffer grows so the next one fits.
///
/// The messages of the current datagram are read with [`next_message`](Self::next_message),
/// which returns views borrowing the buffer. A [`DumpBuffer`] is the same type: each thread
/// consuming a [`SharedDump`](crate::SharedDump) passes its own.
///
/// ```
/// let buf = nlkit_socket::RecvBuffer::new();
/// assert!(buf.capacity() >= nlkit_socket::MIN_RECV_BUFFER);
/// assert!(buf.is_empty());
/// ```
#[derive(Debug)]
pub struct RecvBuffer {
    /// Primary region; `data.len()` is its usable size (bytes past `filled` are stale).
    data: Vec<u8>,
    /// Bytes of the current datagram.
    filled: usize,
    /// Read cursor into `data[..filled]`.
    pos: usize,
    /// Spare tail for oversized datagrams.
    tail: Box<[u8]>,
    /// The namespace id of the current datagram's sender (`NETLINK_LISTEN_ALL_NSID`).
    nsid: Option<i32>,
    /// End of the prefix of `data[..filled]` that a dump refill has already walked and found
    /// to hold only messages for the consumer (0: nothing known). Lets a shared dump hand
    /// those out without classifying each one again.
    pub(crate) items_to: usize,
}

/// The per-thread buffer of a [`SharedDump`](crate::SharedDump): a [`RecvBuffer`].
pub type DumpBuffer = RecvBuffer;

impl Default for RecvBuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl RecvBuffer {
    /// A buffer of [`MIN_RECV_BUFFER`] bytes plus its spare tail.
    pub fn new() -> Self {
        Self::with_capacity(MIN_RECV_BUFFER)
    }

    /// A buffer of `cap` bytes (raised to [`MIN_RECV_BUFFER`]) plus its spare tail.
    ///
    /// ```
    /// let b = nlkit_socket::RecvBuffer::with_capacity(1024);
    /// assert_eq!(b.capacity(), nlkit_socket::MIN_RECV_BUFFER);
    /// ```
    pub fn with_capacity(cap: usize) -> Self {
        RecvBuffer {
            data: vec![0; cap.max(MIN_RECV_BUFFER)],
            filled: 0,
            pos: 0,
            tail: vec![0; TAIL].into_boxed_slice(),
            nsid: None,
            items_to: 0,
        }
    }

    /// Usable size of the primary region.
    pub fn capacity(&self) -> usize {
        self.data.len()
    }

    /// True when every message of the current datagram has been read.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.filled
    }

    /// Read cursor (bytes of the current datagram already consumed).
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes in the current datagram.
    pub(crate) fn filled(&self) -> usize {
        self.filled
    }

    /// Forgets the current datagram.
    pub fn clear(&mut self) {
        self.pos = 0;
        self.filled = 0;
        self.nsid = None;
        self.items_to = 0;
    }

    /// The unread bytes of the current datagram.
    pub fn unread(&self) -> &[u8] {
        &self.data[self.pos.min(self.filled)..self.filled]
    }

    /// The namespace id the current datagram came from, when the socket listens to all
    /// namespaces and the sender is a peer namespace.
    pub fn nsid(&self) -> Option<i32> {
        self.nsid
    }

    /// Iterates the unread messages without consuming them.
    pub fn messages(&self) -> Messages<'_> {
        Messages::new(self.unread())
    }

    /// Returns the next message of the current datagram and advances past it. A malformed
    /// message empties the buffer (what follows has no known boundary) and is returned as
    /// [`Error::Protocol`].
    ///
    /// ```
    /// use nlkit_socket::RecvBuffer;
    /// let mut b = RecvBuffer::new();
    /// assert!(b.next_message().is_none());
    /// ```
    pub fn next_message(&mut self) -> Option<Result<Message<'_>>> {
        if self.is_empty() {
            return None;
        }
        let data = &self.data[self.pos..self.filled];
        match Message::parse(data) {
            Ok((m, adv)) => {
                self.pos += adv;
                Some(Ok(m))
            }
            Err(e) => {
                self.pos = 0;
                self.filled = 0;
                self.items_to = 0;
                Some(Err(Error::Protocol(e)))
            }
        }
    }

    /// Loads `bytes` as if they had been received (for tests and for replaying captures).
    ///
    /// ```
    /// use nlkit_socket::RecvBuffer;
    /// use nlkit_wire::MessageBuilder;
    /// let mut m = MessageBuilder::new();
    /// m.begin(1, 0, 9);
    /// m.finish().unwrap();
    /// let mut b = RecvBuffer::new();
    /// b.fill_from(m.as_bytes());
    /// assert_eq!(b.next_message().unwrap().unwrap().seq(), 9);
    /// ```
    pub fn fill_from(&mut self, bytes: &[u8]) {
        if bytes.len() > self.data.len() {
            self.data.resize(bytes.len(), 0);
        }
        self.data[..bytes.len()].copy_from_slice(bytes);
        self.filled = bytes.len();
        self.pos = 0;
        self.nsid = None;
        self.items_to = 0;
    }
}

/// What one `recvmsg` delivered, besides the bytes now in the buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Received {
    /// The sender's port id from the source address (0: the kernel). Note that `nlmsg_pid`
    /// inside kernel replies holds the *requester's* port id, so only the address tells who
    /// sent a datagram.
    pub sender: u32,
}

/// Receives one datagram into `buf` with a single `recvmsg` (no `MSG_PEEK`), replacing its
/// contents. `EINTR` is retried; every other error is returned.
///
/// `netlink_sender`: read the sender's `sockaddr_nl`. Without it (a connected Unix socket,
/// whose source address is a `sockaddr_un` path that must not be read as a port id) no
/// address is asked for and the sender is reported as 0.
pub(crate) fn recv_datagram(
    fd: BorrowedFd<'_>,
    buf: &mut RecvBuffer,
    dontwait: bool,
    netlink_sender: bool,
) -> Result<Received> {
    buf.clear();
    let primary = buf.data.len();
    // 64 bytes of 8-byte aligned space: one `int` control message needs 20.
    let mut control = [0u64; 8];
    loop {
        let mut iov = [
            libc::iovec {
                iov_base: buf.data.as_mut_ptr().cast(),
                iov_len: primary,
            },
            libc::iovec {
                iov_base: buf.tail.as_mut_ptr().cast(),
                iov_len: buf.tail.len(),
            },
        ];
        // SAFETY: an all-zero `sockaddr_nl` and `msghdr` are valid values (plain C structs).
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
        if netlink_sender {
            hdr.msg_name = (&mut addr as *mut libc::sockaddr_nl).cast();
            hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
        }
        hdr.msg_iov = iov.as_mut_ptr();
        hdr.msg_iovlen = iov.len() as _;
        hdr.msg_control = control.as_mut_ptr().cast();
        hdr.msg_controllen = std::mem::size_of_val(&control) as _;
        let flags = libc::MSG_TRUNC | if dontwait { libc::MSG_DONTWAIT } else { 0 };
        // SAFETY: every pointer in `hdr` points at live, exclusively borrowed storage of the
        // length given next to it (`buf.data`, `buf.tail`, `addr`, `control`, `iov`), all of
        // which outlive the call; `fd` is a live descriptor.
        let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut hdr, flags) };
        if n < 0 {
            let errno = Errno::from_raw_os_error(
                std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
            );
            if errno == Errno::INTR {
                continue;
            }
            return Err(Error::sys("recvmsg", errno));
        }
        let n = n as usize;
        let capacity = primary + buf.tail.len();
        if hdr.msg_flags & libc::MSG_TRUNC != 0 || n > capacity {
            buf.data.resize(n.next_multiple_of(4096), 0);
            return Err(Error::Truncated { size: n, capacity });
        }
        if n > primary {
            // The message spilled into the tail: keep it whole, and keep the larger buffer.
            let extra = n - primary;
            buf.data.extend_from_slice(&buf.tail[..extra]);
        }
        buf.filled = n;
        buf.pos = 0;
        let controllen = (hdr.msg_controllen as usize).min(std::mem::size_of_val(&control));
        buf.nsid = parse_nsid(&control_bytes(&control)[..controllen]);
        return Ok(Received {
            sender: addr.nl_pid,
        });
    }
}

fn control_bytes(control: &[u64; 8]) -> [u8; 64] {
    let mut out = [0u8; 64];
    for (i, w) in control.iter().enumerate() {
        out[i * 8..i * 8 + 8].copy_from_slice(&w.to_ne_bytes());
    }
    out
}

/// Finds the `NETLINK_LISTEN_ALL_NSID` control message (level `SOL_NETLINK`, an `int`) by
/// walking the raw `cmsghdr` list in safe code.
fn parse_nsid(mut c: &[u8]) -> Option<i32> {
    const W: usize = std::mem::size_of::<usize>();
    let hdr_len = (W + 8).next_multiple_of(W);
    while c.len() >= hdr_len {
        let len = usize::from_ne_bytes(c[..W].try_into().ok()?);
        let level = i32::from_ne_bytes(c[W..W + 4].try_into().ok()?);
        let ty = i32::from_ne_bytes(c[W + 4..W + 8].try_into().ok()?);
        if len < hdr_len || len > c.len() {
            return None;
        }
        if level == SOL_NETLINK && ty == NETLINK_LISTEN_ALL_NSID && len >= hdr_len + 4 {
            return Some(i32::from_ne_bytes(c[hdr_len..hdr_len + 4].try_into().ok()?));
        }
        c = &c[len.next_multiple_of(W).min(c.len())..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nsid_cmsg_is_found() {
        let mut c = Vec::new();
        c.extend_from_slice(&20usize.to_ne_bytes());
        c.extend_from_slice(&SOL_NETLINK.to_ne_bytes());
        c.extend_from_slice(&NETLINK_LISTEN_ALL_NSID.to_ne_bytes());
        c.extend_from_slice(&7i32.to_ne_bytes());
        assert_eq!(parse_nsid(&c), Some(7));
        assert_eq!(parse_nsid(&c[..10]), None);
        c[0] = 200; // length past the buffer
        assert_eq!(parse_nsid(&c), None);
    }

    #[test]
    fn malformed_message_empties_buffer() {
        let mut b = RecvBuffer::new();
        b.fill_from(&[100, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert!(matches!(b.next_message(), Some(Err(Error::Protocol(_)))));
        assert!(b.is_empty());
    }
}
