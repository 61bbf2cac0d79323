//! `nlkit-socket`: Netlink kernel sockets.
//!
//! * [`Socket`]: one socket per protocol ([`Protocol`]), close-on-exec, bound to a port id the
//!   kernel assigns, with the options of [`SocketOptions`] (large receive buffer, extended
//!   and capped acks, strict checking) and a strict mode that fails when the kernel refuses
//!   one. [`Socket::transact`] and [`Socket::transact_batch`] send requests and match replies
//!   by sequence number.
//! * [`RecvBuffer`] / [`DumpBuffer`]: caller-owned receive buffers (≥ 32 KiB), one `recvmsg`
//!   per datagram, with a spare tail so a large message still arrives whole.
//! * [`Pool`]: idle sockets per protocol (up to 16); a socket that is not clean is closed.
//! * Dumps: [`Socket::dump`] streams one to a callback and returns a [`DumpSummary`];
//!   [`SharedDump`] is one kernel dump consumed by many threads, and [`consistent_dump`]
//!   restarts dumps the kernel flags `NLM_F_DUMP_INTR`. Every dump request is checked,
//!   flagged and numbered in one place, [`Socket::send_dump`].
//! * [`EventSocket`]: multicast groups, with receive-queue overflow reported as
//!   [`Event::Overrun`] and the peer namespace id of each notification.
//! * [`netns`]: sockets opened inside another network namespace.
//! * [`unix`]: the same [`Socket`] connected to a local server that speaks Netlink over a Unix
//!   `SOCK_SEQPACKET` socket, such as the nlkit mirror: open the socket on the mirror with
//!   [`Socket::connect_unix`] (or a pool of them with [`Pool::connect_unix`]) and every
//!   transaction, dump, shared dump and typed request works unchanged.
//! * [`feed`]: on a mirror socket, `join_group` and [`Socket::mirror_subscribe`] follow the
//!   mirror's change feed (snapshot then follow, resume by position).
//! * [`genl`]: generic netlink family and multicast group resolution, cached.
//! * `tokio` feature (off by default): the `tokio` module, async transactions and events.
//!
//! ```no_run
//! use nlkit_socket::{Pool, Protocol};
//! use nlkit_wire::{consts::*, IfInfoMsg, MessageBuilder};
//!
//! let mut sock = Pool::shared(Protocol::Route).get()?;
//! let mut req = MessageBuilder::new();
//! req.begin(RTM_GETLINK, 0, 0);
//! req.header(&IfInfoMsg { index: 1, ..Default::default() });
//! req.finish().unwrap();
//! let reply = sock.transact(&mut req)?;
//! assert_eq!(reply.len(), 1); // RTM_NEWLINK for lo
//! # Ok::<(), nlkit_socket::Error>(())
//! ```
#![warn(missing_docs)]

pub mod dump;
mod error;
mod event;
pub mod feed;
pub mod genl;
pub mod netns;
mod options;
mod pool;
mod recv;
mod socket;
mod sync;
#[cfg(feature = "tokio")]
pub mod tokio;
mod transact;
pub mod unix;

pub use dump::consistent::{consistent_dump, Consistent, DEFAULT_ATTEMPTS};
pub use dump::stream::DumpSummary;
pub use dump::SharedDump;
pub use error::{CallbackError, Error, Result};
pub use event::{Event, EventSocket};
pub use options::{AppliedOptions, Protocol, SocketOptions};
pub use pool::{Pool, PooledSocket, POOL_IDLE_MAX};
pub use recv::{DumpBuffer, RecvBuffer, MIN_RECV_BUFFER};
pub use socket::{Socket, SocketStats, SocketTransport};
pub use transact::TransactReply;
pub use unix::UNIX_MAX_REQUEST;
