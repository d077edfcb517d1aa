//! The verifier against every case of `shared/duo/signing-vectors.json`: it reproduces each
//! canonical string, accepts each request as the case describes it, and rejects it once any
//! signed part changes by one byte.

use crate::common;

use flowcat_sim::canon::{self, Lines};
use flowcat_sim::keys::{Keyring, Kind, SecretKey};
use flowcat_sim::verify::{AuthError, RequestParts, SigVersion, verify};
use serde_json::Value;

fn vectors() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/duo/signing-vectors.json");
    let text = std::fs::read_to_string(path).expect("signing-vectors.json beside the repository");
    serde_json::from_str(&text).expect("vectors are JSON")
}

fn pairs(value: &Value) -> Vec<(String, String)> {
    value
        .as_array()
        .expect("pairs")
        .iter()
        .map(|p| (p[0].as_str().expect("key").to_string(), p[1].as_str().expect("value").to_string()))
        .collect()
}

fn text<'a>(case: &'a Value, field: &str) -> &'a str {
    case[field].as_str().unwrap_or_else(|| panic!("`{field}` in {}", case["name"]))
}

/// A request exactly as a case describes it. `form` puts the params in a form body instead of
/// the query (v2 without a body only).
#[derive(Debug, Clone)]
struct Wire {
    method: String,
    host: String,
    path: String,
    query: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

impl Wire {
    fn from_case(case: &Value, form: bool) -> Self {
        let params = pairs(&case["params"]);
        let mut headers = vec![
            ("Date".to_string(), text(case, "date").as_bytes().to_vec()),
            ("Authorization".to_string(), text(case, "authorization").as_bytes().to_vec()),
        ];
        for (name, value) in pairs(&case["x_duo_headers"]) {
            headers.push((name, value.into_bytes()));
        }
        let mut body = case["body"].as_str().unwrap_or_default().as_bytes().to_vec();
        let mut query = common::form_encode(&params);
        if !body.is_empty() {
            headers.push(("Content-Type".into(), b"application/json".to_vec()));
        }
        if form {
            body = query.into_bytes();
            query = String::new();
            headers.push(("Content-Type".into(), b"application/x-www-form-urlencoded".to_vec()));
        }
        Self {
            method: text(case, "method").to_string(),
            host: text(case, "host").to_string(),
            path: text(case, "path").to_string(),
            query,
            headers,
            body,
        }
    }

    fn parts(&self) -> RequestParts<'_> {
        RequestParts {
            method: &self.method,
            host: &self.host,
            path: &self.path,
            query: &self.query,
            headers: &self.headers,
            body: &self.body,
        }
    }
}

fn keyring(case: &Value) -> Keyring {
    let mut ring = Keyring::default();
    ring.insert(text(case, "ikey"), Kind::DuoAdmin, SecretKey::new(text(case, "skey")));
    ring
}

fn case_time(case: &Value) -> i64 {
    flowcat_sim::date::parse_rfc2822(text(case, "date")).expect("vector dates parse")
}

#[test]
fn params_lines_match_every_case() {
    for case in vectors()["params"].as_array().expect("params") {
        assert_eq!(canon::canon_params(&pairs(&case["params"])), text(case, "canonical"), "{}", case["name"]);
        assert_eq!(common::params_line(&pairs(&case["params"])), text(case, "canonical"), "helper: {}", case["name"]);
    }
}

#[test]
fn canonical_strings_match_every_case() {
    for case in vectors()["signatures"].as_array().expect("signatures") {
        let params = canon::canon_params(&pairs(&case["params"]));
        let lines = Lines {
            date: text(case, "date"),
            method: text(case, "method"),
            host: text(case, "host"),
            path: text(case, "path"),
            params: &params,
        };
        let x_duo = pairs(&case["x_duo_headers"]);
        let ours = match case["body"].as_str() {
            None => canon::canonical_v2(&lines),
            Some(body) => canon::canonical_v5(&lines, body.as_bytes(), &canon::x_duo_headers_hash(&x_duo)),
        };
        assert_eq!(ours, text(case, "canonical"), "{}", case["name"]);
        let helper = common::canonical(
            lines.date,
            lines.method,
            lines.host,
            lines.path,
            &params,
            case["body"].as_str().map(str::as_bytes),
            &x_duo,
        );
        assert_eq!(helper, text(case, "canonical"), "helper: {}", case["name"]);
        let sig = match (case["body"].is_null(), text(case, "digest")) {
            (true, "sha1") => common::Sig::V2Sha1,
            (true, _) => common::Sig::V2Sha512,
            (false, _) => common::Sig::V5,
        };
        assert_eq!(
            common::authorization(text(case, "ikey"), text(case, "skey"), &helper, sig),
            text(case, "authorization"),
            "helper: {}",
            case["name"]
        );
    }
}

fn wires(case: &Value) -> Vec<Wire> {
    let mut out = vec![Wire::from_case(case, false)];
    if case["body"].is_null() && text(case, "method").eq_ignore_ascii_case("post") {
        out.push(Wire::from_case(case, true));
    }
    out
}

#[test]
fn verifier_accepts_every_case_as_described() {
    for case in vectors()["signatures"].as_array().expect("signatures") {
        let want = match (case["sig_version"].as_u64(), text(case, "digest")) {
            (Some(2), "sha1") => SigVersion::V2Sha1,
            (Some(2), _) => SigVersion::V2Sha512,
            _ => SigVersion::V5,
        };
        for wire in wires(case) {
            let verified = verify(&wire.parts(), &keyring(case), case_time(case), 300).unwrap_or_else(|e| {
                panic!("{} ({}): {e}", case["name"], if wire.query.is_empty() { "form" } else { "query" })
            });
            assert_eq!(verified.version, want, "{}", case["name"]);
            assert_eq!(verified.ikey, text(case, "ikey"));
        }
    }
}

/// Every way of changing one signed byte: each param key and value, each body byte, the host,
/// the date, the path, the method and each x-duo header.
fn tamperings(wire: &Wire) -> Vec<(String, Wire)> {
    let mut out = Vec::new();
    let flip = |s: &[u8], i: usize| {
        let mut v = s.to_vec();
        v[i] ^= 0x01;
        v
    };
    for i in 0..wire.body.len() {
        out.push((format!("body byte {i}"), Wire { body: flip(&wire.body, i), ..wire.clone() }));
    }
    let params = canon::decode_form(wire.query.as_bytes());
    for i in 0..params.len() {
        for (what, key) in [("key", true), ("value", false)] {
            let mut changed = params.clone();
            let target = if key { &mut changed[i].0 } else { &mut changed[i].1 };
            target.push(b'x');
            let query = changed
                .iter()
                .map(|(k, v)| format!("{}={}", canon::encode(k), canon::encode(v)))
                .collect::<Vec<_>>()
                .join("&");
            out.push((format!("param {i} {what}"), Wire { query, ..wire.clone() }));
        }
    }
    for i in 0..wire.host.len() {
        let host = String::from_utf8(flip(wire.host.as_bytes(), i)).expect("ascii");
        out.push((format!("host byte {i}"), Wire { host, ..wire.clone() }));
    }
    out.push(("another host".into(), Wire { host: format!("evil.{}", wire.host), ..wire.clone() }));
    out.push(("path".into(), Wire { path: format!("{}/", wire.path), ..wire.clone() }));
    out.push(("method".into(), Wire { method: "PUT".into(), ..wire.clone() }));
    // With `X-Duo-Date` present, `Date` is not what is signed (see `x_duo_date_is_read_before_date`).
    let x_duo_date = wire.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("x-duo-date"));
    for (h, (name, value)) in wire.headers.iter().enumerate() {
        if (name == "Date" && !x_duo_date) || name.to_ascii_lowercase().starts_with("x-duo-") {
            for i in 0..value.len() {
                let mut headers = wire.headers.clone();
                headers[h].1 = flip(value, i);
                out.push((format!("{name} byte {i}"), Wire { headers, ..wire.clone() }));
            }
        }
    }
    out
}

#[test]
fn verifier_rejects_every_one_byte_change() {
    for case in vectors()["signatures"].as_array().expect("signatures") {
        for wire in wires(case) {
            for (what, tampered) in tamperings(&wire) {
                let result = verify(&tampered.parts(), &keyring(case), case_time(case), 300);
                assert!(
                    matches!(result, Err(AuthError::BadSignature(_))),
                    "{} accepted a changed {what}: {result:?}",
                    case["name"]
                );
            }
        }
    }
}

#[test]
fn verifier_rejects_stale_and_future_dates_and_unknown_keys() {
    for case in vectors()["signatures"].as_array().expect("signatures") {
        let wire = Wire::from_case(case, false);
        let t = case_time(case);
        assert!(verify(&wire.parts(), &keyring(case), t + 300, 300).is_ok());
        for now in [t + 301, t - 301] {
            let err = verify(&wire.parts(), &keyring(case), now, 300).expect_err("outside the window");
            assert_eq!(err, AuthError::BadSignature("date outside the allowed clock skew"));
        }
        assert_eq!(verify(&wire.parts(), &Keyring::default(), t, 300), Err(AuthError::UnknownIkey));
        let mut no_auth = wire.clone();
        no_auth.headers.retain(|(n, _)| n != "Authorization");
        assert_eq!(verify(&no_auth.parts(), &keyring(case), t, 300), Err(AuthError::Missing("Authorization")));
    }
}

#[test]
fn x_duo_date_is_read_before_date() {
    for case in vectors()["signatures"].as_array().expect("signatures") {
        let has_x_duo_date = pairs(&case["x_duo_headers"]).iter().any(|(n, _)| n.eq_ignore_ascii_case("x-duo-date"));
        if !has_x_duo_date {
            continue;
        }
        let mut wire = Wire::from_case(case, false);
        // A stale, unsigned `Date` beside the signed `X-Duo-Date` changes nothing.
        wire.headers[0].1 = b"Mon, 01 Jan 2001 00:00:00 -0000".to_vec();
        assert!(verify(&wire.parts(), &keyring(case), case_time(case), 300).is_ok(), "{}", case["name"]);
        wire.headers.remove(0);
        assert!(verify(&wire.parts(), &keyring(case), case_time(case), 300).is_ok(), "{}", case["name"]);
    }
}
