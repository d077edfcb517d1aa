//! Pass two: a parsed flow → a validated [`Flow`] whose nodes form a [`Plan`].
//!
//! Pure: no network, no secrets, no clock. Every problem is reported, not the first: a node
//! that fails to compile is left out of the graph, and the checks that need it are skipped
//! rather than reported twice.

mod scope;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::diag::{Diags, one_of};
use crate::kind::{CompileCx, Compiled, Extra, Registry, Signatures};
use crate::load::{Parsed, entries};
use crate::model::{MAX_DEADLINE, Output, Signature, Var};
use crate::node::NodeError;
use crate::plan::{Edge, EdgeKind, Guard, OnError, Plan, PlanNode};
use crate::render::{Escape, Values};
use crate::template::report;
use crate::template::{Ref, Template};
use crate::yaml::{Node, Span};
use scope::{Names, Scope};

/// A validated flow: its signature, vars, outputs and the plan of its nodes.
#[derive(Debug)]
pub struct Flow {
    pub signature: Signature,
    pub vars: Vec<Var>,
    pub outputs: Vec<Output>,
    pub plan: Plan,
    /// The run key (`key:`): reads only `inputs.…`. Runs whose keys are equal are one request.
    pub key: Option<Template>,
    /// How long a whole run may take (`deadline:`), above zero and at most [`MAX_DEADLINE`].
    pub deadline: Option<Duration>,
}

impl Flow {
    pub fn id(&self) -> &str {
        &self.signature.id
    }

    /// The run key for these inputs (already checked, defaults applied), or `None` when the
    /// flow declares none. A key that renders empty is an error: it would make unrelated runs
    /// one.
    pub fn render_key(&self, inputs: &Map<String, Value>) -> Result<Option<String>, NodeError> {
        let Some(key) = &self.key else { return Ok(None) };
        let text = crate::render::render_text(key, &Inputs(inputs), Escape::None)?;
        if text.trim().is_empty() {
            return Err(NodeError::new(
                "bad_key",
                format!("the run key `{}` of flow `{}` is empty for these inputs", key.source, self.id()),
            ));
        }
        Ok(Some(text))
    }
}

/// The inputs alone, as a run key reads them.
struct Inputs<'a>(&'a Map<String, Value>);

impl Values for Inputs<'_> {
    fn lookup(&self, path: &[String]) -> Option<&Value> {
        match path {
            [root, name, rest @ ..] if root == "inputs" => crate::render::walk(self.0.get(name)?, rest),
            _ => None,
        }
    }
}

/// A node compiled by its kind, before it has a place in the graph.
struct Pending {
    id: String,
    kind: &'static str,
    node: Node,
    when: Option<Template>,
    compiled: Compiled,
    reads: Vec<(Ref, Extra)>,
}

/// Compiles a parsed flow. Diagnostics go to `parsed.diags`; `None` when there are errors.
pub fn compile(parsed: &mut Parsed, registry: &Registry, catalog: &dyn Signatures) -> Option<Flow> {
    let root = parsed.root.clone();
    let diags = &mut parsed.diags;
    let sig = &parsed.signature;
    let inputs = Names::new(sig.inputs.iter().map(|i| i.name.as_str()));
    let vars = vars(&root, &inputs, diags);
    let key = run_key(&root, &inputs, diags);
    let deadline = deadline(&root, diags);
    let pending = nodes(&root, sig, registry, catalog, diags);
    let ids = Names::new(pending.iter().map(|p| p.id.as_str()));
    let declared = declared_ids(&root);
    let var_names = Names::new(vars.iter().map(|v| v.name.as_str()));
    let scope = Scope { inputs: &inputs, vars: &var_names, nodes: &pending, ids: &ids, declared: &declared };
    let mut edges = Vec::new();
    for (i, p) in pending.iter().enumerate() {
        for (r, extra) in &p.reads {
            if let Some(from) = scope.check(r, Some((i, *extra)), diags) {
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
    crate::lints::kinds(&plan, diags);
    crate::lints::unreachable(&plan, diags);
    crate::lints::unused(&plan, &outputs, diags);
    crate::lints::skippable_outputs(&plan, &outputs, diags);
    Some(Flow { signature: parsed.signature.clone(), vars, outputs, plan, key, deadline })
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

fn vars(root: &Node, inputs: &Names<'_>, diags: &mut Diags) -> Vec<Var> {
    let mut out: Vec<Var> = Vec::new();
    let mut above = Names::default();
    let none = (Names::default(), HashSet::new());
    for (name, node) in entries(root, "vars") {
        let default =
            node.get("default").and_then(|d| crate::template::compile_value(d).map_err(|e| report(e, diags)).ok());
        // A var's default reads inputs and the vars above it: an order, so no cycles.
        for t in default.iter().flat_map(|d| d.templates()) {
            for r in &t.refs {
                let scope = Scope { inputs, vars: &above, nodes: &[], ids: &none.0, declared: &none.1 };
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
        above.push(name);
        out.push(Var {
            name: name.to_owned(),
            default,
            description: node.get("description").and_then(Node::as_str).map(str::to_owned),
            span: node.span,
        });
    }
    out
}

/// `key:`: a template over the inputs alone, since it is rendered when the run starts, before
/// vars exist and long before any node has a result.
fn run_key(root: &Node, inputs: &Names<'_>, diags: &mut Diags) -> Option<Template> {
    let node = root.get("key").filter(|n| !n.is_null())?;
    let key = template(node, diags)?;
    let none = (Names::default(), HashSet::new());
    let scope = Scope { inputs, vars: &none.0, nodes: &[], ids: &none.0, declared: &none.1 };
    let mut ok = true;
    for r in &key.refs {
        if r.path.first().is_some_and(|root| root == "inputs") {
            scope.check(r, None, diags);
            continue;
        }
        ok = false;
        diags
            .error("bad-key", Some(r.span), format!("the run key reads `{}`", r.dotted()))
            .label("a run key is made from the inputs alone, when the run starts")
            .help("read only `inputs.<name>`, e.g. `key: \"{{inputs.username}}\"`");
    }
    if ok && key.refs.is_empty() {
        diags
            .error("bad-key", Some(key.span), format!("the run key `{}` reads no input", key.source))
            .label("every run of the flow would have this key, and only the first would ever run")
            .help("make the key from the inputs that name what the run acts on, e.g. `\"{{inputs.username}}\"`");
        return None;
    }
    ok.then_some(key)
}

/// `deadline:`: above zero and at most [`MAX_DEADLINE`]. A malformed duration is reported by
/// the shape check.
fn deadline(root: &Node, diags: &mut Diags) -> Option<Duration> {
    let node = root.get("deadline").filter(|n| !n.is_null())?;
    let d = node.as_str().and_then(crate::shape::parse_duration)?;
    if d.is_zero() {
        diags
            .error("bad-duration", Some(node.span), "a deadline of zero ends every run before it starts")
            .label("expected a duration above zero")
            .help("give the run the time its waits need, e.g. `10m`");
        return None;
    }
    if d > MAX_DEADLINE {
        diags
            .error("bad-duration", Some(node.span), "the deadline is longer than 7 days")
            .label("expected at most `7d`")
            .help("a run that waits longer should end and be started again when there is something to do");
        return None;
    }
    Some(d)
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
    for item in items.iter().take(crate::limits::NODES.value) {
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
        let mut cx = CompileCx {
            node: item,
            id,
            flow: &sig.id,
            diags,
            catalog,
            slots: &sig.slots,
            inputs: &sig.inputs,
            recorded: Vec::new(),
        };
        let mut compiled = kind.compile(&mut cx);
        if item.get("on_error").and_then(Node::as_str) == Some("continue") {
            if let Some(c) = compiled.as_mut() {
                c.fields.push("error".to_owned());
            }
        }
        let mut reads: Vec<(Ref, Extra)> =
            cx.recorded.into_iter().flat_map(|r| r.template.refs.into_iter().map(move |x| (x, r.extra))).collect();
        reads.extend(when.iter().flat_map(|t| t.refs.iter().map(|r| (r.clone(), Extra::None))));
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
/// Every node id written in the file, compiled or not: a reference to a node that failed to
/// compile is not reported again.
fn declared_ids(root: &Node) -> HashSet<&str> {
    let items = root.get("nodes").and_then(Node::as_seq).unwrap_or_default();
    items.iter().filter_map(|n| n.get("id")?.as_str()).collect()
}

fn after_edges(
    node: &Node,
    to: usize,
    ids: &Names<'_>,
    declared: &HashSet<&str>,
    diags: &mut Diags,
) -> Vec<(usize, usize, Edge)> {
    let mut out = Vec::new();
    for item in node.get("after").and_then(Node::as_seq).unwrap_or_default() {
        let Some(name) = item.as_str() else { continue };
        match ids.find(name) {
            Some(from) => out.push((from, to, Edge { kind: EdgeKind::After, span: item.span })),
            None if declared.contains(name) => {}
            None => {
                diags
                    .error(
                        "unknown-node",
                        Some(item.span),
                        format!("`after:` names `{name}`, which is not a node of this flow"),
                    )
                    .label(format!("expected one of {}", one_of(others(&ids.list, to))))
                    .suggest(name, others(&ids.list, to));
            }
        }
    }
    out
}

/// The node ids other than `me`'s: what an `after:` or a branch may name.
/// A chain of two slices, so that its length is known without counting (see `one_of`).
fn others<'a>(ids: &'a [&'a str], me: usize) -> impl Iterator<Item = &'a str> + Clone + 'a {
    let (before, after) = ids.split_at(me.min(ids.len()));
    before.iter().chain(after.iter().skip(1)).copied()
}

/// Adds an edge from each branching node to each of its targets; returns every node's guards.
fn branch_edges(
    pending: &[Pending],
    ids: &Names<'_>,
    declared: &HashSet<&str>,
    edges: &mut Vec<(usize, usize, Edge)>,
    diags: &mut Diags,
) -> Vec<Vec<Guard>> {
    let mut guards: Vec<Vec<Guard>> = vec![Vec::new(); pending.len()];
    for (s, p) in pending.iter().enumerate() {
        for branch in &p.compiled.branches {
            for (target, span) in &branch.targets {
                let Some(t) = ids.find(target) else {
                    if declared.contains(target.as_str()) {
                        continue;
                    }
                    diags
                        .error(
                            "unknown-node",
                            Some(*span),
                            format!("branch `{}` names `{target}`, which is not a node of this flow", branch.name),
                        )
                        .label(format!("expected one of {}", one_of(others(&ids.list, s))))
                        .suggest(target, others(&ids.list, s));
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
