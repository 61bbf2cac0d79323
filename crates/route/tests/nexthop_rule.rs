//! Nexthop objects and policy rules: view/request round trips, forward compatibility and
//! arbitrary bytes (no kernel), then the real kernel in fresh namespaces compared with
//! `ip -j nexthop` / `ip -j rule`.

use nlkit_route::fmt::{self as rfmt, LinkNames};
use nlkit_route::nexthop::{GroupMember, ResilientGroup};
use nlkit_route::request::{self, NexthopFilter, RouteFilter, RouteOp, RuleFilter};
use nlkit_route::{ops, NexthopObject, NexthopObjectView, Route, Rule, RuleView};
use nlkit_socket::{Protocol, Socket};
use nlkit_wire::consts::*;
use nlkit_wire::{Message, MessageBuilder, Messages};
use proptest::prelude::*;
use serde_json::Value;

fn first(b: &MessageBuilder) -> Message<'_> {
    Messages::new(b.as_bytes()).next().unwrap().unwrap()
}

fn nh_round_trip(nh: &NexthopObject) -> String {
    let mut b = MessageBuilder::new();
    request::add_nexthop(&mut b, 1, nh, true).unwrap();
    let v = NexthopObjectView::parse(&first(&b)).unwrap();
    assert_eq!(&v.to_owned(), nh);
    assert_eq!(v.unknown_attrs(), 0);
    let mut names = LinkNames::new();
    names.insert(3, "va");
    rfmt::nexthop_text(&v, &names).to_string()
}

#[test]
fn nexthop_round_trips() {
    let gw = "10.0.0.2".parse().unwrap();
    assert_eq!(
        nh_round_trip(&NexthopObject::via(1, gw).dev(3)),
        "id 1 via 10.0.0.2 dev va "
    );
    assert_eq!(
        nh_round_trip(
            &NexthopObject::via(2, "fd00::2".parse().unwrap())
                .dev(3)
                .onlink()
        ),
        "id 2 via fd00::2 dev va onlink "
    );
    assert_eq!(
        nh_round_trip(&NexthopObject::device(3, 3).proto(RTPROT_STATIC)),
        "id 3 dev va proto static "
    );
    assert_eq!(
        nh_round_trip(&NexthopObject::blackhole(4)),
        "id 4 blackhole "
    );
    assert_eq!(
        nh_round_trip(&NexthopObject::via(5, gw).fdb()),
        "id 5 via 10.0.0.2 fdb"
    );
    let members = [GroupMember::new(1), GroupMember::new(2).weight(256)];
    assert_eq!(
        nh_round_trip(&NexthopObject::group(10, &members)),
        "id 10 group 1/2,256 "
    );
    let mut res = ResilientGroup::new(64);
    res.unbalanced_timer = 150;
    assert_eq!(
        nh_round_trip(&NexthopObject::group(11, &members).resilient(res)),
        "id 11 group 1/2,256 type resilient buckets 64 idle_timer 120 unbalanced_timer 1.5 \
         unbalanced_time 0 "
    );
}

#[test]
fn nexthop_dump_filters_are_encoded() {
    let mut b = MessageBuilder::new();
    let f = NexthopFilter {
        oif: Some(3),
        groups: true,
        master: Some(9),
        fdb: true,
    };
    request::dump_nexthops(&mut b, 1, AF_INET6, &f).unwrap();
    let m = first(&b);
    assert_eq!(m.ty(), RTM_GETNEXTHOP);
    let v = NexthopObjectView::parse_any(&m).unwrap();
    assert_eq!(
        (v.family(), v.oif(), v.master()),
        (AF_INET6, Some(3), Some(9))
    );
    assert!(v.groups_only() && v.is_fdb());
}

#[test]
fn route_nhid_round_trips() {
    let r = Route::new("10.5.0.0".parse().unwrap(), 16).nhid(10);
    let mut b = MessageBuilder::new();
    request::add_route(&mut b, 1, &r, RouteOp::Add).unwrap();
    let v = nlkit_route::RouteView::parse(&first(&b)).unwrap();
    assert_eq!(v.nh_id(), Some(10));
    assert_eq!(v.to_owned(), r);
    let t = rfmt::route_text(&v, &LinkNames::new(), Default::default()).to_string();
    assert_eq!(t, "10.5.0.0/16 nhid 10 ");
}

fn rule_round_trip(r: &Rule) -> (String, Value) {
    let mut b = MessageBuilder::new();
    request::add_rule(&mut b, 1, r).unwrap();
    let v = RuleView::parse(&first(&b)).unwrap();
    assert_eq!(&v.to_owned(), r);
    assert_eq!(v.unknown_attrs(), 0);
    (
        rfmt::rule_text(&v).to_string(),
        serde_json::to_value(rfmt::rule_json(&v)).unwrap(),
    )
}

#[test]
fn rule_round_trips() {
    let mut r = Rule::new(AF_INET)
        .priority(200)
        .from("10.1.0.0".parse().unwrap(), 16)
        .to("10.2.0.1".parse().unwrap(), 32)
        .iif("va")
        .oif("vb")
        .fwmark(0x10, Some(0xff))
        .table(5000);
    r.invert = true;
    r.tos = 0x08;
    r.uid_range = Some((10, 20));
    r.ip_proto = Some(6);
    r.sport = Some((1000, 2000));
    r.dport = Some((80, 80));
    r.suppress_prefixlen = Some(0);
    r.suppress_ifgroup = Some(0);
    r.protocol = Some(RTPROT_STATIC);
    r.realms = Some(3 << 16 | 5);
    r.dscp = Some(10);
    let (t, j) = rule_round_trip(&r);
    assert_eq!(
        t,
        "200:\tnot from 10.1.0.0/16 to 10.2.0.1 tos 0x08 fwmark 0x10/0xff iif va oif vb \
         uidrange 10-20 ipproto tcp sport 1000-2000 dport 80 lookup 5000 \
         suppress_prefixlength 0 suppress_ifgroup default realms 3/5 proto static dscp AF11"
    );
    assert_eq!(j["not"], Value::Null);
    assert_eq!(j["srclen"], 16);
    assert!(j.get("dstlen").is_none());
    assert_eq!(
        (j["sport_start"].clone(), j["dport"].clone()),
        (1000.into(), 80.into())
    );
    assert_eq!(j["table"], "5000");
    assert_eq!(j["dscp"], 10);

    let (t, _) = rule_round_trip(&Rule::new(AF_INET6).priority(5).goto(100));
    assert_eq!(t, "5:\tfrom all goto 100");
    for (a, name) in [
        (FR_ACT_UNREACHABLE, "unreachable"),
        (FR_ACT_PROHIBIT, "prohibit"),
        (FR_ACT_BLACKHOLE, "blackhole"),
    ] {
        let (t, j) = rule_round_trip(&Rule::new(AF_INET).priority(7).action(a));
        assert_eq!(t, format!("7:\tfrom all {name}"));
        assert_eq!(j["action"], name);
    }
    let mut l3 = Rule::new(AF_INET).priority(9).action(FR_ACT_TO_TBL);
    l3.table = 0;
    l3.l3mdev = true;
    assert_eq!(rule_round_trip(&l3).0, "9:\tfrom all lookup [l3mdev-table]");
}

#[test]
fn rule_filter_selects_like_ip_rule_show() {
    let r = Rule::new(AF_INET)
        .priority(5)
        .from("10.1.2.0".parse().unwrap(), 24)
        .table(7);
    let mut b = MessageBuilder::new();
    request::add_rule(&mut b, 1, &r).unwrap();
    let v = RuleView::parse(&first(&b)).unwrap();
    let src = |a: &str, l| RuleFilter {
        src: Some((a.parse().unwrap(), l)),
        ..Default::default()
    };
    assert!(src("10.0.0.0", 8).matches(&v));
    assert!(src("10.1.2.0", 24).matches(&v));
    assert!(!src("10.1.2.0", 25).matches(&v));
    assert!(!src("10.2.0.0", 16).matches(&v));
    assert!(!src("fd00::", 8).matches(&v));
    let dst = RuleFilter {
        dst: Some(("10.0.0.0".parse().unwrap(), 8)),
        ..Default::default()
    };
    assert!(!dst.matches(&v));
    let t = RuleFilter {
        table: Some(7),
        priority: Some(5),
        ..Default::default()
    };
    assert!(t.matches(&v));
}

#[test]
fn unknown_attributes_are_skipped_and_counted() {
    let nh = NexthopObject::via(1, "10.0.0.2".parse().unwrap()).dev(3);
    let mut b = MessageBuilder::new();
    request::add_nexthop(&mut b, 1, &nh, false).unwrap();
    // Append two attributes no kernel sends yet, one of them inside NHA_RES_GROUP.
    let mut raw = b.as_bytes().to_vec();
    let mut extra = MessageBuilder::new();
    extra.begin(RTM_NEWNEXTHOP, 0, 0);
    extra.raw(&raw[16..]);
    extra.attr_u32(900, 1);
    let n = extra.nest_begin(NHA_RES_GROUP);
    extra.attr_u16(NHA_RES_GROUP_BUCKETS, 4);
    extra.attr_u64(77, 1);
    extra.nest_end(n);
    extra.finish().unwrap();
    let v = NexthopObjectView::parse(&first(&extra)).unwrap();
    assert_eq!(v.unknown_attrs(), 2);
    assert_eq!(v.resilient().unwrap().buckets, 4);
    assert_eq!(v.gateway(), nh.gateway);

    let mut b = MessageBuilder::new();
    request::add_rule(&mut b, 1, &Rule::new(AF_INET).priority(3)).unwrap();
    raw.clear();
    raw.extend_from_slice(b.as_bytes());
    let mut extra = MessageBuilder::new();
    extra.begin(RTM_NEWRULE, 0, 0);
    extra.raw(&raw[16..]);
    extra.attr_u32(FRA_DSCP_MASK + 10, 1);
    extra.finish().unwrap();
    let v = RuleView::parse(&first(&extra)).unwrap();
    assert_eq!((v.unknown_attrs(), v.priority()), (1, 3));
}

#[test]
fn malformed_nexthop_group_is_a_typed_error() {
    let mut b = MessageBuilder::new();
    b.begin(RTM_NEWNEXTHOP, 0, 0);
    b.header(&nlkit_wire::NhMsg::default());
    b.attr_bytes(NHA_GROUP, &[1, 0, 0, 0, 0]);
    b.finish().unwrap();
    assert!(NexthopObjectView::parse(&first(&b)).is_err());
    let mut b = MessageBuilder::new();
    b.begin(RTM_NEWRULE, 0, 0);
    b.header(&nlkit_wire::FibRuleHdr::default());
    b.attr_bytes(FRA_UID_RANGE, &[1, 0, 0]);
    b.finish().unwrap();
    assert!(RuleView::parse(&first(&b)).is_err());
    // A wrong message type is refused.
    assert!(NexthopObjectView::parse(&first(&b)).is_err());
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
        ty in prop_oneof![Just(RTM_NEWNEXTHOP), Just(RTM_DELNEXTHOP), Just(RTM_NEWRULE), Just(RTM_DELRULE)],
    ) {
        let mut b = MessageBuilder::new();
        b.begin(ty, 0, 0);
        b.raw(&bytes);
        b.finish().unwrap();
        let m = first(&b);
        let names = LinkNames::new();
        if let Ok(v) = NexthopObjectView::parse(&m) {
            let _ = rfmt::nexthop_text(&v, &names).to_string();
            let _ = serde_json::to_string(&rfmt::nexthop_json(&v, &names)).unwrap();
            let _ = v.members().count();
            let _ = v.to_owned();
        }
        if let Ok(v) = RuleView::parse(&m) {
            let _ = rfmt::rule_text(&v).to_string();
            let _ = serde_json::to_string(&rfmt::rule_json(&v)).unwrap();
            let _ = v.to_owned();
        }
    }

    /// Requests built from arbitrary specs parse back to the same spec.
    #[test]
    fn arbitrary_rules_round_trip(
        prio in any::<u32>(), table in 1u32.., mark in any::<u32>(), s in any::<u16>(),
        e in any::<u16>(), proto in any::<u8>(), v6 in any::<bool>(),
    ) {
        let fam = if v6 { AF_INET6 } else { AF_INET };
        let mut r = Rule::new(fam).priority(prio).table(table).fwmark(mark, Some(!mark));
        r.sport = Some((s, e));
        r.ip_proto = Some(proto);
        let mut b = MessageBuilder::new();
        request::add_rule(&mut b, 1, &r).unwrap();
        prop_assert_eq!(RuleView::parse(&first(&b)).unwrap().to_owned(), r);
    }
}

// ---------------------------------------------------------------------------------------------
// The real kernel.

fn sock() -> Socket {
    Socket::open(Protocol::Route).unwrap()
}

fn ipj(args: &[&str]) -> Value {
    let mut a = vec!["-j"];
    a.extend_from_slice(args);
    serde_json::from_str(&nlkit_testns::ip(&a)).unwrap()
}

/// va/vb up with 10.0.0.1/24 and fd00::1/64 on va, and lo up (blackhole nexthops need it).
fn setup() -> (u32, u32) {
    let v = nlkit_testns::veth_pair("va", "vb");
    nlkit_testns::ip(&["link", "set", "lo", "up"]);
    nlkit_testns::ip(&["link", "set", "va", "up"]);
    nlkit_testns::ip(&["link", "set", "vb", "up"]);
    nlkit_testns::add_addr(v.a_index, "10.0.0.1".parse().unwrap(), 24);
    nlkit_testns::ip(&["-6", "addr", "add", "fd00::1/64", "dev", "va", "nodad"]);
    (v.a_index, v.b_index)
}

fn names(s: &mut Socket) -> LinkNames {
    ops::link_names(s).unwrap()
}

fn nexthops_json(s: &mut Socket, filter: &NexthopFilter) -> Value {
    let n = names(s);
    let mut out = Vec::new();
    ops::dump_nexthops(s, AF_UNSPEC, filter, |v| {
        out.push(serde_json::to_value(rfmt::nexthop_json(&v, &n)).unwrap());
        Ok(())
    })
    .unwrap();
    Value::Array(out)
}

fn rules_json(s: &mut Socket, family: u8) -> Value {
    let mut out = Vec::new();
    ops::dump_rules(s, family, &RuleFilter::default(), |v| {
        out.push(serde_json::to_value(rfmt::rule_json(&v)).unwrap());
        Ok(())
    })
    .unwrap();
    Value::Array(out)
}

nlkit_testns::netns_test! {
    fn nexthops_add_dump_get_filter_like_ip() {
        let (a, b) = setup();
        let mut s = sock();
        let gw = "10.0.0.2".parse().unwrap();
        ops::add_nexthop(&mut s, &NexthopObject::via(1, gw).dev(a), false).unwrap();
        ops::add_nexthop(&mut s, &NexthopObject::blackhole(2), false).unwrap();
        ops::add_nexthop(&mut s, &NexthopObject::device(3, a).proto(RTPROT_STATIC), false).unwrap();
        ops::add_nexthop(&mut s, &NexthopObject::via(4, "10.9.0.3".parse().unwrap()).dev(b).onlink(), false).unwrap();
        ops::add_nexthop(&mut s, &NexthopObject::via(5, "fd00::2".parse().unwrap()).dev(a), false).unwrap();
        let members = [GroupMember::new(1), GroupMember::new(4).weight(3)];
        ops::add_nexthop(&mut s, &NexthopObject::group(10, &members), false).unwrap();
        let mut res = ResilientGroup::new(8);
        res.idle_timer = 6000;
        res.unbalanced_timer = 12000;
        ops::add_nexthop(&mut s, &NexthopObject::group(11, &members).resilient(res), false).unwrap();
        ops::add_nexthop(&mut s, &NexthopObject::via(20, "10.0.0.9".parse().unwrap()).fdb(), false).unwrap();
        ops::add_nexthop(&mut s, &NexthopObject::group(21, &[GroupMember::new(20)]).fdb(), false).unwrap();

        assert_eq!(nexthops_json(&mut s, &NexthopFilter::default()), ipj(&["nexthop", "show"]));
        let groups = NexthopFilter { groups: true, ..Default::default() };
        assert_eq!(nexthops_json(&mut s, &groups), ipj(&["nexthop", "show", "groups"]));
        let dev = NexthopFilter { oif: Some(a), ..Default::default() };
        assert_eq!(nexthops_json(&mut s, &dev), ipj(&["nexthop", "show", "dev", "va"]));
        let fdb = NexthopFilter { fdb: true, ..Default::default() };
        let ids: Vec<u32> = {
            let mut v = Vec::new();
            ops::dump_nexthops(&mut s, AF_UNSPEC, &fdb, |n| { v.push(n.id().unwrap()); Ok(()) }).unwrap();
            v
        };
        assert_eq!(ids, [20, 21]);

        let g = ops::get_nexthop(&mut s, 11).unwrap();
        assert_eq!(g.group, members);
        assert_eq!(g.resilient.map(|r| (r.buckets, r.idle_timer)), Some((8, 6000)));
        // The kernel's ext-ack error comes back typed.
        let e = ops::get_nexthop(&mut s, 99).unwrap_err();
        assert_eq!(e.errno(), Some(2));
        let e = ops::add_nexthop(&mut s, &NexthopObject::group(30, &[GroupMember::new(77)]), false)
            .unwrap_err();
        let k = e.kernel().expect("a kernel error");
        assert!(k.to_string().starts_with("Error: "), "{k}");
    }

    fn routes_with_nhid_follow_a_replaced_group() {
        let (a, b) = setup();
        nlkit_testns::add_addr(b, "10.1.0.1".parse().unwrap(), 24);
        let mut s = sock();
        ops::add_nexthop(&mut s, &NexthopObject::via(1, "10.0.0.2".parse().unwrap()).dev(a), false).unwrap();
        ops::add_nexthop(&mut s, &NexthopObject::via(2, "10.1.0.2".parse().unwrap()).dev(b), false).unwrap();
        ops::add_nexthop(&mut s, &NexthopObject::group(10, &[GroupMember::new(1)]), false).unwrap();
        for i in 0..20u8 {
            let r = Route::new(std::net::Ipv4Addr::new(10, 50, i, 0).into(), 24).nhid(10);
            ops::add_route(&mut s, &r, RouteOp::Add).unwrap();
        }
        let j = ipj(&["route", "show", "10.50.3.0/24"]);
        assert_eq!(j[0]["nhid"], 10);
        // One write moves every route using the group.
        let g = NexthopObject::group(10, &[GroupMember::new(2)]);
        ops::add_nexthop(&mut s, &g, true).unwrap();
        let mut seen = 0;
        ops::dump_routes(&mut s, AF_INET, &RouteFilter::main(), |r| {
            if r.nh_id() == Some(10) {
                assert!(r.nexthops().all(|n| n.ifindex == b), "{:?}", r.to_owned());
                assert_eq!(r.to_owned().nh_id, Some(10));
                seen += 1;
            }
            Ok(())
        }).unwrap();
        assert_eq!(seen, 20);
        // Deleting the group deletes its routes; flush removes the rest.
        ops::del_nexthop(&mut s, 10).unwrap();
        assert!(!nlkit_testns::ip(&["route", "show"]).contains("10.50."));
        assert_eq!(ops::flush_nexthops(&mut s, AF_UNSPEC, &Default::default()).unwrap(), 2);
        assert_eq!(ipj(&["nexthop", "show"]), Value::Array(vec![]));
    }

    fn rules_add_dump_del_flush_like_ip() {
        setup();
        let mut s = sock();
        let mut r = Rule::new(AF_INET).priority(200).iif("va").oif("vb").fwmark(0x10, Some(0xff)).table(200);
        r.uid_range = Some((0, 0));
        r.ip_proto = Some(17);
        r.sport = Some((1000, 2000));
        r.dport = Some((53, 53));
        r.protocol = Some(RTPROT_STATIC);
        ops::add_rule(&mut s, &r).unwrap();
        ops::add_rule(&mut s, &Rule::new(AF_INET).priority(100).from("10.1.0.0".parse().unwrap(), 16).to("10.2.0.0".parse().unwrap(), 16).table(5000)).unwrap();
        ops::add_rule(&mut s, &Rule::new(AF_INET).priority(300).goto(32000)).unwrap();
        let mut l3 = Rule::new(AF_INET).priority(400);
        l3.table = 0;
        l3.l3mdev = true;
        ops::add_rule(&mut s, &l3).unwrap();
        let mut sup = Rule::new(AF_INET).priority(500);
        sup.suppress_prefixlen = Some(0);
        sup.suppress_ifgroup = Some(5);
        ops::add_rule(&mut s, &sup).unwrap();
        for (p, a) in [(600, FR_ACT_UNREACHABLE), (601, FR_ACT_PROHIBIT), (602, FR_ACT_BLACKHOLE)] {
            let mut x = Rule::new(AF_INET).priority(p).action(a);
            x.invert = p == 602;
            x.tos = 0x10;
            ops::add_rule(&mut s, &x).unwrap();
        }
        ops::add_rule(&mut s, &Rule::new(AF_INET6).priority(100).from("fd00::".parse().unwrap(), 64).table(100)).unwrap();
        // DSCP (Linux 6.12+; iproute2 6.1 cannot show it): read back through the view.
        let mut d = Rule::new(AF_INET6).priority(700).table(7);
        d.dscp = Some(10);
        match ops::add_rule(&mut s, &d) {
            Ok(()) => {
                let mut found = None;
                ops::dump_rules(&mut s, AF_INET6, &RuleFilter { priority: Some(700), ..Default::default() }, |v| {
                    found = v.dscp();
                    Ok(())
                }).unwrap();
                assert_eq!(found, Some(10));
                ops::del_rule(&mut s, &d).unwrap();
            }
            Err(e) => eprintln!("kernel without FRA_DSCP: {e}"),
        }

        assert_eq!(rules_json(&mut s, AF_INET), ipj(&["rule", "show"]));
        assert_eq!(rules_json(&mut s, AF_INET6), ipj(&["-6", "rule", "show"]));
        // Every dumped rule re-reads as the same request.
        ops::dump_rules(&mut s, AF_INET, &RuleFilter { priority: Some(200), ..Default::default() }, |v| {
            assert_eq!(v.to_owned(), r);
            Ok(())
        }).unwrap();

        ops::del_rule(&mut s, &Rule::any(AF_INET).priority(600)).unwrap();
        ops::del_rule(&mut s, &r).unwrap();
        let e = ops::del_rule(&mut s, &Rule::any(AF_INET).priority(600)).unwrap_err();
        assert_eq!(e.errno(), Some(2));
        let left = ipj(&["rule", "show"]);
        assert!(left.as_array().unwrap().iter().all(|r| r["priority"] != 600 && r["priority"] != 200));
        let f = RuleFilter { table: Some(5000), ..Default::default() };
        assert_eq!(ops::flush_rules(&mut s, AF_INET, &f).unwrap(), 1);
        ops::flush_rules(&mut s, AF_INET, &RuleFilter::default()).unwrap();
        assert_eq!(nlkit_testns::ip(&["rule", "show"]).trim(), "0:\tfrom all lookup local");
    }
}
