//! Addresses for property tests of text formatters: the shapes whose text differs most
//! (RFC 5952 zero runs, IPv4-mapped and IPv4-compatible IPv6).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An address of the `v6` family made from `raw`: for IPv6, `shape % 4` picks plain bits,
/// zero groups where the top byte's bits are clear (long zero runs), IPv4-mapped, or
/// IPv4-compatible.
///
/// ```
/// use nlkit_testns::shaped_addr;
/// assert_eq!(shaped_addr(false, 0x0a00_0001, 0).to_string(), "10.0.0.1");
/// assert_eq!(shaped_addr(true, 0x0a00_0001, 2).to_string(), "::ffff:10.0.0.1");
/// ```
pub fn shaped_addr(v6: bool, raw: u128, shape: u8) -> IpAddr {
    if !v6 {
        return IpAddr::V4(Ipv4Addr::from(raw as u32));
    }
    let a = match shape % 4 {
        0 => Ipv6Addr::from(raw),
        // Zero groups where the mask's bits are clear.
        1 => {
            let mut s = Ipv6Addr::from(raw).segments();
            for (i, g) in s.iter_mut().enumerate() {
                if (raw >> (120 + i)) & 1 == 0 {
                    *g = 0;
                }
            }
            Ipv6Addr::from(s)
        }
        2 => Ipv4Addr::from(raw as u32).to_ipv6_mapped(),
        _ => Ipv4Addr::from(raw as u32).to_ipv6_compatible(),
    };
    IpAddr::V6(a)
}
