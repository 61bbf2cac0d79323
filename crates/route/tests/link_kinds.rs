//! Link kinds, link changes, namespaces, namespace ids and the bridge FDB/VLANs through the
//! library against the real kernel (each test in a fresh namespace), checked with `ip` and
//! `bridge`; plus no-panic properties of the new parsers. Kinds this kernel lacks are
//! skipped with the kernel's own error printed.

use std::os::fd::AsFd;

use nlkit_route::request::{FdbFilter, LinkFilter, LinkRef};
use nlkit_route::{
    bridge_vlans, ops, BridgeOpts, BridgeVlanSpec, Fdb, FdbOp, KindInfo, LinkKind, LinkSpec,
    LinkView, MacvlanOpts, NetnsRef, NsidView, VlanOpts, VxlanOpts,
};
use nlkit_socket::{netns, Protocol, Socket, SocketOptions};
use nlkit_testns::{ip, run};
use nlkit_wire::consts::*;
use nlkit_wire::{MessageBuilder, Messages};
use proptest::prelude::*;

fn sock() -> Socket {
    Socket::open(Protocol::Route).unwrap()
}

/// The owned-free way to look at one link's kind info: dump by kind and run `f` on it.
fn with_link<T>(s: &mut Socket, name: &str, f: impl Fn(&LinkView<'_>) -> T) -> T {
    let mut out = None;
    ops::dump_links(s, &LinkFilter::default(), |l| {
        if l.name() == Some(name) {
            out = Some(f(&l));
        }
        Ok(())
    })
    .unwrap();
    out.unwrap_or_else(|| panic!("no link {name}"))
}

fn try_add(s: &mut Socket, spec: &LinkSpec) -> Option<u32> {
    match ops::add_link(s, spec) {
        Ok(i) => Some(i),
        Err(e) => {
            println!(
                "skipped: kind {}: the kernel says: {e}",
                spec.kind.as_ref().map_or("?", LinkKind::name)
            );
            None
        }
    }
}

nlkit_testns::netns_test! {
    fn kinds_create_and_decode() {
        let mut s = sock();
        let (v0, _) = ops::add_veth(&mut s, "v0", "v1").unwrap();
        let br = LinkKind::Bridge(BridgeOpts { stp: Some(true), ageing_time: Some(1000), ..Default::default() });
        try_add(&mut s, &LinkSpec::new("br0", br).mtu(1400)).unwrap();
        let b = with_link(&mut s, "br0", |l| match l.kind_info().unwrap() {
            Some(KindInfo::Bridge(b)) => b,
            other => panic!("{other:?}"),
        });
        assert_eq!((b.stp_state, b.ageing_time), (Some(1), Some(1000)));

        let vx = VxlanOpts {
            id: Some(42), local: Some("10.0.0.1".parse().unwrap()),
            remote: Some("239.1.1.1".parse().unwrap()), dev: Some(v0),
            dstport: Some(4789), learning: Some(false), ttl: Some(5),
        };
        try_add(&mut s, &LinkSpec::new("vx0", LinkKind::Vxlan(vx.clone()))).unwrap();
        let x = with_link(&mut s, "vx0", |l| match l.kind_info().unwrap() {
            Some(KindInfo::Vxlan(x)) => x,
            other => panic!("{other:?}"),
        });
        assert_eq!((x.id, x.local, x.group, x.link), (vx.id, vx.local, vx.remote, Some(v0)));
        assert_eq!((x.port, x.learning, x.ttl), (Some(4789), Some(false), Some(5)));
        assert!(ip(&["-d", "link", "show", "vx0"]).contains("group 239.1.1.1 local 10.0.0.1 dev v0"));

        for (name, kind) in [
            ("mv0", LinkKind::Macvlan(MacvlanOpts { mode: Some(MACVLAN_MODE_PRIVATE) })),
            ("mt0", LinkKind::Macvtap(MacvlanOpts { mode: Some(MACVLAN_MODE_VEPA) })),
        ] {
            let want = match &kind { LinkKind::Macvlan(o) | LinkKind::Macvtap(o) => o.mode, _ => None };
            try_add(&mut s, &LinkSpec::new(name, kind).parent(v0)).unwrap();
            let m = with_link(&mut s, name, |l| match l.kind_info().unwrap() {
                Some(KindInfo::Macvlan(m)) => m,
                other => panic!("{other:?}"),
            });
            assert_eq!(m.mode, want);
        }
        try_add(&mut s, &LinkSpec::new("ifb0", LinkKind::Other("ifb".into()))).unwrap();
        assert!(with_link(&mut s, "ifb0", |l| l.kind() == Some("ifb")));

        if try_add(&mut s, &LinkSpec::new("v0.10", LinkKind::Vlan(VlanOpts { id: Some(10), protocol: Some(ETH_P_8021AD) })).parent(v0)).is_some() {
            let v = with_link(&mut s, "v0.10", |l| match l.kind_info().unwrap() {
                Some(KindInfo::Vlan(v)) => v,
                other => panic!("{other:?}"),
            });
            assert_eq!((v.id, v.protocol), (Some(10), Some(ETH_P_8021AD)));
        }
        if try_add(&mut s, &LinkSpec::new("vrf0", LinkKind::Vrf { table: Some(10) })).is_some() {
            assert!(with_link(&mut s, "vrf0", |l| matches!(l.kind_info(), Ok(Some(KindInfo::Vrf(v))) if v.table == Some(10))));
        }
        if try_add(&mut s, &LinkSpec::new("bond0", LinkKind::Bond(nlkit_route::BondOpts { mode: Some(1), miimon: Some(100) }))).is_some() {
            assert!(with_link(&mut s, "bond0", |l| matches!(l.kind_info(), Ok(Some(KindInfo::Bond(b))) if b.mode == Some(1) && b.miimon == Some(100))));
        }
        if try_add(&mut s, &LinkSpec::new("ipv0", LinkKind::Ipvlan(nlkit_route::IpvlanOpts { mode: Some(IPVLAN_MODE_L3), flags: None })).parent(v0)).is_some() {
            assert!(with_link(&mut s, "ipv0", |l| matches!(l.kind_info(), Ok(Some(KindInfo::Ipvlan(v))) if v.mode == Some(IPVLAN_MODE_L3))));
        }
        // Dump filter by kind (kernel-side with strict checking, and in user space).
        let mut kinds = Vec::new();
        ops::dump_links(&mut s, &LinkFilter { kind: Some("macvlan"), master: None }, |l| {
            kinds.push(l.name().unwrap_or("").to_owned());
            Ok(())
        }).unwrap();
        assert_eq!(kinds, ["mv0"]);
    }

    fn link_changes() {
        let mut s = sock();
        let (v0, v1) = ops::add_veth(&mut s, "v0", "v1").unwrap();
        let br = ops::add_link(&mut s, &LinkSpec::new("br0", LinkKind::Bridge(BridgeOpts::default()))).unwrap();
        ops::set_link_master(&mut s, v1, Some(br)).unwrap();
        let change = LinkSpec {
            name: Some("port1".into()), alias: Some("uplink".into()), txqlen: Some(77),
            mtu: Some(1300), address: Some(vec![2, 0, 0, 0, 0, 0x11]), up: Some(true),
            ..Default::default()
        };
        ops::set_link(&mut s, v1, &change).unwrap();
        let j: serde_json::Value = serde_json::from_str(&ip(&["-j", "link", "show", "port1"])).unwrap();
        assert_eq!(j[0]["ifalias"], "uplink");
        assert_eq!(j[0]["txqlen"], 77);
        assert_eq!(j[0]["mtu"], 1300);
        assert_eq!(j[0]["master"], "br0");
        assert_eq!(j[0]["address"], "02:00:00:00:00:11");
        ops::set_link_master(&mut s, v1, None).unwrap();
        ops::set_link(&mut s, v1, &LinkSpec { alias: Some(String::new()), ..Default::default() }).unwrap();
        let l = ops::get_link(&mut s, LinkRef::Index(v1)).unwrap();
        assert_eq!(l.master, None);
        assert!(!ip(&["link", "show", "port1"]).contains("alias"));
        // Change a kind's options in place.
        let stp = LinkSpec { kind: Some(LinkKind::Bridge(BridgeOpts { stp: Some(true), ..Default::default() })), ..Default::default() };
        ops::set_link(&mut s, br, &stp).unwrap();
        assert!(ip(&["-d", "link", "show", "br0"]).contains("stp_state 1"));
        // Ext-ack errors come back typed.
        let e = ops::set_link_master(&mut s, v0, Some(v0)).unwrap_err();
        assert!(e.to_string().contains("rror"), "{e}");
    }

    /// Links move by namespace fd and by pid; nsids are reported, set and dumped.
    fn namespaces_and_nsids() {
        let mut s = sock();
        let (_, b) = ops::add_veth(&mut s, "va", "vb").unwrap();
        let ns = netns::create().unwrap();
        ops::move_link_to_netns(&mut s, b, ns.as_fd()).unwrap();
        assert!(ops::get_link(&mut s, LinkRef::Name("vb")).is_err());
        let mut inner = netns::open_socket(&ns, Protocol::Route, &SocketOptions::default()).unwrap();
        let vb = ops::get_link(&mut inner, LinkRef::Name("vb")).unwrap();
        // The peer is now in another namespace: the kernel assigned it an id.
        let id = ops::get_nsid_fd(&mut s, ns.as_fd()).unwrap().expect("an nsid");
        let nsid = with_link(&mut s, "va", |l| l.link_netnsid());
        assert_eq!(nsid, Some(id as i32));
        assert!(ip(&["link", "show", "va"]).contains(&format!("link-netnsid {id}")));
        assert_eq!(vb.name.as_deref(), Some("vb"));

        // A second namespace: set its id, see it in the dump.
        let ns2 = netns::create().unwrap();
        assert_eq!(ops::get_nsid_fd(&mut s, ns2.as_fd()).unwrap(), None);
        ops::set_nsid(&mut s, ns2.as_fd(), 7).unwrap();
        assert_eq!(ops::get_nsid_fd(&mut s, ns2.as_fd()).unwrap(), Some(7));
        let mut ids = Vec::new();
        ops::dump_nsids(&mut s, |v| { ids.push(v.nsid()); Ok(()) }).unwrap();
        ids.sort();
        assert_eq!(ids, [Some(id as i32), Some(7)]);
        assert!(ip(&["netns", "list-id"]).contains("nsid 7"));
        let e = ops::set_nsid(&mut s, ns2.as_fd(), 8).unwrap_err();
        assert!(e.to_string().contains("nsid"), "{e}");

        // By pid: a child process in a namespace of its own.
        if !nlkit_testns::have_command("unshare") {
            println!("skipped: move by pid: no unshare(1)");
            return;
        }
        let (c, _) = ops::add_veth(&mut s, "vc", "vd").unwrap();
        let mut child = std::process::Command::new("unshare")
            .args(["-n", "sleep", "60"])
            .spawn()
            .unwrap();
        let pid = child.id();
        // Wait (bounded) until the child has entered its namespace.
        let own = std::fs::read_link("/proc/self/ns/net").unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::fs::read_link(format!("/proc/{pid}/ns/net")).ok().as_ref() == Some(&own)
            || std::fs::read_link(format!("/proc/{pid}/exe")).map(|p| !p.ends_with("sleep")).unwrap_or(true)
        {
            assert!(std::time::Instant::now() < deadline, "child never unshared");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        ops::move_link_to_pid(&mut s, c, pid).unwrap();
        let out = run("nsenter", &[&format!("--net=/proc/{pid}/ns/net"), "ip", "-o", "link", "show", "vc"]);
        let _ = child.kill();
        let _ = child.wait();
        assert!(String::from_utf8_lossy(&out.stdout).contains("vc@if"), "{out:?}");
    }

    /// A veth whose peer is created directly in another namespace.
    fn veth_peer_in_netns() {
        let mut s = sock();
        let ns = netns::create().unwrap();
        let kind = LinkKind::Veth { peer: "inside".into(), peer_netns: None };
        let mut spec = LinkSpec::new("outside", kind);
        if let Some(LinkKind::Veth { peer_netns, .. }) = &mut spec.kind {
            *peer_netns = Some(NetnsRef::Fd(std::os::fd::AsRawFd::as_raw_fd(&ns)));
        }
        ops::add_link(&mut s, &spec).unwrap();
        let mut inner = netns::open_socket(&ns, Protocol::Route, &SocketOptions::default()).unwrap();
        assert!(ops::get_link(&mut inner, LinkRef::Name("inside")).is_ok());
        assert!(ip(&["link", "show", "outside"]).contains("outside@if"));
    }

    fn fdb_and_vlans() {
        let mut s = sock();
        let (v0, v1) = ops::add_veth(&mut s, "v0", "v1").unwrap();
        let br = ops::add_link(&mut s, &LinkSpec::new("br0", LinkKind::Bridge(BridgeOpts::default()))).unwrap();
        ops::set_link_master(&mut s, v1, Some(br)).unwrap();
        let vx = ops::add_link(&mut s, &LinkSpec::new("vx0", LinkKind::Vxlan(VxlanOpts {
            id: Some(42), dstport: Some(4789), local: Some("10.0.0.1".parse().unwrap()), ..Default::default()
        }))).unwrap();
        let mac = [2, 0, 0, 0, 0, 9];
        ops::add_fdb(&mut s, &Fdb::new(v1, &mac).master().state(NUD_NOARP | NUD_REACHABLE), FdbOp::Add).unwrap();
        let remote = Fdb::new(vx, &[0; 6]).dst("10.0.0.2".parse().unwrap()).vni(42).port(4790);
        ops::add_fdb(&mut s, &remote, FdbOp::Append).unwrap();
        ops::add_fdb(&mut s, &Fdb::new(vx, &[0; 6]).dst("10.0.0.3".parse().unwrap()), FdbOp::Append).unwrap();
        assert!(ops::add_fdb(&mut s, &Fdb::new(v1, &mac).master(), FdbOp::Add).is_err());
        ops::add_fdb(&mut s, &Fdb::new(v1, &mac).master(), FdbOp::Replace).unwrap();

        let fdb = String::from_utf8_lossy(&run("bridge", &["fdb", "show"]).stdout).into_owned();
        assert!(fdb.contains("02:00:00:00:00:09 dev v1 master br0 permanent"), "{fdb}");
        assert!(fdb.contains("00:00:00:00:00:00 dev vx0 dst 10.0.0.2 port 4790 vni 42 self permanent")
            || fdb.contains("00:00:00:00:00:00 dev vx0 dst 10.0.0.2 port 4790 self permanent"), "{fdb}");
        assert!(fdb.contains("dst 10.0.0.3 self permanent"), "{fdb}");

        let mut seen = Vec::new();
        ops::dump_fdb(&mut s, &FdbFilter { ifindex: Some(vx), master: None }, |n| {
            seen.push((n.dst(), n.port(), n.flags() & NTF_SELF != 0));
            Ok(())
        }).unwrap();
        assert!(seen.contains(&(Some("10.0.0.2".parse().unwrap()), Some(4790), true)), "{seen:?}");
        let mut on_br = 0;
        ops::dump_fdb(&mut s, &FdbFilter { master: Some(br), ifindex: None }, |n| {
            assert_ne!(n.ifindex(), v0);
            on_br += 1;
            Ok(())
        }).unwrap();
        assert!(on_br >= 2);
        ops::del_fdb(&mut s, &Fdb::new(v1, &mac).master()).unwrap();
        ops::del_fdb(&mut s, &Fdb::new(vx, &[0; 6]).dst("10.0.0.3".parse().unwrap())).unwrap();
        let fdb = String::from_utf8_lossy(&run("bridge", &["fdb", "show"]).stdout).into_owned();
        assert!(!fdb.contains("02:00:00:00:00:09") && !fdb.contains("10.0.0.3"), "{fdb}");

        // VLANs: where the kernel has bridge VLAN filtering.
        match ops::add_bridge_vlan(&mut s, &BridgeVlanSpec { pvid: true, untagged: true, ..BridgeVlanSpec::new(v1, 10) }) {
            Ok(()) => {
                let mut found = false;
                ops::dump_bridge_vlans(&mut s, |l| {
                    if l.index() == v1 {
                        let v: Vec<_> = bridge_vlans(l.af_spec().unwrap_or(&[])).collect::<Result<_, _>>()?;
                        found = v.iter().any(|x| x.vid == 10 && x.pvid() && x.untagged());
                    }
                    Ok(())
                }).unwrap();
                assert!(found);
                ops::del_bridge_vlan(&mut s, &BridgeVlanSpec::new(v1, 10)).unwrap();
            }
            Err(e) => println!("skipped: bridge vlan add: the kernel says: {e}"),
        }
        ops::dump_bridge_vlans(&mut s, |_| Ok(())).unwrap();
    }
}

proptest! {
    /// Kind data, nsid messages and bridge AF_SPEC from any bytes: a value or an error, never
    /// a panic.
    #[test]
    fn new_parsers_never_panic(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        for kind in ["bridge", "vlan", "vxlan", "macvlan", "ipvlan", "bond", "vrf", "veth"] {
            let _ = KindInfo::parse(kind, &data);
        }
        let _ = bridge_vlans(&data).count();
        let mut b = MessageBuilder::new();
        b.begin(RTM_NEWNSID, 0, 0).raw(&data);
        if b.finish().is_ok() {
            for m in Messages::new(b.as_bytes()).flatten() {
                let _ = NsidView::parse(&m);
                let _ = LinkView::parse_any(&m).map(|l| l.kind_info());
            }
        }
    }
}
