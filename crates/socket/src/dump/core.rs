//! The shared dump's refill/status protocol, generic over where datagrams come from.
//!
//! [`SharedDump`](crate::SharedDump) runs it over a kernel socket; the `loom` model in
//! `tests/loom_dump.rs` runs it over a scripted source to check every interleaving of 2–3
//! threads. The rules (after Open vSwitch's `nl_dump_next`, see the crate docs):
//!
//! * each thread owns its buffer and consumes it without any lock;
//! * a thread refills only when its own buffer is empty, under the mutex, and only while the
//!   dump is in progress, so two threads are never in `recvmsg` on one dump at once, and no
//!   thread ever reads past the end of the dump (it would block forever);
//! * the source recognises the end of the dump (or its error) *while refilling*, under the
//!   mutex, so the status turns terminal before anyone else can try to read again;
//! * a thread whose buffer still holds messages keeps consuming them after the status turned
//!   terminal: nothing is skipped;
//! * an error is recorded once and never overwritten by the end of the dump; a malformed
//!   message found later in a buffer turns a finished dump into a failed one.

use crate::sync::Mutex;
use crate::Error;

/// What a refill found in the datagram it received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Refilled {
    /// The datagram holds the end of the dump: nothing more may be read.
    pub end: bool,
    /// A message of the dump (or its end) carried `NLM_F_DUMP_INTR`.
    pub interrupted: bool,
}

/// What is at the cursor of a buffer, after skipping what is not the caller's business.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Class {
    /// A message for the consumer: [`DumpSource::take`] returns it.
    Item,
    /// The buffer is exhausted.
    Empty,
    /// The end of the dump. The buffer has been emptied.
    End,
    /// A message that ends the dump with an error (malformed, or the kernel's error). The
    /// buffer has been emptied.
    Fail(Error),
}

/// Where a dump's datagrams come from, and how a buffer is read.
///
/// `refill` runs under the dump's mutex; everything else runs in the consuming thread without
/// a lock, touching only that thread's buffer and the shared, immutable `Key`.
pub trait DumpSource {
    /// A thread's own buffer.
    type Buffer;
    /// Immutable after the dump starts (for example the expected sequence number); shared by
    /// all threads without a lock.
    type Key: Sync;
    /// A message view borrowing a buffer.
    type Item<'b>
    where
        Self::Buffer: 'b;

    /// Receives the next datagram into `buf`, which is empty. Called under the dump's mutex,
    /// only while the dump is in progress. An `Err` ends the dump with that error.
    fn refill(&mut self, key: &Self::Key, buf: &mut Self::Buffer) -> Result<Refilled, Error>;
    /// True when `buf` holds no unread message.
    fn is_empty(buf: &Self::Buffer) -> bool;
    /// Empties `buf`.
    fn clear(buf: &mut Self::Buffer);
    /// Skips messages that are not for the consumer (foreign sequence numbers, no-ops) and
    /// reports what is at the cursor.
    fn classify(key: &Self::Key, buf: &mut Self::Buffer) -> Class;
    /// Consumes the message at the cursor, which `classify` reported as [`Class::Item`].
    fn take<'b>(buf: &'b mut Self::Buffer) -> Option<Self::Item<'b>>;
}

/// Where the dump stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// More datagrams may be read.
    InProgress,
    /// The end was received.
    Done,
    /// The dump ended with this error.
    Failed(Error),
}

/// State shared by the consuming threads.
#[derive(Debug)]
struct Shared<S> {
    /// The source; only touched under the mutex, which is what serialises `recvmsg`.
    source: S,
    /// The dump's status. Moves InProgress → Done or InProgress → Failed, and Done → Failed
    /// (malformed data found after the end was read); never Failed → anything.
    status: Status,
    /// Some message or the end carried `NLM_F_DUMP_INTR`. Only ever set.
    interrupted: bool,
}

/// The refill/status protocol of a dump shared by many threads.
///
/// `DumpCore` is `Sync` when the source is `Send` and the key `Sync`: threads share it by
/// reference, each with its own buffer.
///
/// ```
/// use nlkit_socket::dump::core::{Class, DumpCore, DumpSource, Refilled};
/// use nlkit_socket::Error;
///
/// // A source that hands out the numbers 1..=4, two per datagram.
/// struct Counter(u32);
/// impl DumpSource for Counter {
///     type Buffer = Vec<u32>;
///     type Key = ();
///     type Item<'b> = u32;
///     fn refill(&mut self, _: &(), buf: &mut Vec<u32>) -> Result<Refilled, Error> {
///         buf.extend([self.0 + 1, self.0 + 2]);
///         self.0 += 2;
///         Ok(Refilled { end: self.0 == 4, interrupted: false })
///     }
///     fn is_empty(buf: &Vec<u32>) -> bool { buf.is_empty() }
///     fn clear(buf: &mut Vec<u32>) { buf.clear() }
///     fn classify(_: &(), buf: &mut Vec<u32>) -> Class {
///         if buf.is_empty() { Class::Empty } else { Class::Item }
///     }
///     fn take<'b>(buf: &'b mut Vec<u32>) -> Option<u32> {
///         (!buf.is_empty()).then(|| buf.remove(0))
///     }
/// }
///
/// let dump = DumpCore::new(Counter(0), ());
/// let mut buf = Vec::new();
/// let mut seen = Vec::new();
/// while let Some(n) = dump.next(&mut buf).unwrap() {
///     seen.push(n);
/// }
/// assert_eq!(seen, [1, 2, 3, 4]);
/// let (_source, outcome) = dump.finish(&mut buf);
/// assert_eq!(outcome, Ok(()));
/// ```
#[derive(Debug)]
pub struct DumpCore<S: DumpSource> {
    /// Immutable after construction.
    key: S::Key,
    /// Protects the source and the status; held for each refill (one `recvmsg`) and for
    /// status changes, never while a consumer processes a message.
    shared: Mutex<Shared<S>>,
}

impl<S: DumpSource> DumpCore<S> {
    /// A dump in progress over `source`.
    pub fn new(source: S, key: S::Key) -> Self {
        DumpCore {
            key,
            shared: Mutex::new(Shared {
                source,
                status: Status::InProgress,
                interrupted: false,
            }),
        }
    }

    /// The immutable key.
    pub fn key(&self) -> &S::Key {
        &self.key
    }

    /// The current status.
    pub fn status(&self) -> Status {
        self.shared.lock().status.clone()
    }

    /// The next message for this thread, from its own `buf`, refilling `buf` when it is
    /// empty and the dump is still in progress. `Ok(None)` once the dump has ended and this
    /// buffer is exhausted; `Err` (the same error for every thread) when the dump failed.
    pub fn next<'b>(&self, buf: &'b mut S::Buffer) -> Result<Option<S::Item<'b>>, Error> {
        loop {
            if S::is_empty(buf) {
                let mut g = self.shared.lock();
                if g.status == Status::InProgress {
                    let sh = &mut *g;
                    match sh.source.refill(&self.key, buf) {
                        Ok(r) => {
                            sh.interrupted |= r.interrupted;
                            if r.end {
                                sh.status = Status::Done;
                            }
                        }
                        Err(e) => {
                            S::clear(buf);
                            sh.status = Status::Failed(e);
                        }
                    }
                }
                // A buffer that holds messages is consumed even if the refill just saw
                // the end; an empty one means this thread is done.
                if S::is_empty(buf) {
                    match &g.status {
                        Status::InProgress => continue,
                        Status::Done => return Ok(None),
                        Status::Failed(e) => return Err(e.clone()),
                    }
                }
            }
            match S::classify(&self.key, buf) {
                Class::Item => {
                    return S::take(buf)
                        .map(Some)
                        .ok_or(Error::Unexpected("dump source lost a classified message"));
                }
                Class::Empty => continue,
                Class::End => {
                    S::clear(buf);
                    let mut g = self.shared.lock();
                    if g.status == Status::InProgress {
                        g.status = Status::Done;
                    }
                    return match &g.status {
                        Status::Failed(e) => Err(e.clone()),
                        _ => Ok(None),
                    };
                }
                Class::Fail(e) => {
                    S::clear(buf);
                    let mut g = self.shared.lock();
                    if !matches!(g.status, Status::Failed(_)) {
                        g.status = Status::Failed(e);
                    }
                    return match &g.status {
                        Status::Failed(e) => Err(e.clone()),
                        _ => Ok(None),
                    };
                }
            }
        }
    }

    /// Ends the dump: if it is still in progress, drains the rest through `scratch` (so the
    /// kernel stops producing), then returns the source and the outcome: `Ok(())`, the
    /// recorded error, or [`Error::Inconsistent`] when something carried `NLM_F_DUMP_INTR`.
    pub fn finish(self, scratch: &mut S::Buffer) -> (S, Result<(), Error>) {
        S::clear(scratch);
        while let Ok(Some(_)) = self.next(scratch) {}
        let sh = self.shared.into_inner();
        let outcome = match sh.status {
            Status::Failed(e) => Err(e),
            _ if sh.interrupted => Err(Error::Inconsistent),
            _ => Ok(()),
        };
        (sh.source, outcome)
    }
}
