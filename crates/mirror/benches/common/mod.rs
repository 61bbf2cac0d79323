//! What the mirror's benchmarks share: sizes from the environment, the process's memory
//! figures, the kernel's raw dumps read by a bare receive loop, and the requests they send.
//!
//! Each bench (`mirror.rs`, `view.rs`, `feed.rs`, `writes.rs`) includes this module and uses
//! part of it.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use nlkit_socket::{Protocol, RecvBuffer, Socket};
use nlkit_wire::consts::*;
use nlkit_wire::{MessageBuilder, Messages, NfGenMsg, RtMsg};

/// `name` from the environment (`_` separators allowed), else `default`.
pub fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// A `/proc/<pid>/status` field in KiB (0 when absent).
pub fn status_kib(pid: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// This process's peak resident memory (`VmHWM`), KiB.
pub fn vm_hwm_kib() -> u64 {
    status_kib("self", "VmHWM")
}

/// This process's resident memory (`VmRSS`), KiB.
pub fn vm_rss_kib() -> u64 {
    status_kib("self", "VmRSS")
}

/// Gives the freed heap back to the system and resets the high-water mark to the current RSS
/// ("5" in `clear_refs`), so a later `VmHWM` is the peak from here. Returns whether the reset
/// worked.
pub fn reset_peak() -> bool {
    // SAFETY: malloc_trim only releases free memory of the allocator's arenas.
    unsafe { libc::malloc_trim(0) };
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// CPU time (nanoseconds, `/proc/self/task/*/schedstat`) of each of this process's threads
/// whose name starts with `mirror-`, by thread id.
#[derive(Debug, Clone, Default)]
pub struct MirrorCpu(std::collections::HashMap<u64, u64>);

impl MirrorCpu {
    /// The mirror threads' CPU times now.
    pub fn now() -> Self {
        let mut by_tid = std::collections::HashMap::new();
        if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
            for t in dir.flatten() {
                let Some(tid) = t.file_name().to_str().and_then(|s| s.parse::<u64>().ok()) else {
                    continue;
                };
                let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
                if !comm.starts_with("mirror-") {
                    continue;
                }
                // "time on CPU (ns)  time waiting (ns)  timeslices".
                let stat = std::fs::read_to_string(t.path().join("schedstat")).unwrap_or_default();
                if let Some(ns) = stat.split_whitespace().next().and_then(|v| v.parse().ok()) {
                    by_tid.insert(tid, ns);
                }
            }
        }
        MirrorCpu(by_tid)
    }

    /// CPU the mirror's threads used since `self` was taken: threads alive at both ends and
    /// threads started since (a thread that exited in between is not counted).
    pub fn since(&self) -> Duration {
        let now = MirrorCpu::now();
        let ns: u64 = now
            .0
            .iter()
            .map(|(tid, ns)| ns.saturating_sub(self.0.get(tid).copied().unwrap_or(0)))
            .sum();
        Duration::from_nanos(ns)
    }
}

/// One dump of `req` on `sock` (the kernel or the mirror) read by a bare receive loop walking
/// message headers, so the kernel's and the mirror's figures compare like for like.
pub fn bare_dump(sock: &mut Socket, req: &MessageBuilder, buf: &mut RecvBuffer) -> (Duration, u64) {
    let mut req = req.clone();
    let t = Instant::now();
    sock.send_dump(&mut req).unwrap();
    let mut n = 0;
    'datagrams: loop {
        sock.recv(buf).unwrap();
        for m in Messages::new(buf.unread()) {
            let m = m.unwrap();
            if matches!(m.ty(), NLMSG_DONE | NLMSG_ERROR) {
                break 'datagrams;
            }
            n += 1;
        }
    }
    (t.elapsed(), n)
}

/// One raw dump of `req`: the mean length of its messages (bytes, headers included).
pub fn mean_message_len(proto: Protocol, req: &MessageBuilder) -> f64 {
    let mut sock = Socket::open(proto).unwrap();
    let mut buf = RecvBuffer::with_capacity(64 * 1024);
    let mut req = req.clone();
    sock.send_dump(&mut req).unwrap();
    let (mut n, mut bytes) = (0u64, 0u64);
    'datagrams: loop {
        sock.recv(&mut buf).unwrap();
        for m in Messages::new(buf.unread()) {
            let m = m.unwrap();
            if matches!(m.ty(), NLMSG_DONE | NLMSG_ERROR) {
                break 'datagrams;
            }
            n += 1;
            bytes += m.len() as u64;
        }
    }
    bytes as f64 / n.max(1) as f64
}

/// Best of `n` runs of a raw kernel dump: its time and the messages it returned.
pub fn raw_dump(proto: Protocol, req: &MessageBuilder, n: usize) -> (Duration, u64) {
    let mut sock = Socket::open(proto).unwrap();
    // The kernel sizes its dump chunks by the receive buffer it is given.
    let mut buf = RecvBuffer::with_capacity(64 * 1024);
    let mut best = Duration::MAX;
    let mut count = 0;
    for _ in 0..n {
        let (took, msgs) = bare_dump(&mut sock, req, &mut buf);
        best = best.min(took);
        count = msgs;
    }
    (best, count)
}

/// An IPv4 route dump request.
pub fn route_dump_req() -> MessageBuilder {
    let mut b = MessageBuilder::new();
    b.begin(RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, 0);
    b.header(&RtMsg {
        family: AF_INET,
        ..Default::default()
    });
    b.finish().unwrap();
    b
}

/// A conntrack dump request (every family).
pub fn ct_dump_req() -> MessageBuilder {
    let mut b = MessageBuilder::new();
    b.begin(
        nfnl_msg_type(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_GET),
        NLM_F_REQUEST | NLM_F_DUMP,
        0,
    );
    b.header(&NfGenMsg {
        family: AF_UNSPEC,
        version: NFNETLINK_V0,
        res_id: 0,
    });
    b.finish().unwrap();
    b
}

/// An `IPCTNL_MSG_CT_GET` of one IPv4 entry by its original tuple.
pub fn ct_get(t: &nlkit_table::ConnKey) -> MessageBuilder {
    let mut b = MessageBuilder::new();
    b.begin(
        nfnl_msg_type(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_GET),
        NLM_F_REQUEST,
        0,
    );
    b.header(&NfGenMsg {
        family: AF_INET,
        version: NFNETLINK_V0,
        res_id: 0,
    });
    let n = b.nest_begin(CTA_TUPLE_ORIG);
    let ip = b.nest_begin(CTA_TUPLE_IP);
    b.attr_ip(CTA_IP_V4_SRC, t.src);
    b.attr_ip(CTA_IP_V4_DST, t.dst);
    b.nest_end(ip);
    let p = b.nest_begin(CTA_TUPLE_PROTO);
    b.attr_u8(CTA_PROTO_NUM, t.proto);
    b.attr_be16(CTA_PROTO_SRC_PORT, t.src_port);
    b.attr_be16(CTA_PROTO_DST_PORT, t.dst_port);
    b.nest_end(p);
    b.nest_end(n);
    b.finish().unwrap();
    b
}

/// Appends `RTM_NEWROUTE` (`add`) or `RTM_DELROUTE` for the host route `dst`/32 via `oif` in
/// the main table, with `flags` and `seq`.
pub fn host_route_with(
    b: &mut MessageBuilder,
    add: bool,
    flags: u16,
    seq: u32,
    oif: u32,
    dst: Ipv4Addr,
) {
    b.begin(if add { RTM_NEWROUTE } else { RTM_DELROUTE }, flags, seq);
    b.header(&RtMsg {
        family: AF_INET,
        dst_len: 32,
        table: RT_TABLE_MAIN,
        protocol: RTPROT_STATIC,
        scope: if add { RT_SCOPE_LINK } else { RT_SCOPE_NOWHERE },
        ty: if add { RTN_UNICAST } else { RTN_UNSPEC },
        ..Default::default()
    });
    b.attr_ip(RTA_DST, IpAddr::V4(dst));
    if add {
        b.attr_u32(RTA_OIF, oif);
    }
    b.finish().expect("static request");
}

/// [`host_route_with`] as a request: adds with `NLM_F_CREATE | NLM_F_REPLACE`, deletes plain.
pub fn host_route(b: &mut MessageBuilder, add: bool, seq: u32, oif: u32, dst: Ipv4Addr) {
    let flags = if add {
        NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE
    } else {
        NLM_F_REQUEST
    };
    host_route_with(b, add, flags, seq, oif, dst);
}

/// Adds then deletes `n / 2` host routes via `oif`, from address `first` up, in batches of
/// 256: `n` route changes.
pub fn route_churn(oif: u32, n: usize, first: u32) {
    let mut k = Socket::open(Protocol::Route).unwrap();
    let dsts: Vec<Ipv4Addr> = (0..n as u32 / 2)
        .map(|i| Ipv4Addr::from(first + i))
        .collect();
    for add in [true, false] {
        for chunk in dsts.chunks(256) {
            let mut b = MessageBuilder::new();
            for (i, d) in chunk.iter().enumerate() {
                host_route(&mut b, add, i as u32 + 1, oif, *d);
            }
            k.transact_batch(&mut b).unwrap();
        }
    }
}
