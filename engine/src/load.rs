//! Pass one: a flow file's text → a YAML tree checked against the format → its signature.
//!
//! A signature is all that other flows need to call this one, so every file of a catalog goes
//! through this pass before any flow is compiled.

use std::sync::Arc;

use crate::check::Checker;
use crate::diag::{Diags, Source};
use crate::format::FLOW_FIELDS;
use crate::kind::Registry;
use crate::limits;
use crate::model::{Input, InputType, OutputSig, Signature, Slot};
use crate::shape::Shape;
use crate::yaml::{self, Node, Pos, Span};

/// A flow file after pass one: its tree, its signature, and what was found wrong so far.
#[derive(Debug)]
pub struct Parsed {
    pub root: Node,
    pub signature: Signature,
    pub diags: Diags,
}

/// Parses and checks one file. `None` when it is not even a YAML mapping with an `id`:
/// then `diags` says why.
pub fn parse(source: Arc<Source>, registry: &Registry) -> Result<Parsed, Diags> {
    let mut diags = Diags::new(source.clone());
    if source.text.len() > limits::FILE_BYTES.value {
        let span = byte_span(&source.text, limits::FILE_BYTES.value);
        let message = format!("the file is {} bytes long", limits::group(source.text.len()));
        diags.limit(limits::FILE_BYTES, Some(span), message, "split the flow into subflows");
        return Err(diags);
    }
    let root = match yaml::parse(&source.text) {
        Ok(Some(root)) => root,
        Ok(None) => {
            diags.error("empty-file", None, "the file is empty").help("a flow needs at least `id:` and `nodes:`");
            return Err(diags);
        }
        Err(e) => {
            syntax_error(&mut diags, e);
            return Err(diags);
        }
    };
    Checker { registry, diags: &mut diags }.check(&root, &Shape::Object(FLOW_FIELDS), "the flow");
    let Some(id) = root.get("id").and_then(Node::as_str).filter(|_| root.as_map().is_some()) else {
        return Err(diags);
    };
    let signature = Signature {
        id: id.to_owned(),
        name: text(&root, "name"),
        description: text(&root, "description"),
        path: source.path.clone(),
        inputs: inputs(&root, &mut diags),
        outputs: entries(&root, "outputs")
            .map(|(k, v)| OutputSig {
                name: k.to_owned(),
                description: v.get("description").and_then(Node::as_str).map(str::to_owned),
            })
            .collect(),
        slots: entries(&root, "integrations")
            .map(|(k, v)| Slot {
                name: k.to_owned(),
                kind: v.get("kind").and_then(Node::as_str).unwrap_or_default().to_owned(),
                description: v.get("description").and_then(Node::as_str).map(str::to_owned),
                required: v.get("required").and_then(Node::as_bool).unwrap_or(true),
                span: v.span,
            })
            .collect(),
    };
    Ok(Parsed { root, signature, diags })
}

/// A YAML syntax error, or a limit crossed while the tree was built, at its place.
fn syntax_error(diags: &mut Diags, e: yaml::SyntaxError) {
    let span = Span { start: e.pos, end: Pos { line: e.pos.line, col: e.pos.col + 1 } };
    let d = match e.limit {
        Some(limit) => diags.limit(limit, Some(span), e.message, e.help.unwrap_or("flatten the value")),
        None => diags
            .error("yaml-syntax", Some(span), format!("invalid YAML: {}", e.message))
            .label("the YAML parser stopped here")
            .help(e.help.unwrap_or("check the indentation and that every quote and bracket is closed")),
    };
    if let Some(label) = e.label {
        d.label(label);
    }
}

/// The one-character span of byte `at` of `text` (rounded down to a character). Counted with
/// `str` searches, which are fast even in debug builds, since `text` may be many megabytes.
fn byte_span(text: &str, at: usize) -> Span {
    let at = (0..=at.min(text.len())).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
    let before = &text[..at];
    // Lines end with `\n`, or with a lone `\r` in a file that has no `\n` (old Mac files).
    let brk = if text.contains('\n') { '\n' } else { '\r' };
    let line = before.matches(brk).count() + 1;
    let line_start = before.rfind(brk).map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    let start = Pos { line: line as u32, col: col as u32 };
    Span { start, end: Pos { col: start.col + 1, ..start } }
}

fn text(node: &Node, key: &str) -> Option<String> {
    node.get(key).filter(|n| !n.is_null()).and_then(Node::as_str).map(str::to_owned)
}

/// The pairs of a top-level mapping such as `inputs`, skipping keys that are not strings.
pub(crate) fn entries<'a>(root: &'a Node, key: &str) -> impl Iterator<Item = (&'a str, &'a Node)> {
    root.get(key).and_then(Node::as_map).unwrap_or_default().iter().filter_map(|(k, v)| Some((k.as_str()?, v)))
}

fn inputs(root: &Node, diags: &mut Diags) -> Vec<Input> {
    let mut out = Vec::new();
    for (name, node) in entries(root, "inputs") {
        // An input whose type is unknown is still declared (its error is reported by the
        // checker), so that templates reading it are not reported again.
        let parsed = node.get("type").and_then(Node::as_str).and_then(InputType::parse);
        let ty = parsed.unwrap_or(InputType::String);
        let default = node.get("default").map(|d| typed_default(d, ty));
        if let (Some(d), Some(value), Some(_)) = (node.get("default"), &default, parsed) {
            if !ty.accepts(value) {
                diags
                    .error("wrong-type", Some(d.span), format!("the default of input `{name}` is not a {}", ty.name()))
                    .label(format!("expected a {}", ty.name()));
            }
        }
        let explicit = node.get("required").and_then(Node::as_bool);
        if explicit == Some(true) && default.is_some() {
            diags
                .error("conflict", node.key_span("required"), format!("input `{name}` is required and has a default"))
                .label("a default makes the input optional")
                .help("remove `required: true` or the `default`");
        }
        let pattern = node.get("pattern").and_then(|p| pattern(name, p, ty, diags));
        out.push(Input {
            name: name.to_owned(),
            ty,
            required: explicit.unwrap_or(default.is_none()),
            default,
            description: text(node, "description"),
            pattern,
            span: node.span,
        });
    }
    out
}

/// A default is taken as its type asks: a string-typed `0123` stays `"0123"`.
fn typed_default(node: &Node, ty: InputType) -> serde_json::Value {
    match (ty, node.as_str()) {
        (InputType::String, Some(s)) if !node.is_null() => serde_json::Value::String(s.to_owned()),
        _ => node.to_json(),
    }
}

fn pattern(name: &str, node: &Node, ty: InputType, diags: &mut Diags) -> Option<regex::Regex> {
    let text = node.as_str()?;
    if ty != InputType::String {
        diags
            .error("conflict", Some(node.span), format!("input `{name}` has a `pattern` but is not a string"))
            .help("patterns apply to `type: string` inputs");
        return None;
    }
    // Anchored: a pattern describes the whole value, not a part of it.
    match regex::Regex::new(&format!("^(?:{text})$")) {
        Ok(re) => Some(re),
        Err(e) => {
            let text = e.to_string();
            let reason = text.lines().last().unwrap_or_default().trim();
            let reason = reason.strip_prefix("error: ").unwrap_or(reason).to_owned();
            diags
                .error(
                    "bad-pattern",
                    Some(node.span),
                    format!("the pattern of input `{name}` is not a valid regular expression"),
                )
                .label(reason)
                .help("patterns use Rust's `regex` syntax, matched against the whole value");
            None
        }
    }
}
