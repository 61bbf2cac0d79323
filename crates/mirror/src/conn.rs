//! [`CtStore`]: the mirror's conntrack table, one [`SharedMap`] in the mirror's region.
//!
//! Each connection is filed under three keys (`nlkit_view::schema::map_layout(Conntrack)`):
//! its original tuple and its reply tuple (unique, so a `GET` by either tuple is one
//! lock-free lookup, for the mirror's server and for clients that map the region alike) and
//! the address index key of its original source and its lane
//! (`nlkit_view::schema::ct_addr_key`, not unique). Its record is the kernel's last message for it, packed (`ct_pack`: without the
//! tuple nests the keys already hold); its aux word is a [`CtAux`]: what the packing dropped,
//! where `CTA_TIMEOUT`'s value lies, the [silent](crate::ct_silent) flag and the generation
//! that last confirmed it.
//!
//! A connection leaves only on a destroy event or when a verification dump no longer lists
//! it: traffic refreshes the kernel's timer without any event, so the mirror never expires
//! entries by their `CTA_TIMEOUT` (which it lists as of the kernel's last report). Update
//! events carry only what changed, so they are merged into the stored message attribute by
//! attribute.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use nlkit_shm::map::MAX_KEY_WORDS;
use nlkit_shm::{Entry, InsertError, MapWriter, Region, SharedMap, ShmError, Slot};
use nlkit_table::{ConnKey, TableKey};
use nlkit_view::schema::{ct_addr_key, map_layout, CtAux};
use nlkit_wire::{align, Attrs, Message, MessageHeaderMut, NLA_HDRLEN, NLMSG_HDRLEN};

use crate::ct_pack::{pack, unpack_into};
use crate::keys::{ct_info, CtInfo, TableId};
use crate::store::{capacity_u32, half_buckets, live, normalize, walk_complete, Refusals};
use nlkit_table::ChangeSeq;

/// In [`CtAux::flags`]: the connection was found by the initial dump and no event for it has
/// arrived since (see `ct_silent`).
const SILENT: u8 = 1;

/// Generation bits kept in [`CtAux::gen`]: generations count dump attempts from 1, so they
/// wrap only after 16 million resyncs.
const GEN_MASK: u64 = 0xff_ffff;

/// A generation as [`CtAux`] keeps it.
fn gen24(gen: u64) -> u32 {
    (gen & GEN_MASK) as u32
}

thread_local! {
    /// Where each thread reads packed records (reused: no allocation per lookup).
    static RECORD: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(512));
}

/// The tuple in a key slot of an entry.
fn tuple(words: &[u64; MAX_KEY_WORDS]) -> ConnKey {
    ConnKey::from_words(&[words[0], words[1], words[2], words[3], words[4]])
}

/// The packed record and aux word of a connection whose normalised message is `msg`.
fn stored(
    msg: Vec<u8>,
    orig: &ConnKey,
    reply: &ConnKey,
    gen: u32,
    timeout_off: Option<usize>,
    silent: bool,
) -> (Box<[u8]>, CtAux) {
    let (rec, dropped) = pack(msg, orig, reply);
    let aux = CtAux {
        dropped,
        timeout_off: timeout_off.and_then(|o| u16::try_from(o).ok()).unwrap_or(0),
        flags: if silent { SILENT } else { 0 },
        gen,
    };
    (rec, aux)
}

/// Appends the full message of entry `e`, whose packed record is `rec`, to `out`.
fn unpack_entry(e: &Entry, rec: &[u8], out: &mut Vec<u8>) {
    let aux = CtAux::from_word(e.aux);
    unpack_into(
        rec,
        aux.dropped,
        &tuple(&e.keys[0]),
        &tuple(&e.keys[1]),
        out,
    );
}

/// The conntrack table of the mirror.
///
/// Concurrency contract: lookups and walks are lock-free (the map's validating readers).
/// Every change holds the map's writer mutex (`SharedMap::lock`, in this process) for its
/// whole length, and each change a client can see is bracketed by `seq.write()`. Writers are
/// the sync thread (events, sweeps) and, during a (re)sync, the conntrack apply thread.
///
/// ```
/// let ct = nlkit_mirror::CtStore::new(1024).unwrap();
/// assert_eq!(ct.len(), 0);
/// ```
pub struct CtStore {
    map: SharedMap,
    /// Bumped around every insert, update and delete.
    pub seq: ChangeSeq,
    /// Whether connections a dump inserts are flagged silent (on during the initial sync
    /// only). Written by the sync thread between dumps; relaxed: the dump threads are started
    /// and joined after each change.
    dump_marks_silent: AtomicBool,
    refusals: Refusals,
}

impl std::fmt::Debug for CtStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CtStore").field("len", &self.len()).finish()
    }
}

/// Merges an update event into the stored message: the update's header and attributes, then
/// every stored attribute whose type the update does not carry.
fn merge(update: &[u8], old: &[u8]) -> Vec<u8> {
    const BODY: usize = NLMSG_HDRLEN + 4;
    if update.len() < BODY || old.len() < BODY {
        return update.to_vec();
    }
    let mut out = update.to_vec();
    out.resize(align(out.len()), 0);
    let mut present = [false; 64];
    for a in Attrs::new(&update[BODY..]).flatten() {
        if let Some(p) = present.get_mut(usize::from(a.ty())) {
            *p = true;
        }
    }
    let mut pos = BODY;
    for a in Attrs::new(&old[BODY..]).flatten() {
        let len = NLA_HDRLEN + a.payload().len();
        let seen = present.get(usize::from(a.ty())).copied().unwrap_or(true);
        if !seen && pos + len <= old.len() {
            out.extend_from_slice(&old[pos..pos + len]);
            out.resize(align(out.len()), 0);
        }
        pos += align(len);
    }
    let total = out.len() as u32;
    if let Ok(mut h) = MessageHeaderMut::new(&mut out) {
        h.set_len(total);
    }
    out
}

/// Whether two messages differ only in the value of `CTA_TIMEOUT` at `off` (the kernel's
/// countdown, which every dump reports anew).
fn same_but_timeout(a: &[u8], b: &[u8], off: usize) -> bool {
    a.len() == b.len()
        && off != 0
        && off + 4 <= a.len()
        && a[..off] == b[..off]
        && a[off + 4..] == b[off + 4..]
}

/// Attributes a dump reports anew each time without the connection changing: the timer, the
/// use count, the traffic counters and the timestamps.
fn is_volatile(ty: u16) -> bool {
    use nlkit_wire::consts::{
        CTA_COUNTERS_ORIG, CTA_COUNTERS_REPLY, CTA_TIMEOUT, CTA_TIMESTAMP, CTA_USE,
    };
    matches!(
        ty,
        CTA_TIMEOUT | CTA_USE | CTA_COUNTERS_ORIG | CTA_COUNTERS_REPLY | CTA_TIMESTAMP
    )
}

/// The attributes that describe the connection, sorted: what is left of a message once the
/// volatile ones (and a zero `CTA_MARK`, which events leave out) are set aside.
fn identity_attrs(bytes: &[u8]) -> Option<Vec<(u16, &[u8])>> {
    let (m, _) = Message::parse(bytes).ok()?;
    let (_, attrs) = m.family_header::<nlkit_wire::NfGenMsg>().ok()?;
    let mut v = Vec::new();
    for a in attrs {
        let a = a.ok()?;
        if is_volatile(a.ty()) || (a.ty() == nlkit_wire::consts::CTA_MARK && a.payload() == [0; 4])
        {
            continue;
        }
        v.push((a.ty(), a.payload()));
    }
    v.sort_unstable();
    Some(v)
}

/// Whether two messages describe the same connection state: a kernel `NEW` event lacks the
/// `CTA_USE` (and a zero `CTA_MARK`) a dump carries, which is no change to report.
fn same_connection(a: &[u8], b: &[u8]) -> bool {
    matches!((identity_attrs(a), identity_attrs(b)), (Some(x), Some(y)) if x == y)
}

impl CtStore {
    /// A table for at most `max` connections, in a region of its own (the mirror puts it in
    /// the region of all its tables, `Tables::new`).
    pub fn new(max: u32) -> Result<Self, ShmError> {
        Self::create(&Arc::new(Region::create("conntrack")?), max)
    }

    /// The conntrack table in `region`.
    pub(crate) fn create(region: &Arc<Region>, max: u32) -> Result<Self, ShmError> {
        let layout = half_buckets(map_layout(TableId::Conntrack, capacity_u32(max as usize)));
        Ok(CtStore {
            map: SharedMap::create(region.clone(), layout)?,
            seq: ChangeSeq::default(),
            dump_marks_silent: AtomicBool::new(false),
            refusals: Refusals::default(),
        })
    }

    /// The shared map holding the connections.
    pub(crate) fn map(&self) -> &SharedMap {
        &self.map
    }

    /// Whether connections that dumps insert from now on are flagged as possibly silent
    /// (the initial sync: they may predate every event listener; see `ct_silent`).
    pub(crate) fn set_dump_marks_silent(&self, on: bool) {
        self.dump_marks_silent.store(on, Ordering::Relaxed);
    }

    /// Calls `f` with each entry's aux word until it returns false; returns whether the walk
    /// was complete (see [`Store::for_each`](crate::Store::for_each)).
    fn each_aux(&self, mut f: impl FnMut(CtAux) -> bool) -> bool {
        let r = self.map.reader().walk(|e, _| f(CtAux::from_word(e.aux)));
        walk_complete("conntrack", r)
    }

    /// Whether some connection is still flagged as possibly silent (stops at the first one).
    /// A walk that skipped an entry answers yes: that entry may be one.
    pub(crate) fn any_silent(&self) -> bool {
        let mut any = false;
        let complete = self.each_aux(|a| {
            any = a.flags & SILENT != 0;
            !any
        });
        any || !complete
    }

    /// How many connections are flagged as possibly silent (a pass over the table).
    #[cfg(test)]
    pub(crate) fn silent_count(&self) -> usize {
        let mut n = 0;
        self.each_aux(|a| {
            n += usize::from(a.flags & SILENT != 0);
            true
        });
        n
    }

    /// Number of connections.
    ///
    /// Lock-free (the map's published count), so a long sweep does not hold it up.
    pub fn len(&self) -> usize {
        live(&self.map)
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Inserts refused because the table was full.
    pub fn full_count(&self) -> u64 {
        self.refusals.count()
    }

    /// Applies a `IPCTNL_MSG_CT_NEW` message (dump entry or new/update event). `merge_update`
    /// keeps stored attributes the message lacks (update events carry only what changed).
    /// An event: the connection reports itself, so it is not silent.
    pub(crate) fn upsert(&self, msg: &Message<'_>, gen: u64, merge_update: bool) -> bool {
        let Some(info) = ct_info(msg) else {
            return false;
        };
        let mut w = self.map.lock();
        self.apply(&mut w, msg, &info, gen, merge_update, true)
    }

    /// [`upsert`](Self::upsert) under the writer; `heard`: from an event (else from a dump,
    /// which keeps an existing entry's silent flag and gives a new one the flag if
    /// [`set_dump_marks_silent`](Self::set_dump_marks_silent) is on).
    fn apply(
        &self,
        w: &mut MapWriter<'_>,
        msg: &Message<'_>,
        info: &CtInfo,
        gen: u64,
        merge_update: bool,
        heard: bool,
    ) -> bool {
        let silent = !heard && self.dump_marks_silent.load(Ordering::Relaxed);
        let norm = normalize(msg);
        let ow = info.original.to_words();
        if let Some(slot) = w.find(0, &ow) {
            let reply = tuple(&w.key(slot, 1));
            if info.reply.is_none_or(|r| r == reply) {
                return self.update_in_place(w, slot, info, norm, gen, merge_update, heard);
            }
            // Same tuple, other connection (a stale entry): replace it.
            let _g = self.seq.write();
            w.remove(slot);
        } else if let Some(slot) = w.find(1, &ow) {
            // The tuple is another connection's reply tuple: that one is stale.
            let _g = self.seq.write();
            w.remove(slot);
        }
        let Some(reply) = info.reply else {
            return false; // an update for a connection we never saw, without its reply tuple
        };
        let (rec, aux) = stored(
            norm,
            &info.original,
            &reply,
            gen24(gen),
            info.timeout_off,
            silent,
        );
        self.insert(w, &info.original, &reply, aux, &rec, true)
            .unwrap_or(false)
    }

    /// Inserts a connection; returns whether it was. With `evict`, a stale entry holding
    /// one of its tuples is dropped first; without, such a clash returns `None`.
    fn insert(
        &self,
        w: &mut MapWriter<'_>,
        orig: &ConnKey,
        reply: &ConnKey,
        aux: CtAux,
        rec: &[u8],
        evict: bool,
    ) -> Option<bool> {
        let (ow, rw, aw) = (orig.to_words(), reply.to_words(), ct_addr_key(orig));
        let keys: [&[u64]; 3] = [&ow, &rw, &aw];
        let _g = self.seq.write();
        for _ in 0..3 {
            match w.insert(&keys, aux.to_word(), rec) {
                Ok(_) => return Some(true),
                Err(InsertError::Exists { slot, .. }) if evict => w.remove(slot),
                Err(InsertError::Exists { .. }) => return None,
                Err(InsertError::Shm(e)) => {
                    self.refusals
                        .refused(&e, self.map.reader().layout().capacity, "conntrack");
                    return Some(false);
                }
            }
        }
        Some(false)
    }

    /// Dump fast path: inserts a dumped connection directly; falls back to
    /// [`upsert`](Self::upsert)'s comparing path when a tuple is already held.
    pub(crate) fn insert_dump(&self, msg: &Message<'_>, gen: u64) -> bool {
        let Some(info) = ct_info(msg) else {
            return false;
        };
        let Some(reply) = info.reply else {
            return false;
        };
        let mut w = self.map.lock();
        if w.find(0, &info.original.to_words()).is_none() {
            let (rec, aux) = stored(
                normalize(msg),
                &info.original,
                &reply,
                gen24(gen),
                info.timeout_off,
                self.dump_marks_silent.load(Ordering::Relaxed),
            );
            if let Some(inserted) = self.insert(&mut w, &info.original, &reply, aux, &rec, false) {
                return inserted;
            }
        }
        self.apply(&mut w, msg, &info, gen, false, false)
    }

    /// Returns whether the connection changed in more than its `CTA_TIMEOUT` countdown.
    #[allow(clippy::too_many_arguments)]
    fn update_in_place(
        &self,
        w: &mut MapWriter<'_>,
        slot: Slot,
        info: &CtInfo,
        norm: Vec<u8>,
        gen: u64,
        merge_update: bool,
        heard: bool,
    ) -> bool {
        let (orig, reply) = (info.original, tuple(&w.key(slot, 1)));
        let aux = CtAux::from_word(w.aux(slot));
        let new_gen = aux.gen.max(gen24(gen));
        let silent = aux.flags & SILENT != 0 && !heard;
        let mut packed = Vec::with_capacity(norm.len());
        w.record(slot, &mut packed);
        let mut old = Vec::with_capacity(packed.len() + usize::from(aux.dropped));
        unpack_into(&packed, aux.dropped, &orig, &reply, &mut old);
        if old == norm {
            let marked = CtAux {
                gen: new_gen,
                flags: if silent { SILENT } else { 0 },
                ..aux
            };
            if marked != aux {
                w.set_aux(slot, marked.to_word());
            }
            return false;
        }
        let timeout_only = !merge_update
            && (same_but_timeout(&old, &norm, usize::from(aux.timeout_off))
                || same_connection(&old, &norm));
        let new = if merge_update {
            merge(&norm, &old)
        } else {
            norm
        };
        let off = Message::parse(&new)
            .ok()
            .and_then(|(m, _)| ct_info(&m))
            .and_then(|i| i.timeout_off);
        let (rec, new_aux) = stored(new, &orig, &reply, new_gen, off, silent);
        let _g = self.seq.write();
        if let Err(e) = w.replace(slot, new_aux.to_word(), &rec) {
            self.refusals
                .refused(&e, self.map.reader().layout().capacity, "conntrack");
            return false;
        }
        !timeout_only
    }

    /// Applies a destroy event (or a delete): removes the connection with this tuple.
    pub(crate) fn remove_msg(&self, msg: &Message<'_>) -> bool {
        let Some(info) = ct_info(msg) else {
            return false;
        };
        self.remove(&info.original)
    }

    /// Removes the connection with this tuple (either direction).
    pub(crate) fn remove(&self, tuple: &ConnKey) -> bool {
        let words = tuple.to_words();
        let mut w = self.map.lock();
        let Some(slot) = w.find(0, &words).or_else(|| w.find(1, &words)) else {
            return false;
        };
        let _g = self.seq.write();
        w.remove(slot);
        true
    }

    /// Calls `f` with every connection — its original tuple and its full message (its
    /// `CTA_TIMEOUT` is the kernel's as of its last report) — in slot order, until it returns
    /// false (lock-free; pair with [`CtStore::seq`] for a consistent pass). Returns whether
    /// the walk was complete, as [`Store::for_each`](crate::Store::for_each) does.
    pub fn for_each(&self, f: impl FnMut(&ConnKey, &[u8]) -> bool) -> bool {
        self.for_each_matching(|_| true, f)
    }

    /// [`for_each`](Self::for_each) over the connections whose original tuple `keep`
    /// accepts (the others are not unpacked).
    pub fn for_each_matching(
        &self,
        mut keep: impl FnMut(&ConnKey) -> bool,
        mut f: impl FnMut(&ConnKey, &[u8]) -> bool,
    ) -> bool {
        let mut msg = Vec::with_capacity(512);
        let r = self.map.reader().walk(|e, rec| {
            let orig = tuple(&e.keys[0]);
            if !keep(&orig) {
                return true;
            }
            msg.clear();
            unpack_entry(e, rec, &mut msg);
            f(&orig, &msg)
        });
        walk_complete("conntrack", r)
    }

    /// The connections not confirmed at generation `gen` or later: their original tuple and
    /// message (what a sweep at `gen` would remove).
    pub(crate) fn unconfirmed(&self, gen: u64) -> Vec<(ConnKey, Vec<u8>)> {
        let g = gen24(gen);
        let mut v = Vec::new();
        let r = self.map.reader().walk(|e, rec| {
            if CtAux::from_word(e.aux).gen < g {
                let mut b = Vec::new();
                unpack_entry(e, rec, &mut b);
                v.push((tuple(&e.keys[0]), b));
            }
            true
        });
        // A skipped entry stays until the next sweep (removing only what was read is safe).
        walk_complete("conntrack", r);
        v
    }

    /// Looks a connection up by either tuple and appends its message to `out`.
    pub fn get_into(&self, tuple: &ConnKey, out: &mut Vec<u8>) -> bool {
        let words = tuple.to_words();
        let r = self.map.reader();
        RECORD.with(|rec| {
            let mut rec = rec.borrow_mut();
            for dir in 0..2 {
                rec.clear();
                match r.get(dir, &words, &mut rec) {
                    Ok(Some(e)) => {
                        unpack_entry(&e, &rec, out);
                        return true;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::debug!(error = %e, "conntrack mirror lookup failed");
                        return false;
                    }
                }
            }
            false
        })
    }

    /// Removes connections not confirmed at generation `gen` or later.
    pub(crate) fn sweep(&self, gen: u64) -> usize {
        let g = gen24(gen);
        let mut w = self.map.lock();
        let _g = self.seq.write();
        w.retain(|_, aux| CtAux::from_word(aux).gen >= g)
    }

    /// Bytes of shared memory the table uses (slots touched, buckets, record blocks).
    pub fn memory_bytes(&self) -> usize {
        self.map.memory_bytes()
    }
}

#[cfg(test)]
mod tests;
