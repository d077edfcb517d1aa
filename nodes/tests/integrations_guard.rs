//! The integrations file's guards: a key pasted into `host:` or `kind:` is refused without being
//! echoed; a Duo host must be a Duo API hostname unless `host_check: off`; a secret file others
//! may read and an `${ENV}` secret ending in a newline draw warnings (the newline is trimmed); the
//! TLS settings (`tls_roots`, `ca_certs`) are checked where they are written.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use flowcat_nodes::integrations::{self, Auth, Error, Integrations, Roots};

const SKEY: &str = "Zh5785i54XYUEZ7pgEaE9P5fCN2qPE3H3kZJ6Ixa";

fn temp_dir() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("flowcat-guard-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn parse_with(text: &str, var: &str) -> Result<Integrations, Error> {
    let var = var.to_owned();
    integrations::parse(Path::new("int.yaml"), text, &move |name| (name == "SKEY").then(|| var.clone()))
}

fn duo(host: &str, extra: &str) -> String {
    format!(
        "integrations:\n  a:\n    kind: duo_admin\n    host: {host}\n    ikey: DIXXXXXXXXXXXXXXXXXX\n    skey: ${{SKEY}}\n{extra}"
    )
}

#[test]
fn a_secret_in_host_or_kind_is_refused_without_being_echoed() {
    let ikey = "DIWJ8X6AEYOR5OMC6TQ1";
    let cases = [
        (
            duo(SKEY, ""),
            SKEY,
            "int.yaml:4:11: integration `a`: `host` looks like a secret, not a host (it holds a long key-like run of letters and digits); its value is not shown",
        ),
        (
            duo(ikey, ""),
            ikey,
            "int.yaml:4:11: integration `a`: `host` looks like a secret, not a host (it looks like an integration key (`DI…`))",
        ),
        (
            duo(&format!("\"api-12345678.duosecurity.com {SKEY}\""), ""),
            SKEY,
            "int.yaml:4:11: integration `a`: `host` looks like a secret, not a host (it holds whitespace)",
        ),
        (
            format!("integrations:\n  a:\n    kind: {SKEY}\n"),
            SKEY,
            "int.yaml:3:11: integration `a`: `kind` looks like a secret, not a kind",
        ),
    ];
    for (text, secret, want) in cases {
        let problems = parse_with(&text, "s").expect_err("refused").messages();
        assert!(problems.iter().any(|p| p.starts_with(want)), "missing {want:?} in {problems:?}");
        assert!(problems.iter().all(|p| !p.contains(secret)), "the value is echoed: {problems:?}");
        assert!(problems.iter().any(|p| p.contains("rotate the key")), "{problems:?}");
    }
    // Through `${ENV}` too: the message names the setting, not the value.
    let problems = parse_with(&duo("${SKEY}", ""), SKEY).expect_err("refused").messages();
    assert!(problems.iter().all(|p| !p.contains(SKEY)), "{problems:?}");
}

#[test]
fn a_duo_host_must_be_a_duo_api_hostname_unless_the_entry_says_otherwise() {
    for host in ["api-12345678.duosecurity.com", "API-ABCDEF12.duosecurity.com:443", "api-12345678.duofederal.com"] {
        parse_with(&duo(host, ""), "s").unwrap_or_else(|e| panic!("{host}: {e}"));
    }
    let problems = parse_with(&duo("duo.corp.example.com", ""), "s").expect_err("refused").messages();
    assert_eq!(
        problems,
        [
            "int.yaml:4:11: integration `a`: `duo.corp.example.com` is not a Duo API hostname (`api-XXXXXXXX.duosecurity.com` or `api-XXXXXXXX.duofederal.com`) (copy the API hostname from the Duo Admin Panel, or add `host_check: off` for a Duo-compatible server under another name)"
        ]
    );
    let off = parse_with(&duo("duo.corp.example.com", "    host_check: off\n"), "s").expect("host_check: off");
    assert_eq!(off.get("a").expect("a").host(), "duo.corp.example.com");
    let bad = parse_with(&duo("duo.corp.example.com", "    host_check: no\n"), "s").expect_err("bad value").messages();
    assert_eq!(bad, ["int.yaml:7:17: integration `a`: `host_check` must be `on` or `off` (`on` is the default)"]);
}

#[test]
fn an_env_secret_ending_in_a_newline_is_trimmed_with_a_warning() {
    let loaded = parse_with(&duo("api-12345678.duosecurity.com", ""), &format!("{SKEY}\n")).expect("loads");
    match &loaded.get("a").expect("a").auth {
        Auth::Duo { skey, .. } => assert_eq!(skey.expose(), SKEY),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        loaded.warnings,
        [
            "int.yaml:6:11: integration `a`: environment variable `SKEY` (for `skey`) ends with a newline (it was trimmed; set the variable without it)"
        ]
    );
}

#[cfg(unix)]
#[test]
fn a_secret_file_others_may_read_draws_a_warning() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = temp_dir();
    let key = dir.join("admin.skey");
    std::fs::write(&key, format!("{SKEY}\n")).expect("write");
    let path = dir.join("int.yaml");
    let text = "integrations:\n  a:\n    kind: duo_admin\n    host: api-12345678.duosecurity.com\n    ikey: { file: admin.skey }\n    skey: { file: admin.skey }\n";
    for (mode, warned) in [(0o600, false), (0o640, true), (0o604, true), (0o400, false)] {
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).expect("chmod");
        let loaded = integrations::parse(&path, text, &|_| None).expect("loads");
        let want = format!(
            "{}:6:11: integration `a`: `{}` (for `skey`) is readable by group or others (mode {mode:04o}) (`chmod 600 {}`)",
            path.display(),
            key.display(),
            key.display()
        );
        // Only the secret draws it: the same file as `ikey` does not.
        assert_eq!(loaded.warnings, if warned { vec![want] } else { vec![] }, "mode {mode:o}");
        assert!(loaded.warnings.iter().all(|w| !w.contains(SKEY)));
    }
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

/// `der` as PEM with `label` (`CERTIFICATE`, `PRIVATE KEY`).
fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = text.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).expect("ascii")).collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

#[test]
fn tls_settings_are_read_and_checked() {
    let dir = temp_dir();
    let path = dir.join("int.yaml");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
    std::fs::write(dir.join("ca.pem"), pem("CERTIFICATE", cert.cert.der())).expect("write");
    std::fs::write(dir.join("key.pem"), pem("PRIVATE KEY", &cert.key_pair.serialize_der())).expect("write");
    let http = |extra: &str| {
        format!("integrations:\n  t:\n    kind: http\n    base_url: https://tickets.example.com\n{extra}")
    };
    let loaded =
        integrations::parse(&path, &http("    tls_roots: system\n    ca_certs: ca.pem\n"), &|_| None).expect("loads");
    let tls = &loaded.get("t").expect("t").tls;
    assert_eq!((tls.roots, tls.ca_certs.len()), (Roots::System, 1));
    assert_eq!(tls.ca_certs[0].as_ref(), cert.cert.der().as_ref());
    let defaults = integrations::parse(&path, &http(""), &|_| None).expect("loads");
    assert_eq!(defaults.get("t").expect("t").tls, integrations::Tls::default());
    let problems = integrations::parse(&path, &http("    tls_roots: os\n    ca_certs: key.pem\n"), &|_| None)
        .expect_err("refused")
        .messages();
    let file = path.display();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems[0].starts_with(&format!("{file}:5:16: integration `t`: `tls_roots` must be `bundled` or `system`"))
    );
    assert!(problems[1].contains("key.pem`: holds a private key; give only the CA's certificates"), "{problems:?}");
    assert!(problems.iter().all(|p| !p.contains("PRIVATE")), "{problems:?}");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}
