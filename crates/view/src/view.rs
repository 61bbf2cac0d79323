//! [`MirrorView`]: the mirror's region, mapped read-only; lookups and walks of the rtnetlink
//! tables.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::OnceLock;

use nlkit_shm::map::CheckedHeader;
use nlkit_shm::{Entry, MapReader, RegionView, ShmError, Walk};
use nlkit_table::TableKey;
use nlkit_wire::consts::{AF_INET, AF_INET6, IFLA_IFNAME};
use nlkit_wire::{IfInfoMsg, Message, Messages};

use crate::error::{Result, ViewError};
use crate::schema::table_object;
use crate::{AddrKey, LinkKey, NeighKey, NexthopKey, Route4Key, RouteKey, TableId};

/// The mirror's tables and change feed, mapped read-only from its shared region.
///
/// [`open`](MirrorView::open) is the only step with system calls (connect, one request, one
/// `recvmsg` with the memfd, `mmap`); every read after it is loads from the mapping, with no
/// system call unless the region grew since the last read that went past its end (then one
/// `fstat`). Reads are lock-free and validated (see `nlkit-shm`): a read that races with the
/// mirror's writer retries, and one that keeps racing gives `ShmError::Contended`.
///
/// `MirrorView` is `Send + Sync`: share it between threads by reference (`Arc`), every
/// method takes `&self`. Records are the kernel's message bytes, so the typed views of
/// `nlkit-route` and `nlkit-conntrack` parse them.
///
/// ```no_run
/// use nlkit_view::MirrorView;
/// let view = MirrorView::open("/run/nlkit/mirror.sock")?;
/// let mut out = Vec::new();
/// if view.link(1, &mut out)? {
///     println!("lo: {} bytes", out.len());
/// }
/// # Ok::<(), nlkit_view::ViewError>(())
/// ```
#[derive(Debug)]
pub struct MirrorView {
    pub(crate) region: RegionView,
    /// Each table's map offset, as found in the directory at open (`None`: not published
    /// then; looked up again on use).
    tables: [Option<u64>; TableId::ALL.len()],
    /// Each table's map header once validated (at the offset in `tables`): a reader of it
    /// is then made without reading and validating the header again.
    headers: [OnceLock<CheckedHeader>; TableId::ALL.len()],
}

impl MirrorView {
    /// Connects to the mirror listening at `path`, takes its region over the socket and maps
    /// it read-only.
    ///
    /// Errors: [`ViewError::Socket`] (no mirror there, or one run by another uid than ours
    /// and not root), [`ViewError::Refused`] (the mirror refuses us: `EPERM` for another
    /// uid; see [`ViewError::is_permission_denied`]), [`ViewError::Version`],
    /// [`ViewError::Shm`] (the region is not sealed or its header is not valid).
    pub fn open(path: impl AsRef<Path>) -> Result<MirrorView> {
        let fd = crate::open::request_region(path.as_ref())?;
        MirrorView::from_fd(fd)
    }

    /// Maps a region from its memfd (one obtained otherwise than by [`open`](Self::open)).
    pub fn from_fd(fd: OwnedFd) -> Result<MirrorView> {
        let region = RegionView::map(fd).map_err(ViewError::shm)?;
        Ok(MirrorView::from_region(region))
    }

    /// A view of a mapped region.
    pub fn from_region(region: RegionView) -> MirrorView {
        let mut tables = [None; TableId::ALL.len()];
        for t in TableId::ALL {
            tables[t as usize] = region.find(table_object(t)).ok();
        }
        MirrorView {
            region,
            tables,
            headers: Default::default(),
        }
    }

    /// The mapped region (for readers of objects this crate does not know).
    pub fn region(&self) -> &RegionView {
        &self.region
    }

    /// Whether the mirror publishes table `t`.
    pub fn has_table(&self, t: TableId) -> bool {
        self.table_offset(t).is_ok()
    }

    fn table_offset(&self, t: TableId) -> Result<u64> {
        if let Some(off) = self.tables[t as usize] {
            return Ok(off);
        }
        match self.region.find(table_object(t)) {
            Ok(off) => Ok(off),
            Err(ShmError::NotFound(_)) => Err(ViewError::NoTable(t)),
            Err(e) => Err(ViewError::shm(e)),
        }
    }

    /// A lock-free reader of table `t`'s map (validates the map's header the first time;
    /// cheap).
    pub fn table(&self, t: TableId) -> Result<MapReader<'_, RegionView>> {
        let off = self.table_offset(t)?;
        let header = &self.headers[t as usize];
        if self.tables[t as usize] != Some(off) {
            // Not published at open: looked up each time, so nothing is kept for it.
            return MapReader::open(&self.region, off).map_err(ViewError::shm);
        }
        if let Some(h) = header.get() {
            return MapReader::with_header(&self.region, h).map_err(ViewError::shm);
        }
        let reader = MapReader::open(&self.region, off).map_err(ViewError::shm)?;
        let _ = header.set(reader.header_checked());
        Ok(reader)
    }

    /// Looks `key` up in table `t`'s first direction and appends the entry's record (its
    /// messages, back to back) to `out`.
    pub fn get_words(&self, t: TableId, key: &[u64], out: &mut Vec<u8>) -> Result<Option<Entry>> {
        self.table(t)?.get(0, key, out).map_err(ViewError::shm)
    }

    fn get<K: TableKey>(&self, t: TableId, key: &K, out: &mut Vec<u8>) -> Result<bool>
    where
        K::Words: AsRef<[u64]>,
    {
        Ok(self.get_words(t, key.to_words().as_ref(), out)?.is_some())
    }

    /// The link with interface index `ifindex`: appends its `RTM_NEWLINK` message to `out`;
    /// returns whether there is one.
    pub fn link(&self, ifindex: u32, out: &mut Vec<u8>) -> Result<bool> {
        self.get(TableId::Links, &LinkKey { ifindex }, out)
    }

    /// The link named `name` (`IFLA_IFNAME`): a walk of the links table (a small table).
    pub fn link_by_name(&self, name: &str, out: &mut Vec<u8>) -> Result<bool> {
        let mut found = false;
        let w = self.walk(TableId::Links, |_, rec| {
            let named = Messages::new(rec)
                .flatten()
                .any(|m| ifname(&m) == Some(name));
            if named {
                out.extend_from_slice(rec);
                found = true;
            }
            !named
        })?;
        if !found && w.skipped > 0 {
            // The walk skipped a link the mirror kept mid-change: it may be this one.
            return Err(ViewError::Shm(ShmError::Contended));
        }
        Ok(found)
    }

    /// The address `key` (IPv4 or IPv6 table by the key's address).
    pub fn addr(&self, key: &AddrKey, out: &mut Vec<u8>) -> Result<bool> {
        let t = if key.local.is_ipv6() {
            TableId::Addrs6
        } else {
            TableId::Addrs4
        };
        self.get(t, key, out)
    }

    /// The neighbour `key`.
    pub fn neigh(&self, key: &NeighKey, out: &mut Vec<u8>) -> Result<bool> {
        let t = if key.dst.is_ipv6() {
            TableId::Neigh6
        } else {
            TableId::Neigh4
        };
        self.get(t, key, out)
    }

    /// The route entry `key`: one message, or several for IPv4 routes added with
    /// `ip route append` under the same key.
    pub fn route(&self, key: &RouteKey, out: &mut Vec<u8>) -> Result<bool> {
        match Route4Key::new(*key) {
            Some(k4) => self.get(TableId::Routes4, &k4, out),
            None => self.get(TableId::Routes6, key, out),
        }
    }

    /// The nexthop object `id`.
    pub fn nexthop(&self, id: u32, out: &mut Vec<u8>) -> Result<bool> {
        self.get(TableId::Nexthops, &NexthopKey { id }, out)
    }

    /// Calls `f` with every entry of table `t` and its record (the entry's messages, back to
    /// back; for conntrack the *packed* record: use [`ct_walk`](Self::ct_walk)) in slot
    /// order, until `f` returns false. [`Walk::consistent`] says whether the walk saw no
    /// change at all (a snapshot); otherwise each entry is still whole and one the mirror
    /// published, and every entry present throughout the walk was handed out, but entries
    /// added or removed meanwhile may be missing. [`Walk::skipped`] counts slots the
    /// mirror kept mid-change for the walk's whole wait: non-zero means the walk may have
    /// missed entries that were there (treat it as an interrupted dump, `NLM_F_DUMP_INTR`).
    pub fn walk(&self, t: TableId, f: impl FnMut(&Entry, &[u8]) -> bool) -> Result<Walk> {
        self.table(t)?.walk(f).map_err(ViewError::shm)
    }

    /// Calls `f` with every message of table `t` (not conntrack) until it returns false.
    /// Rules and nexthops come in the kernel's order (by rank, by id), the other tables in
    /// slot order. A record that does not split into messages is [`ViewError::BadRecord`].
    pub fn walk_messages(
        &self,
        t: TableId,
        mut f: impl FnMut(&Message<'_>) -> bool,
    ) -> Result<Walk> {
        if matches!(t, TableId::Rules4 | TableId::Rules6 | TableId::Nexthops) {
            return self.walk_sorted(t, f);
        }
        let mut bad = false;
        let w = self.walk(t, |_, rec| match each_message(rec, &mut f) {
            Some(go_on) => go_on,
            None => {
                bad = true;
                false
            }
        })?;
        if bad {
            return Err(ViewError::BadRecord(t));
        }
        Ok(w)
    }

    /// Rules (by rank) and nexthops (by id): collected, sorted by the first key word, then
    /// handed out (small tables).
    fn walk_sorted(&self, t: TableId, mut f: impl FnMut(&Message<'_>) -> bool) -> Result<Walk> {
        let mut all: Vec<(u64, Vec<u8>)> = Vec::new();
        let w = self.walk(t, |e, rec| {
            all.push((e.keys[0][0], rec.to_vec()));
            true
        })?;
        all.sort_unstable_by_key(|(k, _)| *k);
        for (_, rec) in &all {
            match each_message(rec, &mut f) {
                Some(true) => {}
                Some(false) => break,
                None => return Err(ViewError::BadRecord(t)),
            }
        }
        Ok(w)
    }

    /// Every route of `family` (`AF_INET` or `AF_INET6`; another is
    /// [`ViewError::Family`]), message by message, until `f` returns false.
    pub fn routes(&self, family: u8, f: impl FnMut(&Message<'_>) -> bool) -> Result<Walk> {
        self.walk_messages(family_table(family, TableId::Routes4, TableId::Routes6)?, f)
    }

    /// Every address of `family`.
    pub fn addrs(&self, family: u8, f: impl FnMut(&Message<'_>) -> bool) -> Result<Walk> {
        self.walk_messages(family_table(family, TableId::Addrs4, TableId::Addrs6)?, f)
    }

    /// Every neighbour of `family`.
    pub fn neighs(&self, family: u8, f: impl FnMut(&Message<'_>) -> bool) -> Result<Walk> {
        self.walk_messages(family_table(family, TableId::Neigh4, TableId::Neigh6)?, f)
    }

    /// Every policy rule of `family`, in the kernel's order (by rank).
    pub fn rules(&self, family: u8, f: impl FnMut(&Message<'_>) -> bool) -> Result<Walk> {
        self.walk_messages(family_table(family, TableId::Rules4, TableId::Rules6)?, f)
    }

    /// Every link.
    pub fn links(&self, f: impl FnMut(&Message<'_>) -> bool) -> Result<Walk> {
        self.walk_messages(TableId::Links, f)
    }

    /// Every nexthop object, by id.
    pub fn nexthops(&self, f: impl FnMut(&Message<'_>) -> bool) -> Result<Walk> {
        self.walk_messages(TableId::Nexthops, f)
    }
}

/// The table of `family`: `v4` for `AF_INET`, `v6` for `AF_INET6`.
fn family_table(family: u8, v4: TableId, v6: TableId) -> Result<TableId> {
    match family {
        AF_INET => Ok(v4),
        AF_INET6 => Ok(v6),
        other => Err(ViewError::Family(other)),
    }
}

/// Calls `f` with each message of `rec`: `Some(false)` when `f` stopped, `None` when `rec`
/// does not split into whole messages.
pub(crate) fn each_message(rec: &[u8], f: &mut impl FnMut(&Message<'_>) -> bool) -> Option<bool> {
    for m in Messages::new(rec) {
        if !f(&m.ok()?) {
            return Some(false);
        }
    }
    Some(true)
}

/// A link message's `IFLA_IFNAME`.
fn ifname<'a>(m: &Message<'a>) -> Option<&'a str> {
    let (_, attrs) = m.family_header::<IfInfoMsg>().ok()?;
    attrs.find(IFLA_IFNAME)?.ok()?.str().ok()
}
