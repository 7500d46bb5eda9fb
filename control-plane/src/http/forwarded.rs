//! The client's address behind a reverse proxy. Requests through a proxy all come from
//! the proxy's address; the proxy names the client in `X-Forwarded-For`, appending the
//! address it got the request from. Anyone can send that header, so it is believed only
//! from a proxy the operator listed (`--trusted-proxies`): the address taken is the first
//! one, reading from the right (the nearest hop), that is not a trusted proxy. With no
//! proxy listed the header is ignored and the peer is the client. Rate limits, session
//! networks and audit entries all use this address.

use ipnet::IpNet;
use std::net::IpAddr;

/// Parses `--trusted-proxies` entries: addresses (`10.0.0.5`, `::1`) or networks
/// (`10.0.0.0/8`, `fd00::/8`).
pub fn parse_trusted(entries: &[String]) -> anyhow::Result<Vec<IpNet>> {
    entries
        .iter()
        .map(|e| e.trim())
        .filter(|e| !e.is_empty())
        .map(|e| {
            e.parse::<IpNet>()
                .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    anyhow::anyhow!(
                        "--trusted-proxies: {e:?} is neither an IP address nor a network \
                         (like 10.0.0.0/8)"
                    )
                })
        })
        .collect()
}

/// The client of a request that came from `peer` with these `X-Forwarded-For` header
/// values (in the order received), given the trusted proxies.
pub fn real_client<'a>(
    peer: IpAddr,
    forwarded_for: impl Iterator<Item = &'a str>,
    trusted: &[IpNet],
) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(&canonical(*ip)));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<&str> = forwarded_for.flat_map(|v| v.split(',')).collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        // Something a proxy did not write (or a port, or garbage): stop at the last
        // address known good rather than believe it.
        let Some(ip) = parse_hop(hop) else {
            return client;
        };
        client = ip;
        if !is_trusted(&ip) {
            return ip;
        }
    }
    client
}

/// An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, from a dual-stack socket) as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn parse_hop(hop: &str) -> Option<IpAddr> {
    let h = hop.trim();
    let h = h
        .strip_prefix('[')
        .and_then(|r| r.split(']').next())
        .unwrap_or(h);
    h.parse::<IpAddr>().ok().map(canonical)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn trusted() -> Vec<IpNet> {
        parse_trusted(&["127.0.0.1".into(), "10.0.0.0/8".into()]).unwrap()
    }

    #[test]
    fn only_a_trusted_proxy_may_name_the_client() {
        let t = trusted();
        // Through the proxy: the address it appended.
        assert_eq!(
            real_client(ip("127.0.0.1"), ["203.0.113.7"].into_iter(), &t),
            ip("203.0.113.7")
        );
        // Straight from a client: its header is its own word, ignored.
        assert_eq!(
            real_client(ip("198.51.100.1"), ["203.0.113.7"].into_iter(), &t),
            ip("198.51.100.1")
        );
        // No proxy configured: never believed.
        assert_eq!(
            real_client(ip("127.0.0.1"), ["203.0.113.7"].into_iter(), &[]),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn a_client_cannot_pick_its_address_by_sending_the_header_itself() {
        let t = trusted();
        // The client sent "1.2.3.4"; the proxy appended the client's real address.
        assert_eq!(
            real_client(ip("127.0.0.1"), ["1.2.3.4, 203.0.113.7"].into_iter(), &t),
            ip("203.0.113.7")
        );
        // Two proxies (edge 10.1.2.3, then local): the hop before the first trusted one.
        assert_eq!(
            real_client(
                ip("127.0.0.1"),
                ["1.2.3.4", "203.0.113.7, 10.1.2.3"].into_iter(),
                &t
            ),
            ip("203.0.113.7")
        );
        // Garbage in the proxy's own position: the proxy, not anything further left.
        assert_eq!(
            real_client(ip("127.0.0.1"), ["1.2.3.4, unknown"].into_iter(), &t),
            ip("127.0.0.1")
        );
        // Only proxies in the chain: the farthest of them.
        assert_eq!(
            real_client(ip("127.0.0.1"), ["10.9.9.9"].into_iter(), &t),
            ip("10.9.9.9")
        );
        assert_eq!(
            real_client(ip("::ffff:127.0.0.1"), ["[2001:db8::1]"].into_iter(), &t),
            ip("2001:db8::1")
        );
    }

    #[test]
    fn entries_are_addresses_or_networks() {
        assert_eq!(
            parse_trusted(&["::1".into(), " fd00::/8 ".into(), "".into()])
                .unwrap()
                .len(),
            2
        );
        let e = parse_trusted(&["proxy.local".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("proxy.local"), "{e}");
    }
}
