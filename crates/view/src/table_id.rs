//! [`TableId`]: the mirror's tables.

/// One mirror table. Its number (`as u16`) names it in the shared-memory directory too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TableId {
    /// Links (`RTM_GETLINK`).
    Links,
    /// IPv4 addresses.
    Addrs4,
    /// IPv6 addresses.
    Addrs6,
    /// IPv4 routes (all tables).
    Routes4,
    /// IPv6 routes (all tables).
    Routes6,
    /// IPv4 neighbours (ARP).
    Neigh4,
    /// IPv6 neighbours (NDP).
    Neigh6,
    /// Nexthop objects (`ip nexthop`; all families).
    Nexthops,
    /// IPv4 policy rules (`ip rule`).
    Rules4,
    /// IPv6 policy rules (`ip -6 rule`).
    Rules6,
    /// Conntrack entries (all families).
    Conntrack,
}

impl TableId {
    /// The rtnetlink tables (every table but conntrack), in table-number order.
    pub const RTNL: [TableId; 10] = [
        TableId::Links,
        TableId::Addrs4,
        TableId::Addrs6,
        TableId::Routes4,
        TableId::Routes6,
        TableId::Neigh4,
        TableId::Neigh6,
        TableId::Nexthops,
        TableId::Rules4,
        TableId::Rules6,
    ];

    /// Every table, in table-number order: [`RTNL`](Self::RTNL), then conntrack.
    ///
    /// ```
    /// use nlkit_view::TableId;
    /// assert!(TableId::ALL.iter().enumerate().all(|(i, &t)| t as usize == i));
    /// ```
    pub const ALL: [TableId; 11] = {
        let mut all = [TableId::Conntrack; 11];
        let mut i = 0;
        while i < Self::RTNL.len() {
            all[i] = Self::RTNL[i];
            i += 1;
        }
        all
    };

    /// The name used in metrics and logs.
    ///
    /// ```
    /// assert_eq!(nlkit_view::TableId::Routes6.name(), "routes6");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            TableId::Links => "links",
            TableId::Addrs4 => "addrs4",
            TableId::Addrs6 => "addrs6",
            TableId::Routes4 => "routes4",
            TableId::Routes6 => "routes6",
            TableId::Neigh4 => "neigh4",
            TableId::Neigh6 => "neigh6",
            TableId::Nexthops => "nexthops",
            TableId::Rules4 => "rules4",
            TableId::Rules6 => "rules6",
            TableId::Conntrack => "conntrack",
        }
    }

    /// The table's bit in a set of tables (`1 << self as u16`).
    pub fn bit(self) -> u16 {
        1 << (self as u16)
    }
}
