//! [`FeedReader`]: the lock-free, validating reader of a feed ring (DESIGN.md §4.3).

use std::time::{Duration, Instant};

use super::futex;
use super::layout::*;
use super::FeedEntry;
use crate::memory::{read_bytes, Memory};
use crate::sync::{fence, Ordering};
use crate::ShmError;

/// A lock-free, validating reader of a feed ring in any [`Memory`]: the writer's
/// [`Region`](crate::Region), a client's [`RegionView`](crate::RegionView), or
/// [`HeapMemory`](crate::HeapMemory) with any contents at all. Every method returns an error,
/// never panics, whatever the memory holds.
///
/// Concurrency contract: the layout is read and validated once, at [`open`](FeedReader::open)
/// (the writer never changes it); everything else is re-read, with the orderings of
/// DESIGN.md §4.3, on every call. A reader writes nothing: it works on a read-only mapping.
///
/// ```
/// use nlkit_shm::feed::{FeedLayout, FeedReader, FeedWriter};
/// use nlkit_shm::HeapMemory;
/// let layout = FeedLayout::new(256);
/// let mem = HeapMemory::zeroed((layout.bytes() / 8) as usize);
/// let w = FeedWriter::init(&mem, 0, layout).unwrap();
/// let r = FeedReader::open(&mem, 0).unwrap();
/// assert_eq!(r.read(1, &mut Vec::new()).unwrap(), None); // not published yet
/// for i in 0..10u64 {
///     w.append(i, &[0; 40]).unwrap();
/// }
/// w.publish();
/// assert_eq!(r.next_pos().unwrap(), 11);
/// assert!(matches!(r.read(1, &mut Vec::new()), Err(nlkit_shm::ShmError::Overrun { .. })));
/// assert_eq!(r.read(10, &mut Vec::new()).unwrap().unwrap().tag, 9);
/// ```
#[derive(Debug)]
pub struct FeedReader<'m, M: Memory + ?Sized> {
    mem: &'m M,
    off: u64,
    layout: FeedLayout,
}

impl<'m, M: Memory + ?Sized> FeedReader<'m, M> {
    /// Opens the ring whose header is at `off`, validating its header.
    pub fn open(mem: &'m M, off: u64) -> Result<Self, ShmError> {
        let layout = FeedLayout::read(mem, off)?;
        Ok(Self::with_layout(mem, off, layout))
    }

    /// A reader of a ring whose layout is known (the writer's own).
    pub(crate) fn with_layout(mem: &'m M, off: u64, layout: FeedLayout) -> Self {
        FeedReader { mem, off, layout }
    }

    /// The ring's layout, as validated at [`open`](FeedReader::open).
    pub fn layout(&self) -> FeedLayout {
        self.layout
    }

    /// The position the next published entry will have (the head: every position below it
    /// is published).
    pub fn next_pos(&self) -> Result<u64, ShmError> {
        Ok(self.mem.word(self.off + W_HEAD)?.load(Ordering::Acquire))
    }

    /// The writer's stamp ([`FeedWriter::set_stamp`](super::FeedWriter::set_stamp); 0 when
    /// never set).
    pub fn stamp(&self) -> Result<u64, ShmError> {
        Ok(self.mem.word(self.off + W_STAMP)?.load(Ordering::Acquire))
    }

    /// The oldest position whose entry may still be read (a moment later it may be gone).
    pub fn oldest(&self) -> Result<u64, ShmError> {
        Ok(self.mem.word(self.off + W_TAIL)?.load(Ordering::Acquire))
    }

    /// Reads the entry at `pos`, appending its bytes to `out`: `None` if it is not published
    /// yet, [`ShmError::Overrun`] if it was overwritten (or is being overwritten now; `out` is
    /// left as it was). Any other error means the memory holds no valid ring.
    pub fn read(&self, pos: u64, out: &mut Vec<u8>) -> Result<Option<FeedEntry>, ShmError> {
        let head = self.next_pos()?;
        if pos >= head {
            return Ok(None);
        }
        let tail = self.oldest()?;
        if pos < tail || head - pos > self.layout.index_slots() {
            return Err(ShmError::Overrun {
                asked: pos,
                oldest: tail.max(head.saturating_sub(self.layout.index_slots())),
            });
        }
        let start = out.len();
        let r = self.read_entry(pos, out);
        if r.is_err() {
            out.truncate(start);
        }
        r.map(Some)
    }

    /// Reads a published entry that was intact when the tail was read; validates it.
    fn read_entry(&self, pos: u64, out: &mut Vec<u8>) -> Result<FeedEntry, ShmError> {
        let cap = self.layout.capacity();
        let slot = self.off + self.layout.index_off() + 8 * (pos & (self.layout.index_slots() - 1));
        let at = self.mem.word(slot)?.load(Ordering::Relaxed);
        let e = self.off + self.layout.data_off() + at % cap;
        if at % 8 != 0 || at % cap + ENTRY_HEADER > cap {
            return Err(self.mismatch(pos, "feed entry: bad index slot"));
        }
        let h = self.mem.words(e, 3)?;
        if h[0].load(Ordering::Relaxed) != pos {
            return Err(self.mismatch(pos, "feed entry: position word mismatch"));
        }
        let len = h[1].load(Ordering::Relaxed);
        let tag = h[2].load(Ordering::Relaxed);
        if len > self.layout.max_entry() as u64 || at % cap + ENTRY_HEADER + pad8(len) > cap {
            return Err(self.mismatch(pos, "feed entry: bad length"));
        }
        read_bytes(self.mem, e + ENTRY_HEADER, len as usize, out)?;
        // Everything read above happened before the re-reads below: if any of it came from
        // the writer's stores of a later entry, the writer's kill of this one (its position
        // word zeroed, the tail advanced, both before a Release fence) is seen here.
        fence(Ordering::Acquire);
        let tail = self.oldest()?;
        if h[0].load(Ordering::Relaxed) != pos || tail > pos {
            return Err(ShmError::Overrun {
                asked: pos,
                oldest: tail.max(pos + 1),
            });
        }
        Ok(FeedEntry {
            pos,
            tag,
            len: len as usize,
        })
    }

    /// An entry that does not check out: overwritten under us if the tail says so, else the
    /// memory is no valid ring.
    fn mismatch(&self, pos: u64, what: &'static str) -> ShmError {
        fence(Ordering::Acquire);
        match self.oldest() {
            Ok(tail) if tail > pos => ShmError::Overrun {
                asked: pos,
                oldest: tail,
            },
            Ok(_) => ShmError::Corrupt(what),
            Err(e) => e,
        }
    }

    /// Waits until the entry at `pos` is published (the head is past `pos`), or until
    /// `timeout` (`None`: no limit); returns whether it is. Sleeps in `FUTEX_WAIT` on the
    /// ring's futex word, never spins; the writer's one `FUTEX_WAKE` per publish wakes every
    /// waiter. Works on a read-only mapping (the kernel only reads the word).
    pub fn wait(&self, pos: u64, timeout: Option<Duration>) -> Result<bool, ShmError> {
        let deadline = timeout.map(|t| Instant::now().checked_add(t));
        let fw = self.mem.word(self.off + W_FUTEX)?;
        loop {
            // The futex value first: a publish after this load changes it, so FUTEX_WAIT
            // returns at once (EAGAIN) instead of missing the wake-up.
            let seen = futex::futex_value(fw.load(Ordering::Acquire));
            if self.next_pos()? > pos {
                return Ok(true);
            }
            let left = match deadline {
                None | Some(None) => None,
                Some(Some(d)) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => return Ok(false),
                },
            };
            futex::wait(fw, seen, left)?;
            #[cfg(loom)]
            if timeout.is_some() {
                // No clock under loom: one look after a yield stands for the timeout.
                return Ok(self.next_pos()? > pos);
            }
        }
    }
}
