//! Checks that keep an integrations file from leaking or misdirecting secrets: a value in `host:`
//! or `kind:` that looks like a key (refused without being echoed, before anything could look it
//! up), a Duo host that is not a Duo API host, and secret files others may read.

use std::path::Path;

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
