//! The kernel baselines of the view bench: raw ctnetlink GET round trips, `CTA_FILTER`
//! dumps, and the route changes the feed measures are made of.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use nlkit_conntrack::request::{DumpFilter, TupleFilter};
use nlkit_conntrack::{CtEntry, Tuple};
use nlkit_socket::{Protocol, Socket};
use nlkit_wire::consts::*;
use nlkit_wire::{MessageBuilder, Messages};

use super::{conn_key, get_passes, repeat, SMALL_SHARE, SMALL_SRC};
use crate::common::{ct_get, host_route, raw_dump, route_churn};

/// Raw ctnetlink GET round trips, one thread: prebuilt requests (the sequence number patched
/// per send), one `send` and one `recv` per lookup on the bare fd, only the reply's headers
/// walked. Best of [`get_passes`] passes over `tuples`; returns (lookups/s, found).
pub(super) fn kernel_get_loop(tuples: &[Tuple]) -> (f64, usize) {
    let sock = Socket::open(Protocol::Netfilter).unwrap();
    let mut reqs: Vec<Vec<u8>> = tuples
        .iter()
        .map(|t| ct_get(&conn_key(t)).as_bytes().to_vec())
        .collect();
    let mut buf = vec![0u8; 64 * 1024];
    let mut best = f64::MAX;
    let mut found = 0;
    let mut seq = 1u32;
    for _ in 0..get_passes() {
        let mut ok = 0;
        let t = Instant::now();
        for r in reqs.iter_mut() {
            seq = seq.wrapping_add(1);
            r[8..12].copy_from_slice(&seq.to_ne_bytes());
            rustix::net::send(&sock, r, rustix::net::SendFlags::empty()).unwrap();
            let n = rustix::net::recv(&sock, &mut buf[..], rustix::net::RecvFlags::empty())
                .unwrap()
                .0;
            for m in Messages::new(&buf[..n]).flatten() {
                if m.ty() != NLMSG_ERROR && m.ty() != NLMSG_DONE {
                    ok += 1;
                }
            }
        }
        best = best.min(t.elapsed().as_secs_f64());
        found = ok;
    }
    (tuples.len() as f64 / best.max(1e-9), found)
}

/// The kernel's filtered dump of the entries whose original source is `src` (`CTA_FILTER`,
/// the request `nlkit ct list -s SRC` sends), read by the bare receive loop. Best of [`repeat`].
pub(super) fn kernel_filtered_dump(src: IpAddr) -> (Duration, u64) {
    let f = DumpFilter {
        orig: Some(TupleFilter {
            src: Some(src),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut req = MessageBuilder::new();
    nlkit_conntrack::request::dump(&mut req, 0, &f).unwrap();
    raw_dump(Protocol::Netfilter, &req, repeat())
}

/// Loads [`SMALL_SHARE`] UDP entries from [`SMALL_SRC`] (the few-entries address).
pub(super) fn load_small_share() {
    let mut s = nlkit_conntrack::ops::open().unwrap();
    let entries: Vec<CtEntry> = (0..SMALL_SHARE as u16)
        .map(|i| {
            let t = Tuple::udp(
                IpAddr::V4(SMALL_SRC),
                2000 + i,
                IpAddr::V4(Ipv4Addr::new(10, 201, 0, 1)),
                53,
            );
            CtEntry {
                timeout: Some(600),
                mark: Some(1),
                ..CtEntry::new(t)
            }
        })
        .collect();
    for r in nlkit_conntrack::ops::create_many(&mut s, &entries).unwrap() {
        r.unwrap();
    }
}

/// One route change: adds (or deletes) 10.99.x.y/32 via `oif`; returns once the kernel acked.
pub(super) fn route_change(sock: &mut Socket, oif: u32, dst: Ipv4Addr, add: bool) {
    let mut b = MessageBuilder::new();
    host_route(&mut b, add, 1, oif, dst);
    sock.transact(&mut b).unwrap();
}

/// Adds then deletes `n / 2` host routes via `oif` in batches: `n` route changes.
pub(super) fn churn(oif: u32, n: usize) {
    route_churn(oif, n, 0x0a60_0000);
}
