//! The cost of one `conntrack -L` line (`cargo bench -p nlkit-conntrack --bench
//! entry_text`): no kernel, messages built in memory the way the kernel sends a dump's
//! entries (both tuples, status, timeout, mark, use, id), `NLKIT_BENCH_ENTRIES` of each
//! shape (default 200,000): an unreplied IPv4 UDP flow (the shape of `nlkit bench`'s
//! fixtures) and an assured IPv6 TCP flow with TCP state and counters. Best of 5 passes, in
//! nanoseconds per entry:
//!
//! - `CtEntryView::parse` alone,
//! - `parse` + [`EntryText::write_to`](nlkit_conntrack::fmt::EntryText::write_to) into one
//!   buffer (what listings do),
//! - `parse` + `EntryText`'s `Display` through `write!` into a byte buffer (a `fmt::Write`
//!   adapter appending to it: how listings wrote lines before `write_to`).
//!
//! `harness = false`: `main` prints the table.

use std::fmt::Write as _;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use nlkit_conntrack::fmt::entry_text;
use nlkit_conntrack::CtEntryView;
use nlkit_testns::{size_from_env, LineBench};
use nlkit_wire::consts::*;
use nlkit_wire::{MessageBuilder, Messages, NfGenMsg};

/// A tuple nest: addresses, protocol, ports.
fn tuple(
    b: &mut MessageBuilder,
    ty: u16,
    (src, dst): (IpAddr, IpAddr),
    proto: u8,
    ports: (u16, u16),
) {
    let t = b.nest_begin_flags(ty);
    let ip = b.nest_begin_flags(CTA_TUPLE_IP);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => b
            .attr_bytes(CTA_IP_V4_SRC, &s.octets())
            .attr_bytes(CTA_IP_V4_DST, &d.octets()),
        (s, d) => {
            let o = |a: IpAddr| match a {
                IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
                IpAddr::V6(a) => a.octets(),
            };
            b.attr_bytes(CTA_IP_V6_SRC, &o(s))
                .attr_bytes(CTA_IP_V6_DST, &o(d))
        }
    };
    b.nest_end(ip);
    let p = b.nest_begin_flags(CTA_TUPLE_PROTO);
    b.attr_u8(CTA_PROTO_NUM, proto)
        .attr_be16(CTA_PROTO_SRC_PORT, ports.0)
        .attr_be16(CTA_PROTO_DST_PORT, ports.1);
    b.nest_end(p);
    b.nest_end(t);
}

/// `n` entry messages back to back: unreplied IPv4 UDP flows (`tcp` false) or assured IPv6
/// TCP ones with counters.
fn messages(n: usize, tcp: bool) -> MessageBuilder {
    let mut b = MessageBuilder::with_capacity(n * 260);
    for i in 0..n {
        b.begin(
            nfnl_msg_type(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_NEW),
            NLM_F_MULTI,
            0,
        );
        b.header(&NfGenMsg {
            family: if tcp { AF_INET6 } else { AF_INET },
            ..Default::default()
        });
        let sport = 1024 + (i % 50_000) as u16;
        let (src, dst, proto, dport): (IpAddr, IpAddr, u8, u16) = if tcp {
            let s = Ipv6Addr::from(0xfd00_0000_0000_0000_0000_0000_0001_0000 + i as u128);
            (s.into(), "fd00::2".parse().unwrap(), IPPROTO_TCP, 443)
        } else {
            let s = Ipv4Addr::from(0x0ac8_0001 + (i / 50_000) as u32);
            (
                s.into(),
                Ipv4Addr::new(10, 201, 0, 1).into(),
                IPPROTO_UDP,
                53,
            )
        };
        tuple(&mut b, CTA_TUPLE_ORIG, (src, dst), proto, (sport, dport));
        if tcp {
            let c = b.nest_begin_flags(CTA_COUNTERS_ORIG);
            b.attr_be64(CTA_COUNTERS_PACKETS, 12 + i as u64 % 1000)
                .attr_be64(CTA_COUNTERS_BYTES, 4321 + i as u64 * 7);
            b.nest_end(c);
        }
        tuple(&mut b, CTA_TUPLE_REPLY, (dst, src), proto, (dport, sport));
        if tcp {
            let c = b.nest_begin_flags(CTA_COUNTERS_REPLY);
            b.attr_be64(CTA_COUNTERS_PACKETS, 10 + i as u64 % 900)
                .attr_be64(CTA_COUNTERS_BYTES, 98_765 + i as u64 * 13);
            b.nest_end(c);
            let pi = b.nest_begin_flags(CTA_PROTOINFO);
            let t = b.nest_begin_flags(CTA_PROTOINFO_TCP);
            b.attr_u8(CTA_PROTOINFO_TCP_STATE, TCP_CONNTRACK_ESTABLISHED);
            b.nest_end(t);
            b.nest_end(pi);
        }
        let status = if tcp {
            IPS_CONFIRMED | IPS_SEEN_REPLY | IPS_ASSURED
        } else {
            IPS_CONFIRMED
        };
        b.attr_be32(CTA_STATUS, status)
            .attr_be32(CTA_TIMEOUT, 3599 - (i % 3000) as u32)
            .attr_be32(CTA_MARK, 0)
            .attr_be32(CTA_USE, 1)
            .attr_be32(CTA_ID, 0x9e37_79b9u32.wrapping_mul(i as u32));
        b.finish().expect("an entry message fits");
    }
    b
}

/// `fmt::Write` appending to a byte buffer.
struct Bytes<'a>(&'a mut Vec<u8>);
impl std::fmt::Write for Bytes<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

fn main() {
    let n = size_from_env("NLKIT_BENCH_ENTRIES", 200_000);
    let bench = LineBench::new(
        "ns per entry",
        ["IPv4 UDP", "IPv6 TCP"],
        n,
        [messages(n, false), messages(n, true)].map(|b| b.as_bytes().to_vec()),
    );
    bench.row("CtEntryView::parse", &mut |bytes| {
        for m in Messages::new(bytes) {
            black_box(CtEntryView::parse(&m.unwrap()).unwrap());
        }
    });
    let mut out = Vec::with_capacity(n * 256);
    bench.row("parse + EntryText::write_to", &mut |bytes| {
        out.clear();
        for m in Messages::new(bytes) {
            let e = CtEntryView::parse(&m.unwrap()).unwrap();
            entry_text(&e).write_to(&mut out);
            out.push(b'\n');
        }
        black_box(&out);
    });
    bench.row("parse + EntryText's Display (write!)", &mut |bytes| {
        out.clear();
        for m in Messages::new(bytes) {
            let e = CtEntryView::parse(&m.unwrap()).unwrap();
            let _ = writeln!(Bytes(&mut out), "{}", entry_text(&e));
        }
        black_box(&out);
    });
}
