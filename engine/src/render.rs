//! Rendering compiled templates against a run's values.
//!
//! Paths, fastest first: a template that is one `{{path}}` is a lookup and keeps the value's
//! type (and so does one `{{coalesce …}}`); one that only decides (a boolean helper, an
//! `{{#if}}` between two texts) is evaluated directly (`template/logic.rs`); a template of
//! text and plain paths is concatenated directly; anything else goes through handlebars, with
//! a context holding only the values the template reads (never the whole run). A missing value
//! is an error naming the template and the path, and so is a `null` interpolated into text: an
//! empty string would silently change a URL or a message. Nothing is HTML-escaped.

use std::sync::OnceLock;

use handlebars::template::{HelperTemplate, Parameter, TemplateElement};
use handlebars::{Handlebars, Renderable as _};
use serde_json::{Map, Value};

use crate::template::{Arg, COALESCE, Template, ValueTemplate};

/// Where a rendered value goes, which decides how it is escaped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Escape {
    /// As is: JSON bodies, messages, conditions.
    None,
    /// One URL path segment: every byte but `A-Z a-z 0-9 - _ . ~` is percent-encoded, so a value
    /// such as `../admins` or `a/b?x=1` cannot change the path or the query.
    Segment,
}

/// A template could not be rendered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("template `{template}` reads `{path}`, which has no value")]
    Missing { template: String, path: String },
    #[error("template `{template}` puts `{path}` into text, but its value is null")]
    Null { template: String, path: String },
    #[error("template `{template}` failed: {reason}")]
    Failed { template: String, reason: String },
}

/// The values a template can read.
pub trait Values {
    /// The value at `path` (`["inputs", "username"]`, `["nodes", "lookup", "user_id"]`).
    fn lookup(&self, path: &[String]) -> Option<&Value>;
}

/// Follows `path` into `value`: object keys, and array indexes written as numbers.
pub fn walk<'v>(mut value: &'v Value, path: &[String]) -> Option<&'v Value> {
    for seg in path {
        value = match value {
            Value::Object(m) => m.get(seg)?,
            Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(value)
}

/// Renders `t`. One `{{path}}` keeps its type; a single comparison helper gives a boolean and
/// `len` a number; anything else gives a string.
pub fn render(t: &Template, values: &dyn Values, escape: Escape) -> Result<Value, RenderError> {
    if let Some(path) = &t.single {
        let v = values.lookup(path).ok_or_else(|| missing(t, path))?;
        return Ok(match escape {
            Escape::None => v.clone(),
            Escape::Segment => Value::String(segment(&text_of(t, path, v)?)),
        });
    }
    if let Some(args) = &t.coalesce {
        let chosen = args.iter().find_map(|a| match a {
            Arg::Path(p) => values.lookup(p).filter(|v| !v.is_null()),
            Arg::Literal(v) => Some(v).filter(|v| !v.is_null()),
        });
        let v = chosen.cloned().unwrap_or(Value::Null);
        return Ok(match (escape, v) {
            (Escape::Segment, Value::Null) => {
                return Err(RenderError::Null { template: t.source.clone(), path: t.source.clone() });
            }
            (Escape::Segment, v) => Value::String(segment(&v.as_str().map_or_else(|| v.to_string(), str::to_owned))),
            (Escape::None, v) => v,
        });
    }
    if let Some(v) = t.logic.as_ref().and_then(|l| l.eval(values)) {
        return Ok(v);
    }
    if let Some(text) = concat(t, values, escape)? {
        return Ok(Value::String(text));
    }
    let text = with_handlebars(t, values, escape)?;
    Ok(typed(t, text))
}

/// Renders `t` to text: a string value as is, other scalars as JSON.
pub fn render_text(t: &Template, values: &dyn Values, escape: Escape) -> Result<String, RenderError> {
    match render(t, values, escape)? {
        Value::String(s) => Ok(s),
        Value::Null => Err(RenderError::Null { template: t.source.clone(), path: t.source.clone() }),
        other => Ok(other.to_string()),
    }
}

/// Renders every template inside a JSON-shaped value.
pub fn render_value(v: &ValueTemplate, values: &dyn Values) -> Result<Value, RenderError> {
    Ok(match v {
        ValueTemplate::Literal(l) => l.clone(),
        ValueTemplate::Template(t) => render(t, values, Escape::None)?,
        ValueTemplate::List(items) => {
            Value::Array(items.iter().map(|i| render_value(i, values)).collect::<Result<_, _>>()?)
        }
        ValueTemplate::Object(pairs) => {
            let mut m = Map::with_capacity(pairs.len());
            for (k, v) in pairs {
                m.insert(k.clone(), render_value(v, values)?);
            }
            Value::Object(m)
        }
    })
}

/// Truthiness as in handlebars' `{{#if}}`: `false`, `null`, `""`, `0`, `[]` are false; the
/// strings `"true"` and `"false"` (what a mixed template renders) count as those booleans.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty() && s != "false",
        Value::Array(a) => !a.is_empty(),
        Value::Object(_) => true,
    }
}

fn missing(t: &Template, path: &[String]) -> RenderError {
    RenderError::Missing { template: t.source.clone(), path: path.join(".") }
}

fn text_of(t: &Template, path: &[String], v: &Value) -> Result<String, RenderError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Err(RenderError::Null { template: t.source.clone(), path: path.join(".") }),
        other => Ok(other.to_string()),
    }
}

/// Text and plain paths only: concatenated without handlebars. `None` when the template has
/// helpers or blocks.
fn concat(t: &Template, values: &dyn Values, escape: Escape) -> Result<Option<String>, RenderError> {
    let mut out = String::with_capacity(t.source.len());
    let mut refs = t.refs.iter();
    for el in &t.compiled.elements {
        match el {
            TemplateElement::RawString(s) => out.push_str(s),
            TemplateElement::Comment(_) => {}
            TemplateElement::Expression(h) | TemplateElement::HtmlExpression(h) if plain_path(h) => {
                let Some(r) = refs.next() else { return Ok(None) };
                let v = values.lookup(&r.path).ok_or_else(|| missing(t, &r.path))?;
                let text = text_of(t, &r.path, v)?;
                match escape {
                    Escape::None => out.push_str(&text),
                    Escape::Segment => out.push_str(&segment(&text)),
                }
            }
            _ => return Ok(None),
        }
    }
    Ok(Some(out))
}

fn plain_path(h: &HelperTemplate) -> bool {
    matches!(h.name, Parameter::Path(handlebars::Path::Relative(_))) && h.params.is_empty() && h.hash.is_empty()
}

fn registry(escape: Escape) -> &'static Handlebars<'static> {
    static PLAIN: OnceLock<Handlebars<'static>> = OnceLock::new();
    static SEGMENT: OnceLock<Handlebars<'static>> = OnceLock::new();
    let build = |f: fn(&str) -> String| {
        let mut h = Handlebars::new();
        // Not strict: helper arguments that are missing are null, as `{{#if}}` expects;
        // interpolated paths are checked before rendering.
        h.set_strict_mode(false);
        h.register_escape_fn(f);
        h.register_helper(COALESCE, Box::new(Coalesce));
        h
    };
    match escape {
        Escape::None => PLAIN.get_or_init(|| build(handlebars::no_escape)),
        Escape::Segment => SEGMENT.get_or_init(|| build(segment)),
    }
}

/// `{{coalesce a b …}}`: the first argument that is neither missing nor null, else null.
struct Coalesce;

impl handlebars::HelperDef for Coalesce {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &handlebars::Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc handlebars::Context,
        _: &mut handlebars::RenderContext<'reg, 'rc>,
    ) -> Result<handlebars::ScopedJson<'rc>, handlebars::RenderError> {
        let found = h.params().iter().map(|p| p.value()).find(|v| !v.is_null());
        Ok(handlebars::ScopedJson::Derived(found.cloned().unwrap_or(Value::Null)))
    }
}

/// Renders with handlebars against a context of just the values the template reads.
///
/// Each value is copied into the context once, however often the template reads it: a
/// template reading one large array 5,000 times copied it 5,000 times per render.
fn with_handlebars(t: &Template, values: &dyn Values, escape: Escape) -> Result<String, RenderError> {
    let mut paths: Vec<&[String]> = Vec::with_capacity(t.refs.len());
    for r in &t.refs {
        // What is written out must exist and not be null; what a helper tests, or a block
        // writes only when its condition holds, may be missing (it is null).
        if r.interpolated {
            match values.lookup(&r.path) {
                None => return Err(missing(t, &r.path)),
                Some(Value::Null) => {
                    return Err(RenderError::Null { template: t.source.clone(), path: r.path.join(".") });
                }
                Some(_) => {}
            }
        }
        // Stop before the first index: handlebars walks arrays itself.
        let depth = r.path.iter().position(|s| s.parse::<usize>().is_ok()).unwrap_or(r.path.len());
        paths.push(&r.path[..depth]);
    }
    // Sorted, a path comes right after any path it extends: keep only the shortest of each.
    paths.sort_unstable();
    let mut root = Value::Object(Map::new());
    let mut kept: Option<&[String]> = None;
    for path in paths {
        if path.is_empty() || kept.is_some_and(|k| path.starts_with(k)) {
            continue;
        }
        if let Some(v) = values.lookup(path) {
            insert(&mut root, path, v.clone());
            kept = Some(path);
        }
    }
    // `from`, not `wraps`: `wraps` serialises the whole context into a second copy.
    let ctx = handlebars::Context::from(root);
    let reg = registry(escape);
    let mut rc = handlebars::RenderContext::new(None);
    let mut out = handlebars::StringOutput::new();
    t.compiled.render(reg, &ctx, &mut rc, &mut out).map_err(|e| match e.reason() {
        handlebars::RenderErrorReason::MissingVariable(Some(path)) => {
            RenderError::Missing { template: t.source.clone(), path: path.clone() }
        }
        _ => failed(t, &e),
    })?;
    out.into_string().map_err(|e| failed(t, &e))
}

fn failed(t: &Template, e: &dyn std::fmt::Display) -> RenderError {
    let reason = e.to_string().lines().next().unwrap_or_default().to_owned();
    RenderError::Failed { template: t.source.clone(), reason }
}

fn insert(root: &mut Value, path: &[String], v: Value) {
    let mut at = root;
    for (i, seg) in path.iter().enumerate() {
        let Value::Object(m) = at else { return };
        if i + 1 == path.len() {
            m.insert(seg.clone(), v);
            return;
        }
        at = m.entry(seg.clone()).or_insert_with(|| Value::Object(Map::new()));
    }
}

/// A single comparison helper gives a boolean, `len` a number: their text converts back.
fn typed(t: &Template, text: String) -> Value {
    const BOOLEAN: &[&str] = &["eq", "ne", "gt", "gte", "lt", "lte", "and", "or", "not"];
    let helper = match t.compiled.elements.as_slice() {
        [TemplateElement::Expression(h)] => match &h.name {
            Parameter::Name(n) => Some(n.as_str()),
            _ => None,
        },
        _ => None,
    };
    match helper {
        Some(h) if BOOLEAN.contains(&h) && (text == "true" || text == "false") => Value::Bool(text == "true"),
        Some("len") => text.parse::<u64>().map(Value::from).unwrap_or(Value::String(text)),
        _ => Value::String(text),
    }
}

/// Percent-encodes one path segment (RFC 3986 unreserved characters stay).
pub fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    // `.` and `..` alone are path navigation even when unescaped characters: encode the dots.
    if out == "." || out == ".." {
        return out.replace('.', "%2E");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct V(Value);
    impl Values for V {
        fn lookup(&self, path: &[String]) -> Option<&Value> {
            walk(&self.0, path)
        }
    }

    fn t(src: &str) -> Template {
        let node = crate::yaml::parse(&format!("t: '{src}'\n")).ok().flatten().and_then(|n| n.get("t").cloned());
        crate::template::compile(&node.expect("yaml")).expect("compiles")
    }

    fn values() -> V {
        V(json!({
            "inputs": {"username": "jdoe", "n": 3, "flag": false, "hostile": "../admins?x=1", "none": null},
            "nodes": {"lookup": {"user_id": "DU123", "users": [{"name": "a"}, {"name": "b"}]}}
        }))
    }

    #[test]
    fn a_single_path_keeps_its_type() {
        let v = values();
        assert_eq!(render(&t("{{inputs.n}}"), &v, Escape::None), Ok(json!(3)));
        assert_eq!(render(&t("{{inputs.flag}}"), &v, Escape::None), Ok(json!(false)));
        assert_eq!(render(&t("{{nodes.lookup.users}}"), &v, Escape::None), Ok(json!([{"name": "a"}, {"name": "b"}])));
        assert_eq!(render(&t("{{inputs.none}}"), &v, Escape::None), Ok(Value::Null));
    }

    #[test]
    fn coalesce_is_the_first_value_present_and_keeps_its_type() {
        let v = values();
        let r = |src: &str| render(&t(src), &v, Escape::None);
        assert_eq!(r("{{coalesce nodes.skipped.id inputs.none inputs.n}}"), Ok(json!(3)));
        assert_eq!(r("{{coalesce nodes.lookup.users inputs.n}}"), Ok(json!([{"name": "a"}, {"name": "b"}])));
        assert_eq!(r("{{coalesce nodes.skipped.id false}}"), Ok(json!(false)));
        assert_eq!(r("{{coalesce nodes.skipped.id}}"), Ok(Value::Null));
        assert_eq!(r("id {{coalesce nodes.skipped.id inputs.username}}"), Ok(json!("id jdoe")));
        assert_eq!(r("{{#if (coalesce nodes.skipped.ok inputs.flag)}}y{{else}}n{{/if}}"), Ok(json!("n")));
        assert_eq!(
            render(&t("{{coalesce nodes.x inputs.hostile}}"), &v, Escape::Segment),
            Ok(json!("..%2Fadmins%3Fx%3D1"))
        );
        assert!(render(&t("{{coalesce nodes.x}}"), &v, Escape::Segment).is_err());
    }

    #[test]
    fn mixed_text_is_a_string_and_never_html_escaped() {
        let v = values();
        assert_eq!(
            render(&t("user {{inputs.username}} & <{{inputs.n}}>"), &v, Escape::None),
            Ok(json!("user jdoe & <3>"))
        );
    }

    #[test]
    fn helpers_keep_booleans_and_numbers() {
        let v = values();
        assert_eq!(render(&t("{{eq inputs.username \"jdoe\"}}"), &v, Escape::None), Ok(json!(true)));
        assert_eq!(render(&t("{{not inputs.flag}}"), &v, Escape::None), Ok(json!(true)));
        assert_eq!(render(&t("{{len nodes.lookup.users}}"), &v, Escape::None), Ok(json!(2)));
        assert_eq!(render(&t("{{gt (len nodes.lookup.users) 0}}"), &v, Escape::None), Ok(json!(true)));
        assert_eq!(
            render(&t("{{#each nodes.lookup.users}}{{this.name}},{{/each}}"), &v, Escape::None),
            Ok(json!("a,b,"))
        );
    }

    #[test]
    fn missing_and_null_values_are_errors_naming_the_path() {
        let v = values();
        let e = render(&t("/users/{{nodes.lookup.userid}}"), &v, Escape::Segment).expect_err("missing");
        assert_eq!(
            e.to_string(),
            "template `/users/{{nodes.lookup.userid}}` reads `nodes.lookup.userid`, which has no value"
        );
        let e = render(&t("/users/{{inputs.none}}"), &v, Escape::Segment).expect_err("null");
        assert!(matches!(e, RenderError::Null { .. }), "{e}");
        let e = render(&t("{{#if inputs.nope}}x{{/if}}{{inputs.nope}}"), &v, Escape::None).expect_err("missing");
        assert!(e.to_string().contains("inputs.nope"), "{e}");
        // Inside a block, a value is written only when the block renders.
        assert_eq!(
            render(&t("{{#if nodes.lookup.nope}}{{nodes.lookup.nope}}{{else}}-{{/if}}"), &v, Escape::None),
            Ok(json!("-"))
        );
        let e = render(&t("{{inputs.none}} {{#if inputs.flag}}x{{/if}}"), &v, Escape::None).expect_err("null");
        assert!(matches!(e, RenderError::Null { .. }), "{e}");
        // A helper's argument may be missing: it is null, so the condition is false.
        assert_eq!(render(&t("{{#if nodes.lookup.nope}}x{{else}}y{{/if}}"), &v, Escape::None), Ok(json!("y")));
        assert_eq!(render(&t("{{eq nodes.lookup.nope 40003}}"), &v, Escape::None), Ok(json!(false)));
    }

    #[test]
    fn hostile_values_stay_inside_one_path_segment() {
        let v = values();
        let path = render_text(&t("/admin/v1/users/{{inputs.hostile}}/phones"), &v, Escape::Segment);
        assert_eq!(path, Ok("/admin/v1/users/..%2Fadmins%3Fx%3D1/phones".to_owned()));
        assert_eq!(segment(".."), "%2E%2E");
        assert_eq!(segment("a b/é"), "a%20b%2F%C3%A9");
    }

    /// Templates that only decide are evaluated without handlebars: each gives exactly what
    /// handlebars gives, errors included, and the ones handlebars alone can tell fall back.
    #[test]
    fn decisions_evaluate_as_handlebars_renders_them() {
        let v = V(json!({
            "inputs": {
                "username": "jdoe", "n": 3, "zero": 0, "float": 1.5, "neg": -1, "tiny": 1e-310,
                "empty": "", "flag": false, "yes": true, "none": null, "obj": {"a": 1}, "eobj": {},
                "s_true": "true", "s_false": "false", "list": [], "num_s": "2"
            },
            "nodes": {
                "lookup": {"user_id": "DU123", "users": [{"name": "a"}, {"name": "b"}], "codes": [40003]},
                "create": {"status": 200, "body": {"code": 40003, "message": "exists"}}
            }
        }));
        // (template, evaluated without handlebars)
        let cases: &[(&str, bool)] = &[
            ("{{not nodes.lookup.user_id}}", true),
            ("{{not inputs.none}}", true),
            ("{{not inputs.missing}}", true),
            ("{{not nodes.missing.found}}", true),
            ("{{not inputs.zero}}", true),
            ("{{not inputs.float}}", true),
            ("{{not inputs.neg}}", true),
            ("{{not inputs.tiny}}", true),
            ("{{not inputs.empty}}", true),
            ("{{not inputs.s_false}}", true),
            ("{{not inputs.obj}}", true),
            ("{{not inputs.eobj}}", true),
            ("{{not inputs.list}}", true),
            ("{{not nodes.lookup.users}}", true),
            ("{{not nodes.lookup.users.0}}", true),
            ("{{not nodes.lookup.users.[1].name}}", true),
            ("{{not nodes.lookup.users.7.name}}", true),
            ("{{not nodes.lookup.user_id.x}}", true),
            ("{{not nodes.lookup.users.name}}", false),
            ("{{not nodes.lookup.users.0.name.x}}", true),
            ("{{not this.inputs.n}}", true),
            ("{{not nodes.lookup}}", true),
            ("{{not nodes}}", true),
            ("{{eq inputs inputs}}", true),
            ("{{eq inputs.n 3}}", true),
            ("{{eq inputs.n 3.0}}", true),
            ("{{eq inputs.username \"jdoe\"}}", true),
            ("{{eq inputs.username ''jdoe''}}", true),
            ("{{eq nodes.create.body.code 40003}}", true),
            ("{{eq nodes.lookup.body.code 40003}}", true),
            ("{{eq nodes.lookup.codes.0 40003}}", true),
            ("{{eq nodes.lookup.codes.code 40003}}", false),
            ("{{ne inputs.none null}}", true),
            ("{{eq inputs.missing null}}", true),
            ("{{eq inputs.flag false}}", true),
            ("{{eq inputs.s_true true}}", true),
            ("{{eq nodes.lookup.users nodes.lookup.users}}", true),
            ("{{ne nodes.create.status 200}}", true),
            ("{{gt (len nodes.lookup.users) 0}}", true),
            ("{{gt (len nodes.lookup.missing) 0}}", true),
            ("{{gt (len inputs.username) 3}}", true),
            ("{{eq (len inputs.obj) 1}}", true),
            ("{{lt (len inputs.n) 1}}", true),
            ("{{lt inputs.n 10}}", true),
            ("{{lte inputs.n 3}}", true),
            ("{{gte inputs.n 4}}", true),
            ("{{gt inputs.username \"a\"}}", true),
            ("{{lt inputs.flag true}}", true),
            ("{{gt inputs.none 1}}", true),
            ("{{gt inputs.obj inputs.obj}}", true),
            ("{{gte inputs.float 1}}", false),
            ("{{lte inputs.neg 0}}", false),
            ("{{gt inputs.n inputs.num_s}}", false),
            ("{{and inputs.yes (not inputs.none)}}", true),
            ("{{and inputs.yes inputs.zero}}", true),
            ("{{or inputs.missing inputs.username}}", true),
            ("{{or inputs.missing inputs.empty}}", true),
            ("{{not (or inputs.username inputs.email)}}", true),
            ("{{and inputs.n inputs.username inputs.obj}}", true),
            ("{{and inputs.yes nodes.lookup.users.name}}", false),
            ("{{eq (coalesce nodes.x.id inputs.none inputs.n) 3}}", true),
            ("{{not (coalesce nodes.x.id inputs.none)}}", true),
            ("{{#if nodes.lookup.user_id}}yes{{else}}no{{/if}}", true),
            ("{{#if inputs.zero}}1{{else}}0{{/if}}", true),
            ("{{#if inputs.missing}}1{{else}}0{{/if}}", true),
            ("{{#unless inputs.flag}}a{{else}}b{{/unless}}", true),
            ("{{#unless inputs.yes}}a{{/unless}}", true),
            ("{{#if inputs.flag}}a{{/if}}", true),
            ("{{#if inputs.yes}}{{/if}}", true),
            ("{{#if (eq inputs.n 3)}}three{{/if}}", true),
            ("{{#if (and inputs.yes (gt (len nodes.lookup.users) 1))}}many{{else}}few{{/if}}", true),
            ("{{#if inputs.n}} & <x> {{else}}{{/if}}", true),
            ("{{#if inputs.n~}}  spaced  {{~else~}}  other  {{~/if}}", true),
            ("{{#if nodes.lookup.users.name}}x{{/if}}", false),
        ];
        // A run's values as the scheduler gives them: `nodes` and `inputs` alone have none.
        let map = |k: &str| v.0[k].as_object().cloned().unwrap_or_default();
        let env = crate::node::Env {
            inputs: std::sync::Arc::new(map("inputs")),
            vars: std::sync::Arc::default(),
            nodes: map("nodes").into_iter().map(|(k, n)| (k.into(), std::sync::Arc::new(n))).collect(),
        };
        for &(src, fast) in cases {
            let t = t(src);
            let logic = t.logic.as_ref().unwrap_or_else(|| panic!("{src} is a decision"));
            for values in [&v as &dyn Values, &env] {
                assert_eq!(logic.eval(values).is_some(), fast, "{src} evaluated without handlebars");
                for escape in [Escape::None, Escape::Segment] {
                    let slow = with_handlebars(&t, values, escape).map(|text| typed(&t, text));
                    assert_eq!(render(&t, values, escape), slow, "{src} ({escape:?})");
                }
            }
        }
        // Anything more than a decision is rendered by handlebars.
        for src in [
            "{{len nodes.lookup.users}}",
            "{{#if inputs.n}}{{inputs.username}}{{/if}}",
            "{{#if inputs.n includeZero=true}}a{{/if}}",
            "{{#each nodes.lookup.users}}x{{/each}}",
            "{{#if inputs.n}}a{{else if inputs.yes}}b{{/if}}",
            "{{not @root.inputs.n}}",
            "x {{not inputs.n}}",
            "{{{not inputs.n}}}",
        ] {
            assert_eq!(t(src).logic, None, "{src}");
        }
    }

    #[test]
    fn truthiness_follows_handlebars() {
        for (v, want) in [
            (json!(null), false),
            (json!(""), false),
            (json!(0), false),
            (json!([]), false),
            (json!("false"), false),
            (json!("x"), true),
            (json!(1), true),
            (json!({}), true),
        ] {
            assert_eq!(truthy(&v), want, "{v}");
        }
    }
}
