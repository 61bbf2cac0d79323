//! `loom` model of the shared dump's refill/status protocol ([`DumpCore`]).
//!
//! Run with:
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target-loom-socket cargo test -p nlkit-socket --release --test loom_dump`
//!
//! The source is scripted: a list of datagrams of fake messages. Its `refill` panics if
//! anyone reads after the last datagram — on a kernel socket that read would block forever —
//! so every explored interleaving also checks that no thread reads past the end.
#![cfg(loom)]

use std::collections::{HashSet, VecDeque};

use loom::sync::Arc;
use loom::thread;
use nlkit_socket::dump::core::{Class, DumpCore, DumpSource, Refilled};
use nlkit_socket::Error;
use nlkit_wire::KernelError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Msg {
    Data(u32),
    /// Data flagged NLM_F_DUMP_INTR.
    Intr(u32),
    Done,
    /// NLMSG_DONE carrying an errno.
    DoneErr(i32),
    /// NLMSG_ERROR with an errno.
    Nack(i32),
    /// Bytes only a consumer notices are bad (the refill's header walk passes them).
    Malformed,
}

#[derive(Debug)]
struct Script(VecDeque<Vec<Msg>>);

fn kerr(errno: i32) -> Error {
    Error::Kernel(KernelError {
        errno,
        ..Default::default()
    })
}

fn malformed() -> Error {
    Error::Unexpected("malformed")
}

impl DumpSource for Script {
    type Buffer = VecDeque<Msg>;
    type Key = ();
    type Item<'b> = u32;

    fn refill(&mut self, _: &(), buf: &mut VecDeque<Msg>) -> Result<Refilled, Error> {
        let dgram = self
            .0
            .pop_front()
            .expect("recvmsg after the end of the dump: would block forever");
        let mut r = Refilled::default();
        for m in &dgram {
            match *m {
                Msg::Intr(_) => r.interrupted = true,
                Msg::Done => r.end = true,
                Msg::DoneErr(e) | Msg::Nack(e) => return Err(kerr(e)),
                Msg::Data(_) | Msg::Malformed => {}
            }
        }
        buf.extend(dgram);
        Ok(r)
    }
    fn is_empty(buf: &VecDeque<Msg>) -> bool {
        buf.is_empty()
    }
    fn clear(buf: &mut VecDeque<Msg>) {
        buf.clear()
    }
    fn classify(_: &(), buf: &mut VecDeque<Msg>) -> Class {
        match buf.front() {
            None => Class::Empty,
            Some(Msg::Data(_) | Msg::Intr(_)) => Class::Item,
            Some(Msg::Done) => {
                buf.clear();
                Class::End
            }
            Some(Msg::DoneErr(e) | Msg::Nack(e)) => {
                let e = kerr(*e);
                buf.clear();
                Class::Fail(e)
            }
            Some(Msg::Malformed) => {
                buf.clear();
                Class::Fail(malformed())
            }
        }
    }
    fn take<'b>(buf: &'b mut VecDeque<Msg>) -> Option<u32> {
        match buf.pop_front()? {
            Msg::Data(n) | Msg::Intr(n) => Some(n),
            _ => None,
        }
    }
}

/// What one consumer thread saw: its items, and how its last `next` ended.
type Seen = (Vec<u32>, Result<(), Error>);

/// Runs `threads` consumers over `script`, each taking at most `limit` items, then finishes.
fn run(script: Vec<Vec<Msg>>, threads: usize, limit: usize) -> (Vec<Seen>, Result<(), Error>) {
    let dump = Arc::new(DumpCore::new(Script(script.into()), ()));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let dump = dump.clone();
            thread::spawn(move || {
                let mut buf = VecDeque::new();
                let mut items = Vec::new();
                loop {
                    if items.len() == limit {
                        return (items, Ok(()));
                    }
                    match dump.next(&mut buf) {
                        Ok(Some(n)) => items.push(n),
                        Ok(None) => return (items, Ok(())),
                        Err(e) => return (items, Err(e)),
                    }
                }
            })
        })
        .collect();
    let seen: Vec<Seen> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let dump = Arc::try_unwrap(dump).expect("all threads joined");
    let (_, outcome) = dump.finish(&mut VecDeque::new());
    (seen, outcome)
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(f);
}

fn all_items(seen: &[Seen]) -> Vec<u32> {
    let mut v: Vec<u32> = seen.iter().flat_map(|(i, _)| i.iter().copied()).collect();
    v.sort_unstable();
    v
}

#[test]
fn two_threads_see_every_message_once() {
    use Msg::*;
    model(|| {
        let script = vec![vec![Data(1), Data(2)], vec![Data(3)], vec![Data(4), Done]];
        let (seen, outcome) = run(script, 2, usize::MAX);
        assert_eq!(all_items(&seen), [1, 2, 3, 4]);
        assert!(seen.iter().all(|(_, r)| r.is_ok()));
        assert_eq!(outcome, Ok(()));
    });
}

#[test]
fn three_threads_see_every_message_once() {
    use Msg::*;
    model(|| {
        let script = vec![vec![Data(1)], vec![Data(2), Data(3)], vec![Done]];
        let (seen, outcome) = run(script, 3, usize::MAX);
        assert_eq!(all_items(&seen), [1, 2, 3]);
        assert!(seen.iter().all(|(_, r)| r.is_ok()));
        assert_eq!(outcome, Ok(()));
    });
}

#[test]
fn error_at_start_reaches_every_thread() {
    model(|| {
        let (seen, outcome) = run(vec![vec![Msg::Nack(22)]], 3, usize::MAX);
        for (items, r) in &seen {
            assert!(items.is_empty());
            assert_eq!(*r, Err(kerr(22)));
        }
        assert_eq!(outcome, Err(kerr(22)));
    });
}

#[test]
fn error_on_done_reaches_every_thread_and_nothing_repeats() {
    use Msg::*;
    model(|| {
        let script = vec![vec![Data(1), Data(2)], vec![Data(3), DoneErr(5)]];
        let (seen, outcome) = run(script, 2, usize::MAX);
        let items = all_items(&seen);
        let unique: HashSet<u32> = items.iter().copied().collect();
        assert_eq!(unique.len(), items.len());
        assert!(items.starts_with(&[1, 2]) && items.len() <= 3);
        for (_, r) in &seen {
            assert_eq!(*r, Err(kerr(5)));
        }
        assert_eq!(outcome, Err(kerr(5)));
    });
}

#[test]
fn interrupted_dump_is_inconsistent_but_complete() {
    use Msg::*;
    model(|| {
        let script = vec![vec![Data(1), Intr(2)], vec![Data(3), Done]];
        let (seen, outcome) = run(script, 2, usize::MAX);
        assert_eq!(all_items(&seen), [1, 2, 3]);
        assert_eq!(outcome, Err(Error::Inconsistent));
    });
}

#[test]
fn malformed_data_is_never_overwritten_by_end_of_dump() {
    use Msg::*;
    model(|| {
        let script = vec![vec![Data(1), Malformed, Data(9)], vec![Data(2), Done]];
        let (seen, outcome) = run(script, 2, usize::MAX);
        let items = all_items(&seen);
        assert!(
            !items.contains(&9),
            "nothing after a malformed message is trusted"
        );
        assert!(items.contains(&1));
        assert_eq!(outcome, Err(malformed()));
        assert!(seen.iter().any(|(_, r)| *r == Err(malformed())));
    });
}

#[test]
fn finishing_early_drains_without_reading_past_the_end() {
    use Msg::*;
    model(|| {
        let script = vec![vec![Data(1), Data(2)], vec![Data(3)], vec![Data(4), Done]];
        let (seen, outcome) = run(script, 2, 1);
        let items = all_items(&seen);
        let unique: HashSet<u32> = items.iter().copied().collect();
        assert_eq!(unique.len(), items.len());
        assert_eq!(outcome, Ok(()));
    });
}
