//! [`RecordLog`]: byte records of any size in append-only chunks, read without record locks.
//!
//! A companion to [`WordTable`](crate::WordTable) for values too big for a word: the table
//! maps a key to the [`Loc`] of its record (a `u64`), the log holds the bytes. Records are
//! packed back to back, so walking the log visits every value in memory order — a full scan
//! costs a sequential read of the live bytes, not a pointer chase per entry — and there is no
//! allocation (and no allocator overhead) per record.
//!
//! # Layout
//! The log is a list of chunks of [`CHUNK_BYTES`] (a record bigger than that gets a chunk of
//! its own), each an array of `u64` words. A record is one header word — byte length in bits
//! 0–31, a caller's 31-bit *tag* in bits 32–62, a dead flag in bit 63 — then its bytes, padded
//! to whole words. A [`Loc`] is the chunk's id (ids increase and are never reused) and the
//! header's word offset.
//!
//! # Concurrency contract
//! - **Writers** ([`LogWriter`], from [`RecordLog::writer`]) are serialised by the `writer`
//!   mutex: appends, kills, tag changes and compaction.
//! - **Published words are immutable**, except a header's tag and dead bits. A chunk's words
//!   at or past `len` are written by the writer only (`Relaxed`), then published by storing
//!   `len` with `Release`; readers load `len` with `Acquire` and read only below it.
//! - **Header words** change by whole-word atomic stores or `fetch_or` (tag, dead). A kill is a
//!   `Release` `fetch_or`, and readers load headers with `Acquire`: a reader that sees a record
//!   dead also sees what the writer did before killing it (for a key-to-record index, the new
//!   location), so "dead → look the key up again" always makes progress.
//! - **Chunks are reclaimed by reference counting**: the chunk list is an `Arc` snapshot
//!   replaced by the writer when a chunk is added or dropped (the `chunks` mutex is held only
//!   to clone or swap that `Arc`). A reader works on the snapshot it cloned, so the chunks it
//!   reads stay allocated however far compaction has gone; it may see records that have since
//!   died (they read back exactly as written), never freed or reused memory.
//! - **Compaction** copies the live records of a mostly-dead chunk to the head, lets the caller
//!   re-point its index (`relink`), kills the originals and then drops the chunk from the list.
//!
//! The loom model is `tests/loom_log.rs`.
//!
//! ```
//! use nlkit_table::RecordLog;
//!
//! let log = RecordLog::new();
//! let mut w = log.writer();
//! let a = w.append(b"hello", 1);
//! let b = w.append(b"world!", 2);
//! assert!(w.kill(a));
//! drop(w);
//! let mut out = Vec::new();
//! assert_eq!(log.read_into(b, &mut out), Some(2));
//! assert_eq!(out, b"world!");
//! assert_eq!(log.read_into(a, &mut Vec::new()), None); // dead
//! let mut seen = Vec::new();
//! log.scan(|_, tag, bytes| { seen.push((tag, bytes.to_vec())); true });
//! assert_eq!(seen, [(2, b"world!".to_vec())]);
//! ```

use std::sync::Arc;

use crate::sync::{AtomicU32, AtomicU64, Mutex, MutexGuard, Ordering};

/// Bytes in a regular chunk (32 KiB; tiny under loom so models reach chunk turnover).
#[cfg(not(loom))]
pub const CHUNK_BYTES: usize = 32 * 1024;
/// Bytes in a regular chunk (tiny under loom so models reach chunk turnover).
#[cfg(loom)]
pub const CHUNK_BYTES: usize = 32;

const CHUNK_WORDS: usize = CHUNK_BYTES / 8;
const DEAD: u64 = 1 << 63;
/// Tags are 31 bits wide.
pub const TAG_MASK: u32 = 0x7fff_ffff;
const OFF_BITS: u32 = 24;

/// Where a record lives: chunk id and word offset, packed in a `u64` (store it in a
/// [`WordTable`](crate::WordTable)).
///
/// ```
/// use nlkit_table::Loc;
/// let l = Loc::from_word(42 << 24 | 7);
/// assert_eq!(Loc::from_word(l.to_word()), l);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Loc(u64);

impl Loc {
    fn new(chunk: u64, off: usize) -> Self {
        Loc(chunk << OFF_BITS | off as u64)
    }
    fn chunk(self) -> u64 {
        self.0 >> OFF_BITS
    }
    fn off(self) -> usize {
        (self.0 & ((1 << OFF_BITS) - 1)) as usize
    }
    /// The location as one word.
    pub fn to_word(self) -> u64 {
        self.0
    }
    /// A location from [`to_word`](Loc::to_word)'s word.
    pub fn from_word(w: u64) -> Self {
        Loc(w)
    }
}

fn header(len: usize, tag: u32) -> u64 {
    len as u64 | u64::from(tag & TAG_MASK) << 32
}

fn header_len(h: u64) -> usize {
    h as u32 as usize
}

fn header_tag(h: u64) -> u32 {
    (h >> 32) as u32 & TAG_MASK
}

fn record_words(len: usize) -> usize {
    1 + len.div_ceil(8)
}

/// One chunk of words.
///
/// `id` and the size of `words` are immutable after construction; `len` is written by the
/// writer only (`Release`), read by anyone (`Acquire`); `dead` (words of dead records) is the
/// writer's bookkeeping, `Relaxed`.
struct Chunk {
    id: u64,
    words: Box<[AtomicU64]>,
    len: AtomicU32,
    dead: AtomicU32,
}

impl Chunk {
    fn new(id: u64, words: usize) -> Self {
        Chunk {
            id,
            words: (0..words).map(|_| AtomicU64::new(0)).collect(),
            len: AtomicU32::new(0),
            dead: AtomicU32::new(0),
        }
    }

    fn cap(&self) -> usize {
        self.words.len()
    }

    /// Copies the record's bytes (length from header `h`, read at `off`) to `out`.
    fn copy_record(&self, off: usize, h: u64, out: &mut Vec<u8>) {
        let len = header_len(h);
        let start = out.len();
        out.reserve(len.next_multiple_of(8));
        for w in &self.words[off + 1..off + record_words(len)] {
            out.extend_from_slice(&w.load(Ordering::Relaxed).to_ne_bytes());
        }
        out.truncate(start + len);
    }
}

type List = Arc<Vec<Arc<Chunk>>>;

fn find(list: &[Arc<Chunk>], id: u64) -> Option<&Arc<Chunk>> {
    list.binary_search_by_key(&id, |c| c.id)
        .ok()
        .map(|i| &list[i])
}

/// The writer's state (under `RecordLog::writer`).
struct WriterState {
    /// The published list, as last stored (only the writer replaces it).
    list: List,
    next_id: u64,
    /// Chunks (not the head) at least half dead: to compact.
    sparse: Vec<u64>,
}

/// An append-only log of byte records with lock-free reads and compaction.
///
/// Records are packed into append-only chunks of words; readers take no lock on the record
/// path, writers are serialised by [`RecordLog::writer`], and chunks are freed by reference
/// counting once compaction has emptied them (the full contract is in `log.rs`).
///
/// ```
/// let log = nlkit_table::RecordLog::new();
/// let at = log.writer().append(&[1, 2, 3], 9);
/// assert_eq!(log.tag(at), Some(9));
/// ```
pub struct RecordLog {
    /// The chunk list readers clone (held only to clone or swap the `Arc`).
    chunks: Mutex<List>,
    writer: Mutex<WriterState>,
}

impl Default for RecordLog {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for RecordLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordLog")
            .field("chunks", &self.snapshot().len())
            .finish()
    }
}

impl RecordLog {
    /// An empty log.
    pub fn new() -> Self {
        let list: List = Arc::new(Vec::new());
        RecordLog {
            chunks: Mutex::new(list.clone()),
            writer: Mutex::new(WriterState {
                list,
                next_id: 1,
                sparse: Vec::new(),
            }),
        }
    }

    fn snapshot(&self) -> List {
        self.chunks.lock().clone()
    }

    /// Takes the writer lock: every change goes through the returned [`LogWriter`].
    pub fn writer(&self) -> LogWriter<'_> {
        LogWriter {
            log: self,
            st: self.writer.lock(),
        }
    }

    /// Calls `f` with the chunk, offset and header of the live record at `at`; `None` when the
    /// record is dead (or `at` names no record of this log).
    fn with_live<R>(&self, at: Loc, f: impl FnOnce(&Chunk, usize, u64) -> R) -> Option<R> {
        let list = self.snapshot();
        let c = find(&list, at.chunk())?;
        let off = at.off();
        if off >= c.len.load(Ordering::Acquire) as usize {
            return None;
        }
        let h = c.words[off].load(Ordering::Acquire);
        (h & DEAD == 0).then(|| f(c, off, h))
    }

    /// Appends the bytes of the live record at `at` to `out` and returns its tag; `None` when
    /// the record is dead (or `at` names no record of this log).
    pub fn read_into(&self, at: Loc, out: &mut Vec<u8>) -> Option<u32> {
        self.with_live(at, |c, off, h| {
            c.copy_record(off, h, out);
            header_tag(h)
        })
    }

    /// The tag of the live record at `at`.
    pub fn tag(&self, at: Loc) -> Option<u32> {
        self.with_live(at, |_, _, h| header_tag(h))
    }

    /// Calls `f(location, tag, bytes)` for every live record, in log order, until it returns
    /// `false`. Lock-free. Records killed meanwhile may or may not be seen; records appended
    /// meanwhile (a replacement, or a record moved by compaction) are seen as long as the scan
    /// catches up with the head — it re-reads the chunk list after its last chunk, a few times
    /// at most — so a scan that overlaps changes may see a record twice (old and new copy) and
    /// rarely miss one. Callers that need an exact view pair the scan with a change sequence.
    pub fn scan(&self, mut f: impl FnMut(Loc, u32, &[u8]) -> bool) {
        /// Chunk-list re-reads after the first pass (a scan must end under endless appends).
        const CATCH_UP: usize = 4;
        let mut buf: Vec<u8> = Vec::new();
        // Progress: chunk id and words of it already visited.
        let (mut last_id, mut last_off) = (0u64, 0usize);
        for _ in 0..=CATCH_UP {
            let list = self.snapshot();
            let mut progressed = false;
            let (seen_id, seen_off) = (last_id, last_off);
            for c in list.iter().filter(|c| c.id >= seen_id) {
                let from = if c.id == seen_id { seen_off } else { 0 };
                let len = c.len.load(Ordering::Acquire) as usize;
                if len <= from {
                    continue;
                }
                progressed = true;
                (last_id, last_off) = (c.id, len);
                buf.clear();
                buf.resize((len - from) * 8, 0);
                for (dst, w) in buf.chunks_exact_mut(8).zip(&c.words[from..len]) {
                    dst.copy_from_slice(&w.load(Ordering::Relaxed).to_ne_bytes());
                }
                let mut off = 0;
                while off < len - from {
                    let h = u64::from_ne_bytes(word_at(&buf, off));
                    let n = header_len(h);
                    let words = record_words(n);
                    if from + off + words > len {
                        break; // cannot happen: `len` covers whole records only
                    }
                    if h & DEAD == 0 {
                        let at = (off + 1) * 8;
                        if !f(Loc::new(c.id, from + off), header_tag(h), &buf[at..at + n]) {
                            return;
                        }
                    }
                    off += words;
                }
            }
            if !progressed {
                return;
            }
        }
    }

    /// Bytes allocated for chunks.
    pub fn memory_bytes(&self) -> usize {
        self.snapshot()
            .iter()
            .map(|c| c.cap() * 8 + std::mem::size_of::<Chunk>() + 16)
            .sum()
    }
}

fn word_at(buf: &[u8], off: usize) -> [u8; 8] {
    let mut w = [0; 8];
    w.copy_from_slice(&buf[off * 8..off * 8 + 8]);
    w
}

/// The log's writer: holds the writer lock for its lifetime.
///
/// ```
/// let log = nlkit_table::RecordLog::new();
/// let mut w = log.writer();
/// let at = w.append(b"abc", 1);
/// assert!(w.set_tag(at, 2));
/// assert!(w.kill(at));
/// assert!(!w.kill(at));
/// ```
pub struct LogWriter<'a> {
    log: &'a RecordLog,
    st: MutexGuard<'a, WriterState>,
}

impl LogWriter<'_> {
    fn publish(&mut self, list: Vec<Arc<Chunk>>) {
        let list = Arc::new(list);
        self.st.list = list.clone();
        *self.log.chunks.lock() = list;
    }

    /// Appends a record with `tag` (31 bits kept) and returns where it is.
    ///
    /// # Panics
    /// If `bytes` is 4 GiB or longer (a caller bug).
    pub fn append(&mut self, bytes: &[u8], tag: u32) -> Loc {
        assert!(bytes.len() < u32::MAX as usize, "record too large");
        let words = record_words(bytes.len());
        let head = self.st.list.last().cloned();
        let c = match head {
            Some(c) if c.cap() - c.len.load(Ordering::Relaxed) as usize >= words => c,
            old_head => {
                // The head becomes an ordinary chunk: compact it too if it is mostly dead.
                if let Some(h) = old_head {
                    if h.dead.load(Ordering::Relaxed) as usize * 2 >= h.cap() {
                        self.st.sparse.push(h.id);
                    }
                }
                let id = self.st.next_id;
                self.st.next_id += 1;
                let c = Arc::new(Chunk::new(id, words.max(CHUNK_WORDS)));
                let mut list = Vec::with_capacity(self.st.list.len() + 1);
                list.extend(self.st.list.iter().cloned());
                list.push(c.clone());
                self.publish(list);
                c
            }
        };
        let off = c.len.load(Ordering::Relaxed) as usize;
        for (i, part) in bytes.chunks(8).enumerate() {
            let mut w = [0u8; 8];
            w[..part.len()].copy_from_slice(part);
            c.words[off + 1 + i].store(u64::from_ne_bytes(w), Ordering::Relaxed);
        }
        c.words[off].store(header(bytes.len(), tag), Ordering::Relaxed);
        c.len.store((off + words) as u32, Ordering::Release);
        Loc::new(c.id, off)
    }

    fn live_header(&self, at: Loc) -> Option<(Arc<Chunk>, u64)> {
        let c = find(&self.st.list, at.chunk())?.clone();
        if at.off() >= c.len.load(Ordering::Relaxed) as usize {
            return None;
        }
        let h = c.words[at.off()].load(Ordering::Relaxed);
        (h & DEAD == 0).then_some((c, h))
    }

    /// Kills the record at `at`; `false` if it was not live.
    pub fn kill(&mut self, at: Loc) -> bool {
        let Some((c, h)) = self.live_header(at) else {
            return false;
        };
        c.words[at.off()].fetch_or(DEAD, Ordering::Release);
        let dead = c.dead.load(Ordering::Relaxed) + record_words(header_len(h)) as u32;
        c.dead.store(dead, Ordering::Relaxed);
        let is_head = self.st.list.last().is_some_and(|l| l.id == c.id);
        let was_sparse = (dead - record_words(header_len(h)) as u32) as usize * 2 >= c.cap();
        if !is_head && dead as usize * 2 >= c.cap() && !was_sparse {
            self.st.sparse.push(c.id);
        }
        true
    }

    /// Sets the tag of the live record at `at`; `false` if it was not live.
    pub fn set_tag(&mut self, at: Loc, tag: u32) -> bool {
        let Some((c, h)) = self.live_header(at) else {
            return false;
        };
        c.words[at.off()].store(header(header_len(h), tag), Ordering::Release);
        true
    }

    /// The tag of the live record at `at` (as [`RecordLog::tag`]).
    pub fn tag(&self, at: Loc) -> Option<u32> {
        self.live_header(at).map(|(_, h)| header_tag(h))
    }

    /// Compacts the chunks that are at least half dead: each live record is copied to the
    /// head and `relink(bytes, old, new)` is called; when it returns `true` (the caller's
    /// index now points at `new`) the original is killed, otherwise the copy is. Emptied
    /// chunks leave the list. Returns how many records moved.
    pub fn compact(&mut self, mut relink: impl FnMut(&[u8], Loc, Loc) -> bool) -> usize {
        let mut moved = 0;
        let mut buf = Vec::new();
        while let Some(id) = self.st.sparse.pop() {
            let Some(c) = find(&self.st.list, id).cloned() else {
                continue;
            };
            let len = c.len.load(Ordering::Relaxed) as usize;
            let mut off = 0;
            while off < len {
                let h = c.words[off].load(Ordering::Relaxed);
                let words = record_words(header_len(h));
                if h & DEAD == 0 {
                    buf.clear();
                    c.copy_record(off, h, &mut buf);
                    let old = Loc::new(c.id, off);
                    let new = self.append(&buf, header_tag(h));
                    if relink(&buf, old, new) {
                        moved += 1;
                        c.words[off].fetch_or(DEAD, Ordering::Release);
                    } else {
                        self.kill(new);
                        c.words[off].fetch_or(DEAD, Ordering::Release);
                    }
                }
                off += words;
            }
            let list: Vec<_> = self
                .st
                .list
                .iter()
                .filter(|x| x.id != id)
                .cloned()
                .collect();
            self.publish(list);
        }
        moved
    }

    /// Whether [`compact`](LogWriter::compact) has work to do.
    pub fn needs_compaction(&self) -> bool {
        !self.st.sparse.is_empty()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn records_of_every_size_round_trip() {
        let log = RecordLog::new();
        let mut w = log.writer();
        let recs: Vec<Vec<u8>> = (0..200usize)
            .map(|i| (0..(i * 37) % 700).map(|b| (b ^ i) as u8).collect())
            .chain([vec![7u8; CHUNK_BYTES * 2 + 3]])
            .collect();
        let locs: Vec<Loc> = recs
            .iter()
            .enumerate()
            .map(|(i, r)| w.append(r, i as u32))
            .collect();
        drop(w);
        for (i, (r, l)) in recs.iter().zip(&locs).enumerate() {
            let mut out = vec![1, 2];
            assert_eq!(log.read_into(*l, &mut out), Some(i as u32));
            assert_eq!(&out[2..], &r[..]);
        }
        let mut n = 0;
        log.scan(|l, tag, b| {
            assert_eq!(locs[tag as usize], l);
            assert_eq!(b, &recs[tag as usize][..]);
            n += 1;
            true
        });
        assert_eq!(n, recs.len());
    }

    #[test]
    fn compaction_moves_live_records_and_frees_chunks() {
        let log = RecordLog::new();
        let mut index: HashMap<u32, Loc> = HashMap::new();
        let mut w = log.writer();
        for i in 0..20_000u32 {
            index.insert(i, w.append(&i.to_ne_bytes().repeat(5), i));
        }
        let before = log.memory_bytes();
        // Kill three quarters.
        for i in 0..20_000u32 {
            if i % 4 != 0 {
                assert!(w.kill(index.remove(&i).unwrap()));
            }
        }
        assert!(w.needs_compaction());
        let moved = w.compact(|bytes, old, new| {
            let k = u32::from_ne_bytes(bytes[..4].try_into().unwrap());
            assert_eq!(index.get(&k), Some(&old));
            index.insert(k, new);
            true
        });
        assert!(moved > 0 && !w.needs_compaction());
        drop(w);
        assert!(
            log.memory_bytes() < before / 2,
            "{} vs {before}",
            log.memory_bytes()
        );
        assert_eq!(index.len(), 5_000);
        for (k, l) in &index {
            let mut out = Vec::new();
            assert_eq!(log.read_into(*l, &mut out), Some(*k));
            assert_eq!(out, k.to_ne_bytes().repeat(5));
        }
        let mut n = 0;
        log.scan(|_, _, _| {
            n += 1;
            true
        });
        assert_eq!(n, 5_000);
    }

    #[test]
    fn a_scan_catches_up_with_records_appended_meanwhile() {
        let log = RecordLog::new();
        log.writer().append(&[0; 100], 0);
        let mut seen = Vec::new();
        log.scan(|_, tag, _| {
            if tag == 0 {
                // A replacement appended during the scan, in the same chunk and in new ones.
                let mut w = log.writer();
                for t in 1..=3 {
                    w.append(&vec![t as u8; CHUNK_BYTES / 2], t);
                }
            }
            seen.push(tag);
            true
        });
        assert_eq!(seen, [0, 1, 2, 3]);
    }

    #[test]
    fn tags_and_kills() {
        let log = RecordLog::new();
        let mut w = log.writer();
        let a = w.append(&[], u32::MAX);
        assert_eq!(w.tag(a), Some(TAG_MASK));
        assert!(w.set_tag(a, 5));
        assert_eq!(log.tag(a), Some(5));
        assert!(w.kill(a));
        assert!(!w.set_tag(a, 6));
        assert_eq!(log.tag(a), None);
        assert_eq!(log.tag(Loc::from_word(u64::MAX)), None);
        assert!(!w.kill(Loc::from_word(0)));
    }
}
