//! The syntax of single values in the integrations file: `${NAME}` references, Duo hosts with
//! an optional port, `http` base URLs, and clipping what the user wrote for messages.

use std::net::Ipv6Addr;

use super::{Endpoint, Scheme};

/// `Ok(Some(NAME))` for `${NAME}`, `Ok(None)` for text without `${`, `Err` for anything else
/// holding `${` (a typo like `${DUO SKEY}` or `x${Y}` must not become a literal secret).
pub(super) fn env_reference(text: &str) -> Result<Option<&str>, ()> {
    if !text.contains("${") {
        return Ok(None);
    }
    let name = text.strip_prefix("${").and_then(|t| t.strip_suffix('}')).ok_or(())?;
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid { Ok(Some(name)) } else { Err(()) }
}

/// `api-x.duosecurity.com`, `127.0.0.1:41234`, `[::1]:8080` → lower-cased host and port.
pub(super) fn parse_host(text: &str) -> Result<(String, Option<u16>), String> {
    if text.contains("://") || text.contains('/') {
        return Err(format!("`host` must be the API hostname alone, without scheme or path, not `{}`", clip(text)));
    }
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest.split_once(']').ok_or_else(|| format!("unclosed `[` in `{}`", clip(text)))?;
        inside.parse::<Ipv6Addr>().map_err(|_| format!("`{}` is not an IPv6 address", clip(inside)))?;
        (format!("[{}]", inside.to_ascii_lowercase()), after.strip_prefix(':'))
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host.to_ascii_lowercase(), Some(port)),
            None => (text.to_ascii_lowercase(), None),
        }
    };
    let host_ok = host.starts_with('[')
        || (!host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'));
    if !host_ok {
        return Err(format!("`{}` is not a host name", clip(text)));
    }
    let port = match port {
        None => None,
        Some(p) => Some(p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| format!("bad port `{}`", clip(p)))?),
    };
    Ok((host, port))
}

/// An `http` integration's `base_url`: scheme, host, port and base path; no credentials, query or
/// fragment (credentials belong in `auth`).
pub(super) fn parse_base_url(text: &str) -> Result<(Endpoint, Scheme), String> {
    let url = reqwest::Url::parse(text).map_err(|e| format!("`base_url` is not a URL: {e}"))?;
    let scheme = match url.scheme() {
        "https" => Scheme::Https,
        "http" => Scheme::Http,
        other => return Err(format!("`base_url` scheme `{}` is not `https`", clip(other))),
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err("`base_url` holds credentials; put them in `auth`, `username` and `password`".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("`base_url` must not have a query or fragment".to_owned());
    }
    let host = url.host_str().ok_or("`base_url` has no host")?.to_ascii_lowercase();
    let base_path = url.path().trim_end_matches('/').to_owned();
    Ok((Endpoint { scheme, host, port: url.port(), base_path }, scheme))
}

/// At most 40 characters of something the user wrote, for messages.
pub(super) fn clip(text: &str) -> String {
    let mut out: String = text.chars().take(40).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(parse_host("API-X.duosecurity.com"), Ok(("api-x.duosecurity.com".into(), None)));
        assert_eq!(parse_host("127.0.0.1:41234"), Ok(("127.0.0.1".into(), Some(41234))));
        assert_eq!(parse_host("[::1]:8080"), Ok(("[::1]".into(), Some(8080))));
        for bad in ["https://api-x.duosecurity.com", "a/b", "", "x:0", "x:99999", "[::1", "[zz]", "a b", "u@h", ":80"] {
            assert!(parse_host(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn env_references() {
        assert_eq!(env_reference("${DUO_SKEY}"), Ok(Some("DUO_SKEY")));
        assert_eq!(env_reference("plain"), Ok(None));
        for bad in ["${}", "${1X}", "${A B}", "x${A}", "${A}x", "${A"] {
            assert_eq!(env_reference(bad), Err(()), "{bad}");
        }
    }

    #[test]
    fn base_urls() {
        let (endpoint, scheme) = parse_base_url("https://Tickets.Example.com/api/").expect("valid");
        assert_eq!(
            (endpoint.host.as_str(), endpoint.port, endpoint.base_path.as_str()),
            ("tickets.example.com", None, "/api")
        );
        assert_eq!(scheme, Scheme::Https);
        for bad in ["ftp://x", "https://u:p@x/", "https://x/?a=1", "not a url"] {
            assert!(parse_base_url(bad).is_err(), "{bad}");
        }
    }
}
