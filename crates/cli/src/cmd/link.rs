//! `nlkit link show|set|add|del`.

use anyhow::Result;
use nlkit_route::fmt::{link_json, link_text};
use nlkit_route::request::{self, LinkFilter, LinkRef};
use nlkit_route::{ops, LinkView};
use nlkit_socket::Protocol;
use nlkit_wire::MessageBuilder;

use super::{action, ifindex, link_names, unknown_action, Ctx, Sink, Source};
use crate::args::{Keywords, UsageError};
use crate::cli::ObjectArgs;

pub fn run(ctx: &Ctx, a: ObjectArgs) -> Result<()> {
    match action(&a.action) {
        "show" => show(ctx, &a.args),
        "set" => set(ctx, &a.args),
        "add" => add(ctx, &a.args),
        "del" => del(ctx, &a.args),
        other => Err(unknown_action("link", other, "show, set, add, del")),
    }
}

fn show(ctx: &Ctx, args: &[String]) -> Result<()> {
    let k = Keywords::parse(args, &["dev", "type", "master"], &["up"])?;
    let mut src = Source::open(ctx, Protocol::Route)?;
    let names = src.link_names()?;
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
        sink.item(link_text(&l, &names, true), link_json(&l, &names, None))
    });
    sink.finish(res)
}

fn set(ctx: &Ctx, args: &[String]) -> Result<()> {
    let k = Keywords::parse(args, &["dev", "mtu"], &["up", "down"])?;
    let dev = k
        .get("dev")
        .or(k.positional.first().map(String::as_str))
        .ok_or_else(|| {
            UsageError("link set needs a device: nlkit link set DEV up|down|mtu N".into())
        })?;
    let mut sock = ctx.socket(Protocol::Route)?;
    let names = link_names(&mut sock)?;
    let index = ifindex(&names, dev)?;
    let mtu: Option<u32> = k.parsed("mtu")?;
    if !k.flag("up") && !k.flag("down") && mtu.is_none() {
        return Err(UsageError("link set: nothing to change (up, down or mtu N)".into()).into());
    }
    if let Some(m) = mtu {
        ops::set_link_mtu(&mut sock, index, m)?;
    }
    if k.flag("up") || k.flag("down") {
        ops::set_link_up(&mut sock, index, k.flag("up"))?;
    }
    Ok(())
}

/// `nlkit link add NAME type veth peer name PEER`.
fn add(ctx: &Ctx, args: &[String]) -> Result<()> {
    let k = Keywords::parse(args, &["name", "type", "dev"], &["peer"])?;
    let name = k
        .get("dev")
        .or(k.positional.first().map(String::as_str))
        .ok_or_else(|| UsageError("link add needs a name".into()))?;
    if k.get("type") != Some("veth") {
        return Err(UsageError("link add supports \"type veth peer name PEER\"".into()).into());
    }
    let peer = k
        .get("name")
        .ok_or_else(|| UsageError("veth needs \"peer name PEER\"".into()))?;
    // The create request alone (not `ops::add_veth`, which then looks the new links up): with
    // `--mirror` that lookup would race the mirror's event for the new link.
    let mut req = MessageBuilder::new();
    request::add_veth(&mut req, 0, name, peer)?;
    ctx.socket(Protocol::Route)?.transact(&mut req)?;
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
