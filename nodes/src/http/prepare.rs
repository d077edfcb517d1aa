//! Turning a [`Call`] into the exact request to send: the safety checks made before anything
//! leaves, the URL on the integration's own host, and the Duo signature (fresh for every attempt).

use std::net::IpAddr;

use base64::Engine as _;
use serde_json::{Map, Value};

use super::Call;
use crate::duo::rules::{self, METHODS, Misplaced, carries_body};
use crate::duo::sign::Sign;
use crate::duo::{SigVersion, Signer, rfc2822_now};
use crate::integrations::{Auth, Integration, Scheme, is_loopback};

/// A request ready for the wire.
#[derive(Debug)]
pub(super) struct Prepared {
    pub method: reqwest::Method,
    pub url: reqwest::Url,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    /// What `body` parses to as JSON, when the body was written from a JSON value (a Duo v5
    /// body): a record takes it instead of parsing the bytes back.
    pub json: Option<Value>,
}

/// Everything that must hold before a request is sent; the reason names the fix.
pub(super) fn check(integration: &Integration, call: &Call) -> Result<(), String> {
    let endpoint = &integration.endpoint;
    if endpoint.scheme == Scheme::Http && !(integration.loopback_http && is_loopback(&endpoint.host)) {
        return Err(format!(
            "integration `{}` would send plain http to `{}`: only a loopback host marked `loopback_http: true` may",
            integration.name, endpoint.host
        ));
    }
    let method = call.method.to_ascii_uppercase();
    if !METHODS.contains(&method.as_str()) {
        return Err(format!("method `{}` is not one of GET, POST, PUT, PATCH, DELETE", clip(&call.method)));
    }
    check_path(&call.path)?;
    for (name, value) in &call.headers {
        check_header(integration, name, value)?;
    }
    if integration.kind.is_duo() {
        match rules::misplaced_params(&method, !call.query.is_empty(), call.body.is_some()) {
            Some(Misplaced::Query) => return Err(format!("a Duo `{method}` takes its params in `body`, not `query`")),
            Some(Misplaced::Body) => return Err(format!("a Duo `{method}` takes its params in `query`, not `body`")),
            None => {}
        }
    }
    Ok(())
}

/// The path goes on the wire byte for byte as signed: no query, no fragment, no dot segments a
/// URL parser would fold away, nothing that could read as another authority.
fn check_path(path: &str) -> Result<(), String> {
    let printable = path.bytes().all(|b| b.is_ascii_graphic() && !b"?#\\".contains(&b));
    if !path.starts_with('/') || path.starts_with("//") || !printable {
        return Err(format!(
            "path `{}` must start with one `/` and be percent-encoded printable ASCII without `?`, `#` or `\\`",
            clip(path)
        ));
    }
    if path.split('/').any(is_dot_segment) {
        return Err(format!("path `{}` has a `.` or `..` segment", clip(path)));
    }
    Ok(())
}

/// Whether a segment is `.` or `..`, each dot written as itself or as `%2e` in any case: what
/// lower-casing it and replacing `%2e` by `.` would leave as `.` or `..`, without two copies of
/// every segment of every request.
fn is_dot_segment(segment: &str) -> bool {
    let mut rest = segment.as_bytes();
    let mut dots = 0;
    while !rest.is_empty() {
        rest = match rest {
            [b'.', tail @ ..] => tail,
            [b'%', b'2', b'e' | b'E', tail @ ..] => tail,
            _ => return false,
        };
        dots += 1;
    }
    dots == 1 || dots == 2
}

fn check_header(integration: &Integration, name: &str, value: &str) -> Result<(), String> {
    let token = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !token || !value.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b)) {
        return Err(format!("header `{}` has a name or value that cannot be sent", clip(name)));
    }
    if rules::reserved_header(name, integration.kind.is_duo()).is_some() {
        return Err(format!("header `{name}` is set by the integration `{}`, not by the call", integration.name));
    }
    Ok(())
}

/// The request for one attempt. Duo calls are signed here, with a new `Date`, every time.
pub(super) fn prepare(integration: &Integration, call: &Call) -> Result<Prepared, String> {
    prepare_as(integration, call, Sign::Yes)
}

/// The request as [`prepare`] makes it, without a Duo signature (a write's intent, which never
/// shows one): the same checks, the same URL, headers and body.
pub(super) fn lay_out(integration: &Integration, call: &Call) -> Result<Prepared, String> {
    prepare_as(integration, call, Sign::No)
}

fn prepare_as(integration: &Integration, call: &Call, sign: Sign) -> Result<Prepared, String> {
    let method = call.method.to_ascii_uppercase();
    let Parts { path_and_query, headers, body, json, expected_path } = match &integration.auth {
        Auth::Duo { signer, .. } => duo(signer, integration, call, &method, sign)?,
        auth => plain(auth, integration, call)?,
    };
    let endpoint = &integration.endpoint;
    // The origin parsed when the file was read, unless the endpoint was changed since.
    let origin = integration.origin.as_ref().filter(|o| {
        o.scheme() == endpoint.scheme.as_str()
            && o.port() == endpoint.port
            && o.host_str().is_some_and(|h| same_host(h, &endpoint.host))
    });
    let url = match origin {
        Some(origin) => {
            let mut url = origin.clone();
            let (path, query) = match path_and_query.split_once('?') {
                Some((path, query)) => (path, Some(query)),
                None => (path_and_query.as_str(), None),
            };
            url.set_path(path);
            url.set_query(query);
            url
        }
        None => {
            let whole =
                format!("{}://{}{path_and_query}", integration.endpoint.scheme.as_str(), integration.authority());
            reqwest::Url::parse(&whole).map_err(|e| format!("cannot build a URL from `{}`: {e}", clip(&call.path)))?
        }
    };
    // Defence in depth: whatever the path held, the request goes to the integration's own
    // scheme, host and port, with the path that was signed.
    let same_place = url.scheme() == endpoint.scheme.as_str()
        && url.host_str().is_some_and(|h| same_host(h, &endpoint.host))
        && url.port() == endpoint.port
        && url.path() == expected_path;
    if !same_place {
        return Err(format!("path `{}` would not reach `{}` as written", clip(&call.path), integration.base_url()));
    }
    let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
    Ok(Prepared { method, url, headers, body, json })
}

/// A request before its URL is built.
struct Parts {
    path_and_query: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    /// [`Prepared::json`].
    json: Option<Value>,
    /// The path as it must reach the server.
    expected_path: String,
}

fn duo(signer: &Signer, integration: &Integration, call: &Call, method: &str, sign: Sign) -> Result<Parts, String> {
    let (x_duo, others): (Vec<_>, Vec<_>) =
        call.headers.iter().cloned().partition(|(name, _)| name.to_ascii_lowercase().starts_with("x-duo-"));
    let date = rfc2822_now();
    let host = integration.host();
    let params = duo_params(call.body.as_ref())?;
    let signed = if !carries_body(method) {
        signer.sign_as(sign, method, host, &call.path, &call.query, &date, &x_duo)
    } else if signer.version() == SigVersion::V5 {
        signer.sign_json_as(sign, method, host, &call.path, &params, &date, &x_duo)
    } else {
        signer.sign_as(sign, method, host, &call.path, &form_params(&params), &date, &x_duo)
    }
    .map_err(|e| e.to_string())?;
    let path_and_query = signed.path_and_query();
    let body = carries_body(method).then_some(signed.body);
    // A v5 body is `canon_json(params)`, params all strings: its bytes parse back to exactly
    // `params` (escapes decode to the same text, a map's keys are sorted either way), which
    // the record takes instead of parsing them (`json_is_what_the_body_parses_to`).
    let json = (body.is_some() && signer.version() == SigVersion::V5).then_some(Value::Object(params));
    let mut headers = signed.headers;
    headers.extend(others);
    Ok(Parts { path_and_query, headers, body, json, expected_path: signed.path })
}

/// Duo's params as Duo's clients send them: every value a string. A number becomes its decimal
/// text (the official clients send `str(valid_secs)`); anything else is refused, because Duo
/// reads its flags as `"1"`/`"0"` or `"true"`/`"false"` depending on the call, and its list
/// params (`user_id_list`) as JSON text in a string.
fn duo_params(body: Option<&Map<String, Value>>) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    for (key, value) in body.into_iter().flatten() {
        let text = match value {
            Value::String(text) => text.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(_) => {
                return Err(format!(
                    "Duo takes every parameter as a string, but `{key}` is a boolean: write \"1\"/\"0\" or \"true\"/\"false\" as the call documents (e.g. `{key}: \"{{{{#if inputs.x}}}}1{{{{else}}}}0{{{{/if}}}}\"`)"
                ));
            }
            Value::Null => continue,
            Value::Array(_) | Value::Object(_) => {
                return Err(format!(
                    "Duo takes every parameter as a string, but `{key}` is a list or an object: Duo's list parameters are JSON text in a string"
                ));
            }
        };
        out.insert(key.clone(), Value::String(text));
    }
    Ok(out)
}

/// A v2 form body from params that are all strings already.
fn form_params(params: &Map<String, Value>) -> Vec<(String, String)> {
    params.iter().map(|(key, value)| (key.clone(), value.as_str().unwrap_or_default().to_owned())).collect()
}

fn plain(auth: &Auth, integration: &Integration, call: &Call) -> Result<Parts, String> {
    let path = format!("{}{}", integration.endpoint.base_path, call.path);
    let mut url = path.clone();
    if !call.query.is_empty() {
        let pairs: Vec<String> =
            call.query.iter().map(|(k, v)| format!("{}={}", rules::encode(k), rules::encode(v))).collect();
        url = format!("{url}?{}", pairs.join("&"));
    }
    let mut headers = call.headers.clone();
    let body = match &call.body {
        Some(object) => {
            if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("content-type")) {
                headers.push(("Content-Type".to_owned(), "application/json".to_owned()));
            }
            Some(serde_json::to_vec(object).map_err(|e| e.to_string())?)
        }
        None => None,
    };
    let credential = match auth {
        Auth::Basic { username, password } => {
            let pair = format!("{username}:{}", password.expose());
            Some(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair)))
        }
        Auth::Bearer(token) => Some(format!("Bearer {}", token.expose())),
        Auth::None | Auth::Duo { .. } => None,
    };
    if let Some(value) = credential {
        // Checked here rather than by the HTTP library, whose error would not say which setting.
        if !value.bytes().all(|b| (b' '..=b'~').contains(&b)) {
            return Err(format!(
                "the credentials of integration `{}` hold characters a header cannot",
                integration.name
            ));
        }
        headers.push(("Authorization".to_owned(), value));
    }
    Ok(Parts { path_and_query: url, headers, body, json: None, expected_path: path })
}

/// Whether two hosts are one: the same name in any case, or the same IP address however it is
/// written (a URL writes `[::ffff:127.0.0.1]` as `[::ffff:7f00:1]`).
fn same_host(a: &str, b: &str) -> bool {
    let ip = |h: &str| h.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(h).parse::<IpAddr>().ok();
    a.eq_ignore_ascii_case(b) || ip(a).is_some_and(|x| ip(b) == Some(x))
}

fn clip(text: &str) -> String {
    text.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_compared_by_name_or_by_address() {
        let table = [
            ("api-x.duosecurity.com", "API-X.duosecurity.com", true),
            ("[::ffff:7f00:1]", "[::ffff:127.0.0.1]", true),
            ("[::1]", "[0:0:0:0:0:0:0:1]", true),
            ("127.0.0.1", "127.0.0.1", true),
            ("[::1]", "[::2]", false),
            ("[::ffff:7f00:1]", "127.0.0.1", false),
            ("api-x.duosecurity.com", "api-y.duosecurity.com", false),
        ];
        for (a, b, same) in table {
            assert_eq!(same_host(a, b), same, "{a} {b}");
        }
    }

    #[test]
    fn paths() {
        for good in ["/admin/v1/users", "/a/DU123/phones", "/x%2Fy", "/"] {
            assert!(check_path(good).is_ok(), "{good}");
        }
        for bad in
            ["admin", "//evil.example/x", "/a/../b", "/a/%2e%2E/b", "/a/./b", "/a?b=1", "/a#b", "/a b", "/é", "/a\\b"]
        {
            assert!(check_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dot_segments_are_told_as_by_decoding_a_lower_cased_copy() {
        let by_copy = |segment: &str| {
            let s = segment.to_ascii_lowercase().replace("%2e", ".");
            s == "." || s == ".."
        };
        let segments = [
            "",
            ".",
            "..",
            "...",
            "%2e",
            "%2E",
            "%2e%2E",
            ".%2e",
            "%2e.",
            "%2e%2e%2e",
            "%2",
            "%2f",
            "%2ex",
            "x.",
            ".x",
            "%%2e",
            "%2e%",
            "%252e",
            "a",
            "users",
            "%2E.",
            "..%2e",
            "%2e%2",
            "\u{e9}",
        ];
        for segment in segments {
            assert_eq!(is_dot_segment(segment), by_copy(segment), "{segment:?}");
        }
    }

    /// A record shows `json` instead of what the body's bytes parse to: they must be equal, for
    /// any text a param may hold (escaped, non-ASCII, astral, the secret itself), in v5; v2's
    /// form bodies and bodiless calls have none.
    #[test]
    fn json_is_what_the_body_parses_to() {
        let file = |signature: &str| {
            format!(
                "integrations:\n  a:\n    kind: duo_admin\n    host: api-12345678.duosecurity.com\n    ikey: DIWJ8X6AEYOR5OMC6TQ1\n    skey: Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep\n    signature: {signature}\n"
            )
        };
        let load = |signature: &str| {
            crate::integrations::parse(std::path::Path::new("a.yaml"), &file(signature), &|_| None)
                .expect("loads")
                .list
                .remove(0)
        };
        let body = serde_json::json!({
            "username": "zoë \"q\" \\ / \u{0}\t\u{7f}", "realname": "東京 👍🏽 𝄞", "valid_secs": 3600, "f": 1.5e-5,
            "secret": "Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep", "é": "", "gone": null, "ascii": "plain"
        });
        let integration = load("v5");
        for method in ["POST", "PUT", "PATCH"] {
            let mut call = Call::new(method, "/admin/v1/users");
            call.body = body.as_object().cloned();
            for prepared in [prepare(&integration, &call), lay_out(&integration, &call)] {
                let prepared = prepared.expect("prepared");
                let bytes = prepared.body.as_deref().expect("a body");
                assert_eq!(prepared.json.as_ref(), Some(&crate::http::parse_body(bytes)), "{method}");
            }
        }
        let call = Call::new("GET", "/admin/v1/users");
        assert_eq!(prepare(&integration, &call).expect("prepared").json, None);
        let mut call = Call::new("POST", "/admin/v1/users");
        call.body = body.as_object().cloned();
        assert_eq!(prepare(&load("v2"), &call).expect("prepared").json, None);
    }

    #[test]
    fn duo_params_are_strings_as_the_official_clients_send_them() {
        let body = serde_json::json!({"valid_secs": 3600, "username": "jdoe", "gone": null});
        let params = duo_params(body.as_object()).expect("numbers become text");
        assert_eq!(Value::Object(params), serde_json::json!({"valid_secs": "3600", "username": "jdoe"}));
        let err = duo_params(serde_json::json!({"install": true}).as_object()).expect_err("a boolean");
        assert!(err.contains("`install` is a boolean"), "{err}");
        let err = duo_params(serde_json::json!({"user_id_list": ["DU1"]}).as_object()).expect_err("a list");
        assert!(err.contains("JSON text in a string"), "{err}");
        assert_eq!(duo_params(None).expect("no body"), Map::new());
    }
}
