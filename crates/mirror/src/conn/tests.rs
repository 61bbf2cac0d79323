//! Unit tests of the conntrack store.
use super::*;
use nlkit_wire::consts::*;
use nlkit_wire::{MessageBuilder, NfGenMsg};

#[test]
fn merge_keeps_missing_attributes() {
    let mut b = MessageBuilder::new();
    b.begin(
        nfnl_msg_type(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_NEW),
        0,
        0,
    );
    b.header(&NfGenMsg::default());
    b.attr_be32(CTA_TIMEOUT, 30);
    b.attr_be32(CTA_MARK, 5);
    b.finish().unwrap();
    let old = b.as_bytes().to_vec();
    b.clear();
    b.begin(
        nfnl_msg_type(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_NEW),
        0,
        0,
    );
    b.header(&NfGenMsg::default());
    b.attr_be32(CTA_TIMEOUT, 60);
    b.finish().unwrap();
    let m = merge(b.as_bytes(), &old);
    let (msg, _) = Message::parse(&m).unwrap();
    let (_, attrs) = msg.family_header::<NfGenMsg>().unwrap();
    let got: Vec<(u16, u32)> = attrs
        .map(|a| a.unwrap())
        .map(|a| (a.ty(), a.be32().unwrap()))
        .collect();
    assert_eq!(got, vec![(CTA_TIMEOUT, 60), (CTA_MARK, 5)]);
}

fn ct_msg(attrs: &[(u16, u32)]) -> Vec<u8> {
    let mut b = MessageBuilder::new();
    b.begin(
        nfnl_msg_type(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_NEW),
        0,
        0,
    );
    b.header(&NfGenMsg::default());
    for &(ty, v) in attrs {
        b.attr_be32(ty, v);
    }
    b.finish().unwrap();
    b.as_bytes().to_vec()
}

#[test]
fn a_dump_adding_use_and_zero_mark_is_no_change() {
    // A kernel NEW event: status and timeout, no CTA_USE, no zero CTA_MARK.
    let event = ct_msg(&[(CTA_STATUS, 8), (CTA_TIMEOUT, 30)]);
    // The verification dump's message for the same connection.
    let dump = ct_msg(&[
        (CTA_STATUS, 8),
        (CTA_TIMEOUT, 29),
        (CTA_MARK, 0),
        (CTA_USE, 1),
    ]);
    assert!(same_connection(&event, &dump));
    // A real change: a mark set, or another status.
    assert!(!same_connection(
        &event,
        &ct_msg(&[(CTA_STATUS, 8), (CTA_MARK, 5)])
    ));
    assert!(!same_connection(
        &event,
        &ct_msg(&[(CTA_STATUS, 10), (CTA_USE, 1)])
    ));
    // Bytes that are no message are never "the same".
    assert!(!same_connection(&event, &[1, 2, 3]));
}

/// A ctnetlink message for a TCP connection from port `sport`, with a timeout.
fn tcp_msg(sport: u16, timeout: u32) -> Vec<u8> {
    let mut b = MessageBuilder::new();
    nlkit_conntrack::request::begin(&mut b, IPCTNL_MSG_CT_NEW, 0, 0, AF_INET);
    let (a, c) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
    let t = nlkit_conntrack::Tuple::with_ports(IPPROTO_TCP, a, sport, c, 80);
    t.write(&mut b, CTA_TUPLE_ORIG);
    t.reversed().write(&mut b, CTA_TUPLE_REPLY);
    b.attr_be32(CTA_TIMEOUT, timeout);
    b.finish().unwrap();
    b.as_bytes().to_vec()
}

fn first(b: &[u8]) -> Message<'_> {
    Message::parse(b).unwrap().0
}

#[test]
fn silent_flag_set_by_marked_dumps_cleared_by_events() {
    let ct = CtStore::new(1024).unwrap();
    let (m1, m2) = (tcp_msg(1000, 30), tcp_msg(1001, 30));
    ct.set_dump_marks_silent(true);
    assert!(ct.insert_dump(&first(&m1), 1));
    assert!(ct.insert_dump(&first(&m2), 1));
    assert_eq!(ct.silent_count(), 2);
    ct.set_dump_marks_silent(false);
    // A later dump (changed timeout) keeps the flag, and the timeout offset is intact.
    let m1b = tcp_msg(1000, 20);
    ct.insert_dump(&first(&m1b), 2);
    assert_eq!(ct.silent_count(), 2);
    let t = ct_info(&first(&m1)).unwrap().original;
    let mut got = Vec::new();
    assert!(ct.get_into(&t, &mut got));
    assert_eq!(got, m1b);
    let w = ct.map.lock();
    let slot = w.find(0, &t.to_words()).unwrap();
    let off = usize::from(CtAux::from_word(w.aux(slot)).timeout_off);
    drop(w);
    assert_eq!(&m1b[off..off + 4], &20u32.to_be_bytes());
    // An event clears it; the stored message is the event's.
    ct.upsert(&first(&m1), 3, false);
    assert_eq!(ct.silent_count(), 1);
    assert!(ct.any_silent());
    let mut out = Vec::new();
    assert!(ct.get_into(&t, &mut out));
    assert_eq!(out, m1);
    ct.upsert(&first(&m2), 3, true);
    assert!(!ct.any_silent());
    // A dump while not marking inserts unflagged connections.
    assert!(ct.insert_dump(&first(&tcp_msg(1002, 30)), 4));
    assert_eq!(ct.silent_count(), 0);
}

#[test]
fn either_tuple_finds_removes_and_sweeps() {
    let ct = CtStore::new(64).unwrap();
    let (m1, m2) = (tcp_msg(2000, 30), tcp_msg(2001, 30));
    assert!(ct.insert_dump(&first(&m1), 1));
    assert!(ct.upsert(&first(&m2), 2, false));
    let i1 = ct_info(&first(&m1)).unwrap();
    let reply = i1.reply.unwrap();
    let mut out = Vec::new();
    assert!(ct.get_into(&reply, &mut out), "by its reply tuple");
    assert_eq!(out, m1);
    // The same message again is no change; a changed timeout alone is not reported.
    let before = ct.seq.changes();
    assert!(!ct.upsert(&first(&m1), 2, false));
    assert_eq!(ct.seq.changes(), before);
    assert!(!ct.upsert(&first(&tcp_msg(2000, 10)), 2, false));
    let mut seen = Vec::new();
    ct.for_each(|o, msg| {
        seen.push((o.src_port, msg.len()));
        true
    });
    seen.sort_unstable();
    assert_eq!(seen, [(2000, m1.len()), (2001, m2.len())]);
    // m1 was confirmed at 2 too: a sweep at 2 keeps both, at 3 none.
    assert!(ct.unconfirmed(2).is_empty());
    assert!(ct.remove(&reply), "removed by its reply tuple");
    assert!(!ct.get_into(&i1.original, &mut out));
    assert_eq!(ct.len(), 1);
    assert_eq!(ct.unconfirmed(3).len(), 1);
    assert_eq!(ct.sweep(3), 1);
    assert!(ct.is_empty());
    assert!(ct.memory_bytes() > 0);
}
