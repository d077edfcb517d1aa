//! The catalog and the examples: every flow file passes `flowcat validate --deny-warnings`,
//! `flowcat list` shows them, and the published schema matches the binary's.

use crate::common;

use common::flowcat;

#[test]
fn every_catalog_and_example_flow_is_valid_without_warnings() {
    let out = flowcat(&["validate", "--deny-warnings"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("0 errors, 0 warnings"), "{}", out.stderr);
    // Nothing was skipped: every YAML file under flows/ and examples/ was checked.
    let files = ["flows", "examples"]
        .iter()
        .filter(|d| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(d).is_dir())
        .map(|d| count_yaml(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(d)))
        .sum::<usize>();
    assert!(out.stderr.contains(&format!("checked {files} flows")), "{files} files: {}", out.stderr);
}

/// A flow file: `*.yaml`, not a flow's test cases (`*.test.yaml`, which `validate` skips).
fn is_flow(path: &std::path::Path) -> bool {
    path.extension().is_some_and(|e| e == "yaml") && !path.to_string_lossy().ends_with(".test.yaml")
}

fn count_yaml(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .expect("readable")
        .map(|e| e.expect("entry").path())
        .map(|p| if p.is_dir() { count_yaml(&p) } else { usize::from(is_flow(&p)) })
        .sum()
}

#[test]
fn list_shows_ids_inputs_outputs_and_integrations() {
    let out = flowcat(&["list", "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let list: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    let enroll = list.as_array().and_then(|l| l.iter().find(|f| f["id"] == "duo.admin.enroll_user")).expect("listed");
    assert_eq!(enroll["name"], "Duo Admin Enroll User");
    assert_eq!(enroll["integrations"][0]["kind"], "duo_admin");
    let inputs: Vec<&str> =
        enroll["inputs"].as_array().expect("inputs").iter().filter_map(|i| i["name"].as_str()).collect();
    assert_eq!(inputs, ["username", "email", "valid_secs", "email_existing"]);
    assert_eq!(enroll["inputs"][2]["required"], false);
    let verify = list.as_array().and_then(|l| l.iter().find(|f| f["id"] == "duo.auth.verify_push")).expect("listed");
    let admin = verify["integrations"].as_array().and_then(|s| s.iter().find(|s| s["name"] == "duo_admin"));
    assert_eq!(admin.map(|s| &s["required"]), Some(&serde_json::json!(false)), "{verify}");
    let text = flowcat(&["list"]);
    assert!(text.stdout.contains("duo.admin.retrieve_user_id  Duo Admin Retrieve userId\n"), "{}", text.stdout);
    assert!(text.stdout.contains("  inputs:       username: string?, email: string?\n"), "{}", text.stdout);
    assert!(text.stdout.contains("duo_admin (duo_admin, optional)"), "{}", text.stdout);
}

/// `flowcat list` shows the Duo permissions each flow needs (its subflows' included), and
/// `docs/catalog.md` says the same in each flow's section.
#[test]
fn list_shows_the_permissions_each_flow_needs_as_the_catalog_docs_say() {
    let out = flowcat(&["list", "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let list: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    let docs = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/catalog.md"))
        .expect("docs/catalog.md");
    let mut checked = 0;
    for flow in list.as_array().expect("a list") {
        let id = flow["id"].as_str().expect("id");
        let permissions: Vec<&str> =
            flow["permissions"].as_array().expect("permissions").iter().filter_map(|p| p.as_str()).collect();
        let mut sorted = permissions.clone();
        sorted.sort_unstable();
        assert_eq!(permissions, sorted, "{id}: sorted");
        // The flow's section: from its heading to the next heading.
        let Some(start) = docs.find(&format!("— `{id}`")) else { continue };
        let section = &docs[start..];
        let section = &section[..section.find("\n#").unwrap_or(section.len())];
        // The paragraph that says the permissions, up to the next blank line.
        let from = section.find("Permissions:").unwrap_or_else(|| panic!("{id}: no Permissions"));
        let line = &section[from..];
        let line = &line[..line.find("\n\n").unwrap_or(line.len())];
        for grant in ["Grant read resource", "Grant write resource", "Grant read log", "Grant settings"] {
            assert_eq!(
                permissions.contains(&grant),
                line.contains(grant),
                "{id}: `{grant}`: list {permissions:?}, docs `{line}`"
            );
        }
        let auth = permissions.contains(&"Auth API application");
        assert_eq!(auth, line.contains("Auth API"), "{id}: list {permissions:?}, docs `{line}`");
        checked += 1;
    }
    assert!(checked >= 16, "only {checked} flows have a section in docs/catalog.md");
    let text = flowcat(&["list"]);
    assert!(
        text.stdout.contains("duo.admin.retrieve_user_id  Duo Admin Retrieve userId\n  inputs:       username: string?, email: string?\n  outputs:      user_id, username, found, is_enrolled, status\n  integrations: duo_admin (duo_admin)\n  permissions:  Grant read resource\n"),
        "{}",
        text.stdout
    );
}

#[test]
fn the_published_schema_is_the_binarys() {
    let out = flowcat(&["schema"]);
    assert_eq!(out.code, 0);
    let published = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/flow.schema.json"))
        .expect("docs/flow.schema.json exists");
    assert!(
        published == out.stdout,
        "docs/flow.schema.json is stale: run `cargo run -- schema > docs/flow.schema.json`"
    );
    let schema: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    let kinds = &schema["properties"]["nodes"]["items"]["properties"]["kind"]["enum"];
    assert_eq!(kinds, &serde_json::json!(["rest_call", "subflow", "for_each", "switch", "wait_for", "set", "fail"]));
    assert_eq!(schema["additionalProperties"], false);
}
