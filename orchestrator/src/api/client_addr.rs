//! The address of the client behind a request. Behind an ingress or load balancer every
//! connection comes from the proxy, so the client is named in `X-Forwarded-For` or
//! `Forwarded`; those headers are believed only from the proxies the operator lists
//! (`PARLEY_TRUSTED_PROXIES`), since anyone else can write them.

use super::{ApiError, AppState};
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

/// The client's address: rate limits count per real client, not per proxy.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub IpAddr);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no peer address")))?;
        Ok(Self(client_of(
            peer,
            &parts.headers,
            &state.trusted_proxies,
        )))
    }
}

/// Walks the forwarding chain from the nearest hop: each trusted proxy vouches for the hop
/// before it, and the first hop no trusted proxy stands for is the client.
pub fn client_of(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut hops: Vec<IpAddr> = Vec::new();
    for value in headers.get_all("forwarded") {
        let Ok(text) = value.to_str() else { continue };
        for element in text.split(',') {
            for pair in element.split(';') {
                if let Some((k, v)) = pair.trim().split_once('=')
                    && k.eq_ignore_ascii_case("for")
                    && let Some(ip) = forwarded_ip(v)
                {
                    hops.push(ip);
                }
            }
        }
    }
    if hops.is_empty() {
        for value in headers.get_all("x-forwarded-for") {
            let Ok(text) = value.to_str() else { continue };
            hops.extend(
                text.split(',')
                    .filter_map(|h| h.trim().parse::<IpAddr>().ok()),
            );
        }
    }
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        client = hop;
        if !is_trusted(&hop) {
            break;
        }
    }
    client
}

/// `for=` values: `192.0.2.60`, `"[2001:db8::1]:4711"`, `192.0.2.60:80`; `unknown` and
/// obfuscated names are no address.
fn forwarded_ip(value: &str) -> Option<IpAddr> {
    let v = value.trim().trim_matches('"');
    if let Some(rest) = v.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    v.parse()
        .ok()
        .or_else(|| v.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).expect("header"));
        }
        h
    }

    #[test]
    fn forwarding_headers_count_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("net")];
        let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(
            client_of(ip("198.51.100.7"), &h, &trusted),
            ip("198.51.100.7")
        );
        assert_eq!(client_of(ip("10.1.2.3"), &h, &trusted), ip("203.0.113.9"));
        assert_eq!(client_of(ip("10.1.2.3"), &h, &[]), ip("10.1.2.3"));
    }

    #[test]
    fn a_client_cannot_forge_the_hops_before_the_trusted_ones() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("net")];
        // The client wrote the first entry itself; the ingress appended the real one.
        let h = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.9, 10.0.0.5")]);
        assert_eq!(client_of(ip("10.0.0.6"), &h, &trusted), ip("203.0.113.9"));
        let h = headers(&[(
            "forwarded",
            "for=1.2.3.4, for=\"[2001:db8::9]:4711\";proto=https",
        )]);
        assert_eq!(client_of(ip("10.0.0.6"), &h, &trusted), ip("2001:db8::9"));
        let h = headers(&[("x-forwarded-for", "not an address")]);
        assert_eq!(client_of(ip("10.0.0.6"), &h, &trusted), ip("10.0.0.6"));
    }
}
