//! `ip neigh show` text and `ip -j neigh` JSON.

use std::fmt;

use nlkit_wire::consts::*;
use serde::ser::SerializeMap;

use super::{name_list, LinkNames, Mac};
use crate::names;
use crate::NeighView;

const NEIGH_FLAGS: &[(u8, &str)] = &[
    (NTF_ROUTER, "router"),
    (NTF_PROXY, "proxy"),
    (NTF_EXT_LEARNED, "extern_learn"),
    (NTF_OFFLOADED, "offload"),
];

fn state_names(state: u16) -> impl Iterator<Item = &'static str> {
    let none = (state == NUD_NONE).then_some("NONE");
    none.into_iter().chain(
        names::NUD_STATES
            .iter()
            .filter(move |(b, _)| state & b != 0)
            .map(|e| e.1),
    )
}

/// `ip neigh show` text for one entry; see [`neigh_text`].
#[derive(Debug, Clone, Copy)]
pub struct NeighText<'v, 'a, 'n> {
    neigh: &'v NeighView<'a>,
    names: &'n LinkNames,
    show_dev: bool,
}

/// Formats a neighbour like `ip neigh show` (with iproute2's trailing space, no newline).
///
/// ```
/// # use nlkit_wire::{consts::*, MessageBuilder, Messages};
/// # use nlkit_route::{fmt::*, request, NeighView, Neighbour};
/// let n = Neighbour::new(3, "10.0.0.2".parse().unwrap())
///     .lladdr(&[0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]).state(NUD_REACHABLE);
/// let mut b = MessageBuilder::new();
/// request::add_neigh(&mut b, 1, &n, false).unwrap();
/// let m = Messages::new(b.as_bytes()).next().unwrap().unwrap();
/// let v = NeighView::parse(&m).unwrap();
/// let mut names = LinkNames::new();
/// names.insert(3, "veth0");
/// assert_eq!(neigh_text(&v, &names).to_string(),
///            "10.0.0.2 dev veth0 lladdr aa:bb:cc:dd:ee:ff REACHABLE ");
/// ```
pub fn neigh_text<'v, 'a, 'n>(
    neigh: &'v NeighView<'a>,
    names: &'n LinkNames,
) -> NeighText<'v, 'a, 'n> {
    NeighText {
        neigh,
        names,
        show_dev: true,
    }
}

impl NeighText<'_, '_, '_> {
    /// Leaves out `dev D`, as iproute2 does when the listing was restricted to one device
    /// (`ip neigh show dev D`).
    pub fn without_dev(mut self) -> Self {
        self.show_dev = false;
        self
    }
}

impl fmt::Display for NeighText<'_, '_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.neigh;
        if n.msg_type() == RTM_DELNEIGH {
            f.write_str("Deleted ")?;
        }
        if let Some(d) = n.dst() {
            write!(f, "{d} ")?;
        }
        if self.show_dev {
            write!(f, "dev {} ", self.names.name(n.ifindex()))?;
        }
        if let Some(ll) = n.lladdr() {
            write!(f, "lladdr {} ", Mac(ll))?;
        }
        for &(b, name) in NEIGH_FLAGS {
            if n.flags() & b != 0 {
                write!(f, "{name} ")?;
            }
        }
        for s in state_names(n.state()) {
            write!(f, "{s} ")?;
        }
        Ok(())
    }
}

/// `ip -j neigh` JSON for one entry; see [`neigh_json`].
#[derive(Debug, Clone, Copy)]
pub struct NeighJson<'v, 'a, 'n> {
    neigh: &'v NeighView<'a>,
    names: &'n LinkNames,
}

/// A serializable neighbour with `ip -j neigh` field names: `dst`, `dev`, `lladdr`, flags
/// as `null`-valued keys (`router`, `proxy`, …) and `state` as an array.
///
/// ```
/// # use nlkit_wire::{consts::*, MessageBuilder, Messages};
/// # use nlkit_route::{fmt::*, request, NeighView, Neighbour};
/// let n = Neighbour::new(3, "10.0.0.2".parse().unwrap()).lladdr(&[0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]);
/// let mut b = MessageBuilder::new();
/// request::add_neigh(&mut b, 1, &n, false).unwrap();
/// let m = Messages::new(b.as_bytes()).next().unwrap().unwrap();
/// let v = NeighView::parse(&m).unwrap();
/// let mut names = LinkNames::new();
/// names.insert(3, "va");
/// let j = serde_json::to_string(&neigh_json(&v, &names)).unwrap();
/// assert_eq!(j, r#"{"dst":"10.0.0.2","dev":"va","lladdr":"aa:bb:cc:dd:ee:ff","state":["PERMANENT"]}"#);
/// ```
pub fn neigh_json<'v, 'a, 'n>(
    neigh: &'v NeighView<'a>,
    names: &'n LinkNames,
) -> NeighJson<'v, 'a, 'n> {
    NeighJson { neigh, names }
}

impl serde::Serialize for NeighJson<'_, '_, '_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let n = self.neigh;
        let mut m = s.serialize_map(None)?;
        if n.msg_type() == RTM_DELNEIGH {
            m.serialize_entry("deleted", &true)?;
        }
        if let Some(d) = n.dst() {
            m.serialize_entry("dst", &d)?;
        }
        m.serialize_entry("dev", &self.names.name(n.ifindex()))?;
        if let Some(ll) = n.lladdr() {
            m.serialize_entry("lladdr", &Mac(ll))?;
        }
        for &(b, name) in NEIGH_FLAGS {
            if n.flags() & b != 0 {
                m.serialize_entry(name, &())?;
            }
        }
        m.serialize_entry("state", &name_list(state_names(n.state())))?;
        m.end()
    }
}
