//! [`FeedWriter`]: the ring's writer over any [`Memory`] (DESIGN.md §4.2).

use std::ops::Deref;

use parking_lot::Mutex;

use super::futex;
use super::layout::*;
use super::reader::FeedReader;
use crate::memory::{write_bytes, Memory};
use crate::sync::{fence, Ordering};
use crate::ShmError;

/// The writer's private bookkeeping (behind the writer's mutex; never in shared memory).
#[derive(Debug)]
struct State {
    /// The position the next appended entry gets.
    next: u64,
    /// Where (a byte count since the ring's creation, not reduced modulo the capacity) the
    /// next entry starts.
    next_at: u64,
    /// The oldest position whose bytes are intact (`next` when there is none).
    tail: u64,
    /// Where the entry at `tail` starts.
    tail_at: u64,
    /// The head readers see: positions below it are published.
    published: u64,
}

/// The writer of a feed ring in any memory `P` points to: [`FeedRing`](crate::FeedRing) is
/// this over the writer's [`Region`](crate::Region); tests and the loom model run it over
/// [`HeapMemory`](crate::HeapMemory) or a mapping of their own.
///
/// Concurrency contract: the layout and `off` are immutable after [`init`](FeedWriter::init);
/// appends serialise on a mutex in this process (the shared memory holds no lock). Shared
/// words are written in the order DESIGN.md §4.2 gives: an entry's old bytes are made dead
/// (their entries' position words zeroed and the tail word advanced) before a `Release` fence
/// that precedes every store of new bytes, and [`publish`](FeedWriter::publish) stores the
/// head with `Release` after the entries it publishes.
///
/// ```
/// use nlkit_shm::feed::{FeedLayout, FeedWriter};
/// use nlkit_shm::HeapMemory;
/// let layout = FeedLayout::new(4096);
/// let mem = HeapMemory::zeroed((layout.bytes() / 8) as usize);
/// let w = FeedWriter::init(&mem, 0, layout).unwrap();
/// let pos = w.append(7, b"hello").unwrap();
/// w.publish();
/// let mut out = Vec::new();
/// let e = w.reader().read(pos, &mut out).unwrap().unwrap();
/// assert_eq!((e.pos, e.tag, &out[..]), (1, 7, &b"hello"[..]));
/// ```
#[derive(Debug)]
pub struct FeedWriter<P>
where
    P: Deref,
    P::Target: Memory,
{
    mem: P,
    off: u64,
    layout: FeedLayout,
    state: Mutex<State>,
}

impl<P> FeedWriter<P>
where
    P: Deref,
    P::Target: Memory,
{
    /// Writes a ring's header at `off` in `mem`, which must hold [`FeedLayout::bytes`]
    /// bytes there that nothing else uses (zeroed or not: readers validate everything).
    /// Position 1 comes first.
    pub fn init(mem: P, off: u64, layout: FeedLayout) -> Result<Self, ShmError> {
        Self::init_at(mem, off, layout, 1)
    }

    /// As [`init`](FeedWriter::init), with `first` (at least 1) the position of the first
    /// entry: a writer that numbers its changes itself starts the ring where its numbering is.
    pub fn init_at(mem: P, off: u64, layout: FeedLayout, first: u64) -> Result<Self, ShmError> {
        let first = first.max(1);
        mem.words(off, (layout.bytes() / 8) as usize)?;
        let m = &*mem;
        m.word(off + W_CAPACITY)?
            .store(layout.capacity(), Ordering::Relaxed);
        m.word(off + W_INDEX)?
            .store(layout.index_slots(), Ordering::Relaxed);
        m.word(off + W_HEAD)?.store(first, Ordering::Relaxed);
        m.word(off + W_TAIL)?.store(first, Ordering::Relaxed);
        m.word(off + W_FUTEX)?.store(0, Ordering::Relaxed);
        m.word(off + W_STAMP)?.store(0, Ordering::Relaxed);
        // No index slot may point at an entry of `first` or later before it is written.
        for w in m.words(off + layout.index_off(), layout.index_slots() as usize)? {
            w.store(0, Ordering::Relaxed);
        }
        // The magic last: a reader that sees it (Acquire) sees the rest.
        m.word(off + W_MAGIC)?.store(MAGIC, Ordering::Release);
        Ok(FeedWriter {
            mem,
            off,
            layout,
            state: Mutex::new(State {
                next: first,
                next_at: 0,
                tail: first,
                tail_at: 0,
                published: first,
            }),
        })
    }

    /// The offset of the ring's header.
    pub fn offset(&self) -> u64 {
        self.off
    }

    /// The ring's layout.
    pub fn layout(&self) -> FeedLayout {
        self.layout
    }

    /// The memory the ring lives in.
    pub fn memory(&self) -> &P::Target {
        &self.mem
    }

    /// Sets the ring's stamp: a word of the writer's own that readers read with
    /// [`FeedReader::stamp`] (the mirror stores its feed epoch there). Set it before the
    /// ring's offset is handed to readers.
    pub fn set_stamp(&self, stamp: u64) {
        if let Ok(w) = self.mem.word(self.off + W_STAMP) {
            w.store(stamp, Ordering::Release);
        }
    }

    /// The position the next appended entry gets.
    pub fn next_pos(&self) -> u64 {
        self.state.lock().next
    }

    /// Appends an entry, not yet visible to readers; returns its position.
    /// [`ShmError::TooLarge`] when its bytes are more than a quarter of the ring
    /// ([`FeedLayout::max_entry`]); nothing is appended then.
    pub fn append(&self, tag: u64, bytes: &[u8]) -> Result<u64, ShmError> {
        if bytes.len() > self.layout.max_entry() {
            return Err(ShmError::TooLarge(bytes.len()));
        }
        let cap = self.layout.capacity();
        let size = ENTRY_HEADER + pad8(bytes.len() as u64);
        let mut s = self.state.lock();
        let pos = s.next;
        // Entries never wrap: one that does not fit before the end starts the next lap.
        let mut at = s.next_at;
        if at % cap + size > cap {
            at += cap - at % cap;
        }
        let end = at + size;
        // 1. Kill every entry whose bytes the new one takes (they start less than a lap
        //    before its end) and the one whose index slot it takes: first the tail word
        //    moves past them, then (after a Release fence, so a reader that sees a kill sees
        //    the new tail) their position words are zeroed.
        let m = &*self.mem;
        let data = self.off + self.layout.data_off();
        let (old_tail, old_tail_at) = (s.tail, s.tail_at);
        while s.tail < pos && (s.tail_at + cap < end || s.tail + self.layout.index_slots() <= pos) {
            s.tail += 1;
            s.tail_at = if s.tail < pos {
                m.word(self.slot(s.tail))?.load(Ordering::Relaxed)
            } else {
                at
            };
        }
        if s.tail == pos {
            s.tail_at = at;
        }
        if s.tail != old_tail {
            m.word(self.off + W_TAIL)?.store(s.tail, Ordering::Relaxed);
            fence(Ordering::Release);
            let mut dead_at = old_tail_at;
            for dead in old_tail..s.tail {
                m.word(data + dead_at % cap)?.store(0, Ordering::Relaxed);
                if dead + 1 < s.tail {
                    dead_at = m.word(self.slot(dead + 1))?.load(Ordering::Relaxed);
                }
            }
        }
        // 2. Every store below comes after the kills for a reader that sees any of them.
        fence(Ordering::Release);
        // 3. The entry, then its index slot; `publish` makes both visible.
        let e = data + at % cap;
        m.word(e + 8)?.store(bytes.len() as u64, Ordering::Relaxed);
        m.word(e + 16)?.store(tag, Ordering::Relaxed);
        write_bytes(m, e + ENTRY_HEADER, bytes)?;
        m.word(e)?.store(pos, Ordering::Relaxed);
        m.word(self.slot(pos))?.store(at, Ordering::Relaxed);
        s.next = pos + 1;
        s.next_at = end;
        Ok(pos)
    }

    /// Makes every appended entry visible (one `Release` store of the head) and wakes every
    /// waiting reader, in any process, with one `FUTEX_WAKE`, however many there are. Nothing
    /// appended since the last publish: nothing to do, no system call.
    pub fn publish(&self) {
        let mut s = self.state.lock();
        if s.published == s.next {
            return;
        }
        s.published = s.next;
        let (Ok(head), Ok(fw)) = (
            self.mem.word(self.off + W_HEAD),
            self.mem.word(self.off + W_FUTEX),
        ) else {
            return; // checked by `init`
        };
        head.store(s.next, Ordering::Release);
        fw.fetch_add(1, Ordering::Release);
        drop(s);
        futex::wake_all(fw);
    }

    /// A reader on the writer's own memory.
    pub fn reader(&self) -> FeedReader<'_, P::Target> {
        FeedReader::with_layout(&*self.mem, self.off, self.layout)
    }

    /// The offset of position `pos`'s index slot.
    fn slot(&self, pos: u64) -> u64 {
        self.off + self.layout.index_off() + 8 * (pos & (self.layout.index_slots() - 1))
    }
}
