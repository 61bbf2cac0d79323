//! Apply many route changes in one batch, as a routing daemon or a CNI plugin does, with one
//! result per request.
//!
//! ```sh
//! cargo run -p nlkit --example batch_routes -- add|replace|del --dev va --count 1000 [--from 10.128.0.1]
//! ```
//!
//! The host routes `FROM`, `FROM + 1`, … (`/32`) out of `--dev` are appended to one
//! [`MessageBuilder`] and sent with [`Socket::transact_batch`]: many requests per `sendmsg`,
//! in windows the receive buffer can acknowledge, each answered by its own ack or error. One
//! request failing does not stop the others; the kernel's errors are counted by their text.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::Ipv4Addr;
use std::process::ExitCode;

use nlkit::prelude::*;
use nlkit::route::request::{LinkRef, RouteOp};

const USAGE: &str = "usage: batch_routes add|replace|del --dev NAME --count N [--from 10.128.0.1]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args, &mut std::io::stdout().lock()) {
        Ok(summary) if summary.refused == 0 => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// What a batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Requests the kernel acknowledged.
    pub done: u64,
    /// Requests the kernel refused.
    pub refused: u64,
    /// The refusals, counted by the kernel's words (`Error: File exists.`).
    pub errors: BTreeMap<String, u64>,
}

/// Builds and sends the batch `args` describe; prints and returns its summary.
pub fn run(args: &[String], out: &mut impl Write) -> Result<Summary, Box<dyn std::error::Error>> {
    let mut args = args.iter().map(String::as_str);
    let op = args.next().ok_or(USAGE)?;
    let (mut dev, mut count, mut from) = (None, None, Ipv4Addr::new(10, 128, 0, 1));
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(USAGE)?;
        match flag {
            "--dev" => dev = Some(value.to_owned()),
            "--count" => count = Some(value.parse::<u32>()?),
            "--from" => from = value.parse()?,
            _ => return Err(USAGE.into()),
        }
    }
    let (Some(dev), Some(count)) = (dev, count) else {
        return Err(USAGE.into());
    };

    let mut sock = Socket::open(Protocol::Route)?;
    let oif = route::ops::get_link(&mut sock, LinkRef::Name(&dev))?.index;
    let mut batch = MessageBuilder::with_capacity(count as usize * 64);
    for i in 0..count {
        let dst = Ipv4Addr::from(u32::from(from).wrapping_add(i));
        let r = Route::new(dst.into(), 32)
            .dev(oif)
            .scope(consts::RT_SCOPE_LINK);
        // Sequence numbers are assigned by transact_batch; 0 is a placeholder.
        match op {
            "add" => route::request::add_route(&mut batch, 0, &r, RouteOp::Add)?,
            "replace" => route::request::add_route(&mut batch, 0, &r, RouteOp::Replace)?,
            "del" | "delete" => route::request::del_route(&mut batch, 0, &r)?,
            _ => return Err(USAGE.into()),
        };
    }

    let mut summary = Summary::default();
    // The outer `?`: the socket failed. Each inner result: that request's ack or error.
    for result in sock.transact_batch(&mut batch)? {
        match result {
            Ok(_) => summary.done += 1,
            Err(e) => {
                summary.refused += 1;
                *summary.errors.entry(e.to_string()).or_default() += 1;
            }
        }
    }
    writeln!(
        out,
        "{op}: {} done, {} refused",
        summary.done, summary.refused
    )?;
    for (text, n) in &summary.errors {
        writeln!(out, "  {n} × {text}")?;
    }
    Ok(summary)
}
