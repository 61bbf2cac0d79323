//! Conntrack reads: get by tuple (one, or many at once with their cache misses overlapped:
//! [`CtReader::get_many`]), walks filtered by family, zone, mark and source address.
//!
//! | filter | how |
//! |---|---|
//! | original source address ([`CtFilter::src`]) | the map's address index (direction 2, [`ct_addr_keys`](crate::schema::ct_addr_keys)): only the entries of that address are read, from its 16 chains at once |
//! | family, zone, mark | a walk of the whole table; zone and family from the entry's key words (no record read is wasted on them), mark from the record's `CTA_MARK` |

use std::net::IpAddr;

use nlkit_shm::{Entry, MapReader, RegionView, Slot, Walk};
use nlkit_table::{ConnKey, TableKey};
use nlkit_wire::consts::{AF_INET, AF_INET6, CTA_MARK};
use nlkit_wire::Attrs;

use crate::ct_pack::{room_for, stored_attrs, unpack_into, unpack_placed};
use crate::error::{Result, ViewError};
use crate::schema::{ct_addr_keys, CtAux};
use crate::{MirrorView, TableId};

/// A conntrack entry as the view found it (its message went to the caller's buffer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CtFound {
    /// The original tuple (with its zone).
    pub original: ConnKey,
    /// The reply tuple.
    pub reply: ConnKey,
    /// Which tuple the lookup matched: 0 original, 1 reply (0 for walks).
    pub dir: usize,
    /// The mirror's aux word of the entry.
    pub aux: CtAux,
    /// The entry's slot and generation: together they name this version of the entry.
    pub slot: Slot,
    /// See [`slot`](Self::slot).
    pub generation: u64,
}

impl CtFound {
    #[inline]
    fn of(e: &Entry) -> CtFound {
        CtFound {
            original: tuple(&e.keys[0]),
            reply: tuple(&e.keys[1]),
            dir: e.dir,
            aux: CtAux::from_word(e.aux),
            slot: e.slot,
            generation: e.generation,
        }
    }
}

/// The tuple in an entry's key words.
#[inline]
fn tuple(words: &[u64; nlkit_shm::map::MAX_KEY_WORDS]) -> ConnKey {
    let mut w = [0u64; 5];
    w.copy_from_slice(&words[..5]);
    ConnKey::from_words(&w)
}

/// What a conntrack walk keeps (all `None`: every entry).
///
/// | filter | how |
/// |---|---|
/// | original source address ([`src`](Self::src)) | the map's address index (direction 2, [`ct_addr_keys`](crate::schema::ct_addr_keys)): only that address's entries are read |
/// | family, zone, mark | a walk of the whole table; zone and family from the entry's key words, mark from the record's `CTA_MARK` (read packed, before unpacking) |
///
/// ```
/// use nlkit_view::CtFilter;
/// let f = CtFilter { zone: Some(3), ..Default::default() };
/// assert!(f.src.is_none());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CtFilter {
    /// `AF_INET` or `AF_INET6` (of the original tuple); `None` or `AF_UNSPEC`: both.
    pub family: Option<u8>,
    /// The original tuple's zone.
    pub zone: Option<u16>,
    /// `(mark, mask)`: entries whose `CTA_MARK & mask == mark & mask` (no `CTA_MARK`: 0).
    pub mark: Option<(u32, u32)>,
    /// The original tuple's source address (uses the address index).
    pub src: Option<IpAddr>,
}

impl CtFilter {
    /// Whether the entry passes every filter: its tuples, and the mark of its packed record
    /// `packed` (read before anything is unpacked).
    #[inline]
    fn keeps(&self, found: &CtFound, packed: &[u8]) -> bool {
        self.keys_match(&found.original)
            && self
                .mark
                .is_none_or(|(mark, mask)| mark_of(packed, found.aux.dropped) & mask == mark & mask)
    }

    /// Whether the tuples pass the family, zone and address filters.
    #[inline]
    fn keys_match(&self, orig: &ConnKey) -> bool {
        let fam_ok = match self.family {
            Some(AF_INET) => orig.src.is_ipv4(),
            Some(AF_INET6) => orig.src.is_ipv6(),
            _ => true,
        };
        fam_ok && self.zone.is_none_or(|z| orig.zone == z) && self.src.is_none_or(|a| orig.src == a)
    }
}

/// `CTA_MARK` of a packed record (0 without one).
fn mark_of(stored: &[u8], dropped: u16) -> u32 {
    Attrs::new(stored_attrs(stored, dropped))
        .map_while(|a| a.ok())
        .find(|a| a.ty() == CTA_MARK)
        .and_then(|a| a.be32().ok())
        .unwrap_or(0)
}

/// The conntrack table of a [`MirrorView`], opened once for many lookups
/// ([`MirrorView::ct_reader`]). Borrows the view; `Send + Sync`.
///
/// ```no_run
/// use nlkit_table::ConnKey;
/// let view = nlkit_view::MirrorView::open("/run/nlkit/mirror.sock")?;
/// let ct = view.ct_reader()?;
/// let mut msg = Vec::new();
/// for port in 1000..1100 {
///     msg.clear();
///     let t = ConnKey::new("10.0.0.1".parse().unwrap(), port, "10.0.0.2".parse().unwrap(), 53, 17);
///     if ct.get(&t, &mut msg)?.is_some() {
///         println!("{port}: {} bytes", msg.len());
///     }
/// }
/// # Ok::<(), nlkit_view::ViewError>(())
/// ```
#[derive(Debug)]
pub struct CtReader<'v> {
    map: MapReader<'v, RegionView>,
}

impl CtReader<'_> {
    /// The entry with `tuple` as its original or reply tuple; see [`MirrorView::ct_get`].
    pub fn get(&self, tuple: &ConnKey, out: &mut Vec<u8>) -> Result<Option<CtFound>> {
        let key = tuple.to_words();
        let base = out.len();
        // Room for the header and tuple nests the mirror dropped (as `pack` drops them from
        // a connection of this tuple's kind), then the record straight after it: one copy out
        // of the mapping, into its final place, and nothing moved or read again after it.
        let room = room_for(tuple);
        out.resize(base + room, 0);
        let Some(e) = self.map.get_first(&[0, 1], &key, out).map_err(|e| {
            out.truncate(base);
            ViewError::shm(e)
        })?
        else {
            out.truncate(base);
            return Ok(None);
        };
        let found = CtFound::of(&e);
        unpack_placed(
            out,
            base,
            room,
            found.aux.dropped,
            &found.original,
            &found.reply,
        );
        Ok(Some(found))
    }

    /// Looks many tuples up at once, each as [`get`](Self::get) (original or reply tuple):
    /// `f(i, result, message)` for every `tuples[i]`, in order, with the entry found (or
    /// `Ok(None)`, or the error of that lookup) and the kernel's message for it (empty when
    /// none). Groups of [`nlkit_shm::map::BATCH`] lookups run together
    /// ([`MapReader::get_batch`]): their cache and TLB misses overlap, so over a large table
    /// a lookup costs a fraction of a single [`get`](Self::get). Use it when there are many
    /// lookups to make at once (an exporter enriching a batch of flow records, a policy
    /// check of many connections); a single lookup gains nothing. `buf` is scratch space
    /// (grown once, never shrunk); nothing is allocated per tuple.
    ///
    /// ```no_run
    /// use nlkit_table::ConnKey;
    /// let view = nlkit_view::MirrorView::open("/run/nlkit/mirror.sock")?;
    /// let tuples: Vec<ConnKey> = (1000..1100)
    ///     .map(|p| ConnKey::new("10.0.0.1".parse().unwrap(), p, "10.0.0.2".parse().unwrap(), 53, 17))
    ///     .collect();
    /// let mut buf = Vec::new();
    /// view.ct_reader()?.get_many(&tuples, &mut buf, |i, found, msg| {
    ///     if let Ok(Some(_)) = found {
    ///         println!("{}: {} bytes", tuples[i].src_port, msg.len());
    ///     }
    /// });
    /// # Ok::<(), nlkit_view::ViewError>(())
    /// ```
    pub fn get_many(
        &self,
        tuples: &[ConnKey],
        buf: &mut Vec<u8>,
        mut f: impl FnMut(usize, Result<Option<CtFound>>, &[u8]),
    ) {
        use nlkit_shm::map::BATCH;
        for (g, group) in tuples.chunks(BATCH).enumerate() {
            let mut keys = [[0u64; 5]; BATCH];
            // Each record is read in after room for what the mirror dropped from it (as in
            // `get`); the callback of key i opens the room of key i + 1.
            let mut rooms = [0usize; BATCH + 1];
            for ((k, r), t) in keys.iter_mut().zip(&mut rooms).zip(group) {
                *k = t.to_words();
                *r = room_for(t);
            }
            let room = |i: usize| rooms[i];
            buf.clear();
            buf.resize(room(0), 0);
            self.map
                .get_batch(&[0, 1], &keys[..group.len()], buf, |i, got, buf| {
                    let r = room(i);
                    match got {
                        Ok(Some(e)) => {
                            let found = CtFound::of(&e);
                            unpack_placed(
                                buf,
                                0,
                                r,
                                found.aux.dropped,
                                &found.original,
                                &found.reply,
                            );
                            f(g * BATCH + i, Ok(Some(found)), buf);
                        }
                        Ok(None) => f(g * BATCH + i, Ok(None), &[]),
                        Err(e) => f(g * BATCH + i, Err(ViewError::shm(e)), &[]),
                    }
                    buf.clear();
                    buf.resize(room(i + 1), 0);
                });
        }
        buf.clear();
    }
}

impl MirrorView {
    /// The conntrack entry with `tuple` as its original or its reply tuple (with the zone):
    /// appends the kernel's message for it to `out`, byte for byte what the mirror's socket
    /// serves for it. One lookup (two when the tuple is a reply tuple: both bucket heads
    /// are loaded first, so their misses overlap), no system call, no allocation beyond
    /// growing `out` once: the record is copied out of the mapping once, straight after room
    /// for the header and tuple nests the mirror dropped, which are then written there
    /// ([`ct_pack::unpack_placed`](crate::ct_pack::unpack_placed)).
    /// [`ct_reader`](Self::ct_reader) saves the table's reader being made per lookup.
    ///
    /// ```no_run
    /// use nlkit_table::ConnKey;
    /// let view = nlkit_view::MirrorView::open("/run/nlkit/mirror.sock")?;
    /// let t = ConnKey::new("10.0.0.1".parse().unwrap(), 1000, "10.0.0.2".parse().unwrap(), 53, 17);
    /// let mut msg = Vec::new();
    /// if let Some(found) = view.ct_get(&t, &mut msg)? {
    ///     println!("reply tuple {:?}, {} bytes", found.reply, msg.len());
    /// }
    /// # Ok::<(), nlkit_view::ViewError>(())
    /// ```
    pub fn ct_get(&self, tuple: &ConnKey, out: &mut Vec<u8>) -> Result<Option<CtFound>> {
        self.ct_reader()?.get(tuple, out)
    }

    /// Many conntrack lookups at once: [`CtReader::get_many`] (their misses overlap: use it
    /// when there are many tuples to look up together, such as an exporter's or a policy
    /// check's batch). Fails only when the table cannot be opened; each lookup's own result
    /// goes to `f`.
    ///
    /// ```no_run
    /// use nlkit_table::ConnKey;
    /// let view = nlkit_view::MirrorView::open("/run/nlkit/mirror.sock")?;
    /// let t = ConnKey::new("10.0.0.1".parse().unwrap(), 1000, "10.0.0.2".parse().unwrap(), 53, 17);
    /// let mut found = 0;
    /// view.ct_get_many(&[t, t.reverse()], &mut Vec::new(), |_, r, _msg| {
    ///     found += usize::from(matches!(r, Ok(Some(_))));
    /// })?;
    /// # Ok::<(), nlkit_view::ViewError>(())
    /// ```
    pub fn ct_get_many(
        &self,
        tuples: &[ConnKey],
        buf: &mut Vec<u8>,
        f: impl FnMut(usize, Result<Option<CtFound>>, &[u8]),
    ) -> Result<()> {
        self.ct_reader()?.get_many(tuples, buf, f);
        Ok(())
    }

    /// A handle on the conntrack table for many lookups in a row (validates the map's
    /// header once instead of per lookup, as [`ct_get`](Self::ct_get) does).
    pub fn ct_reader(&self) -> Result<CtReader<'_>> {
        Ok(CtReader {
            map: self.table(TableId::Conntrack)?,
        })
    }

    /// Calls `f` with every conntrack entry that `filter` keeps and its message (the
    /// kernel's bytes), until `f` returns false. With [`CtFilter::src`] only that address's
    /// entries are read (the address index), each version once even when the scan restarts
    /// (the chain changed under it); otherwise the whole table is walked. The message is
    /// rebuilt in one buffer reused for every entry.
    ///
    /// Cost of an address's listing: the index files an address's entries in
    /// [`CT_ADDR_LANES`](crate::schema::CT_ADDR_LANES) chains (`schema::ct_addr_key`), each of whose next
    /// links is in an entry's slot; the listing walks all of them taking turns
    /// (`MapReader::get_all_many`), so that many entries' misses are in flight together
    /// (the `ct_get` bench prints the scan and this walk per entry).
    pub fn ct_walk(
        &self,
        filter: &CtFilter,
        mut f: impl FnMut(&CtFound, &[u8]) -> bool,
    ) -> Result<Walk> {
        let map = self.table(TableId::Conntrack)?;
        match filter.src {
            Some(a) => {
                // Each version once: the scan checks what it handed out after a restart.
                let mut visited = 0;
                let before = map.changes().map_err(ViewError::shm)?;
                // Each record is read in after room for what the mirror dropped from it (as
                // `CtReader::get` does), the room of the entry before: an address's entries
                // are mostly of one kind, and a wrong guess only moves the record.
                let mut room = 0;
                let mut buf = Vec::with_capacity(512);
                map.get_all_many(2, &ct_addr_keys(a), &mut buf, |_, e, buf| {
                    visited += 1;
                    let (go, next_room) = index_visit(filter, e, room, buf, &mut f);
                    room = next_room;
                    // The room before the next record may hold any bytes: what this message
                    // left there does (no zeroing), unless it was shorter.
                    if buf.len() >= room {
                        buf.truncate(room);
                    } else {
                        buf.resize(room, 0);
                    }
                    go
                })
                .map_err(ViewError::shm)?;
                let after = map.changes().map_err(ViewError::shm)?;
                // The scan never skips: a chain it cannot read whole is an error.
                Ok(Walk {
                    visited,
                    consistent: before == after && before % 2 == 0,
                    skipped: 0,
                })
            }
            None => {
                let mut msg = Vec::with_capacity(512);
                let visit = |e: &Entry, packed: &[u8]| -> bool {
                    let found = CtFound::of(e);
                    if !filter.keeps(&found, packed) {
                        return true;
                    }
                    msg.clear();
                    unpack_into(
                        packed,
                        found.aux.dropped,
                        &found.original,
                        &found.reply,
                        &mut msg,
                    );
                    f(&found, &msg)
                };
                map.walk(visit).map_err(ViewError::shm)
            }
        }
    }

    /// Live conntrack entries (a momentary count, no walk).
    pub fn ct_count(&self) -> Result<u64> {
        self.table(TableId::Conntrack)?
            .count()
            .map_err(ViewError::shm)
    }
}

/// One entry of an address listing, read into `buf` after `room` bytes: the filters on the
/// keys and the mark, then the kernel's message rebuilt in place and handed to `f`. Returns
/// whether to go on, and the room to open before the next record (this entry's kind's).
fn index_visit(
    filter: &CtFilter,
    e: &Entry,
    room: usize,
    buf: &mut Vec<u8>,
    f: &mut impl FnMut(&CtFound, &[u8]) -> bool,
) -> (bool, usize) {
    let found = CtFound::of(e);
    let next_room = room_for(&found.original);
    if !filter.keeps(&found, &buf[room.min(buf.len())..]) {
        return (true, next_room);
    }
    unpack_placed(
        buf,
        0,
        room,
        found.aux.dropped,
        &found.original,
        &found.reply,
    );
    (f(&found, buf), next_room)
}
