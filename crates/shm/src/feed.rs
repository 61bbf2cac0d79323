//! [`FeedRing`]: a change feed in a shared region — a byte ring of numbered entries that
//! readers follow lock-free, waiting on a futex word in the mapping.
//!
//! SKELETON (helper `shm-feed` implements).

use std::sync::Arc;
use std::time::Duration;

use crate::memory::Memory;
use crate::{Region, ShmError};

/// One feed entry, as a reader found it (its bytes are appended to the caller's buffer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedEntry {
    /// Its position: entries are numbered 1, 2, 3, … in the order the writer appended them.
    pub pos: u64,
    /// The writer's tag (the mirror puts the table and the kind of change there).
    pub tag: u64,
    /// Bytes appended to the caller's buffer.
    pub len: usize,
}

/// The writer's side of a feed ring.
///
/// Concurrency contract: one appender at a time (an internal mutex in the writer's process);
/// [`publish`](FeedRing::publish) makes every entry appended so far visible with one
/// `Release` store of the head and wakes every waiting reader with one `FUTEX_WAKE`, however
/// many there are.
///
/// ```no_run
/// use std::sync::Arc;
/// use nlkit_shm::{FeedRing, Region};
/// let region = Arc::new(Region::create("example").unwrap());
/// let feed = FeedRing::create(region, 1 << 20).unwrap();
/// let pos = feed.append(0, b"change").unwrap();
/// feed.publish();
/// let mut out = Vec::new();
/// assert_eq!(feed.reader().read(pos, &mut out).unwrap().unwrap().pos, pos);
/// ```
#[derive(Debug)]
pub struct FeedRing {
    _region: Arc<Region>,
}

impl FeedRing {
    /// Allocates a ring of `bytes` (rounded up) in `region`.
    pub fn create(region: Arc<Region>, bytes: u64) -> Result<FeedRing, ShmError> {
        let _ = (region, bytes);
        todo!()
    }

    /// The offset of the ring's header.
    pub fn offset(&self) -> u64 {
        todo!()
    }

    /// Appends an entry (not yet visible); returns its position.
    pub fn append(&self, tag: u64, bytes: &[u8]) -> Result<u64, ShmError> {
        let _ = (tag, bytes);
        todo!()
    }

    /// Makes every appended entry visible and wakes the waiting readers.
    pub fn publish(&self) {
        todo!()
    }

    /// A reader on the writer's own mapping.
    pub fn reader(&self) -> FeedReader<'_, Region> {
        todo!()
    }
}

/// A lock-free, validating reader of a feed ring in any [`Memory`].
#[derive(Debug)]
pub struct FeedReader<'m, M: Memory + ?Sized> {
    _mem: &'m M,
}

impl<'m, M: Memory + ?Sized> FeedReader<'m, M> {
    /// Opens the ring whose header is at `off`.
    pub fn open(mem: &'m M, off: u64) -> Result<Self, ShmError> {
        let _ = (mem, off);
        todo!()
    }

    /// The position the next published entry will have.
    pub fn next_pos(&self) -> Result<u64, ShmError> {
        todo!()
    }

    /// Reads the entry at `pos`: `None` if it is not published yet, [`ShmError::Overrun`] if it
    /// was overwritten.
    pub fn read(&self, pos: u64, out: &mut Vec<u8>) -> Result<Option<FeedEntry>, ShmError> {
        let _ = (pos, out);
        todo!()
    }

    /// Waits (futex, no spinning) until an entry at `pos` or later is published, or until
    /// `timeout`; returns whether one is.
    pub fn wait(&self, pos: u64, timeout: Option<Duration>) -> Result<bool, ShmError> {
        let _ = (pos, timeout);
        todo!()
    }
}
