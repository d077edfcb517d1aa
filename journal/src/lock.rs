//! Which process holds a run.
//!
//! Every open [`Journal`](crate::Journal) is a *holder*: it names itself (`h…`), creates
//! `locks/<name>.lock` and keeps an exclusive `flock` on it for its whole life. A run it holds
//! carries that name in its row (`runs.holder`), written in the same transaction that creates or
//! claims the run. A run is held when its holder's lock file is locked: the kernel releases the
//! lock when the process dies however it dies (kill -9 included), so a dead process's runs are
//! free at once, and no stale lease has to time out. Inside one process, the holder also keeps
//! the set of runs it has handed out, so that two handles never hold one run.
//!
//! One file per process instead of one per run: creating, locking and deleting a file costs
//! 100–280 µs on an ext4 disk, more than the rest of journaling a short run
//! (docs/benchmarks.md, "A journaled run against an unjournaled one").
//!
//! Journals of schema version 1 held each run through `locks/<run id>.lock`; a row without a
//! holder is still probed there, so that a run of an older flowcat process is not taken from it.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use flowcat_engine::journal::JournalError;

use crate::dir::LOCKS;
use crate::error::{self, Doing};

/// This process's claim on the runs it holds: its locked file, and which runs it handed out.
#[derive(Debug)]
pub(crate) struct Holder {
    name: String,
    path: PathBuf,
    // Closing the file releases the lock.
    _file: File,
    held: Mutex<HashSet<i64>>,
}

impl Holder {
    /// Becomes a holder in the state folder `dir`: a new lock file, locked, under a fresh name.
    /// Lock files of holders that died are deleted on the way.
    pub(crate) fn new(dir: &Path) -> Result<Holder, JournalError> {
        let locks = dir.join(LOCKS);
        sweep(&locks);
        let name = format!("h{}", &crate::id::fresh(crate::store::now_ms())[1..]);
        // Locked under a name nobody probes, then renamed into place: a sweeping process never
        // sees the file unlocked, so it never deletes a live holder's file.
        let temporary = locks.join(format!(".{name}.new"));
        let path = locks.join(format!("{name}.lock"));
        let file = create(&temporary)?;
        let locked = flock(&file, true).map_err(|e| error::io(&e, &temporary, Doing::Written))?;
        if !locked {
            return Err(JournalError::new(
                "busy",
                format!("the new lock file `{}` is already locked", temporary.display()),
            ));
        }
        std::fs::rename(&temporary, &path).map_err(|e| error::io(&e, &path, Doing::Written))?;
        Ok(Holder { name, path, _file: file, held: Mutex::new(HashSet::new()) })
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Marks run `seq` handed out by this process: `false` when it already is.
    pub(crate) fn take(&self, seq: i64) -> bool {
        self.held.lock().unwrap_or_else(PoisonError::into_inner).insert(seq)
    }

    pub(crate) fn release(&self, seq: i64) {
        self.held.lock().unwrap_or_else(PoisonError::into_inner).remove(&seq);
    }

    /// Whether a run stored with `holder` (and `id`) is held now, by this process or another.
    pub(crate) fn holds(&self, dir: &Path, seq: i64, id: &str, holder: Option<&str>) -> bool {
        match holder {
            Some(name) if name == self.name => self.held.lock().unwrap_or_else(PoisonError::into_inner).contains(&seq),
            Some(name) => is_held(dir, name),
            None => is_held(dir, id),
        }
    }

    /// Deletes the lock file while still holding it: the journal is closing.
    pub(crate) fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Creates (or opens) a lock file, mode 0600.
fn create(path: &Path) -> Result<File, JournalError> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map_err(|e| error::io(&e, path, Doing::Written))
}

/// Whether `locks/<name>.lock` (a holder's, or a version-1 run's) is locked by an open file now.
/// Probes with a shared lock, taken and dropped at once. A name that is not a holder's or a run
/// id is never used in a path.
pub(crate) fn is_held(dir: &Path, name: &str) -> bool {
    if !is_lock_name(name) {
        return false;
    }
    let Ok(file) = File::open(dir.join(LOCKS).join(format!("{name}.lock"))) else { return false };
    matches!(flock(&file, false), Ok(false))
}

/// `h` or `r` and an id's characters: a holder's name or a run id.
fn is_lock_name(name: &str) -> bool {
    let mut run = name.to_owned();
    if name.starts_with('h') {
        run.replace_range(..1, "r");
    }
    crate::id::is_valid(&run)
}

/// Deletes the lock files nobody holds: holders that died, version-1 runs that ended.
fn sweep(locks: &Path) {
    let Ok(entries) = std::fs::read_dir(locks) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".lock")) else { continue };
        if !is_lock_name(stem) {
            continue;
        }
        let path = entry.path();
        let Ok(file) = std::fs::OpenOptions::new().read(true).write(true).open(&path) else { continue };
        // Deleted while locked: a prober that opened it before sees it free, which it is.
        if let Ok(true) = flock(&file, true) {
            let _ = std::fs::remove_file(&path);
        }
    }
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
    fn a_holder_is_locked_for_its_life_and_swept_after() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join(LOCKS)).expect("locks");
        let first = Holder::new(dir.path()).expect("holder");
        let second = Holder::new(dir.path()).expect("another holder");
        assert_ne!(first.name(), second.name());
        assert!(is_held(dir.path(), first.name()), "locked while it lives");
        assert!(first.holds(dir.path(), 1, "r000000000000001", Some(second.name())), "another holder's run is held");

        // Within one holder, a run is handed out once.
        assert!(!first.holds(dir.path(), 7, "r000000000000007", Some(first.name())));
        assert!(first.take(7));
        assert!(!first.take(7), "handed out once");
        assert!(first.holds(dir.path(), 7, "r000000000000007", Some(first.name())));
        first.release(7);
        assert!(first.take(7));

        // A holder that died (its file closed, not deleted) is free and swept by the next one.
        let Holder { name, path: dead, _file, .. } = second;
        drop(_file);
        assert!(!is_held(dir.path(), &name), "a dead holder holds nothing");
        assert!(dead.exists());
        let _third = Holder::new(dir.path()).expect("holder");
        assert!(!dead.exists(), "swept");
        assert!(first.path.exists(), "a live holder's file is never swept");

        // Names are checked before they are used in a path.
        for bad in ["../x", "h", "x000000000000000", "r00000000000000/"] {
            assert!(!is_held(dir.path(), bad), "{bad}");
        }
        first.remove();
        assert!(!first.path.exists());
    }
}
