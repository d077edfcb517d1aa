//! `wait_for`: parks the run until a named signal is delivered to it (a manager's approval, a
//! callback) or a timeout passes. The signal's payload is typed and checked when it is delivered
//! (`flowcat signal`, `Flowcat::signal`, the service); its fields are the node's result, beside
//! `timed_out`.
//!
//! The wait is durable: the journal says the run waits (for what, until when), a signal that
//! comes while no process holds the run is kept, and a resumed run waits again with the time
//! already spent counted against the timeout ([`Timing`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use flowcat_engine::journal::{InputType, SignalSpec};
use flowcat_engine::kind::{CompileCx, Compiled, Effect, NodeExec, NodeKind};
use flowcat_engine::run::{BoxFuture, NodeCx, NodeError, NodeOutput};
use flowcat_engine::shape::{Field, Shape, parse_duration};
use flowcat_engine::yaml::Node;
use serde_json::{Map, Value, json};

use super::wait::Timing;

#[derive(Debug)]
pub struct WaitFor;

/// The longest `timeout` a `wait_for` may declare.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(30 * 24 * 3600);

/// The result field saying whether the timeout passed; a payload field may not take its name.
pub const TIMED_OUT: &str = "timed_out";

const FIELDS: &[Field] = &[
    Field::required(
        "signal",
        Shape::Name,
        "the signal's name, e.g. `approval`: `flowcat signal RUN_ID approval --data '{…}'` delivers it",
    ),
    Field::optional(
        "payload",
        Shape::Map(&Shape::Enum(InputType::NAMES)),
        "the payload's fields and their types (`string`, `number`, `boolean`, `object`, `array`), all required: \
         a payload of another shape is refused to its sender; each field is a result field",
    ),
    Field::required(
        "timeout",
        Shape::Duration,
        "give up waiting after this long (at most `30d`), counted from the node's first start across resumes; \
         then `timed_out` is true",
    ),
];

impl NodeKind for WaitFor {
    fn name(&self) -> &'static str {
        "wait_for"
    }

    fn summary(&self) -> &'static str {
        "Parks the run until a named signal with a typed payload arrives or a timeout passes; its result is the \
         payload's fields and `timed_out`."
    }

    fn fields(&self) -> &'static [Field] {
        FIELDS
    }

    fn compile(&self, cx: &mut CompileCx<'_>) -> Option<Compiled> {
        let name = cx.str("signal")?.to_owned();
        let mut ok = true;
        let timeout = cx.str("timeout").and_then(parse_duration)?;
        if timeout.is_zero() || timeout > MAX_TIMEOUT {
            let span = cx.get("timeout").map_or(cx.node.span, |n| n.span);
            cx.error("bad-duration", span, format!("`wait_for` `{}` waits {timeout:?}", cx.id))
                .label("above zero, at most `30d`")
                .help("a longer wait is better ended (`timed_out`) and started again by whoever still needs it");
            ok = false;
        }
        let mut payload = Vec::new();
        if let Some(map) = cx.get("payload").filter(|n| !n.is_null()).and_then(Node::as_map) {
            for (k, v) in map {
                let (Some(field), Some(ty)) = (k.as_str(), v.as_str().and_then(InputType::parse)) else {
                    return None;
                };
                if field == TIMED_OUT {
                    cx.error("reserved-name", k.span, format!("payload field `{TIMED_OUT}` is reserved"))
                        .label("the node's result says with it whether the timeout passed")
                        .help("give the payload field another name");
                    ok = false;
                }
                payload.push((field.to_owned(), ty));
            }
        }
        if !ok {
            return None;
        }
        let spec = SignalSpec { name, payload };
        let mut fields = vec![TIMED_OUT.to_owned()];
        fields.extend(spec.payload.iter().map(|(f, _)| f.clone()));
        let mut compiled = Compiled::new(Box::new(WaitForExec { spec: spec.clone(), timeout }), fields);
        compiled.signal = Some(spec);
        Some(compiled)
    }
}

/// The compiled `wait_for` node.
#[derive(Debug)]
pub struct WaitForExec {
    pub spec: SignalSpec,
    pub timeout: Duration,
}

/// How a wait ended.
#[derive(Debug, PartialEq)]
pub enum Woke {
    Signal(Value),
    Timeout,
    Deadline,
}

impl WaitForExec {
    /// The node's result: the payload's fields and `timed_out` (the fields null when it timed out).
    pub fn result(&self, payload: Option<&Map<String, Value>>) -> Value {
        let mut out = Map::with_capacity(self.spec.payload.len() + 1);
        out.insert(TIMED_OUT.to_owned(), Value::Bool(payload.is_none()));
        for (field, _) in &self.spec.payload {
            out.insert(field.clone(), payload.and_then(|p| p.get(field)).cloned().unwrap_or(Value::Null));
        }
        Value::Object(out)
    }
}

impl NodeExec for WaitForExec {
    fn label(&self) -> String {
        format!("wait for signal {}", self.spec.name)
    }

    fn describe(&self) -> Value {
        let payload: Map<String, Value> =
            self.spec.payload.iter().map(|(f, t)| (f.clone(), Value::from(t.name()))).collect();
        json!({ "signal": self.spec.name, "payload": payload, "timeout_ms": self.timeout.as_millis() as u64 })
    }

    /// A wait only reads the journal: a resumed run waits again (and finds a signal delivered
    /// meanwhile). Not `Local`, so that its first start is journaled and a resume counts the
    /// time already spent.
    fn effect(&self) -> Effect {
        Effect::Read
    }

    fn run<'a>(&'a self, cx: NodeCx<'a>) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move {
            let timing = Timing::of(&cx);
            let left = self.timeout.saturating_sub(timing.spent);
            let now = tokio::time::Instant::now();
            let deadline_left = timing.left(now);
            let first = deadline_left.map_or(left, |d| d.min(left));
            let until_ms = wall_ms().saturating_add(first.as_millis() as u64);
            let name = &self.spec.name;
            let fields = self.spec.declared();
            let woke = {
                let signal = std::pin::pin!(cx.wait_signal(name, &fields, Some(until_ms)));
                let timeout = std::pin::pin!(tokio::time::sleep(left));
                let deadline = std::pin::pin!(async {
                    match deadline_left {
                        Some(d) => tokio::time::sleep(d).await,
                        None => std::future::pending().await,
                    }
                });
                // The timeout wins a tie with the deadline: it is the flow's documented outcome.
                race(signal, timeout, deadline, left <= deadline_left.unwrap_or(Duration::MAX)).await?
            };
            match woke {
                Woke::Signal(payload) => {
                    if let Err(problems) = self.spec.check(&payload) {
                        return Err(NodeError::new(
                            "bad_payload",
                            format!("signal `{name}` came with a payload that does not fit: {}", problems.join("; ")),
                        ));
                    }
                    Ok(NodeOutput::value(self.result(payload.as_object())))
                }
                Woke::Timeout => Ok(NodeOutput::value(self.result(None))),
                Woke::Deadline => Err(NodeError::new(
                    "deadline",
                    format!(
                        "the run's deadline came before signal `{name}` did (it would have waited {} s more)",
                        left.saturating_sub(deadline_left.unwrap_or_default()).as_secs()
                    ),
                )),
            }
        })
    }
}

/// Whichever comes first: the signal, the timeout, the deadline.
async fn race(
    signal: std::pin::Pin<&mut impl std::future::Future<Output = Result<Value, NodeError>>>,
    mut timeout: std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    mut deadline: std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    timeout_first: bool,
) -> Result<Woke, NodeError> {
    let mut signal = signal;
    std::future::poll_fn(|cx| {
        use std::task::Poll;
        if let Poll::Ready(r) = signal.as_mut().poll(cx) {
            return Poll::Ready(r.map(Woke::Signal));
        }
        let t = timeout.as_mut().poll(cx).is_ready();
        let d = deadline.as_mut().poll(cx).is_ready();
        match (t, d) {
            (true, true) if timeout_first => Poll::Ready(Ok(Woke::Timeout)),
            (true, false) => Poll::Ready(Ok(Woke::Timeout)),
            (_, true) => Poll::Ready(Ok(Woke::Deadline)),
            (false, false) => Poll::Pending,
        }
    })
    .await
}

fn wall_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or_default()
}
