//! A linear scan of a template's text before handlebars parses it.
//!
//! handlebars parses and walks templates recursively, and flowcat's own walk over its tree does
//! too: `(not (not …))` 5,000 deep overflowed the stack, and 12,000 `{{…}}` took seconds. The
//! scan counts what those passes would recurse into (blocks, subexpressions) and how many
//! expressions there are, over-counting rather than under-counting (a `(` inside a quoted
//! string counts), so that a template it accepts is one they handle quickly.

use crate::limits::{self, Limit};

/// Where and why a template crosses a limit: `byte` is where in its text.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Crossed {
    pub limit: Limit,
    pub byte: usize,
    pub message: String,
}

/// Scans `text`; `Err` at the first limit crossed.
pub(super) fn scan(text: &str) -> Result<(), Crossed> {
    let bytes = text.as_bytes();
    let mut expressions = 0;
    let mut blocks: usize = 0;
    let mut i = 0;
    while let Some(found) = find(text, i, "{{") {
        let open = found;
        i = found + 2;
        while matches!(bytes.get(i), Some(b'{' | b'~')) {
            i += 1;
        }
        expressions += 1;
        if expressions > limits::TEMPLATE_REFS.value {
            let message = format!(
                "the template has more than {} `{{{{…}}}}` expressions",
                limits::group(limits::TEMPLATE_REFS.value)
            );
            return Err(Crossed { limit: limits::TEMPLATE_REFS, byte: open, message });
        }
        match bytes.get(i) {
            Some(b'#') => blocks += 1,
            Some(b'^') if !matches!(bytes.get(i + 1), Some(b'}' | b'~')) => blocks += 1,
            Some(b'/') => blocks = blocks.saturating_sub(1),
            _ => {}
        }
        let end = find(text, i, "}}").unwrap_or(bytes.len());
        let mut parens: usize = 0;
        for (at, b) in bytes[i..end].iter().enumerate() {
            match b {
                b'(' => parens += 1,
                b')' => parens = parens.saturating_sub(1),
                _ => continue,
            }
            if blocks + parens > limits::TEMPLATE_DEPTH.value {
                return Err(too_deep(i + at));
            }
        }
        if blocks > limits::TEMPLATE_DEPTH.value {
            return Err(too_deep(open));
        }
        i = end;
    }
    Ok(())
}

fn too_deep(byte: usize) -> Crossed {
    let message = format!(
        "the template nests blocks and subexpressions deeper than {} levels",
        limits::group(limits::TEMPLATE_DEPTH.value)
    );
    Crossed { limit: limits::TEMPLATE_DEPTH, byte, message }
}

/// The first `needle` in `text` at or after byte `from`.
fn find(text: &str, from: usize, needle: &str) -> Option<usize> {
    text.get(from..)?.find(needle).map(|p| p + from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_blocks_and_subexpressions() {
        assert_eq!(scan("{{#if (eq a (len b))}}{{#each c}}x{{/each}}{{/if}}"), Ok(()));
        let deep = format!("{{{{{}x{}}}}}", "(not ".repeat(40), ")".repeat(40));
        assert_eq!(scan(&deep).map_err(|e| e.limit), Err(limits::TEMPLATE_DEPTH));
        let blocks = "{{#if a}}".repeat(40);
        assert_eq!(scan(&blocks).map_err(|e| e.byte), Err(9 * 32));
        // Closed blocks do not add up.
        assert_eq!(scan(&"{{#if a}}x{{/if}}".repeat(100)), Ok(()));
        let many = "{{a}}".repeat(limits::TEMPLATE_REFS.value + 1);
        assert_eq!(scan(&many).map_err(|e| e.limit), Err(limits::TEMPLATE_REFS));
    }
}
