//! A write's `reconcile:` read, over real HTTP against the simulator on 127.0.0.1, with the
//! catalog's own flows: for every catalog write that declares a read, the read says "not done"
//! before the write and "done" after it, giving the node the write's result fields; a write
//! whose answer is lost (the simulator acts, then drops the connection) is found done, so the
//! run goes on as if the answer had come and nothing is sent twice; a write that declares
//! `none` answers `Undeclared`.
//!
//! The engine calls `NodeExec::reconcile` only when it resumes a run. Here a `probe` node kind
//! (a `rest_call` in every field) drives one node's write and its read in one run: read, write,
//! read again, and returns the write's result with the two verdicts beside it.

use std::sync::Arc;

use flowcat_engine::Catalog;
use flowcat_engine::diag::Source;
use flowcat_engine::kind::{CompileCx, Compiled, NodeExec, NodeKind, Reconciled, Registry};
use flowcat_engine::run::{BoxFuture, NodeCx, NodeError, NodeOutput, NodeRecord, RunRecord, RunStatus};
use flowcat_engine::shape::Field;
use flowcat_nodes::embed::Flowcat;
use flowcat_nodes::kinds::switch::Switch;
use flowcat_nodes::kinds::{
    fail::Fail, for_each::ForEach, rest_call::RestCall, rest_call::RestCallExec, set::Set, subflow::Subflow,
    wait_for::WaitFor,
};
use flowcat_sim::{Faults, Options, Seed, Sim};
use serde_json::{Value, json};

/// `kind: probe`: a `rest_call` whose run reconciles, writes, and reconciles again.
#[derive(Debug)]
struct Probe;

impl NodeKind for Probe {
    fn name(&self) -> &'static str {
        "probe"
    }

    fn summary(&self) -> &'static str {
        "A REST call that reconciles before and after its write."
    }

    fn fields(&self) -> &'static [Field] {
        RestCall.fields()
    }

    fn compile(&self, cx: &mut CompileCx<'_>) -> Option<Compiled> {
        let (exec, fields, _) = RestCall.compile_exec(cx)?;
        Some(Compiled::new(Box::new(ProbeExec(exec)), fields))
    }
}

#[derive(Debug)]
struct ProbeExec(RestCallExec);

fn verdict(r: &Reconciled) -> Value {
    match r {
        Reconciled::Done(out) => json!({ "done": out.value }),
        Reconciled::NotDone => json!("not_done"),
        Reconciled::Undeclared => json!("undeclared"),
        Reconciled::Failed(e) => json!({ "failed": e.code }),
    }
}

impl NodeExec for ProbeExec {
    fn label(&self) -> String {
        self.0.label()
    }

    fn describe(&self) -> Value {
        self.0.describe()
    }

    fn run<'a>(&'a self, cx: NodeCx<'a>) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move {
            let before = self.0.reconcile_read(&cx).await;
            let written = self.0.execute(&cx).await;
            let after = self.0.reconcile_read(&cx).await;
            let sent = written.as_ref().map_or_else(|e| json!(e.code), |_| json!("answered"));
            let probe = json!({ "before": verdict(&before), "sent": sent, "after": verdict(&after) });
            let mut value = match (written, after) {
                (Ok(out), _) => out.value,
                // The answer was lost: what a resumed run does, the read decides.
                (Err(e), Reconciled::Done(out)) if e.data.as_ref().is_some_and(|d| d["outcome_unknown"] == true) => {
                    out.value
                }
                (Err(e), _) => return Err(e),
            };
            value["probe"] = probe;
            Ok(NodeOutput::value(value))
        })
    }
}

static KINDS: &[&dyn NodeKind] = &[&RestCall, &Subflow, &ForEach, &Switch, &WaitFor, &Set, &Fail, &Probe];
static REGISTRY: Registry = Registry { kinds: KINDS, integration_kinds: flowcat_nodes::INTEGRATION_KINDS };

/// Every catalog flow and example, with node `node` of `file` made a probe.
fn catalog(file: &str, node: &str) -> Catalog {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut sources = Vec::new();
    for dir in ["flows/duo", "examples"] {
        for entry in std::fs::read_dir(root.join(dir)).expect("a catalog folder") {
            let path = entry.expect("an entry").path();
            // `*.test.yaml` files hold `flowcat test` cases, not flows.
            if path.extension().is_none_or(|e| e != "yaml") || path.to_string_lossy().ends_with(".test.yaml") {
                continue;
            }
            let name = format!("{dir}/{}", path.file_name().and_then(|n| n.to_str()).expect("a name"));
            let mut text = std::fs::read_to_string(&path).expect("a flow");
            if name == file {
                let (from, to) =
                    (format!("  - id: {node}\n    kind: rest_call\n"), format!("  - id: {node}\n    kind: probe\n"));
                assert!(text.contains(&from), "{file} has no rest_call `{node}`");
                text = text.replace(&from, &to);
            }
            sources.push(Arc::new(Source { path: name, text }));
        }
    }
    let catalog = Catalog::load(sources, &REGISTRY);
    let errors: Vec<String> = catalog.diagnostics().filter(|d| d.is_error()).map(|d| d.render(false)).collect();
    assert!(errors.is_empty(), "{errors:?}");
    catalog
}

async fn sim() -> Sim {
    let options = Options { time_scale: 100.0, ..Options::default() };
    Sim::start_seed("127.0.0.1:0".parse().expect("addr"), &Seed::demo(), options).await.expect("sim")
}

async fn run(sim: &Sim, catalog: Catalog, flow: &str, inputs: Value) -> RunRecord {
    let text = flowcat_sim::integrations::render(sim.addr(), &sim.state().integrations);
    let file = flowcat_nodes::integrations::parse("sim.yaml".as_ref(), &text, &|_| None).expect("integrations");
    Flowcat::new(catalog, file).run(flow, inputs).await.expect("the run starts")
}

/// A node by path: `phone/create` is `create` inside the subflow node `phone`.
fn node<'a>(record: &'a RunRecord, path: &str) -> &'a NodeRecord {
    let mut record = record;
    let mut parts = path.split('/').peekable();
    loop {
        let id = parts.next().expect("a path");
        let found = record.node(id).unwrap_or_else(|| panic!("no node `{id}`"));
        if parts.peek().is_none() {
            return found;
        }
        record = found.subflow.as_ref().expect("a subflow");
    }
}

fn changes(sim: &Sim) -> Vec<String> {
    sim.audit().into_iter().map(|e| e.change).collect()
}

/// Runs `flow` with `node` of `file` probed; the node's result (with `probe`) and the run.
async fn probe(file: &str, node_path: &str, flow: &str, inputs: Value, faults: &[&str]) -> (Value, RunRecord, Sim) {
    let sim = sim().await;
    let mut set = Faults::default();
    for spec in faults {
        set.apply_spec(spec).expect("a fault");
    }
    sim.set_faults(set).expect("faults");
    let id = node_path.rsplit('/').next().expect("an id");
    let record = run(&sim, catalog(file, id), flow, inputs).await;
    assert_eq!(record.status, RunStatus::Succeeded, "{:?}", record.error);
    let result = node(&record, node_path).result.as_deref().cloned().expect("the probe ran");
    (result, record, sim)
}

/// The read said "not done" before the write and "done" after it, with the write's fields.
fn not_done_then_done(result: &Value, fields: &[&str]) {
    let probe = &result["probe"];
    assert_eq!((&probe["before"], &probe["sent"]), (&json!("not_done"), &json!("answered")), "{probe:#}");
    let done = &probe["after"]["done"];
    assert_eq!(done["status"], 200, "{probe:#}");
    for field in fields {
        assert!(!result[field].is_null(), "the write gave `{field}`: {result:#}");
        assert_eq!(done[field], result[field], "`{field}`, read back as the write gave it");
    }
}

#[tokio::test]
async fn a_created_phone_is_found_by_its_number() {
    let inputs = json!({"username": "grace", "number": "+15555550177", "type": "mobile", "platform": "google android"});
    let (result, _, sim) =
        probe("flows/duo/associate-phone.yaml", "create", "duo.admin.associate_phone", inputs, &[]).await;
    not_done_then_done(&result, &["phone_id"]);
    assert_eq!(changes(&sim), ["phone.create", "phone.associate"]);
    sim.shutdown().await;
}

#[tokio::test]
async fn an_association_is_found_among_the_users_phones() {
    let inputs = json!({"username": "grace", "number": "+15555550199"});
    let (result, _, sim) =
        probe("flows/duo/associate-phone.yaml", "associate", "duo.admin.associate_phone", inputs, &[]).await;
    not_done_then_done(&result, &[]);
    assert_eq!(changes(&sim), ["phone.associate"]);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_disabled_user_is_read_back_disabled() {
    let inputs = json!({"username": "grace"});
    let (result, record, sim) =
        probe("examples/offboard-user.yaml", "disable", "examples.offboard_user", inputs, &[]).await;
    not_done_then_done(&result, &[]);
    assert_eq!(record.outputs["outcome"], "disabled");
    assert_eq!(changes(&sim), ["user.update"]);
    sim.shutdown().await;
}

#[tokio::test]
async fn an_unlocked_user_is_read_back_active() {
    let inputs = json!({"username": "ivan", "verify": false});
    let (result, record, sim) = probe("examples/unlock-user.yaml", "unlock", "examples.unlock_user", inputs, &[]).await;
    not_done_then_done(&result, &[]);
    assert_eq!(record.outputs["outcome"], "unlocked");
    assert_eq!(changes(&sim), ["user.update"]);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_write_whose_answer_was_lost_is_found_done_and_not_sent_again() {
    let inputs = json!({"username": "grace", "number": "+15555550177", "type": "mobile", "platform": "google android"});
    let (clean, clean_run, sim) =
        probe("flows/duo/associate-phone.yaml", "create", "duo.admin.associate_phone", inputs.clone(), &[]).await;
    sim.shutdown().await;
    // Duo creates the phone, and the connection breaks before its answer arrives.
    let (result, record, sim) = probe(
        "flows/duo/associate-phone.yaml",
        "create",
        "duo.admin.associate_phone",
        inputs,
        &["route=POST /admin/v1/phones,kind=drop,count=1"],
    )
    .await;
    assert_eq!(result["probe"]["before"], "not_done");
    assert_eq!(result["probe"]["sent"], "connection_lost", "{result:#}");
    assert_eq!(result["phone_id"], result["probe"]["after"]["done"]["phone_id"]);
    assert_eq!(result["phone_id"], clean["phone_id"], "the phone the write created, found by its number");
    let create = node(&record, "create");
    assert_eq!(create.error, None);
    assert_eq!(record.outputs, clean_run.outputs, "as if the answer had come");
    assert_eq!(changes(&sim), ["phone.create", "phone.associate"], "created once, then associated");
    assert_eq!(sim.stats()["POST /admin/v1/phones"], 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_write_that_no_read_can_settle_is_undeclared() {
    let (result, _, sim) =
        probe("flows/duo/send-push.yaml", "push", "duo.auth.send_push", json!({"username": "alice"}), &[]).await;
    assert_eq!(result["probe"]["before"], "undeclared");
    assert_eq!(result["probe"]["after"], "undeclared");
    assert!(result["txid"].is_string(), "{result:#}");
    sim.shutdown().await;
}

/// The node `id` of catalog flow `flow`, compiled with the real node kinds.
fn exec_of<'c>(catalog: &'c Catalog, flow: &str, id: &str) -> &'c dyn NodeExec {
    let flow = catalog.get(flow).expect("the flow compiles");
    let plan = &flow.plan;
    &*plan.nodes[plan.index(id).expect("the node")].compiled.exec
}

#[test]
fn a_write_in_doubt_says_what_was_sent_and_what_to_check_in_duo() {
    let catalog = catalog("none", "none");
    let sms = exec_of(&catalog, "duo.admin.send_activation", "sms");
    let intent = json!({
        "method": "POST",
        "url": "https://api-test.duosecurity.com/admin/v1/phones/DPAAAAAAAAAAAAAAAAAA/send_sms_activation",
        "headers": { "content-type": "application/json" },
        "body": { "install": "1" },
    });
    assert_eq!(
        sms.needs_attention(&intent),
        "`POST /admin/v1/phones/DPAAAAAAAAAAAAAAAAAA/send_sms_activation` was journaled as about to be sent to \
         api-test.duosecurity.com when the run stopped, and no answer was recorded: whether it took effect is unknown, \
         and flowcat cannot find out (no read can tell: Duo keeps \
         no record of an activation SMS that a read could find: a phone that is not activated looks the same before and \
         after. Sent again, it sends a second SMS whose link replaces the first one's.).\n\
         Request: POST /admin/v1/phones/DPAAAAAAAAAAAAAAAAAA/send_sms_activation with install=1\n\
         Check: Duo keeps no record of an activation SMS in the Admin Panel: ask the user of the phone \
         DPAAAAAAAAAAAAAAAAAA (Duo Admin Panel → Phones → DPAAAAAAAAAAAAAAAAAA) whether an activation SMS arrived. A \
         new one makes the link of the first stop working.\n\
         Then resume the run, with `--resend` if it did not happen, or abandon it."
    );
    // A v2 form body, a push by username.
    let push = exec_of(&catalog, "duo.auth.send_push", "push");
    let intent = json!({
        "method": "POST",
        "url": "https://api-test.duosecurity.com/auth/v2/auth",
        "body": "async=1&device=auto&factor=push&username=jdoe",
    });
    let text = push.needs_attention(&intent);
    assert!(
        text.contains("Request: POST /auth/v2/auth with async=1, device=auto, factor=push, username=jdoe\n"),
        "{text}"
    );
    assert!(
        text.contains("Check: Duo Admin Panel → Reports → Authentication Log: look for a Duo Push to jdoe"),
        "{text}"
    );
    // A write whose read failed: where to look for the phone.
    let create = exec_of(&catalog, "duo.admin.associate_phone", "create");
    let intent = json!({
        "method": "POST",
        "url": "https://api-test.duosecurity.com/admin/v1/phones",
        "body": { "number": "+15555550142", "type": "mobile" },
    });
    let text = create.needs_attention(&intent);
    assert!(text.contains("(its `reconcile:` read did not answer)"), "{text}");
    assert!(text.contains("Check: Duo Admin Panel → Phones: search for +15555550142."), "{text}");
}
