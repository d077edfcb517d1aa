//! Duo's rate limiting over real HTTP (`--rate-limit`): per integration key, on the simulator's
//! clock (advanced here, never slept on), answering 429 with Duo's body and no `Retry-After`.

use crate::common;

use std::time::Duration;

use clap::Parser;
use common::{Call, control, send, start_with};
use flowcat_sim::cli::SimArgs;
use flowcat_sim::{Options, RateLimit};
use serde_json::json;

/// A simulator allowing 2 requests per second per integration key, 2 at once.
async fn limited() -> flowcat_sim::Sim {
    let options = Options { rate_limit: Some(RateLimit { per_second: 2.0, burst: 2 }), ..Options::default() };
    start_with(options).await
}

fn users() -> Call {
    Call::new("GET", "/admin/v1/users", &[("username", "alice")])
}

#[tokio::test]
async fn over_the_limit_the_admin_api_answers_duos_429_without_retry_after() {
    let sim = limited().await;
    for _ in 0..2 {
        assert_eq!(send(&sim, users()).await.status, 200);
    }
    let refused = send(&sim, users()).await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.body, json!({"stat": "FAIL", "code": 42901, "message": "Too Many Requests"}));
    for header in ["retry-after", "x-retry-after"] {
        assert!(refused.headers.get(header).is_none(), "{header}: {:?}", refused.headers);
    }
    assert_eq!(sim.rate_limited(), 1);
    assert_eq!(sim.stats()["GET /admin/v1/users"], 3, "a refused request is still a request served");
}

#[tokio::test]
async fn each_integration_key_has_its_own_bucket_and_the_auth_api_is_limited_too() {
    let sim = limited().await;
    for _ in 0..2 {
        send(&sim, users()).await;
    }
    assert_eq!(send(&sim, users()).await.status, 429);
    let check = || Call::new("GET", "/auth/v2/check", &[]).auth_keys();
    assert_eq!(send(&sim, check()).await.status, 200, "the Auth API key is untouched");
    assert_eq!(send(&sim, check()).await.status, 200);
    let refused = send(&sim, check()).await;
    assert_eq!((refused.status, refused.body["code"].as_u64()), (429, Some(42901)));
    assert!(refused.headers.get("retry-after").is_none());
    // `ping` names no key: never limited.
    for _ in 0..5 {
        let ping = Call { unsigned: true, ..Call::new("GET", "/auth/v2/ping", &[]) };
        assert_eq!(send(&sim, ping).await.status, 200);
    }
}

#[tokio::test]
async fn tokens_come_back_on_the_simulators_clock_and_refusals_cost_one() {
    let sim = limited().await;
    for _ in 0..2 {
        send(&sim, users()).await;
    }
    assert_eq!(send(&sim, users()).await.status, 429, "empty: refused, and at -1 now");
    // Half a second brings one token: back to 0, still refused (and at -1 again).
    sim.advance(Duration::from_millis(500));
    assert_eq!(send(&sim, users()).await.status, 429);
    // One second brings two: at 1, served.
    sim.advance(Duration::from_millis(1000));
    assert_eq!(send(&sim, users()).await.status, 200);
    assert_eq!(sim.rate_limited(), 2);
}

#[tokio::test]
async fn a_bad_signature_costs_its_key_a_token() {
    let sim = limited().await;
    let forged = Call { skey: "not-the-secret-key-at-all-00000000000000".into(), ..users() };
    assert_eq!(send(&sim, forged.clone()).await.status, 401);
    assert_eq!(send(&sim, forged).await.status, 401);
    assert_eq!(send(&sim, users()).await.status, 429);
}

#[tokio::test]
async fn reset_refills_every_bucket() {
    let sim = limited().await;
    for _ in 0..3 {
        send(&sim, users()).await;
    }
    assert_eq!(sim.rate_limited(), 1);
    sim.reset();
    assert_eq!(sim.rate_limited(), 0);
    assert_eq!(send(&sim, users()).await.status, 200);
}

#[tokio::test]
async fn the_control_api_tells_the_limit_and_counts_its_refusals_until_a_reset() {
    let sim = limited().await;
    let (status, body) = control(&sim, "GET", "/sim/rate-limit", None).await;
    assert_eq!((status, body), (200, json!({ "limit": { "per_second": 2.0, "burst": 2 }, "refused": 0 })));
    for _ in 0..4 {
        send(&sim, users()).await;
    }
    let (_, body) = control(&sim, "GET", "/sim/rate-limit", None).await;
    assert_eq!(body["refused"], 2, "two of four refused: {body}");
    let (_, stats) = control(&sim, "GET", "/sim/stats", None).await;
    assert_eq!(stats, json!({ "GET /admin/v1/users": 4 }), "the stats count every request, refused ones too");
    control(&sim, "POST", "/sim/reset", None).await;
    let (_, body) = control(&sim, "GET", "/sim/rate-limit", None).await;
    assert_eq!(body["refused"], 0, "{body}");
    let free = start_with(Options::default()).await;
    let (_, body) = control(&free, "GET", "/sim/rate-limit", None).await;
    assert_eq!(body, json!({ "limit": null, "refused": 0 }));
}

#[tokio::test]
async fn without_the_flag_there_is_no_limit() {
    let sim = start_with(Options::default()).await;
    for _ in 0..50 {
        assert_eq!(send(&sim, users()).await.status, 200);
    }
    assert_eq!(sim.rate_limited(), 0);
}

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    sim: SimArgs,
}

#[test]
fn the_flag_reads_a_rate_and_a_burst_and_refuses_nonsense() {
    let parse = |argv: &[&str]| Cli::try_parse_from([&["sim"], argv].concat()).map(|c| c.sim);
    let options = parse(&["--rate-limit", "300/min,burst=20"]).expect("flags").options().expect("options");
    assert_eq!(options.rate_limit, Some(RateLimit { per_second: 5.0, burst: 20 }));
    let options = parse(&["--rate-limit", "50/s"]).expect("flags").options().expect("options");
    assert_eq!(options.rate_limit, Some(RateLimit { per_second: 50.0, burst: 50 }));
    assert_eq!(parse(&[]).expect("flags").options().expect("options").rate_limit, None);
    let err = parse(&["--rate-limit", "50 per second"]).expect_err("refused").to_string();
    assert!(err.contains("expected `N/s` or `N/min`"), "{err}");
}
