//! A linear scan of a JSONPath before `serde_json_path` parses it.
//!
//! The parser recurses once per bracket, parenthesis and negation, and backtracks through
//! nested filters: about 4,000 `(` overflowed the stack, and each nested `[?@…]` doubled the
//! time (50 levels ran for minutes). The scan bounds both, over-counting rather than
//! under-counting, and skips quoted names so that `$['(']` is one level.

use flowcat_engine::limits::{self, Limit};

/// Where and why a JSONPath crosses a limit: `at` is the character offset in its text.
#[derive(Debug, PartialEq, Eq)]
pub struct Crossed {
    pub limit: Limit,
    pub at: usize,
    pub message: String,
}

/// Scans `text`; `Err` at the first limit crossed.
pub fn scan(text: &str) -> Result<(), Crossed> {
    let crossed = |limit: Limit, at: usize, message: String| Err(Crossed { limit, at, message });
    // Per open bracket, the negations inside it so far: each is a level of the parser's recursion.
    let mut levels: Vec<usize> = vec![0];
    let mut depth = 0;
    let mut filters = 0;
    let mut quote: Option<char> = None;
    let mut chars = text.chars().enumerate().peekable();
    while let Some((at, c)) = chars.next() {
        if at >= limits::JSONPATH_CHARS.value {
            let message =
                format!("the JSONPath is longer than {} characters", limits::group(limits::JSONPATH_CHARS.value));
            return crossed(limits::JSONPATH_CHARS, at, message);
        }
        match (quote, c) {
            (Some(_), '\\') => {
                chars.next();
            }
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(' | '[') => {
                levels.push(0);
                depth += 1;
            }
            (None, ')' | ']') if levels.len() > 1 => depth -= 1 + levels.pop().unwrap_or(0),
            (None, '!') if chars.peek().is_none_or(|(_, n)| *n != '=') => {
                if let Some(bangs) = levels.last_mut() {
                    *bangs += 1;
                }
                depth += 1;
            }
            (None, '?') => {
                filters += 1;
                if filters > limits::JSONPATH_FILTERS.value {
                    let message =
                        format!("the JSONPath has more than {} filters", limits::group(limits::JSONPATH_FILTERS.value));
                    return crossed(limits::JSONPATH_FILTERS, at, message);
                }
            }
            _ => {}
        }
        if depth > limits::JSONPATH_DEPTH.value {
            let message =
                format!("the JSONPath nests deeper than {} levels", limits::group(limits::JSONPATH_DEPTH.value));
            return crossed(limits::JSONPATH_DEPTH, at, message);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_depth_filters_and_length() {
        assert_eq!(scan("$.response[?@.name == '(((' && !(@.x != 1)].id"), Ok(()));
        let parens = format!("$[?{}@.a{}]", "(".repeat(40), ")".repeat(40));
        assert_eq!(scan(&parens).map_err(|e| e.limit), Err(limits::JSONPATH_DEPTH));
        let bangs = format!("$[?{}@.a]", "!".repeat(40));
        assert_eq!(scan(&bangs).map_err(|e| (e.limit, e.at)), Err((limits::JSONPATH_DEPTH, 34)));
        let filters = format!("${}{}", "[?@".repeat(9), "]".repeat(9));
        assert_eq!(scan(&filters).map_err(|e| e.limit), Err(limits::JSONPATH_FILTERS));
        assert_eq!(scan(&format!("$.{}", "a".repeat(5_000))).map_err(|e| e.limit), Err(limits::JSONPATH_CHARS));
        // Closed brackets do not add up.
        assert_eq!(scan(&format!("${}", "[0]".repeat(100))), Ok(()));
    }
}
