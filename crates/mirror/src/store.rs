//! [`Store`]: one mirror table — key → the kernel's message bytes — on the nulls table.
//!
//! Each [`Entry`] holds one or more complete Netlink messages (more than one only for IPv4
//! routes created with `ip route append`, which share a key), with their headers normalised
//! (flags, sequence number and port id zeroed) so they can be copied out as-is and patched for
//! each client. The entry also records the *generation* of the last dump or event that
//! confirmed it: a resync marks what the kernel still has and sweeps the rest.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use nlkit_table::{InsertErrorKind, NullsTable, TableKey};
use nlkit_wire::{align, Message, Messages, NLMSG_HDRLEN};

use crate::render::{RenderCache, Rendered};
use nlkit_table::{ChangeSeq, SeqSnapshot};

/// A table entry: the kernel's message(s) for one key.
///
/// Concurrency contract: `msgs` is immutable for the entry's life (an update installs a new
/// entry; readers holding the old one keep a consistent snapshot). `gen` is written by the
/// sync side (`Relaxed`: it is only compared by the sync side's own sweep, which runs after the
/// marking pass on the same or a joined thread).
#[derive(Debug)]
pub struct Entry {
    gen: AtomicU64,
    msgs: Box<[u8]>,
}

impl Entry {
    /// The entry's messages: complete, 4-byte aligned Netlink messages, back to back.
    pub fn messages(&self) -> &[u8] {
        &self.msgs
    }

    /// The generation that last confirmed this entry.
    pub fn generation(&self) -> u64 {
        self.gen.load(Ordering::Relaxed)
    }

    /// Iterates over the entry's messages.
    pub fn iter(&self) -> Messages<'_> {
        Messages::new(&self.msgs)
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
    if b.len() >= NLMSG_HDRLEN {
        out[start + 6..start + NLMSG_HDRLEN].fill(0);
    }
    out.resize(start + align(b.len()), 0);
}

/// Strips the 16-byte header: what two messages must share to be "the same object state".
pub(crate) fn body(msg: &[u8]) -> &[u8] {
    msg.get(NLMSG_HDRLEN..).unwrap_or(&[])
}

/// One mirror table: `K` → [`Entry`], with a [`ChangeSeq`] bumped on every change.
///
/// Concurrency contract: lookups and iteration take no lock (the nulls table pins entries with
/// reference counts). Writers are the sync thread and, during a (re)sync, one apply thread per
/// table; every change is bracketed by `seq.write()`.
///
/// ```
/// use nlkit_mirror::{LinkKey, Store};
/// let s: Store<LinkKey> = Store::new(16);
/// assert!(s.is_empty());
/// ```
pub struct Store<K: TableKey> {
    pub(crate) table: NullsTable<K, Entry>,
    /// Bumped around every insert, replace and delete.
    pub seq: ChangeSeq,
    full: AtomicU64,
    full_warned: AtomicBool,
    /// The pre-rendered dump (see [`crate::render`]).
    render: RenderCache,
}

impl<K: TableKey + std::fmt::Debug> Store<K> {
    /// A store for at most `capacity` entries (the nulls table has a fixed slot count).
    pub fn new(capacity: usize) -> Self {
        Store {
            table: NullsTable::with_buckets(capacity, (capacity / 2).max(64)),
            seq: ChangeSeq::default(),
            full: AtomicU64::new(0),
            full_warned: AtomicBool::new(false),
            render: RenderCache::default(),
        }
    }

    /// Number of entries (keys).
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Inserts refused because the table was full.
    pub fn full_count(&self) -> u64 {
        self.full.load(Ordering::Relaxed)
    }

    /// A copy of the entry's message bytes.
    pub fn get_bytes(&self, key: &K) -> Option<Vec<u8>> {
        self.table.get_with(key, |e| e.msgs.to_vec())
    }

    /// Calls `f` with the entry, pinned.
    pub fn with<R>(&self, key: &K, f: impl FnOnce(&Entry) -> R) -> Option<R> {
        self.table.get_with(key, f)
    }

    /// The table's dump rendered at `now` (a snapshot of [`Store::seq`]), entries grouped by
    /// `group`; `None` when it cannot be had without waiting (stream from the table then).
    pub(crate) fn rendered(
        &self,
        now: SeqSnapshot,
        group: impl Fn(&K) -> u32,
    ) -> Option<std::sync::Arc<Rendered>> {
        self.render.get(&self.seq, now, |r| {
            for e in self.table.iter() {
                r.push(group(&e.key()), &e.msgs);
            }
        })
    }

    /// Drops the pre-rendered dump (it is rebuilt by the next dump).
    pub fn clear_rendered(&self) {
        self.render.clear();
    }

    /// Iterates over all entries (lock-free; see `NullsTable::iter`).
    pub fn iter(&self) -> impl Iterator<Item = nlkit_table::EntryRef<'_, K, Entry>> {
        self.table.iter()
    }

    /// Sets `key`'s messages to `msgs`, marked with `gen`. When the stored bytes are the same,
    /// only the mark is updated and no change is counted. Returns whether the table changed.
    pub fn put(&self, key: K, msgs: Vec<u8>, gen: u64) -> bool {
        if let Some(same) = self.table.get_with(&key, |e| {
            if *e.msgs == *msgs {
                e.gen.fetch_max(gen, Ordering::Relaxed);
                true
            } else {
                false
            }
        }) {
            if same {
                return false;
            }
        }
        let entry = Entry {
            gen: AtomicU64::new(gen),
            msgs: msgs.into_boxed_slice(),
        };
        let _w = self.seq.write();
        match self.table.insert_or_replace(key, entry) {
            Ok(_) => true,
            Err(e) => {
                self.refused(e.kind);
                false
            }
        }
    }

    /// Dump fast path: inserts `key` if it is absent, without comparing or taking a write
    /// guard (the caller holds one for its batch). Gives the bytes back when the key exists.
    pub(crate) fn insert_new(&self, key: K, msgs: Vec<u8>, gen: u64) -> Result<(), Vec<u8>> {
        let entry = Entry {
            gen: AtomicU64::new(gen),
            msgs: msgs.into_boxed_slice(),
        };
        match self.table.insert(key, entry) {
            Ok(()) => Ok(()),
            Err(e) if e.kind == InsertErrorKind::Exists => Err(e.value.msgs.into_vec()),
            Err(e) => {
                self.refused(e.kind);
                Ok(())
            }
        }
    }

    fn refused(&self, kind: InsertErrorKind) {
        if kind == InsertErrorKind::Full {
            self.full.fetch_add(1, Ordering::Relaxed);
            if !self.full_warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    capacity = self.table.capacity(),
                    "mirror table full: entries are being dropped; raise the capacity"
                );
            }
        } else {
            tracing::debug!(kind = ?kind, "mirror insert refused");
        }
    }

    /// Removes `key`; returns whether it was present.
    pub fn remove(&self, key: &K) -> bool {
        if !self.table.contains_key(key) {
            return false;
        }
        let _w = self.seq.write();
        self.table.remove(key)
    }

    /// Removes every entry not confirmed at generation `gen` or later for which `scope`
    /// returns true; returns how many were removed.
    pub fn sweep(&self, gen: u64, mut scope: impl FnMut(&K, &Entry) -> bool) -> usize {
        let mut n = 0;
        for e in self.table.iter() {
            if e.generation() < gen && scope(&e.key(), &e) {
                let _w = self.seq.write();
                if e.remove() {
                    n += 1;
                }
            }
        }
        n
    }

    /// Removes every entry for which `pred` returns true.
    pub fn remove_where(&self, mut pred: impl FnMut(&K, &Entry) -> bool) -> usize {
        self.sweep(u64::MAX, |k, e| pred(k, e))
    }

    /// Bytes used by the table itself plus the stored messages (approximate).
    pub fn memory_bytes(&self) -> usize {
        let msgs: usize = self
            .table
            .iter()
            .map(|e| e.msgs.len() + std::mem::size_of::<Entry>() + 16)
            .sum();
        self.table.memory_bytes() + msgs + self.render.memory_bytes()
    }
}

impl<K: TableKey> std::fmt::Debug for Store<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("len", &self.table.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::LinkKey;

    #[test]
    fn put_same_bytes_is_not_a_change() {
        let s: Store<LinkKey> = Store::new(8);
        let k = LinkKey { ifindex: 1 };
        assert!(s.put(k, vec![1, 2, 3, 4], 1));
        let before = s.seq.changes();
        assert!(!s.put(k, vec![1, 2, 3, 4], 2));
        assert_eq!(s.seq.changes(), before);
        assert_eq!(s.with(&k, |e| e.generation()), Some(2));
        assert_eq!(s.sweep(3, |_, _| true), 1);
        assert!(s.is_empty());
    }
}
