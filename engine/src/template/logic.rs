//! Templates that only decide: one boolean helper (`{{not nodes.user.found}}`,
//! `{{eq nodes.create.status 200}}`) or one `{{#if}}` choosing between two plain texts. Most
//! `when:` conditions and many outputs are one of these, and rendering them through handlebars
//! (a context built from copies of the values, a render context, an output buffer) cost more
//! than the rest of the node around them.
//!
//! [`Logic::eval`] gives what handlebars-rust 6 gives for the same template, helper by helper
//! (`helpers/helper_extras.rs`, `helper_if.rs`); where it cannot be sure, it answers `None` and
//! the caller renders with handlebars. The one such case: a path that runs into a list with a
//! key that is not a number, where handlebars fails the render (or not, depending on which
//! other paths the template reads) and a plain lookup only finds nothing.

use std::borrow::Cow;
use std::cmp::Ordering;

use handlebars::template::{HelperTemplate, Parameter, TemplateElement};
use handlebars::{Path, PathSeg};
use serde_json::Value;

use crate::render::Values;

/// A template compiled to a decision.
#[derive(Clone, Debug, PartialEq)]
pub enum Logic {
    /// `{{helper …}}` of a helper giving a boolean: the template's value is that boolean.
    Test(Expr),
    /// `{{#if x}}then{{else}}otherwise{{/if}}` (`unless` with the texts swapped), both plain text.
    Choose { test: Expr, then: String, otherwise: String },
}

/// A helper's argument, as handlebars evaluates it.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// A path read from the run (missing is null).
    Path(Vec<String>),
    Literal(Value),
    /// `not`: handlebars' falsiness (`0`, `""`, `[]`, `{}`, null, false).
    Not(Box<Expr>),
    /// `eq`, `ne`, `gt`, `gte`, `lt`, `lte`.
    Compare(Op, Box<Expr>, Box<Expr>),
    /// `and`: every argument truthy.
    All(Vec<Expr>),
    /// `or`: any argument truthy.
    Any(Vec<Expr>),
    /// `len`: items of a list, keys of an object, bytes of a string, else 0.
    Len(Box<Expr>),
    /// `coalesce`: the first argument that is not null, else null.
    First(Vec<Expr>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
}

impl Logic {
    /// The decision a template's elements make, when they are one of the two forms.
    pub fn compile(elements: &[TemplateElement]) -> Option<Logic> {
        match elements {
            [TemplateElement::Expression(h)] if is_boolean(h) => Some(Logic::Test(helper(h)?)),
            [TemplateElement::HelperBlock(h)] => {
                let positive = match &h.name {
                    Parameter::Name(n) if n == "if" => true,
                    Parameter::Name(n) if n == "unless" => false,
                    _ => return None,
                };
                let ([param], true, None) = (h.params.as_slice(), h.hash.is_empty(), &h.block_param) else {
                    return None;
                };
                let then = text(h.template.as_ref().map(|t| t.elements.as_slice()))?;
                let otherwise = text(h.inverse.as_ref().map(|t| t.elements.as_slice()))?;
                let test = expr(param)?;
                Some(if positive {
                    Logic::Choose { test, then, otherwise }
                } else {
                    Logic::Choose { test, then: otherwise, otherwise: then }
                })
            }
            _ => None,
        }
    }

    /// The template's value; `None` when only handlebars can tell.
    pub fn eval(&self, values: &dyn Values) -> Option<Value> {
        match self {
            Logic::Test(e) => Some(Value::Bool(e.eval(values)?.as_bool().unwrap_or(false))),
            Logic::Choose { test, then, otherwise } => {
                let chosen = if truthy(&*test.eval(values)?) { then } else { otherwise };
                Some(Value::String(chosen.clone()))
            }
        }
    }
}

impl Expr {
    /// Every argument is evaluated, as handlebars does before it calls a helper, so that a
    /// path handlebars would fail on is never skipped.
    fn eval<'v>(&self, values: &'v dyn Values) -> Option<Cow<'v, Value>> {
        Some(match self {
            Expr::Path(p) => lookup(values, p)?,
            Expr::Literal(v) => Cow::Owned(v.clone()),
            Expr::Not(e) => Cow::Owned(Value::Bool(!truthy(&*e.eval(values)?))),
            Expr::Compare(op, a, b) => {
                let (a, b) = (a.eval(values)?, b.eval(values)?);
                Cow::Owned(Value::Bool(compare(*op, &a, &b)?))
            }
            Expr::All(es) => Cow::Owned(Value::Bool(all(es, values)?.iter().all(|v| truthy(v)))),
            Expr::Any(es) => Cow::Owned(Value::Bool(all(es, values)?.iter().any(|v| truthy(v)))),
            Expr::Len(e) => Cow::Owned(Value::from(match &*e.eval(values)? {
                Value::Array(a) => a.len(),
                Value::Object(m) => m.len(),
                Value::String(s) => s.len(),
                _ => 0,
            })),
            Expr::First(es) => all(es, values)?.into_iter().find(|v| !v.is_null()).unwrap_or(Cow::Owned(Value::Null)),
        })
    }
}

fn all<'v>(es: &[Expr], values: &'v dyn Values) -> Option<Vec<Cow<'v, Value>>> {
    es.iter().map(|e| e.eval(values)).collect()
}

/// A path's value as handlebars finds it in the context `render` builds: the value, or null
/// when it is missing. `None` when the path runs into a list with a key that is not a number.
fn lookup<'v>(values: &'v dyn Values, path: &[String]) -> Option<Cow<'v, Value>> {
    if let Some(v) = values.lookup(path) {
        return Some(Cow::Borrowed(v));
    }
    // Where did the walk stop? At the longest part of the path that has a value.
    for n in (1..path.len()).rev() {
        if let Some(v) = values.lookup(&path[..n]) {
            if matches!(v, Value::Array(_)) && path[n].parse::<usize>().is_err() {
                return None;
            }
            break;
        }
    }
    Some(Cow::Owned(Value::Null))
}

/// handlebars' `JsonTruthy::is_truthy(false)`: a number is true when it is normal (not 0).
fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(f64::is_normal),
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

/// handlebars' comparison helpers. Orderings are only decided here for what compares the
/// same way in any case (two whole non-negative numbers, two strings, two booleans, or two
/// values of types that never compare); the rest (floats, negative numbers, a number against
/// a string) is left to handlebars: `None`.
fn compare(op: Op, a: &Value, b: &Value) -> Option<bool> {
    let order = || -> Option<Option<Ordering>> {
        Some(match (a, b) {
            (Value::Number(x), Value::Number(y)) => Some(x.as_u64()?.cmp(&y.as_u64()?)),
            (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
            (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
            (Value::Number(_), Value::String(_)) | (Value::String(_), Value::Number(_)) => return None,
            _ => None,
        })
    };
    Some(match op {
        Op::Eq => a == b,
        Op::Ne => a != b,
        Op::Gt => order()? == Some(Ordering::Greater),
        Op::Gte => order()?.is_some_and(|o| o != Ordering::Less),
        Op::Lt => order()? == Some(Ordering::Less),
        Op::Lte => order()?.is_some_and(|o| o != Ordering::Greater),
    })
}

/// A helper whose value is a boolean (what `render::typed` turns back from text).
fn is_boolean(h: &HelperTemplate) -> bool {
    matches!(&h.name, Parameter::Name(n) if matches!(n.as_str(), "eq" | "ne" | "gt" | "gte" | "lt" | "lte" | "and" | "or" | "not"))
}

/// A helper call with arguments this module can evaluate, and exactly as many as the helper
/// reads (more or fewer are left to handlebars, which ignores or refuses them).
fn helper(h: &HelperTemplate) -> Option<Expr> {
    let Parameter::Name(name) = &h.name else { return None };
    if !h.hash.is_empty() || h.block_param.is_some() || h.template.is_some() || h.inverse.is_some() {
        return None;
    }
    let args = h.params.iter().map(expr).collect::<Option<Vec<_>>>()?;
    let op = |op| {
        let [a, b]: [Expr; 2] = args.clone().try_into().ok()?;
        Some(Expr::Compare(op, Box::new(a), Box::new(b)))
    };
    let one = || {
        let [a]: [Expr; 1] = args.clone().try_into().ok()?;
        Some(Box::new(a))
    };
    match name.as_str() {
        "eq" => op(Op::Eq),
        "ne" => op(Op::Ne),
        "gt" => op(Op::Gt),
        "gte" => op(Op::Gte),
        "lt" => op(Op::Lt),
        "lte" => op(Op::Lte),
        "not" => Some(Expr::Not(one()?)),
        "len" => Some(Expr::Len(one()?)),
        "and" => Some(Expr::All(args)),
        "or" => Some(Expr::Any(args)),
        crate::template::COALESCE => Some(Expr::First(args)),
        _ => None,
    }
}

fn expr(p: &Parameter) -> Option<Expr> {
    match p {
        Parameter::Path(Path::Relative((segs, _))) => {
            let path = segs
                .iter()
                .map(|s| match s {
                    PathSeg::Named(n) => Some(n.clone()),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()?;
            (!path.is_empty()).then_some(Expr::Path(path))
        }
        Parameter::Literal(v) => Some(Expr::Literal(v.clone())),
        Parameter::Subexpression(sub) => match sub.as_element() {
            TemplateElement::Expression(h) => helper(h),
            _ => None,
        },
        _ => None,
    }
}

/// A block's text when it is plain (no paths, helpers or comments); an absent block is empty.
fn text(elements: Option<&[TemplateElement]>) -> Option<String> {
    let mut out = String::new();
    for el in elements.unwrap_or_default() {
        match el {
            TemplateElement::RawString(s) => out.push_str(s),
            _ => return None,
        }
    }
    Some(out)
}
