//! Operators written inside `{{…}}`: handlebars has none, so `{{#if a == b}}` is a syntax
//! error (or worse, parses as something else). A scan before handlebars finds the first one
//! and names the helper to write instead.

/// An operator and the helper that does its work, longest spelling first.
const OPERATORS: &[(&str, &str)] = &[
    ("===", "eq"),
    ("!==", "ne"),
    ("==", "eq"),
    ("!=", "ne"),
    (">=", "gte"),
    ("<=", "lte"),
    ("&&", "and"),
    ("||", "or"),
    (">", "gt"),
    ("<", "lt"),
    ("!", "not"),
];

/// The first operator found: where it is and what to write instead.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Operator {
    pub byte: usize,
    pub text: &'static str,
    pub message: String,
    pub help: String,
}

/// Scans the expressions of `text` outside quoted strings and `[…]` segments; comments and
/// partials (`{{! …}}`, `{{> …}}`) are not expressions.
pub(super) fn find(text: &str) -> Option<Operator> {
    let b = text.as_bytes();
    let mut i = 0;
    while let Some(open) = text.get(i..)?.find("{{").map(|p| p + i) {
        let mut start = open + 2;
        while matches!(b.get(start), Some(b'{' | b'~')) {
            start += 1;
        }
        let end = text[start..].find("}}").map_or(b.len(), |p| p + start);
        let skip = matches!(b.get(start), Some(b'!' | b'>')) || text[start..].starts_with("#>");
        if !skip {
            if let Some(op) = scan(text, start, end) {
                return Some(op);
            }
        }
        i = end;
    }
    None
}

fn scan(text: &str, start: usize, end: usize) -> Option<Operator> {
    let b = text.as_bytes();
    let mut k = start;
    while k < end {
        match b[k] {
            q @ (b'"' | b'\'') => k = text[k + 1..end].find(q as char).map_or(end, |p| k + 1 + p),
            b'[' => k = text[k..end].find(']').map_or(end, |p| k + p),
            _ => {
                // Bytes, not `text[k..]`: `k` walks bytes and may sit inside a character; an
                // operator is ASCII, so it can only start on a character's first byte anyway.
                if let Some((op, helper)) = OPERATORS.iter().find(|(op, _)| b[k..end].starts_with(op.as_bytes())) {
                    return Some(operator(text, (start, k, end), op, helper));
                }
            }
        }
        k += 1;
    }
    None
}

/// The diagnostic for `op` at byte `at` of the expression `start..end`, with the expression
/// rewritten when it is as simple as `a == b` or `#if a == b`.
fn operator(text: &str, (start, at, end): (usize, usize, usize), op: &'static str, helper: &str) -> Operator {
    let before: Vec<&str> = text[start..at].split_whitespace().collect();
    let after: Vec<&str> = text[at + op.len()..end].trim_end_matches('~').split_whitespace().collect();
    let call = match (op, before.as_slice(), after.as_slice()) {
        ("!", head, [x]) => Some((head, format!("{helper} {x}"))),
        (_, [head @ .., a], [b]) if op != "!" => Some((head, format!("{helper} {a} {b}"))),
        _ => None,
    };
    let example = match call {
        Some(([], call)) => format!("{{{{{call}}}}}"),
        Some((head, call)) => format!("{{{{{} ({call})}}}}", head.join(" ")),
        None if helper == "not" => "{{not a}}".to_owned(),
        None => format!("{{{{{helper} a b}}}}"),
    };
    Operator {
        byte: at,
        text: op,
        message: format!("`{op}` is not a handlebars operator"),
        help: format!("handlebars has no operators: write `{example}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn help(text: &str) -> Option<String> {
        find(text).map(|o| o.help)
    }

    #[test]
    fn operators_are_found_and_rewritten_as_helpers() {
        assert_eq!(
            help("{{inputs.a == 1}}").as_deref(),
            Some("handlebars has no operators: write `{{eq inputs.a 1}}`")
        );
        assert_eq!(
            help("x {{#if inputs.a != \"b\"}}y{{/if}}").as_deref(),
            Some("handlebars has no operators: write `{{#if (ne inputs.a \"b\")}}`")
        );
        assert_eq!(
            help("{{#if a && b}}x{{/if}}").as_deref(),
            Some("handlebars has no operators: write `{{#if (and a b)}}`")
        );
        assert_eq!(help("{{#if !a}}x{{/if}}").as_deref(), Some("handlebars has no operators: write `{{#if (not a)}}`"));
        assert_eq!(help("{{a > b > c}}").as_deref(), Some("handlebars has no operators: write `{{gt a b}}`"));
        assert_eq!(find("{{x}} {{a>=b}}").map(|o| (o.byte, o.text)), Some((9, ">=")));
    }

    #[test]
    fn characters_of_several_bytes_are_walked_over() {
        // Found by the fuzzer: slicing the text at a byte inside `é` or `\u{FFFD}` panicked.
        assert_eq!(find("{{nodes.n1.\u{FFFD}A-o}} {{#if vars.v}}y{{/if}}"), None);
        assert_eq!(find("{{not (eq \u{FFFD}\u{FFFD}nodes.n5.v 1)}}"), None);
        assert_eq!(find("{{café == 1}}").map(|o| (o.byte, o.text)), Some((8, "==")));
    }

    #[test]
    fn strings_comments_partials_and_text_are_not_expressions() {
        for ok in
            ["a < b {{x}}", "{{eq x \"a<b\"}}", "{{eq x 'a&&b'}}", "{{! a == b}}", "{{> p}}", "{{a.[x>y]}}", "{{k=v}}"]
        {
            assert_eq!(find(ok), None, "{ok}");
        }
    }
}
