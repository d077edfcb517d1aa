//! Validating a catalog of 1,000 generated flows: how long from text to compiled plans.
//!
//! `cargo bench --bench validate`. Prints the median and the spread over repeated runs, in
//! memory (parse + check + compile) and from disk (discover + read + the same).

use std::sync::Arc;
use std::time::{Duration, Instant};

use flowcat_engine::Catalog;
use flowcat_engine::diag::Source;
use flowcat_nodes::REGISTRY;

const FLOWS: usize = 1_000;

/// A flow in the shape of the catalog's: inputs, a slot, a subflow call to the previous flow,
/// a switch, two guarded REST calls running in parallel, a set and outputs.
fn flow(i: usize) -> String {
    let call = if i == 0 {
        String::new()
    } else {
        format!(
            "  - id: previous\n    kind: subflow\n    flow: bench.flow_{}\n    with:\n      username: \"{{{{inputs.username}}}}\"\n",
            i - 1
        )
    };
    let prev_read = if i == 0 { "inputs.username" } else { "nodes.previous.user_id" };
    format!(
        r#"id: bench.flow_{i}
name: Generated flow {i}
integrations:
  duo_admin:
    kind: duo_admin
inputs:
  username:
    type: string
    pattern: "[a-z0-9._-]+"
  limit:
    type: number
    default: 100
nodes:
{call}  - id: lookup
    kind: rest_call
    integration: duo_admin
    method: GET
    path: /admin/v1/users
    query:
      username: "{{{{inputs.username}}}}"
      limit: "{{{{inputs.limit}}}}"
    extract:
      user_id:
        path: $.response[0].user_id
        optional: true
      phones:
        path: $.response[0].phones[*].phone_id
        many: true
  - id: route
    kind: switch
    cases:
      - name: found
        when: "{{{{nodes.lookup.user_id}}}}"
        then: [phones, groups]
    default: [missing]
  - id: phones
    kind: rest_call
    integration: duo_admin
    method: GET
    path: /admin/v1/users/{{{{nodes.lookup.user_id}}}}/phones
  - id: groups
    kind: rest_call
    integration: duo_admin
    method: GET
    path: /admin/v1/users/{{{{nodes.lookup.user_id}}}}/groups
  - id: missing
    kind: fail
    code: not_found
    message: "no user {{{{inputs.username}}}} ({{{{{prev_read}}}}})"
  - id: summary
    kind: set
    values:
      count: "{{{{len nodes.phones.body.response}}}}"
      groups: "{{{{nodes.groups.status}}}}"
outputs:
  user_id: "{{{{nodes.lookup.user_id}}}}"
  phones:
    value: "{{{{nodes.summary.count}}}}"
    default: 0
"#
    )
}

fn sources() -> Vec<Arc<Source>> {
    (0..FLOWS).map(|i| Arc::new(Source { path: format!("bench/flow_{i}.yaml"), text: flow(i) })).collect()
}

fn median(mut xs: Vec<Duration>) -> (Duration, Duration, Duration) {
    xs.sort();
    (xs[0], xs[xs.len() / 2], xs[xs.len() - 1])
}

fn main() {
    let runs = 15;
    let sources = sources();
    // Every generated flow must be valid, or the number measures the error path.
    let catalog = Catalog::load(sources.clone(), &REGISTRY);
    let problems: Vec<String> = catalog.diagnostics().map(|d| d.render(false)).collect();
    assert!(problems.is_empty(), "generated flows have problems:\n{}", problems.join("\n"));
    assert_eq!(catalog.flows().count(), FLOWS);

    let times = (0..runs)
        .map(|_| {
            let s = sources.clone();
            let t = Instant::now();
            let c = Catalog::load(s, &REGISTRY);
            std::hint::black_box(&c);
            t.elapsed()
        })
        .collect();
    let (min, med, max) = median(times);
    println!("validate {FLOWS} flows in memory: median {med:?} (min {min:?}, max {max:?}, {runs} runs)");

    let dir = std::env::temp_dir().join(format!("flowcat-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    for (i, s) in sources.iter().enumerate() {
        std::fs::write(dir.join(format!("flow_{i}.yaml")), &s.text).expect("write flow");
    }
    let times = (0..runs)
        .map(|_| {
            let t = Instant::now();
            let files = flowcat_engine::catalog::discover(std::slice::from_ref(&dir)).expect("discover");
            let c = Catalog::load(flowcat_engine::catalog::read(&files).expect("read"), &REGISTRY);
            std::hint::black_box(&c);
            t.elapsed()
        })
        .collect();
    let (min, med, max) = median(times);
    println!("validate {FLOWS} flows from disk:  median {med:?} (min {min:?}, max {max:?}, {runs} runs)");
    let _ = std::fs::remove_dir_all(&dir);
}
