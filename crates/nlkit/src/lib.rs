//! `nlkit`: fast, correct, non-blocking Netlink for Linux network daemons.
//!
//! This is the crate to add. It gathers the library's layers under one name, each layer a
//! module:
//!
//! | module | crate | what it holds |
//! |---|---|---|
//! | [`wire`] | `nlkit-wire` | the message and attribute codec: zero-copy [`Message`](wire::Message) views, [`MessageBuilder`](wire::MessageBuilder), the kernel's constants ([`wire::consts`]), extended acks |
//! | [`socket`] | `nlkit-socket` | kernel sockets, the [`Pool`](socket::Pool), transactions and batches, streaming, shared and consistent dumps, event sockets, namespaces, generic netlink |
//! | [`route`] | `nlkit-route` | typed rtnetlink: views, requests, iproute2-style formatting, and [`route::ops`] (dumps, gets and changes run on a socket) |
//! | [`conntrack`] | `nlkit-conntrack` | typed ctnetlink: views, requests with kernel-side filters, `conntrack`-style formatting, and [`conntrack::ops`] (dumps, changes, events) |
//! | [`mirror`] | — | the client side of the nlkit mirror: where it listens; connecting is [`Socket::connect_unix`](socket::Socket::connect_unix) |
//! | [`view`] | `nlkit-view` | the mirror's tables and change feed read straight from its shared memory ([`MirrorView`](view::MirrorView)): lookups and walks with no system call |
//!
//! [`prelude`] imports what a daemon uses most. The programs in this crate's `examples/`
//! directory (listed in the [`examples`](#examples) section) are the places to start from;
//! each is compiled and run by the crate's tests in a private network namespace.
//!
//! # Quick start
//!
//! List the IPv4 routes of the main table like `ip route`, then replace one route and print
//! the kernel's explanation when it refuses:
//!
//! ```no_run
//! use nlkit::prelude::*;
//! use nlkit::route::{fmt::route_text, request::{RouteFilter, RouteOp}};
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // EXT_ACK, STRICT_CHK and a 4 MiB receive buffer by default.
//!     let mut sock = Socket::open(Protocol::Route)?;
//!     let names = route::ops::link_names(&mut sock)?;
//!     route::ops::dump_routes(&mut sock, consts::AF_INET, &RouteFilter::main(), |r| {
//!         // `r` is a RouteView borrowing the receive buffer: nothing is copied.
//!         println!("{}", route_text(&r, &names, Default::default()));
//!         Ok(())
//!     })?;
//!
//!     let r = Route::new("10.1.0.0".parse()?, 16).via("192.0.2.1".parse()?);
//!     match route::ops::add_route(&mut sock, &r, RouteOp::Replace) {
//!         Ok(()) => println!("replaced"),
//!         // Displayed as iproute2 does: "Error: Nexthop has invalid gateway."
//!         Err(Error::Kernel(e)) => eprintln!("{e} (errno {})", e.errno),
//!         Err(e) => return Err(e.into()),
//!     }
//!     Ok(())
//! }
//! ```
//!
//! One dump shared by several threads, each parsing from its own buffer (the refills are
//! serialised, as the kernel requires):
//!
//! ```no_run
//! use nlkit::prelude::*;
//! use nlkit::route::request::RouteFilter;
//!
//! let mut req = MessageBuilder::new();
//! route::request::dump_routes(&mut req, 0, consts::AF_INET, &RouteFilter::main())?;
//! let dump = SharedDump::start(Pool::shared(Protocol::Route), &mut req)?;
//! let total: usize = std::thread::scope(|s| {
//!     let count = || {
//!         let (mut buf, mut n) = (DumpBuffer::new(), 0);
//!         while let Some(m) = dump.next(&mut buf)? {
//!             RouteView::parse(&m)?; // a view into this thread's buffer
//!             n += 1;
//!         }
//!         Ok::<usize, Error>(n)
//!     };
//!     let (a, b) = (s.spawn(count), s.spawn(count));
//!     [a, b].into_iter().map(|t| t.join().unwrap()).sum::<Result<usize>>()
//! })?;
//! dump.finish()?; // the kernel's error, or Error::Inconsistent after NLM_F_DUMP_INTR
//! println!("{total} routes");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The same calls run on the nlkit mirror instead of the kernel: open the socket with
//! `Socket::connect_unix(nlkit::mirror::default_mirror_path(), Protocol::Route)`.
//!
//! # Errors
//!
//! Socket, kernel and route operations fail with [`Error`] (`nlkit_socket::Error`): a kernel
//! refusal is [`Error::Kernel`] carrying the errno and the extended-ack text. Conntrack
//! operations fail with [`conntrack::Error`], which wraps it and adds decoding errors; the
//! mirror daemon (`nlkit-mirror`) with `MirrorError`. Each layer has one error type, and a
//! wrapping error leads to its cause through `source()`. Bytes that do not decode give a
//! typed error, never a panic.
//!
//! # Examples
//!
//! Run one with `cargo run -p nlkit --example NAME -- ARGS` (inside `unshare -Urn` to try
//! them on a private namespace of your own):
//!
//! | example | what it shows |
//! |---|---|
//! | `list_routes` | list routes like `ip route` (`-6`, `table all\|N`) |
//! | `change_route` | add, replace or delete a route; the kernel's extended-ack error on a bad request |
//! | `batch_routes` | many route changes in one batch (`transact_batch`), one result per request |
//! | `watch_links` | follow link events, resynchronising (a fresh dump) after `ENOBUFS` |
//! | `consistent_dump` | a dump restarted until the kernel does not flag it `NLM_F_DUMP_INTR` |
//! | `shared_dump` | one kernel dump consumed by several threads |
//! | `conntrack_dump` | conntrack entries filtered by the kernel (mark, `CTA_FILTER` tuple) |
//! | `conntrack_events` | conntrack events like `conntrack -E` |
//! | `ask_mirror` | the same requests answered by the nlkit mirror |
//! | `mirror_view` | the mirror's tables mapped read-only: a link looked up, the routes walked, no system call |
//! | `nexthops` | nexthop objects as a routing daemon uses them: routes by `nhid` on a group, one replace moves them all |
//! | `cni` | a CNI plugin's setup: bridge, veth pair, one end moved into a new namespace, addressed and routed there, an FDB entry |
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[doc(inline)]
pub use nlkit_conntrack as conntrack;
#[doc(inline)]
pub use nlkit_route as route;
#[doc(inline)]
pub use nlkit_socket as socket;
#[doc(inline)]
pub use nlkit_view as view;
#[doc(inline)]
pub use nlkit_wire as wire;

pub use nlkit_socket::{Error, Result};

pub mod mirror;
pub mod prelude;
