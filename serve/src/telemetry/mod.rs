//! Traces: optional OpenTelemetry export over OTLP/HTTP with JSON encoding (docs/serve.md,
//! "Traces"). A span per run, per subflow, per node and per HTTP attempt of a call, built from
//! the `tracing` spans the engine, the node kinds and the service already open:
//!
//! - [`layer::OtlpLayer`], a `tracing_subscriber` layer, turns the spans it knows (by target and
//!   name) into OTLP spans, keeping only the fields it lists for each: never an input, a rendered
//!   path, a query value, a header or a body. Closed spans go into a bounded queue; when it is
//!   full they are dropped and counted, never waited for.
//! - [`export::Exporter`], a task, sends them in batches (`POST /v1/traces`,
//!   `Content-Type: application/json`), each export bounded by a timeout; a collector that is
//!   down costs a warning, never a run. [`Telemetry::shutdown`] sends what is queued.

pub mod config;
pub mod export;
pub mod layer;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::Url;

pub use export::Telemetry;
pub use layer::OtlpLayer;

/// The default time one export may take (OTLP's default, `OTEL_EXPORTER_OTLP_TIMEOUT`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The default bound of spans waiting for export (the OpenTelemetry SDKs' default).
pub const DEFAULT_QUEUE: usize = 2048;
/// Spans sent in one request at most (the SDKs' default batch).
pub const MAX_BATCH: usize = 512;
/// How long a span may wait for its batch to fill (the SDKs' default schedule delay).
pub const BATCH_DELAY: Duration = Duration::from_secs(5);

/// Where and how traces are exported (the serve config's `telemetry:`, or the standard
/// `OTEL_*` variables).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The full URL spans are posted to (`…/v1/traces`).
    pub traces_url: Url,
    /// `service.name` of the resource.
    pub service_name: String,
    /// The most one export (its retries included) may take.
    pub timeout: Duration,
    /// Spans waiting for export at most; more are dropped and counted.
    pub max_queue: usize,
}

impl Settings {
    /// Settings for the base endpoint `endpoint` (`http://127.0.0.1:4318`): spans go to its
    /// `/v1/traces` (left alone when the URL already ends with it).
    pub fn new(endpoint: &str, service_name: Option<&str>) -> Result<Settings, String> {
        let url = parse_url(endpoint)?;
        let traces_url = if url.path().trim_end_matches('/').ends_with("/v1/traces") {
            url
        } else {
            let mut u = url;
            let path = format!("{}/v1/traces", u.path().trim_end_matches('/'));
            u.set_path(&path);
            u
        };
        Ok(Settings {
            traces_url,
            service_name: service_name.unwrap_or("flowcat").to_owned(),
            timeout: DEFAULT_TIMEOUT,
            max_queue: DEFAULT_QUEUE,
        })
    }

    /// The settings of the process: `config` (the serve config's `telemetry:`) when given, else
    /// the standard variables: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (the full URL) or
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` (the base, `/v1/traces` added), `OTEL_SERVICE_NAME`,
    /// `OTEL_EXPORTER_OTLP_TIMEOUT` (milliseconds). `OTEL_SDK_DISABLED=true` turns export off
    /// either way. `None`: no export (the default).
    pub fn resolve(
        config: Option<&Settings>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<Settings>, String> {
        let set = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        if set("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        if let Some(c) = config {
            return Ok(Some(c.clone()));
        }
        let service = set("OTEL_SERVICE_NAME");
        let mut settings = if let Some(url) = set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            let traces_url = parse_url(url.trim()).map_err(|e| format!("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: {e}"))?;
            let mut s = Settings::new(traces_url.as_str(), service.as_deref())?;
            s.traces_url = traces_url;
            s
        } else if let Some(base) = set("OTEL_EXPORTER_OTLP_ENDPOINT") {
            Settings::new(base.trim(), service.as_deref()).map_err(|e| format!("OTEL_EXPORTER_OTLP_ENDPOINT: {e}"))?
        } else {
            return Ok(None);
        };
        if let Some(ms) = set("OTEL_EXPORTER_OTLP_TIMEOUT") {
            match ms.trim().parse::<u64>() {
                Ok(ms) if ms > 0 => settings.timeout = Duration::from_millis(ms),
                _ => {
                    return Err(format!(
                        "OTEL_EXPORTER_OTLP_TIMEOUT=`{ms}` is not a number of milliseconds, e.g. 10000"
                    ));
                }
            }
        }
        Ok(Some(settings))
    }
}

/// An `http` or `https` URL without credentials, query or fragment. The value is never quoted in
/// an error: it may hold a credential pasted by mistake.
fn parse_url(text: &str) -> Result<Url, String> {
    let url =
        Url::parse(text).map_err(|e| format!("the OTLP endpoint is not a URL ({e}), e.g. `http://127.0.0.1:4318`"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("the OTLP endpoint must be an `http://` or `https://` URL (OTLP/HTTP)".into());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("the OTLP endpoint names no host, e.g. `http://127.0.0.1:4318`".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("the OTLP endpoint holds a user name or password: credentials in URLs are not supported".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("the OTLP endpoint must not have a query or a fragment".into());
    }
    Ok(url)
}

/// What the exporter counts (read by the tests and logged).
#[derive(Debug, Default)]
pub struct Stats {
    /// Spans dropped because the queue was full (or closed: the export stopped at shutdown).
    pub dropped_full: AtomicU64,
    /// Spans dropped because their export failed (collector down, refused, timed out).
    pub dropped_failed: AtomicU64,
    /// Spans the collector accepted.
    pub exported: AtomicU64,
}

impl Stats {
    pub fn dropped_full(&self) -> u64 {
        self.dropped_full.load(Ordering::Relaxed)
    }
    pub fn dropped_failed(&self) -> u64 {
        self.dropped_failed.load(Ordering::Relaxed)
    }
    pub fn exported(&self) -> u64 {
        self.exported.load(Ordering::Relaxed)
    }
}

/// Starts export with `settings`: the layer to add to the process's subscriber and the handle
/// that flushes at shutdown. The export task starts on the current tokio runtime at
/// [`Telemetry::start`]; until then (and after it stops) spans wait in the bounded queue.
pub fn pipeline(settings: Settings) -> Result<(OtlpLayer, Telemetry), String> {
    let stats = Arc::new(Stats::default());
    let (tx, rx) = tokio::sync::mpsc::channel(settings.max_queue.max(1));
    let layer = OtlpLayer::new(tx, stats.clone());
    let telemetry = Telemetry::new(settings, rx, stats)?;
    Ok((layer, telemetry))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn the_base_endpoint_gets_v1_traces() {
        let s = Settings::new("http://127.0.0.1:4318", None).expect("valid");
        assert_eq!(s.traces_url.as_str(), "http://127.0.0.1:4318/v1/traces");
        assert_eq!(s.service_name, "flowcat");
        let s = Settings::new("https://otel.example.com/otlp/", Some("svc")).expect("valid");
        assert_eq!(s.traces_url.as_str(), "https://otel.example.com/otlp/v1/traces");
        let s = Settings::new("http://127.0.0.1:4318/v1/traces", None).expect("valid");
        assert_eq!(s.traces_url.as_str(), "http://127.0.0.1:4318/v1/traces");
    }

    #[test]
    fn bad_endpoints_are_refused_without_quoting_them() {
        for bad in ["127.0.0.1:4318", "grpc://127.0.0.1:4317", "http://user:hunter2@h/", "http://h/?k=hunter2"] {
            let e = Settings::new(bad, None).expect_err(bad);
            assert!(!e.contains("hunter2"), "{e}");
        }
    }

    #[test]
    fn the_standard_variables_apply_without_a_config() {
        let none = Settings::resolve(None, &env(&[])).expect("ok");
        assert_eq!(none, None, "off by default");
        let base = Settings::resolve(None, &env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")]))
            .expect("ok")
            .expect("on");
        assert_eq!(base.traces_url.as_str(), "http://127.0.0.1:4318/v1/traces");
        let full = Settings::resolve(
            None,
            &env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1"),
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:4318/custom"),
                ("OTEL_SERVICE_NAME", "flowcat-prod"),
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
            ]),
        )
        .expect("ok")
        .expect("on");
        assert_eq!(full.traces_url.as_str(), "http://127.0.0.1:4318/custom", "the traces URL is used as given");
        assert_eq!(full.service_name, "flowcat-prod");
        assert_eq!(full.timeout, Duration::from_millis(2500));
        let config = Settings::new("http://127.0.0.1:9999", None).expect("valid");
        let from_config = Settings::resolve(Some(&config), &env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://h:1")]));
        assert_eq!(from_config.expect("ok"), Some(config.clone()), "the config file wins");
        let disabled = Settings::resolve(Some(&config), &env(&[("OTEL_SDK_DISABLED", "TRUE")]));
        assert_eq!(disabled.expect("ok"), None);
        let e = Settings::resolve(None, &env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "nope")])).expect_err("bad");
        assert!(e.starts_with("OTEL_EXPORTER_OTLP_ENDPOINT: "), "{e}");
    }
}
