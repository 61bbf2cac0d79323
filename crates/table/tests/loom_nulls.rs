//! loom models of the nulls table: lookup (refcounted and peek) versus delete-and-reuse of
//! the same slot, concurrent inserts of the same key, replace versus lookup, and
//! last-reference races.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use nlkit_table::{NullsTable, WordTable};

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(f);
}

/// A lookup racing with delete + reinsert of another key into the only slot returns the
/// right key and the value of the incarnation it pinned (Acquire refcount CAS, Release
/// publish, key recheck).
#[test]
fn lookup_vs_delete_and_reuse() {
    for other in [2u64, 3] {
        model(move || {
            let t = Arc::new(NullsTable::<u64, u64>::with_buckets(1, 2));
            t.insert(1, 10).unwrap();
            t.get(&1).unwrap().set_word(100);
            let r = {
                let t = t.clone();
                thread::spawn(move || {
                    if let Some(e) = t.get(&1) {
                        assert_eq!(e.key(), 1);
                        // The word is a loom atomic: it reveals a pinned incarnation other
                        // than the one validated (the boxed value is not loom-tracked).
                        assert_eq!(e.word(), 100);
                        assert_eq!(*e, 10);
                    }
                })
            };
            assert!(t.remove(&1));
            // May fail while the reader pins the slot.
            if t.insert(other, other * 10).is_ok() {
                t.get(&other).unwrap().set_word(other * 100);
            }
            r.join().unwrap();
            assert!(t.get(&1).is_none());
        });
    }
}

/// The reference-free read modes (`contains_key`, `peek_word`) never report the word of a
/// recycled slot's other incarnation.
#[test]
fn peek_vs_delete_and_reuse() {
    model(|| {
        let t = Arc::new(NullsTable::<u64, ()>::with_buckets(1, 2));
        t.insert(1, ()).unwrap();
        t.get(&1).unwrap().set_word(100);
        let r = {
            let t = t.clone();
            thread::spawn(move || {
                let w = t.peek_word(&1);
                assert!(w.is_none() || w == Some(100), "peeked {w:?}");
            })
        };
        assert!(t.remove(&1));
        // Reuse the only slot for another key with another word.
        if t.insert(2, ()).is_ok() {
            t.get(&2).unwrap().set_word(200);
        }
        r.join().unwrap();
    });
}

/// Two inserts of the same key: exactly one wins, the loser gets its value back, and a
/// lookup afterwards sees the winner's value.
#[test]
fn concurrent_inserts_of_same_key() {
    model(|| {
        let t = Arc::new(NullsTable::<u64, u64>::with_buckets(2, 2));
        let a = {
            let t = t.clone();
            thread::spawn(move || t.insert(7, 1).is_ok())
        };
        let b = t.insert(7, 2);
        let a_won = a.join().unwrap();
        assert!(a_won != b.is_ok(), "exactly one insert wins");
        if let Err(e) = b {
            assert_eq!(e.value, 2);
        }
        let want = if a_won { 1 } else { 2 };
        assert_eq!(t.get(&7).map(|e| *e), Some(want));
        assert_eq!(t.len(), 1);
    });
}

/// A lookup racing with an in-place replace sees the old or the new value, never nothing.
#[test]
fn replace_vs_lookup_never_misses() {
    model(|| {
        let t = Arc::new(NullsTable::<u64, u64>::with_buckets(2, 1));
        t.insert(1, 10).unwrap();
        let r = {
            let t = t.clone();
            thread::spawn(move || {
                let v = t.get(&1).map(|e| *e);
                assert!(v == Some(10) || v == Some(11), "saw {v:?}");
            })
        };
        assert!(t.insert_or_replace(1, 11).unwrap());
        r.join().unwrap();
        assert_eq!(t.get(&1).map(|e| *e), Some(11));
    });
}

/// Handles dropped concurrently with the delete: exactly one drop of the value, and the
/// slot is reusable afterwards.
#[test]
fn last_reference_race() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    struct Counted(std::sync::Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
    model(|| {
        let drops = std::sync::Arc::new(AtomicUsize::new(0));
        let t = Arc::new(NullsTable::<u64, Counted>::with_buckets(1, 1));
        t.insert(1, Counted(drops.clone())).map_err(|_| ()).unwrap();
        let h = {
            let t = t.clone();
            thread::spawn(move || {
                if let Some(e) = t.get(&1) {
                    let e2 = e.clone();
                    drop(e);
                    drop(e2);
                }
            })
        };
        assert!(t.remove(&1));
        h.join().unwrap();
        assert_eq!(drops.load(Ordering::Relaxed), 1);
        assert!(
            t.insert(2, Counted(drops.clone())).is_ok(),
            "slot not freed"
        );
    });
}

/// `remove` finds the entry under the stripe lock (no pin): two concurrent removes of the
/// same key have exactly one winner, and a concurrent refcounted lookup sees the entry or
/// nothing, never another key's value.
#[test]
fn concurrent_removes_one_winner() {
    model(|| {
        let t = Arc::new(NullsTable::<u64, u64>::with_buckets(1, 1));
        t.insert(1, 10).unwrap();
        let a = {
            let t = t.clone();
            thread::spawn(move || t.remove(&1))
        };
        let b = t.remove(&1);
        let a = a.join().unwrap();
        assert!(a != b, "exactly one remove wins");
        assert!(t.get(&1).is_none());
        assert!(t.insert(2, 20).is_ok(), "slot not freed");
    });
}

/// `WordTable::get` (reference-free, seqlock-validated) racing with delete and reuse of the
/// only slot for another key never returns the other key's value.
#[test]
fn word_get_vs_delete_and_reuse() {
    model(|| {
        let t = Arc::new(WordTable::<u64>::with_buckets(1, 2));
        t.insert(1, 10).unwrap();
        let r = {
            let t = t.clone();
            thread::spawn(move || {
                let v = t.get(&1);
                assert!(v.is_none() || v == Some(10), "read {v:?}");
            })
        };
        assert!(t.remove(&1));
        let _ = t.insert(2, 20);
        r.join().unwrap();
        assert_eq!(t.get(&1), None);
    });
}

/// `WordTable::get_batch` racing with delete and reuse of the only slot for another key:
/// stage 2's prefetch loads and stage 3's walk from a head loaded before the race never
/// return the other key's value, and a key present throughout is never missed.
#[test]
fn word_get_batch_vs_delete_and_reuse() {
    model(|| {
        let t = Arc::new(WordTable::<u64>::with_buckets(2, 2));
        t.insert(1, 10).unwrap();
        t.insert(3, 30).unwrap();
        let r = {
            let t = t.clone();
            thread::spawn(move || {
                let mut out = [None; 2];
                t.get_batch(&[1, 3], &mut out);
                assert!(out[0].is_none() || out[0] == Some(10), "read {out:?}");
                assert_eq!(out[1], Some(30), "missed a key present throughout");
            })
        };
        assert!(t.remove(&1));
        let _ = t.insert(2, 20);
        r.join().unwrap();
        assert_eq!(t.get(&1), None);
    });
}

/// The chain summary (key bits in the bucket head) never loses the bit of a key that stays
/// linked: a read of a key present throughout, racing with inserts and removes of other keys
/// in the same chain (which rewrite the head and recompute the summary), always finds it, by
/// the single, batched and refcounted lookups alike.
#[test]
fn summary_keeps_bits_of_linked_keys() {
    model(|| {
        let t = Arc::new(WordTable::<u64>::with_buckets(3, 1));
        t.insert(1, 10).unwrap();
        t.insert(2, 20).unwrap();
        let r = {
            let t = t.clone();
            thread::spawn(move || {
                assert_eq!(t.get(&1), Some(10), "missed a key present throughout");
                let mut out = [None];
                t.get_batch(&[1], &mut out);
                assert_eq!(out[0], Some(10), "batch missed a key present throughout");
            })
        };
        assert!(t.remove(&2));
        t.insert(3, 30).unwrap();
        assert!(t.remove(&3));
        r.join().unwrap();
        assert_eq!((t.get(&1), t.get(&2), t.get(&3)), (Some(10), None, None));
    });
}

/// An in-place replace racing with a reference-free read: the reader sees the old or the
/// new value, never nothing; a racing remove leaves one consistent outcome.
#[test]
fn word_replace_in_place_vs_get_and_remove() {
    model(|| {
        let t = Arc::new(WordTable::<u64>::with_buckets(2, 1));
        t.insert(1, 10).unwrap();
        let r = {
            let t = t.clone();
            thread::spawn(move || {
                let v = t.get(&1);
                assert!(v == Some(10) || v == Some(11), "read {v:?}");
            })
        };
        assert!(t.insert_or_replace(1, 11).unwrap());
        r.join().unwrap();
        let d = {
            let t = t.clone();
            thread::spawn(move || t.remove(&1))
        };
        let replaced = t.insert_or_replace(1, 12).unwrap();
        let removed = d.join().unwrap();
        assert!(removed, "the entry was present for the remove");
        // Replace before the remove: gone. Remove first: re-inserted as new.
        assert_eq!(t.get(&1), (!replaced).then_some(12));
        assert_eq!(t.len(), usize::from(!replaced));
    });
}

/// Two upserts of an absent key: one inserts, the other then replaces in place (the
/// `Exists` retry path); the last writer's value wins and there is one entry.
#[test]
fn word_concurrent_upserts() {
    model(|| {
        let t = Arc::new(WordTable::<u64>::with_buckets(2, 1));
        let a = {
            let t = t.clone();
            thread::spawn(move || t.insert_or_replace(5, 1).unwrap())
        };
        let b = t.insert_or_replace(5, 2).unwrap();
        let a = a.join().unwrap();
        assert!(a != b, "exactly one upsert inserts");
        // The one that replaced wrote last.
        assert_eq!(t.get(&5), Some(if a { 1 } else { 2 }));
        assert_eq!(t.len(), 1);
    });
}
