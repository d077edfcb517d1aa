//! The state folder: where the journal lives, chosen by flag, environment or the XDG default,
//! and created readable by its owner only.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use flowcat_engine::journal::JournalError;

use crate::error::{self, Doing};

/// The database's file name in the state folder.
pub const DB_FILE: &str = "journal.sqlite3";
/// The folder of the per-run lock files, in the state folder.
pub(crate) const LOCKS: &str = "locks";

/// The state folder, created (mode 0700) if missing: `given` (`--state-dir`), else
/// `$FLOWCAT_STATE_DIR` when not empty, else `$XDG_STATE_HOME/flowcat` (an absolute path, as
/// the XDG spec requires), else `$HOME/.local/state/flowcat`.
pub fn state_dir(given: Option<PathBuf>) -> Result<PathBuf, JournalError> {
    let dir = find_state_dir(given)?;
    create_private_dir(&dir)?;
    Ok(dir)
}

/// The state folder [`state_dir`] would use, without creating it (`flowcat runs list` on a
/// machine that never ran anything creates nothing).
pub fn find_state_dir(given: Option<PathBuf>) -> Result<PathBuf, JournalError> {
    resolve(given, |name| std::env::var_os(name))
}

/// [`find_state_dir`] with the environment as a function, for tests.
pub(crate) fn resolve(given: Option<PathBuf>, env: impl Fn(&str) -> Option<OsString>) -> Result<PathBuf, JournalError> {
    let set = |name: &str| env(name).filter(|v| !v.is_empty());
    if let Some(dir) = given {
        return Ok(dir);
    }
    if let Some(dir) = set("FLOWCAT_STATE_DIR") {
        return Ok(PathBuf::from(dir));
    }
    if let Some(xdg) = set("XDG_STATE_HOME").map(PathBuf::from).filter(|p| p.is_absolute()) {
        return Ok(xdg.join("flowcat"));
    }
    if let Some(home) = set("HOME") {
        return Ok(PathBuf::from(home).join(".local/state/flowcat"));
    }
    Err(JournalError::new(
        "no_state_dir",
        "no state folder for the journal: neither `XDG_STATE_HOME` nor `HOME` is set; give `--state-dir DIR` or set \
         `FLOWCAT_STATE_DIR`",
    ))
}

/// Creates `dir` and its missing parents with mode 0700 (an existing folder keeps its mode).
pub(crate) fn create_private_dir(dir: &Path) -> Result<(), JournalError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|e| error::io(&e, dir, Doing::Opened))?;
    if !dir.is_dir() {
        return Err(JournalError::new(
            "io",
            format!("the state folder `{}` is not a folder: choose another with `--state-dir DIR`", dir.display()),
        ));
    }
    Ok(())
}

/// Creates `file` with mode 0600 if it is missing, and checks that it can be written.
pub(crate) fn create_private_file(file: &Path) -> Result<(), JournalError> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(file).map(drop).map_err(|e| error::io(&e, file, Doing::Opened))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_then_the_variable_then_xdg_then_home() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| OsString::from(v))
        };
        let given = Some(PathBuf::from("given"));
        assert_eq!(resolve(given, env(&[("FLOWCAT_STATE_DIR", "/s")])).ok(), Some(PathBuf::from("given")));
        /// The environment, and the folder it gives.
        type Case = (&'static [(&'static str, &'static str)], Option<&'static str>);
        let table: &[Case] = &[
            (&[("FLOWCAT_STATE_DIR", "/s"), ("XDG_STATE_HOME", "/x"), ("HOME", "/h")], Some("/s")),
            (&[("FLOWCAT_STATE_DIR", ""), ("XDG_STATE_HOME", "/x"), ("HOME", "/h")], Some("/x/flowcat")),
            // A relative XDG_STATE_HOME is invalid by the spec: ignored.
            (&[("XDG_STATE_HOME", "rel"), ("HOME", "/h")], Some("/h/.local/state/flowcat")),
            (&[("XDG_STATE_HOME", ""), ("HOME", "/h")], Some("/h/.local/state/flowcat")),
            (&[("HOME", "")], None),
            (&[], None),
        ];
        for (vars, want) in table {
            let got = resolve(None, env(vars));
            assert_eq!(got.as_ref().ok().map(|p| p.to_str().unwrap_or_default()), *want, "{vars:?}");
            if let Err(e) = got {
                assert_eq!(e.code, "no_state_dir");
                assert!(e.message.contains("--state-dir"), "{}", e.message);
            }
        }
    }
}
