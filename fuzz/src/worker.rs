//! The worker process: reads cases from stdin, runs each through the passes a hostile file
//! reaches (loading, diagnostics, rendering, drawing), and answers with its peak memory.
//!
//! It runs cases on a thread with a 2 MiB stack, the size of a test or tokio worker thread, so
//! that recursion that would overflow there overflows here. A panic is caught and reported;
//! an abort (a stack overflow) ends the process, which the supervisor sees.

use std::io::{BufRead, BufReader, Write};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use flowcat_engine::diag::Source;
use flowcat_engine::render::{self, Escape, Values};
use flowcat_engine::{Catalog, Flow, draw};
use flowcat_nodes::REGISTRY;
use serde_json::{Value, json};

/// One input: the flow files of a catalog, by path.
pub type Case = Vec<(String, String)>;

/// Writes `case` in the framing `read_case` reads.
pub fn write_case(out: &mut impl Write, case: &Case) -> std::io::Result<()> {
    writeln!(out, "{}", case.len())?;
    for (path, text) in case {
        writeln!(out, "{} {}", path.len(), text.len())?;
        out.write_all(path.as_bytes())?;
        out.write_all(text.as_bytes())?;
    }
    out.flush()
}

fn read_case(input: &mut impl BufRead) -> std::io::Result<Option<Case>> {
    let mut line = String::new();
    if input.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let n: usize = line.trim().parse().map_err(std::io::Error::other)?;
    let mut case = Vec::with_capacity(n);
    for _ in 0..n {
        line.clear();
        input.read_line(&mut line)?;
        let mut lens = line.split_whitespace().map(str::parse::<usize>);
        let (Some(Ok(p)), Some(Ok(t))) = (lens.next(), lens.next()) else {
            return Err(std::io::Error::other("bad frame"));
        };
        let mut buf = vec![0; p + t];
        input.read_exact(&mut buf)?;
        let text = buf.split_off(p);
        case.push((String::from_utf8_lossy(&buf).into_owned(), String::from_utf8_lossy(&text).into_owned()));
    }
    Ok(Some(case))
}

/// The worker's loop. Answers one line per case: `ok <peak KiB>` or `panic <message>`.
pub fn serve() -> std::io::Result<()> {
    std::panic::set_hook(Box::new(|_| {}));
    let worker = std::thread::Builder::new().stack_size(2 * 1024 * 1024).spawn(|| -> std::io::Result<()> {
        let mut input = BufReader::new(std::io::stdin().lock());
        let mut output = std::io::stdout().lock();
        while let Some(case) = read_case(&mut input)? {
            reset_peak_memory();
            let answer = match std::panic::catch_unwind(AssertUnwindSafe(|| exercise(&case))) {
                Ok(()) => format!("ok {}", peak_memory_kib()),
                Err(e) => {
                    let msg =
                        e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()));
                    format!("panic {}", msg.unwrap_or_default().replace('\n', " "))
                }
            };
            writeln!(output, "{answer}")?;
            output.flush()?;
        }
        Ok(())
    })?;
    worker.join().unwrap_or_else(|_| Err(std::io::Error::other("worker thread died")))
}

/// Everything a hostile file reaches: loading, every diagnostic rendered three ways, every
/// valid flow drawn three ways (expanded and not), and its templates rendered.
pub fn exercise(case: &Case) {
    let sources = case.iter().map(|(p, t)| Arc::new(Source { path: p.clone(), text: t.clone() })).collect();
    let catalog = Catalog::load(sources, &REGISTRY);
    for d in catalog.diagnostics() {
        std::hint::black_box((d.render(false), d.render(true), d.to_json()));
    }
    for flow in catalog.flows() {
        for expand in [None, Some(&catalog)] {
            std::hint::black_box((draw::dot(flow, expand), draw::mermaid(flow, expand), draw::json(flow, expand)));
        }
        render_all(flow);
    }
}

/// Renders the templates the engine holds (conditions, var defaults, outputs) against values
/// of every JSON type, a large array among them.
fn render_all(flow: &Flow) {
    static POOL: std::sync::OnceLock<Pool> = std::sync::OnceLock::new();
    let values = POOL.get_or_init(Pool::new);
    let when = flow.plan.nodes.iter().filter_map(|n| n.when.as_ref());
    let outputs = flow.outputs.iter().map(|o| &o.value);
    for t in when.chain(outputs) {
        let _ = render::render(t, values, Escape::None);
        let _ = render::render(t, values, Escape::Segment);
    }
    let defaults = flow.vars.iter().filter_map(|v| v.default.as_ref());
    for v in defaults.chain(flow.outputs.iter().filter_map(|o| o.default.as_ref())) {
        let _ = render::render_value(v, values);
    }
}

/// Values for any path, picked by the path's length and last name.
struct Pool(Vec<Value>);

impl Pool {
    fn new() -> Self {
        let big: Vec<Value> = (0..20_000).map(|i| json!({ "id": i, "name": format!("u{i}") })).collect();
        Pool(vec![json!("x"), json!(3), json!(true), Value::Null, json!([1, 2, 3]), json!({"a": {"b": 1}}), json!(big)])
    }
}

impl Values for Pool {
    fn lookup(&self, path: &[String]) -> Option<&Value> {
        let salt = path.last().map_or(0, |s| s.len());
        // Some paths are missing: rendering must report them, not fail.
        if (path.len() + salt) % 9 == 8 {
            return None;
        }
        self.0.get((path.len() + salt) % self.0.len())
    }
}

/// Resets the kernel's record of this process's peak resident memory (Linux).
fn reset_peak_memory() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// This process's peak resident memory since the last reset, in KiB (0 when unknown).
pub fn peak_memory_kib() -> u64 {
    proc_status_kib("/proc/self/status", "VmHWM:")
}

/// A `kB` field of a `/proc/<pid>/status` file.
pub fn proc_status_kib(path: &str, field: &str) -> u64 {
    let status = std::fs::read_to_string(path).unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap_or_default();
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(0)
}
