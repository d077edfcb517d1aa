//! The integrations file: the simulator's own output loads, secrets come from `${ENV}` and file
//! references, inline secrets warn, and every mistake is reported at `file:line:col` with the
//! integration's name and the fix.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use flowcat_nodes::duo::{Digest, SigVersion};
use flowcat_nodes::integrations::{self, Auth, Error, Integrations, Kind, Scheme};

fn temp_dir() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("flowcat-integrations-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let vars: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    move |name| vars.get(name).cloned()
}

fn parse(text: &str) -> Result<Integrations, Error> {
    integrations::parse(Path::new("int.yaml"), text, &env(&[("SET", "value-from-env")]))
}

fn problems(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(_) => panic!("expected problems in:\n{text}"),
        Err(e) => e.messages(),
    }
}

/// A secret file only its owner may read, as it should be (others draw a warning).
fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
}

fn skey(integrations: &Integrations, name: &str) -> String {
    match &integrations.get(name).expect("integration").auth {
        Auth::Duo { skey, .. } => skey.expose().to_owned(),
        other => panic!("not Duo: {other:?}"),
    }
}

#[test]
fn loads_the_file_the_simulator_writes() {
    let addr: SocketAddr = "127.0.0.1:41234".parse().expect("addr");
    let dir = temp_dir();
    let path = dir.join("integrations.yaml");
    std::fs::write(&path, flowcat_sim::integrations::render(addr, &flowcat_sim::Seed::demo().integrations))
        .expect("write");
    let loaded = integrations::load(&path, &|_| None).expect("the simulator's file loads");
    assert_eq!(loaded.path, path);
    let admin = loaded.for_slot("duo_admin", Kind::DuoAdmin).expect("admin");
    assert_eq!((admin.host(), admin.authority().as_str()), ("127.0.0.1", "127.0.0.1:41234"));
    assert_eq!(admin.base_url(), "http://127.0.0.1:41234");
    assert!(admin.loopback_http);
    assert_eq!(admin.signer().map(|s| (s.ikey(), s.version())), Some(("DISIMADMIN0000000001", SigVersion::V5)));
    assert_eq!(*admin.retry(), flowcat_nodes::duo::RetryPolicy::default());
    assert_eq!(loaded.get("duo_auth").expect("auth").kind, Kind::DuoAuth);
    assert_eq!(skey(&loaded, "duo_auth"), "simauthsecretkey00000000000000000000000b");
    // The simulator's keys are made up and inline on purpose: its loopback integrations earn no
    // warning. The same key inline for a real host does.
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let real = "integrations:\n  duo_admin:\n    kind: duo_admin\n    host: api-abc12345.duosecurity.com\n    ikey: DIXXXXXXXXXXXXXXXXXX\n    skey: inline-secret-key-0123456789abcdefghij\n";
    let loaded = integrations::parse(&path, real, &|_| None).expect("loads");
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    assert!(
        loaded.warnings[0].contains(":6:11: integration `duo_admin`: `skey` is written inline"),
        "{:?}",
        loaded.warnings
    );
    assert!(loaded.warnings[0].contains("`${ENV_VAR}` or `{ file: PATH }`"));
}

#[test]
fn secrets_from_the_environment_and_from_files() {
    let dir = temp_dir();
    std::fs::create_dir_all(dir.join("secrets")).expect("dir");
    write_private(&dir.join("secrets/auth.skey"), "  auth-secret-from-file\n");
    write_private(&dir.join("pass"), "p4ssw0rd\n");
    let path = dir.join("integrations.yaml");
    let text = r#"
integrations:
  admin:
    kind: duo_admin
    host: API-12345678.duosecurity.com
    ikey: ${ADMIN_IKEY}
    skey: ${ADMIN_SKEY}
    retry: { max_attempts: 3, initial: 10ms, max: 1s, jitter: 0ms }
  auth:
    kind: duo_auth
    host: api-12345678.duosecurity.com:8443
    ikey: DIAUTH
    skey: { file: secrets/auth.skey }
    signature: v2-sha1
  tickets:
    kind: http
    base_url: https://tickets.example.com/api/
    auth: bearer
    token: ${TICKET_TOKEN}
  wiki:
    kind: http
    base_url: https://wiki.example.com
    auth: basic
    username: bot
    password: { file: pass }
"#;
    std::fs::write(&path, text).expect("write");
    let vars = env(&[("ADMIN_IKEY", "DIADMIN"), ("ADMIN_SKEY", "admin-secret-from-env"), ("TICKET_TOKEN", "tok-123")]);
    let loaded = integrations::load(&path, &vars).expect("loads");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(skey(&loaded, "admin"), "admin-secret-from-env");
    assert_eq!(skey(&loaded, "auth"), "auth-secret-from-file");
    let admin = loaded.get("admin").expect("admin");
    assert_eq!((admin.host(), admin.endpoint.scheme), ("api-12345678.duosecurity.com", Scheme::Https));
    assert_eq!(admin.signer().map(|s| s.ikey()), Some("DIADMIN"));
    assert_eq!((admin.retry.max_attempts, admin.retry.initial), (3, Duration::from_millis(10)));
    let auth = loaded.get("auth").expect("auth");
    assert_eq!(auth.authority(), "api-12345678.duosecurity.com:8443");
    assert_eq!(auth.signer().map(|s| s.version()), Some(SigVersion::V2 { digest: Digest::Sha1 }));
    let tickets = loaded.get("tickets").expect("tickets");
    assert_eq!(tickets.base_url(), "https://tickets.example.com/api");
    assert!(matches!(&tickets.auth, Auth::Bearer(t) if t.expose() == "tok-123"));
    let wiki = loaded.get("wiki").expect("wiki");
    assert!(
        matches!(&wiki.auth, Auth::Basic { username, password } if username == "bot" && password.expose() == "p4ssw0rd")
    );
}

#[test]
fn every_mistake_is_reported_with_its_place_and_fix() {
    let text = r#"integrations:
  a:
    kind: duo_admin
    host: api-12345678.duosecurity.com
    skye: x
  b:
    kind: duo_auth
    host: api-12345678.duosecurity.com
    skey: ${NOT_SET}
  c:
    kind: http
    base_url: http://tickets.example.com
  d:
    kind: duo_admin
    host: api-12345678.duosecurity.com
    ikey: DI1
    skey: ${SET}
    loopback_http: true
  e:
    kind: duo_admin
    host: https://api-12345678.duosecurity.com
    ikey: DI1
    skey: ${SET}
    signature: v3
  f:
    kind: duo_admn
  g:
    kind: http
    base_url: https://x.example.com
    auth: basic
    token: ${SET}
    username: u
    password: ${SET}
    retry: { max_attempts: 0, initial: soon }
  h:
    kind: duo_auth
    host: api-12345678.duosecurity.com
    ikey: DI1
    skey: ${SET
    base_url: https://x
  h:
    kind: http
  i:
    kind: duo_auth
    host: api-12345678.duosecurity.com
    ikey: DI1
    skey: { file: nowhere.skey }
"#;
    let got = problems(text);
    let expected = [
        "int.yaml:5:5: integration `a`: unknown key `skye` (did you mean `skey`?)",
        "int.yaml:2:3: integration `a`: missing `ikey` (copy the Integration key from the Duo Admin Panel: Applications → your application)",
        "int.yaml:2:3: integration `a`: missing `skey` (copy the Secret key",
        "int.yaml:6:3: integration `b`: missing `ikey`",
        "int.yaml:9:11: integration `b`: environment variable `NOT_SET` (for `skey`) is not set (set it, e.g. `export NOT_SET=…`, or use `{ file: PATH }`)",
        "int.yaml:12:15: integration `c`: plain `http` is refused: credentials and data would travel in clear (use `https://`; a loopback test server may add `loopback_http: true`)",
        "int.yaml:18:5: integration `d`: `loopback_http: true` but `api-12345678.duosecurity.com` is not a loopback host (remove `loopback_http`",
        "int.yaml:21:11: integration `e`: `host` must be the API hostname alone, without scheme or path, not `https://api-12345678.duosecurity.com` (copy the API hostname",
        "int.yaml:24:16: integration `e`: unknown signature version `v3`: expected `v5`, `v2` (HMAC-SHA512) or `v2-sha1` (use `v5` (the default)",
        "int.yaml:26:11: integration `f`: unknown kind `duo_admn` (did you mean `duo_admin`?)",
        "int.yaml:31:5: integration `g`: `token` is not used with `auth: basic` (set `auth: bearer`, or remove it)",
        "int.yaml:34:28: integration `g`: `retry.max_attempts` must be a whole number from 1 to 100 (1 never retries)",
        "int.yaml:34:40: integration `g`: `retry.initial` is not a duration (write `500ms`, `2s` or `1m`)",
        "int.yaml:39:11: integration `h`: `skey` holds `${` but is not an environment reference",
        "int.yaml:40:5: integration `h`: `base_url` is not a setting of a `duo_auth` integration (it is for `http` integrations; remove it)",
        "int.yaml:41:3: integration `h` is defined twice (keep one of them)",
        "int.yaml:47:11: integration `i`: cannot read `nowhere.skey` (for `skey`):",
    ];
    for want in expected {
        assert!(got.iter().any(|m| m.starts_with(want)), "missing {want:?} in\n{}", got.join("\n"));
    }
    assert_eq!(got.len(), expected.len(), "unexpected extra problems:\n{}", got.join("\n"));
}

#[test]
fn file_level_mistakes() {
    assert_eq!(
        problems("integrations: [\n"),
        [
            "int.yaml:2:1: invalid YAML: while parsing a node, did not find expected node content (fix the syntax near there)"
        ]
    );
    assert_eq!(
        problems("integration:\n  a: {}\n"),
        [
            "int.yaml:1:1: unknown key `integration` (did you mean `integrations`?)",
            "int.yaml:1:1: no `integrations:` mapping (list the integrations under `integrations:`)"
        ]
    );
    assert_eq!(
        problems("integrations:\n  a: 3\n")[0],
        "int.yaml:2:6: integration `a`: expected a mapping with `kind` and its settings, found a number (see docs/integrations.md for the format)"
    );
    assert_eq!(
        problems("integrations:\n  a:\n    host: x\n")[0],
        "int.yaml:2:3: integration `a`: no `kind` (add `kind: duo_admin` or `kind: duo_auth` or `kind: http`)"
    );
    assert!(parse("").expect("an empty file has no integrations").list.is_empty());
    assert!(parse("integrations:\n").expect("nothing under it").list.is_empty());
    let missing = integrations::load(Path::new("/nonexistent/int.yaml"), &|_| None).expect_err("no file");
    assert!(missing.to_string().starts_with("/nonexistent/int.yaml: cannot read the integrations file: "), "{missing}");
    assert!(
        missing
            .to_string()
            .ends_with("(create it, or name another with `--integrations FILE` or `FLOWCAT_INTEGRATIONS`)")
    );
}

#[test]
fn looking_up_an_integration_for_a_slot() {
    let loaded = parse(
        "integrations:\n  duo_admin:\n    kind: duo_admin\n    host: api-12345678.duosecurity.com\n    ikey: DI\n    skey: ${SET}\n",
    )
    .expect("loads");
    let unknown = loaded.get("duo_admn").expect_err("unknown");
    assert_eq!(
        unknown.to_string(),
        "int.yaml: no integration named `duo_admn`; did you mean `duo_admin`? (add it under `integrations:` or change the flow's integration)"
    );
    let wrong = loaded.for_slot("duo_admin", Kind::DuoAuth).expect_err("wrong kind");
    assert_eq!(
        wrong.to_string(),
        "int.yaml: integration `duo_admin` is `duo_admin` but this slot needs `duo_auth` (point the flow at a `duo_auth` integration)"
    );
}

#[test]
fn loopback_http_is_allowed_for_loopback_hosts_only() {
    let ok = parse(
        "integrations:\n  t:\n    kind: http\n    base_url: http://[::1]:8080/x\n    loopback_http: true\n  u:\n    kind: http\n    base_url: http://localhost:9\n    loopback_http: true\n",
    )
    .expect("loopback");
    assert_eq!(ok.get("t").expect("t").base_url(), "http://[::1]:8080/x");
    assert_eq!(ok.get("u").expect("u").base_url(), "http://localhost:9");
    let refused =
        problems("integrations:\n  t:\n    kind: http\n    base_url: http://10.0.0.1\n    loopback_http: true\n");
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused[0]
            .starts_with("int.yaml:5:5: integration `t`: `loopback_http: true` but `10.0.0.1` is not a loopback host")
    );
}

/// `rate_limit` of each integration, as `(per_second, burst)`; `None` when it has no limiter.
fn rate_limits(file: &Integrations) -> Vec<(String, Option<(f64, u32)>)> {
    let limit = |i: &integrations::Integration| i.limiter.as_ref().map(|l| (l.limit().per_second, l.limit().burst));
    file.list.iter().map(|i| (i.name.clone(), limit(i))).collect()
}

/// `flowcat sim --write-integrations` writes `rate_limit:` matching its `--rate-limit`: the
/// client then goes at the simulator's rate; without one, `none`.
#[test]
fn the_simulators_file_carries_its_rate_limit() {
    let addr: SocketAddr = "127.0.0.1:41234".parse().expect("addr");
    let seeds = flowcat_sim::Seed::demo().integrations;
    let limit = flowcat_sim::RateLimit { per_second: 200.0 / 60.0, burst: 4 };
    let text = flowcat_sim::integrations::render_limited(addr, &seeds, Some(limit));
    let file = integrations::parse(Path::new("sim.yaml"), &text, &|_| None).expect("it loads");
    let expected = Some((200.0 / 60.0, 4));
    assert_eq!(rate_limits(&file), [("duo_admin".to_owned(), expected), ("duo_auth".to_owned(), expected)]);
    let text = flowcat_sim::integrations::render(addr, &seeds);
    let file = integrations::parse(Path::new("sim.yaml"), &text, &|_| None).expect("it loads");
    assert_eq!(rate_limits(&file), [("duo_admin".to_owned(), None), ("duo_auth".to_owned(), None)]);
}

#[test]
fn rate_limits_their_defaults_and_none() {
    let text = r#"integrations:
  duo:
    kind: duo_admin
    host: api-12345678.duosecurity.com
    ikey: DI1
    skey: ${SET}
  duo_set:
    kind: duo_auth
    host: api-12345678.duosecurity.com
    ikey: DI1
    skey: ${SET}
    rate_limit: { per_second: 10, burst: 20 }
  duo_per_minute:
    kind: duo_admin
    host: api-12345678.duosecurity.com
    ikey: DI1
    skey: ${SET}
    rate_limit: { per_minute: 90 }
  duo_off:
    kind: duo_admin
    host: api-12345678.duosecurity.com
    ikey: DI1
    skey: ${SET}
    rate_limit: none
  sim:
    kind: duo_admin
    host: "127.0.0.1:41234"
    ikey: DI1
    skey: ${SET}
    loopback_http: true
  tickets:
    kind: http
    base_url: https://tickets.example.com
  tickets_set:
    kind: http
    base_url: https://tickets.example.com
    rate_limit: { per_second: 0.5 }
"#;
    let file = parse(text).expect("valid");
    let got = rate_limits(&file);
    let want: Vec<(String, Option<(f64, u32)>)> = [
        ("duo", Some((3.0, 10))),
        ("duo_set", Some((10.0, 20))),
        ("duo_per_minute", Some((1.5, 2))),
        ("duo_off", None),
        ("sim", None),
        ("tickets", None),
        ("tickets_set", Some((0.5, 1))),
    ]
    .into_iter()
    .map(|(n, l)| (n.to_owned(), l))
    .collect();
    assert_eq!(got, want);
    // Clones share the limiter: every run bound to the integration waits on one bucket.
    let duo = file.get("duo").expect("duo");
    let (a, b) = (duo.clone(), duo.clone());
    assert!(std::sync::Arc::ptr_eq(a.limiter.as_ref().expect("a"), b.limiter.as_ref().expect("b")));
}

#[test]
fn rate_limit_mistakes_are_reported_with_their_place_and_fix() {
    let text = r#"integrations:
  a:
    kind: http
    base_url: https://x.example.com
    rate_limit: 10
  b:
    kind: http
    base_url: https://x.example.com
    rate_limit: { per_second: 0, burst: 0 }
  c:
    kind: http
    base_url: https://x.example.com
    rate_limit: { per_second: 5, per_minute: 300 }
  d:
    kind: http
    base_url: https://x.example.com
    rate_limit: { burst: 5, per_secnd: 5 }
  e:
    kind: http
    base_url: https://x.example.com
    rate_limit: { per_minute: many, burst: 2.5 }
"#;
    let got = problems(text);
    let expected = [
        "int.yaml:5:17: integration `a`: `rate_limit` must be `none` or a mapping, found a number (write `rate_limit: { per_second: 10, burst: 20 }`, `rate_limit: { per_minute: 180 }` or `rate_limit: none`)",
        "int.yaml:9:31: integration `b`: `rate_limit.per_second` must be a number above 0 and at most 10000 (requests allowed on average; `rate_limit: none` turns the limit off)",
        "int.yaml:9:41: integration `b`: `rate_limit.burst` must be a whole number from 1 to 10000",
        "int.yaml:13:46: integration `c`: `rate_limit` has both `per_second` and `per_minute` (keep one: `per_minute: 180` is `per_second: 3`)",
        "int.yaml:17:29: integration `d`: unknown key `per_secnd` (did you mean `per_second`?)",
        "int.yaml:17:17: integration `d`: `rate_limit` has no `per_second` or `per_minute`",
        "int.yaml:21:31: integration `e`: `rate_limit.per_minute` must be a number above 0 and at most 600000",
        "int.yaml:21:44: integration `e`: `rate_limit.burst` must be a whole number from 1 to 10000",
    ];
    for want in expected {
        assert!(got.iter().any(|m| m.starts_with(want)), "missing {want:?} in\n{}", got.join("\n"));
    }
    assert_eq!(got.len(), expected.len(), "unexpected extra problems:\n{}", got.join("\n"));
}
