//! Namespace ids (`ip netns set NAME ID`, `ip netns list-id`).

use nlkit_wire::consts::*;
use nlkit_wire::MessageBuilder;

use super::{Built, CHANGE, DUMP};
use crate::NetnsRef;

fn rtgenmsg(b: &mut MessageBuilder) {
    b.raw(&[AF_UNSPEC, 0, 0, 0]);
}

/// `RTM_GETNSID`: the id this namespace has assigned to `ns` (the reply's `NETNSA_NSID` is
/// negative when none is assigned).
///
/// ```
/// let mut b = nlkit_wire::MessageBuilder::new();
/// nlkit_route::request::get_nsid(&mut b, 1, nlkit_route::NetnsRef::Pid(1)).unwrap();
/// ```
pub fn get_nsid(b: &mut MessageBuilder, seq: u32, ns: NetnsRef) -> Built {
    b.begin(RTM_GETNSID, NLM_F_REQUEST, seq);
    rtgenmsg(b);
    ns.write_nsid_attr(b);
    b.finish()
}

/// `RTM_NEWNSID`: assigns id `nsid` to `ns` (`ip netns set NAME ID`; the kernel refuses an
/// id already in use or a namespace that already has one).
///
/// ```
/// let mut b = nlkit_wire::MessageBuilder::new();
/// nlkit_route::request::set_nsid(&mut b, 1, nlkit_route::NetnsRef::Pid(1), 5).unwrap();
/// ```
pub fn set_nsid(b: &mut MessageBuilder, seq: u32, ns: NetnsRef, nsid: i32) -> Built {
    b.begin(RTM_NEWNSID, CHANGE, seq);
    rtgenmsg(b);
    ns.write_nsid_attr(b);
    b.attr_bytes(NETNSA_NSID, &nsid.to_ne_bytes());
    b.finish()
}

/// `RTM_GETNSID` dump: every id assigned in this namespace (`ip netns list-id`).
///
/// ```
/// let mut b = nlkit_wire::MessageBuilder::new();
/// nlkit_route::request::dump_nsids(&mut b, 1).unwrap();
/// ```
pub fn dump_nsids(b: &mut MessageBuilder, seq: u32) -> Built {
    b.begin(RTM_GETNSID, DUMP, seq);
    rtgenmsg(b);
    b.finish()
}
