//! The handler registry, in the spirit of the kernel's `rtnl_register`: for each message type
//! a *do* handler (single request) and/or a *dump* handler, and flags.
//!
//! [`NEEDS_SERVER_LOCK`] marks handlers that must run under the server-wide lock (today: none;
//! the writer pipelines the writes of all clients, each client's in its own order). Every get
//! and every dump is registered without it and never takes it: readers only touch the
//! lock-free tables.

use std::collections::HashMap;
use std::sync::Arc;

use nlkit_wire::consts::*;
use nlkit_wire::Message;
use parking_lot::Mutex;

use super::out::Out;
use super::{handlers, nexthop_rules};
use crate::metrics::Metrics;
use crate::tables::Tables;
use crate::writer::Writer;

/// The handler runs under the server-wide lock.
pub(crate) const NEEDS_SERVER_LOCK: u32 = 1;

/// A handler's error: an errno and an extended-ack message for the client.
pub(crate) type Reject = (i32, String);

/// What a handler did: `Ok(true)` when it already sent the acknowledgement (writes relay the
/// kernel's own ack), `Ok(false)` when the dispatcher should ack if the client asked.
pub(crate) type HandlerResult = Result<bool, Reject>;

/// A handler for one request.
pub(crate) type Handler = for<'a> fn(&'a Ctx, &Message<'_>, &mut Out<'a>) -> HandlerResult;

/// Everything a handler may use.
///
/// Concurrency contract: immutable after construction and shared by every client thread;
/// `server_lock` is the only lock, taken by the dispatcher around `NEEDS_SERVER_LOCK` handlers.
pub(crate) struct Ctx {
    pub tables: Arc<Tables>,
    pub metrics: Arc<Metrics>,
    pub writer: Writer,
    pub server_lock: Mutex<()>,
    pub conntrack: bool,
}

/// One registered message type.
#[derive(Clone, Copy)]
pub(crate) struct Registration {
    pub doit: Option<Handler>,
    pub dumpit: Option<Handler>,
    pub flags: u32,
}

/// Message type → handlers.
pub(crate) struct Registry {
    map: HashMap<u16, Registration>,
}

impl Registry {
    /// An empty registry.
    pub(crate) fn new() -> Self {
        Registry {
            map: HashMap::new(),
        }
    }

    /// Registers (or replaces) the handlers of `ty`.
    pub(crate) fn register(
        &mut self,
        ty: u16,
        doit: Option<Handler>,
        dumpit: Option<Handler>,
        flags: u32,
    ) {
        self.map.insert(
            ty,
            Registration {
                doit,
                dumpit,
                flags,
            },
        );
    }

    /// The handlers of `ty`.
    pub(crate) fn get(&self, ty: u16) -> Option<Registration> {
        self.map.get(&ty).copied()
    }

    /// The mirror's standard handlers.
    pub(crate) fn standard() -> Self {
        let mut r = Registry::new();
        let ct = |m| nfnl_msg_type(NFNL_SUBSYS_CTNETLINK, m);
        r.register(
            RTM_GETLINK,
            Some(handlers::get_link),
            Some(handlers::dump_links),
            0,
        );
        r.register(
            RTM_GETADDR,
            Some(handlers::get_addr),
            Some(handlers::dump_addrs),
            0,
        );
        r.register(
            RTM_GETROUTE,
            Some(handlers::get_route),
            Some(handlers::dump_routes),
            0,
        );
        r.register(
            RTM_GETNEIGH,
            Some(handlers::get_neigh),
            Some(handlers::dump_neigh),
            0,
        );
        r.register(
            RTM_GETNEXTHOP,
            Some(nexthop_rules::get_nexthop),
            Some(nexthop_rules::dump_nexthops),
            0,
        );
        // The kernel has no rule get.
        r.register(RTM_GETRULE, None, Some(nexthop_rules::dump_rules), 0);
        r.register(
            ct(IPCTNL_MSG_CT_GET),
            Some(handlers::get_ct),
            Some(handlers::dump_ct),
            0,
        );
        r.register(
            ct(IPCTNL_MSG_CT_GET_STATS),
            Some(handlers::ct_count),
            None,
            0,
        );
        for ty in [
            RTM_NEWLINK,
            RTM_DELLINK,
            RTM_SETLINK,
            RTM_NEWROUTE,
            RTM_DELROUTE,
            RTM_NEWADDR,
            RTM_DELADDR,
            RTM_NEWNEIGH,
            RTM_DELNEIGH,
            RTM_NEWNEXTHOP,
            RTM_DELNEXTHOP,
            RTM_NEWRULE,
            RTM_DELRULE,
            ct(IPCTNL_MSG_CT_NEW),
            ct(IPCTNL_MSG_CT_DELETE),
        ] {
            // No server lock: the writer pipelines the writes of all clients.
            r.register(ty, Some(handlers::write), None, 0);
        }
        r
    }
}
