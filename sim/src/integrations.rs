//! Writes the integrations file that `flowcat run` reads, bound to a running simulator.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;

use crate::error::Error;
use crate::ratelimit::RateLimit;
use crate::seed::IntegrationSeed;

/// The integrations file for `integrations` at `addr`, for a simulator without a rate limit.
pub fn render(addr: SocketAddr, integrations: &[IntegrationSeed]) -> String {
    render_limited(addr, integrations, None)
}

/// The integrations file for `integrations` at `addr`, in the YAML shape the engine reads, with
/// each integration's `rate_limit:` matching the simulator's `--rate-limit` (`none` without one,
/// as a loopback host has by default, written out so that the file says it).
///
/// Hand-written rather than through a YAML library: the shape is fixed and small, and every
/// string is written double-quoted with escapes, so no value can change the structure.
pub fn render_limited(addr: SocketAddr, integrations: &[IntegrationSeed], rate_limit: Option<RateLimit>) -> String {
    let limit = match rate_limit {
        // `{}` of an f64 is its shortest exact form (`500`, `3.3333333333333335`), which the
        // integrations file reads back to the same number.
        Some(l) => format!("{{ per_second: {}, burst: {} }}   # the simulator's --rate-limit", l.per_second, l.burst),
        None => "none   # the simulator runs without --rate-limit".to_owned(),
    };
    let host = match addr {
        SocketAddr::V4(v4) => format!("{}:{}", v4.ip(), v4.port()),
        SocketAddr::V6(v6) => format!("[{}]:{}", v6.ip(), v6.port()),
    };
    let mut out =
        format!("# Written by `flowcat sim`: integrations bound to the simulator at {host}.\nintegrations:\n");
    for integration in integrations {
        // `writeln!` into a String cannot fail.
        let _ = writeln!(out, "  {}:", quote_key(&integration.name));
        let _ = writeln!(out, "    kind: {}", integration.kind.as_str());
        let _ =
            writeln!(out, "    host: {}   # API hostname; the signature uses the host without the port", quote(&host));
        let _ = writeln!(out, "    ikey: {}", quote_key(&integration.ikey));
        let _ = writeln!(
            out,
            "    skey: {}   # inline secrets are for the simulator only",
            quote(integration.skey.expose())
        );
        let _ = writeln!(out, "    signature: v5");
        let _ = writeln!(out, "    loopback_http: true      # plain http allowed because the host is loopback");
        let _ = writeln!(out, "    rate_limit: {limit}");
    }
    out
}

/// Writes [`render_limited`] to `path`.
pub fn write(
    path: &Path,
    addr: SocketAddr,
    integrations: &[IntegrationSeed],
    rate_limit: Option<RateLimit>,
) -> Result<(), Error> {
    let text = render_limited(addr, integrations, rate_limit);
    std::fs::write(path, text).map_err(|source| Error::Write { path: path.into(), source })
}

/// A double-quoted YAML scalar: escapes backslash, quote and control characters.
pub fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Names and ikeys stay bare when they are plain identifiers, as in the documented format.
fn quote_key(text: &str) -> String {
    let plain = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        && text.as_bytes()[0].is_ascii_alphabetic();
    if plain { text.to_string() } else { quote(text) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed::Seed;

    #[test]
    fn renders_the_documented_shape() {
        let addr: SocketAddr = "127.0.0.1:4242".parse().expect("addr");
        let text = render(addr, &Seed::demo().integrations);
        assert!(text.starts_with("# Written by `flowcat sim`: integrations bound to the simulator at 127.0.0.1:4242.\nintegrations:\n  duo_admin:\n    kind: duo_admin\n    host: \"127.0.0.1:4242\""));
        assert!(text.contains("  duo_auth:\n    kind: duo_auth\n"));
        assert!(text.contains("    ikey: DISIMADMIN0000000001\n"));
        assert!(text.contains("    skey: \"simadminsecretkey0000000000000000000000a\""));
        assert!(text.contains("    signature: v5\n    loopback_http: true"));
        assert!(text.contains("    rate_limit: none   # the simulator runs without --rate-limit\n"));
        let limited = render_limited(addr, &Seed::demo().integrations, Some(RateLimit { per_second: 2.5, burst: 3 }));
        let line = "    rate_limit: { per_second: 2.5, burst: 3 }   # the simulator's --rate-limit\n";
        assert_eq!(limited.matches(line).count(), 2, "one per integration: {limited}");
    }

    #[test]
    fn quoting_cannot_break_out() {
        assert_eq!(quote("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\u0001\"");
        assert_eq!(quote_key("weird: name"), "\"weird: name\"");
    }
}
