//! Multicast event sockets.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use nlkit_wire::Messages;
use rustix::io::Errno;

use crate::options::{Protocol, SocketOptions};
use crate::recv::RecvBuffer;
use crate::{Error, Result, Socket};

/// What [`EventSocket::recv_event`] delivers.
#[derive(Debug, Clone)]
pub enum Event<'b> {
    /// One datagram of notifications (usually one message), borrowing the caller's buffer.
    Messages {
        /// The peer namespace the notifications come from, when the socket listens to all
        /// namespaces (`NETLINK_LISTEN_ALL_NSID`) and they did not come from its own.
        nsid: Option<i32>,
        /// The notifications.
        messages: Messages<'b>,
    },
    /// The receive queue overflowed (`ENOBUFS`): notifications were lost, and a cache built
    /// from them must resynchronise (dump again). The socket keeps working.
    Overrun,
}

/// A socket that joins multicast groups and receives notifications.
///
/// Keep events and requests on separate sockets (the kernel's advice): a dump on a socket
/// whose queue is full of notifications fails with `ENOBUFS`. An event socket is never
/// pooled. Overflow is reported as [`Event::Overrun`] unless the socket was opened with
/// `no_enobufs` (then notifications are lost silently, as the option asks).
///
/// ```no_run
/// use nlkit_socket::{Event, EventSocket, Protocol, RecvBuffer};
/// use nlkit_wire::consts::RTNLGRP_LINK;
///
/// let mut events = EventSocket::open(Protocol::Route, &[RTNLGRP_LINK])?;
/// let mut buf = RecvBuffer::new();
/// loop {
///     match events.recv_event(&mut buf)? {
///         Event::Messages { nsid, messages } => {
///             for m in messages {
///                 println!("nsid {nsid:?}: type {}", m?.ty());
///             }
///         }
///         Event::Overrun => println!("lost events: resync"),
///     }
/// }
/// # Ok::<(), nlkit_socket::Error>(())
/// ```
#[derive(Debug)]
pub struct EventSocket {
    sock: Socket,
    overruns: u64,
}

impl EventSocket {
    /// Opens an event socket with the default event options (4 MiB receive buffer, overflow
    /// reported) and joins `groups` (group numbers, e.g. `RTNLGRP_LINK`).
    pub fn open(protocol: Protocol, groups: &[u32]) -> Result<EventSocket> {
        EventSocket::with_options(protocol, &Self::default_options(), groups)
    }

    /// The options [`open`](EventSocket::open) uses.
    ///
    /// ```
    /// let o = nlkit_socket::EventSocket::default_options();
    /// assert!(!o.no_enobufs);
    /// ```
    pub fn default_options() -> SocketOptions {
        SocketOptions {
            strict_check: false,
            ..SocketOptions::default()
        }
    }

    /// Opens an event socket with `opts` (for example `listen_all_nsid`, or
    /// `broadcast_error` + `no_enobufs` for reliable conntrack events) and joins `groups`.
    pub fn with_options(
        protocol: Protocol,
        opts: &SocketOptions,
        groups: &[u32],
    ) -> Result<EventSocket> {
        let mut sock = Socket::with_options(protocol, opts)?;
        sock.poisoned = true; // never pooled
        for &g in groups {
            sock.join_group(g)?;
        }
        Ok(EventSocket { sock, overruns: 0 })
    }

    /// Joins multicast group `group`.
    pub fn join(&mut self, group: u32) -> Result<()> {
        self.sock.join_group(group)
    }

    /// Leaves multicast group `group`.
    pub fn leave(&mut self, group: u32) -> Result<()> {
        self.sock.leave_group(group)
    }

    /// Changes the receive buffer (for example doubling it after an [`Event::Overrun`]);
    /// returns the size the kernel granted (it reports twice what it accounts for).
    ///
    /// ```no_run
    /// use nlkit_socket::{EventSocket, Protocol};
    /// let mut ev = EventSocket::open(Protocol::Route, &[nlkit_wire::consts::RTNLGRP_LINK])?;
    /// let granted = ev.set_recv_buffer(8 << 20)?;
    /// println!("receive buffer now {granted} bytes");
    /// # Ok::<(), nlkit_socket::Error>(())
    /// ```
    pub fn set_recv_buffer(&mut self, bytes: usize) -> Result<usize> {
        crate::options::set_rcvbuf(&self.sock, bytes)
    }

    /// How many overruns were reported.
    pub fn overruns(&self) -> u64 {
        self.overruns
    }

    /// The underlying socket (for its port id, statistics, or non-blocking mode).
    pub fn socket(&mut self) -> &mut Socket {
        &mut self.sock
    }

    /// Waits for the next datagram of notifications, or an overrun.
    pub fn recv_event<'b>(&mut self, buf: &'b mut RecvBuffer) -> Result<Event<'b>> {
        match self.sock.recv_flags(buf, false) {
            Ok(()) => Ok(Event::Messages {
                nsid: buf.nsid(),
                messages: buf.messages(),
            }),
            Err(e) => self.overrun_or(e),
        }
    }

    /// Like [`recv_event`](EventSocket::recv_event) but returns `Ok(None)` when nothing is
    /// queued.
    pub fn try_recv_event<'b>(&mut self, buf: &'b mut RecvBuffer) -> Result<Option<Event<'b>>> {
        match self.sock.recv_flags(buf, true) {
            Ok(()) => Ok(Some(Event::Messages {
                nsid: buf.nsid(),
                messages: buf.messages(),
            })),
            Err(Error::Sys {
                errno: Errno::AGAIN,
                ..
            }) => Ok(None),
            Err(e) => self.overrun_or(e).map(Some),
        }
    }

    pub(crate) fn overrun_or<'b>(&mut self, e: Error) -> Result<Event<'b>> {
        match e {
            Error::Sys {
                errno: Errno::NOBUFS,
                ..
            } => {
                self.overruns += 1;
                Ok(Event::Overrun)
            }
            e => Err(e),
        }
    }
}

impl AsFd for EventSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

impl AsRawFd for EventSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}
