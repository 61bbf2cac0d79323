//! Listings through the mirror's view, formatted on several threads in the source's order.
//!
//! Walking the mapped tables costs a few tens of nanoseconds a message; formatting a line
//! costs several times that. So a listing through the view runs as a pipeline: one thread
//! walks ([`Source::dump`] or [`Source::ct_dump`], which answer from the view, or over the
//! socket when the view does not answer the request), copying the messages back to back into batches; formatter
//! threads (one per core) render whole batches into output chunks; this thread writes the
//! chunks to standard output in batch order. The output is byte for byte what the one-thread
//! listing ([`Sink`](super::Sink)) writes: the same lines, in the same order, and in JSON one
//! array with the same separators.
//!
//! (From the kernel, and with `NLKIT_MIRROR_NO_VIEW=1`, listings keep the socket's own
//! pipeline, [`Socket::dump_pipelined`](nlkit_socket::Socket::dump_pipelined): a receive
//! thread ahead of the formatting one.)

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{mpsc, Arc};

use anyhow::Result;
use nlkit_wire::{Message, MessageBuilder, Messages};
use parking_lot::Mutex;

use super::{stdout, Source};
use crate::output::OutputError;

/// Message bytes per batch (about 5,000 route messages): few enough hand-offs between
/// threads (each may wake one) for a million routes. Batch and output buffers are recycled
/// through [`Buffers`], never freed during a listing (no mapping and unmapping by the
/// allocator, no fresh pages to fault in).
const BATCH: usize = 256 * 1024;

/// Spare buffers: message batches the formatters are done with (for the walker) and output
/// chunks the writer is done with (for the formatters). Each lock is taken once per batch.
#[derive(Default)]
struct Buffers {
    batches: Mutex<Vec<Vec<u8>>>,
    chunks: Mutex<Vec<Vec<u8>>>,
}

impl Buffers {
    /// An empty buffer from `pool`, or a new one of `capacity`.
    fn take(pool: &Mutex<Vec<Vec<u8>>>, capacity: usize) -> Vec<u8> {
        let mut b = pool.lock().pop().unwrap_or_default();
        b.clear();
        b.reserve(capacity);
        b
    }
    /// Returns a buffer to `pool`.
    fn give(pool: &Mutex<Vec<Vec<u8>>>, b: Vec<u8>) {
        pool.lock().push(b);
    }
}

/// Formatter threads: one per core, at most 4.
fn formatters() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 4))
}

/// One batch's output: its number, the rendered bytes, the items in them, and the error
/// that stopped the rendering (what was rendered before it is written, as the one-thread
/// listing writes every item before a failing one).
type Rendered = (usize, Vec<u8>, usize, Option<anyhow::Error>);

/// What the walking thread runs: hands every message of the listing, in order, to its
/// argument (e.g. [`Source::dump`] of each request).
pub type Give<'g> = &'g mut dyn FnMut(&Message<'_>) -> nlkit_socket::Result<()>;

/// Runs `produce` in a walking thread and writes what `render` makes of each message it
/// gives (see the module); returns the number of items written. `render` appends one
/// message's item (a text line with its newline, or one JSON value) to the chunk and returns
/// whether it kept the message. With `json`, the items form one array.
pub fn listing(
    produce: impl FnOnce(Give<'_>) -> Result<()> + Send,
    json: bool,
    render: impl Fn(&Message<'_>, &mut Vec<u8>) -> Result<bool> + Sync,
) -> Result<usize> {
    let threads = formatters();
    let (work_tx, work_rx) = mpsc::sync_channel::<(usize, Vec<u8>)>(2 * threads);
    // Shared by the formatters only: when the last one stops, the walker's next send fails
    // and the walk stops too.
    let work_rx = Arc::new(Mutex::new(work_rx));
    let (done_tx, done_rx) = mpsc::channel::<Rendered>();
    let render = &render;
    let buffers = &Buffers::default();
    std::thread::scope(|s| {
        let walker = s.spawn(move || walk(produce, work_tx, buffers));
        for _ in 0..threads {
            let (work_rx, done_tx) = (work_rx.clone(), done_tx.clone());
            s.spawn(move || format(&work_rx, done_tx, json, render, buffers));
        }
        drop((work_rx, done_tx));
        let written = write_in_order(done_rx, json, buffers);
        // A failed write dropped the receiver: the formatters stop, and with them the walk
        // (its batches have nowhere to go). The writer's error comes first.
        let walked = walker
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the walking thread panicked")));
        let items = written?;
        walked.map(|()| items)
    })
}

/// The dumps in `reqs`, one after the other, through `src` (a [`listing`]'s producer).
pub fn dumps<'a>(
    src: &'a mut Source,
    reqs: &'a mut [MessageBuilder],
) -> impl FnOnce(Give<'_>) -> Result<()> + Send + 'a {
    move |give| {
        for req in reqs {
            src.dump(req, &mut *give)?;
        }
        Ok(())
    }
}

/// The walking thread: every message `produce` gives, batched. A dump that fails still
/// hands on what it gave before the failure.
fn walk(
    produce: impl FnOnce(Give<'_>) -> Result<()>,
    work: mpsc::SyncSender<(usize, Vec<u8>)>,
    buffers: &Buffers,
) -> Result<()> {
    let mut seq = 0usize;
    let new_batch = || Buffers::take(&buffers.batches, BATCH + 4096);
    let mut batch = new_batch();
    let res = produce(&mut |m| {
        batch.extend_from_slice(m.bytes());
        if batch.len() >= BATCH {
            let full = std::mem::replace(&mut batch, new_batch());
            work.send((seq, full))
                .map_err(|_| nlkit_socket::Error::callback(OutputError::Closed))?;
            seq += 1;
        }
        Ok(())
    });
    if !batch.is_empty() {
        // Fails only when the writer went away: its error is the one reported.
        let _ = work.send((seq, batch));
    }
    res
}

/// A formatter thread: renders batches until there are no more, or the writer went away.
fn format(
    work: &Mutex<mpsc::Receiver<(usize, Vec<u8>)>>,
    done: mpsc::Sender<Rendered>,
    json: bool,
    render: &(impl Fn(&Message<'_>, &mut Vec<u8>) -> Result<bool> + Sync),
    buffers: &Buffers,
) {
    loop {
        let Ok((seq, batch)) = work.lock().recv() else {
            return;
        };
        let mut out = Buffers::take(&buffers.chunks, batch.len() * 2);
        let (items, err) = render_batch(&batch, &mut out, json, render);
        Buffers::give(&buffers.batches, batch);
        let failed = err.is_some();
        if done.send((seq, out, items, err)).is_err() || failed {
            return;
        }
    }
}

/// Renders the messages of one batch into `out`, up to the first error; in JSON every item
/// is led by its `,` (the writer drops the listing's first one).
fn render_batch(
    batch: &[u8],
    out: &mut Vec<u8>,
    json: bool,
    render: &impl Fn(&Message<'_>, &mut Vec<u8>) -> Result<bool>,
) -> (usize, Option<anyhow::Error>) {
    let mut items = 0;
    let mut messages = Messages::new(batch);
    // Each item used where the iterator left it (`ref`): moving the message out first cost
    // a store-forwarding stall per message (perf annotate). Measured with this loop, not
    // with the `for` clippy suggests.
    #[allow(clippy::while_let_on_iterator)]
    while let Some(ref m) = messages.next() {
        let mark = out.len();
        if json {
            out.push(b',');
        }
        let kept = match m {
            Ok(m) => render(m, out),
            Err(e) => Err(nlkit_socket::Error::Protocol(e.clone()).into()),
        };
        match kept {
            Ok(true) => items += 1,
            Ok(false) => out.truncate(mark),
            Err(e) => {
                out.truncate(mark);
                return (items, Some(e));
            }
        }
    }
    (items, None)
}

/// This thread: writes the chunks in batch order (with a progress count on stderr where
/// [`Sink`](super::Sink) shows one), then closes the listing; returns the items written. A
/// rendering error stops it after what was rendered before it, and is returned; a write
/// error beats it.
fn write_in_order(done: mpsc::Receiver<Rendered>, json: bool, buffers: &Buffers) -> Result<usize> {
    use std::io::IsTerminal;
    let progress = (std::io::stderr().is_terminal() && !std::io::stdout().is_terminal())
        .then(|| crate::output::progress(None, "objects"));
    let mut out = stdout();
    let mut pending = BTreeMap::new();
    let (mut next, mut items) = (0usize, 0usize);
    let mut failed = None;
    let write = |out: &mut dyn Write, b: &[u8]| out.write_all(b).map_err(OutputError::Write);
    if json {
        write(&mut out, b"[")?;
    }
    'chunks: for (seq, chunk, n, err) in done {
        pending.insert(seq, (chunk, n, err));
        while let Some((chunk, n, err)) = pending.remove(&next) {
            next += 1;
            if n > 0 {
                // JSON: each item brought its `,`; the listing's first has none.
                let skip = usize::from(json && items == 0);
                write(&mut out, &chunk[skip..])?;
                items += n;
                if let Some(p) = &progress {
                    p.inc(n as u64);
                }
            }
            Buffers::give(&buffers.chunks, chunk);
            if err.is_some() {
                failed = err;
                break 'chunks;
            }
        }
    }
    if let Some(p) = progress {
        p.finish_and_clear();
    }
    if json {
        write(&mut out, b"]\n")?;
    }
    out.flush().map_err(OutputError::Write)?;
    failed.map_or(Ok(items), Err)
}
