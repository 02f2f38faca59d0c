//! Which address a request comes from, for the per-IP attempt limit.
//!
//! Without configuration it is the peer of the TCP connection. Behind a load
//! balancer every client would then share the balancer's address, so the
//! operator names the proxies it trusts (`[limits] trusted_proxies`, CIDRs):
//! when the peer is one of them, the client is the right-most address of
//! `X-Forwarded-For` that is not itself a trusted proxy. A client cannot
//! forge its way past the limit: the header is read only from trusted peers,
//! and only the hops they appended count.

use std::net::IpAddr;

/// Longest `X-Forwarded-For` value read; longer ones fall back to the peer.
pub const FORWARDED_FOR_MAX_BYTES: usize = 1024;

/// An address range (`10.0.0.0/8`, `::1/128`, or one address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix_bits: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let text = text.trim();
        let (addr, bits) = match text.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (text, None),
        };
        let net: IpAddr = addr
            .parse()
            .map_err(|_| format!("{text:?} is not an address or CIDR range"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix_bits = match bits {
            None => max,
            Some(b) => b
                .parse::<u8>()
                .ok()
                .filter(|b| *b <= max)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to {max}"))?,
        };
        Ok(Cidr { net, prefix_bits })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match (self.net, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            _ => ip,
        };
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix_bits))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix_bits))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// The client of a request from `peer` carrying `forwarded_for`.
pub fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[Cidr]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let Some(header) = forwarded_for.filter(|h| h.len() <= FORWARDED_FOR_MAX_BYTES) else {
        return peer;
    };
    let mut client = peer;
    for hop in header.rsplit(',') {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !is_trusted(ip) {
                    return ip;
                }
            }
            // A hop we cannot read: stop at the last one we could.
            Err(_) => return client,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_match_what_they_cover() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains(ip("10.1.2.3")));
        assert!(!c.contains(ip("11.0.0.1")));
        assert!(c.contains(ip("::ffff:10.0.0.1")));
        assert!(Cidr::parse("::1").unwrap().contains(ip("::1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("example.com").is_err());
    }

    #[test]
    fn the_client_is_the_right_most_untrusted_hop_behind_trusted_peers_only() {
        let trusted = [Cidr::parse("10.0.0.0/8").unwrap()];
        // A client talking directly cannot choose its address.
        assert_eq!(
            client_ip(ip("203.0.113.9"), Some("1.2.3.4"), &trusted),
            ip("203.0.113.9")
        );
        // Behind the balancer: the hop it appended.
        assert_eq!(
            client_ip(ip("10.0.0.5"), Some("1.2.3.4, 203.0.113.9"), &trusted),
            ip("203.0.113.9")
        );
        // Through two trusted proxies.
        assert_eq!(
            client_ip(ip("10.0.0.5"), Some("203.0.113.9, 10.0.0.7"), &trusted),
            ip("203.0.113.9")
        );
        // No header, or garbage: the peer.
        assert_eq!(client_ip(ip("10.0.0.5"), None, &trusted), ip("10.0.0.5"));
        assert_eq!(
            client_ip(ip("10.0.0.5"), Some("nonsense"), &trusted),
            ip("10.0.0.5")
        );
        // Nothing trusted: the header is ignored.
        assert_eq!(
            client_ip(ip("10.0.0.5"), Some("1.2.3.4"), &[]),
            ip("10.0.0.5")
        );
    }
}
