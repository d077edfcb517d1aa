//! `integrations check` against flowcat-sim: working keys, keys of the other API (40301), a wrong
//! secret key (40103), an unknown integration key (40102), an unreachable host, an `http`
//! integration; each failure names the Duo Admin Panel step to revisit.

use std::net::SocketAddr;
use std::path::Path;

use flowcat_nodes::http::Clients;
use flowcat_nodes::integrations::check::{CheckReport, check};
use flowcat_nodes::integrations::{self, Integration};
use flowcat_sim::{Options, Seed, Sim};

const ADMIN: (&str, &str) = ("DISIMADMIN0000000001", "simadminsecretkey0000000000000000000000a");
const AUTH: (&str, &str) = ("DISIMAUTH00000000001", "simauthsecretkey00000000000000000000000b");

fn integration(kind: &str, host: &str, (ikey, skey): (&str, &str)) -> Integration {
    let text = format!(
        "integrations:\n  x:\n    kind: {kind}\n    host: \"{host}\"\n    ikey: {ikey}\n    skey: {skey}\n    loopback_http: true\n"
    );
    integrations::parse(Path::new("x.yaml"), &text, &|_| None).expect("loads").list.remove(0)
}

async fn run(kind: &str, host: &str, keys: (&str, &str)) -> CheckReport {
    check(&Clients::new(), &integration(kind, host, keys)).await
}

#[tokio::test]
async fn checks_keys_and_says_what_to_fix() {
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let sim = Sim::start_seed(addr, &Seed::demo(), Options::default()).await.expect("sim");
    let host = sim.addr().to_string();

    let admin = run("duo_admin", &host, ADMIN).await;
    assert!(admin.ok && !admin.skipped, "{admin:?}");
    assert_eq!(admin.message, "the keys of `x` work: a Duo Admin API application at `127.0.0.1`");
    let auth = run("duo_auth", &host, AUTH).await;
    assert!(auth.ok, "{auth:?}");
    assert_eq!(auth.kind, "duo_auth");

    let swapped = run("duo_auth", &host, ADMIN).await;
    assert!(!swapped.ok);
    assert!(
        swapped.message.starts_with("`x` holds Duo Admin API keys, not Duo Auth API keys (HTTP 403 40301"),
        "{swapped:?}"
    );
    let fix = swapped.fix.expect("a fix");
    assert!(fix.contains("Applications → Protect an Application → Duo Auth API"), "{fix}");
    assert!(fix.contains("Integration key, Secret key and API hostname"), "{fix}");
    let swapped = run("duo_admin", &host, AUTH).await;
    assert!(swapped.message.starts_with("`x` holds Duo Auth API keys, not Duo Admin API keys"), "{swapped:?}");
    assert!(swapped.fix.expect("a fix").contains("Protect an Application → Duo Admin API"));

    let bad_secret = run("duo_admin", &host, (ADMIN.0, "wrongsecret0000000000000000000000000000a")).await;
    assert!(!bad_secret.ok);
    assert!(bad_secret.message.contains("HTTP 401 40103"), "{bad_secret:?}");
    assert!(bad_secret.fix.expect("a fix").contains("copy the Secret key again"));
    let bad_ikey = run("duo_auth", &host, ("DIUNKNOWN00000000000", AUTH.1)).await;
    assert!(bad_ikey.message.contains("HTTP 401 40102"), "{bad_ikey:?}");
    assert!(bad_ikey.fix.expect("a fix").contains("copy the Integration key and the API hostname again"));
    assert_eq!(sim.audit().len(), 0, "a check changes nothing");
}

#[tokio::test]
async fn unreachable_hosts_and_http_integrations() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    let report = run("duo_admin", &closed.to_string(), ADMIN).await;
    assert!(!report.ok);
    assert!(report.message.starts_with("`x` could not be checked: could not connect to `127.0.0.1:"), "{report:?}");
    assert!(report.fix.expect("a fix").contains("copy the API hostname again"));

    let text = "integrations:\n  t:\n    kind: http\n    base_url: https://tickets.example.com\n";
    let http = integrations::parse(Path::new("t.yaml"), text, &|_| None).expect("loads").list.remove(0);
    let report = check(&Clients::new(), &http).await;
    assert!(report.ok && report.skipped, "{report:?}");
    assert_eq!(report.fix, None);
}
