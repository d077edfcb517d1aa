//! The JSON Schema (draft-07) of the flow format, generated from the same shapes the checker
//! uses, for editors running yaml-language-server.

use serde_json::{Map, Value, json};

use crate::format::{FLOW_FIELDS, NODE_FIELDS};
use crate::kind::Registry;
use crate::shape::{Field, Shape};

/// The whole schema.
pub fn schema(registry: &Registry) -> Value {
    let mut root = object(FLOW_FIELDS, &[], registry);
    let root_map = root.as_object_mut().expect("object() builds an object");
    root_map.insert("$schema".into(), json!("http://json-schema.org/draft-07/schema#"));
    root_map.insert("title".into(), json!("flowcat flow"));
    root_map.insert(
        "description".into(),
        json!("A flowcat flow file: inputs, vars, integration slots, nodes and outputs."),
    );
    root
}

fn object(fields: &[Field], extra: &[Field], registry: &Registry) -> Value {
    let mut props = Map::new();
    let mut required = Vec::new();
    for f in fields.iter().chain(extra) {
        let mut s = shape(&f.shape, registry);
        if let Some(obj) = s.as_object_mut() {
            obj.insert("description".into(), json!(f.doc));
        }
        props.insert(f.name.into(), s);
        if f.required {
            required.push(f.name);
        }
    }
    json!({ "type": "object", "properties": props, "required": required, "additionalProperties": false })
}

fn shape(s: &Shape, registry: &Registry) -> Value {
    match s {
        Shape::Str | Shape::Template => json!({ "type": "string" }),
        Shape::Name => json!({ "type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$" }),
        Shape::Condition => json!({ "type": ["string", "boolean"] }),
        Shape::Bool => json!({ "type": "boolean" }),
        Shape::Int => json!({ "type": "integer", "minimum": 0 }),
        Shape::Duration => json!({ "type": "string", "pattern": "^[0-9]+(ms|s|m|h|d)$" }),
        Shape::Enum(words) => json!({ "enum": words }),
        Shape::IntegrationKind => {
            let names: Vec<&str> = registry.integration_kinds.iter().map(|k| k.name).collect();
            json!({ "enum": names })
        }
        Shape::Value => json!({}),
        Shape::List(item) => json!({ "type": "array", "items": shape(item, registry) }),
        Shape::Map(value) => json!({
            "type": "object",
            "propertyNames": { "pattern": "^[A-Za-z_][A-Za-z0-9_]*$" },
            "additionalProperties": shape(value, registry),
        }),
        Shape::Dict(value) => json!({ "type": "object", "additionalProperties": shape(value, registry) }),
        Shape::Object(fields) => object(fields, &[], registry),
        Shape::OneOf(alts) => json!({ "anyOf": alts.iter().map(|a| shape(a, registry)).collect::<Vec<_>>() }),
        Shape::Nodes => nodes(registry),
    }
}

/// Nodes: the common fields, then per kind (`if kind == …`) the full closed object.
fn nodes(registry: &Registry) -> Value {
    let kinds: Vec<&str> = registry.kinds.iter().map(|k| k.name()).collect();
    let branches: Vec<Value> = registry
        .kinds
        .iter()
        .map(|k| {
            let mut then = object(NODE_FIELDS, k.fields(), registry);
            if let Some(obj) = then.as_object_mut() {
                obj.insert("description".into(), json!(k.summary()));
            }
            json!({ "if": { "properties": { "kind": { "const": k.name() } } }, "then": then })
        })
        .collect();
    json!({
        "type": "array",
        "items": {
            "type": "object",
            "required": ["id", "kind"],
            "properties": { "kind": { "enum": kinds } },
            "allOf": branches,
        },
    })
}
