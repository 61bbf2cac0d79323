//! Every malformed-input case gets the specific typed `WireError`, never a panic.

mod common;
// Typed getters: wrong sizes, `uint` sizes, bad strings.
#[path = "malformed/getters.rs"]
mod getters;

use common::*;
use nlkit_wire::consts::*;
use nlkit_wire::{
    Attrs, DoneMsg, ErrorMsg, FamilyHeader, GenlMsgHdr, IfAddrMsg, IfInfoMsg, Message,
    MessageHeader, Messages, NdMsg, NfGenMsg, RtMsg, WireError,
};

fn truncated(what: &'static str, needed: usize, available: usize) -> WireError {
    WireError::Truncated {
        what,
        needed,
        available,
    }
}

fn attr_len(ty: u16, len: u16, available: usize) -> WireError {
    WireError::AttrLength { ty, len, available }
}

fn attr_size(ty: u16, expected: &'static str, len: usize) -> WireError {
    WireError::AttrSize { ty, expected, len }
}

// ---- nlmsghdr ----------------------------------------------------------------------------

#[test]
fn empty_buffer_has_no_messages() {
    assert!(Messages::new(&[]).next().is_none());
}

#[test]
fn truncated_nlmsghdr() {
    let full = nlmsg(NLMSG_NOOP, 0, &[]);
    for n in 1..16 {
        let buf = &full[..n];
        let want = truncated("nlmsghdr", 16, n);
        let mut it = Messages::new(buf);
        assert_eq!(it.next().unwrap().unwrap_err(), want, "{n} bytes");
        assert!(it.next().is_none(), "iteration stops after an error");
        assert_eq!(MessageHeader::parse(buf).unwrap_err(), want);
        assert_eq!(Message::parse(buf).unwrap_err(), want);
    }
}

#[test]
fn truncated_nlmsghdr_after_a_good_message() {
    let buf = cat(&[&nlmsg(NLMSG_NOOP, 0, &[1, 2, 3, 4]), &[0u8; 9]]);
    let mut it = Messages::new(&buf);
    assert_eq!(it.next().unwrap().unwrap().payload(), [1, 2, 3, 4]);
    assert_eq!(
        it.next().unwrap().unwrap_err(),
        truncated("nlmsghdr", 16, 9)
    );
    assert!(it.next().is_none());
}

#[test]
fn nlmsg_len_below_header_size() {
    for len in [0u32, 1, 4, 15] {
        let buf = nlmsg_len(len, NLMSG_NOOP, 0, &[0; 8]);
        let want = WireError::MessageLength { len, available: 24 };
        let mut it = Messages::new(&buf);
        assert_eq!(it.next().unwrap().unwrap_err(), want, "nlmsg_len {len}");
        assert!(it.next().is_none(), "a zero length must not loop forever");
        assert_eq!(Message::parse(&buf).unwrap_err(), want);
    }
}

#[test]
fn nlmsg_len_past_the_buffer() {
    for len in [21u32, 100, 65536, u32::MAX] {
        let buf = nlmsg_len(len, RTM_NEWROUTE, NLM_F_MULTI, &[0; 4]);
        let want = WireError::MessageLength { len, available: 20 };
        assert_eq!(Messages::new(&buf).next().unwrap().unwrap_err(), want);
    }
}

#[test]
fn nlmsg_len_past_the_buffer_on_a_later_message() {
    let good = nlmsg(NLMSG_NOOP, 0, &[0; 4]);
    let bad = nlmsg_len(64, NLMSG_NOOP, 0, &[0; 4]);
    let buf = cat(&[&good, &good, &bad]);
    let items: Vec<_> = Messages::new(&buf).collect();
    assert_eq!(items.len(), 3);
    assert!(items[0].is_ok() && items[1].is_ok());
    let want = WireError::MessageLength {
        len: 64,
        available: 20,
    };
    assert_eq!(items[2].clone().unwrap_err(), want);
}

#[test]
fn unpadded_last_message_is_accepted() {
    // nlmsg_len 17 with no padding after it: the buffer ends inside the alignment.
    let buf = nlmsg(NLMSG_NOOP, 0, &[7]);
    assert_eq!(buf.len(), 17);
    let msgs: Vec<_> = Messages::new(&buf).map(Result::unwrap).collect();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].payload(), [7]);
}

// ---- attributes ----------------------------------------------------------------------------

#[test]
fn nla_len_below_attribute_header() {
    for len in 0u16..4 {
        let buf = nla_len(len, 5 | NLA_F_NESTED, &[]);
        let mut it = Attrs::new(&buf);
        assert_eq!(it.next().unwrap().unwrap_err(), attr_len(5, len, 4));
        assert!(it.next().is_none(), "a zero length must not loop forever");
    }
}

#[test]
fn attribute_past_its_parent() {
    let buf = nla_len(12, 2, &[1, 2, 3, 4]);
    assert_eq!(buf.len(), 8);
    assert_eq!(
        Attrs::new(&buf).next().unwrap().unwrap_err(),
        attr_len(2, 12, 8)
    );
}

#[test]
fn attribute_past_its_parent_after_good_ones() {
    let buf = cat(&[&nla(1, &7u32.to_ne_bytes()), &nla_len(200, 3, &[0; 8])]);
    let mut it = Attrs::new(&buf);
    assert_eq!(it.next().unwrap().unwrap().u32(), Ok(7));
    assert_eq!(it.next().unwrap().unwrap_err(), attr_len(3, 200, 12));
    assert!(it.next().is_none());
}

#[test]
fn attribute_past_its_message_even_when_the_buffer_goes_on() {
    // The first message's attribute claims 24 bytes but its message holds 8; the bytes after
    // it belong to the next message and must not be read as part of the attribute.
    let first_msg = nlmsg(NLMSG_NOOP, 0, &nla_len(24, 9, &[0; 4]));
    let buf = cat(&[&first_msg, &nlmsg(NLMSG_NOOP, 0, &[0; 16])]);
    let msgs: Vec<_> = Messages::new(&buf).map(Result::unwrap).collect();
    assert_eq!(msgs.len(), 2);
    assert_eq!(
        msgs[0].attrs(0).next().unwrap().unwrap_err(),
        attr_len(9, 24, 8)
    );
    assert_eq!(msgs[0].attrs(0).validate(), Err(attr_len(9, 24, 8)));
}

#[test]
fn short_tail_is_padding_not_an_error() {
    for tail in 1..4 {
        let buf = cat(&[&nla(1, &[1, 2, 3, 4]), &vec![0xee; tail]]);
        let attrs: Vec<_> = Attrs::new(&buf).collect();
        assert_eq!(attrs.len(), 1);
        assert!(attrs[0].is_ok());
    }
}

#[test]
fn nested_overrun() {
    // A nest of 12 bytes whose inner attribute claims 20: the inner one would fit in the
    // surrounding buffer, but it runs past the nest that contains it.
    let inner = nla_len(20, 4, &[0; 8]);
    let outer = nla_len(16, 1 | NLA_F_NESTED, &inner[..12]);
    let buf = cat(&[&outer, &nla(2, &[0; 16])]);
    let mut top = Attrs::new(&buf);
    let nest = top.next().unwrap().unwrap();
    assert!(nest.is_nested());
    assert_eq!(nest.payload().len(), 12);
    assert!(
        top.next().unwrap().is_ok(),
        "the sibling after the nest is intact"
    );
    assert_eq!(
        nest.nested().next().unwrap().unwrap_err(),
        attr_len(4, 20, 12)
    );
    assert_eq!(Attrs::new(&buf).validate(), Err(attr_len(4, 20, 12)));
    assert_eq!(
        nest.nested().find(4).unwrap().unwrap_err(),
        attr_len(4, 20, 12)
    );
}

#[test]
fn nested_overrun_three_levels_down() {
    let bad = nla_len(40, 7, &[0; 4]);
    let l3 = nla(3 | NLA_F_NESTED, &bad);
    let l2 = nla(2 | NLA_F_NESTED, &cat(&[&nla(9, &[1]), &l3]));
    let l1 = nla(1 | NLA_F_NESTED, &l2);
    let msg = nlmsg(RTM_NEWLINK, 0, &cat(&[&[0u8; 16], &l1]));
    let m = first(&msg);
    let (_, attrs) = m.family_header::<IfInfoMsg>().unwrap();
    assert_eq!(attrs.clone().validate(), Err(attr_len(7, 40, 8)));
    let a1 = attrs.find(1).unwrap().unwrap();
    let a2 = a1.nested().find(2).unwrap().unwrap();
    let a3 = a2.nested().find(3).unwrap().unwrap();
    assert_eq!(a3.nested().next().unwrap().unwrap_err(), attr_len(7, 40, 8));
}

#[test]
fn find_reports_a_malformed_attribute_before_the_one_sought() {
    let buf = cat(&[&nla(1, &[0; 4]), &nla_len(2, 2, &[])]);
    assert_eq!(
        Attrs::new(&buf).find(3).unwrap().unwrap_err(),
        attr_len(2, 2, 4)
    );
    assert!(Attrs::new(&buf).find(1).unwrap().is_ok());
}

#[test]
fn deep_nesting_does_not_exhaust_the_stack() {
    // One 64 KiB attribute holding 16,383 levels of NLA_F_NESTED nests. `validate` used to
    // recurse once per level and overflowed a 2 MiB test thread's stack.
    let levels = 16_383usize;
    let mut buf = Vec::with_capacity(levels * 4);
    for i in 0..levels {
        buf.extend_from_slice(&(((levels - i) * 4) as u16).to_ne_bytes());
        buf.extend_from_slice(&(1 | NLA_F_NESTED).to_ne_bytes());
    }
    assert_eq!(Attrs::new(&buf).validate(), Ok(levels));

    // The same, with the innermost level claiming more than its parent holds.
    let last = buf.len() - 4;
    buf[last..last + 2].copy_from_slice(&8u16.to_ne_bytes());
    assert_eq!(Attrs::new(&buf).validate(), Err(attr_len(1, 8, 4)));
    let report = nlkit_wire::fuzzing::parse_all(&buf);
    assert!(report.errors > 0);
}

// ---- family headers -----------------------------------------------------------------------

fn check_truncated_family_header<H: FamilyHeader + std::fmt::Debug>() {
    for n in 0..H::LEN {
        let buf = nlmsg(RTM_NEWROUTE, 0, &vec![0xab; n]);
        let m = first(&buf);
        let err = m.family_header::<H>().unwrap_err();
        assert_eq!(
            err,
            truncated(H::NAME, H::LEN, n),
            "{} with {n} bytes",
            H::NAME
        );
        assert_eq!(H::parse(&buf[16..]).unwrap_err(), err);
    }
    let buf = nlmsg(RTM_NEWROUTE, 0, &vec![0; H::LEN]);
    let (_, mut attrs) = first(&buf).family_header::<H>().unwrap();
    assert!(attrs.next().is_none());
}

#[test]
fn truncated_rtmsg() {
    check_truncated_family_header::<RtMsg>();
}

#[test]
fn truncated_ifinfomsg() {
    check_truncated_family_header::<IfInfoMsg>();
}

#[test]
fn truncated_ifaddrmsg() {
    check_truncated_family_header::<IfAddrMsg>();
}

#[test]
fn truncated_ndmsg() {
    check_truncated_family_header::<NdMsg>();
}

#[test]
fn truncated_nfgenmsg() {
    check_truncated_family_header::<NfGenMsg>();
}

#[test]
fn truncated_genlmsghdr() {
    check_truncated_family_header::<GenlMsgHdr>();
}

#[test]
fn family_header_errors_carry_the_c_name() {
    let names = [
        RtMsg::NAME,
        IfInfoMsg::NAME,
        IfAddrMsg::NAME,
        NdMsg::NAME,
        NfGenMsg::NAME,
        GenlMsgHdr::NAME,
    ];
    let want = [
        "rtmsg",
        "ifinfomsg",
        "ifaddrmsg",
        "ndmsg",
        "nfgenmsg",
        "genlmsghdr",
    ];
    assert_eq!(names, want);
    let e = RtMsg::parse(&[1, 2]).unwrap_err();
    assert_eq!(e.to_string(), "truncated rtmsg: need 12 bytes, have 2");
}

// ---- NLMSG_ERROR ----------------------------------------------------------------------------

#[test]
fn error_msg_rejects_other_types() {
    let buf = nlmsg(NLMSG_DONE, NLM_F_MULTI, &0i32.to_ne_bytes());
    let want = WireError::UnexpectedType {
        expected: NLMSG_ERROR,
        found: NLMSG_DONE,
    };
    assert_eq!(ErrorMsg::parse(&first(&buf)).unwrap_err(), want);
}

#[test]
fn error_msg_truncated_code() {
    for n in 0..4 {
        let buf = nlmsg(NLMSG_ERROR, 0, &[0xff; 3][..n]);
        let err = ErrorMsg::parse(&first(&buf)).unwrap_err();
        assert_eq!(err, truncated("nlmsgerr", 4, n));
    }
}

#[test]
fn error_msg_truncated_echoed_header() {
    let full = nlmsgerr(-22, &[], false, &[]);
    assert_eq!(full.len(), 20);
    for flags in [0, NLM_F_CAPPED] {
        for n in 4..20 {
            let buf = nlmsg(NLMSG_ERROR, flags, &full[..n]);
            let err = ErrorMsg::parse(&first(&buf)).unwrap_err();
            assert_eq!(
                err,
                truncated("nlmsghdr", 16, n - 4),
                "flags {flags:#x}, {n}"
            );
        }
    }
}

#[test]
fn error_msg_truncated_echoed_payload_when_not_capped() {
    // The request had 20 payload bytes; only 10 of them follow the echoed header.
    let full = nlmsgerr(-22, &[0x11; 20], true, &[]);
    let cut = &full[..30];
    let buf = nlmsg(NLMSG_ERROR, 0, cut);
    let err = ErrorMsg::parse(&first(&buf)).unwrap_err();
    assert_eq!(err, truncated("nlmsgerr echoed request", 40, 30));

    // With NLM_F_CAPPED the kernel did not echo the payload, so the same bytes are fine.
    let buf = nlmsg(NLMSG_ERROR, NLM_F_CAPPED, cut);
    let e = ErrorMsg::parse(&first(&buf)).unwrap();
    assert!(e.capped);
    assert!(e.request_payload.is_empty());
    assert_eq!((e.errno, e.request.len), (22, 36));
}

#[test]
fn error_msg_echoed_length_near_4_gib() {
    let mut payload = nlmsgerr(-1, &[], false, &[]);
    payload[4..8].copy_from_slice(&u32::MAX.to_ne_bytes());
    let buf = nlmsg(NLMSG_ERROR, 0, &payload);
    let err = ErrorMsg::parse(&first(&buf)).unwrap_err();
    assert!(
        matches!(
            err,
            WireError::Truncated {
                what: "nlmsgerr echoed request",
                available: 20,
                ..
            }
        ),
        "{err:?}"
    );
}

fn error_with_tlvs(tlvs: &[u8]) -> Result<(), WireError> {
    let buf = nlmsg(
        NLMSG_ERROR,
        NLM_F_CAPPED | NLM_F_ACK_TLVS,
        &nlmsgerr(-22, &[], false, tlvs),
    );
    ErrorMsg::parse(&first(&buf)).map(|_| ())
}

#[test]
fn ext_ack_tlv_length_errors() {
    assert_eq!(
        error_with_tlvs(&nla_len(2, NLMSGERR_ATTR_MSG, &[])),
        Err(attr_len(NLMSGERR_ATTR_MSG, 2, 4))
    );
    assert_eq!(
        error_with_tlvs(&nla_len(64, NLMSGERR_ATTR_OFFS, &[0; 4])),
        Err(attr_len(NLMSGERR_ATTR_OFFS, 64, 8))
    );
    // A bad TLV after a good one still fails the whole decode.
    let tlvs = cat(&[&nla(NLMSGERR_ATTR_MSG, b"x\0"), &nla_len(1, 99, &[])]);
    assert_eq!(error_with_tlvs(&tlvs), Err(attr_len(99, 1, 4)));
}

#[test]
fn ext_ack_tlv_value_errors() {
    let cases: [(Vec<u8>, WireError); 7] = [
        (
            nla(NLMSGERR_ATTR_MSG, b"no terminator"),
            WireError::BadString {
                ty: NLMSGERR_ATTR_MSG,
                reason: "string has no terminating NUL",
            },
        ),
        (
            nla(NLMSGERR_ATTR_MSG, b"\xff\xfe bad\0"),
            WireError::BadString {
                ty: NLMSGERR_ATTR_MSG,
                reason: "string is not UTF-8",
            },
        ),
        (
            nla(NLMSGERR_ATTR_OFFS, &[1, 0]),
            attr_size(NLMSGERR_ATTR_OFFS, "u32", 2),
        ),
        (
            nla(NLMSGERR_ATTR_OFFS, &[0; 8]),
            attr_size(NLMSGERR_ATTR_OFFS, "u32", 8),
        ),
        (
            nla(NLMSGERR_ATTR_MISS_TYPE, &[5]),
            attr_size(NLMSGERR_ATTR_MISS_TYPE, "u32", 1),
        ),
        (
            nla(NLMSGERR_ATTR_MISS_TYPE, &[]),
            attr_size(NLMSGERR_ATTR_MISS_TYPE, "u32", 0),
        ),
        (
            nla(NLMSGERR_ATTR_MISS_NEST, &[0; 6]),
            attr_size(NLMSGERR_ATTR_MISS_NEST, "u32", 6),
        ),
    ];
    for (tlvs, want) in cases {
        assert_eq!(error_with_tlvs(&tlvs), Err(want));
    }
}

#[test]
fn ext_ack_tlvs_ignored_without_the_flag() {
    // Garbage after the echoed header is not read as TLVs unless NLM_F_ACK_TLVS is set.
    let buf = nlmsg(
        NLMSG_ERROR,
        NLM_F_CAPPED,
        &nlmsgerr(-22, &[], false, &nla_len(1, 1, &[])),
    );
    let e = ErrorMsg::parse(&first(&buf)).unwrap();
    assert!(e.ext.is_empty());
}

// ---- NLMSG_DONE -----------------------------------------------------------------------------

#[test]
fn done_msg_rejects_other_types() {
    let buf = nlmsg(NLMSG_ERROR, 0, &nlmsgerr(0, &[], false, &[]));
    let want = WireError::UnexpectedType {
        expected: NLMSG_DONE,
        found: NLMSG_ERROR,
    };
    assert_eq!(DoneMsg::parse(&first(&buf)).unwrap_err(), want);
}

#[test]
fn done_msg_truncated_error_code() {
    for n in 1..4 {
        let buf = nlmsg(NLMSG_DONE, NLM_F_MULTI, &[0xff; 3][..n]);
        let err = DoneMsg::parse(&first(&buf)).unwrap_err();
        assert_eq!(err, truncated("nlmsg_done error code", 4, n));
    }
    // An empty payload (families that predate the error code) is a clean end of dump.
    let buf = nlmsg(NLMSG_DONE, NLM_F_MULTI, &[]);
    assert_eq!(DoneMsg::parse(&first(&buf)).unwrap().errno, 0);
}

#[test]
fn done_msg_with_bad_ext_ack() {
    let flags = NLM_F_MULTI | NLM_F_ACK_TLVS;
    let code = (-22i32).to_ne_bytes();
    let cases: [(Vec<u8>, WireError); 4] = [
        (
            nla_len(3, NLMSGERR_ATTR_MSG, &[]),
            attr_len(NLMSGERR_ATTR_MSG, 3, 4),
        ),
        (
            nla_len(32, NLMSGERR_ATTR_MSG, b"abc\0"),
            attr_len(NLMSGERR_ATTR_MSG, 32, 8),
        ),
        (
            nla(NLMSGERR_ATTR_MSG, b"abc"),
            WireError::BadString {
                ty: NLMSGERR_ATTR_MSG,
                reason: "string has no terminating NUL",
            },
        ),
        (
            nla(NLMSGERR_ATTR_OFFS, &[0; 2]),
            attr_size(NLMSGERR_ATTR_OFFS, "u32", 2),
        ),
    ];
    for (tlvs, want) in cases {
        let buf = nlmsg(NLMSG_DONE, flags, &cat(&[&code, &tlvs]));
        assert_eq!(DoneMsg::parse(&first(&buf)).unwrap_err(), want);
    }
}
