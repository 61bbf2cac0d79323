//! The policy-rule tables (`ip rule`): one list per family, in the kernel's order.
//!
//! Rules have no key: the kernel keeps them in one list per family, ordered by priority and,
//! within a priority, by insertion (a new rule goes after the last one whose priority is not
//! higher), and deletes the first rule matching a request. Each family's list is a
//! [`SharedMap`] in the mirror's region, keyed by a *rank* (`[rank]`, unique; record: one
//! normalised message): a walk sorted by rank is the kernel's order
//! (`nlkit_view::schema`). Ranks are spaced [`RANK_STEP`] apart, a rule inserted between two
//! takes the middle rank, and when no rank is left between two neighbours the list is
//! written anew. Rule sets are small: every change reads the whole list.
//!
//! Dumps are staged apart and published when the dump is complete, before the events that
//! arrived meanwhile are applied; a new-rule event for a rule the list already holds
//! (identical body) is taken as already applied, so an event the dump already reflected is
//! not applied twice.
//!
//! Silent kernel changes: a rule naming an interface (`iif`/`oif`) is flagged detached or
//! attached when an interface of that name goes or comes, and a `goto` rule is flagged
//! unresolved or resolved when its target goes or comes, without a rule notification; the
//! sync loop re-dumps the rules then (see [`RuleList::needs_resync_on_link`] and
//! [`RuleList::needs_resync_on_change`]).

use std::sync::Arc;

use nlkit_route::RuleView;
use nlkit_shm::{MapWriter, Region, SharedMap, ShmError, Slot};
use nlkit_table::ChangeSeq;
use nlkit_wire::consts::*;
use nlkit_wire::Message;
use parking_lot::Mutex;

use crate::keys::TableId;
use crate::store::{body, live, normalize};

/// Most rules per family.
pub(crate) const RULE_CAPACITY: u32 = 1 << 16;

/// The distance between the ranks of rules written in one go.
pub(crate) const RANK_STEP: u64 = 1 << 32;

/// Reads of a list that raced with a change before a torn one is used (readers outside the
/// writer retry a walk that a change overlapped).
const SNAPSHOT_TRIES: u32 = 64;

/// One rule as read from the map.
struct Ranked {
    rank: u64,
    slot: Slot,
    msg: Vec<u8>,
}

/// The rules of one family.
///
/// Concurrency contract: every change holds the map's writer mutex (`SharedMap::lock`) for
/// its whole length and is bracketed by `seq.write()`; readers walk the map lock-free.
/// `staged` is written by the one thread reading a rule dump (`(generation, messages)`).
pub struct RuleList {
    map: SharedMap,
    staged: Mutex<(u64, Vec<Vec<u8>>)>,
    /// Bumped around every change of the list.
    pub seq: ChangeSeq,
}

impl std::fmt::Debug for RuleList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleList")
            .field("len", &self.len())
            .finish()
    }
}

fn priority(msg: &[u8]) -> u32 {
    Message::parse(msg)
        .ok()
        .and_then(|(m, _)| RuleView::parse(&m).ok().map(|r| r.priority()))
        .unwrap_or(0)
}

/// A rank strictly between `lo` and `hi` (`None`: the list's ends), if there is one.
fn rank_between(lo: Option<u64>, hi: Option<u64>) -> Option<u64> {
    match (lo, hi) {
        (None, None) => Some(RANK_STEP),
        (Some(a), None) => a.checked_add(RANK_STEP),
        (lo, Some(b)) => {
            let a = lo.unwrap_or(0);
            (b > a + 1).then(|| a + (b - a) / 2)
        }
    }
}

impl RuleList {
    /// An empty list of table `t` (`Rules4` or `Rules6`) in `region`.
    pub(crate) fn create(region: &Arc<Region>, t: TableId) -> Result<Self, ShmError> {
        Ok(RuleList {
            map: SharedMap::create(
                region.clone(),
                nlkit_view::schema::map_layout(t, RULE_CAPACITY),
            )?,
            staged: Mutex::new((0, Vec::new())),
            seq: ChangeSeq::default(),
        })
    }

    /// An empty list in a region of its own.
    ///
    /// ```
    /// let rules = nlkit_mirror::RuleList::new().unwrap();
    /// assert!(rules.is_empty());
    /// ```
    pub fn new() -> Result<Self, ShmError> {
        Self::create(&Arc::new(Region::create("rules")?), TableId::Rules4)
    }

    /// The shared map holding the rules.
    pub(crate) fn map(&self) -> &SharedMap {
        &self.map
    }

    /// The rules sorted by rank, as one walk saw them, and whether the walk was a snapshot.
    fn ranked(&self) -> (Vec<Ranked>, bool) {
        let mut v = Vec::new();
        let walk = self.map.reader().walk(|e, msg| {
            v.push(Ranked {
                rank: e.keys[0][0],
                slot: e.slot,
                msg: msg.to_vec(),
            });
            true
        });
        let consistent = match walk {
            Ok(w) => w.consistent,
            Err(e) => {
                tracing::warn!(error = %e, "rule list walk failed");
                false
            }
        };
        v.sort_unstable_by_key(|r| r.rank);
        (v, consistent)
    }

    /// The current rules, in the kernel's order (normalised messages).
    pub fn snapshot(&self) -> Arc<Vec<Vec<u8>>> {
        let mut last = Vec::new();
        for _ in 0..SNAPSHOT_TRIES {
            let (v, consistent) = self.ranked();
            last = v;
            if consistent {
                break;
            }
            std::thread::yield_now();
        }
        Arc::new(last.into_iter().map(|r| r.msg).collect())
    }

    /// Number of rules.
    ///
    /// Lock-free (the map's published count), so a long sweep does not hold it up.
    pub fn len(&self) -> usize {
        live(&self.map)
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stages one message of a dump marked `gen` (a new generation starts a new list).
    pub(crate) fn stage(&self, m: &Message<'_>, gen: u64) {
        let mut s = self.staged.lock();
        if s.0 != gen {
            *s = (gen, Vec::new());
        }
        s.1.push(normalize(m));
    }

    /// Replaces the whole list with `rules`, ranked [`RANK_STEP`] apart (under the writer).
    fn rewrite(&self, w: &mut MapWriter<'_>, old: &[Ranked], rules: &[&[u8]]) {
        let _g = self.seq.write();
        for r in old {
            w.remove(r.slot);
        }
        for (i, msg) in rules.iter().enumerate() {
            let rank = (i as u64 + 1) * RANK_STEP;
            if let Err(e) = w.insert(&[&[rank]], 0, msg) {
                tracing::warn!(error = %e, "rule not mirrored");
            }
        }
    }

    /// Publishes the dump of generation `gen` (an empty dump when nothing was staged).
    pub(crate) fn publish(&self, gen: u64) {
        let staged = {
            let mut s = self.staged.lock();
            let list = if s.0 == gen {
                std::mem::take(&mut s.1)
            } else {
                Vec::new()
            };
            *s = (0, Vec::new());
            list
        };
        let mut w = self.map.lock();
        let (live, _) = self.ranked();
        if live.len() == staged.len() && live.iter().zip(&staged).all(|(a, b)| a.msg == *b) {
            return;
        }
        let rules: Vec<&[u8]> = staged.iter().map(Vec::as_slice).collect();
        self.rewrite(&mut w, &live, &rules);
    }

    /// Applies a `RTM_NEWRULE` event: inserted after the last rule whose priority is not
    /// higher, as the kernel inserts it, unless the list already holds it.
    pub(crate) fn add(&self, m: &Message<'_>) {
        let new = normalize(m);
        let prio = priority(&new);
        let mut w = self.map.lock();
        let (live, _) = self.ranked();
        if live.iter().any(|r| body(&r.msg) == body(&new)) {
            return;
        }
        let at = live
            .iter()
            .rposition(|r| priority(&r.msg) <= prio)
            .map_or(0, |i| i + 1);
        let lo = at.checked_sub(1).map(|i| live[i].rank);
        let hi = live.get(at).map(|r| r.rank);
        match rank_between(lo, hi) {
            Some(rank) => {
                let _g = self.seq.write();
                if let Err(e) = w.insert(&[&[rank]], 0, &new) {
                    tracing::warn!(error = %e, "rule not mirrored");
                }
            }
            None => {
                let mut rules: Vec<&[u8]> = live.iter().map(|r| r.msg.as_slice()).collect();
                rules.insert(at, &new);
                self.rewrite(&mut w, &live, &rules);
            }
        }
    }

    /// Applies a `RTM_DELRULE` event: the first identical rule goes.
    pub(crate) fn remove(&self, m: &Message<'_>) {
        let old = normalize(m);
        let mut w = self.map.lock();
        let (live, _) = self.ranked();
        if let Some(r) = live.iter().find(|r| body(&r.msg) == body(&old)) {
            let _g = self.seq.write();
            w.remove(r.slot);
        }
    }

    /// Whether a link appearing, going or being renamed may have changed rules silently: some
    /// rule names an interface.
    pub(crate) fn needs_resync_on_link(&self) -> bool {
        self.any(|r| r.iif().is_some() || r.oif().is_some())
    }

    /// Whether a rule change may have changed other rules silently: some rule is a `goto`.
    pub(crate) fn needs_resync_on_change(&self) -> bool {
        self.any(|r| r.action() == FR_ACT_GOTO || r.goto().is_some())
    }

    fn any(&self, f: impl Fn(&RuleView<'_>) -> bool) -> bool {
        self.snapshot().iter().any(|b| {
            Message::parse(b)
                .ok()
                .and_then(|(m, _)| RuleView::parse(&m).ok().map(|r| f(&r)))
                .unwrap_or(false)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nlkit_wire::{FibRuleHdr, MessageBuilder, Messages};

    fn rule(ty: u16, prio: u32, table: u32) -> Vec<u8> {
        let mut b = MessageBuilder::new();
        b.begin(ty, 0, 0);
        b.header(&FibRuleHdr {
            family: AF_INET,
            action: FR_ACT_TO_TBL,
            ..Default::default()
        });
        b.attr_u32(FRA_PRIORITY, prio);
        b.attr_u32(FRA_TABLE, table);
        b.finish().unwrap();
        b.as_bytes().to_vec()
    }

    fn apply(l: &RuleList, ty: u16, prio: u32, table: u32) {
        let b = rule(ty, prio, table);
        let m = Messages::new(&b).next().unwrap().unwrap();
        if ty == RTM_NEWRULE {
            l.add(&m)
        } else {
            l.remove(&m)
        }
    }

    fn tables(l: &RuleList) -> Vec<(u32, u32)> {
        l.snapshot()
            .iter()
            .map(|b| {
                let (m, _) = Message::parse(b).unwrap();
                let r = RuleView::parse(&m).unwrap();
                (r.priority(), r.table())
            })
            .collect()
    }

    #[test]
    fn kernel_order_and_idempotent_events() {
        let l = RuleList::new().unwrap();
        apply(&l, RTM_NEWRULE, 32766, 254);
        apply(&l, RTM_NEWRULE, 0, 255);
        apply(&l, RTM_NEWRULE, 100, 1);
        apply(&l, RTM_NEWRULE, 100, 2);
        apply(&l, RTM_NEWRULE, 100, 1);
        assert_eq!(tables(&l), [(0, 255), (100, 1), (100, 2), (32766, 254)]);
        apply(&l, RTM_DELRULE, 100, 1);
        apply(&l, RTM_DELRULE, 7, 7);
        assert_eq!(tables(&l), [(0, 255), (100, 2), (32766, 254)]);
        let before = l.seq.changes();
        let b = rule(RTM_NEWRULE, 5, 5);
        let m = Messages::new(&b).next().unwrap().unwrap();
        l.stage(&m, 3);
        l.publish(3);
        assert_eq!(tables(&l), [(5, 5)]);
        assert!(l.seq.changes() > before);
        l.publish(4);
        assert!(l.is_empty());
    }

    #[test]
    fn ranks_run_out_and_the_list_is_rewritten() {
        let l = RuleList::new().unwrap();
        // Each rule goes right after the first one: 40 halvings exhaust the gap.
        apply(&l, RTM_NEWRULE, 0, 1);
        apply(&l, RTM_NEWRULE, 100, 1000);
        for t in 0..40 {
            apply(&l, RTM_NEWRULE, 1, 100 + t);
        }
        let got = tables(&l);
        assert_eq!(got.len(), 42);
        assert_eq!(got[0], (0, 1));
        assert_eq!(got[41], (100, 1000));
        let want: Vec<(u32, u32)> = (0..40).map(|t| (1, 100 + t)).collect();
        assert_eq!(&got[1..41], &want[..]);
        assert_eq!(rank_between(Some(5), Some(6)), None);
        assert_eq!(rank_between(None, Some(1)), None);
        assert_eq!(rank_between(None, None), Some(RANK_STEP));
    }
}
