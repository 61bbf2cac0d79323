//! Snapshot then follow: a walk of the tables that, with its fix-ups, is the state at one
//! feed position P1; the subscriber then follows from P1.
//!
//! The walk runs lock-free over the tables while the sync thread keeps applying changes.
//! It reads records in small batches; after each batch it *catches up* with the log: if a
//! writer is inside the log lock, or one has been since the last catch-up (`Feed::wseq`), it
//! takes the lock and adds the keys of every entry after its last position to the `touched`
//! map. Because a change is made under the log lock and appended before the lock is released,
//! every change a batch could have seen is in the log once the catch-up is done. Then:
//!
//! * a record whose key is not touched is sent as read: its key has not changed since P0
//!   (the head when the walk began) up to the catch-up, so the record is the key's state as of
//!   P0, and any later change of the key is an entry after the catch-up point;
//! * a record whose key is touched is not sent: it is handled at the end.
//!
//! At the end the walk takes the log lock once more, catches up, reads P1 = head, and —
//! still under the lock, so no change can happen — reads the current entry of every touched
//! key: that is its state at P1 exactly. Each is sent as a record, or, if the key no longer
//! exists, as a `DEL` record (the key may have been sent by the walk before it was touched).
//! So the records, applied in order (a later record of a key replaces an earlier one, a `DEL`
//! removes it), are the state at P1: keys untouched in (P0, P1] as read, touched ones as at
//! P1. The follow stream starts after P1, so no change is lost or applied twice. A key is sent
//! twice only if it changed while the walk ran (once as walked, once at P1).
//!
//! The lock is held for the final reads: proportional to the keys changed during the walk.

use std::collections::HashMap;
use std::io;

use super::key::FeedKey;
use super::Feed;
use crate::feed::capture::as_deletion;
use crate::tables::{TableId, TableSet, Tables};

/// Records read before each catch-up.
const BATCH: usize = 64;

/// Keys changed since the walk began.
struct Tracker {
    set: TableSet,
    caught: u64,
    wseq_seen: u64,
    /// Key → (table, latest message of the key in the log).
    touched: HashMap<FeedKey, (TableId, Vec<u8>)>,
    /// The log dropped entries the walk had not seen yet.
    lost: bool,
}

impl Tracker {
    fn catch_up_locked(&mut self, log: &super::Log, feed: &Feed) {
        if log.first() > self.caught + 1 {
            self.lost = true;
        }
        for e in log.after(self.caught) {
            if !self.set.contains(e.table) {
                continue;
            }
            if let Some(k) = FeedKey::of(e.table, &e.msgs) {
                self.touched.insert(k, (e.table, e.msgs.to_vec()));
            }
        }
        self.caught = log.head();
        self.wseq_seen = feed.wseq();
    }

    fn catch_up(&mut self, feed: &Feed) {
        let s = feed.wseq();
        if s % 2 == 0 && s == self.wseq_seen {
            return;
        }
        let log = feed.read();
        self.catch_up_locked(&log, feed);
    }
}

/// Calls `f` with each entry's messages of table `t` (lock-free walk); returns whether the
/// walk was complete (see [`Store::for_each`](crate::Store::for_each)).
fn walk(tables: &Tables, t: TableId, f: &mut dyn FnMut(&[u8])) -> bool {
    match t {
        TableId::Links => tables.links.for_each(|e| {
            f(e.messages());
            true
        }),
        TableId::Addrs4 | TableId::Addrs6 => tables.addrs[usize::from(t == TableId::Addrs6)]
            .for_each(|e| {
                f(e.messages());
                true
            }),
        TableId::Routes4 | TableId::Routes6 => tables.routes[usize::from(t == TableId::Routes6)]
            .for_each(|e| {
                f(e.messages());
                true
            }),
        TableId::Neigh4 | TableId::Neigh6 => tables.neigh[usize::from(t == TableId::Neigh6)]
            .for_each(|e| {
                f(e.messages());
                true
            }),
        TableId::Nexthops => tables.nexthops.for_each(|e| {
            f(e.messages());
            true
        }),
        // Not in the feed (no subscription group selects them).
        TableId::Rules4 | TableId::Rules6 => true,
        TableId::Conntrack => tables.ct.for_each(|_, msg| {
            f(msg);
            true
        }),
    }
}

/// Why a snapshot could not be taken.
#[derive(Debug)]
pub(crate) enum SnapshotError {
    /// Sending failed.
    Io(io::Error),
    /// The log dropped changes before the walk could account for them (the log is too
    /// small for the change rate during one walk).
    LogTooSmall,
    /// A table walk skipped an entry the writer kept mid-change for the walk's whole wait
    /// (a change that is not logged, such as a generation mark): the records may miss it.
    Incomplete,
}

/// Walks `set` and sends its records through `emit` (one entry's messages at a time); returns
/// P1, the position the records are the state at.
pub(crate) fn snapshot(
    tables: &Tables,
    feed: &Feed,
    set: TableSet,
    emit: &mut dyn FnMut(&[u8]) -> io::Result<()>,
) -> Result<u64, SnapshotError> {
    let mut tr = {
        let log = feed.read();
        Tracker {
            set,
            caught: log.head(),
            wseq_seen: feed.wseq(),
            touched: HashMap::new(),
            lost: false,
        }
    };
    let mut batch: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut ends: Vec<usize> = Vec::with_capacity(BATCH);
    let mut failed: Option<io::Error> = None;
    let mut complete = true;
    for t in set.iter() {
        let mut flush = |batch: &mut Vec<u8>, ends: &mut Vec<usize>, tr: &mut Tracker| {
            tr.catch_up(feed);
            let mut start = 0;
            for &end in ends.iter() {
                let msgs = &batch[start..end];
                start = end;
                if failed.is_some() {
                    break;
                }
                let skip = FeedKey::of(t, msgs).is_some_and(|k| tr.touched.contains_key(&k));
                if !skip {
                    if let Err(e) = emit(msgs) {
                        failed = Some(e);
                    }
                }
            }
            batch.clear();
            ends.clear();
        };
        complete &= walk(tables, t, &mut |msgs| {
            batch.extend_from_slice(msgs);
            ends.push(batch.len());
            if ends.len() >= BATCH {
                flush(&mut batch, &mut ends, &mut tr);
            }
        });
        flush(&mut batch, &mut ends, &mut tr);
        if let Some(e) = failed.take() {
            return Err(SnapshotError::Io(e));
        }
    }
    // The end: the touched keys' state at P1, read under the log lock.
    let mut finals: Vec<Vec<u8>> = Vec::new();
    let p1 = {
        let log = feed.read();
        tr.catch_up_locked(&log, feed);
        for (k, (t, last)) in tr.touched.drain() {
            let mut b = Vec::new();
            if k.read_into(tables, &mut b) {
                finals.push(b);
            } else {
                finals.push(as_deletion(t, last));
            }
        }
        log.head()
    };
    if tr.lost {
        return Err(SnapshotError::LogTooSmall);
    }
    if !complete {
        return Err(SnapshotError::Incomplete);
    }
    for b in &finals {
        emit(b).map_err(SnapshotError::Io)?;
    }
    Ok(p1)
}
