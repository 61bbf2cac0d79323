//! [`RenderCache`]: a table's dump, pre-rendered as ready-to-send chunks.
//!
//! A served dump of a large table is dominated by walking the nulls table (one stripe lock and
//! one reference count per entry) and copying each entry into the output. The cache keeps the
//! result of one such walk: every entry's message bytes, already normalised, 4-byte aligned and
//! flagged `NLM_F_MULTI`, concatenated into chunks of at most [`CHUNK`] bytes and grouped by a
//! per-table group key (the routing table id for routes, 0 elsewhere) so filtered dumps can use
//! it too. A dump then is one `memcpy`, an 8-byte sequence/port patch per message and one
//! `send` per chunk.
//!
//! The cache is tagged with the table's [`ChangeSeq`] value it was rendered at and is only used
//! while that value is current and no write is in flight, so a cached dump is exactly the
//! table's present content. It is rebuilt lazily by the first dump that finds it stale; while
//! one client rebuilds, the others stream from the table directly (they never wait on each
//! other).

use std::sync::Arc;

use nlkit_wire::consts::NLM_F_MULTI;
use nlkit_wire::{align, NLMSG_HDRLEN};
use parking_lot::Mutex;

use nlkit_table::{ChangeSeq, SeqSnapshot};

/// Largest chunk (datagram) size, like the kernel's dump skbs (~32 KiB).
pub(crate) const CHUNK: usize = 32 * 1024;

/// One table's rendered dump.
///
/// Immutable once built; shared by `Arc` between the cache and the dumps sending it.
#[derive(Debug, Default)]
pub(crate) struct Rendered {
    /// `(group key, chunks)`, in ascending group order.
    pub groups: Vec<(u32, Vec<Vec<u8>>)>,
}

impl Rendered {
    /// The chunks of every group, or of group `only`.
    pub(crate) fn chunks(&self, only: Option<u32>) -> impl Iterator<Item = &[u8]> {
        self.groups
            .iter()
            .filter(move |(g, _)| only.is_none_or(|o| o == *g))
            .flat_map(|(_, c)| c.iter().map(Vec::as_slice))
    }
}

/// Builds a [`Rendered`] from `(group, messages)` pairs.
#[derive(Default)]
pub(crate) struct Renderer {
    groups: Vec<(u32, Vec<Vec<u8>>)>,
}

impl Renderer {
    /// Appends one entry's messages (complete, aligned, normalised) to its group.
    pub(crate) fn push(&mut self, group: u32, msgs: &[u8]) {
        let i = match self.groups.iter().position(|(g, _)| *g == group) {
            Some(i) => i,
            None => {
                self.groups.push((group, Vec::new()));
                self.groups.len() - 1
            }
        };
        let chunks = &mut self.groups[i].1;
        let fits = chunks
            .last()
            .is_some_and(|c| c.len() + msgs.len() <= CHUNK || c.is_empty());
        if !fits {
            chunks.push(Vec::with_capacity(CHUNK));
        }
        let Some(c) = chunks.last_mut() else { return };
        let start = c.len();
        c.extend_from_slice(msgs);
        let mut off = start;
        while off + NLMSG_HDRLEN <= c.len() {
            let len = u32::from_ne_bytes([c[off], c[off + 1], c[off + 2], c[off + 3]]) as usize;
            c[off + 6..off + 8].copy_from_slice(&NLM_F_MULTI.to_ne_bytes());
            if len < NLMSG_HDRLEN {
                break;
            }
            off += align(len);
        }
    }

    /// The finished rendering (groups sorted). Chunks are not trimmed: each is within one
    /// entry of full, and trimming would copy every chunk again.
    pub(crate) fn finish(mut self) -> Rendered {
        self.groups.sort_by_key(|(g, _)| *g);
        Rendered {
            groups: self.groups,
        }
    }
}

/// A table's cached rendering.
///
/// Concurrency contract: `slot` holds the rendering and the `ChangeSeq` snapshot it was taken
/// at; it is read and replaced under its mutex, held only for an `Arc` clone or a swap — except
/// by the one dump that rebuilds it, which others detect with `try_lock` and bypass.
#[derive(Debug, Default)]
pub(crate) struct RenderCache {
    slot: Mutex<Option<(SeqSnapshot, Arc<Rendered>)>>,
}

impl RenderCache {
    /// The rendering valid at `now` (a clean snapshot of `seq` taken by the caller), building
    /// it with `build` if stale. `None` when another dump is rebuilding it or a write is in
    /// flight: the caller then streams from the table.
    pub(crate) fn get(
        &self,
        seq: &ChangeSeq,
        now: SeqSnapshot,
        build: impl FnOnce(&mut Renderer),
    ) -> Option<Arc<Rendered>> {
        if !now.is_clean() {
            return None;
        }
        let mut slot = self.slot.try_lock()?;
        if let Some((at, r)) = slot.as_ref() {
            if *at == now {
                return Some(r.clone());
            }
        }
        // Free the stale copy before building the new one (peak memory).
        *slot = None;
        let mut b = Renderer::default();
        build(&mut b);
        let r = Arc::new(b.finish());
        // Kept only if nothing changed while it was built; sent either way (the dump is
        // flagged NLM_F_DUMP_INTR by the caller's watch in that case).
        if !seq.changed_since(now) {
            *slot = Some((now, r.clone()));
        }
        Some(r)
    }

    /// Drops the cached rendering.
    pub(crate) fn clear(&self) {
        *self.slot.lock() = None;
    }

    /// Bytes held by the cached rendering.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.slot.lock().as_ref().map_or(0, |(_, r)| {
            r.groups
                .iter()
                .flat_map(|(_, c)| c.iter())
                .map(Vec::capacity)
                .sum()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nlkit_wire::MessageBuilder;

    fn msg(n: usize) -> Vec<u8> {
        let mut b = MessageBuilder::new();
        b.begin(24, 0, 0);
        b.raw(&vec![7u8; n]);
        b.finish().unwrap();
        b.as_bytes().to_vec()
    }

    #[test]
    fn chunks_stay_under_the_limit_and_groups_split() {
        let mut r = Renderer::default();
        let m = msg(1000);
        for i in 0..100 {
            r.push(i % 2, &m);
        }
        let r = r.finish();
        let n: usize = r.chunks(None).map(|c| c.len() / m.len()).sum();
        assert_eq!(n, 100);
        assert!(r.chunks(None).all(|c| c.len() <= CHUNK));
        let n1: usize = r.chunks(Some(1)).map(|c| c.len() / m.len()).sum();
        assert_eq!(n1, 50);
        assert!(r
            .chunks(None)
            .all(|c| u16::from_ne_bytes([c[6], c[7]]) == NLM_F_MULTI));
    }

    #[test]
    fn stale_after_a_write() {
        let seq = ChangeSeq::default();
        let cache = RenderCache::default();
        let mut builds = 0;
        let s = seq.snapshot();
        cache.get(&seq, s, |_| builds += 1).unwrap();
        cache.get(&seq, s, |_| builds += 1).unwrap();
        assert_eq!(builds, 1);
        drop(seq.write());
        cache.get(&seq, seq.snapshot(), |_| builds += 1).unwrap();
        assert_eq!(builds, 2);
        let g = seq.write();
        assert!(cache.get(&seq, seq.snapshot(), |_| {}).is_none());
        drop(g);
    }
}
