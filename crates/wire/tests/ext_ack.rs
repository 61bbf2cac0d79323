//! Extended acks decoded on errors, on acks (warnings) and on `NLMSG_DONE`; capped and uncapped
//! echoes; unknown TLVs; and `Display` the way iproute2 prints kernel errors.

mod common;

use common::*;
use nlkit_wire::consts::*;
use nlkit_wire::{DoneMsg, ErrorMsg, ExtAck, KernelError};

/// One TLV of each kind the kernel sends, with the values the tests expect.
fn each_tlv() -> Vec<(&'static str, Vec<u8>, ExtAck<'static>)> {
    vec![
        (
            "MSG",
            nla(NLMSGERR_ATTR_MSG, b"Nexthop has invalid gateway\0"),
            ExtAck {
                msg: Some("Nexthop has invalid gateway"),
                ..Default::default()
            },
        ),
        (
            "OFFS",
            nla(NLMSGERR_ATTR_OFFS, &36u32.to_ne_bytes()),
            ExtAck {
                offset: Some(36),
                ..Default::default()
            },
        ),
        (
            "COOKIE",
            nla(NLMSGERR_ATTR_COOKIE, &[1, 2, 3, 4, 5, 6, 7]),
            ExtAck {
                cookie: Some(&[1, 2, 3, 4, 5, 6, 7]),
                ..Default::default()
            },
        ),
        (
            "POLICY",
            nla(
                NLMSGERR_ATTR_POLICY | NLA_F_NESTED,
                &[8, 0, 1, 0, 3, 0, 0, 0],
            ),
            ExtAck {
                policy: Some(&[8, 0, 1, 0, 3, 0, 0, 0]),
                ..Default::default()
            },
        ),
        (
            "MISS_TYPE",
            nla(NLMSGERR_ATTR_MISS_TYPE, &5u32.to_ne_bytes()),
            ExtAck {
                miss_type: Some(5),
                ..Default::default()
            },
        ),
        (
            "MISS_NEST",
            nla(NLMSGERR_ATTR_MISS_NEST, &20u32.to_ne_bytes()),
            ExtAck {
                miss_nest: Some(20),
                ..Default::default()
            },
        ),
    ]
}

fn all_tlvs() -> (Vec<u8>, ExtAck<'static>) {
    let mut bytes = Vec::new();
    let mut want = ExtAck::default();
    for (_, b, e) in each_tlv() {
        bytes.extend_from_slice(&b);
        want.msg = want.msg.or(e.msg);
        want.offset = want.offset.or(e.offset);
        want.cookie = want.cookie.or(e.cookie);
        want.policy = want.policy.or(e.policy);
        want.miss_type = want.miss_type.or(e.miss_type);
        want.miss_nest = want.miss_nest.or(e.miss_nest);
    }
    (bytes, want)
}

#[test]
fn each_tlv_on_an_error() {
    for (name, tlv, want) in each_tlv() {
        let buf = nlmsg(
            NLMSG_ERROR,
            NLM_F_CAPPED | NLM_F_ACK_TLVS,
            &nlmsgerr(-22, &[0; 12], false, &tlv),
        );
        let e = ErrorMsg::parse(&first(&buf)).unwrap();
        assert_eq!(e.errno, 22, "{name}");
        assert!(!e.is_ack());
        assert_eq!(e.ext, want, "{name}");
        assert_eq!(e.warning(), None);
        let k = e.to_error().unwrap();
        assert_eq!(k.errno, 22);
        assert_eq!(k.msg.as_deref(), want.msg);
        assert_eq!(k.offset, want.offset);
        assert_eq!(k.cookie.as_deref(), want.cookie);
        assert_eq!(k.miss_type, want.miss_type);
        assert_eq!(k.miss_nest, want.miss_nest);
        assert_eq!(k.io_error().raw_os_error(), Some(22));
    }
}

#[test]
fn all_tlvs_on_an_error() {
    let (tlvs, want) = all_tlvs();
    let buf = nlmsg(
        NLMSG_ERROR,
        NLM_F_ACK_TLVS,
        &nlmsgerr(-101, &[9; 8], true, &tlvs),
    );
    let e = ErrorMsg::parse(&first(&buf)).unwrap();
    assert_eq!(e.ext, want);
    assert_eq!(
        e.to_error().unwrap().to_string(),
        "Error: Nexthop has invalid gateway. (missing attribute type 5)"
    );
}

#[test]
fn each_tlv_on_an_ack_is_a_warning() {
    for (name, tlv, want) in each_tlv() {
        let buf = nlmsg(
            NLMSG_ERROR,
            NLM_F_CAPPED | NLM_F_ACK_TLVS,
            &nlmsgerr(0, &[], false, &tlv),
        );
        let e = ErrorMsg::parse(&first(&buf)).unwrap();
        assert!(e.is_ack(), "{name}");
        assert_eq!(e.ext, want, "{name}");
        assert!(e.to_error().is_none());
        assert_eq!(e.warning(), want.msg);
    }
}

#[test]
fn each_tlv_on_done() {
    for (name, tlv, want) in each_tlv() {
        let payload = cat(&[&(-95i32).to_ne_bytes(), &tlv]);
        let buf = nlmsg(NLMSG_DONE, NLM_F_MULTI | NLM_F_ACK_TLVS, &payload);
        let d = DoneMsg::parse(&first(&buf)).unwrap();
        assert_eq!(d.errno, 95, "{name}");
        assert_eq!(d.ext, want, "{name}");
        assert!(!d.interrupted);
        let k = d.to_error().unwrap();
        assert_eq!(k.msg.as_deref(), want.msg);
    }
    // A successful DONE may carry a message too (a dump warning).
    let (tlvs, want) = all_tlvs();
    let payload = cat(&[&0i32.to_ne_bytes(), &tlvs]);
    let buf = nlmsg(
        NLMSG_DONE,
        NLM_F_MULTI | NLM_F_ACK_TLVS | NLM_F_DUMP_INTR,
        &payload,
    );
    let d = DoneMsg::parse(&first(&buf)).unwrap();
    assert_eq!((d.errno, d.ext, d.interrupted), (0, want, true));
    assert!(d.to_error().is_none());
}

#[test]
fn done_tlvs_ignored_without_the_flag() {
    let (tlvs, _) = all_tlvs();
    let payload = cat(&[&(-22i32).to_ne_bytes(), &tlvs]);
    let buf = nlmsg(NLMSG_DONE, NLM_F_MULTI, &payload);
    let d = DoneMsg::parse(&first(&buf)).unwrap();
    assert!(d.ext.is_empty());
    assert_eq!(
        d.to_error().unwrap().to_string(),
        "Error: Invalid argument."
    );
}

#[test]
fn uncapped_echo_is_skipped_before_the_tlvs() {
    // The echoed request payload is 5 bytes long (odd), and it contains bytes that look like
    // an ext-ack MSG TLV: the parser must skip exactly the echo, padded to 4, and read the
    // real TLVs after it.
    let decoy = [9, 0, 1, 0, b'x'];
    let real = nla(NLMSGERR_ATTR_MSG, b"real\0");
    let payload = nlmsgerr(-22, &decoy, true, &real);
    assert_eq!(payload.len(), 4 + 16 + 8 + 12);
    let buf = nlmsg(NLMSG_ERROR, NLM_F_ACK_TLVS, &payload);
    let e = ErrorMsg::parse(&first(&buf)).unwrap();
    assert!(!e.capped);
    assert_eq!(e.request.len, 21);
    assert_eq!(e.request.ty, 24);
    assert_eq!(e.request_payload, decoy);
    assert_eq!(e.ext.msg, Some("real"));
}

#[test]
fn capped_echo_has_only_the_header() {
    let real = nla(NLMSGERR_ATTR_MSG, b"real\0");
    // The header says the request had 5 payload bytes, but they were not echoed.
    let payload = nlmsgerr(-22, &[1, 2, 3, 4, 5], false, &real);
    let buf = nlmsg(NLMSG_ERROR, NLM_F_CAPPED | NLM_F_ACK_TLVS, &payload);
    let e = ErrorMsg::parse(&first(&buf)).unwrap();
    assert!(e.capped);
    assert_eq!(e.request.len, 21);
    assert!(e.request_payload.is_empty());
    assert_eq!(e.ext.msg, Some("real"));

    // Read as not capped, the same bytes put the TLV's first 5 bytes inside the echo, and the
    // TLV area starts at its zero padding: a zero-length attribute.
    let buf = nlmsg(NLMSG_ERROR, NLM_F_ACK_TLVS, &payload);
    let err = ErrorMsg::parse(&first(&buf)).unwrap_err();
    let want = nlkit_wire::WireError::AttrLength {
        ty: 0,
        len: 0,
        available: 4,
    };
    assert_eq!(err, want);
}

#[test]
fn ack_without_ext_ack() {
    let buf = nlmsg(
        NLMSG_ERROR,
        NLM_F_CAPPED,
        &nlmsgerr(0, &[0; 12], false, &[]),
    );
    let e = ErrorMsg::parse(&first(&buf)).unwrap();
    assert!(e.is_ack() && e.ext.is_empty() && e.warning().is_none());
    assert_eq!(e.request.seq, 1);
}

#[test]
fn unknown_tlvs_are_ignored() {
    let tlvs = cat(&[
        &nla(NLMSGERR_ATTR_UNUSED, &[1, 2, 3]),
        &nla(99, &[0xff; 5]),
        &nla(NLMSGERR_ATTR_MSG, b"known\0"),
        &nla(7 | NLA_F_NESTED, &nla(1, &[0; 9])),
        &nla(0x3fff, &[]),
        &nla(NLMSGERR_ATTR_OFFS, &44u32.to_ne_bytes()),
        &nla(1000, b"no nul, not checked"),
    ]);
    let ack = ExtAck::parse(&tlvs).unwrap();
    assert_eq!(ack.msg, Some("known"));
    assert_eq!(ack.offset, Some(44));
    assert_eq!((ack.cookie, ack.policy, ack.miss_type), (None, None, None));
    let only_unknown = cat(&[&nla(42, &[1]), &nla(43, &[])]);
    assert!(ExtAck::parse(&only_unknown).unwrap().is_empty());
}

#[test]
fn display_adds_one_period() {
    let with = |msg: &str| KernelError {
        errno: 22,
        msg: Some(msg.to_owned()),
        ..Default::default()
    };
    assert_eq!(
        with("Nexthop has invalid gateway").to_string(),
        "Error: Nexthop has invalid gateway."
    );
    assert_eq!(
        with("Nexthop has invalid gateway.").to_string(),
        "Error: Nexthop has invalid gateway."
    );
    // An empty message falls back to the errno's description.
    assert_eq!(with("").to_string(), "Error: Invalid argument.");
}

#[test]
fn display_without_a_message_uses_the_errno() {
    let e = |errno| KernelError {
        errno,
        ..Default::default()
    };
    assert_eq!(e(17).to_string(), "Error: File exists.");
    assert_eq!(e(2).to_string(), "Error: No such file or directory.");
    assert_eq!(e(101).to_string(), "Error: Network is unreachable.");
    // Nonsense codes still render (strerror's "Unknown error"), never panic.
    for errno in [-5, 0, 4095, i32::MAX, i32::MIN] {
        assert!(e(errno).to_string().starts_with("Error: "));
    }
}

#[test]
fn display_through_the_decoder() {
    let tlv = nla(NLMSGERR_ATTR_MSG, b"Nexthop has invalid gateway\0");
    let buf = nlmsg(
        NLMSG_ERROR,
        NLM_F_CAPPED | NLM_F_ACK_TLVS,
        &nlmsgerr(-101, &[], false, &tlv),
    );
    let k = ErrorMsg::parse(&first(&buf)).unwrap().to_error().unwrap();
    assert_eq!(k.to_string(), "Error: Nexthop has invalid gateway.");
    let as_dyn: &dyn std::error::Error = &k;
    assert_eq!(as_dyn.to_string(), k.to_string());
}

#[test]
fn odd_error_codes() {
    // The kernel sends a negative errno; anything else is decoded without a panic.
    for (code, errno) in [(5, -5), (i32::MIN, i32::MAX), (-1, 1)] {
        let buf = nlmsg(NLMSG_ERROR, NLM_F_CAPPED, &nlmsgerr(code, &[], false, &[]));
        let e = ErrorMsg::parse(&first(&buf)).unwrap();
        assert_eq!(e.errno, errno);
        assert!(e.to_error().unwrap().to_string().starts_with("Error: "));
    }
}
