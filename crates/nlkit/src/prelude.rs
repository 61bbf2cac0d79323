//! What a daemon uses most, in one import: `use nlkit::prelude::*;`.
//!
//! * sockets: [`Socket`], [`Protocol`], [`SocketOptions`], [`Pool`], [`EventSocket`] and its
//!   [`Event`], the receive buffers [`RecvBuffer`] / [`DumpBuffer`];
//! * dumps: [`SharedDump`] (one dump, many threads) and [`consistent_dump`] (restarted on
//!   `NLM_F_DUMP_INTR`) with its [`Consistent`] result and [`DEFAULT_ATTEMPTS`]; the
//!   [`DumpSummary`] every streamed dump (`Socket::dump`, `route::ops::dump_*`,
//!   `conntrack::ops::dump`) returns;
//! * requests: the [`TransactReply`] of `Socket::transact`;
//! * messages: [`MessageBuilder`], [`Message`], [`Messages`], the kernel's [`consts`] and its
//!   [`KernelError`];
//! * typed rtnetlink: the views [`LinkView`], [`AddrView`], [`RouteView`], [`NeighView`] and
//!   the owned [`Link`], [`Address`], [`Route`], [`NextHop`], [`Neighbour`];
//! * typed ctnetlink: the view [`CtEntryView`], the owned [`CtEntry`] and [`Tuple`], and
//!   [`EventKind`];
//! * the [`route`] and [`conntrack`] modules themselves, so that their operations read as
//!   what they are: `route::ops::dump_routes`, `route::request::RouteFilter`,
//!   `conntrack::ops::dump`, `conntrack::request::DumpFilter` (both crates have an `ops` and a
//!   `request` module, so these are not imported by name);
//! * the mirror's tables in shared memory: [`MirrorView`];
//! * [`Error`] and [`Result`] of socket, kernel and route operations.
//!
//! `Result` here has a default error type, so `Result<T>` means `Result<T, nlkit::Error>`
//! and `Result<T, E>` still works for any other `E`.
//!
//! ```no_run
//! use nlkit::prelude::*;
//!
//! let mut sock = Socket::open(Protocol::Route)?;
//! let lo = route::ops::get_link(&mut sock, route::request::LinkRef::Index(1))?;
//! assert_eq!(lo.name.as_deref(), Some("lo"));
//! # Ok::<(), nlkit::Error>(())
//! ```

pub use crate::{conntrack, route};
pub use crate::{Error, Result};

pub use nlkit_wire::{consts, KernelError, Message, MessageBuilder, Messages};

pub use nlkit_socket::{
    consistent_dump, Consistent, DumpBuffer, DumpSummary, Event, EventSocket, Pool, Protocol,
    RecvBuffer, SharedDump, Socket, SocketOptions, TransactReply, DEFAULT_ATTEMPTS,
};

pub use nlkit_route::{
    AddrView, Address, Link, LinkView, NeighView, Neighbour, NextHop, Route, RouteView,
};

pub use nlkit_conntrack::{CtEntry, CtEntryView, EventKind, Tuple};

pub use nlkit_view::MirrorView;
