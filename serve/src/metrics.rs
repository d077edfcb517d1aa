//! `GET /metrics`: Prometheus text exposition (version 0.0.4), written by hand: a few counters,
//! gauges and histograms need no library. Node latencies come from the engine's `Observer`
//! events; runs, Duo answers and Duo call latencies from each run's record when it ends.
//! Labels are flow ids, node kinds, statuses and HTTP codes only: never inputs, URLs or tokens.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use flowcat_engine::run::{Event, NodeStatus, Observer, RunRecord};
use serde_json::Value;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS.len()];
        }
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.counts[i] += 1;
            }
        }
        self.sum += secs;
        self.count += 1;
    }

    fn write(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, bound) in BUCKETS.iter().enumerate() {
            let n = self.counts.get(i).copied().unwrap_or(0);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {n}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", self.count);
        let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

#[derive(Debug, Default)]
struct Counts {
    /// (flow, status) → runs ended.
    runs: BTreeMap<(String, String), u64>,
    /// (node kind, node status) → latency.
    nodes: BTreeMap<(String, String), Histogram>,
    duo_calls: Histogram,
    /// HTTP status of Duo's answers → count.
    duo_answers: BTreeMap<u16, u64>,
    /// Requests refused by the service, by reason (`unauthorized`, `forbidden`, `too_many_runs`…).
    refused: BTreeMap<String, u64>,
}

/// The service's metrics; also the runs' `Observer`.
#[derive(Debug, Default)]
pub struct Metrics {
    counts: Mutex<Counts>,
    in_flight: AtomicI64,
    /// Runs parked on a `wait_for`, held in memory by this process.
    waiting_memory: AtomicI64,
    /// Runs parked on a `wait_for` and left in the journal only (evicted, or parked before a
    /// restart), that this process resumes when their signal comes or their time passes.
    waiting_journal: AtomicI64,
    /// Parked runs dropped from memory (`limits.evict_waiting_after`).
    evicted: AtomicI64,
    /// Webhook delivery attempts (`crate::webhook`).
    pub webhooks: crate::webhook::Counts,
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn run_started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// A run's task ended, with `record` when there is one. A record replayed for a run key
    /// (the run ended earlier) is not counted again.
    pub fn run_ended(&self, flow: &str, record: Option<&RunRecord>, replayed: bool) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        if replayed {
            return;
        }
        let status = record.map_or("refused", |r| status_name(r.status));
        let mut c = self.lock();
        *c.runs.entry((flow.to_owned(), status.to_owned())).or_default() += 1;
        if let Some(r) = record {
            let mut calls = Vec::new();
            attempts(r, &mut calls);
            for (status, ms) in calls {
                c.duo_calls.observe(ms / 1e3);
                if let Some(s) = status {
                    *c.duo_answers.entry(s).or_default() += 1;
                }
            }
        }
    }

    /// A run held in memory parked on a `wait_for` (`+1`) or went on (`-1`).
    pub fn waiting_in_memory(&self, delta: i64) {
        self.waiting_memory.fetch_add(delta, Ordering::Relaxed);
    }

    /// The number of parked runs left in the journal only.
    pub fn set_waiting_in_journal(&self, n: usize) {
        self.waiting_journal.store(n as i64, Ordering::Relaxed);
    }

    /// A parked run's task ended because it was dropped from memory: not a run that ended.
    pub fn run_evicted(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.evicted.fetch_add(1, Ordering::Relaxed);
    }

    pub fn refused(&self, reason: &str) {
        *self.lock().refused.entry(reason.to_owned()).or_default() += 1;
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let c = self.lock();
        let mut out = String::new();
        out.push_str("# HELP flowcat_runs_total Runs ended, by flow and status.\n# TYPE flowcat_runs_total counter\n");
        for ((flow, status), n) in &c.runs {
            let _ = writeln!(out, "flowcat_runs_total{{flow=\"{}\",status=\"{status}\"}} {n}", escape(flow));
        }
        out.push_str(
            "# HELP flowcat_runs_in_flight Runs this service is running now.\n# TYPE flowcat_runs_in_flight gauge\n",
        );
        let _ = writeln!(out, "flowcat_runs_in_flight {}", self.in_flight.load(Ordering::Relaxed));
        out.push_str(
            "# HELP flowcat_runs_waiting Runs parked on a wait_for: held in memory, or left in the journal only \
             (evicted, or parked before a restart).\n# TYPE flowcat_runs_waiting gauge\n",
        );
        let _ =
            writeln!(out, "flowcat_runs_waiting{{held=\"memory\"}} {}", self.waiting_memory.load(Ordering::Relaxed));
        let _ =
            writeln!(out, "flowcat_runs_waiting{{held=\"journal\"}} {}", self.waiting_journal.load(Ordering::Relaxed));
        out.push_str(
            "# HELP flowcat_runs_evicted_total Parked runs dropped from memory (limits.evict_waiting_after).\n\
             # TYPE flowcat_runs_evicted_total counter\n",
        );
        let _ = writeln!(out, "flowcat_runs_evicted_total {}", self.evicted.load(Ordering::Relaxed));
        out.push_str(
            "# HELP flowcat_node_duration_seconds Node run time, by node kind and status.\n\
             # TYPE flowcat_node_duration_seconds histogram\n",
        );
        for ((kind, status), h) in &c.nodes {
            h.write(
                &mut out,
                "flowcat_node_duration_seconds",
                &format!("kind=\"{}\",status=\"{status}\"", escape(kind)),
            );
        }
        out.push_str(
            "# HELP flowcat_duo_call_duration_seconds One HTTP attempt of a rest_call, sent to its answer.\n\
             # TYPE flowcat_duo_call_duration_seconds histogram\n",
        );
        c.duo_calls.write(&mut out, "flowcat_duo_call_duration_seconds", "");
        out.push_str(
            "# HELP flowcat_duo_answers_total Answers of Duo (or the API called), by HTTP status.\n\
             # TYPE flowcat_duo_answers_total counter\n",
        );
        for (status, n) in &c.duo_answers {
            let _ = writeln!(out, "flowcat_duo_answers_total{{status=\"{status}\"}} {n}");
        }
        out.push_str(
            "# HELP flowcat_duo_rate_limited_total Answers 429 (rate limited).\n# TYPE flowcat_duo_rate_limited_total counter\n",
        );
        let _ = writeln!(out, "flowcat_duo_rate_limited_total {}", c.duo_answers.get(&429).copied().unwrap_or(0));
        out.push_str(
            "# HELP flowcat_http_refused_total API requests refused, by reason (429 too_many_runs among them).\n\
             # TYPE flowcat_http_refused_total counter\n",
        );
        for (reason, n) in &c.refused {
            let _ = writeln!(out, "flowcat_http_refused_total{{reason=\"{reason}\"}} {n}");
        }
        self.webhooks.render(&mut out);
        out
    }
}

impl Observer for Metrics {
    fn event(&self, event: &Event<'_>) {
        if let Event::Finished { kind, status, duration_ms, .. } = event {
            if *status == NodeStatus::Skipped {
                return;
            }
            let name = serde_json::to_value(status).ok().and_then(|v| v.as_str().map(str::to_owned));
            let mut c = self.lock();
            let key = ((*kind).to_owned(), name.unwrap_or_default());
            c.nodes.entry(key).or_default().observe(duration_ms / 1e3);
        }
    }
}

/// Every HTTP attempt in a record (subflows and items included): its answer's status and time.
fn attempts(record: &RunRecord, out: &mut Vec<(Option<u16>, f64)>) {
    for node in &record.nodes {
        if let Some(detail) = &node.detail {
            if let Some(Value::Array(list)) = detail.get().get("attempts") {
                for a in list {
                    let status = a.pointer("/response/status").and_then(Value::as_u64).map(|s| s as u16);
                    let ms = a.get("duration_ms").and_then(Value::as_f64).unwrap_or(0.0);
                    out.push((status, ms));
                }
            }
        }
        if let Some(sub) = &node.subflow {
            attempts(sub, out);
        }
        for item in &node.items {
            attempts(&item.record, out);
        }
    }
}

/// A run status as the API and the journal spell it.
pub fn status_name(s: flowcat_engine::run::RunStatus) -> &'static str {
    use flowcat_engine::run::RunStatus::*;
    match s {
        Succeeded => "succeeded",
        Failed => "failed",
        Interrupted => "interrupted",
        NeedsAttention => "needs_attention",
    }
}

/// A label value per the exposition format (flow ids hold none of these, but be exact).
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_counted() {
        let m = Metrics::default();
        let done = |kind, ms| Event::Finished {
            path: &[],
            kind,
            status: NodeStatus::Succeeded,
            duration_ms: ms,
            message: None,
        };
        m.event(&done("rest_call", 30.0));
        m.event(&done("rest_call", 3000.0));
        m.event(&done("wait_for", 7000.0));
        let text = m.render();
        let rest = "kind=\"rest_call\",status=\"succeeded\"";
        assert!(text.contains(&format!("flowcat_node_duration_seconds_bucket{{{rest},le=\"0.05\"}} 1\n")), "{text}");
        assert!(text.contains(&format!("flowcat_node_duration_seconds_bucket{{{rest},le=\"5\"}} 2\n")), "{text}");
        assert!(text.contains(&format!("flowcat_node_duration_seconds_count{{{rest}}} 2\n")), "{text}");
        let wait = "kind=\"wait_for\",status=\"succeeded\"";
        assert!(text.contains(&format!("flowcat_node_duration_seconds_bucket{{{wait},le=\"5\"}} 0\n")), "{text}");
        assert!(text.contains(&format!("flowcat_node_duration_seconds_count{{{wait}}} 1\n")), "{text}");
    }

    #[test]
    fn waiting_runs_are_a_gauge_by_where_they_are_held() {
        let m = Metrics::default();
        m.waiting_in_memory(1);
        m.waiting_in_memory(1);
        m.waiting_in_memory(-1);
        m.set_waiting_in_journal(3);
        let text = m.render();
        assert!(text.contains("# TYPE flowcat_runs_waiting gauge\n"), "{text}");
        assert!(text.contains("flowcat_runs_waiting{held=\"memory\"} 1\n"), "{text}");
        assert!(text.contains("flowcat_runs_waiting{held=\"journal\"} 3\n"), "{text}");
    }
}
