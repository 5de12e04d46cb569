//! Which addresses a fetch may reach: the public-address rule ([`is_public`], with IPv4
//! embedded in IPv6 unwrapped) and the [`AllowList`] of exceptions from `MEDIA_FETCH_ALLOW`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Exceptions to the public-address rule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    nets: Vec<(IpAddr, u8)>,
    hosts: Vec<String>,
}

impl AllowList {
    /// Parses a comma-separated list of CIDRs, addresses and host names.
    pub fn parse(s: &str) -> Result<AllowList, String> {
        let mut list = AllowList::default();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (addr, len) = match item.split_once('/') {
                Some((a, l)) => (a, Some(l)),
                None => (item, None),
            };
            let addr = addr.trim_start_matches('[').trim_end_matches(']');
            match addr.parse::<IpAddr>() {
                Ok(ip) => {
                    let max = if ip.is_ipv4() { 32 } else { 128 };
                    let len = match len {
                        None => max,
                        Some(l) => l.parse::<u8>().ok().filter(|l| *l <= max).ok_or_else(|| {
                            format!("{item:?}: the prefix length must be 0-{max}")
                        })?,
                    };
                    list.nets.push((ip, len));
                }
                Err(_) if len.is_none() && valid_host(addr) => {
                    list.hosts.push(addr.to_ascii_lowercase())
                }
                Err(_) => {
                    return Err(format!(
                        "{item:?} is neither an address, a CIDR nor a host name"
                    ));
                }
            }
        }
        Ok(list)
    }

    pub fn is_empty(&self) -> bool {
        self.nets.is_empty() && self.hosts.is_empty()
    }

    /// Whether `host` is named in the list (then any address it resolves to is accepted).
    pub fn allows_host(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.hosts.iter().any(|h| *h == host)
    }

    /// Whether `ip` falls in one of the list's networks.
    pub fn allows_ip(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.nets
            .iter()
            .any(|(net, len)| in_net(ip, canonical(*net), *len))
    }
}

fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
pub(super) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

pub(super) fn in_net(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

fn v4_in(ip: Ipv4Addr, net: [u8; 4], len: u8) -> bool {
    in_net(IpAddr::V4(ip), IpAddr::V4(Ipv4Addr::from(net)), len)
}

/// Whether an IPv4 address is publicly routable.
fn public_v4(ip: Ipv4Addr) -> bool {
    const NOT_PUBLIC: &[([u8; 4], u8)] = &[
        ([0, 0, 0, 0], 8),       // "this network", unspecified
        ([10, 0, 0, 0], 8),      // private
        ([100, 64, 0, 0], 10),   // carrier-grade NAT
        ([127, 0, 0, 0], 8),     // loopback
        ([169, 254, 0, 0], 16),  // link-local, cloud metadata
        ([172, 16, 0, 0], 12),   // private
        ([192, 0, 0, 0], 24),    // IETF protocol assignments
        ([192, 0, 2, 0], 24),    // documentation
        ([192, 88, 99, 0], 24),  // 6to4 relay anycast
        ([192, 168, 0, 0], 16),  // private
        ([198, 18, 0, 0], 15),   // benchmarking
        ([198, 51, 100, 0], 24), // documentation
        ([203, 0, 113, 0], 24),  // documentation
        ([224, 0, 0, 0], 4),     // multicast
        ([240, 0, 0, 0], 4),     // reserved, broadcast
    ];
    !NOT_PUBLIC.iter().any(|(net, len)| v4_in(ip, *net, *len))
}

/// Whether an address is publicly routable: the rule every fetched address must pass.
pub fn is_public(ip: IpAddr) -> bool {
    let v6 = match ip {
        IpAddr::V4(v4) => return public_v4(v4),
        IpAddr::V6(v6) => v6,
    };
    // Forms that carry an IPv4 address are judged by it.
    if let Some(v4) = v6.to_ipv4_mapped() {
        return public_v4(v4);
    }
    let seg = v6.segments();
    let embedded_low = || Ipv4Addr::from((u128::from(v6) & 0xffff_ffff) as u32);
    // IPv4-compatible (deprecated) ::a.b.c.d, and :: / ::1 themselves.
    if seg[..6].iter().all(|s| *s == 0) {
        return v6 != Ipv6Addr::UNSPECIFIED
            && v6 != Ipv6Addr::LOCALHOST
            && public_v4(embedded_low());
    }
    // NAT64 (64:ff9b::/96 and the local-use 64:ff9b:1::/48).
    if seg[0] == 0x64 && seg[1] == 0xff9b {
        return seg[2] == 0 && seg[3..6].iter().all(|s| *s == 0) && public_v4(embedded_low());
    }
    // 6to4: 2002:a.b.c.d::/48.
    if seg[0] == 0x2002 {
        let v4 = Ipv4Addr::new(
            (seg[1] >> 8) as u8,
            seg[1] as u8,
            (seg[2] >> 8) as u8,
            seg[2] as u8,
        );
        return public_v4(v4);
    }
    const NOT_PUBLIC: &[(u128, u8)] = &[
        (0x0100_0000_0000_0000_0000_0000_0000_0000, 64), // discard
        (0x2001_0000_0000_0000_0000_0000_0000_0000, 32), // Teredo
        (0x2001_0002_0000_0000_0000_0000_0000_0000, 48), // benchmarking
        (0x2001_0db8_0000_0000_0000_0000_0000_0000, 32), // documentation
        (0x3fff_0000_0000_0000_0000_0000_0000_0000, 20), // documentation
        (0xfc00_0000_0000_0000_0000_0000_0000_0000, 7),  // unique local (fd00:ec2::254)
        (0xfe80_0000_0000_0000_0000_0000_0000_0000, 10), // link-local
        (0xfec0_0000_0000_0000_0000_0000_0000_0000, 10), // site-local
        (0xff00_0000_0000_0000_0000_0000_0000_0000, 8),  // multicast
    ];
    !NOT_PUBLIC
        .iter()
        .any(|(net, len)| in_net(IpAddr::V6(v6), IpAddr::V6(Ipv6Addr::from(*net)), *len))
}
