//! Which address a request came from, for audit records: the connection's peer, unless
//! that peer is a proxy the operator trusts, in which case the proxy's header says.
//!
//! A header is believed only from a trusted peer, and only as far as the chain of
//! trusted proxies reaches: entries are read from the right (the hop nearest us), and
//! the first one that is not a trusted proxy is the client. Anything left of it was
//! written by that client and proves nothing.

use crate::config::HttpSettings;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, HeaderName};
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

#[derive(Debug, Clone)]
pub struct ClientAddresses {
    trusted: Vec<IpNet>,
    header: HeaderName,
}

impl ClientAddresses {
    /// From `http.trusted_proxies` and `http.client_ip_header`; the configuration's
    /// validation has already checked both parse, so a failure here names the value.
    pub fn from_settings(http: &HttpSettings) -> Result<Self, String> {
        let trusted = http
            .trusted_proxies
            .iter()
            .map(|p| crate::config::parse_trusted_proxy(p))
            .collect::<Result<_, _>>()?;
        let header = HeaderName::try_from(http.client_ip_header.as_str()).map_err(|_| {
            format!(
                "http.client_ip_header {:?} is not a header name",
                http.client_ip_header
            )
        })?;
        Ok(Self { trusted, header })
    }

    /// The client's address for a request with these extensions and headers; `None`
    /// when the request did not come over a socket (in-process calls in tests).
    pub fn of(&self, extensions: &axum::http::Extensions, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = extensions
            .get::<ConnectInfo<crate::tls::Peer>>()
            .map(|ConnectInfo(p)| p.addr.ip().to_canonical())?;
        Some(self.resolve(peer, headers))
    }

    fn resolve(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.is_trusted(peer) {
            return peer;
        }
        let mut nearest = peer;
        let hops: Vec<&str> = headers
            .get_all(&self.header)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect();
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop) else {
                // A garbled entry: what lies beyond it cannot be trusted either.
                return nearest;
            };
            nearest = ip;
            if !self.is_trusted(ip) {
                return ip;
            }
        }
        nearest
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(&ip))
    }
}

/// One entry of X-Forwarded-For: an address, optionally with a port (`[v6]:port` for
/// IPv6), as proxies write them.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

/// The client's address, for a handler that records a change before any actor exists
/// (signing in).
pub struct ClientIp(pub Option<IpAddr>);

impl axum::extract::FromRequestParts<super::AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &super::AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(
            state.client_addresses.of(&parts.extensions, &parts.headers),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addresses(trusted: &[&str]) -> ClientAddresses {
        let http = HttpSettings {
            trusted_proxies: trusted.iter().map(|s| s.to_string()).collect(),
            ..HttpSettings::default()
        };
        ClientAddresses::from_settings(&http).unwrap()
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let a = addresses(&["10.0.0.0/8"]);
        let got = a.resolve(ip("203.0.113.9"), &forwarded(&["198.51.100.1"]));
        assert_eq!(got, ip("203.0.113.9"));
    }

    #[test]
    fn a_trusted_chain_is_followed_to_the_first_untrusted_hop() {
        let a = addresses(&["10.0.0.0/8", "192.0.2.7"]);
        // The client forged the leftmost entry; the proxies appended the rest.
        let headers = forwarded(&["1.1.1.1, 198.51.100.4", "192.0.2.7"]);
        assert_eq!(a.resolve(ip("10.1.2.3"), &headers), ip("198.51.100.4"));
        assert_eq!(
            a.resolve(ip("10.1.2.3"), &forwarded(&["[2001:db8::5]:443"])),
            ip("2001:db8::5")
        );
    }

    #[test]
    fn without_a_header_or_past_a_garbled_entry_the_nearest_hop_stands() {
        let a = addresses(&["10.0.0.0/8"]);
        assert_eq!(a.resolve(ip("10.1.2.3"), &HeaderMap::new()), ip("10.1.2.3"));
        let headers = forwarded(&["198.51.100.4, not-an-address, 10.9.9.9"]);
        assert_eq!(a.resolve(ip("10.1.2.3"), &headers), ip("10.9.9.9"));
    }

    #[test]
    fn ipv4_mapped_peers_are_written_as_ipv4_and_bad_ranges_are_named() {
        assert_eq!(parse_hop(" ::ffff:198.51.100.4 "), Some(ip("198.51.100.4")));
        let err = crate::config::parse_trusted_proxy("10.0.0/33").unwrap_err();
        assert!(err.contains("10.0.0/33"), "{err}");
    }
}
