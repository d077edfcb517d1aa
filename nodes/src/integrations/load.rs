//! Reading the integrations file: the spanned YAML tree → checked [`Integration`]s, every problem
//! gathered, each pointing at `file:line:col` with the integration's name and the fix.

use std::fmt::Display;
use std::path::Path;
use std::sync::Arc;

use flowcat_engine::diag::did_you_mean;
use flowcat_engine::shape::parse_duration;
use flowcat_engine::yaml::{self, Node, Span};

use super::guard::{looks_like_secret, readable_by_others};
use super::value::{clip, env_reference, parse_base_url, parse_host};
use super::{Auth, Endpoint, Error, Integration, Integrations, Kind, Scheme, is_loopback, relative_to};
use crate::duo::{RetryPolicy, Secret, SigVersion, SignError, Signer};
use crate::http::{Limiter, RateLimit};

const COMMON_KEYS: &[&str] = &["kind", "retry", "rate_limit", "loopback_http", "tls_roots", "ca_certs"];
const DUO_KEYS: &[&str] = &["host", "ikey", "skey", "signature", "host_check"];
const HTTP_KEYS: &[&str] = &["base_url", "auth", "token", "username", "password"];
const RETRY_KEYS: &[&str] = &["max_attempts", "initial", "max", "jitter"];
const RATE_KEYS: &[&str] = &["per_second", "per_minute", "burst"];
const RATE_FIX: &str =
    "write `rate_limit: { per_second: 10, burst: 20 }`, `rate_limit: { per_minute: 180 }` or `rate_limit: none`";
/// The most `rate_limit.per_second` (and burst) accepted: far above any API's limit, low enough
/// that a typo of a few zeros is caught.
const MAX_RATE: f64 = 10_000.0;
const AUTH_MODES: &[&str] = &["none", "basic", "bearer"];
const SECRET_FIX: &str = "write `${ENV_VAR}` or `{ file: PATH }` instead";

/// Reads and checks the integrations file at `path`. `env` looks environment variables up (the
/// process environment in the binary, a map in tests); `{ file: … }` references are read relative
/// to the file's folder. Every problem is reported, not only the first.
pub fn load(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Integrations, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read { path: path.to_owned(), source })?;
    parse(path, &text, env)
}

/// [`load`] for text already read; `path` names it in messages and anchors file references.
pub fn parse(path: &Path, text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Integrations, Error> {
    let file = path.display().to_string();
    let mut cx = Cx { path, file, env, name: None, loopback_http: false, problems: vec![], warnings: vec![] };
    let list = cx.file(text);
    if cx.problems.is_empty() {
        Ok(Integrations { path: path.to_owned(), list, warnings: cx.warnings })
    } else {
        Err(Error::Invalid { path: path.to_owned(), problems: cx.problems })
    }
}

/// What `rate_limit:` says: nothing (the kind's default), `none`, or a limit.
enum Rate {
    Default,
    Off,
    Set(RateLimit),
}

/// The loader's state: where we are and what went wrong so far.
pub(super) struct Cx<'a> {
    pub(super) path: &'a Path,
    file: String,
    env: &'a dyn Fn(&str) -> Option<String>,
    /// The integration being read, named in every message about it.
    name: Option<String>,
    /// The integration being read is the simulator's (`loopback_http: true`): its made-up keys are
    /// written inline on purpose, so inline secrets draw no warning.
    loopback_http: bool,
    pub(super) problems: Vec<String>,
    warnings: Vec<String>,
}

impl Cx<'_> {
    pub(super) fn message(&self, span: Span, what: impl Display, fix: impl Display) -> String {
        let Span { start, .. } = span;
        let whose = self.name.as_ref().map(|n| format!("integration `{n}`: ")).unwrap_or_default();
        format!("{}:{}:{}: {whose}{what} ({fix})", self.file, start.line, start.col)
    }

    pub(super) fn error(&mut self, span: Span, what: impl Display, fix: impl Display) {
        let message = self.message(span, what, fix);
        self.problems.push(message);
    }

    fn file(&mut self, text: &str) -> Vec<Integration> {
        let root = match yaml::parse(text) {
            Ok(Some(root)) => root,
            Ok(None) => return Vec::new(),
            Err(e) => {
                let at = Span { start: e.pos, end: e.pos };
                self.error(at, format_args!("invalid YAML: {}", e.message), "fix the syntax near there");
                return Vec::new();
            }
        };
        let Some(pairs) = root.as_map() else {
            self.error(
                root.span,
                format_args!("expected a mapping, found {}", root.describe()),
                "start with `integrations:`",
            );
            return Vec::new();
        };
        self.unknown_keys(pairs, &[&["integrations"]], "");
        match root.get("integrations") {
            Some(node) if node.is_null() => Vec::new(),
            Some(node) => self.entries(node),
            None => {
                self.error(root.span, "no `integrations:` mapping", "list the integrations under `integrations:`");
                Vec::new()
            }
        }
    }

    fn entries(&mut self, node: &Node) -> Vec<Integration> {
        let Some(pairs) = node.as_map() else {
            let what = format_args!("`integrations` must be a mapping of names, found {}", node.describe());
            self.error(node.span, what, "write one `name:` per integration under it");
            return Vec::new();
        };
        let mut list: Vec<Integration> = Vec::new();
        for (key, body) in pairs {
            let name = key.as_str().unwrap_or_default().to_owned();
            let plain = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !plain {
                self.error(
                    key.span,
                    format_args!("`{name}` is not a valid integration name"),
                    "use letters, digits, `_` and `-`",
                );
                continue;
            }
            if list.iter().any(|i| i.name == name) || self.name_seen_twice(pairs, key) {
                self.error(key.span, format_args!("integration `{name}` is defined twice"), "keep one of them");
                continue;
            }
            self.name = Some(name.clone());
            if let Some(integration) = self.integration(name, key.span, body) {
                list.push(integration);
            }
            self.name = None;
        }
        list
    }

    /// True for a later duplicate of `key` (the first one is read; a failed first one still counts).
    fn name_seen_twice(&self, pairs: &[(Node, Node)], key: &Node) -> bool {
        pairs.iter().take_while(|(k, _)| !std::ptr::eq(k, key)).any(|(k, _)| k.as_str() == key.as_str())
    }

    fn integration(&mut self, name: String, at: Span, body: &Node) -> Option<Integration> {
        let Some(pairs) = body.as_map() else {
            let what = format_args!("expected a mapping with `kind` and its settings, found {}", body.describe());
            self.error(body.span, what, "see docs/integrations.md for the format");
            return None;
        };
        let kind = self.kind(body, at);
        let allowed: &[&[&str]] = match kind {
            Some(Kind::Http) => &[COMMON_KEYS, HTTP_KEYS],
            Some(_) => &[COMMON_KEYS, DUO_KEYS],
            None => &[COMMON_KEYS, DUO_KEYS, HTTP_KEYS],
        };
        self.unknown_keys(pairs, allowed, kind.map(Kind::as_str).unwrap_or_default());
        let loopback_http = self.flag(body, "loopback_http");
        self.loopback_http = loopback_http;
        let retry = self.retry(body);
        let rate = self.rate_limit(body);
        let tls = self.tls(body);
        let (endpoint, auth) = match kind? {
            Kind::Http => self.http(body, at, loopback_http)?,
            _ => self.duo(body, at, loopback_http)?,
        };
        let kind = kind?;
        let limit = match rate? {
            Rate::Set(limit) => Some(limit),
            Rate::Off => None,
            // Duo's limits protect Duo: the simulator on loopback has its own (`--rate-limit`).
            Rate::Default if kind.is_duo() && !is_loopback(&endpoint.host) => Some(RateLimit::DUO_DEFAULT),
            Rate::Default => None,
        };
        let limiter = limit.map(|limit| Arc::new(Limiter::new(limit)));
        let origin = Integration::origin_of(&endpoint);
        Some(Integration { name, kind, endpoint, auth, retry: retry?, loopback_http, tls: tls?, limiter, origin })
    }

    fn kind(&mut self, body: &Node, at: Span) -> Option<Kind> {
        let names = Kind::ALL.map(Kind::as_str);
        let Some(node) = body.get("kind") else {
            self.error(at, "no `kind`", format_args!("add `kind: {}`", names.join("` or `kind: ")));
            return None;
        };
        let text = node.as_str().unwrap_or_default();
        if let Some(why) = looks_like_secret(text) {
            self.secret_in_wrong_place(node.span, "kind", why);
            return None;
        }
        let kind = Kind::parse(text);
        if kind.is_none() {
            let fix = match did_you_mean(text, names) {
                Some(near) => format!("did you mean `{near}`?"),
                None => format!("expected {}", flowcat_engine::diag::one_of(names)),
            };
            self.error(node.span, format_args!("unknown kind `{}`", clip(text)), fix);
        }
        kind
    }

    /// Reports keys that are not in `allowed`, repeated keys too. `kind` names the kind for "is
    /// only for" hints.
    fn unknown_keys(&mut self, pairs: &[(Node, Node)], allowed: &[&[&str]], kind: &str) {
        let allowed: Vec<&str> = allowed.iter().flat_map(|keys| keys.iter().copied()).collect();
        for (i, (key, _)) in pairs.iter().enumerate() {
            let text = key.as_str().unwrap_or_default();
            if pairs[..i].iter().any(|(k, _)| k.as_str() == Some(text)) {
                self.error(key.span, format_args!("`{}` is given twice", clip(text)), "keep one");
            } else if allowed.contains(&text) {
            } else if HTTP_KEYS.contains(&text) || DUO_KEYS.contains(&text) {
                let owner = if HTTP_KEYS.contains(&text) { "`http`" } else { "`duo_admin` and `duo_auth`" };
                let what = format_args!("`{text}` is not a setting of a `{kind}` integration");
                self.error(key.span, what, format_args!("it is for {owner} integrations; remove it"));
            } else {
                let fix = match did_you_mean(text, allowed.iter().copied()) {
                    Some(near) => format!("did you mean `{near}`?"),
                    None => format!("expected {}", flowcat_engine::diag::one_of(allowed.iter().copied())),
                };
                self.error(key.span, format_args!("unknown key `{}`", clip(text)), fix);
            }
        }
    }

    fn flag(&mut self, body: &Node, key: &str) -> bool {
        let Some(node) = body.get(key) else { return false };
        node.as_bool().unwrap_or_else(|| {
            self.error(node.span, format_args!("`{key}` must be `true` or `false`"), "write `true` or `false`");
            false
        })
    }

    fn retry(&mut self, body: &Node) -> Option<RetryPolicy> {
        let mut policy = RetryPolicy::default();
        let Some(node) = body.get("retry") else { return Some(policy) };
        let Some(pairs) = node.as_map() else {
            self.error(
                node.span,
                "`retry` must be a mapping",
                "write `retry: { max_attempts: 7, initial: 1s, max: 32s }`",
            );
            return None;
        };
        self.unknown_keys(pairs, &[RETRY_KEYS], "retry");
        let before = self.problems.len();
        if let Some(n) = node.get("max_attempts") {
            match n.as_str().and_then(|t| t.parse::<u32>().ok()).filter(|a| (1..=100).contains(a)) {
                Some(attempts) => policy.max_attempts = attempts,
                None => {
                    self.error(n.span, "`retry.max_attempts` must be a whole number from 1 to 100", "1 never retries")
                }
            }
        }
        for (key, slot) in [("initial", &mut policy.initial), ("max", &mut policy.max), ("jitter", &mut policy.jitter)]
        {
            let Some(n) = node.get(key) else { continue };
            match n.as_str().and_then(parse_duration) {
                Some(duration) => *slot = duration,
                None => {
                    self.error(n.span, format_args!("`retry.{key}` is not a duration"), "write `500ms`, `2s` or `1m`")
                }
            }
        }
        if policy.initial > policy.max {
            self.error(node.span, "`retry.initial` is longer than `retry.max`", "make `initial` at most `max`");
        }
        (self.problems.len() == before).then_some(policy)
    }

    /// `rate_limit: none` or `rate_limit: { per_second | per_minute, burst }`.
    fn rate_limit(&mut self, body: &Node) -> Option<Rate> {
        let Some(node) = body.get("rate_limit") else { return Some(Rate::Default) };
        if node.as_str() == Some("none") {
            return Some(Rate::Off);
        }
        let Some(pairs) = node.as_map() else {
            let what = format_args!("`rate_limit` must be `none` or a mapping, found {}", node.describe());
            self.error(node.span, what, RATE_FIX);
            return None;
        };
        self.unknown_keys(pairs, &[RATE_KEYS], "rate_limit");
        let before = self.problems.len();
        let rate = match (node.get("per_second"), node.get("per_minute")) {
            (Some(n), None) => self.rate_number(n, "per_second", 1.0),
            (None, Some(n)) => self.rate_number(n, "per_minute", 60.0),
            (Some(_), Some(n)) => {
                let fix = "keep one: `per_minute: 180` is `per_second: 3`";
                self.error(n.span, "`rate_limit` has both `per_second` and `per_minute`", fix);
                None
            }
            (None, None) => {
                self.error(node.span, "`rate_limit` has no `per_second` or `per_minute`", RATE_FIX);
                None
            }
        };
        let burst = match node.get("burst") {
            // One second's worth: as many at once as the rate allows in a second.
            None => rate.map(|r| r.ceil().max(1.0) as u32),
            Some(n) => {
                let parsed =
                    n.as_str().and_then(|t| t.parse::<u32>().ok()).filter(|b| (1..=MAX_RATE as u32).contains(b));
                if parsed.is_none() {
                    let what = format_args!("`rate_limit.burst` must be a whole number from 1 to {MAX_RATE}");
                    self.error(n.span, what, "the requests that may go at once after a quiet spell, e.g. `burst: 10`");
                }
                parsed
            }
        };
        if self.problems.len() != before {
            return None;
        }
        Some(Rate::Set(RateLimit { per_second: rate?, burst: burst? }))
    }

    /// A rate in requests per `unit` seconds, as requests per second.
    fn rate_number(&mut self, node: &Node, key: &str, unit: f64) -> Option<f64> {
        let number = node.as_str().and_then(|t| t.parse::<f64>().ok()).filter(|n| n.is_finite());
        match number.map(|n| n / unit) {
            Some(per_second) if per_second > 0.0 && per_second <= MAX_RATE => Some(per_second),
            _ => {
                let what = format_args!("`rate_limit.{key}` must be a number above 0 and at most {}", MAX_RATE * unit);
                self.error(node.span, what, "requests allowed on average; `rate_limit: none` turns the limit off");
                None
            }
        }
    }

    fn duo(&mut self, body: &Node, at: Span, loopback_http: bool) -> Option<(Endpoint, Auth)> {
        let host_fix = "copy the API hostname from the Duo Admin Panel: Applications → your application → API hostname";
        let host = self.required(body, "host", at, host_fix).and_then(|node| {
            let text = self.text(node, "host", false)?;
            if let Some(why) = looks_like_secret(&text) {
                self.secret_in_wrong_place(node.span, "host", why);
                return None;
            }
            let host = parse_host(&text).map_err(|what| self.error(node.span, what, host_fix)).ok()?;
            self.duo_host(body, node.span, &host.0, loopback_http).then_some(host)
        });
        let ikey_fix = "copy the Integration key from the Duo Admin Panel: Applications → your application";
        let ikey = self.required(body, "ikey", at, ikey_fix).and_then(|node| self.text(node, "ikey", false));
        let skey_fix = "copy the Secret key from the Duo Admin Panel: Applications → your application, into `${ENV_VAR}` or a file";
        let skey = self.required(body, "skey", at, skey_fix).and_then(|node| self.text(node, "skey", true));
        let version = match body.get("signature") {
            None => Some(SigVersion::V5),
            Some(node) => node
                .as_str()
                .unwrap_or_default()
                .parse::<SigVersion>()
                .map_err(|e| self.error(node.span, e, "use `v5` (the default) unless Duo told you otherwise"))
                .ok(),
        };
        let scheme = self.scheme(body, host.as_ref().map(|h| h.0.as_str()), loopback_http);
        let (host, ikey, skey, version, scheme) = (host?, ikey?, skey?, version?, scheme?);
        let skey = Secret::new(skey);
        let signer = Signer::new(ikey, skey.clone(), version).map_err(|e| {
            let key = if matches!(e, SignError::EmptySecret) { "skey" } else { "ikey" };
            let span = body.get(key).map_or(at, |n| n.span);
            self.error(span, e, format_args!("copy the `{key}` again from the Duo Admin Panel"));
        });
        let endpoint = Endpoint { scheme, host: host.0, port: host.1, base_path: String::new() };
        Some((endpoint, Auth::Duo { signer: Box::new(signer.ok()?), skey }))
    }

    /// `http` when the file asks for it on a loopback host, `https` otherwise.
    fn scheme(&mut self, body: &Node, host: Option<&str>, loopback_http: bool) -> Option<Scheme> {
        match (loopback_http, host) {
            (false, _) => Some(Scheme::Https),
            (true, Some(host)) if is_loopback(host) => Some(Scheme::Http),
            (true, Some(host)) => {
                let span = body.key_span("loopback_http").unwrap_or(body.span);
                let what = format_args!("`loopback_http: true` but `{host}` is not a loopback host");
                self.error(
                    span,
                    what,
                    "remove `loopback_http`; only `localhost`, `127.0.0.1` or `::1` may use plain http",
                );
                None
            }
            (true, None) => None,
        }
    }

    fn http(&mut self, body: &Node, at: Span, loopback_http: bool) -> Option<(Endpoint, Auth)> {
        let fix = "write `base_url: https://host/path`";
        let endpoint = self.required(body, "base_url", at, fix).and_then(|node| {
            let text = self.text(node, "base_url", false)?;
            let (endpoint, scheme) = parse_base_url(&text).map_err(|what| self.error(node.span, what, fix)).ok()?;
            let scheme_ok = self.scheme(body, Some(&endpoint.host), loopback_http);
            match (scheme, scheme_ok?) {
                (Scheme::Http, Scheme::Https) => {
                    let what = "plain `http` is refused: credentials and data would travel in clear";
                    self.error(node.span, what, "use `https://`; a loopback test server may add `loopback_http: true`");
                    None
                }
                _ => Some(endpoint),
            }
        });
        let auth = self.http_auth(body, at);
        Some((endpoint?, auth?))
    }

    fn http_auth(&mut self, body: &Node, at: Span) -> Option<Auth> {
        let mode = match body.get("auth") {
            None => "none",
            Some(node) => {
                let text = node.as_str().unwrap_or_default();
                if !AUTH_MODES.contains(&text) {
                    let fix = did_you_mean(text, AUTH_MODES.iter().copied())
                        .map_or("expected `none`, `basic` or `bearer`".to_owned(), |n| format!("did you mean `{n}`?"));
                    self.error(node.span, format_args!("unknown `auth` `{}`", clip(text)), fix);
                    return None;
                }
                text
            }
        };
        let used: &[&str] = match mode {
            "bearer" => &["token"],
            "basic" => &["username", "password"],
            _ => &[],
        };
        for key in ["token", "username", "password"].into_iter().filter(|k| !used.contains(k)) {
            if let Some(span) = body.key_span(key) {
                let fix =
                    if key == "token" { "set `auth: bearer`, or remove it" } else { "set `auth: basic`, or remove it" };
                self.error(span, format_args!("`{key}` is not used with `auth: {mode}`"), fix);
            }
        }
        let mut field = |key: &str, secret: bool| {
            let fix = format_args!("`auth: {mode}` needs `{key}`").to_string();
            self.required(body, key, at, &fix).and_then(|node| self.text(node, key, secret))
        };
        match mode {
            "bearer" => Some(Auth::Bearer(Secret::new(field("token", true)?))),
            "basic" => {
                let (username, password) = (field("username", false), field("password", true));
                Some(Auth::Basic { username: username?, password: Secret::new(password?) })
            }
            _ => Some(Auth::None),
        }
    }

    fn required<'n>(&mut self, body: &'n Node, key: &str, at: Span, fix: &str) -> Option<&'n Node> {
        let node = body.get(key);
        if node.is_none_or(Node::is_null) {
            self.error(body.key_span(key).unwrap_or(at), format_args!("missing `{key}`"), fix);
            return None;
        }
        node
    }

    /// A string setting: `${ENV_VAR}`, `{ file: PATH }` or written inline (a warning when `secret`).
    /// Error messages name the variable or the file, never the value.
    fn text(&mut self, node: &Node, key: &str, secret: bool) -> Option<String> {
        let value = if node.as_map().is_some() {
            self.file_reference(node, key, secret)?
        } else if let Some(text) = node.as_str() {
            match env_reference(text) {
                Ok(Some(var)) => self.env_var(node.span, key, var)?,
                Ok(None) => {
                    if secret && !self.loopback_http {
                        let what = format_args!("`{key}` is written inline in the file");
                        let warning = self.message(node.span, what, SECRET_FIX);
                        self.warnings.push(warning);
                    }
                    text.to_owned()
                }
                Err(()) => {
                    let what = format_args!("`{key}` holds `${{` but is not an environment reference");
                    self.error(node.span, what, "write `${NAME}` alone, NAME made of letters, digits and `_`");
                    return None;
                }
            }
        } else {
            self.error(node.span, format_args!("`{key}` must be a string, found {}", node.describe()), SECRET_FIX);
            return None;
        };
        if value.is_empty() {
            self.error(node.span, format_args!("`{key}` is empty"), "give it a value");
            return None;
        }
        Some(value)
    }

    fn env_var(&mut self, span: Span, key: &str, var: &str) -> Option<String> {
        let Some(mut value) = (self.env)(var) else {
            let what = format_args!("environment variable `{var}` (for `{key}`) is not set");
            self.error(span, what, format_args!("set it, e.g. `export {var}=…`, or use `{{ file: PATH }}`"));
            return None;
        };
        // `export X=$(cat file)` drops it, but `X="$(cat file)\n"` or a secrets manager may not:
        // a newline is never part of a key, and signing with it fails in a puzzling way.
        if value.ends_with(['\n', '\r']) {
            value.truncate(value.trim_end_matches(['\n', '\r']).len());
            let what = format_args!("environment variable `{var}` (for `{key}`) ends with a newline");
            let warning = self.message(span, what, "it was trimmed; set the variable without it");
            self.warnings.push(warning);
        }
        Some(value)
    }

    fn file_reference(&mut self, node: &Node, key: &str, secret: bool) -> Option<String> {
        let pairs = node.as_map().unwrap_or_default();
        self.unknown_keys(pairs, &[&["file"]], "file reference");
        let Some(reference) = node.get("file").and_then(Node::as_str).filter(|r| !r.is_empty()) else {
            self.error(node.span, format_args!("`{key}` is a mapping without `file`"), "write `{ file: PATH }`");
            return None;
        };
        let path = relative_to(self.path, reference);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                if let Some(mode) = secret.then(|| readable_by_others(&path)).flatten() {
                    let what = format_args!(
                        "`{}` (for `{key}`) is readable by group or others (mode {mode:04o})",
                        path.display()
                    );
                    let fix = format_args!("`chmod 600 {}`", path.display());
                    let warning = self.message(node.span, what, fix);
                    self.warnings.push(warning);
                }
                Some(text.trim().to_owned())
            }
            Err(e) => {
                let what = format_args!("cannot read `{}` (for `{key}`): {e}", path.display());
                self.error(node.span, what, "the path is relative to the integrations file");
                None
            }
        }
    }
}
