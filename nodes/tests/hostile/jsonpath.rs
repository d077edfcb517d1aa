//! JSONPaths that overflowed the parser's stack or made it backtrack for minutes.

use super::{isolated, load_one, the_limit};

fn extract(path: &str) -> String {
    format!(
        "id: hostile\nintegrations:\n  duo_admin: {{ kind: duo_admin }}\nnodes:\n  - id: lookup\n    kind: rest_call\n    integration: duo_admin\n    method: GET\n    path: /admin/v1/users\n    extract:\n      x: \"{path}\"\noutputs:\n  x: \"{{{{nodes.lookup.x}}}}\"\n"
    )
}

#[test]
fn parentheses_and_negations_4_000_deep() {
    isolated("jsonpath::parentheses_and_negations_4_000_deep", || {
        let parens = format!("$[?{}@.a{}]", "(".repeat(4_000), ")".repeat(4_000));
        let limit = the_limit(&load_one(extract(&parens)));
        assert!(limit.contains("the JSONPath nests deeper than 32 levels"), "{limit}");
        assert!(limit.contains("limit `jsonpath-depth`"), "{limit}");
        // At the first `(` past the limit: the text starts at column 11, after `$[?` and 31 `(`.
        assert!(limit.contains("hostile.yaml:11:45"), "{limit}");
        let bangs = format!("$[?{}@.a]", "!".repeat(4_000));
        assert!(the_limit(&load_one(extract(&bangs))).contains("limit `jsonpath-depth`"));
    });
}

#[test]
fn filters_2_000_deep() {
    isolated("jsonpath::filters_2_000_deep", || {
        let filters = format!("${}{}", "[?@".repeat(2_000), "]".repeat(2_000));
        let limit = the_limit(&load_one(extract(&filters)));
        assert!(limit.contains("limit `jsonpath-filters`"), "{limit}");
    });
}

/// Each nested filter doubled the parser's time: 20 levels took 1.2 s, 50 over two minutes.
#[test]
fn fifty_nested_filters_are_refused_and_eight_parse_quickly() {
    isolated("jsonpath::fifty_nested_filters_are_refused_and_eight_parse_quickly", || {
        let nested = |n: usize| format!("${}{}", "[?@".repeat(n), "]".repeat(n));
        let limit = the_limit(&load_one(extract(&nested(50))));
        assert!(limit.contains("the JSONPath has more than 8 filters"), "{limit}");
        let catalog = load_one(extract(&nested(8)));
        assert_eq!(catalog.diagnostics().count(), 0, "{}", super::all(&catalog));
    });
}
