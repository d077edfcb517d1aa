//! `flowcat graph`: a flow with a subflow, a branch, a `when:` and parallel nodes, drawn in
//! DOT, Mermaid and JSON, with and without its subflows expanded.

use crate::common;

use common::flowcat;

const FLOW: &str = "tests/fixtures/user-report.yaml";

#[test]
fn dot() {
    let out = flowcat(&["graph", FLOW, "--format", "dot"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    insta::assert_snapshot!(out.stdout);
}

#[test]
fn dot_with_subflows_expanded() {
    let out = flowcat(&["graph", FLOW, "--format", "dot", "--expand-subflows"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    insta::assert_snapshot!(out.stdout);
}

#[test]
fn mermaid() {
    let out = flowcat(&["graph", FLOW, "--format", "mermaid"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    insta::assert_snapshot!(out.stdout);
}

#[test]
fn mermaid_with_subflows_expanded() {
    let out = flowcat(&["graph", FLOW, "--format", "mermaid", "--expand-subflows"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    insta::assert_snapshot!(out.stdout);
}

#[test]
fn json_shows_parallel_nodes_guards_and_skips() {
    let out = flowcat(&["graph", FLOW, "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let g: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    let node = |id: &str| g["nodes"].as_array().and_then(|n| n.iter().find(|n| n["id"] == id)).cloned().expect(id);
    // `phones` and `groups` both wait only for `lookup` and `route`: they may run in parallel.
    let waits_for = |id: &str| {
        let mut v: Vec<String> = g["edges"]
            .as_array()
            .expect("edges")
            .iter()
            .filter(|e| e["to"] == id)
            .map(|e| e["from"].as_str().unwrap_or_default().to_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(waits_for("phones"), ["lookup", "route"]);
    assert_eq!(waits_for("groups"), ["lookup", "route"]);
    assert_eq!(node("phones")["guards"][0]["branches"][0], "found");
    assert_eq!(node("missing")["guards"][0]["branches"][0], "default");
    assert_eq!(node("comment")["may_skip"], true);
    assert_eq!(node("lookup")["may_skip"], false);
    assert_eq!(node("missing")["ends_run"], true);
    insta::assert_json_snapshot!(g);
}

#[test]
fn a_flow_is_found_by_id() {
    let by_id = flowcat(&["graph", "duo.admin.enroll_user", "--format", "mermaid"]);
    let by_path = flowcat(&["graph", "flows/duo/enroll-user.yaml", "--format", "mermaid"]);
    assert_eq!(by_id.code, 0, "{}", by_id.stderr);
    assert_eq!(by_id.stdout, by_path.stdout);
}

#[test]
fn an_unknown_flow_is_a_usage_error_with_a_hint() {
    let out = flowcat(&["graph", "duo.admin.enrol_user"]);
    assert_eq!(out.code, 2);
    insta::assert_snapshot!(out.snapshot());
}

#[test]
fn a_for_each_is_one_box_or_its_body_drawn_once() {
    let flat = flowcat(&["graph", "examples.offboard_user", "--format", "dot"]);
    assert_eq!(flat.code, 0, "{}", flat.stderr);
    let title = "for each of {{nodes.phones.phone_ids}}, 4 at a time: subflow duo.admin.remove_device";
    assert!(flat.stdout.contains(&format!("\"remove_all\" [label=\"remove_all\\n{title}\"")), "{}", flat.stdout);
    let expanded = flowcat(&["graph", "examples.offboard_user", "--format", "dot", "--expand-subflows"]);
    assert_eq!(expanded.code, 0, "{}", expanded.stderr);
    assert!(expanded.stdout.contains(&format!("label=\"remove_all: {title}\"")), "{}", expanded.stdout);
    // The body once, not once per item: one `delete` of remove_device inside the cluster.
    assert_eq!(expanded.stdout.matches("\"remove_all/delete\" [label=").count(), 1, "{}", expanded.stdout);
    let json = flowcat(&["graph", "examples.offboard_user", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON");
    let node = v["nodes"].as_array().into_iter().flatten().find(|n| n["id"] == "remove_all").expect("the node");
    assert_eq!(node["kind"], "for_each");
    assert_eq!(node["fields"], serde_json::json!(["results", "count", "succeeded", "failed"]));
}
