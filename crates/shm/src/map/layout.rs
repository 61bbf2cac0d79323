//! The map's bytes: header words, slot words, link and record-location encodings, the hash,
//! and the header validation every reader runs (DESIGN.md §3.1).

use super::{MapLayout, MAX_DIRS, MAX_INLINE, MAX_KEY_WORDS, MAX_RECORD};
use crate::memory::Memory;
use crate::sync::{AtomicU64, Ordering};
use crate::ShmError;

/// `"nlkmap02"`: the map header's first word (the `02` is the layout version: 02 added the
/// inline record area, the cache-line slot order and the 64-byte stride).
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"nlkmap02");

/// Most slots a map may have (links keep a slot index in 31 bits).
pub const MAX_CAPACITY: u32 = 1 << 30;

/// The layout word's key sizes (bits 0..24) and unique flags (24..27).
const LAYOUT_KNOWN: u64 = (1 << 27) - 1;
/// The layout word's inline area, in words (bits 32..48).
const INLINE_SHIFT: u32 = 32;
const INLINE_MASK: u64 = 0xffff;

/// Words of the header (the rest is reserved, zero).
pub(crate) const HEADER_WORDS: usize = 16;

// Header word indexes.
pub(crate) const H_MAGIC: usize = 0;
pub(crate) const H_LAYOUT: usize = 1;
pub(crate) const H_SIZES: usize = 2;
pub(crate) const H_SLOTS: usize = 3;
pub(crate) const H_STRIDE: usize = 4;
pub(crate) const H_BUCKETS: usize = 5; // MAX_DIRS words
pub(crate) const H_SEED: usize = 8;
pub(crate) const H_HWM: usize = 9;
pub(crate) const H_LIVE: usize = 10;
pub(crate) const H_CHANGES: usize = 11;

/// Word index of the seqlock word in a slot (always the first: the other slot words are
/// placed by [`Geometry`], see DESIGN.md §3.1).
pub(crate) const S_SEQ: usize = 0;
/// Word index of the first link word (directions 0 and 1).
const S_LINKS: usize = 1;
/// Bytes of a cache line: the slot stride is a multiple of it.
pub(crate) const LINE: usize = 64;
/// Words of a cache line.
pub(crate) const LINE_WORDS: usize = LINE / 8;

/// The location word of a free slot (its length field exceeds [`MAX_RECORD`], so it is never a
/// real location).
pub(crate) const LOC_FREE: u64 = u64::MAX;
const LOC_LEN_SHIFT: u32 = 43;
/// Bit 42: the record is in the slot's inline area (its offset bits are then zero).
const LOC_INLINE: u64 = 1 << 42;
const LOC_OFF_MASK: u64 = LOC_INLINE - 1;

/// Packs a record's heap offset (8-byte aligned, below 2^45) and length into one word.
pub(crate) fn encode_loc(off: u64, len: usize) -> u64 {
    debug_assert!(off % 8 == 0 && off / 8 <= LOC_OFF_MASK && len <= MAX_RECORD);
    (off / 8) | ((len as u64) << LOC_LEN_SHIFT)
}

/// The location word of a record of `len` bytes kept in the slot's inline area.
pub(crate) fn encode_inline(len: usize) -> u64 {
    debug_assert!(len <= MAX_INLINE);
    LOC_INLINE | ((len as u64) << LOC_LEN_SHIFT)
}

/// Where a location word says a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Loc {
    /// `len` bytes at byte offset `off` of the heap.
    Heap { off: u64, len: usize },
    /// The first `len` bytes of the slot's inline area.
    Inline { len: usize },
}

/// Decodes a location word of a slot whose inline area holds `inline` bytes. Any word a
/// writer never stores is an error: a length over [`MAX_RECORD`] (the free marker too), an
/// inline length over the area, an inline word with offset bits.
#[inline]
pub(crate) fn decode_loc(loc: u64, inline: usize) -> Result<Loc, ShmError> {
    let len = loc >> LOC_LEN_SHIFT;
    if len > MAX_RECORD as u64 {
        return Err(ShmError::Corrupt("record longer than MAX_RECORD"));
    }
    let len = len as usize;
    if loc & LOC_INLINE == 0 {
        return Ok(Loc::Heap {
            off: (loc & LOC_OFF_MASK) * 8,
            len,
        });
    }
    if loc & LOC_OFF_MASK != 0 {
        return Err(ShmError::Corrupt("inline record location with an offset"));
    }
    if len > inline {
        return Err(ShmError::Corrupt(
            "inline record longer than the slot's inline area",
        ));
    }
    Ok(Loc::Inline { len })
}

/// A chain link (a half word): a slot, a nulls end-marker naming its bucket, or (in a bucket
/// head only) the empty chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Link {
    Empty,
    Slot(u32),
    Nulls(u32),
}

impl Link {
    pub(crate) fn decode(v: u32) -> Link {
        if v & 1 == 1 {
            Link::Nulls(v >> 1)
        } else if v == 0 {
            Link::Empty
        } else {
            Link::Slot((v >> 1) - 1)
        }
    }

    pub(crate) fn encode(self) -> u32 {
        match self {
            Link::Empty => 0,
            Link::Slot(s) => (s + 1) << 1,
            Link::Nulls(b) => (b << 1) | 1,
        }
    }
}

/// The writer's load of a word that only the writer stores (under its mutex): `Relaxed`,
/// which by coherence returns the writer's own last store.
///
/// Under loom it is `unsync_load` (that same last store, but not recorded as an access):
/// loom's DPOR remembers one last access per atomic, so the writer's own load just before its
/// store would hide a reader's earlier load of the word, and the interleavings where the
/// reader loads after the store would never be explored.
#[inline]
pub(crate) fn own(a: &AtomicU64) -> u64 {
    #[cfg(loom)]
    // SAFETY: only the thread holding the writer mutex (this one) ever stores to `a`, so an
    // unsynchronised load of it is a load of this thread's own last store, which is what a
    // Relaxed load returns here too.
    unsafe {
        a.unsync_load()
    }
    #[cfg(not(loom))]
    a.load(Ordering::Relaxed)
}

/// Half `i % 2` of a word holding two `u32`s.
#[inline]
pub(crate) fn half(word: u64, i: usize) -> u32 {
    (word >> (32 * (i & 1))) as u32
}

/// `word` with half `i % 2` set to `v`.
#[inline]
pub(crate) fn with_half(word: u64, i: usize, v: u32) -> u64 {
    let sh = 32 * (i & 1);
    (word & !(0xffff_ffffu64 << sh)) | (u64::from(v) << sh)
}

/// The seeded hash of a key in direction `dir`, shared by the writer and every reader (the
/// seed is in the header). A multiply–xorshift mix per word: fast, and with a secret random
/// seed not predictable by whoever chooses the keys (conntrack tuples).
#[inline]
pub(crate) fn hash(seed: u64, dir: usize, key: &[u64]) -> u64 {
    let mut h = seed ^ (dir as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for &w in key {
        h = (h ^ w).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h ^= h >> 31;
    }
    h ^= h >> 29;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 32)
}

/// Everything derived from the header: fixed at creation, validated by readers at open.
#[derive(Debug, Clone)]
pub(crate) struct Geometry {
    pub(crate) layout: MapLayout,
    pub(crate) dirs: usize,
    /// Offset of the header.
    pub(crate) hdr: u64,
    /// Offset of the slot array.
    pub(crate) slots: u64,
    /// Words per slot.
    pub(crate) stride_words: usize,
    /// Offset of each direction's bucket-head array (two `u32` heads per word).
    pub(crate) buckets: [u64; MAX_DIRS],
    /// Word index of each direction's key within a slot.
    pub(crate) key_at: [usize; MAX_DIRS],
    /// Word index of the location word.
    pub(crate) loc_at: usize,
    /// Word index of the aux word.
    pub(crate) aux_at: usize,
    /// Word index of the link word of directions `2i` and `2i + 1`.
    pub(crate) link_at: [usize; MAX_DIRS.div_ceil(2)],
    /// Word index of the inline record area (it runs to `inline_at + inline_words`).
    pub(crate) inline_at: usize,
    /// Bytes of the inline record area (a multiple of 8; 0: every record in the heap).
    pub(crate) inline_bytes: usize,
    pub(crate) seed: u64,
}

/// Where each word of a slot goes (DESIGN.md §3.1): what a lookup needs first in the first
/// cache line — seq, the link word of directions 0 and 1, direction 0's key, the location —
/// then direction 1's key, aux, the second link word, direction 2's key, the inline area.
#[derive(Debug, Clone, Copy)]
struct SlotWords {
    key_at: [usize; MAX_DIRS],
    loc_at: usize,
    aux_at: usize,
    link_at: [usize; MAX_DIRS.div_ceil(2)],
    /// Words before the inline area.
    fixed: usize,
}

impl SlotWords {
    fn of(layout: &MapLayout) -> SlotWords {
        let dirs = layout.dirs();
        let kw = |d: usize| layout.key_words[d] as usize;
        let mut key_at = [0; MAX_DIRS];
        let mut link_at = [S_LINKS; MAX_DIRS.div_ceil(2)];
        let mut at = S_LINKS + 1;
        key_at[0] = at;
        at += kw(0);
        let loc_at = at;
        at += 1;
        if dirs > 1 {
            key_at[1] = at;
            at += kw(1);
        }
        let aux_at = at;
        at += 1;
        if dirs > 2 {
            link_at[1] = at;
            at += 1;
            key_at[2] = at;
            at += kw(2);
        }
        SlotWords {
            key_at,
            loc_at,
            aux_at,
            link_at,
            fixed: at,
        }
    }
}

impl Geometry {
    /// Words of a slot before its inline area: seq, aux, location, links (two per word),
    /// keys.
    pub(crate) fn fixed_words(layout: &MapLayout) -> usize {
        SlotWords::of(layout).fixed
    }

    /// Words per slot for `layout`: the fixed words and the inline area (so a layout picks
    /// its stride exactly, [`MapLayout::fill_slot`]).
    pub(crate) fn stride_words(layout: &MapLayout) -> usize {
        Self::fixed_words(layout) + layout.inline_bytes.div_ceil(8) as usize
    }

    /// The header's stride word: the stride in bytes (low half) and the fixed words (high).
    fn stride_word(stride_words: usize, fixed_words: usize) -> u64 {
        (stride_words as u64 * 8) | ((fixed_words as u64) << 32)
    }

    /// The alignment of the slot array: the stride's largest power-of-two factor, at least a
    /// cache line and at most a page, so that a slot whose stride is a multiple of 64 never
    /// straddles more lines than it has, and one whose stride divides 4096 never straddles a
    /// page boundary.
    pub(crate) fn slot_align(stride_words: usize) -> u64 {
        (1u64 << (stride_words * 8).trailing_zeros()).clamp(LINE as u64, 4096)
    }

    /// Words of one direction's bucket-head array.
    pub(crate) fn bucket_words(buckets: u32) -> usize {
        (buckets as usize).div_ceil(2)
    }

    /// Checks a layout a writer asks for; fills in the bucket count.
    pub(crate) fn normalize(layout: MapLayout) -> Result<MapLayout, ShmError> {
        let mut l = layout;
        let dirs = l.dirs();
        if dirs == 0 {
            return Err(ShmError::Corrupt("map layout has no direction"));
        }
        if l.key_words[dirs..].iter().any(|w| *w != 0) {
            return Err(ShmError::Corrupt("map layout has a gap in its directions"));
        }
        if l.key_words.iter().any(|w| *w as usize > MAX_KEY_WORDS) {
            return Err(ShmError::Corrupt("map key longer than MAX_KEY_WORDS"));
        }
        if l.inline_bytes as usize > MAX_INLINE {
            return Err(ShmError::Corrupt("map inline record area over MAX_INLINE"));
        }
        l.inline_bytes = l.inline_bytes.next_multiple_of(8);
        if l.capacity == 0 || l.capacity > MAX_CAPACITY {
            return Err(ShmError::Corrupt("map capacity out of range"));
        }
        if l.buckets == 0 {
            l.buckets = l.capacity.next_power_of_two();
        }
        if !l.buckets.is_power_of_two() || l.buckets > MAX_CAPACITY {
            return Err(ShmError::Corrupt("map bucket count is not a power of two"));
        }
        for d in dirs..MAX_DIRS {
            l.unique[d] = false;
        }
        Ok(l)
    }

    pub(crate) fn new(
        layout: MapLayout,
        hdr: u64,
        slots: u64,
        buckets: [u64; MAX_DIRS],
        seed: u64,
    ) -> Geometry {
        let dirs = layout.dirs();
        let sw = SlotWords::of(&layout);
        Geometry {
            layout,
            dirs,
            hdr,
            slots,
            stride_words: Self::stride_words(&layout),
            buckets,
            key_at: sw.key_at,
            loc_at: sw.loc_at,
            aux_at: sw.aux_at,
            link_at: sw.link_at,
            inline_at: sw.fixed,
            inline_bytes: layout.inline_bytes as usize,
            seed,
        }
    }

    /// The header words describing this geometry (magic first; the writer stores it last).
    pub(crate) fn header_words(&self) -> [u64; HEADER_WORDS] {
        let l = &self.layout;
        let mut h = [0u64; HEADER_WORDS];
        h[H_MAGIC] = MAGIC;
        let mut lw = 0u64;
        for d in 0..MAX_DIRS {
            lw |= u64::from(l.key_words[d]) << (8 * d);
            if l.unique[d] {
                lw |= 1 << (24 + d);
            }
        }
        lw |= u64::from(l.inline_bytes / 8) << INLINE_SHIFT;
        h[H_LAYOUT] = lw;
        h[H_SIZES] = u64::from(l.capacity) | (u64::from(l.buckets) << 32);
        h[H_SLOTS] = self.slots;
        h[H_STRIDE] = Self::stride_word(self.stride_words, self.inline_at);
        h[H_BUCKETS..H_BUCKETS + MAX_DIRS].copy_from_slice(&self.buckets);
        h[H_SEED] = self.seed;
        h
    }

    /// Reads and validates the header at `off` in memory nobody vouches for.
    pub(crate) fn read<M: Memory + ?Sized>(mem: &M, off: u64) -> Result<Geometry, ShmError> {
        let h = mem.words(off, HEADER_WORDS)?;
        if h[H_MAGIC].load(Ordering::Acquire) != MAGIC {
            return Err(ShmError::Corrupt("bad map magic"));
        }
        let w = |i: usize| h[i].load(Ordering::Relaxed);
        let lw = w(H_LAYOUT);
        if lw & !(LAYOUT_KNOWN | (INLINE_MASK << INLINE_SHIFT)) != 0 {
            return Err(ShmError::Corrupt("unknown map layout bits"));
        }
        let mut layout = MapLayout::new((w(H_SIZES) & 0xffff_ffff) as u32);
        layout.buckets = (w(H_SIZES) >> 32) as u32;
        for d in 0..MAX_DIRS {
            layout.key_words[d] = (lw >> (8 * d)) as u8;
            layout.unique[d] = lw & (1 << (24 + d)) != 0;
        }
        layout.inline_bytes = ((lw >> INLINE_SHIFT) & INLINE_MASK) as u32 * 8;
        let dirs = layout.dirs();
        if layout.unique[dirs..].iter().any(|u| *u) {
            return Err(ShmError::Corrupt(
                "map header: unique flag of an unused direction",
            ));
        }
        if layout.buckets == 0 {
            return Err(ShmError::Corrupt("map header: no buckets"));
        }
        let layout = Self::normalize(layout)?;
        let stride_words = Self::stride_words(&layout);
        if w(H_STRIDE) != Self::stride_word(stride_words, Self::fixed_words(&layout)) {
            return Err(ShmError::Corrupt(
                "map header: slot stride does not match the keys",
            ));
        }
        let slots = w(H_SLOTS);
        let mut buckets = [0u64; MAX_DIRS];
        for (d, b) in buckets.iter_mut().enumerate() {
            *b = w(H_BUCKETS + d);
        }
        for b in &buckets[dirs..] {
            if *b != 0 {
                return Err(ShmError::Corrupt(
                    "map header: buckets of an unused direction",
                ));
            }
        }
        let g = Geometry::new(layout, off, slots, buckets, w(H_SEED));
        // Every array must lie inside the memory (and be aligned): checked here once, so
        // readers index them without further checks.
        g.slot_array(mem)?;
        for d in 0..dirs {
            g.bucket_array(mem, d)?;
        }
        // ... and none may overlap another or the header (a header that lies about them
        // could make a writer-looking chain out of slot words).
        let mut spans = [(0u64, 0u64); MAX_DIRS + 2];
        spans[0] = (off, HEADER_WORDS as u64 * 8);
        spans[1] = (
            slots,
            g.stride_words as u64 * 8 * u64::from(layout.capacity),
        );
        for d in 0..dirs {
            spans[2 + d] = (buckets[d], Self::bucket_words(layout.buckets) as u64 * 8);
        }
        let spans = &mut spans[..2 + dirs];
        spans.sort_unstable();
        if spans.windows(2).any(|p| p[0].0 + p[0].1 > p[1].0) {
            return Err(ShmError::Corrupt("map header: arrays overlap"));
        }
        Ok(g)
    }

    /// The whole slot array.
    pub(crate) fn slot_array<'m, M: Memory + ?Sized>(
        &self,
        mem: &'m M,
    ) -> Result<&'m [AtomicU64], ShmError> {
        let n = (self.layout.capacity as usize)
            .checked_mul(self.stride_words)
            .ok_or(ShmError::Corrupt("map header: slot array size overflows"))?;
        mem.words(self.slots, n)
    }

    /// Direction `d`'s bucket-head array.
    pub(crate) fn bucket_array<'m, M: Memory + ?Sized>(
        &self,
        mem: &'m M,
        d: usize,
    ) -> Result<&'m [AtomicU64], ShmError> {
        mem.words(self.buckets[d], Self::bucket_words(self.layout.buckets))
    }

    /// Bucket of `key` in direction `dir`.
    #[inline]
    pub(crate) fn bucket(&self, dir: usize, key: &[u64]) -> u32 {
        (hash(self.seed, dir, key) & u64::from(self.layout.buckets - 1)) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_round_trip() {
        for l in [
            Link::Empty,
            Link::Slot(0),
            Link::Slot(MAX_CAPACITY - 1),
            Link::Nulls(0),
            Link::Nulls(MAX_CAPACITY - 1),
        ] {
            assert_eq!(Link::decode(l.encode()), l);
        }
    }

    #[test]
    fn halves() {
        let w = with_half(with_half(0, 0, 7), 1, 9);
        assert_eq!((half(w, 0), half(w, 1)), (7, 9));
        assert_eq!(half(with_half(w, 1, 3), 0), 7);
    }

    #[test]
    fn locations() {
        let loc = encode_loc((1 << 36) - 8, MAX_RECORD);
        assert_eq!(
            decode_loc(loc, 0).unwrap(),
            Loc::Heap {
                off: (1 << 36) - 8,
                len: MAX_RECORD
            }
        );
        assert!(decode_loc(LOC_FREE, MAX_INLINE).is_err());
        assert_eq!(
            decode_loc(encode_inline(40), 40).unwrap(),
            Loc::Inline { len: 40 }
        );
        assert_eq!(
            decode_loc(encode_inline(0), 0).unwrap(),
            Loc::Inline { len: 0 }
        );
        // An inline length over the area, and an inline word with offset bits: corrupt.
        assert!(decode_loc(encode_inline(48), 40).is_err());
        assert!(decode_loc(encode_inline(8) | 1, 40).is_err());
        assert!(decode_loc((MAX_RECORD as u64 + 1) << LOC_LEN_SHIFT, 40).is_err());
    }

    #[test]
    fn stride() {
        // Conntrack: 18 fixed words; 72 inline bytes make 216 (`map_layout`).
        let l = MapLayout::new(8).key(5, true).key(5, true).key(3, false);
        assert_eq!(Geometry::fixed_words(&l), 18);
        assert_eq!(Geometry::stride_words(&l), 18);
        assert_eq!(Geometry::stride_words(&l.inline(72)), 27);
        assert_eq!(Geometry::stride_words(&l.fill_slot(256)), 32);
        let g = Geometry::new(Geometry::normalize(l.inline(72)).unwrap(), 0, 0, [0; 3], 0);
        // The first line holds seq, the dir-0/1 links, dir 0's key and the location.
        assert_eq!((g.link_at[0], g.key_at[0], g.loc_at), (1, 2, 7));
        assert_eq!(
            (g.key_at[1], g.aux_at, g.link_at[1], g.key_at[2]),
            (8, 13, 14, 15)
        );
        assert_eq!((g.inline_at, g.inline_bytes), (18, 72));
        // A route: 7 fixed words; 72 inline bytes fill two lines.
        let r = MapLayout::new(8).key(3, true);
        assert_eq!(Geometry::fixed_words(&r), 7);
        assert_eq!(Geometry::stride_words(&r), 7);
        assert_eq!(Geometry::stride_words(&r.inline(72)), 16);
        assert_eq!(Geometry::slot_align(16), 128);
        assert_eq!(Geometry::slot_align(27), 64);
        assert_eq!(Geometry::slot_align(7), 64);
        assert_eq!(Geometry::slot_align(1024), 4096);
        // The inline size is rounded up to words.
        assert_eq!(Geometry::normalize(r.inline(3)).unwrap().inline_bytes, 8);
        assert!(Geometry::normalize(r.inline(MAX_INLINE as u32 + 1)).is_err());
    }
}
