//! What the mirror and its clients agree on about the shared region: where each table is, the
//! shape of each table's map, the conntrack address index, and the socket message that hands
//! the region over.
//!
//! | object | directory id | keys (directions) | record |
//! |---|---|---|---|
//! | a table `t` but rules and conntrack | [`table_object`]`(t)` | the table's key ([`keys`](crate::keys)), unique | the entry's normalised messages, back to back |
//! | rules (per family) | [`table_object`]`(t)` | `[rank]`, unique; a walk sorted by rank is the kernel's order | one normalised message |
//! | conntrack | [`table_object`]`(Conntrack)` | original tuple, reply tuple (unique, 5 words each); [`ct_addr_key`]: the original source and one of [`CT_ADDR_LANES`] lanes (not unique) | the packed message ([`ct_pack`](crate::ct_pack)); [`CtAux`] in the aux word |
//! | the change feed | [`FEED_OBJECT`] | — (a `nlkit_shm::FeedRing`, see below) | the change's normalised messages; [`FeedTag`] in the tag word |
//!
//! **The change feed ring** (`nlkit_shm::FeedReader::open(mem, find(FEED_OBJECT))`): one entry
//! per change of the mirror's feed, published in batches (one publish per batch the sync
//! thread applies). An entry's position is the change's position in the socket feed
//! (`nlkit_wire::feed::FeedMark::position`), so a client may resume over the socket from the
//! last position it read in the ring, or follow the ring from a position the socket sent. The
//! ring's stamp (`FeedReader::stamp`) is the mirror's feed epoch (`FeedMark::epoch`). An
//! entry's bytes are the change's kernel-format messages, back to back, with sequence number
//! and port id zeroed and the kernel's flags kept (what a socket subscriber receives, without
//! the feed attribute); its tag word is a [`FeedTag`]. A change too large for the ring is an
//! entry with no bytes and [`FeedTag::truncated`] set (read it over the socket).
//!
//! ```
//! use nlkit_view::schema::{map_layout, table_object};
//! use nlkit_view::TableId;
//! assert_ne!(table_object(TableId::Links), table_object(TableId::Routes4));
//! assert_eq!(map_layout(TableId::Conntrack, 1024).dirs(), 3);
//! ```

use std::net::IpAddr;

use nlkit_shm::MapLayout;

use crate::TableId;

/// The directory id of table `t`'s map.
pub const fn table_object(t: TableId) -> u64 {
    0x6e6c_0000 | t as u64
}

/// The directory id of the change-feed ring.
pub const FEED_OBJECT: u64 = 0x6e6c_0100;

/// What a change in the feed ring does: the tag word of each entry (see the module docs).
///
/// Bits 0–7: the table (`TableId as u8`); bits 8–9: the kind (1 [`FeedKind::New`], 2
/// [`FeedKind::Del`]); bit 16: synthesized by the mirror (`nlkit_wire::feed::FEED_SYNTHESIZED`
/// on the socket); bit 17: truncated (the entry carries no bytes); bits 32–63: the low 32 bits
/// of the mirror's feed epoch (the ring's stamp holds all of it).
///
/// ```
/// use nlkit_view::schema::{FeedKind, FeedTag};
/// use nlkit_view::TableId;
/// let t = FeedTag { table: TableId::Routes4, kind: FeedKind::Del, synthesized: true, truncated: false, epoch: 7 };
/// assert_eq!(FeedTag::from_word(t.to_word()), Some(t));
/// assert_eq!(FeedTag::from_word(0xff), None); // no such table
/// for table in TableId::ALL {
///     let t = FeedTag { table, kind: FeedKind::New, synthesized: false, truncated: true, epoch: !0 };
///     assert_eq!(FeedTag::from_word(t.to_word()), Some(t));
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedTag {
    /// The table changed.
    pub table: TableId,
    /// Added or changed, or removed.
    pub kind: FeedKind,
    /// Synthesized by the mirror (a resync's difference, a deletion the kernel did not
    /// announce), not a kernel event.
    pub synthesized: bool,
    /// Too large for the ring: the entry has no bytes (read the change over the socket).
    pub truncated: bool,
    /// The low 32 bits of the mirror's feed epoch.
    pub epoch: u32,
}

/// The kind of a change in the feed ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedKind {
    /// A new or changed object (`RTM_NEW*`, `IPCTNL_MSG_CT_NEW`; for conntrack,
    /// `NLM_F_CREATE` in the message tells new from updated).
    New,
    /// A removed object (`RTM_DEL*`, `IPCTNL_MSG_CT_DELETE`).
    Del,
}

const TAG_SYNTHESIZED: u64 = 1 << 16;
const TAG_TRUNCATED: u64 = 1 << 17;

impl FeedTag {
    /// Packs into a tag word.
    pub fn to_word(self) -> u64 {
        let kind: u64 = match self.kind {
            FeedKind::New => 1,
            FeedKind::Del => 2,
        };
        u64::from(self.table as u8)
            | kind << 8
            | if self.synthesized { TAG_SYNTHESIZED } else { 0 }
            | if self.truncated { TAG_TRUNCATED } else { 0 }
            | u64::from(self.epoch) << 32
    }

    /// Unpacks a tag word; `None` when it names no table or no kind (the word comes from
    /// shared memory: any value is possible).
    pub fn from_word(w: u64) -> Option<FeedTag> {
        let table = *TableId::ALL.get(usize::from(w as u8))?;
        let kind = match (w >> 8) & 3 {
            1 => FeedKind::New,
            2 => FeedKind::Del,
            _ => return None,
        };
        Some(FeedTag {
            table,
            kind,
            synthesized: w & TAG_SYNTHESIZED != 0,
            truncated: w & TAG_TRUNCATED != 0,
            epoch: (w >> 32) as u32,
        })
    }
}

/// Netlink message type of the request for the region (no payload) and of its answer, which
/// carries [`MAP_VERSION`] (a `u32`) and the region's memfd (`SCM_RIGHTS`). A peer of another
/// uid than the mirror's (other than root) is answered `EPERM` and gets no fd.
pub const MSG_MAP: u16 = 0x7ff1;

/// The layout version the answer to [`MSG_MAP`] names.
pub const MAP_VERSION: u32 = 3;

/// Key words of table `t`'s first direction.
pub fn key_words(t: TableId) -> u8 {
    match t {
        TableId::Links | TableId::Nexthops | TableId::Rules4 | TableId::Rules6 => 1,
        TableId::Addrs4
        | TableId::Addrs6
        | TableId::Routes4
        | TableId::Neigh4
        | TableId::Neigh6 => 3,
        TableId::Routes6 => 6,
        TableId::Conntrack => 5,
    }
}

/// The map layout of table `t` with room for `capacity` entries.
///
/// Each table's slots are sized so that a typical record fits in the slot itself (nlkit-shm's
/// inline area: a lookup then takes no further cache miss for the record), at no more memory
/// than a heap block would take: conntrack 216 bytes (72 bytes inline: a packed IPv4 entry is
/// 68–72), IPv4 routes, addresses and neighbours 128 (72 inline; a typical IPv4 route message
/// is 52–76 bytes), IPv6 routes 256 (176 inline), nexthops and rules 128 (88 inline). Links,
/// whose messages are about a kilobyte, keep theirs in the heap. See nlkit-shm's DESIGN.md
/// §3.1 for the memory this costs.
pub fn map_layout(t: TableId, capacity: u32) -> MapLayout {
    let l = MapLayout::new(capacity).key(key_words(t), true);
    match t {
        TableId::Conntrack => l.key(5, true).key(3, false).fill_slot(216),
        TableId::Routes6 => l.fill_slot(256),
        TableId::Routes4
        | TableId::Addrs4
        | TableId::Addrs6
        | TableId::Neigh4
        | TableId::Neigh6
        | TableId::Nexthops
        | TableId::Rules4
        | TableId::Rules6 => l.fill_slot(128),
        TableId::Links => l,
    }
}

/// Keys an address's entries are spread over in the conntrack address index
/// ([`ct_addr_key`]): a listing walks this many chains at once, taking turns, so that their
/// cache misses overlap (`nlkit_shm::MapReader::get_all_many`) where one chain makes every
/// entry a dependent miss away from the previous one.
pub const CT_ADDR_LANES: usize = 16;

/// The key the mirror files a conntrack entry under in the address index: its original
/// source address and its lane (one of [`CT_ADDR_LANES`], from a fixed mix of the original
/// tuple's words, the same in every process).
///
/// ```
/// use nlkit_table::ConnKey;
/// use nlkit_view::schema::{ct_addr_key, ct_addr_keys};
/// let t = ConnKey::new("10.0.0.1".parse().unwrap(), 1000, "10.0.0.2".parse().unwrap(), 53, 17);
/// assert!(ct_addr_keys(t.src).contains(&ct_addr_key(&t)));
/// assert!(!ct_addr_keys("::a00:1".parse().unwrap()).contains(&ct_addr_key(&t)));
/// ```
pub fn ct_addr_key(orig: &nlkit_table::ConnKey) -> [u64; 3] {
    use nlkit_table::TableKey;
    let w = orig.to_words();
    let mut h = 0u64;
    for x in w {
        h = (h ^ x).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h ^= h >> 29;
    }
    addr_key(orig.src, (h >> 32) as usize % CT_ADDR_LANES)
}

/// Every key [`ct_addr_key`] files the entries of original source `addr` under, one per
/// lane.
pub fn ct_addr_keys(addr: IpAddr) -> [[u64; 3]; CT_ADDR_LANES] {
    std::array::from_fn(|lane| addr_key(addr, lane))
}

/// `addr` in lane `lane`: the address's words, then its family and the lane.
fn addr_key(addr: IpAddr, lane: usize) -> [u64; 3] {
    let lane = (lane as u64) << 8;
    match addr {
        IpAddr::V4(a) => [0, u64::from(u32::from(a)), 4 | lane],
        IpAddr::V6(a) => {
            let x = u128::from(a);
            [(x >> 64) as u64, x as u64, 6 | lane]
        }
    }
}

/// The aux word of a conntrack entry: what [`ct_pack::unpack_into`](crate::ct_pack::unpack_into)
/// needs (`dropped`), the offset of `CTA_TIMEOUT`'s value, and the mirror's own bits.
///
/// ```
/// use nlkit_view::schema::CtAux;
/// let a = CtAux { dropped: 104, timeout_off: 40, flags: 1, gen: 9 };
/// assert_eq!(CtAux::from_word(a.to_word()), a);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CtAux {
    /// What `ct_pack::pack` dropped (0: stored whole).
    pub dropped: u16,
    /// Offset of `CTA_TIMEOUT`'s 4-byte value in the unpacked message (0: none).
    pub timeout_off: u16,
    /// The mirror's flags (bit 0: silent, see the mirror's `ct_silent`).
    pub flags: u8,
    /// Low 24 bits of the generation that last confirmed the entry (the mirror's).
    pub gen: u32,
}

impl CtAux {
    /// Packs into a word.
    pub fn to_word(self) -> u64 {
        u64::from(self.dropped)
            | u64::from(self.timeout_off) << 16
            | u64::from(self.flags) << 32
            | u64::from(self.gen & 0xff_ffff) << 40
    }
    /// Unpacks a word (any word is some `CtAux`).
    pub fn from_word(w: u64) -> Self {
        CtAux {
            dropped: w as u16,
            timeout_off: (w >> 16) as u16,
            flags: (w >> 32) as u8,
            gen: (w >> 40) as u32,
        }
    }
}
