//! Chain walks (DESIGN.md §3.3): [`ChainWalk`], one key's walk along its bucket's chain as a
//! cursor that [`MapReader::advance`] moves to the next validated match, so that one walk
//! ([`MapReader::find`]: lookups, [`MapReader::get_all`]) and several walks taking turns
//! ([`MapReader::get_all_many`]: their cache misses overlap) share one protocol.

use super::{MapReader, MAX_RESTARTS};
use crate::map::layout::{half, Link};
use crate::map::Entry;
use crate::memory::Memory;
use crate::sync::{spin, Ordering};
use crate::ShmError;

/// Where one key's walk along its chain stands.
///
/// A walk makes passes over the chain: each pass starts at the bucket head (`Acquire`, or the
/// word loaded ahead of it for the first pass) and ends on the bucket's own nulls marker. A
/// pass that ends on another bucket's marker (its node was moved to another chain under it),
/// meets more nodes than the capacity (a chain changed into a loop under it) or meets a
/// matching node that fails validation is abandoned and the walk restarts, at most
/// [`MAX_RESTARTS`] times ([`ShmError::Contended`] then); memory no writer writes is
/// [`ShmError::Corrupt`]. Entries handed out before a restart may be handed out again.
pub(super) struct ChainWalk<'k> {
    dir: usize,
    key: &'k [u64],
    /// The key's bucket in `dir`.
    b: u32,
    /// The head word, if loaded ahead (`Acquire`), for the first pass.
    first: Option<u64>,
    /// The next link to follow; `None` when a pass must (re)start at the head.
    link: Option<Link>,
    /// Nodes met in this pass.
    steps: u32,
    /// Passes started.
    passes: u32,
    /// The walk met its bucket's end: nothing more to hand out.
    done: bool,
    /// The versions `(slot, generation)` handed out, when the walk hands each version out
    /// once (the scans of a non-unique direction: a pass after a restart meets again what
    /// the passes before it handed out); `None` for lookups, which end at the first match.
    handed: Option<Vec<(u32, u64)>>,
    /// After a restart: the versions of `handed`, to skip those met again.
    again: Option<std::collections::HashSet<(u32, u64)>>,
}

impl<'k> ChainWalk<'k> {
    /// A walk of `key`'s chain in direction `dir`, whose bucket is `b`; `first`: its head
    /// word, if the caller loaded it (`Acquire`).
    pub(super) fn new(dir: usize, key: &'k [u64], b: u32, first: Option<u64>) -> Self {
        ChainWalk {
            dir,
            key,
            b,
            first,
            link: None,
            steps: 0,
            passes: 0,
            done: false,
            handed: None,
            again: None,
        }
    }

    /// The same walk, handing out each version of an entry once even across restarts.
    pub(super) fn once(mut self) -> Self {
        self.handed = Some(Vec::new());
        self
    }
}

impl<M: Memory + ?Sized> MapReader<'_, M> {
    /// Moves `w` to the next node of its chain that holds its key and reads it (seqlock
    /// validated, its record appended to `buf`) into `e`: `Ok(false)` once the chain's end
    /// is reached (and on every later call; `e` then holds any words). Each node met is one
    /// dependent load; in a non-unique direction the next node's lines are prefetched before
    /// a match is returned, so that a caller's work on it (or on other walks) overlaps the
    /// next node's miss.
    #[inline(always)]
    pub(super) fn advance(
        &self,
        w: &mut ChainWalk<'_>,
        buf: &mut Vec<u8>,
        e: &mut Entry,
    ) -> Result<bool, ShmError> {
        let cap = self.g.layout.capacity;
        let at = self.g.key_at[w.dir];
        let link_at = self.g.link_at[w.dir / 2];
        // In a secondary index the chain is long and every node a match: the next node's miss
        // is started before this one is handed out (in a unique direction the first match
        // ends the lookup, and the prefetch would be wasted).
        let ahead = !self.g.layout.unique[w.dir];
        loop {
            if w.done {
                return Ok(false);
            }
            let link = match w.link.take() {
                Some(l) => l,
                None => {
                    if w.passes > 0 {
                        if w.passes >= MAX_RESTARTS {
                            return Err(ShmError::Contended);
                        }
                        spin();
                    }
                    w.passes += 1;
                    w.steps = 0;
                    let word = match w.first.take() {
                        Some(word) => word,
                        None => self.head(w.dir, w.b).load(Ordering::Acquire),
                    };
                    Link::decode(half(word, w.b as usize))
                }
            };
            let s = match link {
                Link::Empty if w.steps == 0 => {
                    w.done = true;
                    return Ok(false);
                }
                Link::Empty => return Err(ShmError::Corrupt("chain link of a node is empty")),
                Link::Nulls(nb) if nb == w.b => {
                    w.done = true;
                    return Ok(false);
                }
                // Another bucket's end: restart (`w.link` is `None`).
                Link::Nulls(nb) if nb < self.g.layout.buckets => continue,
                Link::Nulls(_) => return Err(ShmError::Corrupt("nulls marker of no bucket")),
                Link::Slot(s) if s >= cap => {
                    return Err(ShmError::Corrupt("chain link beyond the capacity"))
                }
                Link::Slot(s) => s,
            };
            w.steps += 1;
            if w.steps > cap {
                continue; // restart
            }
            let sw = self.slot(s);
            self.prefetch_rest(sw);
            // The next link first (Acquire: it pairs with the writer's Release store of the
            // link, so the node it names is initialised), then the key.
            let next = Link::decode(half(sw[link_at].load(Ordering::Acquire), w.dir));
            if ahead {
                if let Link::Slot(ns) = next {
                    self.prefetch_slot(ns);
                }
            }
            let matches = sw[at..at + w.key.len()]
                .iter()
                .zip(w.key)
                .all(|(a, k)| a.load(Ordering::Relaxed) == *k);
            if matches {
                let base = buf.len();
                if !self.read_match(s, w.dir, w.key, buf, e)? {
                    continue;
                }
                w.link = Some(next);
                if let Some(handed) = &mut w.handed {
                    let v = (s, e.generation);
                    if w.passes > 1 {
                        // A pass after a restart: what the passes before handed out is met
                        // again (a log until now: restarts are rare).
                        let again = w
                            .again
                            .get_or_insert_with(|| handed.iter().copied().collect());
                        if !again.insert(v) {
                            buf.truncate(base);
                            continue;
                        }
                    }
                    handed.push(v);
                }
                return Ok(true);
            }
            w.link = Some(next);
        }
    }

    /// One key's lookup in direction `dir`: the first validated entry of its chain that holds
    /// `key`, read into `e` (its record appended to `buf`); `Ok(false)` when there is none.
    /// `at`: the key's bucket and its head word, if the caller hashed the key and loaded the
    /// head already (`Acquire`), for the first pass; see [`ChainWalk`] for the restarts.
    #[inline(always)]
    pub(super) fn find(
        &self,
        dir: usize,
        key: &[u64],
        at: Option<(u32, u64)>,
        buf: &mut Vec<u8>,
        e: &mut Entry,
    ) -> Result<bool, ShmError> {
        self.check_key(dir, key)?;
        let (b, first) = match at {
            Some((b, word)) => (b, Some(word)),
            None => (self.g.bucket(dir, key), None),
        };
        self.advance(&mut ChainWalk::new(dir, key, b, first), buf, e)
    }

    /// Calls `f` with every live entry filed under `key` in direction `dir` (a non-unique
    /// index), until it returns false.
    ///
    /// Each entry handed to `f` was validated (it was live, with this key, when read). When
    /// the writer changes the chain during the walk, the walk restarts from the bucket head;
    /// each version of an entry ([`Entry::slot`] and [`Entry::generation`]) is handed out
    /// once all the same (a walk logs what it handed out, and checks against it only after a
    /// restart).
    pub fn get_all(
        &self,
        dir: usize,
        key: &[u64],
        mut f: impl FnMut(&Entry, &[u8]) -> bool,
    ) -> Result<(), ShmError> {
        self.check_key(dir, key)?;
        let mut w = ChainWalk::new(dir, key, self.g.bucket(dir, key), None).once();
        let mut buf = Vec::new();
        let mut e = Entry::BLANK;
        while self.advance(&mut w, &mut buf, &mut e)? {
            if !f(&e, &buf) {
                break;
            }
            buf.clear();
        }
        Ok(())
    }

    /// [`get_all`](Self::get_all) for every key of `keys` at once: `f(i, entry, buf)` for
    /// each entry filed under `keys[i]`, until `f` returns false, with the entry's record
    /// appended to `buf` (at the length `buf` had before: the callback uses the record, and
    /// leaves `buf` as the next record should find it — cleared, or with room the caller
    /// wants before each record). The walks take turns, one node each, and each prefetches
    /// its next node before handing out the current one, so up to `keys.len()` nodes' misses
    /// are in flight together where one walk waits for each node in turn: an index whose
    /// entries of one value are spread over several keys (the view's conntrack address index
    /// files an address's entries under 16 keys) is listed that many times faster. Entries
    /// come in no particular order across keys; each version once, as in `get_all`. An
    /// error of any walk ends the call.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use nlkit_shm::{MapLayout, Region, SharedMap};
    /// let region = Arc::new(Region::create("doc-all-many").unwrap());
    /// let map = SharedMap::create(region, MapLayout::new(64).key(1, true).key(2, false)).unwrap();
    /// for i in 0..12u64 {
    ///     map.lock().insert(&[&[i], &[7, i % 3]], 0, b"rec").unwrap();
    /// }
    /// let mut per_key = [0; 3];
    /// let mut buf = Vec::new();
    /// map.reader()
    ///     .get_all_many(1, &[[7, 0], [7, 1], [7, 2]], &mut buf, |k, _, rec| {
    ///         assert_eq!(rec.as_slice(), b"rec");
    ///         per_key[k] += 1;
    ///         rec.clear();
    ///         true
    ///     })
    ///     .unwrap();
    /// assert_eq!(per_key, [4, 4, 4]);
    /// ```
    pub fn get_all_many<K: AsRef<[u64]>>(
        &self,
        dir: usize,
        keys: &[K],
        buf: &mut Vec<u8>,
        mut f: impl FnMut(usize, &Entry, &mut Vec<u8>) -> bool,
    ) -> Result<(), ShmError> {
        let mut walks = Vec::with_capacity(keys.len());
        for k in keys {
            let key = k.as_ref();
            self.check_key(dir, key)?;
            let b = self.g.bucket(dir, key);
            // Every head first (their misses overlap), then every chain's first node.
            walks.push(
                ChainWalk::new(dir, key, b, Some(self.head(dir, b).load(Ordering::Acquire))).once(),
            );
        }
        for w in &walks {
            if let Some(Link::Slot(s)) = w.first.map(|word| Link::decode(half(word, w.b as usize)))
            {
                self.prefetch_slot(s);
            }
        }
        let mut e = Entry::BLANK;
        let mut going = walks.len();
        while going > 0 {
            going = 0;
            for (i, w) in walks.iter_mut().enumerate() {
                if self.advance(w, buf, &mut e)? {
                    going += 1;
                    if !f(i, &e, buf) {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }
}
