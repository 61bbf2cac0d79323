//! Round trips builder → view for every view, unknown attributes, longer structs, and
//! arbitrary bytes (no panic).

use nlkit_route::fmt::{self as rfmt, LinkNames, RouteFmt};
use nlkit_route::request::{self, LinkRef, RouteOp};
use nlkit_route::{AddrView, Address, LinkView, NeighView, Neighbour, NextHop, Route, RouteView};
use nlkit_wire::consts::*;
use nlkit_wire::{IfInfoMsg, Message, MessageBuilder, Messages, RtMsg};
use proptest::prelude::*;

fn first(b: &MessageBuilder) -> Message<'_> {
    Messages::new(b.as_bytes()).next().unwrap().unwrap()
}

#[test]
fn route_round_trip_single_and_multipath() {
    let r = Route::new("10.1.0.0".parse().unwrap(), 24)
        .via("10.0.0.2".parse().unwrap())
        .dev(3)
        .table(1000)
        .metric(100)
        .proto(RTPROT_STATIC)
        .src("10.0.0.1".parse().unwrap())
        .mtu(1400);
    let mut b = MessageBuilder::new();
    request::add_route(&mut b, 1, &r, RouteOp::Add).unwrap();
    let m = first(&b);
    let v = RouteView::parse(&m).unwrap();
    assert_eq!(
        v.header().table,
        RT_TABLE_UNSPEC,
        "ids > 255 only in RTA_TABLE"
    );
    assert_eq!(v.table(), 1000);
    assert_eq!(v.mtu(), Some(1400));
    assert_eq!(v.unknown_attrs(), 0);
    assert_eq!(v.to_owned(), r);

    let mp = Route::new("fd00:3::".parse().unwrap(), 64)
        .nexthop(NextHop::via("fd00::2".parse().unwrap()).dev(3).weight(1))
        .nexthop(NextHop::via("fd00::3".parse().unwrap()).dev(4).weight(7));
    b.clear();
    request::add_route(&mut b, 1, &mp, RouteOp::Replace).unwrap();
    let m = first(&b);
    let v = RouteView::parse(&m).unwrap();
    let nhs: Vec<_> = v.nexthops().collect();
    assert_eq!(nhs.len(), 2);
    assert_eq!((nhs[1].ifindex, nhs[1].weight()), (4, 7));
    assert_eq!(v.to_owned(), mp);
    let mut names = LinkNames::new();
    names.insert(3, "va");
    assert_eq!(
        rfmt::route_text(&v, &names, RouteFmt::default()).to_string(),
        "fd00:3::/64 \n\tnexthop via fd00::2 dev va weight 1 \n\tnexthop via fd00::3 dev if4 weight 7 "
    );
}

#[test]
fn ipv6_gateway_on_ipv4_route_uses_rta_via() {
    let r = Route::new("10.9.0.0".parse().unwrap(), 16)
        .via("fe80::1".parse().unwrap())
        .dev(2);
    let mut b = MessageBuilder::new();
    request::add_route(&mut b, 1, &r, RouteOp::Add).unwrap();
    let v = RouteView::parse(&first(&b)).unwrap();
    assert!(v.gateway_is_via());
    assert_eq!(v.gateway(), r.gateway);
}

#[test]
fn unknown_attributes_and_longer_structs_are_skipped_and_counted() {
    let mut b = MessageBuilder::new();
    b.begin(RTM_NEWROUTE, 0, 1);
    b.header(&RtMsg {
        family: AF_INET,
        dst_len: 8,
        table: RT_TABLE_MAIN,
        ty: RTN_UNICAST,
        ..Default::default()
    });
    b.attr_bytes(RTA_DST, &[10, 0, 0, 0]);
    b.attr_bytes(999, &[1, 2, 3, 4, 5]);
    b.attr_u32(RTA_OIF, 2);
    b.attr_bytes(998, &[]);
    b.finish().unwrap();
    let v = RouteView::parse(&first(&b)).unwrap();
    assert_eq!((v.unknown_attrs(), v.oif()), (2, Some(2)));

    // A newer kernel's longer IFA_CACHEINFO and a short IFLA_STATS64 are accepted.
    b.clear();
    b.begin(RTM_NEWADDR, 0, 1);
    b.header(&nlkit_wire::IfAddrMsg {
        family: AF_INET,
        prefixlen: 24,
        index: 2,
        ..Default::default()
    });
    b.attr_bytes(IFA_LOCAL, &[10, 0, 0, 1]);
    let mut ci = vec![0u8; 24];
    ci[4..8].copy_from_slice(&600u32.to_ne_bytes());
    b.attr_bytes(IFA_CACHEINFO, &ci);
    b.attr_u32(999, 1);
    b.finish().unwrap();
    let a = AddrView::parse(&first(&b)).unwrap();
    assert_eq!(a.cacheinfo().unwrap().valid, 600);
    assert_eq!(a.unknown_attrs(), 1);

    b.clear();
    b.begin(RTM_NEWLINK, 0, 1);
    b.header(&IfInfoMsg {
        index: 5,
        ..Default::default()
    });
    b.attr_str(IFLA_IFNAME, "x");
    b.attr_bytes(IFLA_STATS64, &[1, 0, 0, 0, 0, 0, 0, 0, 9, 9]);
    b.attr_bytes(999, &[0; 3]);
    b.finish().unwrap();
    let l = LinkView::parse(&first(&b)).unwrap();
    assert_eq!(l.stats64().unwrap().rx_packets, 1);
    assert_eq!(l.unknown_attrs(), 1);
}

#[test]
fn link_requests_round_trip() {
    let mut b = MessageBuilder::new();
    request::add_veth(&mut b, 1, "va", "vb").unwrap();
    let l = LinkView::parse_any(&first(&b)).unwrap();
    assert_eq!((l.name(), l.kind()), (Some("va"), Some("veth")));
    b.clear();
    request::set_link_up(&mut b, 1, 4, false).unwrap();
    let l = LinkView::parse_any(&first(&b)).unwrap();
    assert_eq!(
        (l.index(), l.is_up(), l.header().change),
        (4, false, IFF_UP)
    );
    b.clear();
    request::del_link(&mut b, 1, LinkRef::Name("va")).unwrap();
    let l = LinkView::parse(&first(&b)).unwrap();
    assert_eq!((l.msg_type(), l.name()), (RTM_DELLINK, Some("va")));
}

#[test]
fn addr_and_neigh_round_trip() {
    let mut a = Address::new(3, "fd00::1".parse().unwrap(), 64);
    a.flags = IFA_F_NODAD | IFA_F_NOPREFIXROUTE;
    a.valid_lft = Some(300);
    a.preferred_lft = Some(200);
    a.metric = Some(5);
    let mut b = MessageBuilder::new();
    request::add_addr(&mut b, 1, &a, true).unwrap();
    let v = AddrView::parse(&first(&b)).unwrap();
    let o = v.to_owned().unwrap();
    assert_eq!(
        (o.flags, o.valid_lft, o.preferred_lft, o.metric),
        (a.flags, Some(300), Some(200), Some(5))
    );

    let n = Neighbour::new(3, "fd00::9".parse().unwrap())
        .lladdr(&[1, 2, 3, 4, 5, 6])
        .state(NUD_STALE);
    b.clear();
    request::add_neigh(&mut b, 1, &n, false).unwrap();
    let v = NeighView::parse(&first(&b)).unwrap();
    assert_eq!(v.to_owned().unwrap(), n);
    b.clear();
    request::del_neigh(&mut b, 1, &n).unwrap();
    assert_eq!(
        NeighView::parse(&first(&b)).unwrap().msg_type(),
        RTM_DELNEIGH
    );
}

#[test]
fn wrong_message_type_is_a_typed_error() {
    let mut b = MessageBuilder::new();
    request::add_neigh(
        &mut b,
        1,
        &Neighbour::new(1, "10.0.0.1".parse().unwrap()),
        false,
    )
    .unwrap();
    assert!(matches!(
        RouteView::parse(&first(&b)),
        Err(nlkit_wire::WireError::UnexpectedType { .. })
    ));
}

#[test]
fn json_is_shaped_like_ip_j() {
    let r = Route::new("10.0.0.0".parse().unwrap(), 24)
        .dev(2)
        .proto(RTPROT_KERNEL)
        .scope(RT_SCOPE_LINK)
        .src("10.0.0.1".parse().unwrap())
        .table(255)
        .kind(RTN_LOCAL);
    let mut b = MessageBuilder::new();
    request::add_route(&mut b, 1, &r, RouteOp::Add).unwrap();
    let v = RouteView::parse(&first(&b)).unwrap();
    let j =
        serde_json::to_value(rfmt::route_json(&v, &LinkNames::new(), RouteFmt::default())).unwrap();
    assert_eq!(j["type"], "local");
    assert_eq!(j["table"], "local");
    assert_eq!(j["dev"], "if2");
    assert_eq!(j["scope"], "link");
    assert_eq!(j["prefsrc"], "10.0.0.1");
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512), ty in 16u16..32) {
        let mut b = MessageBuilder::new();
        b.begin(ty, 0, 0);
        b.raw(&bytes);
        b.finish().unwrap();
        let m = first(&b);
        let names = LinkNames::new();
        if let Ok(v) = LinkView::parse(&m) { let _ = rfmt::link_text(&v, &names, true).to_string(); let _ = serde_json::to_string(&rfmt::link_json(&v, &names, None)); }
        if let Ok(v) = AddrView::parse(&m) { let _ = rfmt::addr_text(&v, &names).to_string(); let _ = serde_json::to_string(&rfmt::addr_json(&v, &names)); }
        if let Ok(v) = RouteView::parse(&m) {
            let _ = rfmt::route_text(&v, &names, RouteFmt::default()).to_string();
            let _ = serde_json::to_string(&rfmt::route_json(&v, &names, RouteFmt::default()));
            let _ = v.to_owned();
        }
        if let Ok(v) = NeighView::parse(&m) { let _ = rfmt::neigh_text(&v, &names).to_string(); let _ = serde_json::to_string(&rfmt::neigh_json(&v, &names)); }
    }
}
