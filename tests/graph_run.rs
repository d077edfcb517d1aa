//! `flowcat graph FLOW --run ID` and `flowcat runs show ID --format mermaid|dot`: a journaled run
//! of a real flow file drawn on its graph, each node with its status, and refusals.

use crate::common;

use common::{TempDir, flowcat_in};
use serde_json::Value;

/// A flow with a switch, a branch taken, a branch skipped, and a node that fails on request.
const FLOW: &str = r#"id: local.graph_run
nodes:
  - id: pick
    kind: switch
    cases:
      - name: big
        when: "{{inputs.big}}"
        then: [large]
    default: [small]
  - id: large
    kind: set
    values: { size: large }
  - id: small
    kind: set
    values: { size: small }
  - id: stop
    kind: fail
    when: "{{inputs.fail}}"
    after: [large, small]
    code: asked_to
    message: asked to fail
inputs:
  big: { type: boolean }
  fail: { type: boolean, default: false }
outputs:
  size: { value: "{{coalesce nodes.large.size nodes.small.size}}" }
"#;

/// Runs the flow journaled in `state`, returns the run's id.
fn run(dir: &TempDir, state: &TempDir, inputs: &[&str]) -> String {
    let mut args = vec!["run", "flow.yaml", "--format", "json"];
    for i in inputs {
        args.extend(["-i", i]);
    }
    let out = flowcat_in(dir.path(), &args, &[("FLOWCAT_STATE_DIR", state.str())]);
    let record: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stderr));
    record["id"].as_str().unwrap_or_else(|| panic!("no id: {record}")).to_owned()
}

#[test]
fn a_run_is_drawn_with_each_nodes_status_in_mermaid_and_dot() {
    let dir = TempDir::new("graph-run");
    let state = TempDir::new("graph-run-state");
    std::fs::write(dir.path().join("flow.yaml"), FLOW).expect("write the flow");
    let id = run(&dir, &state, &["big=true", "fail=true"]);
    let env = [("FLOWCAT_STATE_DIR", state.str())];

    let out = flowcat_in(dir.path(), &["graph", "flow.yaml", "--run", &id, "--format", "mermaid"], &env);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let m = &out.stdout;
    assert!(m.starts_with("flowchart TD\n"), "{m}");
    assert!(m.contains("class pick succeeded"), "{m}");
    assert!(m.contains("class large succeeded"), "{m}");
    assert!(m.contains("class small skipped"), "{m}");
    assert!(m.contains("class stop failed"), "{m}");
    assert!(m.contains("classDef failed fill:#f8d7da"), "{m}");
    assert!(m.contains("<br/>failed"), "{m}");

    let out = flowcat_in(dir.path(), &["graph", "flow.yaml", "--run", &id], &env);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let d = &out.stdout;
    let line = |key: &str| -> String {
        let start = format!("  \"{key}\" [label=");
        d.lines().find(|l| l.starts_with(&start)).unwrap_or_else(|| panic!("no box {key}: {d}")).to_owned()
    };
    assert_eq!(
        line("small"),
        "  \"small\" [label=\"small\\nset size\\nskipped\", style=\"filled,dashed\", fillcolor=\"#eeeeee\"];"
    );
    let pick = line("pick");
    assert!(pick.starts_with("  \"pick\" [label=\"pick\\nswitch: big\\nsucceeded · "), "{pick}");
    assert!(pick.ends_with("\", style=\"filled\", fillcolor=\"#d4edda\"];"), "{pick}");
    let stop = line("stop");
    assert!(stop.starts_with("  \"stop\" [label=\"stop\\nfail: asked_to\\nwhen {{inputs.fail}}\\nfailed · "), "{stop}");
    assert!(stop.ends_with("\", style=\"filled,dashed\", fillcolor=\"#f8d7da\"];"), "{stop}");
    assert!(d.contains("\"pick\" -> \"large\" [label=\"big\"];"), "{d}");

    // `runs show` draws it the same way, finding the flow's file from the journal.
    let out = flowcat_in(dir.path(), &["runs", "show", &id, "--format", "mermaid"], &env);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, *m);

    // The other branch in another run.
    let other = run(&dir, &state, &["big=false"]);
    let out = flowcat_in(dir.path(), &["runs", "show", &other, "--format", "dot"], &env);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("\"large\" [label=\"large\\nset size\\nskipped\""), "{}", out.stdout);
    assert!(out.stdout.contains("\"small\" [label=\"small\\nset size\\nsucceeded"), "{}", out.stdout);
    assert!(
        out.stdout.contains("\"stop\" [label=\"stop\\nfail: asked_to\\nwhen {{inputs.fail}}\\nskipped"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_run_of_another_flow_or_an_unknown_run_is_refused() {
    let dir = TempDir::new("graph-run-refused");
    let state = TempDir::new("graph-run-refused-state");
    std::fs::write(dir.path().join("flow.yaml"), FLOW).expect("write the flow");
    let id = run(&dir, &state, &["big=true"]);
    let env = [("FLOWCAT_STATE_DIR", state.str())];
    let out = flowcat_in(dir.path(), &["graph", "duo.admin.retrieve_user_id", "--run", &id], &env);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("run `{id}` is a run of `local.graph_run`, not of `duo.admin.retrieve_user_id`")),
        "{}",
        out.stderr
    );
    let out = flowcat_in(dir.path(), &["graph", "flow.yaml", "--run", "r-nope"], &env);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("no run `r-nope` in the journal"), "{}", out.stderr);
    let out = flowcat_in(dir.path(), &["graph", "flow.yaml", "--run", &id, "--format", "json"], &env);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("`--run` draws in `dot` or `mermaid`"), "{}", out.stderr);
}
