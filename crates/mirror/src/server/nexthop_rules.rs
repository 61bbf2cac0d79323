//! Handlers for nexthop objects (`RTM_GETNEXTHOP`: dump with the kernel's filters, get by id)
//! and policy rules (`RTM_GETRULE` dump), answered from the tables in the kernel's order:
//! nexthops by id, rules as the kernel lists them.

use std::time::Instant;

use nlkit_route::NexthopObjectView;
use nlkit_wire::consts::*;
use nlkit_wire::{IfInfoMsg, Message, NhMsg};

use super::handlers::{bad, families, io_reject};
use super::out::Out;
use super::registry::{Ctx, HandlerResult, Reject};
use crate::keys::{LinkKey, NexthopKey};

/// The kernel's nexthop dump filter (`nh_dump_filtered`): groups only; with a family, a
/// device or a master, no groups and only single nexthops of that family, out of that device,
/// whose device has that master.
#[derive(Debug, Default, Clone, Copy)]
struct NexthopDumpFilter {
    family: u8,
    oif: u32,
    master: u32,
    groups: bool,
}

impl NexthopDumpFilter {
    /// Reads the request as the kernel validates it (`nh_valid_dump_req`).
    fn parse(m: &Message<'_>) -> Result<Self, Reject> {
        let (h, attrs) = m.family_header::<NhMsg>().map_err(|_| bad("nhmsg"))?;
        let mut f = NexthopDumpFilter {
            family: h.family,
            ..Default::default()
        };
        let index = |a: &nlkit_wire::Attr<'_>, what: &str| -> Result<u32, Reject> {
            let i = a.u32().map_err(|_| bad(what))?;
            if i > i32::MAX as u32 {
                return Err((libc::EINVAL, format!("Invalid {what} index")));
            }
            Ok(i)
        };
        for a in attrs {
            let a = a.map_err(|_| bad("attributes"))?;
            match a.ty() {
                NHA_OIF => f.oif = index(&a, "device")?,
                NHA_MASTER => f.master = index(&a, "master device")?,
                NHA_GROUPS => f.groups = true,
                // Accepted and not applied, as by the kernel (`ip nexthop show fdb` filters
                // in user space).
                NHA_FDB => {}
                // Statistics are not mirrored; the objects are listed without them.
                NHA_OP_FLAGS => {}
                t => {
                    return Err((
                        libc::EINVAL,
                        format!("Unsupported attribute {t} in nexthop dump request"),
                    ))
                }
            }
        }
        if h.protocol != 0 || h.scope != 0 || h.flags != 0 {
            return Err((
                libc::EINVAL,
                String::from("Invalid values in header for nexthop dump request"),
            ));
        }
        Ok(f)
    }

    /// Whether the kernel leaves `v` out of the dump; `master_of` gives a device's master.
    fn filtered(&self, v: &NexthopObjectView<'_>, master_of: impl Fn(u32) -> Option<u32>) -> bool {
        if self.groups && !v.is_group() {
            return true;
        }
        if self.oif == 0 && self.master == 0 && self.family == AF_UNSPEC {
            return false;
        }
        if v.is_group() || (self.family != AF_UNSPEC && v.family() != self.family) {
            return true;
        }
        let dev = v.oif();
        if self.oif != 0 && dev != Some(self.oif) {
            return true;
        }
        self.master != 0 && dev.and_then(master_of) != Some(self.master)
    }
}

/// `IFLA_MASTER` of the link `ifindex`, from the links table.
fn master_of(ctx: &Ctx, ifindex: u32) -> Option<u32> {
    ctx.tables
        .links
        .with(&LinkKey { ifindex }, |e| {
            let m = e.iter().next()?.ok()?;
            let (_, attrs) = m.family_header::<IfInfoMsg>().ok()?;
            attrs.find(IFLA_MASTER)?.ok()?.u32().ok()
        })
        .flatten()
        .filter(|&m| m != 0)
}

/// `RTM_GETNEXTHOP` for one id (`ip nexthop get id ID`).
pub(crate) fn get_nexthop(ctx: &Ctx, m: &Message<'_>, out: &mut Out<'_>) -> HandlerResult {
    let (h, attrs) = m.family_header::<NhMsg>().map_err(|_| bad("nhmsg"))?;
    if h.protocol != 0 || h.scope != 0 || h.flags != 0 {
        return Err((libc::EINVAL, String::from("Invalid values in header")));
    }
    let mut id = None;
    for a in attrs {
        let a = a.map_err(|_| bad("attributes"))?;
        if a.ty() == NHA_ID {
            id = Some(a.u32().map_err(|_| bad("NHA_ID"))?);
        }
    }
    let id = id.ok_or((libc::EINVAL, String::from("Nexthop id is missing")))?;
    if id == 0 {
        return Err((libc::EINVAL, String::from("Invalid nexthop id")));
    }
    let bytes = ctx
        .tables
        .nexthops
        .get_bytes(&NexthopKey { id })
        .ok_or((libc::ENOENT, String::new()))?;
    out.push(&bytes, 0).map_err(io_reject)?;
    Ok(false)
}

/// `RTM_GETNEXTHOP` dump: every object the kernel's filters keep, in id order as the kernel
/// lists them.
pub(crate) fn dump_nexthops<'a>(ctx: &'a Ctx, m: &Message<'_>, out: &mut Out<'a>) -> HandlerResult {
    let filter = NexthopDumpFilter::parse(m)?;
    let t0 = Instant::now();
    let store = &ctx.tables.nexthops;
    out.watch(&store.seq);
    let mut kept: Vec<(u32, Vec<u8>)> = Vec::new();
    let complete = store.for_each(|e| {
        let Some(Ok(nm)) = e.iter().next() else {
            return true;
        };
        let Ok(v) = NexthopObjectView::parse(&nm) else {
            return true;
        };
        if let Some(id) = v.id() {
            if !filter.filtered(&v, |i| master_of(ctx, i)) {
                kept.push((id, e.messages().to_vec()));
            }
        }
        true
    });
    if !complete {
        out.interrupt();
    }
    kept.sort_unstable_by_key(|(id, _)| *id);
    for (_, msgs) in &kept {
        out.push(msgs, NLM_F_MULTI).map_err(io_reject)?;
    }
    out.done().map_err(io_reject)?;
    ctx.metrics.observe_dump(t0.elapsed(), out.intr);
    Ok(true)
}

/// `RTM_GETRULE` dump of one family (IPv4, IPv6, or both for `AF_UNSPEC`), in the kernel's
/// order. The kernel has no rule dump filters; header fields and attributes are ignored, as
/// without strict checking.
pub(crate) fn dump_rules<'a>(ctx: &'a Ctx, m: &Message<'_>, out: &mut Out<'a>) -> HandlerResult {
    let (h, _) = m
        .family_header::<nlkit_wire::FibRuleHdr>()
        .map_err(|_| bad("fib_rule_hdr"))?;
    let fams = families(h.family)?;
    let t0 = Instant::now();
    for &i in fams {
        out.watch(&ctx.tables.rules[i].seq);
    }
    for &i in fams {
        for msgs in ctx.tables.rules[i].snapshot().iter() {
            out.push(msgs, NLM_F_MULTI).map_err(io_reject)?;
        }
    }
    out.done().map_err(io_reject)?;
    ctx.metrics.observe_dump(t0.elapsed(), out.intr);
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nlkit_wire::{MessageBuilder, Messages};

    fn nexthop(family: u8, oif: Option<u32>, group: bool, fdb: bool) -> Vec<u8> {
        let mut b = MessageBuilder::new();
        b.begin(RTM_NEWNEXTHOP, 0, 0);
        b.header(&NhMsg {
            family,
            ..Default::default()
        });
        b.attr_u32(NHA_ID, 1);
        if group {
            b.attr_bytes(NHA_GROUP, &[2, 0, 0, 0, 0, 0, 0, 0]);
        }
        if let Some(o) = oif {
            b.attr_u32(NHA_OIF, o);
        }
        if fdb {
            b.attr_bytes(NHA_FDB, &[]);
        }
        b.finish().unwrap();
        b.as_bytes().to_vec()
    }

    fn filtered(f: NexthopDumpFilter, bytes: &[u8]) -> bool {
        let m = Messages::new(bytes).next().unwrap().unwrap();
        let v = NexthopObjectView::parse(&m).unwrap();
        f.filtered(&v, |i| (i == 3).then_some(9))
    }

    #[test]
    fn filters_as_the_kernel() {
        let dev = nexthop(AF_INET, Some(3), false, false);
        let grp = nexthop(AF_UNSPEC, None, true, false);
        let fdb = nexthop(AF_INET6, None, false, true);
        let all = NexthopDumpFilter::default();
        assert!(!filtered(all, &dev) && !filtered(all, &grp) && !filtered(all, &fdb));
        let groups = NexthopDumpFilter {
            groups: true,
            ..all
        };
        assert!(filtered(groups, &dev) && !filtered(groups, &grp));
        let v4 = NexthopDumpFilter {
            family: AF_INET,
            ..all
        };
        assert!(!filtered(v4, &dev) && filtered(v4, &grp) && filtered(v4, &fdb));
        let on3 = NexthopDumpFilter { oif: 3, ..all };
        assert!(!filtered(on3, &dev) && filtered(on3, &grp) && filtered(on3, &fdb));
        let master = NexthopDumpFilter { master: 9, ..all };
        assert!(!filtered(master, &dev) && filtered(master, &fdb));
    }
}
