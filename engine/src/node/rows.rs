//! A run's record as a journal stores it: each node's result written once.
//!
//! A journal keeps a node's result in the node's own entry (its [`Finished`], under its path).
//! The run's final record, and a subflow node's own entry (which nests the subflow's run), would
//! repeat those results; written through [`RecordRows`] and [`FinishedRows`], a node that has an
//! entry is written instead as a reference to it, `{"$row": "<path>"}`. The reference also carries
//! what the entry was written without: the node's `detail` when its entry has none (a read's
//! entry has its result only), and a list node's `items` (never in its entry). [`resolve_record`]
//! and [`resolve_finished`] put the entries back, and the record reads exactly as the run made
//! it. A node whose id is a path (the flat record of a run ended without running, see
//! `hall::abandon`) is written in full.
//!
//! A node's `detail` is written in its lean form when it has one ([`Detail::typed_with_lean`]):
//! a part of it that repeats some of the node's result (a REST call's last answer is the result's
//! `body`, `headers` and `status`) is named, `{"$result": {"at": "<pointer>", "fields": [...]}}`
//! at the detail's top level, and put back from the result when the entry is read.
//!
//! The fields are written in the order and with the omissions of [`RunRecord`]'s and
//! [`NodeRecord`]'s derived forms; with no entries and no lean details the output is byte for
//! byte theirs (a test checks it).
//!
//! [`Detail::typed_with_lean`]: super::record::Detail::typed_with_lean

use std::collections::HashMap;

use serde::ser::{SerializeMap, SerializeSeq, SerializeStruct};
use serde::{Serialize, Serializer};
use serde_json::Value;

use super::log::Finished;
use super::record::{NodeRecord, RunRecord};

/// The key of a reference to a node's entry.
pub const ROW: &str = "$row";

/// The key, in a stored detail, of the part of it that is the node's result's (a lean detail).
pub const RESULT: &str = "$result";

/// Which nodes have an entry in the journal, by path (`phone/create`): `Some(true)` when the entry
/// holds the node's `detail`, `Some(false)` when it was written without it, `None` when there is
/// no entry.
pub type Rows<'a> = &'a dyn Fn(&str) -> Option<bool>;

/// A run's record with the nodes that have an entry written as references. `prefix` is the path
/// of the node whose subflow this record is (empty for the run itself).
pub struct RecordRows<'a> {
    pub record: &'a RunRecord,
    pub prefix: &'a str,
    pub rows: Rows<'a>,
}

/// A node's entry with the nodes of its subflow that have an entry written as references.
pub struct FinishedRows<'a> {
    pub finished: &'a Finished,
    /// The node's own path.
    pub path: &'a str,
    pub rows: Rows<'a>,
}

impl std::fmt::Debug for RecordRows<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordRows")
            .field("flow", &self.record.flow)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for FinishedRows<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FinishedRows").field("path", &self.path).finish_non_exhaustive()
    }
}

fn child(prefix: &str, id: &str) -> String {
    if prefix.is_empty() { id.to_owned() } else { format!("{prefix}/{id}") }
}

impl Serialize for RecordRows<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.record;
        let mut m = s.serialize_struct("RunRecord", 10)?;
        m.serialize_field("flow", &r.flow)?;
        match &r.id {
            Some(id) => m.serialize_field("id", id)?,
            None => m.skip_field("id")?,
        }
        m.serialize_field("status", &r.status)?;
        match &r.error {
            Some(e) => m.serialize_field("error", e)?,
            None => m.skip_field("error")?,
        }
        m.serialize_field("inputs", &r.inputs)?;
        m.serialize_field("vars", &r.vars)?;
        m.serialize_field("outputs", &r.outputs)?;
        m.serialize_field("started_at", &r.started_at)?;
        m.serialize_field("ended_at", &r.ended_at)?;
        m.serialize_field("nodes", &NodesRows { nodes: &r.nodes, prefix: self.prefix, rows: self.rows })?;
        m.end()
    }
}

struct NodesRows<'a> {
    nodes: &'a [NodeRecord],
    prefix: &'a str,
    rows: Rows<'a>,
}

impl Serialize for NodesRows<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.nodes.len()))?;
        for node in self.nodes {
            let path = child(self.prefix, &node.id);
            match (self.rows)(&path) {
                Some(has_detail) if !node.id.contains('/') => {
                    let detail = if has_detail { None } else { node.detail.as_ref() };
                    seq.serialize_element(&Reference { path: &path, detail, items: &node.items })?
                }
                _ => seq.serialize_element(&NodeRows { node, path: &path, rows: self.rows })?,
            }
        }
        seq.end()
    }
}

/// A node that has an entry, with what the entry lacks.
struct Reference<'a> {
    path: &'a str,
    detail: Option<&'a super::record::Detail>,
    items: &'a [super::record::ItemRecord],
}

impl Serialize for Reference<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let len = 1 + usize::from(self.detail.is_some()) + usize::from(!self.items.is_empty());
        let mut m = s.serialize_map(Some(len))?;
        m.serialize_entry(ROW, self.path)?;
        if let Some(detail) = self.detail {
            m.serialize_entry("detail", &detail.journaled())?;
        }
        if !self.items.is_empty() {
            m.serialize_entry("items", self.items)?;
        }
        m.end()
    }
}

struct NodeRows<'a> {
    node: &'a NodeRecord,
    path: &'a str,
    rows: Rows<'a>,
}

impl Serialize for NodeRows<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let n = self.node;
        let mut m = s.serialize_struct("NodeRecord", 13)?;
        m.serialize_field("id", &n.id)?;
        m.serialize_field("kind", &n.kind)?;
        m.serialize_field("status", &n.status)?;
        macro_rules! optional {
            ($name:literal, $field:expr) => {
                match &$field {
                    Some(v) => m.serialize_field($name, v)?,
                    None => m.skip_field($name)?,
                }
            };
        }
        optional!("reason", n.reason);
        optional!("started_at", n.started_at);
        optional!("ended_at", n.ended_at);
        optional!("duration_ms", n.duration_ms);
        m.serialize_field("attempts", &n.attempts)?;
        optional!("result", n.result);
        optional!("error", n.error);
        match &n.detail {
            Some(detail) => m.serialize_field("detail", &detail.journaled())?,
            None => m.skip_field("detail")?,
        }
        match &n.subflow {
            Some(sub) => {
                m.serialize_field("subflow", &RecordRows { record: sub, prefix: self.path, rows: self.rows })?
            }
            None => m.skip_field("subflow")?,
        }
        if n.items.is_empty() {
            m.skip_field("items")?;
        } else {
            m.serialize_field("items", &n.items)?;
        }
        m.end()
    }
}

impl Serialize for FinishedRows<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let f = self.finished;
        let mut m = s.serialize_struct("Finished", 2)?;
        m.serialize_field("record", &NodeRows { node: &f.record, path: self.path, rows: self.rows })?;
        match &f.branch {
            Some(b) => m.serialize_field("branch", b)?,
            None => m.skip_field("branch")?,
        }
        m.end()
    }
}

/// Why a stored record's references could not be put back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unresolved {
    /// No entry at this path.
    Missing(String),
    /// A reference that is not a node's path below the record that holds it.
    Misplaced(String),
    /// A lean detail that names a part its node's result cannot give back (the node's path).
    Detail(String),
}

impl std::fmt::Display for Unresolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unresolved::Missing(p) => write!(f, "it names the entry of node `{p}`, which the journal does not hold"),
            Unresolved::Misplaced(p) => write!(f, "it names the entry `{p}` where no such node can be"),
            Unresolved::Detail(p) => {
                write!(f, "the detail of node `{p}` names a part of its result that the result cannot give back")
            }
        }
    }
}

/// Puts the entries back into a run's stored record. `entries` are the run's node entries (each
/// a stored [`Finished`], as JSON values) by path.
pub fn resolve_record(record: &mut Value, entries: &HashMap<String, Value>) -> Result<(), Unresolved> {
    resolve_run(record, "", entries)
}

/// Puts the entries back into the stored entry (a [`Finished`]) of the node at `path`.
pub fn resolve_finished(finished: &mut Value, path: &str, entries: &HashMap<String, Value>) -> Result<(), Unresolved> {
    match finished.get_mut("record") {
        Some(node) => resolve_node(node, path, entries),
        None => Ok(()),
    }
}

/// A run's record (the run's, or a subflow's under the node at `prefix`).
fn resolve_run(record: &mut Value, prefix: &str, entries: &HashMap<String, Value>) -> Result<(), Unresolved> {
    let Some(Value::Array(nodes)) = record.get_mut("nodes") else { return Ok(()) };
    for node in nodes {
        let Some(reference) = node.get(ROW) else {
            let path = match node.get("id").and_then(Value::as_str) {
                Some(id) => child(prefix, id),
                None => continue,
            };
            resolve_node(node, &path, entries)?;
            continue;
        };
        let path = reference.as_str().unwrap_or_default().to_owned();
        // A reference names a node of this very record: the path is the record's own, plus an
        // id. That also bounds the resolving: every step goes one level deeper.
        let id =
            path.strip_prefix(prefix).map(|rest| if prefix.is_empty() { rest } else { rest.trim_start_matches('/') });
        let fits = !path.is_empty()
            && id.is_some_and(|id| !id.is_empty() && !id.contains('/'))
            && (prefix.is_empty() || path.as_bytes().get(prefix.len()) == Some(&b'/'));
        if !fits {
            return Err(Unresolved::Misplaced(path));
        }
        let Some(mut stored) = entries.get(&path).and_then(|f| f.get("record")).cloned() else {
            return Err(Unresolved::Missing(path));
        };
        if let Value::Object(fields) = &mut stored {
            for carried in ["detail", "items"] {
                if let Some(value) = node.get_mut(carried).map(Value::take) {
                    fields.insert(carried.into(), value);
                }
            }
        }
        resolve_node(&mut stored, &path, entries)?;
        *node = stored;
    }
    Ok(())
}

/// A node's record at `path`: its lean detail, and its subflow's references.
fn resolve_node(node: &mut Value, path: &str, entries: &HashMap<String, Value>) -> Result<(), Unresolved> {
    restore_detail(node).ok_or_else(|| Unresolved::Detail(path.to_owned()))?;
    match node.get_mut("subflow") {
        Some(sub) if sub.is_object() => resolve_run(sub, path, entries),
        _ => Ok(()),
    }
}

/// Puts the part of a lean detail that its result gives back in place; `None` when the detail
/// names it in a way the node cannot answer (no such field, or no free place for it).
fn restore_detail(node: &mut Value) -> Option<()> {
    let Value::Object(fields) = node else { return Some(()) };
    let Some(Value::Object(detail)) = fields.get_mut("detail") else { return Some(()) };
    let Some(named) = detail.remove(RESULT) else { return Some(()) };
    let result = fields.get("result")?;
    let mut part = serde_json::Map::new();
    for field in named.get("fields")?.as_array()? {
        let field = field.as_str()?;
        part.insert(field.to_owned(), result.get(field)?.clone());
    }
    // A key, not yet there, of an object inside the detail.
    let (parent, key) = named.get("at")?.as_str()?.rsplit_once('/')?;
    if key.is_empty() || key.contains('~') {
        return None;
    }
    let Value::Object(place) = fields.get_mut("detail")?.pointer_mut(parent)? else { return None };
    if place.contains_key(key) {
        return None;
    }
    place.insert(key.to_owned(), Value::Object(part));
    Some(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::node::record::{Detail, ItemRecord, NodeError, NodeStatus, RunFailure, RunStatus};

    fn node(id: &str, subflow: Option<RunRecord>) -> NodeRecord {
        NodeRecord {
            id: id.into(),
            kind: if subflow.is_some() { "subflow" } else { "rest_call" }.into(),
            status: NodeStatus::Succeeded,
            reason: None,
            started_at: Some(10),
            ended_at: Some(12),
            duration_ms: Some(2.5),
            attempts: 1,
            result: Some(Arc::new(json!({ "id": id, "n": [1, 2] }))),
            error: None,
            detail: Some(Detail::value(json!({ "attempts": [{ "status": 200, "url": format!("/x/{id}") }] }))),
            subflow: subflow.map(Box::new),
            items: Vec::new(),
        }
    }

    fn run(flow: &str, nodes: Vec<NodeRecord>) -> RunRecord {
        RunRecord {
            flow: flow.into(),
            id: Some("r1".into()),
            status: RunStatus::Succeeded,
            error: None,
            inputs: json!({ "username": "a" }).as_object().cloned().unwrap_or_default(),
            vars: Default::default(),
            outputs: json!({ "ok": true }).as_object().cloned().unwrap_or_default(),
            started_at: 1,
            ended_at: 2,
            nodes,
        }
    }

    /// Every field and every omission: a skipped node, a failed one, a subflow.
    fn sample() -> RunRecord {
        let mut skipped = node("skip", None);
        skipped.status = NodeStatus::Skipped;
        skipped.reason = Some("`when` is false".into());
        (skipped.started_at, skipped.ended_at, skipped.duration_ms, skipped.result, skipped.detail) =
            (None, None, None, None, None);
        skipped.attempts = 0;
        let mut failed = node("bad", None);
        failed.status = NodeStatus::Failed;
        failed.error = Some(NodeError::new("http_500", "boom").with_data(json!({ "x": 1 })));
        let inner = run("inner", vec![node("lookup", None), skipped.clone()]);
        let mut list = node("each", None);
        list.kind = "for_each".into();
        list.items = vec![ItemRecord { index: 0, record: run("item", vec![node("remove", None)]) }];
        let mut outer = run("outer", vec![node("user", Some(inner)), skipped, failed, node("create", None), list]);
        outer.id = None;
        outer.error = Some(RunFailure { node: "bad".into(), code: "http_500".into(), message: "boom".into() });
        outer
    }

    #[test]
    fn without_entries_a_record_is_written_as_its_derived_form() {
        let record = sample();
        let none = |_: &str| None;
        let ours = serde_json::to_string(&RecordRows { record: &record, prefix: "", rows: &none }).unwrap();
        assert_eq!(ours, serde_json::to_string(&record).unwrap());
        let pretty = serde_json::to_string_pretty(&RecordRows { record: &record, prefix: "", rows: &none }).unwrap();
        assert_eq!(pretty, serde_json::to_string_pretty(&record).unwrap());
        let finished = Finished { record: record.nodes[0].clone(), branch: Some("yes".into()) };
        let ours = serde_json::to_string(&FinishedRows { finished: &finished, path: "user", rows: &none }).unwrap();
        assert_eq!(ours, serde_json::to_string(&finished).unwrap());
    }

    /// The entries a journal would hold of `sample()`: the read `user/lookup` without its
    /// detail, the others with it; `user` (a subflow) referring to its child.
    fn entries(record: &RunRecord, rows: Rows<'_>) -> HashMap<String, Value> {
        let mut out = HashMap::new();
        let user = &record.nodes[0];
        let mut lookup = user.subflow.as_ref().unwrap().nodes[0].clone();
        lookup.detail = None;
        for (path, finished) in [
            ("user/lookup", Finished { record: lookup, branch: None }),
            ("user", Finished { record: user.clone(), branch: None }),
            ("create", Finished { record: record.nodes[3].clone(), branch: Some("b".into()) }),
            ("each", Finished { record: NodeRecord { items: Vec::new(), ..record.nodes[4].clone() }, branch: None }),
        ] {
            let text = serde_json::to_string(&FinishedRows { finished: &finished, path, rows }).unwrap();
            out.insert(path.to_owned(), serde_json::from_str(&text).unwrap());
        }
        out
    }

    fn has(path: &str) -> Option<bool> {
        match path {
            "user/lookup" => Some(false),
            "user" | "create" | "each" => Some(true),
            _ => None,
        }
    }

    #[test]
    fn each_result_is_written_once_and_read_back_whole() {
        let record = sample();
        let entries = entries(&record, &has);
        let stored = serde_json::to_string(&RecordRows { record: &record, prefix: "", rows: &has }).unwrap();
        let value: Value = serde_json::from_str(&stored).unwrap();
        // The run's record names its entries; the skipped and failed nodes, which have none,
        // are written in full.
        assert_eq!(value["nodes"][0], json!({ ROW: "user" }));
        assert_eq!(value["nodes"][1]["status"], "skipped");
        assert_eq!(value["nodes"][2]["error"]["code"], "http_500");
        assert_eq!(value["nodes"][3], json!({ ROW: "create" }));
        // A list node's items are never in its entry: its reference carries them.
        assert_eq!(value["nodes"][4][ROW], "each");
        assert_eq!(value["nodes"][4]["items"][0]["record"]["flow"], "item");
        // The subflow's entry names its child's, with the detail that entry lacks.
        let user_lookup = &entries["user"]["record"]["subflow"]["nodes"][0];
        assert_eq!(user_lookup[ROW], "user/lookup");
        assert_eq!(user_lookup["detail"]["attempts"][0]["url"], "/x/lookup");
        // No result is written twice.
        let all: String = entries.values().map(|v| v.to_string()).chain([stored.clone()]).collect();
        assert_eq!(all.matches(r#""url":"/x/lookup""#).count(), 1, "{all}");
        assert_eq!(all.matches(r#""url":"/x/create""#).count(), 1, "{all}");

        let mut back = value;
        resolve_record(&mut back, &entries).unwrap();
        assert_eq!(back, serde_json::to_value(&record).unwrap());
        let back: RunRecord = serde_json::from_value(back).unwrap();
        assert_eq!(back, record);

        let mut user = entries["user"].clone();
        resolve_finished(&mut user, "user", &entries).unwrap();
        let user: Finished = serde_json::from_value(user).unwrap();
        assert_eq!(user.record, record.nodes[0]);
    }

    /// A run ended without running (`hall::abandon`) lists its journaled nodes flat, their ids
    /// being their paths: they are written in full, not as references an entry cannot match.
    #[test]
    fn a_flat_record_of_paths_is_written_in_full() {
        let record = sample();
        let mut lookup = record.nodes[0].subflow.as_ref().unwrap().nodes[0].clone();
        lookup.id = "user/lookup".into();
        let flat = run("outer", vec![lookup]);
        let stored = serde_json::to_value(RecordRows { record: &flat, prefix: "", rows: &has }).unwrap();
        assert_eq!(stored, serde_json::to_value(&flat).unwrap());
        let mut back = stored;
        resolve_record(&mut back, &entries(&record, &has)).unwrap();
        assert_eq!(serde_json::from_value::<RunRecord>(back).unwrap(), flat);
    }

    #[test]
    fn a_missing_or_misplaced_entry_is_an_error_not_a_loop() {
        let record = sample();
        let mut entries = entries(&record, &has);
        let stored = serde_json::to_value(RecordRows { record: &record, prefix: "", rows: &has }).unwrap();
        let mut without = entries.clone();
        without.remove("user/lookup");
        let mut value = stored.clone();
        assert_eq!(resolve_record(&mut value, &without), Err(Unresolved::Missing("user/lookup".into())));
        // An entry that names itself, or a node outside its own subflow.
        for bad in ["user", "create", "user/lookup/x", "userx/lookup", ""] {
            entries.get_mut("user").unwrap()["record"]["subflow"]["nodes"][0] = json!({ ROW: bad });
            let mut value = stored.clone();
            assert_eq!(resolve_record(&mut value, &entries), Err(Unresolved::Misplaced(bad.into())), "{bad}");
        }
    }

    /// A call's node whose last answer is its result's: the detail's lean form names it.
    fn call(id: &str) -> NodeRecord {
        let body = json!({ "stat": "OK", "response": [{ "user_id": "DU1", "username": id }] });
        let headers = json!({ "content-type": "application/json" });
        let request = json!({ "method": "GET", "url": format!("/x/{id}") });
        let full = json!({ "attempts": [
            { "request": request, "response": { "body": { "stat": "FAIL" }, "headers": {}, "status": 503 } },
            { "request": request, "response": { "body": body, "headers": headers, "status": 200 } },
        ] });
        let lean = json!({
            RESULT: { "at": "/attempts/1/response", "fields": ["body", "headers", "status"] },
            "attempts": [
                { "request": request, "response": { "body": { "stat": "FAIL" }, "headers": {}, "status": 503 } },
                { "request": request },
            ],
        });
        let mut record = node(id, None);
        record.result = Some(Arc::new(json!({ "body": body, "headers": headers, "status": 200, "user_id": "DU1" })));
        record.detail = Some(Detail::typed_with_lean(full, lean));
        record
    }

    #[test]
    fn a_lean_detail_is_stored_without_what_its_result_repeats_and_read_back_whole() {
        // `lookup` is a read (its entry has no detail: the subflow's entry carries it), `create`
        // a write (its own entry has its detail).
        let record = run("outer", vec![node("user", Some(run("inner", vec![call("lookup")]))), call("create")]);
        let has = |path: &str| match path {
            "user/lookup" => Some(false),
            "user" | "create" => Some(true),
            _ => None,
        };
        let mut lookup = record.nodes[0].subflow.as_ref().unwrap().nodes[0].clone();
        lookup.detail = None;
        let mut entries = HashMap::new();
        for (path, node) in [("user/lookup", &lookup), ("user", &record.nodes[0]), ("create", &record.nodes[1])] {
            let finished = Finished { record: node.clone(), branch: None };
            let text = serde_json::to_string(&FinishedRows { finished: &finished, path, rows: &has }).unwrap();
            entries.insert(path.to_owned(), serde_json::from_str::<Value>(&text).unwrap());
        }
        let stored = serde_json::to_value(RecordRows { record: &record, prefix: "", rows: &has }).unwrap();
        // Each answer's body is stored once, in its node's result; the failed attempt's answer,
        // which no result repeats, stays in the detail.
        let all: String = entries.values().map(|v| v.to_string()).chain([stored.to_string()]).collect();
        assert_eq!(all.matches(r#""username":"lookup""#).count(), 1, "{all}");
        assert_eq!(all.matches(r#""username":"create""#).count(), 1, "{all}");
        assert_eq!(all.matches(r#""stat":"FAIL""#).count(), 2, "{all}");
        assert_eq!(entries["create"]["record"]["detail"][RESULT]["at"], "/attempts/1/response");
        // Read back, every detail is whole again, as the run made it.
        let mut back = stored;
        resolve_record(&mut back, &entries).unwrap();
        assert_eq!(serde_json::from_value::<RunRecord>(back.clone()).unwrap(), record);
        assert!(!back.to_string().contains(RESULT), "{back}");
        let mut create = entries["create"].clone();
        resolve_finished(&mut create, "create", &entries).unwrap();
        assert_eq!(serde_json::from_value::<Finished>(create).unwrap().record, record.nodes[1]);
        // The record answered to callers (the derived form) is the whole detail, never the lean.
        assert_eq!(
            serde_json::to_value(&record).unwrap()["nodes"][1]["detail"]["attempts"][1]["response"]["status"],
            200
        );
    }

    #[test]
    fn a_lean_detail_that_its_result_cannot_fill_is_an_error() {
        let finished = Finished { record: call("create"), branch: None };
        let none = |_: &str| None;
        let text = serde_json::to_string(&FinishedRows { finished: &finished, path: "create", rows: &none }).unwrap();
        let stored: Value = serde_json::from_str(&text).unwrap();
        let entries = HashMap::new();
        let broken: [(&str, Value); 5] = [
            ("/record/result/body", Value::Null),
            ("/record/result", json!("text")),
            ("/record/detail/$result/at", json!("/attempts/1/request")),
            ("/record/detail/$result/at", json!("/attempts/9/response")),
            ("/record/detail/$result/fields", json!(["body", "nothing"])),
        ];
        for (pointer, value) in broken {
            let mut entry = stored.clone();
            if value.is_null() {
                let (parent, key) = pointer.rsplit_once('/').unwrap();
                entry.pointer_mut(parent).unwrap().as_object_mut().unwrap().remove(key);
            } else {
                *entry.pointer_mut(pointer).unwrap() = value;
            }
            assert_eq!(
                resolve_finished(&mut entry, "create", &entries),
                Err(Unresolved::Detail("create".into())),
                "{pointer}"
            );
        }
        let mut whole = stored;
        resolve_finished(&mut whole, "create", &entries).unwrap();
        assert_eq!(serde_json::from_value::<Finished>(whole).unwrap(), finished);
    }
}
