//! How the binary talks to the person running it: colour (`--color`, `NO_COLOR`,
//! `CLICOLOR_FORCE`), `-q` and `-v`, and the output formats shared by several commands.
//!
//! The settings are decided once in `main` and kept in a process-wide cell, so that the commands
//! (and the renderers they call) ask for them instead of threading one more argument through
//! every signature.

use std::sync::OnceLock;

use clap::ValueEnum;

/// `--color`: when diagnostics are painted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// Paint when stderr is a terminal and `NO_COLOR` is not set (or `CLICOLOR_FORCE` is).
    #[default]
    Auto,
    /// Always paint, even into a pipe or a file.
    Always,
    /// Never paint.
    Never,
}

/// `--format` for commands whose output is for a person or for a program.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Text for a person (`text` is accepted too).
    #[default]
    #[value(alias = "text")]
    Human,
    /// One JSON document on stdout, for programs.
    Json,
}

/// `validate --format`: also GitHub Actions annotations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ValidateFormat {
    /// Compiler-style diagnostics with the source line and a caret, on stderr.
    #[default]
    Human,
    /// One JSON report on stdout.
    Json,
    /// GitHub Actions workflow commands (`::error file=…,line=…::…`) on stdout, one per line.
    Github,
}

/// The settings decided in `main`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ui {
    /// Paint diagnostics.
    pub color: bool,
    /// `-q`: no live view, no summary lines; results, warnings and errors only.
    pub quiet: bool,
    /// `-v`: the live view also shows nodes inside subflows and skipped nodes with the reason.
    pub verbose: bool,
}

static UI: OnceLock<Ui> = OnceLock::new();

/// Sets the settings for the rest of the process (the first call wins).
pub fn init(ui: Ui) {
    let _ = UI.set(ui);
}

/// The settings `main` decided (defaults before it did).
pub fn get() -> Ui {
    UI.get().copied().unwrap_or_default()
}

/// Whether to paint, per <https://no-color.org> and <https://bixense.com/clicolors/>:
/// `NO_COLOR` counts only when set and non-empty, `CLICOLOR_FORCE` only when non-empty and not `0`;
/// an explicit `--color` wins over both.
pub fn color_enabled(choice: ColorChoice, terminal: bool, env: impl Fn(&str) -> Option<String>) -> bool {
    let set = |name: &str| env(name).is_some_and(|v| !v.is_empty());
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto if set("NO_COLOR") => false,
        ColorChoice::Auto if set("CLICOLOR_FORCE") && env("CLICOLOR_FORCE").as_deref() != Some("0") => true,
        ColorChoice::Auto => terminal,
    }
}

/// The tracing filter of `flowcat serve` without `-v` or `RUST_LOG`: its requests and runs,
/// and every warning.
pub const SERVE_FILTER: &str = "warn,flowcat_serve=info";

/// The tracing filter for `-v`/`-vv`, used when `RUST_LOG` is not set.
pub fn tracing_filter(verbose: u8) -> &'static str {
    match verbose {
        0 => "off",
        1 => "flowcat_engine=info,flowcat_nodes=info",
        _ => "flowcat_engine=debug,flowcat_nodes=debug",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn colour_follows_the_flag_then_no_color_then_the_terminal() {
        use ColorChoice::*;
        /// The flag, whether stderr is a terminal, the environment, and whether to paint.
        type Case<'a> = (ColorChoice, bool, &'a [(&'a str, &'a str)], bool);
        let table: &[Case] = &[
            (Auto, true, &[], true),
            (Auto, false, &[], false),
            (Auto, true, &[("NO_COLOR", "1")], false),
            // Set but empty does not count (no-color.org).
            (Auto, true, &[("NO_COLOR", "")], true),
            (Auto, false, &[("CLICOLOR_FORCE", "1")], true),
            (Auto, false, &[("CLICOLOR_FORCE", "0")], false),
            (Auto, false, &[("CLICOLOR_FORCE", "")], false),
            (Auto, false, &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")], false),
            (Always, false, &[("NO_COLOR", "1")], true),
            (Never, true, &[("CLICOLOR_FORCE", "1")], false),
        ];
        for (choice, terminal, vars, want) in table {
            assert_eq!(color_enabled(*choice, *terminal, env(vars)), *want, "{choice:?} {terminal} {vars:?}");
        }
    }
}
