//! Shared-memory structures that one process writes and others map read-only and read
//! lock-free: the mirror's tables ([`SharedMap`]) and its change feed ([`FeedRing`]), in a
//! sealed memfd ([`Region`], mapped by clients as a [`RegionView`]).
//!
//! Readers treat the mapping as untrusted memory that another process changes under them:
//! every word is an atomic ([`Memory`]), every offset and length is bounds-checked, every read
//! is validated by generation words, and any bytes at all give a typed [`ShmError`], never a
//! panic. The layout and the memory orderings are in `DESIGN.md`. [`fuzzing`] holds the bodies
//! of the fuzz targets, which the test suite also runs over their corpora.
//!
//! ```
//! use nlkit_shm::{HeapMemory, MapReader};
//! // A reader handed garbage gets an error, not a panic.
//! let junk = HeapMemory::from_words(&[0xdead_beef; 64]);
//! assert!(MapReader::open(&junk, 0).is_err());
//! ```

mod error;
mod memory;
mod sync;

pub mod feed;
#[cfg(not(loom))]
pub mod fuzzing;
#[cfg(not(loom))]
mod header;
pub mod map;
#[cfg(not(loom))]
mod mapping;
#[cfg(not(loom))]
mod region;
#[cfg(not(loom))]
mod view;

pub use error::ShmError;
#[cfg(not(loom))]
pub use feed::FeedRing;
pub use feed::{FeedEntry, FeedLayout, FeedReader, FeedWriter};
pub use map::{Entry, InsertError, MapLayout, MapReader, MapWriter, SharedMap, Slot, Walk};
pub use memory::{read_bytes, write_bytes, HeapMemory, Memory};
#[cfg(not(loom))]
pub use region::{Collapsed, Region, ALLOC_ALIGN, HEADER_BYTES, HUGE_PAGE, RESERVE};
#[cfg(not(loom))]
pub use view::RegionView;
