//! Duo's canonical request strings, written for the verifier and independent of the client signer.
//!
//! Everything here is pure: it turns the parts of a request into the exact bytes that Duo signs, so
//! the conformance vectors can run through it without a server.

use sha2::{Digest, Sha512};

/// The bytes that percent-encoding leaves as they are: `A-Z a-z 0-9 - _ . ~`.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
}

/// Percent-encodes bytes the way Duo canonicalises them: upper-case hex, a space is `%20`.
pub fn encode(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len() * 3);
    for &b in bytes {
        if is_unreserved(b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
    out
}

/// The params line: encode every key and value, sort the pairs (by key, then by value), join.
///
/// Sorting the encoded pairs as tuples, not the joined `k=v` strings, is what puts `foo` before
/// `foo_bar` and keeps the values of a repeated key in order.
pub fn canon_params<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(K, V)]) -> String {
    let mut encoded: Vec<(String, String)> =
        pairs.iter().map(|(k, v)| (encode(k.as_ref()), encode(v.as_ref()))).collect();
    encoded.sort();
    let mut out = String::new();
    for (i, (k, v)) in encoded.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// Decodes `application/x-www-form-urlencoded` text (a query string or a form body) into raw
/// byte pairs: `+` is a space, `%XX` a byte. Malformed escapes are kept literally rather than
/// rejected, because the signature check decides whether the request is acceptable.
pub fn decode_form(text: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    text.split(|&b| b == b'&')
        .filter(|part| !part.is_empty())
        .map(|part| match part.iter().position(|&b| b == b'=') {
            Some(i) => (unescape(&part[..i]), unescape(&part[i + 1..])),
            None => (unescape(part), Vec::new()),
        })
        .collect()
}

fn unescape(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < raw.len() => match (hex_val(raw[i + 1]), hex_val(raw[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    out
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Lower-case hex of SHA-512 over `bytes`.
pub fn sha512_hex(bytes: &[u8]) -> String {
    to_hex(&Sha512::digest(bytes))
}

/// Lower-case hex of any byte string.
pub fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}

/// Hex digits (either case) to bytes; `None` on an odd length or a non-hex digit.
pub fn from_hex(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if bytes.len() % 2 != 0 {
        return None;
    }
    bytes.chunks(2).map(|pair| Some(hex_val(pair[0])? << 4 | hex_val(pair[1])?)).collect()
}

/// The v5 header line: every `x-duo-*` header, names lower-cased and sorted, joined
/// `name, value, name, value` with NUL bytes, then SHA-512 hex.
pub fn x_duo_headers_hash<N: AsRef<str>, V: AsRef<[u8]>>(headers: &[(N, V)]) -> String {
    let mut picked: Vec<(String, &[u8])> = headers
        .iter()
        .filter(|(name, _)| is_x_duo(name.as_ref()))
        .map(|(name, value)| (name.as_ref().to_ascii_lowercase(), value.as_ref()))
        .collect();
    picked.sort();
    let mut joined = Vec::new();
    for (i, (name, value)) in picked.iter().enumerate() {
        if i > 0 {
            joined.push(0);
        }
        joined.extend_from_slice(name.as_bytes());
        joined.push(0);
        joined.extend_from_slice(value);
    }
    sha512_hex(&joined)
}

/// Whether a header name is one that v5 hashes (`x-duo-` in any case).
pub fn is_x_duo(name: &str) -> bool {
    name.len() >= 6 && name.as_bytes()[..6].eq_ignore_ascii_case(b"x-duo-")
}

/// The host line: lower-cased and without a port, so a client that signs for `127.0.0.1` and
/// connects to `127.0.0.1:PORT` is accepted. IPv6 literals keep their brackets.
pub fn canonical_host(host: &str) -> String {
    let host = host.trim();
    let bare = if host.starts_with('[') {
        match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        }
    } else {
        match host.rfind(':') {
            Some(i) if host[i + 1..].bytes().all(|b| b.is_ascii_digit()) => &host[..i],
            _ => host,
        }
    };
    bare.to_ascii_lowercase()
}

/// The first five lines, shared by v2 and v5.
#[derive(Debug, Clone, Copy)]
pub struct Lines<'a> {
    /// The `X-Duo-Date` or `Date` header, byte for byte.
    pub date: &'a str,
    /// The HTTP method as sent; upper-cased here.
    pub method: &'a str,
    /// The host as sent; lower-cased and stripped of its port here.
    pub host: &'a str,
    /// The path as sent, without the query.
    pub path: &'a str,
    /// The already canonical params line.
    pub params: &'a str,
}

/// The v2 canonical string: date, METHOD, host, path, params.
pub fn canonical_v2(lines: &Lines<'_>) -> String {
    [
        lines.date.to_string(),
        lines.method.to_ascii_uppercase(),
        canonical_host(lines.host),
        lines.path.to_string(),
        lines.params.to_string(),
    ]
    .join("\n")
}

/// The v5 canonical string: the v2 lines, then the body hash and the `x-duo-*` header hash.
pub fn canonical_v5(lines: &Lines<'_>, body: &[u8], headers_hash: &str) -> String {
    let mut out = canonical_v2(lines);
    out.push('\n');
    out.push_str(&sha512_hex(body));
    out.push('\n');
    out.push_str(headers_hash);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding_turns_plus_into_space_and_keeps_bad_escapes() {
        let pairs = decode_form(b"a=First+Last&b=%2B1&c=%zz&d&e=%4");
        let text: Vec<(String, String)> = pairs
            .into_iter()
            .map(|(k, v)| (String::from_utf8(k).expect("utf8"), String::from_utf8(v).expect("utf8")))
            .collect();
        let want = [("a", "First Last"), ("b", "+1"), ("c", "%zz"), ("d", ""), ("e", "%4")];
        let want: Vec<(String, String)> = want.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert_eq!(text, want);
    }

    #[test]
    fn host_loses_its_port_and_case() {
        assert_eq!(canonical_host("127.0.0.1:8443"), "127.0.0.1");
        assert_eq!(canonical_host("API-X.duosecurity.com"), "api-x.duosecurity.com");
        assert_eq!(canonical_host("[::1]:9"), "[::1]");
    }

    #[test]
    fn hex_round_trips_and_rejects_junk() {
        assert_eq!(from_hex(&to_hex(&[0, 255, 16])), Some(vec![0, 255, 16]));
        assert_eq!(from_hex("abc"), None);
        assert_eq!(from_hex("zz"), None);
    }
}
