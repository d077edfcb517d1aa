//! TLS and proxies end to end, with no network beyond 127.0.0.1: `flowcat integrations check`
//! reaches `api-12345678.duosecurity.com` through a CONNECT proxy on loopback (`HTTPS_PROXY`)
//! that tunnels to a TLS server whose certificate comes from a test CA, as a TLS-inspecting
//! company proxy's would. The CA is trusted through `ca_certs:` or through the system's store
//! (`tls_roots: system`, `SSL_CERT_FILE`); untrusted, the check fails. Loopback stays direct, and
//! so does a host `NO_PROXY` names.
//! A key pasted into `host:` is refused and appears in no output.

use crate::common;

use std::io::{BufRead, BufReader, Read, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

const HOST: &str = "api-12345678.duosecurity.com";
const SKEY: &str = "Zh5785i54XYUEZ7pgEaE9P5fCN2qPE3H3kZJ6Ixa";
/// 127.0.0.1 written as an IPv4-mapped IPv6 address: reached without DNS and without leaving the
/// machine, yet not a loopback host to flowcat (only `localhost`, `127.0.0.0/8` and `::1` are), so
/// a request for it goes through `HTTPS_PROXY` unless `NO_PROXY` names it.
const MAPPED: &str = "::ffff:127.0.0.1";

/// A test CA and a server certificate it signed for [`HOST`].
struct Pki {
    ca_pem: String,
    chain: Vec<CertificateDer<'static>>,
    key: PrivatePkcs8KeyDer<'static>,
}

fn pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "flowcat test proxy CA");
    let ca = ca_params.self_signed(&ca_key).expect("CA");
    let key = KeyPair::generate().expect("server key");
    let leaf = CertificateParams::new(vec![HOST.to_owned(), "localhost".to_owned(), MAPPED.to_owned()])
        .expect("params")
        .signed_by(&key, &ca, &ca_key)
        .expect("server certificate");
    Pki {
        ca_pem: pem("CERTIFICATE", ca.der()),
        chain: vec![leaf.der().clone()],
        key: PrivatePkcs8KeyDer::from(key.serialize_der()),
    }
}

/// `der` as PEM with `label` (`CERTIFICATE`, `PRIVATE KEY`).
fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = text.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).expect("ascii")).collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

/// Reads an HTTP request head (up to the empty line) and returns its first line.
fn read_head(reader: &mut impl BufRead) -> Option<String> {
    let mut first = String::new();
    reader.read_line(&mut first).ok()?;
    let mut line = String::new();
    while reader.read_line(&mut line).ok()? > 2 {
        line.clear();
    }
    Some(first.trim_end().to_owned())
}

/// Duo's answer to `GET /admin/v1/users?limit=1` on an account with no user.
fn ok_answer() -> Vec<u8> {
    let body = r#"{"stat":"OK","response":[]}"#;
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    (head + body).into_bytes()
}

/// A TLS server on loopback answering every request with Duo's empty `OK`; returns its address.
fn tls_server(pki: &Pki) -> SocketAddr {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(pki.chain.clone(), PrivateKeyDer::Pkcs8(pki.key.clone_key()))
        .expect("server config");
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let config = config.clone();
            std::thread::spawn(move || {
                let conn = rustls::ServerConnection::new(config).expect("connection");
                let mut tls = BufReader::new(rustls::StreamOwned::new(conn, tcp));
                if read_head(&mut tls).is_some() {
                    let tls = tls.get_mut();
                    let _ = tls.write_all(&ok_answer());
                    tls.conn.send_close_notify();
                    let _ = tls.flush();
                }
            });
        }
    });
    addr
}

/// A CONNECT proxy on loopback that tunnels every target to `to`, and what it was asked.
struct Proxy {
    addr: SocketAddr,
    /// The first line of every request it received (`CONNECT host:443 HTTP/1.1`).
    asked: Arc<Mutex<Vec<String>>>,
}

fn proxy(to: SocketAddr) -> Proxy {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let asked = Arc::new(Mutex::new(Vec::new()));
    let log = asked.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(client.try_clone().expect("clone"));
                let Some(first) = read_head(&mut reader) else { return };
                log.lock().expect("log").push(first.clone());
                let mut client = client;
                if !first.starts_with("CONNECT ") {
                    let _ = client.write_all(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n");
                    return;
                }
                let upstream = TcpStream::connect(to).expect("upstream");
                client.write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n").expect("established");
                pipe(reader, upstream.try_clone().expect("clone"));
                pipe(BufReader::new(upstream), client);
            });
        }
    });
    Proxy { addr, asked }
}

/// Copies `from` into `to` on a thread of its own until either side closes.
fn pipe(mut from: impl Read + Send + 'static, mut to: TcpStream) {
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(std::net::Shutdown::Write);
    });
}

fn temp_dir() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("flowcat-tls-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Runs `flowcat integrations check` on `file` with `env`, proxies and TLS variables cleared first.
fn check(file: &Path, env: &[(&str, String)]) -> common::Output {
    check_args(file, env, &[])
}

/// [`check`] with more arguments (`--format json`).
fn check_args(file: &Path, env: &[(&str, String)], args: &[&str]) -> common::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_flowcat"));
    cmd.args(["integrations", "check", "--integrations"])
        .arg(file)
        .args(args)
        .env("NO_COLOR", "1")
        .env("DUO_SKEY", SKEY);
    for var in [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "RUST_LOG",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("the flowcat binary runs");
    common::Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn duo_file(dir: &Path, host: &str, extra: &str) -> PathBuf {
    let path = dir.join("integrations.yaml");
    let text = format!(
        "integrations:\n  duo_admin:\n    kind: duo_admin\n    host: {host}\n    ikey: DIXXXXXXXXXXXXXXXXXX\n    skey: ${{DUO_SKEY}}\n{extra}"
    );
    std::fs::write(&path, text).expect("write");
    path
}

#[test]
fn https_goes_through_the_proxy_and_trusts_ca_certs() {
    let pki = pki();
    let proxy = proxy(tls_server(&pki));
    let dir = temp_dir();
    std::fs::write(dir.join("proxy-ca.pem"), &pki.ca_pem).expect("write");
    let via = [("HTTPS_PROXY", format!("http://{}", proxy.addr))];

    let trusted = check(&duo_file(&dir, HOST, "    ca_certs: proxy-ca.pem\n"), &via);
    assert_eq!(trusted.code, 0, "{}", trusted.snapshot());
    assert_eq!(
        trusted.stdout,
        format!("ok duo_admin (duo_admin): the keys of `duo_admin` work: a Duo Admin API application at `{HOST}`\n")
    );
    assert_eq!(*proxy.asked.lock().expect("log"), [format!("CONNECT {HOST}:443 HTTP/1.1")]);

    // The same server without the CA: the certificate is refused, through the proxy all the same.
    let untrusted = check(&duo_file(&dir, HOST, ""), &via);
    assert_eq!(untrusted.code, 1, "{}", untrusted.snapshot());
    assert!(untrusted.stdout.starts_with("FAILED duo_admin (duo_admin): "), "{}", untrusted.stdout);
    assert!(untrusted.stdout.contains("UnknownIssuer"), "{}", untrusted.stdout);

    // The system's trust store, where a company installs its CA (here through SSL_CERT_FILE).
    let env = [via[0].clone(), ("SSL_CERT_FILE", dir.join("proxy-ca.pem").display().to_string())];
    let system = check(&duo_file(&dir, HOST, "    tls_roots: system\n"), &env);
    assert_eq!(system.code, 0, "{}", system.snapshot());
    assert_eq!(proxy.asked.lock().expect("log").len(), 3, "one tunnel per check");

    // The same report for programs.
    let json = check_args(&duo_file(&dir, HOST, "    ca_certs: proxy-ca.pem\n"), &via, &["--format", "json"]);
    assert_eq!(json.code, 0, "{}", json.snapshot());
    let reports: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert_eq!(
        reports,
        serde_json::json!([{
            "name": "duo_admin", "ok": true, "skipped": false, "kind": "duo_admin", "fix": null,
            "message": format!("the keys of `duo_admin` work: a Duo Admin API application at `{HOST}`"),
        }])
    );
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn loopback_integrations_never_use_the_proxy() {
    let pki = pki();
    let server = tls_server(&pki);
    let proxy = proxy(server);
    let dir = temp_dir();
    std::fs::write(dir.join("ca.pem"), &pki.ca_pem).expect("write");
    let host = format!("localhost:{}", server.port());
    let file = duo_file(&dir, &host, "    host_check: off\n    ca_certs: ca.pem\n");
    let url = format!("http://{}", proxy.addr);
    let env = [("HTTPS_PROXY", url.clone()), ("HTTP_PROXY", url.clone()), ("ALL_PROXY", url)];
    let out = check(&file, &env);
    assert_eq!(out.code, 0, "{}", out.snapshot());
    assert!(proxy.asked.lock().expect("log").is_empty(), "the proxy was used: {:?}", proxy.asked);
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn no_proxy_sends_the_hosts_it_names_direct_and_others_through_the_proxy() {
    let pki = pki();
    let server = tls_server(&pki);
    let proxy = proxy(server);
    let dir = temp_dir();
    std::fs::write(dir.join("ca.pem"), &pki.ca_pem).expect("write");
    let mapped = format!("[{MAPPED}]:{}", server.port());
    let via = format!("http://{}", proxy.addr);
    // The host, the variable (either spelling) and its value, and whether the request goes direct.
    // reqwest matches NO_PROXY's addresses and networks against the URL's host, and names as
    // domains and their subdomains. A host that is not exempt here must be a name, not an IPv6
    // address: reqwest 0.13 cannot start TLS through a tunnel to an IPv6 address ("Invalid Server
    // Name"); and a name must not be exempt, or it would be looked up in DNS.
    let table = [
        (mapped.as_str(), "NO_PROXY", MAPPED, true),
        (mapped.as_str(), "no_proxy", MAPPED, true),
        (mapped.as_str(), "NO_PROXY", "example.com, ::ffff:127.0.0.0/104", true),
        (HOST, "NO_PROXY", "example.com, 12345678.duosecurity.com, ::ffff:127.0.0.1, 127.0.0.1", false),
        (HOST, "NO_PROXY", "", false),
    ];
    for (host, name, value, direct) in table {
        let file = duo_file(&dir, &format!("\"{host}\""), "    host_check: off\n    ca_certs: ca.pem\n");
        let before = proxy.asked.lock().expect("log").len();
        let out = check(&file, &[("HTTPS_PROXY", via.clone()), (name, value.to_owned())]);
        // Either way the request reaches the server and the keys are accepted.
        assert_eq!(out.code, 0, "{host} {name}={value}: {}", out.snapshot());
        let asked = proxy.asked.lock().expect("log")[before..].to_vec();
        if direct {
            assert!(asked.is_empty(), "{host} {name}={value}: the proxy was used: {asked:?}");
        } else {
            assert_eq!(asked, [format!("CONNECT {HOST}:443 HTTP/1.1")], "{name}={value}");
        }
    }
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn a_key_pasted_into_host_is_refused_and_never_shown() {
    let dir = temp_dir();
    let proxy = proxy("127.0.0.1:9".parse().expect("addr"));
    let env = [("HTTPS_PROXY", format!("http://{}", proxy.addr))];
    for host in [SKEY.to_owned(), "${DUO_SKEY}".to_owned()] {
        let out = check(&duo_file(&dir, &host, ""), &env);
        assert_eq!(out.code, 2, "{}", out.snapshot());
        assert!(out.stderr.contains("`host` looks like a secret, not a host"), "{}", out.stderr);
        assert!(!out.stdout.contains(SKEY) && !out.stderr.contains(SKEY), "{}", out.snapshot());
    }
    // Nothing was looked up or sent anywhere: not even the proxy heard of it.
    assert!(proxy.asked.lock().expect("log").is_empty());
    std::fs::remove_dir_all(&dir).expect("cleanup");
}
