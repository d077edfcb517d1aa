//! `set`: computes named values from templates, for later nodes and outputs to read.

use flowcat_engine::kind::{CompileCx, Compiled, NodeExec, NodeKind};
use flowcat_engine::run::{BoxFuture, NodeCx, NodeError, NodeOutput};
use flowcat_engine::shape::{Field, Shape};
use flowcat_engine::template::ValueTemplate;

#[derive(Debug)]
pub struct Set;

const FIELDS: &[Field] = &[Field::required(
    "values",
    Shape::Map(&Shape::Value),
    "name → value; strings may be templates, and a template that is one `{{path}}` keeps the value's type",
)];

impl NodeKind for Set {
    fn name(&self) -> &'static str {
        "set"
    }

    fn summary(&self) -> &'static str {
        "Computes named values that later nodes and outputs read as `nodes.<id>.<name>`."
    }

    fn fields(&self) -> &'static [Field] {
        FIELDS
    }

    fn compile(&self, cx: &mut CompileCx<'_>) -> Option<Compiled> {
        let pairs = cx.get("values")?.as_map()?;
        let mut values = Vec::new();
        let mut ok = true;
        for (k, v) in pairs {
            let name = k.as_str()?.to_owned();
            match cx.value_of(v) {
                Some(t) => values.push((name, t)),
                None => ok = false,
            }
        }
        if !ok {
            return None;
        }
        let fields = values.iter().map(|(k, _)| k.clone()).collect();
        let mut compiled = Compiled::new(Box::new(SetExec { values }), fields);
        compiled.pure = true;
        Some(compiled)
    }
}

/// The compiled `set` node.
#[derive(Debug)]
pub struct SetExec {
    pub values: Vec<(String, ValueTemplate)>,
}

impl NodeExec for SetExec {
    fn label(&self) -> String {
        let names: Vec<&str> = self.values.iter().map(|(k, _)| k.as_str()).collect();
        format!("set {}", names.join(", "))
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::json!({ "values": self.values.iter().map(|(k, _)| k).collect::<Vec<_>>() })
    }

    fn run<'a>(&'a self, cx: NodeCx<'a>) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move {
            let mut out = serde_json::Map::with_capacity(self.values.len());
            for (k, v) in &self.values {
                out.insert(k.clone(), cx.render_value(v)?);
            }
            Ok(NodeOutput::value(serde_json::Value::Object(out)))
        })
    }
}
