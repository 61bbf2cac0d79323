//! Watch the nlkit mirror's change feed: a snapshot of the IPv4 routes consistent at one
//! position, then every route change after it, each with its position; or resume after a
//! position an earlier run printed.
//!
//! ```sh
//! nlkit mirror &
//! cargo run -p nlkit --example mirror_feed -- [--socket PATH] [--count N] [--resume EPOCH:POSITION]
//! ```
//!
//! Events are the kernel's own `RTM_NEWROUTE`/`RTM_DELROUTE` messages (the typed views read
//! them unchanged), each ending with a [`FeedMark`]: its position, the mirror's epoch, and
//! whether the mirror synthesized it (a route the kernel removed silently, e.g. with its
//! link). Printing the last position and passing it to `--resume` continues without a gap or
//! a repeat, while the mirror's log still holds it; otherwise the mirror says to resync.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use nlkit::prelude::*;
use nlkit::route::fmt::{route_text, LinkNames};
use nlkit::route::RouteView;
use nlkit::socket::feed::{FeedMark, MirrorStart, Subscribed};

const USAGE: &str = "usage: mirror_feed [--socket PATH] [--count N] [--resume EPOCH:POSITION]";

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

/// Follows the feed until `--count` events were printed (forever without it); returns the
/// mark of the last event (or of the snapshot / resume point when none came).
pub fn run(args: &[String], out: &mut impl Write) -> Result<FeedMark, Box<dyn std::error::Error>> {
    let mut path = nlkit::mirror::default_mirror_path();
    let mut count = u64::MAX;
    let mut start = MirrorStart::Snapshot;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let v = it.next().ok_or(USAGE)?;
        match a.as_str() {
            "--socket" => path = PathBuf::from(v),
            "--count" => count = v.parse()?,
            "--resume" => {
                let (e, p) = v.split_once(':').ok_or(USAGE)?;
                start = MirrorStart::Resume {
                    epoch: e.parse()?,
                    position: p.parse()?,
                };
            }
            _ => return Err(USAGE.into()),
        }
    }
    let mut sock = Socket::connect_unix(&path, Protocol::Route)?;
    let names: LinkNames = route::ops::link_names(&mut sock)?;
    let mut snapshot = 0u64;
    let answer = sock.mirror_subscribe(&[consts::RTNLGRP_IPV4_ROUTE], start, |_| snapshot += 1)?;
    let mut last = match answer {
        Subscribed::Following(mark) => mark,
        Subscribed::ResyncRequired(head) => {
            return Err(format!(
                "position no longer in the mirror's log (head {} of epoch {}): take a snapshot",
                head.position, head.epoch
            )
            .into())
        }
    };
    if matches!(start, MirrorStart::Snapshot) {
        writeln!(
            out,
            "snapshot: {snapshot} routes at {}:{}",
            last.epoch, last.position
        )?;
    } else {
        writeln!(out, "resumed after {}:{}", last.epoch, last.position)?;
    }
    let mut buf = RecvBuffer::new();
    let mut seen = 0;
    while seen < count {
        sock.recv(&mut buf)?;
        for m in buf.messages() {
            let m = m?;
            let Some(mark) = FeedMark::of(m.bytes()) else {
                continue;
            };
            if m.ty() == consts::NLMSG_ERROR {
                // An overrun notice: resume from `mark.position`.
                return Err(format!("fell behind at {}:{}", mark.epoch, mark.position).into());
            }
            let r = RouteView::parse(&m)?;
            let how = if mark.is_synthesized() {
                " (synthesized)"
            } else {
                ""
            };
            let verb = if m.ty() == consts::RTM_DELROUTE {
                "Deleted "
            } else {
                ""
            };
            writeln!(
                out,
                "{}:{}{how} {verb}{}",
                mark.epoch,
                mark.position,
                route_text(&r, &names, Default::default())
            )?;
            last = mark;
            seen += 1;
        }
    }
    Ok(last)
}
