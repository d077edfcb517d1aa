//! Where the binary finds flows: the built-in catalog and examples, compiled in (`build.rs`),
//! plus one local folder: `--catalog DIR`, else `$FLOWCAT_CATALOG`, else the nearest `flows/`
//! in the current folder or one above it (as cargo finds `Cargo.toml`). A local flow with a
//! built-in flow's id takes its place; `note:` lines on stderr say so, unless the two are the
//! same text (a clone of flowcat's repository sees its own `flows/` as both).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use flowcat_engine::catalog::{self, Catalog, Entry};
use flowcat_engine::diag::Source;
use flowcat_engine::index;
use flowcat_engine::library::{File, Library};

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
    /// built-in ones), every file read: what `validate` and `list` compile.
    pub fn library(&self, extra: &[PathBuf]) -> anyhow::Result<Library> {
        let mut roots: Vec<PathBuf> = self.local()?.into_iter().collect();
        roots.extend(extra.iter().filter(|p| !is_stdin(p)).cloned());
        // One `discover` for all, so that a file both given and under the folder counts once.
        let files = catalog::discover(&roots)?;
        let read = catalog::read_sources(&files)?;
        let undecodable: Vec<usize> = read.undecodable.iter().map(|(i, _)| *i).collect();
        let paths = files.into_iter().enumerate().filter(|(i, _)| !undecodable.contains(i)).map(|(_, p)| p);
        let overlay = paths.zip(read.sources).map(|(path, source)| File::read(path, source)).collect();
        Self::finish(overlay, read.undecodable.into_iter().map(|(_, entry)| entry).collect(), extra)
    }

    /// [`Flows::library`] for `run`, `graph` and `demo`, which compile one flow and its
    /// subflows: the local folder's files come through the id index, so that only the files
    /// needed are read (`flowcat_engine::index`, cached in [`cache_folder`]); `extra` files are
    /// read.
    pub fn library_for_run(&self, extra: &[PathBuf]) -> anyhow::Result<Library> {
        let scan = match self.local()? {
            Some(dir) => index::scan(&dir, cache_folder().as_deref(), index::CACHED_FROM)?,
            None => index::Scan::default(),
        };
        let named = catalog::discover(&extra.iter().filter(|p| !is_stdin(p)).cloned().collect::<Vec<_>>())?;
        let read = catalog::read_sources(&named)?;
        let bad: Vec<usize> = read.undecodable.iter().map(|(i, _)| *i).collect();
        let named: Vec<PathBuf> =
            named.into_iter().enumerate().filter(|(i, _)| !bad.contains(i)).map(|(_, p)| p).collect();
        let mut overlay = scan.files;
        if !named.is_empty() {
            // A named file under the folder is the same file: it counts once, as read.
            overlay.retain(|f| !named.contains(&f.path));
            overlay.extend(named.into_iter().zip(read.sources).map(|(path, source)| File::read(path, source)));
            overlay.sort_unstable_by(|a, b| a.path.as_os_str().cmp(b.path.as_os_str()));
        }
        let mut undecodable: Vec<_> = scan.undecodable.into_iter().map(|(_, entry)| entry).collect();
        undecodable.extend(read.undecodable.into_iter().map(|(_, entry)| entry));
        Self::finish(overlay, undecodable, extra)
    }

    /// The library of the built-in flows and `overlay`, then the flow on stdin if `extra` asks.
    fn finish(mut overlay: Vec<File>, undecodable: Vec<Entry>, extra: &[PathBuf]) -> anyhow::Result<Library> {
        if extra.iter().any(|p| is_stdin(p)) {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).context("cannot read a flow from stdin")?;
            overlay.push(File::read(PathBuf::from(STDIN), Arc::new(Source { path: STDIN.to_owned(), text })));
        }
        let mut library = Library::layered(builtin(), overlay);
        library.undecodable = undecodable;
        Ok(library)
    }

    /// Says which local flows replace built-in ones; with `loaded`, only those it holds.
    pub fn notes(library: &Library, loaded: Option<&Catalog>) {
        for s in library.shadows() {
            if loaded.is_none_or(|c| c.entry(&s.id).is_some()) {
                eprintln!("note: `{}` replaces the built-in flow `{}` ({})", s.path, s.id, s.hidden);
            }
        }
    }
}

/// Where the id index keeps its cache files: `$XDG_CACHE_HOME/flowcat` (when set to an absolute
/// path, as the XDG specification asks), else `~/.cache/flowcat`; none without a home folder.
/// Never inside a catalog folder. Removing it is always safe.
pub fn cache_folder() -> Option<PathBuf> {
    let xdg = std::env::var_os("XDG_CACHE_HOME").map(PathBuf::from).filter(|p| p.is_absolute());
    let home = || std::env::var_os("HOME").map(PathBuf::from).filter(|p| p.is_absolute()).map(|h| h.join(".cache"));
    xdg.or_else(home).map(|dir| dir.join("flowcat"))
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
