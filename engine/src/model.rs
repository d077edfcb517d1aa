//! The parts of a validated flow that are not nodes: inputs, vars, integration slots, outputs,
//! and the signature other flows see when they call this one as a subflow.

use std::time::Duration;

use serde::Serialize;

use crate::template::{Template, ValueTemplate};
use crate::yaml::Span;

/// The longest `deadline:` a flow may declare: a week. A run that would wait longer is better
/// ended and started again when there is something to do.
pub const MAX_DEADLINE: Duration = Duration::from_secs(7 * 24 * 3600);

/// The type of an input, checked when a run starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputType {
    String,
    Number,
    Boolean,
    Object,
    Array,
}

impl InputType {
    pub const NAMES: &'static [&'static str] = &["string", "number", "boolean", "object", "array"];

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "string" => InputType::String,
            "number" => InputType::Number,
            "boolean" => InputType::Boolean,
            "object" => InputType::Object,
            "array" => InputType::Array,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// Whether a JSON value has this type.
    pub fn accepts(self, v: &serde_json::Value) -> bool {
        use serde_json::Value as J;
        matches!(
            (self, v),
            (InputType::String, J::String(_))
                | (InputType::Number, J::Number(_))
                | (InputType::Boolean, J::Bool(_))
                | (InputType::Object, J::Object(_))
                | (InputType::Array, J::Array(_))
        )
    }
}

/// A flow input.
#[derive(Clone, Debug)]
pub struct Input {
    pub name: String,
    pub ty: InputType,
    /// Required unless it has a default or says `required: false`.
    pub required: bool,
    pub default: Option<serde_json::Value>,
    pub description: Option<String>,
    /// For strings: the whole value must match.
    pub pattern: Option<regex::Regex>,
    pub span: Span,
}

/// A named value such as `host`, which a run may override.
#[derive(Clone, Debug)]
pub struct Var {
    pub name: String,
    pub default: Option<ValueTemplate>,
    pub description: Option<String>,
    pub span: Span,
}

/// An integration slot: the flow needs an integration of `kind`, bound at run time.
#[derive(Clone, Debug, Serialize)]
pub struct Slot {
    pub name: String,
    pub kind: String,
    pub description: Option<String>,
    /// `false`: a run may leave the slot unbound; a node calling through it then fails, saying so.
    pub required: bool,
    #[serde(skip)]
    pub span: Span,
}

/// A flow output: a template over the run, with a default for when it reads a skipped node.
#[derive(Clone, Debug)]
pub struct Output {
    pub name: String,
    pub value: Template,
    pub default: Option<ValueTemplate>,
    pub description: Option<String>,
    pub span: Span,
}

/// What a caller sees of a flow: enough to check a `subflow` node without compiling the flow.
#[derive(Clone, Debug)]
pub struct Signature {
    pub id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    /// The file the flow was read from.
    pub path: String,
    pub inputs: Vec<Input>,
    pub outputs: Vec<OutputSig>,
    pub slots: Vec<Slot>,
}

impl Signature {
    /// The signature as JSON: what `flowcat list --format json` prints per flow and what
    /// `flowcat serve` answers in its catalog (one spelling for both).
    pub fn to_json(&self) -> serde_json::Value {
        let inputs: Vec<_> = self
            .inputs
            .iter()
            .map(|i| serde_json::json!({"name": i.name, "type": i.ty, "required": i.required, "default": i.default, "description": i.description}))
            .collect();
        serde_json::json!({
            "id": self.id, "name": self.name, "description": self.description, "file": self.path,
            "inputs": inputs, "outputs": self.outputs, "integrations": self.slots,
        })
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct OutputSig {
    pub name: String,
    pub description: Option<String>,
}
