//! Running a `rest_call`: render the request, send it through the bound integration, read
//! Duo's envelope, apply `accept:` and `extract:`, and repeat while polling.

use std::sync::Arc;

use flowcat_engine::journal::RESULT;
use flowcat_engine::kind::Effect;
use flowcat_engine::render::truthy;
use flowcat_engine::run::{Detail, NodeCx, NodeError, NodeOutput};
use flowcat_engine::template::ValueTemplate;

use crate::http::{Attempt, ResponseRecord};
use serde_json::{Map, Value, json};

use super::rest_call::{Extract, Poll, RestCallExec};
use super::wait::{Next, Timing, after_poll};
use crate::bind::Bound;
use crate::duo::rules;
use crate::http::{self, Call, CallError, Reply};
use tokio::time::Instant;

/// Attempts kept in the run record per node: a poll may make many.
const KEPT_ATTEMPTS: usize = 10;

impl RestCallExec {
    /// Runs the call: renders it, sends it (polling and paging as declared), reads the answer,
    /// within the run's deadline and counting the time a resumed wait already spent.
    pub async fn execute(&self, cx: &NodeCx<'_>) -> Result<NodeOutput, NodeError> {
        self.execute_with(cx, Timing::of(cx)).await
    }

    /// [`execute`](Self::execute) with the timing given rather than taken from the context.
    pub async fn execute_with(&self, cx: &NodeCx<'_>, timing: Timing) -> Result<NodeOutput, NodeError> {
        cx.count_attempts();
        let bound: &Bound = cx.binding(&self.slot)?;
        let mut call = self.call(cx, bound)?;
        call.deadline = timing.deadline;
        // The first request's rate-limit token before anything else, the node parked meanwhile:
        // a run stopped while the limit holds its calls back stops at once, with nothing sent
        // and no intent journaled (a resume simply runs the node again).
        let mut token = cx.parked(http::token(&bound.integration, &call)).await.map_err(call_error)?;
        if matches!(self.effect, Effect::Write | Effect::Idempotent) {
            // Journaled before the first attempt; when it cannot be, nothing is sent. It is also
            // the journal's barrier: everything this run journaled before (the reads this call's
            // values came from) is durable before the call changes anything, so a resume never
            // reads again what the call has changed. An idempotent call in doubt is simply sent
            // again on resume; only a write is reconciled.
            let request = http::intent(&bound.integration, &call).map_err(call_error)?;
            cx.intent(&serde_json::to_value(&request).unwrap_or_default()).await?;
        }
        let Some(poll) = &self.poll else {
            let mut kept: Vec<Attempt> = Vec::new();
            let result = self.once(cx, bound, &call, &mut kept, token).await;
            cx.set_detail_lazy(detail(kept, None, result.as_ref().ok()));
            return result.map(NodeOutput::value);
        };
        self.poll(cx, bound, &call, poll, timing, token.take()).await
    }

    /// Repeats the call until `until` holds, within the poll's bound (counted from the node's
    /// first start, `timing.spent` included) and the run's deadline.
    async fn poll(
        &self,
        cx: &NodeCx<'_>,
        bound: &Bound,
        call: &Call,
        poll: &Poll,
        timing: Timing,
        mut token: Option<http::Token>,
    ) -> Result<NodeOutput, NodeError> {
        let mut kept: Vec<Attempt> = Vec::new();
        let started = Instant::now();
        let mut polls = 0u32;
        loop {
            polls += 1;
            let mut result = self.once(cx, bound, call, &mut kept, token.take()).await;
            if let Ok(Value::Object(m)) = &mut result {
                m.insert("attempts".into(), json!(polls));
            }
            // A long-poll that outlived the attempt's time limit (Duo holds `auth_status` until
            // the push's state changes) is an answer not given yet: still waiting.
            let still_waiting = matches!(&result, Err(e) if e.code == "timeout" && self.method == "GET");
            let done = match &result {
                Err(_) if still_waiting => Ok(Ok(false)),
                _ => result.as_ref().map(|r| cx.render_with_self(&poll.until, r).map(|v| truthy(&v))),
            };
            let keep = kept.len().saturating_sub(KEPT_ATTEMPTS);
            match done {
                Err(_) | Ok(Ok(true)) | Ok(Err(_)) => {
                    // The node's result is the last answer's only when it succeeds with it.
                    let answer = match done {
                        Ok(Ok(true)) => result.as_ref().ok(),
                        _ => None,
                    };
                    cx.set_detail_lazy(detail(kept.split_off(keep), Some(polls), answer));
                    return match done {
                        Ok(Err(e)) => Err(e),
                        _ => result.map(NodeOutput::value),
                    };
                }
                Ok(Ok(false)) => {}
            }
            let elapsed = timing.spent.saturating_add(started.elapsed());
            let stop = match after_poll(elapsed, poll.interval, poll.timeout, timing.left(Instant::now())) {
                Next::Wait => None,
                Next::Bound => Some(NodeError::new(
                    "poll_timeout",
                    format!(
                        "`{}` did not hold within {} s ({polls} polls)",
                        poll.until.source,
                        poll.timeout.as_secs_f64()
                    ),
                )),
                Next::Deadline => Some(NodeError::new(
                    "deadline",
                    format!(
                        "the run's deadline comes before the next poll of `{} {}`, due in {} ms: `{}` did not hold after {polls} polls",
                        self.method,
                        self.path.source,
                        poll.interval.as_millis(),
                        poll.until.source
                    ),
                )),
            };
            if let Some(e) = stop {
                cx.set_detail_lazy(detail(kept.split_off(keep), Some(polls), None));
                return Err(e);
            }
            let why = if still_waiting { " (the last attempt timed out)" } else { "" };
            cx.waiting(&format!("poll {polls}{why}: waiting {} ms", poll.interval.as_millis()));
            if self.effect == Effect::Read {
                // Between two reads nothing is in flight: a drain stops the run here at once,
                // and a resume polls again with the time spent counted.
                cx.parked(tokio::time::sleep(poll.interval)).await;
            } else {
                tokio::time::sleep(poll.interval).await;
            }
        }
    }

    /// Plan mode: the request this call would send now, rendered with the values known and
    /// prepared for its integration as a write's intent is (the URL, the body as it would go),
    /// nothing sent; the signature headers it would carry are shown redacted.
    pub(super) fn render_plan(&self, cx: &NodeCx<'_>) -> Result<Value, NodeError> {
        let bound: &Bound = cx.binding(&self.slot)?;
        let call = self.call(cx, bound)?;
        let request = http::intent(&bound.integration, &call).map_err(call_error)?;
        let mut request = serde_json::to_value(&request).unwrap_or_default();
        use crate::integrations::Auth;
        let signed: &[&str] = match bound.integration.auth {
            Auth::Duo { .. } => &["authorization", "date"],
            Auth::None => &[],
            Auth::Basic { .. } | Auth::Bearer(_) => &["authorization"],
        };
        if let Some(headers) = request.get_mut("headers").and_then(Value::as_object_mut) {
            for name in signed {
                headers.insert((*name).into(), http::REDACTED.into());
            }
        }
        Ok(request)
    }

    /// Plan mode: the request as the flow writes it, for a call that waits for results nobody
    /// knows yet.
    pub(super) fn plan_template(&self) -> Value {
        let fields = |pairs: &Option<Vec<(String, ValueTemplate)>>| {
            pairs.as_ref().map(|p| p.iter().map(|(k, v)| (k.clone(), template_json(v))).collect::<Map<_, _>>())
        };
        let mut out = json!({ "integration": self.slot, "method": self.method, "path": self.path.source });
        if let Some(q) = fields(&self.query) {
            out["query"] = Value::Object(q);
        }
        if let Some(b) = fields(&self.body) {
            out["body"] = Value::Object(b);
        }
        if !self.headers.is_empty() {
            out["headers"] = self.headers.iter().map(|(k, t)| (k.clone(), Value::from(t.source.clone()))).collect();
        }
        out
    }

    /// Renders the request. Values go in as structures: a path value is one segment, a query
    /// value one parameter, a body value one JSON value; a null parameter is left out.
    fn call(&self, cx: &NodeCx<'_>, bound: &Bound) -> Result<Call, NodeError> {
        let mut call = Call::new(self.method.clone(), cx.render_path(&self.path)?);
        call.timeout = self.timeout;
        call.connect_timeout = self.connect_timeout;
        call.retry = self.retry.map(|r| r.over(&bound.integration.retry));
        call.effect = self.effect;
        call.route = Some(self.route.clone());
        call.node = Some(cx.path().join("/").into());
        call.query = query(cx, self.query.iter().flatten())?;
        if let Some(body) = &self.body {
            let mut m = Map::new();
            for (k, v) in body {
                match cx.render_value(v)? {
                    Value::Null => {}
                    other => {
                        m.insert(k.clone(), other);
                    }
                }
            }
            call.body = Some(m);
        }
        for (k, t) in &self.headers {
            call.headers.push((k.clone(), cx.render_text(t)?));
        }
        Ok(call)
    }

    /// One request, with the integration's retries; the result later nodes read.
    async fn once(
        &self,
        cx: &NodeCx<'_>,
        bound: &Bound,
        call: &Call,
        kept: &mut Vec<Attempt>,
        token: Option<http::Token>,
    ) -> Result<Value, NodeError> {
        let sent = if self.pages {
            all_pages(bound, call, token).await
        } else {
            http::send_with(&bound.clients, &bound.integration, call, token).await
        };
        let mut sent = sent;
        let attempts = match &mut sent {
            Ok(r) => std::mem::take(&mut r.attempts),
            Err(e) => e.attempts().to_vec(),
        };
        for _ in &attempts {
            cx.attempt();
        }
        kept.extend(attempts);
        let reply = sent.map_err(call_error)?;
        let failure = failure(&reply, bound.integration.kind.is_duo());
        let accepted = failure.as_ref().is_some_and(|f| {
            self.accept.status.contains(&reply.status) || f.code.is_some_and(|c| self.accept.code.contains(&c))
        });
        if let (Some(f), false) = (&failure, accepted) {
            return Err(f.to_error());
        }
        let mut result = Map::new();
        result.insert("status".into(), json!(reply.status));
        result.insert("headers".into(), json!(reply.headers));
        for e in &self.extract {
            result.insert(e.name.clone(), extract(e, &reply.body, accepted)?);
        }
        if self.secret {
            // Before the result leaves the node: the scheduler journals it next.
            for e in &self.extract {
                if let Some(value) = result.get(&e.name) {
                    cx.secret(value);
                }
            }
        }
        result.insert("body".into(), reply.body);
        Ok(Value::Object(result))
    }
}

/// Renders query parameters: a null leaves the parameter out, a list repeats it.
pub(super) fn query<'a>(
    cx: &NodeCx<'_>,
    params: impl Iterator<Item = &'a (String, ValueTemplate)>,
) -> Result<Vec<(String, String)>, NodeError> {
    let mut out = Vec::new();
    for (k, v) in params {
        match cx.render_value(v)? {
            Value::Null => {}
            Value::Array(items) => {
                for item in items {
                    out.push((k.clone(), scalar(k, item)?));
                }
            }
            other => out.push((k.clone(), scalar(k, other)?)),
        }
    }
    Ok(out)
}

/// Most pages followed: 100 pages of Duo's largest page (500) is 50,000 objects.
const MAX_PAGES: usize = 100;

/// Sends `call`, then again for the next page until there is none, and joins every page's list
/// into the last reply. Duo pages two ways: the v1 lists answer a `response` list and
/// `metadata.next_offset`, a number sent back as `offset`; the v2 logs answer an object whose one
/// list (`authlogs`, …) comes with `response.metadata.next_offset`, a list of strings sent back
/// joined by commas as `next_offset`.
async fn all_pages(bound: &Bound, call: &Call, mut token: Option<http::Token>) -> Result<Reply, CallError> {
    let mut call = call.clone();
    let mut items: Vec<Value> = Vec::new();
    let mut attempts = Vec::new();
    for _ in 0..MAX_PAGES {
        let mut reply = http::send_with(&bound.clients, &bound.integration, &call, token.take()).await?;
        attempts.append(&mut reply.attempts);
        let Some(page) = Page::of(&mut reply.body) else {
            reply.attempts = attempts;
            return Ok(reply);
        };
        items.append(page.items);
        let Some((param, next)) = page.next else {
            *page.items = std::mem::take(&mut items);
            reply.attempts = attempts;
            return Ok(reply);
        };
        call.query.retain(|(k, _)| k != param);
        call.query.push((param.to_owned(), next));
    }
    Err(CallError::Refused { reason: format!("more than {MAX_PAGES} pages: narrow the query or raise `limit`") })
}

/// One page of a paged answer: its list, and the parameter and value that ask for the next.
struct Page<'a> {
    items: &'a mut Vec<Value>,
    next: Option<(&'static str, String)>,
}

impl<'a> Page<'a> {
    /// `None` when the answer is not a page (a failure, for example).
    fn of(body: &'a mut Value) -> Option<Self> {
        let v1 = body
            .pointer("/metadata/next_offset")
            .filter(|v| !v.is_null())
            .map(|next| ("offset", next.as_str().map_or_else(|| next.to_string(), str::to_owned)));
        let v2 = body.pointer("/response/metadata/next_offset").and_then(Value::as_array).map(|parts| {
            let parts: Vec<String> =
                parts.iter().map(|p| p.as_str().map_or_else(|| p.to_string(), str::to_owned)).collect();
            ("next_offset", parts.join(","))
        });
        let v2_shape = body.pointer("/response/metadata").is_some_and(Value::is_object);
        match body.get_mut("response")? {
            Value::Array(items) => Some(Page { items, next: v1 }),
            Value::Object(object) if v2_shape => {
                let mut lists = object.iter_mut().filter(|(k, _)| *k != "metadata").filter_map(|(_, v)| match v {
                    Value::Array(items) => Some(items),
                    _ => None,
                });
                let items = lists.next()?;
                lists.next().is_none().then_some(Page { items, next: v2 })
            }
            _ => None,
        }
    }
}

/// The attempts (redacted by the HTTP layer), written as JSON straight from them. `result` is
/// the node's result when it succeeds with the last answer: a journal then stores that answer
/// once, in the result ([`Detail::typed_with_lean`]).
fn detail(attempts: Vec<Attempt>, polls: Option<u32>, result: Option<&Value>) -> Detail {
    let repeated = match (attempts.last().and_then(|a| a.response.as_ref()), result) {
        (Some(answer), Some(result)) => is_answer(answer, result),
        _ => false,
    };
    let attempts = Arc::new(Attempts { attempts, polls });
    if repeated {
        Detail::typed_with_lean(Whole(attempts.clone()), Lean(attempts))
    } else {
        Detail::typed(Whole(attempts))
    }
}

/// Whether `result` holds exactly `answer`'s body, headers and status. The answer was scrubbed
/// of the integration's secrets and the result was not: an answer that held one differs, and
/// is stored as it is.
fn is_answer(answer: &ResponseRecord, result: &Value) -> bool {
    let status = result.get("status").and_then(Value::as_u64) == Some(u64::from(answer.status));
    let headers = result.get("headers").and_then(Value::as_object).is_some_and(|h| {
        h.len() == answer.headers.len()
            && answer.headers.iter().all(|(k, v)| h.get(k).and_then(Value::as_str) == Some(v.as_str()))
    });
    status && headers && result.get("body") == Some(&answer.body)
}

/// A call's detail: `{"attempts": [...], "polls": n}`, its keys in sorted order.
#[derive(serde::Serialize)]
struct Attempts {
    attempts: Vec<Attempt>,
    #[serde(skip_serializing_if = "Option::is_none")]
    polls: Option<u32>,
}

/// [`Attempts`] whole: the detail the record shows.
struct Whole(Arc<Attempts>);

impl serde::Serialize for Whole {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// [`Attempts`] as a journal stores them beside the node's result, which holds the last
/// answer: that answer is named (`$result`) instead of written. Keys in sorted order.
struct Lean(Arc<Attempts>);

impl serde::Serialize for Lean {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        struct Named(usize);
        impl serde::Serialize for Named {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("at", &format!("/attempts/{}/response", self.0))?;
                m.serialize_entry("fields", &["body", "headers", "status"])?;
                m.end()
            }
        }
        struct List<'a>(&'a [Attempt]);
        impl serde::Serialize for List<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut seq = s.serialize_seq(Some(self.0.len()))?;
                if let Some((last, before)) = self.0.split_last() {
                    for attempt in before {
                        seq.serialize_element(attempt)?;
                    }
                    seq.serialize_element(&Unanswered(last))?;
                }
                seq.end()
            }
        }
        let Attempts { attempts, polls } = self.0.as_ref();
        let mut m = s.serialize_map(None)?;
        m.serialize_entry(RESULT, &Named(attempts.len().saturating_sub(1)))?;
        m.serialize_entry("attempts", &List(attempts))?;
        if let Some(polls) = polls {
            m.serialize_entry("polls", polls)?;
        }
        m.end()
    }
}

/// An attempt written without its answer: [`Attempt`]'s fields, in its order, but `response`.
struct Unanswered<'a>(&'a Attempt);

impl serde::Serialize for Unanswered<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let Attempt { duration_ms, error, request, response: _, retry_delay_ms, started_at } = self.0;
        let mut m = s.serialize_struct("Attempt", 5)?;
        m.serialize_field("duration_ms", duration_ms)?;
        match error {
            Some(e) => m.serialize_field("error", e)?,
            None => m.skip_field("error")?,
        }
        m.serialize_field("request", request)?;
        match retry_delay_ms {
            Some(d) => m.serialize_field("retry_delay_ms", d)?,
            None => m.skip_field("retry_delay_ms")?,
        }
        m.serialize_field("started_at", started_at)?;
        m.end()
    }
}

/// A value as the flow writes it: templates as their text.
fn template_json(v: &ValueTemplate) -> Value {
    match v {
        ValueTemplate::Literal(v) => v.clone(),
        ValueTemplate::Template(t) => t.source.clone().into(),
        ValueTemplate::List(items) => items.iter().map(template_json).collect(),
        ValueTemplate::Object(pairs) => pairs.iter().map(|(k, v)| (k.clone(), template_json(v))).collect(),
    }
}

fn scalar(key: &str, v: Value) -> Result<String, NodeError> {
    match v {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => {
            Err(NodeError::new("template", format!("query parameter `{key}` must be a scalar or a list, got {other}")))
        }
    }
}

pub(super) fn call_error(e: CallError) -> NodeError {
    let code = match &e {
        CallError::Refused { .. } => "refused",
        CallError::Connect { .. } => "connect",
        CallError::Timeout { .. } => "timeout",
        CallError::Lost { .. } => "connection_lost",
        CallError::TooManyRequests { .. } => "rate_limited",
        CallError::TooLarge { .. } => "too_large",
        CallError::Deadline { .. } => "deadline",
    };
    NodeError::new(code, e.to_string()).with_data(json!({ "outcome_unknown": e.outcome_unknown() }))
}

/// A failure read from a reply: Duo's envelope (`stat: FAIL`) or an HTTP error status.
pub(super) struct Failure {
    status: u16,
    code: Option<u64>,
    message: String,
    detail: Option<String>,
    duo: bool,
}

impl Failure {
    pub(super) fn to_error(&self) -> NodeError {
        let data =
            json!({ "status": self.status, "code": self.code, "message": self.message, "message_detail": self.detail });
        let detail = self.detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default();
        let (code, message) = match (self.duo, self.code) {
            (true, Some(c)) => {
                (format!("duo_{c}"), format!("Duo answered {c}: {}{detail}{}", self.message, rules::error_hint(c)))
            }
            (true, None) => (
                format!("http_{}", self.status),
                format!("Duo answered HTTP {}: {}{detail}", self.status, self.message),
            ),
            (false, _) => (format!("http_{}", self.status), format!("HTTP {}: {}", self.status, self.message)),
        };
        NodeError::new(code, message).with_data(data)
    }
}

pub(super) fn failure(reply: &Reply, duo: bool) -> Option<Failure> {
    let body = &reply.body;
    let stat_fail = body.get("stat").and_then(Value::as_str) == Some("FAIL");
    if reply.status < 400 && !stat_fail {
        return None;
    }
    // Duo has sent `code` as an empty string: then there is no code, not an error reading it.
    let code = match body.get("code") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    let text = |k: &str| body.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
    let message = text("message").unwrap_or_else(|| match body {
        Value::String(s) if !s.is_empty() => s.chars().take(200).collect(),
        _ => format!("HTTP status {}", reply.status),
    });
    Some(Failure { status: reply.status, code, message, detail: text("message_detail"), duo: duo || stat_fail })
}

/// Applies one `extract:` entry. A failure that was accepted has another shape: its extractions
/// are optional.
pub(super) fn extract(e: &Extract, body: &Value, accepted: bool) -> Result<Value, NodeError> {
    let found: Vec<&Value> = e.path.query(body).all();
    if e.many {
        return Ok(Value::Array(found.into_iter().cloned().collect()));
    }
    match found.as_slice() {
        [one] => Ok((*one).clone()),
        [] if e.optional || accepted => Ok(e.default.clone().unwrap_or(Value::Null)),
        [] => Err(NodeError::new(
            "extract",
            format!(
                "extract `{}`: `{}` matched nothing in the response (declare it `optional: true` or give a `default`)",
                e.name, e.source
            ),
        )),
        many => Err(NodeError::new(
            "extract",
            format!(
                "extract `{}`: `{}` matched {} values (add `many: true` to get a list)",
                e.name,
                e.source,
                many.len()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every field of an attempt set, so that every key is written.
    fn full_attempt() -> Attempt {
        use crate::http::{RequestRecord, ResponseRecord};
        let headers = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Attempt {
            duration_ms: 12,
            error: Some("lost".into()),
            request: RequestRecord {
                body: Some(json!({"z": 1, "a": [true, null]})),
                headers: headers(&[("date", "Tue, 21 Aug 2012 17:29:18 -0000"), ("authorization", "****")]),
                method: "POST".into(),
                url: "https://api-1.duosecurity.com/admin/v1/phones".into(),
            },
            response: Some(ResponseRecord {
                body: json!({"stat": "OK", "response": {"phone_id": "DP1"}}),
                headers: headers(&[("content-type", "application/json")]),
                status: 200,
            }),
            retry_delay_ms: Some(250),
            started_at: 1_796_312_617_779,
        }
    }

    /// A record's detail is written straight from the typed attempts, and reads exactly as the
    /// JSON object of them did, whose keys serde_json sorts: the declared field order of the
    /// records is alphabetical. A field added out of order fails here.
    #[test]
    fn a_records_keys_are_in_sorted_order() {
        for polls in [None, Some(3)] {
            let attempts = Attempts { attempts: vec![full_attempt(), full_attempt()], polls };
            let as_value = serde_json::to_value(&attempts).expect("a value");
            let typed = serde_json::to_string(&detail(attempts.attempts, polls, None)).expect("json");
            assert_eq!(typed, serde_json::to_string(&as_value).expect("json"));
            let pretty = serde_json::to_string_pretty(&detail(vec![full_attempt()], polls, None)).expect("json");
            let want = serde_json::to_value(Attempts { attempts: vec![full_attempt()], polls }).expect("a value");
            assert_eq!(pretty, serde_json::to_string_pretty(&want).expect("json"));
        }
        // Asked for as a value (comparing, `runs show` of a live record), it is the same.
        let detail = detail(vec![full_attempt()], None, None);
        assert_eq!(detail.get(), json!({ "attempts": [serde_json::to_value(full_attempt()).expect("a value")] }));
    }

    /// The node's result as `once` makes it of an answer: status, headers, extracts, body.
    fn result_of(answer: &ResponseRecord) -> Value {
        json!({ "status": answer.status, "headers": answer.headers, "user_id": "DU1", "body": answer.body })
    }

    /// A journal stores a call's last answer once, in the result; read back, the detail is whole.
    #[test]
    fn a_journal_stores_the_last_answer_once_and_reads_the_detail_back_whole() {
        use flowcat_engine::journal::{Finished, FinishedRows, resolve_finished};
        use flowcat_engine::run::{NodeRecord, NodeStatus};
        let mut first = full_attempt();
        first.response.as_mut().expect("an answer").status = 503;
        for polls in [None, Some(2)] {
            let attempts = vec![first.clone(), full_attempt()];
            let result = result_of(full_attempt().response.as_ref().expect("an answer"));
            let whole = serde_json::to_value(Attempts { attempts: attempts.clone(), polls }).expect("a value");
            let detail = detail(attempts, polls, Some(&result));
            // The record shows it whole.
            assert_eq!(serde_json::to_value(&detail).expect("a value"), whole);
            let record = NodeRecord {
                id: "lookup".into(),
                kind: "rest_call".into(),
                status: NodeStatus::Succeeded,
                reason: None,
                started_at: Some(1),
                ended_at: Some(2),
                duration_ms: Some(1.0),
                attempts: 2,
                result: Some(Arc::new(result)),
                error: None,
                detail: Some(detail),
                subflow: None,
                items: Vec::new(),
            };
            let finished = Finished { record, branch: None };
            let rows = |_: &str| None;
            let stored = serde_json::to_string(&FinishedRows { finished: &finished, path: "lookup", rows: &rows })
                .expect("json");
            // The body: once in the result, once in the first (failed) answer; not in the last.
            assert_eq!(stored.matches(r#""phone_id":"DP1""#).count(), 2, "{stored}");
            assert_eq!(stored.matches(r#""status":503"#).count(), 1, "the first answer stays: {stored}");
            let mut value: Value = serde_json::from_str(&stored).expect("json");
            assert_eq!(value["record"]["detail"]["$result"]["at"], "/attempts/1/response");
            resolve_finished(&mut value, "lookup", &Default::default()).expect("whole again");
            assert_eq!(value["record"]["detail"], whole);
            assert_eq!(serde_json::from_value::<Finished>(value).expect("a node"), finished);
        }
    }

    /// An answer the result does not hold exactly (the answer scrubbed of a secret, a header
    /// more, a merged page) is stored as it is; so is the detail of a node without a result.
    #[test]
    fn an_answer_the_result_does_not_repeat_is_stored_whole() {
        let answer = full_attempt().response.expect("an answer");
        let mut body = result_of(&answer);
        body["body"]["response"] = json!("other");
        let mut header = result_of(&answer);
        header["headers"]["x-more"] = json!("1");
        let mut status = result_of(&answer);
        status["status"] = json!(201);
        for result in [Some(body), Some(header), Some(status), None] {
            let detail = detail(vec![full_attempt()], None, result.as_ref());
            let journaled = serde_json::to_value(detail.journaled()).expect("a value");
            assert_eq!(journaled, serde_json::to_value(&detail).expect("a value"), "{result:?}");
        }
        assert!(is_answer(&answer, &result_of(&answer)));
    }

    /// Written without its answer, an attempt keeps every other field of `Attempt`, in order.
    #[test]
    fn an_unanswered_attempt_is_an_attempt_but_its_answer() {
        let mut attempt = full_attempt();
        attempt.error = Some("lost".into());
        let mut want = serde_json::to_value(&attempt).expect("a value");
        want.as_object_mut().expect("an object").remove("response");
        assert_eq!(serde_json::to_string(&Unanswered(&attempt)).expect("json"), want.to_string());
    }

    fn reply(status: u16, body: Value) -> Reply {
        Reply { status, headers: Default::default(), body, attempts: Vec::new() }
    }

    #[test]
    fn duo_failures_carry_code_message_and_detail() {
        let r = reply(
            400,
            json!({"stat": "FAIL", "code": 40002, "message": "Invalid request parameters", "message_detail": "username"}),
        );
        let e = failure(&r, true).expect("a failure").to_error();
        assert_eq!(e.code, "duo_40002");
        assert_eq!(e.message, "Duo answered 40002: Invalid request parameters (username)");
        assert_eq!(e.data.as_ref().map(|d| d["message_detail"].clone()), Some(json!("username")));
    }

    #[test]
    fn pages_are_read_in_both_of_duos_shapes() {
        let mut v1 = json!({"stat": "OK", "response": [1, 2], "metadata": {"next_offset": 2}});
        let page = Page::of(&mut v1).expect("a v1 page");
        assert_eq!((page.items.len(), page.next), (2, Some(("offset", "2".to_owned()))));
        let mut last = json!({"stat": "OK", "response": [3], "metadata": {}});
        assert_eq!(Page::of(&mut last).expect("the last page").next, None);
        let mut v2 = json!({"stat": "OK", "response": {"authlogs": [{"txid": "t"}],
            "metadata": {"next_offset": ["1547486297000", "5bea1c1e"], "total_objects": {"value": 4}}}});
        let page = Page::of(&mut v2).expect("a v2 page");
        assert_eq!(page.items.len(), 1);
        assert_eq!(page.next, Some(("next_offset", "1547486297000,5bea1c1e".to_owned())));
        let mut v2_last = json!({"stat": "OK", "response": {"authlogs": [], "metadata": {"next_offset": null}}});
        assert_eq!(Page::of(&mut v2_last).expect("the last v2 page").next, None);
        let mut failure = json!({"stat": "FAIL", "code": 40002});
        assert!(Page::of(&mut failure).is_none());
        let mut object = json!({"stat": "OK", "response": {"user_id": "DU1"}});
        assert!(Page::of(&mut object).is_none(), "an object that is not a v2 page");
    }

    #[test]
    fn a_code_that_is_an_empty_string_is_survived() {
        let r = reply(500, json!({"stat": "FAIL", "code": "", "message": "Internal error"}));
        let f = failure(&r, true).expect("a failure");
        assert_eq!(f.code, None);
        let e = f.to_error();
        assert_eq!(e.code, "http_500");
        assert_eq!(e.message, "Duo answered HTTP 500: Internal error");
    }

    #[test]
    fn a_stat_fail_with_status_200_is_still_a_failure_and_ok_is_not() {
        assert!(failure(&reply(200, json!({"stat": "FAIL", "code": 40401, "message": "x"})), true).is_some());
        assert!(failure(&reply(200, json!({"stat": "OK", "response": []})), true).is_none());
        let e = failure(&reply(503, json!("busy")), false).expect("http failure").to_error();
        assert_eq!((e.code.as_str(), e.message.as_str()), ("http_503", "HTTP 503: busy"));
    }

    #[test]
    fn hints_name_the_duo_admin_panel_step() {
        let e = failure(&reply(403, json!({"stat": "FAIL", "code": 40301, "message": "Access forbidden"})), true)
            .expect("failure")
            .to_error();
        assert!(e.message.contains("Admin API keys used for the Auth API"), "{}", e.message);
    }
}
