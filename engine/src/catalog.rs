//! The catalog: every flow file under some folders, found by id, each validated against the
//! others' signatures so that subflow calls are checked like function calls.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use petgraph::algo::tarjan_scc;
use petgraph::graph::DiGraph;

use crate::compile::{Flow, compile};
use crate::diag::{Diagnostic, Diags, Source};
use crate::kind::{Registry, Signatures};
use crate::load::{Parsed, parse};
use crate::model::Signature;

/// Failing to read the catalog itself (not a problem inside a flow).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read `{path}`: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("`{0}` is neither a flow file nor a folder")]
    NotFound(String),
    /// A file that is not UTF-8, for callers that take sources, not a catalog (`load_files`
    /// reports it as a diagnostic instead).
    #[error("{}: {}; {}", .0.location(), .0.message, .0.help.as_deref().unwrap_or_default())]
    NotUtf8(Box<Diagnostic>),
}

/// One flow file of the catalog.
#[derive(Debug)]
pub struct Entry {
    pub path: String,
    pub source: Arc<Source>,
    pub flow: Option<Flow>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Flows by id, with every diagnostic found while loading them.
#[derive(Debug, Default)]
pub struct Catalog {
    pub entries: Vec<Entry>,
    signatures: HashMap<String, Signature>,
    ids: Vec<String>,
}

impl Signatures for Catalog {
    fn signature(&self, flow_id: &str) -> Option<&Signature> {
        self.signatures.get(flow_id)
    }

    fn flow_ids(&self) -> Vec<&str> {
        self.ids.iter().map(String::as_str).collect()
    }
}

/// The flow files under `paths` (files, or folders searched recursively), sorted, deduplicated.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Error> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            walk(path, &mut out)?;
        } else if path.is_file() {
            out.push(path.clone());
        } else {
            return Err(Error::NotFound(path.display().to_string()));
        }
    }
    // One `getcwd` for all the files, not one each: a catalog of hundreds of files is read on
    // every `flowcat run`.
    let cwd = std::env::current_dir().ok();
    let mut out: Vec<PathBuf> = out.iter().map(|p| normalize_in(p, cwd.as_deref())).collect();
    // By the path's bytes: `PathBuf`'s own order compares component by component, which was
    // the largest single cost of `flowcat run` over a catalog of hundreds of files.
    out.sort_unstable_by(|a, b| a.as_os_str().cmp(b.as_os_str()));
    out.dedup();
    Ok(out)
}

/// One spelling per file: relative to the working directory when inside it, without `./`.
pub fn normalize(path: &Path) -> PathBuf {
    normalize_in(path, std::env::current_dir().ok().as_deref())
}

pub(crate) fn normalize_in(path: &Path, cwd: Option<&Path>) -> PathBuf {
    let rel = match cwd {
        Some(cwd) if path.is_absolute() => path.strip_prefix(cwd).unwrap_or(path),
        _ => path,
    };
    rel.components().filter(|c| !matches!(c, std::path::Component::CurDir)).collect()
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), Error> {
    let read = |e| Error::Read { path: dir.display().to_string(), source: e };
    for entry in std::fs::read_dir(dir).map_err(read)? {
        let entry = entry.map_err(read)?;
        let path = entry.path();
        // The directory entry's own type saves a `stat` per file; a symbolic link (or a file
        // system that does not say) is asked about the way it always was.
        let is_dir = match entry.file_type() {
            Ok(t) if t.is_dir() => true,
            Ok(t) if t.is_file() => false,
            _ => path.is_dir(),
        };
        if is_dir {
            walk(&path, out)?;
        } else if is_flow_file(&path) {
            out.push(path);
        }
    }
    Ok(())
}

/// Whether a file found in a folder is a flow file: its extension (as `Path::extension` sees it)
/// is `yaml` or `yml`, and it is not a flow's test cases (`*.test.yaml`, [`is_test_file`]).
/// Told from the path's last bytes, without parsing the path: a catalog of hundreds of files is
/// listed on every `flowcat run`.
pub(crate) fn is_flow_file(path: &Path) -> bool {
    is_yaml_file(path) && !is_test_file(path)
}

/// Whether a file holds test cases for `flowcat test`: its name ends in `.test.yaml` or
/// `.test.yml` (with something before it).
pub fn is_test_file(path: &Path) -> bool {
    let bytes = path.as_os_str().as_encoded_bytes();
    let ends = |ext: &[u8]| {
        bytes.len() > ext.len()
            && bytes.ends_with(ext)
            && !std::path::is_separator(char::from(bytes[bytes.len() - ext.len() - 1]))
    };
    ends(b".test.yaml") || ends(b".test.yml")
}

fn is_yaml_file(path: &Path) -> bool {
    let bytes = path.as_os_str().as_encoded_bytes();
    // After at least one character of the name: `.yaml` alone is a hidden file, not an extension.
    let ends = |ext: &[u8]| {
        bytes.len() > ext.len()
            && bytes.ends_with(ext)
            && !std::path::is_separator(char::from(bytes[bytes.len() - ext.len() - 1]))
    };
    ends(b".yaml") || ends(b".yml")
}

/// Reads the files; a file that cannot be read or is not UTF-8 is an error, a flow with
/// problems is not.
pub fn read(paths: &[PathBuf]) -> Result<Vec<Arc<Source>>, Error> {
    let read = read_sources(paths)?;
    match read.undecodable.into_iter().next() {
        Some((_, mut entry)) => Err(Error::NotUtf8(Box::new(entry.diagnostics.remove(0)))),
        None => Ok(read.sources),
    }
}

/// One file's source, or, when it is not UTF-8, an entry holding the diagnostic that says so.
/// The one place where flow files are read from disk and decoded.
pub(crate) fn read_one(path: &Path) -> Result<Result<Arc<Source>, Entry>, Error> {
    let bytes = std::fs::read(path).map_err(|e| Error::Read { path: path.display().to_string(), source: e })?;
    Ok(match crate::decode::decode(path.display().to_string(), bytes) {
        Ok(source) => Ok(Arc::new(source)),
        Err(d) => {
            Err(Entry { path: d.source.path.clone(), source: d.source.clone(), flow: None, diagnostics: vec![*d] })
        }
    })
}

/// Files read by [`read_sources`]: the sources, and the files that are not UTF-8 with their
/// place among the paths and the entry that says so.
#[derive(Debug, Default)]
pub struct Read {
    pub sources: Vec<Arc<Source>>,
    pub undecodable: Vec<(usize, Entry)>,
}

/// Below this many files one thread reads them; above, the available cores share the work, so
/// that `flowcat run` over a catalog of hundreds of files waits on the disk less.
const PARALLEL_FROM: usize = 64;

/// Reads the files, several at once when there are many; a file that cannot be read is an
/// error, one that is not UTF-8 an entry holding its diagnostic.
pub fn read_sources(paths: &[PathBuf]) -> Result<Read, Error> {
    let results: Vec<Result<Result<Arc<Source>, Entry>, Error>> = if paths.len() < PARALLEL_FROM {
        paths.iter().map(|p| read_one(p)).collect()
    } else {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 8);
        let chunk = paths.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let workers: Vec<_> = paths
                .chunks(chunk)
                .map(|part| scope.spawn(move || part.iter().map(|p| read_one(p)).collect::<Vec<_>>()))
                .collect();
            // `read_one` does not panic; if it ever did, the panic goes on rather than a file
            // going missing from the catalog.
            workers.into_iter().flat_map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect()
        })
    };
    let mut read = Read::default();
    for (i, result) in results.into_iter().enumerate() {
        match result? {
            Ok(source) => read.sources.push(source),
            Err(entry) => read.undecodable.push((i, entry)),
        }
    }
    Ok(read)
}

/// Reads and validates the files: `read` then `Catalog::load`, except that a file that is not
/// UTF-8 is a diagnostic in its entry, in its place among the others, like any mistake in a file.
pub fn load_files(paths: &[PathBuf], registry: &Registry) -> Result<Catalog, Error> {
    let Read { sources, undecodable } = read_sources(paths)?;
    let mut catalog = Catalog::load(sources, registry);
    // In ascending order, each index is right once the entries before it are in.
    for (i, entry) in undecodable {
        catalog.entries.insert(i, entry);
    }
    Ok(catalog)
}

impl Catalog {
    /// Validates every source against the others.
    pub fn load(sources: Vec<Arc<Source>>, registry: &Registry) -> Catalog {
        let mut catalog = Catalog::default();
        let mut parsed: Vec<Result<Parsed, Diags>> = sources.into_iter().map(|s| parse(s, registry)).collect();
        catalog.index_signatures(&mut parsed);
        for p in parsed {
            let entry = match p {
                Ok(mut p) => {
                    let flow = compile(&mut p, registry, &catalog);
                    Entry {
                        path: p.diags.source.path.clone(),
                        source: p.diags.source.clone(),
                        flow,
                        diagnostics: p.diags.list,
                    }
                }
                Err(d) => {
                    Entry { path: d.source.path.clone(), source: d.source.clone(), flow: None, diagnostics: d.list }
                }
            };
            catalog.entries.push(entry);
        }
        catalog.check_subflow_cycles();
        catalog
    }

    /// Records each signature; a second flow with the same id is an error in its own file.
    /// Reported in both files, so that validating either one shows it.
    fn index_signatures(&mut self, parsed: &mut [Result<Parsed, Diags>]) {
        let mut first: HashMap<String, usize> = HashMap::new();
        for i in 0..parsed.len() {
            let Ok(p) = &parsed[i] else { continue };
            let id = p.signature.id.clone();
            let Some(&f) = first.get(&id) else {
                first.insert(id.clone(), i);
                self.ids.push(id.clone());
                self.signatures.insert(id, p.signature.clone());
                continue;
            };
            let paths =
                [&parsed[f], &parsed[i]].map(|p| p.as_ref().map(|p| p.signature.path.clone()).unwrap_or_default());
            for (at, other) in [(i, &paths[0]), (f, &paths[1])] {
                if let Ok(p) = &mut parsed[at] {
                    let span = p.root.get("id").map(|n| n.span);
                    p.diags
                        .error("duplicate-flow", span, format!("flow id `{id}` is also used by `{other}`"))
                        .label("two flows with this id")
                        .help("flow ids are unique in the catalog: rename one of them");
                }
            }
        }
    }

    /// Subflows that call each other in a loop would never finish: report each loop in every
    /// flow on it, at the node that makes the call.
    fn check_subflow_cycles(&mut self) {
        let mut graph = DiGraph::<usize, ()>::new();
        let index: HashMap<String, _> = self
            .entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| Some((e.flow.as_ref()?.id().to_owned(), graph.add_node(i))))
            .collect();
        for e in &self.entries {
            let Some(flow) = &e.flow else { continue };
            for n in &flow.plan.nodes {
                if let Some(to) = n.compiled.calls.as_ref().and_then(|c| index.get(&c.flow)) {
                    graph.add_edge(index[flow.id()], *to, ());
                }
            }
        }
        for scc in tarjan_scc(&graph) {
            let looped = scc.len() > 1 || graph.find_edge(scc[0], scc[0]).is_some();
            if !looped {
                continue;
            }
            let members: Vec<usize> = scc.iter().map(|n| graph[*n]).collect();
            let ids: Vec<String> =
                members.iter().filter_map(|i| Some(self.entries[*i].flow.as_ref()?.id().to_owned())).collect();
            for &i in &members {
                self.report_cycle(i, &ids);
            }
        }
    }

    fn report_cycle(&mut self, entry: usize, ids: &[String]) {
        let Some(flow) = self.entries[entry].flow.take() else { return };
        let mut diags = Diags::new(self.entries[entry].source.clone());
        for n in &flow.plan.nodes {
            let Some(call) = n.compiled.calls.as_ref().filter(|c| ids.contains(&c.flow)) else { continue };
            let mut path: Vec<&str> = vec![flow.id()];
            path.extend(ids.iter().map(String::as_str).filter(|i| *i != flow.id()));
            path.push(flow.id());
            diags
                .error(
                    "subflow-cycle",
                    Some(call.span),
                    format!("subflows call each other in a loop: {}", path.join(" → ")),
                )
                .label(format!("`{}` leads back to `{}`", call.flow, flow.id()))
                .help("a flow cannot run itself, directly or through other flows");
        }
        self.entries[entry].diagnostics.extend(diags.list);
    }

    /// A valid flow by id.
    pub fn get(&self, id: &str) -> Option<&Flow> {
        self.entries.iter().filter_map(|e| e.flow.as_ref()).find(|f| f.id() == id)
    }

    /// The entry of a flow by id, whether it compiled or not.
    pub fn entry(&self, id: &str) -> Option<&Entry> {
        let path = &self.signatures.get(id)?.path;
        self.entries.iter().find(|e| &e.path == path)
    }

    pub fn flows(&self) -> impl Iterator<Item = &Flow> {
        self.entries.iter().filter_map(|e| e.flow.as_ref())
    }

    pub fn diagnostics(&self) -> impl Iterator<Item = &Diagnostic> {
        self.entries.iter().flat_map(|e| e.diagnostics.iter())
    }

    /// Per valid flow, what its nodes need granted (`Compiled::permissions`), the nodes of the
    /// flows it calls (as subflows, transitively) included: sorted, without repeats. A subflow
    /// that did not compile adds nothing. Each flow is gathered once (memoised), so the cost is
    /// linear in the catalog's nodes.
    pub fn permissions(&self) -> HashMap<&str, Vec<String>> {
        let flows: HashMap<&str, &Flow> = self.flows().map(|f| (f.id(), f)).collect();
        let mut done: HashMap<&str, Vec<String>> = HashMap::new();
        for id in flows.keys() {
            gather(id, &flows, &mut done, &mut Vec::new());
        }
        done
    }
}

/// Gathers `id`'s permissions into `done`; `open` holds the flows being gathered (a loop of
/// subflows, an error reported elsewhere, is cut where it closes).
fn gather<'c>(
    id: &'c str,
    flows: &HashMap<&'c str, &'c Flow>,
    done: &mut HashMap<&'c str, Vec<String>>,
    open: &mut Vec<&'c str>,
) -> Vec<String> {
    if let Some(found) = done.get(id) {
        return found.clone();
    }
    let Some(flow) = flows.get(id) else { return Vec::new() };
    if open.contains(&id) {
        return Vec::new();
    }
    open.push(id);
    let mut all = std::collections::BTreeSet::new();
    for node in &flow.plan.nodes {
        all.extend(node.compiled.permissions.iter().cloned());
        if let Some(call) = &node.compiled.calls {
            all.extend(gather(call.flow.as_str(), flows, done, open));
        }
    }
    open.pop();
    let all: Vec<String> = all.into_iter().collect();
    done.insert(id, all.clone());
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_files_are_told_by_their_extension() {
        for name in
            ["a.yaml", "dir/a.yml", "..yaml", "a.b.yaml", ".yaml", "dir/.yml", "a.YAML", "a.yaml.bak", "yaml", "a.json"]
        {
            let path = Path::new(name);
            let want = matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"));
            assert_eq!(is_flow_file(path), want, "{name}");
            assert!(!is_test_file(path), "{name}");
        }
        for name in ["a.test.yaml", "dir/send-push.test.yml"] {
            assert!(is_test_file(Path::new(name)) && !is_flow_file(Path::new(name)), "{name}");
        }
        for name in [".test.yaml", "dir/.test.yml", "a.test.yaml.bak", "test.yaml"] {
            assert!(!is_test_file(Path::new(name)), "{name}");
        }
        assert!(is_flow_file(Path::new("test.yaml")));
    }

    #[test]
    fn many_files_are_read_side_by_side_and_keep_their_order() {
        let dir = std::env::temp_dir().join(format!("flowcat-read-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a folder");
        let mut paths = Vec::new();
        for i in 0..(PARALLEL_FROM * 2 + 3) {
            let path = dir.join(format!("f{i:03}.yaml"));
            let text: Vec<u8> = if i == 70 { b"id: caf\xe9\n".to_vec() } else { format!("id: f{i}\n").into_bytes() };
            std::fs::write(&path, text).expect("a file");
            paths.push(path);
        }
        let read = read_sources(&paths).expect("read");
        assert_eq!(read.sources.len(), paths.len() - 1);
        assert_eq!(read.sources[0].text, "id: f0\n");
        assert_eq!(read.sources[70].text, "id: f71\n", "the one after the bad file, in order");
        assert_eq!(read.undecodable.len(), 1);
        assert_eq!(read.undecodable[0].0, 70);
        assert!(
            read.undecodable[0].1.diagnostics[0].message.contains("0xE9"),
            "{:?}",
            read.undecodable[0].1.diagnostics
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
