//! Running flows with the real node kinds (no I/O): values, the skip rule, branches, `fail`,
//! `on_error`, subflows nested in the record, inputs checked before anything runs.

use std::sync::Arc;

use flowcat_engine::Catalog;
use flowcat_engine::diag::Source;
use flowcat_engine::run::{NodeStatus, Options, Quiet, RunError, RunRecord, RunRequest, RunStatus, Runner};
use flowcat_nodes::REGISTRY;
use serde_json::{Map, Value, json};

fn runner(files: &[(&str, &str)]) -> Runner {
    let sources = files.iter().map(|(p, t)| Arc::new(Source { path: (*p).into(), text: (*t).into() })).collect();
    let catalog = Catalog::load(sources, &REGISTRY);
    let problems: Vec<String> = catalog.diagnostics().filter(|d| d.is_error()).map(|d| d.render(false)).collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    Runner::new(Arc::new(catalog), Options::default(), Arc::new(Quiet))
}

fn run(r: &Runner, flow: &str, inputs: Value) -> Result<RunRecord, RunError> {
    let inputs: Map<String, Value> = serde_json::from_value(inputs).expect("an object");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(r.run(RunRequest { flow: flow.into(), inputs, ..RunRequest::default() }))
}

fn status(rec: &RunRecord, id: &str) -> NodeStatus {
    rec.node(id).unwrap_or_else(|| panic!("no node {id}")).status
}

const FLOW: &str = r#"
id: t.flow
inputs:
  name: { type: string, pattern: "[a-z]+" }
  go: { type: boolean, default: false }
  n: { type: number, default: 2 }
nodes:
  - id: greet
    kind: set
    values:
      text: "hello {{inputs.name}}"
      n: "{{inputs.n}}"
      list: ["{{inputs.name}}", 3]
  - id: maybe
    kind: set
    when: "{{inputs.go}}"
    values: { x: yes }
  - id: reads_maybe
    kind: set
    values: { y: "{{nodes.maybe.x}}" }
  - id: after_maybe
    kind: set
    after: [maybe]
    values: { z: "{{nodes.greet.n}}" }
outputs:
  text: "{{nodes.greet.text}}"
  n: "{{nodes.greet.n}}"
  list: "{{nodes.greet.list}}"
  y: { value: "{{nodes.reads_maybe.y}}", default: none }
  z: "{{nodes.after_maybe.z}}"
"#;

#[test]
fn values_keep_their_types_and_the_skip_rule_holds() {
    let r = runner(&[("f.yaml", FLOW)]);
    let rec = run(&r, "t.flow", json!({"name": "ana"})).expect("runs");
    assert_eq!(rec.status, RunStatus::Succeeded, "{rec:#?}");
    assert_eq!(
        Value::Object(rec.outputs.clone()),
        json!({"text": "hello ana", "n": 2, "list": ["ana", 3], "y": "none", "z": 2})
    );
    assert_eq!(status(&rec, "maybe"), NodeStatus::Skipped);
    assert_eq!(status(&rec, "reads_maybe"), NodeStatus::Skipped);
    assert_eq!(
        rec.node("reads_maybe").and_then(|n| n.reason.clone()).as_deref(),
        Some("it reads `maybe`, which was skipped")
    );
    assert_eq!(status(&rec, "after_maybe"), NodeStatus::Succeeded, "after: alone does not skip");

    let rec = run(&r, "t.flow", json!({"name": "ana", "go": "true"})).expect("runs");
    assert_eq!(rec.outputs["y"], json!("yes"));
    assert_eq!(status(&rec, "reads_maybe"), NodeStatus::Succeeded);
}

#[test]
fn bad_inputs_are_refused_before_anything_runs() {
    let r = runner(&[("f.yaml", FLOW)]);
    let err = run(&r, "t.flow", json!({"nme": "ana", "n": "two"})).expect_err("refused");
    let text = err.to_string();
    assert!(text.contains("flow `t.flow` has no input `nme`; did you mean `name`?"), "{text}");
    assert!(text.contains("flow `t.flow` needs input `name` (string)"), "{text}");
    assert!(text.contains("input `n` of flow `t.flow`: `two` is not a number"), "{text}");
    let err = run(&r, "t.flow", json!({"name": "Ana"})).expect_err("pattern");
    assert!(err.to_string().contains("`Ana` does not match the pattern `[a-z]+`"), "{err}");
    let err = run(&r, "t.flw", json!({})).expect_err("unknown flow");
    assert_eq!(err.to_string(), "no flow `t.flw` in the catalog; did you mean `t.flow`?");
}

const BRANCHES: &str = r#"
id: t.branches
inputs:
  mode: { type: string }
nodes:
  - id: route
    kind: switch
    cases:
      - name: a
        when: "{{eq inputs.mode \"a\"}}"
        then: [on_a]
      - name: b
        when: "{{eq inputs.mode \"b\"}}"
        then: [on_b]
    default: [stop]
  - id: on_a
    kind: set
    values: { picked: a }
  - id: on_b
    kind: set
    values: { picked: b }
  - id: stop
    kind: fail
    code: bad_mode
    message: "mode {{inputs.mode}} is not a or b"
  - id: soft
    kind: fail
    when: "{{eq inputs.mode \"b\"}}"
    on_error: continue
    code: soft_failure
    message: "soft"
  - id: after_soft
    kind: set
    when: "{{eq inputs.mode \"b\"}}"
    values: { saw: "{{nodes.soft.error.code}}" }
outputs:
  picked: { value: "{{nodes.on_a.picked}}", default: "{{nodes.on_b.picked}}" }
  case: "{{nodes.route.case}}"
  saw: { value: "{{nodes.after_soft.saw}}", default: null }
"#;

#[test]
fn a_switch_runs_one_branch_and_fail_ends_the_run() {
    let r = runner(&[("b.yaml", BRANCHES)]);
    let rec = run(&r, "t.branches", json!({"mode": "a"})).expect("runs");
    assert_eq!(rec.status, RunStatus::Succeeded);
    assert_eq!(rec.outputs["picked"], json!("a"));
    assert_eq!(rec.outputs["case"], json!("a"));
    assert_eq!(status(&rec, "on_b"), NodeStatus::Skipped);
    assert_eq!(status(&rec, "stop"), NodeStatus::Skipped);

    let rec = run(&r, "t.branches", json!({"mode": "b"})).expect("runs");
    assert_eq!(rec.outputs["picked"], json!("b"));
    assert_eq!(status(&rec, "soft"), NodeStatus::Failed);
    assert_eq!(rec.outputs["saw"], json!("soft_failure"), "on_error: continue lets later nodes read the error");

    let rec = run(&r, "t.branches", json!({"mode": "c"})).expect("runs");
    assert_eq!(rec.status, RunStatus::Failed);
    let err = rec.error.expect("a failure");
    assert_eq!(
        (err.node.as_str(), err.code.as_str(), err.message.as_str()),
        ("stop", "bad_mode", "mode c is not a or b")
    );
    assert!(rec.outputs.is_empty());
}

const CHILD: &str = r#"
id: t.child
inputs:
  who: { type: string }
  loud: { type: boolean, required: false }
nodes:
  - id: hi
    kind: set
    values: { text: "hi {{inputs.who}}" }
  - id: check
    kind: fail
    when: "{{eq inputs.who \"nobody\"}}"
    code: no_one
    message: "nobody to greet"
outputs:
  text: "{{nodes.hi.text}}"
"#;

const PARENT: &str = r#"
id: t.parent
inputs:
  who: { type: string }
nodes:
  - id: call
    kind: subflow
    flow: t.child
    with: { who: "{{inputs.who}}", loud: "{{inputs.missing_is_null}}" }
  - id: use
    kind: set
    values: { got: "{{nodes.call.text}}" }
outputs:
  got: "{{nodes.use.got}}"
"#;

#[test]
fn subflow_runs_nest_in_the_record_and_their_failures_name_the_inner_node() {
    let parent = PARENT.replace(", loud: \"{{inputs.missing_is_null}}\"", "");
    let r = runner(&[("c.yaml", CHILD), ("p.yaml", &parent)]);
    let rec = run(&r, "t.parent", json!({"who": "ana"})).expect("runs");
    assert_eq!(rec.outputs["got"], json!("hi ana"));
    let nested = rec.node("call").and_then(|n| n.subflow.as_ref()).expect("nested record");
    assert_eq!(nested.flow, "t.child");
    assert_eq!(nested.node("hi").map(|n| n.status), Some(NodeStatus::Succeeded));
    assert_eq!(nested.node("check").map(|n| n.status), Some(NodeStatus::Skipped));

    let rec = run(&r, "t.parent", json!({"who": "nobody"})).expect("runs");
    let err = rec.error.clone().expect("failed");
    assert_eq!(err.node, "call");
    assert_eq!(err.code, "no_one");
    assert_eq!(err.message, "subflow `t.child` failed at node `check`: nobody to greet");
    assert_eq!(status(&rec, "use"), NodeStatus::Pending);
}

#[test]
fn the_record_serialises_for_a_journal() {
    let r = runner(&[("f.yaml", FLOW)]);
    let rec = run(&r, "t.flow", json!({"name": "ana"})).expect("runs");
    let text = serde_json::to_string(&rec).expect("serialises");
    let back: RunRecord = serde_json::from_str(&text).expect("reads back");
    assert_eq!(back, rec);
}

#[test]
fn subflows_nest_only_as_deep_as_the_runner_allows() {
    let level = |n: usize| {
        if n == 0 {
            "id: t.l0\nnodes:\n  - id: v\n    kind: set\n    values: { x: 1 }\noutputs:\n  x: \"{{nodes.v.x}}\"\n"
                .to_owned()
        } else {
            format!(
                "id: t.l{n}\nnodes:\n  - id: call\n    kind: subflow\n    flow: t.l{}\noutputs:\n  x: \"{{{{nodes.call.x}}}}\"\n",
                n - 1
            )
        }
    };
    let files: Vec<(String, String)> = (0..4).map(|n| (format!("l{n}.yaml"), level(n))).collect();
    let refs: Vec<(&str, &str)> = files.iter().map(|(p, t)| (p.as_str(), t.as_str())).collect();
    let sources = refs.iter().map(|(p, t)| Arc::new(Source { path: (*p).into(), text: (*t).into() })).collect();
    let catalog = Arc::new(Catalog::load(sources, &REGISTRY));
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let run = |max_depth: usize| {
        let r = Runner::new(catalog.clone(), Options { max_depth, ..Options::default() }, Arc::new(Quiet));
        rt.block_on(r.run(RunRequest { flow: "t.l3".into(), ..RunRequest::default() })).expect("starts")
    };
    let rec = run(3);
    assert_eq!(rec.outputs["x"], json!(1), "{:?}", rec.error);
    let rec = run(2);
    let err = rec.error.expect("too deep");
    assert_eq!(err.code, "too_deep");
    assert!(err.message.contains("subflows nest deeper than 2 levels"), "{}", err.message);
}

#[test]
fn a_condition_that_cannot_be_evaluated_fails_the_node_instead_of_skipping_it() {
    let flow = r#"
id: t.when
nodes:
  - id: a
    kind: set
    values: { x: { shallow: 1 } }
  - id: b
    kind: set
    when: "{{nodes.a.x.deep}}"
    values: { z: 2 }
outputs:
  z: { value: "{{nodes.b.z}}", default: 0 }
"#;
    let r = runner(&[("w.yaml", flow)]);
    let rec = run(&r, "t.when", json!({})).expect("runs");
    assert_eq!(rec.status, RunStatus::Failed);
    let err = rec.error.clone().expect("failure");
    assert_eq!((err.node.as_str(), err.code.as_str()), ("b", "template"));
    assert!(err.message.contains("reads `nodes.a.x.deep`, which has no value"), "{}", err.message);
    assert_eq!(status(&rec, "b"), NodeStatus::Failed);
}

#[test]
fn coalesce_reads_a_skipped_node_without_skipping_the_reader() {
    let flow = r#"
id: t.coalesce
inputs:
  found: { type: boolean }
nodes:
  - id: lookup
    kind: set
    when: "{{inputs.found}}"
    values: { id: DP1 }
  - id: create
    kind: set
    when: "{{not inputs.found}}"
    values: { id: DP2, n: 7 }
  - id: pick
    kind: set
    values:
      id: "{{coalesce nodes.lookup.id nodes.create.id}}"
      n: "{{coalesce nodes.create.n 0}}"
      text: "phone {{coalesce nodes.lookup.id nodes.create.id}}"
  - id: strict
    kind: set
    values: { id: "{{nodes.lookup.id}}" }
outputs:
  id: "{{nodes.pick.id}}"
  n: "{{nodes.pick.n}}"
  text: "{{nodes.pick.text}}"
  strict: { value: "{{nodes.strict.id}}", default: skipped }
"#;
    let r = runner(&[("c.yaml", flow)]);
    let found = run(&r, "t.coalesce", json!({"found": true})).expect("runs");
    assert_eq!(
        found.outputs,
        json!({"id": "DP1", "n": 0, "text": "phone DP1", "strict": "DP1"}).as_object().cloned().expect("map")
    );
    assert_eq!(status(&found, "create"), NodeStatus::Skipped);
    assert_eq!(status(&found, "pick"), NodeStatus::Succeeded);
    let created = run(&r, "t.coalesce", json!({"found": false})).expect("runs");
    assert_eq!(created.outputs["id"], json!("DP2"));
    assert_eq!(created.outputs["n"], json!(7));
    // The same read outside `coalesce` is skipped with the node it reads.
    assert_eq!(status(&created, "strict"), NodeStatus::Skipped);
    assert_eq!(created.outputs["strict"], json!("skipped"));
}

#[test]
fn an_optional_slot_may_stay_unbound_until_a_node_needs_it() {
    let flow = r#"
id: t.optional
integrations:
  extra: { kind: http, required: false }
inputs:
  call: { type: boolean, default: false }
nodes:
  - id: maybe
    kind: rest_call
    when: "{{inputs.call}}"
    integration: extra
    method: GET
    path: /x
outputs:
  status: { value: "{{nodes.maybe.status}}", default: 0 }
"#;
    let r = runner(&[("o.yaml", flow)]);
    let rec = run(&r, "t.optional", json!({})).expect("an unbound optional slot does not refuse the run");
    assert_eq!(rec.status, RunStatus::Succeeded);
    assert_eq!(rec.outputs["status"], json!(0));
    let rec = run(&r, "t.optional", json!({"call": true})).expect("starts");
    let err = rec.error.expect("the node needs the slot");
    assert_eq!((err.node.as_str(), err.code.as_str()), ("maybe", "unbound"));
    assert!(err.message.contains("integration slot `extra` is not bound"), "{}", err.message);
}

#[test]
fn an_unbound_slot_is_reported_once_not_also_as_the_var_it_would_offer() {
    let flow = r#"
id: t.slot
integrations:
  api: { kind: http }
vars:
  host: { description: offered by the bound integration }
nodes:
  - id: call
    kind: rest_call
    integration: api
    method: GET
    path: /x
"#;
    let r = runner(&[("s.yaml", flow)]);
    let text = run(&r, "t.slot", json!({})).expect_err("refused").to_string();
    assert!(text.contains("integration slot `api` of flow `t.slot` is not bound"), "{text}");
    assert!(!text.contains("var `host`"), "the var is the slot's problem, not a second one: {text}");
}
