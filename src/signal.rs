//! `flowcat signal RUN_ID NAME --data JSON`: delivers a signal (an approval, a callback) to a
//! run parked on a `wait_for` node, through the journal. The run wakes at once when this
//! process holds it, within a second when another process does, and finds the signal when it is
//! resumed when none does.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use flowcat_engine::journal::{Delivery, MAX_SIGNAL_BYTES};
use serde_json::Value;

/// The flags of `flowcat signal`.
#[derive(Debug, Clone, clap::Args)]
pub struct SignalArgs {
    /// The run's id, as `flowcat run` printed it or `flowcat runs list --status waiting` shows it.
    pub id: String,
    /// The signal's name, as the flow's `wait_for` node declares it (`signal:`).
    pub name: String,
    /// The payload, a JSON object with the fields the `wait_for` declares; `@FILE` reads it
    /// from a file, `@-` from stdin [default: `{}`].
    #[arg(short = 'd', long, value_name = "JSON|@FILE")]
    pub data: Option<String>,
}

/// Exit 0 when delivered, 1 when refused (the reason on stderr), 2 for a usage error.
pub fn signal(args: &SignalArgs, state_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let payload = payload(args.data.as_deref())?;
    let place = crate::store::place(state_dir.clone());
    let Some(journal) = crate::store::existing(state_dir)? else {
        eprintln!(
            "error: no run journal at `{place}`: no run `{}` to signal (give `--state-dir` if the run was journaled \
             elsewhere, or `--store` if it is kept in a shared database)",
            args.id
        );
        return Ok(ExitCode::FAILURE);
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let delivery = runtime.block_on(journal.signal(&args.id, &args.name, &payload))?;
    match delivery.refusal(&args.id, &args.name) {
        None => {
            debug_assert_eq!(delivery, Delivery::Delivered);
            eprintln!("signal `{}` delivered to run `{}`", args.name, args.id);
            Ok(ExitCode::SUCCESS)
        }
        Some(why) => {
            eprintln!("error: {why}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The payload `--data` gives: inline JSON, `@FILE`, `@-` (stdin); bounded in size.
fn payload(data: Option<&str>) -> anyhow::Result<Value> {
    let (text, from) = match data {
        None => return Ok(Value::Object(Default::default())),
        Some("@-") => {
            let mut text = String::new();
            std::io::stdin()
                .take(MAX_SIGNAL_BYTES as u64 + 1)
                .read_to_string(&mut text)
                .context("reading the payload from stdin")?;
            (text, "stdin".to_owned())
        }
        Some(data) => match data.strip_prefix('@') {
            Some(path) => {
                let meta = std::fs::metadata(path).with_context(|| format!("reading the payload file `{path}`"))?;
                if meta.len() > MAX_SIGNAL_BYTES as u64 {
                    bail!("the payload file `{path}` is {} bytes; a payload is at most {MAX_SIGNAL_BYTES}", meta.len());
                }
                let text =
                    std::fs::read_to_string(path).with_context(|| format!("reading the payload file `{path}`"))?;
                (text, format!("`{path}`"))
            }
            None => (data.to_owned(), "--data".to_owned()),
        },
    };
    if text.len() > MAX_SIGNAL_BYTES {
        bail!("the payload from {from} is more than {MAX_SIGNAL_BYTES} bytes, the most a signal carries");
    }
    let value: Value = serde_json::from_str(&text).with_context(|| {
        format!("the payload from {from} is not JSON: write an object, e.g. --data '{{\"approved\": true}}'")
    })?;
    if !value.is_object() {
        bail!("the payload from {from} must be a JSON object (`{{…}}`), with the fields the `wait_for` declares");
    }
    Ok(value)
}
