//! Compiling flows with the real node kinds: edges, the skip rule, cycles, subflow checks.

use std::sync::Arc;

use flowcat_engine::Catalog;
use flowcat_engine::diag::Source;
use flowcat_engine::plan::EdgeKind;
use flowcat_nodes::REGISTRY;

fn catalog(files: &[(&str, &str)]) -> Catalog {
    let sources = files.iter().map(|(p, t)| Arc::new(Source { path: (*p).into(), text: (*t).into() })).collect();
    Catalog::load(sources, &REGISTRY)
}

fn messages(c: &Catalog) -> Vec<String> {
    c.diagnostics().map(|d| format!("{}: {}", d.location(), d.message)).collect()
}

const SKIPS: &str = r#"
id: t.skips
inputs:
  go: { type: boolean }
nodes:
  - id: a
    kind: set
    when: "{{inputs.go}}"
    values: { x: 1 }
  - id: reads_a
    kind: set
    values: { y: "{{nodes.a.x}}" }
  - id: after_a
    kind: set
    after: [a]
    values: { z: 2 }
  - id: reads_reader
    kind: set
    values: { w: "{{nodes.reads_a.y}}" }
outputs:
  y: { value: "{{nodes.reads_reader.w}}", default: 0 }
  z: "{{nodes.after_a.z}}"
"#;

#[test]
fn skips_propagate_along_reads_but_not_along_after() {
    let c = catalog(&[("skips.yaml", SKIPS)]);
    assert_eq!(messages(&c), Vec::<String>::new());
    let plan = &c.get("t.skips").expect("compiles").plan;
    let skip = |id: &str| plan.nodes[plan.index(id).expect(id)].may_skip;
    assert!(skip("a"));
    assert!(skip("reads_a"));
    assert!(skip("reads_reader"));
    assert!(!skip("after_a"));
    let a = plan.index("a").expect("a");
    let kinds: Vec<(String, EdgeKind)> = plan.dependents(a).map(|(n, k)| (plan.nodes[n].id.clone(), k)).collect();
    assert!(kinds.contains(&("reads_a".into(), EdgeKind::Data)));
    assert!(kinds.contains(&("after_a".into(), EdgeKind::After)));
    // Topological: every node after what it waits for.
    let pos = |id: &str| plan.order.iter().position(|&i| plan.nodes[i].id == id).expect(id);
    assert!(pos("a") < pos("reads_a") && pos("reads_a") < pos("reads_reader") && pos("a") < pos("after_a"));
}

#[test]
fn an_output_reading_a_skippable_node_without_default_is_a_warning() {
    let text =
        SKIPS.replace("y: { value: \"{{nodes.reads_reader.w}}\", default: 0 }", "y: \"{{nodes.reads_reader.w}}\"");
    let c = catalog(&[("skips.yaml", &text)]);
    assert_eq!(messages(&c), ["skips.yaml:21:9: output `y` reads `reads_reader`, which may be skipped"]);
    assert!(c.get("t.skips").is_some(), "a warning does not stop compiling");
}

#[test]
fn a_cycle_is_named_as_a_path() {
    let text = r#"
id: t.cycle
nodes:
  - id: a
    kind: set
    values: { x: "{{nodes.c.z}}" }
  - id: b
    kind: set
    values: { y: "{{nodes.a.x}}" }
  - id: c
    kind: set
    after: [b]
    values: { z: 1 }
"#;
    let c = catalog(&[("cycle.yaml", text)]);
    assert_eq!(messages(&c), ["cycle.yaml:6:21: the nodes form a cycle: a → b → c → a"]);
    assert!(c.get("t.cycle").is_none());
}

#[test]
fn subflow_calls_are_checked_like_function_calls() {
    let callee = r#"
id: t.callee
integrations: { duo_admin: { kind: duo_admin } }
inputs:
  username: { type: string }
  limit: { type: number, default: 10 }
nodes:
  - id: get
    kind: rest_call
    integration: duo_admin
    method: GET
    path: /admin/v1/users
    query: { username: "{{inputs.username}}", limit: "{{inputs.limit}}" }
outputs:
  status: "{{nodes.get.status}}"
"#;
    let caller = r#"
id: t.caller
integrations: { admin: { kind: duo_auth } }
nodes:
  - id: call
    kind: subflow
    flow: t.callee
    integrations: { duo_admin: admin }
    with: { limit: ten, usrname: x }
outputs:
  s: "{{nodes.call.stat}}"
"#;
    let c = catalog(&[("callee.yaml", callee), ("caller.yaml", caller)]);
    let m = messages(&c);
    assert!(m.contains(&"caller.yaml:9:20: input `limit` of flow `t.callee` is a number".to_owned()), "{m:#?}");
    assert!(m.contains(&"caller.yaml:9:25: flow `t.callee` has no input `usrname`".to_owned()), "{m:#?}");
    assert!(m.contains(&"caller.yaml:7:5: flow `t.callee` needs input `username`".to_owned()), "{m:#?}");
    assert!(m.iter().any(|x| x.starts_with("caller.yaml:8:32: slot `admin` is a `duo_auth` integration")), "{m:#?}");
}

#[test]
fn subflows_calling_each_other_are_reported_in_each_flow() {
    let a = "id: t.a\nnodes:\n  - id: call\n    kind: subflow\n    flow: t.b\n";
    let b = "id: t.b\nnodes:\n  - id: call\n    kind: subflow\n    flow: t.a\n";
    let c = catalog(&[("a.yaml", a), ("b.yaml", b)]);
    let m = messages(&c);
    assert_eq!(m.len(), 2, "{m:#?}");
    assert!(m[0].starts_with("a.yaml:5:11: subflows call each other in a loop: t.a → t.b → t.a"), "{m:#?}");
    assert!(m[1].starts_with("b.yaml:5:11: subflows call each other in a loop: t.b → t.a → t.b"), "{m:#?}");
}

const KEYED: &str = r#"
id: t.keyed
key: "{{inputs.username}}/{{inputs.ticket}}"
deadline: 10m
inputs:
  username: { type: string }
  ticket: { type: string, required: false }
nodes:
  - id: a
    kind: set
    values: { x: "{{inputs.username}}" }
outputs:
  x: "{{nodes.a.x}}"
"#;

#[test]
fn a_run_key_is_rendered_from_the_inputs_alone() {
    let c = catalog(&[("keyed.yaml", KEYED)]);
    assert_eq!(messages(&c), Vec::<String>::new());
    let flow = c.get("t.keyed").expect("compiles");
    assert_eq!(flow.deadline, Some(std::time::Duration::from_secs(600)));
    let inputs = |v: serde_json::Value| v.as_object().expect("an object").clone();
    let key = flow.render_key(&inputs(serde_json::json!({"username": "jdoe", "ticket": "INC42"})));
    assert_eq!(key.expect("renders"), Some("jdoe/INC42".to_owned()));
    // A written-out input without a value is an error, never an empty part of the key.
    let e = flow.render_key(&inputs(serde_json::json!({"username": "jdoe", "ticket": null}))).expect_err("null");
    assert_eq!(e.code, "template", "{}", e.message);
    let plain = catalog(&[("skips.yaml", SKIPS)]);
    let plain = plain.get("t.skips").expect("compiles");
    assert_eq!((plain.render_key(&serde_json::Map::new()).expect("no key"), plain.deadline), (None, None));
}

#[test]
fn a_run_key_that_reads_more_than_inputs_is_refused_where_it_reads() {
    let text = KEYED.replace(
        "key: \"{{inputs.username}}/{{inputs.ticket}}\"",
        "key: \"{{inputs.usrname}}-{{vars.host}}-{{nodes.a.x}}\"",
    );
    let c = catalog(&[("keyed.yaml", &text)]);
    assert_eq!(
        messages(&c),
        [
            "keyed.yaml:3:9: `inputs.usrname` names an undefined input `usrname`",
            "keyed.yaml:3:28: the run key reads `vars.host`",
            "keyed.yaml:3:42: the run key reads `nodes.a.x`",
        ]
    );
    let help: Vec<Option<&str>> = c.diagnostics().map(|d| d.help.as_deref()).collect();
    assert_eq!(help[0], Some("did you mean `username`?"));
    assert_eq!(help[1], Some("read only `inputs.<name>`, e.g. `key: \"{{inputs.username}}\"`"));
    let constant = KEYED.replace("key: \"{{inputs.username}}/{{inputs.ticket}}\"", "key: onboarding");
    let c = catalog(&[("keyed.yaml", &constant)]);
    assert_eq!(messages(&c), ["keyed.yaml:3:6: the run key `onboarding` reads no input"]);
}

#[test]
fn a_deadline_is_above_zero_and_at_most_a_week() {
    for (deadline, want) in [
        ("7d", None),
        ("168h", None),
        ("0s", Some("keyed.yaml:4:11: a deadline of zero ends every run before it starts")),
        ("169h", Some("keyed.yaml:4:11: the deadline is longer than 7 days")),
        ("1m30s", Some("keyed.yaml:4:11: `deadline` must be a duration")),
    ] {
        let c = catalog(&[("keyed.yaml", &KEYED.replace("deadline: 10m", &format!("deadline: {deadline}")))]);
        let got = messages(&c);
        assert_eq!(got.first().map(String::as_str), want, "{deadline}: {got:?}");
        assert_eq!(c.get("t.keyed").map(|f| f.deadline.is_some()), want.is_none().then_some(true), "{deadline}");
    }
}

/// A write through Duo, with `RECONCILE` standing for the node's `reconcile:` lines.
const WRITE: &str = r#"
id: t.write
integrations: { duo_admin: { kind: duo_admin } }
inputs:
  number: { type: string }
nodes:
  - id: create
    kind: rest_call
    integration: duo_admin
    method: POST
    path: /admin/v1/phones
    body: { number: "{{inputs.number}}" }
    extract:
      phone_id: $.response.phone_id
RECONCILE
outputs:
  phone_id: "{{nodes.create.phone_id}}"
"#;

/// `WRITE` with `reconcile` (already indented) in place, compiled: its diagnostics as
/// `line:col: code: message`, and the help of the first.
fn write_with(reconcile: &str) -> (Vec<String>, Option<String>) {
    let c = catalog(&[("w.yaml", &WRITE.replace("RECONCILE\n", reconcile))]);
    let all: Vec<String> = c.diagnostics().map(|d| format!("{}: {}: {}", d.location(), d.code, d.message)).collect();
    (all, c.diagnostics().next().and_then(|d| d.help.clone()))
}

#[test]
fn a_write_without_reconcile_is_a_warning_with_the_way_out() {
    let (all, help) = write_with("");
    assert_eq!(all, ["w.yaml:10:13: write-without-reconcile: `create` writes, and declares no `reconcile:`"]);
    let help = help.expect("a hint");
    assert!(help.contains("add `reconcile:`") && help.contains("`reconcile: { none: <why> }`"), "{help}");
    // Declared another effect, or with a read: nothing to say.
    let idempotent = WRITE.replace("    method: POST\n", "    method: POST\n    effect: idempotent\n");
    let c = catalog(&[("w.yaml", &idempotent.replace("RECONCILE\n", ""))]);
    assert_eq!(messages(&c), Vec::<String>::new());
    let read = "    reconcile:\n      path: /admin/v1/phones\n      query: { number: \"{{inputs.number}}\" }\n      extract:\n        phone_id: { path: \"$.response[*].phone_id\", optional: true }\n      done: \"{{self.phone_id}}\"\n";
    assert_eq!(write_with(read).0, Vec::<String>::new());
    assert_eq!(write_with("    reconcile: { none: no read can tell }\n").0, Vec::<String>::new());
    // A Duo call that only asks is pointed to `effect: read`.
    let preauth = r#"
id: t.preauth
integrations: { duo_auth: { kind: duo_auth } }
nodes:
  - id: preauth
    kind: rest_call
    integration: duo_auth
    method: POST
    path: /auth/v2/preauth
    body: { username: alice }
"#;
    let c = catalog(&[("p.yaml", preauth)]);
    let help: Vec<Option<&str>> = c.diagnostics().map(|d| d.help.as_deref()).collect();
    assert_eq!(help, [Some("`POST /auth/v2/preauth` only asks Duo: say `effect: read`")]);
}

#[test]
fn a_reconcile_read_gives_the_writes_fields_and_nothing_else() {
    let missing = "    reconcile:\n      path: /admin/v1/phones\n      query: { number: \"{{inputs.number}}\" }\n      done: \"{{self.body.response}}\"\n";
    let (all, help) = write_with(missing);
    assert_eq!(all, ["w.yaml:15:5: bad-reconcile: `reconcile:` does not extract `phone_id`, which the write extracts"]);
    assert_eq!(
        help.as_deref(),
        Some(
            "add `phone_id:` under `reconcile.extract:`, a JSONPath into the read's answer (`optional: true` if it may be missing)"
        )
    );
    let extra = "    reconcile:\n      path: /admin/v1/phones\n      extract:\n        phone_id: $.response[0].phone_id\n        phone: $.response[0]\n      done: \"{{self.phone_id}}\"\n";
    assert_eq!(
        write_with(extra).0,
        ["w.yaml:19:9: bad-reconcile: `reconcile.extract` names `phone`, which the write does not extract"]
    );
    // `done` reads the answer as `self`, checked against the node's fields.
    let typo = "    reconcile:\n      path: /admin/v1/phones\n      extract: { phone_id: \"$.response[0].phone_id\" }\n      done: \"{{self.phone_idd}}\"\n";
    let (all, help) = write_with(typo);
    assert_eq!(
        all,
        [
            "w.yaml:18:16: unknown-field: `self.phone_idd` reads `phone_idd`, which `rest_call` node `create` does not produce"
        ]
    );
    assert_eq!(help.as_deref(), Some("did you mean `phone_id`?"));
}

#[test]
fn a_reconcile_is_a_read_or_a_reason_and_only_for_a_write() {
    let cases = [
        (
            "    reconcile:\n      path: /admin/v1/phones\n      extract: { phone_id: \"$.x\" }\n",
            "w.yaml:15:5: bad-reconcile: `reconcile:` is missing `done`",
        ),
        (
            "    reconcile:\n      none: no read can tell\n      path: /admin/v1/phones\n",
            "w.yaml:17:7: bad-reconcile: `reconcile:` has both a read and `none`",
        ),
        ("    reconcile: { none: \" \" }\n", "w.yaml:15:24: bad-reconcile: `reconcile: { none }` does not say why"),
        (
            "    reconcile:\n      path: /auth/v2/auth_status\n      extract: { phone_id: \"$.x\" }\n      done: true\n",
            "w.yaml:9:18: wrong-kind: `/auth/v2/auth_status` is a Duo Auth API path, but slot `duo_admin` is a `duo_admin` integration",
        ),
        (
            "    reconcile:\n      method: POST\n      path: /admin/v1/phones\n      done: true\n",
            "w.yaml:16:15: unknown-value: `method` cannot be `POST`",
        ),
    ];
    for (reconcile, want) in cases {
        let (all, _) = write_with(reconcile);
        assert_eq!(all.first().map(String::as_str), Some(want), "{reconcile}{all:#?}");
    }
    let read = WRITE.replace("    method: POST\n", "    method: POST\n    effect: idempotent\n");
    let c = catalog(&[("w.yaml", &read.replace("RECONCILE\n", "    reconcile: { none: why }\n"))]);
    assert_eq!(messages(&c), ["w.yaml:16:5: `reconcile:` on a call whose effect is `idempotent`"]);
    let help: Vec<Option<&str>> = c.diagnostics().map(|d| d.help.as_deref()).collect();
    assert_eq!(
        help,
        [Some("a resumed run sends a read or an idempotent call again, without asking: remove `reconcile:`")]
    );
}
