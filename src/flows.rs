//! Where the binary finds flows: the built-in catalog and examples, compiled in (`build.rs`),
//! plus one local folder: `--catalog DIR`, else `$FLOWCAT_CATALOG`, else the nearest `flows/`
//! in the current folder or one above it (as cargo finds `Cargo.toml`). A local flow with a
//! built-in flow's id takes its place; `note:` lines on stderr say so, unless the two are the
//! same text (a clone of flowcat's repository sees its own `flows/` as both).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use flowcat_engine::catalog::{self, Catalog};
use flowcat_engine::diag::Source;
use flowcat_engine::library::Library;

mod builtin {
    include!(concat!(env!("OUT_DIR"), "/builtin.rs"));
}

/// Shown after a built-in flow's path, in diagnostics and listings.
pub const BUILT_IN: &str = " (built-in)";

/// The environment variable naming the local catalog folder.
pub const ENV: &str = "FLOWCAT_CATALOG";

/// Where to look for local flows; looked at only by the commands that read flows.
#[derive(Debug)]
pub struct Flows {
    /// `--catalog DIR`.
    given: Option<PathBuf>,
}

impl Flows {
    pub fn new(given: Option<PathBuf>) -> Flows {
        Flows { given }
    }

    /// The local folder. `--catalog` and `$FLOWCAT_CATALOG` must name one; the search upward
    /// may find none.
    pub fn local(&self) -> anyhow::Result<Option<PathBuf>> {
        let named = self.given.clone().map(|p| (p, "--catalog")).or_else(|| {
            std::env::var_os(ENV).filter(|v| !v.is_empty()).map(|v| (PathBuf::from(v), "$FLOWCAT_CATALOG"))
        });
        if let Some((path, source)) = named {
            if !path.is_dir() {
                bail!("the catalog folder `{}` ({source}) does not exist", path.display());
            }
            return Ok(Some(path));
        }
        let cwd = std::env::current_dir()?;
        Ok(cwd.ancestors().map(|d| d.join("flows")).find(|d| d.is_dir()))
    }

    /// Built-in flows, then the local folder's and `extra` files or folders (these shadow the
    /// built-in ones).
    pub fn library(&self, extra: &[PathBuf]) -> anyhow::Result<Library> {
        let mut roots: Vec<PathBuf> = self.local()?.into_iter().collect();
        roots.extend(extra.iter().filter(|p| !is_stdin(p)).cloned());
        // One `discover` for all, so that a file both given and under the folder counts once.
        let mut read = catalog::read_sources(&catalog::discover(&roots)?)?;
        if extra.iter().any(|p| is_stdin(p)) {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).context("cannot read a flow from stdin")?;
            read.sources.push(Arc::new(Source { path: STDIN.to_owned(), text }));
        }
        let mut library = Library::new(builtin(), read.sources);
        library.undecodable = read.undecodable.into_iter().map(|(_, entry)| entry).collect();
        Ok(library)
    }

    /// Says which local flows replace built-in ones; with `loaded`, only those it holds.
    pub fn notes(library: &Library, loaded: Option<&Catalog>) {
        for s in &library.shadows {
            if loaded.is_none_or(|c| c.entry(&s.id).is_some()) {
                eprintln!("note: `{}` replaces the built-in flow `{}` ({})", s.path, s.id, s.hidden);
            }
        }
    }
}

/// `-` in place of a flow file reads the flow from stdin; messages call it this.
pub const STDIN: &str = "<stdin>";

/// Whether a path is `-`, stdin.
pub fn is_stdin(path: &Path) -> bool {
    path == Path::new("-")
}

/// The built-in flows, each under its path in the repository with ` (built-in)` after it.
pub fn builtin() -> Vec<Arc<Source>> {
    builtin::BUILTIN
        .iter()
        .map(|(path, text)| Arc::new(Source { path: format!("{path}{BUILT_IN}"), text: (*text).to_owned() }))
        .collect()
}

/// Whether `flow` names a file on disk (rather than an id).
pub fn is_file(flow: &str) -> bool {
    Path::new(flow).is_file()
}
