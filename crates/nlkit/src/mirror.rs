//! The client side of the nlkit mirror.
//!
//! The mirror (`nlkit mirror`) keeps a live copy of the kernel's links, addresses, routes,
//! neighbours and conntrack entries and answers Netlink requests from it, in the kernel's own
//! message format, on a Unix `SOCK_SEQPACKET` socket. A client needs nothing of the daemon:
//! [`Socket::connect_unix`](crate::socket::Socket::connect_unix) returns the same
//! [`Socket`](crate::socket::Socket) as [`Socket::open`](crate::socket::Socket::open) (and
//! [`Pool::connect_unix`](crate::socket::Pool::connect_unix) a pool of them), so
//! transactions, batches, shared and consistent dumps and the typed [`route::ops`] /
//! [`conntrack::ops`] requests run on the mirror unchanged. What differs is described in
//! [`socket::unix`]: the port id is 0, there are no multicast groups, and the mirror going
//! away is [`Error::PeerClosed`](crate::Error::PeerClosed).
//!
//! ```no_run
//! use nlkit::prelude::*;
//!
//! let mut sock = Socket::connect_unix(nlkit::mirror::default_mirror_path(), Protocol::Route)?;
//! let names = route::ops::link_names(&mut sock)?; // answered by the mirror, not the kernel
//! println!("lo is {}", names.name(1));
//! # Ok::<(), nlkit::Error>(())
//! ```
//!
//! [`route::ops`]: crate::route::ops
//! [`conntrack::ops`]: crate::conntrack::ops
//! [`socket::unix`]: crate::socket::unix

#[doc(inline)]
pub use nlkit_socket::unix::default_mirror_path;
