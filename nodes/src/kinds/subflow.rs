//! `subflow`: runs another catalog flow with inputs; its outputs become this node's result.
//!
//! Checked like a function call: the flow must exist, every input passed must be declared,
//! every required input passed, literal values of the right type, and the callee's integration
//! slots bound to slots of the same kind in the caller.

use flowcat_engine::diag::one_of;
use flowcat_engine::kind::{Call, CompileCx, Compiled, Effect, Extra, NodeExec, NodeKind};
use flowcat_engine::model::{InputType, Signature};
use flowcat_engine::run::{BoxFuture, NodeCx, NodeError, NodeOutput};
use flowcat_engine::shape::{Field, Shape};
use flowcat_engine::template::ValueTemplate;
use flowcat_engine::yaml::Node;

#[derive(Debug)]
pub struct Subflow;

const FIELDS: &[Field] = &[
    Field::required("flow", Shape::Str, "the id of the catalog flow to run, e.g. `duo.admin.retrieve_user_id`"),
    Field::optional("with", Shape::Map(&Shape::Value), "the subflow's inputs: name → value or template"),
    Field::optional(
        "integrations",
        Shape::Map(&Shape::Name),
        "the subflow's slot → this flow's slot; by default each slot binds to the slot of the same name",
    ),
];

impl NodeKind for Subflow {
    fn name(&self) -> &'static str {
        "subflow"
    }

    fn summary(&self) -> &'static str {
        "Runs another flow of the catalog with inputs; its outputs are readable as `nodes.<id>.<output>`."
    }

    fn fields(&self) -> &'static [Field] {
        FIELDS
    }

    fn compile(&self, cx: &mut CompileCx<'_>) -> Option<Compiled> {
        let flow_node = cx.get("flow")?;
        let flow = flow_node.as_str()?.to_owned();
        let sig = callee(cx, &flow, flow_node)?;
        // Both checks run, so that every mistake in the call is reported at once.
        let with = inputs(cx, &sig, Extra::None);
        let bindings = bindings(cx, &sig);
        let (with, bindings) = (with?, bindings?);
        let fields = sig.outputs.iter().map(|o| o.name.clone()).collect();
        let exec = SubflowExec { flow: flow.clone(), with, bindings };
        let mut compiled = Compiled::new(Box::new(exec), fields);
        compiled.calls = Some(Call { flow, span: flow_node.span });
        Some(compiled)
    }
}

/// The called flow's signature, or an `unknown-flow` error with the nearest id.
pub(super) fn callee(cx: &mut CompileCx<'_>, flow: &str, flow_node: &Node) -> Option<Signature> {
    if let Some(sig) = cx.signature(flow) {
        return Some(sig.clone());
    }
    // The calling flow is never the one meant: leave it out of "did you mean".
    let own = cx.flow;
    let ids: Vec<String> = cx.flow_ids().into_iter().filter(|i| *i != own).map(str::to_owned).collect();
    cx.error("unknown-flow", flow_node.span, format!("no flow `{flow}` in the catalog"))
        .label("not found under the catalog folders")
        .suggest(flow, ids.iter().map(String::as_str))
        .help
        .get_or_insert_with(|| "`flowcat list` shows every flow's id".to_owned());
    None
}

/// Checks and compiles `with:` against the callee's inputs; `extra` names what its templates
/// may read beside the flow's values (a `for_each`'s `item` and `index`).
pub(super) fn inputs(cx: &mut CompileCx<'_>, sig: &Signature, extra: Extra) -> Option<Vec<(String, ValueTemplate)>> {
    let pairs = cx.get("with").and_then(Node::as_map).unwrap_or_default();
    let names: Vec<&str> = sig.inputs.iter().map(|i| i.name.as_str()).collect();
    let mut ok = true;
    let mut out = Vec::new();
    for (k, v) in pairs {
        let name = k.as_str().unwrap_or_default();
        let Some(input) = sig.inputs.iter().find(|i| i.name == name) else {
            cx.error("unknown-input", k.span, format!("flow `{}` has no input `{name}`", sig.id))
                .label(format!("expected {}", one_of(names.iter().copied())))
                .suggest(name, names.iter().copied());
            ok = false;
            continue;
        };
        let Some(value) = cx.value_reading(v, extra) else {
            ok = false;
            continue;
        };
        // A literal can be checked now, and so can `{{index}}` (a number); any other
        // template's type is known only when it runs.
        let index = serde_json::Value::from(0);
        let literal = match (&value, input.ty) {
            (ValueTemplate::Literal(serde_json::Value::Number(_)), InputType::String) => None,
            (ValueTemplate::Literal(l), _) => Some(l.clone()),
            (ValueTemplate::Template(t), ty) if extra == Extra::Item && is_index(t) && ty != InputType::String => {
                Some(index)
            }
            _ => None,
        };
        if literal.is_some_and(|l| !input.ty.accepts(&l)) {
            let found = match &value {
                ValueTemplate::Template(_) => "`{{index}}`, a number",
                _ => v.describe(),
            };
            cx.error("wrong-type", v.span, format!("input `{name}` of flow `{}` is a {}", sig.id, input.ty.name()))
                .label(format!("expected a {}, found {found}", input.ty.name()));
            ok = false;
        }
        out.push((name.to_owned(), value));
    }
    for input in sig.inputs.iter().filter(|i| i.required) {
        if !pairs.iter().any(|(k, _)| k.as_str() == Some(input.name.as_str())) {
            let span = cx.key_span("flow");
            cx.error("missing-input", span, format!("flow `{}` needs input `{}`", sig.id, input.name))
                .label("called without it")
                .help(format!("add `{}: ...` under `with:`", input.name));
            ok = false;
        }
    }
    ok.then_some(out)
}

/// Whether `t` is exactly `{{index}}`.
fn is_index(t: &flowcat_engine::template::Template) -> bool {
    t.refs.len() == 1 && t.refs[0].path == ["index"] && t.source.trim() == "{{index}}"
}

/// Binds each of the callee's slots to one of the caller's, checking kinds.
pub(super) fn bindings(cx: &mut CompileCx<'_>, sig: &Signature) -> Option<Vec<(String, String)>> {
    let explicit = cx.get("integrations");
    let mut ok = true;
    let mut out = Vec::new();
    for (k, _) in explicit.and_then(Node::as_map).unwrap_or_default() {
        let name = k.as_str().unwrap_or_default();
        if !sig.slots.iter().any(|s| s.name == name) {
            let names: Vec<&str> = sig.slots.iter().map(|s| s.name.as_str()).collect();
            cx.error("unknown-slot", k.span, format!("flow `{}` has no integration slot `{name}`", sig.id))
                .label(format!("expected {}", one_of(names.iter().copied())))
                .suggest(name, names.iter().copied());
            ok = false;
        }
    }
    for slot in &sig.slots {
        let given = explicit.and_then(|e| e.get(&slot.name));
        let parent_name = given.and_then(Node::as_str).unwrap_or(&slot.name).to_owned();
        let span = given.map_or_else(|| cx.key_span("flow"), |g| g.span);
        match cx.slots().iter().find(|s| s.name == parent_name) {
            Some(parent) if parent.kind == slot.kind => out.push((slot.name.clone(), parent_name)),
            Some(parent) => {
                let (pk, sk) = (parent.kind.clone(), slot.kind.clone());
                cx.error(
                    "wrong-kind",
                    span,
                    format!(
                        "slot `{parent_name}` is a `{pk}` integration, but flow `{}` needs `{sk}` for `{}`",
                        sig.id, slot.name
                    ),
                )
                .help(format!("bind a `{sk}` slot: `integrations: {{ {}: <slot> }}`", slot.name));
                ok = false;
            }
            None => {
                cx.error(
                    "unbound-slot",
                    span,
                    format!("flow `{}` needs a `{}` integration for its slot `{}`", sig.id, slot.kind, slot.name),
                )
                .label(format!("this flow declares no slot `{parent_name}`"))
                .help(format!("declare `{parent_name}: {{ kind: {} }}` under this flow's `integrations:`", slot.kind));
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

/// The compiled `subflow` node.
#[derive(Debug)]
pub struct SubflowExec {
    pub flow: String,
    pub with: Vec<(String, ValueTemplate)>,
    /// Callee slot → caller slot.
    pub bindings: Vec<(String, String)>,
}

impl NodeExec for SubflowExec {
    fn label(&self) -> String {
        format!("subflow {}", self.flow)
    }

    fn describe(&self) -> serde_json::Value {
        let with: Vec<&str> = self.with.iter().map(|(k, _)| k.as_str()).collect();
        serde_json::json!({ "flow": self.flow, "with": with, "integrations": self.bindings })
    }

    /// Its nodes have effects of their own, journaled and resumed one by one.
    fn effect(&self) -> Effect {
        Effect::Composite
    }

    fn run<'a>(&'a self, cx: NodeCx<'a>) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move {
            let mut inputs = serde_json::Map::with_capacity(self.with.len());
            for (k, v) in &self.with {
                inputs.insert(k.clone(), cx.render_value(v)?);
            }
            let outputs = cx.subflow(&self.flow, inputs, &self.bindings).await?;
            Ok(NodeOutput::value(serde_json::Value::Object(outputs)))
        })
    }
}
