//! The link word encoding of chains (see the protocol notes in the parent module).

/// The top bits of a link word are not part of the link. In a bucket head they are the
/// chain's *summary*: the OR of the key bits ([`RawTable::locate`]) of its nodes, so a lookup
/// whose key bit is clear there knows the key is absent without reading any slot (for an
/// absent key that saves the slot's cache miss three times in four). In a node's `next`
/// they are the key bits of the nodes after it, from which writers recompute the summary on
/// unlink without walking the rest of the chain.
pub(super) const TAG_SHIFT: u32 = 28;
/// The link part of a link word (node or nulls marker).
const LINK_MASK: u32 = (1 << TAG_SHIFT) - 1;
/// The summary (head) or key-bit (node) part of a link word.
pub(super) const TAGS: u32 = !LINK_MASK;
/// Most buckets: a nulls marker `bucket << 1 | 1` must fit under [`TAG_SHIFT`].
pub(super) const MAX_BUCKETS: u32 = 1 << (TAG_SHIFT - 1);

/// The link part of a link word.
#[inline]
pub(crate) fn link_of(word: u32) -> u32 {
    word & LINK_MASK
}
#[inline]
pub(crate) fn is_nulls(link: u32) -> bool {
    link & 1 == 1
}
#[inline]
pub(super) fn nulls(bucket: u32) -> u32 {
    bucket << 1 | 1
}
#[inline]
pub(crate) fn node(idx: u32, dir: usize) -> u32 {
    idx << 2 | (dir as u32) << 1
}
/// Slot index and direction of a node link (tags, if any, ignored).
#[inline]
pub(crate) fn decode(link: u32) -> (u32, usize) {
    (link_of(link) >> 2, ((link >> 1) & 1) as usize)
}
