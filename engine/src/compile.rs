//! Pass two: a parsed flow → a validated [`Flow`] whose nodes form a [`Plan`].
//!
//! Pure: no network, no secrets, no clock. Every problem is reported, not the first: a node
//! that fails to compile is left out of the graph, and the checks that need it are skipped
//! rather than reported twice.

use std::collections::HashMap;

use crate::diag::{Diags, one_of};
use crate::kind::{CompileCx, Compiled, Registry, Signatures};
use crate::load::{Parsed, entries};
use crate::model::{Output, Signature, Var};
use crate::plan::{Edge, EdgeKind, Guard, OnError, Plan, PlanNode};
use crate::template::{Ref, Template};
use crate::yaml::{Node, Span};

/// A validated flow: its signature, vars, outputs and the plan of its nodes.
#[derive(Debug)]
pub struct Flow {
    pub signature: Signature,
    pub vars: Vec<Var>,
    pub outputs: Vec<Output>,
    pub plan: Plan,
}

impl Flow {
    pub fn id(&self) -> &str {
        &self.signature.id
    }
}

/// A node compiled by its kind, before it has a place in the graph.
struct Pending {
    id: String,
    kind: &'static str,
    node: Node,
    when: Option<Template>,
    compiled: Compiled,
    reads: Vec<(Ref, bool)>,
}

/// Compiles a parsed flow. Diagnostics go to `parsed.diags`; `None` when there are errors.
pub fn compile(parsed: &mut Parsed, registry: &Registry, catalog: &dyn Signatures) -> Option<Flow> {
    let root = parsed.root.clone();
    let diags = &mut parsed.diags;
    let sig = &parsed.signature;
    let vars = vars(&root, sig, diags);
    let pending = nodes(&root, sig, registry, catalog, diags);
    let ids: Vec<&str> = pending.iter().map(|p| p.id.as_str()).collect();
    let declared = declared_ids(&root);
    let scope = Scope { sig, vars: &vars, nodes: &pending, ids: &ids, declared: &declared };
    let mut edges = Vec::new();
    for (i, p) in pending.iter().enumerate() {
        for (r, allow_self) in &p.reads {
            if let Some(from) = scope.check(r, Some((i, *allow_self)), diags) {
                edges.push((from, i, Edge { kind: EdgeKind::Data, span: r.span }));
            }
        }
        edges.extend(after_edges(&p.node, i, &ids, &declared, diags));
    }
    let guards = branch_edges(&pending, &ids, &declared, &mut edges, diags);
    let outputs = outputs(&root, &scope, diags);
    if diags.has_errors() {
        return None;
    }
    let plan_nodes = pending.into_iter().zip(guards).map(|(p, guards)| plan_node(p, guards)).collect();
    let plan = Plan::build(plan_nodes, edges, diags)?;
    crate::lints::unreachable(&plan, diags);
    crate::lints::unused(&plan, &outputs, diags);
    crate::lints::skippable_outputs(&plan, &outputs, diags);
    Some(Flow { signature: parsed.signature.clone(), vars, outputs, plan })
}

fn plan_node(p: Pending, guards: Vec<Guard>) -> PlanNode {
    let text = |k: &str| p.node.get(k).and_then(Node::as_str).map(str::to_owned);
    let on_error = if text("on_error").as_deref() == Some("continue") { OnError::Continue } else { OnError::Stop };
    PlanNode {
        description: text("description"),
        span: p.node.span,
        id: p.id,
        kind: p.kind,
        when: p.when,
        compiled: p.compiled,
        guards,
        reads: p.reads.into_iter().map(|(r, _)| r).collect(),
        reads_nodes: Vec::new(),
        reads_ids: Vec::new(),
        reads_soft: Vec::new(),
        on_error,
        may_skip: false,
    }
}

fn vars(root: &Node, sig: &Signature, diags: &mut Diags) -> Vec<Var> {
    let mut out: Vec<Var> = Vec::new();
    for (name, node) in entries(root, "vars") {
        let default =
            node.get("default").and_then(|d| crate::template::compile_value(d).map_err(|e| report(e, diags)).ok());
        // A var's default reads inputs and the vars above it: an order, so no cycles.
        for t in default.iter().flat_map(|d| d.templates()) {
            for r in &t.refs {
                let scope = Scope { sig, vars: &out, nodes: &[], ids: &[], declared: &[] };
                if r.path.first().is_some_and(|root| root == "nodes") {
                    diags
                        .error("bad-reference", Some(r.span), format!("var `{name}` reads `{}`", r.dotted()))
                        .label("a var's default is computed before any node runs")
                        .help("read node results in the nodes themselves or in `outputs`");
                } else {
                    scope.check(r, None, diags);
                }
            }
        }
        out.push(Var {
            name: name.to_owned(),
            default,
            description: node.get("description").and_then(Node::as_str).map(str::to_owned),
            span: node.span,
        });
    }
    out
}

fn nodes(
    root: &Node,
    sig: &Signature,
    registry: &Registry,
    catalog: &dyn Signatures,
    diags: &mut Diags,
) -> Vec<Pending> {
    let items = root.get("nodes").and_then(Node::as_seq).unwrap_or_default();
    let mut seen: HashMap<&str, Span> = HashMap::new();
    let mut out = Vec::new();
    for item in items {
        let Some(id_node) = item.get("id") else { continue };
        let Some(id) = id_node.as_str().filter(|s| crate::shape::is_name(s)) else { continue };
        if let Some(first) = seen.get(id) {
            diags
                .error("duplicate-node", Some(id_node.span), format!("two nodes are called `{id}`"))
                .label("second node with this id")
                .help(format!("node ids are unique in a flow; the first is at line {}", first.start.line));
            continue;
        }
        seen.insert(id, id_node.span);
        let Some(kind) = item.get("kind").and_then(Node::as_str).and_then(|k| registry.kind(k)) else {
            continue;
        };
        let when = item.get("when").and_then(|w| template(w, diags));
        let mut cx =
            CompileCx { node: item, id, flow: &sig.id, diags, catalog, slots: &sig.slots, recorded: Vec::new() };
        let mut compiled = kind.compile(&mut cx);
        if item.get("on_error").and_then(Node::as_str) == Some("continue") {
            if let Some(c) = compiled.as_mut() {
                c.fields.push("error".to_owned());
            }
        }
        let mut reads: Vec<(Ref, bool)> =
            cx.recorded.into_iter().flat_map(|r| r.template.refs.into_iter().map(move |x| (x, r.allow_self))).collect();
        reads.extend(when.iter().flat_map(|t| t.refs.iter().map(|r| (r.clone(), false))));
        if let Some(compiled) = compiled {
            out.push(Pending { id: id.to_owned(), kind: kind.name(), node: item.clone(), when, compiled, reads });
        }
    }
    out
}

/// Compiles a `when:` or an output's value, reporting what does not compile.
fn template(node: &Node, diags: &mut Diags) -> Option<Template> {
    crate::template::compile(node).map_err(|e| report(e, diags)).ok()
}

/// Reports templates that did not compile.
pub(crate) fn report(errors: Vec<crate::template::TemplateError>, diags: &mut Diags) {
    for e in errors {
        let d = diags.error("bad-template", Some(e.span), e.message);
        if let Some(h) = e.help {
            d.help(h);
        }
    }
}

/// Every node id written in the file, compiled or not: a reference to a node that failed to
/// compile is not reported again.
fn declared_ids(root: &Node) -> Vec<String> {
    let items = root.get("nodes").and_then(Node::as_seq).unwrap_or_default();
    items.iter().filter_map(|n| n.get("id")?.as_str().map(str::to_owned)).collect()
}

fn after_edges(
    node: &Node,
    to: usize,
    ids: &[&str],
    declared: &[String],
    diags: &mut Diags,
) -> Vec<(usize, usize, Edge)> {
    let mut out = Vec::new();
    for item in node.get("after").and_then(Node::as_seq).unwrap_or_default() {
        let Some(name) = item.as_str() else { continue };
        match ids.iter().position(|id| *id == name) {
            Some(from) => out.push((from, to, Edge { kind: EdgeKind::After, span: item.span })),
            None if declared.iter().any(|d| d == name) => {}
            None => {
                diags
                    .error(
                        "unknown-node",
                        Some(item.span),
                        format!("`after:` names `{name}`, which is not a node of this flow"),
                    )
                    .label(format!("expected one of {}", one_of(others(ids, to))))
                    .suggest(name, others(ids, to));
            }
        }
    }
    out
}

/// The node ids other than `me`'s: what an `after:` or a branch may name.
fn others<'a>(ids: &'a [&'a str], me: usize) -> impl Iterator<Item = &'a str> + Clone + 'a {
    ids.iter().enumerate().filter(move |(i, _)| *i != me).map(|(_, id)| *id)
}

/// Adds an edge from each branching node to each of its targets; returns every node's guards.
fn branch_edges(
    pending: &[Pending],
    ids: &[&str],
    declared: &[String],
    edges: &mut Vec<(usize, usize, Edge)>,
    diags: &mut Diags,
) -> Vec<Vec<Guard>> {
    let mut guards: Vec<Vec<Guard>> = vec![Vec::new(); pending.len()];
    for (s, p) in pending.iter().enumerate() {
        for branch in &p.compiled.branches {
            for (target, span) in &branch.targets {
                let Some(t) = ids.iter().position(|id| id == target) else {
                    if declared.contains(target) {
                        continue;
                    }
                    diags
                        .error(
                            "unknown-node",
                            Some(*span),
                            format!("branch `{}` names `{target}`, which is not a node of this flow", branch.name),
                        )
                        .label(format!("expected one of {}", one_of(others(ids, s))))
                        .suggest(target, others(ids, s));
                    continue;
                };
                edges.push((s, t, Edge { kind: EdgeKind::Branch, span: *span }));
                match guards[t].iter_mut().find(|g| g.switch == s) {
                    Some(g) if !g.branches.contains(&branch.name) => g.branches.push(branch.name.clone()),
                    Some(_) => {}
                    None => guards[t].push(Guard { switch: s, branches: vec![branch.name.clone()] }),
                }
            }
        }
    }
    guards
}

fn outputs(root: &Node, scope: &Scope<'_>, diags: &mut Diags) -> Vec<Output> {
    let mut out = Vec::new();
    for (name, node) in entries(root, "outputs") {
        let value_node = if node.as_map().is_some() { node.get("value") } else { Some(node) };
        let Some(value) = value_node.and_then(|v| template(v, diags)) else { continue };
        for r in &value.refs {
            scope.check(r, None, diags);
        }
        let default =
            node.get("default").and_then(|d| crate::template::compile_value(d).map_err(|e| report(e, diags)).ok());
        for t in default.iter().flat_map(|d| d.templates()) {
            for r in &t.refs {
                scope.check(r, None, diags);
            }
        }
        out.push(Output {
            name: name.to_owned(),
            value,
            default,
            description: node.get("description").and_then(Node::as_str).map(str::to_owned),
            span: node.span,
        });
    }
    out
}

/// What a template may read at one place of a flow.
struct Scope<'a> {
    sig: &'a Signature,
    vars: &'a [Var],
    nodes: &'a [Pending],
    ids: &'a [&'a str],
    declared: &'a [String],
}

impl Scope<'_> {
    /// Checks one path. `reader` is the reading node and whether it may read `self.`.
    /// Returns the node read, for a data edge.
    fn check(&self, r: &Ref, reader: Option<(usize, bool)>, diags: &mut Diags) -> Option<usize> {
        let root = r.path[0].as_str();
        let name = r.path.get(1).map(String::as_str);
        match (root, name) {
            ("inputs", Some(n)) => {
                let names: Vec<&str> = self.sig.inputs.iter().map(|i| i.name.as_str()).collect();
                self.known(r, "input", n, &names, diags);
                None
            }
            ("vars", Some(n)) => {
                let names: Vec<&str> = self.vars.iter().map(|v| v.name.as_str()).collect();
                self.known(r, "var", n, &names, diags);
                None
            }
            ("nodes", Some(n)) => self.node_ref(r, n, reader, diags),
            ("self", _) if reader.is_some_and(|(_, s)| s) => {
                let (i, _) = reader?;
                self.field(r, i, r.path.get(1), diags);
                None
            }
            _ => {
                self.unknown_root(r, reader.is_some_and(|(_, s)| s), diags);
                None
            }
        }
    }

    fn known(&self, r: &Ref, what: &str, name: &str, names: &[&str], diags: &mut Diags) {
        if !names.contains(&name) {
            let d = diags
                .error("unknown-name", Some(r.span), format!("`{}` names an undefined {what} `{name}`", r.dotted()))
                .label(format!("no {what} `{name}` in this flow"));
            d.help(format!("declare it under `{}s:`", what));
            d.suggest(name, names.iter().copied());
        }
    }

    fn node_ref(&self, r: &Ref, name: &str, reader: Option<(usize, bool)>, diags: &mut Diags) -> Option<usize> {
        let Some(target) = self.ids.iter().position(|id| *id == name) else {
            if self.declared.iter().any(|d| d == name) {
                return None;
            }
            diags
                .error(
                    "unknown-node",
                    Some(r.span),
                    format!("`{}` reads node `{name}`, which this flow does not have", r.dotted()),
                )
                .label("no such node")
                .suggest(name, self.ids.iter().copied());
            return None;
        };
        if let Some((i, allow_self)) = reader.filter(|(i, _)| *i == target) {
            let d = diags
                .error("self-reference", Some(r.span), format!("node `{name}` reads its own result"))
                .label("a node's result exists only after it ran");
            if allow_self {
                d.help(format!("inside `until`, write `self.{}`", r.path[2..].join(".")));
            }
            let _ = i;
            return None;
        }
        self.field(r, target, r.path.get(2), diags);
        Some(target)
    }

    fn field(&self, r: &Ref, node: usize, field: Option<&String>, diags: &mut Diags) {
        let Some(field) = field else { return };
        let p = &self.nodes[node];
        if !p.compiled.fields.contains(field) {
            let fields: Vec<&str> = p.compiled.fields.iter().map(String::as_str).collect();
            diags
                .error(
                    "unknown-field",
                    Some(r.span),
                    format!("`{}` reads `{field}`, which `{}` node `{}` does not produce", r.dotted(), p.kind, p.id),
                )
                .label(format!("expected {}", one_of(fields.iter().copied())))
                .suggest(field, fields.iter().copied());
        }
    }

    fn unknown_root(&self, r: &Ref, allow_self: bool, diags: &mut Diags) {
        let root = &r.path[0];
        let mut roots = vec!["inputs", "vars", "nodes"];
        if allow_self {
            roots.push("self");
        }
        let d = diags
            .error("unknown-name", Some(r.span), format!("a template cannot read `{}`", r.dotted()))
            .label(format!("expected a path starting with {}", one_of(roots.iter().map(|x| &**x))));
        let guess = if self.sig.inputs.iter().any(|i| &i.name == root) {
            Some(format!("inputs.{}", r.dotted()))
        } else if self.vars.iter().any(|v| &v.name == root) {
            Some(format!("vars.{}", r.dotted()))
        } else if self.ids.contains(&root.as_str()) {
            Some(format!("nodes.{}", r.dotted()))
        } else {
            crate::diag::did_you_mean(root, roots.iter().copied())
                .map(|near| format!("{near}.{}", r.path[1..].join(".")))
        };
        match guess {
            Some(g) => d.help(format!("did you mean `{}`?", g.trim_end_matches('.'))),
            None => d.help("templates read `inputs.<name>`, `vars.<name>` or `nodes.<id>.<field>`"),
        };
    }
}
