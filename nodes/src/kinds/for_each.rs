//! `for_each`: runs a catalog flow once per item of a list, a bounded number at a time, and
//! collects every item's outcome, in order, as its result.
//!
//! The call is checked like a `subflow` call (the flow, its inputs, their literal types, its
//! slots); its `with:` templates may also read `item` and `index`. The list is a template
//! (`"{{nodes.phones.phone_ids}}"`, `"{{inputs.users}}"`) that must give a JSON list at run
//! time, of at most [`MAX_ITEMS`] items. Running, journaling and resuming items is the engine's
//! [`NodeCx::each`]; this kind renders each item's inputs and shapes the result.

use flowcat_engine::kind::{Call, CompileCx, Compiled, Effect, Extra, NodeExec, NodeKind};
use flowcat_engine::model::InputType;
use flowcat_engine::run::{BoxFuture, Each, ItemOutcome, Items, NodeCx, NodeError, NodeOutput, NodeStatus};
use flowcat_engine::shape::{Field, Shape};
use flowcat_engine::template::{Template, ValueTemplate};
use serde_json::{Map, Value, json};

use super::subflow;

#[derive(Debug)]
pub struct ForEach;

/// Items running at once when `concurrency:` is not given: a few, so that a list of a user's
/// phones is quick without bursting into the API's rate limits.
pub const DEFAULT_CONCURRENCY: u64 = 4;
/// The most items that may run at once.
pub const MAX_CONCURRENCY: u64 = 64;
/// The longest list a node runs: a longer one fails the node before any item starts, so that
/// one node's time and memory (a result entry per item) stay bounded.
pub const MAX_ITEMS: usize = 10_000;

const ON_ITEM_ERROR: &[&str] = &["fail", "continue"];

const FIELDS: &[Field] = &[
    Field::required("flow", Shape::Str, "the id of the catalog flow to run per item, e.g. `duo.admin.remove_device`"),
    Field::required(
        "items",
        Shape::Template,
        "the list: a template giving a JSON list, e.g. `\"{{nodes.phones.phone_ids}}\"` or `\"{{inputs.users}}\"`",
    ),
    Field::optional(
        "with",
        Shape::Map(&Shape::Value),
        "the subflow's inputs for each item: name → value or template; templates may also read `item` (the item) and `index` (its position, from 0)",
    ),
    Field::optional(
        "integrations",
        Shape::Map(&Shape::Name),
        "the subflow's slot → this flow's slot; by default each slot binds to the slot of the same name",
    ),
    Field::optional("concurrency", Shape::Int, "how many items run at once, 1 to 64 (default 4)"),
    Field::optional(
        "on_item_error",
        Shape::Enum(ON_ITEM_ERROR),
        "`fail`: after an item fails no other starts, and the node fails; `continue`: every item runs, and the node succeeds with the failures in its result; by default as the node's `on_error` (`continue`, else `fail`)",
    ),
];

impl NodeKind for ForEach {
    fn name(&self) -> &'static str {
        "for_each"
    }

    fn summary(&self) -> &'static str {
        "Runs another flow of the catalog once per item of a list, a few at a time; every item's status, outputs and error are readable in order as `nodes.<id>.results`."
    }

    fn fields(&self) -> &'static [Field] {
        FIELDS
    }

    fn compile(&self, cx: &mut CompileCx<'_>) -> Option<Compiled> {
        let flow_node = cx.get("flow")?;
        let flow = flow_node.as_str()?.to_owned();
        // Every check runs, so that every mistake in the node is reported at once.
        let items = items(cx);
        let concurrency = concurrency(cx);
        let sig = subflow::callee(cx, &flow, flow_node);
        let (with, bindings) = match &sig {
            Some(sig) => (subflow::inputs(cx, sig, Extra::Item), subflow::bindings(cx, sig)),
            None => (None, None),
        };
        let (items, concurrency, with, bindings) = (items?, concurrency?, with?, bindings?);
        // The items' policy: `on_item_error`, else the node's `on_error` (`continue`: every item
        // runs and the node succeeds with the failures in its result; `fail`/`stop`: the first
        // failure ends the node, and the run).
        let stop_at_failure = cx.str("on_item_error").or(cx.str("on_error")) != Some("continue");
        let exec = ForEachExec { flow: flow.clone(), items, with, bindings, concurrency, stop_at_failure };
        let fields = ["results", "count", "succeeded", "failed"].map(str::to_owned).to_vec();
        let mut compiled = Compiled::new(Box::new(exec), fields);
        compiled.calls = Some(Call { flow, span: flow_node.span });
        Some(compiled)
    }
}

/// Compiles `items:`, which must read the list from somewhere: a literal is never a list.
fn items(cx: &mut CompileCx<'_>) -> Option<Template> {
    let node = cx.get("items")?;
    let t = cx.template("items")?;
    if t.refs.is_empty() {
        cx.error("wrong-type", node.span, "`items` must be a template that gives a list")
            .label(format!("found {}, which is not a list", node.describe()))
            .help("read the list from an input or a node, e.g. `items: \"{{nodes.phones.phone_ids}}\"`");
        return None;
    }
    // `"{{inputs.x}}"` alone is the input's value: its declared type is known now.
    let whole_input = match t.refs.as_slice() {
        [r] if r.path.len() == 2 && r.path[0] == "inputs" && t.source.trim() == format!("{{{{{}}}}}", r.dotted()) => {
            cx.inputs().iter().find(|i| i.name == r.path[1]).map(|i| (i.name.clone(), i.ty, r.span))
        }
        _ => None,
    };
    if let Some((name, ty, span)) = whole_input.filter(|(_, ty, _)| *ty != InputType::Array) {
        cx.error("wrong-type", span, format!("input `{name}` is a {}, not a list", ty.name()))
            .label("`items` needs a list")
            .help(match ty {
                InputType::Object => {
                    format!("declare it `type: array`, or read a list inside it: `{{{{inputs.{name}.<field>}}}}`")
                }
                _ => "declare it `type: array`".to_owned(),
            });
        return None;
    }
    Some(t)
}

/// `concurrency:`, 1 to [`MAX_CONCURRENCY`].
fn concurrency(cx: &mut CompileCx<'_>) -> Option<usize> {
    let Some(node) = cx.get("concurrency") else { return Some(DEFAULT_CONCURRENCY as usize) };
    // The shape check accepted a non-negative whole number; a huge one does not parse.
    let n = node.as_str().and_then(|s| s.parse::<u64>().ok()).unwrap_or(u64::MAX);
    if (1..=MAX_CONCURRENCY).contains(&n) {
        return Some(n as usize);
    }
    let (label, help) = if n == 0 {
        ("0 would run no item", "write `concurrency: 1` to run the items one by one".to_owned())
    } else {
        ("more than the API's rate limits allow", format!("write at most `concurrency: {MAX_CONCURRENCY}`"))
    };
    cx.error("bad-concurrency", node.span, format!("`concurrency` must be 1 to {MAX_CONCURRENCY}"))
        .label(label)
        .help(help);
    None
}

/// The compiled `for_each` node.
#[derive(Debug)]
pub struct ForEachExec {
    pub flow: String,
    pub items: Template,
    pub with: Vec<(String, ValueTemplate)>,
    /// Callee slot → caller slot.
    pub bindings: Vec<(String, String)>,
    pub concurrency: usize,
    pub stop_at_failure: bool,
}

impl NodeExec for ForEachExec {
    fn label(&self) -> String {
        format!("for each of {}, {} at a time: subflow {}", self.items.source, self.concurrency, self.flow)
    }

    fn describe(&self) -> Value {
        let with: Vec<&str> = self.with.iter().map(|(k, _)| k.as_str()).collect();
        json!({
            "flow": self.flow,
            "items": self.items.source,
            "with": with,
            "integrations": self.bindings,
            "concurrency": self.concurrency,
            "on_item_error": if self.stop_at_failure { "fail" } else { "continue" },
        })
    }

    /// Its items' nodes have effects of their own, journaled and resumed one by one.
    fn effect(&self) -> Effect {
        Effect::Composite
    }

    fn run<'a>(&'a self, cx: NodeCx<'a>) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move {
            let list = self.list(&cx)?;
            let inputs = list.iter().enumerate().map(|(i, item)| self.item_inputs(&cx, item, i)).collect();
            let each = Each {
                flow: &self.flow,
                bindings: &self.bindings,
                concurrency: self.concurrency,
                stop_at_failure: self.stop_at_failure,
            };
            let Items { outcomes, first_failure } = cx.each(each, inputs).await?;
            if let (true, Some(i)) = (self.stop_at_failure, first_failure) {
                let e = outcomes[i].error.clone().unwrap_or_else(|| NodeError::new("failed", "it failed"));
                let started = outcomes.iter().filter(|o| o.status != NodeStatus::Pending).count();
                let message = format!(
                    "item {i} of {} failed: {} ({started} started, the others were not)",
                    outcomes.len(),
                    e.message
                );
                let mut data = json!({ "index": i });
                if let Some(d) = e.data {
                    data["data"] = d;
                }
                return Err(NodeError::new(e.code, message).with_data(data));
            }
            Ok(NodeOutput::value(result(&outcomes)))
        })
    }
}

impl ForEachExec {
    /// The list, checked: a JSON list of at most [`MAX_ITEMS`] items.
    fn list(&self, cx: &NodeCx<'_>) -> Result<Vec<Value>, NodeError> {
        let list = match cx.render(&self.items)? {
            Value::Array(list) => list,
            other => {
                let found = match &other {
                    Value::String(s) => format!("a string ({} characters)", s.chars().count()),
                    Value::Object(_) => "an object".to_owned(),
                    Value::Number(_) => "a number".to_owned(),
                    Value::Bool(_) => "a boolean".to_owned(),
                    _ => "null".to_owned(),
                };
                return Err(NodeError::new(
                    "not_a_list",
                    format!(
                        "node `{}`: `items: {}` gave {found}, not a list; read a list, e.g. an `extract` with `many: true`",
                        cx.id, self.items.source
                    ),
                ));
            }
        };
        if list.len() > MAX_ITEMS {
            return Err(NodeError::new(
                "too_many_items",
                format!(
                    "node `{}`: `items: {}` gave {} items, more than the {MAX_ITEMS} a `for_each` runs; nothing was started: split the list",
                    cx.id,
                    self.items.source,
                    list.len()
                ),
            ));
        }
        Ok(list)
    }

    /// Item `i`'s inputs, its `with:` rendered with `item` and `index`.
    fn item_inputs(&self, cx: &NodeCx<'_>, item: &Value, i: usize) -> Result<Map<String, Value>, NodeError> {
        let mut inputs = Map::with_capacity(self.with.len());
        for (k, v) in &self.with {
            let value = cx
                .render_value_for_item(v, item, i)
                .map_err(|e| NodeError::new(e.code, format!("item {i}: input `{k}`: {}", e.message)))?;
            inputs.insert(k.clone(), value);
        }
        Ok(inputs)
    }
}

/// The node's result: every item's outcome in order, and the counts.
fn result(outcomes: &[ItemOutcome]) -> Value {
    let results: Vec<Value> = outcomes
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let status = match o.status {
                NodeStatus::Succeeded => "succeeded",
                NodeStatus::Failed => "failed",
                _ => "not_run",
            };
            let error = o.error.as_ref().map(|e| json!({ "code": e.code, "message": e.message, "data": e.data }));
            json!({ "index": i, "status": status, "outputs": o.outputs, "error": error })
        })
        .collect();
    let count = |s| outcomes.iter().filter(|o| o.status == s).count();
    json!({
        "results": results,
        "count": outcomes.len(),
        "succeeded": count(NodeStatus::Succeeded),
        "failed": count(NodeStatus::Failed),
    })
}
