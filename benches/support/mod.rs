//! What the in-process benches share: the simulator on loopback with an `http` integration
//! bound to it, the median of some rounds, and the process's resident memory.

#![allow(dead_code)]

use flowcat_nodes::integrations::Integrations;
use flowcat_sim::{Seed, Sim};

/// The simulator on a free loopback port, seeded as for `flowcat demo`, and an integrations
/// file with one plain `http` integration, `api`, bound to it (no signing: what the benches
/// measure is the engine, the journal or the service, not Duo's signature).
pub async fn loopback_sim() -> (Sim, Integrations) {
    let sim = Sim::start_seed("127.0.0.1:0".parse().expect("addr"), &Seed::demo(), flowcat_sim::Options::default())
        .await
        .expect("sim");
    let yaml = format!(
        "integrations:\n  api:\n    kind: http\n    base_url: http://{}\n    loopback_http: true\n    auth: none\n",
        sim.addr()
    );
    let file = flowcat_nodes::integrations::parse("bench.yaml".as_ref(), &yaml, &|_| None).expect("integrations");
    (sim, file)
}

/// The middle value of some rounds.
pub fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// The process's resident memory in bytes (`VmRSS`; Linux).
pub fn rss() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib =
        status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().split(' ').next()?.parse().ok());
    kib.unwrap_or(0i64) * 1024
}
