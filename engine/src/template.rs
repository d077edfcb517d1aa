//! Templates: handlebars text compiled once, with the names it reads listed for checking and
//! for inferring edges.
//!
//! A template reads `inputs.<name>`, `vars.<name>`, `nodes.<id>.<field>…` and, in a few places
//! (a poll's `until`), `self.<field>…`. Paths inside `{{#each}}` and `{{#with}}` blocks are
//! relative to the block's item and are not checked, except `@root.` paths.

mod arity;
mod guard;
mod locate;
mod logic;
mod operators;

use handlebars::template::{HelperTemplate, Parameter, TemplateElement};
use handlebars::{Path, PathSeg};

use crate::diag::Diags;
use crate::limits::{self, Limit};
use crate::yaml::{Node, Span, Value};
use locate::Locator;
pub use logic::{Expr, Logic, Op};

/// The helpers a template may call: handlebars' built-ins that make sense in a flow.
pub const HELPERS: &[&str] = &[
    "if", "unless", "each", "with", "lookup", "eq", "ne", "gt", "gte", "lt", "lte", "and", "or", "not", "len",
    "coalesce",
];

/// The helper whose arguments are read softly: `{{coalesce a b c}}` is the first of its
/// arguments that has a value (neither missing nor null), and a node it reads may have been
/// skipped without skipping the reader.
pub const COALESCE: &str = "coalesce";

/// A compiled template and what it reads.
#[derive(Clone, Debug)]
pub struct Template {
    pub source: String,
    pub span: Span,
    pub compiled: handlebars::Template,
    pub refs: Vec<Ref>,
    /// Set when the whole template is one `{{path}}`: then the value keeps its JSON type.
    pub single: Option<Vec<String>>,
    /// Set when the whole template is one `{{coalesce …}}` of paths and literals: then the
    /// value chosen keeps its JSON type.
    pub coalesce: Option<Vec<Arg>>,
    /// Set when the whole template is one boolean helper or one `{{#if}}` between two texts:
    /// then it is evaluated without handlebars.
    pub logic: Option<Logic>,
}

/// An argument of a `coalesce` that makes up a whole template.
#[derive(Clone, Debug, PartialEq)]
pub enum Arg {
    Path(Vec<String>),
    Literal(serde_json::Value),
}

/// One path a template reads, such as `nodes.lookup.user_id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ref {
    pub path: Vec<String>,
    pub span: Span,
    /// Written into the output outside any block (`{{path}}`), as opposed to given to a helper
    /// (`{{#if path}}`) or written inside a block: a missing or null interpolated value is an
    /// error; the others may be missing (null, rendered empty).
    pub interpolated: bool,
    /// An argument of `coalesce`: the reader waits for the node, but a skipped node does not
    /// skip the reader (its value is missing).
    pub soft: bool,
}

impl Ref {
    pub fn dotted(&self) -> String {
        self.path.join(".")
    }
}

/// A template that failed to compile, or that calls an unknown helper.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateError {
    pub message: String,
    pub span: Span,
    pub help: Option<String>,
    /// Set when the template crosses one of flowcat's limits (reported as `limit`).
    pub limit: Option<Limit>,
}

/// A JSON-shaped value whose strings may be templates: a body, a query, a `with:` block.
#[derive(Clone, Debug)]
pub enum ValueTemplate {
    Literal(serde_json::Value),
    Template(Box<Template>),
    List(Vec<ValueTemplate>),
    Object(Vec<(String, ValueTemplate)>),
}

impl ValueTemplate {
    /// Every template inside, depth first.
    pub fn templates(&self) -> Vec<&Template> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out
    }

    fn collect<'a>(&'a self, out: &mut Vec<&'a Template>) {
        match self {
            ValueTemplate::Literal(_) => {}
            ValueTemplate::Template(t) => out.push(t),
            ValueTemplate::List(items) => items.iter().for_each(|i| i.collect(out)),
            ValueTemplate::Object(pairs) => pairs.iter().for_each(|(_, v)| v.collect(out)),
        }
    }
}

/// Compiles the scalar `node` as a template.
pub fn compile(node: &Node) -> Result<Template, Vec<TemplateError>> {
    let source = node.as_str().unwrap_or_default().to_owned();
    let mut locate = Locator::new(node);
    // Before handlebars: its parser and our walk recurse, and both are slow on huge inputs.
    if let Err(crossed) = guard::scan(&source) {
        let span = locate.at_byte(crossed.byte, 2);
        let help = crossed.limit.help("split it into several templates, nodes or `set` values");
        return Err(vec![TemplateError {
            message: crossed.message,
            span,
            help: Some(help),
            limit: Some(crossed.limit),
        }]);
    }
    if let Some(op) = operators::find(&source) {
        let span = locate.at_byte(op.byte, op.text.len());
        return Err(vec![TemplateError { message: op.message, span, help: Some(op.help), limit: None }]);
    }
    let compiled = handlebars::Template::compile(&source).map_err(|e| {
        let span = e.pos().map_or(node.span, |(line, col)| locate.at(line, col.saturating_sub(1), 2));
        vec![syntax_error(&e, span)]
    })?;
    let mut walk =
        Walk { locate, text: &source, refs: Vec::new(), errors: Vec::new(), cursor: 0, mark: 0, over: false, depth: 0 };
    walk.elements(&compiled.elements, false);
    if !walk.errors.is_empty() {
        return Err(walk.errors);
    }
    let (single, coalesce) = match compiled.elements.as_slice() {
        [TemplateElement::Expression(h)] if is_plain_path(h) => (walk.refs.first().map(|r| r.path.clone()), None),
        [TemplateElement::Expression(h)] => (None, coalesce_args(h)),
        _ => (None, None),
    };
    let logic = Logic::compile(&compiled.elements);
    let refs = walk.refs;
    Ok(Template { source, span: node.span, compiled, refs, single, coalesce, logic })
}

/// Compiles a JSON-shaped value: strings holding `{{` become templates.
pub fn compile_value(node: &Node) -> Result<ValueTemplate, Vec<TemplateError>> {
    match &node.value {
        Value::Scalar { text, .. } if text.contains("{{") => Ok(ValueTemplate::Template(Box::new(compile(node)?))),
        Value::Scalar { .. } => Ok(ValueTemplate::Literal(node.to_json())),
        Value::Seq(items) => {
            let mut errors = Vec::new();
            let out: Vec<ValueTemplate> =
                items.iter().filter_map(|i| compile_value(i).map_err(|e| errors.extend(e)).ok()).collect();
            if errors.is_empty() { Ok(ValueTemplate::List(out)) } else { Err(errors) }
        }
        Value::Map(pairs) => {
            let mut errors = Vec::new();
            let mut out = Vec::new();
            for (k, v) in pairs {
                match compile_value(v) {
                    Ok(t) => out.push((k.as_str().unwrap_or_default().to_owned(), t)),
                    Err(e) => errors.extend(e),
                }
            }
            if errors.is_empty() { Ok(ValueTemplate::Object(out)) } else { Err(errors) }
        }
    }
}

fn syntax_error(e: &handlebars::TemplateError, span: Span) -> TemplateError {
    use handlebars::TemplateErrorReason as R;
    let (message, help) = match e.reason() {
        R::MismatchingClosedHelper(open, close) => {
            (format!("`{{{{#{open}}}}}` is closed by `{{{{/{close}}}}}`"), format!("close it with `{{{{/{open}}}}}`"))
        }
        R::InvalidParam(p) => (format!("invalid parameter `{p}` in template"), "check the quoting".to_owned()),
        _ => (
            "invalid handlebars template".to_owned(),
            "check that every `{{` has its `}}` and every `{{#if}}` its `{{/if}}`".to_owned(),
        ),
    };
    TemplateError { message, span, help: Some(help), limit: None }
}

/// The arguments of `{{coalesce …}}` when each is a path or a literal.
fn coalesce_args(h: &HelperTemplate) -> Option<Vec<Arg>> {
    if !matches!(&h.name, Parameter::Name(n) if n == COALESCE) || !h.hash.is_empty() {
        return None;
    }
    h.params
        .iter()
        .map(|p| match p {
            Parameter::Path(Path::Relative((segs, _))) => Some(Arg::Path(named(segs))),
            Parameter::Literal(v) => Some(Arg::Literal(v.clone())),
            _ => None,
        })
        .collect()
}

fn named(segs: &[PathSeg]) -> Vec<String> {
    segs.iter()
        .filter_map(|s| match s {
            PathSeg::Named(n) => Some(n.clone()),
            _ => None,
        })
        .collect()
}

/// `{{a.b}}` with no helper and no parameters.
fn is_plain_path(h: &HelperTemplate) -> bool {
    matches!(h.name, Parameter::Path(Path::Relative(_))) && h.params.is_empty() && h.hash.is_empty()
}

struct Walk<'a> {
    locate: Locator<'a>,
    text: &'a str,
    refs: Vec<Ref>,
    errors: Vec<TemplateError>,
    /// Where in the source the last path was found, so that repeated paths get their own spans.
    cursor: usize,
    /// `cursor` when the current element began: a helper's `key=value` arguments come out of
    /// handlebars in another order than written, and are searched for again from here.
    mark: usize,
    /// Set once the template read more paths than allowed.
    over: bool,
    /// How many blocks (`{{#if}}`, `{{#each}}`…) enclose the element being walked.
    depth: usize,
}

impl Walk<'_> {
    fn elements(&mut self, elements: &[TemplateElement], relative: bool) {
        for el in elements {
            self.mark = self.cursor;
            self.locate.checkpoint();
            match el {
                TemplateElement::Expression(h) | TemplateElement::HtmlExpression(h) => self.helper(h, relative),
                TemplateElement::HelperBlock(h) => {
                    self.helper(h, relative);
                    let inner = relative || matches!(&h.name, Parameter::Name(n) if n == "each" || n == "with");
                    // What a block renders depends on its condition: a value written inside it
                    // may be missing when the block is not rendered.
                    self.depth += 1;
                    if let Some(t) = &h.template {
                        self.elements(&t.elements, inner);
                    }
                    if let Some(t) = &h.inverse {
                        self.elements(&t.elements, relative);
                    }
                    self.depth -= 1;
                }
                TemplateElement::RawString(_) | TemplateElement::Comment(_) => {}
                _ => self.errors.push(TemplateError {
                    message: "partials and decorators are not available in flow templates".into(),
                    span: self.locate.span,
                    help: Some("use `{{#if}}`, `{{#each}}` and the comparison helpers".into()),
                    limit: None,
                }),
            }
        }
    }

    fn helper(&mut self, h: &HelperTemplate, relative: bool) {
        match &h.name {
            Parameter::Name(name) if !HELPERS.contains(&name.as_str()) => {
                let span = self.find(name);
                let message = format!("unknown helper `{name}`");
                let mut err = TemplateError { message, span, help: None, limit: None };
                if let Some(near) = crate::diag::did_you_mean(name, HELPERS.iter().copied()) {
                    err.help = Some(format!("did you mean `{near}`?"));
                } else {
                    err.help = Some(format!("the helpers are {}", crate::diag::one_of(HELPERS.iter().copied())));
                }
                self.errors.push(err);
            }
            Parameter::Name(name) => {
                if let Err((message, help)) = arity::check(name, h.params.len()) {
                    let span = self.find(name);
                    self.errors.push(TemplateError { message, span, help: Some(help), limit: None });
                }
            }
            other => self.param(other, relative, self.depth == 0, false),
        }
        let soft = matches!(&h.name, Parameter::Name(n) if n == COALESCE);
        for p in h.params.iter().chain(h.hash.values()) {
            self.param(p, relative, false, soft);
        }
    }

    fn param(&mut self, p: &Parameter, relative: bool, interpolated: bool, soft: bool) {
        match p {
            Parameter::Path(Path::Relative((segs, raw))) => self.path(segs, raw, relative, interpolated, soft),
            Parameter::Subexpression(sub) => {
                if let TemplateElement::Expression(h) = sub.as_element() {
                    self.helper(h, relative);
                }
            }
            _ => {}
        }
    }

    fn path(&mut self, segs: &[PathSeg], raw: &str, relative: bool, interpolated: bool, soft: bool) {
        let rooted = matches!(segs.first(), Some(PathSeg::Ruled(_))) && raw.starts_with("@root");
        if relative && !rooted {
            return;
        }
        let path = named(segs);
        if path.is_empty() {
            return;
        }
        if self.refs.len() >= limits::TEMPLATE_REFS.value {
            // Reported once, at the first path past the limit.
            if !std::mem::replace(&mut self.over, true) {
                let span = self.find(raw);
                self.errors.push(TemplateError {
                    message: format!(
                        "the template reads more than {} paths",
                        limits::group(limits::TEMPLATE_REFS.value)
                    ),
                    span,
                    help: Some(limits::TEMPLATE_REFS.help("split it into several templates, nodes or `set` values")),
                    limit: Some(limits::TEMPLATE_REFS),
                });
            }
            return;
        }
        let span = self.find(raw);
        self.refs.push(Ref { path, span, interpolated, soft });
    }

    /// The span of `needle`'s next occurrence in the template source: after the last path
    /// found, else after the start of the current element, else anywhere.
    fn find(&mut self, needle: &str) -> Span {
        let text = self.text;
        let after = |from: usize| text.get(from..).and_then(|t| t.find(needle)).map(|i| i + from);
        match after(self.cursor).or_else(|| after(self.mark)).or_else(|| after(0)) {
            Some(byte) => {
                self.cursor = byte + needle.len();
                self.locate.at_byte(byte, needle.chars().count())
            }
            None => self.locate.span,
        }
    }
}

/// Reports template errors as diagnostics.
pub(crate) fn report(errors: Vec<TemplateError>, diags: &mut Diags) {
    for e in errors {
        let code = if e.limit.is_some() { "limit" } else { "bad-template" };
        let d = diags.error(code, Some(e.span), e.message);
        if let Some(h) = e.help {
            d.help(h);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(src: &str) -> Node {
        crate::yaml::parse(&format!("t: {src}\n")).ok().flatten().and_then(|n| n.get("t").cloned()).expect("yaml")
    }

    fn refs(src: &str) -> Vec<String> {
        compile(&node(src)).expect("compiles").refs.iter().map(Ref::dotted).collect()
    }

    #[test]
    fn lists_every_path_read() {
        assert_eq!(refs("'{{eq nodes.a.found false}}'"), ["nodes.a.found"]);
        assert_eq!(refs("'{{#if nodes.a.found}}x{{else}}{{inputs.y}}{{/if}}'"), ["nodes.a.found", "inputs.y"]);
        assert_eq!(refs("'{{not (eq inputs.a vars.b)}}'"), ["inputs.a", "vars.b"]);
        assert_eq!(refs("'{{#each inputs.l}}{{this.n}}{{@index}}{{@root.vars.z}}{{/each}}'"), ["inputs.l", "vars.z"]);
    }

    #[test]
    fn a_single_path_keeps_its_type() {
        let t = compile(&node("'{{nodes.lookup.user_id}}'")).expect("compiles");
        assert_eq!(t.single, Some(vec!["nodes".into(), "lookup".into(), "user_id".into()]));
        let t = compile(&node("'id {{nodes.lookup.user_id}}'")).expect("compiles");
        assert_eq!(t.single, None);
    }

    #[test]
    fn paths_point_at_their_column() {
        let t = compile(&node("'x {{inputs.a}} {{inputs.a}}'")).expect("compiles");
        assert_eq!(t.refs[0].span.start.col, 9);
        assert_eq!(t.refs[1].span.start.col, 22);
    }

    #[test]
    fn paths_point_at_their_column_through_escapes_and_block_scalars() {
        let src = "a: \"say \\\"hi\\\" {{inputs.x}}\"\nb: 'it''s {{inputs.y}}'\nc: |\n  hello\n  {{inputs.z}}\nd: >-\n    one\n    two {{inputs.w}}\n";
        let doc = crate::yaml::parse(src).ok().flatten().expect("yaml");
        let at = |key: &str| {
            let t = compile(doc.get(key).expect(key)).expect("compiles");
            (t.refs[0].span.start.line, t.refs[0].span.start.col)
        };
        assert_eq!(at("a"), (1, 18));
        assert_eq!(at("b"), (2, 13));
        assert_eq!(at("c"), (5, 5));
        assert_eq!(at("d"), (8, 11));
    }

    #[test]
    fn coalesce_reads_its_arguments_softly_and_keeps_their_type_when_alone() {
        let t = compile(&node("'{{coalesce nodes.a.id nodes.b.id \"none\"}}'")).expect("compiles");
        let soft: Vec<(String, bool)> = t.refs.iter().map(|r| (r.dotted(), r.soft)).collect();
        assert_eq!(soft, [("nodes.a.id".into(), true), ("nodes.b.id".into(), true)]);
        let args = t.coalesce.expect("a whole-template coalesce");
        assert_eq!(args[2], Arg::Literal(serde_json::json!("none")));
        let t = compile(&node("'{{#if (coalesce nodes.a.ok)}}{{nodes.c.x}}{{/if}}'")).expect("compiles");
        let soft: Vec<bool> = t.refs.iter().map(|r| r.soft).collect();
        assert_eq!(soft, [true, false]);
        assert!(t.coalesce.is_none());
    }

    #[test]
    fn unknown_helpers_and_bad_syntax_are_errors() {
        let e = compile(&node("'{{equals inputs.a 1}}'")).expect_err("unknown helper");
        assert_eq!(e[0].message, "unknown helper `equals`");
        let e = compile(&node("'{{#if inputs.a}}x'")).expect_err("unclosed");
        assert_eq!(e[0].message, "invalid handlebars template");
    }
}
