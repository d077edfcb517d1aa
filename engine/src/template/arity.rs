//! How many arguments each helper takes, as handlebars-rust 6 treats them.
//!
//! handlebars checks a helper's arguments only when it renders, and only that the first ones
//! exist: `{{eq a}}` compiles and fails at run time, `{{eq a b c}}` silently ignores `c`. So
//! validation checks the count, with an example of the right form.

/// One helper's arguments: at least `min`, at most `max` (`None`: any number).
struct Arity {
    name: &'static str,
    min: usize,
    max: Option<usize>,
    example: &'static str,
}

const fn arity(name: &'static str, min: usize, max: Option<usize>, example: &'static str) -> Arity {
    Arity { name, min, max, example }
}

/// Every helper of `HELPERS`. handlebars' comparisons read arguments 0 and 1 and ignore more;
/// `not`, `len` and the block helpers read argument 0; `lookup` 0 and 1; `and` and `or` take
/// any number (one is a mere truth test, so at least two are asked for); `coalesce` is ours.
const ARITIES: &[Arity] = &[
    arity("eq", 2, Some(2), "{{eq inputs.mode \"full\"}}"),
    arity("ne", 2, Some(2), "{{ne inputs.mode \"full\"}}"),
    arity("gt", 2, Some(2), "{{gt (len nodes.lookup.body) 0}}"),
    arity("gte", 2, Some(2), "{{gte inputs.count 1}}"),
    arity("lt", 2, Some(2), "{{lt inputs.count 10}}"),
    arity("lte", 2, Some(2), "{{lte inputs.count 10}}"),
    arity("and", 2, None, "{{and inputs.notify inputs.email}}"),
    arity("or", 2, None, "{{or inputs.username inputs.email}}"),
    arity("not", 1, Some(1), "{{not inputs.dry_run}}"),
    arity("len", 1, Some(1), "{{len nodes.lookup.body}}"),
    arity("if", 1, Some(1), "{{#if inputs.notify}}…{{/if}}"),
    arity("unless", 1, Some(1), "{{#unless inputs.quiet}}…{{/unless}}"),
    arity("each", 1, Some(1), "{{#each nodes.lookup.body}}{{this.username}}{{/each}}"),
    arity("with", 1, Some(1), "{{#with nodes.lookup.body}}{{username}}{{/with}}"),
    arity("lookup", 2, Some(2), "{{lookup nodes.lookup.body 0}}"),
    arity("coalesce", 1, None, "{{coalesce nodes.a.id nodes.b.id}}"),
];

/// `Err((message, help))` when helper `name` is called with `given` arguments it does not take.
pub(super) fn check(name: &str, given: usize) -> Result<(), (String, String)> {
    let Some(a) = ARITIES.iter().find(|a| a.name == name) else { return Ok(()) };
    if given >= a.min && a.max.is_none_or(|max| given <= max) {
        return Ok(());
    }
    let plural = |n: usize| if n == 1 { "argument" } else { "arguments" };
    let expected = match a.max {
        Some(max) if max == a.min => format!("exactly {} {}", a.min, plural(a.min)),
        _ => format!("at least {} {}", a.min, plural(a.min)),
    };
    let message = format!("`{name}` takes {expected}, found {given}");
    Err((message, format!("for example `{}`", a.example)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_helper_has_an_arity() {
        for h in super::super::HELPERS {
            assert!(ARITIES.iter().any(|a| a.name == *h), "`{h}` has no arity");
        }
        assert_eq!(ARITIES.len(), super::super::HELPERS.len());
    }

    #[test]
    fn counts_are_checked() {
        assert!(check("eq", 2).is_ok() && check("and", 5).is_ok() && check("coalesce", 1).is_ok());
        assert_eq!(check("eq", 1).map_err(|e| e.0), Err("`eq` takes exactly 2 arguments, found 1".into()));
        assert_eq!(check("not", 2).map_err(|e| e.0), Err("`not` takes exactly 1 argument, found 2".into()));
        assert_eq!(check("or", 1).map_err(|e| e.0), Err("`or` takes at least 2 arguments, found 1".into()));
    }
}
