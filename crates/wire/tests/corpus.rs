//! Replays the fuzz corpus (`fuzz/corpus/parse`, seeded with real kernel replies by
//! `fuzz/capture_corpus.py`) and any saved crash inputs (`fuzz/artifacts/parse`) through the same
//! function the fuzz target runs, `nlkit_wire::fuzzing::parse_all`.
//!
//! The seeds named `kernel-*.bin` are exact `recv()` datagrams from Linux; for them this test
//! also checks that they decode cleanly and mean what the capture asked for.

use std::fs;

use nlkit_wire::consts::*;
use nlkit_wire::fuzzing::parse_all;
use nlkit_wire::{
    Attrs, DoneMsg, ErrorMsg, FamilyHeader, GenlMsgHdr, IfAddrMsg, IfInfoMsg, Message, Messages,
    NdMsg, NfGenMsg, RtMsg,
};

// The corpus listing shared with the other crates' corpus tests (only `std`; a dev-dependency
// on nlkit-testns would be a cycle, since nlkit-testns depends on nlkit-wire).
#[path = "../../testns/src/corpus.rs"]
mod corpus;
use corpus::{files, fuzz_dir};

fn kernel_seeds() -> Vec<(String, Vec<u8>)> {
    let seeds: Vec<_> = files(&fuzz_dir("corpus/parse"))
        .into_iter()
        .filter(|(n, _)| n.starts_with("kernel-"))
        .collect();
    assert!(
        seeds.len() >= 15,
        "the kernel seeds are missing (run fuzz/capture_corpus.py)"
    );
    seeds
}

fn seed(name: &str) -> Vec<u8> {
    fs::read(fuzz_dir("corpus/parse").join(name)).expect(name)
}

#[test]
fn corpus_replays_without_panic() {
    let corpus = files(&fuzz_dir("corpus/parse"));
    assert!(!corpus.is_empty(), "fuzz/corpus/parse is empty");
    for (name, bytes) in &corpus {
        // A panic here names the file through the test output.
        eprintln!("replaying {name}");
        parse_all(bytes);
    }
}

#[test]
fn crash_artifacts_replay_without_panic() {
    // libFuzzer saves crashing inputs here; each one, once fixed, stays as a regression input.
    for (name, bytes) in files(&fuzz_dir("artifacts/parse")) {
        eprintln!("replaying artifact {name}");
        parse_all(&bytes);
    }
}

/// The family header each message type starts with, by protocol (told by the file name).
fn strict_message(file: &str, m: &Message<'_>) -> usize {
    fn attrs_of<H: FamilyHeader>(m: &Message<'_>) -> usize {
        let (_, attrs) = m.family_header::<H>().expect("family header");
        attrs.validate().expect("attributes")
    }
    match m.ty() {
        NLMSG_ERROR => {
            ErrorMsg::parse(m).expect("NLMSG_ERROR");
            0
        }
        NLMSG_DONE => {
            DoneMsg::parse(m).expect("NLMSG_DONE");
            0
        }
        _ if file.contains("-ct-") => attrs_of::<NfGenMsg>(m),
        _ if file.contains("-genl-") => attrs_of::<GenlMsgHdr>(m),
        RTM_NEWLINK..=RTM_SETLINK => attrs_of::<IfInfoMsg>(m),
        RTM_NEWADDR..=RTM_GETADDR => attrs_of::<IfAddrMsg>(m),
        RTM_NEWROUTE..=RTM_GETROUTE => attrs_of::<RtMsg>(m),
        RTM_NEWNEIGH..=RTM_GETNEIGH => attrs_of::<NdMsg>(m),
        ty => panic!("{file}: unexpected message type {ty}"),
    }
}

#[test]
fn kernel_seeds_decode_cleanly() {
    for (name, bytes) in kernel_seeds() {
        let report = parse_all(&bytes);
        assert!(report.messages > 0, "{name}");
        assert!(!report.message_error, "{name}");
        let mut n = 0;
        let mut attrs = 0;
        for m in Messages::new(&bytes) {
            let m = m.unwrap_or_else(|e| panic!("{name}: {e}"));
            attrs += strict_message(&name, &m);
            n += 1;
        }
        assert_eq!(n, report.messages, "{name}");
        if name.contains("-dump-0") || name.contains("events") {
            assert!(attrs > 0, "{name}: no attributes");
        }
    }
}

fn messages(name: &str, bytes: &[u8]) -> Vec<(u16, Vec<u8>)> {
    Messages::new(bytes)
        .map(|m| {
            let m = m.unwrap_or_else(|e| panic!("{name}: {e}"));
            (m.ty(), m.bytes().to_vec())
        })
        .collect()
}

#[test]
fn kernel_route_dump() {
    let bytes = seed("kernel-route4-dump-0.bin");
    let mut dsts = Vec::new();
    for m in Messages::new(&bytes).map(Result::unwrap) {
        assert_eq!(m.ty(), RTM_NEWROUTE);
        let (rt, attrs) = m.family_header::<RtMsg>().unwrap();
        assert_eq!(rt.family, AF_INET);
        let table = attrs
            .clone()
            .find(RTA_TABLE)
            .unwrap()
            .unwrap()
            .u32()
            .unwrap();
        assert_eq!(table & 0xff, rt.table as u32);
        if let Some(dst) = attrs.find(RTA_DST) {
            dsts.push((dst.unwrap().ipv4().unwrap(), rt.dst_len));
        }
    }
    assert!(
        dsts.contains(&("198.18.7.0".parse().unwrap(), 24)),
        "{dsts:?}"
    );
    assert!(
        dsts.contains(&("198.19.0.0".parse().unwrap(), 16)),
        "{dsts:?}"
    );
}

#[test]
fn kernel_link_address_neighbour_dumps() {
    let links = seed("kernel-link-dump-0.bin");
    let names: Vec<String> = Messages::new(&links)
        .map(Result::unwrap)
        .map(|m| {
            let (_, a) = m.family_header::<IfInfoMsg>().unwrap();
            a.find(IFLA_IFNAME)
                .unwrap()
                .unwrap()
                .str()
                .unwrap()
                .to_owned()
        })
        .collect();
    for want in ["lo", "veth0", "veth1", "br0"] {
        assert!(names.iter().any(|n| n == want), "{names:?}");
    }

    let addrs = seed("kernel-addr-dump-0.bin");
    let ips: Vec<std::net::IpAddr> = Messages::new(&addrs)
        .map(Result::unwrap)
        .map(|m| {
            let (_, a) = m.family_header::<IfAddrMsg>().unwrap();
            a.find(IFA_ADDRESS).unwrap().unwrap().ip().unwrap()
        })
        .collect();
    assert!(ips.contains(&"10.10.0.1".parse().unwrap()), "{ips:?}");
    assert!(ips.contains(&"2001:db8:10::1".parse().unwrap()), "{ips:?}");

    let neigh = seed("kernel-neigh-dump-0.bin");
    let mut found = false;
    for m in Messages::new(&neigh).map(Result::unwrap) {
        if m.ty() != RTM_NEWNEIGH {
            continue;
        }
        let (_, a) = m.family_header::<NdMsg>().unwrap();
        if let Some(dst) = a.clone().find(NDA_DST) {
            if dst.unwrap().ip().unwrap() == "10.10.0.2".parse::<std::net::IpAddr>().unwrap() {
                let ll = a.find(NDA_LLADDR).unwrap().unwrap();
                assert_eq!(ll.bytes(), [2, 0, 0, 0, 0, 2]);
                found = true;
            }
        }
    }
    assert!(found);
}

#[test]
fn kernel_conntrack_dump() {
    let bytes = seed("kernel-ct-dump-0.bin");
    let mut sources = Vec::new();
    for m in Messages::new(&bytes).map(Result::unwrap) {
        assert_eq!(
            m.ty(),
            nfnl_msg_type(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_NEW)
        );
        let (nf, attrs) = m.family_header::<NfGenMsg>().unwrap();
        assert_eq!(nf.family, AF_INET);
        let orig = attrs.find(CTA_TUPLE_ORIG).unwrap().unwrap();
        let ip = orig.nested().find(CTA_TUPLE_IP).unwrap().unwrap();
        let src = ip
            .nested()
            .find(CTA_IP_V4_SRC)
            .unwrap()
            .unwrap()
            .ipv4()
            .unwrap();
        sources.push(src);
    }
    assert_eq!(sources.len(), 12);
    assert!(sources.contains(&"10.10.0.10".parse().unwrap()));
}

#[test]
fn kernel_error_with_ext_ack() {
    let bytes = seed("kernel-error-extack-0.bin");
    let msgs = messages("error-extack", &bytes);
    assert_eq!(msgs.len(), 1);
    let m = Messages::new(&bytes).next().unwrap().unwrap();
    let e = ErrorMsg::parse(&m).unwrap();
    assert_eq!(e.errno, 101); // ENETUNREACH
    assert!(!e.capped);
    assert_eq!(e.request.ty, RTM_NEWROUTE);
    assert_eq!(e.request_payload.len(), e.request.len as usize - 16);
    let (rt, _) = RtMsg::parse(e.request_payload).map(|h| (h, ())).unwrap();
    assert_eq!(rt.dst_len, 24);
    assert_eq!(e.ext.msg, Some("Nexthop has invalid gateway"));
    let k = e.to_error().unwrap();
    assert_eq!(k.to_string(), "Error: Nexthop has invalid gateway.");
}

#[test]
fn kernel_error_capped() {
    let bytes = seed("kernel-error-extack-capped-0.bin");
    let m = Messages::new(&bytes).next().unwrap().unwrap();
    let e = ErrorMsg::parse(&m).unwrap();
    assert!(e.capped);
    assert!(e.request_payload.is_empty());
    assert_eq!(e.request.len, 44);
    assert_eq!(
        e.to_error().unwrap().to_string(),
        "Error: Nexthop has invalid gateway."
    );
}

#[test]
fn kernel_policy_error() {
    let bytes = seed("kernel-error-policy-0.bin");
    let m = Messages::new(&bytes).next().unwrap().unwrap();
    let e = ErrorMsg::parse(&m).unwrap();
    assert_eq!(e.errno, 34); // ERANGE
    assert_eq!(e.ext.msg, Some("Attribute failed policy validation"));
    // The offset points at the 2-byte RTA_OIF in the echoed request (header included).
    let off = e.ext.offset.unwrap() as usize;
    let bad = Attrs::new(&e.request_payload[off - 16..])
        .next()
        .unwrap()
        .unwrap();
    assert_eq!((bad.ty(), bad.payload().len()), (RTA_OIF, 2));
    let policy = e.ext.policy.unwrap();
    assert!(Attrs::new(policy).validate().unwrap() > 0);
}

#[test]
fn kernel_missing_attribute_error() {
    let bytes = seed("kernel-error-miss-type-0.bin");
    let m = Messages::new(&bytes).next().unwrap().unwrap();
    let e = ErrorMsg::parse(&m).unwrap();
    assert_eq!(e.errno, 22);
    assert_eq!(e.ext.miss_type, Some(1));
    assert_eq!(e.ext.miss_nest, None);
    assert_eq!(
        e.to_error().unwrap().to_string(),
        "Error: Invalid argument. (missing attribute type 1)"
    );
}

#[test]
fn kernel_done_with_ext_ack() {
    let bytes = seed("kernel-done-extack-0.bin");
    let m = Messages::new(&bytes).next().unwrap().unwrap();
    let d = DoneMsg::parse(&m).unwrap();
    assert_eq!(d.errno, 22);
    assert_eq!(
        d.ext.msg,
        Some("Invalid values in header for FIB dump request")
    );
    assert_eq!(
        d.to_error().unwrap().to_string(),
        "Error: Invalid values in header for FIB dump request."
    );
}

#[test]
fn kernel_acks() {
    for name in ["kernel-ack-0.bin", "kernel-ct-create-ack-0.bin"] {
        let bytes = seed(name);
        let m = Messages::new(&bytes).next().unwrap().unwrap();
        let e = ErrorMsg::parse(&m).unwrap();
        assert!(e.is_ack() && e.capped, "{name}");
        assert!(e.to_error().is_none());
    }
    let bytes = seed("kernel-ct-error-0.bin");
    let m = Messages::new(&bytes).next().unwrap().unwrap();
    let e = ErrorMsg::parse(&m).unwrap();
    assert_eq!(e.errno, 22);
    assert!(!e.capped && e.ext.is_empty());
    assert_eq!(e.request_payload.len(), e.request.len as usize - 16);
}
