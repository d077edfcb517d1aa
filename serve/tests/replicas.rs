//! Two services sharing one Postgres store (as two replicas on two machines would): each takes
//! its share of an integration's rate limit, and a 429 met by one slows the other.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use flowcat_engine::journal::Store;
use flowcat_pgstore::{Options, PgStore};
use flowcat_serve::{App, Config};
use flowcat_testpg::Cluster;
use tokio::time::Instant;

const FLOW: &str = "id: t.hello\nnodes:\n  - id: greet\n    kind: set\n    values: { text: hello }\noutputs:\n  text: \"{{nodes.greet.text}}\"\n";

/// A service over the store at `url`, with one Duo integration limited to 12 requests a second.
fn service(dir: &Path, url: &str) -> (Arc<App>, PgStore) {
    let flows = dir.join("flows");
    std::fs::create_dir_all(&flows).expect("flows");
    std::fs::write(flows.join("hello.yaml"), FLOW).expect("flow");
    std::fs::write(
        dir.join("integrations.yaml"),
        "integrations:\n  duo_admin:\n    kind: duo_admin\n    host: \"127.0.0.1:9\"\n    ikey: DIXXXXXXXXXXXXXXXXXX\n    \
         skey: \"canarysecretkey000000000000000000000000c\"\n    loopback_http: true\n    \
         rate_limit: { per_second: 12, burst: 6 }\n",
    )
    .expect("integrations");
    let text = format!(
        "integrations: integrations.yaml\ntokens:\n  - name: admin\n    sha256: {}\n    flows: ['*']\n",
        flowcat_serve::auth::hex(&flowcat_serve::auth::hash("a-long-enough-admin-token-0123456789"))
    );
    let config = Config::parse(&text, "serve.yaml", dir).expect("a valid config");
    let file = flowcat_nodes::integrations::load(&config.integrations, &|_| None).expect("integrations");
    let catalog = flowcat_nodes::embed::load_catalog(&[flows]).expect("catalog");
    // A short lease: the replicas see each other at their next renewal, a fifth of it later.
    let store = PgStore::open(url, Options { pool: 2, lease: Duration::from_millis(1000), ..Options::default() })
        .expect("the store opens");
    let shared: Arc<dyn Store> = Arc::new(store.clone());
    (App::new(config, catalog, file, shared), store)
}

fn limiter(app: &App) -> Arc<flowcat_nodes::http::limit::Limiter> {
    let integrations = app.runs.hall.integrations().expect("integrations");
    integrations.get("duo_admin").expect("duo_admin").limiter.clone().expect("a limiter")
}

/// Polls `f` (a state the replicas reach through their renewals) for at most 10 s.
async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let give_up = std::time::Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(std::time::Instant::now() < give_up, "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_share_the_rate_limit_and_hear_each_others_429s() {
    let url = Cluster::shared().database();
    let dirs = (tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"));
    let (a, store_a) = service(dirs.0.path(), &url);
    let (la, before) = (limiter(&a), limiter(&a).rate());
    a.runs.sweep(Instant::now());
    assert!((la.rate() - before).abs() < 1e-9, "alone, a replica has the whole rate");

    let (b, _store_b) = service(dirs.1.path(), &url);
    let lb = limiter(&b);
    until("a sees two replicas", || store_a.sharers() == 2).await;
    a.runs.sweep(Instant::now());
    b.runs.sweep(Instant::now());
    assert!((la.rate() - 6.0).abs() < 1e-6 && (lb.rate() - 6.0).abs() < 1e-6, "{} {}", la.rate(), lb.rate());

    // A 429 at a: told at a's next sweep, heard at b's, which slows down too (once).
    let cuts = lb.cuts();
    la.throttled(Instant::now());
    assert!(la.rate() < 3.5, "a halved its rate: {}", la.rate());
    a.runs.sweep(Instant::now());
    b.runs.sweep(Instant::now());
    assert_eq!(lb.cuts(), cuts + 1, "b heard it");
    assert!(lb.rate() < 3.5, "b halved its rate too: {}", lb.rate());
    // Heard, not met: b does not tell it back, so a is not cut again.
    let cuts_a = la.cuts();
    b.runs.sweep(Instant::now());
    a.runs.sweep(Instant::now());
    assert_eq!(la.cuts(), cuts_a, "no echo");

    // b goes away: a has the whole rate again once its lease count says so.
    drop(b);
    drop(_store_b);
    until("a is alone again", || store_a.sharers() == 1).await;
    a.runs.sweep(Instant::now());
    // Its share is whole again (the cut still recovers at its own pace): twice b's half-share.
    assert!(la.rate() > lb.rate() * 1.9, "a's share grew back: {} vs {}", la.rate(), lb.rate());
}
