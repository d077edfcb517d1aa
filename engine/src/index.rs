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
use std::time::{Duration, SystemTime};

use crate::catalog::{self, Entry, Error};
use crate::library::File;

/// Below this many files a folder is read whole and no cache is kept: reading a few files costs
/// about what checking a cache does, and small folders (tests, new projects) leave no cache
/// files behind.
pub const CACHED_FROM: usize = 64;

/// What the cache file's layout and the id scan it records are; bump it when either changes
/// (`library::declared_id` included), so that older caches are ignored.
const FORMAT: u32 = 1;
const MAGIC: &[u8; 12] = b"flowcat-ids\0";

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
    walk(dir, &root, &mut found)?;
    found.sort_unstable_by(|a, b| a.0.as_os_str().cmp(b.0.as_os_str()));
    let store = cache.filter(|_| found.len() >= from).and_then(|c| Store::open(c, dir));
    let cached = store.as_ref().map(Store::load).unwrap_or_default();
    let skip = prefix_len(&root);
    let mut files: Vec<Option<File>> = Vec::with_capacity(found.len());
    let mut unread = Vec::new();
    let mut hits = 0;
    for (i, (path, stamp)) in found.iter().enumerate() {
        let rel = &path.as_os_str().as_encoded_bytes()[skip..];
        match (stamp, cached.get(rel)) {
            (Some(stamp), Some((was, id))) if stamp == was => {
                hits += 1;
                files.push(Some(File { path: path.clone(), id: id.map(str::to_owned), source: None }));
            }
            _ => {
                files.push(None);
                unread.push(i);
            }
        }
    }
    let paths: Vec<PathBuf> = unread.iter().map(|&i| found[i].0.clone()).collect();
    let read = catalog::read_sources(&paths)?;
    let mut scan = Scan::default();
    let mut undecodable = read.undecodable.into_iter().peekable();
    let mut sources = read.sources.into_iter();
    for (k, &i) in unread.iter().enumerate() {
        if undecodable.peek().is_some_and(|(at, _)| *at == k) {
            let (_, entry) = undecodable.next().expect("peeked");
            scan.undecodable.push((paths[k].clone(), entry));
        } else if let Some(source) = sources.next() {
            files[i] = Some(File::read(paths[k].clone(), source));
        }
    }
    if let Some(store) = &store {
        let stale = !unread.is_empty() || hits != cached.len();
        if stale {
            store.save(&found, &files, skip, now);
        }
    }
    scan.files = files.into_iter().flatten().collect();
    Ok(scan)
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

const STAMP_BYTES: usize = 8 + 12 + 12 + 8 + 8;

#[cfg(unix)]
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

/// Collects `(path, stamp)` of every flow file under `dir`, spelled under `spelled`: the same
/// files as `catalog::discover`'s walk (folders recursed into, symbolic links followed).
fn walk(dir: &Path, spelled: &Path, out: &mut Vec<(PathBuf, Option<Stamp>)>) -> Result<(), Error> {
    let read = |e| Error::Read { path: dir.display().to_string(), source: e };
    for entry in std::fs::read_dir(dir).map_err(read)? {
        let entry = entry.map_err(read)?;
        let path = spelled.join(entry.file_name());
        // A plain file is asked about relative to its open folder, without following links; a
        // link (or a file system that does not say what an entry is) is followed.
        let meta = match entry.file_type() {
            Ok(t) if t.is_dir() => {
                walk(&entry.path(), &path, out)?;
                continue;
            }
            Ok(t) if t.is_file() => entry.metadata(),
            _ => std::fs::metadata(entry.path()),
        };
        if meta.as_ref().is_ok_and(std::fs::Metadata::is_dir) {
            walk(&entry.path(), &path, out)?;
        } else if catalog::is_flow_file(&path) {
            out.push((path, meta.ok().as_ref().and_then(stamp)));
        }
    }
    Ok(())
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

/// A cache file's entries: by path relative to the folder, the stamp and the id recorded.
type Cached<'a> = HashMap<&'a [u8], (Stamp, Option<&'a str>)>;

/// One folder's cache file.
struct Store {
    file: PathBuf,
    folder: Vec<u8>,
    /// The cache file's bytes, when it could be read.
    bytes: Vec<u8>,
}

impl Store {
    /// The cache file of `dir` in the folder `cache`; `None` when `dir` has no canonical path,
    /// or when the cache folder would be inside it.
    fn open(cache: &Path, dir: &Path) -> Option<Store> {
        let canonical = std::fs::canonicalize(dir).ok()?;
        if cache.starts_with(&canonical) || cache.starts_with(dir) {
            return None;
        }
        let folder = canonical.as_os_str().as_encoded_bytes().to_vec();
        let file = cache.join(format!("ids-{:016x}", checksum(&folder)));
        let bytes = read_private(&file).unwrap_or_default();
        Some(Store { file, folder, bytes })
    }

    /// The recorded files by path relative to the folder; empty unless the file is whole, of
    /// this version, and for this folder.
    fn load(&self) -> Cached<'_> {
        parse(&self.bytes, &self.folder).unwrap_or_default()
    }

    /// Records the files whose times are old enough to rely on; a failure leaves no cache, or
    /// the old one, never half a file (it is written beside and renamed into place).
    fn save(&self, found: &[(PathBuf, Option<Stamp>)], files: &[Option<File>], skip: usize, now: SystemTime) {
        let mut out = Vec::with_capacity(64 + found.len() * (STAMP_BYTES + 48));
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT.to_le_bytes());
        put_bytes(&mut out, env!("CARGO_PKG_VERSION").as_bytes());
        put_bytes(&mut out, &self.folder);
        let kept: Vec<(&[u8], &Stamp, Option<&str>)> = found
            .iter()
            .zip(files)
            .filter_map(|((path, stamp), file)| {
                let (stamp, file) = (stamp.as_ref()?, file.as_ref()?);
                let rel = &path.as_os_str().as_encoded_bytes()[skip..];
                (!racy(stamp, now)).then_some((rel, stamp, file.id.as_deref()))
            })
            .collect();
        out.extend_from_slice(&(kept.len() as u64).to_le_bytes());
        for (rel, stamp, id) in kept {
            put_bytes(&mut out, rel);
            match id {
                Some(id) => put_bytes(&mut out, id.as_bytes()),
                None => out.extend_from_slice(&u32::MAX.to_le_bytes()),
            }
            out.extend_from_slice(&stamp.size.to_le_bytes());
            for (secs, nanos) in [stamp.mtime, stamp.ctime] {
                out.extend_from_slice(&secs.to_le_bytes());
                out.extend_from_slice(&nanos.to_le_bytes());
            }
            out.extend_from_slice(&stamp.dev.to_le_bytes());
            out.extend_from_slice(&stamp.ino.to_le_bytes());
        }
        let sum = checksum(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        let _ = write_private(&self.file, &out);
    }
}

/// Reads the cache file unless others may write to it (then it is not ours to trust).
fn read_private(path: &Path) -> Option<Vec<u8>> {
    use std::io::Read as _;
    let mut file = std::fs::File::open(path).ok()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if file.metadata().ok()?.permissions().mode() & 0o022 != 0 {
            return None;
        }
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).ok()?;
    Some(bytes)
}

/// Writes beside `path` and renames into place, readable and writable by the user only.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
        builder.mode(0o700);
        options.mode(0o600);
    }
    builder.create(dir)?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let written = options.open(&tmp).and_then(|mut f| f.write_all(bytes)).and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// A cache file's entries, or `None` unless it is whole (its checksum), of this format and
/// version, and for `folder`.
fn parse<'a>(bytes: &'a [u8], folder: &[u8]) -> Option<Cached<'a>> {
    let (body, sum) = bytes.split_at_checked(bytes.len().checked_sub(8)?)?;
    if checksum(body) != u64::from_le_bytes(sum.try_into().ok()?) {
        return None;
    }
    let mut r = Reader(body);
    if r.take(MAGIC.len())? != MAGIC || r.u32()? != FORMAT || r.bytes()? != env!("CARGO_PKG_VERSION").as_bytes() {
        return None;
    }
    if r.bytes()? != folder {
        return None;
    }
    let count = usize::try_from(r.u64()?).ok()?;
    let mut entries = HashMap::with_capacity(count.min(body.len() / STAMP_BYTES));
    for _ in 0..count {
        let rel = r.bytes()?;
        let id = match r.u32()? {
            u32::MAX => None,
            len => Some(std::str::from_utf8(r.take(len as usize)?).ok()?),
        };
        let size = r.u64()?;
        let mtime = (r.u64()? as i64, r.u32()?);
        let ctime = (r.u64()? as i64, r.u32()?);
        let (dev, ino) = (r.u64()?, r.u64()?);
        entries.insert(rel, (Stamp { size, mtime, ctime, dev, ino }, id));
    }
    r.0.is_empty().then_some(entries)
}

/// Reads little-endian numbers and length-prefixed byte strings off a slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = self.u32()? as usize;
        self.take(len)
    }
}

/// FNV-1a over 8-byte words, rotated: every step is a bijection of the running value, so a
/// change to any one word always changes the result. It guards against torn and damaged files,
/// not against someone who can write the user's cache folder.
fn checksum(bytes: &[u8]) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ bytes.len() as u64;
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        h = (h ^ u64::from_le_bytes(word.try_into().unwrap_or_default())).wrapping_mul(PRIME).rotate_left(23);
    }
    for &b in words.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(PRIME).rotate_left(23);
    }
    h
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
        scan.files.iter().map(|f| (name(&f.path), f.id.clone(), f.source.is_some())).collect()
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
    fn a_cache_file_is_read_back_only_whole_and_for_its_folder() {
        let stamp = Stamp { size: 9, mtime: (1, 2), ctime: (3, 4), dev: 5, ino: 6 };
        let found = vec![(PathBuf::from("x/a.yaml"), Some(stamp)), (PathBuf::from("x/b.yaml"), Some(stamp))];
        let files = vec![
            Some(File { path: found[0].0.clone(), id: Some("f.a".into()), source: None }),
            Some(File { path: found[1].0.clone(), id: None, source: None }),
        ];
        let cache = temp("roundtrip");
        let store = Store { file: cache.join("ids"), folder: b"/x".to_vec(), bytes: Vec::new() };
        store.save(&found, &files, 2, SystemTime::now());
        let bytes = std::fs::read(cache.join("ids")).expect("written");
        let entries = parse(&bytes, b"/x").expect("whole");
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[&b"a.yaml"[..]], (stamp, Some("f.a")));
        assert_eq!(entries[&b"b.yaml"[..]], (stamp, None));
        assert!(parse(&bytes, b"/y").is_none(), "another folder's");
        for cut in [0, 1, 8, bytes.len() / 2, bytes.len() - 1] {
            assert!(parse(&bytes[..cut], b"/x").is_none(), "cut at {cut}");
        }
        let _ = std::fs::remove_dir_all(cache);
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
