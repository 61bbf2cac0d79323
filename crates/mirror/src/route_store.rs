//! [`RouteStore`]: a per-family route table, with a compact index key for IPv4.
//!
//! A route key has two addresses; as index words an IPv6 key takes six (48 bytes in every
//! index slot), an IPv4 key three. A million IPv4 routes are the common big table, so the
//! IPv4 store files its entries under [`Route4Key`] (24 bytes) and the IPv6 store under the
//! full [`RouteKey`]; both are reached through [`RouteStore`] with a `RouteKey`. (The shared
//! maps' layouts, `nlkit_view::schema::map_layout`, say the same: 3 key words for
//! `Routes4`, 6 for `Routes6`.)

use std::sync::Arc;

use nlkit_shm::{Region, SharedMap, ShmError};
use nlkit_table::ChangeSeq;

use crate::keys::{Route4Key, RouteKey, TableId};
use crate::store::{Store, StoredEntry};

/// The routes of one family.
///
/// Concurrency contract: that of [`Store`].
///
/// ```
/// let s = nlkit_mirror::RouteStore::new(false, 64).unwrap();
/// assert!(s.is_empty());
/// ```
#[derive(Debug)]
pub enum RouteStore {
    /// IPv4 routes, filed under [`Route4Key`].
    V4(Store<Route4Key>),
    /// IPv6 routes.
    V6(Store<RouteKey>),
}

/// Calls `$body` with `$s` bound to the inner store and `$k` to `$key` in that store's key
/// type; `$none` when the key is of the other family.
macro_rules! with_store {
    ($self:expr, $key:expr, |$s:ident, $k:ident| $body:expr, $none:expr) => {
        match $self {
            RouteStore::V4($s) => match Route4Key::new(*$key) {
                Some($k) => $body,
                None => $none,
            },
            RouteStore::V6($s) => match $key.dst.is_ipv6() {
                true => {
                    let $k = *$key;
                    $body
                }
                false => $none,
            },
        }
    };
}

impl RouteStore {
    /// An empty store for IPv6 (`v6`) or IPv4 routes, of `capacity` entries, in a region of
    /// its own.
    pub fn new(v6: bool, capacity: usize) -> Result<Self, ShmError> {
        Ok(if v6 {
            RouteStore::V6(Store::new(capacity)?)
        } else {
            RouteStore::V4(Store::new(capacity)?)
        })
    }

    /// The store of `Routes6` (`v6`) or `Routes4` in `region`.
    pub(crate) fn create(
        region: &Arc<Region>,
        v6: bool,
        capacity: usize,
    ) -> Result<Self, ShmError> {
        Ok(if v6 {
            RouteStore::V6(Store::create(region, TableId::Routes6, capacity)?)
        } else {
            RouteStore::V4(Store::create(region, TableId::Routes4, capacity)?)
        })
    }

    /// The shared map holding the routes.
    pub(crate) fn map(&self) -> &SharedMap {
        match self {
            RouteStore::V4(s) => s.map(),
            RouteStore::V6(s) => s.map(),
        }
    }

    /// The change sequence.
    pub fn seq(&self) -> &ChangeSeq {
        match self {
            RouteStore::V4(s) => &s.seq,
            RouteStore::V6(s) => &s.seq,
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        match self {
            RouteStore::V4(s) => s.len(),
            RouteStore::V6(s) => s.len(),
        }
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Inserts refused because the table was full.
    pub fn full_count(&self) -> u64 {
        match self {
            RouteStore::V4(s) => s.full_count(),
            RouteStore::V6(s) => s.full_count(),
        }
    }

    /// A copy of the entry's message bytes.
    pub fn get_bytes(&self, key: &RouteKey) -> Option<Vec<u8>> {
        with_store!(self, key, |s, k| s.get_bytes(&k), None)
    }

    /// Calls `f` with the entry.
    pub fn with<R>(&self, key: &RouteKey, f: impl FnOnce(StoredEntry<'_>) -> R) -> Option<R> {
        with_store!(self, key, |s, k| s.with(&k, f), None)
    }

    /// See [`Store::put`]; a key of the other family changes nothing.
    pub(crate) fn put(&self, key: RouteKey, msgs: Vec<u8>, gen: u64) -> bool {
        with_store!(self, &key, |s, k| s.put(k, msgs, gen), false)
    }

    /// See `Store::insert_new`.
    pub(crate) fn insert_new(&self, key: RouteKey, msgs: Vec<u8>, gen: u64) -> Result<(), Vec<u8>> {
        with_store!(self, &key, |s, k| s.insert_new(k, msgs, gen), Ok(()))
    }

    /// Removes `key`; returns whether it was present.
    pub(crate) fn remove(&self, key: &RouteKey) -> bool {
        with_store!(self, key, |s, k| s.remove(&k), false)
    }

    /// See [`Store::sweep`].
    pub(crate) fn sweep(
        &self,
        gen: u64,
        mut scope: impl FnMut(&RouteKey, StoredEntry<'_>) -> bool,
    ) -> usize {
        match self {
            RouteStore::V4(s) => s.sweep(gen, |k, e| scope(&k.key(), e)),
            RouteStore::V6(s) => s.sweep(gen, scope),
        }
    }

    /// See [`Store::for_each`] (the same completeness result).
    pub fn for_each(&self, f: impl FnMut(StoredEntry<'_>) -> bool) -> bool {
        match self {
            RouteStore::V4(s) => s.for_each(f),
            RouteStore::V6(s) => s.for_each(f),
        }
    }

    /// See [`Store::memory_bytes`].
    pub fn memory_bytes(&self) -> usize {
        match self {
            RouteStore::V4(s) => s.memory_bytes(),
            RouteStore::V6(s) => s.memory_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nlkit_table::TableKey;
    use nlkit_wire::consts::*;
    use nlkit_wire::{MessageBuilder, Messages, RtMsg};

    fn route(dst: [u8; 4], prio: u32) -> (RouteKey, Vec<u8>) {
        let mut b = MessageBuilder::new();
        b.begin(RTM_NEWROUTE, 0, 0);
        b.header(&RtMsg {
            family: AF_INET,
            dst_len: 32,
            table: RT_TABLE_MAIN,
            ..Default::default()
        });
        b.attr_bytes(RTA_DST, &dst);
        b.attr_u32(RTA_PRIORITY, prio);
        b.finish().unwrap();
        let bytes = b.as_bytes().to_vec();
        let m = Messages::new(&bytes).next().unwrap().unwrap();
        (RouteKey::from_msg(&m).unwrap(), bytes)
    }

    #[test]
    fn ipv4_routes_use_the_compact_key() {
        let s = RouteStore::new(false, 64).unwrap();
        let (k, m) = route([10, 0, 0, 1], 7);
        assert!(s.put(k, m.clone(), 1));
        assert_eq!(s.get_bytes(&k), Some(m));
        let v6 = RouteKey {
            dst: "fd00::1".parse().unwrap(),
            src: "::".parse().unwrap(),
            ..k
        };
        assert!(s.get_bytes(&v6).is_none() && !s.remove(&v6));
        assert_eq!(s.sweep(2, |key, _| *key == k), 1);
        assert!(s.is_empty());
        let c = Route4Key::new(k).unwrap();
        assert_eq!(Route4Key::from_words(&c.to_words()), c);
    }
}
