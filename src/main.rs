//! The `flowcat` binary: validate, draw, list and run flows.
//!
//! Exit codes: 0 clean, 1 problems found (or the flow failed), 2 usage errors: the arguments,
//! an unknown flow, a catalog that cannot be read.

mod commands;
mod demo;
mod flows;
mod init;
mod live;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

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
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check flow files and report every problem with its line and column.
    Validate {
        /// Flow files or folders, checked against the other flows (default: every built-in and
        /// local flow).
        paths: Vec<PathBuf>,
        /// Treat warnings as errors (exit 1).
        #[arg(long)]
        deny_warnings: bool,
        #[arg(long, value_enum, default_value_t = ReportFormat::Human)]
        format: ReportFormat,
    },
    /// Draw a flow's graph.
    Graph {
        /// A flow id from the catalog, or the path of a flow file.
        flow: String,
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
        /// Draw each subflow's nodes inside the node that calls it.
        #[arg(long)]
        expand_subflows: bool,
    },
    /// List every flow, built-in and local, with its inputs, outputs and integrations.
    List {
        #[arg(long, value_enum, default_value_t = ListFormat::Text)]
        format: ListFormat,
    },
    /// Print the JSON Schema (draft-07) of the flow format, for editors.
    Schema,
    /// Start a Duo simulator and onboard a sample employee with it: no configuration needed.
    Demo,
    /// Run a flow: inputs and integrations are checked first, then its nodes run.
    Run(run::RunArgs),
    /// Start a project: an integrations file, a `flows/` folder with one flow, what to do next.
    Init {
        /// The project folder [default: the current folder].
        dir: Option<PathBuf>,
    },
    /// Work with the integrations file.
    #[command(subcommand)]
    Integrations(IntegrationsCommand),
    /// Serve the Duo API simulator on loopback, so that flows run offline.
    Sim(flowcat_sim::cli::SimArgs),
}

#[derive(Debug, Subcommand)]
enum IntegrationsCommand {
    /// Call each integration (or NAME) with a harmless request: do its keys work?
    Check {
        name: Option<String>,
        /// The integrations file [default: $FLOWCAT_INTEGRATIONS or ./integrations.yaml].
        #[arg(long, value_name = "FILE")]
        integrations: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ReportFormat {
    Human,
    Json,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum GraphFormat {
    Dot,
    Mermaid,
    Json,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ListFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    // `RUST_LOG=flowcat_engine=debug` shows a span per run and per node on stderr.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let cli = Cli::parse();
    let catalog = flows::Flows::new(cli.catalog);
    let result = match cli.command {
        Command::Validate { paths, deny_warnings, format } => {
            commands::validate(&catalog, paths, deny_warnings, matches!(format, ReportFormat::Json))
        }
        Command::Graph { flow, format, expand_subflows } => {
            let format = match format {
                GraphFormat::Dot => commands::Drawing::Dot,
                GraphFormat::Mermaid => commands::Drawing::Mermaid,
                GraphFormat::Json => commands::Drawing::Json,
            };
            commands::graph(&catalog, &flow, format, expand_subflows)
        }
        Command::List { format } => commands::list(&catalog, matches!(format, ListFormat::Json)),
        Command::Schema => commands::schema(),
        Command::Demo => demo::demo(&catalog),
        Command::Init { dir } => init::init(dir),
        Command::Run(args) => commands::run(&catalog, &args),
        Command::Integrations(IntegrationsCommand::Check { name, integrations }) => {
            commands::check(integrations, name.as_deref())
        }
        Command::Sim(args) => commands::sim(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
