//! YAML that nests deeper than the limit, aliases that copy too much, files too large, and
//! line endings the diagnostics must still show.

use super::{flow_with_values, isolated, load_one, the_limit};

/// `- - - … x` on one line: each `- ` opens a sequence. It passed the parser's own limits and
/// overflowed flowcat's recursion (10,000 levels under a var default, 47,000 anywhere).
#[test]
fn block_sequences_100_000_deep() {
    isolated("yaml::block_sequences_100_000_deep", || {
        let text = format!("id: deep\nvars:\n  v:\n    default:\n      {}x\nnodes: []\n", "- ".repeat(100_000));
        let limit = the_limit(&load_one(text));
        assert!(limit.contains("YAML nests deeper than 64 levels"), "{limit}");
        assert!(limit.contains("hostile.yaml:5:"), "{limit}");
        assert!(limit.contains("limit `yaml-depth`"), "{limit}");
    });
}

#[test]
fn mappings_and_flow_collections_100_000_deep() {
    isolated("yaml::mappings_and_flow_collections_100_000_deep", || {
        let text = format!("id: deep\nnodes: []\nx: {}\n", "{a: ".repeat(100_000));
        assert!(the_limit(&load_one(text)).contains("YAML nests deeper"));
        let values = format!("      v:\n        {}1\n", "- ".repeat(100_000));
        assert!(the_limit(&load_one(flow_with_values(&values))).contains("YAML nests deeper"));
    });
}

/// Each alias copies its anchor: ten levels of ten aliases would be 10^10 values.
#[test]
fn aliases_of_aliases_stop_at_the_copy_budget() {
    isolated("yaml::aliases_of_aliases_stop_at_the_copy_budget", || {
        let mut text =
            String::from("id: laughs\nnodes: []\nx:\n  a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for i in 1..10 {
            let refs = vec![format!("*a{}", i - 1); 10].join(", ");
            text.push_str(&format!("  a{i}: &a{i} [{refs}]\n"));
        }
        let limit = the_limit(&load_one(text));
        assert!(limit.contains("YAML aliases copy more than 100,000 values"), "{limit}");
        // At the alias that crosses it: the eighth `*a3` of line 8 (11,111 values each).
        assert!(limit.contains("hostile.yaml:8:47"), "{limit}");
        assert!(limit.contains("limit `alias-values`"), "{limit}");
    });
}

#[test]
fn files_above_the_size_limit_are_refused_before_parsing() {
    isolated("yaml::files_above_the_size_limit_are_refused_before_parsing", || {
        let text = format!("id: big\nnodes: []\n# {}\n", "x".repeat(11 * 1024 * 1024));
        let limit = the_limit(&load_one(text));
        assert!(limit.contains("limit `file-bytes`"), "{limit}");
        assert!(limit.contains("hostile.yaml:3:"), "{limit}");
    });
}

/// A file with old Mac line endings (`\r` alone): the YAML parser counts them as line breaks,
/// so the diagnostics must too, or they lose the source line and its caret.
#[test]
fn cr_only_line_endings_keep_the_source_line_and_caret() {
    isolated("yaml::cr_only_line_endings_keep_the_source_line_and_caret", || {
        let text = "id: cr\rnodes:\r  - id: a\r    kind: sett\r".to_owned();
        let catalog = load_one(text);
        let d = catalog.diagnostics().find(|d| d.code == "unknown-kind").expect("unknown-kind");
        let out = d.render(false);
        assert!(out.contains("4 |     kind: sett\n"), "{out}");
        assert!(out.contains("^^^^ expected"), "{out}");
    });
}
