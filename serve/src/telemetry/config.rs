//! The serve config's `telemetry:` section.

use std::time::Duration;

use serde::Deserialize;

use super::Settings;

/// `telemetry:` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Raw {
    /// The collector's base URL (`http://127.0.0.1:4318`); spans go to its `/v1/traces`.
    pub otlp_endpoint: String,
    /// `service.name` (default `flowcat`).
    pub service_name: Option<String>,
    /// The most one export may take (default 10s).
    pub export_timeout: Option<String>,
    /// Spans waiting for export at most (default 2048).
    pub max_queue: Option<usize>,
}

/// The settings of `raw`, or `None` after reporting each problem to `bad`.
pub fn settings(raw: Raw, bad: &mut dyn FnMut(String)) -> Option<Settings> {
    let mut ok = true;
    let mut settings = match Settings::new(&raw.otlp_endpoint, raw.service_name.as_deref()) {
        Ok(s) => Some(s),
        Err(e) => {
            bad(format!("`telemetry.otlp_endpoint`: {e}"));
            None
        }
    };
    if let Some(name) = &raw.service_name {
        if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
            bad("`telemetry.service_name` must be 1 to 128 characters without control characters".into());
            ok = false;
        }
    }
    let mut timeout = super::DEFAULT_TIMEOUT;
    if let Some(t) = &raw.export_timeout {
        match flowcat_engine::shape::parse_duration(t) {
            Some(d) if !d.is_zero() && d <= Duration::from_secs(300) => timeout = d,
            _ => {
                bad(format!("`telemetry.export_timeout: {t}` is not a duration between 1ms and 5m, e.g. `10s`"));
                ok = false;
            }
        }
    }
    let mut max_queue = super::DEFAULT_QUEUE;
    if let Some(n) = raw.max_queue {
        if !(1..=1_000_000).contains(&n) {
            bad(format!("`telemetry.max_queue: {n}` must be between 1 and 1000000"));
            ok = false;
        }
        max_queue = n;
    }
    if let Some(s) = &mut settings {
        s.timeout = timeout;
        s.max_queue = max_queue;
    }
    settings.filter(|_| ok)
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use crate::Config;

    const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn config(telemetry: &str) -> Result<Config, String> {
        let text = format!("integrations: i.yaml\ntokens:\n  - name: bot\n    sha256: {HASH}\n{telemetry}");
        Config::parse(&text, "serve.yaml", Path::new(".")).map_err(|e| e.to_string())
    }

    #[test]
    fn telemetry_is_off_unless_configured() {
        assert!(config("").expect("valid").telemetry.is_none());
        let c = config(
            "telemetry:\n  otlp_endpoint: http://127.0.0.1:4318\n  service_name: flowcat-prod\n  export_timeout: 2s\n  max_queue: 100\n",
        )
        .expect("valid");
        let t = c.telemetry.expect("on");
        assert_eq!(t.traces_url.as_str(), "http://127.0.0.1:4318/v1/traces");
        assert_eq!(t.service_name, "flowcat-prod");
        assert_eq!(t.timeout, Duration::from_secs(2));
        assert_eq!(t.max_queue, 100);
    }

    #[test]
    fn telemetry_problems_are_each_reported() {
        let e = config(
            "telemetry:\n  otlp_endpoint: http://u:hunter2@127.0.0.1:4318\n  export_timeout: forever\n  max_queue: 0\n",
        )
        .expect_err("invalid");
        assert!(e.contains("serve.yaml: `telemetry.otlp_endpoint`: the OTLP endpoint holds a user name"), "{e}");
        assert!(e.contains("`telemetry.export_timeout: forever`"), "{e}");
        assert!(e.contains("`telemetry.max_queue: 0`"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        let e = config("telemetry:\n  endpoint: http://127.0.0.1:4318\n").expect_err("unknown field");
        assert!(e.contains("endpoint"), "{e}");
    }
}
