//! Where outgoing webhooks may go: the guard against server-side request forgery.
//!
//! Webhook URLs are chosen by users (a consumer's owner sets its notice webhook), so a
//! delivery must not become a way to reach what only the service can reach: loopback,
//! link-local (cloud metadata at 169.254.169.254), private and unique-local networks,
//! multicast, unspecified and reserved addresses. `https://` only, unless the operator
//! allows `http://` (tests, development). A host name is resolved by the client's own
//! resolver ([`GuardedResolver`]), which returns only the addresses the policy admits,
//! so the connection goes to an address that was checked: nothing can resolve the name
//! again in between (no DNS rebinding). Redirects are off in the client. An operator
//! admits internal receivers by listing their networks (`notifications.webhook_allow`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// A delivery the policy refuses, with why. Permanent: retrying would not change it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct Blocked(pub String);

/// A network in CIDR notation (`10.0.0.0/8`, `::1/128`, or a bare address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let (addr, prefix) = match raw.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (raw, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("{raw:?} is not an IP address or CIDR network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{raw:?}: the prefix must be 0 to {max}"))?,
        };
        Ok(Self { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_matches(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_matches(&net.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_matches(net: &[u8], ip: &[u8], prefix: u8) -> bool {
    let full = usize::from(prefix / 8);
    let rest = prefix % 8;
    if net[..full] != ip[..full] {
        return false;
    }
    rest == 0 || (net[full] ^ ip[full]) >> (8 - rest) == 0
}

/// An IPv4 address mapped into IPv6 (`::ffff:127.0.0.1`) is judged as the IPv4 one.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// Whether `ip` is an address only the service's own network should reach.
pub fn is_internal(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(ip) => internal_v4(ip),
        IpAddr::V6(ip) => internal_v6(ip),
    }
}

fn internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_unspecified()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // shared address space (carrier NAT)
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240 // reserved
}

fn internal_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (first & 0xffc0) == 0xfec0 // site-local (deprecated) fec0::/10
        || ip.to_ipv4().is_some_and(|v4| internal_v4(v4) && ip.segments()[..6] == [0; 6]) // ::a.b.c.d
}

/// The operator's rules for outgoing webhooks.
#[derive(Debug, Clone, Default)]
pub struct OutboundPolicy {
    /// Whether `http://` URLs may be used (tests, development).
    pub allow_http: bool,
    /// Internal networks webhooks may reach nonetheless.
    pub allowed: Vec<Network>,
}

impl OutboundPolicy {
    /// Whether a connection to `ip` is allowed.
    pub fn admits(&self, ip: IpAddr) -> bool {
        !is_internal(ip) || self.allowed.iter().any(|n| n.contains(ip))
    }

    /// Checks what can be checked without resolving: the scheme, and the address when
    /// the host is one.
    pub fn check_url(&self, url: &str) -> Result<(), Blocked> {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| Blocked(format!("the webhook URL is unusable: {e}")))?;
        match parsed.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            "http" => {
                return Err(Blocked(
                    "webhook URLs must use https:// (notifications.webhook_allow_http is off)"
                        .into(),
                ));
            }
            other => {
                return Err(Blocked(format!(
                    "webhook URLs must use https://, not {other}://"
                )));
            }
        }
        let literal = match parsed.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            Some(url::Host::Domain(_)) => None,
            None => return Err(Blocked("the webhook URL names no host".into())),
        };
        match literal {
            Some(ip) if !self.admits(ip) => Err(blocked_address(ip)),
            _ => Ok(()),
        }
    }
}

fn blocked_address(ip: IpAddr) -> Blocked {
    Blocked(format!(
        "{ip} is an internal address (loopback, link-local, private, unique-local, multicast or reserved); \
         webhooks may not reach it unless notifications.webhook_allow lists its network"
    ))
}

/// The webhook client's resolver: the system's answer, less the addresses the policy
/// refuses. The client connects only to what this returns.
pub struct GuardedResolver {
    pub policy: Arc<OutboundPolicy>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let admitted: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| policy.admits(a.ip()))
                .collect();
            if admitted.is_empty() {
                let refused = found.first().map(|a| a.ip());
                let error: Box<dyn std::error::Error + Send + Sync> = match refused {
                    Some(ip) => Box::new(Blocked(format!(
                        "{host} resolves to {}",
                        blocked_address(ip)
                    ))),
                    None => format!("{host} resolves to no address").into(),
                };
                return Err(error);
            }
            let addrs: reqwest::dns::Addrs = Box::new(admitted.into_iter());
            Ok(addrs)
        })
    }
}

/// The policy refusal somewhere in `error`'s causes, if that is what failed.
pub fn blocked_cause<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a Blocked> {
    let mut cause: Option<&'a (dyn std::error::Error + 'static)> = Some(error);
    while let Some(c) = cause {
        if let Some(blocked) = c.downcast_ref::<Blocked>() {
            return Some(blocked);
        }
        cause = c.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn internal_addresses_are_recognised_in_both_families() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
        ] {
            assert!(is_internal(ip(internal)), "{internal}");
        }
        for public in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:93.184.216.34",
        ] {
            assert!(!is_internal(ip(public)), "{public}");
        }
    }

    #[test]
    fn an_allowlisted_network_admits_its_addresses_only() {
        let policy = OutboundPolicy {
            allow_http: true,
            allowed: vec![
                Network::parse("127.0.0.0/8").unwrap(),
                Network::parse("fd00::/8").unwrap(),
            ],
        };
        assert!(policy.admits(ip("127.0.0.1")));
        assert!(policy.admits(ip("::ffff:127.0.0.2")));
        assert!(policy.admits(ip("fd12::1")));
        assert!(!policy.admits(ip("10.0.0.1")));
        assert!(!policy.admits(ip("::1")));
        assert!(Network::parse("10.0.0.0/33").is_err());
        assert!(Network::parse("not-an-ip").is_err());
    }

    #[test]
    fn urls_are_refused_for_their_scheme_or_literal_address_before_any_connection() {
        let strict = OutboundPolicy::default();
        assert!(strict.check_url("https://hooks.example.org/x").is_ok());
        assert!(strict.check_url("http://hooks.example.org/x").is_err());
        assert!(strict.check_url("https://127.0.0.1:8443/x").is_err());
        assert!(strict.check_url("https://[::1]/x").is_err());
        assert!(
            strict
                .check_url("https://169.254.169.254/latest/meta-data")
                .is_err()
        );
        assert!(strict.check_url("ftp://hooks.example.org/").is_err());
        let testing = OutboundPolicy {
            allow_http: true,
            allowed: vec![Network::parse("127.0.0.1").unwrap()],
        };
        assert!(testing.check_url("http://127.0.0.1:9/x").is_ok());
        assert!(testing.check_url("http://127.0.0.2:9/x").is_err());
    }
}
