//! [`Store`]: one mirror table — key → the kernel's message bytes.
//!
//! # Layout
//! The messages live in [`RecordLog`]s (append-only 32 KiB chunks, records back to back; a few
//! shards, chosen by key, so concurrent writers rarely wait on each other) and a [`WordTable`]
//! maps each key to its record's shard and location. So an entry costs its index slot
//! plus its bytes (no allocation, no allocator overhead per entry), and a full dump is a
//! sequential walk over the live bytes — the log *is* the rendered dump, with nothing to
//! rebuild after a change. A replaced or removed entry leaves a dead record behind; chunks
//! that fall below half full are compacted (their live records move to the head).
//!
//! Each record holds one or more complete Netlink messages (more than one only for IPv4
//! routes created with `ip route append`, which share a key), with their headers normalised
//! (flags, sequence number and port id zeroed) so they can be copied out as-is and patched for
//! each client. Its tag is the *generation* of the last dump or event that confirmed it: a
//! resync marks what the kernel still has and sweeps the rest.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use nlkit_table::{InsertErrorKind, KeyWords, Loc, LogWriter, RecordLog, WordTable, TAG_MASK};
use nlkit_wire::{align, Message, MessageHeaderMut, Messages, NLMSG_HDRLEN};

use crate::keys::StoreKey;
use nlkit_table::ChangeSeq;
use nlkit_table::TableKey;

/// An entry as read from the store: its generation and its message bytes (borrowed from a
/// read buffer).
///
/// ```
/// use nlkit_mirror::{LinkKey, Store};
/// let s: Store<LinkKey> = Store::new(16);
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

    /// The generation that last confirmed this entry (31 bits kept).
    pub fn generation(&self) -> u64 {
        self.gen
    }

    /// Iterates over the entry's messages.
    pub fn iter(&self) -> Messages<'a> {
        Messages::new(self.msgs)
    }
}

/// Generations as stored in a record's 31-bit tag. Generations count dump attempts from 1;
/// they would need two billion resyncs to wrap.
fn tag(gen: u64) -> u32 {
    (gen & u64::from(TAG_MASK)) as u32
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

/// Log shards. A key always maps to the same shard, so the changes of one key stay serialised
/// under that shard's writer lock, while writers of different keys (the two threads applying
/// a large dump, the sync thread) rarely wait for each other.
const SHARDS: usize = 8;
/// Where the shard number sits in an index word (above the log location's bits).
const SHARD_SHIFT: u32 = 60;

fn shard_of<K: TableKey>(key: &K) -> usize {
    let h = key
        .to_words()
        .words()
        .iter()
        .fold(0x9e37_79b9_7f4a_7c15u64, |h, w| {
            (h ^ w).wrapping_mul(0x0100_0000_01b3)
        });
    (h >> 32) as usize % SHARDS
}

/// An index word: shard number and location in that shard's log.
fn pack_loc(shard: usize, at: Loc) -> u64 {
    (shard as u64) << SHARD_SHIFT | at.to_word()
}

fn unpack_loc(word: u64) -> (usize, Loc) {
    (
        (word >> SHARD_SHIFT) as usize,
        Loc::from_word(word & ((1 << SHARD_SHIFT) - 1)),
    )
}

/// The key an entry's bytes are filed under (that of its first message).
fn key_of<K: StoreKey>(msgs: &[u8]) -> Option<K> {
    let (m, _) = Message::parse(msgs).ok()?;
    K::of_message(&m)
}

/// One mirror table: `K` → [`StoredEntry`], with a [`ChangeSeq`] bumped on every change.
///
/// Concurrency contract: lookups, reads and scans take no lock on the entry path (the index
/// is read with its seqlock-validated peek, the log by its published lengths; see
/// `nlkit_table::RecordLog`). Every change of a key — insert, replace, delete, compaction —
/// holds the writer lock of the key's log shard for its whole length (so the index entry and
/// its record change together, one writer per key at a time; a sweep holds every shard's) and is bracketed by `seq.write()`, except a generation mark on unchanged
/// bytes, which changes nothing a client can see.
///
/// ```
/// use nlkit_mirror::{LinkKey, Store};
/// let s: Store<LinkKey> = Store::new(16);
/// assert!(s.is_empty());
/// ```
pub struct Store<K: StoreKey> {
    index: WordTable<K>,
    logs: Box<[RecordLog]>,
    /// Bumped around every insert, replace and delete.
    pub seq: ChangeSeq,
    full: AtomicU64,
    full_warned: AtomicBool,
}

impl<K: StoreKey> Store<K> {
    /// A store for at most `capacity` entries (the index has a fixed slot count).
    pub fn new(capacity: usize) -> Self {
        Store {
            index: WordTable::with_buckets(capacity, (capacity / 2).max(64)),
            logs: (0..SHARDS).map(|_| RecordLog::new()).collect(),
            seq: ChangeSeq::default(),
            full: AtomicU64::new(0),
            full_warned: AtomicBool::new(false),
        }
    }

    /// Number of entries (keys).
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Inserts refused because the table was full.
    pub fn full_count(&self) -> u64 {
        self.full.load(Ordering::Relaxed)
    }

    /// Appends the entry's bytes to `out`; returns its generation.
    fn read_into(&self, key: &K, out: &mut Vec<u8>) -> Option<u64> {
        /// Retries before giving up: each one means a writer replaced or moved this very entry
        /// meanwhile, so running out means an index entry pointing at a dead record (a bug).
        const RETRIES: u32 = 1 << 16;
        let start = out.len();
        for _ in 0..RETRIES {
            let (shard, at) = unpack_loc(self.index.get(key)?);
            if let Some(t) = self.logs[shard].read_into(at, out) {
                return Some(u64::from(t));
            }
            // Replaced or moved since the index was read: the index has the new place.
            out.truncate(start);
            std::hint::spin_loop();
        }
        tracing::warn!(
            ?key,
            "mirror entry kept pointing at a dead record; not served"
        );
        None
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

    /// Calls `f` with every entry, in log order, until it returns `false` (lock-free; an
    /// entry changed meanwhile may be seen in its old state, its new state, both or neither:
    /// pair with [`Store::seq`] for a consistent pass).
    pub fn for_each(&self, mut f: impl FnMut(StoredEntry<'_>) -> bool) {
        let mut go_on = true;
        for log in self.logs.iter() {
            log.scan(|_, t, msgs| {
                go_on = f(StoredEntry {
                    gen: u64::from(t),
                    msgs,
                });
                go_on
            });
            if !go_on {
                return;
            }
        }
    }

    /// The shard `key` lives in and its writer (held for the whole change). `msgs` must be
    /// filed under their own key: compaction re-files records by the key of their bytes.
    fn writer_for(&self, key: &K, msgs: &[u8]) -> (usize, LogWriter<'_>) {
        debug_assert_eq!(
            key_of::<K>(msgs),
            Some(*key),
            "entry filed under its own key"
        );
        let shard = shard_of(key);
        (shard, self.logs[shard].writer())
    }

    /// Sets `key`'s messages to `msgs`, marked with `gen`. When the stored bytes are the same,
    /// only the mark is updated and no change is counted. Returns whether the table changed.
    pub(crate) fn put(&self, key: K, msgs: Vec<u8>, gen: u64) -> bool {
        let (shard, mut w) = self.writer_for(&key, &msgs);
        let old = self.index.get(&key).map(|v| unpack_loc(v).1);
        if let Some(at) = old {
            let mut cur = Vec::with_capacity(msgs.len());
            if let Some(t) = self.logs[shard].read_into(at, &mut cur) {
                if cur == msgs {
                    w.set_tag(at, t.max(tag(gen)));
                    return false;
                }
            }
        }
        let _g = self.seq.write();
        let at = w.append(&msgs, tag(gen));
        match self.index.insert_or_replace(key, pack_loc(shard, at)) {
            Ok(_) => {
                if let Some(old) = old {
                    w.kill(old);
                }
                self.compact(shard, &mut w);
                true
            }
            Err(e) => {
                w.kill(at);
                self.refused(e.kind);
                false
            }
        }
    }

    /// Dump fast path: inserts `key` if it is absent, without comparing. Gives the bytes back
    /// when the key exists.
    pub(crate) fn insert_new(&self, key: K, msgs: Vec<u8>, gen: u64) -> Result<(), Vec<u8>> {
        let (shard, mut w) = self.writer_for(&key, &msgs);
        if self.index.contains_key(&key) {
            return Err(msgs);
        }
        let _g = self.seq.write();
        let at = w.append(&msgs, tag(gen));
        match self.index.insert(key, pack_loc(shard, at)) {
            Ok(()) => Ok(()),
            Err(e) => {
                w.kill(at);
                if e.kind == InsertErrorKind::Exists {
                    return Err(msgs);
                }
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
                    capacity = self.index.capacity(),
                    "mirror table full: entries are being dropped; raise the capacity"
                );
            }
        } else {
            tracing::debug!(kind = ?kind, "mirror insert refused");
        }
    }

    /// Removes `key`; returns whether it was present.
    pub(crate) fn remove(&self, key: &K) -> bool {
        let shard = shard_of(key);
        let mut w = self.logs[shard].writer();
        let Some((_, at)) = self.index.get(key).map(unpack_loc) else {
            return false;
        };
        let _g = self.seq.write();
        let removed = self.index.remove(key);
        w.kill(at);
        self.compact(shard, &mut w);
        removed
    }

    /// Removes every entry not confirmed at generation `gen` or later for which `scope`
    /// returns true; returns how many were removed.
    pub(crate) fn sweep(
        &self,
        gen: u64,
        mut scope: impl FnMut(&K, StoredEntry<'_>) -> bool,
    ) -> usize {
        let g = u64::from(tag(gen));
        self.remove_where(|k, e| e.gen < g && scope(k, e))
    }

    /// Removes every entry for which `pred` returns true; returns how many were removed.
    pub(crate) fn remove_where(&self, mut pred: impl FnMut(&K, StoredEntry<'_>) -> bool) -> usize {
        // Every shard's writer, in shard order (the only place more than one is held).
        let mut ws: Vec<LogWriter<'_>> = self.logs.iter().map(RecordLog::writer).collect();
        let mut doomed = Vec::new();
        let mut buf = Vec::new();
        self.index.retain(|k, v| {
            let (shard, at) = unpack_loc(v);
            buf.clear();
            if let Some(t) = self.logs[shard].read_into(at, &mut buf) {
                let e = StoredEntry {
                    gen: u64::from(t),
                    msgs: &buf,
                };
                if pred(&k, e) {
                    doomed.push((k, shard, at));
                }
            }
            true
        });
        let mut n = 0;
        for (k, shard, at) in doomed {
            let _g = self.seq.write();
            if self.index.remove(&k) {
                n += 1;
            }
            ws[shard].kill(at);
        }
        for (shard, w) in ws.iter_mut().enumerate() {
            self.compact(shard, w);
        }
        n
    }

    /// Moves the live records out of mostly dead log chunks, re-filing each in the index.
    fn compact(&self, shard: usize, w: &mut LogWriter<'_>) {
        if !w.needs_compaction() {
            return;
        }
        // Records move: a dump walking the log meanwhile may miss or repeat them.
        let _g = self.seq.write();
        w.compact(|msgs, old, new| {
            let (old, new) = (pack_loc(shard, old), pack_loc(shard, new));
            let key = key_of::<K>(msgs)
                .filter(|k| self.index.get(k) == Some(old))
                .or_else(|| self.key_at(old));
            key.is_some_and(|k| self.index.insert_or_replace(k, new).is_ok())
        });
    }

    /// The key whose index entry points at `at`, by a full index walk: only reached if an
    /// entry's bytes stopped yielding its key, which `put`/`insert_new` rule out.
    fn key_at(&self, word: u64) -> Option<K> {
        let mut found = None;
        self.index.retain(|k, v| {
            if v == word {
                found = Some(k);
            }
            true
        });
        found
    }

    /// Bytes used by the index and the log (chunks as allocated, dead records included).
    pub fn memory_bytes(&self) -> usize {
        self.index.memory_bytes() + self.logs.iter().map(RecordLog::memory_bytes).sum::<usize>()
    }
}

impl<K: StoreKey> std::fmt::Debug for Store<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("len", &self.index.len())
            .finish()
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
        let s: Store<LinkKey> = Store::new(8);
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
        let s: Store<LinkKey> = Store::new(4096);
        for round in 0..40u32 {
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
        // 2,000 live entries of 32 bytes (+ 8 of header): a few chunks, not 40 rounds' worth.
        assert!(
            s.memory_bytes() - s.index.memory_bytes() < 3 * SHARDS * nlkit_table::CHUNK_BYTES,
            "{}",
            s.memory_bytes()
        );
        assert_eq!(s.remove_where(|_, _| true), n);
        assert!(s.is_empty());
    }
}
