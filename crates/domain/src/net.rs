//! Where addresses lead: the public internet, or somewhere inside (loopback, private networks, link-local
//! metadata services). Streams and webhooks go only to the first unless the operator allows the rest.

use std::net::{IpAddr, Ipv4Addr};

/// Whether `address` is on the public internet: not loopback, private, link-local, shared (carrier NAT),
/// unspecified, broadcast or documentation space, so a stream or a webhook never reaches into the servers' own
/// network.
pub fn is_public(address: IpAddr) -> bool {
    let v4 = |ip: Ipv4Addr| {
        let [a, b, ..] = ip.octets();
        !(ip.is_loopback()
            || ip.is_private()
            || ip.is_link_local()
            || ip.is_unspecified()
            || ip.is_broadcast()
            || ip.is_documentation()
            || (a == 100 && (64..128).contains(&b)))
    };
    match address {
        IpAddr::V4(ip) => v4(ip),
        IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
            Some(mapped) => v4(mapped),
            None => {
                let first = ip.segments()[0];
                // Unique local (fc00::/7) and link-local (fe80::/10) are private too.
                !(ip.is_loopback() || ip.is_unspecified() || first & 0xfe00 == 0xfc00 || first & 0xffc0 == 0xfe80)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inside_addresses_are_told_from_public_ones() {
        for inside in ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0"]
            .into_iter()
            .chain(["::1", "fd00::1", "fe80::1", "::ffff:10.0.0.1", "255.255.255.255", "192.0.2.1"])
        {
            assert!(!is_public(inside.parse().unwrap()), "{inside}");
        }
        for public in ["8.8.8.8", "2001:4860::8888", "::ffff:8.8.8.8", "100.128.0.1"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }
}
