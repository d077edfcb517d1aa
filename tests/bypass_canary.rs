//! Bypass codes are credentials: the caller gets them once, in the run's outputs, and nothing
//! that stays behind has them. Through the real binary against a real simulator, with the
//! journal and every log line (`RUST_LOG=trace`): the codes Duo answered are searched for in the
//! journal's files (database, WAL, locks), `flowcat runs show` (human and JSON), `runs list`, the
//! logs, and the printed record outside its outputs. The search would find them: the same
//! search finds them in the outputs.

use crate::common;

use std::path::Path;

use common::{Sim, TempDir, files, flowcat_in};
use serde_json::Value;

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn bypass_codes_reach_the_caller_and_nothing_else() {
    let sim = Sim::start("bypass-canary");
    let state = TempDir::new("bypass-canary-state");
    let env = [("FLOWCAT_STATE_DIR", state.str()), ("RUST_LOG", "trace")];
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let integrations = sim.integrations.to_str().expect("UTF-8");
    let args = [
        "run",
        "duo.admin.bypass_codes",
        "--integrations",
        integrations,
        "-i",
        "username=ivan",
        "-i",
        "count=3",
        "--json",
    ];
    let out = flowcat_in(here, &args, &env);
    assert_eq!(out.code, 0, "{}", out.snapshot());
    let mut record: Value = serde_json::from_str(&out.stdout).expect("a JSON record");
    let codes: Vec<String> = record["outputs"]["codes"]
        .as_array()
        .expect("the codes")
        .iter()
        .map(|c| c.as_str().expect("a code").to_owned())
        .collect();
    assert_eq!(codes.len(), 3, "{:#}", record["outputs"]);
    assert!(codes.iter().all(|c| c.len() == 9 && c.bytes().all(|b| b.is_ascii_digit())), "{codes:?}");
    // The search finds them where they are meant to be.
    assert!(codes.iter().all(|c| out.stdout.contains(c.as_str())));
    let audit = sim.audit();
    assert_eq!(audit.len(), 1, "{audit:#?}");
    assert_eq!((&audit[0]["change"], &audit[0]["detail"]["count"]), (&"bypass_codes.create".into(), &3.into()));
    assert!(!codes.iter().any(|c| audit[0].to_string().contains(c.as_str())), "the simulator's audit names no code");

    // The printed record keeps them in its outputs only: the nodes show `[secret]`.
    record["outputs"] = Value::Null;
    let rest = record.to_string();
    for c in &codes {
        assert!(!rest.contains(c.as_str()), "code {c} outside the outputs of the printed record");
    }
    assert!(rest.contains("[secret]"), "the node results show the redaction: {rest}");
    // Every log line of the run, at trace level.
    assert!(out.stderr.len() > 1000, "RUST_LOG=trace logged: {}", out.stderr.len());
    for c in &codes {
        assert!(!out.stderr.contains(c.as_str()), "code {c} in the logs");
    }

    let id = record["id"].as_str().expect("a journaled run's id").to_owned();
    let shown = flowcat_in(here, &["runs", "show", &id], &env);
    let shown_json = flowcat_in(here, &["runs", "show", &id, "--format", "json"], &env);
    let listed = flowcat_in(here, &["runs", "list", "--format", "json"], &env);
    for o in [&shown, &shown_json, &listed] {
        assert_eq!(o.code, 0, "{}", o.snapshot());
    }
    let stored: Value = serde_json::from_str(&shown_json.stdout).expect("JSON");
    assert!(shown_json.stdout.contains("[secret]"), "{}", shown_json.stdout);
    assert_eq!(
        stored.pointer("/record/outputs/codes").or(stored.pointer("/outputs/codes")).map(|c| c.to_string()),
        Some(r#"["[secret]","[secret]","[secret]"]"#.to_owned()),
        "{:#}",
        stored
    );
    for c in &codes {
        for o in [&shown, &shown_json, &listed] {
            assert!(!o.stdout.contains(c.as_str()) && !o.stderr.contains(c.as_str()), "code {c} in\n{}", o.snapshot());
        }
        for (path, bytes) in files(state.path()) {
            assert!(!contains(&bytes, c), "code {c} in {path}");
        }
    }
}
