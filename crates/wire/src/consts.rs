//! Kernel uAPI constants, named exactly as in the Linux headers (`linux/netlink.h`,
//! `linux/rtnetlink.h`, `linux/if_link.h`, `linux/neighbour.h`,
//! `linux/netfilter/nfnetlink_conntrack.h`, `linux/genetlink.h`, `linux/nexthop.h`,
//! `linux/fib_rules.h`), so that a reader who knows the
//! kernel's names finds them here. Each name means what the kernel header says it means.
//!
//! ```
//! use nlkit_wire::consts::*;
//! assert_eq!(NLM_F_DUMP, NLM_F_ROOT | NLM_F_MATCH);
//! assert_eq!(nfnl_msg_type(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_GET), 0x101);
//! ```
#![allow(missing_docs)]

mod ctnl;
mod fib;
mod genl;
mod linkkinds;
mod netlink;
mod rtnl;

pub use ctnl::*;
pub use fib::*;
pub use genl::*;
pub use linkkinds::*;
pub use netlink::*;
pub use rtnl::*;
