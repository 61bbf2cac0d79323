//! The policy-rule tables (`ip rule`): one list per family, in the kernel's order.
//!
//! Rules have no key: the kernel keeps them in one list per family, ordered by priority and,
//! within a priority, by insertion (a new rule goes after the last one whose priority is not
//! higher), and deletes the first rule matching a request. Rule sets are small, so each
//! family's table is that list itself, replaced whole on a change (copy on write) and read by
//! taking a reference to the current list. Dumps are staged apart and published when the
//! dump is complete, before the events that arrived meanwhile are applied; a new-rule event
//! for a rule the list already holds (identical body) is taken as already applied, so an
//! event the dump already reflected is not applied twice.
//!
//! Silent kernel changes: a rule naming an interface (`iif`/`oif`) is flagged detached or
//! attached when an interface of that name goes or comes, and a `goto` rule is flagged
//! unresolved or resolved when its target goes or comes, without a rule notification; the
//! sync loop re-dumps the rules then (see [`RuleList::needs_resync_on_link`] and
//! [`RuleList::needs_resync_on_change`]).

use std::sync::Arc;

use nlkit_route::RuleView;
use nlkit_table::ChangeSeq;
use nlkit_wire::consts::*;
use nlkit_wire::Message;
use parking_lot::Mutex;

use crate::store::{body, normalize};

type List = Arc<Vec<Vec<u8>>>;

/// The rules of one family.
///
/// Concurrency contract: `live` is replaced under its mutex, bracketed by `seq.write()`;
/// readers clone the `Arc` under the mutex and read the list without any lock. `staged` is
/// written by the one thread reading a rule dump (`(generation, messages)`).
#[derive(Debug, Default)]
pub struct RuleList {
    live: Mutex<List>,
    staged: Mutex<(u64, Vec<Vec<u8>>)>,
    /// Bumped around every change of the list.
    pub seq: ChangeSeq,
}

fn priority(msg: &[u8]) -> u32 {
    Message::parse(msg)
        .ok()
        .and_then(|(m, _)| RuleView::parse(&m).ok().map(|r| r.priority()))
        .unwrap_or(0)
}

impl RuleList {
    /// The current rules, in the kernel's order (normalised messages).
    pub fn snapshot(&self) -> Arc<Vec<Vec<u8>>> {
        self.live.lock().clone()
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.live.lock().len()
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
        let mut live = self.live.lock();
        if **live != staged {
            let _g = self.seq.write();
            *live = Arc::new(staged);
        }
    }

    /// Applies a `RTM_NEWRULE` event: inserted after the last rule whose priority is not
    /// higher, as the kernel inserts it, unless the list already holds it.
    pub(crate) fn add(&self, m: &Message<'_>) {
        let new = normalize(m);
        let prio = priority(&new);
        let mut live = self.live.lock();
        if live.iter().any(|r| body(r) == body(&new)) {
            return;
        }
        let at = live
            .iter()
            .rposition(|r| priority(r) <= prio)
            .map_or(0, |i| i + 1);
        let _g = self.seq.write();
        Arc::make_mut(&mut live).insert(at, new);
    }

    /// Applies a `RTM_DELRULE` event: the first identical rule goes.
    pub(crate) fn remove(&self, m: &Message<'_>) {
        let old = normalize(m);
        let mut live = self.live.lock();
        if let Some(i) = live.iter().position(|r| body(r) == body(&old)) {
            let _g = self.seq.write();
            Arc::make_mut(&mut live).remove(i);
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
        let l = RuleList::default();
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
}
