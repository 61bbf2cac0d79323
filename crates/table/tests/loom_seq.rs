//! Loom model of the change sequence ([`nlkit_table::ChangeSeq`]) the mirror keeps per table: readers
//! that find no change across a pass must have read a consistent table, whatever the
//! interleaving with any number of writers.
#![cfg(loom)]

use loom::sync::atomic::{AtomicU64, Ordering};
use loom::sync::Arc;
use loom::thread;
use nlkit_table::ChangeSeq;

/// Two entries, each made of two cells that its writer always changes together inside a
/// write guard. (Concurrent writers change different entries, as in the mirror, where the
/// table makes each entry's change atomic; the sequence only tells readers that something
/// changed.)
struct Table {
    seq: ChangeSeq,
    cells: [[AtomicU64; 2]; 2],
}

fn table() -> Arc<Table> {
    Arc::new(Table {
        seq: ChangeSeq::default(),
        cells: [
            [AtomicU64::new(0), AtomicU64::new(0)],
            [AtomicU64::new(0), AtomicU64::new(0)],
        ],
    })
}

fn write(t: &Table, entry: usize, v: u64) {
    let _g = t.seq.write();
    t.cells[entry][0].store(v, Ordering::Relaxed);
    t.cells[entry][1].store(v, Ordering::Relaxed);
}

/// A reader pass over every entry: if the sequence saw no change, no entry was torn.
fn read(t: &Table) {
    let snap = t.seq.snapshot();
    let got: Vec<(u64, u64)> = t
        .cells
        .iter()
        .map(|c| (c[0].load(Ordering::Relaxed), c[1].load(Ordering::Relaxed)))
        .collect();
    if !t.seq.changed_since(snap) {
        for (a, b) in got {
            assert_eq!(a, b, "a pass that saw no change read a torn entry");
        }
    }
}

#[test]
fn reader_vs_one_writer() {
    loom::model(|| {
        let t = table();
        let w = {
            let t = t.clone();
            thread::spawn(move || write(&t, 0, 1))
        };
        read(&t);
        w.join().unwrap();
    });
}

#[test]
fn reader_vs_two_writers() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(|| {
        let t = table();
        let ws: Vec<_> = [0, 1]
            .into_iter()
            .map(|entry| {
                let t = t.clone();
                thread::spawn(move || write(&t, entry, entry as u64 + 1))
            })
            .collect();
        read(&t);
        for w in ws {
            w.join().unwrap();
        }
    });
}
