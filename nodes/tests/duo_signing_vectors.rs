//! Conformance: every case of `shared/duo/signing-vectors.json` (computed by Duo's official Python
//! client) must come out byte-identical: params lines, whole canonical strings, Authorization values.

use std::fmt::Write as _;

use flowcat_nodes::duo::{CanonicalRequest, Digest, Secret, SigVersion, Signer, canon_params, canonical_string};
use serde_json::Value;

/// The repository and `shared/` are siblings (here and in CI): `<repo>/nodes/../../shared`.
const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/duo/signing-vectors.json");

fn load() -> Value {
    let text = std::fs::read_to_string(VECTORS).unwrap_or_else(|err| panic!("cannot read {VECTORS}: {err}"));
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("{VECTORS} is not JSON: {err}"))
}

fn cases<'a>(vectors: &'a Value, key: &str) -> &'a [Value] {
    let cases = vectors[key].as_array().unwrap_or_else(|| panic!("`{key}` is not an array"));
    assert!(!cases.is_empty(), "`{key}` has no cases: the vectors file is empty or renamed");
    cases
}

fn text<'a>(case: &'a Value, field: &str) -> &'a str {
    case[field].as_str().unwrap_or_else(|| panic!("case {}: `{field}` is not a string", case["name"]))
}

fn pairs(case: &Value, field: &str) -> Vec<(String, String)> {
    let items = case[field].as_array().unwrap_or_else(|| panic!("case {}: `{field}` is not an array", case["name"]));
    items
        .iter()
        .map(|pair| match pair.as_array().map(Vec::as_slice) {
            Some([Value::String(k), Value::String(v)]) => (k.clone(), v.clone()),
            _ => panic!("case {}: `{field}` holds {pair}, not a [key, value] pair", case["name"]),
        })
        .collect()
}

fn version_of(case: &Value) -> SigVersion {
    match (case["sig_version"].as_u64(), text(case, "digest")) {
        (Some(5), "sha512") => SigVersion::V5,
        (Some(2), "sha512") => SigVersion::V2 { digest: Digest::Sha512 },
        (Some(2), "sha1") => SigVersion::V2 { digest: Digest::Sha1 },
        (version, digest) => panic!("case {}: unknown version {version:?} with digest {digest:?}", case["name"]),
    }
}

fn signer_for(case: &Value) -> Signer {
    Signer::new(text(case, "ikey"), Secret::new(text(case, "skey")), version_of(case))
        .unwrap_or_else(|err| panic!("case {}: {err}", case["name"]))
}

/// Records a mismatch: the first differing line of a multi-line canonical string, then both values
/// whole, so a failure reads like a diff.
fn compare(failures: &mut String, name: &str, what: &str, expected: &str, actual: &str) {
    if expected == actual {
        return;
    }
    let _ = writeln!(failures, "case {name:?}: {what} differs");
    let expected_lines: Vec<&str> = expected.split('\n').collect();
    let actual_lines: Vec<&str> = actual.split('\n').collect();
    for i in 0..expected_lines.len().max(actual_lines.len()) {
        let (e, a) = (expected_lines.get(i), actual_lines.get(i));
        if e != a {
            let _ = writeln!(failures, "  first difference on line {}:\n  - {e:?}\n  + {a:?}", i + 1);
            break;
        }
    }
    let _ = writeln!(failures, "  expected: {expected:?}\n  actual:   {actual:?}");
}

#[test]
fn params_lines_match_the_official_client() {
    let vectors = load();
    let mut failures = String::new();
    let all = cases(&vectors, "params");
    for case in all {
        let line = canon_params(&pairs(case, "params"));
        compare(&mut failures, text(case, "name"), "params line", text(case, "canonical"), &line);
    }
    assert!(failures.is_empty(), "{failures}");
    eprintln!("{} params cases matched", all.len());
}

#[test]
fn canonical_strings_and_authorizations_match_the_official_client() {
    let vectors = load();
    let mut failures = String::new();
    let all = cases(&vectors, "signatures");
    for case in all {
        let name = text(case, "name");
        let version = version_of(case);
        // `body: null` means the version has no body line (v2); v5 hashes the exact bytes.
        if version != SigVersion::V5 {
            assert!(case["body"].is_null(), "case {name:?}: a v2 case with a body line");
        }
        let body = case["body"].as_str().unwrap_or("");
        let params = pairs(case, "params");
        let headers = pairs(case, "x_duo_headers");
        let request = CanonicalRequest {
            date: text(case, "date"),
            method: text(case, "method"),
            host: text(case, "host"),
            path: text(case, "path"),
            params: &params,
            body: body.as_bytes(),
            x_duo_headers: &headers,
        };
        let canonical = match canonical_string(version, &request) {
            Ok(canonical) => canonical,
            Err(err) => {
                let _ = writeln!(failures, "case {name:?}: canonical_string failed: {err}");
                continue;
            }
        };
        compare(&mut failures, name, "canonical string", text(case, "canonical"), &canonical);
        let authorization = signer_for(case).authorization(&canonical);
        compare(&mut failures, name, "Authorization", text(case, "authorization"), &authorization);
    }
    assert!(failures.is_empty(), "{failures}");
    eprintln!("{} signature cases matched", all.len());
}

/// The cases shaped like what `Signer::sign`/`sign_json` build on their own (GET/DELETE with a query,
/// v5 POST with only a JSON body, v2 with the params line) must come out of the high-level path
/// with the same Authorization, and a v5 body re-rendered from its parsed JSON must be identical.
#[test]
fn signer_reproduces_every_case_it_can_express() {
    let vectors = load();
    let mut failures = String::new();
    let mut checked = 0;
    for case in cases(&vectors, "signatures") {
        let name = text(case, "name");
        let version = version_of(case);
        let signer = signer_for(case);
        let params = pairs(case, "params");
        let headers = pairs(case, "x_duo_headers");
        let (method, host, path, date) =
            (text(case, "method"), text(case, "host"), text(case, "path"), text(case, "date"));
        let in_body = matches!(method.to_ascii_uppercase().as_str(), "POST" | "PUT" | "PATCH");
        let signed = match (version, in_body, case["body"].as_str()) {
            (SigVersion::V5, true, Some(body)) if params.is_empty() && body.starts_with('{') => {
                let Ok(Value::Object(object)) = serde_json::from_str::<Value>(body) else {
                    panic!("case {name:?}: body is not a JSON object");
                };
                let signed = signer.sign_json(method, host, path, &object, date, &headers);
                let rendered = signed.as_ref().map(|s| String::from_utf8_lossy(&s.body).into_owned());
                compare(&mut failures, name, "JSON body", body, rendered.as_deref().unwrap_or("<error>"));
                signed
            }
            (SigVersion::V5, false, Some("")) | (SigVersion::V2 { .. }, _, None) => {
                signer.sign(method, host, path, &params, date, &headers)
            }
            // A POST whose params stay in the params line: not how the official clients send a POST.
            _ => continue,
        };
        checked += 1;
        match signed {
            Ok(signed) => {
                let authorization = signed.header("Authorization").unwrap_or("<none>");
                compare(&mut failures, name, "Authorization via Signer", text(case, "authorization"), authorization);
            }
            Err(err) => {
                let _ = writeln!(failures, "case {name:?}: sign failed: {err}");
            }
        }
    }
    assert!(checked >= 10, "only {checked} cases were expressible through Signer");
    assert!(failures.is_empty(), "{failures}");
    eprintln!("{checked} cases matched through Signer");
}
