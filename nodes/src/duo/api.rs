//! Duo's Admin API and Auth API endpoints described as data: method, path template, each
//! parameter (name, type, whether required), the fields of the answer's `response`, the Duo
//! permission the call needs, and the section of Duo's documentation each entry comes from.
//!
//! `flowcat validate` checks every `rest_call` bound to a `duo_admin` or `duo_auth` slot against
//! it (`duo::validate`), and `flowcat list` shows the permissions a flow needs. The simulator
//! keeps its own implementation on purpose; `nodes/tests/duo_api_sim.rs` holds the two against
//! each other.
//!
//! Where the parameters go is not described per parameter: Duo's clients put them in the body
//! for POST, PUT and PATCH and in the query otherwise ([`rules::carries_body`]), so
//! [`Endpoint::location`] derives it.
//!
//! Sources: Duo's Admin API documentation (<https://duo.com/docs/adminapi>) and Auth API
//! documentation (<https://duo.com/docs/authapi>), and, where the documentation at hand was
//! silent, Duo's official Python client (`duo_client/admin.py`, `duo_client/auth.py`), which says
//! what Duo's servers accept; every such entry says so in its `note`.

mod admin;
mod auth;
mod objects;

use super::rules;

/// Which of Duo's APIs an endpoint belongs to (and so which slot kind reaches it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// `duo_admin`: an Admin API application's keys.
    Admin,
    /// `duo_auth`: an Auth API application's keys.
    Auth,
}

impl Api {
    /// The slot kind that reaches this API.
    pub fn slot_kind(self) -> &'static str {
        match self {
            Api::Admin => "duo_admin",
            Api::Auth => "duo_auth",
        }
    }

    /// The API's name in Duo's documentation.
    pub fn title(self) -> &'static str {
        match self {
            Api::Admin => "Admin API",
            Api::Auth => "Auth API",
        }
    }

    fn doc_base(self) -> &'static str {
        match self {
            Api::Admin => "https://duo.com/docs/adminapi",
            Api::Auth => "https://duo.com/docs/authapi",
        }
    }
}

/// What a call needs granted. Admin API applications are given permissions in the Duo Admin
/// Panel (Applications → the Admin API application → Permissions); the names are the Admin
/// Panel's check boxes as Duo's documentation names them ("Grant read resource"; newer pages of
/// the documentation write the same permission as "Grant resource - Read"). The Auth API has no
/// permissions: any Auth API application's keys may call it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Permission {
    ReadResource,
    WriteResource,
    ReadLog,
    ReadInformation,
    Settings,
    Applications,
    Administrators,
    /// An Auth API application's keys.
    AuthApi,
    /// No credentials at all (`/auth/v2/ping`).
    Unsigned,
}

impl Permission {
    /// The name Duo's documentation and Admin Panel give it.
    pub fn name(self) -> &'static str {
        match self {
            Permission::ReadResource => "Grant read resource",
            Permission::WriteResource => "Grant write resource",
            Permission::ReadLog => "Grant read log",
            Permission::ReadInformation => "Grant read information",
            Permission::Settings => "Grant settings",
            Permission::Applications => "Grant applications",
            Permission::Administrators => "Grant administrators",
            Permission::AuthApi => "Auth API application",
            Permission::Unsigned => "none (unsigned)",
        }
    }
}

/// A parameter's type, as the official clients send it (every value travels as a string).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    Str,
    /// A non-negative integer.
    Int,
    /// `1` or `0`.
    Flag,
    /// `true` or `false`.
    Bool,
    /// One of these words.
    Enum(&'static [&'static str]),
    /// A JSON array of strings in one parameter (`user_id_list`).
    JsonList,
    /// A list: the parameter repeated, once per value (the v2 logs' filters).
    Repeated,
    /// Unix time in milliseconds.
    UnixMs,
    /// Unix time in seconds.
    UnixSecs,
    /// Comma-separated values.
    Csv,
}

impl Ty {
    /// The type in words, for messages and docs.
    pub fn describe(self) -> String {
        match self {
            Ty::Str => "a string".to_owned(),
            Ty::Int => "a non-negative integer".to_owned(),
            Ty::Flag => "`1` or `0`".to_owned(),
            Ty::Bool => "`true` or `false`".to_owned(),
            Ty::Enum(words) => {
                let quoted: Vec<String> = words.iter().map(|w| format!("`{w}`")).collect();
                format!("one of {}", quoted.join(", "))
            }
            Ty::JsonList => "a JSON array of strings".to_owned(),
            Ty::Repeated => "a list (the parameter repeated)".to_owned(),
            Ty::UnixMs => "a Unix time in milliseconds".to_owned(),
            Ty::UnixSecs => "a Unix time in seconds".to_owned(),
            Ty::Csv => "comma-separated values".to_owned(),
        }
    }
}

/// Whether a call must carry a parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    Required,
    Optional,
    /// At least one parameter of the group must be given; the group's words say which
    /// (`"username or user_id"`).
    OneOf(&'static str),
}

/// One parameter of an endpoint (path parameters are in the path template, not here).
#[derive(Debug)]
pub struct Param {
    pub name: &'static str,
    pub ty: Ty,
    pub need: Need,
}

/// The shape of (part of) an answer, for checking what an `extract:` reads.
#[derive(Debug)]
pub enum Shape {
    /// Not described further: anything goes.
    Any,
    Str,
    Int,
    Bool,
    /// An object with these fields (Duo may add undocumented ones; reading one is a warning).
    Obj(&'static [Field]),
    /// A list of these.
    List(&'static Shape),
}

/// Whether a described field is in every answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presence {
    /// Every answer has it (possibly `null` or empty).
    Always,
    /// Only some answers (a condition the documentation names: `txid` only for `async=1`).
    Sometimes,
}

/// One field of an object.
#[derive(Debug)]
pub struct Field {
    pub name: &'static str,
    pub shape: Shape,
    pub presence: Presence,
}

/// A field that every answer has.
pub const fn always(name: &'static str, shape: Shape) -> Field {
    Field { name, shape, presence: Presence::Always }
}

/// A field only some answers have.
pub const fn sometimes(name: &'static str, shape: Shape) -> Field {
    Field { name, shape, presence: Presence::Sometimes }
}

/// What is known of an endpoint's parameters.
#[derive(Debug)]
pub enum Params {
    /// Every parameter Duo documents: a name not listed is unknown.
    Described(&'static [Param]),
    /// The endpoint exists (path, method, permission) but its parameters are not described
    /// here: nothing is checked about them.
    Undescribed,
}

/// One endpoint.
#[derive(Debug)]
pub struct Endpoint {
    pub api: Api,
    pub method: &'static str,
    /// The path with `{name}` for each path parameter, as Duo documents it with `[name]`.
    pub path: &'static str,
    pub params: Params,
    /// The shape of the answer's `response`.
    pub response: Shape,
    /// Paged with `limit`/`offset` (or the v2 logs' `next_offset`): the answer has `metadata`.
    pub paged: bool,
    pub permission: Permission,
    /// The section title of Duo's documentation the entry comes from ("Retrieve Users").
    pub section: &'static str,
    /// Where the documentation at hand was unclear or silent, what was taken from where.
    pub note: Option<&'static str>,
}

impl Endpoint {
    /// `GET /admin/v1/users`.
    pub fn name(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// Where the call's parameters go: `"body"` or `"query"`.
    pub fn location(&self) -> &'static str {
        if rules::carries_body(self.method) { "body" } else { "query" }
    }

    /// The documentation page and section: `https://duo.com/docs/adminapi#retrieve-users`.
    pub fn doc_url(&self) -> String {
        let slug: String = self
            .section
            .to_ascii_lowercase()
            .chars()
            .filter_map(|c| match c {
                'a'..='z' | '0'..='9' | '/' | '_' => Some(c),
                ' ' | '-' => Some('-'),
                _ => None,
            })
            .collect();
        format!("{}#{slug}", self.api.doc_base())
    }

    /// The names of the path's `{…}` parameters, in order.
    pub fn path_params(&self) -> impl Iterator<Item = &'static str> {
        self.path.split('/').filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
    }

    /// The parameter `name`, when the parameters are described (the parameters every call of
    /// the API takes included).
    pub fn param(&self, name: &str) -> Option<&'static Param> {
        let common = match self.api {
            Api::Admin => admin::COMMON,
            Api::Auth => &[],
        };
        match self.params {
            Params::Described(params) => params.iter().chain(common).find(|p| p.name == name),
            Params::Undescribed => None,
        }
    }
}

/// Every described endpoint: the Admin API's, then the Auth API's.
pub fn endpoints() -> impl Iterator<Item = &'static Endpoint> {
    admin::ENDPOINTS.iter().chain(auth::ENDPOINTS.iter())
}

/// One segment of a path as a flow writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Segment<'a> {
    /// Written out: `users`, or an id written in (`DU123`).
    Literal(&'a str),
    /// Holds a template: its value is known only when the flow runs.
    Templated,
}

/// Splits a path template's source (`/admin/v1/users/{{inputs.id}}/phones`) into segments: a
/// segment holding `{{` is templated (each value renders as one segment).
pub fn segments(source: &str) -> Option<Vec<Segment<'_>>> {
    let rest = source.strip_prefix('/')?;
    Some(rest.split('/').map(|s| if s.contains("{{") { Segment::Templated } else { Segment::Literal(s) }).collect())
}

/// How the path a flow wrote matches the endpoints of an API.
#[derive(Debug)]
pub enum Lookup {
    /// This endpoint.
    Found(&'static Endpoint),
    /// The path is an endpoint's, but not with this method: these are its methods.
    WrongMethod(Vec<&'static str>),
    /// More than one endpoint could be meant (a templated segment where one has a word and
    /// another a parameter): nothing can be said.
    Ambiguous,
    /// No endpoint has this path.
    Unknown,
}

/// Whether `segments` can be the path `template`; `Some(literal matches)` when it can, so that
/// a path written out word for word wins over one read as a parameter.
fn matches(template: &str, segments: &[Segment<'_>], templated_words: bool) -> Option<usize> {
    let parts: Vec<&str> = template.trim_start_matches('/').split('/').collect();
    if parts.len() != segments.len() {
        return None;
    }
    let mut literal = 0;
    for (part, seg) in parts.iter().zip(segments) {
        let param = part.starts_with('{');
        match seg {
            Segment::Literal(word) if !param && part == word => literal += 1,
            Segment::Literal(word) if param && !word.is_empty() => {}
            Segment::Templated if param || templated_words => {}
            _ => return None,
        }
    }
    Some(literal)
}

/// Finds the endpoint of `api` a call of `method` to the path written as `segments` reaches.
pub fn lookup(api: Api, method: &str, segments: &[Segment<'_>]) -> Lookup {
    let of_api = || endpoints().filter(move |e| e.api == api);
    // A templated segment stands for a parameter; only when nothing matches that way may it
    // stand for a word.
    for templated_words in [false, true] {
        let candidates: Vec<(&'static Endpoint, usize)> =
            of_api().filter_map(|e| matches(e.path, segments, templated_words).map(|n| (e, n))).collect();
        if candidates.is_empty() {
            continue;
        }
        let with_method: Vec<(&'static Endpoint, usize)> =
            candidates.iter().copied().filter(|(e, _)| e.method.eq_ignore_ascii_case(method)).collect();
        if with_method.is_empty() {
            // A templated segment might be a word that makes another endpoint, which has the
            // method: then nothing can be said.
            let templated = segments.contains(&Segment::Templated);
            if templated
                && !templated_words
                && of_api().any(|e| e.method.eq_ignore_ascii_case(method) && matches(e.path, segments, true).is_some())
            {
                return Lookup::Ambiguous;
            }
            let best = candidates.iter().map(|(_, n)| *n).max().unwrap_or(0);
            let mut methods: Vec<&'static str> =
                candidates.iter().filter(|(_, n)| *n == best).map(|(e, _)| e.method).collect();
            methods.dedup();
            return Lookup::WrongMethod(methods);
        }
        let best = with_method.iter().map(|(_, n)| *n).max().unwrap_or(0);
        let top: Vec<&'static Endpoint> = with_method.iter().filter(|(_, n)| *n == best).map(|(e, _)| *e).collect();
        return match top.as_slice() {
            [one] if !templated_words => Lookup::Found(one),
            [one] if segments.iter().all(|s| matches!(s, Segment::Literal(_))) => Lookup::Found(one),
            _ => Lookup::Ambiguous,
        };
    }
    Lookup::Unknown
}

/// The described path of `api` closest to the one written (edit distance over the paths with
/// every parameter and template written `{}`), when it is close enough to be a likely typo.
pub fn closest_path(api: Api, segments: &[Segment<'_>]) -> Option<&'static str> {
    let written = normalised(segments.iter().map(|s| match s {
        Segment::Literal(w) => *w,
        Segment::Templated => "{}",
    }));
    if written.len() > 200 {
        return None;
    }
    let mut best: Option<(usize, &'static str)> = None;
    for e in endpoints().filter(|e| e.api == api) {
        let candidate =
            normalised(e.path.trim_start_matches('/').split('/').map(|p| if p.starts_with('{') { "{}" } else { p }));
        let d = levenshtein(&written, &candidate);
        if best.is_none_or(|(b, _)| d < b) {
            best = Some((d, e.path));
        }
    }
    // A third of the path may differ: a misspelt word or two, not another path.
    best.filter(|(d, _)| *d > 0 && *d <= written.len().max(6) / 3).map(|(_, p)| p)
}

fn normalised<'a>(parts: impl Iterator<Item = &'a str>) -> String {
    parts.collect::<Vec<_>>().join("/")
}

/// The edit distance between two short strings (characters; bounded by the callers).
fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb { prev } else { 1 + prev.min(cur).min(row[j]) };
            prev = cur;
        }
    }
    row[b.len()]
}

/// One step of a JSONPath, as far as the shape check follows it.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// `.name` or `['name']`.
    Name(String),
    /// `[0]`, `[*]`, `[1:3]`, `[?…]`: an element (or elements) of a list.
    Element,
}

/// The steps of a JSONPath the shape check understands: `$`, `.name`, `['name']`, `[n]`, `[*]`,
/// slices and filters. `None` for anything else (`..`, `.*`, unions): such a path is not
/// checked, never reported.
pub fn steps(path: &str) -> Option<Vec<Step>> {
    let mut rest = path.strip_prefix('$')?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-')).unwrap_or(after.len());
            if end == 0 {
                return None;
            }
            out.push(Step::Name(after[..end].to_owned()));
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let close = closing_bracket(after)?;
            let inner = after[..close].trim();
            let quoted = |q: char| inner.strip_prefix(q).and_then(|s| s.strip_suffix(q));
            if let Some(name) = quoted('\'').or_else(|| quoted('"')) {
                if name.contains(['\'', '"', '\\', ',']) {
                    return None;
                }
                out.push(Step::Name(name.to_owned()));
            } else if inner == "*" || inner.starts_with('?') || is_index_or_slice(inner) {
                out.push(Step::Element);
            } else {
                return None;
            }
            rest = &after[close + 1..];
        } else {
            return None;
        }
    }
    Some(out)
}

fn is_index_or_slice(inner: &str) -> bool {
    !inner.is_empty() && inner.chars().all(|c| c.is_ascii_digit() || c == '-' || c == ':' || c == ' ')
}

/// The offset of the `]` that closes a `[` (the text starts after it), across quotes and
/// nested brackets of a filter.
fn closing_bracket(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' => quote = Some(c),
            '[' => depth += 1,
            ']' if depth == 0 => return Some(i),
            ']' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// What following a JSONPath through a described answer found.
#[derive(Debug, PartialEq, Eq)]
pub enum Reach {
    /// Nothing to say: the path stays in described fields, or leaves what is described.
    Fine,
    /// The path names a field the object at `at` does not have; `known` are its fields.
    NoField { field: String, at: String, known: Vec<&'static str> },
    /// The path names a field of `at`, which is a list: it needs `[*]` or `[0]` first.
    ListNotObject { field: String, at: String },
}

/// The fields of Duo's envelope around every answer.
const ENVELOPE: &[Field] = &[
    always("stat", Shape::Str),
    sometimes("response", Shape::Any),
    sometimes("metadata", Shape::Obj(METADATA)),
    sometimes("code", Shape::Any),
    sometimes("message", Shape::Str),
    sometimes("message_detail", Shape::Str),
];

/// A paged answer's `metadata`.
const METADATA: &[Field] =
    &[always("total_objects", Shape::Any), sometimes("next_offset", Shape::Any), sometimes("prev_offset", Shape::Any)];

/// Follows `steps` through `endpoint`'s answer (the envelope, then `response`).
pub fn reach(endpoint: &Endpoint, steps: &[Step]) -> Reach {
    let mut shape = &Shape::Obj(ENVELOPE);
    let mut at = String::from("$");
    for (i, step) in steps.iter().enumerate() {
        let next = match (step, shape) {
            (_, Shape::Any | Shape::Str | Shape::Int | Shape::Bool) => return Reach::Fine,
            (Step::Element, Shape::List(item)) => *item,
            (Step::Element, Shape::Obj(_)) => return Reach::Fine,
            (Step::Name(name), Shape::List(_)) => {
                return Reach::ListNotObject { field: name.clone(), at };
            }
            (Step::Name(name), Shape::Obj(fields)) => {
                if i == 0 && name == "response" {
                    &endpoint.response
                } else {
                    match fields.iter().find(|f| f.name == name) {
                        Some(f) => &f.shape,
                        None => {
                            return Reach::NoField {
                                field: name.clone(),
                                at,
                                known: fields.iter().map(|f| f.name).collect(),
                            };
                        }
                    }
                }
            }
        };
        match step {
            Step::Name(name) => {
                at.push('.');
                at.push_str(name);
            }
            Step::Element => at.push_str("[*]"),
        }
        shape = next;
    }
    Reach::Fine
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(path: &str) -> Vec<Segment<'_>> {
        segments(path).expect("absolute")
    }

    #[test]
    fn every_entry_is_well_formed() {
        let mut seen = std::collections::HashSet::new();
        for e in endpoints() {
            assert!(seen.insert((e.method, e.path)), "{} twice", e.name());
            assert!(rules::METHODS.contains(&e.method), "{}", e.name());
            let prefix = match e.api {
                Api::Admin => "/admin/",
                Api::Auth => "/auth/",
            };
            assert!(e.path.starts_with(prefix), "{}", e.name());
            assert!(!e.section.is_empty(), "{}", e.name());
            if let Params::Described(params) = e.params {
                let mut names = std::collections::HashSet::new();
                for p in params {
                    assert!(names.insert(p.name), "{}: `{}` twice", e.name(), p.name);
                    assert!(!e.path_params().any(|n| n == p.name), "{}: `{}` is in the path", e.name(), p.name);
                }
            }
        }
    }

    #[test]
    fn paths_match_words_before_parameters_and_templates_stand_for_parameters() {
        let found = |method: &str, path: &str| match lookup(Api::Admin, method, &seg(path)) {
            Lookup::Found(e) => e.path,
            other => panic!("{method} {path}: {other:?}"),
        };
        assert_eq!(found("POST", "/admin/v1/users/enroll"), "/admin/v1/users/enroll");
        assert_eq!(found("POST", "/admin/v1/users/{{inputs.id}}"), "/admin/v1/users/{user_id}");
        assert_eq!(found("POST", "/admin/v1/users/DU123"), "/admin/v1/users/{user_id}");
        assert_eq!(found("GET", "/admin/v1/users/{{x}}/phones"), "/admin/v1/users/{user_id}/phones");
        assert!(
            matches!(lookup(Api::Admin, "PUT", &seg("/admin/v1/users")), Lookup::WrongMethod(m) if m == ["GET", "POST"])
        );
        assert!(matches!(lookup(Api::Admin, "GET", &seg("/admin/v1/usrs")), Lookup::Unknown));
        assert!(matches!(lookup(Api::Auth, "GET", &seg("/admin/v1/users")), Lookup::Unknown));
    }

    #[test]
    fn the_closest_path_is_offered_for_a_typo_only() {
        assert_eq!(
            closest_path(Api::Admin, &seg("/admin/v1/usres/{{x}}/phones")),
            Some("/admin/v1/users/{user_id}/phones")
        );
        assert_eq!(closest_path(Api::Admin, &seg("/admin/v1/phone")), Some("/admin/v1/phones"));
        assert_eq!(closest_path(Api::Auth, &seg("/auth/v2/preauht")), Some("/auth/v2/preauth"));
        assert_eq!(closest_path(Api::Admin, &seg("/something/else/entirely/here")), None);
    }

    #[test]
    fn jsonpath_steps_are_understood_or_left_alone() {
        assert_eq!(
            steps("$.response[*].users[0]['user_id']"),
            Some(vec![
                Step::Name("response".into()),
                Step::Element,
                Step::Name("users".into()),
                Step::Element,
                Step::Name("user_id".into())
            ])
        );
        assert_eq!(steps("$.response.devices[?@.capabilities[?@ == 'push']].device").map(|s| s.len()), Some(4));
        assert_eq!(steps("$..user_id"), None);
        assert_eq!(steps("$.response.*"), None);
        assert_eq!(steps("$['a','b']"), None);
    }

    #[test]
    fn fields_are_followed_through_the_answer() {
        let Lookup::Found(users) = lookup(Api::Admin, "GET", &seg("/admin/v1/users")) else { panic!() };
        let reach_of = |p: &str| reach(users, &steps(p).expect("understood"));
        assert_eq!(reach_of("$.response[*].user_id"), Reach::Fine);
        assert_eq!(reach_of("$.response[0].phones[*].phone_id"), Reach::Fine);
        assert_eq!(reach_of("$.metadata.next_offset"), Reach::Fine);
        assert_eq!(reach_of("$.stat"), Reach::Fine);
        match reach_of("$.response[*].user_ID") {
            Reach::NoField { field, at, known } => {
                assert_eq!((field.as_str(), at.as_str()), ("user_ID", "$.response[*]"));
                assert!(known.contains(&"user_id"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            reach_of("$.response.user_id"),
            Reach::ListNotObject { field: "user_id".into(), at: "$.response".into() }
        );
    }
}
