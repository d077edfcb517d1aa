//! The bounds a flow file must stay within, declared in one place.
//!
//! Flows come from many hands and, later, from a service: a file of a few kilobytes must not be
//! able to overflow the stack, run for minutes or fill the memory. Each limit is checked before
//! the pass it protects (the YAML tree, handlebars, JSONPath, the graph drawing) and crossing it
//! is an ordinary `limit` diagnostic at the place where it was crossed. Every limit is far above
//! what a hand-written flow needs; `docs/flow-format.md` ("Limits") lists them, and a test checks
//! that the table there matches these constants.

/// One limit: its name (shown in `help:` lines, so that a user finds it in the docs), its value
/// and what it counts, in the words of a sentence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    pub name: &'static str,
    pub value: usize,
    pub what: &'static str,
}

const fn limit(name: &'static str, value: usize, what: &'static str) -> Limit {
    Limit { name, value, what }
}

/// The largest flow file read, in bytes.
pub const FILE_BYTES: Limit = limit("file-bytes", 10 * 1024 * 1024, "bytes in a flow file");
/// How deep YAML collections may nest (the flow's own structure takes about six levels).
pub const YAML_DEPTH: Limit = limit("yaml-depth", 64, "levels of YAML nesting");
/// How many values aliases (`*name`) may copy in one file, in total: an alias is a copy, so
/// aliases of aliases would otherwise grow the tree exponentially ("billion laughs").
pub const ALIAS_VALUES: Limit = limit("alias-values", 100_000, "values copied by YAML aliases");
/// Nodes in one flow.
pub const NODES: Limit = limit("nodes", 5_000, "nodes in a flow");
/// Characters in a name: a node id, an input, var, output or slot name, a map key.
pub const NAME_CHARS: Limit = limit("name-chars", 128, "characters in a name");
/// `{{…}}` expressions in one template, and paths it reads (an expression may read several).
pub const TEMPLATE_REFS: Limit = limit("template-refs", 1_000, "expressions or paths read in one template");
/// How deep a template may nest blocks (`{{#if}}…{{/if}}`) and subexpressions (`(not …)`).
pub const TEMPLATE_DEPTH: Limit = limit("template-depth", 32, "levels of blocks and subexpressions in a template");
/// Characters in one JSONPath.
pub const JSONPATH_CHARS: Limit = limit("jsonpath-chars", 4_096, "characters in a JSONPath");
/// How deep a JSONPath may nest brackets, parentheses and negations (`!`).
pub const JSONPATH_DEPTH: Limit = limit("jsonpath-depth", 32, "levels of nesting in a JSONPath");
/// Filters (`?`) in one JSONPath: the parser's time doubles with each nested filter.
pub const JSONPATH_FILTERS: Limit = limit("jsonpath-filters", 8, "filters in a JSONPath");
/// Boxes and arrows in one `graph --expand-subflows` drawing; subflows that do not fit are
/// drawn as one collapsed box.
pub const DRAWING_ITEMS: Limit = limit("drawing-items", 5_000, "boxes and arrows in an expanded drawing");

/// Every limit, for the docs test.
pub const ALL: &[Limit] = &[
    FILE_BYTES,
    YAML_DEPTH,
    ALIAS_VALUES,
    NODES,
    NAME_CHARS,
    TEMPLATE_REFS,
    TEMPLATE_DEPTH,
    JSONPATH_CHARS,
    JSONPATH_DEPTH,
    JSONPATH_FILTERS,
    DRAWING_ITEMS,
];

impl Limit {
    /// The `help:` line of a diagnostic about this limit.
    pub fn help(&self, how: &str) -> String {
        format!("flowcat allows at most {} {} (limit `{}`); {how}", group(self.value), self.what, self.name)
    }
}

/// `10485760` → `10,485,760`, for messages.
pub fn group(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_limit_is_listed_once() {
        let mut names: Vec<&str> = ALL.iter().map(|l| l.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
        assert_eq!(group(10_485_760), "10,485,760");
        assert_eq!(group(64), "64");
    }

    /// The "Limits" table of the format's reference lists every limit with its value.
    #[test]
    fn the_docs_list_every_limit() {
        let docs = include_str!("../../docs/flow-format.md");
        let table: Vec<&str> = docs.lines().filter(|l| l.starts_with("| `") && l.contains(" | ")).collect();
        for l in ALL {
            let row = format!("| `{}` | {} |", l.name, group(l.value));
            assert!(table.iter().any(|t| t.starts_with(&row)), "docs/flow-format.md lacks the row `{row}`");
        }
    }
}
