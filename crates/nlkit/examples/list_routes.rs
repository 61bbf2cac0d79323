//! List routes like `ip route`: the main table by default.
//!
//! ```sh
//! cargo run -p nlkit --example list_routes -- [-4|-6] [table all|main|N]
//! ```
//!
//! The dump streams: each route is a view borrowing the receive buffer, printed and
//! forgotten, so memory stays one buffer however large the table. The kernel filters by
//! table (strict checking is on by default); the same filter is re-checked here.

use std::io::Write;
use std::process::ExitCode;

use nlkit::prelude::*;
use nlkit::route::fmt::{route_text, RouteFmt};
use nlkit::route::request::RouteFilter;

const USAGE: &str = "usage: list_routes [-4|-6] [table all|main|N]";

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

/// Prints the routes `args` select to `out`; returns how many were printed.
pub fn run(args: &[String], out: &mut impl Write) -> Result<u64, Box<dyn std::error::Error>> {
    let mut family = consts::AF_INET;
    let mut filter = RouteFilter::main();
    let mut args = args.iter().map(String::as_str);
    while let Some(a) = args.next() {
        match a {
            "-4" => family = consts::AF_INET,
            "-6" => family = consts::AF_INET6,
            "table" => match args.next() {
                Some("all") => filter.table = None,
                Some("main") => filter = RouteFilter::main(),
                Some(n) => filter.table = Some(n.parse()?),
                None => return Err(USAGE.into()),
            },
            _ => return Err(USAGE.into()),
        }
    }
    // iproute2 prints `table T` only when listing more than one table.
    let opts = RouteFmt {
        show_table: filter.table.is_none(),
        ..RouteFmt::default()
    };

    let mut sock = Socket::open(Protocol::Route)?; // EXT_ACK, STRICT_CHK, 4 MiB rcvbuf
    let names = route::ops::link_names(&mut sock)?; // ifindex -> name, for `dev NAME`
    let mut write_error = None;
    let summary = route::ops::dump_routes(&mut sock, family, &filter, |r| {
        // The callback's error type is the socket's; keep the first write error for later.
        if write_error.is_none() {
            write_error = writeln!(out, "{}", route_text(&r, &names, opts)).err();
        }
        Ok(())
    })?;
    match write_error {
        Some(e) => Err(e.into()),
        None => Ok(summary.delivered),
    }
}
