//! The shapes of the flow format, declared once: they check a YAML tree (unknown keys, wrong
//! types, missing fields), generate the JSON Schema and feed the reference docs.
//!
//! A node kind declares its fields as `&'static [Field]`, the flow format declares its own the
//! same way; nothing else knows which keys exist, so the checker, the schema and the docs cannot
//! drift apart.

/// What a value must look like.
#[derive(Debug)]
pub enum Shape {
    /// Any scalar, taken as its text (`NO` and `0123` stay as written).
    Str,
    /// A name usable in templates: a letter or `_`, then letters, digits or `_`.
    Name,
    /// A string that is a handlebars template.
    Template,
    /// A template that must come out `true` or `false`, or a plain `true`/`false`.
    Condition,
    Bool,
    /// A non-negative integer.
    Int,
    /// A duration with a unit: `500ms`, `2s`, `5m`, `1h`, `7d`.
    Duration,
    /// One of these words.
    Enum(&'static [&'static str]),
    /// Any YAML value; strings inside it are templates.
    Value,
    List(&'static Shape),
    /// A mapping from names to values of one shape.
    Map(&'static Shape),
    /// A mapping from any strings (header names, query parameters) to values of one shape.
    Dict(&'static Shape),
    Object(&'static [Field]),
    /// The first alternative whose kind of YAML value (scalar, list, mapping) matches.
    OneOf(&'static [Shape]),
    /// An integration kind from the registry.
    IntegrationKind,
    /// The list of nodes: each is checked against its kind's fields.
    Nodes,
}

/// A key of an object, with its documentation.
#[derive(Debug)]
pub struct Field {
    pub name: &'static str,
    pub shape: Shape,
    pub required: bool,
    pub doc: &'static str,
}

impl Field {
    pub const fn required(name: &'static str, shape: Shape, doc: &'static str) -> Field {
        Field { name, shape, required: true, doc }
    }

    pub const fn optional(name: &'static str, shape: Shape, doc: &'static str) -> Field {
        Field { name, shape, required: false, doc }
    }
}

/// Whether `s` is a valid name: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses `500ms`, `2s`, `5m`, `1h`, `7d`.
pub fn parse_duration(s: &str) -> Option<std::time::Duration> {
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let ms = match unit {
        "ms" => n,
        "s" => n.checked_mul(1_000)?,
        "m" => n.checked_mul(60_000)?,
        "h" => n.checked_mul(3_600_000)?,
        "d" => n.checked_mul(86_400_000)?,
        _ => return None,
    };
    Some(std::time::Duration::from_millis(ms))
}

/// A human word for a shape, for "expected a string or a mapping".
pub fn describe(shape: &Shape) -> &'static str {
    match shape {
        Shape::Str | Shape::Template => "a string",
        Shape::Name => "a name",
        Shape::Condition => "a condition",
        Shape::Bool => "a boolean",
        Shape::Int => "a whole number",
        Shape::Duration => "a duration",
        Shape::Enum(_) | Shape::IntegrationKind => "a word",
        Shape::Value => "any value",
        Shape::List(_) | Shape::Nodes => "a list",
        Shape::Map(_) | Shape::Dict(_) | Shape::Object(_) => "a mapping",
        Shape::OneOf(_) => "a value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Some(std::time::Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Some(std::time::Duration::from_secs(2)));
        assert_eq!(parse_duration("1h"), Some(std::time::Duration::from_secs(3600)));
        assert_eq!(parse_duration("7d"), Some(std::time::Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("2"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("2 s"), None);
    }

    #[test]
    fn names() {
        assert!(is_name("user_id"));
        assert!(is_name("_x1"));
        assert!(!is_name("1x"));
        assert!(!is_name("user-id"));
    }
}
