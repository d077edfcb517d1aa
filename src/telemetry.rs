//! The subscriber of `flowcat serve`: its log lines (text or JSON, filtered by `RUST_LOG` or
//! `-v`) and, when traces are exported, the OTLP layer beside them with a filter of its own, so
//! that the spans of runs, nodes and calls are exported whatever the log shows.

use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Installs the process's subscriber.
pub fn init_logs(json: bool, filter: tracing_subscriber::EnvFilter, otlp: Option<flowcat_serve::telemetry::OtlpLayer>) {
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(false);
    let fmt = if json { fmt.json().with_current_span(true).with_span_list(true).boxed() } else { fmt.boxed() };
    // The spans the layer exports are at `info` in these crates; it ignores every other span.
    let spans = Targets::new()
        .with_target("flowcat_engine", LevelFilter::INFO)
        .with_target("flowcat_nodes", LevelFilter::INFO)
        .with_target("flowcat_serve", LevelFilter::INFO);
    let otlp = otlp.map(|l| l.with_filter(spans));
    tracing_subscriber::registry().with(fmt.with_filter(filter)).with(otlp).init();
}
