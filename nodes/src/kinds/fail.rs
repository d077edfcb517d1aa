//! `fail`: ends the run with a clear message and a code, as the flow's own verdict.

use flowcat_engine::kind::{CompileCx, Compiled, NodeExec, NodeKind};
use flowcat_engine::run::{BoxFuture, NodeCx, NodeError, NodeOutput};
use flowcat_engine::shape::{Field, Shape};
use flowcat_engine::template::Template;

#[derive(Debug)]
pub struct Fail;

const FIELDS: &[Field] = &[
    Field::required("message", Shape::Template, "what went wrong, in words for the person running the flow"),
    Field::optional("code", Shape::Name, "a stable code for scripts, e.g. `user_not_found`"),
];

impl NodeKind for Fail {
    fn name(&self) -> &'static str {
        "fail"
    }

    fn summary(&self) -> &'static str {
        "Ends the run as failed, with a message and a code; usually guarded by `when:` or a branch."
    }

    fn fields(&self) -> &'static [Field] {
        FIELDS
    }

    fn compile(&self, cx: &mut CompileCx<'_>) -> Option<Compiled> {
        let message = cx.template("message")?;
        let code = cx.str("code").unwrap_or("failed").to_owned();
        let mut compiled = Compiled::new(Box::new(FailExec { message, code }), Vec::new());
        compiled.ends_run = true;
        Some(compiled)
    }
}

/// The compiled `fail` node.
#[derive(Debug)]
pub struct FailExec {
    pub message: Template,
    pub code: String,
}

impl NodeExec for FailExec {
    fn label(&self) -> String {
        format!("fail: {}", self.code)
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::json!({ "code": self.code, "message": self.message.source })
    }

    fn run<'a>(&'a self, cx: NodeCx<'a>) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move {
            // The message is the run's verdict: if it cannot be rendered, say so and still fail.
            let message = cx.render_text(&self.message).unwrap_or_else(|e| format!("{} ({e})", self.message.source));
            Err(NodeError::new(self.code.clone(), message))
        })
    }
}
