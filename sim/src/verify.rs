//! Verifies a request's signature as Duo's servers do: v2 (HMAC-SHA1 or SHA512) and v5.
//!
//! The verifier sees only what came over the wire. It cannot know which version the client used,
//! so it tries every canonical form the official clients produce and accepts the request when
//! one of them matches; every form covers the method, host, path, date and params, so trying
//! several never lets a tampered request through.

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::Sha512;

use crate::canon::{self, Lines};
use crate::date;
use crate::keys::{Keyring, Kind, SecretKey};

/// A request as received, before anything is trusted.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    /// The method as sent.
    pub method: &'a str,
    /// The `Host` header (a port is allowed and ignored).
    pub host: &'a str,
    /// The path, without the query.
    pub path: &'a str,
    /// The raw query string, without `?`.
    pub query: &'a str,
    /// Every header as sent, names in any case.
    pub headers: &'a [(String, Vec<u8>)],
    /// The exact body bytes.
    pub body: &'a [u8],
}

impl RequestParts<'_> {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_slice())
    }

    /// Whether the body is a form, whose params belong in the params line.
    pub fn is_form(&self) -> bool {
        self.header("content-type").is_some_and(|ct| {
            let ct = String::from_utf8_lossy(ct).to_ascii_lowercase();
            ct.trim_start().starts_with("application/x-www-form-urlencoded")
        })
    }

    /// The params the signature covers: the query's, then a form body's.
    pub fn signed_params(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut params = canon::decode_form(self.query.as_bytes());
        if self.is_form() {
            params.extend(canon::decode_form(self.body));
        }
        params
    }
}

/// What a verified request proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The integration key that signed it.
    pub ikey: String,
    /// The integration's kind, for the Admin-or-Auth check.
    pub kind: Kind,
    /// Which canonical form matched.
    pub version: SigVersion,
}

/// The canonical form and digest that matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigVersion {
    /// v2 with HMAC-SHA1 (40 hex digits).
    V2Sha1,
    /// v2 with HMAC-SHA512 (128 hex digits).
    V2Sha512,
    /// v5, always HMAC-SHA512.
    V5,
}

/// Why a request was refused; each maps to one of Duo's 401 codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization`, or neither `X-Duo-Date` nor `Date`: 401/40101.
    #[error("missing `{0}` header")]
    Missing(&'static str),
    /// The integration key is unknown: 401/40102.
    #[error("unknown integration key")]
    UnknownIkey,
    /// Malformed credentials, a wrong signature, or a date outside the window: 401/40103.
    #[error("invalid signature: {0}")]
    BadSignature(&'static str),
}

/// Checks `req` against `keys` at unix time `now`, allowing `skew` seconds either way.
pub fn verify(req: &RequestParts<'_>, keys: &Keyring, now: i64, skew: i64) -> Result<Verified, AuthError> {
    let date = req.header("x-duo-date").or_else(|| req.header("date")).ok_or(AuthError::Missing("Date"))?;
    let date = std::str::from_utf8(date).map_err(|_| AuthError::BadSignature("date is not text"))?;
    let auth = req.header("authorization").ok_or(AuthError::Missing("Authorization"))?;
    let (ikey, signature) = parse_authorization(auth)?;
    let (kind, skey) = keys.get(&ikey).ok_or(AuthError::UnknownIkey)?;
    let version = match_signature(req, date, skey, &signature)?;
    let when = date::parse_rfc2822(date).ok_or(AuthError::BadSignature("date is not RFC 2822"))?;
    if !date::within_skew(when, now, skew) {
        return Err(AuthError::BadSignature("date outside the allowed clock skew"));
    }
    Ok(Verified { ikey, kind, version })
}

/// Splits `Basic base64(ikey:hex)` into the ikey and the raw signature bytes.
pub(crate) fn parse_authorization(header: &[u8]) -> Result<(String, Vec<u8>), AuthError> {
    const MALFORMED: AuthError = AuthError::BadSignature("malformed `Authorization` header");
    let text = std::str::from_utf8(header).map_err(|_| MALFORMED)?.trim();
    let (scheme, encoded) = text.split_once(' ').ok_or(MALFORMED)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(MALFORMED);
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).map_err(|_| MALFORMED)?;
    let decoded = String::from_utf8(decoded).map_err(|_| MALFORMED)?;
    let (ikey, hex) = decoded.split_once(':').ok_or(MALFORMED)?;
    let signature = canon::from_hex(hex).ok_or(MALFORMED)?;
    Ok((ikey.to_string(), signature))
}

/// Tries the canonical forms the length of the signature allows; the first that matches wins.
fn match_signature(
    req: &RequestParts<'_>,
    date: &str,
    skey: &SecretKey,
    signature: &[u8],
) -> Result<SigVersion, AuthError> {
    let params = canon::canon_params(&req.signed_params());
    let lines = Lines { date, method: req.method, host: req.host, path: req.path, params: &params };
    // v2 has no body line, so it only covers a body whose params are in the params line.
    let v2_covers_body = req.body.is_empty() || req.is_form();
    match signature.len() {
        20 if v2_covers_body && hmac_sha1_ok(skey, &canon::canonical_v2(&lines), signature) => Ok(SigVersion::V2Sha1),
        64 => {
            for candidate in v5_candidates(req, &lines) {
                if hmac_sha512_ok(skey, &candidate, signature) {
                    return Ok(SigVersion::V5);
                }
            }
            if v2_covers_body && hmac_sha512_ok(skey, &canon::canonical_v2(&lines), signature) {
                return Ok(SigVersion::V2Sha512);
            }
            Err(AuthError::BadSignature("signature does not match"))
        }
        20 => Err(AuthError::BadSignature("signature does not match")),
        _ => Err(AuthError::BadSignature("signature is neither 40 nor 128 hex digits")),
    }
}

/// The v5 strings a server can expect: the body hashed as sent, and, for a form body whose params
/// already sit in the params line, the empty body some clients hash instead.
fn v5_candidates(req: &RequestParts<'_>, lines: &Lines<'_>) -> Vec<String> {
    let x_duo: Vec<(&str, &[u8])> = req
        .headers
        .iter()
        .filter(|(name, _)| canon::is_x_duo(name))
        .map(|(name, value)| (name.as_str(), value.as_slice()))
        .collect();
    let headers_hash = canon::x_duo_headers_hash(&x_duo);
    let mut out = vec![canon::canonical_v5(lines, req.body, &headers_hash)];
    if req.is_form() && !req.body.is_empty() {
        out.push(canon::canonical_v5(lines, b"", &headers_hash));
    }
    out
}

fn hmac_sha1_ok(skey: &SecretKey, message: &str, signature: &[u8]) -> bool {
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(skey.expose().as_bytes()) else {
        return false;
    };
    mac.update(message.as_bytes());
    // `verify_slice` compares in constant time.
    mac.verify_slice(signature).is_ok()
}

fn hmac_sha512_ok(skey: &SecretKey, message: &str, signature: &[u8]) -> bool {
    let Ok(mut mac) = Hmac::<Sha512>::new_from_slice(skey.expose().as_bytes()) else {
        return false;
    };
    mac.update(message.as_bytes());
    mac.verify_slice(signature).is_ok()
}
