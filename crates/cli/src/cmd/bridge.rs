//! `nlkit bridge fdb show|add|append|replace|del` and `nlkit bridge vlan show|add|del`
//! (iproute2's `bridge`).

use std::net::IpAddr;

use anyhow::Result;
use nlkit_route::fmt::{bridge_vlan_json, bridge_vlan_text, fdb_json, fdb_text, VLAN_HEADER};
use nlkit_route::request::{self, FdbFilter};
use nlkit_route::{bridge_vlans, BridgeVlan, BridgeVlanSpec, Fdb, FdbOp, LinkView, NeighView};
use nlkit_socket::Protocol;
use nlkit_wire::consts::*;
use nlkit_wire::MessageBuilder;

use super::{action, ifindex, link_names, unknown_action, Ctx, Sink, Source};
use crate::args::{parse_mac, UsageError};
use crate::cli::BridgeArgs;

const NO_TABLE: &str = "the mirror keeps no bridge FDB or VLAN table";

pub fn run(ctx: &Ctx, a: BridgeArgs) -> Result<()> {
    let act = action(&a.action).to_owned();
    match a.object.as_str() {
        "fdb" => match act.as_str() {
            "show" => fdb_show(ctx, &a.args),
            "add" => fdb_change(ctx, &a.args, Some(FdbOp::Add)),
            "append" => fdb_change(ctx, &a.args, Some(FdbOp::Append)),
            "replace" => fdb_change(ctx, &a.args, Some(FdbOp::Replace)),
            "del" => fdb_change(ctx, &a.args, None),
            other => Err(unknown_action(
                "bridge fdb",
                other,
                "show, add, append, replace, del",
            )),
        },
        "vlan" => match act.as_str() {
            "show" => vlan_show(ctx, &a.args),
            "add" => vlan_change(ctx, &a.args, true),
            "del" => vlan_change(ctx, &a.args, false),
            other => Err(unknown_action("bridge vlan", other, "show, add, del")),
        },
        other => Err(UsageError(format!(
            "Object \"{other}\" is unknown for \"bridge\"; try fdb or vlan"
        ))
        .into()),
    }
}

fn value<'a>(it: &mut impl Iterator<Item = &'a str>, key: &str) -> Result<&'a str> {
    it.next()
        .ok_or_else(|| UsageError(format!("\"{key}\" needs a value")).into())
}

fn num<T: std::str::FromStr>(v: &str, key: &str) -> Result<T> {
    v.parse()
        .map_err(|_| UsageError(format!("invalid value \"{v}\" for \"{key}\"")).into())
}

fn fdb_show(ctx: &Ctx, args: &[String]) -> Result<()> {
    ctx.kernel_only("bridge fdb show", NO_TABLE)?;
    let mut src = Source::open(ctx, Protocol::Route)?;
    let names = src.link_names()?;
    let mut filter = FdbFilter::default();
    let mut vlan: Option<u16> = None;
    let mut it = args.iter().map(String::as_str);
    while let Some(a) = it.next() {
        match a {
            "br" => filter.master = Some(ifindex(&names, value(&mut it, a)?)?),
            "dev" | "brport" => filter.ifindex = Some(ifindex(&names, value(&mut it, a)?)?),
            "vlan" => vlan = Some(num(value(&mut it, a)?, a)?),
            other => return Err(UsageError(format!("unknown argument \"{other}\"")).into()),
        }
    }
    let show_dev = filter.ifindex.is_none();
    let mut req = MessageBuilder::new();
    request::dump_fdb(&mut req, 0, &filter)?;
    let mut sink = Sink::new(ctx.json);
    let res = src.dump(&mut req, |m| {
        let n = NeighView::parse(m)?;
        if !filter.matches(&n) || vlan.is_some_and(|v| n.vlan() != Some(v)) {
            return Ok(());
        }
        sink.item(
            fdb_text(&n, &names, show_dev),
            fdb_json(&n, &names, show_dev),
        )
    });
    sink.finish(res)
}

/// `bridge fdb add|append|replace|del LLADDR dev DEV [dst IP] [vni N] [port P] [via DEV]
/// [src_vni N] [vlan VID] [self] [master] [sticky] [router] [extern_learn]
/// [local|permanent|static|dynamic]`.
fn fdb_change(ctx: &Ctx, args: &[String], op: Option<FdbOp>) -> Result<()> {
    let mut sock = ctx.socket(Protocol::Route)?;
    let names = link_names(&mut sock)?;
    let mut mac = None;
    let mut dev = None;
    let mut e = Fdb::new(0, &[]);
    e.flags = 0;
    e.state = NUD_NOARP;
    let mut it = args.iter().map(String::as_str);
    while let Some(a) = it.next() {
        match a {
            "dev" => dev = Some(ifindex(&names, value(&mut it, a)?)?),
            "dst" => e.dst = Some(num::<IpAddr>(value(&mut it, a)?, a)?),
            "vni" => e.vni = Some(num(value(&mut it, a)?, a)?),
            "src_vni" => e.src_vni = Some(num(value(&mut it, a)?, a)?),
            "port" | "dst_port" => e.port = Some(num(value(&mut it, a)?, a)?),
            "via" => e.via = Some(ifindex(&names, value(&mut it, a)?)?),
            "vlan" => e.vlan = Some(num(value(&mut it, a)?, a)?),
            "self" => e.flags |= NTF_SELF,
            "master" => e.flags |= NTF_MASTER,
            "router" => e.flags |= NTF_ROUTER,
            "use" => e.flags |= NTF_USE,
            "extern_learn" => e.flags |= NTF_EXT_LEARNED,
            "sticky" => e.flags |= NTF_STICKY,
            "local" | "permanent" => e.state |= NUD_PERMANENT,
            "temp" | "static" => e.state |= NUD_REACHABLE,
            "dynamic" => {
                e.state |= NUD_REACHABLE;
                e.state &= !NUD_NOARP;
            }
            other if mac.is_none() => mac = Some(parse_mac(other)?),
            other => return Err(UsageError(format!("unknown argument \"{other}\"")).into()),
        }
    }
    let (Some(mac), Some(dev)) = (mac, dev) else {
        return Err(UsageError("Device and address are required arguments.".into()).into());
    };
    e.lladdr = mac;
    e.ifindex = dev;
    // Like `bridge`: no state means permanent, neither self nor master means self.
    if e.state & (NUD_PERMANENT | NUD_REACHABLE) == 0 {
        e.state |= NUD_PERMANENT;
    }
    if e.flags & (NTF_SELF | NTF_MASTER) == 0 {
        e.flags |= NTF_SELF;
    }
    let mut req = MessageBuilder::new();
    match op {
        Some(op) => request::add_fdb(&mut req, 0, &e, op)?,
        None => request::del_fdb(&mut req, 0, &e)?,
    };
    sock.transact(&mut req)?;
    Ok(())
}

fn vlan_show(ctx: &Ctx, args: &[String]) -> Result<()> {
    ctx.kernel_only("bridge vlan show", NO_TABLE)?;
    let mut src = Source::open(ctx, Protocol::Route)?;
    let names = src.link_names()?;
    let mut dev = None;
    let mut vid: Option<u16> = None;
    let mut it = args.iter().map(String::as_str);
    while let Some(a) = it.next() {
        match a {
            "dev" => dev = Some(ifindex(&names, value(&mut it, a)?)?),
            "vid" => vid = Some(num(value(&mut it, a)?, a)?),
            other => return Err(UsageError(format!("unknown argument \"{other}\"")).into()),
        }
    }
    let mut req = MessageBuilder::new();
    request::dump_bridge_vlans(&mut req, 0)?;
    let mut sink = Sink::new(ctx.json);
    if !ctx.json {
        sink.item(VLAN_HEADER, ())?;
    }
    let res = src.dump(&mut req, |m| {
        let l = LinkView::parse(m)?;
        if l.header().family != AF_BRIDGE || dev.is_some_and(|d| d != l.index()) {
            return Ok(());
        }
        let Some(spec) = l.af_spec() else {
            return Ok(());
        };
        let mut vlans: Vec<BridgeVlan> = bridge_vlans(spec).collect::<Result<_, _>>()?;
        if let Some(v) = vid {
            vlans.retain(|x| x.vid == v);
        }
        if vlans.is_empty() {
            return Ok(());
        }
        let name = names.name(l.index()).to_string();
        sink.item(
            bridge_vlan_text(&name, &vlans),
            bridge_vlan_json(&name, &vlans),
        )
    });
    sink.finish(res)
}

/// `bridge vlan add|del dev DEV vid VID[-VEND] [pvid] [untagged] [self] [master]`.
fn vlan_change(ctx: &Ctx, args: &[String], add: bool) -> Result<()> {
    let mut sock = ctx.socket(Protocol::Route)?;
    let names = link_names(&mut sock)?;
    let mut spec = BridgeVlanSpec::new(0, 0);
    let (mut dev, mut vid) = (None, None);
    let mut it = args.iter().map(String::as_str);
    while let Some(a) = it.next() {
        match a {
            "dev" => dev = Some(ifindex(&names, value(&mut it, a)?)?),
            "vid" => {
                let v = value(&mut it, a)?;
                match v.split_once('-') {
                    Some((s, e)) => {
                        vid = Some(num::<u16>(s, a)?);
                        spec.vid_end = Some(num(e, a)?);
                    }
                    None => vid = Some(num(v, a)?),
                }
            }
            "pvid" => spec.pvid = true,
            "untagged" => spec.untagged = true,
            "self" => spec.self_ = true,
            "master" => spec.master = true,
            other => return Err(UsageError(format!("unknown argument \"{other}\"")).into()),
        }
    }
    let (Some(dev), Some(vid)) = (dev, vid) else {
        return Err(UsageError("Device and VLAN ID are required arguments.".into()).into());
    };
    spec.ifindex = dev;
    spec.vid = vid;
    let mut req = MessageBuilder::new();
    if add {
        request::add_bridge_vlan(&mut req, 0, &spec)?;
    } else {
        request::del_bridge_vlan(&mut req, 0, &spec)?;
    }
    sock.transact(&mut req)?;
    Ok(())
}
