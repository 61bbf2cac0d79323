//! Follow link events like `ip monitor link`, keeping an index → name cache that survives
//! lost events: on `ENOBUFS` (the receive queue overflowed) the cache is rebuilt from a fresh
//! dump — a resync — and the receive buffer grows.
//!
//! ```sh
//! cargo run -p nlkit --example watch_links -- [--count N]
//! ```
//!
//! `--count N` stops after N link events (the tests use it); without it, runs until killed.
//!
//! Order matters: join the group first, then dump. An event that arrives during the dump is
//! then read after it, and applying it again to the cache is harmless; the other order would
//! miss changes made between the dump and the join.

use std::io::Write;
use std::process::ExitCode;

use nlkit::prelude::*;
use nlkit::route::fmt::{link_text, LinkNames};
use nlkit::route::request::LinkFilter;

const USAGE: &str = "usage: watch_links [--count N]";

/// The largest receive buffer asked for after repeated overflows.
const MAX_RCVBUF: usize = 64 << 20;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args, &mut std::io::stdout().lock()) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Parses `args`, opens the event socket (4 MiB receive buffer, overflow reported) and a
/// request socket for the dumps, and runs [`watch`].
pub fn run(args: &[String], out: &mut impl Write) -> Result<u64, Box<dyn std::error::Error>> {
    let count = match args {
        [] => None,
        [flag, n] if flag == "--count" => Some(n.parse()?),
        _ => return Err(USAGE.into()),
    };
    let mut events = EventSocket::open(Protocol::Route, &[consts::RTNLGRP_LINK])?;
    let mut sock = Socket::open(Protocol::Route)?;
    watch(&mut events, &mut sock, count, out)
}

/// Prints the links (a first "resync"), then each link event, resyncing after every
/// overflow; returns after `count` events (never, with `None`) with the number seen.
pub fn watch(
    events: &mut EventSocket,
    sock: &mut Socket,
    count: Option<u64>,
    out: &mut impl Write,
) -> Result<u64, Box<dyn std::error::Error>> {
    let mut names = resync(sock, out)?;
    let mut rcvbuf = events.socket().applied().rcvbuf;
    let mut buf = RecvBuffer::new();
    let mut seen = 0;
    while count.is_none_or(|c| seen < c) {
        match events.recv_event(&mut buf)? {
            Event::Overrun => {
                // Notifications were dropped: the cache may be wrong in any way. Start over
                // from the kernel's current state, with room for a bigger burst next time.
                rcvbuf = events.set_recv_buffer((rcvbuf * 2).min(MAX_RCVBUF))?;
                writeln!(
                    out,
                    "events lost (ENOBUFS); receive buffer now {rcvbuf} bytes"
                )?;
                names = resync(sock, out)?;
            }
            Event::Messages { messages, .. } => {
                for m in messages {
                    let link = LinkView::parse(&m?)?;
                    if link.msg_type() == consts::RTM_DELLINK {
                        writeln!(out, "Deleted {}", link_text(&link, &names, true))?;
                        names.remove(link.index());
                    } else {
                        names.insert_link(&link);
                        writeln!(out, "{}", link_text(&link, &names, true))?;
                    }
                    seen += 1;
                }
            }
        }
    }
    Ok(seen)
}

/// Dumps the links into a fresh cache and says how many there are.
fn resync(
    sock: &mut Socket,
    out: &mut impl Write,
) -> Result<LinkNames, Box<dyn std::error::Error>> {
    let mut names = LinkNames::new();
    let summary = route::ops::dump_links(sock, &LinkFilter::default(), |l| {
        names.insert_link(&l);
        Ok(())
    })?;
    // A dump flagged NLM_F_DUMP_INTR is fine here: the changes that interrupted it are
    // events queued on the event socket, applied next.
    writeln!(out, "resync: {} links", summary.delivered)?;
    Ok(names)
}
