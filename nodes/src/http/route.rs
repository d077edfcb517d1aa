//! A call's route template: its `path:` template with every `{{expression}}` replaced by
//! `{name}` (the last name the expression reads), so that traces can say which Duo endpoint was
//! called without the user ids, usernames or other values the rendered path holds.
//!
//! `/admin/v1/users/{{nodes.lookup.user_id}}/phones` → `/admin/v1/users/{user_id}/phones`.
//! Whatever follows a `?` or `#` is dropped (query values are never part of a route).

/// The longest route kept; a longer one is cut (a template is at most a few hundred bytes).
const MAX_ROUTE: usize = 256;

/// The route template of a `path:` template's source text.
pub fn template(source: &str) -> String {
    let mut out = String::with_capacity(source.len().min(MAX_ROUTE));
    let mut rest = source;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let inner = rest[open + 2..].trim_start_matches('{');
        let Some(close) = inner.find("}}") else {
            // An unclosed expression cannot be a compiled template; keep nothing of it.
            rest = "";
            break;
        };
        out.push('{');
        out.push_str(name(&inner[..close]));
        out.push('}');
        rest = inner[close + 2..].trim_start_matches('}');
        if out.contains(['?', '#']) {
            break;
        }
    }
    out.push_str(rest);
    if let Some(cut) = out.find(['?', '#']) {
        out.truncate(cut);
    }
    if out.len() > MAX_ROUTE {
        let mut end = MAX_ROUTE;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
    }
    out
}

/// The name of an expression: the last identifier of the last path it reads
/// (`nodes.lookup.response.[0].user_id` → `user_id`, `coalesce inputs.a "x"` → `a`), else
/// `value`.
fn name(expression: &str) -> &str {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    // The first word that reads a path (helpers come first: `coalesce inputs.a`).
    let path = expression
        .split_whitespace()
        .find(|w| w.contains('.') && !w.starts_with(['"', '\'']))
        .or_else(|| expression.split_whitespace().next())
        .unwrap_or_default();
    path.rsplit(|c: char| !ident(c))
        .find(|s| !s.is_empty() && !s.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or("value")
}

#[cfg(test)]
mod tests {
    use super::template;

    #[test]
    fn expressions_become_names() {
        assert_eq!(template("/admin/v1/users/{{nodes.lookup.user_id}}/phones"), "/admin/v1/users/{user_id}/phones");
        assert_eq!(template("/admin/v1/users/{{inputs.user_id}}"), "/admin/v1/users/{user_id}");
        assert_eq!(template("/admin/v1/users/{{ nodes.find.response.[0].user_id }}"), "/admin/v1/users/{user_id}");
        assert_eq!(template("/admin/v1/phones/{{{inputs.phone_id}}}"), "/admin/v1/phones/{phone_id}");
        assert_eq!(template("/x/{{coalesce inputs.a \"b\"}}/y"), "/x/{a}/y");
        assert_eq!(template("/x/{{item}}"), "/x/{item}");
        assert_eq!(template("/x/{{nodes.a.list.[3]}}"), "/x/{list}");
        assert_eq!(template("/admin/v1/users"), "/admin/v1/users");
    }

    #[test]
    fn queries_and_fragments_are_dropped() {
        assert_eq!(template("/admin/v1/users?username={{inputs.username}}"), "/admin/v1/users");
        assert_eq!(template("/a/{{inputs.x}}?u=jdoe#frag"), "/a/{x}");
        assert_eq!(template("/a#jdoe"), "/a");
        assert_eq!(template("/a/{{inputs.x"), "/a/");
    }

    #[test]
    fn long_routes_are_cut() {
        let long = format!("/{}", "é".repeat(300));
        let r = template(&long);
        assert!(r.len() <= 256 && r.starts_with("/é"));
    }
}
