//! Requests against the real kernel, each test in a fresh namespace, compared with `ip -j`.

use nlkit_route::fmt::{route_text, LinkNames, RouteFmt};
use nlkit_route::request::{AddrFilter, LinkFilter, LinkRef, NeighFilter, RouteFilter, RouteOp};
use nlkit_route::{ops, Address, Neighbour, NextHop, Route};
use nlkit_socket::{Protocol, Socket};
use nlkit_wire::consts::*;
use serde_json::Value;

fn ipj(args: &[&str]) -> Value {
    let mut a = vec!["-j"];
    a.extend_from_slice(args);
    serde_json::from_str(&nlkit_testns::ip(&a)).unwrap()
}

fn sock() -> Socket {
    Socket::open(Protocol::Route).unwrap()
}

fn routes(s: &mut Socket, family: u8, f: &RouteFilter) -> Vec<Route> {
    let mut v = Vec::new();
    ops::dump_routes(s, family, f, |r| {
        v.push(r.to_owned());
        Ok(())
    })
    .unwrap();
    v
}

nlkit_testns::netns_test! {
    fn veth_create_set_mtu_updown_delete() {
        let mut s = sock();
        let (a, b) = ops::add_veth(&mut s, "va", "vb").unwrap();
        let j = ipj(&["link", "show", "va"]);
        assert_eq!(j[0]["ifindex"], a);
        assert_eq!(j[0]["link"], "vb");
        ops::set_link_mtu(&mut s, a, 1400).unwrap();
        ops::set_link_up(&mut s, a, true).unwrap();
        ops::set_link_up(&mut s, b, true).unwrap();
        let j = ipj(&["link", "show", "va"]);
        assert_eq!(j[0]["mtu"], 1400);
        assert!(j[0]["flags"].as_array().unwrap().iter().any(|f| f == "UP"));
        let l = ops::get_link(&mut s, LinkRef::Index(a)).unwrap();
        assert_eq!((l.mtu, l.kind.as_deref(), l.link), (Some(1400), Some("veth"), Some(b)));
        let mut seen = Vec::new();
        ops::dump_links(&mut s, &LinkFilter { kind: Some("veth"), ..Default::default() }, |l| {
            seen.push(l.name().unwrap().to_owned());
            assert!(l.stats64().is_some());
            Ok(())
        }).unwrap();
        seen.sort();
        assert_eq!(seen, ["va", "vb"]);
        ops::set_link_up(&mut s, a, false).unwrap();
        let j = ipj(&["link", "show", "va"]);
        assert!(!j[0]["flags"].as_array().unwrap().iter().any(|f| f == "UP"));
        ops::del_link(&mut s, LinkRef::Name("va")).unwrap();
        assert_eq!(ipj(&["link", "show", "type", "veth"]).as_array().unwrap().len(), 0);
    }

    fn addr_add_get_del() {
        let mut s = sock();
        let v = nlkit_testns::veth_pair("va", "vb");
        let a = Address::new(v.a_index, "10.0.0.1".parse().unwrap(), 24);
        ops::add_addr(&mut s, &a, false).unwrap();
        let mut a6 = Address::new(v.a_index, "fd00::1".parse().unwrap(), 64);
        a6.flags = IFA_F_NODAD;
        ops::add_addr(&mut s, &a6, false).unwrap();
        let j = ipj(&["addr", "show", "va"]);
        let infos = j[0]["addr_info"].as_array().unwrap();
        assert!(infos.iter().any(|i| i["local"] == "10.0.0.1" && i["prefixlen"] == 24));
        assert!(infos.iter().any(|i| i["local"] == "fd00::1" && i["nodad"] == true));
        let got = ops::get_addr(&mut s, v.a_index, "10.0.0.1".parse().unwrap()).unwrap().unwrap();
        assert_eq!((got.prefix_len, got.label.as_deref()), (24, Some("va")));
        let mut n4 = 0;
        ops::dump_addrs(&mut s, AF_INET, &AddrFilter { ifindex: Some(v.a_index) }, |_| { n4 += 1; Ok(()) }).unwrap();
        assert_eq!(n4, 1);
        ops::del_addr(&mut s, &a).unwrap();
        assert!(ops::get_addr(&mut s, v.a_index, "10.0.0.1".parse().unwrap()).unwrap().is_none());
        let e = ops::del_addr(&mut s, &a).unwrap_err();
        assert_eq!(e.errno(), Some(libc_eaddrnotavail()));
    }

    fn route_add_replace_del_table_1000_and_multipath() {
        let mut s = sock();
        let v = nlkit_testns::veth_pair("va", "vb");
        nlkit_testns::add_addr(v.a_index, "10.0.0.1".parse().unwrap(), 24);
        let r = Route::new("10.1.0.0".parse().unwrap(), 24)
            .via("10.0.0.2".parse().unwrap()).dev(v.a_index).proto(RTPROT_STATIC).metric(100);
        ops::add_route(&mut s, &r, RouteOp::Add).unwrap();
        assert_eq!(ops::add_route(&mut s, &r, RouteOp::Add).unwrap_err().errno(), Some(17));
        let j = ipj(&["route", "show", "10.1.0.0/24"]);
        assert_eq!(j[0]["gateway"], "10.0.0.2");
        assert_eq!(j[0]["protocol"], "static");
        assert_eq!(j[0]["metric"], 100);

        // Our text equals `ip route show` for the main table.
        let names = ops::link_names(&mut s).unwrap();
        let mut ours = String::new();
        ops::dump_routes(&mut s, AF_INET, &RouteFilter::main(), |r| {
            ours.push_str(&route_text(&r, &names, RouteFmt { show_table: false, ..Default::default() }).to_string());
            ours.push('\n');
            Ok(())
        }).unwrap();
        assert_eq!(ours, nlkit_testns::ip(&["-4", "route", "show"]));

        // Table 1000 (beyond rtm_table's 8 bits), filtered kernel-side.
        let t = Route::new("10.2.0.0".parse().unwrap(), 24).via("10.0.0.3".parse().unwrap()).table(1000);
        ops::add_route(&mut s, &t, RouteOp::Add).unwrap();
        let in_1000 = routes(&mut s, AF_INET, &RouteFilter { table: Some(1000), ..Default::default() });
        assert_eq!(in_1000.len(), 1);
        assert_eq!((in_1000[0].table, in_1000[0].gateway), (1000, t.gateway));
        assert_eq!(ipj(&["route", "show", "table", "1000"])[0]["dst"], "10.2.0.0/24");

        // Replace changes the gateway in place.
        let t2 = t.clone().via("10.0.0.4".parse().unwrap());
        ops::add_route(&mut s, &t2, RouteOp::Replace).unwrap();
        assert_eq!(ipj(&["route", "show", "table", "1000"])[0]["gateway"], "10.0.0.4");

        // Multipath.
        let mp = Route::new("10.3.0.0".parse().unwrap(), 24)
            .nexthop(NextHop::via("10.0.0.2".parse().unwrap()).dev(v.a_index).weight(1))
            .nexthop(NextHop::via("10.0.0.3".parse().unwrap()).dev(v.a_index).weight(2));
        ops::add_route(&mut s, &mp, RouteOp::Add).unwrap();
        let j = ipj(&["route", "show", "10.3.0.0/24"]);
        let nh = j[0]["nexthops"].as_array().unwrap();
        assert_eq!((nh.len(), nh[1]["weight"].as_u64()), (2, Some(2)));
        let got = routes(&mut s, AF_INET, &RouteFilter::main());
        let m = got.iter().find(|r| r.dst == mp.dst).unwrap();
        assert_eq!(m.nexthops.len(), 2);

        // Output-interface filter (kernel-side).
        let via_va = routes(&mut s, AF_INET, &RouteFilter { oif: Some(v.a_index), ..RouteFilter::main() });
        assert!(via_va.iter().all(|r| r.oif == Some(v.a_index) || !r.nexthops.is_empty()));

        ops::del_route(&mut s, &t2).unwrap();
        ops::del_route(&mut s, &mp).unwrap();
        ops::del_route(&mut s, &Route::new("10.1.0.0".parse().unwrap(), 24)).unwrap();
        assert!(routes(&mut s, AF_INET, &RouteFilter { table: Some(1000), ..Default::default() }).is_empty());
        assert_eq!(ipj(&["route", "show", "10.1.0.0/24"]).as_array().unwrap().len(), 0);

        // A lookup resolves through the connected route.
        let g = ops::get_route(&mut s, &nlkit_route::request::RouteLookup::new("10.0.0.9".parse().unwrap())).unwrap();
        assert_eq!(g.oif, Some(v.a_index));
    }

    fn ipv6_routes_dump_per_family() {
        let mut s = sock();
        let v = nlkit_testns::veth_pair("va", "vb");
        let mut a6 = Address::new(v.a_index, "fd00::1".parse().unwrap(), 64);
        a6.flags = IFA_F_NODAD;
        ops::add_addr(&mut s, &a6, false).unwrap();
        let r = Route::new("fd00:9::".parse().unwrap(), 64).via("fd00::2".parse().unwrap()).dev(v.a_index);
        ops::add_route(&mut s, &r, RouteOp::Add).unwrap();
        // IPv6 autoconfiguration keeps adding routes (link-local, multicast) for a moment
        // after the link comes up: compare once both listings agree, within a second.
        let mut tries = 0;
        let (got, ip6) = loop {
            let got = routes(&mut s, AF_INET6, &RouteFilter::main());
            let ip6 = ipj(&["-6", "route", "show"]).as_array().unwrap().len();
            tries += 1;
            if got.len() == ip6 || tries == 20 {
                break (got, ip6);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        assert_eq!(got.len(), ip6);
        assert!(got.iter().any(|x| x.dst == r.dst && x.gateway == r.gateway));
    }

    fn neigh_add_get_del() {
        let mut s = sock();
        let v = nlkit_testns::veth_pair("va", "vb");
        nlkit_testns::add_addr(v.a_index, "10.0.0.1".parse().unwrap(), 24);
        let n = Neighbour::new(v.a_index, "10.0.0.2".parse().unwrap()).lladdr(&[0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]);
        ops::add_neigh(&mut s, &n, false).unwrap();
        let j = ipj(&["neigh", "show", "dev", "va"]);
        assert_eq!(j[0]["lladdr"], "aa:bb:cc:dd:ee:ff");
        assert_eq!(j[0]["state"][0], "PERMANENT");
        let g = ops::get_neigh(&mut s, v.a_index, n.dst).unwrap();
        assert_eq!(g.lladdr, n.lladdr);
        let mut count = 0;
        ops::dump_neighs(&mut s, AF_INET, &NeighFilter { ifindex: Some(v.a_index), ..Default::default() }, |x| {
            assert_eq!(x.dst(), Some(n.dst));
            count += 1;
            Ok(())
        }).unwrap();
        assert_eq!(count, 1);
        ops::del_neigh(&mut s, &n).unwrap();
        assert_eq!(ipj(&["neigh", "show", "dev", "va"]).as_array().unwrap().len(), 0);
    }

    fn names_match_ip_link() {
        let mut s = sock();
        nlkit_testns::veth_pair("va", "vb");
        let names: LinkNames = ops::link_names(&mut s).unwrap();
        for l in ipj(&["link", "show"]).as_array().unwrap() {
            let idx = l["ifindex"].as_u64().unwrap() as u32;
            assert_eq!(names.get(idx), l["ifname"].as_str());
        }
    }
}

fn libc_eaddrnotavail() -> i32 {
    99
}
