//! Generic netlink: family and multicast group resolution by name, cached.
//!
//! Generic netlink families get their message type (family id) and multicast group numbers
//! at registration, so a client asks the controller (`nlctrl`, `CTRL_CMD_GETFAMILY`) for them
//! by name. Ids are global (not per network namespace) and stable while the family stays
//! registered; [`GenlResolver::forget`] drops a cached entry after a module reload.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use nlkit_wire::consts::{
    CTRL_ATTR_FAMILY_ID, CTRL_ATTR_FAMILY_NAME, CTRL_ATTR_HDRSIZE, CTRL_ATTR_MAXATTR,
    CTRL_ATTR_MCAST_GROUPS, CTRL_ATTR_MCAST_GRP_ID, CTRL_ATTR_MCAST_GRP_NAME, CTRL_ATTR_VERSION,
    CTRL_CMD_GETFAMILY, GENL_ID_CTRL,
};
use nlkit_wire::{GenlMsgHdr, Message, MessageBuilder};
use parking_lot::Mutex;

use crate::{Error, Pool, Protocol, Result, Socket};

/// A generic netlink family as the controller describes it.
///
/// ```
/// let f = nlkit_socket::genl::GenlFamily {
///     name: "nlctrl".into(), id: 16, version: 2, hdrsize: 0, maxattr: 10,
///     groups: vec![("notify".into(), 16)],
/// };
/// assert_eq!(f.group("notify"), Some(16));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenlFamily {
    /// The family name.
    pub name: String,
    /// The family id: the `nlmsg_type` of its messages.
    pub id: u16,
    /// The family's version.
    pub version: u32,
    /// Size of the family's own header after `genlmsghdr`.
    pub hdrsize: u32,
    /// The highest attribute type.
    pub maxattr: u32,
    /// Multicast groups: name and group number.
    pub groups: Vec<(String, u32)>,
}

impl GenlFamily {
    /// The number of the multicast group called `name`.
    pub fn group(&self, name: &str) -> Option<u32> {
        self.groups
            .iter()
            .find(|(n, _)| n == name)
            .map(|&(_, id)| id)
    }

    /// Decodes a `CTRL_CMD_NEWFAMILY` reply.
    pub fn parse(msg: &Message<'_>) -> Result<GenlFamily> {
        let (_, attrs) = msg.family_header::<GenlMsgHdr>()?;
        let mut f = GenlFamily {
            name: String::new(),
            id: 0,
            version: 0,
            hdrsize: 0,
            maxattr: 0,
            groups: Vec::new(),
        };
        for a in attrs {
            let a = a?;
            match a.ty() {
                CTRL_ATTR_FAMILY_ID => f.id = a.u16()?,
                CTRL_ATTR_FAMILY_NAME => f.name = a.str()?.to_owned(),
                CTRL_ATTR_VERSION => f.version = a.u32()?,
                CTRL_ATTR_HDRSIZE => f.hdrsize = a.u32()?,
                CTRL_ATTR_MAXATTR => f.maxattr = a.u32()?,
                CTRL_ATTR_MCAST_GROUPS => {
                    for g in a.nested() {
                        let (mut name, mut id) = (None, None);
                        for ga in g?.nested() {
                            let ga = ga?;
                            match ga.ty() {
                                CTRL_ATTR_MCAST_GRP_NAME => name = Some(ga.str()?.to_owned()),
                                CTRL_ATTR_MCAST_GRP_ID => id = Some(ga.u32()?),
                                _ => {}
                            }
                        }
                        if let (Some(n), Some(i)) = (name, id) {
                            f.groups.push((n, i));
                        }
                    }
                }
                _ => {}
            }
        }
        if f.id == 0 {
            return Err(Error::Genl("controller reply without a family id".into()));
        }
        Ok(f)
    }
}

/// Asks the controller for family `name` over `sock` (a generic netlink socket), uncached.
///
/// ```no_run
/// use nlkit_socket::{genl, Protocol, Socket};
/// let mut sock = Socket::open(Protocol::Generic)?;
/// let ctrl = genl::query_family(&mut sock, "nlctrl")?;
/// assert_eq!(ctrl.id, 16);
/// # Ok::<(), nlkit_socket::Error>(())
/// ```
pub fn query_family(sock: &mut Socket, name: &str) -> Result<GenlFamily> {
    let mut req = MessageBuilder::new();
    req.begin(GENL_ID_CTRL, 0, 0);
    req.header(&GenlMsgHdr {
        cmd: CTRL_CMD_GETFAMILY,
        version: 1,
    });
    req.attr_str(CTRL_ATTR_FAMILY_NAME, name);
    req.finish()?;
    let reply = sock.transact(&mut req)?;
    let msg = reply
        .messages()
        .next()
        .ok_or_else(|| Error::Genl(format!("no reply describing family {name}")))??;
    GenlFamily::parse(&msg)
}

/// A cache of generic netlink families, resolved through a pool's sockets.
///
/// ```no_run
/// let r = nlkit_socket::genl::GenlResolver::shared();
/// let ctrl = r.family("nlctrl")?;
/// let notify = r.group("nlctrl", "notify")?;
/// assert_eq!(ctrl.group("notify"), Some(notify));
/// # Ok::<(), nlkit_socket::Error>(())
/// ```
#[derive(Debug)]
pub struct GenlResolver {
    /// Immutable after construction.
    pool: Pool,
    /// Resolved families by name. Held only to look up or insert, never across a request.
    cache: Mutex<HashMap<String, Arc<GenlFamily>>>,
}

impl GenlResolver {
    /// A resolver using sockets from `pool` (a generic netlink pool).
    pub fn new(pool: Pool) -> GenlResolver {
        GenlResolver {
            pool,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The process-wide resolver over [`Pool::shared`]`(Protocol::Generic)`.
    pub fn shared() -> &'static GenlResolver {
        static SHARED: OnceLock<GenlResolver> = OnceLock::new();
        SHARED.get_or_init(|| GenlResolver::new(Pool::shared(Protocol::Generic).clone()))
    }

    /// The family `name`, from the cache or the kernel. An unknown family is the kernel's
    /// `ENOENT` ([`Error::Kernel`]).
    pub fn family(&self, name: &str) -> Result<Arc<GenlFamily>> {
        if let Some(f) = self.cache.lock().get(name) {
            return Ok(f.clone());
        }
        let mut sock = self.pool.get()?;
        let f = Arc::new(query_family(&mut sock, name)?);
        self.cache.lock().insert(name.to_owned(), f.clone());
        Ok(f)
    }

    /// The number of multicast group `group` of family `family`.
    pub fn group(&self, family: &str, group: &str) -> Result<u32> {
        self.family(family)?
            .group(group)
            .ok_or_else(|| Error::Genl(format!("family {family} has no multicast group {group}")))
    }

    /// Drops the cached entry for `name` (after the family was unregistered or reloaded).
    pub fn forget(&self, name: &str) {
        self.cache.lock().remove(name);
    }

    /// How many families are cached.
    pub fn cached(&self) -> usize {
        self.cache.lock().len()
    }
}
