//! The id index: which flow id each file of a local catalog folder declares, remembered between
//! runs in a cache file, so that running one flow of a catalog of hundreds reads the files of
//! that flow and its subflows rather than every file.
//!
//! Every use checks the whole folder: one `readdir` per folder and one `stat` per file. A file
//! is taken as unchanged only when its size, modification and change times (to the nanosecond),
//! device and inode all equal what the cache recorded; anything else (a new, edited, renamed or
//! replaced file) is read again, as is every file when the cache is missing, unreadable,
//! corrupt (a checksum covers it), written by another version, or recorded for another folder.
//! The change time (`ctime`) is set by the kernel on every write and cannot be set back, so an
//! edit that keeps the size and restores the modification time is still seen. A file changed so
//! recently that a second change could leave its times as they are (within the file system's
//! timestamp granularity) is not recorded: it is read again next time ([`racy`]).
//!
//! Nothing here is ever an error of its own: a cache that cannot be read or written is worked
//! around by reading the files, as if there were none. The cache lives outside the catalog
//! folder (the caller chooses where: the binary uses the user's cache folder), one file per
//! folder, named after a hash of the folder's canonical path and holding that path.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::catalog::{self, Entry, Error};
use crate::library::File;

mod store;
mod walk;

use store::{Cached, Store, parse};

/// Below this many files a folder is read whole and no cache is kept: reading a few files costs
/// about what checking a cache does, and small folders (tests, new projects) leave no cache
/// files behind.
pub const CACHED_FROM: usize = 64;

/// The flow files of a folder: known by the cache, or read.
#[derive(Debug, Default)]
pub struct Scan {
    /// Sorted by path, spelled as [`catalog::discover`] spells them.
    pub files: Vec<File>,
    /// Files that are not UTF-8, each with the entry saying where (never cached).
    pub undecodable: Vec<(PathBuf, Entry)>,
}

/// The flow files under `dir`, as [`catalog::discover`] would find them, each with its id. With
/// `cache` (a folder for cache files) and at least `from` files, unchanged files are taken from
/// the cache and not read; the others are read, and the cache is rewritten if anything changed.
pub fn scan(dir: &Path, cache: Option<&Path>, from: usize) -> Result<Scan, Error> {
    let now = SystemTime::now();
    let cwd = std::env::current_dir().ok();
    let root = catalog::normalize_in(dir, cwd.as_deref());
    let mut found = Vec::new();
    // The folder as spelled names it as well as `dir` does, except the working folder itself,
    // which is spelled empty.
    if root.as_os_str().is_empty() {
        walk::walk(dir, Some(&root), &mut found)?;
    } else {
        walk::walk(&root, None, &mut found)?;
    }
    let skip = prefix_len(&root);
    let store = cache.filter(|_| found.len() >= from).and_then(|c| Store::open(c, dir));
    let cached = store.as_ref().and_then(|s| parse(&s.bytes, &s.folder)).unwrap_or_default();
    let (order, known) = match_cache(&found, &cached, skip);
    let mut scan = Scan::default();
    let mut stamps = Vec::with_capacity(found.len());
    let mut slots: Vec<Option<File>> = Vec::new();
    slots.resize_with(found.len(), || None);
    let mut unread = Vec::new();
    for ((f, at), known) in found.into_iter().zip(&order).zip(known) {
        stamps.push(f.stamp);
        match known {
            Some(id) => slots[*at] = Some(File { path: f.path, id: id.map(Arc::from), source: None }),
            None => unread.push((*at, f.path)),
        }
    }
    let hits = order.len() - unread.len();
    unread.sort_unstable_by_key(|(at, _)| *at);
    let (places, paths): (Vec<usize>, Vec<PathBuf>) = unread.into_iter().unzip();
    let read = catalog::read_sources(&paths)?;
    let mut undecodable = read.undecodable.into_iter().peekable();
    let mut sources = read.sources.into_iter();
    for (k, path) in paths.iter().enumerate() {
        if undecodable.peek().is_some_and(|(at, _)| *at == k) {
            let (_, entry) = undecodable.next().expect("peeked");
            scan.undecodable.push((path.clone(), entry));
        } else if let Some(source) = sources.next() {
            slots[places[k]] = Some(File::read(path.clone(), source));
        }
    }
    if let Some(store) = &store {
        if !paths.is_empty() || hits != cached.len() {
            store.save(&order, &stamps, &slots, skip, now);
        }
    }
    scan.files = slots.into_iter().flatten().collect();
    Ok(scan)
}

/// A flow file found by [`walk::walk`].
struct Found {
    path: PathBuf,
    stamp: Option<Stamp>,
}

/// For each file found (in the order of the walk), its place among the files sorted by path,
/// and the id the cache recorded for it when it is unchanged.
///
/// A folder that did not change is listed in the same order as when the cache was written, and
/// the cache records the files in that order with their sorted places: then each file is
/// matched with the cache's record at its own position, with neither a sort nor a lookup.
/// Otherwise the files are sorted and looked up by path.
fn match_cache<'a>(found: &[Found], cached: &[Cached<'a>], skip: usize) -> (Vec<usize>, Vec<Option<Option<&'a str>>>) {
    fn rel(f: &Found, skip: usize) -> &[u8] {
        &f.path.as_os_str().as_encoded_bytes()[skip..]
    }
    let unchanged = |f: &Found, c: &Cached<'a>| (f.stamp == Some(c.stamp)).then_some(c.id);
    let mut placed = vec![false; found.len()];
    let same_walk = cached.len() == found.len()
        && found.iter().zip(cached).all(|(f, c)| {
            let fresh = c.sorted < placed.len() && !placed[c.sorted];
            if fresh {
                placed[c.sorted] = true;
            }
            fresh && rel(f, skip) == c.rel
        });
    if same_walk {
        let order = cached.iter().map(|c| c.sorted).collect();
        return (order, found.iter().zip(cached).map(|(f, c)| unchanged(f, c)).collect());
    }
    let mut sorted: Vec<usize> = (0..found.len()).collect();
    sorted.sort_unstable_by(|&a, &b| rel(&found[a], skip).cmp(rel(&found[b], skip)));
    let mut order = vec![0; found.len()];
    for (at, &i) in sorted.iter().enumerate() {
        order[i] = at;
    }
    let by_path: HashMap<&[u8], &Cached<'a>> = cached.iter().map(|c| (c.rel, c)).collect();
    let known = found.iter().map(|f| by_path.get(rel(f, skip)).and_then(|c| unchanged(f, c))).collect();
    (order, known)
}

/// What tells a file's version apart without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    size: u64,
    mtime: (i64, u32),
    ctime: (i64, u32),
    dev: u64,
    ino: u64,
}

/// Whether a file's times are too recent to rely on: a second change within the same tick of the
/// file system's clock could leave them as they are. Linux file systems stamp with a clock that
/// ticks every few milliseconds; one whose times are whole seconds (FAT's are even two) is
/// given a wider margin. A time in the future (clocks apart, on a network file system) is racy.
fn racy(stamp: &Stamp, scan_started: SystemTime) -> bool {
    let coarse = stamp.mtime.1 == 0 && stamp.ctime.1 == 0;
    let margin = if coarse { Duration::from_secs(3) } else { Duration::from_millis(100) };
    let newest = stamp.mtime.max(stamp.ctime);
    let Ok(secs) = u64::try_from(newest.0) else { return false };
    let changed = SystemTime::UNIX_EPOCH + Duration::new(secs, newest.1);
    changed + margin >= scan_started
}

/// How many bytes of a file's spelled path are the folder's (and its separator).
fn prefix_len(root: &Path) -> usize {
    let bytes = root.as_os_str().as_encoded_bytes();
    match bytes.last() {
        None => 0,
        Some(&last) if std::path::is_separator(char::from(last)) => bytes.len(),
        Some(_) => bytes.len() + 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh folder under the system's temporary folder.
    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("flowcat-index-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a folder");
        dir
    }

    /// Each file's name, id, and whether it was read.
    fn seen(scan: &Scan) -> Vec<(String, Option<String>, bool)> {
        let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        scan.files.iter().map(|f| (name(&f.path), f.id.as_deref().map(str::to_owned), f.source.is_some())).collect()
    }

    /// Past the window in which a file's times are too recent to record.
    fn settle() {
        std::thread::sleep(Duration::from_millis(150));
    }

    #[test]
    fn unchanged_files_come_from_the_cache_and_the_others_are_read() {
        let (dir, cache) = (temp("flows"), temp("cache"));
        for name in ["a", "b", "c"] {
            std::fs::write(dir.join(format!("{name}.yaml")), format!("id: f.{name}\n")).expect("write");
        }
        std::fs::create_dir(dir.join("sub")).expect("folder");
        std::fs::write(dir.join("sub/d.yml"), "# no id\nnodes: []\n").expect("write");
        std::fs::write(dir.join("notes.txt"), "id: not.a.flow\n").expect("write");
        settle();
        let all_read = [
            ("a.yaml".into(), Some("f.a".into()), true),
            ("b.yaml".into(), Some("f.b".into()), true),
            ("c.yaml".into(), Some("f.c".into()), true),
            ("d.yml".into(), None, true),
        ];
        let first = scan(&dir, Some(&cache), 0).expect("scanned");
        assert_eq!(seen(&first), all_read);
        let known: Vec<_> = all_read.iter().map(|(n, id, _)| (n.clone(), id.clone(), false)).collect();
        assert_eq!(seen(&scan(&dir, Some(&cache), 0).expect("scanned")), known, "nothing read");
        // Spelled as `discover` spells them.
        let discovered = catalog::discover(std::slice::from_ref(&dir)).expect("discovered");
        assert_eq!(first.files.iter().map(|f| f.path.clone()).collect::<Vec<_>>(), discovered);

        // The same size, the modification time put back: the change time tells.
        let b = dir.join("b.yaml");
        let mtime = std::fs::metadata(&b).and_then(|m| m.modified()).expect("mtime");
        std::fs::write(&b, "id: f.x\n").expect("write");
        std::fs::File::options().write(true).open(&b).and_then(|f| f.set_modified(mtime)).expect("set back");
        let edited = seen(&scan(&dir, Some(&cache), 0).expect("scanned"));
        assert_eq!(edited[1], ("b.yaml".into(), Some("f.x".into()), true));
        assert!(!edited[0].2 && !edited[2].2, "{edited:?}");

        // A damaged cache is not used; every file is read and the cache written again.
        let file = std::fs::read_dir(&cache).expect("cache").flatten().next().expect("a cache file").path();
        let mut bytes = std::fs::read(&file).expect("read");
        let middle = bytes.len() / 2;
        bytes[middle] ^= 1;
        std::fs::write(&file, &bytes).expect("write");
        assert!(seen(&scan(&dir, Some(&cache), 0).expect("scanned")).iter().all(|f| f.2));

        // Below `from`, inside the folder, or with a cache folder that cannot be made, everything
        // is read.
        let unused = temp("unused");
        assert!(seen(&scan(&dir, Some(&unused), 5).expect("scanned")).iter().all(|f| f.2));
        assert_eq!(std::fs::read_dir(&unused).expect("folder").count(), 0, "no cache below `from`");
        let inside = dir.join("cache");
        assert!(seen(&scan(&dir, Some(&inside), 0).expect("scanned")).iter().all(|f| f.2));
        assert!(!inside.exists(), "nothing written inside the folder");
        let blocked = cache.join("a-file");
        std::fs::write(&blocked, "").expect("write");
        assert!(seen(&scan(&dir, Some(&blocked), 0).expect("scanned")).iter().all(|f| f.2));
        for d in [dir, cache, unused] {
            let _ = std::fs::remove_dir_all(d);
        }
    }

    #[test]
    #[cfg(unix)]
    fn the_files_are_those_discover_finds() {
        let dir = temp("discover");
        std::fs::create_dir_all(dir.join("a/b")).expect("folders");
        std::fs::create_dir_all(dir.join("elsewhere")).expect("folder");
        for (name, text) in [
            ("a/b/deep.yaml", "id: deep\n"),
            ("top.yml", "id: top\n"),
            (".hidden.yaml", "id: hidden\n"),
            (".yaml", "id: not.a.flow\n"),
            ("upper.YAML", "id: not.a.flow\n"),
            ("elsewhere/linked.yaml", "id: linked\n"),
        ] {
            std::fs::write(dir.join(name), text).expect("write");
        }
        std::os::unix::fs::symlink(dir.join("top.yml"), dir.join("a/link.yaml")).expect("a link to a file");
        std::os::unix::fs::symlink(dir.join("elsewhere"), dir.join("a/folder")).expect("a link to a folder");
        let discovered = catalog::discover(std::slice::from_ref(&dir)).expect("discovered");
        assert_eq!(discovered.len(), 6, "{discovered:?}");
        let cache = temp("discover-cache");
        settle();
        // Read, then known from the cache: the same files either way.
        for _ in 0..2 {
            let scanned = scan(&dir, Some(&cache), 0).expect("scanned");
            assert_eq!(scanned.files.iter().map(|f| f.path.clone()).collect::<Vec<_>>(), discovered);
        }
        // A link to nothing is a file that cannot be read, as when every file is read.
        std::os::unix::fs::symlink(dir.join("gone"), dir.join("broken.yaml")).expect("a broken link");
        assert!(catalog::read_sources(&catalog::discover(std::slice::from_ref(&dir)).expect("discovered")).is_err());
        assert!(scan(&dir, None, 0).is_err());
        let _ = std::fs::remove_dir_all(dir);
        let _ = std::fs::remove_dir_all(cache);
    }

    #[test]
    fn files_listed_as_before_are_matched_in_place_and_others_by_path() {
        let stamp = |ino| Some(Stamp { size: 1, mtime: (1, 1), ctime: (1, 1), dev: 1, ino });
        let found = |names: &[(&str, u64)]| -> Vec<Found> {
            names.iter().map(|(n, ino)| Found { path: PathBuf::from(format!("d/{n}")), stamp: stamp(*ino) }).collect()
        };
        let cached = |names: &[(&'static str, u64, usize)]| -> Vec<Cached<'static>> {
            names
                .iter()
                .map(|(n, ino, sorted)| Cached {
                    rel: n.as_bytes(),
                    id: Some(n),
                    stamp: stamp(*ino).expect("a stamp"),
                    sorted: *sorted,
                })
                .collect()
        };
        // Listed as when the cache was written: matched in place, `c.yaml` changed.
        let was = cached(&[("c.yaml", 3, 2), ("a.yaml", 1, 0), ("b.yaml", 2, 1)]);
        let (order, known) = match_cache(&found(&[("c.yaml", 9), ("a.yaml", 1), ("b.yaml", 2)]), &was, 2);
        assert_eq!(order, [2, 0, 1]);
        assert_eq!(known, [None, Some(Some("a.yaml")), Some(Some("b.yaml"))]);
        // Listed in another order, or with a file more: sorted and looked up by path.
        let (order, known) = match_cache(&found(&[("b.yaml", 2), ("a.yaml", 1), ("c.yaml", 3)]), &was, 2);
        assert_eq!(order, [1, 0, 2]);
        assert_eq!(known, [Some(Some("b.yaml")), Some(Some("a.yaml")), Some(Some("c.yaml"))]);
        let (order, known) =
            match_cache(&found(&[("c.yaml", 3), ("a.yaml", 1), ("b.yaml", 2), ("0.yaml", 4)]), &was, 2);
        assert_eq!(order, [3, 1, 2, 0]);
        assert_eq!(known[3], None);
        // Sorted places that are not a permutation are not trusted.
        let odd = cached(&[("c.yaml", 3, 0), ("a.yaml", 1, 0), ("b.yaml", 2, 1)]);
        let (order, _) = match_cache(&found(&[("c.yaml", 3), ("a.yaml", 1), ("b.yaml", 2)]), &odd, 2);
        assert_eq!(order, [2, 0, 1]);
    }

    #[test]
    fn recent_times_are_not_relied_on() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let at = |secs: i64, nanos: u32| Stamp { size: 1, mtime: (secs, nanos), ctime: (secs, nanos), dev: 1, ino: 1 };
        // (stamp, racy)
        let table = [
            (at(999_999, 500_000_000), false),
            (at(999_999, 950_000_000), true),
            (at(1_000_005, 1), true),
            // Whole seconds: a coarse file system, a wider margin.
            (at(999_998, 0), true),
            (at(999_990, 0), false),
            (Stamp { ctime: (999_999, 990_000_000), ..at(100, 1) }, true),
        ];
        for (stamp, want) in table {
            assert_eq!(racy(&stamp, now), want, "{stamp:?}");
        }
    }
}
