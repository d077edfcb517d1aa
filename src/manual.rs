//! `flowcat completions SHELL` and `flowcat man`: both generated from the clap `Command` that
//! parses the arguments, so they cannot drift from it.

use std::process::ExitCode;

use clap::CommandFactory as _;

use crate::Cli;

/// Prints the completion script for `shell` on stdout.
pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<ExitCode> {
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "flowcat", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

/// Prints a man page (roff) on stdout: `flowcat`'s (`flowcat man > flowcat.1`), or with
/// `subcommand`, that subcommand's with all its options (`flowcat man run > flowcat-run.1`).
pub fn man(subcommand: Option<&str>) -> anyhow::Result<ExitCode> {
    let top = Cli::command();
    let page = match subcommand {
        None => top,
        Some(name) => {
            let Some(sub) = top.find_subcommand(name) else {
                let names: Vec<&str> = top.get_subcommands().map(|s| s.get_name()).collect();
                anyhow::bail!("no subcommand `{name}`; expected {}", flowcat_engine::diag::one_of(names));
            };
            let version = top.get_version().unwrap_or_default().to_owned();
            sub.clone().name(format!("flowcat-{name}")).version(version)
        }
    };
    let mut out = Vec::new();
    clap_mangen::Man::new(page).render(&mut out)?;
    std::io::Write::write_all(&mut std::io::stdout(), &out)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every subcommand, argument and option says what it is for in `--help`.
    #[test]
    fn every_option_has_help_text() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            if command.get_about().is_none() && !path.is_empty() {
                missing.push(format!("subcommand `{path}`"));
            }
            for arg in command.get_arguments() {
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                if !builtin && !arg.is_hide_set() && arg.get_help().is_none() {
                    missing.push(format!("`{path}` argument `{}`", arg.get_id()));
                }
            }
            for sub in command.get_subcommands() {
                walk(sub, format!("{path} {}", sub.get_name()).trim(), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "", &mut missing);
        assert!(missing.is_empty(), "no help text:\n{}", missing.join("\n"));
    }

    #[test]
    fn the_command_tree_is_consistent() {
        Cli::command().debug_assert();
    }
}
