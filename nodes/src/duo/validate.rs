//! `flowcat validate`'s Duo checks of a `rest_call` (and of a write's `reconcile:` read) bound to
//! a `duo_admin` or `duo_auth` slot, against Duo's endpoints as described in [`api`]: the path
//! (with "did you mean"), the method, each parameter's name, the required ones, a path
//! parameter given as a query or body parameter, and (as warnings) an `extract:` reading a field
//! the answer does not have.
//!
//! Only what the flow's text shows is checked: a segment of the path holding a template stands
//! for a path parameter; a parameter whose value is a template counts as given (it may render
//! `null` and be left out, which only the run can tell); an `extract:` path the shape check does
//! not understand (`..`, unions) is left alone. Nothing here is a guess: when a path could be
//! more than one endpoint, nothing more is said.

use flowcat_engine::diag::one_of;
use flowcat_engine::kind::{CompileCx, Lint};
use flowcat_engine::template::Template;
use flowcat_engine::yaml::{Node, Span};

use super::api::{self, Api, Endpoint, Lookup, Need, Params, Permission, Reach, Segment, Ty};

/// The parts of a Duo call the checks read.
#[derive(Debug)]
pub struct Request<'n> {
    /// The slot's kind: `duo_admin` or `duo_auth` (anything else is not checked).
    pub kind: &'n str,
    /// Upper case.
    pub method: &'n str,
    /// Where the method is written (the `method:` value, or the `reconcile:` key).
    pub method_span: Span,
    pub path: &'n Template,
    pub query: Option<&'n Node>,
    pub body: Option<&'n Node>,
    pub extract: Option<&'n Node>,
    /// Where a missing parameter is reported: the `query:` or `body:` key where the
    /// parameters go, or the path when there is none.
    pub params_span: Span,
}

/// What the checks of a node's calls found beside the errors they reported.
#[derive(Debug, Default)]
pub struct Checked {
    /// The permissions the calls need, for those whose endpoint is known.
    pub permissions: Vec<Permission>,
    /// Warnings: extractions of fields the answer does not have.
    pub lints: Vec<Lint>,
}

/// Checks `req` against Duo's described endpoints, reporting errors into `cx` and the rest
/// into `out`.
pub fn check(cx: &mut CompileCx<'_>, req: &Request<'_>, out: &mut Checked) {
    let api = match req.kind {
        "duo_admin" => Api::Admin,
        "duo_auth" => Api::Auth,
        _ => return,
    };
    let Some(segments) = api::segments(&req.path.source) else { return };
    // A path of the other API was reported as `wrong-kind`; a templated first segment hides
    // which API it is.
    let prefix = match api {
        Api::Admin => "admin",
        Api::Auth => "auth",
    };
    match segments.first() {
        Some(Segment::Literal(first)) if *first == prefix => {}
        Some(Segment::Literal(first)) if matches!(*first, "admin" | "auth") => return,
        Some(Segment::Templated) | None => return,
        Some(Segment::Literal(_)) => {}
    }
    let endpoint = match api::lookup(api, req.method, &segments) {
        Lookup::Found(e) => e,
        Lookup::Ambiguous => return,
        Lookup::WrongMethod(methods) => {
            let shown = req.path.source.split("{{").next().unwrap_or_default().trim_end_matches('/').to_owned();
            let d = cx
                .error(
                    "duo-wrong-method",
                    req.method_span,
                    format!("Duo's {} has no `{} {}`", api.title(), req.method, req.path.source),
                )
                .label(format!("the path takes {}", one_of(methods.iter().copied())));
            d.help(format!("use `method: {}`, or check the path `{shown}` against Duo's documentation", methods[0]));
            return;
        }
        Lookup::Unknown => {
            let d = cx
                .error(
                    "duo-unknown-path",
                    req.path.span,
                    format!("`{}` is not a path of Duo's {}", req.path.source, api.title()),
                )
                .label(format!("expected a path of {}", doc_base(api)));
            match api::closest_path(api, &segments) {
                Some(near) => d.help(format!("did you mean `{near}`?")),
                None => d.help(format!("see the paths of {}", doc_base(api))),
            };
            return;
        }
    };
    out.permissions.push(endpoint.permission);
    if let Params::Described(_) = endpoint.params {
        check_params(cx, endpoint, req);
    }
    if let Some(extract) = req.extract.and_then(Node::as_map) {
        for (_, v) in extract {
            let path_node = if v.as_map().is_some() { v.get("path") } else { Some(v) };
            if let Some(lint) = path_node.and_then(|n| check_extract(endpoint, n)) {
                out.lints.push(lint);
            }
        }
    }
}

fn doc_base(api: Api) -> &'static str {
    match api {
        Api::Admin => "Duo's Admin API (https://duo.com/docs/adminapi)",
        Api::Auth => "Duo's Auth API (https://duo.com/docs/authapi)",
    }
}

/// A parameter as the flow gives it.
struct Given<'n> {
    name: &'n str,
    span: Span,
    value: &'n Node,
    /// A literal `null`: left out of the request.
    null: bool,
}

fn given<'n>(section: Option<&'n Node>) -> Vec<Given<'n>> {
    let pairs = section.and_then(Node::as_map).unwrap_or_default();
    pairs
        .iter()
        .filter_map(|(k, v)| Some(Given { name: k.as_str()?, span: k.span, value: v, null: v.is_null() }))
        .collect()
}

fn check_params(cx: &mut CompileCx<'_>, endpoint: &'static Endpoint, req: &Request<'_>) {
    let Params::Described(params) = endpoint.params else { return };
    let all: Vec<Given<'_>> = given(req.query).into_iter().chain(given(req.body)).collect();
    let name = endpoint.name();
    for g in &all {
        if let Some(param) = endpoint.param(g.name) {
            check_value(cx, endpoint, param, g.value);
            continue;
        }
        if endpoint.path_params().any(|p| p == g.name) {
            cx.error("duo-param-in-path", g.span, format!("`{}` is part of the path of `{name}`", g.name))
                .label(format!("Duo reads `{}` from the path only", g.name))
                .help(format!("remove it here and write its value in the path: `{}`", endpoint.path));
            continue;
        }
        let names: Vec<&str> = params.iter().map(|p| p.name).collect();
        let d = cx.error("duo-unknown-param", g.span, format!("`{name}` has no parameter `{}`", g.name)).label(
            if names.is_empty() {
                "it takes no parameters".to_owned()
            } else {
                format!("expected {}", one_of(names.iter().copied()))
            },
        );
        d.help(format!("see {}", endpoint.doc_url()));
        d.suggest(g.name, names.iter().copied());
    }
    let is_given = |n: &str| all.iter().any(|g| g.name == n && !g.null);
    let section = endpoint.location();
    let at = req.params_span;
    let mut groups_reported: Vec<&str> = Vec::new();
    for p in params {
        match p.need {
            Need::Required if !is_given(p.name) => {
                cx.error("duo-missing-param", at, format!("`{name}` needs the parameter `{}`", p.name))
                    .label("Duo answers 40001 (missing required parameters) without it".to_owned())
                    .help(format!("add `{}:` ({}) under `{section}:`", p.name, p.ty.describe()));
            }
            Need::OneOf(group) if !groups_reported.contains(&group) => {
                let members: Vec<&str> =
                    params.iter().filter(|q| q.need == Need::OneOf(group)).map(|q| q.name).collect();
                if !members.iter().any(|m| is_given(m)) {
                    groups_reported.push(group);
                    cx.error("duo-missing-param", at, format!("`{name}` needs {group}"))
                        .label("Duo refuses the call without one of them".to_owned())
                        .help(format!("add `{}:` under `{section}:`", members[0]));
                }
            }
            _ => {}
        }
    }
}

/// A value written out (not a template) that Duo cannot take for `param`: Duo answers 40002, or
/// the call is refused before it is sent (a boolean, list or object in a Duo body).
fn check_value(cx: &mut CompileCx<'_>, endpoint: &'static Endpoint, param: &'static api::Param, value: &Node) {
    let name = endpoint.name();
    let body = endpoint.location() == "body";
    let problem: Option<(String, String)> = if value.as_map().is_some() || value.as_seq().is_some() {
        match param.ty {
            Ty::Repeated if !body => None,
            Ty::JsonList => Some((
                "a list written in YAML".to_owned(),
                format!("write the list as JSON text in a string, e.g. `{}: '[\"a\", \"b\"]'`", param.name),
            )),
            _ => Some(("a list or an object".to_owned(), "write one value".to_owned())),
        }
    } else if value.is_null() {
        None
    } else {
        let text = value.as_str().unwrap_or_default();
        let plain_bool = value.as_bool().is_some();
        let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
        let quoted = |what: &str| format!("`{}: \"{what}\"`", param.name);
        if text.contains("{{") {
            None
        } else if plain_bool && body {
            let fix = match param.ty {
                Ty::Flag => quoted(if value.as_bool() == Some(true) { "1" } else { "0" }),
                _ => quoted(text),
            };
            Some((format!("the boolean `{text}`"), format!("Duo takes every parameter as a string: write {fix}")))
        } else {
            match param.ty {
                Ty::Int | Ty::UnixMs | Ty::UnixSecs if !digits => {
                    Some((format!("`{text}`"), "write a whole number".to_owned()))
                }
                Ty::Flag if !matches!(text, "0" | "1") => {
                    let fix = if plain_bool {
                        quoted(if value.as_bool() == Some(true) { "1" } else { "0" })
                    } else {
                        "`1` or `0`".to_owned()
                    };
                    Some((format!("`{text}`"), format!("write {fix}")))
                }
                Ty::Bool if !text.eq_ignore_ascii_case("true") && !text.eq_ignore_ascii_case("false") => {
                    Some((format!("`{text}`"), "write `\"true\"` or `\"false\"`".to_owned()))
                }
                Ty::Enum(words) if !words.iter().any(|w| w.eq_ignore_ascii_case(text)) => {
                    let help = match flowcat_engine::diag::did_you_mean(text, words.iter().copied()) {
                        Some(near) => format!("did you mean `{near}`?"),
                        None => format!("write {}", one_of(words.iter().copied())),
                    };
                    Some((format!("`{text}`"), help))
                }
                _ => None,
            }
        }
    };
    if let Some((found, help)) = problem {
        cx.error(
            "duo-bad-value",
            value.span,
            format!("`{}` of `{name}` takes {}, not {found}", param.name, param.ty.describe()),
        )
        .label("Duo refuses it: 40002 (invalid request parameters), or flowcat before sending")
        .help(help);
    }
}

/// The warning for an extraction of a field the answer does not have.
fn check_extract(endpoint: &'static Endpoint, node: &Node) -> Option<Lint> {
    let source = node.as_str()?;
    let steps = api::steps(source)?;
    let name = endpoint.name();
    match api::reach(endpoint, &steps) {
        Reach::Fine => None,
        Reach::NoField { field, at, known } => {
            let near = flowcat_engine::diag::did_you_mean(&field, known.iter().copied());
            let help = match near {
                Some(near) => format!("did you mean `{near}`? (see {})", endpoint.doc_url()),
                None => format!("see the answer's fields at {}", endpoint.doc_url()),
            };
            Some(Lint {
                code: "duo-unknown-field",
                span: node.span,
                message: format!("the answer of `{name}` has no field `{field}` at `{at}`"),
                label: Some(format!(
                    "Duo documents {} there; an undocumented field may still come, so this is only a warning",
                    one_of(known.iter().copied())
                )),
                help: Some(help),
            })
        }
        Reach::ListNotObject { field, at } => Some(Lint {
            code: "duo-unknown-field",
            span: node.span,
            message: format!("`{at}` of the answer of `{name}` is a list: `.{field}` finds nothing in it"),
            label: Some("a name selects a field of an object, not of a list".to_owned()),
            help: Some(format!("write `{at}[0].{field}` (the first) or `{at}[*].{field}` (every one)")),
        }),
    }
}
