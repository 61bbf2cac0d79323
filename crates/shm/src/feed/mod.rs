//! [`FeedRing`]: a change feed in a shared region — a byte ring of numbered entries that
//! readers follow lock-free, waiting on a futex word in the mapping.
//!
//! The ring's core, [`FeedWriter`] and [`FeedReader`], works over any [`Memory`]: the
//! writer's [`Region`] ([`FeedRing`]), a client's
//! [`RegionView`](crate::RegionView), or [`HeapMemory`](crate::HeapMemory) in tests and in
//! the loom model. The layout, the writer's and the reader's protocol and their memory
//! orderings are in the crate's DESIGN.md §4.
//!
//! * **Positions.** Entries are numbered 1, 2, 3, … (or from the writer's first position) in
//!   the order they are appended; [`FeedWriter::publish`] makes every entry appended so far
//!   visible at once.
//! * **Overrun.** The ring keeps the newest entries that fit (in bytes, and at most
//!   [`FeedLayout::index_slots`] of them); a reader asking for an older one, or one being
//!   overwritten while it reads, gets [`ShmError::Overrun`], never torn bytes.
//! * **Waiting.** [`FeedReader::wait`] sleeps in `FUTEX_WAIT` on a word of the mapping (a
//!   shared futex, so it works across processes and on a read-only mapping); each publish
//!   issues one `FUTEX_WAKE` for all waiters, so readers cost the writer nothing each.

mod futex;
mod layout;
mod reader;
mod writer;

#[cfg(not(loom))]
use std::sync::Arc;

pub use layout::FeedLayout;
pub use reader::FeedReader;
pub use writer::FeedWriter;

#[cfg(not(loom))]
use crate::Region;
#[allow(unused_imports)] // `Memory` is named by the rustdoc links
use crate::{memory::Memory, ShmError};

/// One feed entry, as a reader found it (its bytes are appended to the caller's buffer).
///
/// ```
/// let e = nlkit_shm::FeedEntry { pos: 1, tag: 0, len: 3 };
/// assert_eq!(e.len, 3);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedEntry {
    /// Its position: entries are numbered 1, 2, 3, … in the order the writer appended them.
    pub pos: u64,
    /// The writer's tag (the mirror puts the table and the kind of change there).
    pub tag: u64,
    /// Bytes appended to the caller's buffer.
    pub len: usize,
}

/// The writer's side of a feed ring in a [`Region`]: a [`FeedWriter`] over the region's
/// memory, which it allocates.
///
/// Concurrency contract: one appender at a time (an internal mutex in the writer's process);
/// [`publish`](FeedRing::publish) makes every entry appended so far visible with one
/// `Release` store of the head and wakes every waiting reader with one `FUTEX_WAKE`, however
/// many there are.
///
/// ```
/// use std::sync::Arc;
/// use nlkit_shm::{FeedRing, Region};
/// let region = Arc::new(Region::create("example").unwrap());
/// let feed = FeedRing::create(region, 1 << 20).unwrap();
/// let pos = feed.append(0, b"change").unwrap();
/// feed.publish();
/// let mut out = Vec::new();
/// assert_eq!(feed.reader().read(pos, &mut out).unwrap().unwrap().pos, pos);
/// ```
#[cfg(not(loom))]
#[derive(Debug)]
pub struct FeedRing {
    ring: FeedWriter<Arc<Region>>,
}

#[cfg(not(loom))]
impl FeedRing {
    /// Allocates a ring of `bytes` (rounded up, see [`FeedLayout::new`]) in `region`.
    pub fn create(region: Arc<Region>, bytes: u64) -> Result<FeedRing, ShmError> {
        Self::create_at(region, bytes, 1)
    }

    /// As [`create`](FeedRing::create), with `first` the position of the first entry.
    pub fn create_at(region: Arc<Region>, bytes: u64, first: u64) -> Result<FeedRing, ShmError> {
        let layout = FeedLayout::new(bytes);
        let off = region.alloc(layout.bytes())?;
        Ok(FeedRing {
            ring: FeedWriter::init_at(region, off, layout, first)?,
        })
    }

    /// The offset of the ring's header (what [`FeedReader::open`] and the directory take).
    pub fn offset(&self) -> u64 {
        self.ring.offset()
    }

    /// The ring's layout.
    pub fn layout(&self) -> FeedLayout {
        self.ring.layout()
    }

    /// Sets the ring's stamp, a word readers read with [`FeedReader::stamp`] (see
    /// [`FeedWriter::set_stamp`]).
    pub fn set_stamp(&self, stamp: u64) {
        self.ring.set_stamp(stamp)
    }

    /// The position the next appended entry gets.
    pub fn next_pos(&self) -> u64 {
        self.ring.next_pos()
    }

    /// Appends an entry (not yet visible); returns its position. [`ShmError::TooLarge`]
    /// above [`FeedLayout::max_entry`] bytes.
    pub fn append(&self, tag: u64, bytes: &[u8]) -> Result<u64, ShmError> {
        self.ring.append(tag, bytes)
    }

    /// Makes every appended entry visible and wakes the waiting readers.
    pub fn publish(&self) {
        self.ring.publish()
    }

    /// A reader on the writer's own mapping.
    pub fn reader(&self) -> FeedReader<'_, Region> {
        self.ring.reader()
    }
}
