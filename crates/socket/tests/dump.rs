//! Shared dumps and consistent dumps against the kernel.

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use nlkit_socket::{
    consistent_dump, DumpBuffer, Error, Pool, Protocol, SharedDump, SocketOptions, DEFAULT_ATTEMPTS,
};
use nlkit_wire::consts::*;
use nlkit_wire::{IfInfoMsg, MessageBuilder, NfGenMsg, RtMsg};

type RouteKey = (Vec<u8>, u8, u32);

fn route_dump_req() -> MessageBuilder {
    let mut req = MessageBuilder::new();
    req.begin(RTM_GETROUTE, NLM_F_DUMP, 0);
    req.header(&RtMsg {
        family: AF_INET,
        ..Default::default()
    });
    req.finish().unwrap();
    req
}

fn link_dump_req() -> MessageBuilder {
    let mut req = MessageBuilder::new();
    req.begin(RTM_GETLINK, NLM_F_DUMP, 0);
    req.header(&IfInfoMsg::default());
    req.finish().unwrap();
    req
}

fn route_key(m: &nlkit_wire::Message<'_>) -> RouteKey {
    let (rt, attrs) = m.family_header::<RtMsg>().unwrap();
    let mut dst = Vec::new();
    let mut table = rt.table as u32;
    for a in attrs {
        let a = a.unwrap();
        match a.ty() {
            RTA_DST => dst = a.payload().to_vec(),
            RTA_TABLE => table = a.u32().unwrap(),
            _ => {}
        }
    }
    (dst, rt.dst_len, table)
}

/// Dumps IPv4 routes with `threads` threads sharing one dump; returns every thread's keys.
fn threaded_route_dump(pool: &Pool, threads: usize) -> Vec<Vec<RouteKey>> {
    let mut req = route_dump_req();
    let dump = SharedDump::start(pool, &mut req).unwrap();
    let per_thread = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut buf = DumpBuffer::new();
                    let mut keys = Vec::new();
                    while let Some(m) = dump.next(&mut buf).unwrap() {
                        assert_eq!(m.ty(), RTM_NEWROUTE);
                        keys.push(route_key(&m));
                    }
                    keys
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap())
            .collect::<Vec<_>>()
    });
    assert_eq!(dump.seq_skipped(), 0);
    dump.finish().unwrap();
    per_thread
}

fn link_names(pool: &Pool) -> nlkit_socket::Result<nlkit_socket::Consistent<BTreeSet<String>>> {
    consistent_dump(
        pool,
        &link_dump_req(),
        DEFAULT_ATTEMPTS,
        |dump, _attempt| {
            let mut buf = DumpBuffer::new();
            let mut names = BTreeSet::new();
            while let Some(m) = dump.next(&mut buf)? {
                let (_, attrs) = m.family_header::<IfInfoMsg>()?;
                if let Some(a) = attrs.find(IFLA_IFNAME) {
                    names.insert(a?.str()?.to_owned());
                }
            }
            Ok(names)
        },
    )
}

nlkit_testns::netns_test! {
    fn hundred_thousand_routes_threads_see_each_route_once() {
        let v = nlkit_testns::veth_pair("va", "vb");
        nlkit_testns::add_addr(v.a_index, "10.0.0.1".parse().unwrap(), 24);
        let loaded = nlkit_testns::load_ipv4_routes(v.a_index, 100_000, RT_TABLE_MAIN as u32);
        assert_eq!(loaded.len(), 100_000);
        let pool = Pool::new(Protocol::Route, SocketOptions::default());
        let single: Vec<RouteKey> = threaded_route_dump(&pool, 1).remove(0);
        let single_set: HashSet<RouteKey> = single.iter().cloned().collect();
        assert_eq!(single.len(), single_set.len(), "single-threaded dump has duplicates");
        for (dst, len) in &loaded {
            assert!(single_set.contains(&(dst.octets().to_vec(), *len, RT_TABLE_MAIN as u32)));
        }
        for run in 0..3 {
            for threads in 1..=4 {
                let per = threaded_route_dump(&pool, threads);
                let total: usize = per.iter().map(Vec::len).sum();
                let union: HashSet<RouteKey> = per.into_iter().flatten().collect();
                assert_eq!(total, union.len(), "run {run}, {threads} threads: duplicates");
                assert!(union == single_set, "run {run}, {threads} threads: sets differ");
            }
        }
        assert_eq!(pool.idle(), 1, "dumps leave the pooled socket clean");
    }

    fn invalid_dump_request_error_reaches_every_thread() {
        let pool = Pool::new(Protocol::Route, SocketOptions::default());
        // With strict checking, a route dump header with a bad field is refused.
        let mut req = MessageBuilder::new();
        req.begin(RTM_GETROUTE, NLM_F_DUMP, 0);
        req.header(&RtMsg { family: AF_INET, tos: 1, ..Default::default() });
        req.finish().unwrap();
        let dump = SharedDump::start(&pool, &mut req).unwrap();
        let errors: Vec<Error> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..3)
                .map(|_| s.spawn(|| {
                    let mut buf = DumpBuffer::new();
                    loop {
                        match dump.next(&mut buf) {
                            Ok(Some(_)) => continue,
                            Ok(None) => panic!("dump ended without the error"),
                            Err(e) => return e,
                        }
                    }
                }))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let first = errors[0].clone();
        assert!(first.kernel().is_some(), "{first:?}");
        assert_eq!(first.errno(), Some(libc::EINVAL));
        assert!(first.kernel().unwrap().msg.is_some(), "ext-ack text: {first:?}");
        assert!(errors.iter().all(|e| *e == first));
        assert_eq!(dump.finish(), Err(first));
        // The socket went back clean and works.
        assert_eq!(pool.idle(), 1);
        let mut s = pool.get().unwrap();
        let mut get = link_dump_req();
        assert_eq!(s.transact(&mut get).unwrap().len(), 1);
    }

    fn finishing_early_leaves_pooled_socket_clean() {
        let v = nlkit_testns::veth_pair("va", "vb");
        nlkit_testns::add_addr(v.a_index, "10.0.0.1".parse().unwrap(), 24);
        nlkit_testns::load_ipv4_routes(v.a_index, 20_000, RT_TABLE_MAIN as u32);
        let pool = Pool::new(Protocol::Route, SocketOptions::default());
        let mut req = route_dump_req();
        let dump = SharedDump::start(&pool, &mut req).unwrap();
        let mut buf = DumpBuffer::new();
        for _ in 0..10_000 {
            dump.next(&mut buf).unwrap().unwrap();
        }
        drop(buf);
        dump.finish().unwrap();
        assert_eq!(pool.idle(), 1);
        let mut s = pool.get().unwrap();
        assert!(s.is_clean());
        let mut get = link_dump_req();
        assert_eq!(s.transact(&mut get).unwrap().len(), 3);
        assert_eq!(s.stats().seq_skipped, 0, "no stale dump message reached the transaction");
        drop(s);
        // Dropping an unfinished dump also drains it.
        let mut req = route_dump_req();
        let dump = SharedDump::start(&pool, &mut req).unwrap();
        let mut buf = DumpBuffer::new();
        dump.next(&mut buf).unwrap().unwrap();
        drop(dump);
        assert_eq!(pool.idle(), 1);
    }

    fn conntrack_dump_is_shared_too() {
        let n = nlkit_testns::load_conntrack(2000, 7);
        assert_eq!(n, 2000);
        let pool = Pool::new(Protocol::Netfilter, SocketOptions::default());
        let mut req = MessageBuilder::new();
        req.begin(nfnl_msg_type(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_GET), NLM_F_DUMP, 0);
        req.header(&NfGenMsg { family: AF_INET, version: NFNETLINK_V0, res_id: 0 });
        req.finish().unwrap();
        let dump = SharedDump::start(&pool, &mut req).unwrap();
        let total: usize = std::thread::scope(|s| {
            let hs: Vec<_> = (0..2)
                .map(|_| s.spawn(|| {
                    let mut buf = DumpBuffer::new();
                    let mut n = 0;
                    while dump.next(&mut buf).unwrap().is_some() {
                        n += 1;
                    }
                    n
                }))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        });
        dump.finish().unwrap();
        assert_eq!(total, 2000);
    }

    fn link_churn_makes_dumps_inconsistent_and_helper_converges() {
        let pool = Pool::new(Protocol::Route, SocketOptions::default());
        for i in 0..40 {
            nlkit_testns::veth_pair(&format!("s{i}a"), &format!("s{i}b"));
        }
        let stop = AtomicBool::new(false);
        let inconsistent = Mutex::new(0u32);
        let helper_attempts = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut i = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    let (a, b) = (format!("c{}a", i % 8), format!("c{}b", i % 8));
                    nlkit_testns::veth_pair(&a, &b);
                    nlkit_testns::delete_link(&a);
                    i += 1;
                }
            });
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            while *inconsistent.lock().unwrap() == 0 && std::time::Instant::now() < deadline {
                for _ in 0..20 {
                    let mut req = link_dump_req();
                    let dump = SharedDump::start(&pool, &mut req).unwrap();
                    let mut buf = DumpBuffer::new();
                    while dump.next(&mut buf).unwrap().is_some() {}
                    match dump.finish() {
                        Ok(()) => {}
                        Err(Error::Inconsistent) => *inconsistent.lock().unwrap() += 1,
                        Err(e) => panic!("{e}"),
                    }
                }
                let r = link_names(&pool).unwrap();
                helper_attempts.lock().unwrap().push(r.attempts);
            }
            stop.store(true, Ordering::Relaxed);
        });
        assert!(*inconsistent.lock().unwrap() >= 1, "no inconsistent dump observed");
        // Once the churn has stopped, the helper's result equals the kernel's state.
        let r = link_names(&pool).unwrap();
        assert!(r.consistent);
        let mut kernel: BTreeSet<String> = nlkit_testns::ip(&["-o", "link", "show"])
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap().to_owned())
            .collect();
        kernel.retain(|n| !n.is_empty());
        assert_eq!(r.value, kernel);
        eprintln!(
            "inconsistent dumps: {}, helper attempts: {:?}",
            inconsistent.lock().unwrap(),
            helper_attempts.lock().unwrap()
        );
    }
}
