//! `flowcat validate` end to end: every file in `tests/broken/` holds one mistake an author makes,
//! and its snapshot is what the real binary prints for it (exit code, stdout, stderr).
//!
//! The broken files call the small, valid flows of `tests/broken/catalog/` as subflows. Files in
//! subfolders of `tests/broken/` are not part of the folder test: they need more than one file
//! (two flows that call each other) or hold several mistakes on purpose.

use crate::common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{Output, flowcat};

const CATALOG: &str = "tests/broken/catalog";

/// `flowcat --catalog tests/broken/catalog validate ARGS`.
fn validate(args: &[&str]) -> Output {
    let mut all = vec!["--catalog", CATALOG, "validate"];
    all.extend_from_slice(args);
    flowcat(&all)
}

/// The snapshot text, with the workspace's absolute path (which must not appear) made stable.
fn report(out: &Output) -> String {
    out.snapshot().replace(env!("CARGO_MANIFEST_DIR"), "[ROOT]")
}

/// `tests/broken/x.yaml` for a path found by `insta::glob!`, which is absolute and canonical.
fn relative(path: &Path) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = root.canonicalize().unwrap_or_else(|_| root.to_owned());
    let rel = path.strip_prefix(&root).expect("a file under the workspace");
    rel.to_str().expect("a UTF-8 path").replace('\\', "/")
}

/// The `file:line:col` of every diagnostic in the human output.
fn locations(stderr: &str) -> Vec<&str> {
    stderr.lines().filter_map(|l| l.trim_start().strip_prefix("--> ")).collect()
}

#[test]
fn broken_flows() {
    insta::glob!("broken/*.yaml", |path| {
        let rel = relative(path);
        let out = validate(&[&rel]);
        // A broken flow is a finding (1), or a warning only (0); never a usage error or a panic.
        assert!(matches!(out.code, 0 | 1), "{rel}: exit {}\n{}", out.code, out.stderr);
        assert!(out.stdout.is_empty(), "{rel}: the human report goes to stderr");
        assert!(out.stderr.ends_with(" warning\n") || out.stderr.ends_with(" warnings\n"), "{}", out.stderr);
        // Every diagnostic points into the file asked for, by the path as given.
        for at in locations(&out.stderr) {
            assert!(at.starts_with(&rel), "{rel}: a diagnostic points elsewhere: {at}");
        }
        insta::assert_snapshot!(report(&out));
    });
}

/// Every broken file's JSON report keeps `docs/flow-format.md`'s promise: 1-based lines and
/// columns, an exclusive end after the start, `0` for all four when there is no position, and
/// the same places as the human report.
#[test]
fn json_positions_keep_the_documented_promise() {
    insta::glob!("broken/*.yaml", |path| {
        let rel = relative(path);
        let human = validate(&[&rel]);
        let json = validate(&["--format", "json", &rel]);
        assert_eq!(json.code, human.code, "{rel}");
        let report: serde_json::Value = serde_json::from_str(&json.stdout).expect("valid JSON");
        let mut located = Vec::new();
        for d in report["diagnostics"].as_array().expect("a list of diagnostics") {
            let n = |key: &str| d[key].as_u64().unwrap_or_else(|| panic!("{rel}: `{key}` is not a number: {d}"));
            let (line, col, end_line, end_col) = (n("line"), n("column"), n("end_line"), n("end_column"));
            if line == 0 {
                assert_eq!((col, end_line, end_col), (0, 0, 0), "{rel}: {d}");
                located.push(rel.clone());
                continue;
            }
            assert!(col >= 1 && (end_line, end_col) > (line, col), "{rel}: {d}");
            located.push(format!("{rel}:{line}:{col}"));
        }
        assert_eq!(located, locations(&human.stderr), "{rel}");
    });
}

#[test]
fn yaml_1_1_spellings_stay_strings() {
    let out = validate(&["tests/broken/yaml11-strings-stay-strings.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stderr, "checked 1 flow: 0 errors, 0 warnings\n");
}

#[test]
fn the_catalog_of_the_broken_flows_is_clean() {
    let out = validate(&["--deny-warnings", CATALOG]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stderr, "checked 2 flows: 0 errors, 0 warnings\n");
}

#[test]
fn json_report() {
    let out = validate(&["--format", "json", "tests/broken/undefined-input.yaml"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(out.stderr, "", "the JSON report is all on stdout");
    let report: serde_json::Value = serde_json::from_str(&out.stdout).expect("valid JSON");
    assert_eq!(report["errors"], 1);
    assert_eq!(report["warnings"], 0);
    let diagnostics = report["diagnostics"].as_array().expect("a list of diagnostics");
    assert_eq!(diagnostics.len(), 1);
    for d in diagnostics {
        assert!(d["file"].is_string() && d["code"].is_string() && d["message"].is_string(), "{d}");
        assert!(d["line"].as_u64().is_some_and(|n| n > 0) && d["column"].as_u64().is_some_and(|n| n > 0), "{d}");
    }
    insta::assert_json_snapshot!(report);
}

/// The JSON report of the mistakes new authors make first, each a file of `tests/broken/`.
#[test]
fn json_reports_of_first_mistakes() {
    let names = [
        "not-utf8",
        "yaml-alias-bomb",
        "yaml-tab-after-spaces",
        "template-helper-arity",
        "template-operator",
        "template-unquoted",
    ];
    for name in names {
        let out = validate(&["--format", "json", &format!("tests/broken/{name}.yaml")]);
        assert_eq!((out.code, out.stderr.as_str()), (1, ""), "{name}");
        let report: serde_json::Value = serde_json::from_str(&out.stdout).expect("valid JSON");
        insta::assert_json_snapshot!(format!("json-{name}"), report);
    }
}

/// JSON and human output agree on where each problem is.
#[test]
fn json_and_human_reports_agree_on_locations() {
    let file = "tests/broken/several/several-mistakes.yaml";
    let human = validate(&[file]);
    let json = validate(&["--format", "json", file]);
    assert_eq!((human.code, json.code), (1, 1));
    let report: serde_json::Value = serde_json::from_str(&json.stdout).expect("valid JSON");
    let from_json: BTreeSet<String> = report["diagnostics"]
        .as_array()
        .expect("a list of diagnostics")
        .iter()
        .map(|d| format!("{}:{}:{}", d["file"].as_str().unwrap_or_default(), d["line"], d["column"]))
        .collect();
    let from_human: BTreeSet<String> = locations(&human.stderr).into_iter().map(str::to_owned).collect();
    assert_eq!(from_json, from_human);
}

#[test]
fn deny_warnings_fails_a_flow_with_only_warnings() {
    let file = "tests/broken/unused-set-node.yaml";
    let lenient = validate(&[file]);
    let strict = validate(&["--deny-warnings", file]);
    assert_eq!(lenient.code, 0, "{}", lenient.stderr);
    assert_eq!(strict.code, 1, "{}", strict.stderr);
    assert!(lenient.stderr.contains("warning[unused]"), "{}", lenient.stderr);
    assert_eq!(lenient.stderr, strict.stderr, "the flag changes the exit code, not the report");
}

#[test]
fn deny_warnings_leaves_a_clean_flow_alone() {
    let out = validate(&["--deny-warnings", "tests/broken/yaml11-strings-stay-strings.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[test]
fn an_unknown_flag_is_a_usage_error() {
    let out = validate(&["--strict", "tests/broken/undefined-input.yaml"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("unexpected argument '--strict'"), "{}", out.stderr);
    insta::assert_snapshot!(report(&out));
}

#[test]
fn a_missing_path_is_a_usage_error() {
    let out = validate(&["tests/broken/no-such-flow.yaml"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    insta::assert_snapshot!(report(&out));
}

#[test]
fn an_unknown_format_is_a_usage_error() {
    let out = validate(&["--format", "yaml", "tests/broken/undefined-input.yaml"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("invalid value 'yaml'"), "{}", out.stderr);
}

/// Validation gathers every problem: five independent mistakes, five errors, each at its place.
#[test]
fn every_mistake_is_reported_not_only_the_first() {
    let file = "tests/broken/several/several-mistakes.yaml";
    let out = validate(&[file]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.ends_with("checked 1 flow: 5 errors, 0 warnings\n"), "{}", out.stderr);
    let lines: BTreeSet<&str> =
        locations(&out.stderr).iter().filter_map(|at| at.strip_prefix(file)?.split(':').nth(1)).collect();
    assert_eq!(lines, BTreeSet::from(["10", "13", "14", "18", "23"]), "{}", out.stderr);
    insta::assert_snapshot!(report(&out));
}

/// Two flows that call each other: the loop is reported in both, at the call.
#[test]
fn subflows_calling_each_other_in_a_loop() {
    let out = validate(&["tests/broken/subflow-loop"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let at = locations(&out.stderr);
    assert_eq!(at, ["tests/broken/subflow-loop/ping.yaml:8:11", "tests/broken/subflow-loop/pong.yaml:8:11"]);
    insta::assert_snapshot!(report(&out));
}

/// `validate --watch` checks once, then again each time a flow file is saved: an error appears
/// with its place once the file breaks, and goes once it is fixed; the process keeps watching.
#[test]
fn validate_watch_checks_again_when_a_flow_file_is_saved() {
    use std::io::BufRead as _;
    use std::time::Duration;
    let dir = common::TempDir::new("watch");
    let flows = dir.path().join("flows");
    std::fs::create_dir_all(&flows).expect("mkdir");
    let good =
        "id: t.watched\nnodes:\n  - id: a\n    kind: set\n    values: { x: 1 }\noutputs:\n  x: \"{{nodes.a.x}}\"\n";
    let file = flows.join("watched.yaml");
    std::fs::write(&file, good).expect("write");
    let state = dir.path().join("state");
    let mut child = common::spawn_flowcat(dir.path(), &["validate", "--watch", "flows"], &state);
    let stderr = child.stderr.take().expect("stderr");
    let (tx, lines) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let mut wait_for = |needle: &str| {
        // Bounded: the watcher looks every 300 ms; 30 s is a stuck process, not a slow one.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    seen.push(line.clone());
                    if line.contains(needle) {
                        return;
                    }
                }
                Err(_) => panic!("no line with {needle:?} within 30 s; saw:\n{}", seen.join("\n")),
            }
        }
    };
    wait_for("checked 1 flow: 0 errors, 0 warnings");
    std::fs::write(&file, good.replace("kind: set", "kind: sett")).expect("break it");
    wait_for("--- changed: checked again");
    wait_for("unknown node kind `sett`");
    wait_for("watched.yaml:4:");
    wait_for("checked 1 flow: 1 error");
    std::fs::write(&file, good).expect("fix it");
    wait_for("checked 1 flow: 0 errors, 0 warnings");
    assert!(child.try_wait().expect("try_wait").is_none(), "still watching");
    let _ = child.kill();
    let _ = child.wait();
}
