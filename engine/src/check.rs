//! Checking a flow's YAML tree against the format: every field of the flow, its inputs, vars,
//! slots, outputs, and each node against its kind's fields from the registry.

use std::collections::HashSet;

use crate::diag::{Diags, one_of};
use crate::kind::Registry;
use crate::limits;
use crate::shape::{Field, Shape, describe, is_name, parse_duration};
use crate::yaml::{Node, Value};

/// Checks YAML trees against shapes, reporting every mismatch.
#[derive(Debug)]
pub struct Checker<'a> {
    pub registry: &'a Registry,
    pub diags: &'a mut Diags,
}

impl Checker<'_> {
    /// Checks `node` against `shape`; `what` names the place for messages ("`inputs.username`").
    pub fn check(&mut self, node: &Node, shape: &Shape, what: &str) {
        match shape {
            Shape::Str | Shape::Template => self.scalar(node, what, "a string"),
            Shape::Name => self.name(node, what),
            Shape::Condition => self.condition(node, what),
            Shape::Bool => {
                if node.as_bool().is_none() {
                    self.mismatch(node, what, "`true` or `false`");
                }
            }
            Shape::Int => {
                let ok = node.as_number().is_some_and(|n| n.as_u64().is_some());
                if !ok {
                    self.mismatch(node, what, "a whole number");
                }
            }
            Shape::Duration => self.duration(node, what),
            Shape::Enum(words) => self.word(node, what, words.iter().copied()),
            Shape::Value => self.unquoted_in_value(node, what),
            Shape::List(item) => self.list(node, item, what),
            Shape::Map(value) => self.map(node, value, what, true),
            Shape::Dict(value) => self.map(node, value, what, false),
            Shape::Object(fields) => self.object(node, fields, &[], what),
            Shape::OneOf(alts) => self.one_of(node, alts, what),
            Shape::IntegrationKind => {
                let kinds: Vec<&str> = self.registry.integration_kinds.iter().map(|k| k.name).collect();
                self.word(node, what, kinds.iter().copied());
            }
            Shape::Nodes => self.nodes(node),
        }
    }

    fn mismatch(&mut self, node: &Node, what: &str, expected: &str) {
        let found = node.describe();
        let hint = unquoted_template(node).then(|| self.quote_hint(node));
        let d = self
            .diags
            .error("wrong-type", Some(node.span), format!("{what} must be {expected}, found {found}"))
            .label(format!("expected {expected}"));
        if let Some(hint) = hint {
            d.help(hint);
        }
    }

    /// "quote it", with the user's line quoted: `value: "{{nodes.x.y}}"`.
    fn quote_hint(&self, node: &Node) -> String {
        let why = "YAML reads an unquoted `{{` as the start of a mapping";
        let Some((before, text)) = self.diags.snippet(node.span) else { return format!("{why}: quote the template") };
        let key = before.trim_start().trim_start_matches("- ");
        let key = if key.trim_end().ends_with(':') { key } else { "" };
        let quoted = if text.contains('"') { format!("'{}'", text.replace('\'', "''")) } else { format!("\"{text}\"") };
        format!("{why}: quote it: `{key}{quoted}`")
    }

    /// In a value (a `body`, `with`, `values`…) a mapping is fine, but not `{{…}}` unquoted,
    /// which would pass as a mapping whose key is a mapping and never be a template.
    fn unquoted_in_value(&mut self, node: &Node, what: &str) {
        if unquoted_template(node) {
            let hint = self.quote_hint(node);
            self.diags
                .error(
                    "wrong-type",
                    Some(node.span),
                    format!("{what} holds an unquoted `{{{{…}}}}`, which YAML reads as a mapping"),
                )
                .label("a mapping, not a template")
                .help(hint);
            return;
        }
        // The tree is at most `yaml-depth` deep: so is this recursion.
        match &node.value {
            Value::Seq(items) => items.iter().for_each(|i| self.unquoted_in_value(i, what)),
            Value::Map(pairs) => pairs.iter().for_each(|(_, v)| self.unquoted_in_value(v, what)),
            Value::Scalar { .. } => {}
        }
    }

    fn scalar(&mut self, node: &Node, what: &str, expected: &str) {
        if node.as_str().is_none() || node.is_null() {
            self.mismatch(node, what, expected);
        }
    }

    /// A template, or a plain `true`/`false`: `yes`, `on` or `1` are not conditions.
    fn condition(&mut self, node: &Node, what: &str) {
        let text = node.as_str().filter(|_| !node.is_null());
        match text {
            Some(t) if t.contains("{{") || node.as_bool().is_some() => {}
            Some(t) => {
                self.diags
                    .error("bad-condition", Some(node.span), format!("{what} is `{t}`, which is not a condition"))
                    .label("expected a template such as `{{inputs.notify}}`, or `true` or `false`")
                    .help("YAML 1.1 words like `yes` and `on` are strings here: write `true` or a template");
            }
            None => self.mismatch(node, what, "a condition such as `{{eq inputs.mode \"x\"}}`"),
        }
    }

    fn name(&mut self, node: &Node, what: &str) {
        match node.as_str() {
            Some(s) if s.len() > limits::NAME_CHARS.value && is_name(s) => {
                let start = node.span.start;
                let span = crate::yaml::Span { start, end: crate::yaml::Pos { col: start.col + 1, ..start } };
                self.diags.limit(
                    limits::NAME_CHARS,
                    Some(span),
                    format!("{what} is {} characters long", limits::group(s.len())),
                    "use a shorter name",
                );
            }
            Some(s) if is_name(s) => {}
            Some(s) if !node.is_null() => {
                self.diags
                    .error("bad-name", Some(node.span), format!("{what} `{s}` is not a valid name"))
                    .label("expected letters, digits and `_`, starting with a letter")
                    .help(format!("try `{}`", to_name(s)));
            }
            _ => self.mismatch(node, what, "a name"),
        }
    }

    fn duration(&mut self, node: &Node, what: &str) {
        let ok = matches!(&node.value, Value::Scalar { text, .. } if parse_duration(text).is_some());
        if !ok {
            self.diags
                .error("bad-duration", Some(node.span), format!("{what} must be a duration"))
                .label("expected a number with a unit: `ms`, `s`, `m`, `h` or `d`")
                .help("write for example `500ms`, `2s` or `1m`");
        }
    }

    fn word<'w>(&mut self, node: &Node, what: &str, words: impl Iterator<Item = &'w str> + Clone) {
        let Some(s) = node.as_str().filter(|_| !node.is_null()) else {
            self.mismatch(node, what, &format!("one of {}", one_of(words)));
            return;
        };
        if !words.clone().any(|w| w == s) {
            self.diags
                .error("unknown-value", Some(node.span), format!("{what} cannot be `{s}`"))
                .label(format!("expected {}", one_of(words.clone())))
                .suggest(s, words);
        }
    }

    fn list(&mut self, node: &Node, item: &Shape, what: &str) {
        match node.as_seq() {
            Some(items) => {
                for (i, it) in items.iter().enumerate() {
                    self.check(it, item, &format!("{what}[{i}]"));
                }
            }
            None => self.mismatch(node, what, "a list"),
        }
    }

    fn map(&mut self, node: &Node, value: &Shape, what: &str, names: bool) {
        let Some(pairs) = node.as_map() else {
            if !node.is_null() {
                self.mismatch(node, what, "a mapping");
            }
            return;
        };
        for (key, k, v) in self.unique(pairs, what) {
            if names {
                self.name(k, &format!("key `{key}` in {what}"));
            } else if k.as_str().is_none_or(str::is_empty) {
                self.mismatch(k, &format!("a key in {what}"), "a non-empty string");
            }
            self.check(v, value, &format!("`{}.{key}`", what.trim_matches('`')));
        }
    }

    /// The pairs of a mapping with each key once; a key given again is reported and dropped.
    /// The keys seen are hashed: a mapping of 60,000 vars is checked in linear time.
    fn unique<'n>(&mut self, pairs: &'n [(Node, Node)], what: &str) -> Vec<(&'n str, &'n Node, &'n Node)> {
        let mut out: Vec<(&str, &Node, &Node)> = Vec::with_capacity(pairs.len());
        let mut seen: HashSet<&str> = HashSet::with_capacity(pairs.len());
        for (k, v) in pairs {
            let key = k.as_str().unwrap_or_default();
            if !seen.insert(key) {
                self.diags
                    .error("duplicate-key", Some(k.span), format!("`{key}` is given twice in {what}"))
                    .label("second definition here")
                    .help("remove one of them: YAML keeps only one");
                continue;
            }
            out.push((key, k, v));
        }
        out
    }

    /// Checks a mapping against `fields` plus `extra` (for nodes: common then kind fields).
    pub fn object(&mut self, node: &Node, fields: &[Field], extra: &[Field], what: &str) {
        let Some(pairs) = node.as_map() else {
            self.mismatch(node, what, "a mapping");
            return;
        };
        let all = || fields.iter().chain(extra);
        let unique = self.unique(pairs, what);
        let seen: Vec<&str> = unique.iter().map(|(key, _, _)| *key).collect();
        // Fields an unknown key was probably meant to be: reported once, as the typo.
        let mut meant: Vec<&str> = Vec::new();
        for (key, k, v) in unique {
            match all().find(|f| f.name == key) {
                Some(field) => self.check(v, &field.shape, &format!("`{key}`")),
                None => {
                    let names: Vec<&str> = all().map(|f| f.name).collect();
                    meant.extend(crate::diag::did_you_mean(key, names.iter().copied()));
                    self.diags
                        .error("unknown-key", Some(k.span), format!("unknown key `{key}` in {what}"))
                        .label(format!("expected one of {}", one_of(names.iter().copied())))
                        .suggest(key, names.iter().copied());
                }
            }
        }
        for field in all().filter(|f| f.required && !seen.contains(&f.name) && !meant.contains(&f.name)) {
            self.diags
                .error("missing-field", Some(first_key_span(node)), format!("{what} is missing `{}`", field.name))
                .label(format!("`{}` is required here", field.name))
                .help(format!("add `{}:` ({})", field.name, field.doc));
        }
    }

    fn one_of(&mut self, node: &Node, alts: &[Shape], what: &str) {
        let matches = |shape: &Shape| match (&node.value, shape) {
            (Value::Map(_), Shape::Object(_) | Shape::Map(_) | Shape::Dict(_)) => true,
            (Value::Seq(_), Shape::List(_)) => true,
            (Value::Scalar { .. }, s) => {
                !matches!(s, Shape::Object(_) | Shape::Map(_) | Shape::Dict(_) | Shape::List(_))
            }
            _ => false,
        };
        match alts.iter().find(|s| matches(s)) {
            Some(shape) => self.check(node, shape, what),
            None => {
                let expected: Vec<&str> = alts.iter().map(describe).collect();
                self.mismatch(node, what, &expected.join(" or "));
            }
        }
    }

    fn nodes(&mut self, node: &Node) {
        let Some(items) = node.as_seq() else {
            self.mismatch(node, "`nodes`", "a list of nodes");
            return;
        };
        if let Some(first_over) = items.get(limits::NODES.value) {
            let message = format!("the flow has {} nodes", limits::group(items.len()));
            self.diags.limit(limits::NODES, Some(first_over.span), message, "split the flow into subflows");
        }
        // Past the limit nodes are neither checked nor compiled: the flow is refused anyway.
        for item in items.iter().take(limits::NODES.value) {
            let id = item.get("id").and_then(Node::as_str).unwrap_or("?");
            let kind_node = item.get("kind");
            let kind = kind_node.and_then(Node::as_str).and_then(|k| self.registry.kind(k));
            let what = match kind {
                Some(k) => format!("`{}` node `{id}`", k.name()),
                None => format!("node `{id}`"),
            };
            let extra = kind.map(|k| k.fields()).unwrap_or(&[]);
            if item.as_map().is_some() && kind.is_none() {
                self.unknown_kind(item, kind_node);
                // Without a kind, its fields are unknown: say so once, not once per key.
                self.common_fields(item, &what);
                continue;
            }
            self.object(item, crate::format::NODE_FIELDS, extra, &what);
        }
    }

    /// Checks only the common node fields that are present.
    fn common_fields(&mut self, item: &Node, what: &str) {
        for field in crate::format::NODE_FIELDS {
            match item.get(field.name) {
                Some(v) => self.check(v, &field.shape, &format!("`{}`", field.name)),
                None if field.required && field.name != "kind" => {
                    self.diags
                        .error(
                            "missing-field",
                            Some(first_key_span(item)),
                            format!("{what} is missing `{}`", field.name),
                        )
                        .label(format!("`{}` is required here", field.name));
                }
                None => {}
            }
        }
    }

    fn unknown_kind(&mut self, item: &Node, kind_node: Option<&Node>) {
        let names: Vec<&str> = self.registry.kinds.iter().map(|k| k.name()).collect();
        // A missing `kind` is reported by the object check as a missing field.
        let Some(kind_node) = kind_node else { return };
        let kind = kind_node.as_str().unwrap_or_default();
        let d = self
            .diags
            .error("unknown-kind", Some(kind_node.span), format!("unknown node kind `{kind}`"))
            .label(format!("expected {}", one_of(names.iter().copied())));
        d.suggest(kind, names.iter().copied());
        let _ = item;
    }
}

/// `{{…}}` written without quotes: YAML reads it as a flow mapping whose one key is a flow
/// mapping starting right after the first `{`.
fn unquoted_template(node: &Node) -> bool {
    let inner = crate::yaml::Pos { col: node.span.start.col + 1, ..node.span.start };
    matches!(node.as_map(), Some([(key, _)]) if matches!(key.value, Value::Map(_)) && key.span.start == inner)
}

/// The span of a mapping's first key: where "missing field" points.
fn first_key_span(node: &Node) -> crate::yaml::Span {
    node.as_map().and_then(|p| p.first()).map(|(k, _)| k.span).unwrap_or(node.span)
}

/// Turns `my-node name` into `my_node_name`, for the "try" hint of a bad name.
fn to_name(s: &str) -> String {
    let mut out: String = s.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn bad_names_get_a_usable_suggestion() {
        assert_eq!(super::to_name("user-id"), "user_id");
        assert_eq!(super::to_name("1x"), "_1x");
    }
}
