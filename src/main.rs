//! The `flowcat` binary: validate, draw, list and run flows.
//!
//! Exit codes: 0 clean, 1 problems found (or the flow failed), 2 usage errors: the arguments,
//! an unknown flow, a catalog that cannot be read.

mod commands;
mod demo;
mod each;
mod flows;
mod github;
mod init;
mod live;
mod manual;
mod plan;
mod run;
mod runs;
mod serve;
mod signal;
mod store;
mod telemetry;
mod test;
mod ui;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgAction, Parser, Subcommand, ValueEnum};

use ui::{ColorChoice, Format, ValidateFormat};

/// mimalloc: with two tokio workers, glibc malloc's arena locks were a measurable share of a
/// REST node's cost (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "flowcat", version, about = "Declarative workflows for Duo Security administration")]
struct Cli {
    /// A folder of local flows, added to the built-in ones [default: $FLOWCAT_CATALOG, or the
    /// nearest `flows/` in this folder or one above it].
    #[arg(long, global = true, value_name = "DIR")]
    catalog: Option<PathBuf>,
    /// Print only results, warnings and errors: no live view of a run, no summary lines, no
    /// story in `demo`.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// More detail: `-v` shows every node of a run as it finishes, also inside subflows, and
    /// skipped nodes with the reason, and traces each run's end and each failure on stderr;
    /// `-vv` traces every node (as `RUST_LOG=flowcat_engine=debug`; `RUST_LOG`, when set, wins).
    #[arg(short, long, global = true, action = ArgAction::Count)]
    verbose: u8,
    /// When to colour diagnostics; `auto` colours a terminal unless `NO_COLOR` is set and not
    /// empty (`CLICOLOR_FORCE` forces it).
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    color: ColorChoice,
    /// The folder of the run journal [default: $FLOWCAT_STATE_DIR, else $XDG_STATE_HOME/flowcat,
    /// else ~/.local/state/flowcat].
    #[arg(long, global = true, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Keep runs in a shared Postgres database instead of the state folder's journal:
    /// `postgres://USER[:PASSWORD]@HOST:PORT/DATABASE` (replicas of `flowcat serve` share one;
    /// docs/serve.md). [env: FLOWCAT_STORE]
    #[arg(
        long,
        global = true,
        value_name = "URL",
        conflicts_with = "state_dir",
        hide_env_values = true,
        env = "FLOWCAT_STORE"
    )]
    store: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check flow files and report every problem with its line and column.
    Validate {
        /// Flow files or folders, checked against the other flows (default: every built-in and
        /// local flow); `-` reads a flow from stdin.
        paths: Vec<PathBuf>,
        /// Treat warnings as errors (exit 1).
        #[arg(long)]
        deny_warnings: bool,
        /// `human` on stderr, `json` on stdout, or `github`: GitHub Actions annotations on stdout.
        #[arg(long, value_enum, default_value_t = ValidateFormat::Human)]
        format: ValidateFormat,
        /// Keep checking: again each time a flow file (of the paths, or the local folder) is
        /// saved, added or removed, until Ctrl-C.
        #[arg(long)]
        watch: bool,
    },
    /// Draw a flow's graph.
    Graph {
        /// A flow id from the catalog, or the path of a flow file; `-` reads it from stdin.
        flow: String,
        /// The drawing: Graphviz `dot`, `mermaid`, or the graph as `json`.
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
        /// Draw each subflow's nodes inside the node that calls it.
        #[arg(long)]
        expand_subflows: bool,
        /// Draw journaled run ID on the graph: each node's status, duration and attempts (DOT and
        /// Mermaid).
        #[arg(long, value_name = "ID")]
        run: Option<String>,
    },
    /// List every flow, built-in and local, with its inputs, outputs and integrations.
    List {
        /// `human` (also `text`) or `json`.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Print the JSON Schema (draft-07) of the flow format, for editors.
    Schema,
    /// Run the test cases beside flows (`*.test.yaml`): Duo's answers mocked, in the process, on
    /// a paused clock; a result per case and the nodes and branches they ran. Exit 1 when a case
    /// fails or a test file has errors.
    Test {
        /// Test files or folders searched for `*.test.yaml` [default: the local flows folder].
        paths: Vec<std::path::PathBuf>,
        /// `human`, `json`, or `junit` (JUnit XML, for CI), on stdout.
        #[arg(long, value_enum, default_value_t = test::TestFormat::Human)]
        format: test::TestFormat,
    },
    /// Start a Duo simulator and onboard a sample employee with it: no configuration needed.
    Demo,
    /// Run a flow: inputs and integrations are checked first, then its nodes run.
    Run(run::RunArgs),
    /// Plan a run: send the flow's reads, show the writes it would send, send none of them
    /// (docs/cli.md, "flowcat plan").
    Plan(plan::PlanArgs),
    /// Continue a journaled run that was stopped or crashed: finished steps are not repeated,
    /// writes in doubt are checked first.
    Resume(run::ResumeArgs),
    /// Deliver a signal (an approval, a callback) to a run waiting for it in a `wait_for` node.
    /// Exit 0 when delivered, 1 when refused (unknown run, finished, not awaited, wrong payload).
    Signal(signal::SignalArgs),
    /// Start a project: an integrations file, a `flows/` folder with one flow, what to do next.
    Init {
        /// The project folder [default: the current folder].
        dir: Option<PathBuf>,
    },
    /// Work with the integrations file.
    #[command(subcommand)]
    Integrations(IntegrationsCommand),
    /// The journal's runs: list them, show one with the writes it sent, prune old ones.
    #[command(subcommand)]
    Runs(runs::RunsCommand),
    /// Serve the catalog over HTTP: start runs and follow them, with bearer tokens, limits,
    /// metrics and a graceful shutdown (docs/serve.md).
    Serve(serve::ServeArgs),
    /// Serve the Duo API simulator on loopback, so that flows run offline.
    Sim(flowcat_sim::cli::SimArgs),
    /// Print a shell completion script: `flowcat completions bash > /etc/bash_completion.d/flowcat`.
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print a man page (roff): `flowcat man | man -l -`, or one subcommand's: `flowcat man run`.
    Man {
        /// The subcommand whose page to print (default: flowcat's own).
        subcommand: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum IntegrationsCommand {
    /// Call each integration (or NAME) with a harmless request: do its keys work?
    Check {
        /// The integration to check (default: every one in the file).
        name: Option<String>,
        /// The integrations file [default: $FLOWCAT_INTEGRATIONS or ./integrations.yaml].
        #[arg(long, value_name = "FILE")]
        integrations: Option<PathBuf>,
        /// `human` or `json` (a list of reports).
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum GraphFormat {
    Dot,
    Mermaid,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let color = ui::color_enabled(cli.color, terminal, |name| std::env::var(name).ok());
    ui::init(ui::Ui { color, quiet: cli.quiet, verbose: cli.verbose > 0 });
    if let Err(e) = store::set_url(cli.store.clone()) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    // `RUST_LOG=flowcat_engine=debug` (or `-vv`) shows a span per run and per node on stderr.
    // `flowcat serve` logs its requests and runs at `info` unless told otherwise.
    let serving = matches!(&cli.command, Command::Serve(a) if a.command.is_none());
    let default = if serving && cli.verbose == 0 { ui::SERVE_FILTER } else { ui::tracing_filter(cli.verbose) };
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.is_empty() => tracing_subscriber::EnvFilter::new(spec),
        _ => tracing_subscriber::EnvFilter::new(default),
    };
    // `flowcat serve` installs its subscriber once its config is read: it may add trace export.
    let mut serve_filter = None;
    if serving {
        serve_filter = Some(filter);
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(false).init();
    }
    let catalog = flows::Flows::new(cli.catalog);
    let result = match cli.command {
        Command::Validate { paths, deny_warnings, format, watch: false } => {
            commands::validate(&catalog, paths, deny_warnings, format)
        }
        Command::Validate { paths, deny_warnings, format, watch: true } => {
            commands::watch(&catalog, paths, deny_warnings, format)
        }
        Command::Graph { flow, format, expand_subflows, run } => {
            let format = match format {
                GraphFormat::Dot => commands::Drawing::Dot,
                GraphFormat::Mermaid => commands::Drawing::Mermaid,
                GraphFormat::Json => commands::Drawing::Json,
            };
            match run {
                Some(id) => commands::graph_run(&catalog, &flow, format, expand_subflows, &id, cli.state_dir),
                None => commands::graph(&catalog, &flow, format, expand_subflows),
            }
        }
        Command::List { format } => commands::list(&catalog, format == Format::Json),
        Command::Schema => commands::schema(),
        Command::Test { paths, format } => test::test(&catalog, paths, format),
        Command::Demo => demo::demo(&catalog),
        Command::Init { dir } => init::init(dir),
        Command::Run(args) => commands::run(&catalog, &args, cli.state_dir),
        Command::Plan(args) => plan::plan(&catalog, &args),
        Command::Resume(args) => commands::resume(&catalog, &args, cli.state_dir),
        Command::Signal(args) => signal::signal(&args, cli.state_dir),
        Command::Integrations(IntegrationsCommand::Check { name, integrations, format }) => {
            commands::check(integrations, name.as_deref(), format == Format::Json)
        }
        Command::Runs(command) => runs::runs(&catalog, command, cli.state_dir),
        Command::Serve(args) => serve::serve(&catalog, args, cli.state_dir, serve_filter),
        Command::Sim(args) => commands::sim(args),
        Command::Completions { shell } => manual::completions(shell),
        Command::Man { subcommand } => manual::man(subcommand.as_deref()),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
