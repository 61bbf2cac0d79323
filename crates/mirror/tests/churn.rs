//! Churn, forced overflow and silent kernel deletions: afterwards the mirror equals the kernel,
//! every table compared entry by entry with a fresh kernel dump.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use nlkit_mirror::TableId;
use nlkit_socket::Protocol;
use nlkit_wire::consts::*;

nlkit_testns::netns_test! {
    /// Route adds and deletes (100,000 by default, the size; `NLKIT_MIRROR_CHURN=N` to change
    /// it), veth pairs created, flapped and deleted, conntrack creates and deletes — all
    /// while mirroring; then every table converges to the kernel's.
    fn churn_then_equal() {
        let v = nlkit_testns::veth_pair("ca", "cb");
        nlkit_testns::add_addr(v.a_index, "10.0.0.1".parse().unwrap(), 24);
        nlkit_testns::add_addr(v.a_index, "fd00::1".parse().unwrap(), 64);
        let m = start("churn", |_| {});
        let n = churn_size(100_000);
        let ct_on = m.mirrors_conntrack();
        std::thread::scope(|s| {
            s.spawn(|| assert_eq!(route_churn(v.a_index, n / 2, 0), 0));
            s.spawn(|| {
                for i in 0..6 {
                    let p = nlkit_testns::veth_pair(&format!("x{i}a"), &format!("x{i}b"));
                    nlkit_testns::add_addr(p.a_index, format!("10.50.{i}.1").parse().unwrap(), 24);
                    set_link(p.b_index, false);
                    set_link(p.b_index, true);
                    set_link(p.a_index, false);
                    set_link(p.a_index, true);
                    if i % 2 == 0 {
                        nlkit_testns::delete_link(&p.a);
                    }
                }
            });
            if ct_on {
                s.spawn(|| {
                    let mut ct = kernel(Protocol::Netfilter);
                    assert_eq!(conntrack(&mut ct, true, 0..n, 5), 0);
                    assert_eq!(conntrack(&mut ct, false, 0..n / 2, 5), 0);
                });
            }
        });
        let mut all = RTNL.to_vec();
        if ct_on {
            all.push(TableId::Conntrack);
        }
        assert_converges(&m, &all, Duration::from_secs(30));
        assert!(m.tables().len(TableId::Routes4) >= (n / 4) as usize);
    }

    /// A tiny event buffer under heavy churn: overruns force resyncs, and the mirror still
    /// ends equal to the kernel.
    fn forced_overflow_resyncs() {
        let v = nlkit_testns::veth_pair("oa", "ob");
        nlkit_testns::add_addr(v.a_index, "10.0.0.1".parse().unwrap(), 24);
        let m = start("overflow", |c| {
            c.event_rcvbuf = 4096;
            c.event_rcvbuf_max = 8192;
        });
        let n = churn_size(100_000);
        assert_eq!(route_churn(v.a_index, n / 2, 0), 0);
        assert_converges(&m, &RTNL, Duration::from_secs(30));
        let mm = m.metrics();
        assert!(mm.overruns.load(Ordering::Relaxed) > 0, "no overrun happened");
        assert!(mm.resyncs.load(Ordering::Relaxed) > 0, "no resync happened");
    }

    /// IPv6 routes that stay throughout survive resyncs whose dumps run while routes before
    /// them are deleted: the kernel's fib6 dump then skips routes without flagging
    /// `NLM_F_DUMP_INTR`, and a sweep trusting one dump would remove them (seen as a block
    /// of IPv6 routes missing after `churn_then_equal`). A tiny event buffer forces the
    /// resyncs; the staying routes are counted after every step, since a later resync
    /// repairs the loss (without the mirror's verification dumps this fails at once).
    fn ipv6_resyncs_under_churn_keep_live_routes() {
        let v = nlkit_testns::veth_pair("6a", "6b");
        nlkit_testns::add_addr(v.a_index, "fd00::1".parse().unwrap(), 64);
        let n = churn_size(100_000) / 10;
        let mut k = kernel(Protocol::Route);
        let stay: Vec<std::net::IpAddr> = (0..n).map(|i| v6(1 << 24 | i).into()).collect();
        assert_eq!(routes(&mut k, true, &stay, v.a_index, 254), 0);
        let m = start("v6churn", |c| {
            c.event_rcvbuf = 4096;
            c.event_rcvbuf_max = 8192;
        });
        // Below the staying routes (earlier in the dump): each step adds 100 routes and
        // deletes the 100 oldest, so a resync's dump always has sent routes deleted under it.
        let churn: Vec<std::net::IpAddr> = (0..2 * n).map(|i| v6(i).into()).collect();
        assert_eq!(routes(&mut k, true, &churn[..n as usize], v.a_index, 254), 0);
        let (first_stay, end_stay) = (v6(1 << 24), v6(1 << 24 | n));
        let staying = || {
            let mut c = 0;
            m.tables().routes[1].for_each(|e| {
                c += e.iter().flatten().any(|r| {
                    r.family_header::<nlkit_wire::RtMsg>().is_ok_and(|(_, a)| {
                        a.find(RTA_DST)
                            .and_then(Result::ok)
                            .and_then(|d| <[u8; 16]>::try_from(d.payload()).ok())
                            .is_some_and(|d| (first_stay..end_stay).contains(&std::net::Ipv6Addr::from(d)))
                    })
                }) as u32;
                true
            });
            c
        };
        for (i, (old, new)) in churn.chunks(100).zip(churn[n as usize..].chunks(100)).enumerate() {
            assert_eq!(routes(&mut k, true, new, v.a_index, 254), 0);
            assert_eq!(routes(&mut k, false, old, v.a_index, 254), 0);
            // The staying routes are never swept (events never touch them).
            assert_eq!(staying(), n, "step {i}: staying IPv6 routes removed by a resync");
        }
        assert_converges(&m, &[TableId::Routes6], Duration::from_secs(30));
        assert!(m.tables().len(TableId::Routes6) >= n as usize);
        assert!(m.metrics().resyncs.load(Ordering::Relaxed) > 0, "no resync happened");
    }

    /// A link with 1,000 routes through it loses carrier, comes back, and is deleted: the
    /// kernel changes or removes those routes without notifications; no stale route remains.
    fn silent_deletions() {
        let v = nlkit_testns::veth_pair("sa", "sb");
        nlkit_testns::add_addr(v.a_index, "10.0.0.1".parse().unwrap(), 24);
        nlkit_testns::add_addr(v.a_index, "fd00::1".parse().unwrap(), 64);
        nlkit_testns::load_ipv4_routes(v.a_index, 1000, 254);
        nlkit_testns::load_ipv6_routes(v.a_index, 1000, 254);
        let m = start("silent", |_| {});
        assert_converges(&m, &RTNL, Duration::from_secs(10));
        let before = m.tables().len(TableId::Routes4);
        assert!(before >= 1000);
        // Carrier loss on `sa` (its peer goes down), then back.
        set_link(v.b_index, false);
        assert_converges(&m, &RTNL, Duration::from_secs(10));
        set_link(v.b_index, true);
        assert_converges(&m, &RTNL, Duration::from_secs(10));
        // Admin down on `sa`: IPv4 routes through it are removed silently.
        set_link(v.a_index, false);
        assert_converges(&m, &RTNL, Duration::from_secs(10));
        set_link(v.a_index, true);
        nlkit_testns::load_ipv4_routes(v.a_index, 1000, 254);
        assert_converges(&m, &RTNL, Duration::from_secs(10));
        // Deletion: every route through the link goes, silently.
        nlkit_testns::delete_link("sa");
        assert_converges(&m, &RTNL, Duration::from_secs(10));
        assert!(m.tables().len(TableId::Routes4) < before - 900);
        let mut stale = 0;
        m.tables().routes[0].for_each(|e| {
            stale += usize::from(e.iter().flatten().any(|r| {
                r.family_header::<nlkit_wire::RtMsg>().is_ok_and(|(_, a)| {
                    a.find(RTA_OIF).and_then(Result::ok).and_then(|o| o.u32().ok()) == Some(v.a_index)
                })
            }));
            true
        });
        assert_eq!(stale, 0, "routes through the deleted link remain");
    }
}
