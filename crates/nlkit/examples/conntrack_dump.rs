//! List conntrack entries like `conntrack -L`, filtered by the kernel: only matching entries
//! cross into user space.
//!
//! ```sh
//! cargo run -p nlkit --example conntrack_dump -- [--mark M[/MASK]] [-p udp|tcp|N] [-s SRC] [-d DST] [--sport N] [--dport N]
//! ```
//!
//! The mark travels as `CTA_MARK` + `CTA_MARK_MASK`; addresses, protocol and ports as a
//! `CTA_FILTER` nest with an original tuple (Linux 5.8 and later). An older kernel ignores
//! what it does not know, so each entry is checked again in user space; the summary line
//! compares what the kernel sent with what matched.

use std::io::Write;
use std::process::ExitCode;

use nlkit::conntrack::fmt::entry_text;
use nlkit::conntrack::request::{DumpFilter, TupleFilter};
use nlkit::prelude::*;

const USAGE: &str = "usage: conntrack_dump [--mark M[/MASK]] [-p udp|tcp|N] [-s SRC] [-d DST] \
                     [--sport N] [--dport N]";

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

/// Prints the entries `args` select; returns the dump's summary (entries delivered, and
/// messages the kernel sent).
pub fn run(
    args: &[String],
    out: &mut impl Write,
) -> Result<conntrack::ops::DumpSummary, Box<dyn std::error::Error>> {
    let filter = parse_filter(args)?;
    let mut sock = Socket::open(Protocol::Netfilter)?;
    let mut write_error = None;
    let summary = conntrack::ops::dump(&mut sock, &filter, |e| {
        if write_error.is_none() {
            write_error = writeln!(out, "{}", entry_text(&e)).err();
        }
        Ok(())
    })?;
    if let Some(e) = write_error {
        return Err(e.into());
    }
    writeln!(
        out,
        "{} entries matched; the kernel sent {}",
        summary.delivered, summary.received
    )?;
    Ok(summary)
}

fn parse_filter(args: &[String]) -> Result<DumpFilter, Box<dyn std::error::Error>> {
    let mut filter = DumpFilter::default();
    let mut tuple = TupleFilter::default();
    let mut args = args.iter().map(String::as_str);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(USAGE)?;
        match flag {
            "--mark" | "-m" => {
                let (v, m) = value.split_once('/').unwrap_or((value, "0xffffffff"));
                filter.mark = Some((number(v)?, number(m)?));
            }
            "-p" | "--proto" => {
                tuple.proto = Some(match value {
                    "tcp" => consts::IPPROTO_TCP,
                    "udp" => consts::IPPROTO_UDP,
                    "icmp" => consts::IPPROTO_ICMP,
                    n => n.parse()?,
                })
            }
            "-s" | "--src" => tuple.src = Some(value.parse()?),
            "-d" | "--dst" => tuple.dst = Some(value.parse()?),
            "--sport" => tuple.sport = Some(value.parse()?),
            "--dport" => tuple.dport = Some(value.parse()?),
            _ => return Err(USAGE.into()),
        }
    }
    if tuple != TupleFilter::default() {
        filter.orig = Some(tuple);
    }
    Ok(filter)
}

/// A decimal or `0x` hexadecimal number.
fn number(s: &str) -> Result<u32, std::num::ParseIntError> {
    match s.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => s.parse(),
    }
}
