//! `--threads N` listings: N threads share one kernel dump ([`SharedDump`]), each with its own
//! buffer; each renders the messages it gets into its own chunk and writes whole chunks to
//! stdout. Every object appears exactly once; the order between chunks is not the kernel's.

use std::io::{BufWriter, Stdout, Write};

use anyhow::Result;

use crate::output::OutputError;
use nlkit_socket::{DumpBuffer, Pool, SharedDump};
use nlkit_wire::{Message, MessageBuilder};
use parking_lot::Mutex;

/// Bytes a thread collects before it takes the output lock.
const CHUNK: usize = 1 << 16;

/// Appends `text` and a newline to `chunk` (see [`push_text`]).
pub fn push_line(chunk: &mut Vec<u8>, text: impl std::fmt::Display) {
    push_text(chunk, text);
    chunk.push(b'\n');
}

/// Appends `text` to `chunk`, rendering through `fmt::Write` straight into the chunk (much
/// cheaper than `io::Write`'s formatting adapter for many small pieces, and no copy through
/// a line buffer).
pub fn push_text(chunk: &mut Vec<u8>, text: impl std::fmt::Display) {
    use std::fmt::Write as _;
    /// `fmt::Write` appending to a byte buffer (only whole `str`s are written, so the bytes
    /// stay UTF-8).
    struct Bytes<'a>(&'a mut Vec<u8>);
    impl std::fmt::Write for Bytes<'_> {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0.extend_from_slice(s.as_bytes());
            Ok(())
        }
    }
    let _ = write!(Bytes(chunk), "{text}");
}

/// Standard output shared by the dump threads.
pub struct SharedListing {
    /// The writer, and how many items it has received (for JSON separators).
    out: Mutex<(BufWriter<Stdout>, usize)>,
    json: bool,
}

impl SharedListing {
    /// Starts a listing (the opening `[` in JSON).
    pub fn new(json: bool) -> Result<Self> {
        let mut w = BufWriter::with_capacity(CHUNK, std::io::stdout());
        if json {
            w.write_all(b"[")?;
        }
        Ok(SharedListing {
            out: Mutex::new((w, 0)),
            json,
        })
    }

    /// Runs the dump in `req` with `threads` threads; `render` appends one message's item to
    /// the chunk (text line or JSON value) and returns whether it kept the message.
    pub fn dump(
        &self,
        pool: &Pool,
        req: &mut MessageBuilder,
        threads: usize,
        render: impl Fn(&Message<'_>, &mut Vec<u8>) -> Result<bool> + Sync,
    ) -> Result<()> {
        let dump = SharedDump::start(pool, req)?;
        let results: Vec<Result<()>> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..threads.max(1))
                .map(|_| s.spawn(|| self.consume(&dump, &render)))
                .collect();
            workers
                .into_iter()
                .map(|w| {
                    w.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("a dump thread panicked")))
                })
                .collect()
        });
        let outcome = dump.finish();
        for r in results {
            r?;
        }
        outcome?;
        Ok(())
    }

    /// One thread's share of the dump.
    fn consume(
        &self,
        dump: &SharedDump,
        render: &(impl Fn(&Message<'_>, &mut Vec<u8>) -> Result<bool> + Sync),
    ) -> Result<()> {
        let mut buf = DumpBuffer::new();
        let mut chunk: Vec<u8> = Vec::with_capacity(CHUNK);
        let mut items = 0usize;
        while let Some(m) = dump.next(&mut buf)? {
            let mark = chunk.len();
            if self.json && items > 0 {
                chunk.push(b',');
            }
            if render(&m, &mut chunk)? {
                items += 1;
            } else {
                chunk.truncate(mark);
            }
            if chunk.len() >= CHUNK {
                self.flush(&mut chunk, &mut items)?;
            }
        }
        self.flush(&mut chunk, &mut items)
    }

    fn flush(&self, chunk: &mut Vec<u8>, items: &mut usize) -> Result<()> {
        if *items == 0 {
            return Ok(());
        }
        let mut o = self.out.lock();
        if self.json && o.1 > 0 {
            o.0.write_all(b",").map_err(OutputError::Write)?;
        }
        o.0.write_all(chunk).map_err(OutputError::Write)?;
        o.1 += *items;
        chunk.clear();
        *items = 0;
        Ok(())
    }

    /// Closes the listing (the `]` in JSON) and flushes.
    pub fn finish(self) -> Result<()> {
        let mut o = self.out.into_inner();
        if self.json {
            o.0.write_all(b"]\n").map_err(OutputError::Write)?;
        }
        o.0.flush().map_err(OutputError::Write)?;
        Ok(())
    }
}
