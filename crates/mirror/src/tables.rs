//! [`Tables`]: every mirror table, and how dump messages and events change them.

use std::sync::Arc;

use nlkit_shm::{Memory, Region, SharedMap, ShmError};
use nlkit_wire::consts::*;
use nlkit_wire::{FibRuleHdr, IfInfoMsg, Message};

use crate::conn::CtStore;
use crate::keys::{route_info, AddrKey, LinkKey, NeighKey, NexthopKey, RouteKey};
use crate::route_store::RouteStore;
use crate::routes;
use crate::rules::RuleList;
use crate::store::{normalize, Store};

pub use crate::keys::TableId;

/// The dump request that lists `t` — from the kernel or from the mirror, which answers the
/// same requests — with the Netlink protocol to send it on.
///
/// ```
/// use nlkit_mirror::{dump_request, TableId};
/// let (proto, req) = dump_request(TableId::Routes6);
/// assert_eq!(proto, nlkit_socket::Protocol::Route);
/// assert!(!req.as_bytes().is_empty());
/// ```
pub fn dump_request(t: TableId) -> (nlkit_socket::Protocol, nlkit_wire::MessageBuilder) {
    crate::fill::dump_request(t)
}

/// A set of tables (for pending resyncs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableSet(pub(crate) u16);

impl TableSet {
    /// Adds a table.
    pub fn add(&mut self, t: TableId) {
        self.0 |= t.bit();
    }
    /// Whether the set holds `t`.
    pub fn contains(self, t: TableId) -> bool {
        self.0 & t.bit() != 0
    }
    /// Removes a table.
    pub fn remove(&mut self, t: TableId) {
        self.0 &= !t.bit();
    }
    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// The tables in the set.
    pub fn iter(self) -> impl Iterator<Item = TableId> {
        TableId::ALL.into_iter().filter(move |t| self.contains(*t))
    }
    /// Every rtnetlink table.
    pub fn all_rtnl() -> Self {
        let mut s = TableSet::default();
        for t in TableId::RTNL {
            s.add(t);
        }
        s
    }
}

/// Capacities of the mirror's tables: each table is a shared map with a fixed number of
/// slots. Slot arrays are sparse in the region's tmpfs file, so a large capacity costs
/// memory only as its slots are used.
#[derive(Debug, Clone, Copy)]
pub struct Capacities {
    /// Links.
    pub links: usize,
    /// Addresses, per family.
    pub addrs: usize,
    /// Routes, per family.
    pub routes: usize,
    /// Neighbours, per family.
    pub neigh: usize,
    /// Nexthop objects.
    pub nexthops: usize,
    /// Conntrack entries.
    pub conntrack: u32,
}

impl Default for Capacities {
    fn default() -> Self {
        Capacities {
            links: 1 << 16,
            addrs: 1 << 18,
            routes: 1 << 22,
            neigh: 1 << 18,
            nexthops: 1 << 16,
            conntrack: 1 << 21,
        }
    }
}

/// Every table of the mirror, in one shared region.
///
/// The region (`nlkit_shm::Region`, one sealed memfd) holds every table's map; each map is
/// published in the region's directory under `nlkit_view::schema::table_object(t)`, laid out
/// as `nlkit_view::schema::map_layout(t, capacity)`, so a client that maps the region
/// (`nlkit-view`) finds and reads the very tables the mirror serves from.
///
/// Concurrency contract: see [`Store`] and [`CtStore`]; `Tables` itself is immutable after
/// construction and shared by `Arc` between the sync thread, apply threads and server threads.
#[derive(Debug)]
pub struct Tables {
    /// The region every table lives in.
    region: Arc<Region>,
    /// Links by ifindex.
    pub links: Store<LinkKey>,
    /// Addresses: `[IPv4, IPv6]`.
    pub addrs: [Store<AddrKey>; 2],
    /// Routes: `[IPv4, IPv6]`.
    pub routes: [RouteStore; 2],
    /// Neighbours: `[IPv4, IPv6]`.
    pub neigh: [Store<NeighKey>; 2],
    /// Nexthop objects by id.
    pub nexthops: Store<NexthopKey>,
    /// Policy rules: `[IPv4, IPv6]`, each in the kernel's order.
    pub rules: [RuleList; 2],
    /// Conntrack entries.
    pub ct: CtStore,
    /// Serialise dump updates of an existing route key between reading threads.
    route_locks: [parking_lot::Mutex<()>; ROUTE_LOCKS],
}

/// What applying an event asks of the sync loop.
#[derive(Debug, Default, Clone)]
pub(crate) struct Followup {
    /// Tables to re-dump and sweep (silent kernel deletions, partial ECMP deletes).
    pub resync: TableSet,
    /// Entries the event removed without a kernel notification of their own (addresses and
    /// neighbours of a deleted link): their messages, for the feed's synthesized deletions.
    pub removed: Vec<(TableId, Vec<u8>)>,
}

fn fam(f: u8) -> usize {
    usize::from(f == AF_INET6)
}

impl Tables {
    /// Empty tables with the given capacities, in a new region, each published in its
    /// directory.
    ///
    /// ```
    /// use nlkit_mirror::{Capacities, TableId, Tables};
    /// let t = Tables::new(&Capacities::default()).unwrap();
    /// assert_eq!(t.len(TableId::Routes4), 0);
    /// ```
    pub fn new(c: &Capacities) -> Result<Self, ShmError> {
        let region = Arc::new(Region::create("mirror")?);
        let r = &region;
        let tables = Tables {
            links: Store::create(r, TableId::Links, c.links)?,
            addrs: [
                Store::create(r, TableId::Addrs4, c.addrs)?,
                Store::create(r, TableId::Addrs6, c.addrs)?,
            ],
            routes: [
                RouteStore::create(r, false, c.routes)?,
                RouteStore::create(r, true, c.routes)?,
            ],
            neigh: [
                Store::create(r, TableId::Neigh4, c.neigh)?,
                Store::create(r, TableId::Neigh6, c.neigh)?,
            ],
            nexthops: Store::create(r, TableId::Nexthops, c.nexthops)?,
            rules: [
                RuleList::create(r, TableId::Rules4)?,
                RuleList::create(r, TableId::Rules6)?,
            ],
            ct: CtStore::create(r, c.conntrack)?,
            route_locks: std::array::from_fn(|_| parking_lot::Mutex::new(())),
            region: region.clone(),
        };
        for t in TableId::ALL {
            region.publish(nlkit_view::schema::table_object(t), tables.map(t).offset())?;
        }
        Ok(tables)
    }

    /// The region holding every table (its memfd is what clients map).
    pub(crate) fn region(&self) -> &Arc<Region> {
        &self.region
    }

    /// Table `t`'s shared map.
    pub(crate) fn map(&self, t: TableId) -> &SharedMap {
        match t {
            TableId::Links => self.links.map(),
            TableId::Addrs4 => self.addrs[0].map(),
            TableId::Addrs6 => self.addrs[1].map(),
            TableId::Routes4 => self.routes[0].map(),
            TableId::Routes6 => self.routes[1].map(),
            TableId::Neigh4 => self.neigh[0].map(),
            TableId::Neigh6 => self.neigh[1].map(),
            TableId::Nexthops => self.nexthops.map(),
            TableId::Rules4 => self.rules[0].map(),
            TableId::Rules6 => self.rules[1].map(),
            TableId::Conntrack => self.ct.map(),
        }
    }

    /// Collapses every table's memory in use into huge pages (`SharedMap::collapse`; see
    /// [`MirrorConfig::huge_pages`](crate::MirrorConfig::huge_pages)). Takes no table lock:
    /// safe while the tables change.
    ///
    /// ```
    /// use nlkit_mirror::{Capacities, Tables};
    /// let t = Tables::new(&Capacities { routes: 64, conntrack: 64, ..Default::default() }).unwrap();
    /// assert_eq!(t.collapse().bytes, 0); // nothing in use yet
    /// ```
    pub fn collapse(&self) -> nlkit_shm::Collapsed {
        let mut c = nlkit_shm::Collapsed::default();
        for t in TableId::ALL {
            c.add(self.map(t).collapse());
        }
        c
    }

    /// Bytes of shared memory table `t` uses (slots touched, buckets, record blocks).
    pub fn memory_bytes(&self, t: TableId) -> usize {
        self.map(t).memory_bytes()
    }

    /// The size of the region's file: every table's reservation (sparse: pages never
    /// written take no memory; [`memory_bytes`](Self::memory_bytes) counts what is used).
    pub fn region_bytes(&self) -> u64 {
        self.region.len()
    }

    /// Number of entries in a table.
    pub fn len(&self, t: TableId) -> usize {
        match t {
            TableId::Links => self.links.len(),
            TableId::Addrs4 => self.addrs[0].len(),
            TableId::Addrs6 => self.addrs[1].len(),
            TableId::Routes4 => self.routes[0].len(),
            TableId::Routes6 => self.routes[1].len(),
            TableId::Neigh4 => self.neigh[0].len(),
            TableId::Neigh6 => self.neigh[1].len(),
            TableId::Nexthops => self.nexthops.len(),
            TableId::Rules4 => self.rules[0].len(),
            TableId::Rules6 => self.rules[1].len(),
            TableId::Conntrack => self.ct.len(),
        }
    }

    /// A table's change counter.
    pub fn seq(&self, t: TableId) -> &crate::ChangeSeq {
        match t {
            TableId::Links => &self.links.seq,
            TableId::Addrs4 => &self.addrs[0].seq,
            TableId::Addrs6 => &self.addrs[1].seq,
            TableId::Routes4 => self.routes[0].seq(),
            TableId::Routes6 => self.routes[1].seq(),
            TableId::Neigh4 => &self.neigh[0].seq,
            TableId::Neigh6 => &self.neigh[1].seq,
            TableId::Nexthops => &self.nexthops.seq,
            TableId::Rules4 => &self.rules[0].seq,
            TableId::Rules6 => &self.rules[1].seq,
            TableId::Conntrack => &self.ct.seq,
        }
    }

    /// Applies one message of a dump of table `t`, marked with `gen`. Called by the dump's
    /// reading threads; the stores bracket each change they make with their `seq`. Returns
    /// whether the table changed (more than a generation mark).
    pub(crate) fn apply_dump(&self, t: TableId, m: &Message<'_>, gen: u64) -> bool {
        match t {
            TableId::Links => {
                LinkKey::from_msg(m).is_some_and(|k| put_dump(&self.links, k, m, gen))
            }
            TableId::Addrs4 | TableId::Addrs6 => AddrKey::from_msg(m)
                .is_some_and(|k| put_dump(&self.addrs[fam_of_key(k.local.is_ipv6())], k, m, gen)),
            TableId::Routes4 | TableId::Routes6 => {
                let Some(i) = route_info(m) else {
                    return false;
                };
                if i.cloned {
                    return false;
                }
                let store = &self.routes[fam_of_key(i.key.dst.is_ipv6())];
                let Err(new) = store.insert_new(i.key, normalize(m), gen) else {
                    return true;
                };
                // The key exists: an older entry (resync), or several routes sharing a key
                // (see `routes`), whose messages this same pass appends. Two reading threads
                // may hold such messages at once: the stripe lock orders them.
                let _g = self.route_locks[stripe(&i.key)].lock();
                let mut bytes = Vec::new();
                store.with(&i.key, |e| {
                    if e.generation() == gen {
                        bytes.extend_from_slice(e.messages());
                    }
                });
                bytes.extend_from_slice(&new);
                store.put(i.key, bytes, gen)
            }
            TableId::Neigh4 | TableId::Neigh6 => NeighKey::from_msg(m)
                .is_some_and(|k| put_dump(&self.neigh[fam_of_key(k.dst.is_ipv6())], k, m, gen)),
            TableId::Nexthops => {
                NexthopKey::from_msg(m).is_some_and(|k| put_dump(&self.nexthops, k, m, gen))
            }
            TableId::Rules4 | TableId::Rules6 => {
                if let Some(i) = rule_family(m) {
                    self.rules[i].stage(m, gen);
                }
                false
            }
            TableId::Conntrack => self.ct.insert_dump(m, gen),
        }
    }

    /// Called once the dump of `t` at generation `gen` is complete, before the events queued
    /// meanwhile are applied: the rule lists publish what the dump staged.
    pub(crate) fn dump_done(&self, t: TableId, gen: u64) {
        match t {
            TableId::Rules4 => self.rules[0].publish(gen),
            TableId::Rules6 => self.rules[1].publish(gen),
            _ => {}
        }
    }

    /// Applies one event message; returns what the sync loop must do next.
    pub(crate) fn apply_event(&self, m: &Message<'_>, gen: u64) -> Followup {
        let mut f = Followup::default();
        match m.ty() {
            RTM_NEWLINK => self.link_event(m, gen, false, &mut f),
            RTM_DELLINK => self.link_event(m, gen, true, &mut f),
            RTM_NEWADDR => {
                if let Some(k) = AddrKey::from_msg(m) {
                    self.addrs[fam_of_key(k.local.is_ipv6())].put(k, normalize(m), gen);
                }
            }
            RTM_DELADDR => {
                if let Some(k) = AddrKey::from_msg(m) {
                    let v6 = k.local.is_ipv6();
                    self.addrs[fam_of_key(v6)].remove(&k);
                    if !v6 {
                        // Routes using the address as preferred source go silently.
                        f.resync.add(TableId::Routes4);
                    }
                }
            }
            RTM_NEWROUTE => self.route_event(m, gen, false, &mut f),
            RTM_DELROUTE => self.route_event(m, gen, true, &mut f),
            RTM_NEWNEIGH => {
                if let Some(k) = NeighKey::from_msg(m) {
                    self.neigh[fam_of_key(k.dst.is_ipv6())].put(k, normalize(m), gen);
                }
            }
            RTM_DELNEIGH => {
                if let Some(k) = NeighKey::from_msg(m) {
                    self.neigh[fam_of_key(k.dst.is_ipv6())].remove(&k);
                }
            }
            RTM_NEWNEXTHOP => {
                if let Some(k) = NexthopKey::from_msg(m) {
                    self.nexthops.put(k, normalize(m), gen);
                }
            }
            RTM_DELNEXTHOP => {
                if let Some(k) = NexthopKey::from_msg(m) {
                    self.nexthops.remove(&k);
                }
                // Groups that held the deleted member change or go (notified, but a group
                // emptied by a silent device flush is not): re-dump the objects too.
                f.resync.add(TableId::Nexthops);
            }
            RTM_NEWRULE | RTM_DELRULE => {
                if let Some(i) = rule_family(m) {
                    let rules = &self.rules[i];
                    if m.ty() == RTM_NEWRULE {
                        rules.add(m);
                    } else {
                        rules.remove(m);
                    }
                    if rules.needs_resync_on_change() {
                        f.resync.add(RULES[i]);
                    }
                }
            }
            t if t == nfnl_msg_type(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_NEW) => {
                let update = m.flags() & NLM_F_CREATE == 0;
                self.ct.upsert(m, gen, update);
            }
            t if t == nfnl_msg_type(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_DELETE) => {
                self.ct.remove_msg(m);
            }
            _ => {}
        }
        f
    }

    fn link_event(&self, m: &Message<'_>, gen: u64, del: bool, f: &mut Followup) {
        let Ok((h, _)) = m.family_header::<IfInfoMsg>() else {
            return;
        };
        // AF_BRIDGE and other per-family link notifications are not the link itself.
        if h.family != AF_UNSPEC || h.index <= 0 {
            return;
        }
        let k = LinkKey {
            ifindex: h.index as u32,
        };
        const STATE: u32 = IFF_UP | IFF_LOWER_UP | IFF_RUNNING;
        // Rules naming an interface attach or detach silently when it comes, goes or is
        // renamed.
        let old_name = self.links.with(&k, |e| link_name(e.messages()));
        if del || old_name != Some(link_name(m.bytes())) {
            for (i, t) in RULES.into_iter().enumerate() {
                if self.rules[i].needs_resync_on_link() {
                    f.resync.add(t);
                }
            }
        }
        if del {
            self.links.remove(&k);
            let idx = k.ifindex;
            for (s, t) in self.addrs.iter().zip([TableId::Addrs4, TableId::Addrs6]) {
                s.remove_where(|a, e| {
                    let hit = a.ifindex == idx;
                    if hit {
                        f.removed.push((t, e.messages().to_vec()));
                    }
                    hit
                });
            }
            for (s, t) in self.neigh.iter().zip([TableId::Neigh4, TableId::Neigh6]) {
                s.remove_where(|n, e| {
                    let hit = n.ifindex == idx;
                    if hit {
                        f.removed.push((t, e.messages().to_vec()));
                    }
                    hit
                });
            }
            // Routes and nexthop objects through the link vanish without notification.
            f.resync.add(TableId::Routes4);
            f.resync.add(TableId::Routes6);
            f.resync.add(TableId::Nexthops);
            return;
        }
        let old_flags = self.links.with(&k, |e| {
            e.iter()
                .next()
                .and_then(Result::ok)
                .and_then(|om| om.family_header::<IfInfoMsg>().ok())
                .map(|(oh, _)| oh.flags)
        });
        self.links.put(k, normalize(m), gen);
        let changed = match old_flags.flatten() {
            Some(of) => (of ^ h.flags) & STATE != 0,
            None => false,
        };
        if changed && h.flags & STATE != STATE {
            // Carrier or admin state lost: routes are removed or flagged silently,
            // neighbours are flushed and nexthop objects through the link deleted.
            for t in [
                TableId::Routes4,
                TableId::Routes6,
                TableId::Neigh4,
                TableId::Neigh6,
                TableId::Nexthops,
            ] {
                f.resync.add(t);
            }
        } else if changed {
            // Coming up changes RTNH_F_LINKDOWN flags without a notification.
            f.resync.add(TableId::Routes4);
            f.resync.add(TableId::Routes6);
            f.resync.add(TableId::Nexthops);
        }
    }

    fn route_event(&self, m: &Message<'_>, gen: u64, del: bool, f: &mut Followup) {
        let Some(i) = route_info(m) else { return };
        if i.cloned {
            return;
        }
        let v6 = i.key.dst.is_ipv6();
        let store = &self.routes[fam_of_key(v6)];
        let table = if v6 {
            TableId::Routes6
        } else {
            TableId::Routes4
        };
        let new = normalize(m);
        let old = store.get_bytes(&i.key);
        if del {
            let Some(old) = old else { return };
            let (left, resync) = routes::apply_del(&old, &new, v6);
            if resync {
                f.resync.add(table);
            }
            match left {
                Some(b) => {
                    store.put(i.key, b, gen);
                }
                None => {
                    store.remove(&i.key);
                }
            }
        } else {
            let e = routes::apply_new(old.as_deref(), &new, m.flags(), v6);
            store.put(i.key, e, gen);
        }
    }
}

/// The rule tables, by family index.
const RULES: [TableId; 2] = [TableId::Rules4, TableId::Rules6];

/// The family index of an IPv4 or IPv6 rule message (multicast-routing and other families'
/// rules are not mirrored).
fn rule_family(m: &Message<'_>) -> Option<usize> {
    let (h, _) = m.family_header::<FibRuleHdr>().ok()?;
    match h.family {
        AF_INET => Some(0),
        AF_INET6 => Some(1),
        _ => None,
    }
}

/// `IFLA_IFNAME` of the (first) link message in `msgs`.
fn link_name(msgs: &[u8]) -> Option<Vec<u8>> {
    let (m, _) = Message::parse(msgs).ok()?;
    let (_, attrs) = m.family_header::<IfInfoMsg>().ok()?;
    let a = attrs.find(IFLA_IFNAME)?.ok()?;
    Some(a.payload().to_vec())
}

/// Inserts a dumped object: the fast insert when the key is new, else the comparing `put`.
/// Returns whether the store changed.
fn put_dump<K: crate::keys::StoreKey>(store: &Store<K>, key: K, m: &Message<'_>, gen: u64) -> bool {
    match store.insert_new(key, normalize(m), gen) {
        Ok(()) => true,
        Err(bytes) => store.put(key, bytes, gen),
    }
}

/// Number of route stripe locks (see [`Tables::apply_dump`]).
const ROUTE_LOCKS: usize = 64;

fn stripe(k: &RouteKey) -> usize {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    k.hash(&mut h);
    h.finish() as usize % ROUTE_LOCKS
}

fn fam_of_key(v6: bool) -> usize {
    usize::from(v6)
}

/// Index of a family's store (`AF_INET` → 0, `AF_INET6` → 1).
pub(crate) fn family_index(family: u8) -> usize {
    fam(family)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nlkit_shm::{MapReader, RegionView};
    use nlkit_view::schema::{map_layout, table_object};

    #[test]
    fn every_table_is_published_in_one_region() {
        let c = Capacities {
            links: 64,
            addrs: 64,
            routes: 1000,
            neigh: 64,
            nexthops: 64,
            conntrack: 1000,
        };
        let t = Tables::new(&c).unwrap();
        let fd = t.region().fd().try_clone_to_owned().unwrap();
        let view = RegionView::map(fd).unwrap();
        for id in TableId::ALL {
            let off = view.find(table_object(id)).unwrap();
            assert_eq!(off, t.map(id).offset(), "{id:?}");
            let r = MapReader::open(&view, off).unwrap();
            let want = map_layout(id, 1);
            assert_eq!(r.layout().key_words, want.key_words, "{id:?}");
            assert_eq!(r.layout().unique, want.unique, "{id:?}");
            assert_eq!(r.count().unwrap(), 0);
        }
        assert!(t.memory_bytes(TableId::Conntrack) > 0);
        assert!(t.region_bytes() >= nlkit_shm::HEADER_BYTES);
    }
}
