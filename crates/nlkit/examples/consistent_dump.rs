//! Take a consistent snapshot of the links: a dump restarted while the kernel flags it
//! `NLM_F_DUMP_INTR` (links changed while it ran, so it may hold a mix of old and new).
//!
//! ```sh
//! cargo run -p nlkit --example consistent_dump -- [--attempts N]
//! ```
//!
//! A dump is read in chunks, one `recvmsg` each, and the kernel does not lock the table
//! between chunks: a link added or removed meanwhile can be missed or seen twice. The kernel
//! notices (its per-namespace change counter moved) and sets `NLM_F_DUMP_INTR`.
//! [`consistent_dump`] runs the dump, and runs it again from scratch when it was flagged,
//! discarding what the interrupted attempt built.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;

use nlkit::prelude::*;
use nlkit::route::request::LinkFilter;

const USAGE: &str = "usage: consistent_dump [--attempts N]";

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

/// Prints a consistent snapshot of the links; returns it (index → link).
pub fn run(
    args: &[String],
    out: &mut impl Write,
) -> Result<BTreeMap<u32, Link>, Box<dyn std::error::Error>> {
    let attempts = match args {
        [] => DEFAULT_ATTEMPTS,
        [flag, n] if flag == "--attempts" => n.parse()?,
        _ => return Err(USAGE.into()),
    };
    let mut req = MessageBuilder::new();
    route::request::dump_links(&mut req, 0, &LinkFilter::default())?;

    let snapshot = consistent_dump(Pool::shared(Protocol::Route), &req, attempts, |dump, n| {
        if n > 1 {
            // Whatever attempt n - 1 returned has been dropped: start from nothing.
            eprintln!("link dump interrupted by a change; attempt {n}");
        }
        let mut links = BTreeMap::new();
        let mut buf = DumpBuffer::new();
        while let Some(m) = dump.next(&mut buf)? {
            let l = LinkView::parse(&m)?;
            links.insert(l.index(), l.to_owned()); // owned: the snapshot outlives the buffer
        }
        Ok(links)
    })?;

    let tries = snapshot.attempts;
    // `Err(Error::Inconsistent)` when every attempt was interrupted.
    let links = snapshot.into_result()?;
    for l in links.values() {
        let name = l.name.as_deref().unwrap_or("?");
        let state = if l.flags & consts::IFF_UP != 0 {
            "UP"
        } else {
            "DOWN"
        };
        let mtu = l.mtu.unwrap_or(0);
        writeln!(out, "{}: {name} mtu {mtu} {state}", l.index)?;
    }
    writeln!(
        out,
        "{} links, consistent after {tries} attempt(s)",
        links.len()
    )?;
    Ok(links)
}
