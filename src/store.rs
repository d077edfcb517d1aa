//! Which store keeps the runs: the SQLite journal in the state folder (the default), or a shared
//! Postgres database named by `--store postgres://…` (`FLOWCAT_STORE`, or `store:` in the serve
//! config) that replicas of `flowcat serve` share (docs/serve.md, "Replicas").

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use flowcat_engine::journal::Store;

/// The `--store` of this invocation (set once by `main`).
static URL: OnceLock<Option<String>> = OnceLock::new();

/// Sets the `--store` URL of this invocation; checked here, so that a wrong one is refused
/// before anything else happens.
pub fn set_url(url: Option<String>) -> anyhow::Result<()> {
    let url = url.filter(|u| !u.trim().is_empty());
    if let Some(u) = &url {
        if !flowcat_pgstore::PgStore::is_url(u) {
            anyhow::bail!(
                "`--store` (or FLOWCAT_STORE) must be a Postgres URL, `postgres://USER@HOST:PORT/DATABASE`; without it \
                 runs are kept in the SQLite journal of the state folder (`--state-dir`)"
            );
        }
    }
    let _ = URL.set(url);
    Ok(())
}

/// The `--store` URL, if one was given.
pub fn url() -> Option<&'static str> {
    URL.get().and_then(Option::as_deref)
}

/// Where the runs are, for messages: the database (`host:port/db`, no password) or the journal
/// file.
pub fn place(state_dir: Option<PathBuf>) -> String {
    match url() {
        Some(url) => postgres_place(url),
        None => match flowcat_journal::find_state_dir(state_dir) {
            Ok(dir) => dir.join(flowcat_journal::DB_FILE).display().to_string(),
            Err(_) => "the state folder".to_owned(),
        },
    }
}

fn postgres_place(url: &str) -> String {
    // `postgres://user:password@host:port/db?…` → `host:port/db`.
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    rest.split('?').next().unwrap_or(rest).to_owned()
}

/// Opens the store `url` names (a shared Postgres database).
pub fn open_postgres(url: &str) -> anyhow::Result<Arc<dyn Store>> {
    let store = flowcat_pgstore::PgStore::open(url, flowcat_pgstore::Options::from_env()?)?;
    Ok(Arc::new(store))
}

/// The store, created if missing; checked (version, integrity, room, writable) before anything
/// is sent.
pub fn open(state_dir: Option<PathBuf>) -> anyhow::Result<Arc<dyn Store>> {
    open_paced(state_dir, None)
}

/// [`open`], the journal's commits paced by the runtime that drives the runs (`pace`; a shared
/// Postgres store commits each entry in its own transaction, and ignores it).
pub fn open_paced(
    state_dir: Option<PathBuf>,
    pace: Option<Arc<flowcat_journal::Pace>>,
) -> anyhow::Result<Arc<dyn Store>> {
    match url() {
        Some(url) => open_postgres(url),
        None => {
            let dir = flowcat_journal::state_dir(state_dir)?;
            let options = flowcat_journal::Options { pace, ..flowcat_journal::Options::from_env()? };
            Ok(Arc::new(flowcat_journal::Journal::open_with(&dir, options)?))
        }
    }
}

/// The store if there is one (reading commands create nothing: no journal yet is no runs).
pub fn existing(state_dir: Option<PathBuf>) -> anyhow::Result<Option<Arc<dyn Store>>> {
    match url() {
        Some(url) => open_postgres(url).map(Some),
        None => {
            let dir = flowcat_journal::find_state_dir(state_dir)?;
            if !flowcat_journal::Journal::exists(&dir) {
                return Ok(None);
            }
            Ok(Some(Arc::new(flowcat_journal::Journal::open(&dir)?)))
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_place_never_shows_the_password() {
        assert_eq!(
            super::postgres_place("postgres://app:s3cret@db.internal:5433/flowcat?x=1"),
            "db.internal:5433/flowcat"
        );
        assert_eq!(super::postgres_place("postgresql://db/flowcat"), "db/flowcat");
    }
}
