//! Conntrack statistics replies: the global entry count and per-CPU counters.

use nlkit_wire::consts::*;
use nlkit_wire::{Message, NfGenMsg};

use crate::Error;

fn check(msg: &Message<'_>, want: u8) -> Result<(), Error> {
    let [subsys, ty] = msg.ty().to_be_bytes();
    if subsys != NFNL_SUBSYS_CTNETLINK || ty != want {
        return Err(Error::UnexpectedType(msg.ty()));
    }
    Ok(())
}

/// The reply to [`request::count`](crate::request::count): entries in the namespace's table.
///
/// ```
/// use nlkit_wire::{consts::*, MessageBuilder, Messages, NfGenMsg};
/// let mut b = MessageBuilder::new();
/// b.begin(nfnl_msg_type(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_GET_STATS), 0, 1);
/// b.header(&NfGenMsg::default());
/// b.attr_be32(CTA_STATS_GLOBAL_ENTRIES, 42);
/// b.finish().unwrap();
/// let m = Messages::new(b.as_bytes()).next().unwrap().unwrap();
/// assert_eq!(nlkit_conntrack::GlobalStats::parse(&m).unwrap().entries, 42);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct GlobalStats {
    /// `CTA_STATS_GLOBAL_ENTRIES`.
    pub entries: u32,
    /// `CTA_STATS_GLOBAL_MAX_ENTRIES` (the global `nf_conntrack_max`), when sent.
    pub max_entries: Option<u32>,
}

impl GlobalStats {
    /// Decodes an `IPCTNL_MSG_CT_GET_STATS` reply.
    pub fn parse(msg: &Message<'_>) -> Result<Self, Error> {
        check(msg, IPCTNL_MSG_CT_GET_STATS)?;
        let (_, attrs) = msg.family_header::<NfGenMsg>()?;
        let mut s = GlobalStats::default();
        let mut seen = false;
        for a in attrs {
            let a = a?;
            match a.ty() {
                CTA_STATS_GLOBAL_ENTRIES => {
                    s.entries = a.be32()?;
                    seen = true;
                }
                CTA_STATS_GLOBAL_MAX_ENTRIES => s.max_entries = Some(a.be32()?),
                _ => {}
            }
        }
        if seen {
            Ok(s)
        } else {
            Err(Error::Missing("CTA_STATS_GLOBAL_ENTRIES"))
        }
    }
}

/// One CPU's conntrack counters, from an `IPCTNL_MSG_CT_GET_STATS_CPU` dump message (the CPU
/// number travels in `nfgenmsg.res_id`). Counters a kernel does not send stay 0.
///
/// ```
/// use nlkit_wire::{consts::*, MessageBuilder, Messages, NfGenMsg};
/// let mut b = MessageBuilder::new();
/// b.begin(nfnl_msg_type(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_GET_STATS_CPU), 0, 1);
/// b.header(&NfGenMsg { res_id: 3, ..Default::default() });
/// b.attr_be32(CTA_STATS_FOUND, 5).attr_be32(CTA_STATS_DROP, 1);
/// b.finish().unwrap();
/// let m = Messages::new(b.as_bytes()).next().unwrap().unwrap();
/// let s = nlkit_conntrack::CpuStats::parse(&m).unwrap();
/// assert_eq!((s.cpu, s.found, s.drop), (3, 5, 1));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[allow(missing_docs)]
pub struct CpuStats {
    /// The CPU number.
    pub cpu: u16,
    pub searched: u32,
    pub found: u32,
    pub new: u32,
    pub invalid: u32,
    pub ignore: u32,
    pub delete: u32,
    pub delete_list: u32,
    pub insert: u32,
    pub insert_failed: u32,
    pub drop: u32,
    pub early_drop: u32,
    pub error: u32,
    pub search_restart: u32,
    pub clash_resolve: u32,
    pub chain_toolong: u32,
}

impl CpuStats {
    /// Decodes one `IPCTNL_MSG_CT_GET_STATS_CPU` dump message.
    pub fn parse(msg: &Message<'_>) -> Result<Self, Error> {
        check(msg, IPCTNL_MSG_CT_GET_STATS_CPU)?;
        let (h, attrs) = msg.family_header::<NfGenMsg>()?;
        let mut s = CpuStats {
            cpu: h.res_id,
            ..Default::default()
        };
        for a in attrs {
            let a = a?;
            let slot = match a.ty() {
                CTA_STATS_SEARCHED => &mut s.searched,
                CTA_STATS_FOUND => &mut s.found,
                CTA_STATS_NEW => &mut s.new,
                CTA_STATS_INVALID => &mut s.invalid,
                CTA_STATS_IGNORE => &mut s.ignore,
                CTA_STATS_DELETE => &mut s.delete,
                CTA_STATS_DELETE_LIST => &mut s.delete_list,
                CTA_STATS_INSERT => &mut s.insert,
                CTA_STATS_INSERT_FAILED => &mut s.insert_failed,
                CTA_STATS_DROP => &mut s.drop,
                CTA_STATS_EARLY_DROP => &mut s.early_drop,
                CTA_STATS_ERROR => &mut s.error,
                CTA_STATS_SEARCH_RESTART => &mut s.search_restart,
                CTA_STATS_CLASH_RESOLVE => &mut s.clash_resolve,
                CTA_STATS_CHAIN_TOOLONG => &mut s.chain_toolong,
                _ => continue,
            };
            *slot = a.be32()?;
        }
        Ok(s)
    }
}
