//! `flowcat runs list|show|prune`: the runs in the journal (`flowcat_journal`), for people
//! (tables that fit 80 columns) and for programs (`--format json`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Subcommand, ValueEnum};
use flowcat_engine::journal::{Filter, NodePast, RunInfo, RunSummary, StoredRun, StoredStatus};
use flowcat_engine::run::{NodeRecord, NodeStatus, RunRecord};
use serde_json::Value;
use unicode_width::UnicodeWidthStr as _;

use crate::live::fit;
use crate::ui::{self, Format};

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// List the journal's runs, newest first: id, flow, status, when it started, how long it took.
    List {
        /// Only runs with this status; repeat it or separate with commas (`--status interrupted,needs_attention`).
        #[arg(long, value_enum, value_delimiter = ',', value_name = "STATUS")]
        status: Vec<Status>,
        /// Only runs of this flow (its id).
        #[arg(long, value_name = "FLOW")]
        flow: Option<String>,
        /// At most this many runs, the newest (0: all).
        #[arg(long, default_value_t = 50, value_name = "N")]
        limit: usize,
        /// `human` (a table) or `json` (a list of runs).
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Show one run: how it was started, where it stands, each node, and every write it sent.
    Show {
        /// The run's id (`flowcat runs list` shows them).
        id: String,
        /// `human`, `json` (the run, its final record and its journaled nodes), or the run drawn
        /// on its flow's graph with subflows expanded: `mermaid` or `dot`.
        #[arg(long, value_enum, default_value_t = ShowFormat::Human)]
        format: ShowFormat,
    },
    /// Give up an unfinished run (interrupted, or stopped for attention) after checking by hand:
    /// it ends failed with code `abandoned`, and is never resumed.
    Abandon {
        /// The run's id.
        id: String,
    },
    /// Delete finished runs (succeeded or failed) that ended longer ago than `--older-than`.
    Prune {
        /// How old: a number and a unit, `s`, `m`, `h`, `d` or `w` (`30d`, `12h`, `90m`).
        #[arg(long, value_parser = parse_age, value_name = "AGE")]
        older_than: Duration,
        /// `human` or `json` (`{"pruned": N, "before": UNIX_MS}`).
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
}

/// `runs show --format`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ShowFormat {
    /// The run's details for a person (`text` is accepted too).
    #[default]
    #[value(alias = "text")]
    Human,
    /// The run, its final record and its journaled nodes.
    Json,
    /// The run on its flow's graph, as a Mermaid flowchart.
    Mermaid,
    /// The run on its flow's graph, in Graphviz DOT.
    Dot,
}

/// Run `id` of the journal in `state_dir` (or the default folder), or an error saying where it
/// looked.
pub fn stored(id: &str, state_dir: Option<PathBuf>) -> anyhow::Result<StoredRun> {
    let place = crate::store::place(state_dir.clone());
    let run = match crate::store::existing(state_dir)? {
        Some(store) => store.show(id)?,
        None => None,
    };
    run.ok_or_else(|| {
        anyhow::anyhow!("no run `{id}` in the journal `{place}`: `flowcat runs list` shows the runs it holds")
    })
}

/// A run's status, as `--status` spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Status {
    /// Held by a live process now.
    Running,
    /// Not finished and held by nobody: its process stopped or died (`flowcat resume ID`).
    Interrupted,
    /// Stopped on a write whose outcome is unknown: check Duo, then resume.
    #[value(name = "needs_attention", alias = "needs-attention")]
    NeedsAttention,
    /// Ended, and the flow succeeded.
    Succeeded,
    /// Ended, and the flow failed.
    Failed,
    /// Parked on a `wait_for` node until its signal arrives or its timeout passes.
    Waiting,
}

impl Status {
    fn stored(self) -> StoredStatus {
        match self {
            Status::Running => StoredStatus::Running,
            Status::Interrupted => StoredStatus::Interrupted,
            Status::NeedsAttention => StoredStatus::NeedsAttention,
            Status::Succeeded => StoredStatus::Succeeded,
            Status::Failed => StoredStatus::Failed,
            Status::Waiting => StoredStatus::Waiting,
        }
    }
}

/// Parses `--older-than`: a whole number and one unit.
pub fn parse_age(text: &str) -> Result<Duration, String> {
    let expected = "expected a number and a unit, `s`, `m`, `h`, `d` or `w`: `30d`, `12h`, `90m`";
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let seconds: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(format!("`{text}` is not an age: {expected}")),
    };
    let n: u64 = number.parse().map_err(|_| format!("`{text}` is not an age: {expected}"))?;
    n.checked_mul(seconds)
        .filter(|s| *s <= 100 * 365 * 86_400)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("`{text}` is more than a hundred years"))
}

/// Runs one `flowcat runs …` command on the journal in `state_dir` (or the default folder).
pub fn runs(flows: &crate::flows::Flows, command: RunsCommand, state_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let place = crate::store::place(state_dir.clone());
    // Reading commands create nothing: no journal yet is no runs.
    let journal = crate::store::existing(state_dir)?;
    let now = now_ms();
    match command {
        RunsCommand::List { status, flow, limit, format } => {
            let filter = Filter { status: status.iter().map(|s| s.stored()).collect(), flow, limit };
            let runs = match &journal {
                Some(journal) => journal.list(&filter)?,
                None => Vec::new(),
            };
            if format == Format::Json {
                println!("{}", serde_json::to_string_pretty(&runs)?);
            } else if runs.is_empty() {
                if !ui::get().quiet {
                    eprintln!("no runs in `{place}`");
                }
            } else {
                print!("{}", table(&runs, now, width()));
            }
        }
        RunsCommand::Show { id, format } => {
            let run = match &journal {
                Some(journal) => journal.show(&id)?,
                None => None,
            };
            let Some(run) = run else {
                anyhow::bail!("no run `{id}` in the journal `{place}`: `flowcat runs list` shows the runs it holds");
            };
            match format {
                ShowFormat::Json => println!("{}", serde_json::to_string_pretty(&run)?),
                ShowFormat::Human => print!("{}", show(&run, now)),
                ShowFormat::Mermaid | ShowFormat::Dot => {
                    // A run of a flow named by its file reads that file again.
                    let id = run.summary.info.flow.clone();
                    let name = run.summary.info.source.clone().unwrap_or_else(|| id.clone());
                    let catalog = crate::commands::load_for(flows, &name)?;
                    let Some(flow) = catalog.get(&id) else {
                        anyhow::bail!(
                            "run `{}` is of flow `{id}`, which does not compile now: `flowcat validate`",
                            run.summary.info.id
                        );
                    };
                    let drawing = if format == ShowFormat::Mermaid {
                        crate::commands::Drawing::Mermaid
                    } else {
                        crate::commands::Drawing::Dot
                    };
                    print!("{}", crate::commands::draw_run(flow, &catalog, true, &run, drawing));
                }
            }
        }
        RunsCommand::Abandon { id } => {
            let Some(journal) = journal else {
                anyhow::bail!("no run journal at `{place}`: nothing to abandon");
            };
            abandon(journal.as_ref(), &id, now)?;
            println!("run `{id}` abandoned: it ended failed (`abandoned`) and will not be resumed");
        }
        RunsCommand::Prune { older_than, format } => {
            let before = now.saturating_sub(older_than.as_millis() as u64);
            let pruned = match &journal {
                Some(journal) => journal.prune(before).context("pruning the journal")?,
                None => 0,
            };
            if format == Format::Json {
                println!("{}", serde_json::json!({ "pruned": pruned, "before": before }));
            } else {
                let plural = if pruned == 1 { "" } else { "s" };
                println!("pruned {pruned} finished run{plural} that ended before {}", utc(before));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Ends an unfinished run as failed (`abandoned`), its record made of what it journaled.
fn abandon(journal: &dyn flowcat_engine::journal::Store, id: &str, now: u64) -> anyhow::Result<()> {
    let Some(run) = journal.show(id)? else {
        anyhow::bail!("no run `{id}` in the journal: `flowcat runs list` shows the runs it holds");
    };
    if run.summary.status.is_final() {
        anyhow::bail!("run `{id}` has ended ({}): there is nothing to abandon", run.summary.status.name());
    }
    let failure = flowcat_engine::run::RunFailure {
        node: String::new(),
        code: "abandoned".into(),
        message: "abandoned by a person (`flowcat runs abandon`) after checking by hand".into(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(flowcat_nodes::hall::abandon(journal, id, failure, now))?;
    Ok(())
}

/// The runs as a table of at most `width` columns: the flow and the key are cut to fit.
pub fn table(runs: &[RunSummary], now: u64, width: usize) -> String {
    let rows: Vec<[String; 6]> = runs
        .iter()
        .map(|r| {
            let ended = !matches!(r.status, StoredStatus::Running | StoredStatus::Waiting);
            let took = if ended { r.updated_at } else { now }.saturating_sub(r.info.created_at);
            [
                r.info.id.clone(),
                r.info.flow.clone(),
                r.status.name().to_owned(),
                ago(now, r.info.created_at),
                duration(took),
                r.info.key.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let header = ["ID", "FLOW", "STATUS", "STARTED", "TOOK", "KEY"].map(str::to_owned);
    let mut widths = [0usize; 6];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.width());
        }
    }
    // The flow and the key share what the other columns and the five gaps leave.
    let fixed = widths[0] + widths[2] + widths[3] + widths[4] + 5 * 2;
    let room = width.saturating_sub(fixed);
    if widths[1] + widths[5] > room {
        let key = widths[5].min((room / 3).max(3));
        widths[5] = key;
        widths[1] = room.saturating_sub(key).max(4);
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .enumerate()
            // A flow id is cut on the left: its last parts tell flows apart (`…admin.enroll_user`).
            .map(|(i, (cell, w))| pad(&if i == 1 { fit_left(cell, w) } else { fit(cell, w) }, w))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// One run for a person: how it started, where it stands, and its nodes with their writes.
pub fn show(run: &StoredRun, now: u64) -> String {
    let s = &run.summary;
    let info = &s.info;
    let mut out = format!("run {}\n", info.id);
    let mut field = |name: &str, value: String| out.push_str(&format!("  {name:<9} {value}\n"));
    field("flow", info.flow.clone());
    field("status", status_line(s));
    if let Some(key) = &info.key {
        field("key", key.clone());
    }
    field("started", format!("{} ({})", utc(info.created_at), ago(now, info.created_at)));
    let since = if s.status == StoredStatus::Running { now } else { s.updated_at };
    field(
        "updated",
        format!("{} ({} after the start)", utc(s.updated_at), duration(since.saturating_sub(info.created_at))),
    );
    if let Some(deadline) = info.deadline_at {
        field("deadline", utc(deadline));
    }
    if let Some(note) = &s.note {
        field("note", note.clone());
    }
    field("inputs", compact(&Value::Object(info.inputs.clone())));
    if !info.vars.is_empty() {
        field("vars", compact(&Value::Object(info.vars.clone())));
    }
    if let Some(bindings) = bindings(info) {
        field("bindings", bindings);
    }
    if let Some(record) = &run.record {
        field("outputs", compact(&Value::Object(record.outputs.clone())));
    }
    let nodes = nodes(run);
    if !nodes.is_empty() {
        out.push_str("nodes\n");
        let width = nodes.iter().map(|n| n.path.width()).max().unwrap_or(0).min(32);
        let mut unknown = 0;
        for node in &nodes {
            let in_doubt = match node.record {
                Some(r) => r.status == NodeStatus::Unknown,
                None => node.past.is_some_and(|p| p.intent.is_some()),
            };
            unknown += usize::from(in_doubt);
            let status = match node.record {
                _ if in_doubt => "outcome unknown".to_owned(),
                Some(r) => format!("{:?}", r.status).to_lowercase(),
                None => "started".to_owned(),
            };
            let attempts = match node.record.map_or(0, |r| r.attempts) {
                0 => String::new(),
                1 => "1 attempt".to_owned(),
                n => format!("{n} attempts"),
            };
            let took = node.record.and_then(|r| r.duration_ms).map(|ms| duration(ms as u64)).unwrap_or_default();
            let line = format!("  {}  {status:<15}  {attempts:<10}  {took}", pad(&fit(&node.path, width), width));
            out.push_str(line.trim_end());
            out.push('\n');
            // The request journaled before the write was sent; for a write the run stopped on,
            // the record carries it too.
            let from_record = node.record.and_then(|r| r.error.as_ref()?.data.as_ref()?.get("request"));
            if let Some(intent) = node.past.and_then(|p| p.intent.as_ref()).or(from_record.filter(|_| in_doubt)) {
                out.push_str(&write_lines(intent));
            }
        }
        if unknown > 0 && !s.status.is_final() {
            let writes = if unknown == 1 { "1 write was" } else { "writes were" };
            out.push_str(&format!(
                "{writes} sent, or about to be, and no result was journaled:\ncheck in the Duo Admin Panel \
                 whether it happened before resuming\n"
            ));
        }
    }
    if let Some(w) = &s.waiting {
        let delivered = if w.delivered { " (delivered: it goes on when resumed)" } else { "" };
        out.push_str(&format!("waits at `{}` for signal `{}`{delivered}\n", w.path, w.signal));
        if !w.delivered {
            let fields = info.signals.iter().find(|x| x.name == w.signal).map(|x| x.declared()).unwrap_or_default();
            out.push_str(&format!(
                "send it with: flowcat signal {} {} --data '{{…}}'  ({fields})\n",
                info.id, w.signal
            ));
        }
    }
    if matches!(s.status, StoredStatus::Interrupted | StoredStatus::NeedsAttention)
        || s.waiting.as_ref().is_some_and(|w| !w.held)
    {
        out.push_str(&format!("resume it with: flowcat resume {}\n", info.id));
    }
    out
}

/// Each slot with the integration `--bind` named and the host it talked to: `duo_admin → duo
/// (api-x.duosecurity.com)`.
fn bindings(info: &RunInfo) -> Option<String> {
    let mut slots: Vec<&str> = info.binds.iter().map(|(slot, _)| slot.as_str()).collect();
    for (slot, _) in &info.targets {
        if !slots.contains(&slot.as_str()) {
            slots.push(slot);
        }
    }
    let find = |list: &[(String, String)], slot: &str| list.iter().find(|(s, _)| s == slot).map(|(_, v)| v.clone());
    let each: Vec<String> = slots
        .iter()
        .map(|slot| match (find(&info.binds, slot), find(&info.targets, slot)) {
            (Some(name), Some(host)) => format!("{slot} → {name} ({host})"),
            (Some(name), None) => format!("{slot} → {name}"),
            (None, Some(host)) => format!("{slot} → {host}"),
            (None, None) => (*slot).to_owned(),
        })
        .collect();
    (!each.is_empty()).then(|| each.join(", "))
}

fn status_line(s: &RunSummary) -> String {
    let name = s.status.name();
    match s.status {
        StoredStatus::Running => format!("{name} (held by a flowcat process now)"),
        StoredStatus::Interrupted => format!("{name} (no process holds it: it was stopped or died)"),
        StoredStatus::Waiting => match &s.waiting {
            Some(w) if w.held => format!("{name} for signal `{}` (held by a flowcat process now)", w.signal),
            Some(w) => format!("{name} for signal `{}` (no process holds it: `flowcat resume` waits again)", w.signal),
            None => name.to_owned(),
        },
        _ => name.to_owned(),
    }
}

/// A node as `runs show` lists it: its path, its final record (if it finished), what the
/// journal holds of it.
struct Node<'a> {
    path: String,
    record: Option<&'a NodeRecord>,
    past: Option<&'a NodePast>,
}

/// The run's nodes in the record's order (subflow nodes under their caller) when it ended, then
/// the journaled ones the record does not name, in the order they started.
fn nodes(run: &StoredRun) -> Vec<Node<'_>> {
    fn walk<'a>(record: &'a RunRecord, prefix: &str, run: &'a StoredRun, out: &mut Vec<Node<'a>>) {
        for node in &record.nodes {
            let path = if prefix.is_empty() { node.id.clone() } else { format!("{prefix}/{}", node.id) };
            out.push(Node { record: Some(node), past: run.past.node(&path), path: path.clone() });
            if let Some(sub) = &node.subflow {
                walk(sub, &path, run, out);
            }
            // A `for_each` item's nodes are journaled under `<id>[<index>]/`.
            for item in &node.items {
                walk(&item.record, &format!("{path}[{}]", item.index), run, out);
            }
        }
    }
    let mut out = Vec::new();
    if let Some(record) = &run.record {
        walk(record, "", run, &mut out);
    }
    let mut rest: Vec<(&String, &NodePast)> =
        run.past.nodes.iter().filter(|(path, _)| !out.iter().any(|n| &n.path == *path)).collect();
    let started = |p: &NodePast| p.started_at.or(p.finished.as_ref().and_then(|f| f.record.started_at));
    rest.sort_by(|a, b| (started(a.1), a.0).cmp(&(started(b.1), b.0)));
    for (path, past) in rest {
        let record = past.finished.as_ref().map(|f| &f.record);
        out.push(Node { path: path.clone(), record, past: Some(past) });
    }
    out
}

/// A journaled write: `METHOD URL` and its body, as the node kind redacted them.
fn write_lines(intent: &Value) -> String {
    let method = intent.get("method").and_then(Value::as_str);
    let target = intent.get("url").or_else(|| intent.get("path")).and_then(Value::as_str);
    match (method, target) {
        (Some(method), Some(target)) => {
            let mut out = format!("      write  {method} {target}\n");
            if let Some(body) = intent.get("body").filter(|b| !b.is_null()) {
                out.push_str(&format!("             {}\n", compact(body)));
            }
            out
        }
        _ => format!("      write  {}\n", compact(intent)),
    }
}

fn compact(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// `text` cut to its last `columns` display columns, with `…` first when cut.
fn fit_left(text: &str, columns: usize) -> String {
    if text.width() <= columns {
        return text.to_owned();
    }
    let reversed: String = text.chars().rev().collect();
    let kept: String = fit(&reversed, columns).chars().rev().collect();
    // `fit` put its `…` at the end of the reversed text: now first.
    kept
}

/// The table's width: the terminal's when stdout is one wider than 80 columns, else 80.
fn width() -> usize {
    terminal_size::terminal_size_of(std::io::stdout()).map_or(80, |(w, _)| usize::from(w.0)).max(80)
}

/// `text` padded with spaces to `width` display columns.
fn pad(text: &str, width: usize) -> String {
    format!("{text}{}", " ".repeat(width.saturating_sub(text.width())))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// How long before `now` `then` was: `45s ago`, `12m ago`, `3h ago`, `2d ago`.
pub fn ago(now: u64, then: u64) -> String {
    let s = now.saturating_sub(then) / 1000;
    match s {
        0..60 => format!("{s}s ago"),
        60..3600 => format!("{}m ago", s / 60),
        3600..86_400 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86_400),
    }
}

/// A duration in at most about six columns: `120ms`, `4.2s`, `3m05s`, `2h10m`, `3d04h`.
pub fn duration(ms: u64) -> String {
    let s = ms / 1000;
    match ms {
        0..1000 => format!("{ms}ms"),
        1000..60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{}m{:02}s", s / 60, s % 60),
        3_600_000..86_400_000 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// Unix ms as `2026-12-02 15:01:58 UTC`.
pub fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's `civil_from_days`, for days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC", rest / 3600, rest % 3600 / 60, rest % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_parse_and_nonsense_is_refused() {
        let table = [("30d", 30 * 86_400), ("12h", 43_200), ("90m", 5_400), ("45s", 45), ("2w", 1_209_600), ("0d", 0)];
        for (text, secs) in table {
            assert_eq!(parse_age(text), Ok(Duration::from_secs(secs)), "{text}");
        }
        for bad in ["", "30", "d", "30 d", "30days", "-3d", "3.5d", "1e3d", "30D", "99999999999999999999d", "36501d"] {
            let e = parse_age(bad).expect_err(bad);
            assert!(e.contains(&format!("`{bad}`")), "{e}");
        }
    }

    #[test]
    fn times_and_durations_read_plainly() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_764_687_718_000), "2025-12-02 15:01:58 UTC");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
        let table = [(999, "999ms"), (4_250, "4.2s"), (185_000, "3m05s"), (7_800_000, "2h10m"), (273_600_000, "3d04h")];
        for (ms, text) in table {
            assert_eq!(duration(ms), text);
        }
        assert_eq!(ago(100_000, 55_000), "45s ago");
        assert_eq!(ago(10_000_000, 0), "2h ago");
        assert_eq!(ago(0, 5_000), "0s ago", "a clock that went back");
    }
}
