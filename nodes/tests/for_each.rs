//! The `for_each` kind with the real node kinds (no I/O): its call checked like a subflow's,
//! `item` and `index` typed against the callee's inputs, and at run time the result's shape,
//! `on_item_error`, a list that is not one, and the cap on items.

use std::sync::Arc;

use flowcat_engine::Catalog;
use flowcat_engine::diag::Source;
use flowcat_engine::run::{Options, Quiet, RunRecord, RunRequest, RunStatus, Runner};
use flowcat_nodes::REGISTRY;
use flowcat_nodes::kinds::for_each::MAX_ITEMS;
use serde_json::{Map, Value, json};

fn catalog(files: &[(&str, &str)]) -> Catalog {
    let sources = files.iter().map(|(p, t)| Arc::new(Source { path: (*p).into(), text: (*t).into() })).collect();
    Catalog::load(sources, &REGISTRY)
}

fn messages(c: &Catalog) -> Vec<String> {
    c.diagnostics().map(|d| format!("{}: {}", d.location(), d.message)).collect()
}

fn run(files: &[(&str, &str)], flow: &str, inputs: Value) -> RunRecord {
    let catalog = catalog(files);
    let problems: Vec<String> = catalog.diagnostics().filter(|d| d.is_error()).map(|d| d.render(false)).collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let r = Runner::new(Arc::new(catalog), Options::default(), Arc::new(Quiet));
    let inputs: Map<String, Value> = serde_json::from_value(inputs).expect("an object");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(r.run(RunRequest { flow: flow.into(), inputs, ..RunRequest::default() })).expect("the run starts")
}

/// One item: fails (a `fail` node) when `name` is `bad`.
const GREET: &str = r#"
id: t.greet
inputs:
  name: { type: string }
  n: { type: number }
  loud: { type: boolean, default: false }
nodes:
  - id: refuse
    kind: fail
    when: '{{eq inputs.name "bad"}}'
    code: bad_name
    message: "no greeting for {{inputs.name}}"
  - id: text
    kind: set
    after: [refuse]
    values: { text: "{{inputs.n}}: hello {{inputs.name}}" }
outputs:
  text: "{{nodes.text.text}}"
"#;

fn list(on_item_error: &str) -> String {
    list_with(&format!("on_item_error: {on_item_error}"))
}

/// The list flow with `policy` (a line such as `on_error: continue`) on its `for_each` node.
fn list_with(policy: &str) -> String {
    format!(
        r#"
id: t.list
inputs:
  people: {{ type: array }}
nodes:
  - id: all
    kind: for_each
    items: "{{{{inputs.people}}}}"
    flow: t.greet
    concurrency: 2
    {policy}
    with: {{ name: "{{{{item.name}}}}", n: "{{{{index}}}}" }}
outputs:
  results: "{{{{nodes.all.results}}}}"
  succeeded: "{{{{nodes.all.succeeded}}}}"
  failed: "{{{{nodes.all.failed}}}}"
  count: "{{{{nodes.all.count}}}}"
  first: "{{{{nodes.all.results.[0].outputs.text}}}}"
"#
    )
}

#[test]
fn the_call_is_checked_like_a_subflow_call_and_index_is_a_number() {
    let caller = r#"
id: t.caller
inputs:
  people: { type: array }
nodes:
  - id: all
    kind: for_each
    items: "{{inputs.people}}"
    flow: t.greet
    concurrency: 65
    with: { nme: "{{item.name}}", n: "{{item.n}}", loud: "{{index}}" }
"#;
    let c = catalog(&[("greet.yaml", GREET), ("caller.yaml", caller)]);
    let m = messages(&c);
    assert!(m.contains(&"caller.yaml:10:18: `concurrency` must be 1 to 64".to_owned()), "{m:#?}");
    assert!(m.contains(&"caller.yaml:11:13: flow `t.greet` has no input `nme`".to_owned()), "{m:#?}");
    assert!(m.contains(&"caller.yaml:9:5: flow `t.greet` needs input `name`".to_owned()), "{m:#?}");
    assert!(m.contains(&"caller.yaml:11:58: input `loud` of flow `t.greet` is a boolean".to_owned()), "{m:#?}");
    assert_eq!(m.len(), 4, "{m:#?}");

    let not_a_list = r#"
id: t.not_a_list
inputs:
  people: { type: string }
nodes:
  - { id: all, kind: for_each, items: "{{inputs.people}}", flow: t.greet, with: { name: "{{item}}", n: 1 } }
"#;
    let c = catalog(&[("greet.yaml", GREET), ("caller.yaml", not_a_list)]);
    assert_eq!(messages(&c), ["caller.yaml:6:42: input `people` is a string, not a list"]);
}

#[test]
fn every_item_outcome_is_in_the_result_in_order_with_counts() {
    let people = json!([{ "name": "ann" }, { "name": "bad" }, { "name": "cy" }]);
    let rec = run(&[("greet.yaml", GREET), ("list.yaml", &list("continue"))], "t.list", json!({ "people": people }));
    assert_eq!(rec.status, RunStatus::Succeeded, "{:?}", rec.error);
    let o = &rec.outputs;
    assert_eq!((&o["count"], &o["succeeded"], &o["failed"]), (&json!(3), &json!(2), &json!(1)));
    assert_eq!(o["first"], "0: hello ann", "`results[0].outputs.<output>` reads an item's output");
    assert_eq!(
        o["results"][1],
        json!({ "index": 1, "status": "failed", "outputs": null, "error": {
            "code": "bad_name",
            "message": "subflow `t.greet` failed at node `refuse`: no greeting for bad",
            "data": null,
        } })
    );
    assert_eq!(o["results"][2]["outputs"], json!({ "text": "2: hello cy" }));
    let node = rec.node("all").expect("the node");
    assert_eq!(node.items.len(), 3, "each item's run nests in the record");
}

#[test]
fn by_default_the_first_failure_fails_the_node_naming_the_item() {
    let people = json!([{ "name": "bad" }, { "name": "ann" }, { "name": "cy" }, { "name": "dee" }]);
    let rec = run(&[("greet.yaml", GREET), ("list.yaml", &list("fail"))], "t.list", json!({ "people": people }));
    assert_eq!(rec.status, RunStatus::Failed);
    let err = rec.error.clone().expect("the failure");
    assert_eq!((err.node.as_str(), err.code.as_str()), ("all", "bad_name"));
    assert!(
        err.message.starts_with("item 0 of 4 failed: subflow `t.greet` failed at node `refuse`"),
        "{}",
        err.message
    );
    let node = rec.node("all").expect("the node");
    assert_eq!(node.error.as_ref().and_then(|e| e.data.clone()), Some(json!({ "index": 0 })));
    // Item 1 was in flight beside item 0 (two at a time) and finished; 2 and 3 never started.
    let ran: Vec<usize> = node.items.iter().map(|i| i.index).collect();
    assert_eq!(ran, [0, 1]);
}

#[test]
fn a_list_that_is_not_one_fails_the_node_by_name() {
    // A node's result is known only at run time (an input's declared type is checked when the
    // flow is validated).
    let flow = list("fail")
        .replace("people: { type: array }", "people: { type: object }")
        .replace("nodes:\n", "nodes:\n  - { id: src, kind: set, values: { v: \"{{inputs.people.v}}\" } }\n")
        .replace("items: \"{{inputs.people}}\"", "items: \"{{nodes.src.v}}\"");
    let files = [("greet.yaml", GREET), ("list.yaml", flow.as_str())];
    for (v, found) in [(json!("ann"), "a string (3 characters)"), (json!({ "a": 1 }), "an object")] {
        let rec = run(&files, "t.list", json!({ "people": { "v": v } }));
        let err = rec.error.clone().expect("a failure");
        assert_eq!((err.node.as_str(), err.code.as_str()), ("all", "not_a_list"));
        let want = format!("node `all`: `items: {{{{nodes.src.v}}}}` gave {found}, not a list");
        assert!(err.message.contains(&want), "{}", err.message);
    }
}

#[test]
fn a_list_longer_than_the_cap_starts_nothing() {
    let people: Vec<Value> = (0..=MAX_ITEMS).map(|i| json!({ "name": format!("p{i}") })).collect();
    let rec = run(&[("greet.yaml", GREET), ("list.yaml", &list("continue"))], "t.list", json!({ "people": people }));
    let err = rec.error.clone().expect("a failure");
    assert_eq!((err.node.as_str(), err.code.as_str()), ("all", "too_many_items"));
    assert!(err.message.contains("gave 10001 items, more than the 10000"), "{}", err.message);
    assert!(rec.node("all").expect("the node").items.is_empty(), "no item started");
}

#[test]
fn an_item_whose_inputs_cannot_be_rendered_fails_alone() {
    let people = json!([{ "name": "ann" }, { "nom": "typo" }]);
    let rec = run(&[("greet.yaml", GREET), ("list.yaml", &list("continue"))], "t.list", json!({ "people": people }));
    assert_eq!(rec.status, RunStatus::Succeeded);
    let r = &rec.outputs["results"][1];
    assert_eq!((&r["status"], &r["error"]["code"]), (&json!("failed"), &json!("template")));
    let message = r["error"]["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("item 1: input `name`: template `{{item.name}}` reads `item.name`"), "{message}");
}

/// The issue's spelling: the node's own `on_error: continue | fail` is the items' policy when
/// `on_item_error` is not given.
#[test]
fn on_error_continue_or_fail_is_the_items_policy() {
    let people = json!([{ "name": "ann" }, { "name": "bad" }, { "name": "cy" }]);
    let files = |policy: &str| vec![("greet.yaml", GREET.to_owned()), ("list.yaml", list_with(policy))];
    let run_with = |policy: &str| {
        let f = files(policy);
        let f: Vec<(&str, &str)> = f.iter().map(|(n, t)| (*n, t.as_str())).collect();
        run(&f, "t.list", json!({ "people": people }))
    };
    let rec = run_with("on_error: continue");
    assert_eq!(rec.status, RunStatus::Succeeded, "{:?}", rec.error);
    assert_eq!((&rec.outputs["succeeded"], &rec.outputs["failed"]), (&json!(2), &json!(1)), "every item ran");
    for policy in ["on_error: fail", "on_error: stop", "description: no policy given"] {
        let rec = run_with(policy);
        assert_eq!(rec.status, RunStatus::Failed, "{policy}");
        assert!(rec.error.is_some_and(|e| e.message.starts_with("item 1 of 3 failed")), "{policy}");
    }
}
