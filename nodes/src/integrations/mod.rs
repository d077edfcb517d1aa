//! Integrations: the named Duo applications and HTTP APIs a flow's `rest_call` nodes call, read
//! from the integrations file (`integrations.yaml`), with their endpoints, credentials and retry
//! policies.
//!
//! [`load`] reads and checks the whole file, gathering every problem; the result holds
//! credentials only inside [`Secret`] and [`Signer`], whose `Debug` prints no secret, so an
//! [`Integrations`] can be logged as it is. [`check`] tries an integration's keys against Duo.

pub mod check;
mod guard;
mod load;
mod tls;
mod value;

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::duo::{RetryPolicy, Secret, Signer};
use crate::http::Limiter;

pub use load::{load, parse};
pub use tls::{Roots, Tls, parse_pem};

/// The environment variable that names the integrations file when `--integrations` is not given.
pub const ENV_VAR: &str = "FLOWCAT_INTEGRATIONS";

/// The integrations file used when neither `--integrations` nor [`ENV_VAR`] names one.
pub const DEFAULT_FILE: &str = "integrations.yaml";

/// `$FLOWCAT_INTEGRATIONS`, else `./integrations.yaml`.
pub fn default_path() -> PathBuf {
    match std::env::var_os(ENV_VAR) {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => PathBuf::from(".").join(DEFAULT_FILE),
    }
}

/// What an integration talks to; a flow's slot asks for one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A Duo Admin API application: requests are signed with its keys.
    DuoAdmin,
    /// A Duo Auth API application: requests are signed with its keys.
    DuoAuth,
    /// A plain HTTP API with optional basic or bearer authentication.
    Http,
}

impl Kind {
    /// Every kind, in the order the docs list them.
    pub const ALL: [Kind; 3] = [Kind::DuoAdmin, Kind::DuoAuth, Kind::Http];

    /// The name written in the integrations file and in a flow's slot.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::DuoAdmin => "duo_admin",
            Kind::DuoAuth => "duo_auth",
            Kind::Http => "http",
        }
    }

    /// The kind written as `name`, if there is one.
    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// Whether requests are signed with a Duo application's keys.
    pub fn is_duo(self) -> bool {
        matches!(self, Kind::DuoAdmin | Kind::DuoAuth)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `https`, or `http` for a loopback host its integration marks with `loopback_http: true`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Https,
    Http,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Https => "https",
            Scheme::Http => "http",
        }
    }
}

/// Where an integration's requests go. Every request of the integration goes to exactly this
/// scheme, host and port, under `base_path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub scheme: Scheme,
    /// Lower-cased, without the port; an IPv6 address keeps its brackets (`[::1]`).
    pub host: String,
    pub port: Option<u16>,
    /// The path of an `http` integration's `base_url` without a trailing `/` (often empty);
    /// always empty for Duo.
    pub base_path: String,
}

/// How requests authenticate. Secrets sit in [`Secret`] or inside the [`Signer`].
#[derive(Debug, Clone)]
pub enum Auth {
    /// Duo's HMAC signature with the application's integration key and secret key. `skey` is the
    /// key the signer holds, kept beside it so that records can be scrubbed of it.
    Duo {
        /// Boxed: the keyed HMAC states make it ten times the size of the other variants.
        signer: Box<Signer>,
        skey: Secret,
    },
    None,
    Basic {
        username: String,
        password: Secret,
    },
    Bearer(Secret),
}

impl Auth {
    /// The secret strings a record must never show, as written and as they appear on the wire.
    pub fn secrets(&self) -> Vec<String> {
        use base64::Engine as _;
        let b64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
        match self {
            Auth::Duo { skey, .. } => vec![skey.expose().to_owned()],
            Auth::None => Vec::new(),
            Auth::Basic { username, password } => {
                vec![password.expose().to_owned(), b64(&format!("{username}:{}", password.expose()))]
            }
            Auth::Bearer(token) => vec![token.expose().to_owned()],
        }
    }
}

/// `host` or `host:port`.
fn authority_of(endpoint: &Endpoint) -> String {
    match endpoint.port {
        Some(port) => format!("{}:{port}", endpoint.host),
        None => endpoint.host.clone(),
    }
}

/// One named integration from the integrations file.
#[derive(Debug, Clone)]
pub struct Integration {
    pub name: String,
    pub kind: Kind,
    pub endpoint: Endpoint,
    pub auth: Auth,
    /// The integration's retry policy (the official Duo clients' unless the file overrides it); a
    /// node may override it again per call.
    pub retry: RetryPolicy,
    /// Plain `http` is allowed because the host is loopback and the file says so.
    pub loopback_http: bool,
    /// The roots and extra CA certificates the server's certificate is checked against.
    pub tls: Tls,
    /// The integration's rate limiter (`rate_limit:`), made once when the file is read and shared
    /// by every clone, so every run bound to this integration in the process waits on the same
    /// bucket and slows down together on a 429. `None`: no limit (`rate_limit: none`, or an `http`
    /// or loopback integration without `rate_limit:`).
    pub limiter: Option<Arc<Limiter>>,
    /// `scheme://host[:port]/` parsed once, when the file is read: each request's URL is this
    /// with its path and query set, instead of a whole URL parsed again per request.
    pub origin: Option<reqwest::Url>,
}

impl Integration {
    /// [`Integration::origin`] for `endpoint`.
    pub fn origin_of(endpoint: &Endpoint) -> Option<reqwest::Url> {
        reqwest::Url::parse(&format!("{}://{}/", endpoint.scheme.as_str(), authority_of(endpoint))).ok()
    }

    /// The host name without the port, lower-cased: what Duo signatures cover.
    pub fn host(&self) -> &str {
        &self.endpoint.host
    }

    /// `host` or `host:port`: what goes in the URL and the `Host` header.
    pub fn authority(&self) -> String {
        authority_of(&self.endpoint)
    }

    /// `scheme://authority` plus an `http` integration's base path, without a trailing `/`.
    pub fn base_url(&self) -> String {
        format!("{}://{}{}", self.endpoint.scheme.as_str(), self.authority(), self.endpoint.base_path)
    }

    pub fn retry(&self) -> &RetryPolicy {
        &self.retry
    }

    /// The Duo signer, for the Duo kinds.
    pub fn signer(&self) -> Option<&Signer> {
        match &self.auth {
            Auth::Duo { signer, .. } => Some(signer),
            _ => None,
        }
    }
}

/// Every integration of one file, and the warnings loading it gave (inline secrets).
#[derive(Debug, Clone)]
pub struct Integrations {
    pub path: PathBuf,
    pub list: Vec<Integration>,
    pub warnings: Vec<String>,
}

impl Integrations {
    /// The integration named `name`.
    pub fn get(&self, name: &str) -> Result<&Integration, Error> {
        self.list.iter().find(|i| i.name == name).ok_or_else(|| Error::Unknown {
            path: self.path.clone(),
            name: name.to_owned(),
            suggestion: flowcat_engine::diag::did_you_mean(name, self.list.iter().map(|i| i.name.as_str()))
                .map(str::to_owned),
        })
    }

    /// The integration named `name` for a slot that needs `expected`.
    pub fn for_slot(&self, name: &str, expected: Kind) -> Result<&Integration, Error> {
        let integration = self.get(name)?;
        if integration.kind != expected {
            return Err(Error::WrongKind {
                path: self.path.clone(),
                name: name.to_owned(),
                found: integration.kind,
                expected,
            });
        }
        Ok(integration)
    }
}

/// Why an integrations file could not be used. No variant holds a secret.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "{}: cannot read the integrations file: {source} (create it, or name another with `--integrations FILE` or `FLOWCAT_INTEGRATIONS`)",
        path.display()
    )]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Every problem found, each `file:line:col: integration `x`: what (fix)`.
    #[error("{}", problems.join("\n"))]
    Invalid { path: PathBuf, problems: Vec<String> },
    #[error(
        "{}: no integration named `{name}`{} (add it under `integrations:` or change the flow's integration)",
        path.display(),
        suggestion.as_ref().map(|s| format!("; did you mean `{s}`?")).unwrap_or_default()
    )]
    Unknown { path: PathBuf, name: String, suggestion: Option<String> },
    #[error(
        "{}: integration `{name}` is `{found}` but this slot needs `{expected}` (point the flow at a `{expected}` integration)",
        path.display()
    )]
    WrongKind { path: PathBuf, name: String, found: Kind, expected: Kind },
}

impl Error {
    /// One message per problem.
    pub fn messages(&self) -> Vec<String> {
        match self {
            Error::Invalid { problems, .. } => problems.clone(),
            other => vec![other.to_string()],
        }
    }
}

/// Whether `host` (lower-cased, IPv6 in brackets) is `localhost` or a loopback address.
pub fn is_loopback(host: &str) -> bool {
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    bare.eq_ignore_ascii_case("localhost") || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Path of a file an integration refers to, relative to the integrations file's folder.
fn relative_to(file: &Path, reference: &str) -> PathBuf {
    let reference = Path::new(reference);
    if reference.is_absolute() {
        return reference.to_owned();
    }
    file.parent().map(|dir| dir.join(reference)).unwrap_or_else(|| reference.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for host in ["127.0.0.1", "127.9.9.9", "[::1]", "localhost", "LOCALHOST"] {
            assert!(is_loopback(host), "{host}");
        }
        for host in ["10.0.0.1", "api-x.duosecurity.com", "[::2]", "localhost.evil.com", "::1x"] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    #[test]
    fn kind_names_round_trip() {
        for kind in Kind::ALL {
            assert_eq!(Kind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(Kind::parse("duo"), None);
    }
}
