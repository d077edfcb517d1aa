//! Checks that keep an integrations file from leaking or misdirecting secrets: a value in `host:`
//! or `kind:` that looks like a key (refused without being echoed, before anything could look it
//! up), a Duo host that is not a Duo API host, and secret files others may read; and the TLS
//! settings (`tls_roots`, `ca_certs`).

use std::path::Path;

use flowcat_engine::yaml::{Node, Span};

use super::load::Cx;
use super::{Roots, Tls, is_loopback, relative_to};

/// Why `text` looks like a secret rather than a host name or a kind, or `None`. The reason never
/// quotes the value: a key pasted into the wrong field must not reach a terminal or a log.
pub(super) fn looks_like_secret(text: &str) -> Option<&'static str> {
    if text.chars().any(char::is_whitespace) {
        return Some("it holds whitespace");
    }
    if is_ikey(text) {
        return Some("it looks like an integration key (`DI…`)");
    }
    let keyish = |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | '_');
    let long_run = text.split(|c: char| !keyish(c)).any(|run| {
        let mixed = run.chars().any(|c| c.is_ascii_digit()) && run.chars().any(|c| c.is_ascii_alphabetic());
        run.len() >= 32 || (run.len() >= 20 && mixed) || (run.len() >= 16 && run.contains(['+', '/', '=']))
    });
    long_run.then_some("it holds a long key-like run of letters and digits")
}

/// Duo integration keys: `DI` and 18 upper-case letters or digits.
fn is_ikey(text: &str) -> bool {
    text.len() == 20 && text.starts_with("DI") && text.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// The domains under which Duo serves its Admin and Auth APIs: commercial and Duo Federal.
pub(super) const DUO_DOMAINS: &[&str] = &["duosecurity.com", "duofederal.com"];

/// Whether `host` (lower-cased, without the port) has the form of a Duo API hostname:
/// `api-XXXXXXXX.duosecurity.com` (or `.duofederal.com`), eight letters or digits.
pub(super) fn is_duo_api_host(host: &str) -> bool {
    let Some((label, domain)) = host.split_once('.') else { return false };
    let id_ok = label
        .strip_prefix("api-")
        .is_some_and(|id| id.len() == 8 && id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
    id_ok && DUO_DOMAINS.contains(&domain)
}

/// The permission bits that let others than the owner read `path` (Unix), e.g. `0o644`;
/// `None` when only the owner may, or where Unix modes do not exist.
pub(super) fn readable_by_others(path: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
        (mode & 0o077 != 0).then_some(mode)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// The file's guards, as steps of the loader.
impl Cx<'_> {
    /// A value that looks like a key, in a setting that is not secret: refused without quoting it,
    /// so it reaches no terminal, log or record, and is never looked up as a host name.
    pub(super) fn secret_in_wrong_place(&mut self, span: Span, key: &str, why: &str) {
        let what = format_args!("`{key}` looks like a secret, not a {key} ({why}); its value is not shown");
        let fix = "if a key was pasted here by mistake, replace it, and rotate the key in the Duo Admin Panel";
        self.error(span, what, fix);
    }

    /// A Duo integration's host must be a Duo API hostname, unless the file says `host_check: off`
    /// (a Duo-compatible server under another name) or it is the simulator (`loopback_http`).
    pub(super) fn duo_host(&mut self, body: &Node, span: Span, host: &str, loopback_http: bool) -> bool {
        let checked = match body.get("host_check") {
            None => true,
            Some(node) => match node.as_str() {
                Some("on") => true,
                Some("off") => false,
                _ => {
                    self.error(node.span, "`host_check` must be `on` or `off`", "`on` is the default");
                    return false;
                }
            },
        };
        if !checked || (loopback_http && is_loopback(host)) || is_duo_api_host(host) {
            return true;
        }
        let what = format_args!(
            "`{host}` is not a Duo API hostname (`api-XXXXXXXX.{}`)",
            DUO_DOMAINS.join("` or `api-XXXXXXXX.")
        );
        self.error(span, what, "copy the API hostname from the Duo Admin Panel, or add `host_check: off` for a Duo-compatible server under another name");
        false
    }

    /// `tls_roots: bundled | system` and `ca_certs: FILE` (a PEM bundle, relative to this file).
    pub(super) fn tls(&mut self, body: &Node) -> Option<Tls> {
        let mut tls = Tls::default();
        let before = self.problems.len();
        if let Some(node) = body.get("tls_roots") {
            match node.as_str().and_then(Roots::parse) {
                Some(roots) => tls.roots = roots,
                None => self.error(
                    node.span,
                    "`tls_roots` must be `bundled` or `system`",
                    "`bundled` (the default) trusts Mozilla's roots; `system` the operating system's store",
                ),
            }
        }
        if let Some(node) = body.get("ca_certs") {
            let fix = "give the path of a PEM file of CA certificates, relative to the integrations file";
            match node.as_str().filter(|t| !t.is_empty()) {
                None => self.error(node.span, "`ca_certs` must be a file path", fix),
                Some(reference) => {
                    let path = relative_to(self.path, reference);
                    let certs =
                        std::fs::read(&path).map_err(|e| e.to_string()).and_then(|bytes| super::parse_pem(&bytes));
                    match certs {
                        Ok(certs) => tls.ca_certs = certs,
                        Err(e) => self.error(node.span, format_args!("`ca_certs` `{}`: {e}", path.display()), fix),
                    }
                }
            }
        }
        (self.problems.len() == before).then_some(tls)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_told_apart_from_hosts_and_kinds() {
        let secrets = [
            "DIWJ8X6AEYOR5OMC6TQ1",
            "Zh5785i54XYUEZ7pgEaE9P5fCN2qPE3H3kZJ6Ixa",
            "deadbeefdeadbeefdeadbeefdeadbeef",
            "api-x.duosecurity.com secret",
            "c2VjcmV0c2VjcmV0c2Vj+/==",
            "duo_admin\t",
        ];
        for text in secrets {
            assert!(looks_like_secret(text).is_some(), "{text}");
        }
        let plain = [
            "api-12345678.duosecurity.com",
            "api-12345678.duosecurity.com:8443",
            "127.0.0.1:41234",
            "[::1]:8080",
            "duo_admin",
            "tickets.internal.example.com",
            "a-very-long-but-plain-internal-hostname.example.com",
        ];
        for text in plain {
            assert_eq!(looks_like_secret(text), None, "{text}");
        }
    }

    #[test]
    fn duo_api_hosts() {
        for host in ["api-12345678.duosecurity.com", "api-abcdef12.duofederal.com"] {
            assert!(is_duo_api_host(host), "{host}");
        }
        for host in [
            "api-1234567.duosecurity.com",
            "api-12345678.duosecurity.com.evil.com",
            "api-12345678.evil.com",
            "admin-12345678.duosecurity.com",
            "api-12345678.x.duosecurity.com",
            "duosecurity.com",
            "127.0.0.1",
        ] {
            assert!(!is_duo_api_host(host), "{host}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn file_modes() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("flowcat-guard-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("skey");
        std::fs::write(&file, "x").expect("write");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(readable_by_others(&file), None);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        assert_eq!(readable_by_others(&file), Some(0o640));
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
