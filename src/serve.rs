//! `flowcat serve --config serve.yaml`: loads the catalog (every built-in and local flow), the
//! integrations file and the journal, resumes the interrupted runs, and serves the API of the
//! `flowcat-serve` crate until SIGTERM or Ctrl-C. `flowcat serve hash-token` makes a token's hash.

use std::io::{BufRead as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, anyhow, bail};
use flowcat_nodes::REGISTRY;

use crate::flows::Flows;

/// The flags of `flowcat serve`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ServeArgs {
    #[command(subcommand)]
    pub command: Option<ServeCommand>,
    /// The serve config file: where to listen, the integrations file, the tokens, the limits
    /// (docs/serve.md).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// `text` lines, or `json`: one JSON object a line, with `run_id` and `flow` on every line
    /// about a run.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, value_name = "FORMAT")]
    pub log_format: LogFormat,
}

/// `--log-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, clap::Subcommand)]
pub enum ServeCommand {
    /// Read a token on stdin and print its SHA-256 (hex), for the `sha256:` of a token in the
    /// serve config: `head -c 32 /dev/urandom | base64 | tee token.txt | flowcat serve hash-token`.
    HashToken,
}

/// The shortest token accepted by `hash-token`: a guessable token is no protection.
const MIN_TOKEN: usize = 24;

pub fn serve(
    flows: &Flows,
    args: ServeArgs,
    state_dir: Option<PathBuf>,
    filter: Option<tracing_subscriber::EnvFilter>,
) -> anyhow::Result<ExitCode> {
    if let Some(ServeCommand::HashToken) = args.command {
        return hash_token();
    }
    let Some(path) = args.config else {
        bail!("`flowcat serve` needs its config: `flowcat serve --config serve.yaml` (docs/serve.md has an example)");
    };
    let config = flowcat_serve::Config::load(&path)?;
    let env = |name: &str| std::env::var(name).ok();
    let traces = flowcat_serve::telemetry::Settings::resolve(config.telemetry.as_ref(), &env)
        .map_err(|e| anyhow!("{e} (docs/serve.md, \"Traces\")"))?;
    let (layer, mut telemetry) = match traces {
        Some(settings) => {
            let (layer, telemetry) = flowcat_serve::telemetry::pipeline(settings).map_err(|e| anyhow!(e))?;
            (Some(layer), Some(telemetry))
        }
        None => (None, None),
    };
    if let Some(filter) = filter {
        crate::telemetry::init_logs(args.log_format == LogFormat::Json, filter, layer);
    }
    if let Some(t) = &telemetry {
        let url = &t.settings().traces_url;
        tracing::info!(target: "flowcat_serve", endpoint = %url, "exporting traces over OTLP/HTTP (JSON)");
        if url.scheme() == "http" && !flowcat_nodes::integrations::is_loopback(url.host_str().unwrap_or_default()) {
            tracing::warn!(target: "flowcat_serve", endpoint = %url, "traces go over plain http to another host");
        }
    }
    let mut library = flows.library(&[])?;
    let catalog = library.load(&REGISTRY)?;
    // Through the log, so that `--log-format json` stays one JSON object a line.
    for shadow in library.shadows() {
        let (flow, file, hidden) = (&shadow.id, &shadow.path, &shadow.hidden);
        tracing::info!(target: "flowcat_serve", %flow, %file, %hidden, "a local flow replaces a built-in one");
    }
    let broken = catalog.entries.iter().filter(|e| e.flow.is_none()).count();
    if broken > 0 {
        let note = "flow files with errors are not served: run `flowcat validate`";
        tracing::warn!(target: "flowcat_serve", broken, "{note}");
    }
    let integrations = load_integrations(&config.integrations)?;
    // `--store` (or FLOWCAT_STORE) wins over the config's `store:`; without either, the SQLite
    // journal of the state folder.
    let store = match (crate::store::url(), &config.store) {
        (None, Some(url)) => crate::store::open_postgres(url.expose())?,
        _ => crate::run::open_journal(state_dir)?,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        if let Some(t) = &mut telemetry {
            t.start();
        }
        let listen = config.listen;
        let tls = match &config.tls {
            Some(t) => Some(flowcat_serve::tls::acceptor(t).map_err(|e| anyhow!("{}: {e}", path.display()))?),
            None => None,
        };
        let app = flowcat_serve::App::new(config, catalog, integrations, store);
        let resumed = app.runs.resume_unfinished()?;
        if !resumed.is_empty() {
            tracing::info!(target: "flowcat_serve", count = resumed.len(), "resumed the interrupted runs of the journal");
        }
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen} (`listen:` in {})", path.display()))?;
        let addr = listener.local_addr()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        println!("flowcat serve: listening on {scheme}://{addr}");
        std::io::stdout().flush()?;
        let (tx, rx) = tokio::sync::watch::channel(0u32);
        tokio::spawn(count_signals(tx));
        match tls {
            Some(acceptor) => {
                let listener = flowcat_serve::tls::TlsListener::new(listener, acceptor)?;
                flowcat_serve::serve(listener, app, rx).await?
            }
            None => flowcat_serve::serve(listener, app, rx).await?,
        }
        // The spans of the last runs: sent before the process ends, within the export timeout.
        if let Some(t) = telemetry {
            let within = t.settings().timeout;
            if tokio::time::timeout(within, t.shutdown()).await.is_err() {
                tracing::warn!(target: "flowcat_serve", "the last spans were not all exported within the export timeout");
            }
        }
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The integrations file, its warnings through the log (`run::load_integrations` prints them).
fn load_integrations(path: &std::path::Path) -> anyhow::Result<flowcat_nodes::integrations::Integrations> {
    if !path.exists() {
        bail!("no integrations file at `{}` (`integrations:` in the serve config)", path.display());
    }
    let env = |name: &str| std::env::var(name).ok();
    let file = flowcat_nodes::integrations::load(path, &env).map_err(|e| anyhow!(e.messages().join("\n")))?;
    for w in &file.warnings {
        tracing::warn!(target: "flowcat_serve", file = %path.display(), "{w}");
    }
    Ok(file)
}

/// Counts SIGINT and SIGTERM: the first starts the shutdown, the next ones hurry it. The
/// handlers are installed when this is called, not when the task first runs (as
/// `run::watch_signals`).
fn count_signals(tx: tokio::sync::watch::Sender<u32>) -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let streams = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()));
    async move {
        let (Ok(mut int), Ok(mut term)) = streams else {
            return;
        };
        loop {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            tx.send_modify(|n| *n += 1);
        }
    }
}

fn hash_token() -> anyhow::Result<ExitCode> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("cannot read the token on stdin")?;
    let token = line.trim_end_matches(['\n', '\r']);
    if token.chars().count() < MIN_TOKEN || token.trim() != token {
        return Err(anyhow!(
            "the token on stdin must be at least {MIN_TOKEN} characters without surrounding spaces; make a random \
             one with `head -c 32 /dev/urandom | base64`"
        ));
    }
    println!("{}", flowcat_serve::auth::hex(&flowcat_serve::auth::hash(token)));
    Ok(ExitCode::SUCCESS)
}
