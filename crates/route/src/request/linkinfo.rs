//! Creating and changing links of any kind (`ip link add … type KIND`, `ip link set`).

use nlkit_wire::consts::*;
use nlkit_wire::{IfInfoMsg, MessageBuilder};

use super::{Built, CHANGE};
use crate::LinkSpec;

/// `RTM_NEWLINK` with `NLM_F_CREATE | NLM_F_EXCL`: creates `spec` (`ip link add`). The spec
/// needs a name and a kind.
///
/// ```
/// use nlkit_route::{request, BridgeOpts, LinkKind, LinkSpec};
/// let mut b = nlkit_wire::MessageBuilder::new();
/// request::add_link(&mut b, 1, &LinkSpec::new("br0", LinkKind::Bridge(BridgeOpts::default()))).unwrap();
/// ```
pub fn add_link(b: &mut MessageBuilder, seq: u32, spec: &LinkSpec) -> Built {
    let (flags, change) = spec.flags();
    b.begin(RTM_NEWLINK, CHANGE | NLM_F_CREATE | NLM_F_EXCL, seq);
    b.header(&IfInfoMsg {
        family: AF_UNSPEC,
        flags,
        change,
        ..Default::default()
    });
    spec.write_attrs(b);
    b.finish()
}

/// `RTM_NEWLINK` without create flags: applies the fields set in `spec` to link `index`
/// (`ip link set DEV name N address A alias T txqueuelen N mtu N master M|nomaster netns NS
/// up|down`, and `type KIND …` options). A name in `spec` renames the link.
///
/// ```
/// use nlkit_route::{request, LinkSpec};
/// let mut b = nlkit_wire::MessageBuilder::new();
/// let change = LinkSpec { master: Some(0), up: Some(true), ..Default::default() };
/// request::set_link(&mut b, 1, 5, &change).unwrap();
/// ```
pub fn set_link(b: &mut MessageBuilder, seq: u32, index: u32, spec: &LinkSpec) -> Built {
    let (flags, change) = spec.flags();
    b.begin(RTM_NEWLINK, CHANGE, seq);
    b.header(&IfInfoMsg {
        family: AF_UNSPEC,
        index: index as i32,
        flags,
        change,
        ..Default::default()
    });
    spec.write_attrs(b);
    b.finish()
}
