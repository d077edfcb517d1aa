//! What `run --each` tells: a tally of the rows, the progress line (redrawn on a terminal,
//! plain periodic lines otherwise), `--out`'s one result per row, and the summary table.

use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Map, Value};

/// How a row ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Succeeded,
    /// Its run key named a run that had succeeded: nothing was sent.
    AlreadyDone,
    Failed,
    /// Refused before anything was journaled or sent (a bad value, a missing input, a bad line).
    Invalid,
    /// Ctrl-C stopped it: journaled, the same command resumes it.
    Stopped,
    /// Stopped on a write whose outcome is unknown (`flowcat resume ID --resend …`).
    NeedsAttention,
}

/// One row's result, as `--out` writes it.
#[derive(Debug, Serialize)]
pub struct RowResult {
    pub line: u64,
    pub status: Status,
    /// The journaled run's id (none without the journal or for an invalid row).
    pub run: Option<String>,
    pub inputs: Map<String, Value>,
    pub outputs: Map<String, Value>,
    pub error: Option<String>,
}

/// The rows counted by how they ended, shared with the progress task.
#[derive(Debug, Default)]
pub struct Tally {
    counts: [AtomicU64; 6],
}

impl Tally {
    pub fn add(&self, status: Status) {
        self.counts[status as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self, status: Status) -> u64 {
        self.counts[status as usize].load(Ordering::Relaxed)
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

/// The progress line: rows finished, how, the rate of the rows run, and an ETA when the total
/// is known. Pure, so that it is tested at fixed numbers.
pub fn progress_line(tally: &Tally, elapsed: Duration, total: Option<u64>) -> String {
    let done = tally.total();
    let ran = done - tally.get(Status::Invalid);
    let rate = ran as f64 / elapsed.as_secs_f64().max(1e-3);
    let mut line = format!(
        "rows: {done}{} done ({} succeeded, {} already done), {} failed, {} invalid, {rate:.0} rows/s",
        total.map(|t| format!("/~{t}")).unwrap_or_default(),
        tally.get(Status::Succeeded),
        tally.get(Status::AlreadyDone),
        tally.get(Status::Failed) + tally.get(Status::NeedsAttention),
        tally.get(Status::Invalid),
    );
    if let Some(total) = total.filter(|_| rate > 0.0) {
        let left = total.saturating_sub(done) as f64 / rate;
        line.push_str(&format!(", ETA {}", clock(left as u64)));
    }
    line
}

fn clock(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
    }
}

/// Prints the progress until `done` fires: every 2 s as a plain line, or redrawn in place
/// every 200 ms on a terminal (and erased at the end, before the summary).
pub async fn progress(
    tally: std::sync::Arc<Tally>,
    total: Option<u64>,
    terminal: bool,
    mut done: tokio::sync::oneshot::Receiver<()>,
) {
    let started = Instant::now();
    let every = if terminal { Duration::from_millis(200) } else { Duration::from_secs(2) };
    loop {
        tokio::select! {
            _ = &mut done => break,
            () = tokio::time::sleep(every) => {}
        }
        let line = progress_line(&tally, started.elapsed(), total);
        if terminal {
            eprint!("\r\x1b[K{line}");
        } else {
            eprintln!("{line}");
        }
    }
    if terminal {
        eprint!("\r\x1b[K");
    }
}

/// `--out`: JSON Lines, or CSV for a `.csv` name. Every error names the file.
pub struct Out {
    path: std::path::PathBuf,
    sink: Sink,
    /// Lines written to the buffer since the last flush.
    dirty: bool,
}

enum Sink {
    Jsonl(std::io::BufWriter<std::fs::File>),
    Csv(Box<csv::Writer<std::fs::File>>),
}

impl Out {
    /// Creates (or empties) the file, before any row runs: a path that cannot be written is
    /// refused with what to do about it.
    pub fn create(path: &Path) -> anyhow::Result<Out> {
        let file = std::fs::File::create(path).map_err(|e| {
            let fix = match e.kind() {
                std::io::ErrorKind::NotFound => "create its folder first, or give a path in a folder that exists",
                std::io::ErrorKind::PermissionDenied => "give a path you may write to",
                _ if path.is_dir() => "it is a folder: give a file name",
                _ => "give another path",
            };
            anyhow::anyhow!("cannot write `--out {}`: {e}; nothing was run: {fix}", path.display())
        })?;
        if !path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")) {
            return Ok(Out { path: path.to_owned(), sink: Sink::Jsonl(std::io::BufWriter::new(file)), dirty: false });
        }
        let mut w = csv::Writer::from_writer(file);
        let header = w.write_record(["line", "status", "run", "inputs", "outputs", "error"]);
        header.map_err(|e| out_error(path, e.into()))?;
        Ok(Out { path: path.to_owned(), sink: Sink::Csv(Box::new(w)), dirty: false })
    }

    pub fn write(&mut self, row: &RowResult) -> anyhow::Result<()> {
        let written = match &mut self.sink {
            Sink::Jsonl(w) => serde_json::to_writer(&mut *w, row).map_err(anyhow::Error::from).and_then(|()| {
                w.write_all(b"\n")?;
                Ok(())
            }),
            Sink::Csv(w) => {
                let status = serde_json::to_value(row.status)?;
                w.write_record([
                    row.line.to_string(),
                    status.as_str().unwrap_or_default().to_owned(),
                    row.run.clone().unwrap_or_default(),
                    Value::Object(row.inputs.clone()).to_string(),
                    Value::Object(row.outputs.clone()).to_string(),
                    row.error.clone().unwrap_or_default(),
                ])
                .map_err(anyhow::Error::from)
            }
        };
        self.dirty = true;
        written.map_err(|e| self.error(e))
    }

    /// Whether lines wait in the buffer.
    pub fn dirty(&self) -> bool {
        self.dirty
    }

    /// Hands the buffered lines to the file. The driver calls it whenever it has nothing else to
    /// do, so that a batch killed (or a machine that stops) loses none of the rows that ended
    /// before its last wait, and someone following the file sees each row once it ended.
    pub fn flush(&mut self) -> anyhow::Result<()> {
        let flushed = match &mut self.sink {
            Sink::Jsonl(w) => w.flush(),
            Sink::Csv(w) => w.flush(),
        };
        self.dirty = false;
        flushed.map_err(|e| out_error(&self.path, e.into()))
    }

    pub fn finish(mut self) -> anyhow::Result<()> {
        self.flush()
    }

    fn error(&self, e: anyhow::Error) -> anyhow::Error {
        out_error(&self.path, e)
    }
}

fn out_error(path: &Path, e: anyhow::Error) -> anyhow::Error {
    anyhow::anyhow!("cannot write `--out {}`: {e}", path.display())
}

/// The rows by how they ended, as a table on stdout or one JSON object.
pub fn summary(name: &str, tally: &Tally, json: bool) -> anyhow::Result<()> {
    let rows = [
        ("succeeded", Status::Succeeded),
        ("already_done", Status::AlreadyDone),
        ("failed", Status::Failed),
        ("invalid", Status::Invalid),
        ("stopped", Status::Stopped),
        ("needs_attention", Status::NeedsAttention),
    ];
    if json {
        let mut m = Map::new();
        m.insert("rows".to_owned(), tally.total().into());
        for (key, status) in rows {
            m.insert(key.to_owned(), tally.get(status).into());
        }
        println!("{}", serde_json::to_string_pretty(&Value::Object(m))?);
        return Ok(());
    }
    println!("rows of {name}: {}", tally.total());
    for (key, status) in rows {
        let n = tally.get(status);
        // The last two only when they happened: most bulk runs have neither.
        if n > 0 || !matches!(status, Status::Stopped | Status::NeedsAttention) {
            println!("  {:<16}{n:>8}", key.replace('_', " "));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_line_counts_rates_and_eta() {
        let tally = Tally::default();
        for _ in 0..90 {
            tally.add(Status::Succeeded);
        }
        for _ in 0..10 {
            tally.add(Status::AlreadyDone);
        }
        tally.add(Status::Failed);
        tally.add(Status::Invalid);
        assert_eq!(
            progress_line(&tally, Duration::from_secs(10), Some(1102)),
            "rows: 102/~1102 done (90 succeeded, 10 already done), 1 failed, 1 invalid, 10 rows/s, ETA 1m39s"
        );
        assert_eq!(
            progress_line(&tally, Duration::from_secs(1), None),
            "rows: 102 done (90 succeeded, 10 already done), 1 failed, 1 invalid, 101 rows/s"
        );
    }
}
