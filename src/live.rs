//! The live view of a run, on stderr.
//!
//! On a terminal: a header saying what the run talks to (Duo, or a simulator), a line per node as
//! it finishes, and below them a status area (one line per node still running or polling, with
//! a spinner and its time) that is redrawn in place every 100 ms. Every status line is cut to the
//! terminal's width, so none wraps: a wrapped line is what `\r` cannot reach, and what used to
//! leave a stale line on screen at every tick. Elsewhere (logs, CI): plain lines, one per event.
//!
//! By default only what a person acts on is shown: the run's own nodes and any failure. `-v`
//! adds the nodes inside subflows, skipped nodes and why they were skipped.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use flowcat_engine::run::{Event, NodeStatus, Observer, RunRecord};
use serde_json::Value;
use unicode_width::UnicodeWidthChar as _;

const FRAMES: &[char] = &['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/// The most status lines drawn at once; the rest are counted on one more line.
const MAX_STATUS_LINES: usize = 6;

/// How the live view shows a run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Settings {
    /// Draw the status area and marks (stderr is a terminal); otherwise plain lines.
    pub terminal: bool,
    /// Print nothing at all.
    pub quiet: bool,
    /// Also nodes inside subflows, skipped nodes and their reasons.
    pub verbose: bool,
}

/// A node running now.
struct Running {
    name: String,
    started: Instant,
    note: Option<String>,
}

#[derive(Default)]
struct Screen {
    running: Vec<Running>,
    frame: usize,
    /// Status lines on screen now, which the next redraw or permanent line replaces.
    drawn: usize,
}

/// The observer behind the live view.
pub struct Live {
    settings: Settings,
    screen: Mutex<Screen>,
    stopped: AtomicBool,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live").field("settings", &self.settings).finish_non_exhaustive()
    }
}

/// What one integration slot of a run is bound to, for the header.
#[derive(Debug, Clone)]
pub struct Target {
    pub slot: String,
    pub integration: String,
    pub host: String,
    /// A loopback host the file lets plain http reach: `flowcat sim`, not Duo.
    pub simulator: bool,
}

impl Live {
    pub fn start(settings: Settings) -> Arc<Live> {
        let live = Arc::new(Live { settings, screen: Mutex::default(), stopped: AtomicBool::new(false) });
        if settings.terminal && !settings.quiet {
            let ticker = live.clone();
            std::thread::spawn(move || {
                while !ticker.stopped.load(Ordering::Relaxed) {
                    ticker.redraw();
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
        }
        live
    }

    /// Says which flow runs and what each slot talks to, before anything is sent.
    pub fn header(&self, flow: &str, targets: &[Target]) {
        if self.settings.quiet {
            return;
        }
        let mut lines = vec![format!("flowcat run {flow}")];
        let width = targets.iter().map(|t| t.slot.len()).max().unwrap_or(0);
        for t in targets {
            let what = if t.simulator { "a simulator on loopback, not Duo" } else { "Duo" };
            lines.push(format!("  {:width$}  → {} at {} ({what})", t.slot, t.integration, t.host));
        }
        let mut screen = lock(&self.screen);
        for line in lines {
            self.permanent(&mut screen, &line);
        }
    }

    /// Ends the status area and clears it.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
        let mut screen = lock(&self.screen);
        erase(&mut screen);
        let _ = std::io::stderr().flush();
    }

    fn redraw(&self) {
        let mut screen = lock(&self.screen);
        if self.stopped.load(Ordering::Relaxed) {
            return;
        }
        screen.frame = (screen.frame + 1) % FRAMES.len();
        draw(&mut screen, columns());
    }

    /// A line that stays: the status area is taken away, the line printed, the area redrawn.
    fn permanent(&self, screen: &mut Screen, text: &str) {
        let mut err = std::io::stderr().lock();
        if self.settings.terminal {
            erase(screen);
        }
        let _ = writeln!(err, "{text}");
        drop(err);
        if self.settings.terminal && !self.stopped.load(Ordering::Relaxed) {
            draw(screen, columns());
        }
    }

    /// Whether an event about the node at `path` gets a line of its own.
    fn shown(&self, path: &[String], status: Option<NodeStatus>) -> bool {
        match status {
            Some(NodeStatus::Failed) => true,
            Some(NodeStatus::Skipped) => self.settings.verbose,
            _ => self.settings.verbose || path.len() <= 1,
        }
    }
}

fn lock(screen: &Mutex<Screen>) -> std::sync::MutexGuard<'_, Screen> {
    screen.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The terminal's width; 80 when it cannot be told.
fn columns() -> usize {
    terminal_size::terminal_size_of(std::io::stderr()).map_or(80, |(w, _)| usize::from(w.0)).max(20)
}

/// Removes the status area: back to its first line, clear to the end of the screen.
fn erase(screen: &mut Screen) {
    if screen.drawn > 0 {
        eprint!("\x1b[{}F\x1b[J", screen.drawn);
        screen.drawn = 0;
    }
}

/// Draws the status area below the permanent lines, each line shorter than the terminal.
fn draw(screen: &mut Screen, width: usize) {
    let lines = status_lines(&screen.running, screen.frame, width);
    let mut out = String::new();
    if screen.drawn > 0 {
        out.push_str(&format!("\x1b[{}F\x1b[J", screen.drawn));
    }
    for line in &lines {
        out.push_str(line);
        out.push('\n');
    }
    eprint!("{out}");
    let _ = std::io::stderr().flush();
    screen.drawn = lines.len();
}

/// One line per running node (the most recent last), cut to `width - 1` columns.
fn status_lines(running: &[Running], frame: usize, width: usize) -> Vec<String> {
    let spinner = FRAMES[frame % FRAMES.len()];
    let shown = running.len().min(MAX_STATUS_LINES);
    let mut lines: Vec<String> = running[running.len() - shown..]
        .iter()
        .map(|r| {
            let note = r.note.as_deref().map(|n| format!("  {n}")).unwrap_or_default();
            let line = format!("{spinner} {}  {}{note}", r.name, seconds(r.started.elapsed()));
            fit(&line, width.saturating_sub(1))
        })
        .collect();
    if running.len() > shown {
        lines.insert(0, fit(&format!("  … and {} more", running.len() - shown), width.saturating_sub(1)));
    }
    lines
}

/// `text` cut to `columns` display columns, with `…` when cut.
pub fn fit(text: &str, columns: usize) -> String {
    let mut used = 0;
    let mut out = String::new();
    let total: usize = text.chars().map(|c| c.width().unwrap_or(0)).sum();
    if total <= columns {
        return text.to_owned();
    }
    for c in text.chars() {
        let w = c.width().unwrap_or(0);
        if used + w + 1 > columns {
            break;
        }
        used += w;
        out.push(c);
    }
    out.push('…');
    out
}

fn seconds(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn duration(ms: f64) -> String {
    if ms < 1000.0 { format!("{ms:.0} ms") } else { format!("{:.1} s", ms / 1000.0) }
}

fn name(path: &[String]) -> String {
    path.join(" › ")
}

impl Observer for Live {
    fn event(&self, event: &Event<'_>) {
        if self.settings.quiet {
            return;
        }
        let mut screen = lock(&self.screen);
        let indent = |path: &[String]| "  ".repeat(path.len().saturating_sub(1));
        match event {
            Event::Started { path, kind } => {
                let n = name(path);
                // A subflow call, a `for_each` and each of its items hold nodes of their own.
                let heading = self.settings.verbose && matches!(*kind, "subflow" | "for_each" | "item");
                if !self.settings.terminal && self.shown(path, None) {
                    self.permanent(&mut screen, &format!("{}start    {n} ({kind})", indent(path)));
                } else if self.settings.terminal && heading {
                    // With -v, a subflow's heading comes before the nodes inside it.
                    self.permanent(&mut screen, &format!("{}▸ {n}", indent(path)));
                }
                screen.running.push(Running { name: n, started: Instant::now(), note: None });
            }
            Event::Waiting { path, note } => {
                let n = name(path);
                if let Some(r) = screen.running.iter_mut().find(|r| r.name == n) {
                    r.note = Some((*note).to_owned());
                }
                if !self.settings.terminal && self.shown(path, None) {
                    self.permanent(&mut screen, &format!("{}waiting  {n}: {note}", indent(path)));
                }
            }
            Event::Signal { path, run, name: signal, fields, until_ms } => {
                let n = name(path);
                let left = until_ms.map(left).unwrap_or_default();
                if let Some(r) = screen.running.iter_mut().find(|r| r.name == n) {
                    r.note = Some(format!("waiting for signal {signal}"));
                }
                let how = match run {
                    Some(id) => format!(
                        "; send it with:\n{}  flowcat signal {id} {signal} --data '{}'",
                        indent(path),
                        sample(fields)
                    ),
                    None => String::new(),
                };
                self.permanent(
                    &mut screen,
                    &format!("{}waiting  {n}: for signal `{signal}` ({fields}){left}{how}", indent(path)),
                );
            }
            Event::Restored { path, status } => {
                if !self.shown(path, Some(*status)) {
                    return;
                }
                let lead = if self.settings.terminal { "↺ " } else { "restored " };
                self.permanent(
                    &mut screen,
                    &format!("{}{lead}{} (done before; from the journal)", indent(path), name(path)),
                );
            }
            Event::Finished { path, status, duration_ms, message, .. } => {
                let n = name(path);
                screen.running.retain(|r| r.name != n);
                if !self.shown(path, Some(*status)) {
                    return;
                }
                let (mark, word) = match status {
                    NodeStatus::Succeeded => ("✓", "ok      "),
                    NodeStatus::Skipped => ("–", "skipped "),
                    NodeStatus::Failed => ("✗", "failed  "),
                    _ => ("·", "stopped "),
                };
                let lead = if self.settings.terminal { format!("{mark} ") } else { word.to_owned() };
                let time =
                    if *status == NodeStatus::Skipped { String::new() } else { format!(" {}", duration(*duration_ms)) };
                let why = message.map(|m| format!(": {m}")).unwrap_or_default();
                self.permanent(&mut screen, &format!("{}{lead}{n}{time}{why}", indent(path)));
            }
        }
    }
}

/// ` for at most 2d 3h`: the time left until `until_ms` (Unix ms).
pub(crate) fn left(until_ms: u64) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = until_ms.saturating_sub(now.as_millis() as u64) / 1000;
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    let text = match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    };
    format!(", for at most {text}")
}

/// A payload with a sample value per field, from `approved: boolean, approver: string`.
fn sample(fields: &str) -> String {
    let mut out = serde_json::Map::new();
    for field in fields.split(", ") {
        let Some((name, ty)) = field.split_once(": ") else { continue };
        let value = match ty {
            "boolean" => Value::Bool(true),
            "number" => Value::from(0),
            "object" => Value::Object(Default::default()),
            "array" => Value::Array(Vec::new()),
            _ => Value::from("…"),
        };
        out.insert(name.to_owned(), value);
    }
    Value::Object(out).to_string()
}

/// The writes a run asked for, in words: every call that is not only a read (a `GET`, Duo's
/// preauth), done, refused, or with its outcome unknown, and the node that made it.
pub fn changes(record: &RunRecord) -> Vec<String> {
    let value = serde_json::to_value(record).unwrap_or_default();
    let mut out = Vec::new();
    walk(&value, &mut Vec::new(), &mut out);
    out
}

fn walk(record: &Value, path: &mut Vec<String>, out: &mut Vec<String>) {
    for node in record["nodes"].as_array().into_iter().flatten() {
        let id = node["id"].as_str().unwrap_or("?").to_owned();
        path.push(id.clone());
        let attempts = node["detail"]["attempts"].as_array().filter(|a| !a.is_empty());
        for attempt in attempts.into_iter().flatten() {
            if let Some(line) = write_line(attempt, path) {
                out.push(line);
            }
        }
        // A write dropped in flight has no attempts recorded: its journaled request says what it was.
        if attempts.is_none() && node["status"] == "unknown" {
            let request = &node["error"]["data"]["request"];
            if let Some(line) = write_line(&serde_json::json!({ "request": request }), path) {
                out.push(line);
            }
        }
        if node["subflow"].is_object() {
            walk(&node["subflow"], path, out);
        }
        // A `for_each` item's nodes run at `<id>[<index>]`.
        for item in node["items"].as_array().into_iter().flatten() {
            path.pop();
            path.push(format!("{id}[{}]", item["index"]));
            walk(&item["record"], path, out);
        }
        path.pop();
    }
}

fn write_line(attempt: &Value, path: &[String]) -> Option<String> {
    let method = attempt["request"]["method"].as_str()?;
    let url = attempt["request"]["url"].as_str().unwrap_or_default();
    let target = url.split_once("://").map_or(url, |(_, rest)| rest.find('/').map_or("/", |i| &rest[i..]));
    let target = target.split('?').next().unwrap_or(target);
    if flowcat_nodes::duo::only_reads(method, target) {
        return None;
    }
    let how = match attempt["response"]["status"].as_u64() {
        Some(s @ 200..=299) => {
            let failed = attempt["response"]["body"]["stat"] == "FAIL";
            if failed { format!("refused ({s})") } else { "done".to_owned() }
        }
        Some(429) => return None,
        Some(s) => format!("refused ({s})"),
        None => "outcome unknown (no answer)".to_owned(),
    };
    Some(format!("{method} {target}  {how}  [{}]", name(path)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_cut_to_the_width_by_display_columns() {
        assert_eq!(fit("short", 10), "short");
        assert_eq!(fit("0123456789abc", 10), "012345678…");
        // A wide character takes two columns: it does not fit in the last one.
        assert_eq!(fit("ab漢字cd", 5), "ab漢…");
        let running: Vec<Running> = (0..9)
            .map(|i| Running {
                name: format!("verify › wait › node{i} with a rather long name to overflow"),
                started: Instant::now(),
                note: Some("poll 12: waiting 1000 ms".into()),
            })
            .collect();
        let lines = status_lines(&running, 3, 80);
        assert_eq!(lines.len(), MAX_STATUS_LINES + 1, "{lines:#?}");
        assert!(lines[0].contains("… and 3 more"));
        for line in &lines {
            let cols: usize = line.chars().map(|c| c.width().unwrap_or(0)).sum();
            assert!(cols < 80, "{cols} columns: {line}");
        }
    }

    #[test]
    fn changes_list_writes_with_their_node_and_outcome() {
        let record: RunRecord = serde_json::from_value(serde_json::json!({
            "flow": "f", "status": "succeeded", "started_at": 0, "ended_at": 1,
            "inputs": {}, "vars": {}, "outputs": {},
            "nodes": [
                { "id": "lookup", "kind": "rest_call", "status": "succeeded", "attempts": 1, "detail": { "attempts": [
                    { "request": { "method": "GET", "url": "http://h/admin/v1/users?username=a", "headers": {} },
                      "response": { "status": 200, "headers": {}, "body": {} }, "started_at": 0, "duration_ms": 1 } ] } },
                { "id": "phone", "kind": "subflow", "status": "failed", "attempts": 1, "subflow": {
                    "flow": "g", "status": "failed", "started_at": 0, "ended_at": 1, "inputs": {}, "vars": {}, "outputs": {},
                    "nodes": [ { "id": "create", "kind": "rest_call", "status": "failed", "attempts": 2, "detail": { "attempts": [
                        { "request": { "method": "POST", "url": "http://h/admin/v1/phones", "headers": {} },
                          "response": { "status": 429, "headers": {}, "body": {} }, "started_at": 0, "duration_ms": 1 },
                        { "request": { "method": "POST", "url": "http://h/admin/v1/phones", "headers": {} },
                          "error": "connection lost", "started_at": 0, "duration_ms": 1 } ] } } ] } }
            ]
        }))
        .expect("a record");
        assert_eq!(changes(&record), ["POST /admin/v1/phones  outcome unknown (no answer)  [phone › create]"]);
    }
}
