//! The client address of a request: the socket peer, or `X-Forwarded-For` when the peer is a trusted proxy.

use std::net::IpAddr;

use ipnet::IpNet;

/// Returns the client address.
///
/// `X-Forwarded-For` is read only when `peer` is in `trusted_proxies`. Its entries are then
/// walked from the right, skipping trusted proxies, and the first untrusted address is the client,
/// because entries left of it may be forged by the client itself. An entry that is not an
/// address stops the walk, and the last trusted hop is used.
pub fn client_ip(
    peer: Option<IpAddr>,
    forwarded_for: Option<&str>,
    trusted_proxies: &[IpNet],
) -> Option<IpAddr> {
    let peer = canonical(peer?);
    let is_trusted = |address: &IpAddr| trusted_proxies.iter().any(|net| net.contains(address));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let Some(forwarded_for) = forwarded_for else {
        return Some(peer);
    };
    let mut client = peer;
    for entry in forwarded_for.rsplit(',') {
        match parse_entry(entry) {
            Some(address) if is_trusted(&address) => client = address,
            Some(address) => return Some(address),
            None => return Some(client),
        }
    }
    Some(client)
}

/// Parses an address as proxies write it: bare, or with a port, IPv6 possibly in brackets.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    if let Ok(address) = entry.parse::<IpAddr>() {
        return Some(canonical(address));
    }
    if let Ok(socket) = entry.parse::<std::net::SocketAddr>() {
        return Some(canonical(socket.ip()));
    }
    entry
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|inner| inner.parse::<IpAddr>().ok())
        .map(canonical)
}

fn canonical(address: IpAddr) -> IpAddr {
    address.to_canonical()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn proxies() -> Vec<IpNet> {
        vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()]
    }

    #[test]
    fn untrusted_peer_cannot_set_forwarded_for() {
        let client = client_ip(Some(ip("192.0.2.7")), Some("198.51.100.1"), &proxies());
        assert_eq!(client, Some(ip("192.0.2.7")));
    }

    #[test]
    fn trusted_peer_gives_rightmost_untrusted_hop() {
        let client = client_ip(
            Some(ip("127.0.0.1")),
            Some("203.0.113.9, 198.51.100.1, 127.0.0.2"),
            &proxies(),
        );
        assert_eq!(client, Some(ip("198.51.100.1")));
    }

    #[test]
    fn trusted_peer_without_header_or_with_garbage() {
        assert_eq!(
            client_ip(Some(ip("127.0.0.1")), None, &proxies()),
            Some(ip("127.0.0.1"))
        );
        assert_eq!(
            client_ip(
                Some(ip("127.0.0.1")),
                Some("unknown, 127.0.0.3"),
                &proxies()
            ),
            Some(ip("127.0.0.3"))
        );
    }

    #[test]
    fn entries_with_ports_and_brackets_parse() {
        assert_eq!(parse_entry("198.51.100.1:443"), Some(ip("198.51.100.1")));
        assert_eq!(parse_entry("[2001:db8::1]:443"), Some(ip("2001:db8::1")));
        assert_eq!(parse_entry("[2001:db8::1]"), Some(ip("2001:db8::1")));
        assert_eq!(parse_entry("::ffff:192.0.2.1"), Some(ip("192.0.2.1")));
    }
}
