//! The seam between the engine and the node kinds: one trait, one registry.
//!
//! The engine knows flows, not Duo: it never names a node kind. A kind declares its fields (for
//! checking, the schema and the docs) and compiles its part of a node through [`CompileCx`],
//! which compiles templates, records what they read and reports problems into the diagnostics.
//! What the kind hands back ([`Compiled`]) tells the engine what the node offers to later nodes
//! and how it shapes the graph (subflow calls, branches, ending the run).

use std::fmt::Debug;

use crate::diag::{Diagnostic, Diags};
use crate::limits::Limit;
use crate::model::{Input, Signature, Slot};
pub use crate::node::{Effect, NodeExec, Reconciled};
use crate::shape::Field;
use crate::template::{Template, TemplateError, ValueTemplate};
use crate::yaml::{Node, Span};

/// A kind of node, such as a REST call or a subflow. Implemented in `flowcat-nodes`.
pub trait NodeKind: Sync {
    /// The word written after `kind:`.
    fn name(&self) -> &'static str;
    /// One sentence for `flowcat schema`, the docs and "did you mean".
    fn summary(&self) -> &'static str;
    /// The fields this kind adds to a node, beside `id`, `kind`, `after`, `when`, `description`.
    fn fields(&self) -> &'static [Field];
    /// Compiles the node's fields; returns `None` when it reported an error.
    fn compile(&self, cx: &mut CompileCx<'_>) -> Option<Compiled>;
}

/// A warning a kind found while compiling a node. Reported, like every warning, only once the
/// flow has no errors.
#[derive(Clone, Debug)]
pub struct Lint {
    pub code: &'static str,
    pub span: Span,
    pub message: String,
    pub label: Option<String>,
    pub help: Option<String>,
}

/// What a kind returns from [`NodeKind::compile`].
#[derive(Debug)]
pub struct Compiled {
    pub exec: Box<dyn NodeExec>,
    /// The names later nodes may read as `nodes.<id>.<field>`.
    pub fields: Vec<String>,
    /// The flow this node runs as a subflow, if any.
    pub calls: Option<Call>,
    /// Nodes that run only when this node picks their branch.
    pub branches: Vec<Branch>,
    /// The run ends when this node runs: nothing can follow it.
    pub ends_run: bool,
    /// The node has no effect beside its result: nobody reading it means it is unused.
    pub pure: bool,
    /// Warnings about the node, reported once the flow has no errors.
    pub lints: Vec<Lint>,
    /// The signal the node waits for (`wait_for`): a run of the flow accepts it.
    pub signal: Option<crate::journal::SignalSpec>,
    /// What the node needs granted by the service behind its integration (an API's
    /// permissions, in the service's words). `Catalog::permissions` gathers a flow's, its
    /// subflows' included, for `flowcat list`.
    pub permissions: Vec<String>,
}

impl Compiled {
    pub fn new(exec: Box<dyn NodeExec>, fields: Vec<String>) -> Self {
        Compiled {
            exec,
            fields,
            calls: None,
            branches: Vec::new(),
            ends_run: false,
            pure: false,
            lints: Vec::new(),
            signal: None,
            permissions: Vec::new(),
        }
    }
}

/// A subflow call: which flow, and where the author named it.
#[derive(Clone, Debug)]
pub struct Call {
    pub flow: String,
    pub span: Span,
}

/// One branch of a branching node: its name and the nodes it guards.
#[derive(Clone, Debug)]
pub struct Branch {
    pub name: String,
    pub targets: Vec<(String, Span)>,
}

/// An integration kind (`http`, or a vendor API) that flow slots may ask for.
#[derive(Debug)]
pub struct IntegrationKind {
    pub name: &'static str,
    pub doc: &'static str,
}

/// Every node kind and integration kind there is; built by `flowcat-nodes`.
#[derive(Debug)]
pub struct Registry {
    pub kinds: &'static [&'static dyn NodeKind],
    pub integration_kinds: &'static [IntegrationKind],
}

impl Debug for dyn NodeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NodeKind({})", self.name())
    }
}

impl Registry {
    pub fn kind(&self, name: &str) -> Option<&'static dyn NodeKind> {
        self.kinds.iter().copied().find(|k| k.name() == name)
    }
}

/// Looks up other flows of the catalog while compiling a node.
pub trait Signatures {
    fn signature(&self, flow_id: &str) -> Option<&Signature>;
    fn flow_ids(&self) -> Vec<&str>;
}

/// The names a template may read beside `inputs`, `vars` and `nodes`, by where it is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Extra {
    #[default]
    None,
    /// `self.<field>`: the node's latest result (a poll's `until`, a reconcile's `done`).
    This,
    /// `item` and `index`: one item of the list a node runs a subflow for, and its position.
    Item,
}

/// A template compiled for a node, kept for checking what it reads.
#[derive(Clone, Debug)]
pub(crate) struct Recorded {
    pub template: Template,
    pub extra: Extra,
}

/// What a node kind sees while compiling one node.
pub struct CompileCx<'a> {
    /// The node's YAML mapping, already checked against the kind's fields.
    pub node: &'a Node,
    pub id: &'a str,
    /// The id of the flow being compiled.
    pub flow: &'a str,
    pub(crate) diags: &'a mut Diags,
    pub(crate) catalog: &'a dyn Signatures,
    pub(crate) slots: &'a [Slot],
    pub(crate) inputs: &'a [Input],
    pub(crate) recorded: Vec<Recorded>,
}

impl Debug for CompileCx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompileCx").field("id", &self.id).finish_non_exhaustive()
    }
}

impl<'a> CompileCx<'a> {
    pub fn get(&self, key: &str) -> Option<&'a Node> {
        self.node.get(key)
    }

    /// A scalar field's text.
    pub fn str(&self, key: &str) -> Option<&'a str> {
        self.get(key).filter(|n| !n.is_null()).and_then(Node::as_str)
    }

    pub fn key_span(&self, key: &str) -> Span {
        self.node.key_span(key).unwrap_or(self.node.span)
    }

    /// Compiles the field `key` as a template.
    pub fn template(&mut self, key: &str) -> Option<Template> {
        let node = self.get(key)?;
        self.template_of(node, false)
    }

    /// Compiles `node` as a template; `allow_self` lets it read the node's own result.
    pub fn template_of(&mut self, node: &Node, allow_self: bool) -> Option<Template> {
        match crate::template::compile(node) {
            Ok(t) => {
                let extra = if allow_self { Extra::This } else { Extra::None };
                self.recorded.push(Recorded { template: t.clone(), extra });
                Some(t)
            }
            Err(errors) => {
                self.report(errors);
                None
            }
        }
    }

    /// Compiles the field `key` as a JSON-shaped value whose strings may be templates.
    pub fn value(&mut self, key: &str) -> Option<ValueTemplate> {
        let node = self.get(key)?;
        self.value_of(node)
    }

    pub fn value_of(&mut self, node: &Node) -> Option<ValueTemplate> {
        self.value_reading(node, Extra::None)
    }

    /// Compiles `node` as a JSON-shaped value whose templates may also read `extra`'s names
    /// (`item` and `index` in a `for_each`'s `with:`).
    pub fn value_reading(&mut self, node: &Node, extra: Extra) -> Option<ValueTemplate> {
        match crate::template::compile_value(node) {
            Ok(v) => {
                for t in v.templates() {
                    self.recorded.push(Recorded { template: t.clone(), extra });
                }
                Some(v)
            }
            Err(errors) => {
                self.report(errors);
                None
            }
        }
    }

    fn report(&mut self, errors: Vec<TemplateError>) {
        crate::template::report(errors, self.diags);
    }

    /// Reports an error at `span`; finish it with `label` and `help`.
    pub fn error(&mut self, code: &'static str, span: Span, message: impl Into<String>) -> &mut Diagnostic {
        self.diags.error(code, Some(span), message)
    }

    /// Reports that `limit` is crossed at `span`; `how` says how to stay under it.
    pub fn limit(&mut self, limit: Limit, span: Span, message: impl Into<String>, how: &str) -> &mut Diagnostic {
        self.diags.limit(limit, Some(span), message, how)
    }

    pub fn warning(&mut self, code: &'static str, span: Span, message: impl Into<String>) -> &mut Diagnostic {
        self.diags.warning(code, Some(span), message)
    }

    pub fn signature(&self, flow_id: &str) -> Option<&Signature> {
        self.catalog.signature(flow_id)
    }

    pub fn flow_ids(&self) -> Vec<&str> {
        self.catalog.flow_ids()
    }

    /// The integration slots the flow declares.
    pub fn slots(&self) -> &[Slot] {
        self.slots
    }

    /// The inputs the flow declares, with their types.
    pub fn inputs(&self) -> &[Input] {
        self.inputs
    }
}
