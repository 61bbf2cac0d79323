//! Ask the nlkit mirror instead of the kernel: the routes of the main table, like
//! `ip route`, and the number of conntrack entries, answered from the mirror's tables
//! without taking any kernel lock.
//!
//! ```sh
//! nlkit mirror &     # or the systemd unit in contrib/
//! cargo run -p nlkit --example ask_mirror -- [--socket PATH]
//! ```
//!
//! `--socket` defaults to where the mirror listens by default
//! ([`nlkit::mirror::default_mirror_path`]). The socket returned by
//! [`Socket::connect_unix`] is the same type as a kernel socket, so every typed request below
//! is the one a program would send to the kernel; only the port id (0), multicast groups (none)
//! and the end of the connection ([`Error::PeerClosed`]) differ.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use nlkit::conntrack::request::DumpFilter;
use nlkit::prelude::*;
use nlkit::route::fmt::route_text;
use nlkit::route::request::RouteFilter;

const USAGE: &str = "usage: ask_mirror [--socket PATH]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args, &mut std::io::stdout().lock()) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            // e.g. "cannot connect to /run/nlkit/mirror.sock: No such file or directory"
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Prints the mirror's main-table routes and conntrack count; returns `(routes, entries)`.
pub fn run(
    args: &[String],
    out: &mut impl Write,
) -> Result<(u64, u64), Box<dyn std::error::Error>> {
    let path = match args {
        [] => nlkit::mirror::default_mirror_path(),
        [flag, p] if flag == "--socket" => PathBuf::from(p),
        _ => return Err(USAGE.into()),
    };

    let mut sock = Socket::connect_unix(&path, Protocol::Route)?;
    let names = route::ops::link_names(&mut sock)?;
    let mut write_error = None;
    let routes = route::ops::dump_routes(&mut sock, consts::AF_INET, &RouteFilter::main(), |r| {
        if write_error.is_none() {
            write_error = writeln!(out, "{}", route_text(&r, &names, Default::default())).err();
        }
        Ok(())
    })?;
    if let Some(e) = write_error {
        return Err(e.into());
    }

    // One connection per protocol, as with the kernel.
    let mut ct = Socket::connect_unix(&path, Protocol::Netfilter)?;
    let entries = conntrack::ops::dump(&mut ct, &DumpFilter::default(), |_| Ok(()))?;
    writeln!(
        out,
        "{} routes and {} conntrack entries, from the mirror at {}",
        routes.delivered,
        entries.delivered,
        path.display()
    )?;
    Ok((routes.delivered, entries.delivered))
}
