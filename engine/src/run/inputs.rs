//! Checking what a run is given, before anything runs: inputs (declared, typed, matching
//! their patterns), integration bindings (every slot, of the right kind) and vars.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::{Binding, Env, RunError};
use crate::Flow;
use crate::model::{Input, InputType};
use crate::render::render_value;

/// The checked inputs and the resolved vars of one run.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub inputs: Map<String, Value>,
    pub vars: Map<String, Value>,
}

pub(crate) fn prepare(
    flow: &Flow,
    mut given: Map<String, Value>,
    overrides: Map<String, Value>,
    bindings: &HashMap<String, Arc<Binding>>,
) -> Result<Prepared, RunError> {
    let mut problems = Vec::new();
    let sig = &flow.signature;
    for name in given.keys() {
        if !sig.inputs.iter().any(|i| &i.name == name) {
            let names: Vec<&str> = sig.inputs.iter().map(|i| i.name.as_str()).collect();
            let hint = crate::diag::did_you_mean(name, names.iter().copied())
                .map(|n| format!("; did you mean `{n}`?"))
                .unwrap_or_else(|| format!("; its inputs are {}", crate::diag::one_of(names.iter().copied())));
            problems.push(format!("flow `{}` has no input `{name}`{hint}", sig.id));
        }
    }
    let mut inputs = Map::new();
    for input in &sig.inputs {
        // A null given for an optional input (an optional value passed along) means "not given".
        let value = given.remove(&input.name).filter(|v| !v.is_null() || input.required);
        match value {
            Some(v) => match coerce(input, v) {
                Ok(v) => {
                    inputs.insert(input.name.clone(), v);
                }
                Err(p) => problems.push(format!("input `{}` of flow `{}`: {p}", input.name, sig.id)),
            },
            None if input.required => {
                problems.push(format!("flow `{}` needs input `{}` ({})", sig.id, input.name, input.ty.name()))
            }
            None => {
                inputs.insert(input.name.clone(), input.default.clone().unwrap_or(Value::Null));
            }
        }
    }
    check_bindings(flow, bindings, &mut problems);
    let vars = vars(flow, &mut inputs, overrides, bindings, &mut problems);
    if problems.is_empty() {
        Ok(Prepared { inputs, vars })
    } else {
        Err(RunError::Inputs { flow: sig.id.clone(), problems })
    }
}

/// Takes a value as the input's type asks; text from a command line converts.
fn coerce(input: &Input, v: Value) -> Result<Value, String> {
    let v = match (input.ty, v) {
        (InputType::Number, Value::String(s)) => {
            s.trim().parse::<serde_json::Number>().map(Value::Number).map_err(|_| format!("`{s}` is not a number"))?
        }
        (InputType::Boolean, Value::String(s)) => match s.as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(format!("`{s}` is not `true` or `false`")),
        },
        (InputType::Object | InputType::Array, Value::String(s)) => {
            serde_json::from_str(&s).map_err(|e| format!("`{s}` is not JSON: {e}"))?
        }
        (InputType::String, Value::Number(n)) => Value::String(n.to_string()),
        (_, v) => v,
    };
    if !input.ty.accepts(&v) {
        return Err(format!("expected a {}, got {v}", input.ty.name()));
    }
    if let (Some(re), Value::String(s)) = (&input.pattern, &v) {
        if !re.is_match(s) {
            let pattern = re.as_str().trim_start_matches("^(?:").trim_end_matches(")$");
            return Err(format!("`{s}` does not match the pattern `{pattern}`"));
        }
    }
    Ok(v)
}

fn check_bindings(flow: &Flow, bindings: &HashMap<String, Arc<Binding>>, problems: &mut Vec<String>) {
    for slot in &flow.signature.slots {
        match bindings.get(&slot.name) {
            None if !slot.required => {}
            None => problems.push(format!(
                "integration slot `{}` of flow `{}` is not bound: define an integration `{}` of kind `{}`, or bind one with `--bind {}=NAME`",
                slot.name, flow.signature.id, slot.name, slot.kind, slot.name
            )),
            Some(b) if b.kind != slot.kind => problems.push(format!(
                "integration `{}` is a `{}` integration, but slot `{}` of flow `{}` needs `{}`",
                b.name, b.kind, slot.name, flow.signature.id, slot.kind
            )),
            Some(_) => {}
        }
    }
}

/// Each var: the run's override, else its default (a template over inputs and earlier vars),
/// else a value its bound integrations offer (the API hostname as `host`).
fn vars(
    flow: &Flow,
    inputs: &mut Map<String, Value>,
    mut overrides: Map<String, Value>,
    bindings: &HashMap<String, Arc<Binding>>,
    problems: &mut Vec<String>,
) -> Map<String, Value> {
    for name in overrides.keys() {
        if !flow.vars.iter().any(|v| &v.name == name) {
            problems.push(format!("flow `{}` has no var `{name}`", flow.signature.id));
        }
    }
    // The inputs are lent to the env while the vars' defaults render, not copied into it.
    let mut env = Env { inputs: Arc::new(std::mem::take(inputs)), vars: Arc::new(Map::new()), nodes: Vec::new() };
    // A var an unbound required slot would have offered (its `host`) is that slot's problem,
    // already reported: saying `--var host=…` too would point at the wrong fix.
    let all_bound = flow.signature.slots.iter().all(|s| !s.required || bindings.contains_key(&s.name));
    for var in &flow.vars {
        let offered = || flow.signature.slots.iter().find_map(|s| bindings.get(&s.name)?.vars.get(&var.name).cloned());
        let value = match (overrides.remove(&var.name), &var.default) {
            (Some(v), _) => Some(v),
            (None, Some(d)) => match render_value(d, &env) {
                Ok(v) => Some(v),
                Err(e) => {
                    problems.push(format!("var `{}`: {e}", var.name));
                    None
                }
            },
            (None, None) => offered(),
        };
        match value {
            Some(v) => {
                Arc::make_mut(&mut env.vars).insert(var.name.clone(), v);
            }
            None if var.default.is_none() && all_bound => problems.push(format!(
                "var `{}` of flow `{}` has no value: give `--var {}=…`",
                var.name, flow.signature.id, var.name
            )),
            None => {}
        }
    }
    *inputs = Arc::try_unwrap(env.inputs).unwrap_or_else(|a| (*a).clone());
    Arc::try_unwrap(env.vars).unwrap_or_else(|a| (*a).clone())
}
