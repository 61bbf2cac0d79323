//! One function that drives every parser in this crate over arbitrary bytes.
//!
//! [`parse_all`] is the whole body of the `parse` cargo-fuzz target (`fuzz/` at the top of the
//! repository) and of the test that replays the fuzz corpus (`tests/corpus.rs`), so the fuzzer
//! and the ordinary test suite always exercise the same code. It reads the bytes every way this
//! crate can: as a buffer of messages, each message's payload as bare attributes and after each
//! family header, as `NLMSG_ERROR` and `NLMSG_DONE` (with extended acks, rendered through
//! `Display`), every attribute through every typed getter and as a nest, and the raw bytes as
//! one message, one family header of each kind, one attribute list and one set of ext-ack TLVs.
//!
//! Parse errors are the expected outcome for most arbitrary input and are only counted. The
//! function panics only when a parser breaks one of its own promises (for example a `u32`
//! getter that accepts a 3-byte payload, or a builder round trip that does not give back the
//! attributes it was fed): such a panic is a bug in this crate, which is what a fuzzer looks for.

use crate::consts::{NLMSG_DONE, NLMSG_ERROR};
use crate::{
    Attr, Attrs, DoneMsg, ErrorMsg, ExtAck, FamilyHeader, FibRuleHdr, GenlMsgHdr, IfAddrMsg,
    IfInfoMsg, Message, MessageBuilder, MessageHeader, Messages, NdMsg, NfGenMsg, NhMsg, RtMsg,
    WireError, NLA_HDRLEN, NLMSG_HDRLEN,
};

/// How deep [`parse_all`] descends when it reads attribute payloads as nests. Every level
/// costs at least one 4-byte header, so real kernel messages stay far shallower; the bound keeps
/// the fuzzer's work per input roughly linear. ([`Attrs::validate`] itself has no depth limit.)
pub const MAX_WALK_DEPTH: usize = 32;

/// What [`parse_all`] saw: counts only, so that callers (and the optimizer) cannot ignore the
/// work and tests can check that real kernel dumps were actually understood.
///
/// ```
/// let r = nlkit_wire::fuzzing::parse_all(&[]);
/// assert_eq!((r.messages, r.attrs), (0, 0));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ParseReport {
    /// Messages that [`Messages`] yielded without error.
    pub messages: usize,
    /// Whether [`Messages`] stopped at a malformed message.
    pub message_error: bool,
    /// Attributes yielded without error, under every interpretation and at every depth.
    pub attrs: usize,
    /// `NLMSG_ERROR` and `NLMSG_DONE` messages decoded without error.
    pub control: usize,
    /// Typed errors returned by any parser (expected for most arbitrary input).
    pub errors: usize,
    /// Which kinds of [`WireError`] were rendered through `Display` (a bit per kind).
    rendered: u8,
}

impl ParseReport {
    fn note<T>(&mut self, r: Result<T, WireError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.error(&e);
                None
            }
        }
    }

    fn error(&mut self, e: &WireError) {
        // Rendering must work for every error; rendering each of thousands of expected getter
        // failures would dominate the fuzzer's time, so render the first of each kind.
        let kind = match e {
            WireError::Truncated { .. } => 1,
            WireError::MessageLength { .. } => 2,
            WireError::AttrLength { .. } => 4,
            WireError::AttrSize { .. } => 8,
            WireError::BadString { .. } => 16,
            WireError::UnexpectedType { .. } => 32,
            WireError::Build(_) => 64,
        };
        if self.rendered & kind == 0 {
            self.rendered |= kind;
            assert!(!e.to_string().is_empty());
        }
        self.errors += 1;
    }
}

/// Runs every parser in this crate over `bytes` and returns what it saw. Never panics on any
/// input unless a parser breaks its own contract (see the [module docs](self)).
///
/// ```
/// use nlkit_wire::{consts::*, fuzzing::parse_all, MessageBuilder, RtMsg};
/// let mut b = MessageBuilder::new();
/// b.begin(RTM_NEWROUTE, NLM_F_MULTI, 1);
/// b.header(&RtMsg { family: AF_INET, dst_len: 8, ..Default::default() });
/// b.attr_bytes(RTA_DST, &[10, 0, 0, 0]);
/// b.finish().unwrap();
/// let r = parse_all(b.as_bytes());
/// assert_eq!(r.messages, 1);
/// assert!(!r.message_error);
///
/// // Garbage is reported, not a panic.
/// assert!(parse_all(&[0xff; 7]).errors > 0);
/// ```
pub fn parse_all(bytes: &[u8]) -> ParseReport {
    let mut r = ParseReport::default();

    // The buffer as a sequence of messages.
    let mut it = Messages::new(bytes);
    let mut consumed = 0usize;
    loop {
        let before = it.remaining().len();
        let Some(m) = it.next() else { break };
        match m {
            Ok(m) => {
                r.messages += 1;
                let at = bytes.len() - before;
                assert_eq!(m.bytes(), &bytes[at..at + m.len()], "a message view moved");
                consumed += before - it.remaining().len();
                message(&m, &mut r);
            }
            Err(e) => {
                assert!(it.next().is_none(), "Messages went on after an error");
                r.message_error = true;
                r.error(&e);
            }
        }
    }
    assert!(consumed <= bytes.len());

    // The raw bytes read as each single structure.
    r.note(MessageHeader::parse(bytes));
    if let Some((m, used)) = r.note(Message::parse(bytes)) {
        assert!(used >= NLMSG_HDRLEN && used <= bytes.len());
        assert_eq!(m.len(), m.header().len as usize);
    }
    family_headers(bytes, &mut r);
    walk(Attrs::new(bytes), &mut r);
    r.note(Attrs::new(bytes).validate());
    if let Some(ack) = r.note(ExtAck::parse(bytes)) {
        let _ = ack.is_empty();
    }

    // Sequence stamping walks the same bytes with its own loop.
    let mut b = MessageBuilder::with_capacity(bytes.len() + 4);
    b.raw(bytes);
    let _ = b.stamp_seq(1);
    assert_eq!(
        b.len(),
        crate::align(bytes.len()),
        "stamp_seq changed the length"
    );

    r
}

/// Every interpretation of one message.
fn message(m: &Message<'_>, r: &mut ParseReport) {
    let h = m.header();
    assert_eq!(m.len(), h.len as usize);
    assert_eq!(m.payload().len() + NLMSG_HDRLEN, m.len());
    assert_eq!(
        (m.ty(), m.flags(), m.seq(), m.pid()),
        (h.ty, h.flags, h.seq, h.pid)
    );
    assert_eq!(m.is_empty(), m.payload().is_empty());

    walk(m.attrs(0), r);
    if let Some(n) = r.note(m.attrs(0).validate()) {
        rebuild(m, n, r);
    }
    if let Some(found) = m.attrs(0).find(1) {
        r.note(found);
    }
    header_then_attrs::<RtMsg>(m, r);
    header_then_attrs::<IfInfoMsg>(m, r);
    header_then_attrs::<IfAddrMsg>(m, r);
    header_then_attrs::<NdMsg>(m, r);
    header_then_attrs::<NfGenMsg>(m, r);
    header_then_attrs::<GenlMsgHdr>(m, r);
    header_then_attrs::<NhMsg>(m, r);
    header_then_attrs::<FibRuleHdr>(m, r);

    match ErrorMsg::parse(m) {
        Ok(e) => {
            assert_eq!(m.ty(), NLMSG_ERROR);
            r.control += 1;
            if e.capped {
                assert!(e.request_payload.is_empty());
            } else {
                let echoed = (e.request.len as usize).saturating_sub(NLMSG_HDRLEN);
                assert_eq!(e.request_payload.len(), echoed);
            }
            assert_eq!(e.is_ack(), e.errno == 0);
            assert!(e.warning().is_none() || e.is_ack());
            match e.to_error() {
                Some(k) => {
                    assert!(k.to_string().starts_with("Error: "));
                    let _ = k.io_error();
                }
                None => assert!(e.is_ack()),
            }
        }
        Err(e) => {
            if m.ty() != NLMSG_ERROR {
                assert!(matches!(e, WireError::UnexpectedType { .. }));
            }
            r.error(&e);
        }
    }
    match DoneMsg::parse(m) {
        Ok(d) => {
            assert_eq!(m.ty(), NLMSG_DONE);
            r.control += 1;
            if let Some(k) = d.to_error() {
                assert!(k.to_string().starts_with("Error: "));
            }
        }
        Err(e) => r.error(&e),
    }
}

/// The family header `H` at the start of the payload, then the attributes after it.
fn header_then_attrs<H: FamilyHeader>(m: &Message<'_>, r: &mut ParseReport) {
    if let Some((_, attrs)) = r.note(m.family_header::<H>()) {
        walk(attrs, r);
    }
}

/// Each family header read from the start of `bytes`, checked against its writer.
fn family_headers(bytes: &[u8], r: &mut ParseReport) {
    fn one<H: FamilyHeader + PartialEq + std::fmt::Debug>(bytes: &[u8], r: &mut ParseReport) {
        match H::parse(bytes) {
            Ok(h) => {
                assert!(bytes.len() >= H::LEN);
                let mut out = vec![0u8; H::LEN];
                h.write(&mut out);
                assert_eq!(H::parse(&out), Ok(h), "{} does not round trip", H::NAME);
            }
            Err(e) => {
                assert!(bytes.len() < H::LEN);
                r.error(&e);
            }
        }
    }
    one::<RtMsg>(bytes, r);
    one::<IfInfoMsg>(bytes, r);
    one::<IfAddrMsg>(bytes, r);
    one::<NdMsg>(bytes, r);
    one::<NfGenMsg>(bytes, r);
    one::<GenlMsgHdr>(bytes, r);
    one::<NhMsg>(bytes, r);
    one::<FibRuleHdr>(bytes, r);
}

/// Walks an attribute list, calling every getter on every attribute and reading every payload
/// as a nest, down to [`MAX_WALK_DEPTH`]. Iterative, so deep input cannot exhaust the stack.
fn walk<'a>(attrs: Attrs<'a>, r: &mut ParseReport) {
    let mut stack: Vec<Attrs<'a>> = vec![attrs];
    while let Some(top) = stack.last_mut() {
        match top.next() {
            None => {
                stack.pop();
            }
            Some(Err(e)) => {
                assert!(top.next().is_none(), "Attrs went on after an error");
                r.error(&e);
            }
            Some(Ok(a)) => {
                r.attrs += 1;
                getters(&a, r);
                if stack.len() <= MAX_WALK_DEPTH {
                    stack.push(a.nested());
                }
            }
        }
    }
}

/// Every typed getter on one attribute, each checked against the payload length it promises.
fn getters(a: &Attr<'_>, r: &mut ParseReport) {
    let p = a.payload();
    let n = p.len();
    assert_eq!(a.bytes(), p);
    assert_eq!(a.ty(), a.raw_ty() & crate::consts::NLA_TYPE_MASK);
    let _ = (a.is_nested(), a.is_net_byteorder());

    fn sized<T>(r: &mut ParseReport, got: Result<T, WireError>, ok: bool) {
        assert_eq!(
            got.is_ok(),
            ok,
            "a getter disagreed with the payload length"
        );
        r.note(got);
    }
    sized(r, a.u8(), n == 1);
    sized(r, a.u16(), n == 2);
    sized(r, a.u32(), n == 4);
    sized(r, a.u64(), n == 8);
    sized(r, a.i32(), n == 4);
    sized(r, a.be16(), n == 2);
    sized(r, a.be32(), n == 4);
    sized(r, a.be64(), n == 8);
    sized(r, a.uint(), matches!(n, 1 | 2 | 4 | 8));
    sized(r, a.ipv4(), n == 4);
    sized(r, a.ipv6(), n == 16);
    sized(r, a.ip(), n == 4 || n == 16);
    for k in [0, 4, 8, 16, n, n + 1] {
        sized(r, a.prefix(k), k <= n);
    }
    if let Some(s) = r.note(a.str()) {
        assert!(s.len() < n && p[s.len()] == 0, "str() ignored its NUL");
    }
}

/// Rebuilds a message whose attributes (from payload offset 0) all parsed, with the same
/// header, and checks that the copy parses to the same top-level attributes.
fn rebuild(m: &Message<'_>, count: usize, r: &mut ParseReport) {
    let mut b = MessageBuilder::with_capacity(m.len());
    b.begin(m.ty(), m.flags(), m.seq());
    let mut top = 0;
    for a in m.attrs(0).flatten() {
        b.attr_bytes(a.raw_ty(), a.payload());
        top += 1;
    }
    assert!(top <= count);
    let Some(range) = r.note(b.finish()) else {
        return;
    };
    let copy = &b.as_bytes()[range];
    let (c, _) = Message::parse(copy).expect("a rebuilt message does not parse");
    let same = m
        .attrs(0)
        .flatten()
        .zip(c.attrs(0).flatten())
        .all(|(x, y)| x.raw_ty() == y.raw_ty() && x.payload() == y.payload());
    assert!(same, "a rebuilt message has different attributes");
    assert_eq!(c.attrs(0).count(), top);
    assert!(copy.len() <= NLMSG_HDRLEN + m.payload().len() + NLA_HDRLEN);
}
