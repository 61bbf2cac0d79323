//! Shared helpers of the mirror tests: starting a mirror in the test's namespace, kernel
//! writes in batches, and comparing the mirror with fresh kernel dumps entry by entry.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nlkit_mirror::{Mirror, MirrorConfig, TableId, WriterMode};
use nlkit_socket::{Protocol, Socket};
use nlkit_wire::consts::*;
use nlkit_wire::{IfAddrMsg, IfInfoMsg, Message, MessageBuilder, Messages, NfGenMsg, RtMsg};

/// A socket path unique to this test process.
pub fn socket_path(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nlkit-mirror-test-{}-{tag}", std::process::id()));
    dir.join("mirror.sock")
}

/// Starts a mirror (writer thread, no systemd) after `tweak` adjusts its config: the
/// [`test_config`] with room for the larger fixtures (2^18 routes, 2^17 connections).
pub fn start(tag: &str, tweak: impl FnOnce(&mut MirrorConfig)) -> Mirror {
    let mut cfg = test_config(tag);
    cfg.capacities.routes = 1 << 18;
    cfg.capacities.conntrack = 1 << 17;
    tweak(&mut cfg);
    Mirror::start(cfg).expect("mirror starts")
}

/// A client connection to the mirror `m`: the same `Socket` as for the kernel.
pub fn connect(m: &Mirror) -> Socket {
    Socket::connect_unix(m.socket_path(), Protocol::Route).expect("connect to the mirror")
}

/// A kernel socket of the test's namespace.
pub fn kernel(protocol: Protocol) -> Socket {
    Socket::open(protocol).expect("open a netlink socket")
}

/// Makes each receive on `s` fail (with `EAGAIN`) after `t` instead of blocking forever.
pub fn set_recv_timeout(s: &Socket, t: Duration) {
    rustix::net::sockopt::set_socket_timeout(s, rustix::net::sockopt::Timeout::Recv, Some(t))
        .expect("SO_RCVTIMEO");
}

/// Runs one dump; returns its messages back to back and whether it was flagged
/// `NLM_F_DUMP_INTR`.
pub fn dump_once(
    s: &mut Socket,
    req: &MessageBuilder,
) -> Result<(Vec<u8>, bool), nlkit_socket::Error> {
    let mut req = req.clone();
    let mut out = Vec::new();
    let end = s.dump(&mut req, |m| {
        out.extend_from_slice(m.bytes());
        Ok::<(), nlkit_socket::Error>(())
    })?;
    Ok((out, end.interrupted))
}

/// Runs a dump until it is consistent (up to ten attempts, pausing 1 ms, 2 ms, … at most
/// 100 ms between them: the table is changing, often a resync being applied); `None` if every
/// attempt was flagged.
pub fn dump_consistent(s: &mut Socket, req: &MessageBuilder) -> Option<Vec<u8>> {
    for attempt in 0..10u32 {
        let (bytes, intr) = dump_once(s, req).expect("dump");
        if !intr {
            return Some(bytes);
        }
        std::thread::sleep(Duration::from_millis((1u64 << attempt.min(7)).min(100)));
    }
    None
}

/// Sends one request (finishing its message if still open) and returns its reply.
pub fn ask(
    c: &mut Socket,
    req: &mut MessageBuilder,
) -> Result<nlkit_socket::TransactReply, nlkit_socket::Error> {
    let _ = req.finish();
    c.transact(req)
}

/// The dump request a client sends for a table.
pub fn dump_request(t: TableId) -> MessageBuilder {
    nlkit_mirror::dump_request(t).1
}

/// An entry's identity and the part of its content that must match the kernel's.
pub type Snapshot = BTreeMap<String, Vec<u8>>;

pub fn entry(t: TableId, m: &Message<'_>) -> Option<(String, Vec<u8>)> {
    let body = m.bytes().get(16..).unwrap_or(&[]).to_vec();
    match t {
        TableId::Links => {
            // Link messages carry live statistics: compare flags, name and MTU.
            let (h, attrs) = m.family_header::<IfInfoMsg>().ok()?;
            let mut v = h.flags.to_ne_bytes().to_vec();
            for a in attrs.flatten() {
                if matches!(a.ty(), IFLA_IFNAME | IFLA_MTU | IFLA_MASTER) {
                    v.extend_from_slice(a.payload());
                }
            }
            Some((format!("{}", h.index), v))
        }
        TableId::Addrs4 | TableId::Addrs6 => {
            let k = nlkit_mirror::AddrKey::from_msg(m)?;
            let (h, _) = m.family_header::<IfAddrMsg>().ok()?;
            Some((format!("{k:?}"), vec![h.flags, h.scope]))
        }
        TableId::Routes4 | TableId::Routes6 => {
            let k = nlkit_mirror::RouteKey::from_msg(m)?;
            Some((format!("{k:?} {:?}", body), body))
        }
        TableId::Neigh4 | TableId::Neigh6 => {
            let k = nlkit_mirror::NeighKey::from_msg(m)?;
            Some((format!("{k:?}"), Vec::new()))
        }
        TableId::Nexthops => {
            let k = nlkit_mirror::NexthopKey::from_msg(m)?;
            Some((format!("{:010}", k.id), body))
        }
        // Rules have no key: the position and the body (see `snapshot_of`).
        TableId::Rules4 | TableId::Rules6 => Some((String::new(), body)),
        TableId::Conntrack => {
            // Timeouts, counters and use counts move: compare identity (both tuples).
            let (_, attrs) = m.family_header::<NfGenMsg>().ok()?;
            let mut v = Vec::new();
            for a in attrs.flatten() {
                if matches!(a.ty(), CTA_TUPLE_ORIG | CTA_TUPLE_REPLY | CTA_MARK) {
                    v.extend_from_slice(a.payload());
                }
            }
            Some((format!("{v:?}"), Vec::new()))
        }
    }
}

fn snapshot_of(t: TableId, bytes: &[u8], out: &mut Snapshot) {
    for m in Messages::new(bytes).flatten() {
        if matches!(m.ty(), NLMSG_DONE | NLMSG_ERROR) {
            continue;
        }
        if let Some((k, v)) = entry(t, &m) {
            // Rules are compared in order: keyed by their position in the dump.
            let k = if k.is_empty() {
                format!("{:06}", out.len())
            } else {
                k
            };
            out.insert(k, v);
        }
    }
}

/// A fresh kernel dump of `t`, as a snapshot (retried until consistent).
pub fn kernel_snapshot(t: TableId) -> Snapshot {
    let (proto, req) = nlkit_mirror::dump_request(t);
    let mut s = kernel(proto);
    for _ in 0..20 {
        let (bytes, intr) = dump_once(&mut s, &req).unwrap();
        if !intr {
            let mut snap = Snapshot::new();
            snapshot_of(t, &bytes, &mut snap);
            return snap;
        }
    }
    panic!("kernel dump of {t:?} never consistent");
}

/// The mirror's dump of `t`, as a snapshot (the client retries DUMP_INTR); `None` while the
/// table keeps changing under every retry (the mirror is still applying a backlog).
pub fn mirror_snapshot(c: &mut Socket, t: TableId) -> Option<Snapshot> {
    let bytes = dump_consistent(c, &dump_request(t))?;
    let mut snap = Snapshot::new();
    snapshot_of(t, &bytes, &mut snap);
    Some(snap)
}

/// Describes how two snapshots differ (first few differences).
pub fn diff(kernel: &Snapshot, mirror: &Snapshot) -> String {
    let mut out = String::new();
    let mut n = 0;
    for (k, v) in kernel {
        match mirror.get(k) {
            None => out.push_str(&format!("missing in mirror: {k}\n")),
            Some(mv) if mv != v => out.push_str(&format!("differs: {k}\n")),
            _ => continue,
        }
        n += 1;
        if n > 5 {
            break;
        }
    }
    for k in mirror.keys().filter(|k| !kernel.contains_key(*k)).take(5) {
        out.push_str(&format!("stale in mirror: {k}\n"));
    }
    out
}

/// Waits until every table in `tables` equals a fresh kernel dump; panics with a diff after
/// `timeout`.
pub fn assert_converges(m: &Mirror, tables: &[TableId], timeout: Duration) {
    let mut c = connect(m);
    let deadline = Instant::now() + timeout;
    loop {
        let mut bad = String::new();
        for &t in tables {
            let k = kernel_snapshot(t);
            let Some(mm) = mirror_snapshot(&mut c, t) else {
                bad.push_str(&format!("{t:?}: mirror dumps still interrupted\n"));
                continue;
            };
            if k != mm {
                bad.push_str(&format!(
                    "{t:?}: kernel {} entries, mirror {}\n{}",
                    k.len(),
                    mm.len(),
                    diff(&k, &mm)
                ));
            }
        }
        if bad.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            panic!("mirror did not converge:\n{bad}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The n-th churn IPv4 destination (10.64.0.0/10, /32s).
pub fn v4(n: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x0a40_0000 + n)
}

/// The n-th churn IPv6 destination (fd00:77::/64 upward, /128s).
pub fn v6(n: u32) -> Ipv6Addr {
    Ipv6Addr::from(0xfd00_0077_0000_0000_0000_0000_0000_0000u128 + u128::from(n))
}

/// Runs a batch of requests; returns how many failed.
fn refused(sock: &mut Socket, batch: &mut MessageBuilder) -> usize {
    let results = sock.transact_batch(batch).expect("batch transaction");
    results.iter().filter(|r| r.is_err()).count()
}

/// Adds or deletes host routes via `oif` in `table`, batched (many messages per sendmsg).
/// Returns how many the kernel refused.
pub fn routes(sock: &mut Socket, add: bool, dsts: &[IpAddr], oif: u32, table: u32) -> usize {
    let mut failed = 0;
    for chunk in dsts.chunks(256) {
        let mut b = MessageBuilder::new();
        for (i, d) in chunk.iter().enumerate() {
            let (ty, flags) = if add {
                (RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE)
            } else {
                (RTM_DELROUTE, NLM_F_REQUEST)
            };
            b.begin(ty, flags, 1_000_000 + i as u32);
            let family = if d.is_ipv6() { AF_INET6 } else { AF_INET };
            b.header(&RtMsg {
                family,
                dst_len: if d.is_ipv6() { 128 } else { 32 },
                table: RT_TABLE_UNSPEC,
                protocol: RTPROT_STATIC,
                scope: if add { RT_SCOPE_LINK } else { RT_SCOPE_NOWHERE },
                ty: if add { RTN_UNICAST } else { RTN_UNSPEC },
                ..Default::default()
            });
            b.attr_u32(RTA_TABLE, table);
            b.attr_ip(RTA_DST, *d);
            if add {
                b.attr_u32(RTA_OIF, oif);
            }
            b.finish().unwrap();
        }
        failed += refused(sock, &mut b);
    }
    failed
}

/// Creates or deletes UDP conntrack entries 10.210.x.y:port → 10.211.0.1:53 (n-th entry).
pub fn conntrack(sock: &mut Socket, create: bool, range: std::ops::Range<u32>, mark: u32) -> usize {
    let mut failed = 0;
    let ids: Vec<u32> = range.collect();
    for chunk in ids.chunks(256) {
        let mut b = MessageBuilder::new();
        for (i, n) in chunk.iter().enumerate() {
            let ty = if create {
                IPCTNL_MSG_CT_NEW
            } else {
                IPCTNL_MSG_CT_DELETE
            };
            let flags = if create {
                NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL
            } else {
                NLM_F_REQUEST
            };
            b.begin(
                nfnl_msg_type(NFNL_SUBSYS_CTNETLINK, ty),
                flags,
                2_000_000 + i as u32,
            );
            b.header(&NfGenMsg {
                family: AF_INET,
                version: NFNETLINK_V0,
                res_id: 0,
            });
            let src = Ipv4Addr::from(0x0ad2_0000 + n / 1000);
            let dst = Ipv4Addr::new(10, 211, 0, 1);
            let sport = 1024 + (n % 1000) as u16;
            let orig = nlkit_conntrack::Tuple::udp(src.into(), sport, dst.into(), 53);
            orig.write(&mut b, CTA_TUPLE_ORIG);
            if create {
                orig.reversed().write(&mut b, CTA_TUPLE_REPLY);
            }
            if create {
                b.attr_be32(CTA_TIMEOUT, 600);
                b.attr_be32(CTA_MARK, mark);
            }
            b.finish().unwrap();
        }
        failed += refused(sock, &mut b);
    }
    failed
}

/// The rtnetlink tables.
pub const RTNL: [TableId; 10] = TableId::RTNL;

/// Sets a link administratively up or down.
pub fn set_link(index: u32, up: bool) {
    let mut b = MessageBuilder::new();
    b.begin(RTM_NEWLINK, NLM_F_REQUEST, 7);
    b.header(&IfInfoMsg {
        index: index as i32,
        flags: if up { IFF_UP } else { 0 },
        change: IFF_UP,
        ..Default::default()
    });
    b.finish().unwrap();
    // A refusal (the link is gone) is the caller's business; a socket failure is not.
    if let Err(e) = kernel(Protocol::Route).transact(&mut b) {
        assert!(matches!(e, nlkit_socket::Error::Kernel(_)), "set link: {e}");
    }
}

/// Route churn: adds `n` IPv4 and `n / 2` IPv6 host routes via `oif`, then deletes half of
/// each, in batches. Returns the number of kernel refusals.
pub fn route_churn(oif: u32, n: u32, base: u32) -> usize {
    let mut k = kernel(Protocol::Route);
    let a4: Vec<IpAddr> = (base..base + n).map(|i| IpAddr::V4(v4(i))).collect();
    let a6: Vec<IpAddr> = (base..base + n / 2).map(|i| IpAddr::V6(v6(i))).collect();
    let mut failed = routes(&mut k, true, &a4, oif, 254);
    failed += routes(&mut k, true, &a6, oif, 254);
    failed += routes(&mut k, false, &a4[..a4.len() / 2], oif, 254);
    failed += routes(&mut k, false, &a6[..a6.len() / 2], oif, 254);
    failed
}

/// The churn size: `NLKIT_MIRROR_CHURN` (the 100,000) or `default`.
pub fn churn_size(default: u32) -> u32 {
    std::env::var("NLKIT_MIRROR_CHURN")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The test mirrors' configuration (writer thread, no systemd, short timeouts) with small
/// tables, for tests that start the mirror themselves or expect `Mirror::start` to fail.
pub fn test_config(tag: &str) -> MirrorConfig {
    let mut cfg = MirrorConfig {
        socket_path: Some(socket_path(tag)),
        writer: WriterMode::Thread,
        notify_systemd: false,
        client_send_timeout: Duration::from_secs(2),
        neigh_resync_interval: Some(Duration::from_millis(500)),
        ..MirrorConfig::default()
    };
    cfg.capacities.routes = 1 << 14;
    cfg.capacities.conntrack = 1 << 12;
    cfg
}

/// Waits until `cond` holds, for at most `timeout`; returns whether it did.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Forks a child that becomes uid/gid 65534, connects a `SOCK_SEQPACKET` socket to `path` and
/// exits with what `child` returns for that socket; returns the child's exit status. The
/// child exits 10 if it cannot drop to nobody, 11 without a socket, 12 if connecting fails.
///
/// # Safety
/// `child` runs between `fork` and `_exit` in a copy of a multithreaded process: it may make
/// only async-signal-safe system calls, on memory prepared before this call (no allocation,
/// no locks).
pub unsafe fn connect_as_nobody(path: &std::path::Path, child: impl FnOnce(i32) -> i32) -> i32 {
    use std::os::unix::ffi::OsStrExt;
    // Everything the child needs is prepared before the fork.
    // SAFETY: an all-zero sockaddr_un is a valid value of this plain C struct.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let p = path.as_os_str().as_bytes();
    assert!(p.len() < addr.sun_path.len());
    for (d, s) in addr.sun_path.iter_mut().zip(p) {
        *d = *s as libc::c_char;
    }
    // SAFETY: the child makes only async-signal-safe system calls (setgid, setuid, socket,
    // connect, and `child`'s, which the caller vouches for) on memory prepared before the
    // fork, then exits.
    unsafe {
        let pid = libc::fork();
        if pid == 0 {
            if libc::setgid(65534) != 0 || libc::setuid(65534) != 0 {
                libc::_exit(10);
            }
            let fd = libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET, 0);
            if fd < 0 {
                libc::_exit(11);
            }
            let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
            if libc::connect(fd, (&addr as *const libc::sockaddr_un).cast(), len) != 0 {
                libc::_exit(12);
            }
            libc::_exit(child(fd));
        }
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
        libc::WEXITSTATUS(status)
    }
}
