//! A YAML tree in which every value knows where it came from.
//!
//! This is the only module that knows which YAML parser flowcat uses (see `docs/dependencies.md`).
//! We build our own small tree from the parser's events instead of deserialising with serde, for
//! two reasons: every value (not only the ones that failed to parse) keeps its line and column, so
//! a misspelt name inside a string can be pointed at; and scalars keep their source text, so YAML
//! 1.1 surprises (`NO` as false, `0123` as octal, `+15555550100` as a number) never happen: a
//! scalar is only given a type where the flow format expects one.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle};

use crate::limits::{self, Limit};

/// A position in a source file: line and column are 1-based, the column counts characters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

/// A range in a source file; `end` is exclusive and on the same line for scalars and keys.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Span {
    pub start: Pos,
    pub end: Pos,
}

impl Span {
    /// A span of `len` characters starting `offset` characters after this span's start, on
    /// the same line. Used to point inside a single-line scalar (a name inside a template).
    pub fn sub(&self, offset: usize, len: usize) -> Span {
        let col = self.start.col + offset as u32;
        Span {
            start: Pos { line: self.start.line, col },
            end: Pos { line: self.start.line, col: col + len.max(1) as u32 },
        }
    }
}

/// How a scalar was written: plain scalars may be typed (`true`, `42`), quoted and block
/// scalars are always strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    Plain,
    Quoted,
    Block,
}

/// One YAML value with its span.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub value: Value,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `raw` is the scalar as written in the file, kept when it differs from `text` in a way
    /// that moves characters (escapes, doubled quotes, several lines), so that a diagnostic
    /// can point at a character inside it.
    Scalar {
        text: String,
        style: Style,
        raw: Option<Box<str>>,
    },
    Seq(Vec<Node>),
    /// Pairs in source order; duplicates are kept so that the checker can report them.
    Map(Vec<(Node, Node)>),
}

/// A YAML syntax error with its position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    pub message: String,
    pub pos: Pos,
    /// Set when the file is valid YAML but crosses one of flowcat's limits.
    pub limit: Option<Limit>,
    /// What is wrong at `pos` in particular, printed under the caret.
    pub label: Option<String>,
    /// How to fix it, when the parser's message does not say.
    pub help: Option<&'static str>,
}

impl SyntaxError {
    fn at(pos: Pos, message: impl Into<String>) -> Self {
        SyntaxError { message: message.into(), pos, limit: None, label: None, help: None }
    }
}

impl Node {
    /// The scalar's text, whatever its style.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Value::Map(pairs) => Some(pairs),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Seq(items) => Some(items),
            _ => None,
        }
    }

    /// The value under `key` in a mapping (the first, if the key is duplicated).
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?.iter().find(|(k, _)| k.as_str() == Some(key)).map(|(_, v)| v)
    }

    /// The span of `key` itself in a mapping, for diagnostics about a field.
    pub fn key_span(&self, key: &str) -> Option<Span> {
        self.as_map()?.iter().find(|(k, _)| k.as_str() == Some(key)).map(|(k, _)| k.span)
    }

    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, style: Style::Plain, .. }
            if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// A plain `true`/`false` (YAML 1.2 core schema: `yes`, `no`, `on` and `off` are strings).
    pub fn as_bool(&self) -> Option<bool> {
        match &self.value {
            Value::Scalar { text, style: Style::Plain, .. } => match text.as_str() {
                "true" | "True" | "TRUE" => Some(true),
                "false" | "False" | "FALSE" => Some(false),
                _ => None,
            },
            _ => None,
        }
    }

    /// A plain scalar written as a JSON number (no leading `+`, no leading zeros, no hex).
    pub fn as_number(&self) -> Option<serde_json::Number> {
        match &self.value {
            Value::Scalar { text, style: Style::Plain, .. } if is_json_number(text) => serde_json::from_str(text).ok(),
            _ => None,
        }
    }

    /// How many values this one holds, itself included (its depth is bounded, so is the
    /// recursion).
    pub fn count(&self) -> usize {
        match &self.value {
            Value::Scalar { .. } => 1,
            Value::Seq(items) => 1 + items.iter().map(Node::count).sum::<usize>(),
            Value::Map(pairs) => 1 + pairs.iter().map(|(k, v)| k.count() + v.count()).sum::<usize>(),
        }
    }

    /// A short word for the kind of value, for "expected a string, found a mapping".
    pub fn describe(&self) -> &'static str {
        match &self.value {
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
            Value::Scalar { .. } if self.is_null() => "nothing (null)",
            Value::Scalar { .. } if self.as_bool().is_some() => "a boolean",
            Value::Scalar { .. } if self.as_number().is_some() => "a number",
            Value::Scalar { .. } => "a string",
        }
    }

    /// The value as JSON, with plain scalars typed by JSON's own rules, so that `+15555550100`
    /// and `0123` stay strings and `NO` is never false.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Scalar { text, style, .. } => {
                if *style != Style::Plain {
                    J::String(text.clone())
                } else if self.is_null() {
                    J::Null
                } else if let Some(b) = self.as_bool() {
                    J::Bool(b)
                } else if let Some(n) = self.as_number() {
                    J::Number(n)
                } else {
                    J::String(text.clone())
                }
            }
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(pairs) => {
                J::Object(pairs.iter().map(|(k, v)| (k.as_str().unwrap_or_default().to_owned(), v.to_json())).collect())
            }
        }
    }
}

/// JSON's number grammar: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
fn is_json_number(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    let int_start = i;
    let n = digits(&mut i);
    if n == 0 || (n > 1 && b[int_start] == b'0') {
        return false;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

fn pos(m: saphyr_parser::Marker) -> Pos {
    Pos { line: m.line() as u32, col: m.col() as u32 + 1 }
}

/// Parses one YAML document. An empty file is an empty mapping's absence: `Ok(None)`.
pub fn parse(text: &str) -> Result<Option<Node>, SyntaxError> {
    let mut builder = Builder { source: text, ..Builder::default() };
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| scan_error(text, &e))?;
        let raw = (span.start.index(), span.end.index());
        let span = Span { start: pos(span.start), end: pos(span.end) };
        builder.event(event, span, raw)?;
    }
    Ok(builder.root)
}

/// The parser's error, moved to the tab it complains about.
///
/// saphyr reports a tab in the indentation where it was when it noticed: after the tab, or at
/// the start of the plain scalar it was reading, lines above. The tab itself is the first one
/// in a line's indentation from the line of that marker on.
fn scan_error(text: &str, e: &saphyr_parser::ScanError) -> SyntaxError {
    let at = pos(*e.marker());
    if !e.info().contains("tab") {
        return SyntaxError::at(at, e.info());
    }
    let Some(tab) = indenting_tab(text, at.line) else { return SyntaxError::at(at, e.info()) };
    SyntaxError {
        label: Some("a tab".into()),
        help: Some("YAML indents with spaces only: replace the tab with spaces"),
        ..SyntaxError::at(tab, "a tab in the indentation")
    }
}

/// The first tab in the leading whitespace of a line, from line `from` (1-based) on.
fn indenting_tab(text: &str, from: u32) -> Option<Pos> {
    // Lines end with `\n`, or with a lone `\r` in a file that has no `\n` (old Mac files).
    let brk = if text.contains('\n') { '\n' } else { '\r' };
    text.split(brk).enumerate().skip(from.saturating_sub(1) as usize).find_map(|(n, line)| {
        let indent = line.len() - line.trim_start_matches([' ', '\t']).len();
        let col = line[..indent].find('\t')?;
        Some(Pos { line: n as u32 + 1, col: col as u32 + 1 })
    })
}

/// Folds parser events into a tree. Containers under construction wait on a stack, so
/// building never recurses; the depth limit keeps every later pass's recursion (clone, drop,
/// checks, `to_json`) shallow too.
#[derive(Default)]
struct Builder<'s> {
    source: &'s str,
    /// Byte offset of each character of `source`, built the first time a scalar needs it.
    chars: Option<Vec<usize>>,
    stack: Vec<Open>,
    /// Anchored values by the parser's anchor id, with how many values each holds.
    anchors: HashMap<usize, (Node, usize)>,
    /// Values copied by aliases so far (see `limits::ALIAS_VALUES`).
    copied: usize,
    root: Option<Node>,
    documents: usize,
}

struct Open {
    node: Node,
    anchor: usize,
    /// For mappings: the key read, waiting for its value.
    key: Option<Node>,
}

impl Builder<'_> {
    /// The source between two character indexes.
    fn raw(&mut self, (from, to): (usize, usize)) -> Option<Box<str>> {
        let source = self.source;
        let chars = self.chars.get_or_insert_with(|| source.char_indices().map(|(b, _)| b).collect());
        let byte = |i: usize| chars.get(i).copied().unwrap_or(source.len());
        source.get(byte(from)..byte(to)).map(Box::from)
    }

    fn event(&mut self, event: Event<'_>, span: Span, raw: (usize, usize)) -> Result<(), SyntaxError> {
        match event {
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(SyntaxError::at(
                        span.start,
                        "a flow file holds one YAML document; found a second `---`",
                    ));
                }
            }
            Event::Scalar(text, style, anchor, _tag) => {
                let style = match style {
                    ScalarStyle::Plain => Style::Plain,
                    ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => Style::Quoted,
                    _ => Style::Block,
                };
                let moved = style != Style::Plain || span.start.line != span.end.line;
                let raw = if moved { self.raw(raw).filter(|r| **r != *text) } else { None };
                let node = Node { value: Value::Scalar { text: text.into_owned(), style, raw }, span };
                self.remember(anchor, &node);
                self.push(node);
            }
            Event::SequenceStart(anchor, _) => self.open(Value::Seq(Vec::new()), anchor, span)?,
            Event::MappingStart(anchor, _) => self.open(Value::Map(Vec::new()), anchor, span)?,
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some(mut open) = self.stack.pop() {
                    if span.end.line > 0 {
                        open.node.span.end = span.end;
                    }
                    self.remember(open.anchor, &open.node);
                    self.push(open.node);
                }
            }
            Event::Alias(id) => {
                let Some(size) = self.anchors.get(&id).map(|(_, size)| *size) else {
                    return Err(SyntaxError::at(span.start, "unknown alias"));
                };
                // Counted before copying: aliases of aliases double the tree at each level.
                self.copied = self.copied.saturating_add(size);
                if self.copied > limits::ALIAS_VALUES.value {
                    return Err(self.too_many_copies(size, span, raw));
                }
                let mut node = self.anchors[&id].0.clone();
                node.span = span;
                self.push(node);
            }
            _ => {}
        }
        Ok(())
    }

    /// The `alias-values` limit crossed at an alias that copies `size` values.
    fn too_many_copies(&mut self, size: usize, span: Span, raw: (usize, usize)) -> SyntaxError {
        let alias = self.raw(raw).filter(|a| a.starts_with('*')).unwrap_or_else(|| "this alias".into());
        let (size, all) = (limits::group(size), limits::group(self.copied));
        let message = format!("YAML aliases copy more than {} values", limits::group(limits::ALIAS_VALUES.value));
        SyntaxError {
            limit: Some(limits::ALIAS_VALUES),
            label: Some(format!("`{alias}` copies {size} values, {all} in all")),
            help: Some("write the values out, or use fewer aliases of aliases"),
            ..SyntaxError::at(span.start, message)
        }
    }

    fn open(&mut self, value: Value, anchor: usize, span: Span) -> Result<(), SyntaxError> {
        if self.stack.len() >= limits::YAML_DEPTH.value {
            let message = format!("YAML nests deeper than {} levels", limits::group(limits::YAML_DEPTH.value));
            return Err(SyntaxError {
                limit: Some(limits::YAML_DEPTH),
                help: Some("flatten the value, or pass it as an input"),
                ..SyntaxError::at(span.start, message)
            });
        }
        self.stack.push(Open { node: Node { value, span }, anchor, key: None });
        Ok(())
    }

    fn remember(&mut self, anchor: usize, node: &Node) {
        if anchor != 0 {
            self.anchors.insert(anchor, (node.clone(), node.count()));
        }
    }

    fn push(&mut self, node: Node) {
        let Some(top) = self.stack.last_mut() else {
            self.root = Some(node);
            return;
        };
        match &mut top.node.value {
            Value::Seq(items) => items.push(node),
            Value::Map(pairs) => match top.key.take() {
                None => top.key = Some(node),
                Some(key) => pairs.push((key, node)),
            },
            Value::Scalar { .. } => {}
        }
    }
}

/// Whether a scalar was quoted, which moves its text one column right of its span.
pub fn text_offset(node: &Node) -> usize {
    match &node.value {
        Value::Scalar { style: Style::Quoted, .. } => 1,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(src: &str) -> Node {
        parse(src).expect("parses").expect("a document")
    }

    #[test]
    fn yaml_1_1_surprises_stay_strings() {
        let doc = one("a: NO\nb: 0123\nc: +15555550100\nd: yes\ne: 12\nf: '12'\ng: 0x1F\n");
        let json = doc.to_json();
        assert_eq!(json["a"], "NO");
        assert_eq!(json["b"], "0123");
        assert_eq!(json["c"], "+15555550100");
        assert_eq!(json["d"], "yes");
        assert_eq!(json["e"], 12);
        assert_eq!(json["f"], "12");
        assert_eq!(json["g"], "0x1F");
    }

    #[test]
    fn every_value_has_its_position() {
        let doc = one("id: x\nnodes:\n  - id: lookup\n    kind: set\n");
        let nodes = doc.get("nodes").and_then(Node::as_seq).expect("a list");
        let kind = nodes[0].get("kind").expect("kind");
        assert_eq!(kind.span.start, Pos { line: 4, col: 11 });
        assert_eq!(doc.key_span("nodes").map(|s| s.start), Some(Pos { line: 2, col: 1 }));
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let err = parse("a: [1, 2\nb: c\n").expect_err("unclosed list");
        assert!(err.pos.line >= 1, "{err:?}");
    }

    /// saphyr notices a tab after it (`\tb:` at column 2) or at the scalar before it, lines
    /// above; the error points at the tab itself.
    #[test]
    fn a_tab_in_the_indentation_is_reported_at_the_tab() {
        let at = |src: &str| parse(src).map(|_| ()).map_err(|e| (e.pos.line, e.pos.col));
        assert_eq!(at("a:\n  b: 1\n\tc: 2\n"), Err((3, 1)));
        assert_eq!(at("a:\n  b: 1\n  \tc: 2\n"), Err((3, 3)));
        assert_eq!(at("a:\n  b: 1\n\n\t c: 2\n"), Err((4, 1)));
        assert_eq!(at("a:\n\t    b: 2\n"), Err((2, 1)));
        assert_eq!(at("a: [1,\t2]\n"), Ok(()), "a tab between values is allowed");
    }

    #[test]
    fn aliases_resolve_to_a_copy() {
        let doc = one("a: &x {k: v}\nb: *x\n");
        assert_eq!(doc.to_json()["b"]["k"], "v");
    }

    #[test]
    fn json_number_grammar() {
        for ok in ["0", "-1", "12.5", "1e9", "-0.5E-3"] {
            assert!(is_json_number(ok), "{ok}");
        }
        for no in ["", "-", "01", "+1", "1.", ".5", "1e", "0x10", "1_000"] {
            assert!(!is_json_number(no), "{no}");
        }
    }
}
