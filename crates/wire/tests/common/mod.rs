//! Hand-rolled wire bytes for tests, written independently of `MessageBuilder` so that the
//! parsers are checked against the layout itself, not against our own writer.
#![allow(dead_code)]

use nlkit_wire::{Message, Messages};

/// One `nlmsghdr` with `payload`, `nlmsg_len` exact (no trailing pad), seq 1, port id 0.
pub fn nlmsg(ty: u16, flags: u16, payload: &[u8]) -> Vec<u8> {
    nlmsg_len((16 + payload.len()) as u32, ty, flags, payload)
}

/// Like [`nlmsg`] but with an explicit (possibly wrong) `nlmsg_len`.
pub fn nlmsg_len(len: u32, ty: u16, flags: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&len.to_ne_bytes());
    v.extend_from_slice(&ty.to_ne_bytes());
    v.extend_from_slice(&flags.to_ne_bytes());
    v.extend_from_slice(&1u32.to_ne_bytes());
    v.extend_from_slice(&0u32.to_ne_bytes());
    v.extend_from_slice(payload);
    v
}

/// Pads `v` with zeros to a multiple of 4.
pub fn pad(mut v: Vec<u8>) -> Vec<u8> {
    while v.len() % 4 != 0 {
        v.push(0);
    }
    v
}

/// One attribute, padded to 4 bytes.
pub fn nla(ty: u16, payload: &[u8]) -> Vec<u8> {
    nla_len((4 + payload.len()) as u16, ty, payload)
}

/// An attribute with an explicit (possibly wrong) `nla_len`, padded to 4 bytes.
pub fn nla_len(len: u16, ty: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&len.to_ne_bytes());
    v.extend_from_slice(&ty.to_ne_bytes());
    v.extend_from_slice(payload);
    pad(v)
}

/// Concatenates byte strings.
pub fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// The first message of `buf`, which must parse.
pub fn first(buf: &[u8]) -> Message<'_> {
    Messages::new(buf)
        .next()
        .expect("no message")
        .expect("message does not parse")
}

/// The payload of an `NLMSG_ERROR`: error code, echoed request header (of a request whose
/// payload is `request_payload`), the echoed payload when `echo` is set, then `tlvs`.
pub fn nlmsgerr(code: i32, request_payload: &[u8], echo: bool, tlvs: &[u8]) -> Vec<u8> {
    let request = nlmsg(24, 0x405, request_payload);
    let mut v = code.to_ne_bytes().to_vec();
    if echo {
        v.extend_from_slice(&request);
    } else {
        v.extend_from_slice(&request[..16]);
    }
    let mut v = pad(v);
    v.extend_from_slice(tlvs);
    v
}
