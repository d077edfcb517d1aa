//! Templates nested too deep for handlebars' recursive parser, or holding too many paths.

use super::{flow_with_values, isolated, load_one, the_limit};

/// `{{not (not (not … x))}}`: handlebars' parser and flowcat's walk recurse per level.
#[test]
fn subexpressions_5_000_deep() {
    isolated("templates::subexpressions_5_000_deep", || {
        let t = format!("{{{{not {}inputs.a{}}}}}", "(not ".repeat(5_000), ")".repeat(5_000));
        let limit = the_limit(&load_one(flow_with_values(&format!("      v: '{t}'\n"))));
        assert!(limit.contains("nests blocks and subexpressions deeper than 32 levels"), "{limit}");
        assert!(limit.contains("limit `template-depth`"), "{limit}");
        // The caret sits on the first `(` past the limit: column of `v: '` plus `{{not ` and 32 `(not `.
        assert!(limit.contains(&format!("hostile.yaml:8:{}", 10 + 6 + 5 * 32 + 1)), "{limit}");
    });
}

#[test]
fn blocks_100_000_deep() {
    isolated("templates::blocks_100_000_deep", || {
        let t = format!("{}x{}", "{{#if inputs.a}}".repeat(100_000), "{{/if}}".repeat(100_000));
        let limit = the_limit(&load_one(flow_with_values(&format!("      v: '{t}'\n"))));
        assert!(limit.contains("limit `template-depth`"), "{limit}");
    });
}

/// 12,000 `{{…}}` took 3.5 s to compile: each path was located from the start of the text.
#[test]
fn ten_thousand_references_are_refused_at_the_limit() {
    isolated("templates::ten_thousand_references_are_refused_at_the_limit", || {
        let t = "{{inputs.a}} ".repeat(10_000);
        let limit = the_limit(&load_one(flow_with_values(&format!("      v: \"{t}\"\n"))));
        assert!(limit.contains("more than 1,000 `{{…}}` expressions"), "{limit}");
        // One expression reading many paths is counted by paths.
        let t = format!("{{{{eq {}}}}}", "inputs.a ".repeat(10_000));
        let limit = the_limit(&load_one(flow_with_values(&format!("      v: \"{t}\"\n"))));
        assert!(limit.contains("reads more than 1,000 paths"), "{limit}");
    });
}

/// At the limit, in a block scalar (the slowest case to locate), every path gets its own span.
#[test]
fn a_thousand_references_on_many_lines_compile_in_linear_time() {
    isolated("templates::a_thousand_references_on_many_lines_compile_in_linear_time", || {
        let line = |i: usize| {
            format!("        line {{{{inputs.a}}}} and {{{{inputs.{}}}}}\n", if i == 299 { "c" } else { "a" })
        };
        let body: String = (0..500).map(line).collect();
        let catalog = load_one(flow_with_values(&format!("      v: |\n{body}")));
        let unknown: Vec<_> = catalog.diagnostics().filter(|d| d.code == "unknown-name").collect();
        assert_eq!(unknown.len(), 1, "{}", super::all(&catalog));
        let at = unknown[0].span.expect("a span").start;
        assert_eq!((at.line, at.col), (8 + 300, 33), "{}", unknown[0].render(false));
    });
}
