//! `nlkit link show|set|add|del` (`ip link`), with the link kinds of `nlkit_route::LinkKind`.

use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};

use anyhow::Result;
use nlkit_route::fmt::{link_json, link_text, LinkNames};
use nlkit_route::kind_names::{self, lookup};
use nlkit_route::request::{self, LinkFilter, LinkRef};
use nlkit_route::{
    ops, BondOpts, BridgeOpts, IpvlanOpts, LinkKind, LinkSpec, LinkView, MacvlanOpts, NetnsRef,
    VlanOpts, VxlanOpts,
};
use nlkit_socket::Protocol;
use nlkit_wire::MessageBuilder;

use super::{action, ifindex, link_names, unknown_action, Ctx, Sink, Source};
use crate::args::{parse_mac, Keywords, UsageError};
use crate::cli::ObjectArgs;

pub fn run(ctx: &Ctx, a: ObjectArgs) -> Result<()> {
    match action(&a.action) {
        "show" => show(ctx, &a.args),
        "set" | "change" => set(ctx, &a.args),
        "add" => add(ctx, &a.args),
        "del" => del(ctx, &a.args),
        other => Err(unknown_action("link", other, "show, set, add, del")),
    }
}

fn show(ctx: &Ctx, args: &[String]) -> Result<()> {
    let k = Keywords::parse(args, &["dev", "type", "master"], &["up"])?;
    let mut src = Source::open(ctx, Protocol::Route)?;
    let mut names = src.link_names()?;
    if ctx.is_kernel() {
        super::netns::insert_netns_names(ctx, &mut names);
    }
    let dev = k.get("dev").or(k.positional.first().map(String::as_str));
    k.at_most(if k.get("dev").is_some() { 0 } else { 1 })?;
    let dev_index = dev.map(|d| ifindex(&names, d)).transpose()?;
    let master = k.get("master").map(|m| ifindex(&names, m)).transpose()?;
    let filter = LinkFilter {
        master,
        kind: k.get("type"),
    };
    let up_only = k.flag("up");
    let mut req = MessageBuilder::new();
    request::dump_links(&mut req, 0, &filter)?;
    let mut sink = Sink::new(ctx.json);
    let res = src.dump(&mut req, |m| {
        let l = LinkView::parse(m)?;
        if !filter.matches(&l)
            || dev_index.is_some_and(|i| l.index() != i)
            || (up_only && !l.is_up())
        {
            return Ok(());
        }
        sink.item(
            link_text(&l, &names, true).details(ctx.details),
            link_json(&l, &names, None).details(ctx.details),
        )
    });
    sink.finish(res)
}

/// A namespace named on the command line (`netns NAME|PID`): a pid, or the open file of
/// `/run/netns/NAME`, kept open until the request is sent.
pub(super) enum NsArg {
    Pid(u32),
    File(OwnedFd),
}

impl NsArg {
    pub(super) fn parse(ctx: &Ctx, s: &str) -> Result<NsArg> {
        ctx.kernel_only(
            "netns NAME|PID",
            "namespaces are named in the caller's filesystem and pid space",
        )?;
        if let Ok(pid) = s.parse::<u32>() {
            return Ok(NsArg::Pid(pid));
        }
        let fd = nlkit_socket::netns::open_named(s)
            .map_err(|e| UsageError(format!("Invalid \"netns\" value \"{s}\": {e}")))?;
        Ok(NsArg::File(fd))
    }
    pub(super) fn as_ref(&self) -> NetnsRef {
        match self {
            NsArg::Pid(p) => NetnsRef::Pid(*p),
            NsArg::File(f) => NetnsRef::Fd(f.as_raw_fd()),
        }
    }
}

/// The generic link options shared by `add` and `set`, applied to `spec`; returns the
/// arguments not consumed.
fn generic_opts<'a>(
    ctx: &Ctx,
    args: &'a [String],
    names: &LinkNames,
    spec: &mut LinkSpec,
    ns: &mut Option<NsArg>,
) -> Result<Vec<&'a str>> {
    let mut rest = Vec::new();
    let mut it = args.iter().map(String::as_str);
    let val = |it: &mut dyn Iterator<Item = &'a str>, key: &str| -> Result<&'a str> {
        it.next()
            .ok_or_else(|| UsageError(format!("\"{key}\" needs a value")).into())
    };
    while let Some(a) = it.next() {
        match a {
            "up" => spec.up = Some(true),
            "down" => spec.up = Some(false),
            "name" => spec.name = Some(val(&mut it, a)?.to_owned()),
            "address" => spec.address = Some(parse_mac(val(&mut it, a)?)?),
            "alias" => spec.alias = Some(val(&mut it, a)?.to_owned()),
            "mtu" => spec.mtu = Some(num(val(&mut it, a)?, a)?),
            "txqueuelen" | "txqlen" | "qlen" => spec.txqlen = Some(num(val(&mut it, a)?, a)?),
            "master" => spec.master = Some(ifindex(names, val(&mut it, a)?)?),
            "nomaster" => spec.master = Some(0),
            "link" => spec.parent = Some(ifindex(names, val(&mut it, a)?)?),
            "netns" => {
                let n = NsArg::parse(ctx, val(&mut it, a)?)?;
                spec.netns = Some(n.as_ref());
                *ns = Some(n);
            }
            other => rest.push(other),
        }
    }
    Ok(rest)
}

fn num<T: std::str::FromStr>(v: &str, key: &str) -> Result<T> {
    v.parse()
        .map_err(|_| UsageError(format!("invalid value \"{v}\" for \"{key}\"")).into())
}

fn word(table: &[(u32, &str)], v: &str, key: &str) -> Result<u32> {
    lookup(table, v)
        .ok_or_else(|| UsageError(format!("invalid value \"{v}\" for \"{key}\"")).into())
}

fn bool01(v: &str, key: &str) -> Result<bool> {
    match v {
        "0" | "off" => Ok(false),
        "1" | "on" => Ok(true),
        _ => Err(UsageError(format!("invalid value \"{v}\" for \"{key}\" (0 or 1)")).into()),
    }
}

/// `type KIND [ARGS]`: the kind and its options, as `ip link` parses them.
fn parse_kind(
    ctx: &Ctx,
    kind: &str,
    args: &[String],
    names: &LinkNames,
    ns: &mut Option<NsArg>,
) -> Result<LinkKind> {
    let bad = |a: &str| -> anyhow::Error {
        UsageError(format!("unknown option \"{a}\" for type {kind}")).into()
    };
    let mut p = args.iter().map(String::as_str);
    let mut next = |key: &str| -> Result<&str> {
        p.next()
            .ok_or_else(|| UsageError(format!("\"{key}\" needs a value")).into())
    };
    Ok(match kind {
        "veth" => {
            let mut peer = None;
            let mut peer_netns = None;
            while let Ok(a) = next("") {
                match a {
                    "peer" => {}
                    "name" => peer = Some(next(a)?.to_owned()),
                    "netns" => {
                        let n = NsArg::parse(ctx, next(a)?)?;
                        peer_netns = Some(n.as_ref());
                        *ns = Some(n);
                    }
                    other => return Err(bad(other)),
                }
            }
            let peer = peer.ok_or_else(|| UsageError("veth needs \"peer name PEER\"".into()))?;
            LinkKind::Veth { peer, peer_netns }
        }
        "bridge" => {
            let mut o = BridgeOpts::default();
            while let Ok(a) = next("") {
                match a {
                    "vlan_filtering" => o.vlan_filtering = Some(bool01(next(a)?, a)?),
                    "stp_state" => o.stp = Some(bool01(next(a)?, a)?),
                    "ageing_time" => o.ageing_time = Some(num(next(a)?, a)?),
                    "forward_delay" => o.forward_delay = Some(num(next(a)?, a)?),
                    "priority" => o.priority = Some(num(next(a)?, a)?),
                    other => return Err(bad(other)),
                }
            }
            LinkKind::Bridge(o)
        }
        "vlan" => {
            let mut o = VlanOpts::default();
            while let Ok(a) = next("") {
                match a {
                    "id" => o.id = Some(num(next(a)?, a)?),
                    "protocol" => {
                        o.protocol = Some(word(kind_names::VLAN_PROTOCOLS, next(a)?, a)? as u16)
                    }
                    other => return Err(bad(other)),
                }
            }
            LinkKind::Vlan(o)
        }
        "vxlan" => {
            let mut o = VxlanOpts::default();
            while let Ok(a) = next("") {
                match a {
                    "id" | "vni" => o.id = Some(num(next(a)?, a)?),
                    "local" => o.local = Some(num::<IpAddr>(next(a)?, a)?),
                    "remote" | "group" => o.remote = Some(num::<IpAddr>(next(a)?, a)?),
                    "dev" => o.dev = Some(ifindex(names, next(a)?)?),
                    "dstport" => o.dstport = Some(num(next(a)?, a)?),
                    "ttl" => o.ttl = Some(num(next(a)?, a)?),
                    "learning" => o.learning = Some(true),
                    "nolearning" => o.learning = Some(false),
                    other => return Err(bad(other)),
                }
            }
            LinkKind::Vxlan(o)
        }
        "macvlan" | "macvtap" => {
            let mut o = MacvlanOpts::default();
            while let Ok(a) = next("") {
                match a {
                    "mode" => o.mode = Some(word(kind_names::MACVLAN_MODES, next(a)?, a)?),
                    other => return Err(bad(other)),
                }
            }
            if kind == "macvlan" {
                LinkKind::Macvlan(o)
            } else {
                LinkKind::Macvtap(o)
            }
        }
        "ipvlan" => {
            let mut o = IpvlanOpts::default();
            while let Ok(a) = next("") {
                match a {
                    "mode" => o.mode = Some(word(kind_names::IPVLAN_MODES, next(a)?, a)? as u16),
                    "bridge" | "private" | "vepa" => {
                        o.flags = Some(word(kind_names::IPVLAN_FLAGS, a, "mode")? as u16)
                    }
                    other => return Err(bad(other)),
                }
            }
            LinkKind::Ipvlan(o)
        }
        "bond" => {
            let mut o = BondOpts::default();
            while let Ok(a) = next("") {
                match a {
                    "mode" => o.mode = Some(word(kind_names::BOND_MODES, next(a)?, a)? as u8),
                    "miimon" => o.miimon = Some(num(next(a)?, a)?),
                    other => return Err(bad(other)),
                }
            }
            LinkKind::Bond(o)
        }
        "vrf" => {
            let mut table = None;
            while let Ok(a) = next("") {
                match a {
                    "table" => table = Some(num(next(a)?, a)?),
                    other => return Err(bad(other)),
                }
            }
            LinkKind::Vrf { table }
        }
        other => {
            if let Ok(a) = next("") {
                return Err(bad(a));
            }
            LinkKind::Other(other.to_owned())
        }
    })
}

/// Splits `args` at `type KIND`: `(before, Some((kind, after)))`.
fn split_type(args: &[String]) -> (&[String], Option<(&str, &[String])>) {
    match args.iter().position(|a| a == "type") {
        Some(i) => match args.get(i + 1) {
            Some(k) => (&args[..i], Some((k.as_str(), &args[i + 2..]))),
            None => (&args[..i], Some(("", &[][..]))),
        },
        None => (args, None),
    }
}

/// `nlkit link set DEV [up|down] [name N] [address A] [alias T] [txqueuelen N] [mtu N]
/// [master M|nomaster] [netns NAME|PID] [type KIND OPTIONS]`.
fn set(ctx: &Ctx, args: &[String]) -> Result<()> {
    let (generic, kind) = split_type(args);
    let mut sock = ctx.socket(Protocol::Route)?;
    let names = link_names(&mut sock)?;
    // The device: `dev DEV` or the first word that is no keyword.
    let (dev, generic): (String, Vec<String>) = match generic.iter().position(|a| a == "dev") {
        Some(i) => {
            let d = generic
                .get(i + 1)
                .ok_or_else(|| UsageError("\"dev\" needs a value".into()))?;
            let mut g = generic.to_vec();
            g.drain(i..i + 2);
            (d.clone(), g)
        }
        None => match generic.split_first() {
            Some((d, rest)) => (d.clone(), rest.to_vec()),
            None => {
                return Err(UsageError(
                    "link set needs a device: nlkit link set DEV up|down|mtu N|master M|…".into(),
                )
                .into())
            }
        },
    };
    let index = ifindex(&names, &dev)?;
    let mut spec = LinkSpec::default();
    let mut ns = None;
    let rest = generic_opts(ctx, &generic, &names, &mut spec, &mut ns)?;
    if let Some(extra) = rest.first() {
        return Err(UsageError(format!("unknown argument \"{extra}\" for link set")).into());
    }
    if let Some((k, kargs)) = kind {
        let current = ops::get_link(&mut sock, LinkRef::Index(index))?;
        if current.kind.as_deref() != Some(k) {
            return Err(UsageError(format!("\"{dev}\" is not of type {k}")).into());
        }
        spec.kind = Some(parse_kind(ctx, k, kargs, &names, &mut ns)?);
    }
    if spec == LinkSpec::default() {
        return Err(UsageError("link set: nothing to change".into()).into());
    }
    let mut req = MessageBuilder::new();
    request::set_link(&mut req, 0, index, &spec)?;
    sock.transact(&mut req)?;
    drop(ns);
    Ok(())
}

/// `nlkit link add [link DEV] [name] NAME [address A] [mtu N] [txqueuelen N] [master M]
/// [up] type KIND [OPTIONS]`.
fn add(ctx: &Ctx, args: &[String]) -> Result<()> {
    let (generic, kind) = split_type(args);
    let (kind, kargs) = kind.ok_or_else(|| {
        UsageError("link add needs \"type KIND\" (veth, bridge, vlan, vxlan, macvlan, …)".into())
    })?;
    if kind.is_empty() {
        return Err(UsageError("\"type\" needs a value".into()).into());
    }
    let mut sock = ctx.socket(Protocol::Route)?;
    let names = link_names(&mut sock)?;
    let mut spec = LinkSpec::default();
    let mut ns = None;
    let rest = generic_opts(ctx, generic, &names, &mut spec, &mut ns)?;
    match (rest.as_slice(), &spec.name) {
        ([], Some(_)) => {}
        ([n], None) | (["dev", n], None) => spec.name = Some((*n).to_owned()),
        ([], None) => return Err(UsageError("link add needs a name".into()).into()),
        (extra, _) => return Err(UsageError(format!("unknown argument \"{}\"", extra[0])).into()),
    }
    let mut kns = None;
    spec.kind = Some(parse_kind(ctx, kind, kargs, &names, &mut kns)?);
    // The create request alone (not `ops::add_link`, which then looks the new link up):
    // with `--mirror` that lookup would race the mirror's event for the new link.
    let mut req = MessageBuilder::new();
    request::add_link(&mut req, 0, &spec)?;
    sock.transact(&mut req)?;
    drop((ns, kns));
    Ok(())
}

fn del(ctx: &Ctx, args: &[String]) -> Result<()> {
    let k = Keywords::parse(args, &["dev"], &[])?;
    let dev = k
        .get("dev")
        .or(k.positional.first().map(String::as_str))
        .ok_or_else(|| UsageError("link del needs a device".into()))?;
    ops::del_link(&mut ctx.socket(Protocol::Route)?, LinkRef::Name(dev))?;
    Ok(())
}
