//! What the mirror's benchmarks share: sizes from the environment, the process's memory
//! figures, the kernel's raw dumps read by a bare receive loop, and the requests they send.
//!
//! Each bench (`mirror.rs`, `view.rs`) includes this module and uses part of it.

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

/// CPU time of this process's threads whose name starts with `mirror-` (from
/// `/proc/self/task/*/schedstat`, nanoseconds; threads that exited are not counted).
pub fn mirror_cpu() -> Duration {
    let mut ns = 0u64;
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for t in dir.flatten() {
            let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            if !comm.starts_with("mirror-") {
                continue;
            }
            // "time on CPU (ns)  time waiting (ns)  timeslices".
            let stat = std::fs::read_to_string(t.path().join("schedstat")).unwrap_or_default();
            ns += stat
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Duration::from_nanos(ns)
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
