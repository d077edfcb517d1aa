//! The exporter: batches of spans posted to an OTLP/HTTP collector as JSON
//! (`ExportTraceServiceRequest` in OTLP's JSON mapping: ids as lower-case hex, 64-bit integers
//! as decimal strings, enums as numbers, field names in lowerCamelCase).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Value as Json, json};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::layer::{Kind, SpanData, Value};
use super::{BATCH_DELAY, MAX_BATCH, Settings, Stats};

/// The exporter's handle: [`Telemetry::start`] spawns the task, [`Telemetry::shutdown`] sends
/// what is queued and stops it.
#[derive(Debug)]
pub struct Telemetry {
    settings: Settings,
    client: reqwest::Client,
    queue: Option<mpsc::Receiver<SpanData>>,
    task: Option<(oneshot::Sender<()>, tokio::task::JoinHandle<()>)>,
    pub stats: Arc<Stats>,
}

impl Telemetry {
    pub(super) fn new(
        settings: Settings,
        queue: mpsc::Receiver<SpanData>,
        stats: Arc<Stats>,
    ) -> Result<Telemetry, String> {
        let loopback = flowcat_nodes::integrations::is_loopback(
            settings.traces_url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']'),
        );
        let tls = flowcat_nodes::http::tls::config(&flowcat_nodes::integrations::Tls::default())?;
        let mut builder = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(settings.timeout)
            .user_agent(concat!("flowcat/", env!("CARGO_PKG_VERSION")));
        if loopback {
            builder = builder.no_proxy();
        }
        let client = builder.build().map_err(|e| format!("cannot set up the OTLP exporter's HTTP client: {e}"))?;
        Ok(Telemetry { settings, client, queue: Some(queue), task: None, stats })
    }

    /// Where spans go.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Spawns the export task on the current tokio runtime.
    pub fn start(&mut self) {
        let Some(queue) = self.queue.take() else { return };
        let (stop, stopped) = oneshot::channel();
        let export = Export { settings: self.settings.clone(), client: self.client.clone(), stats: self.stats.clone() };
        self.task = Some((stop, tokio::spawn(export.run(queue, stopped))));
    }

    /// Stops taking spans, sends every span queued (in batches, each bounded by the export
    /// timeout) and ends the task; spans closed afterwards are dropped and counted.
    pub async fn shutdown(mut self) {
        let Some((stop, task)) = self.task.take() else { return };
        let _ = stop.send(());
        let _ = task.await;
        let (full, failed) = (self.stats.dropped_full(), self.stats.dropped_failed());
        if full + failed > 0 {
            tracing::warn!(
                dropped_queue_full = full,
                dropped_export_failed = failed,
                exported = self.stats.exported(),
                "some spans were not exported"
            );
        }
    }
}

/// The task's part.
struct Export {
    settings: Settings,
    client: reqwest::Client,
    stats: Arc<Stats>,
}

impl Export {
    async fn run(self, mut queue: mpsc::Receiver<SpanData>, mut stop: oneshot::Receiver<()>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        let mut stopping = false;
        while !stopping {
            // The first span of a batch, then more until it is full or has waited long enough.
            tokio::select! {
                s = queue.recv() => match s {
                    Some(s) => batch.push(s),
                    None => break,
                },
                _ = &mut stop => stopping = true,
            }
            let due = Instant::now() + BATCH_DELAY;
            while !stopping && batch.len() < MAX_BATCH {
                tokio::select! {
                    s = queue.recv() => match s {
                        Some(s) => batch.push(s),
                        None => break,
                    },
                    _ = tokio::time::sleep_until(due) => break,
                    _ = &mut stop => stopping = true,
                }
            }
            if !batch.is_empty() {
                self.export(std::mem::take(&mut batch)).await;
            }
        }
        // Shutting down: no new span is taken; what is queued goes out.
        queue.close();
        while let Some(s) = queue.recv().await {
            batch.push(s);
            if batch.len() == MAX_BATCH {
                self.export(std::mem::take(&mut batch)).await;
            }
        }
        if !batch.is_empty() {
            self.export(batch).await;
        }
    }

    /// Sends one batch; transient refusals (429, 502, 503, 504, no connection) are tried again
    /// while the export timeout allows. A batch that cannot be sent is dropped and counted.
    async fn export(&self, batch: Vec<SpanData>) {
        let n = batch.len() as u64;
        let body = match serde_json::to_vec(&request(&self.settings.service_name, &batch)) {
            Ok(b) => b,
            Err(_) => {
                self.stats.dropped_failed.fetch_add(n, Ordering::Relaxed);
                return;
            }
        };
        let until = Instant::now() + self.settings.timeout;
        let mut wait = Duration::from_millis(500);
        let outcome = loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break Err("timed out".to_owned());
            }
            let sent = self
                .client
                .post(self.settings.traces_url.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone())
                .timeout(left)
                .send();
            let answer = match tokio::time::timeout(left, sent).await {
                Err(_) => Err("timed out".to_owned()),
                Ok(Err(e)) if e.is_timeout() => Err("timed out".to_owned()),
                Ok(Err(e)) if e.is_connect() => Err("cannot connect".to_owned()),
                Ok(Err(_)) => Err("the request failed".to_owned()),
                Ok(Ok(r)) => Ok(r),
            };
            let retry = match &answer {
                Ok(r) if r.status().is_success() => break Ok(r.status().as_u16()),
                Ok(r) => matches!(r.status().as_u16(), 429 | 502 | 503 | 504),
                Err(e) => e != "timed out",
            };
            let why = match &answer {
                Ok(r) => format!("answered {}", r.status().as_u16()),
                Err(e) => e.clone(),
            };
            if !retry || Instant::now() + wait >= until {
                break Err(why);
            }
            tokio::time::sleep(wait).await;
            wait *= 2;
        };
        match outcome {
            Ok(_) => {
                self.stats.exported.fetch_add(n, Ordering::Relaxed);
            }
            Err(why) => {
                self.stats.dropped_failed.fetch_add(n, Ordering::Relaxed);
                // The URL is the operator's own setting (no credentials: refused at start).
                tracing::warn!(
                    endpoint = %self.settings.traces_url,
                    spans = n,
                    "the OTLP collector did not take a batch of spans ({why}); they are dropped, runs go on"
                );
            }
        }
    }
}

/// The lower-case hex of an id.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn attribute(key: &str, value: &Value) -> Json {
    let value = match value {
        Value::Str(s) => json!({ "stringValue": s }),
        // int64 is a string in OTLP's JSON mapping.
        Value::Int(n) => json!({ "intValue": n.to_string() }),
        Value::Bool(b) => json!({ "boolValue": b }),
    };
    json!({ "key": key, "value": value })
}

/// `ExportTraceServiceRequest` for `spans`, as JSON.
pub fn request(service_name: &str, spans: &[SpanData]) -> Json {
    let spans: Vec<Json> = spans.iter().map(span).collect();
    json!({
        "resourceSpans": [{
            "resource": {
                "attributes": [
                    attribute("service.name", &Value::Str(service_name.to_owned())),
                    attribute("service.version", &Value::Str(env!("CARGO_PKG_VERSION").to_owned())),
                    attribute("telemetry.sdk.name", &Value::Str("flowcat".to_owned())),
                    attribute("telemetry.sdk.language", &Value::Str("rust".to_owned())),
                ]
            },
            "scopeSpans": [{
                "scope": { "name": "flowcat", "version": env!("CARGO_PKG_VERSION") },
                "spans": spans,
            }]
        }]
    })
}

/// SpanKind: INTERNAL = 1, CLIENT = 3. Status: UNSET = 0, ERROR = 2.
fn span(s: &SpanData) -> Json {
    let kind = if s.kind == Kind::Request { 3 } else { 1 };
    let mut attributes: Vec<Json> = s.attributes.iter().map(|(k, v)| attribute(k, v)).collect();
    if let (Kind::Request, Some(Value::Int(n))) = (s.kind, s.get("flowcat.http.attempt")) {
        if *n > 1 {
            attributes.push(attribute("http.request.resend_count", &Value::Int(n - 1)));
        }
    }
    let mut out = json!({
        "traceId": hex(&s.trace_id),
        "spanId": hex(&s.span_id),
        "name": s.name(),
        "kind": kind,
        "startTimeUnixNano": s.start_ns.to_string(),
        "endTimeUnixNano": s.end_ns.to_string(),
        "attributes": attributes,
        "status": match s.error() {
            Some(message) => json!({ "code": 2, "message": message }),
            None => json!({ "code": 0 }),
        },
    });
    if let Some(parent) = &s.parent_id {
        out["parentSpanId"] = json!(hex(parent));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(kind: Kind, attributes: Vec<(&'static str, Value)>) -> SpanData {
        SpanData {
            kind,
            trace_id: [0xab; 16],
            span_id: [1, 2, 3, 4, 5, 6, 7, 8],
            parent_id: Some([0x0f; 8]),
            start_ns: 1_700_000_000_000_000_001,
            end_ns: 1_700_000_000_000_000_002,
            attributes,
        }
    }

    #[test]
    fn spans_follow_otlp_json_mapping() {
        let s = data(
            Kind::Request,
            vec![
                ("http.request.method", Value::Str("GET".into())),
                ("url.template", Value::Str("/admin/v1/users/{user_id}".into())),
                ("flowcat.http.attempt", Value::Int(2)),
                ("http.response.status_code", Value::Int(503)),
            ],
        );
        let r = request("svc", std::slice::from_ref(&s));
        let span = &r["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(span["traceId"], "abababababababababababababababab");
        assert_eq!(span["spanId"], "0102030405060708");
        assert_eq!(span["parentSpanId"], "0f0f0f0f0f0f0f0f");
        assert_eq!(span["name"], "GET /admin/v1/users/{user_id}");
        assert_eq!(span["kind"], 3);
        assert_eq!(span["startTimeUnixNano"], "1700000000000000001");
        assert_eq!(span["status"], json!({ "code": 2, "message": "503" }));
        let attrs = span["attributes"].as_array().expect("list");
        assert!(attrs.contains(&json!({ "key": "flowcat.http.attempt", "value": { "intValue": "2" } })));
        assert!(attrs.contains(&json!({ "key": "http.request.resend_count", "value": { "intValue": "1" } })));
        let resource = &r["resourceSpans"][0]["resource"]["attributes"][0];
        assert_eq!(resource, &json!({ "key": "service.name", "value": { "stringValue": "svc" } }));
    }

    #[test]
    fn statuses_mark_errors_only_when_something_failed() {
        let run = |status: &str| data(Kind::Run, vec![("flowcat.run.status", Value::Str(status.into()))]);
        assert_eq!(run("succeeded").error(), None);
        assert_eq!(run("needs_attention").error().as_deref(), Some("needs_attention"));
        let node = data(
            Kind::Node,
            vec![
                ("flowcat.node.status", Value::Str("failed".into())),
                ("flowcat.node.error_code", Value::Str("duo_40401".into())),
            ],
        );
        assert_eq!(node.error().as_deref(), Some("duo_40401"));
        let ok = data(Kind::Request, vec![("http.response.status_code", Value::Int(200))]);
        assert_eq!(ok.error(), None);
        let lost = data(Kind::Request, vec![("error.type", Value::Str("timeout".into()))]);
        assert_eq!(lost.error().as_deref(), Some("timeout"));
        let root = SpanData { parent_id: None, ..run("succeeded") };
        assert!(span(&root).get("parentSpanId").is_none(), "a root span has no parent");
    }
}
