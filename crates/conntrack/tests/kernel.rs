//! ctnetlink against the real kernel, each test in a fresh namespace. The `conntrack` tool is
//! not installed, so results are checked with our own get/dump/count.

use nlkit_conntrack::ops::{self, Events, Received};
use nlkit_conntrack::request::{DumpFilter, TupleFilter};
use nlkit_conntrack::{CtEntry, EventKind, Tuple};
use nlkit_wire::consts::*;

fn udp(i: u16) -> Tuple {
    Tuple::udp(
        "10.0.0.1".parse().unwrap(),
        10000 + i,
        "10.0.0.2".parse().unwrap(),
        53,
    )
}

fn dump_count(s: &mut nlkit_socket::Socket, f: &DumpFilter) -> u64 {
    ops::dump(s, f, |_| Ok(())).unwrap().delivered
}

nlkit_testns::netns_test! {
    fn create_get_update_delete_count() {
        let mut s = ops::open().unwrap();
        let tcp = Tuple::tcp("10.0.0.1".parse().unwrap(), 40000, "10.0.0.2".parse().unwrap(), 80);
        let e = CtEntry::new(tcp).timeout(120).mark(7).tcp_state(TCP_CONNTRACK_ESTABLISHED)
            .status(IPS_SEEN_REPLY | IPS_ASSURED);
        ops::create(&mut s, &e).unwrap();
        assert_eq!(ops::create(&mut s, &e).unwrap_err().errno(), Some(17));
        let icmp6 = Tuple::icmp("fd00::1".parse().unwrap(), "fd00::2".parse().unwrap(), 5, 128, 0);
        ops::create(&mut s, &CtEntry::new(icmp6).timeout(30).zone(3)).unwrap();
        let sctp = Tuple::sctp("10.0.0.1".parse().unwrap(), 5000, "10.0.0.2".parse().unwrap(), 6000);
        ops::create(&mut s, &CtEntry::new(sctp).timeout(30)).unwrap();

        let got = ops::get(&mut s, &tcp, None).unwrap().unwrap();
        assert_eq!((got.mark, got.tcp_state, got.reply), (Some(7), Some(TCP_CONNTRACK_ESTABLISHED), tcp.reversed()));
        assert!(got.status.unwrap() & IPS_ASSURED != 0);
        assert!(got.timeout.unwrap() <= 120);
        let g6 = ops::get(&mut s, &icmp6, Some(3)).unwrap().unwrap();
        assert_eq!((g6.zone, g6.orig.l4), (Some(3), icmp6.l4));
        assert!(ops::get(&mut s, &icmp6, None).unwrap().is_none(), "zone 0 has no such entry");

        let upd = CtEntry::new(tcp).mark(9).timeout(500).status(IPS_SEEN_REPLY | IPS_ASSURED);
        ops::update(&mut s, &upd).unwrap();
        let got = ops::get(&mut s, &tcp, None).unwrap().unwrap();
        assert_eq!(got.mark, Some(9));
        assert!(got.timeout.unwrap() > 120);

        assert_eq!(ops::count(&mut s).unwrap(), 3);
        assert_eq!(dump_count(&mut s, &DumpFilter::default()), 3);
        assert_eq!(dump_count(&mut s, &DumpFilter { family: AF_INET6, ..Default::default() }), 1);
        assert!(ops::delete(&mut s, &tcp, None).unwrap());
        assert!(!ops::delete(&mut s, &tcp, None).unwrap());
        assert!(ops::get(&mut s, &tcp, None).unwrap().is_none());
        assert_eq!(ops::count(&mut s).unwrap(), 2);
        let cpus = ops::stats_cpu(&mut s).unwrap();
        assert!(!cpus.is_empty());
        ops::flush(&mut s, 0).unwrap();
        assert_eq!(ops::count(&mut s).unwrap(), 0);
    }

    fn filters_flush_by_mark_and_zone() {
        let mut s = ops::open().unwrap();
        let mut d = ops::open().unwrap();
        let mut entries = Vec::new();
        for i in 0..60u16 {
            let mut e = CtEntry::new(udp(i)).timeout(600).mark(u32::from(i % 3));
            if i % 4 == 0 { e = e.zone(5); }
            entries.push(e);
        }
        for r in ops::create_many(&mut s, &entries).unwrap() { r.unwrap(); }
        assert_eq!(ops::count(&mut s).unwrap(), 60);
        assert_eq!(dump_count(&mut s, &DumpFilter::mark(1)), 20);
        assert_eq!(dump_count(&mut s, &DumpFilter::zone(5)), 15);
        let tf = DumpFilter {
            orig: Some(TupleFilter { proto: Some(IPPROTO_UDP), sport: Some(10007), ..Default::default() }),
            family: AF_INET,
            ..Default::default()
        };
        assert_eq!(dump_count(&mut s, &tf), 1);

        ops::flush_mark(&mut s, 0, 2, u32::MAX).unwrap();
        assert_eq!(ops::count(&mut s).unwrap(), 40);
        assert_eq!(dump_count(&mut s, &DumpFilter::mark(2)), 0);

        let before_z = dump_count(&mut s, &DumpFilter::zone(5));
        let sum = ops::flush_zone(&mut s, &mut d, 5).unwrap();
        assert_eq!((sum.matched, sum.deleted), (before_z, before_z));
        assert_eq!(dump_count(&mut s, &DumpFilter::zone(5)), 0);

        // Streaming delete with a small batch and a predicate.
        let sum = ops::delete_matching(&mut s, &mut d, &DumpFilter::mark(1), |e| e.orig().unwrap().sport().unwrap() % 2 == 0, 4).unwrap();
        assert!(sum.deleted > 0 && sum.deleted == sum.matched);
        let left = ops::count(&mut s).unwrap();
        assert_eq!(u64::from(left), 40 - before_z - sum.deleted);
    }

    fn events_new_update_destroy() {
        let mut ev = Events::open(&[EventKind::New, EventKind::Update, EventKind::Destroy], true).unwrap();
        let mut s = ops::open().unwrap();
        let t = udp(1);
        ops::create(&mut s, &CtEntry::new(t).timeout(60)).unwrap();
        ops::update(&mut s, &CtEntry::new(t).mark(3)).unwrap();
        assert!(ops::delete(&mut s, &t, None).unwrap());
        let mut kinds = Vec::new();
        while kinds.len() < 3 {
            match ev.recv(false, |e| {
                assert_eq!(e.orig(), Some(t));
                kinds.push(e.event().unwrap());
            }).unwrap() {
                Received::Events(_) => {}
                Received::Overrun => panic!("overrun"),
            }
        }
        assert_eq!(kinds, [EventKind::New, EventKind::Update, EventKind::Destroy]);
    }
}
