//! Fixed family headers that follow `nlmsghdr`, read and written byte by byte so that no
//! alignment is assumed.

use crate::WireError;

/// A fixed-size family header (`rtmsg`, `ifinfomsg`, …) that starts a message payload.
///
/// ```
/// use nlkit_wire::{FamilyHeader, IfAddrMsg};
/// let h = IfAddrMsg { family: 2, prefixlen: 24, flags: 0, scope: 0, index: 5 };
/// let mut buf = [0u8; IfAddrMsg::LEN];
/// h.write(&mut buf);
/// assert_eq!(IfAddrMsg::parse(&buf).unwrap(), h);
/// ```
pub trait FamilyHeader: Sized {
    /// The header's size in bytes (attributes start at this size rounded up to 4).
    const LEN: usize;
    /// The C name, for error messages.
    const NAME: &'static str;
    /// Reads the header from the start of `bytes`.
    fn parse(bytes: &[u8]) -> Result<Self, WireError>;
    /// Writes the header into the first [`LEN`](FamilyHeader::LEN) bytes of `out`.
    fn write(&self, out: &mut [u8]);
}

fn fixed<const N: usize>(bytes: &[u8], what: &'static str) -> Result<[u8; N], WireError> {
    bytes
        .get(..N)
        .and_then(|s| s.try_into().ok())
        .ok_or(WireError::Truncated {
            what,
            needed: N,
            available: bytes.len(),
        })
}

/// `struct ifinfomsg` (links).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IfInfoMsg {
    /// `ifi_family`.
    pub family: u8,
    /// `ifi_type`: the ARPHRD_* device type.
    pub ty: u16,
    /// `ifi_index`.
    pub index: i32,
    /// `ifi_flags`: IFF_* flags.
    pub flags: u32,
    /// `ifi_change`: which flags a request changes.
    pub change: u32,
}

impl FamilyHeader for IfInfoMsg {
    const LEN: usize = 16;
    const NAME: &'static str = "ifinfomsg";
    fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let b: [u8; 16] = fixed(bytes, Self::NAME)?;
        Ok(IfInfoMsg {
            family: b[0],
            ty: u16::from_ne_bytes([b[2], b[3]]),
            index: i32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
            flags: u32::from_ne_bytes([b[8], b[9], b[10], b[11]]),
            change: u32::from_ne_bytes([b[12], b[13], b[14], b[15]]),
        })
    }
    fn write(&self, out: &mut [u8]) {
        out[0] = self.family;
        out[1] = 0;
        out[2..4].copy_from_slice(&self.ty.to_ne_bytes());
        out[4..8].copy_from_slice(&self.index.to_ne_bytes());
        out[8..12].copy_from_slice(&self.flags.to_ne_bytes());
        out[12..16].copy_from_slice(&self.change.to_ne_bytes());
    }
}

/// `struct ifaddrmsg` (addresses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IfAddrMsg {
    /// `ifa_family`.
    pub family: u8,
    /// `ifa_prefixlen`.
    pub prefixlen: u8,
    /// `ifa_flags` (the low 8 IFA_F_* bits; `IFA_FLAGS` carries all 32).
    pub flags: u8,
    /// `ifa_scope`.
    pub scope: u8,
    /// `ifa_index`: the interface index.
    pub index: u32,
}

impl FamilyHeader for IfAddrMsg {
    const LEN: usize = 8;
    const NAME: &'static str = "ifaddrmsg";
    fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let b: [u8; 8] = fixed(bytes, Self::NAME)?;
        Ok(IfAddrMsg {
            family: b[0],
            prefixlen: b[1],
            flags: b[2],
            scope: b[3],
            index: u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
        })
    }
    fn write(&self, out: &mut [u8]) {
        out[..4].copy_from_slice(&[self.family, self.prefixlen, self.flags, self.scope]);
        out[4..8].copy_from_slice(&self.index.to_ne_bytes());
    }
}

/// `struct rtmsg` (routes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RtMsg {
    /// `rtm_family`.
    pub family: u8,
    /// `rtm_dst_len`: destination prefix length.
    pub dst_len: u8,
    /// `rtm_src_len`: source prefix length.
    pub src_len: u8,
    /// `rtm_tos`.
    pub tos: u8,
    /// `rtm_table` (255 at most; `RTA_TABLE` carries larger ids).
    pub table: u8,
    /// `rtm_protocol`: RTPROT_*.
    pub protocol: u8,
    /// `rtm_scope`: RT_SCOPE_*.
    pub scope: u8,
    /// `rtm_type`: RTN_*.
    pub ty: u8,
    /// `rtm_flags`: RTM_F_* and RTNH_F_*.
    pub flags: u32,
}

impl FamilyHeader for RtMsg {
    const LEN: usize = 12;
    const NAME: &'static str = "rtmsg";
    // Inlined: a million-route listing parses one per route, and the call returned the
    // header through memory the caller then read back in wider loads (a stall each).
    #[inline]
    fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let b: [u8; 12] = fixed(bytes, Self::NAME)?;
        Ok(RtMsg {
            family: b[0],
            dst_len: b[1],
            src_len: b[2],
            tos: b[3],
            table: b[4],
            protocol: b[5],
            scope: b[6],
            ty: b[7],
            flags: u32::from_ne_bytes([b[8], b[9], b[10], b[11]]),
        })
    }
    fn write(&self, out: &mut [u8]) {
        out[..8].copy_from_slice(&[
            self.family,
            self.dst_len,
            self.src_len,
            self.tos,
            self.table,
            self.protocol,
            self.scope,
            self.ty,
        ]);
        out[8..12].copy_from_slice(&self.flags.to_ne_bytes());
    }
}

/// `struct ndmsg` (neighbours).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NdMsg {
    /// `ndm_family`.
    pub family: u8,
    /// `ndm_ifindex`.
    pub ifindex: i32,
    /// `ndm_state`: NUD_* bits.
    pub state: u16,
    /// `ndm_flags`: NTF_* bits.
    pub flags: u8,
    /// `ndm_type`.
    pub ty: u8,
}

impl FamilyHeader for NdMsg {
    const LEN: usize = 12;
    const NAME: &'static str = "ndmsg";
    fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let b: [u8; 12] = fixed(bytes, Self::NAME)?;
        Ok(NdMsg {
            family: b[0],
            ifindex: i32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
            state: u16::from_ne_bytes([b[8], b[9]]),
            flags: b[10],
            ty: b[11],
        })
    }
    fn write(&self, out: &mut [u8]) {
        out[..4].copy_from_slice(&[self.family, 0, 0, 0]);
        out[4..8].copy_from_slice(&self.ifindex.to_ne_bytes());
        out[8..10].copy_from_slice(&self.state.to_ne_bytes());
        out[10] = self.flags;
        out[11] = self.ty;
    }
}

/// `struct nfgenmsg` (nfnetlink, e.g. ctnetlink).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NfGenMsg {
    /// `nfgen_family`: the L3 protocol (AF_INET, AF_INET6, AF_UNSPEC).
    pub family: u8,
    /// `version`: NFNETLINK_V0.
    pub version: u8,
    /// `res_id` (sent big-endian; stored here in host order).
    pub res_id: u16,
}

impl FamilyHeader for NfGenMsg {
    const LEN: usize = 4;
    const NAME: &'static str = "nfgenmsg";
    fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let b: [u8; 4] = fixed(bytes, Self::NAME)?;
        Ok(NfGenMsg {
            family: b[0],
            version: b[1],
            res_id: u16::from_be_bytes([b[2], b[3]]),
        })
    }
    fn write(&self, out: &mut [u8]) {
        out[0] = self.family;
        out[1] = self.version;
        out[2..4].copy_from_slice(&self.res_id.to_be_bytes());
    }
}

/// `struct genlmsghdr` (generic netlink).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GenlMsgHdr {
    /// `cmd`.
    pub cmd: u8,
    /// `version`.
    pub version: u8,
}

impl FamilyHeader for GenlMsgHdr {
    const LEN: usize = 4;
    const NAME: &'static str = "genlmsghdr";
    fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let b: [u8; 4] = fixed(bytes, Self::NAME)?;
        Ok(GenlMsgHdr {
            cmd: b[0],
            version: b[1],
        })
    }
    fn write(&self, out: &mut [u8]) {
        out[..4].copy_from_slice(&[self.cmd, self.version, 0, 0]);
    }
}

/// `struct nhmsg` (nexthop objects, `RTM_*NEXTHOP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NhMsg {
    /// `nh_family`: `AF_INET`, `AF_INET6`, or `AF_UNSPEC` (groups, blackholes on dumps).
    pub family: u8,
    /// `nh_scope`: RT_SCOPE_*.
    pub scope: u8,
    /// `nh_protocol`: RTPROT_*.
    pub protocol: u8,
    /// `nh_flags`: RTNH_F_*.
    pub flags: u32,
}

impl FamilyHeader for NhMsg {
    const LEN: usize = 8;
    const NAME: &'static str = "nhmsg";
    fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let b: [u8; 8] = fixed(bytes, Self::NAME)?;
        Ok(NhMsg {
            family: b[0],
            scope: b[1],
            protocol: b[2],
            flags: u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
        })
    }
    fn write(&self, out: &mut [u8]) {
        out[..4].copy_from_slice(&[self.family, self.scope, self.protocol, 0]);
        out[4..8].copy_from_slice(&self.flags.to_ne_bytes());
    }
}

/// `struct fib_rule_hdr` (policy rules, `RTM_*RULE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FibRuleHdr {
    /// `family`: `AF_INET` or `AF_INET6`.
    pub family: u8,
    /// `dst_len`: destination prefix length.
    pub dst_len: u8,
    /// `src_len`: source prefix length.
    pub src_len: u8,
    /// `tos`: the TOS / DS field to match.
    pub tos: u8,
    /// `table` (255 at most; `FRA_TABLE` carries larger ids).
    pub table: u8,
    /// `action`: FR_ACT_*.
    pub action: u8,
    /// `flags`: FIB_RULE_*.
    pub flags: u32,
}

impl FamilyHeader for FibRuleHdr {
    const LEN: usize = 12;
    const NAME: &'static str = "fib_rule_hdr";
    fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let b: [u8; 12] = fixed(bytes, Self::NAME)?;
        Ok(FibRuleHdr {
            family: b[0],
            dst_len: b[1],
            src_len: b[2],
            tos: b[3],
            table: b[4],
            action: b[7],
            flags: u32::from_ne_bytes([b[8], b[9], b[10], b[11]]),
        })
    }
    fn write(&self, out: &mut [u8]) {
        out[..8].copy_from_slice(&[
            self.family,
            self.dst_len,
            self.src_len,
            self.tos,
            self.table,
            0,
            0,
            self.action,
        ]);
        out[8..12].copy_from_slice(&self.flags.to_ne_bytes());
    }
}
