//! Print conntrack events like `conntrack -E`.
//!
//! ```sh
//! cargo run -p nlkit --example conntrack_events -- [--count N] [--reliable] [-e new,update,destroy]
//! ```
//!
//! `--count N` stops after N events (the tests use it); without it, runs until killed.
//! `-e` picks the event kinds (all three by default), each a multicast group of its own.
//!
//! Under load the receive queue can overflow: events are then lost, reported as
//! `Received::Overrun`, and a cache built from events must resynchronise (dump the table
//! again); this program counts the entries as a stand-in for that dump. `--reliable` asks
//! the kernel to keep destroy events it could not deliver and retry them, as conntrackd's
//! `NetlinkEventsReliable` does, at some CPU cost under load.

use std::io::Write;
use std::process::ExitCode;

use nlkit::conntrack::fmt::event_text;
use nlkit::conntrack::ops::{Events, Received};
use nlkit::conntrack::request::DumpFilter;
use nlkit::prelude::*;

const USAGE: &str = "usage: conntrack_events [--count N] [--reliable] [-e new,update,destroy]";

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

/// Subscribes to the events `args` select and prints them; returns how many were printed
/// (after `--count` events, or never).
pub fn run(args: &[String], out: &mut impl Write) -> Result<u64, Box<dyn std::error::Error>> {
    let mut count = None;
    let mut reliable = false;
    let mut kinds = vec![EventKind::New, EventKind::Update, EventKind::Destroy];
    let mut args = args.iter().map(String::as_str);
    while let Some(a) = args.next() {
        match a {
            "--count" => count = Some(args.next().ok_or(USAGE)?.parse::<u64>()?),
            "--reliable" => reliable = true,
            "-e" | "--event-mask" => {
                kinds = args
                    .next()
                    .ok_or(USAGE)?
                    .split(',')
                    .map(|k| match k {
                        "new" => Ok(EventKind::New),
                        "update" => Ok(EventKind::Update),
                        "destroy" => Ok(EventKind::Destroy),
                        _ => Err(USAGE),
                    })
                    .collect::<Result<_, _>>()?;
            }
            _ => return Err(USAGE.into()),
        }
    }

    let mut events = Events::open(&kinds, reliable)?;
    let mut seen = 0;
    let mut write_error = None;
    while count.is_none_or(|c| seen < c) {
        match events.recv(false, |e| {
            if write_error.is_none() {
                write_error = writeln!(out, "{}", event_text(&e)).err();
            }
        })? {
            Received::Events(n) => seen += n as u64,
            Received::Overrun => {
                // Events were lost: what a cache built from them holds is no longer known.
                // Rebuild it from a dump (here: just count what the table holds now).
                let mut sock = Socket::open(Protocol::Netfilter)?;
                let now = conntrack::ops::dump(&mut sock, &DumpFilter::default(), |_| Ok(()))?;
                writeln!(
                    out,
                    "events lost (ENOBUFS); the table now holds {} entries",
                    now.delivered
                )?;
            }
        }
        if let Some(e) = write_error.take() {
            return Err(e.into());
        }
    }
    Ok(seen)
}
