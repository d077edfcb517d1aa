//! Listing a catalog folder for the id index: every flow file with its stamp, in the order the
//! folders list them. On Linux through `rustix`: directory entries read into one buffer and each
//! file's `stat` asked relative to its open folder, with no allocation per entry but the file's
//! path; elsewhere through `std::fs`. Both find the same files as `catalog::discover`.

use std::path::{Path, PathBuf};

use super::{Found, Stamp};
#[cfg(not(any(target_os = "linux", target_os = "android")))]
use crate::catalog;
use crate::catalog::Error;

/// Collects every flow file under `dir` with its stamp, in the order the folders list them: the
/// same files as `catalog::discover`'s walk (folders recursed into, symbolic links followed).
/// Each is spelled under `spelled`, or as `dir` spells it.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(super) fn walk(dir: &Path, spelled: Option<&Path>, out: &mut Vec<Found>) -> Result<(), Error> {
    let folder = open(rustix::fs::CWD, dir).map_err(|e| unreadable(dir, e))?;
    linux::walk(&folder, dir, spelled.unwrap_or(dir), out)
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod linux {
    use std::ffi::OsStr;
    use std::os::fd::OwnedFd;
    use std::os::unix::ffi::OsStrExt as _;
    use std::path::Path;

    use rustix::fs::{AtFlags, FileType, RawDir, Stat, statat};

    use super::{Found, Stamp, join, open, unreadable};
    use crate::catalog::{self, Error};

    /// The folder open as `folder`, named `dir` in messages, its files spelled under `spelled`.
    pub(super) fn walk(folder: &OwnedFd, dir: &Path, spelled: &Path, out: &mut Vec<Found>) -> Result<(), Error> {
        let mut buffer = Vec::with_capacity(32 * 1024);
        let mut entries = RawDir::new(folder, buffer.spare_capacity_mut());
        while let Some(entry) = entries.next() {
            let entry = entry.map_err(|e| unreadable(dir, e))?;
            let name = entry.file_name();
            if matches!(name.to_bytes(), b"." | b"..") {
                continue;
            }
            let path = join(spelled, OsStr::from_bytes(name.to_bytes()));
            // A plain file is asked about without following links; a link (or an entry of a
            // file system that does not say what it is) is followed.
            let stat = match entry.file_type() {
                FileType::Directory => Err(None),
                FileType::RegularFile if !catalog::is_flow_file(&path) => continue,
                FileType::RegularFile => statat(folder, name, AtFlags::SYMLINK_NOFOLLOW).map_err(Some),
                _ => statat(folder, name, AtFlags::empty()).map_err(Some),
            };
            let is_dir = match &stat {
                Err(None) => true,
                Ok(stat) => FileType::from_raw_mode(stat.st_mode) == FileType::Directory,
                Err(Some(_)) => false,
            };
            if is_dir {
                let sub = dir.join(OsStr::from_bytes(name.to_bytes()));
                let opened = open(folder, name).map_err(|e| unreadable(&sub, e))?;
                walk(&opened, &sub, &path, out)?;
            } else if catalog::is_flow_file(&path) {
                out.push(Found { path, stamp: stat.ok().as_ref().and_then(stamp) });
            }
        }
        Ok(())
    }

    fn stamp(stat: &Stat) -> Option<Stamp> {
        // The fields' types differ between architectures.
        fn num<T: TryInto<U>, U>(value: T) -> Option<U> {
            value.try_into().ok()
        }
        Some(Stamp {
            size: num(stat.st_size)?,
            mtime: (num(stat.st_mtime)?, num(stat.st_mtime_nsec)?),
            ctime: (num(stat.st_ctime)?, num(stat.st_ctime_nsec)?),
            dev: num(stat.st_dev)?,
            ino: num(stat.st_ino)?,
        })
    }
}

/// A folder opened for listing (following a link to it).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn open<P: rustix::path::Arg>(at: impl std::os::fd::AsFd, path: P) -> rustix::io::Result<std::os::fd::OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    rustix::fs::openat(at, path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn unreadable(dir: &Path, e: rustix::io::Errno) -> Error {
    Error::Read { path: dir.display().to_string(), source: e.into() }
}

/// [`walk`] through `std::fs`.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(super) fn walk(dir: &Path, spelled: Option<&Path>, out: &mut Vec<Found>) -> Result<(), Error> {
    let read = |e| Error::Read { path: dir.display().to_string(), source: e };
    let under = spelled.unwrap_or(dir);
    for entry in std::fs::read_dir(dir).map_err(read)? {
        let entry = entry.map_err(read)?;
        let path = join(under, &entry.file_name());
        let sub = |path: &Path| spelled.map(|_| path.to_owned());
        // A plain file is asked about relative to its open folder, without following links; a
        // link (or a file system that does not say what an entry is) is followed.
        let meta = match entry.file_type() {
            Ok(t) if t.is_dir() => {
                walk(&entry.path(), sub(&path).as_deref(), out)?;
                continue;
            }
            Ok(t) if t.is_file() => {
                if !catalog::is_flow_file(&path) {
                    continue;
                }
                entry.metadata()
            }
            _ => std::fs::metadata(entry.path()),
        };
        if meta.as_ref().is_ok_and(std::fs::Metadata::is_dir) {
            walk(&entry.path(), sub(&path).as_deref(), out)?;
        } else if catalog::is_flow_file(&path) {
            out.push(Found { path, stamp: meta.ok().as_ref().and_then(stamp) });
        }
    }
    Ok(())
}

#[cfg(all(unix, not(any(target_os = "linux", target_os = "android"))))]
fn stamp(meta: &std::fs::Metadata) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt as _;
    let ns = |n: i64| u32::try_from(n).ok();
    Some(Stamp {
        size: meta.size(),
        mtime: (meta.mtime(), ns(meta.mtime_nsec())?),
        ctime: (meta.ctime(), ns(meta.ctime_nsec())?),
        dev: meta.dev(),
        ino: meta.ino(),
    })
}

/// Elsewhere there is no change time to rely on: nothing is cached.
#[cfg(not(unix))]
fn stamp(_: &std::fs::Metadata) -> Option<Stamp> {
    None
}

/// `dir` joined with a name read from it, as `Path::join` would, in one allocation: `join`
/// parses both paths, a visible cost over hundreds of files.
#[cfg(unix)]
fn join(dir: &Path, name: &std::ffi::OsStr) -> PathBuf {
    use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
    let (dir, name) = (dir.as_os_str().as_bytes(), name.as_bytes());
    let mut bytes = Vec::with_capacity(dir.len() + 1 + name.len());
    bytes.extend_from_slice(dir);
    if bytes.last().is_some_and(|&b| b != b'/') {
        bytes.push(b'/');
    }
    bytes.extend_from_slice(name);
    PathBuf::from(std::ffi::OsString::from_vec(bytes))
}

#[cfg(not(unix))]
fn join(dir: &Path, name: &std::ffi::OsStr) -> PathBuf {
    dir.join(name)
}
