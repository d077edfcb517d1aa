//! Engine overhead per node: a chain of 1,000 nodes and a fan-out of 1,000 nodes that do no
//! I/O, and template rendering while the run holds 20 large values.
//!
//! `cargo bench --bench engine`. Prints the median over repeated runs, per node.

use std::sync::Arc;
use std::time::{Duration, Instant};

use flowcat_engine::Catalog;
use flowcat_engine::diag::Source;
use flowcat_engine::run::{Options, Quiet, RunRequest, RunStatus, Runner};
use flowcat_nodes::REGISTRY;

const N: usize = 1_000;

fn chain() -> String {
    let mut s = String::from("id: bench.chain\ninputs:\n  seed: { type: number, default: 1 }\nnodes:\n");
    s.push_str("  - id: n0\n    kind: set\n    values: { v: \"{{inputs.seed}}\" }\n");
    for i in 1..N {
        s.push_str(&format!("  - id: n{i}\n    kind: set\n    values: {{ v: \"{{{{nodes.n{}.v}}}}\" }}\n", i - 1));
    }
    s.push_str(&format!("outputs:\n  last: \"{{{{nodes.n{}.v}}}}\"\n", N - 1));
    s
}

fn fan_out() -> String {
    let mut s = String::from("id: bench.fan\ninputs:\n  seed: { type: string, default: x }\nnodes:\n");
    s.push_str("  - id: root\n    kind: set\n    values: { v: \"{{inputs.seed}}\" }\n");
    for i in 0..N {
        s.push_str(&format!(
            "  - id: f{i}\n    kind: set\n    values: {{ v: \"item {i} of {{{{nodes.root.v}}}}\" }}\n"
        ));
    }
    s.push_str("  - id: join\n    kind: set\n    after: [");
    s.push_str(&(0..N).map(|i| format!("f{i}")).collect::<Vec<_>>().join(", "));
    s.push_str("]\n    values: { done: true }\noutputs:\n  done: \"{{nodes.join.done}}\"\n");
    for i in 0..N {
        s.push_str(&format!("  f{i}: \"{{{{nodes.f{i}.v}}}}\"\n"));
    }
    s
}

fn measure(runner: &Runner, flow: &str, inputs: serde_json::Map<String, serde_json::Value>, runs: usize) -> Duration {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let req = RunRequest { flow: flow.into(), inputs: inputs.clone(), ..RunRequest::default() };
            let t = Instant::now();
            let rec = rt.block_on(runner.run(req)).expect("starts");
            let d = t.elapsed();
            assert_eq!(rec.status, RunStatus::Succeeded, "{:?}", rec.error);
            d
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn main() {
    let sources = [("chain.yaml", chain()), ("fan.yaml", fan_out())]
        .into_iter()
        .map(|(p, t)| Arc::new(Source { path: p.into(), text: t }))
        .collect();
    let catalog = Catalog::load(sources, &REGISTRY);
    let errors: Vec<String> = catalog.diagnostics().filter(|d| d.is_error()).map(|d| d.render(false)).collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    let options = Options { max_parallel: 64, ..Options::default() };
    let runner = Runner::new(Arc::new(catalog), options, Arc::new(Quiet));
    let none = serde_json::Map::new();
    let per = |d: Duration, n: usize| d.as_secs_f64() * 1e6 / n as f64;
    let d = measure(&runner, "bench.chain", none.clone(), 21);
    println!("chain of {N} nodes:    median {d:?} per run, {:.2} µs per node", per(d, N));
    let d = measure(&runner, "bench.fan", none, 21);
    println!("fan-out of {N} nodes:  median {d:?} per run, {:.2} µs per node", per(d, N + 2));
    render_beside_large_values();
    signing();
}

/// What signing adds to a Duo REST node: one v5 signature of a lookup.
fn signing() {
    use flowcat_nodes::duo::{Secret, SigVersion, Signer};
    let signer =
        Signer::new("DIWJ8X6AEYOR5OMC6TQ1", Secret::new("Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep"), SigVersion::V5)
            .expect("signer");
    let params = vec![("username".to_owned(), "jdoe".to_owned())];
    let date = "Tue, 21 Aug 2012 17:29:18 -0000";
    let mut times: Vec<Duration> = (0..9)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..10_000 {
                std::hint::black_box(
                    signer
                        .sign("GET", "api-xxxxxxxx.duosecurity.com", "/admin/v1/users", &params, date, &[])
                        .expect("signs"),
                );
            }
            start.elapsed()
        })
        .collect();
    times.sort();
    println!("signing a Duo v5 GET: {:.2} µs per request", times[4].as_secs_f64() * 1e6 / 10_000.0);
}

/// Renders templates while the run holds 20 values of 16,384 objects each (about 1 MiB of
/// JSON apiece): the cost must not depend on them.
fn render_beside_large_values() {
    use flowcat_engine::render::{Escape, render};
    use flowcat_engine::run::Env;
    let template = |src: &str| {
        let node =
            flowcat_engine::yaml::parse(&format!("t: '{src}'\n")).ok().flatten().and_then(|n| n.get("t").cloned());
        flowcat_engine::template::compile(&node.expect("yaml")).expect("compiles")
    };
    let big = |i: usize| {
        let users: Vec<serde_json::Value> =
            (0..16_384).map(|n| serde_json::json!({"user_id": format!("DU{n:018}"), "n": n})).collect();
        serde_json::json!({"id": format!("DU{i:018}"), "body": {"response": users}})
    };
    for (label, nodes) in [("empty run", 0), ("20 large values", 20)] {
        let env = Env {
            nodes: (0..nodes.max(1))
                .map(|i| {
                    (
                        Arc::from(format!("big{i}").as_str()),
                        Arc::new(if nodes == 0 { serde_json::json!({"id": "DU1"}) } else { big(i) }),
                    )
                })
                .collect(),
            ..Env::default()
        };
        let plain = template("/admin/v1/users/{{nodes.big0.id}}/phones");
        let helper = template("{{#if nodes.big0.id}}user {{nodes.big0.id}}{{/if}}");
        for (kind, t) in [("text and paths", &plain), ("handlebars helper", &helper)] {
            let mut times: Vec<Duration> = (0..9)
                .map(|_| {
                    let start = Instant::now();
                    for _ in 0..10_000 {
                        std::hint::black_box(render(t, &env, Escape::Segment).expect("renders"));
                    }
                    start.elapsed()
                })
                .collect();
            times.sort();
            println!("render ({kind}), {label}: {:.2} µs per render", times[4].as_secs_f64() * 1e6 / 10_000.0);
        }
    }
}
