//! [`Store`]: one mirror table — key → the kernel's message bytes, in shared memory.
//!
//! # Layout
//! A store is one [`SharedMap`] in the mirror's region (`nlkit_shm`): fixed-capacity,
//! type-stable slots on nulls-terminated chains, filed under one unique key
//! (`K::to_words()`), each holding the entry's record (inline in the slot when it fits the table's inline
//! area, else in the map's size-class heap) and an aux word. Clients map the region read-only and read the same memory (`nlkit-view`); the
//! mirror's own server reads it the same lock-free way. There is no second copy: the map is
//! the table. Slot arrays are sparse in tmpfs, so a large capacity costs memory only once its
//! slots are used.
//!
//! The record holds one or more complete Netlink messages (more than one only for IPv4
//! routes created with `ip route append`, which share a key), with their headers normalised
//! (flags, sequence number and port id zeroed) so they can be copied out as-is and patched for
//! each client. The aux word is the *generation* of the last dump or event that confirmed it:
//! a resync marks what the kernel still has and sweeps the rest.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use nlkit_shm::{InsertError, MapLayout, MapWriter, Region, SharedMap, ShmError};
use nlkit_table::{KeyWords, TableKey};
use nlkit_wire::{align, Message, MessageHeaderMut, Messages, NLMSG_HDRLEN};

use crate::keys::{StoreKey, TableId};
use nlkit_table::ChangeSeq;

/// An entry as read from the store: its generation and its message bytes (borrowed from a
/// read buffer).
///
/// ```
/// use nlkit_mirror::{LinkKey, Store};
/// let s: Store<LinkKey> = Store::new(16).unwrap();
/// assert!(s.with(&LinkKey { ifindex: 1 }, |e| e.generation()).is_none());
/// ```
#[derive(Debug, Clone, Copy)]
pub struct StoredEntry<'a> {
    gen: u64,
    msgs: &'a [u8],
}

impl<'a> StoredEntry<'a> {
    /// The entry's messages: complete, 4-byte aligned Netlink messages, back to back.
    pub fn messages(&self) -> &'a [u8] {
        self.msgs
    }

    /// The generation that last confirmed this entry.
    pub fn generation(&self) -> u64 {
        self.gen
    }

    /// Iterates over the entry's messages.
    pub fn iter(&self) -> Messages<'a> {
        Messages::new(self.msgs)
    }
}

/// Copies `msg` with its header normalised: flags, sequence number and port id zeroed, and
/// padded to a multiple of 4 bytes.
pub(crate) fn normalize(msg: &Message<'_>) -> Vec<u8> {
    let b = msg.bytes();
    let mut v = Vec::with_capacity(align(b.len()));
    normalize_into(msg, &mut v);
    v
}

/// Appends the normalised form of `msg` to `out`.
pub(crate) fn normalize_into(msg: &Message<'_>, out: &mut Vec<u8>) {
    let b = msg.bytes();
    let start = out.len();
    out.extend_from_slice(b);
    if let Ok(mut h) = MessageHeaderMut::new(&mut out[start..]) {
        h.set_flags(0);
        h.set_seq(0);
        h.set_pid(0);
    }
    out.resize(start + align(b.len()), 0);
}

/// Strips the 16-byte header: what two messages must share to be "the same object state".
pub(crate) fn body(msg: &[u8]) -> &[u8] {
    msg.get(NLMSG_HDRLEN..).unwrap_or(&[])
}

/// Debug check: `msgs` is the entry of `key`.
fn debug_assert_filed_under<K: StoreKey>(msgs: &[u8], key: K) {
    debug_assert_eq!(
        key_of::<K>(msgs),
        Some(key),
        "entry filed under its own key"
    );
}

/// The key an entry's bytes are filed under (that of its first message).
fn key_of<K: StoreKey>(msgs: &[u8]) -> Option<K> {
    let (m, _) = Message::parse(msgs).ok()?;
    K::of_message(&m)
}

/// Words of `K`'s key (`K::Words` is a `[u64; N]`).
fn key_words<K: TableKey>() -> u8 {
    (std::mem::size_of::<K::Words>() / 8) as u8
}

/// Live entries of `map`, read from its header without taking its writer mutex.
pub(crate) fn live(map: &SharedMap) -> usize {
    map.reader().count().unwrap_or(0) as usize
}

/// A capacity as a map takes it.
pub(crate) fn capacity_u32(capacity: usize) -> u32 {
    u32::try_from(capacity.max(1)).unwrap_or(u32::MAX)
}

/// `layout` with half as many buckets (per direction) as slots: chains of two on average
/// when full, half the bucket memory of one bucket per slot (every bucket page is touched
/// long before the table is full). The bucket count is in the map's header, so readers
/// follow it.
pub(crate) fn half_buckets(mut layout: MapLayout) -> MapLayout {
    layout.buckets = (layout.capacity / 2).max(64).next_power_of_two();
    layout
}

/// Counts and reports inserts refused for want of room.
#[derive(Debug, Default)]
pub(crate) struct Refusals {
    full: AtomicU64,
    warned: AtomicBool,
}

impl Refusals {
    pub(crate) fn count(&self) -> u64 {
        self.full.load(Ordering::Relaxed)
    }

    /// Records a refused insert or replace.
    pub(crate) fn refused(&self, e: &ShmError, capacity: u32, what: &'static str) {
        if matches!(e, ShmError::Full(_) | ShmError::TooLarge(_)) {
            self.full.fetch_add(1, Ordering::Relaxed);
            if !self.warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    table = what,
                    capacity,
                    error = %e,
                    "mirror table full: entries are being dropped; raise the capacity"
                );
            }
        } else {
            tracing::debug!(table = what, error = %e, "mirror insert refused");
        }
    }
}

/// One mirror table: `K` → [`StoredEntry`], with a [`ChangeSeq`] bumped on every change.
///
/// Concurrency contract: lookups, reads and walks take no lock (the map's validating
/// readers, `SharedMap::reader`). Every change — insert, replace, delete, a generation
/// mark — holds the map's writer mutex (`SharedMap::lock`, in this process only) for its
/// whole length, and every change a client can see is bracketed by `seq.write()` (a
/// generation mark on unchanged bytes is not).
///
/// ```
/// use nlkit_mirror::{LinkKey, Store};
/// let s: Store<LinkKey> = Store::new(16).unwrap();
/// assert!(s.is_empty());
/// ```
pub struct Store<K: StoreKey> {
    map: SharedMap,
    /// Bumped around every insert, replace and delete.
    pub seq: ChangeSeq,
    refusals: Refusals,
    name: &'static str,
    _key: PhantomData<fn() -> K>,
}

impl<K: StoreKey> Store<K> {
    /// A store for at most `capacity` entries, in a region of its own (the mirror puts all
    /// of its tables in one region, `Tables::new`).
    pub fn new(capacity: usize) -> Result<Self, ShmError> {
        let region = Arc::new(Region::create("store")?);
        let layout = MapLayout::new(capacity_u32(capacity)).key(key_words::<K>(), true);
        Self::with_layout(region, half_buckets(layout), "store")
    }

    /// The store of table `t` (laid out as `nlkit_view::schema::map_layout`) in `region`.
    pub(crate) fn create(
        region: &Arc<Region>,
        t: TableId,
        capacity: usize,
    ) -> Result<Self, ShmError> {
        let layout = nlkit_view::schema::map_layout(t, capacity_u32(capacity));
        if layout.key_words[0] != key_words::<K>() || layout.dirs() != 1 {
            return Err(ShmError::Corrupt("table key does not match its schema"));
        }
        Self::with_layout(region.clone(), half_buckets(layout), t.name())
    }

    fn with_layout(
        region: Arc<Region>,
        layout: MapLayout,
        name: &'static str,
    ) -> Result<Self, ShmError> {
        Ok(Store {
            map: SharedMap::create(region, layout)?,
            seq: ChangeSeq::default(),
            refusals: Refusals::default(),
            name,
            _key: PhantomData,
        })
    }

    /// The shared map holding the entries.
    pub(crate) fn map(&self) -> &SharedMap {
        &self.map
    }

    /// Number of entries (keys).
    ///
    /// Lock-free (the map's published count), so a long sweep does not hold it up.
    pub fn len(&self) -> usize {
        live(&self.map)
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Inserts refused because the table was full.
    pub fn full_count(&self) -> u64 {
        self.refusals.count()
    }

    /// Appends the entry's bytes to `out`; returns its generation.
    pub(crate) fn read_into(&self, key: &K, out: &mut Vec<u8>) -> Option<u64> {
        let start = out.len();
        match self.map.reader().get(0, key.to_words().words(), out) {
            Ok(Some(e)) => Some(e.aux),
            Ok(None) => {
                out.truncate(start);
                None
            }
            Err(e) => {
                out.truncate(start);
                tracing::warn!(?key, error = %e, "mirror entry could not be read; not served");
                None
            }
        }
    }

    /// A copy of the entry's message bytes.
    pub fn get_bytes(&self, key: &K) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        self.read_into(key, &mut out).map(|_| out)
    }

    /// Calls `f` with the entry (read into a private buffer).
    pub fn with<R>(&self, key: &K, f: impl FnOnce(StoredEntry<'_>) -> R) -> Option<R> {
        let mut out = Vec::new();
        let gen = self.read_into(key, &mut out)?;
        Some(f(StoredEntry { gen, msgs: &out }))
    }

    /// Calls `f` with every entry, in slot order, until it returns `false` (lock-free; an
    /// entry changed meanwhile may be seen in its old state or its new state, one changed
    /// and moved may be missed or seen twice: pair with [`Store::seq`] for a consistent
    /// pass).
    ///
    /// Returns whether the walk was complete: false when it may have missed an entry that
    /// was there throughout (a slot the writer kept in the middle of a change for the walk's
    /// whole wait, see [`Walk::skipped`](nlkit_shm::Walk::skipped), or a failed walk). A dump
    /// built from an incomplete walk must be flagged interrupted.
    pub fn for_each(&self, mut f: impl FnMut(StoredEntry<'_>) -> bool) -> bool {
        let r = self
            .map
            .reader()
            .walk(|e, msgs| f(StoredEntry { gen: e.aux, msgs }));
        walk_complete(self.name, r)
    }

    /// Sets `key`'s messages to `msgs`, marked with `gen`. When the stored bytes are the same,
    /// only the mark is updated and no change is counted. Returns whether the table changed.
    pub(crate) fn put(&self, key: K, msgs: Vec<u8>, gen: u64) -> bool {
        debug_assert_filed_under(&msgs, key);
        let words = key.to_words();
        let mut w = self.map.lock();
        if let Some(slot) = w.find(0, words.words()) {
            let mut cur = Vec::with_capacity(msgs.len());
            w.record(slot, &mut cur);
            if cur == msgs {
                if w.aux(slot) < gen {
                    w.set_aux(slot, gen);
                }
                return false;
            }
            let _g = self.seq.write();
            return match w.replace(slot, gen, &msgs) {
                Ok(()) => true,
                Err(e) => {
                    self.refusals.refused(&e, self.capacity(), self.name);
                    false
                }
            };
        }
        // `None` (exists) is ruled out by `find` under the lock.
        self.insert_locked(&mut w, words.words(), gen, &msgs) == Some(true)
    }

    /// Dump fast path: inserts `key` if it is absent, without comparing. Gives the bytes back
    /// when the key exists.
    pub(crate) fn insert_new(&self, key: K, msgs: Vec<u8>, gen: u64) -> Result<(), Vec<u8>> {
        debug_assert_filed_under(&msgs, key);
        let words = key.to_words();
        let mut w = self.map.lock();
        if w.find(0, words.words()).is_some() {
            return Err(msgs);
        }
        match self.insert_locked(&mut w, words.words(), gen, &msgs) {
            None => Err(msgs),
            Some(_) => Ok(()),
        }
    }

    /// Inserts a new entry under the writer lock `w`, counting a change. Returns `Some(true)`
    /// when inserted, `Some(false)` when the map refused it (counted in the refusals), `None`
    /// when the key exists.
    fn insert_locked(
        &self,
        w: &mut MapWriter<'_>,
        words: &[u64],
        gen: u64,
        msgs: &[u8],
    ) -> Option<bool> {
        let _g = self.seq.write();
        match w.insert(&[words], gen, msgs) {
            Ok(_) => Some(true),
            Err(InsertError::Exists { .. }) => None,
            Err(InsertError::Shm(e)) => {
                self.refusals.refused(&e, self.capacity(), self.name);
                Some(false)
            }
        }
    }

    fn capacity(&self) -> u32 {
        self.map.reader().layout().capacity
    }

    /// Removes `key`; returns whether it was present.
    pub(crate) fn remove(&self, key: &K) -> bool {
        let mut w = self.map.lock();
        let Some(slot) = w.find(0, key.to_words().words()) else {
            return false;
        };
        let _g = self.seq.write();
        w.remove(slot);
        true
    }

    /// Removes every entry not confirmed at generation `gen` or later for which `scope`
    /// returns true; returns how many were removed.
    pub(crate) fn sweep(
        &self,
        gen: u64,
        mut scope: impl FnMut(&K, StoredEntry<'_>) -> bool,
    ) -> usize {
        self.remove_where(|k, e| e.gen < gen && scope(k, e))
    }

    /// Removes every entry for which `pred` returns true; returns how many were removed.
    pub(crate) fn remove_where(&self, mut pred: impl FnMut(&K, StoredEntry<'_>) -> bool) -> usize {
        let mut w = self.map.lock();
        // The writer's own walk: nothing changes the map while its mutex is held.
        let mut doomed = Vec::new();
        let r = self.map.reader().walk(|e, msgs| {
            if let Some(k) = key_of::<K>(msgs) {
                if pred(&k, StoredEntry { gen: e.aux, msgs }) {
                    doomed.push(e.slot);
                }
            }
            true
        });
        if let Err(e) = r {
            tracing::warn!(table = self.name, error = %e, "mirror table walk failed");
        }
        for slot in &doomed {
            let _g = self.seq.write();
            w.remove(*slot);
        }
        doomed.len()
    }

    /// Bytes of shared memory the table uses (slots touched, buckets, record blocks).
    pub fn memory_bytes(&self) -> usize {
        self.map.memory_bytes()
    }
}

impl<K: StoreKey> std::fmt::Debug for Store<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("table", &self.name)
            .field("len", &self.len())
            .finish()
    }
}

/// Whether a walk of a mirror table saw every entry that was there throughout (logged when
/// not: a skipped slot or a failed walk).
pub(crate) fn walk_complete(table: &str, r: Result<nlkit_shm::Walk, nlkit_shm::ShmError>) -> bool {
    match r {
        Ok(w) if w.skipped == 0 => true,
        Ok(w) => {
            tracing::debug!(
                table,
                skipped = w.skipped,
                "mirror table walk skipped slots mid-change"
            );
            false
        }
        Err(e) => {
            tracing::warn!(table, error = %e, "mirror table walk failed");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::LinkKey;
    use nlkit_wire::consts::*;
    use nlkit_wire::{IfInfoMsg, MessageBuilder};

    fn link(index: i32, mtu: u32) -> Vec<u8> {
        let mut b = MessageBuilder::new();
        b.begin(RTM_NEWLINK, 0, 0);
        b.header(&IfInfoMsg {
            index,
            ..Default::default()
        });
        b.attr_u32(IFLA_MTU, mtu);
        b.finish().unwrap();
        b.as_bytes().to_vec()
    }

    #[test]
    fn put_same_bytes_is_not_a_change() {
        let s: Store<LinkKey> = Store::new(8).unwrap();
        let k = LinkKey { ifindex: 1 };
        assert!(s.put(k, link(1, 1500), 1));
        let before = s.seq.changes();
        assert!(!s.put(k, link(1, 1500), 2));
        assert_eq!(s.seq.changes(), before);
        assert_eq!(s.with(&k, |e| e.generation()), Some(2));
        assert_eq!(s.sweep(3, |_, _| true), 1);
        assert!(s.is_empty());
    }

    #[test]
    fn churn_keeps_every_entry_and_bounds_memory() {
        let s: Store<LinkKey> = Store::new(4096).unwrap();
        for round in 0..80u32 {
            for i in 1..=2000 {
                let k = LinkKey { ifindex: i };
                if (i + round) % 7 == 0 {
                    s.remove(&k);
                } else {
                    s.put(k, link(i as i32, 1000 + round), u64::from(round) + 1);
                }
            }
        }
        let mut n = 0;
        s.for_each(|e| {
            let (m, _) = Message::parse(e.messages()).unwrap();
            let k = LinkKey::from_msg(&m).unwrap();
            assert_eq!(s.get_bytes(&k).as_deref(), Some(e.messages()));
            n += 1;
            true
        });
        assert_eq!(n, s.len());
        // 2,000 live entries of 32 bytes: slots and record blocks are reused (one heap chunk
        // of 1 MiB), not 80 rounds' worth (5 MB).
        assert!(s.memory_bytes() < 2 << 20, "{}", s.memory_bytes());
        assert_eq!(s.remove_where(|_, _| true), n);
        assert!(s.is_empty());
    }

    #[test]
    fn a_walk_that_skips_an_entry_mid_change_is_incomplete() {
        let s: Store<LinkKey> = Store::new(8).unwrap();
        for i in 1..=3 {
            s.put(LinkKey { ifindex: i }, link(i as i32, 1500), 1);
        }
        let mut w = s.map.lock();
        let words = LinkKey { ifindex: 2 }.to_words();
        let slot = w.find(0, words.words()).unwrap();
        // As a writer descheduled inside a generation-only change (`put` of the same bytes),
        // which counts in no change sequence: only the walk can tell.
        let before = s.seq.changes();
        let (complete, n) = w.with_slot_mid_change(slot, || {
            let mut n = 0;
            let complete = s.for_each(|_| {
                n += 1;
                true
            });
            (complete, n)
        });
        assert_eq!((complete, n), (false, 2));
        assert_eq!(s.seq.changes(), before);
        drop(w);
        assert!(s.for_each(|_| true));
    }

    #[test]
    fn a_full_table_refuses_and_counts() {
        let s: Store<LinkKey> = Store::new(4).unwrap();
        for i in 1..=5 {
            s.put(LinkKey { ifindex: i }, link(i as i32, 1500), 1);
        }
        assert_eq!(s.len(), 4);
        assert_eq!(s.full_count(), 1);
        // A key that is present is still replaced.
        assert!(s.put(LinkKey { ifindex: 1 }, link(1, 9000), 2));
        assert_eq!(s.get_bytes(&LinkKey { ifindex: 1 }), Some(link(1, 9000)));
        assert_eq!(
            s.insert_new(LinkKey { ifindex: 1 }, link(1, 1), 3),
            Err(link(1, 1))
        );
    }
}
