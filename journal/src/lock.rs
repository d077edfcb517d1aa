//! Which process holds a run: one lock file per run (`locks/<id>.lock`) with an exclusive
//! `flock`. The kernel releases it when the file is closed, so when its process ends however it
//! ends (kill -9 included) the run is free at once, and no stale lease has to time out.
//!
//! `flock` locks belong to an open file, not a process: two handles in one process exclude each
//! other as two processes do, which the in-process tests rely on.

use std::fs::File;
use std::path::{Path, PathBuf};

use flowcat_engine::journal::JournalError;

use crate::dir::LOCKS;
use crate::error::{self, Doing};

/// A run held by this process until this is dropped.
#[derive(Debug)]
pub(crate) struct RunLock {
    path: PathBuf,
    // Closing the file releases the lock.
    _file: File,
}

impl RunLock {
    /// Deletes the lock file while still holding it: for a run that finished, which nobody will
    /// hold again. A process blocked on the old file gets it, sees the run finished, and leaves.
    pub(crate) fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The lock file of run `id` in the state folder `dir`.
pub(crate) fn path(dir: &Path, id: &str) -> Result<PathBuf, JournalError> {
    if !crate::id::is_valid(id) {
        return Err(JournalError::new("unknown_run", format!("`{id}` is not a run id (e.g. `r0psa1b2c3d4e5f6`)")));
    }
    Ok(dir.join(LOCKS).join(format!("{id}.lock")))
}

/// Takes run `id` if no one holds it: `None` when another process (or handle) does.
pub(crate) fn try_lock(dir: &Path, id: &str) -> Result<Option<RunLock>, JournalError> {
    let path = path(dir, id)?;
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(&path).map_err(|e| error::io(&e, &path, Doing::Written))?;
    match flock(&file, true) {
        Ok(true) => Ok(Some(RunLock { path, _file: file })),
        Ok(false) => Ok(None),
        Err(e) => Err(error::io(&e, &path, Doing::Written)),
    }
}

/// Whether a process holds run `id` now. Probes with a shared lock, taken and dropped at once:
/// a `try_lock` that meets the probe fails for those microseconds, and callers retry.
pub(crate) fn is_held(dir: &Path, id: &str) -> bool {
    let Ok(path) = path(dir, id) else { return false };
    let Ok(file) = File::open(&path) else { return false };
    matches!(flock(&file, false), Ok(false))
}

/// A non-blocking `flock`: `Ok(true)` taken, `Ok(false)` held by another open file.
#[cfg(unix)]
fn flock(file: &File, exclusive: bool) -> std::io::Result<bool> {
    use rustix::fs::FlockOperation;
    let op = if exclusive { FlockOperation::NonBlockingLockExclusive } else { FlockOperation::NonBlockingLockShared };
    loop {
        match rustix::fs::flock(file, op) {
            Ok(()) => return Ok(true),
            Err(rustix::io::Errno::WOULDBLOCK) => return Ok(false),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// No `flock` here: the journal needs Unix (docs/architecture.md, "The journal").
#[cfg(not(unix))]
fn flock(_file: &File, _exclusive: bool) -> std::io::Result<bool> {
    Err(std::io::Error::new(std::io::ErrorKind::Unsupported, "run locks need a Unix system"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_held_by_one_open_file_at_a_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join(LOCKS)).expect("locks");
        let id = crate::id::new(1, 2);
        assert!(!is_held(dir.path(), &id), "no lock file: not held");
        let first = try_lock(dir.path(), &id).expect("lock").expect("free");
        assert!(is_held(dir.path(), &id));
        assert!(try_lock(dir.path(), &id).expect("lock").is_none(), "held by the first");
        drop(first);
        assert!(!is_held(dir.path(), &id));
        let again = try_lock(dir.path(), &id).expect("lock").expect("free again");
        again.remove();
        assert!(!dir.path().join(LOCKS).join(format!("{id}.lock")).exists());
        assert_eq!(try_lock(dir.path(), "../x").err().map(|e| e.code), Some("unknown_run"));
    }
}
