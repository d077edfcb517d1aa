//! Who may call the control API: only loopback peers, through a loopback `Host`, never from
//! another site's web page.
//!
//! The control API is unsigned, so a browser on the same machine is the threat: a page on any
//! site can make the browser send requests to 127.0.0.1. A `Host` check defeats DNS rebinding
//! (the page's own name resolving to 127.0.0.1 still sends its own name as `Host`); refusing a
//! foreign `Origin` or `Sec-Fetch-Site: cross-site` defeats plain cross-site requests; and
//! requiring `Content-Type: application/json` on every change keeps "simple" form and text
//! POSTs, which browsers send without a preflight, away from anything that changes state.

use std::net::IpAddr;

use axum::http::{HeaderMap, Method, header};

/// Why a control request is refused, with the status to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub reason: &'static str,
}

const fn refuse(status: u16, reason: &'static str) -> Option<Refusal> {
    Some(Refusal { status, reason })
}

/// The host part of a `Host` header or an origin's authority: `[::1]:80` → `[::1]`,
/// `localhost:80` → `localhost`.
fn host_part(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority.find(']').map_or(authority, |end| &authority[..=end]);
    }
    authority.split(':').next().unwrap_or(authority)
}

/// Whether a host name is one of the loopback spellings the simulator answers to.
fn is_loopback_name(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host == "127.0.0.1" || host == "[::1]"
}

/// Whether an `Origin` header value is a loopback origin (`http://127.0.0.1:3000`); `null` and
/// anything with a path are not.
fn is_loopback_origin(origin: &str) -> bool {
    let Some(rest) = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")) else {
        return false;
    };
    !rest.contains('/') && is_loopback_name(host_part(rest))
}

/// Decides whether a control request may proceed.
pub fn check(peer: IpAddr, method: &Method, headers: &HeaderMap) -> Option<Refusal> {
    // A header that is not text is kept as a value no check accepts.
    let text = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or("\u{fffd}"));
    if !peer.is_loopback() {
        return refuse(403, "the control API is loopback only");
    }
    if !text(header::HOST.as_str()).is_some_and(|host| is_loopback_name(host_part(host))) {
        return refuse(403, "the control API answers only a loopback `Host` (127.0.0.1, localhost, [::1])");
    }
    if text(header::ORIGIN.as_str()).is_some_and(|origin| !is_loopback_origin(origin)) {
        return refuse(403, "the control API refuses cross-site requests");
    }
    if text("sec-fetch-site").is_some_and(|site| site.eq_ignore_ascii_case("cross-site")) {
        return refuse(403, "the control API refuses cross-site requests");
    }
    let changes = !matches!(*method, Method::GET | Method::HEAD);
    let json = text(header::CONTENT_TYPE.as_str())
        .is_some_and(|ct| ct.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json")));
    if changes && !json {
        return refuse(415, "a control call that changes something takes `Content-Type: application/json`");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().expect("header"));
        }
        map
    }

    const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    #[test]
    fn loopback_hosts_pass_with_any_port() {
        for host in ["127.0.0.1:8080", "localhost", "LOCALHOST:1", "[::1]:9", "127.0.0.1"] {
            assert_eq!(check(LOCAL, &Method::GET, &headers(&[("host", host)])), None, "{host}");
        }
    }

    #[test]
    fn other_hosts_and_peers_are_refused() {
        for host in ["evil.example:8080", "127.0.0.1.evil.example", "localhost.evil.example", "[::2]:1"] {
            let refused = check(LOCAL, &Method::GET, &headers(&[("host", host)])).expect("refused");
            assert_eq!(refused.status, 403, "{host}");
        }
        assert!(check(LOCAL, &Method::GET, &HeaderMap::new()).is_some(), "no Host at all");
        let remote = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        assert!(check(remote, &Method::GET, &headers(&[("host", "127.0.0.1")])).is_some());
    }

    #[test]
    fn cross_site_requests_are_refused() {
        let get = |pairs| check(LOCAL, &Method::GET, &headers(pairs)).map(|r| r.status);
        assert_eq!(get(&[("host", "127.0.0.1"), ("origin", "https://evil.example")]), Some(403));
        assert_eq!(get(&[("host", "127.0.0.1"), ("origin", "null")]), Some(403));
        assert_eq!(get(&[("host", "127.0.0.1"), ("sec-fetch-site", "cross-site")]), Some(403));
        assert_eq!(get(&[("host", "127.0.0.1"), ("origin", "http://localhost:3000")]), None);
        assert_eq!(get(&[("host", "127.0.0.1"), ("sec-fetch-site", "same-origin")]), None);
    }

    #[test]
    fn changes_take_json_only() {
        let post = |pairs| check(LOCAL, &Method::POST, &headers(pairs)).map(|r| r.status);
        assert_eq!(post(&[("host", "127.0.0.1")]), Some(415));
        assert_eq!(post(&[("host", "127.0.0.1"), ("content-type", "text/plain")]), Some(415));
        assert_eq!(post(&[("host", "127.0.0.1"), ("content-type", "application/x-www-form-urlencoded")]), Some(415));
        assert_eq!(post(&[("host", "127.0.0.1"), ("content-type", "application/json; charset=utf-8")]), None);
    }
}
