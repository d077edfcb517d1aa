//! `--each`'s rows, streamed: a CSV file with a header row or JSON Lines, read one row at a
//! time on a thread of its own and handed over a bounded channel ([`Batches`]), so that memory
//! does not grow with the file. A row that cannot be read is an [`Item::Bad`] with its line; a file that
//! cannot be read at all (or a CSV header naming no input of the flow) is a fatal error.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde_json::{Map, Value};
use tokio::sync::mpsc;

/// `--each-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RowFormat {
    /// Comma-separated values with a header row naming the inputs.
    Csv,
    /// One JSON object of inputs a line (`ndjson` is accepted too).
    #[value(alias = "ndjson")]
    Jsonl,
}

/// The longest JSON line read; a longer one is a bad row (and the rest of it is skipped).
const MAX_LINE: u64 = 1 << 20;

/// One row: its line (1-based, the line it starts on) and its inputs, or why it is unusable.
#[derive(Debug)]
pub enum Item {
    Row { line: u64, inputs: Map<String, Value> },
    Bad { line: u64, problem: String },
}

/// An open rows file.
pub struct Source {
    /// How messages name it: the path as given, or `<stdin>`.
    pub name: String,
    pub format: RowFormat,
    reader: Box<dyn BufRead + Send>,
    /// The most rows handed over at once: [`BATCH`] for a regular file, 1 for stdin or a pipe,
    /// whose next row may be long in coming (a row gathered behind it would wait for it).
    batch: usize,
}

/// Opens `spec` (a path, or `-` for stdin) and decides its format.
pub fn open(spec: &str, format: Option<RowFormat>) -> anyhow::Result<Source> {
    if spec == "-" {
        let mut reader = BufReader::new(std::io::stdin());
        let format = match format {
            Some(f) => f,
            None => {
                let head = reader.fill_buf().map_err(|e| anyhow::anyhow!("cannot read the rows on stdin: {e}"))?;
                let first = head.iter().find(|b| !b.is_ascii_whitespace());
                if first == Some(&b'{') { RowFormat::Jsonl } else { RowFormat::Csv }
            }
        };
        return Ok(Source { name: "<stdin>".to_owned(), format, reader: Box::new(reader), batch: 1 });
    }
    let path = Path::new(spec);
    let by_name = match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("csv") => Some(RowFormat::Csv),
        Some("jsonl" | "ndjson") => Some(RowFormat::Jsonl),
        _ => None,
    };
    let Some(format) = format.or(by_name) else {
        anyhow::bail!(
            "cannot tell the format of `{spec}` from its name: name it `.csv`, `.jsonl` or `.ndjson`, or give \
             `--each-format csv|jsonl`"
        );
    };
    let file = std::fs::File::open(path).map_err(|e| anyhow::anyhow!("cannot read `{spec}`: {e}"))?;
    let batch = if file.metadata().is_ok_and(|m| m.is_file()) { BATCH } else { 1 };
    Ok(Source { name: spec.to_owned(), format, reader: Box::new(BufReader::with_capacity(64 * 1024, file)), batch })
}

/// About how many rows the file `spec` holds (its lines, less CSV's header), counted in one
/// cheap pass; `None` for stdin or an unreadable file. CSV values spanning lines make it an
/// overestimate, which only makes the ETA pessimistic.
pub fn count(spec: &str, format: RowFormat) -> Option<u64> {
    if spec == "-" {
        return None;
    }
    let mut file = std::fs::File::open(spec).ok()?;
    let mut buf = vec![0u8; 64 * 1024];
    let (mut lines, mut last) = (0u64, b'\n');
    loop {
        let n = file.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        last = buf[n - 1];
    }
    if last != b'\n' {
        lines += 1;
    }
    Some(if format == RowFormat::Csv { lines.saturating_sub(1) } else { lines })
}

/// The most rows handed over at once.
pub const BATCH: usize = 64;

/// Hands rows over the channel: a row goes at once while the channel has room (the driver waits
/// for rows), and rows gather into a batch of up to `max` while it has none, so that a busy
/// driver wakes the reading thread once a batch rather than once a row (a wake-up a row was
/// 2.5 % of a bulk run's CPU). Only a regular file's rows gather (`Source::batch`): a row
/// gathered from a pipe would wait, after the driver had room, for the next row to come.
pub struct Batches<'t> {
    tx: &'t mpsc::Sender<Vec<Item>>,
    batch: Vec<Item>,
    max: usize,
}

impl<'t> Batches<'t> {
    pub fn new(tx: &'t mpsc::Sender<Vec<Item>>, max: usize) -> Self {
        Batches { tx, batch: Vec::new(), max }
    }

    /// Adds a row; blocks while a full batch waits for room. False once the receiver is gone.
    fn push(&mut self, item: Item) -> bool {
        self.batch.push(item);
        if self.batch.len() < self.max && self.tx.capacity() == 0 {
            return true;
        }
        self.flush()
    }

    /// Hands over what was gathered, blocking while the channel is full.
    fn flush(&mut self) -> bool {
        if self.batch.is_empty() {
            return true;
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        self.tx.blocking_send(batch).is_ok()
    }
}

/// Reads every row of `source` into `tx`, blocking while the channel is full; stops early
/// when the receiver is gone. `inputs` are the flow's inputs, which a CSV header must name.
/// The rows read before a fatal error are handed over before it is answered.
pub fn read(source: Source, inputs: &[String], tx: &mpsc::Sender<Vec<Item>>) -> Result<(), String> {
    let mut batches = Batches::new(tx, source.batch);
    let done = match source.format {
        RowFormat::Csv => read_csv(source, inputs, &mut batches),
        RowFormat::Jsonl => read_jsonl(source, &mut batches),
    };
    batches.flush();
    done
}

fn read_csv(source: Source, inputs: &[String], tx: &mut Batches<'_>) -> Result<(), String> {
    let name = &source.name;
    let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(source.reader);
    let header: Vec<String> = match reader.byte_headers() {
        Ok(h) => h
            .iter()
            .map(|c| String::from_utf8(c.to_vec()).map(|s| s.trim().to_owned()))
            .collect::<Result<_, _>>()
            .map_err(|_| format!("{name}:1: the header row is not UTF-8: save the file as UTF-8"))?,
        Err(e) => return Err(format!("{name}:1: cannot read the header row: {e}")),
    };
    check_header(name, &header, inputs)?;
    let mut record = csv::ByteRecord::new();
    loop {
        let item = match reader.read_byte_record(&mut record) {
            Ok(false) => return Ok(()),
            Ok(true) => {
                let line = record.position().map_or(0, csv::Position::line);
                row_of(line, &header, &record)
            }
            Err(e) => match e.kind() {
                csv::ErrorKind::UnequalLengths { pos, expected_len, len } => Item::Bad {
                    line: pos.as_ref().map_or(0, csv::Position::line),
                    problem: format!("the row has {len} values and the header {expected_len} columns"),
                },
                _ => return Err(format!("{name}: cannot read the rows: {e}")),
            },
        };
        if !tx.push(item) {
            return Ok(());
        }
    }
}

/// A CSV header must name inputs of the flow, each once: anything else would make every row bad.
fn check_header(name: &str, header: &[String], inputs: &[String]) -> Result<(), String> {
    for (i, column) in header.iter().enumerate() {
        if column.is_empty() {
            return Err(format!("{name}:1: column {} has no name: name it after an input of the flow", i + 1));
        }
        if header[..i].contains(column) {
            return Err(format!("{name}:1: column `{column}` is named twice: keep one"));
        }
        if !inputs.contains(column) {
            let names = inputs.iter().map(String::as_str);
            let hint = match flowcat_engine::diag::did_you_mean(column, names.clone()) {
                Some(n) => format!("did you mean `{n}`?"),
                None => format!("the flow's inputs are {}", flowcat_engine::diag::one_of(names)),
            };
            return Err(format!("{name}:1: column `{column}` is not an input of the flow: {hint}"));
        }
    }
    Ok(())
}

/// A CSV record as inputs: text values, empty cells left out (not given).
fn row_of(line: u64, header: &[String], record: &csv::ByteRecord) -> Item {
    let mut inputs = Map::new();
    for (column, cell) in header.iter().zip(record.iter()) {
        let Ok(text) = std::str::from_utf8(cell) else {
            return Item::Bad { line, problem: format!("the value of column `{column}` is not UTF-8") };
        };
        if !text.is_empty() {
            inputs.insert(column.clone(), Value::String(text.to_owned()));
        }
    }
    Item::Row { line, inputs }
}

fn read_jsonl(source: Source, tx: &mut Batches<'_>) -> Result<(), String> {
    let mut reader = source.reader;
    let mut buf = Vec::new();
    let mut line = 0u64;
    loop {
        buf.clear();
        let n = (&mut reader)
            .take(MAX_LINE + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| format!("{}: cannot read the rows: {e}", source.name))?;
        if n == 0 {
            return Ok(());
        }
        line += 1;
        let item = if buf.len() as u64 > MAX_LINE && buf.last() != Some(&b'\n') {
            skip_line(&mut reader).map_err(|e| format!("{}: cannot read the rows: {e}", source.name))?;
            Item::Bad { line, problem: format!("the line is longer than {} KiB", MAX_LINE / 1024) }
        } else if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        } else {
            json_row(line, &buf)
        };
        if !tx.push(item) {
            return Ok(());
        }
    }
}

fn skip_line(reader: &mut dyn BufRead) -> std::io::Result<()> {
    let mut sink = Vec::new();
    loop {
        sink.clear();
        let n = reader.take(64 * 1024).read_until(b'\n', &mut sink)?;
        if n == 0 || sink.last() == Some(&b'\n') {
            return Ok(());
        }
    }
}

/// A JSON line as inputs: an object; null values left out (not given).
fn json_row(line: u64, text: &[u8]) -> Item {
    match serde_json::from_slice::<Value>(text) {
        Ok(Value::Object(m)) => Item::Row { line, inputs: m.into_iter().filter(|(_, v)| !v.is_null()).collect() },
        Ok(other) => Item::Bad { line, problem: format!("expected a JSON object of inputs, got {}", kind(&other)) },
        Err(e) => Item::Bad { line, problem: format!("not valid JSON: {e}") },
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(text: &'static str, format: RowFormat, inputs: &[&str]) -> (Vec<Item>, Result<(), String>) {
        let source = Source { name: "rows".to_owned(), format, reader: Box::new(text.as_bytes()), batch: BATCH };
        let (tx, mut rx) = mpsc::channel(64);
        let inputs: Vec<String> = inputs.iter().map(|s| (*s).to_owned()).collect();
        let done = read(source, &inputs, &tx);
        drop(tx);
        let mut out = Vec::new();
        while let Ok(batch) = rx.try_recv() {
            out.extend(batch);
        }
        (out, done)
    }

    fn row(line: u64) -> Item {
        Item::Row { line, inputs: Map::new() }
    }

    fn lines(batch: &[Item]) -> Vec<u64> {
        batch
            .iter()
            .map(|i| {
                let (Item::Row { line, .. } | Item::Bad { line, .. }) = i;
                *line
            })
            .collect()
    }

    #[test]
    fn rows_go_one_by_one_while_the_driver_waits_and_in_batches_while_it_is_busy() {
        let (tx, mut rx) = mpsc::channel(1);
        let mut batches = Batches::new(&tx, BATCH);
        // The channel has room: the first row goes alone, at once.
        assert!(batches.push(row(2)));
        // It has none now: the next rows gather, without blocking, up to a batch.
        for line in 3..2 + BATCH as u64 {
            assert!(batches.push(row(line)));
        }
        assert_eq!(lines(&rx.try_recv().expect("the first row")), vec![2]);
        assert!(rx.try_recv().is_err(), "the others are gathered, not sent");
        // Room again: the next row takes the gathered ones along, in order.
        assert!(batches.push(row(2 + BATCH as u64)));
        let batch = rx.try_recv().expect("a batch");
        assert_eq!(lines(&batch), (3..=2 + BATCH as u64).collect::<Vec<_>>());
        // A last partial batch goes with the flush at the end of the file.
        assert!(batches.push(row(100)));
        assert!(batches.flush());
        assert_eq!(lines(&rx.try_recv().expect("the last row")), vec![100]);
        drop(rx);
        assert!(!batches.push(row(101)), "the driver is gone");
    }

    #[test]
    fn csv_rows_keep_their_lines_and_leave_empty_cells_out() {
        let (items, done) = items("a,b\n1,\"x\ny\"\n2,\n3\n", RowFormat::Csv, &["a", "b"]);
        done.unwrap();
        let shown: Vec<String> = items
            .iter()
            .map(|i| match i {
                Item::Row { line, inputs } => format!("{line} {}", Value::Object(inputs.clone())),
                Item::Bad { line, problem } => format!("{line} bad: {problem}"),
            })
            .collect();
        assert_eq!(
            shown,
            [r#"2 {"a":"1","b":"x\ny"}"#, r#"4 {"a":"2"}"#, "5 bad: the row has 1 values and the header 2 columns"]
        );
    }

    #[test]
    fn a_csv_header_naming_no_input_is_fatal_with_a_hint() {
        let (items, done) = items("usernme\nx\n", RowFormat::Csv, &["username"]);
        assert!(items.is_empty());
        assert_eq!(done.unwrap_err(), "rows:1: column `usernme` is not an input of the flow: did you mean `username`?");
    }

    #[test]
    fn json_lines_skip_blank_lines_and_report_bad_ones() {
        let (items, done) = items("{\"a\":1}\n\n[1]\n{oops\n{\"a\":null}", RowFormat::Jsonl, &[]);
        done.unwrap();
        let shown: Vec<String> = items
            .iter()
            .map(|i| match i {
                Item::Row { line, inputs } => format!("{line} {}", Value::Object(inputs.clone())),
                Item::Bad { line, problem } => format!("{line} bad: {}", problem.split(':').next().unwrap_or("")),
            })
            .collect();
        assert_eq!(
            shown,
            [r#"1 {"a":1}"#, "3 bad: expected a JSON object of inputs, got a list", "4 bad: not valid JSON", "5 {}"]
        );
    }

    #[test]
    fn only_a_regular_files_rows_gather() {
        let dir = std::env::temp_dir().join(format!("flowcat-rows-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("rows.csv");
        std::fs::write(&file, "a\n1\n").unwrap();
        assert_eq!(open(file.to_str().unwrap(), None).unwrap().batch, BATCH);
        // Stdin (a pipe, or a person typing): each row goes as soon as the driver has room.
        assert_eq!(open("-", Some(RowFormat::Csv)).unwrap().batch, 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_batch_of_one_hands_each_row_over_alone() {
        let (tx, mut rx) = mpsc::channel(1);
        let reader = std::thread::spawn(move || {
            let mut batches = Batches::new(&tx, 1);
            (2..5).all(|line| batches.push(row(line))) && batches.flush()
        });
        let mut got = Vec::new();
        while let Some(batch) = rx.blocking_recv() {
            got.push(lines(&batch));
        }
        assert!(reader.join().unwrap());
        assert_eq!(got, vec![vec![2], vec![3], vec![4]]);
    }
}
