//! `flowcat test`: the real binary on the catalog's shipped test cases (every node and switch
//! branch of every flow and example run by some case, no journal written), on flows broken on
//! purpose (a case must fail), on test files with mistakes (errors at their place with "did you
//! mean"), and in its JSON and JUnit formats.

use crate::common;

use std::path::Path;

use common::{TempDir, flowcat_in};
use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Copies a flow and its test file from the repository into `dir`, changing the flow with `edit`.
fn copy_broken(dir: &Path, flow: &str, edit: impl Fn(&str) -> String) {
    let text = std::fs::read_to_string(root().join(flow)).expect("the flow");
    let broken = edit(&text);
    assert_ne!(broken, text, "the edit must change {flow}");
    let name = Path::new(flow).file_name().expect("a file name");
    std::fs::write(dir.join(name), broken).expect("write the flow");
    let test = flow.replace(".yaml", ".test.yaml");
    let test_name = Path::new(&test).file_name().expect("a file name");
    std::fs::copy(root().join(&test), dir.join(test_name)).expect("copy the test file");
}

#[test]
fn the_shipped_tests_pass_and_run_every_node_and_branch_of_every_flow() {
    let state = TempDir::new("no-journal");
    let out =
        flowcat_in(root(), &["test", "flows", "examples", "--format", "json"], &[("FLOWCAT_STATE_DIR", state.str())]);
    let report: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stderr));
    let failures: Vec<&Value> = report["suites"]
        .as_array()
        .expect("suites")
        .iter()
        .flat_map(|s| s["cases"].as_array().expect("cases"))
        .filter(|c| c["status"] != "passed")
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(report["passed"].as_u64().expect("passed") >= 100, "{}", report["passed"]);
    // Every flow and example has a test file, and its cases ran every node and branch.
    let mut flows = Vec::new();
    for dir in ["flows/duo", "examples"] {
        for entry in std::fs::read_dir(root().join(dir)).expect("the folder").flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".yaml") && !name.ends_with(".test.yaml") {
                let test = entry.path().with_extension("test.yaml");
                assert!(test.exists(), "{dir}/{name} has no test file");
                flows.push(name);
            }
        }
    }
    let coverage = report["coverage"].as_array().expect("coverage");
    assert_eq!(coverage.iter().filter(|c| c["tested"] == true).count(), flows.len(), "{coverage:#?}");
    for c in coverage {
        assert_eq!(c["nodes"]["run"], c["nodes"]["total"], "{c:#}");
        assert_eq!(c["branches"]["run"], c["branches"]["total"], "{c:#}");
        assert_eq!(c["not_run"], serde_json::json!([]), "{c:#}");
    }
    // In the process, on the paused clock: the three-day approval timed out, the ten-minute
    // activation wait ran out, and no journal was opened.
    let case = |file: &str, name: &str| -> Value {
        let suite = report["suites"].as_array().unwrap().iter().find(|s| s["file"].as_str().unwrap().ends_with(file));
        let cases = suite.unwrap_or_else(|| panic!("{file}"))["cases"].as_array().unwrap();
        cases.iter().find(|c| c["name"] == name).unwrap_or_else(|| panic!("{name}")).clone()
    };
    let expired = case("offboard-with-approval.test.yaml", "no answer within three days, timed_out");
    assert!(expired["virtual_ms"].as_u64().unwrap() >= 3 * 86_400_000, "{expired}");
    let waited = case("wait-for-activation.test.yaml", "never activated within ten minutes is an outcome");
    assert!(waited["virtual_ms"].as_u64().unwrap() >= 600_000, "{waited}");
    let left: Vec<_> = std::fs::read_dir(state.path()).expect("the state folder").flatten().collect();
    assert!(left.is_empty(), "flowcat test wrote into the state folder: {left:?}");
}

#[test]
fn a_changed_jsonpath_makes_a_case_fail() {
    let dir = TempDir::new("broken-jsonpath");
    copy_broken(dir.path(), "flows/duo/retrieve-user-id.yaml", |t| {
        t.replace("path: $.response[*].user_id", "path: $.response[*].userid")
    });
    let out = flowcat_in(dir.path(), &["test", "."], &[]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("FAIL found by username"), "{}", out.stdout);
    assert!(out.stdout.contains("output `user_id`: expected \"DUAAAAAAAAAAAAAAAAAA\", got null"), "{}", out.stdout);
    assert!(out.stdout.contains("passed, 2 failed"), "{}", out.stdout);
    assert!(out.stderr.contains("replaces the built-in flow"), "{}", out.stderr);
}

#[test]
fn swapped_switch_branches_make_a_case_fail() {
    let dir = TempDir::new("broken-branch");
    copy_broken(dir.path(), "flows/duo/enroll-user.yaml", |t| {
        t.replace("then: [forbidden]", "then: [refused_x]")
            .replace("default: [refused]", "default: [forbidden]")
            .replace("then: [refused_x]", "then: [refused]")
    });
    let out = flowcat_in(dir.path(), &["test", "."], &[]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("FAIL Duo refuses the enrolment (40002)"), "{}", out.stdout);
    assert!(
        out.stdout.contains("expected error code `enrollment_refused`, got `enrollment_forbidden`"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("FAIL the Admin API application may not write (40301)"), "{}", out.stdout);
}

#[test]
fn mocks_outputs_and_signals_the_flow_does_not_have_are_errors_with_did_you_mean() {
    let dir = TempDir::new("unknown-mocks");
    let file = dir.path().join("lookup.test.yaml");
    std::fs::write(
        &file,
        "flow: duo.admin.enroll_user\n\
         cases:\n\
         \x20 - name: typos\n\
         \x20   inputs: { username: a, email: a@example.com }\n\
         \x20   mocks:\n\
         \x20     existing/lookpu: { response: [] }\n\
         \x20     GET /admin/v1/user: { response: [] }\n\
         \x20     verdict: { response: [] }\n\
         \x20     enrol: { fault: droped }\n\
         \x20   signals:\n\
         \x20     approval: { payload: {} }\n\
         \x20   expect:\n\
         \x20     status: succeded\n\
         \x20     outputs: { user_idd: x }\n",
    )
    .expect("write");
    let out = flowcat_in(dir.path(), &["test", "lookup.test.yaml"], &[]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let e = &out.stderr;
    for want in [
        "lookup.test.yaml:6:7",
        "flow `duo.admin.retrieve_user_id` has no node `lookpu`",
        "did you mean `existing/lookup`?",
        "lookup.test.yaml:7:7",
        "send no `GET /admin/v1/user`",
        "did you mean `GET /admin/v1/users`?",
        "node `verdict` is a `switch`, which sends no request",
        "lookup.test.yaml:9:23",
        "unknown fault `droped`",
        "did you mean `dropped`?",
        "waits for signal `approval`",
        "unknown status `succeded`",
        "did you mean `succeeded`?",
        "has no output `user_idd`",
        "did you mean `user_id`?",
    ] {
        assert!(e.contains(want), "missing {want:?} in:\n{e}");
    }
    // A test file with errors runs none of its cases.
    assert!(out.stdout.contains("0 passed, 0 failed, "), "{}", out.stdout);
}

#[test]
fn a_request_no_mock_answers_fails_the_case_and_is_named() {
    let dir = TempDir::new("unmocked");
    std::fs::write(
        dir.path().join("x.test.yaml"),
        "flow: duo.admin.retrieve_user_id\n\
         cases:\n\
         \x20 - name: forgot the mock\n\
         \x20   inputs: { username: alice }\n\
         \x20   expect: { status: failed, error: { code: connect, node: lookup } }\n",
    )
    .expect("write");
    let out = flowcat_in(dir.path(), &["test", "."], &[]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("no mock answers `GET /admin/v1/users (node `lookup`)`: mock the node or the route"),
        "{}",
        out.stdout
    );
}

#[test]
fn junit_and_json_reports_name_the_failing_case() {
    let dir = TempDir::new("junit");
    copy_broken(dir.path(), "flows/duo/send-push.yaml", |t| {
        t.replace("result: $.response.result", "result: $.response.status_msg")
    });
    let out = flowcat_in(dir.path(), &["test", ".", "--format", "junit"], &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let x = &out.stdout;
    assert!(x.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"flowcat test\""), "{x}");
    assert!(x.contains("<testsuite name=\"duo.auth.send_push\" file=\"./send-push.test.yaml\" tests=\"7\""), "{x}");
    assert!(x.contains("<testcase classname=\"duo.auth.send_push\" name=\"pushed to alice, once\""), "{x}");
    assert!(x.contains("<failure message=\"output `outcome`: expected &quot;pushed&quot;"), "{x}");
    assert_eq!(x.matches("<testcase ").count(), 7, "{x}");
    assert!(x.trim_end().ends_with("</testsuites>"), "{x}");

    let out = flowcat_in(dir.path(), &["test", ".", "--format", "json"], &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let report: Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert!(report["failed"].as_u64().unwrap() >= 1, "{report:#}");
    let cases = report["suites"][0]["cases"].as_array().expect("cases");
    let pushed = cases.iter().find(|c| c["name"] == "pushed to alice, once").expect("the case");
    assert_eq!(pushed["status"], "failed");
    assert!(pushed["problems"][0].as_str().unwrap().contains("output `outcome`"), "{pushed:#}");
}

#[test]
fn no_test_files_is_a_usage_error() {
    let dir = TempDir::new("empty");
    let out = flowcat_in(dir.path(), &["test", "."], &[]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("no test files (`*.test.yaml`) under `.`"), "{}", out.stderr);
}
