//! Duo request signing, byte-exact with the official clients: canonical strings (v2, v5), the
//! Python-compatible JSON body, the `Date` format and the `Authorization` header.
//!
//! The reference is Duo's Python client (`duo_client` 5.x, `client.py`): every rule below follows
//! what it does, because that is what Duo's servers verify. Where this module is stricter (it refuses
//! requests the Python client would build but the wire could not carry faithfully) the function says
//! so; it never produces a different signature for an input both accept.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Map, Value};
use sha1::Sha1;
use sha2::{Digest as _, Sha512};

use super::rules::{self, carries_body};
use super::secret::Secret;

pub use super::date::{rfc2822_date, rfc2822_now};
pub use super::pyjson::canon_json;

/// The HMAC hash of a v2 signature. Duo's documentation says SHA-1; the current official clients
/// sign v2 with SHA-512; the server accepts both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Digest {
    /// HMAC-SHA1: 40 hex digits.
    Sha1,
    /// HMAC-SHA512: 128 hex digits.
    Sha512,
}

/// A signature version. The default is v5.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum SigVersion {
    /// Date, method, host, path, params. Bodies are form-encoded and covered by the params line.
    V2 {
        /// The HMAC hash.
        digest: Digest,
    },
    /// v2 plus the SHA-512 of the body and of the `x-duo-*` headers; always HMAC-SHA512. What the
    /// official clients send today.
    #[default]
    V5,
}

/// A signature version string in a configuration file was not one we know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown signature version `{0}`: expected `v5`, `v2` (HMAC-SHA512) or `v2-sha1`")]
pub struct ParseSigVersionError(String);

impl FromStr for SigVersion {
    type Err = ParseSigVersionError;

    /// `v5`; `v2` (HMAC-SHA512, as the current official clients sign it); `v2-sha512`; `v2-sha1`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "v5" => Ok(Self::V5),
            "v2" | "v2-sha512" => Ok(Self::V2 { digest: Digest::Sha512 }),
            "v2-sha1" => Ok(Self::V2 { digest: Digest::Sha1 }),
            // Cap what we echo: the value came from a file and could be anything.
            other => Err(ParseSigVersionError(other.chars().take(32).collect())),
        }
    }
}

impl fmt::Display for SigVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::V5 => "v5",
            Self::V2 { digest: Digest::Sha512 } => "v2",
            Self::V2 { digest: Digest::Sha1 } => "v2-sha1",
        })
    }
}

impl<'de> serde::Deserialize<'de> for SigVersion {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Why a request could not be signed. No variant carries the secret key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// The integration key is empty, or holds a `:` or a control character (it goes in a Basic
    /// `Authorization` value, where `:` separates it from the signature).
    #[error("the integration key `ikey` must be non-empty, without `:` or control characters")]
    InvalidIkey,
    /// The secret key is empty.
    #[error("the secret key `skey` is empty")]
    EmptySecret,
    /// The HTTP method is not a plain token such as `GET`.
    #[error("invalid HTTP method `{0}`")]
    InvalidMethod(String),
    /// The host is empty or holds characters a `Host` header cannot.
    #[error("invalid host `{0}`")]
    InvalidHost(String),
    /// The path does not start with `/`, or holds `?`, `#`, spaces, control or non-ASCII
    /// characters: what is signed must be exactly what goes on the wire.
    #[error("invalid path `{0}`: it must start with `/` and be printable ASCII without `?`, `#` or spaces")]
    InvalidPath(String),
    /// The date is empty or not printable ASCII (it is sent as the `Date` header).
    #[error("invalid `Date` value `{0}`")]
    InvalidDate(String),
    /// An extra header's name does not start with `x-duo-` (any case).
    #[error("extra header `{0}` is not an `x-duo-` header")]
    NotXDuoHeader(String),
    /// Two extra headers have the same name once lower-cased.
    #[error("duplicate header `{0}` (names are compared lower-cased)")]
    DuplicateHeader(String),
    /// A header name or value holds a NUL, a control character or non-ASCII text.
    #[error("header `{0}` has a name or value that cannot be sent (NUL, control or non-ASCII characters)")]
    InvalidHeader(String),
    /// An `x-duo-date` header differs from the date that is signed: the server would read it first
    /// and find the signature wrong.
    #[error("header `x-duo-date` must equal the signed date")]
    XDuoDateMismatch,
    /// v2 does not sign extra headers; sending them unsigned would be misleading.
    #[error("`x-duo-` headers are signed only by `v5`")]
    HeadersNeedV5,
    /// A key appears twice in parameters that become a JSON object body.
    #[error("parameter `{0}` appears more than once; a v5 JSON body holds each key once")]
    DuplicateBodyKey(String),
    /// A JSON body was given for a method or version that does not send one.
    #[error("a JSON body needs `v5` and `POST`, `PUT` or `PATCH`, not `{version}` `{method}`")]
    JsonBodyNotAllowed {
        /// The method asked for.
        method: String,
        /// The signer's version.
        version: SigVersion,
    },
    /// The JSON body nests deeper than we encode (Python gives up too, with `RecursionError`).
    #[error("the JSON body nests deeper than {MAX_JSON_DEPTH} levels")]
    JsonTooDeep,
}

/// How deep a JSON body may nest: serde_json's own parsing limit.
pub const MAX_JSON_DEPTH: usize = 128;

/// The params line: OAuth 1.0-style normalisation, as `duo_client.client.canon_params`.
///
/// Each key and value is UTF-8 percent-encoded (only `A-Z a-z 0-9 - _ . ~` kept, upper-case hex, a
/// space is `%20`); the pairs are sorted by encoded key, then by encoded value (Python keeps the
/// values of a repeated key, duplicates included, sorted); joined `k=v` with `&`.
///
/// Sorting the encoded pairs, not the joined `k=v` strings, matters: `foo` sorts before `foo-bar`
/// although `foo=` sorts after `foo-`.
pub fn canon_params(params: &[(String, String)]) -> String {
    let mut encoded: Vec<(String, String)> = params.iter().map(|(k, v)| (rules::encode(k), rules::encode(v))).collect();
    encoded.sort_unstable();
    let mut out = String::with_capacity(encoded.iter().map(|(k, v)| k.len() + v.len() + 2).sum());
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

/// What a canonical string is built from. v2 reads only `date`, `method`, `host`, `path` and
/// `params`; v5 also hashes `body` (the exact bytes sent; empty when there is none) and
/// `x_duo_headers`.
#[derive(Debug, Clone, Copy)]
pub struct CanonicalRequest<'a> {
    /// Byte-identical to the `Date` header.
    pub date: &'a str,
    /// Upper-cased here.
    pub method: &'a str,
    /// Lower-cased here, any `:port` removed.
    pub host: &'a str,
    /// As sent, case kept, without the query.
    pub path: &'a str,
    /// The params of the params line, in any order.
    pub params: &'a [(String, String)],
    /// v5: the exact body bytes.
    pub body: &'a [u8],
    /// v5: the extra `x-duo-*` headers, names in any case.
    pub x_duo_headers: &'a [(String, String)],
}

/// The canonical string: lines joined by `\n`, no trailing newline.
///
/// v2: `date`, `METHOD`, `host`, `path`, params line. v5 adds the SHA-512 hex of the body and of
/// the `x-duo-*` headers (lower-cased names, sorted, `name\0value\0…`). Fails only on v5 headers
/// the Python client refuses too: a name that is not `x-duo-…`, a NUL, a repeated name. (Python
/// silently keeps the last of two names that differ only in case; we refuse them, since both
/// would go on the wire.)
pub fn canonical_string(version: SigVersion, request: &CanonicalRequest<'_>) -> Result<String, SignError> {
    build_canonical(version, request, &canon_params(request.params))
}

fn build_canonical(
    version: SigVersion,
    request: &CanonicalRequest<'_>,
    params_line: &str,
) -> Result<String, SignError> {
    let host = canonical_host(request.host);
    let mut out = String::with_capacity(
        request.date.len() + request.method.len() + host.len() + request.path.len() + params_line.len() + 2 * 129 + 4,
    );
    out.push_str(request.date);
    out.push('\n');
    // Unicode-aware, as Python's `str.upper()`/`str.lower()`; identical to ASCII for real inputs.
    out.push_str(&request.method.to_uppercase());
    out.push('\n');
    out.push_str(&host);
    out.push('\n');
    out.push_str(request.path);
    out.push('\n');
    out.push_str(params_line);
    if version == SigVersion::V5 {
        out.push('\n');
        push_sha512_hex(&mut out, request.body);
        out.push('\n');
        push_sha512_hex(&mut out, canon_x_duo_headers(request.x_duo_headers)?.as_bytes());
    }
    Ok(out)
}

/// `name\0value\0name\0value` over lower-cased, sorted names (the text v5 hashes).
fn canon_x_duo_headers(headers: &[(String, String)]) -> Result<String, SignError> {
    let mut lowered: Vec<(String, &str)> = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let name = name.to_lowercase();
        if !name.starts_with("x-duo-") {
            return Err(SignError::NotXDuoHeader(name));
        }
        if name.contains('\0') || value.contains('\0') {
            return Err(SignError::InvalidHeader(name));
        }
        lowered.push((name, value));
    }
    lowered.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    if let Some(pair) = lowered.windows(2).find(|pair| pair[0].0 == pair[1].0) {
        return Err(SignError::DuplicateHeader(pair[0].0.clone()));
    }
    let mut out = String::new();
    for (i, (name, value)) in lowered.iter().enumerate() {
        if i > 0 {
            out.push('\0');
        }
        out.push_str(name);
        out.push('\0');
        out.push_str(value);
    }
    Ok(out)
}

/// The host as signed: lower-cased, without a `:port` (the official clients take the port
/// separately and sign the bare host name). A bracketed IPv6 literal keeps its brackets; a bare
/// IPv6 address (several colons) is left whole.
fn canonical_host(host: &str) -> String {
    strip_port(host).to_lowercase()
}

fn strip_port(host: &str) -> &str {
    let is_port = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if host.starts_with('[') {
        if let Some(end) = host.find(']') {
            let (literal, rest) = host.split_at(end + 1);
            if rest.strip_prefix(':').is_some_and(is_port) {
                return literal;
            }
        }
        return host;
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && is_port(port) => name,
        _ => host,
    }
}

/// The SHA-512 of `bytes` in lower-case hex. Most calls hash nothing (a GET's body, no `x-duo-*`
/// header): that digest is computed once.
fn push_sha512_hex(out: &mut String, bytes: &[u8]) {
    static EMPTY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let mut hex = String::with_capacity(128);
        push_hex(&mut hex, &Sha512::digest(b""));
        hex
    });
    if bytes.is_empty() {
        out.push_str(&EMPTY);
    } else {
        push_hex(out, &Sha512::digest(bytes));
    }
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";
    for byte in bytes {
        out.push(char::from(HEX_LOWER[usize::from(byte >> 4)]));
        out.push(char::from(HEX_LOWER[usize::from(byte & 0xf)]));
    }
}

/// Signs requests for one Duo application (integration key, secret key, version).
#[derive(Clone)]
pub struct Signer {
    ikey: String,
    skey: Secret,
    version: SigVersion,
    /// The HMAC keyed once: cloning it per request skips rehashing the key pads.
    mac: KeyedMac,
}

#[derive(Clone)]
enum KeyedMac {
    Sha1(Hmac<Sha1>),
    Sha512(Hmac<Sha512>),
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("ikey", &self.ikey)
            .field("skey", &self.skey)
            .field("version", &self.version)
            .finish()
    }
}

/// What to send: everything the HTTP layer needs, already signed.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedRequest {
    /// Upper-cased.
    pub method: String,
    /// As given and signed.
    pub path: String,
    /// The query string without `?`: the canonical params line itself (already percent-encoded).
    /// `None` when there are no query params.
    pub query: Option<String>,
    /// The body bytes: empty for GET and DELETE, `{}` at least for a v5 POST.
    pub body: Vec<u8>,
    /// `Date`, `Authorization`, `Content-Type` when a body is sent, then the extra `x-duo-*`
    /// headers as given. The caller adds `Host` (with any port), `User-Agent` and the like.
    pub headers: Vec<(String, String)>,
}

impl SignedRequest {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// `path?query`, or the path alone.
    pub fn path_and_query(&self) -> String {
        match &self.query {
            Some(query) => format!("{}?{query}", self.path),
            None => self.path.clone(),
        }
    }
}

impl fmt::Debug for SignedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The Authorization value is derived from the secret; keep it out of logs all the same.
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(n, v)| {
                let shown = if n.eq_ignore_ascii_case("authorization") { "Basic ****" } else { v.as_str() };
                (n.as_str(), shown)
            })
            .collect();
        f.debug_struct("SignedRequest")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("query", &self.query)
            .field("body", &String::from_utf8_lossy(&self.body))
            .field("headers", &headers)
            .finish()
    }
}

impl Signer {
    /// A signer for one application. Fails on an empty secret, or an integration key that could
    /// not stand before the `:` of a Basic credential.
    pub fn new(ikey: impl Into<String>, skey: Secret, version: SigVersion) -> Result<Self, SignError> {
        let ikey = ikey.into();
        if ikey.is_empty() || ikey.contains(':') || ikey.chars().any(char::is_control) {
            return Err(SignError::InvalidIkey);
        }
        if skey.is_empty() {
            return Err(SignError::EmptySecret);
        }
        let key = skey.expose().as_bytes();
        // HMAC takes keys of any length, so keying cannot fail; map it anyway rather than unwrap.
        let mac = match version {
            SigVersion::V2 { digest: Digest::Sha1 } => {
                KeyedMac::Sha1(<Hmac<Sha1> as KeyInit>::new_from_slice(key).map_err(|_| SignError::EmptySecret)?)
            }
            _ => KeyedMac::Sha512(<Hmac<Sha512> as KeyInit>::new_from_slice(key).map_err(|_| SignError::EmptySecret)?),
        };
        Ok(Self { ikey, skey, version, mac })
    }

    /// The integration key.
    pub fn ikey(&self) -> &str {
        &self.ikey
    }

    /// The signature version.
    pub fn version(&self) -> SigVersion {
        self.version
    }

    /// `Basic base64(ikey:hex(HMAC(skey, canonical)))`.
    pub fn authorization(&self, canonical: &str) -> String {
        let mut credential = String::with_capacity(self.ikey.len() + 1 + 128);
        credential.push_str(&self.ikey);
        credential.push(':');
        match &self.mac {
            KeyedMac::Sha1(mac) => {
                let mut mac = mac.clone();
                mac.update(canonical.as_bytes());
                push_hex(&mut credential, &mac.finalize().into_bytes());
            }
            KeyedMac::Sha512(mac) => {
                let mut mac = mac.clone();
                mac.update(canonical.as_bytes());
                push_hex(&mut credential, &mac.finalize().into_bytes());
            }
        }
        let mut out = String::from("Basic ");
        base64::engine::general_purpose::STANDARD.encode_string(credential.as_bytes(), &mut out);
        out
    }

    /// Signs a call whose params are strings, as the official clients send them:
    ///
    /// - GET, DELETE (and any method other than POST/PUT/PATCH): params in the query and the params
    ///   line, no body;
    /// - POST/PUT/PATCH in v5: params as a compact sorted JSON object body (`{}` when none),
    ///   `Content-Type: application/json`, an empty params line; a repeated key is refused;
    /// - POST/PUT/PATCH in v2: params form-encoded in the body
    ///   (`application/x-www-form-urlencoded`) and in the params line.
    ///
    /// `date` must be the `Date` to send (see [`rfc2822_date`]); `x_duo_headers` are extra
    /// `x-duo-*` headers, signed in v5 and refused in v2.
    pub fn sign(
        &self,
        method: &str,
        host: &str,
        path: &str,
        params: &[(String, String)],
        date: &str,
        x_duo_headers: &[(String, String)],
    ) -> Result<SignedRequest, SignError> {
        self.sign_as(Sign::Yes, method, host, path, params, date, x_duo_headers)
    }

    /// [`Signer::sign`], or with [`Sign::No`] the same request, checked the same way, without
    /// its `Authorization` header: what a write's journaled intent shows (which never holds the
    /// signature), without the cost of signing a request that is not sent.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn sign_as(
        &self,
        sign: Sign,
        method: &str,
        host: &str,
        path: &str,
        params: &[(String, String)],
        date: &str,
        x_duo_headers: &[(String, String)],
    ) -> Result<SignedRequest, SignError> {
        let method = self.check_call(method, host, path, date, x_duo_headers)?;
        let form = Wire { method: &method, host, path, date, x_duo_headers, sign };
        match (self.version, carries_body(&method)) {
            (SigVersion::V5, true) => {
                let mut object = Map::with_capacity(params.len());
                for (key, value) in params {
                    if object.insert(key.clone(), Value::String(value.clone())).is_some() {
                        return Err(SignError::DuplicateBodyKey(key.clone()));
                    }
                }
                let body = canon_json(&object)?;
                self.finish(&form, "", None, body.into_bytes(), Some("application/json"))
            }
            (SigVersion::V2 { .. }, true) => {
                let line = canon_params(params);
                let body = line.clone().into_bytes();
                self.finish(&form, &line, None, body, Some("application/x-www-form-urlencoded"))
            }
            (_, false) => {
                let line = canon_params(params);
                let query = (!line.is_empty()).then(|| line.clone());
                self.finish(&form, &line, query, Vec::new(), None)
            }
        }
    }

    /// Signs a v5 POST/PUT/PATCH whose body is any JSON object (numbers, booleans, arrays, nested
    /// objects), rendered as [`canon_json`] does. Other methods and v2 are refused: they have no
    /// JSON body.
    pub fn sign_json(
        &self,
        method: &str,
        host: &str,
        path: &str,
        body: &Map<String, Value>,
        date: &str,
        x_duo_headers: &[(String, String)],
    ) -> Result<SignedRequest, SignError> {
        self.sign_json_as(Sign::Yes, method, host, path, body, date, x_duo_headers)
    }

    /// [`Signer::sign_json`], or with [`Sign::No`] laid out only, as [`Signer::sign_as`].
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn sign_json_as(
        &self,
        sign: Sign,
        method: &str,
        host: &str,
        path: &str,
        body: &Map<String, Value>,
        date: &str,
        x_duo_headers: &[(String, String)],
    ) -> Result<SignedRequest, SignError> {
        let method = self.check_call(method, host, path, date, x_duo_headers)?;
        if self.version != SigVersion::V5 || !carries_body(&method) {
            return Err(SignError::JsonBodyNotAllowed { method, version: self.version });
        }
        let body = canon_json(body)?;
        let form = Wire { method: &method, host, path, date, x_duo_headers, sign };
        self.finish(&form, "", None, body.into_bytes(), Some("application/json"))
    }

    /// Refuses what could not go on the wire exactly as signed; returns the upper-cased method.
    fn check_call(
        &self,
        method: &str,
        host: &str,
        path: &str,
        date: &str,
        x_duo_headers: &[(String, String)],
    ) -> Result<String, SignError> {
        const TOKEN_PUNCTUATION: &[u8] = b"!#$%&'*+-.^_`|~";
        let is_tchar = |b: u8| b.is_ascii_alphanumeric() || TOKEN_PUNCTUATION.contains(&b);
        if method.is_empty() || !method.bytes().all(is_tchar) {
            return Err(SignError::InvalidMethod(method.to_owned()));
        }
        if host.is_empty() || !host.bytes().all(|b| b.is_ascii_graphic() && !b"/?#@\\".contains(&b)) {
            return Err(SignError::InvalidHost(host.to_owned()));
        }
        if !path.starts_with('/') || !path.bytes().all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#') {
            return Err(SignError::InvalidPath(path.to_owned()));
        }
        if date.is_empty() || !date.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
            return Err(SignError::InvalidDate(date.to_owned()));
        }
        if !x_duo_headers.is_empty() && self.version != SigVersion::V5 {
            return Err(SignError::HeadersNeedV5);
        }
        for (name, value) in x_duo_headers {
            if name.is_empty()
                || !name.bytes().all(is_tchar)
                || !value.bytes().all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic())
            {
                return Err(SignError::InvalidHeader(name.chars().take(64).collect()));
            }
            if name.eq_ignore_ascii_case("x-duo-date") && value != date {
                return Err(SignError::XDuoDateMismatch);
            }
        }
        Ok(method.to_ascii_uppercase())
    }

    fn finish(
        &self,
        wire: &Wire<'_>,
        params_line: &str,
        query: Option<String>,
        body: Vec<u8>,
        content_type: Option<&str>,
    ) -> Result<SignedRequest, SignError> {
        let mut headers = Vec::with_capacity(3 + wire.x_duo_headers.len());
        headers.push(("Date".to_owned(), wire.date.to_owned()));
        match wire.sign {
            Sign::Yes => {
                let canonical = build_canonical(
                    self.version,
                    &CanonicalRequest {
                        date: wire.date,
                        method: wire.method,
                        host: wire.host,
                        path: wire.path,
                        params: &[],
                        body: &body,
                        x_duo_headers: wire.x_duo_headers,
                    },
                    params_line,
                )?;
                headers.push(("Authorization".to_owned(), self.authorization(&canonical)));
            }
            // The headers are checked as signing checks them: a request laid out is one that
            // signs.
            Sign::No => drop(canon_x_duo_headers(wire.x_duo_headers)?),
        }
        if let Some(content_type) = content_type {
            headers.push(("Content-Type".to_owned(), content_type.to_owned()));
        }
        headers.extend(wire.x_duo_headers.iter().cloned());
        Ok(SignedRequest { method: wire.method.to_owned(), path: wire.path.to_owned(), query, body, headers })
    }
}

/// The checked request line and headers shared by [`Signer::sign`] and [`Signer::sign_json`].
struct Wire<'a> {
    method: &'a str,
    host: &'a str,
    path: &'a str,
    date: &'a str,
    x_duo_headers: &'a [(String, String)],
    sign: Sign,
}

/// Whether a request is signed, or only laid out as it would be.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Sign {
    Yes,
    No,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    const SHA512_EMPTY: &str = "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e";

    fn signer(version: SigVersion) -> Signer {
        Signer::new("DIWJ8X6AEYOR5OMC6TQ1", Secret::new("Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep"), version)
            .expect("valid keys")
    }

    const DATE: &str = "Tue, 21 Aug 2012 17:29:18 -0000";

    // Expected strings below were produced with CPython 3's
    // json.dumps(obj, sort_keys=True, separators=(',', ':')).
    #[test]
    fn a_request_laid_out_is_the_signed_one_without_its_signature() {
        for version in [SigVersion::V5, SigVersion::V2 { digest: Digest::Sha512 }] {
            let s = signer(version);
            let date = "Tue, 21 Aug 2012 17:29:18 -0000";
            let params = pairs(&[("username", "root"), ("realname", "First Last")]);
            for method in ["GET", "POST", "DELETE"] {
                let signed = s.sign(method, "api-x.duosecurity.com", "/admin/v1/users", &params, date, &[]).unwrap();
                let laid = s
                    .sign_as(Sign::No, method, "api-x.duosecurity.com", "/admin/v1/users", &params, date, &[])
                    .unwrap();
                let mut without: Vec<_> = signed.headers.clone();
                without.retain(|(n, _)| n != "Authorization");
                assert_eq!(without.len() + 1, signed.headers.len(), "{method}: signed");
                assert_eq!(laid.headers, without, "{method} {version:?}");
                assert_eq!((&laid.body, laid.path_and_query()), (&signed.body, signed.path_and_query()), "{method}");
            }
        }
        let s = signer(SigVersion::V5);
        let body = object(json!({"n": 1, "list": ["a"]}));
        let signed = s.sign_json("POST", "h.example", "/p", &body, "d", &[]).unwrap();
        let laid = s.sign_json_as(Sign::No, "POST", "h.example", "/p", &body, "d", &[]).unwrap();
        assert_eq!(laid.body, signed.body);
        assert!(laid.headers.iter().all(|(n, _)| n != "Authorization"));
        // Laying out checks what signing checks.
        let bad = pairs(&[("x-duo-a", "1"), ("X-Duo-A", "2")]);
        assert!(s.sign_as(Sign::No, "GET", "h.example", "/p", &[], "d", &bad).is_err());
        assert!(s.sign("GET", "h.example", "/p", &[], "d", &bad).is_err());
    }

    #[test]
    fn json_non_ascii_is_escaped_lower_case() {
        let body = object(json!({"name": "Zoë Ünal", "city": "東京"}));
        assert_eq!(canon_json(&body).expect("encodes"), r#"{"city":"\u6771\u4eac","name":"Zo\u00eb \u00dcnal"}"#);
    }

    #[test]
    fn json_astral_characters_become_surrogate_pairs() {
        let body = object(json!({"e": "ok 👍🏽", "m": "𝄞"}));
        assert_eq!(canon_json(&body).expect("encodes"), r#"{"e":"ok \ud83d\udc4d\ud83c\udffd","m":"\ud834\udd1e"}"#);
    }

    #[test]
    fn json_control_characters_and_quotes() {
        let body = object(json!({"c": "\u{0}\u{1}\u{8}\t\n\u{b}\u{c}\r\u{1f} \"\\/\u{7f}\u{80}"}));
        assert_eq!(
            canon_json(&body).expect("encodes"),
            r#"{"c":"\u0000\u0001\b\t\n\u000b\f\r\u001f \"\\/\u007f\u0080"}"#
        );
    }

    #[test]
    fn json_nested_objects_sorted_at_every_level() {
        let body = object(json!({
            "z": {"b": 1, "a": {"y": [3, {"d": 1, "c": 2}], "x": null}},
            "B": true,
            "a": false,
            "é": "", "e": [], "ea": {}
        }));
        assert_eq!(
            canon_json(&body).expect("encodes"),
            r#"{"B":true,"a":false,"e":[],"ea":{},"z":{"a":{"x":null,"y":[3,{"c":2,"d":1}]},"b":1},"\u00e9":""}"#
        );
    }

    #[test]
    fn json_numbers_as_python_writes_them() {
        let body = object(json!({
            "a": 0, "b": -7, "c": 18_446_744_073_709_551_615_u64, "d": -9_223_372_036_854_775_808_i64,
            "e": 1.0, "f": -0.0, "g": 0.1, "h": 1e16, "i": 1e15, "j": 1.5e-5, "k": 0.0001,
            "l": 123_456_789.123_456_79, "m": 1e22, "n": 2.5e-300, "o": 1.7976931348623157e308,
            "p": 12345678901234567890.0, "q": 5e-324
        }));
        assert_eq!(
            canon_json(&body).expect("encodes"),
            concat!(
                r#"{"a":0,"b":-7,"c":18446744073709551615,"d":-9223372036854775808,"#,
                r#""e":1.0,"f":-0.0,"g":0.1,"h":1e+16,"i":1000000000000000.0,"j":1.5e-05,"k":0.0001,"#,
                r#""l":123456789.12345679,"m":1e+22,"n":2.5e-300,"o":1.7976931348623157e+308,"#,
                r#""p":1.2345678901234567e+19,"q":5e-324}"#
            )
        );
    }

    #[test]
    fn json_floats_parsed_from_text_re_render_as_python_does() {
        // Needs serde_json's `float_roundtrip`: its default parser can land one ULP off, and
        // Python's json.loads + json.dumps would then disagree with us on the last digit.
        let text = r#"{"a":-1.8445048337855806e+301,"b":1.3908160320064978e-28,"c":-9.527767369240659e+244}"#;
        let Ok(Value::Object(body)) = serde_json::from_str::<Value>(text) else {
            panic!("not an object");
        };
        assert_eq!(canon_json(&body).expect("encodes"), text);
    }

    #[test]
    fn json_empty_object_and_depth_limit() {
        assert_eq!(canon_json(&Map::new()).expect("encodes"), "{}");
        let mut deep = json!("leaf");
        for _ in 0..MAX_JSON_DEPTH {
            deep = json!([deep]);
        }
        let body = object(json!({ "deep": deep }));
        assert_eq!(canon_json(&body), Err(SignError::JsonTooDeep));
    }

    #[test]
    fn params_sort_by_encoded_key_not_by_joined_pair() {
        // '-' (0x2D) sorts before '=' (0x3D): sorting "k=v" strings would put foo-bar first.
        let line = canon_params(&pairs(&[("foo-bar", "2"), ("foo", "1"), ("foo", "0")]));
        assert_eq!(line, "foo=0&foo=1&foo-bar=2");
    }

    #[test]
    fn params_keep_repeated_identical_pairs_and_encode_utf8() {
        let line = canon_params(&pairs(&[("k", "v"), ("k", "v"), ("ключ", "😀 +")]));
        // `%` (0x25) sorts before letters.
        assert_eq!(line, "%D0%BA%D0%BB%D1%8E%D1%87=%F0%9F%98%80%20%2B&k=v&k=v");
    }

    #[test]
    fn host_is_lower_cased_without_port() {
        for (given, signed) in [
            ("API-XXXXXXXX.DuoSecurity.com:443", "api-xxxxxxxx.duosecurity.com"),
            ("api-xxxxxxxx.duosecurity.com:8443", "api-xxxxxxxx.duosecurity.com"),
            ("Example.COM", "example.com"),
            ("[::1]:8443", "[::1]"),
            ("[::1]", "[::1]"),
            ("::1", "::1"),
            ("host:notaport", "host:notaport"),
        ] {
            assert_eq!(canonical_host(given), signed, "{given}");
        }
        let request = CanonicalRequest {
            date: DATE,
            method: "get",
            host: "API-XXXXXXXX.duosecurity.com:443",
            path: "/Admin/v1/users",
            params: &[],
            body: b"",
            x_duo_headers: &[],
        };
        let v2 = canonical_string(SigVersion::V2 { digest: Digest::Sha512 }, &request).expect("v2");
        assert_eq!(v2, format!("{DATE}\nGET\napi-xxxxxxxx.duosecurity.com\n/Admin/v1/users\n"));
        let v5 = canonical_string(SigVersion::V5, &request).expect("v5");
        assert_eq!(v5, format!("{v2}\n{SHA512_EMPTY}\n{SHA512_EMPTY}"));
    }

    #[test]
    fn lower_case_method_signs_as_upper_case_and_still_carries_a_body() {
        let s = signer(SigVersion::V5);
        let params = pairs(&[("username", "jsmith"), ("email", "jsmith@example.com")]);
        let lower = s.sign("post", "api-xxxxxxxx.duosecurity.com", "/admin/v1/users/enroll", &params, DATE, &[]);
        let upper = s.sign("POST", "api-xxxxxxxx.duosecurity.com", "/admin/v1/users/enroll", &params, DATE, &[]);
        let lower = lower.expect("signs");
        assert_eq!(Ok(&lower), upper.as_ref());
        assert_eq!(lower.method, "POST");
        assert_eq!(lower.body, br#"{"email":"jsmith@example.com","username":"jsmith"}"#);
        assert_eq!(lower.query, None);
        assert_eq!(lower.header("content-type"), Some("application/json"));
        // The vector "flow call: enroll user", computed by duo_client 5.7.0.
        assert_eq!(
            lower.header("Authorization"),
            Some(
                "Basic RElXSjhYNkFFWU9SNU9NQzZUUTE6YmJiOGJhNWEzODEyNmQ2YWZkYjY1ZmQxOThmYzlmNWM3MWY0NTk4ZWYwMTUyMDdlYjc5ODI1NWVmNzVhM2MxNDYxZGZiNWYwMjNlMDg2MmVkN2U0ZTIzMjYwZTU0Y2ZjM2ZiNDM4ZTY3ZDMyNTI4YmM5ZjdlNDVlYzJkYjVlNDM="
            )
        );
    }

    #[test]
    fn v5_get_puts_params_in_the_query_and_sends_no_body() {
        let s = signer(SigVersion::V5);
        let signed = s
            .sign(
                "GET",
                "api-xxxxxxxx.duosecurity.com",
                "/admin/v1/phones",
                &pairs(&[("number", "+15555550100")]),
                DATE,
                &[],
            )
            .expect("signs");
        assert_eq!(signed.query.as_deref(), Some("number=%2B15555550100"));
        assert_eq!(signed.path_and_query(), "/admin/v1/phones?number=%2B15555550100");
        assert!(signed.body.is_empty());
        assert_eq!(signed.header("Content-Type"), None);
        assert_eq!(signed.header("Date"), Some(DATE));
        let no_params = s.sign("DELETE", "h.example", "/x", &[], DATE, &[]).expect("signs");
        assert_eq!(no_params.query, None);
    }

    #[test]
    fn v5_post_without_params_sends_empty_object() {
        let signed = signer(SigVersion::V5).sign("PUT", "h.example", "/x", &[], DATE, &[]).expect("signs");
        assert_eq!(signed.body, b"{}");
    }

    #[test]
    fn v2_post_form_encodes_the_body_and_signs_the_params_line() {
        let s = signer(SigVersion::V2 { digest: Digest::Sha1 });
        let params = pairs(&[("username", "root"), ("realname", "First Last")]);
        let signed =
            s.sign("POST", "api-xxxxxxxx.duosecurity.com", "/admin/v1/users", &params, DATE, &[]).expect("signs");
        assert_eq!(signed.body, b"realname=First%20Last&username=root");
        assert_eq!(signed.header("Content-Type"), Some("application/x-www-form-urlencoded"));
        // Duo's Admin API documentation example (HMAC-SHA1).
        assert_eq!(
            signed.header("Authorization"),
            Some("Basic RElXSjhYNkFFWU9SNU9NQzZUUTE6YzFlZjQzNzY3YzNlYjNiMzI1OGRiZGRjYTZmOGQwOTQxZTA4NWI5Mg==")
        );
    }

    #[test]
    fn sign_json_takes_any_json_values() {
        let s = signer(SigVersion::V5);
        let body = object(json!({"valid_secs": 3600, "install": true, "tags": ["a", "é"]}));
        let signed = s.sign_json("POST", "h.example", "/x", &body, DATE, &[]).expect("signs");
        assert_eq!(signed.body, br#"{"install":true,"tags":["a","\u00e9"],"valid_secs":3600}"#);
        let refused = s.sign_json("GET", "h.example", "/x", &body, DATE, &[]);
        assert!(matches!(refused, Err(SignError::JsonBodyNotAllowed { .. })), "{refused:?}");
        let v2 =
            signer(SigVersion::V2 { digest: Digest::Sha512 }).sign_json("POST", "h.example", "/x", &body, DATE, &[]);
        assert!(matches!(v2, Err(SignError::JsonBodyNotAllowed { .. })), "{v2:?}");
    }

    #[test]
    fn x_duo_headers_are_checked_and_sent() {
        let s = signer(SigVersion::V5);
        let headers = pairs(&[("X-Duo-Date", DATE), ("x-duo-foo", "bar")]);
        let signed = s.sign("GET", "h.example", "/x", &[], DATE, &headers).expect("signs");
        assert_eq!(signed.header("x-duo-foo"), Some("bar"));
        assert_eq!(signed.header("X-DUO-DATE"), Some(DATE));

        let cases: [(&[(&str, &str)], SignError); 4] = [
            (&[("X-Other", "1")], SignError::NotXDuoHeader("x-other".into())),
            (&[("X-Duo-A", "1"), ("x-duo-a", "2")], SignError::DuplicateHeader("x-duo-a".into())),
            (&[("x-duo-a", "line\r\nInjected: 1")], SignError::InvalidHeader("x-duo-a".into())),
            (&[("x-duo-date", "Wed, 22 Aug 2012 17:29:18 -0000")], SignError::XDuoDateMismatch),
        ];
        for (headers, expected) in cases {
            assert_eq!(s.sign("GET", "h.example", "/x", &[], DATE, &pairs(headers)), Err(expected));
        }
        let v2 = signer(SigVersion::V2 { digest: Digest::Sha512 }).sign(
            "GET",
            "h",
            "/x",
            &[],
            DATE,
            &pairs(&[("x-duo-a", "1")]),
        );
        assert_eq!(v2, Err(SignError::HeadersNeedV5));
    }

    #[test]
    fn header_nul_is_refused_by_the_canonicaliser() {
        let headers = pairs(&[("x-duo-a", "a\0b")]);
        let request = CanonicalRequest {
            date: DATE,
            method: "GET",
            host: "h",
            path: "/",
            params: &[],
            body: b"",
            x_duo_headers: &headers,
        };
        assert_eq!(canonical_string(SigVersion::V5, &request), Err(SignError::InvalidHeader("x-duo-a".into())));
    }

    #[test]
    fn wire_unsafe_inputs_are_refused_without_panicking() {
        let s = signer(SigVersion::V5);
        let ok = "h.example";
        assert!(matches!(s.sign("GE T", ok, "/x", &[], DATE, &[]), Err(SignError::InvalidMethod(_))));
        assert!(matches!(s.sign("", ok, "/x", &[], DATE, &[]), Err(SignError::InvalidMethod(_))));
        assert!(matches!(s.sign("GET", "", "/x", &[], DATE, &[]), Err(SignError::InvalidHost(_))));
        assert!(matches!(s.sign("GET", "a b", "/x", &[], DATE, &[]), Err(SignError::InvalidHost(_))));
        assert!(matches!(s.sign("GET", ok, "x", &[], DATE, &[]), Err(SignError::InvalidPath(_))));
        assert!(matches!(s.sign("GET", ok, "/x?y=1", &[], DATE, &[]), Err(SignError::InvalidPath(_))));
        assert!(matches!(s.sign("GET", ok, "/é", &[], DATE, &[]), Err(SignError::InvalidPath(_))));
        assert!(matches!(s.sign("GET", ok, "/x", &[], "now\n", &[]), Err(SignError::InvalidDate(_))));
        let dup = pairs(&[("a", "1"), ("a", "2")]);
        assert_eq!(s.sign("POST", ok, "/x", &dup, DATE, &[]), Err(SignError::DuplicateBodyKey("a".into())));
    }

    #[test]
    fn signer_rejects_bad_keys_and_hides_the_secret() {
        let skey = "Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep";
        assert_eq!(Signer::new("", Secret::new(skey), SigVersion::V5).err(), Some(SignError::InvalidIkey));
        assert_eq!(Signer::new("DI:X", Secret::new(skey), SigVersion::V5).err(), Some(SignError::InvalidIkey));
        assert_eq!(Signer::new("DIX", Secret::new(""), SigVersion::V5).err(), Some(SignError::EmptySecret));
        let s = signer(SigVersion::V5);
        let debug = format!("{s:?}");
        assert!(!debug.contains(skey) && debug.contains("DIWJ8X6AEYOR5OMC6TQ1"), "{debug}");
        let signed = s.sign("GET", "h", "/x", &[], DATE, &[]).expect("signs");
        let auth = signed.header("Authorization").expect("has one").to_owned();
        let debug = format!("{signed:?}");
        assert!(!debug.contains(skey) && !debug.contains(&auth[6..]), "{debug}");
    }

    /// The signer keys its HMAC once and clones it per request: that must sign exactly as an
    /// HMAC keyed afresh, for keys shorter than, as long as and longer than the hash's block (64
    /// bytes for SHA-1, 128 for SHA-512; a longer key is hashed first), and signing must leave
    /// the keyed state untouched for the next request.
    #[test]
    fn the_mac_keyed_once_signs_as_one_keyed_afresh() {
        fn fresh<M: Mac + KeyInit>(key: &[u8], canonical: &str) -> Vec<u8> {
            let mut mac = <M as KeyInit>::new_from_slice(key).expect("any length");
            mac.update(canonical.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
        let ikey = "DIWJ8X6AEYOR5OMC6TQ1";
        let canonicals = ["", "Tue, 21 Aug 2012 17:29:18 -0000\nGET\nh\n/x\n", &"a".repeat(300)];
        for len in [1, 40, 63, 64, 65, 127, 128, 129, 200, 300] {
            let skey: String = (0..len).map(|i| char::from(b'!' + (i % 90) as u8)).collect();
            for version in
                [SigVersion::V5, SigVersion::V2 { digest: Digest::Sha512 }, SigVersion::V2 { digest: Digest::Sha1 }]
            {
                let s = Signer::new(ikey, Secret::new(skey.as_str()), version).expect("valid keys");
                for canonical in canonicals {
                    let digest = match version {
                        SigVersion::V2 { digest: Digest::Sha1 } => fresh::<Hmac<Sha1>>(skey.as_bytes(), canonical),
                        _ => fresh::<Hmac<Sha512>>(skey.as_bytes(), canonical),
                    };
                    let mut credential = format!("{ikey}:");
                    push_hex(&mut credential, &digest);
                    let want = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(credential));
                    assert_eq!(s.authorization(canonical), want, "key of {len} bytes, {version}");
                    assert_eq!(s.authorization(canonical), want, "key of {len} bytes, {version}, signed again");
                }
            }
        }
    }

    #[test]
    fn sig_version_parses_from_config_strings() {
        assert_eq!("v5".parse(), Ok(SigVersion::V5));
        assert_eq!("v2".parse(), Ok(SigVersion::V2 { digest: Digest::Sha512 }));
        assert_eq!("v2-sha1".parse(), Ok(SigVersion::V2 { digest: Digest::Sha1 }));
        let err = "v3".parse::<SigVersion>().expect_err("unknown");
        assert_eq!(err.to_string(), "unknown signature version `v3`: expected `v5`, `v2` (HMAC-SHA512) or `v2-sha1`");
        for version in ["v5", "v2", "v2-sha1"] {
            assert_eq!(version.parse::<SigVersion>().map(|v| v.to_string()).as_deref(), Ok(version));
        }
        let from_json: SigVersion = serde_json::from_str("\"v2-sha1\"").expect("parses");
        assert_eq!(from_json, SigVersion::V2 { digest: Digest::Sha1 });
        assert_eq!(SigVersion::default(), SigVersion::V5);
    }

    #[test]
    fn date_matches_python_formatdate() {
        // Values from CPython's email.utils.formatdate(t).
        assert_eq!(rfc2822_date(1_345_570_158).as_deref(), Some("Tue, 21 Aug 2012 17:29:18 -0000"));
        assert_eq!(rfc2822_date(0).as_deref(), Some("Thu, 01 Jan 1970 00:00:00 -0000"));
        assert_eq!(rfc2822_date(951_782_400).as_deref(), Some("Tue, 29 Feb 2000 00:00:00 -0000"));
        assert_eq!(rfc2822_date(-1).as_deref(), Some("Wed, 31 Dec 1969 23:59:59 -0000"));
        assert_eq!(rfc2822_date(4_107_542_399).as_deref(), Some("Sun, 28 Feb 2100 23:59:59 -0000"));
        assert_eq!(rfc2822_date(253_402_300_799).as_deref(), Some("Fri, 31 Dec 9999 23:59:59 -0000"));
        assert_eq!(rfc2822_date(-62_135_596_800).as_deref(), Some("Mon, 01 Jan 0001 00:00:00 -0000"));
        assert_eq!(rfc2822_date(253_402_300_800), None);
        assert_eq!(rfc2822_date(i64::MIN), None);
        let now = rfc2822_now();
        assert!(now.ends_with(" -0000") && now.len() == DATE.len(), "{now}");
    }
}
