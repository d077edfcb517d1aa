//! What a template may read at one place of a flow, and the check of each path it reads.
//!
//! Names are looked up through hash maps: a flow with thousands of nodes, vars or references
//! must be checked in time linear in its size, not in the product of two of them.

use std::collections::{HashMap, HashSet};

use super::Pending;
use crate::diag::{Diags, one_of};
use crate::kind::Extra;
use crate::template::Ref;

/// Names in declaration order (for hints), with an index from name to position (the first,
/// when a name is declared twice: that is reported elsewhere).
#[derive(Debug, Default)]
pub(super) struct Names<'a> {
    pub list: Vec<&'a str>,
    index: HashMap<&'a str, usize>,
}

impl<'a> Names<'a> {
    pub fn new(names: impl IntoIterator<Item = &'a str>) -> Self {
        let mut out = Names::default();
        names.into_iter().for_each(|n| out.push(n));
        out
    }

    pub fn push(&mut self, name: &'a str) {
        self.index.entry(name).or_insert(self.list.len());
        self.list.push(name);
    }

    pub fn find(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }
}

/// What a template may read at one place of a flow.
pub(super) struct Scope<'a> {
    pub inputs: &'a Names<'a>,
    pub vars: &'a Names<'a>,
    pub nodes: &'a [Pending],
    pub ids: &'a Names<'a>,
    /// Every node id written in the file, compiled or not.
    pub declared: &'a HashSet<&'a str>,
}

impl Scope<'_> {
    /// Checks one path. `reader` is the reading node and the names it may read beside
    /// `inputs`, `vars` and `nodes` (`self.`, or `item` and `index`). Returns the node read,
    /// for a data edge.
    pub fn check(&self, r: &Ref, reader: Option<(usize, Extra)>, diags: &mut Diags) -> Option<usize> {
        let root = r.path[0].as_str();
        let name = r.path.get(1).map(String::as_str);
        match (root, name) {
            ("inputs", Some(n)) => {
                self.known(r, "input", n, self.inputs, diags);
                None
            }
            ("vars", Some(n)) => {
                self.known(r, "var", n, self.vars, diags);
                None
            }
            ("nodes", Some(n)) => self.node_ref(r, n, reader, diags),
            ("self", _) if reader.is_some_and(|(_, e)| e == Extra::This) => {
                let (i, _) = reader?;
                self.field(r, i, r.path.get(1), diags);
                None
            }
            // The item is any JSON value: what it holds is known only at run time.
            ("item", _) | ("index", None) if reader.is_some_and(|(_, e)| e == Extra::Item) => None,
            _ => {
                self.unknown_root(r, reader.map(|(_, e)| e).unwrap_or_default(), diags);
                None
            }
        }
    }

    fn known(&self, r: &Ref, what: &str, name: &str, names: &Names<'_>, diags: &mut Diags) {
        if names.find(name).is_none() {
            let d = diags
                .error("unknown-name", Some(r.span), format!("`{}` names an undefined {what} `{name}`", r.dotted()))
                .label(format!("no {what} `{name}` in this flow"));
            d.help(format!("declare it under `{}s:`", what));
            d.suggest(name, names.list.iter().copied());
        }
    }

    fn node_ref(&self, r: &Ref, name: &str, reader: Option<(usize, Extra)>, diags: &mut Diags) -> Option<usize> {
        let Some(target) = self.ids.find(name) else {
            if self.declared.contains(name) {
                return None;
            }
            diags
                .error(
                    "unknown-node",
                    Some(r.span),
                    format!("`{}` reads node `{name}`, which this flow does not have", r.dotted()),
                )
                .label("no such node")
                .suggest(name, self.ids.list.iter().copied());
            return None;
        };
        if let Some((i, extra)) = reader.filter(|(i, _)| *i == target) {
            let d = diags
                .error("self-reference", Some(r.span), format!("node `{name}` reads its own result"))
                .label("a node's result exists only after it ran");
            if extra == Extra::This {
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

    fn unknown_root(&self, r: &Ref, extra: Extra, diags: &mut Diags) {
        let root = &r.path[0];
        let mut roots = vec!["inputs", "vars", "nodes"];
        match extra {
            Extra::This => roots.push("self"),
            Extra::Item => roots.extend(["item", "index"]),
            Extra::None => {}
        }
        let d = diags
            .error("unknown-name", Some(r.span), format!("a template cannot read `{}`", r.dotted()))
            .label(format!("expected a path starting with {}", one_of(roots.iter().map(|x| &**x))));
        if matches!(root.as_str(), "item" | "index") && extra != Extra::Item {
            d.help("`item` and `index` are read only in a `for_each` node's `with:`, once per item");
            return;
        }
        let guess = if self.inputs.find(root).is_some() {
            Some(format!("inputs.{}", r.dotted()))
        } else if self.vars.find(root).is_some() {
            Some(format!("vars.{}", r.dotted()))
        } else if self.ids.find(root).is_some() {
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
