//! The id index (`flowcat_engine::index`): with its cache, `run`, `graph`, `list` and `validate`
//! answer exactly as without it, through edits that keep a file's size (even with its
//! modification time put back), renames, new, removed and duplicate files, changed ids, a
//! damaged cache file and a cache folder that cannot be made.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

/// More files than `flowcat_engine::index::CACHED_FROM`, so that the cache is used.
const FILLERS: usize = 70;

fn filler(i: usize) -> String {
    format!(
        "id: fill.n{i:02}\nnodes:\n  - id: here\n    kind: set\n    values:\n      word: filler\noutputs:\n  word: \"{{{{nodes.here.word}}}}\"\n"
    )
}

const MAIN: &str =
    "id: t.main\nnodes:\n  - id: call\n    kind: subflow\n    flow: t.sub\noutputs:\n  word: \"{{nodes.call.word}}\"\n";

fn sub(id: &str, word: &str) -> String {
    format!(
        "id: {id}\nnodes:\n  - id: here\n    kind: set\n    values:\n      word: {word}\noutputs:\n  word: \"{{{{nodes.here.word}}}}\"\n"
    )
}

/// A catalog folder and a cache home, removed on drop.
struct Setup {
    root: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let root = std::env::temp_dir().join(format!("flowcat-index-e2e-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("flows")).expect("a folder");
        std::fs::create_dir_all(root.join("cache")).expect("a folder");
        for i in 0..FILLERS {
            std::fs::write(root.join(format!("flows/f-{i:02}.yaml")), filler(i)).expect("write");
        }
        std::fs::write(root.join("flows/main.yaml"), MAIN).expect("write");
        std::fs::write(root.join("flows/sub.yaml"), sub("t.sub", "one")).expect("write");
        Setup { root }
    }

    fn flows(&self, name: &str) -> PathBuf {
        self.root.join("flows").join(name)
    }

    /// Every command's exit code and output, with the cache home `cache` or with no cache.
    fn answers(&self, cache: Option<&Path>) -> Vec<String> {
        let env: Vec<(&str, &str)> = match cache {
            Some(dir) => vec![("XDG_CACHE_HOME", dir.to_str().expect("UTF-8"))],
            None => vec![("XDG_CACHE_HOME", ""), ("HOME", "")],
        };
        let commands: [&[&str]; 4] =
            [&["-q", "run", "t.main"], &["graph", "t.main", "--expand-subflows"], &["list"], &["validate"]];
        commands
            .iter()
            .map(|args| {
                let mut all = vec!["--catalog", "flows"];
                all.extend_from_slice(args);
                let out = common::flowcat_in(&self.root, &all, &env);
                // The only thing that differs from run to run: how long it took (`-q`: no live
                // view, whose lines say how long each node took).
                let text = out.snapshot();
                match text.find(" succeeded in ") {
                    Some(at) => {
                        let end = text[at..].find(" s\n").map_or(text.len(), |e| at + e);
                        format!("{}{}", &text[..at], &text[end..])
                    }
                    None => text,
                }
            })
            .collect()
    }

    /// Asserts that the cache changes nothing, and that `run` says `expected`.
    fn check(&self, step: &str, expected: &str) {
        let cached = self.answers(Some(&self.root.join("cache")));
        assert_eq!(cached, self.answers(None), "{step}: with the cache and without");
        assert!(cached[0].contains(expected), "{step}: expected `{expected}` in:\n{}", cached[0]);
    }

    /// Lets the files age past the window in which the index does not record them, then runs
    /// once so that the cache records every file.
    fn settle(&self) -> PathBuf {
        std::thread::sleep(Duration::from_millis(150));
        let out = common::flowcat_in(
            &self.root,
            &["--catalog", "flows", "graph", "t.main"],
            &[("XDG_CACHE_HOME", self.root.join("cache").to_str().expect("UTF-8"))],
        );
        assert!(out.code <= 1, "{}", out.snapshot());
        let files: Vec<PathBuf> = std::fs::read_dir(self.root.join("cache/flowcat"))
            .expect("the cache folder")
            .map(|e| e.expect("an entry").path())
            .collect();
        assert_eq!(files.len(), 1, "one cache file: {files:?}");
        files[0].clone()
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

#[test]
fn the_cache_never_changes_an_answer() {
    let s = Setup::new();
    s.check("a fresh catalog", "word: \"one\"");
    let cache = s.settle();

    // Nothing changed: the cache is used, not written again.
    let written = std::fs::metadata(&cache).and_then(|m| m.modified()).expect("mtime");
    s.check("nothing changed", "word: \"one\"");
    assert_eq!(std::fs::metadata(&cache).and_then(|m| m.modified()).expect("mtime"), written);

    std::fs::write(s.flows("sub.yaml"), sub("t.sub", "two")).expect("write");
    s.check("an edit that keeps the size", "word: \"two\"");
    s.settle();

    let mtime = std::fs::metadata(s.flows("sub.yaml")).and_then(|m| m.modified()).expect("mtime");
    std::fs::write(s.flows("sub.yaml"), sub("t.sub", "six")).expect("write");
    let file = std::fs::File::options().write(true).open(s.flows("sub.yaml")).expect("open");
    file.set_modified(mtime).expect("the modification time put back");
    s.check("an edit that keeps the size and the modification time", "word: \"six\"");
    s.settle();

    std::fs::rename(s.flows("sub.yaml"), s.flows("zz-sub.yaml")).expect("rename");
    s.check("a renamed file", "word: \"six\"");
    s.settle();

    std::fs::write(s.flows("dup.yaml"), sub("t.sub", "dup")).expect("write");
    s.check("a new file with an id already used", "flow `t.sub` has errors");
    s.settle();

    std::fs::remove_file(s.flows("dup.yaml")).expect("remove");
    s.check("a removed file", "word: \"six\"");
    s.settle();

    std::fs::write(s.flows("zz-sub.yaml"), sub("t.sux", "six")).expect("write");
    s.check("an id changed", "flow `t.main` has errors");
    s.settle();

    std::fs::write(s.flows("f-07.yaml"), sub("t.sub", "seven")).expect("write");
    s.check("another file taking the id", "word: \"seven\"");
    let cache = s.settle();

    // A cache file damaged where it records an id: not used.
    let mut bytes = std::fs::read(&cache).expect("read");
    let at = bytes.windows(5).position(|w| w == b"t.sub").expect("an id in the cache");
    bytes[at + 4] = b'x';
    std::fs::write(&cache, &bytes).expect("write");
    s.check("a damaged cache", "word: \"seven\"");
    std::fs::write(&cache, b"not a cache").expect("write");
    s.check("a cache file of something else", "word: \"seven\"");

    // A cache folder that cannot be made: a file is in the way.
    let blocked = s.root.join("blocked");
    std::fs::write(&blocked, "").expect("write");
    assert_eq!(s.answers(Some(&blocked)), s.answers(None), "a cache that cannot be written");
}
