//! The id index's cache file: its layout, reading it back only when whole, and writing it so
//! that a failure never leaves half a file.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::{Stamp, racy};
use crate::library::File;

/// What the cache file's layout and the id scan it records are; bump it when either changes
/// (`library::declared_id` included), so that older caches are ignored.
const FORMAT: u32 = 3;
const MAGIC: &[u8; 12] = b"flowcat-ids\0";

/// The fixed part of an entry in the cache file: the path's length, where its id is in the run
/// of ids and its length, the stamp, the sorted place.
const ENTRY_BYTES: usize = 4 + 4 + 4 + 8 + 12 + 12 + 8 + 8 + 8;

/// One file as the cache recorded it: its path relative to the folder, the id its text
/// declared, its stamp, and its place among the folder's files sorted by path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Cached<'a> {
    pub rel: &'a [u8],
    pub id: Option<&'a str>,
    pub stamp: Stamp,
    pub sorted: usize,
}

/// One folder's cache file.
pub(super) struct Store {
    file: PathBuf,
    pub folder: Vec<u8>,
    /// The cache file's bytes, when it could be read.
    pub bytes: Vec<u8>,
}

impl Store {
    /// The cache file of `dir` in the folder `cache`; `None` when `dir` has no canonical path,
    /// or when the cache folder would be inside it.
    pub fn open(cache: &Path, dir: &Path) -> Option<Store> {
        let canonical = std::fs::canonicalize(dir).ok()?;
        if cache.starts_with(&canonical) || cache.starts_with(dir) {
            return None;
        }
        let folder = canonical.as_os_str().as_encoded_bytes().to_vec();
        let file = cache.join(format!("ids-{:016x}", checksum(&folder)));
        let bytes = read_private(&file).unwrap_or_default();
        Some(Store { file, folder, bytes })
    }

    /// Records, in the order of the walk, the files whose times are old enough to rely on; a
    /// failure leaves no cache, or the old one, never half a file (it is written beside and
    /// renamed into place).
    pub fn save(
        &self,
        order: &[usize],
        stamps: &[Option<Stamp>],
        slots: &[Option<File>],
        skip: usize,
        now: SystemTime,
    ) {
        let kept: Vec<Cached<'_>> = order
            .iter()
            .zip(stamps)
            .filter_map(|(&sorted, stamp)| {
                let (stamp, file) = ((*stamp)?, slots[sorted].as_ref()?);
                let rel = &file.path.as_os_str().as_encoded_bytes()[skip..];
                (!racy(&stamp, now)).then_some(Cached { rel, id: file.id.as_deref(), stamp, sorted })
            })
            .collect();
        let _ = write_private(&self.file, &encode(&self.folder, &kept));
    }
}

/// The cache file's bytes: a header naming the format, the version and the folder, the
/// entries, and a checksum of all that.
fn encode(folder: &[u8], entries: &[Cached<'_>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + folder.len() + entries.len() * (ENTRY_BYTES + 48));
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT.to_le_bytes());
    put_bytes(&mut out, env!("CARGO_PKG_VERSION").as_bytes());
    put_bytes(&mut out, folder);
    // Every id in one run of text, checked as UTF-8 once when read back; entries point into it.
    let ids: String = entries.iter().filter_map(|e| e.id).collect();
    put_bytes(&mut out, ids.as_bytes());
    out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    let mut at = 0;
    for e in entries {
        put_bytes(&mut out, e.rel);
        let (start, len) = match e.id {
            Some(id) => (at, id.len() as u32),
            None => (0, u32::MAX),
        };
        at += e.id.map_or(0, |id| id.len() as u32);
        out.extend_from_slice(&start.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&e.stamp.size.to_le_bytes());
        for (secs, nanos) in [e.stamp.mtime, e.stamp.ctime] {
            out.extend_from_slice(&secs.to_le_bytes());
            out.extend_from_slice(&nanos.to_le_bytes());
        }
        out.extend_from_slice(&e.stamp.dev.to_le_bytes());
        out.extend_from_slice(&e.stamp.ino.to_le_bytes());
        out.extend_from_slice(&(e.sorted as u64).to_le_bytes());
    }
    let sum = checksum(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

/// Reads the cache file unless others may write to it (then it is not ours to trust).
fn read_private(path: &Path) -> Option<Vec<u8>> {
    use std::io::Read as _;
    let mut file = std::fs::File::open(path).ok()?;
    let meta = file.metadata().ok()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if meta.permissions().mode() & 0o022 != 0 {
            return None;
        }
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).ok()?.saturating_add(1));
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
pub(super) fn parse<'a>(bytes: &'a [u8], folder: &[u8]) -> Option<Vec<Cached<'a>>> {
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
    let ids = std::str::from_utf8(r.bytes()?).ok()?;
    let count = usize::try_from(r.u64()?).ok()?;
    let mut entries = Vec::with_capacity(count.min(body.len() / ENTRY_BYTES));
    for _ in 0..count {
        let rel = r.bytes()?;
        let id = match (r.u32()? as usize, r.u32()?) {
            (_, u32::MAX) => None,
            (start, len) => Some(ids.get(start..start.checked_add(len as usize)?)?),
        };
        let size = r.u64()?;
        let mtime = (r.u64()? as i64, r.u32()?);
        let ctime = (r.u64()? as i64, r.u32()?);
        let (dev, ino) = (r.u64()?, r.u64()?);
        let sorted = usize::try_from(r.u64()?).ok()?;
        entries.push(Cached { rel, id, stamp: Stamp { size, mtime, ctime, dev, ino }, sorted });
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

    #[test]
    fn a_cache_file_is_read_back_only_whole_and_for_its_folder() {
        let stamp = Stamp { size: 9, mtime: (1, 2), ctime: (3, 4), dev: 5, ino: 6 };
        let entries = [
            Cached { rel: b"b.yaml", id: Some("f.b"), stamp, sorted: 1 },
            Cached { rel: b"a.yaml", id: None, stamp: Stamp { ino: 7, ..stamp }, sorted: 0 },
        ];
        let bytes = encode(b"/x", &entries);
        assert_eq!(parse(&bytes, b"/x").expect("whole"), entries);
        assert!(parse(&bytes, b"/y").is_none(), "another folder's");
        for cut in [0, 1, 8, bytes.len() / 2, bytes.len() - 1] {
            assert!(parse(&bytes[..cut], b"/x").is_none(), "cut at {cut}");
        }
        for at in [0, 12, bytes.len() / 2, bytes.len() - 9, bytes.len() - 1] {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x10;
            assert!(parse(&damaged, b"/x").is_none(), "a byte changed at {at}");
        }
    }
}
