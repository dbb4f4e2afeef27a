//! The egress guard: every outbound fetch whose address a user chooses (calendar feeds, CalDAV,
//! webhooks, and in time meeting signalling) goes through it, so a user cannot make the
//! server reach what only the server can reach: loopback, private networks, link-local (cloud
//! metadata), unique-local and shared-address (cluster) ranges are refused unless an operator
//! allow-lists them.
//!
//! Names are resolved by the guard and only permitted addresses are handed to the connector,
//! so a name that resolves inward is refused before any packet is sent to it, and a DNS answer
//! cannot change between the check and the connection. Literal addresses skip resolution in
//! the HTTP client, so they are checked on the request and on every redirect.

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// Redirects followed at most; each is checked like the first request.
const MAX_REDIRECTS: usize = 5;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum EgressError {
    #[error("the address {0} is on an internal network, which this server does not fetch from")]
    Internal(IpAddr),
    #[error("{0} resolves only to internal addresses, which this server does not fetch from")]
    InternalName(String),
    #[error("the address is not an http(s) URL with a host")]
    NotHttp,
    #[error("cannot resolve {0}")]
    Unresolved(String),
    #[error("the response is larger than {0} bytes")]
    TooLarge(usize),
}

/// Which addresses user-steered fetches may reach.
#[derive(Debug, Clone, Default)]
pub struct EgressGuard {
    allow: Arc<[IpNet]>,
}

impl EgressGuard {
    /// Public addresses, plus those in `allow` (for example the company's own calendar server
    /// on a private network).
    pub fn new(allow: Vec<IpNet>) -> Self {
        Self {
            allow: allow.into(),
        }
    }

    pub fn permits(&self, ip: IpAddr) -> bool {
        self.allow.iter().any(|n| n.contains(&ip)) || is_public(ip)
    }

    /// Refuses a URL that is not http(s), or whose host is a literal address not permitted.
    /// Names are checked when the client resolves them.
    pub fn check_url(&self, url: &url::Url) -> Result<(), EgressError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(EgressError::NotHttp);
        }
        match url.host() {
            None => Err(EgressError::NotHttp),
            Some(url::Host::Domain(_)) => Ok(()),
            Some(url::Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip)),
        }
    }

    fn check_ip(&self, ip: IpAddr) -> Result<(), EgressError> {
        if self.permits(ip) {
            Ok(())
        } else {
            Err(EgressError::Internal(ip))
        }
    }

    /// Resolves the URL's host now and refuses it when no address is permitted: the early
    /// answer a user gets when adding a link. Fetches check again.
    pub async fn check_reachable(&self, url: &url::Url) -> Result<(), EgressError> {
        self.check_url(url)?;
        if let Some(url::Host::Domain(name)) = url.host() {
            self.permitted_addrs(name).await?;
        }
        Ok(())
    }

    /// The addresses `name` resolves to that the guard permits; an error when there are none.
    async fn permitted_addrs(&self, name: &str) -> Result<Vec<SocketAddr>, EgressError> {
        let found: Vec<SocketAddr> = tokio::net::lookup_host((name, 0))
            .await
            .map_err(|_| EgressError::Unresolved(name.to_owned()))?
            .collect();
        if found.is_empty() {
            return Err(EgressError::Unresolved(name.to_owned()));
        }
        let permitted: Vec<SocketAddr> =
            found.into_iter().filter(|a| self.permits(a.ip())).collect();
        if permitted.is_empty() {
            return Err(EgressError::InternalName(name.to_owned()));
        }
        Ok(permitted)
    }

    /// An HTTP client that resolves through the guard, checks every redirect, and uses no
    /// proxy (a proxy would resolve, and reach, on the guard's behalf). Credentials are not
    /// carried across hosts: the client drops them on a redirect to another origin.
    pub fn client(&self, timeout: Duration) -> reqwest::Result<reqwest::Client> {
        let guard = self.clone();
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                return attempt.error("too many redirects");
            }
            match guard.check_url(attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(e) => attempt.error(e),
            }
        });
        self.builder(timeout).redirect(redirects).build()
    }

    /// The same client without redirects: for a POST (a webhook), where a redirect would turn
    /// it into a GET and is a misconfigured endpoint to report, not to follow.
    pub fn client_without_redirects(&self, timeout: Duration) -> reqwest::Result<reqwest::Client> {
        self.builder(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
    }

    fn builder(&self, timeout: Duration) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .dns_resolver(self.clone())
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10))
    }
}

impl Resolve for EgressGuard {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.clone();
        Box::pin(async move {
            let addrs = guard.permitted_addrs(name.as_str()).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Reads a response body, refusing it as soon as it passes `max` bytes (before buffering more).
pub async fn read_capped(
    mut response: reqwest::Response,
    max: usize,
) -> Result<Vec<u8>, ReadError> {
    if response.content_length().is_some_and(|n| n > max as u64) {
        return Err(ReadError::Egress(EgressError::TooLarge(max)));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| ReadError::Http(e.without_url()))?
    {
        if body.len() + chunk.len() > max {
            return Err(ReadError::Egress(EgressError::TooLarge(max)));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Egress(EgressError),
    /// Without its URL: user URLs carry secrets (private feed paths, `user:pass@`).
    #[error(transparent)]
    Http(reqwest::Error),
}

/// Whether an address is on the public internet. Everything a server typically reaches
/// privately is not: loopback, RFC 1918, shared address space (carrier NAT and many clusters),
/// link-local (cloud metadata at 169.254.169.254), unique-local, multicast, and the reserved
/// and documentation ranges; IPv6 forms that embed an IPv4 address are judged by it.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    let embedded_v4 = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match s[0] {
        // 6to4 carries an IPv4 address in its prefix.
        0x2002 => is_public_v4(embedded_v4(s[1], s[2])),
        // NAT64 (64:ff9b::/96) and IPv4-compatible addresses carry it at the end.
        0x0064 if s[1] == 0xff9b => is_public_v4(embedded_v4(s[6], s[7])),
        0 if s[..6].iter().all(|&x| x == 0) && !ip.is_loopback() && !ip.is_unspecified() => {
            is_public_v4(embedded_v4(s[6], s[7]))
        }
        _ => {
            !(ip.is_unspecified()
                || ip.is_loopback()
                || ip.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] & 0xffc0) == 0xfec0
                || (s[0] == 0x2001 && s[1] == 0x0db8))
        }
    }
}

/// Parses `PARLEY_EGRESS_ALLOW`: comma-separated networks (`10.20.0.0/16`) or addresses.
pub fn parse_allow_list(text: &str) -> Result<Vec<IpNet>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{s:?} is not a network (10.0.0.0/8) or an address"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    #[test]
    fn internal_ranges_are_refused_and_public_ones_permitted() {
        let guard = EgressGuard::default();
        for internal in [
            "127.0.0.1",
            "127.1.2.3",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.1.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
        ] {
            assert!(!guard.permits(ip(internal)), "{internal} permitted");
        }
        for public in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(guard.permits(ip(public)), "{public} refused");
        }
    }

    #[test]
    fn the_allow_list_opens_only_what_it_names() {
        let guard = EgressGuard::new(parse_allow_list("10.20.0.0/16, 127.0.0.1").expect("list"));
        assert!(guard.permits(ip("10.20.3.4")));
        assert!(guard.permits(ip("127.0.0.1")));
        assert!(!guard.permits(ip("10.21.0.1")));
        assert!(!guard.permits(ip("127.0.0.2")));
        assert!(parse_allow_list("10.0.0.0/33").is_err());
        assert!(parse_allow_list("intranet").is_err());
    }

    #[test]
    fn literal_hosts_are_checked_on_the_url() {
        let guard = EgressGuard::default();
        let url = |s: &str| url::Url::parse(s).expect("url");
        assert_eq!(
            guard.check_url(&url("http://127.0.0.1:8080/cal.ics")),
            Err(EgressError::Internal(ip("127.0.0.1")))
        );
        assert_eq!(
            guard.check_url(&url("http://[::1]/")),
            Err(EgressError::Internal(ip("::1")))
        );
        // The decimal and hex forms are the same address once parsed.
        assert_eq!(
            guard.check_url(&url("http://2130706433/")),
            Err(EgressError::Internal(ip("127.0.0.1")))
        );
        assert_eq!(
            guard.check_url(&url("http://0x7f.1/")),
            Err(EgressError::Internal(ip("127.0.0.1")))
        );
        assert_eq!(
            guard.check_url(&url("file:///etc/passwd")),
            Err(EgressError::NotHttp)
        );
        assert!(
            guard
                .check_url(&url("https://calendar.example/x.ics"))
                .is_ok()
        );
    }
}
