//! Running one flow does not cost more with a larger catalog: `flowcat graph` (the loading
//! path of `flowcat run`: the library indexed, then only the flow and its subflows compiled)
//! with a local catalog of 8 generated flows, then of 500, side by side, with the ratio.
//!
//! `cargo bench --bench catalog`. Prints, for each catalog, the median and spread of: the real
//! binary end to end (a process per run), the library's `load_for` in memory, and for contrast
//! compiling the whole catalog (what `run` did before, and what `validate` still does).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flowcat_engine::diag::Source;
use flowcat_engine::{Catalog, Library};
use flowcat_nodes::REGISTRY;

const RUNS: usize = 21;
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

fn median(mut times: Vec<Duration>) -> (Duration, Duration, Duration) {
    times.sort();
    (times[times.len() / 2], times[0], times[times.len() - 1])
}

fn time(mut f: impl FnMut()) -> (Duration, Duration, Duration) {
    f();
    median(
        (0..RUNS)
            .map(|_| {
                let start = Instant::now();
                f();
                start.elapsed()
            })
            .collect(),
    )
}

fn process(dir: &Path, cwd: &Path) -> (Duration, Duration, Duration) {
    time(|| {
        let out = Command::new(env!("CARGO_BIN_EXE_flowcat"))
            .args(["--catalog", dir.to_str().expect("UTF-8"), "graph", TARGET, "--expand-subflows"])
            .current_dir(cwd)
            .env_remove("FLOWCAT_CATALOG")
            .output()
            .expect("the binary runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    })
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
    let cwd = base.join("cwd");
    std::fs::create_dir_all(&cwd).expect("a working folder");
    let mut rows = Vec::new();
    for n in [8, 500] {
        let dir: PathBuf = base.join(format!("flows-{n}"));
        write_catalog(&dir, n);
        let proc = process(&dir, &cwd);
        let load_for = time(|| {
            let mut library = Library::new(built_in(), sources(&dir));
            let catalog = library.load_for(TARGET, &REGISTRY).expect("found");
            assert!(catalog.get(TARGET).is_some());
        });
        let whole = time(|| {
            let mut all = built_in();
            all.extend(sources(&dir));
            let catalog = Catalog::load(all, &REGISTRY);
            assert!(catalog.get(TARGET).is_some());
        });
        rows.push((n, proc, load_for, whole));
    }
    let _ = std::fs::remove_dir_all(&base);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("{RUNS} runs each, median (min–max); the target `{TARGET}` calls one built-in flow");
    println!("| local flows | `flowcat graph` process | `Library::load_for` | whole catalog compiled |");
    println!("|---|---|---|---|");
    for (n, p, l, w) in &rows {
        let cell = |t: &(Duration, Duration, Duration)| format!("{:.1} ms ({:.1}–{:.1})", ms(t.0), ms(t.1), ms(t.2));
        println!("| {n} | {} | {} | {} |", cell(p), cell(l), cell(w));
    }
    let ratio = |f: fn(&(usize, _, _, _)) -> Duration| ms(f(&rows[1])) / ms(f(&rows[0]));
    println!(
        "500 / 8: process {:.2}×, load_for {:.2}×, whole catalog {:.2}×",
        ratio(|r| r.1.0),
        ratio(|r| r.2.0),
        ratio(|r| r.3.0)
    );
}
