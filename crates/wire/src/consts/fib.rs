//! `linux/nexthop.h` (nexthop objects) and `linux/fib_rules.h` (policy rules).

// struct nhmsg attributes (NHA_*).
pub const NHA_UNSPEC: u16 = 0;
pub const NHA_ID: u16 = 1;
pub const NHA_GROUP: u16 = 2;
pub const NHA_GROUP_TYPE: u16 = 3;
pub const NHA_BLACKHOLE: u16 = 4;
pub const NHA_OIF: u16 = 5;
pub const NHA_GATEWAY: u16 = 6;
pub const NHA_ENCAP_TYPE: u16 = 7;
pub const NHA_ENCAP: u16 = 8;
pub const NHA_GROUPS: u16 = 9;
pub const NHA_MASTER: u16 = 10;
pub const NHA_FDB: u16 = 11;
pub const NHA_RES_GROUP: u16 = 12;
pub const NHA_RES_BUCKET: u16 = 13;
pub const NHA_OP_FLAGS: u16 = 14;
pub const NHA_GROUP_STATS: u16 = 15;
pub const NHA_HW_STATS_ENABLE: u16 = 16;
pub const NHA_HW_STATS_USED: u16 = 17;

// NHA_GROUP_TYPE values.
pub const NEXTHOP_GRP_TYPE_MPATH: u16 = 0;
pub const NEXTHOP_GRP_TYPE_RES: u16 = 1;

/// Size of `struct nexthop_grp { u32 id; u8 weight; u8 weight_high; u16 resvd2; }`.
pub const NEXTHOP_GRP_LEN: usize = 8;

// NHA_RES_GROUP nested attributes.
pub const NHA_RES_GROUP_PAD: u16 = 0;
pub const NHA_RES_GROUP_BUCKETS: u16 = 1;
pub const NHA_RES_GROUP_IDLE_TIMER: u16 = 2;
pub const NHA_RES_GROUP_UNBALANCED_TIMER: u16 = 3;
pub const NHA_RES_GROUP_UNBALANCED_TIME: u16 = 4;

// NHA_RES_BUCKET nested attributes.
pub const NHA_RES_BUCKET_PAD: u16 = 0;
pub const NHA_RES_BUCKET_INDEX: u16 = 1;
pub const NHA_RES_BUCKET_IDLE_TIME: u16 = 2;
pub const NHA_RES_BUCKET_NH_ID: u16 = 3;

// struct fib_rule_hdr attributes (FRA_*).
pub const FRA_UNSPEC: u16 = 0;
pub const FRA_DST: u16 = 1;
pub const FRA_SRC: u16 = 2;
pub const FRA_IIFNAME: u16 = 3;
pub const FRA_IFNAME: u16 = FRA_IIFNAME;
pub const FRA_GOTO: u16 = 4;
pub const FRA_UNUSED2: u16 = 5;
pub const FRA_PRIORITY: u16 = 6;
pub const FRA_UNUSED3: u16 = 7;
pub const FRA_UNUSED4: u16 = 8;
pub const FRA_UNUSED5: u16 = 9;
pub const FRA_FWMARK: u16 = 10;
pub const FRA_FLOW: u16 = 11;
pub const FRA_TUN_ID: u16 = 12;
pub const FRA_SUPPRESS_IFGROUP: u16 = 13;
pub const FRA_SUPPRESS_PREFIXLEN: u16 = 14;
pub const FRA_TABLE: u16 = 15;
pub const FRA_FWMASK: u16 = 16;
pub const FRA_OIFNAME: u16 = 17;
pub const FRA_PAD: u16 = 18;
pub const FRA_L3MDEV: u16 = 19;
pub const FRA_UID_RANGE: u16 = 20;
pub const FRA_PROTOCOL: u16 = 21;
pub const FRA_IP_PROTO: u16 = 22;
pub const FRA_SPORT_RANGE: u16 = 23;
pub const FRA_DPORT_RANGE: u16 = 24;
pub const FRA_DSCP: u16 = 25;
pub const FRA_FLOWLABEL: u16 = 26;
pub const FRA_FLOWLABEL_MASK: u16 = 27;
pub const FRA_SPORT_MASK: u16 = 28;
pub const FRA_DPORT_MASK: u16 = 29;
pub const FRA_DSCP_MASK: u16 = 30;

// fib_rule_hdr.action (FR_ACT_*).
pub const FR_ACT_UNSPEC: u8 = 0;
pub const FR_ACT_TO_TBL: u8 = 1;
pub const FR_ACT_GOTO: u8 = 2;
pub const FR_ACT_NOP: u8 = 3;
pub const FR_ACT_RES3: u8 = 4;
pub const FR_ACT_RES4: u8 = 5;
pub const FR_ACT_BLACKHOLE: u8 = 6;
pub const FR_ACT_UNREACHABLE: u8 = 7;
pub const FR_ACT_PROHIBIT: u8 = 8;

// fib_rule_hdr.flags (FIB_RULE_*).
pub const FIB_RULE_PERMANENT: u32 = 0x0000_0001;
pub const FIB_RULE_INVERT: u32 = 0x0000_0002;
pub const FIB_RULE_UNRESOLVED: u32 = 0x0000_0004;
pub const FIB_RULE_IIF_DETACHED: u32 = 0x0000_0008;
pub const FIB_RULE_DEV_DETACHED: u32 = FIB_RULE_IIF_DETACHED;
pub const FIB_RULE_OIF_DETACHED: u32 = 0x0000_0010;
pub const FIB_RULE_FIND_SADDR: u32 = 0x0001_0000;
