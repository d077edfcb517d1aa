//! Running one flow does not cost more with a larger catalog: `flowcat graph` (the loading
//! path of `flowcat run`: the local folder through the id index, then only the flow and its
//! subflows read and compiled) with a local catalog of 8 generated flows, then of 500, side by
//! side, with the ratio.
//!
//! `cargo bench --bench catalog`. Prints, for each catalog, the median and spread of: the real
//! binary end to end (a process per run) with the index's cache and without one, the index and
//! `load_for` in memory, and for contrast compiling the whole catalog (what `run` did before, and
//! what `validate` still does).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flowcat_engine::diag::Source;
use flowcat_engine::{Catalog, Library, index};
use flowcat_nodes::REGISTRY;

/// Runs in memory, and processes, of each measurement.
const RUNS: usize = 21;
const PROCESS_RUNS: usize = 41;
const TARGET: &str = "bench.flow_3";

/// A flow shaped like the catalog's: a slot, inputs with a pattern, a call of the built-in
/// `duo.admin.retrieve_user_id`, a REST call with extraction, a switch, a set and outputs.
fn flow(i: usize) -> String {
    format!(
        r#"id: bench.flow_{i}
name: Generated flow {i}
integrations:
  duo_admin:
    kind: duo_admin
inputs:
  username:
    type: string
    pattern: "[a-z0-9._-]+"
nodes:
  - id: user
    kind: subflow
    flow: duo.admin.retrieve_user_id
    with:
      username: "{{{{inputs.username}}}}"
  - id: phones
    kind: rest_call
    when: "{{{{nodes.user.found}}}}"
    integration: duo_admin
    method: GET
    path: /admin/v1/users/{{{{nodes.user.user_id}}}}/phones
    extract:
      ids:
        path: $.response[*].phone_id
        many: true
  - id: route
    kind: switch
    cases:
      - name: some
        when: "{{{{gt (len nodes.phones.ids) 0}}}}"
        then: [count]
  - id: count
    kind: set
    values:
      n: "{{{{len nodes.phones.ids}}}}"
outputs:
  phones:
    value: "{{{{nodes.count.n}}}}"
    default: 0
"#
    )
}

fn write_catalog(dir: &Path, n: usize) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("a temporary folder");
    for i in 0..n {
        std::fs::write(dir.join(format!("flow-{i}.yaml")), flow(i)).expect("written");
    }
}

/// Median, min and max.
type Spread = (Duration, Duration, Duration);

fn spread(mut times: Vec<Duration>) -> Spread {
    times.sort();
    (times[times.len() / 2], times[0], times[times.len() - 1])
}

/// Times every measurement `runs` times, interleaved: after a warm-up run of each, each round
/// runs every measurement once, starting one further along each round, so that the machine's
/// load (shared with others) and whatever one measurement leaves behind for the next weigh on
/// all of them alike. Returns every time of every measurement, in order.
fn interleaved(measures: &mut [Box<dyn FnMut() + '_>], runs: usize) -> Vec<Vec<Duration>> {
    for f in measures.iter_mut() {
        f();
    }
    let n = measures.len();
    let mut times = vec![Vec::with_capacity(runs); n];
    for round in 0..runs {
        for k in 0..n {
            let i = (round + k) % n;
            let start = Instant::now();
            measures[i]();
            times[i].push(start.elapsed());
        }
    }
    times
}

/// `flowcat graph` in a process of its own, with the id index's cache in `cache`, or none.
fn process(dir: &Path, cwd: &Path, cache: Option<&Path>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_flowcat"));
    cmd.args(["--catalog", dir.to_str().expect("UTF-8"), "graph", TARGET, "--expand-subflows"])
        .current_dir(cwd)
        .env_remove("FLOWCAT_CATALOG");
    match cache {
        Some(cache) => cmd.env("XDG_CACHE_HOME", cache),
        None => cmd.env("XDG_CACHE_HOME", "").env("HOME", ""),
    };
    let out = cmd.output().expect("the binary runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn sources(dir: &Path) -> Vec<Arc<Source>> {
    let files = flowcat_engine::catalog::discover(&[dir.to_owned()]).expect("discovered");
    flowcat_engine::catalog::read(&files).expect("read")
}

/// The built-in flows as the binary holds them (read from the repository here).
fn built_in() -> Vec<Arc<Source>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    sources(&root.join("flows")).into_iter().chain(sources(&root.join("examples"))).collect()
}

fn main() {
    let base = std::env::temp_dir().join(format!("flowcat-bench-catalog-{}", std::process::id()));
    let (cwd, cache) = (base.join("cwd"), base.join("cache"));
    std::fs::create_dir_all(&cwd).expect("a working folder");
    let sizes = [8, 500];
    let dirs: Vec<PathBuf> = sizes.iter().map(|n| base.join(format!("flows-{n}"))).collect();
    for (dir, n) in dirs.iter().zip(sizes) {
        write_catalog(dir, n);
    }
    // Files changed in the last 100 ms are not recorded by the index (their times could still
    // hide a change): a catalog is older than that when a person runs a flow of it.
    std::thread::sleep(Duration::from_millis(200));

    // The binary end to end, with the index's cache (the first run writes it) and without one.
    // Processes first, on their own: a process started after the in-memory measurements grew
    // this one's heap takes longer to start, whichever catalog it is given.
    let mut measures: Vec<Box<dyn FnMut() + '_>> = Vec::new();
    for cached in [Some(cache.as_path()), None] {
        for dir in &dirs {
            let cwd = &cwd;
            measures.push(Box::new(move || process(dir, cwd, cached)));
        }
    }
    let processes = interleaved(&mut measures, PROCESS_RUNS);
    drop(measures);

    let built = built_in();
    let cache_folder = cache.join("flowcat");
    let mut measures: Vec<Box<dyn FnMut() + '_>> = Vec::new();
    for dir in &dirs {
        // The library's part of a run in memory: the index (its cache warm), then the flow and
        // its subflows read and compiled.
        let (built, cache_folder) = (&built, &cache_folder);
        measures.push(Box::new(move || {
            let scan = index::scan(dir, Some(cache_folder), index::CACHED_FROM).expect("scanned");
            let mut library = Library::layered(built.clone(), scan.files);
            let catalog = library.load_for(TARGET, &REGISTRY).expect("found");
            assert!(catalog.get(TARGET).is_some());
        }));
    }
    for dir in &dirs {
        // For contrast: compiling the whole catalog (what `run` did before issue 10, and what
        // `validate` still does).
        let built = &built;
        measures.push(Box::new(move || {
            let mut all = built.clone();
            all.extend(sources(dir));
            let catalog = Catalog::load(all, &REGISTRY);
            assert!(catalog.get(TARGET).is_some());
        }));
    }
    let in_memory = interleaved(&mut measures, RUNS);
    drop(measures);
    let _ = std::fs::remove_dir_all(&base);

    let times: Vec<Vec<Duration>> = processes.into_iter().chain(in_memory).collect();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let cell = |t: &[Duration]| {
        let (median, min, max) = spread(t.to_vec());
        format!("{:.2} ms ({:.2}–{:.2})", ms(median), ms(min), ms(max))
    };
    println!(
        "median (min–max) of {PROCESS_RUNS} processes or {RUNS} runs in memory, interleaved; the target \
         `{TARGET}` calls one built-in flow"
    );
    println!(
        "| local flows | `flowcat graph`, index cached | `flowcat graph`, no cache | index + `load_for` in memory | whole catalog compiled |"
    );
    println!("|---|---|---|---|---|");
    let column = |c: usize, row: usize| &times[c * sizes.len() + row];
    for (row, n) in sizes.iter().enumerate() {
        let cells: Vec<String> = (0..4).map(|c| cell(column(c, row))).collect();
        println!("| {n} | {} |", cells.join(" | "));
    }
    let ratios: Vec<String> = (0..4)
        .map(|c| {
            let (large, small) = (spread(column(c, 1).clone()).0, spread(column(c, 0).clone()).0);
            // Also the median of the ratios of the two runs of each round, taken moments apart.
            let mut paired: Vec<f64> = column(c, 1).iter().zip(column(c, 0)).map(|(l, s)| ms(*l) / ms(*s)).collect();
            paired.sort_by(f64::total_cmp);
            format!("{:.2}× (paired {:.2}×)", ms(large) / ms(small), paired[paired.len() / 2])
        })
        .collect();
    println!("| 500 / 8 | {} |", ratios.join(" | "));
}
