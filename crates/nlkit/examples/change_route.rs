//! Add, replace or delete a route like `ip route add|replace|del`, and print the kernel's
//! own explanation when it refuses.
//!
//! ```sh
//! cargo run -p nlkit --example change_route -- add 10.1.0.0/16 via 10.0.0.2 [dev va] [table 100] [metric 10]
//! cargo run -p nlkit --example change_route -- add 10.1.0.0/16 via 192.0.2.1
//! Error: Nexthop has invalid gateway.
//! ```
//!
//! Every change request carries `NLM_F_ACK`, so the kernel answers each one: an ack, or an
//! error whose extended-ack TLVs hold a message (and the offset of the attribute at fault).
//! [`Error::Kernel`]'s `Display` prints it as iproute2 does.

use std::io::Write;
use std::net::IpAddr;
use std::process::ExitCode;

use nlkit::prelude::*;
use nlkit::route::request::{LinkRef, RouteOp};

const USAGE: &str =
    "usage: change_route add|replace|del PREFIX[/LEN] [via GW] [dev NAME] [table N] [metric N]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args, &mut std::io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}"); // a kernel refusal: "Error: Nexthop has invalid gateway."
            ExitCode::FAILURE
        }
    }
}

/// Runs the change `args` describe; a kernel refusal is returned as [`Error::Kernel`].
pub fn run(args: &[String], out: &mut impl Write) -> Result<(), Box<dyn std::error::Error>> {
    let mut sock = Socket::open(Protocol::Route)?;
    let mut args = args.iter().map(String::as_str);
    let (Some(op), Some(prefix)) = (args.next(), args.next()) else {
        return Err(USAGE.into());
    };
    let (dst, len) = parse_prefix(prefix)?;
    let mut r = Route::new(dst, len);
    while let (Some(key), Some(value)) = (args.next(), args.next()) {
        r = match key {
            "via" => r.via(value.parse()?),
            "dev" => {
                let link = route::ops::get_link(&mut sock, LinkRef::Name(value))?;
                r.dev(link.index)
            }
            "table" => r.table(value.parse()?),
            "metric" => r.metric(value.parse()?),
            _ => return Err(USAGE.into()),
        };
    }

    let result = match op {
        "add" => route::ops::add_route(&mut sock, &r, RouteOp::Add),
        "replace" => route::ops::add_route(&mut sock, &r, RouteOp::Replace),
        "del" | "delete" => route::ops::del_route(&mut sock, &r),
        _ => return Err(USAGE.into()),
    };
    match result {
        Ok(()) => writeln!(out, "{op} {prefix}: done")?,
        Err(Error::Kernel(k)) => {
            // errno, the extended-ack text, and where in the request the kernel looked.
            let text = k.msg.as_deref().unwrap_or("(no extended ack)");
            let at = k.offset.map_or(String::new(), |o| format!(" at byte {o}"));
            writeln!(out, "{op} {prefix}: refused, errno {}{at}: {text}", k.errno)?;
            return Err(Error::Kernel(k).into());
        }
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

/// `10.1.0.0/16`, `fd00::/64`, or a host address (`/32`, `/128`).
fn parse_prefix(s: &str) -> Result<(IpAddr, u8), Box<dyn std::error::Error>> {
    let (addr, len) = s.split_once('/').unwrap_or((s, ""));
    let addr: IpAddr = addr.parse()?;
    let len = match len {
        "" if addr.is_ipv4() => 32,
        "" => 128,
        n => n.parse()?,
    };
    Ok((addr, len))
}
