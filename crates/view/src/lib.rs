//! Read the nlkit mirror's tables and change feed straight from shared memory.
//!
//! The mirror keeps its tables in one sealed memfd region that clients map read-only
//! (`nlkit-shm`). This crate is the client side: [`MirrorView::open`] takes the region over
//! the mirror's socket, and from then on lookups, walks and the change feed are loads from
//! the mapping — no system call, no round trip, no copy but into the caller's buffer. It
//! also holds what the mirror and its clients agree on: the tables ([`TableId`]), the keys
//! entries are filed under ([`keys`]), the compact conntrack record format ([`ct_pack`])
//! and the region's layout ([`schema`]). It does not depend on the mirror.
//!
//! ```no_run
//! use nlkit_route::{LinkView, RouteView};
//! use nlkit_view::MirrorView;
//! use nlkit_wire::{consts::AF_INET, Messages};
//!
//! let view = MirrorView::open(nlkit_socket::unix::default_mirror_path())?;
//! // A lookup: the link named "eth0", as the kernel's RTM_NEWLINK message.
//! let mut buf = Vec::new();
//! if view.link_by_name("eth0", &mut buf)? {
//!     let m = Messages::new(&buf).next().unwrap().unwrap();
//!     println!("eth0 is index {}", LinkView::parse(&m).unwrap().index());
//! }
//! // A walk: every IPv4 route, parsed by nlkit-route's typed view.
//! view.routes(AF_INET, |m| {
//!     if let Ok(r) = RouteView::parse(m) {
//!         println!("{:?}/{}", r.dst(), r.dst_len());
//!     }
//!     true
//! })?;
//! # Ok::<(), nlkit_view::ViewError>(())
//! ```
//!
//! # Using the view
//!
//! * **Opening.** [`MirrorView::open`]`(socket_path)` connects (the server must run as our
//!   uid or root: `SO_PEERCRED`), sends one `MSG_MAP` request, receives the region's memfd
//!   (`SCM_RIGHTS`) and maps it `PROT_READ`/`MAP_SHARED` after checking its seals. The
//!   mirror hands the region only to its own uid and root; anyone else gets
//!   [`ViewError::Refused`] (`EPERM`, [`ViewError::is_permission_denied`]) and should use
//!   the socket protocol, which the mirror keeps serving (and which all writes use).
//! * **Lookups** append the kernel's message bytes to a caller buffer and say whether the
//!   object exists: [`link`](MirrorView::link), [`link_by_name`](MirrorView::link_by_name)
//!   (a walk of the links), [`addr`](MirrorView::addr), [`neigh`](MirrorView::neigh),
//!   [`route`](MirrorView::route), [`nexthop`](MirrorView::nexthop),
//!   [`ct_get`](MirrorView::ct_get) (by original or reply tuple;
//!   [`ct_get_many`](MirrorView::ct_get_many) for many tuples at once: their misses overlap).
//! * **Walks** call a closure per message until it returns false:
//!   [`links`](MirrorView::links), [`addrs`](MirrorView::addrs),
//!   [`routes`](MirrorView::routes), [`neighs`](MirrorView::neighs),
//!   [`nexthops`](MirrorView::nexthops) (by id), [`rules`](MirrorView::rules) (the kernel's
//!   order), [`ct_walk`](MirrorView::ct_walk) with a [`CtFilter`]: the source-address filter
//!   reads the address index (only that address's entries), zone, mark and family scan the
//!   table. A walk returns [`Walk`], whose `consistent` says whether no
//!   change happened during it, and whose `skipped` counts entries it could not read
//!   because the mirror kept them mid-change for the walk's whole wait (non-zero: the walk
//!   may be incomplete, like a dump flagged `NLM_F_DUMP_INTR`; it is never silent).
//! * **The change feed**: [`MirrorView::follow_now`] / [`MirrorView::follow_from`] give a
//!   [`FeedFollower`]: non-blocking [`next`](FeedFollower::next) (a [`FeedChange`], its tag
//!   decoded as a [`schema::FeedTag`]), futex-based
//!   [`wait`](FeedFollower::wait), and [`ViewError::ResyncRequired`] when it fell behind.
//!
//! # What a reader can rely on
//!
//! Every entry a read returns is one the mirror published, whole: reads are validated by
//! the entry's generation word and retried when they race with the writer (see
//! `nlkit-shm`'s DESIGN.md for the protocol and its memory orderings). The mapping is
//! treated as untrusted memory: any bytes give an error ([`ViewError`]), never a panic. When
//! the region grows, the view sees the new size on the first access past the old end (one
//! `fstat`); the mapping never moves and never faults. A view holds no lock or reference
//! count in the shared memory: a client that crashes leaves nothing behind.

#![forbid(unsafe_code)]

pub mod ct_pack;
pub mod keys;
pub mod schema;
mod table_id;

mod ct;
mod error;
mod feed;
mod open;
mod view;

pub use ct::{CtFilter, CtFound, CtReader};
pub use error::{Result, ViewError};
pub use feed::{FeedChange, FeedFollower};
pub use keys::{AddrKey, LinkKey, NeighKey, NexthopKey, Route4Key, RouteKey, StoreKey};
pub use nlkit_shm::{Entry, Walk};
pub use table_id::TableId;
pub use view::MirrorView;
