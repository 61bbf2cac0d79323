//! Read the nlkit mirror's tables and change feed straight from shared memory.
//!
//! The mirror keeps its tables in memfd segments that clients map read-only (`nlkit-shm`);
//! this crate is the client side: it opens the view from the mirror's socket path, looks
//! entries up and walks tables with no system call, and follows the change feed. It also
//! holds what the mirror and its clients must agree on: the tables ([`TableId`]), the keys
//! entries are filed under ([`keys`]), and the compact conntrack record format ([`ct_pack`]).
//!
//! ```
//! use nlkit_view::{LinkKey, TableId};
//! assert_eq!(TableId::Links.name(), "links");
//! assert_eq!(LinkKey { ifindex: 3 }.ifindex, 3);
//! ```

#![forbid(unsafe_code)]

pub mod ct_pack;
pub mod keys;
pub mod schema;
mod table_id;

pub use keys::{AddrKey, LinkKey, NeighKey, NexthopKey, Route4Key, RouteKey, StoreKey};
pub use table_id::TableId;
