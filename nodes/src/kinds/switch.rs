//! `switch`: picks the first case whose condition holds; only that case's nodes run.

use flowcat_engine::kind::{Branch, CompileCx, Compiled, NodeExec, NodeKind};
use flowcat_engine::render::truthy;
use flowcat_engine::run::{BoxFuture, NodeCx, NodeError, NodeOutput};
use flowcat_engine::shape::{Field, Shape};
use flowcat_engine::template::Template;
use flowcat_engine::yaml::Node;

#[derive(Debug)]
pub struct Switch;

const CASE_FIELDS: &[Field] = &[
    Field::required("name", Shape::Name, "the case's name, readable as `nodes.<id>.case` once chosen"),
    Field::required("when", Shape::Condition, "the case is chosen when this is true (the first true case wins)"),
    Field::required("then", Shape::List(&Shape::Name), "the nodes that run only when this case is chosen"),
];

const FIELDS: &[Field] = &[
    Field::required("cases", Shape::List(&Shape::Object(CASE_FIELDS)), "the cases, tried in order"),
    Field::optional("default", Shape::List(&Shape::Name), "the nodes that run when no case is chosen"),
];

/// The branch name of `default:`.
pub const DEFAULT: &str = "default";

impl NodeKind for Switch {
    fn name(&self) -> &'static str {
        "switch"
    }

    fn summary(&self) -> &'static str {
        "Chooses the first case whose `when` is true; nodes listed under other cases are skipped."
    }

    fn fields(&self) -> &'static [Field] {
        FIELDS
    }

    fn compile(&self, cx: &mut CompileCx<'_>) -> Option<Compiled> {
        let mut cases = Vec::new();
        let mut branches = Vec::new();
        let mut ok = true;
        for case in cx.get("cases")?.as_seq()? {
            let name = case.get("name").and_then(Node::as_str).unwrap_or_default().to_owned();
            if name == DEFAULT || cases.iter().any(|c: &Case| c.name == name) {
                let span = case.get("name").map_or(case.span, |n| n.span);
                cx.error("duplicate-case", span, format!("switch `{}` has two cases called `{name}`", cx.id))
                    .help("case names are unique, and `default` is reserved for `default:`");
                ok = false;
            }
            let when = case.get("when").and_then(|w| cx.template_of(w, false));
            let targets = targets(case.get("then"));
            match when {
                Some(when) => cases.push(Case { name: name.clone(), when }),
                None => ok = false,
            }
            branches.push(Branch { name, targets });
        }
        let default = targets(cx.get("default"));
        if !default.is_empty() {
            branches.push(Branch { name: DEFAULT.to_owned(), targets: default });
        }
        if !ok {
            return None;
        }
        let mut compiled = Compiled::new(Box::new(SwitchExec { cases }), vec!["case".to_owned()]);
        compiled.branches = branches;
        Some(compiled)
    }
}

fn targets(node: Option<&Node>) -> Vec<(String, flowcat_engine::yaml::Span)> {
    let items = node.and_then(Node::as_seq).unwrap_or_default();
    items.iter().filter_map(|n| Some((n.as_str()?.to_owned(), n.span))).collect()
}

#[derive(Debug)]
pub struct Case {
    pub name: String,
    pub when: Template,
}

/// The compiled `switch` node.
#[derive(Debug)]
pub struct SwitchExec {
    pub cases: Vec<Case>,
}

impl NodeExec for SwitchExec {
    fn label(&self) -> String {
        let names: Vec<&str> = self.cases.iter().map(|c| c.name.as_str()).collect();
        format!("switch: {}", names.join(" | "))
    }

    fn describe(&self) -> serde_json::Value {
        let cases: Vec<_> =
            self.cases.iter().map(|c| serde_json::json!({"name": c.name, "when": c.when.source})).collect();
        serde_json::json!({ "cases": cases })
    }

    fn run<'a>(&'a self, cx: NodeCx<'a>) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move {
            let mut chosen = DEFAULT.to_owned();
            for case in &self.cases {
                if truthy(&cx.render(&case.when)?) {
                    chosen = case.name.clone();
                    break;
                }
            }
            let value = serde_json::json!({ "case": chosen });
            Ok(NodeOutput { value, branch: Some(chosen) })
        })
    }
}
