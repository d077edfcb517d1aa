//! The flow file format, declared as shapes: the single source of the checker, the JSON Schema
//! and `docs/flow-format.md`.

use crate::model::InputType;
use crate::shape::{Field, Shape};

/// The top level of a flow file.
pub const FLOW_FIELDS: &[Field] = &[
    Field::required("id", Shape::Str, "the flow's id, unique in the catalog, e.g. `duo.admin.retrieve_user_id`"),
    Field::optional("name", Shape::Str, "a human name, e.g. \"Duo Admin Retrieve userId\""),
    Field::optional("description", Shape::Str, "what the flow does, for `flowcat list` and the docs"),
    Field::optional(
        "key",
        Shape::Template,
        "the run key, a template over `inputs.…` only, e.g. `\"{{inputs.username}}\"`: runs with one key are one request (never two at once; a finished one is not run again)",
    ),
    Field::optional(
        "deadline",
        Shape::Duration,
        "how long a whole run may take, waits and retries included, e.g. `10m` (at most `7d`)",
    ),
    Field::optional("inputs", Shape::Map(&Shape::Object(INPUT_FIELDS)), "the values a run must or may be given"),
    Field::optional(
        "vars",
        Shape::Map(&Shape::Object(VAR_FIELDS)),
        "named values such as `host` that a run may override",
    ),
    Field::optional(
        "integrations",
        Shape::Map(&Shape::Object(SLOT_FIELDS)),
        "the integration slots the flow's nodes call through",
    ),
    Field::required("nodes", Shape::Nodes, "the steps of the flow"),
    Field::optional("outputs", Shape::Map(&Shape::OneOf(OUTPUT_SHAPES)), "what the flow returns: name → template"),
];

pub const INPUT_FIELDS: &[Field] = &[
    Field::required("type", Shape::Enum(InputType::NAMES), "`string`, `number`, `boolean`, `object` or `array`"),
    Field::optional("required", Shape::Bool, "whether a run must give it; default: true unless a `default` is set"),
    Field::optional("default", Shape::Value, "the value when a run does not give one"),
    Field::optional("description", Shape::Str, "what the input means"),
    Field::optional("pattern", Shape::Str, "a regular expression the whole string must match"),
];

pub const VAR_FIELDS: &[Field] = &[
    Field::optional(
        "default",
        Shape::Value,
        "the value unless a run overrides it; may be a template over inputs and earlier vars",
    ),
    Field::optional("description", Shape::Str, "what the var means"),
];

pub const SLOT_FIELDS: &[Field] = &[
    Field::required("kind", Shape::IntegrationKind, "the kind of integration the slot needs"),
    Field::optional(
        "required",
        Shape::Bool,
        "whether a run must bind it (default: true); a node calling through an unbound slot fails",
    ),
    Field::optional("description", Shape::Str, "what the flow uses it for"),
];

pub const OUTPUT_FIELDS: &[Field] = &[
    Field::required("value", Shape::Template, "a template over inputs, vars and nodes"),
    Field::optional(
        "default",
        Shape::Value,
        "the value when `value` reads a node that was skipped, or a value that is missing",
    ),
    Field::optional("description", Shape::Str, "what the output means"),
];

pub const OUTPUT_SHAPES: &[Shape] = &[Shape::Template, Shape::Object(OUTPUT_FIELDS)];

/// The fields every node has, whatever its kind.
pub const NODE_FIELDS: &[Field] = &[
    Field::required("id", Shape::Name, "the node's id, unique in the flow; later nodes read `nodes.<id>.<field>`"),
    Field::required("kind", Shape::Str, "the node kind"),
    Field::optional("description", Shape::Str, "what the step is for"),
    Field::optional(
        "after",
        Shape::List(&Shape::Name),
        "nodes that must finish first (edges from templates are inferred)",
    ),
    Field::optional("when", Shape::Condition, "the node runs only when this is true; otherwise it is skipped"),
    Field::optional(
        "on_error",
        Shape::Enum(&["stop", "fail", "continue"]),
        "`stop` (default; `fail` is the same): a failure fails the run; `continue`: the run goes on and later nodes read `nodes.<id>.error` (on a `for_each`: every item runs, and the failures are in its result)",
    ),
];
