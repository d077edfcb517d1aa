//! Binding a flow's integration slots to the integrations of an integrations file.
//!
//! A slot binds to the integration of the same name unless `--bind slot=name` says otherwise.
//! The binding offers the integration's API hostname as the flow's `host` var.

use std::collections::HashMap;
use std::sync::Arc;

use flowcat_engine::Flow;
use flowcat_engine::run::Binding;
use serde_json::Map;

use crate::http::Clients;
use crate::integrations::{Integration, Integrations, Kind};

/// What a `rest_call` finds behind its slot: the integration and the shared HTTP clients.
#[derive(Debug)]
pub struct Bound {
    pub integration: Integration,
    pub clients: Clients,
}

/// The engine's binding for one integration.
pub fn binding(integration: &Integration, clients: &Clients) -> Arc<Binding> {
    let mut vars = Map::new();
    vars.insert("host".into(), integration.host().into());
    Arc::new(Binding {
        name: integration.name.clone(),
        kind: integration.kind.as_str().to_owned(),
        vars,
        value: Arc::new(Bound { integration: integration.clone(), clients: clients.clone() }),
    })
}

/// Binds every slot of `flow`; every problem is listed, each naming the file and the fix.
pub fn bind(
    flow: &Flow,
    file: &Integrations,
    overrides: &[(String, String)],
    clients: &Clients,
) -> Result<HashMap<String, Arc<Binding>>, Vec<String>> {
    let mut out = HashMap::new();
    let mut problems = Vec::new();
    for (slot, _) in overrides {
        if !flow.signature.slots.iter().any(|s| &s.name == slot) {
            let names: Vec<&str> = flow.signature.slots.iter().map(|s| s.name.as_str()).collect();
            problems.push(format!(
                "`--bind {slot}=…`: flow `{}` has no slot `{slot}` (its slots: {})",
                flow.id(),
                flowcat_engine::diag::one_of(names.iter().copied())
            ));
        }
    }
    for slot in &flow.signature.slots {
        let asked = overrides.iter().find(|(s, _)| s == &slot.name).map(|(_, n)| n.as_str());
        // An optional slot that nothing names stays unbound; one that is named must bind.
        if !slot.required && asked.is_none() && file.get(&slot.name).is_err() {
            continue;
        }
        let name = asked.unwrap_or(slot.name.as_str());
        let Some(kind) = Kind::parse(&slot.kind) else {
            problems.push(format!("slot `{}` asks for an unknown integration kind `{}`", slot.name, slot.kind));
            continue;
        };
        match file.for_slot(name, kind) {
            Ok(integration) => {
                out.insert(slot.name.clone(), binding(integration, clients));
            }
            Err(e) => problems.extend(e.messages()),
        }
    }
    if problems.is_empty() { Ok(out) } else { Err(problems) }
}

/// Refuses a `host` var that names another host than a bound Duo integration's: signed
/// requests only ever go to the integration's own host, and a run that asks for another one
/// is a mistake (or an attempt to move a signature) to stop before anything is sent.
pub fn check_host(
    flow: &Flow,
    bindings: &HashMap<String, Arc<Binding>>,
    overrides: &Map<String, serde_json::Value>,
) -> Result<(), Vec<String>> {
    let Some(var) = flow.vars.iter().find(|v| v.name == "host") else { return Ok(()) };
    let literal = match &var.default {
        Some(flowcat_engine::template::ValueTemplate::Literal(v)) => v.as_str().map(str::to_owned),
        _ => None,
    };
    let (asked, source) = match (overrides.get("host").and_then(|v| v.as_str()), literal) {
        (Some(h), _) => (h.to_owned(), "`--var host`"),
        (None, Some(h)) => (h, "the flow's `host` default"),
        (None, None) => return Ok(()),
    };
    let asked_host = asked.rsplit_once(':').map_or(asked.as_str(), |(h, _)| h).to_ascii_lowercase();
    let problems: Vec<String> = bindings
        .iter()
        .filter_map(|(slot, b)| {
            let bound = b.value.downcast_ref::<Bound>()?;
            let own = bound.integration.host();
            (bound.integration.kind.is_duo() && own != asked_host).then(|| {
                format!(
                    "{source} is `{asked}`, but slot `{slot}` is bound to integration `{}` at `{own}`: \
                     a request signed for it goes only to its own host (fix the integrations file, or drop the override)",
                    b.name
                )
            })
        })
        .collect();
    if problems.is_empty() { Ok(()) } else { Err(problems) }
}
