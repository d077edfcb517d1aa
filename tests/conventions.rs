//! The binary's conventions end to end: one `--format human|json` spelling (plus `github` for
//! `validate`, `text` and `run --json` kept as aliases), `-q`, `--color` with `NO_COLOR` and
//! `CLICOLOR_FORCE`, `-` for a flow on stdin, completions and man pages, and an input given twice
//! refused rather than "the last wins".

use crate::common;

use std::io::Write as _;
use std::process::{Command, Stdio};

use common::{Output, flowcat};

const BROKEN: &str = "tests/broken/after-unknown-node.yaml";

/// Runs `flowcat ARGS` in the workspace root with `env` (and no inherited colour settings),
/// `stdin` written to its standard input.
fn flowcat_with(args: &[&str], env: &[(&str, &str)], stdin: &str) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_flowcat"));
    cmd.args(args).current_dir(env!("CARGO_MANIFEST_DIR"));
    for var in ["NO_COLOR", "CLICOLOR_FORCE", "RUST_LOG"] {
        cmd.env_remove(var);
    }
    let state = common::TempDir::new("state");
    cmd.env("FLOWCAT_STATE_DIR", state.path());
    cmd.envs(env.iter().copied()).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("the flowcat binary runs");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
    let out = child.wait_with_output().expect("the flowcat binary ends");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn validate_speaks_github_annotations() {
    let out = flowcat(&["validate", BROKEN, "--format", "github"]);
    assert_eq!(out.code, 1, "{}", out.snapshot());
    assert_eq!(
        out.stdout,
        "::error file=tests/broken/after-unknown-node.yaml,line=9,col=13,endLine=9,endColumn=21,title=flowcat unknown-node::`after:` names `greetign`, which is not a node of this flow%0Aexpected one of `greeting`%0Ahelp: did you mean `greeting`?\n"
    );
    assert_eq!(out.stderr, "");
}

#[test]
fn a_flow_on_stdin_is_validated_drawn_and_named_stdin() {
    let text = std::fs::read_to_string(BROKEN).expect("read");
    let out = flowcat_with(&["validate", "-", "--color", "never"], &[], &text);
    assert_eq!(out.code, 1, "{}", out.snapshot());
    assert!(out.stderr.contains(" --> <stdin>:9:13\n"), "{}", out.stderr);
    assert!(out.stderr.ends_with("checked 1 flow: 1 error, 0 warnings\n"), "{}", out.stderr);

    let good = std::fs::read_to_string("tests/fixtures/user-report.yaml").expect("read");
    let from_file = flowcat(&["graph", "tests/fixtures/user-report.yaml", "--format", "mermaid"]);
    let from_stdin = flowcat_with(&["graph", "-", "--format", "mermaid"], &[], &good);
    assert_eq!(from_stdin.code, 0, "{}", from_stdin.snapshot());
    assert_eq!(from_stdin.stdout, from_file.stdout);
    let json = flowcat_with(&["validate", "-", "--format", "json"], &[], &good);
    assert_eq!(json.code, 0, "{}", json.snapshot());
    assert!(json.stdout.contains("\"flows\": 1"), "{}", json.stdout);
}

#[test]
fn colour_follows_the_flag_no_color_and_clicolor_force() {
    let painted = |args: &[&str], env: &[(&str, &str)]| {
        let mut all = vec!["validate", BROKEN];
        all.extend_from_slice(args);
        let out = flowcat_with(&all, env, "");
        assert_eq!(out.code, 1, "{}", out.snapshot());
        out.stderr.contains('\x1b')
    };
    // stderr is a pipe here: `auto` does not paint it unless forced.
    assert!(!painted(&[], &[]));
    assert!(painted(&["--color", "always"], &[("NO_COLOR", "1")]));
    assert!(!painted(&["--color", "never"], &[("CLICOLOR_FORCE", "1")]));
    assert!(painted(&[], &[("CLICOLOR_FORCE", "1")]));
    assert!(!painted(&[], &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]));
    // An empty NO_COLOR is not set (no-color.org).
    assert!(painted(&[], &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "")]));
    let bad = flowcat(&["validate", "--color", "sometimes"]);
    assert_eq!(bad.code, 2, "{}", bad.snapshot());
}

#[test]
fn quiet_drops_the_summary_and_conflicts_with_verbose() {
    let out = flowcat(&["-q", "validate", "tests/fixtures/user-report.yaml"]);
    assert_eq!((out.code, out.stdout.as_str(), out.stderr.as_str()), (0, "", ""));
    let loud = flowcat(&["validate", "tests/fixtures/user-report.yaml"]);
    assert_eq!(loud.stderr, "checked 1 flow: 0 errors, 0 warnings\n");
    let both = flowcat(&["-q", "-v", "list"]);
    assert_eq!(both.code, 2, "{}", both.snapshot());
    assert!(both.stderr.contains("cannot be used with"), "{}", both.stderr);
}

#[test]
fn one_format_spelling_with_the_old_ones_as_aliases() {
    let human = flowcat(&["list", "--format", "human"]);
    assert_eq!(human.code, 0, "{}", human.snapshot());
    assert_eq!(flowcat(&["list", "--format", "text"]).stdout, human.stdout);
    assert_eq!(flowcat(&["list"]).stdout, human.stdout);
    let json = flowcat(&["list", "--format", "json"]);
    assert!(serde_json::from_str::<serde_json::Value>(&json.stdout).is_ok_and(|v| v.is_array()), "{}", json.stdout);
    let both = flowcat(&["run", "x", "--json", "--format", "human"]);
    assert_eq!(both.code, 2, "{}", both.snapshot());
    let dot = flowcat(&["graph", "tests/fixtures/user-report.yaml", "--format", "human"]);
    assert_eq!(dot.code, 2, "graph keeps its drawing formats: {}", dot.snapshot());
}

#[test]
fn an_input_given_twice_is_an_error_naming_it() {
    let out = flowcat(&["run", "tests/fixtures/user-report.yaml", "-i", "username=a", "-i", "username=b"]);
    assert_eq!(out.code, 2, "{}", out.snapshot());
    assert_eq!(out.stderr, "error: input `username` is given twice (`--input username=…`): give it once\n");
    let var = flowcat(&["run", "tests/fixtures/user-report.yaml", "--var", "v=1", "--var", "v=2"]);
    assert_eq!(var.stderr, "error: var `v` is given twice (`--var v=…`): give it once\n");
}

#[test]
fn completions_and_man_pages_come_from_the_parser() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = flowcat(&["completions", shell]);
        assert_eq!(out.code, 0, "{shell}: {}", out.snapshot());
        assert!(out.stdout.contains("flowcat") && out.stdout.contains("max-parallel"), "{shell}");
    }
    let man = flowcat(&["man"]);
    assert_eq!(man.code, 0, "{}", man.snapshot());
    assert!(man.stdout.contains(".TH flowcat 1"), "{}", man.stdout);
    let run = flowcat(&["man", "run"]);
    assert!(run.stdout.contains(".TH flowcat-run 1") && run.stdout.contains(r"\-\-max\-parallel"), "{}", run.stdout);
    let unknown = flowcat(&["man", "rnu"]);
    assert_eq!(unknown.code, 2, "{}", unknown.snapshot());
}

#[test]
fn a_flow_runs_from_stdin_and_verbose_traces_it() {
    let flow = "id: test.hello\ninputs:\n  name: { type: string }\nnodes:\n  - id: greet\n    kind: set\n    values:\n      text: \"hello {{inputs.name}}\"\noutputs:\n  text: \"{{nodes.greet.text}}\"\n";
    let plain = flowcat_with(&["run", "-", "-i", "name=ada", "--format", "json"], &[], flow);
    assert_eq!(plain.code, 0, "{}", plain.snapshot());
    let record: serde_json::Value = serde_json::from_str(&plain.stdout).expect("a JSON run record");
    assert_eq!(record["outputs"]["text"], "hello ada");
    assert!(!plain.stderr.contains("run finished"), "{}", plain.stderr);
    let alias = flowcat_with(&["run", "-", "-i", "name=ada", "--json"], &[], flow);
    assert_eq!(alias.code, 0, "{}", alias.snapshot());
    assert!(alias.stdout.contains("\"hello ada\""), "{}", alias.stdout);

    let verbose = flowcat_with(&["-v", "run", "-", "-i", "name=ada"], &[], flow);
    assert_eq!(verbose.code, 0, "{}", verbose.snapshot());
    assert!(verbose.stdout.contains("  text: \"hello ada\""), "{}", verbose.stdout);
    assert!(verbose.stderr.contains("run finished"), "{}", verbose.stderr);
    assert!(!verbose.stderr.contains("node succeeded"), "{}", verbose.stderr);
    let very = flowcat_with(&["-vv", "run", "-", "-i", "name=ada"], &[], flow);
    assert!(very.stderr.contains("node succeeded"), "{}", very.stderr);
    let quiet = flowcat_with(&["-q", "run", "-", "-i", "name=ada"], &[], flow);
    assert_eq!(quiet.stderr, "", "no live view with -q");
}
