//! The serve config file (`flowcat serve --config serve.yaml`): where to listen, the
//! integrations file, the bearer tokens (as SHA-256 hashes) with what each may do, the limits,
//! the shutdown grace and the optional TLS files. Every problem is reported at once, naming the
//! file and the field; a token's value never appears in the file, so never in a message.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::auth::{Pattern, Token};

/// The largest config file read (a config is a few kilobytes).
const MAX_FILE: u64 = 1 << 20;

/// A checked serve config; paths are absolute or relative to the config file's folder.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub integrations: PathBuf,
    pub tokens: Vec<Token>,
    pub limits: Limits,
    pub shutdown_grace: Duration,
    pub tls: Option<Tls>,
    /// `telemetry:`: OTLP trace export (docs/serve.md, "Traces"); `None`: the `OTEL_*`
    /// variables decide, and without them nothing is exported.
    pub telemetry: Option<crate::telemetry::Settings>,
    /// Completion webhooks (`webhooks:`, `crate::webhook`).
    pub webhooks: Vec<crate::webhook::Hook>,
    /// `store:`: the shared Postgres database of the runs (`postgres://…`, or `${NAME}` naming an
    /// environment variable that holds it); `None`: the SQLite journal of the state folder.
    /// `--store` wins over it.
    pub store: Option<StoreUrl>,
}

/// The default of `limits.evict_waiting_after`: a wait that lasts longer than a few minutes (an
/// approval by a person) is likely to last hours, and costs nothing in the journal; a short one
/// (a callback) stays in memory and wakes without a journal read.
pub const EVICT_WAITING_AFTER: Duration = Duration::from_secs(10 * 60);

/// Bounds on what one request or one token may cost.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The largest request body (the inputs of a run), in bytes.
    pub max_body_bytes: usize,
    /// Runs a token may have in flight at once; one more is answered 429.
    pub max_runs_per_token: usize,
    /// Any request taking longer is answered 503 (`timeout`); the run it started goes on.
    pub request_timeout: Duration,
    /// The longest `?wait=`; must be shorter than `request_timeout`.
    pub max_wait: Duration,
    /// A run parked on a `wait_for` for longer than this is dropped from memory and left in
    /// the journal only; its signal (or its timeout) resumes it from there.
    pub evict_waiting_after: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 64 * 1024,
            max_runs_per_token: 16,
            request_timeout: Duration::from_secs(60),
            max_wait: Duration::from_secs(30),
            evict_waiting_after: EVICT_WAITING_AFTER,
        }
    }
}

/// The certificate chain and private key files (PEM) of `tls:`.
#[derive(Debug, Clone)]
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    listen: Option<String>,
    integrations: Option<String>,
    #[serde(default)]
    tokens: Vec<RawToken>,
    #[serde(default)]
    limits: RawLimits,
    shutdown_grace: Option<String>,
    tls: Option<RawTls>,
    telemetry: Option<crate::telemetry::config::Raw>,
    /// Read from the YAML tree itself, for its lines (`webhook::parse`).
    #[allow(dead_code)]
    webhooks: Option<serde_json::Value>,
    store: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    name: String,
    sha256: String,
    #[serde(default)]
    flows: Vec<String>,
    #[serde(default)]
    signals: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_body_bytes: Option<usize>,
    max_runs_per_token: Option<usize>,
    request_timeout: Option<String>,
    max_wait: Option<String>,
    evict_waiting_after: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: String,
    key: String,
}

/// Every problem of a config file, one a line, each naming the file.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct ConfigError(pub Vec<String>);

impl Config {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let shown = path.display().to_string();
        let one = |m: String| ConfigError(vec![format!("{shown}: {m}")]);
        let meta = std::fs::metadata(path).map_err(|e| one(format!("cannot read the serve config: {e}")))?;
        if meta.len() > MAX_FILE {
            return Err(one(format!("the file is {} bytes; a serve config is at most {MAX_FILE}", meta.len())));
        }
        let text = std::fs::read_to_string(path).map_err(|e| one(format!("cannot read the serve config: {e}")))?;
        let base = path.parent().map(Path::to_owned).unwrap_or_default();
        Config::parse(&text, &shown, &base)
    }

    /// Checks a config's text; `file` names it in messages, `base` anchors relative paths;
    /// `${NAME}` secrets come from the process's environment.
    pub fn parse(text: &str, file: &str, base: &Path) -> Result<Config, ConfigError> {
        Config::parse_with(text, file, base, &|name| std::env::var(name).ok())
    }

    /// [`Config::parse`] with the environment `env`.
    pub fn parse_with(
        text: &str,
        file: &str,
        base: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let one = |m: String| ConfigError(vec![format!("{file}: {m}")]);
        let root = flowcat_engine::yaml::parse(text)
            .map_err(|e| one(format!("line {}: not YAML: {}", e.pos.line, e.message)))?;
        let Some(root) = root else { return Err(one("the file is empty: see docs/serve.md for an example".into())) };
        let raw: Raw = serde_json::from_value(root.to_json())
            .map_err(|e| one(format!("{e} (the fields are listed in docs/serve.md)")))?;
        let mut problems = Vec::new();
        let mut bad = |m: String| problems.push(format!("{file}: {m}"));
        let listen = raw.listen.as_deref().unwrap_or("127.0.0.1:8080");
        let listen = listen.parse::<SocketAddr>().unwrap_or_else(|_| {
            bad(format!("`listen: {listen}` is not an address and port, e.g. `127.0.0.1:8080`"));
            SocketAddr::from(([127, 0, 0, 1], 0))
        });
        let integrations = match raw.integrations {
            Some(p) => base.join(p),
            None => {
                bad("`integrations:` is missing: name the integrations file the runs use".into());
                PathBuf::new()
            }
        };
        let mut tokens: Vec<Token> = Vec::new();
        if raw.tokens.is_empty() {
            bad("`tokens:` is empty: without a token nobody can call the API (docs/serve.md, \"Tokens\")".into());
        }
        for (i, t) in raw.tokens.into_iter().enumerate() {
            let at = format!("tokens[{i}] (`{}`)", t.name);
            if t.name.is_empty()
                || t.name.len() > 64
                || !t.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                bad(format!("{at}: `name` must be 1 to 64 letters, digits, `-`, `_` or `.`"));
            }
            if tokens.iter().any(|o| o.name == t.name) {
                bad(format!("{at}: another token has this name; names must be unique"));
            }
            let Some(hash) = crate::auth::parse_hash(&t.sha256) else {
                // Never quote the value: it may be a token pasted by mistake.
                bad(format!(
                    "{at}: `sha256` must be the SHA-256 of the token as 64 hex digits, not the token itself; \
                     make it with `flowcat serve hash-token`"
                ));
                continue;
            };
            if tokens.iter().any(|o| o.hash == hash) {
                bad(format!("{at}: another token has the same hash; give each caller its own token"));
            }
            let mut flows = Vec::new();
            for f in &t.flows {
                match Pattern::new(f) {
                    Some(p) => flows.push(p),
                    None => bad(format!("{at}: flow pattern `{f}` may hold only letters, digits, `-_.` and `*`")),
                }
            }
            let mut signals = Vec::new();
            for s in &t.signals {
                match Pattern::new(s) {
                    Some(p) => signals.push(p),
                    None => bad(format!("{at}: signal pattern `{s}` may hold only letters, digits, `-_.` and `*`")),
                }
            }
            tokens.push(Token { name: t.name, hash, flows, signals });
        }
        let mut limits = Limits::default();
        // Only the shutdown grace may be zero (drain at once); a zero timeout or wait would
        // refuse everything.
        let mut duration = |field: &str, v: Option<String>, into: &mut Duration, zero: bool| {
            if let Some(v) = v {
                match flowcat_engine::shape::parse_duration(&v) {
                    Some(d) if zero || !d.is_zero() => *into = d,
                    Some(_) => bad(format!("`{field}: {v}` must be longer than zero, e.g. `30s`, `2m`")),
                    None => bad(format!("`{field}: {v}` is not a duration, e.g. `30s`, `2m`")),
                }
            }
        };
        duration("limits.request_timeout", raw.limits.request_timeout, &mut limits.request_timeout, false);
        duration("limits.max_wait", raw.limits.max_wait, &mut limits.max_wait, false);
        let evict = &mut limits.evict_waiting_after;
        duration("limits.evict_waiting_after", raw.limits.evict_waiting_after, evict, false);
        let mut shutdown_grace = Duration::from_secs(30);
        duration("shutdown_grace", raw.shutdown_grace, &mut shutdown_grace, true);
        if let Some(n) = raw.limits.max_body_bytes {
            if !(1024..=16 << 20).contains(&n) {
                bad(format!("`limits.max_body_bytes: {n}` must be between 1024 and 16777216"));
            }
            limits.max_body_bytes = n;
        }
        if let Some(n) = raw.limits.max_runs_per_token {
            if !(1..=10_000).contains(&n) {
                bad(format!("`limits.max_runs_per_token: {n}` must be between 1 and 10000"));
            }
            limits.max_runs_per_token = n;
        }
        if limits.max_wait >= limits.request_timeout {
            bad(format!(
                "`limits.max_wait` ({} s) must be shorter than `limits.request_timeout` ({} s)",
                limits.max_wait.as_secs(),
                limits.request_timeout.as_secs()
            ));
        }
        let tls = raw.tls.map(|t| Tls { cert: base.join(t.cert), key: base.join(t.key) });
        let telemetry = raw.telemetry.and_then(|t| crate::telemetry::config::settings(t, &mut bad));
        let webhooks = match root.get("webhooks") {
            Some(node) => {
                crate::webhook::parse(node, base, env, &mut |line, m| problems.push(format!("{file}:{line}: {m}")))
            }
            None => Vec::new(),
        };
        let store = raw.store.and_then(|text| match store_url(&text, env) {
            Ok(url) => Some(StoreUrl(url)),
            Err(m) => {
                problems.push(format!("{file}: {m}"));
                None
            }
        });
        if problems.is_empty() {
            Ok(Config { listen, integrations, tokens, limits, shutdown_grace, tls, telemetry, webhooks, store })
        } else {
            Err(ConfigError(problems))
        }
    }
}

/// The database URL of `store:`; it may hold a password, so `Debug` shows only where it points.
#[derive(Clone, PartialEq, Eq)]
pub struct StoreUrl(String);

impl StoreUrl {
    /// The URL itself, to connect with: never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rest = self.0.split_once("://").map_or("", |(_, r)| r);
        let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
        write!(f, "StoreUrl(postgres://…@{})", rest.split('?').next().unwrap_or(rest))
    }
}

/// `store:` as a URL: written out (without a password: config files get shared and committed),
/// or `${NAME}`, an environment variable holding it (a password may sit there). Never quotes a
/// value that may hold a password.
fn store_url(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let url = match text.strip_prefix("${").and_then(|t| t.strip_suffix('}')) {
        Some(name) => {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err("`store: ${…}` must name an environment variable (letters, digits, `_`)".into());
            }
            env(name).filter(|v| !v.is_empty()).ok_or_else(|| {
                format!(
                    "`store: ${{{name}}}`: the environment variable `{name}` is not set (it holds the database URL)"
                )
            })?
        }
        None => {
            let authority = text.split_once("://").map_or("", |(_, r)| r).split('/').next().unwrap_or("");
            if authority.rsplit_once('@').is_some_and(|(user, _)| user.contains(':')) {
                return Err(
                    "`store:` holds a password, which is refused in a config file (config files get shared and \
                            committed): write `store: ${FLOWCAT_STORE}` and put the URL in that environment variable"
                        .into(),
                );
            }
            text.to_owned()
        }
    };
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(
            "`store:` must be a Postgres URL, `postgres://USER@HOST:PORT/DATABASE` (docs/serve.md, \"Replicas\")"
                .into(),
        );
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_is_a_postgres_url_whose_password_stays_out_of_the_file() {
        let env = |name: &str| (name == "PG_URL").then(|| "postgres://app:s3cret@db:5432/flowcat".to_owned());
        assert_eq!(store_url("postgres://app@db/flowcat", &env).as_deref(), Ok("postgres://app@db/flowcat"));
        assert_eq!(store_url("${PG_URL}", &env).as_deref(), Ok("postgres://app:s3cret@db:5432/flowcat"));
        let e = store_url("postgres://app:hunter2@db/flowcat", &env).expect_err("inline password");
        assert!(e.contains("password") && !e.contains("hunter2"), "{e}");
        assert!(store_url("${NOPE}", &env).expect_err("unset").contains("NOPE"));
        assert!(store_url("mysql://db", &env).expect_err("not postgres").contains("Postgres URL"));
        let text = format!("integrations: i.yaml\nstore: ${{PG_URL}}\ntokens:\n  - {{name: a, sha256: {HASH}}}\n");
        let c = Config::parse_with(&text, "s.yaml", Path::new("."), &env).expect("valid");
        assert_eq!(c.store.as_ref().map(StoreUrl::expose), Some("postgres://app:s3cret@db:5432/flowcat"));
        // The config's Debug never shows the URL's password.
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn a_config_with_every_field_is_read() {
        let text = format!(
            "listen: 127.0.0.1:0\nintegrations: i.yaml\nshutdown_grace: 10s\n\
             tokens:\n  - name: bot\n    sha256: {HASH}\n    flows: [duo.auth.*]\n    signals: [approval]\n\
             limits:\n  max_body_bytes: 2048\n  max_runs_per_token: 2\n  request_timeout: 20s\n  max_wait: 5s\n  \
             evict_waiting_after: 90s\n"
        );
        let c = Config::parse(&text, "serve.yaml", Path::new("/etc/flowcat")).expect("valid");
        assert_eq!(c.integrations, Path::new("/etc/flowcat/i.yaml"));
        assert_eq!(c.limits.max_runs_per_token, 2);
        assert_eq!(c.limits.max_wait, Duration::from_secs(5));
        assert_eq!(c.limits.evict_waiting_after, Duration::from_secs(90));
        let plain = Config::parse(
            &format!("integrations: i.yaml\ntokens:\n  - {{name: a, sha256: {HASH}}}\n"),
            "s",
            Path::new("."),
        );
        assert_eq!(plain.expect("valid").limits.evict_waiting_after, EVICT_WAITING_AFTER);
        assert_eq!(c.shutdown_grace, Duration::from_secs(10));
        assert!(c.tokens[0].flows[0].matches("duo.auth.verify_push"));
    }

    #[test]
    fn every_problem_is_reported_and_a_pasted_token_is_never_quoted() {
        let text = "listen: nowhere\ntokens:\n  - name: bot\n    sha256: my-secret-token-value\n\
                    limits:\n  max_wait: 90s\n  request_timeout: 60s\n";
        let e = Config::parse(text, "serve.yaml", Path::new(".")).expect_err("invalid").to_string();
        assert!(e.contains("`listen: nowhere`"), "{e}");
        assert!(e.contains("`integrations:` is missing"), "{e}");
        assert!(e.contains("flowcat serve hash-token"), "{e}");
        assert!(e.contains("must be shorter"), "{e}");
        assert!(!e.contains("my-secret-token-value"), "{e}");
        assert!(e.lines().all(|l| l.starts_with("serve.yaml: ")), "{e}");
    }

    #[test]
    fn a_zero_grace_drains_at_once_and_a_zero_timeout_is_refused_as_such() {
        let base = format!("integrations: i.yaml\ntokens:\n  - {{name: a, sha256: {HASH}}}\n");
        let c = Config::parse(&format!("{base}shutdown_grace: 0s\n"), "s.yaml", Path::new(".")).expect("valid");
        assert_eq!(c.shutdown_grace, Duration::ZERO);
        let text = format!("{base}limits:\n  request_timeout: 0s\n  max_wait: soon\n");
        let e = Config::parse(&text, "s.yaml", Path::new(".")).expect_err("invalid").to_string();
        assert!(e.contains("`limits.request_timeout: 0s` must be longer than zero"), "{e}");
        assert!(e.contains("`limits.max_wait: soon` is not a duration"), "{e}");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let e = Config::parse("integrations: i.yaml\ncors: '*'\n", "s.yaml", Path::new(".")).expect_err("invalid");
        assert!(e.to_string().contains("cors"), "{e}");
    }
}
