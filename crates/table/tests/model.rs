//! Model-based tests against `std::collections::HashMap`: single-thread semantics of both
//! tables, including capacity, replacement, both directions, clashes and expiry.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use nlkit_table::{
    Clock, ConnConfig, ConnInsertError, ConnKey, ConnTable, Direction, GcBudget, InsertErrorKind,
    ManualClock, NewConn, NullsTable, WordTable,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum MapOp {
    Insert(u64, u64),
    Replace(u64, u64),
    Remove(u64),
    Get(u64),
    Contains(u64),
    SetWord(u64, u64),
    Retain(u64),
    Dump,
}

fn map_op() -> impl Strategy<Value = MapOp> {
    let k = 0u64..24;
    prop_oneof![
        (k.clone(), any::<u64>()).prop_map(|(k, v)| MapOp::Insert(k, v)),
        (k.clone(), any::<u64>()).prop_map(|(k, v)| MapOp::Replace(k, v)),
        k.clone().prop_map(MapOp::Remove),
        k.clone().prop_map(MapOp::Get),
        k.clone().prop_map(MapOp::Contains),
        (k.clone(), any::<u64>()).prop_map(|(k, w)| MapOp::SetWord(k, w)),
        (2u64..5).prop_map(MapOp::Retain),
        Just(MapOp::Dump),
    ]
}

const CAP: usize = 16;

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn nulls_table_matches_hashmap(ops in prop::collection::vec(map_op(), 1..200), buckets in 1usize..9) {
        let t: NullsTable<u64, u64> = NullsTable::with_buckets(CAP, buckets);
        let mut m: HashMap<u64, (u64, u64)> = HashMap::new();
        for op in ops {
            match op {
                MapOp::Insert(k, v) => {
                    let r = t.insert(k, v);
                    if m.contains_key(&k) {
                        let e = r.unwrap_err();
                        prop_assert_eq!((e.kind, e.value), (InsertErrorKind::Exists, v));
                    } else if m.len() == CAP {
                        prop_assert_eq!(r.unwrap_err().kind, InsertErrorKind::Full);
                    } else {
                        prop_assert!(r.is_ok());
                        m.insert(k, (v, 0));
                    }
                }
                MapOp::Replace(k, v) => {
                    // A replacement needs a fresh slot before the old one is released.
                    let r = t.insert_or_replace(k, v);
                    if m.len() == CAP {
                        prop_assert_eq!(r.unwrap_err().kind, InsertErrorKind::Full);
                    } else {
                        prop_assert_eq!(r.unwrap(), m.insert(k, (v, 0)).is_some());
                    }
                }
                MapOp::Remove(k) => prop_assert_eq!(t.remove(&k), m.remove(&k).is_some()),
                MapOp::Get(k) => {
                    let got = t.get(&k).map(|e| (e.key(), *e, e.word()));
                    prop_assert_eq!(got, m.get(&k).map(|&(v, w)| (k, v, w)));
                }
                MapOp::Contains(k) => {
                    prop_assert_eq!(t.contains_key(&k), m.contains_key(&k));
                    prop_assert_eq!(t.peek_word(&k), m.get(&k).map(|p| p.1));
                }
                MapOp::SetWord(k, w) => {
                    if let Some(e) = t.get(&k) {
                        e.set_word(w);
                    }
                    if let Some(p) = m.get_mut(&k) {
                        p.1 = w;
                    }
                }
                MapOp::Retain(d) => {
                    let before = m.len();
                    m.retain(|k, _| k % d != 0);
                    prop_assert_eq!(t.retain(|k, _| k % d != 0), before - m.len());
                }
                MapOp::Dump => {
                    let stamp = t.change_stamp();
                    let mut got: Vec<(u64, u64)> = t.iter().map(|e| (e.key(), *e)).collect();
                    got.sort_unstable();
                    let mut want: Vec<(u64, u64)> = m.iter().map(|(&k, &(v, _))| (k, v)).collect();
                    want.sort_unstable();
                    prop_assert_eq!(got, want);
                    prop_assert_eq!(t.change_stamp(), stamp);
                }
            }
            prop_assert_eq!(t.len(), m.len());
        }
        // Every slot is reusable: after clearing, CAP fresh inserts succeed.
        t.retain(|_, _| false);
        for k in 100..100 + CAP as u64 {
            prop_assert!(t.insert(k, k).is_ok());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// `WordTable`: as the boxed table, except that a replace of a present key is in place
    /// (it needs no free slot), and words are the values.
    #[test]
    fn word_table_matches_hashmap(ops in prop::collection::vec(map_op(), 1..200), buckets in 1usize..9) {
        let t: WordTable<u64> = WordTable::with_buckets(CAP, buckets);
        let mut m: HashMap<u64, u64> = HashMap::new();
        for op in ops {
            match op {
                MapOp::Insert(k, v) => {
                    let r = t.insert(k, v);
                    if m.contains_key(&k) {
                        let e = r.unwrap_err();
                        prop_assert_eq!((e.kind, e.value), (InsertErrorKind::Exists, v));
                    } else if m.len() == CAP {
                        prop_assert_eq!(r.unwrap_err().kind, InsertErrorKind::Full);
                    } else {
                        prop_assert!(r.is_ok());
                        m.insert(k, v);
                    }
                }
                MapOp::Replace(k, v) | MapOp::SetWord(k, v) => {
                    let r = t.insert_or_replace(k, v);
                    if m.len() == CAP && !m.contains_key(&k) {
                        prop_assert_eq!(r.unwrap_err().kind, InsertErrorKind::Full);
                    } else {
                        prop_assert_eq!(r.unwrap(), m.insert(k, v).is_some());
                    }
                }
                MapOp::Remove(k) => prop_assert_eq!(t.remove(&k), m.remove(&k).is_some()),
                MapOp::Get(k) | MapOp::Contains(k) => {
                    prop_assert_eq!(t.get(&k), m.get(&k).copied());
                    prop_assert_eq!(t.contains_key(&k), m.contains_key(&k));
                    // The batched read agrees with the model for every key (two groups).
                    let keys: Vec<u64> = (0..24).chain([k]).collect();
                    let mut out = vec![None; keys.len()];
                    t.get_batch(&keys, &mut out);
                    let want: Vec<_> = keys.iter().map(|k| m.get(k).copied()).collect();
                    prop_assert_eq!(out, want);
                }
                MapOp::Retain(d) => {
                    let before = m.len();
                    m.retain(|k, _| k % d != 0);
                    prop_assert_eq!(t.retain(|k, _| k % d != 0), before - m.len());
                }
                MapOp::Dump => {
                    let stamp = t.change_stamp();
                    let mut got = Vec::new();
                    t.retain(|k, v| { got.push((k, v)); true });
                    got.sort_unstable();
                    let mut want: Vec<(u64, u64)> = m.iter().map(|(&k, &v)| (k, v)).collect();
                    want.sort_unstable();
                    prop_assert_eq!(got, want);
                    prop_assert_eq!(t.change_stamp(), stamp);
                }
            }
            prop_assert_eq!(t.len(), m.len());
        }
        t.retain(|_, _| false);
        for k in 100..100 + CAP as u64 {
            prop_assert!(t.insert(k, k).is_ok());
        }
    }
}

/// Regression (seed `2c5c5e44…` in `model.proptest-regressions`): with every slot in use,
/// `insert_or_replace` of a *present* key reported `Exists` instead of `Full`; a plain
/// `insert` of a present key still reports `Exists`, and one of an absent key `Full`.
#[test]
fn upsert_of_present_key_when_full_is_full() {
    let t: NullsTable<u64, u64> = NullsTable::with_buckets(CAP, 2);
    for k in 0..CAP as u64 {
        t.insert(k, k).unwrap();
    }
    let e = t.insert_or_replace(3, 33).unwrap_err();
    assert_eq!((e.kind, e.value), (InsertErrorKind::Full, 33));
    assert_eq!(t.get(&3).map(|e| *e), Some(3));
    assert_eq!(t.insert(3, 34).unwrap_err().kind, InsertErrorKind::Exists);
    assert_eq!(t.insert(99, 99).unwrap_err().kind, InsertErrorKind::Full);
    assert_eq!(t.len(), CAP);
    assert_eq!(t.stats().full, 2);
}

#[derive(Debug, Clone)]
enum ConnOp {
    Insert(usize, usize, u32),
    Get(usize),
    Peek(usize),
    Remove(usize),
    Advance(u32),
    Gc,
    RemoveZone(u16),
}

const POOL: usize = 12;

fn tuple(id: usize) -> ConnKey {
    let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, (id % 3) as u8));
    let b = IpAddr::V4(Ipv4Addr::new(10, 1, 0, 1));
    ConnKey::new(a, 1000 + (id / 3) as u16, b, 80, 6).with_zone((id % 2) as u16)
}

fn conn_op() -> impl Strategy<Value = ConnOp> {
    let id = 0..POOL;
    prop_oneof![
        3 => (id.clone(), id.clone(), 1u32..100).prop_map(|(a, b, t)| ConnOp::Insert(a, b, t)),
        2 => id.clone().prop_map(ConnOp::Get),
        1 => id.clone().prop_map(ConnOp::Peek),
        1 => id.clone().prop_map(ConnOp::Remove),
        1 => (1u32..60).prop_map(ConnOp::Advance),
        1 => Just(ConnOp::Gc),
        1 => (0u16..2).prop_map(ConnOp::RemoveZone),
    ]
}

#[derive(Debug, Clone, Copy)]
struct ModelConn {
    orig: usize,
    reply: usize,
    expires: u32,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn conn_table_matches_model(ops in prop::collection::vec(conn_op(), 1..200)) {
        let clock = ManualClock::new(u32::MAX - 500); // exercise wrap-around
        let t: ConnTable = ConnTable::new(
            ConnConfig { max: 8, buckets: 4, clock: Clock::Manual(clock.clone()) });
        let mut m: Vec<ModelConn> = Vec::new();
        let expired = |c: &ModelConn, now: u32| (c.expires.wrapping_sub(now) as i32) <= 0;
        let find = |m: &[ModelConn], id: usize| m.iter().position(|c| c.orig == id || c.reply == id);
        for op in ops {
            let now = clock.now_ms();
            match op {
                ConnOp::Insert(o, r, timeout) => {
                    let res = t.insert(NewConn::new(tuple(o), tuple(r), timeout, ())).map(|_| ());
                    if o == r {
                        prop_assert_eq!(res, Err(ConnInsertError::SameTuple));
                        continue;
                    }
                    m.retain(|c| !(expired(c, now) && [o, r].iter().any(|&x| c.orig == x || c.reply == x)));
                    if find(&m, o).is_some() {
                        prop_assert_eq!(res, Err(ConnInsertError::Clash(Direction::Original)));
                    } else if find(&m, r).is_some() {
                        prop_assert_eq!(res, Err(ConnInsertError::Clash(Direction::Reply)));
                    } else {
                        prop_assert_eq!(res, Ok(()));
                        m.push(ModelConn { orig: o, reply: r, expires: now.wrapping_add(timeout) });
                    }
                }
                ConnOp::Get(id) | ConnOp::Peek(id) => {
                    let want = match find(&m, id) {
                        Some(i) if expired(&m[i], now) => {
                            if matches!(op, ConnOp::Get(_)) {
                                m.remove(i);
                            }
                            None
                        }
                        Some(i) => Some(if m[i].orig == id { Direction::Original } else { Direction::Reply }),
                        None => None,
                    };
                    if let ConnOp::Get(_) = op {
                        let got = t.get(&tuple(id));
                        if let Some(c) = &got {
                            prop_assert_eq!(c.tuple(c.direction()), tuple(id));
                        }
                        prop_assert_eq!(got.map(|c| c.direction()), want);
                    } else {
                        prop_assert_eq!(t.peek(&tuple(id)).map(|v| v.direction), want);
                        // The batched read agrees (the tuple twice, with another in between).
                        let mut out = [None; 3];
                        t.peek_batch(&[tuple(id), tuple(id ^ 1), tuple(id)], &mut out);
                        prop_assert_eq!(out[0].map(|v| v.direction), want);
                        prop_assert_eq!(out[2].map(|v| v.direction), want);
                    }
                }
                ConnOp::Remove(id) => {
                    let want = find(&m, id).map(|i| m.remove(i)).is_some();
                    prop_assert_eq!(t.remove(&tuple(id)), want);
                }
                ConnOp::Advance(ms) => clock.advance(ms),
                ConnOp::Gc => {
                    let before = m.len();
                    m.retain(|c| !expired(c, now));
                    let r = t.gc_step(GcBudget::default());
                    prop_assert!(r.pass_complete);
                    prop_assert_eq!(r.expired as usize, before - m.len());
                }
                ConnOp::RemoveZone(z) => {
                    let before = m.len();
                    m.retain(|c| tuple(c.orig).zone != z);
                    let n = t.remove_matching(|c| c.original().zone == z);
                    prop_assert_eq!(n, before - m.len());
                }
            }
            prop_assert_eq!(t.count(), m.len());
        }
    }
}
