//! Connection tuples and directions.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::key::TableKey;

/// Which of a connection's two tuples a lookup matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// The tuple of the packet that created the connection.
    Original,
    /// The tuple of replies.
    Reply,
}

impl Direction {
    pub(crate) fn index(self) -> usize {
        match self {
            Direction::Original => 0,
            Direction::Reply => 1,
        }
    }
    pub(crate) fn from_index(i: usize) -> Self {
        if i == 0 {
            Direction::Original
        } else {
            Direction::Reply
        }
    }
    /// The other direction.
    ///
    /// ```
    /// use nlkit_table::Direction;
    /// assert_eq!(Direction::Original.opposite(), Direction::Reply);
    /// ```
    pub fn opposite(self) -> Self {
        Self::from_index(1 - self.index())
    }
}

/// The key a [`ConnTable`](crate::ConnTable) hashes: a connection tuple (addresses, ports or
/// ICMP id/type, L4 protocol, conntrack zone) in the table's own compact form. (The tuple as
/// ctnetlink encodes it is `nlkit_conntrack::Tuple`.)
///
/// ```
/// use nlkit_table::ConnKey;
/// let t = ConnKey::new("10.0.0.1".parse().unwrap(), 1234, "10.0.0.2".parse().unwrap(), 80, 6);
/// assert_eq!(t.reverse().src_port, 80);
/// assert_eq!(t.reverse().reverse(), t);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnKey {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port (or ICMP id).
    pub src_port: u16,
    /// Destination port (or ICMP type/code).
    pub dst_port: u16,
    /// IP protocol number.
    pub proto: u8,
    /// Conntrack zone.
    pub zone: u16,
}

impl ConnKey {
    /// A tuple in zone 0.
    pub fn new(src: IpAddr, src_port: u16, dst: IpAddr, dst_port: u16, proto: u8) -> Self {
        Self {
            src,
            dst,
            src_port,
            dst_port,
            proto,
            zone: 0,
        }
    }

    /// The same tuple with another zone.
    ///
    /// ```
    /// # use nlkit_table::ConnKey;
    /// let t = ConnKey::new("::1".parse().unwrap(), 1, "::2".parse().unwrap(), 2, 17).with_zone(3);
    /// assert_eq!(t.zone, 3);
    /// ```
    pub fn with_zone(mut self, zone: u16) -> Self {
        self.zone = zone;
        self
    }

    /// The tuple seen from the other end (addresses and ports swapped): the reply tuple of a
    /// connection without NAT.
    pub fn reverse(&self) -> Self {
        Self {
            src: self.dst,
            dst: self.src,
            src_port: self.dst_port,
            dst_port: self.src_port,
            proto: self.proto,
            zone: self.zone,
        }
    }
}

#[inline]
fn addr_words(a: &IpAddr) -> (u64, u64, u64) {
    match a {
        IpAddr::V4(v4) => (0, u64::from(u32::from(*v4)), 0),
        IpAddr::V6(v6) => {
            let x = u128::from(*v6);
            ((x >> 64) as u64, x as u64, 1)
        }
    }
}

#[inline]
fn words_addr(hi: u64, lo: u64, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(u128::from(hi) << 64 | u128::from(lo)))
    } else {
        IpAddr::V4(Ipv4Addr::from(lo as u32))
    }
}

impl TableKey for ConnKey {
    type Words = [u64; 5];

    #[inline]
    fn to_words(&self) -> [u64; 5] {
        let (s0, s1, sf) = addr_words(&self.src);
        let (d0, d1, df) = addr_words(&self.dst);
        let w4 = u64::from(self.src_port)
            | u64::from(self.dst_port) << 16
            | u64::from(self.proto) << 32
            | sf << 40
            | df << 41
            | u64::from(self.zone) << 48;
        [s0, s1, d0, d1, w4]
    }

    #[inline]
    fn from_words(w: &[u64; 5]) -> Self {
        Self {
            src: words_addr(w[0], w[1], w[4] >> 40 & 1 == 1),
            dst: words_addr(w[2], w[3], w[4] >> 41 & 1 == 1),
            src_port: w[4] as u16,
            dst_port: (w[4] >> 16) as u16,
            proto: (w[4] >> 32) as u8,
            zone: (w[4] >> 48) as u16,
        }
    }
}
