//! # nlkit-table
//!
//! A lock-free hash table in the style of the Linux conntrack table: `hlist_nulls` chains over
//! type-stable, immediately reusable slots, with reference-count pinning and validation in
//! place of RCU grace periods. It knows nothing of Netlink.
//!
//! - [`NullsTable`]: a generic `K → V` table (keys that encode into `u64` words, values of
//!   any size, boxed and immutable per entry incarnation), with refcounted handles
//!   ([`EntryRef`]), a reference-free presence check and word peek, iteration and a
//!   [`ChangeStamp`] for detecting dumps that overlapped a change.
//! - [`WordTable`]: the same table with a `u64` value inline in each slot: lookups touch no
//!   lock and no reference count (seqlock-validated reads), replaces update in place, and
//!   [`WordTable::get_batch`] reads many keys with their cache misses overlapped.
//!
//! Every bucket head carries a four-bit summary of its chain's keys, so a lookup of an
//! absent key usually ends at the head without reading a slot.
//! - [`RecordLog`]: byte records of any size in append-only chunks, read without locks and
//!   compacted in the background of writes: with a [`WordTable`] of [`Loc`]s it stores
//!   variable-size values with no allocation per entry, and a full scan is a sequential read.
//! - [`ConnTable`]: connections linked by both original and reply [`ConnKey`]s, a per-entry
//!   lock for protocol state, timeouts, incremental gc, early drop and predicate clean-up;
//!   per-connection traffic counters ([`TrafficCounters`]) or none ([`NoCounters`]).
//!
//! Design notes: `crates/table/DESIGN.md`, beside this crate's sources in the repository (the
//! data layout, the slot lifecycle and every memory ordering with its reason, what a lookup
//! validates and why it restarts, reclamation, access modes, the conntrack specifics and how
//! all of it is tested). The loom models are in `tests/loom_*.rs`.
//!
//! ```
//! use nlkit_table::NullsTable;
//! let t: NullsTable<u64, &str> = NullsTable::new(16);
//! t.insert(1, "one").unwrap();
//! assert_eq!(t.get(&1).as_deref(), Some(&"one"));
//! ```

#![warn(missing_docs)]

mod arena;
mod batch;
mod clock;
mod conn;
mod error;
mod key;
mod log;
mod map;
mod raw;
mod seq;
mod stats;
mod sync;
mod word;

pub use clock::{Clock, ManualClock};
pub use conn::{
    status, ConnConfig, ConnCounters, ConnIter, ConnKey, ConnRef, ConnTable, ConnView, Direction,
    GcBudget, GcReport, NewConn, NoCounters, TrafficCounters,
};
pub use error::{ConnInsertError, InsertError, InsertErrorKind};
pub use key::{ByteKey, KeyWords, TableKey};
pub use log::{Loc, LogWriter, RecordLog, CHUNK_BYTES, TAG_MASK};
pub use map::{EntryRef, Iter, NullsTable};
pub use seq::{ChangeSeq, SeqSnapshot, WriteGuard};
pub use stats::{ChangeStamp, Stats};
pub use sync::MutexGuard;
pub use word::WordTable;
