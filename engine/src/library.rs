//! The flows a program can see before any is compiled: a base layer (the binary's built-in
//! flows) and an overlay (the user's own), indexed by id with a cheap scan of each file, so that
//! running one flow compiles only that flow and the subflows it may call. Overlay files may come
//! from the id index ([`crate::index`]) with their ids but not their text; such a file is read
//! only when a command needs it.
//!
//! Finding a flow by id or path, with its "did you mean" hint, lives here too ([`Unknown`]):
//! the binary, the runner and the embedding API all report an unknown flow the same way.

use std::collections::hash_map::Entry as Slot;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::catalog::{Catalog, Entry};
use crate::diag::Source;
use crate::kind::Registry;

/// No flow of that id or path: the message names the nearest id, or where to look.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no flow `{flow}` in the catalog{hint}")]
pub struct Unknown {
    pub flow: String,
    /// `; did you mean `x`?` or a pointer to `flowcat list`.
    pub hint: String,
}

impl Unknown {
    /// The one place that words an unknown flow.
    pub fn new<'a>(flow: &str, ids: impl IntoIterator<Item = &'a str>) -> Unknown {
        let hint = match crate::diag::did_you_mean(flow, ids) {
            Some(near) => format!("; did you mean `{near}`?"),
            None => "; `flowcat list` shows every flow".to_owned(),
        };
        Unknown { flow: flow.to_owned(), hint }
    }
}

/// A flow of the overlay that takes the place of a base flow with the same id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shadow {
    pub id: String,
    /// The overlay's file.
    pub path: String,
    /// The base flow's file, now hidden.
    pub hidden: String,
}

/// A flow file of a library: its path, the id it declares, and its text once read. A file known
/// from the id index ([`crate::index`]) is read only if a command needs it.
#[derive(Debug, Clone)]
pub struct File {
    pub path: PathBuf,
    /// The id its text declares, as the library's scan finds it (shared with the library's
    /// index of ids, not copied).
    pub id: Option<Arc<str>>,
    pub source: Option<Arc<Source>>,
}

impl File {
    /// A file read from `path`, with the id its text declares.
    pub fn read(path: PathBuf, source: Arc<Source>) -> File {
        File { path, id: declared_id(&source.text).map(Arc::from), source: Some(source) }
    }
}

/// Loading from a library failed before any flow was compiled.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Unknown(#[from] Unknown),
    /// A file needed now could not be read (or is no longer UTF-8).
    #[error(transparent)]
    Read(#[from] crate::catalog::Error),
}

/// Flow sources by id, not yet compiled.
#[derive(Debug, Default)]
pub struct Library {
    files: Vec<File>,
    /// The first and the last file of each id; the files between are chained by `twins`.
    by_id: HashMap<Arc<str>, (usize, usize), foldhash::fast::RandomState>,
    /// For each file, the next file with its id, if any (two flows of one layer may share one).
    twins: Vec<Option<usize>>,
    /// Ids with other characters than the usual ones, which the closure searches for as they are.
    odd: Vec<String>,
    /// Base flows hidden by the overlay file at that index, which has their id.
    hidden: Vec<(usize, Arc<Source>)>,
    /// Overlay files that are not UTF-8: no source, only the entry that says where and why;
    /// [`Library::load`] reports them with the rest.
    pub undecodable: Vec<crate::catalog::Entry>,
}

impl Library {
    /// `overlay` flows replace `base` flows of the same id. Two flows of one layer with the same
    /// id both stay: compiling them reports the duplicate in both files.
    pub fn new(base: Vec<Arc<Source>>, overlay: Vec<Arc<Source>>) -> Library {
        let overlay = overlay.into_iter().map(|s| File::read(PathBuf::from(&s.path), s)).collect();
        Library::layered(base, overlay)
    }

    /// [`Library::new`] with overlay files that may not be read yet (their ids from the index).
    /// The base files come first, then the overlay's.
    pub fn layered(base: Vec<Arc<Source>>, overlay: Vec<File>) -> Library {
        // The overlay is indexed first (it is the larger layer: each id is hashed once), to know
        // which base flows it hides; then the base files that stay are put before it.
        let mut library = Library {
            files: Vec::with_capacity(base.len() + overlay.len()),
            by_id: HashMap::with_capacity_and_hasher(base.len() + overlay.len(), Default::default()),
            twins: Vec::with_capacity(base.len() + overlay.len()),
            ..Library::default()
        };
        for file in overlay {
            library.push(file);
        }
        let mut base_files = Vec::new();
        for source in base {
            let id = declared_id(&source.text).map(Arc::<str>::from);
            match id.as_deref().and_then(|id| library.by_id.get(id)) {
                // The last overlay file of that id, should there be several.
                Some(&(_, last)) => library.hidden.push((last, source)),
                None => base_files.push(File { path: PathBuf::from(&source.path), id, source: Some(source) }),
            }
        }
        let kept = base_files.len();
        for (first, last) in library.by_id.values_mut() {
            (*first, *last) = (*first + kept, *last + kept);
        }
        for next in library.twins.iter_mut().flatten() {
            *next += kept;
        }
        for (o, _) in &mut library.hidden {
            *o += kept;
        }
        library.files.splice(0..0, base_files);
        library.twins.splice(0..0, std::iter::repeat_n(None, kept));
        for i in 0..kept {
            library.link(i);
        }
        library
    }

    fn push(&mut self, file: File) {
        self.files.push(file);
        self.twins.push(None);
        self.link(self.files.len() - 1);
    }

    /// Indexes file `i` (already in `files` and `twins`) by its id.
    fn link(&mut self, i: usize) {
        let Some(id) = &self.files[i].id else { return };
        match self.by_id.entry(id.clone()) {
            Slot::Occupied(mut e) => {
                let last = &mut e.get_mut().1;
                self.twins[*last] = Some(i);
                *last = i;
            }
            Slot::Vacant(e) => {
                if !id.bytes().all(|b| b.is_ascii() && is_id_char(char::from(b))) {
                    self.odd.push(id.to_string());
                }
                e.insert((i, i));
            }
        }
    }

    /// The files of an id, in file order.
    fn with_id(&self, id: &str) -> impl Iterator<Item = usize> + '_ {
        std::iter::successors(self.by_id.get(id).map(|(first, _)| *first), |&i| self.twins[i])
    }

    /// Every flow id, in file order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.files.iter().filter_map(|f| f.id.as_deref())
    }

    /// Overlay flows that replace a base flow of different text, among the files read so far
    /// (all of them after [`Library::load`]; the flow and its subflows after
    /// [`Library::load_for`]). An identical twin replaces it silently: a clone of flowcat's own
    /// repository sees its `flows/` as both.
    pub fn shadows(&self) -> Vec<Shadow> {
        self.hidden
            .iter()
            .filter_map(|(o, base)| {
                let file = &self.files[*o];
                let source = file.source.as_ref()?;
                let id = file.id.as_deref()?.to_owned();
                (source.text != base.text).then(|| Shadow { id, path: source.path.clone(), hidden: base.path.clone() })
            })
            .collect()
    }

    /// The file's source, read now if it was not yet.
    fn source(&mut self, i: usize) -> Result<Arc<Source>, crate::catalog::Error> {
        if let Some(source) = &self.files[i].source {
            return Ok(source.clone());
        }
        match crate::catalog::read_one(&self.files[i].path)? {
            Ok(source) => {
                self.files[i].source = Some(source.clone());
                Ok(source)
            }
            Err(mut entry) => Err(crate::catalog::Error::NotUtf8(Box::new(entry.diagnostics.remove(0)))),
        }
    }

    /// Compiles every flow (what `validate` and `list` need), reading any file not read yet.
    pub fn load(&mut self, registry: &Registry) -> Result<Catalog, crate::catalog::Error> {
        let mut sources = Vec::with_capacity(self.files.len());
        for i in 0..self.files.len() {
            if self.files[i].source.is_none() {
                match crate::catalog::read_one(&self.files[i].path)? {
                    Ok(source) => self.files[i].source = Some(source),
                    Err(entry) => {
                        self.undecodable.push(entry);
                        continue;
                    }
                }
            }
            sources.extend(self.files[i].source.clone());
        }
        let mut catalog = Catalog::load(sources, registry);
        catalog.entries.extend(self.undecodable.iter().map(|e| crate::catalog::Entry {
            path: e.path.clone(),
            source: e.source.clone(),
            flow: None,
            diagnostics: e.diagnostics.clone(),
        }));
        Ok(catalog)
    }

    /// The files of a flow named by id (all of them, should two share it) or by path.
    fn find(&self, flow: &str) -> Result<Vec<usize>, Unknown> {
        if self.by_id.contains_key(flow) {
            return Ok(self.with_id(flow).collect());
        }
        let path = crate::catalog::normalize(Path::new(flow));
        match self.files.iter().position(|f| f.path == path) {
            Some(i) => Ok(vec![i]),
            None => Err(Unknown::new(flow, self.ids())),
        }
    }

    /// Compiles the flow named `flow` (id or path) and every flow it may call, directly or
    /// through others, and nothing else: the cost of a run does not grow with the library. Only
    /// those files are read.
    pub fn load_for(&mut self, flow: &str, registry: &Registry) -> Result<Catalog, Error> {
        let closure = self.closure(self.find(flow)?)?;
        let sources = closure.into_iter().filter_map(|i| self.files[i].source.clone()).collect();
        Ok(Catalog::load(sources, registry))
    }

    /// The files `start` and those of every id their text mentions, transitively, each read. A
    /// subflow call names its flow literally, so this holds every flow a run can reach (and
    /// maybe a few more, e.g. an id quoted in a description: harmless).
    fn closure(&mut self, start: Vec<usize>) -> Result<Vec<usize>, crate::catalog::Error> {
        let mut seen: HashSet<usize> = HashSet::new();
        let mut todo = start;
        while let Some(i) = todo.pop() {
            if !seen.insert(i) {
                continue;
            }
            let source = self.source(i)?;
            let text = &source.text;
            let tokens = text.split(|c: char| !is_id_char(c)).filter(|t| !t.is_empty());
            // Ids with other characters than the usual ones are searched for as they are.
            let mentioned = tokens
                .filter(|t| self.by_id.contains_key(*t))
                .chain(self.odd.iter().map(String::as_str).filter(|o| text.contains(o)));
            for id in mentioned {
                todo.extend(self.with_id(id).filter(|j| !seen.contains(j)));
            }
        }
        let mut out: Vec<usize> = seen.into_iter().collect();
        out.sort_unstable();
        Ok(out)
    }
}

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// The `id:` a flow file declares: a top-level `id: value` line when there is one (a key at
/// column 0 cannot be inside a nested value or a block scalar), else what the YAML parser finds.
fn declared_id(text: &str) -> Option<String> {
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("id:") else { continue };
        let value = rest.split(" #").next().unwrap_or_default().trim();
        let unquoted = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        if !unquoted.is_empty() && unquoted.chars().all(is_id_char) {
            return Some(unquoted.to_owned());
        }
        break;
    }
    let root = crate::yaml::parse(text).ok().flatten()?;
    root.get("id").and_then(crate::yaml::Node::as_str).map(str::to_owned)
}

impl Catalog {
    /// A flow's entry by id or by path, compiled or not.
    pub fn find(&self, flow: &str) -> Result<&Entry, Unknown> {
        if let Some(entry) = self.entry(flow) {
            return Ok(entry);
        }
        let path = crate::catalog::normalize(Path::new(flow));
        let by_path = self.entries.iter().find(|e| Path::new(&e.path) == path);
        by_path.ok_or_else(|| Unknown::new(flow, self.flows().map(|f| f.id())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(path: &str, text: &str) -> Arc<Source> {
        Arc::new(Source { path: path.into(), text: text.into() })
    }

    #[test]
    fn ids_are_found_cheaply_and_otherwise_by_the_parser() {
        assert_eq!(declared_id("# c\nid: a.b_c # note\nnodes: []\n").as_deref(), Some("a.b_c"));
        assert_eq!(declared_id("id: \"q.x\"\n").as_deref(), Some("q.x"));
        assert_eq!(declared_id("{id: flow style, nodes: []}").as_deref(), Some("flow style"));
        assert_eq!(declared_id("nodes: []\n"), None);
        assert_eq!(declared_id("id: [\n"), None);
    }

    #[test]
    fn the_overlay_shadows_the_base_and_says_so_unless_identical() {
        let base = vec![source("b/x.yaml", "id: x\n"), source("b/y.yaml", "id: y\n")];
        let overlay = vec![source("o/x.yaml", "id: x\nname: mine\n"), source("o/y.yaml", "id: y\n")];
        let library = Library::new(base, overlay);
        let paths: Vec<String> = library.files.iter().map(|f| f.path.display().to_string()).collect();
        assert_eq!(paths, ["o/x.yaml", "o/y.yaml"]);
        let shadow = Shadow { id: "x".into(), path: "o/x.yaml".into(), hidden: "b/x.yaml".into() };
        assert_eq!(library.shadows(), [shadow]);
    }

    #[test]
    fn files_sharing_an_id_are_all_found_and_the_last_one_hides_the_base() {
        let base = vec![source("b/x.yaml", "id: x\n"), source("b/y.yaml", "id: y\n"), source("b/y2.yaml", "id: y\n")];
        let overlay = vec![
            source("o/x1.yaml", "id: x\n"),
            source("o/z.yaml", "id: z\n"),
            source("o/x2.yaml", "id: x\nname: 2\n"),
        ];
        let library = Library::new(base, overlay);
        let paths: Vec<String> = library.files.iter().map(|f| f.path.display().to_string()).collect();
        assert_eq!(paths, ["b/y.yaml", "b/y2.yaml", "o/x1.yaml", "o/z.yaml", "o/x2.yaml"]);
        assert_eq!(library.find("x"), Ok(vec![2, 4]));
        assert_eq!(library.find("y"), Ok(vec![0, 1]));
        assert_eq!(library.find("z"), Ok(vec![3]));
        assert_eq!(library.shadows(), [Shadow { id: "x".into(), path: "o/x2.yaml".into(), hidden: "b/x.yaml".into() }]);
    }

    #[test]
    fn the_closure_follows_mentioned_ids_transitively() {
        let mut library = Library::new(
            vec![
                source("a.yaml", "id: a\nnodes:\n  - flow: b\n"),
                source("b.yaml", "id: b\nnodes:\n  - flow: \"odd id\"\n"),
                source("c.yaml", "id: c\n"),
                source("d.yaml", "id: \"odd id\"\n"),
            ],
            Vec::new(),
        );
        assert_eq!(library.closure(vec![0]).expect("read"), [0, 1, 3]);
        assert_eq!(library.closure(vec![2]).expect("read"), [2]);
        assert_eq!(library.find("b.yaml"), Ok(vec![1]));
        assert_eq!(library.find("a"), Ok(vec![0]));
        let unknown = library.find("zzz").expect_err("unknown");
        assert_eq!(unknown.to_string(), "no flow `zzz` in the catalog; `flowcat list` shows every flow");
    }
}
