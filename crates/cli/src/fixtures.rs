//! Scratch state for `nlkit demo` and `nlkit bench`, loaded fast with batched requests (many
//! per `sendmsg`), always inside the private namespace those commands run in.

use std::net::{IpAddr, Ipv4Addr};

use anyhow::{Context, Result};
use nlkit_conntrack::{ops as ct, CtEntry, Tuple};
use nlkit_route::request::{self, RouteOp};
use nlkit_route::{ops, Address, Route};
use nlkit_socket::Socket;
use nlkit_wire::consts::*;
use nlkit_wire::MessageBuilder;

use crate::output::progress;

/// Requests per batch: small enough for the socket buffers, large enough to amortize.
const BATCH: usize = 2000;

/// The device routes point at.
pub struct Scratch {
    /// Index of the `nlk0` end of the veth pair.
    pub oif: u32,
}

/// Brings `lo` up and creates the veth pair `nlk0`/`nlk1` with 10.0.0.1/24 on `nlk0`.
pub fn scratch(sock: &mut Socket) -> Result<Scratch> {
    ops::set_link_up(sock, 1, true).context("bring lo up")?;
    let (a, b) = ops::add_veth(sock, "nlk0", "nlk1").context("create veth nlk0/nlk1")?;
    ops::set_link_up(sock, a, true)?;
    ops::set_link_up(sock, b, true)?;
    ops::add_addr(sock, &Address::new(a, "10.0.0.1".parse()?, 24), false)?;
    Ok(Scratch { oif: a })
}

/// The `i`-th scratch route destination: 10.128.0.0/9 upward as /32s.
pub fn route_dst(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 128, 0, 1)) + i as u32)
}

/// Adds (or deletes) routes `range` via `oif`, in batches, with a progress bar.
pub fn routes(
    sock: &mut Socket,
    oif: u32,
    range: std::ops::Range<usize>,
    add: bool,
    label: &str,
) -> Result<()> {
    let pb = progress(Some(range.len() as u64), label);
    let mut b = MessageBuilder::with_capacity(BATCH * 64);
    let mut i = range.start;
    while i < range.end {
        b.clear();
        let end = (i + BATCH).min(range.end);
        for j in i..end {
            let r = Route::new(IpAddr::V4(route_dst(j)), 32)
                .dev(oif)
                .proto(RTPROT_STATIC)
                .scope(RT_SCOPE_LINK);
            if add {
                request::add_route(&mut b, 0, &r, RouteOp::Add)?;
            } else {
                request::del_route(&mut b, 0, &r)?;
            }
        }
        for r in sock.transact_batch(&mut b)? {
            r.context("route change")?;
        }
        pb.inc((end - i) as u64);
        i = end;
    }
    pb.finish_and_clear();
    Ok(())
}

/// The `i`-th scratch connection: 10.200.x.y:sport → 10.201.0.1:53 over UDP.
pub fn conn(i: usize) -> Tuple {
    let src = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 200, 0, 1)) + (i / 50_000) as u32);
    Tuple::udp(
        IpAddr::V4(src),
        1024 + (i % 50_000) as u16,
        IpAddr::V4(Ipv4Addr::new(10, 201, 0, 1)),
        53,
    )
}

/// Creates conntrack entries `range` (timeout 3600 s), in batches, with a progress bar.
pub fn conntrack(sock: &mut Socket, range: std::ops::Range<usize>, label: &str) -> Result<()> {
    let pb = progress(Some(range.len() as u64), label);
    let mut i = range.start;
    let mut batch = Vec::with_capacity(BATCH);
    while i < range.end {
        let end = (i + BATCH).min(range.end);
        batch.clear();
        batch.extend((i..end).map(|j| CtEntry::new(conn(j)).timeout(3600)));
        for r in ct::create_many(sock, &batch)? {
            r.context("conntrack create")?;
        }
        pb.inc((end - i) as u64);
        i = end;
    }
    pb.finish_and_clear();
    Ok(())
}

/// How many conntrack entries fit under the global `nf_conntrack_max` besides what exists.
pub fn conntrack_room(sock: &mut Socket) -> Result<usize> {
    let max: usize = std::fs::read_to_string("/proc/sys/net/netfilter/nf_conntrack_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(262_144);
    let global: usize = std::fs::read_to_string("/proc/sys/net/netfilter/nf_conntrack_count")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(ct::count(sock)? as usize);
    // Keep a margin: the kernel starts early-dropping near the limit.
    Ok((max.saturating_sub(global)) * 9 / 10)
}
