//! The catalog inside the binary: every command works from any folder (built-in flows), a local
//! `flows/` is found upward or named by `--catalog` / `$FLOWCAT_CATALOG`, a local flow shadows a
//! built-in one and says so, and `flowcat init` starts a project that validates.

use crate::common;

use std::path::{Path, PathBuf};

use common::{Output, Sim, flowcat_in};

/// A fresh, empty folder outside the repository, removed on drop.
struct Folder(PathBuf);

impl Folder {
    fn new(name: &str) -> Folder {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("flowcat-anywhere-{}-{n}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temporary folder");
        // The search upward must find nothing of ours above it.
        let above = dir.ancestors().skip(1).find(|d| d.join("flows").is_dir());
        assert!(above.is_none(), "a `flows/` folder above the temporary folder: {above:?}");
        Folder(dir)
    }

    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.0.join(rel);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("folders");
        std::fs::write(&path, text).expect("written");
        path
    }

    fn flowcat(&self, args: &[&str]) -> Output {
        flowcat_in(&self.0, args, &[])
    }
}

impl Drop for Folder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A flow without integrations that says where it comes from.
fn flow(id: &str, from: &str) -> String {
    format!(
        "id: {id}\nname: {from}\nnodes:\n  - id: here\n    kind: set\n    values:\n      from: {from}\n\
         outputs:\n  from: \"{{{{nodes.here.from}}}}\"\n"
    )
}

fn built_in_count() -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let yaml = |dir: &Path| {
        std::fs::read_dir(dir)
            .expect("readable")
            // Test cases (`*.test.yaml`) are not flows.
            .filter(|e| {
                e.as_ref().is_ok_and(|e| {
                    e.path().extension().is_some_and(|x| x == "yaml")
                        && !e.file_name().to_string_lossy().ends_with(".test.yaml")
                })
            })
            .count()
    };
    yaml(&root.join("flows/duo")) + yaml(&root.join("examples"))
}

#[test]
fn from_an_empty_folder_every_command_finds_the_built_in_flows() {
    let empty = Folder::new("empty");
    let list = empty.flowcat(&["list"]);
    assert_eq!(list.code, 0, "{}", list.stderr);
    for id in ["duo.admin.enroll_user", "duo.auth.verify_push", "examples.onboard_employee"] {
        assert!(list.stdout.contains(&format!("{id}  ")), "{id}: {}", list.stdout);
    }
    assert!(list.stdout.contains("file:         flows/duo/enroll-user.yaml (built-in)\n"), "{}", list.stdout);
    let validate = empty.flowcat(&["validate", "--deny-warnings"]);
    assert_eq!(validate.code, 0, "{}", validate.stderr);
    assert!(validate.stderr.contains(&format!("checked {} flows: 0 errors, 0 warnings", built_in_count())));
    let graph = empty.flowcat(&["graph", "examples.onboard_employee", "--expand-subflows"]);
    assert_eq!(graph.code, 0, "{}", graph.stderr);
    assert!(graph.stdout.starts_with("digraph \"examples.onboard_employee\""), "{}", graph.stdout);
    let unknown = empty.flowcat(&["graph", "duo.admin.retrieve_usr_id"]);
    assert_eq!(unknown.code, 2);
    assert!(unknown.stderr.contains("did you mean `duo.admin.retrieve_user_id`?"), "{}", unknown.stderr);
}

#[test]
fn from_an_empty_folder_a_built_in_flow_runs_against_the_simulator() {
    let empty = Folder::new("run");
    let sim = Sim::start("anywhere-run");
    let file = sim.integrations.to_str().expect("UTF-8");
    let args = ["run", "duo.admin.retrieve_user_id", "-i", "username=alice", "--integrations", file, "--json"];
    let out = empty.flowcat(&args);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let record: serde_json::Value = serde_json::from_str(&out.stdout).expect("a JSON record");
    assert_eq!(record["outputs"]["found"], true, "{record}");
}

#[test]
fn from_an_empty_folder_the_demo_runs() {
    let empty = Folder::new("demo");
    let out = empty.flowcat(&["demo"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("Onboarded."), "{}", out.stdout);
}

#[test]
fn inside_the_clone_a_file_is_validated_against_the_other_flows() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("flows/duo");
    let out = flowcat_in(&dir, &["validate", "--deny-warnings", "verify-push.yaml"], &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!out.stderr.contains("unknown-flow"), "{}", out.stderr);
    assert!(out.stderr.contains("checked 1 flow: 0 errors, 0 warnings"), "{}", out.stderr);
    // The clone's own flows are the built-in ones: replacing them is not worth a note.
    assert!(!out.stderr.contains("note:"), "{}", out.stderr);
}

#[test]
fn a_local_flow_shadows_a_built_in_one_and_says_so() {
    let project = Folder::new("shadow");
    project.write("flows/mine.yaml", &flow("duo.admin.retrieve_user_id", "local"));
    let out = project.flowcat(&["run", "duo.admin.retrieve_user_id"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("  from: \"local\"\n"), "{}", out.stdout);
    let note = "note: `flows/mine.yaml` replaces the built-in flow `duo.admin.retrieve_user_id` \
                (flows/duo/retrieve-user-id.yaml (built-in))";
    assert!(out.stderr.contains(note), "{}", out.stderr);
    // Built-in flows that call it now call the local one: validation checks them against it.
    let validate = project.flowcat(&["validate"]);
    assert_eq!(validate.code, 1, "{}", validate.stderr);
    assert!(validate.stderr.contains(note), "{}", validate.stderr);
    assert!(validate.stderr.contains("(built-in):"), "{}", validate.stderr);
}

#[test]
fn flowcat_catalog_names_the_local_folder_and_the_search_goes_upward() {
    let elsewhere = Folder::new("env");
    let mine = elsewhere.write("catalog/hello.yaml", &flow("mine.hello", "env"));
    let empty = Folder::new("env-cwd");
    let catalog = mine.parent().expect("its folder").to_str().expect("UTF-8");
    let out = flowcat_in(&empty.0, &["run", "mine.hello"], &[("FLOWCAT_CATALOG", catalog)]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("  from: \"env\"\n"), "{}", out.stdout);
    let missing = flowcat_in(&empty.0, &["list"], &[("FLOWCAT_CATALOG", "/nonexistent/flowcat")]);
    assert_eq!(missing.code, 2);
    assert!(missing.stderr.contains("`/nonexistent/flowcat` ($FLOWCAT_CATALOG) does not exist"), "{}", missing.stderr);

    let project = Folder::new("upward");
    project.write("flows/hello.yaml", &flow("mine.hello", "upward"));
    std::fs::create_dir_all(project.0.join("a/b")).expect("folders");
    let out = flowcat_in(&project.0.join("a/b"), &["run", "mine.hello"], &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("  from: \"upward\"\n"), "{}", out.stdout);
    // `--catalog` wins over both.
    let out = flowcat_in(&project.0.join("a/b"), &["--catalog", catalog, "run", "mine.hello"], &[]);
    assert!(out.stdout.contains("  from: \"env\"\n"), "{}", out.stdout);
}

#[test]
fn init_starts_a_project_that_validates_and_never_writes_over_a_file() {
    let empty = Folder::new("init");
    let out = empty.flowcat(&["init"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("flowcat validate"), "{}", out.stdout);
    let integrations = std::fs::read_to_string(empty.0.join("integrations.yaml")).expect("written");
    assert!(integrations.contains("skey: ${DUO_ADMIN_SKEY}") && integrations.contains("skey: ${DUO_AUTH_SKEY}"));
    let limits = integrations.matches("    # rate_limit: { per_minute: 180, burst: 10 }").count();
    assert_eq!(limits, 2, "Duo's default, commented, under each application: {integrations}");
    let flow = std::fs::read_to_string(empty.0.join("flows/user-status.yaml")).expect("written");
    assert!(flow.starts_with("# yaml-language-server: $schema=../flow.schema.json\n"), "{flow}");
    assert!(empty.0.join("flow.schema.json").is_file());
    let validate = empty.flowcat(&["validate", "--deny-warnings"]);
    assert_eq!(validate.code, 0, "{}", validate.stderr);
    assert!(validate.stderr.contains(&format!("checked {} flows", built_in_count() + 1)), "{}", validate.stderr);

    std::fs::write(empty.0.join("integrations.yaml"), "mine\n").expect("written");
    let again = empty.flowcat(&["init"]);
    assert_eq!(again.code, 2, "{}", again.stdout);
    assert!(again.stderr.contains("writes over nothing"), "{}", again.stderr);
    assert_eq!(std::fs::read_to_string(empty.0.join("integrations.yaml")).expect("kept"), "mine\n");
    let other = empty.flowcat(&["init", "other"]);
    assert_eq!(other.code, 0, "{}", other.stderr);
    assert!(empty.0.join("other/flows/user-status.yaml").is_file());
}
