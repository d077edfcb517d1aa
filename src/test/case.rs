//! A test file (`*.test.yaml`) read with the flow format's YAML parser, so that every problem is
//! a diagnostic at its `file:line:col` with a fix, as a flow's are. The format is in
//! docs/testing.md.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use flowcat_engine::diag::{Diags, Source};
use flowcat_engine::shape::parse_duration;
use flowcat_engine::yaml::{self, Node, Pos, Span};
use serde_json::{Map, Value, json};

/// One test file: the flow it tests and its cases.
#[derive(Debug)]
pub struct Suite {
    pub path: String,
    pub flow: String,
    pub flow_span: Option<Span>,
    pub cases: Vec<Case>,
}

#[derive(Debug)]
pub struct Case {
    pub name: String,
    pub span: Span,
    pub inputs: Map<String, Value>,
    pub vars: Map<String, Value>,
    pub mocks: Vec<Mock>,
    pub signals: Vec<Signal>,
    pub expect: Expect,
}

/// Answers for one node (by its path in the run) or one route.
#[derive(Clone, Debug)]
pub struct Mock {
    pub target: Target,
    /// The key's place, for "this mock names nothing".
    pub span: Span,
    /// In order, one per request; the last one answers every request after it.
    pub answers: Vec<Answer>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `lookup`, `user/lookup` (a node of the subflow that node `user` runs).
    Node(String),
    /// `GET /admin/v1/users/{user_id}`: `{…}` (or `*`) stands for one path segment.
    Route { method: String, path: String },
}

impl Target {
    pub fn show(&self) -> String {
        match self {
            Target::Node(id) => format!("node `{id}`"),
            Target::Route { method, path } => format!("route `{method} {path}`"),
        }
    }
}

#[derive(Clone, Debug)]
pub enum Answer {
    Reply {
        status: u16,
        headers: BTreeMap<String, String>,
        body: Value,
    },
    /// The connection drops before an answer.
    Dropped,
    /// No answer: the attempt's time limit passes (on the test's clock).
    Timeout,
    /// No connection could be made.
    Refused,
}

/// A signal delivered to the run's `wait_for` node, `after` its wait began.
#[derive(Clone, Debug)]
pub struct Signal {
    pub name: String,
    pub span: Span,
    pub after: Duration,
    pub payload: Value,
}

#[derive(Debug, Default)]
pub struct Expect {
    /// `succeeded`, `failed`, `needs_attention`, or `refused` (the run did not start).
    pub status: String,
    pub error: Option<ExpectError>,
    pub outputs: Vec<(String, Span, Value)>,
    pub requests: Option<Vec<ExpectRequest>>,
}

#[derive(Debug, Default)]
pub struct ExpectError {
    pub code: Option<String>,
    pub node: Option<String>,
    pub message: Option<String>,
}

#[derive(Debug)]
pub struct ExpectRequest {
    pub method: String,
    pub path: String,
    pub params: Option<Value>,
}

/// The statuses a case may expect.
pub const STATUSES: [&str; 4] = ["succeeded", "failed", "needs_attention", "refused"];
/// The faults a mock may answer with.
pub const FAULTS: [&str; 4] = ["dropped", "timeout", "refused", "rate_limited"];
const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// Reads a test file, every problem into `diags`; `None` when it names no flow. Cases that could
/// not be read are left out: run a suite only when `diags` has no errors.
pub fn parse(source: &Arc<Source>, diags: &mut Diags) -> Option<Suite> {
    let root = match yaml::parse(&source.text) {
        Ok(Some(root)) => root,
        Ok(None) => {
            diags
                .error("test-file", None, "the test file is empty")
                .help("give `flow:` and `cases:` (docs/testing.md)");
            return None;
        }
        Err(e) => {
            let span = Span { start: e.pos, end: Pos { line: e.pos.line, col: e.pos.col + 1 } };
            diags
                .error("yaml-syntax", Some(span), format!("invalid YAML: {}", e.message))
                .label("the YAML parser stopped here")
                .help(e.help.unwrap_or("check the indentation and that every quote and bracket is closed"));
            return None;
        }
    };
    let mut p = Parser { diags };
    let top = p.map(&root, &["flow", "cases"], "the test file")?;
    let flow = p.required_str(&root, top, "flow", "the test file");
    let mut cases = Vec::new();
    match top.iter().find(|(k, _)| k.as_str() == Some("cases")) {
        None => {
            p.diags.error("missing-key", Some(root.span), "the test file has no `cases:`").help("add a list of cases");
        }
        Some((_, list)) => match list.as_seq() {
            None => {
                p.diags.error(
                    "wrong-type",
                    Some(list.span),
                    format!("`cases` must be a list, not {}", list.describe()),
                );
            }
            Some(items) => {
                for item in items {
                    if let Some(case) = p.case(item) {
                        cases.push(case);
                    }
                }
            }
        },
    }
    let mut names: Vec<&str> = Vec::new();
    for case in &cases {
        if names.contains(&case.name.as_str()) {
            p.diags
                .error("duplicate-case", Some(case.span), format!("two cases are named `{}`", case.name))
                .help("give each case its own name: reports and JUnit name cases by it");
        }
        names.push(&case.name);
    }
    // With errors too: the cases that could be read are still checked against the flow, so that
    // every mistake is reported at once (a suite with errors is not run).
    let flow = flow?;
    Some(Suite { path: source.path.clone(), flow: flow.0, flow_span: Some(flow.1), cases })
}

struct Parser<'d> {
    diags: &'d mut Diags,
}

impl Parser<'_> {
    /// The pairs of a mapping whose keys are all `allowed`; unknown keys are reported.
    fn map<'n>(&mut self, node: &'n Node, allowed: &[&str], what: &str) -> Option<&'n [(Node, Node)]> {
        let Some(pairs) = node.as_map() else {
            self.diags.error(
                "wrong-type",
                Some(node.span),
                format!("{what} must be a mapping, not {}", node.describe()),
            );
            return None;
        };
        let mut seen: Vec<&str> = Vec::new();
        for (k, _) in pairs {
            let key = k.as_str().unwrap_or_default();
            if !allowed.contains(&key) {
                self.diags
                    .error("unknown-key", Some(k.span), format!("{what}: unknown key `{key}`"))
                    .help(format!("expected one of {}", flowcat_engine::diag::one_of(allowed.iter().copied())))
                    .suggest(key, allowed.iter().copied());
            } else if seen.contains(&key) {
                self.diags.error("duplicate-key", Some(k.span), format!("{what}: `{key}` is given twice"));
            }
            seen.push(key);
        }
        Some(pairs)
    }

    fn required_str(&mut self, parent: &Node, pairs: &[(Node, Node)], key: &str, what: &str) -> Option<(String, Span)> {
        match pairs.iter().find(|(k, _)| k.as_str() == Some(key)) {
            None => {
                self.diags.error("missing-key", Some(parent.span), format!("{what} has no `{key}`"));
                None
            }
            Some((_, v)) => self.string(v, key),
        }
    }

    fn string(&mut self, node: &Node, key: &str) -> Option<(String, Span)> {
        match node.as_str() {
            Some(s) if !s.is_empty() => Some((s.to_owned(), node.span)),
            _ => {
                self.diags.error("wrong-type", Some(node.span), format!("`{key}` must be a non-empty string"));
                None
            }
        }
    }

    fn object(&mut self, node: &Node, key: &str) -> Option<Map<String, Value>> {
        match node.to_json() {
            Value::Object(m) => Some(m),
            _ => {
                self.diags.error(
                    "wrong-type",
                    Some(node.span),
                    format!("`{key}` must be a mapping, not {}", node.describe()),
                );
                None
            }
        }
    }

    fn case(&mut self, node: &Node) -> Option<Case> {
        let keys = ["name", "inputs", "vars", "mocks", "signals", "expect"];
        let pairs = self.map(node, &keys, "a case")?;
        let name = self.required_str(node, pairs, "name", "a case");
        let mut case = Case {
            name: String::new(),
            span: node.span,
            inputs: Map::new(),
            vars: Map::new(),
            mocks: Vec::new(),
            signals: Vec::new(),
            expect: Expect::default(),
        };
        let mut expect = None;
        for (k, v) in pairs {
            match k.as_str().unwrap_or_default() {
                "inputs" => case.inputs = self.object(v, "inputs").unwrap_or_default(),
                "vars" => case.vars = self.object(v, "vars").unwrap_or_default(),
                "mocks" => case.mocks = self.mocks(v),
                "signals" => case.signals = self.signals(v),
                "expect" => expect = self.expect(v),
                _ => {}
            }
        }
        match expect {
            Some(e) => case.expect = e,
            None if pairs.iter().any(|(k, _)| k.as_str() == Some("expect")) => {}
            None => {
                self.diags
                    .error("missing-key", Some(node.span), "a case has no `expect:`")
                    .help("say at least `expect: { status: succeeded }`");
            }
        }
        case.name = name?.0;
        Some(case)
    }

    fn mocks(&mut self, node: &Node) -> Vec<Mock> {
        let Some(pairs) = node.as_map() else {
            self.diags.error(
                "wrong-type",
                Some(node.span),
                "`mocks` must be a mapping of node ids or routes to answers",
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for (k, v) in pairs {
            let key = k.as_str().unwrap_or_default().trim();
            let target = match key.split_once(' ') {
                Some((method, path)) => {
                    let method = method.to_ascii_uppercase();
                    let path = path.trim();
                    if !METHODS.contains(&method.as_str()) || !path.starts_with('/') || path.contains('?') {
                        self.diags
                            .error("bad-route", Some(k.span), format!("`{key}` is neither a node id nor a route"))
                            .help("a route is a method and a path without a query: `GET /admin/v1/users`, `POST /auth/v2/auth`, `{name}` for a path segment");
                        continue;
                    }
                    Target::Route { method, path: path.to_owned() }
                }
                None if !key.is_empty() => Target::Node(key.to_owned()),
                None => {
                    self.diags.error("bad-route", Some(k.span), "an empty mock key").help("name a node id or a route");
                    continue;
                }
            };
            if out.iter().any(|m: &Mock| m.target == target) {
                self.diags.error("duplicate-key", Some(k.span), format!("{} is mocked twice", target.show()));
                continue;
            }
            let answers: Vec<Answer> = match v.as_seq() {
                Some([]) => {
                    self.diags.error("wrong-type", Some(v.span), "an empty list of answers").help("give at least one");
                    continue;
                }
                Some(list) => list.iter().filter_map(|a| self.answer(a)).collect(),
                None => self.answer(v).into_iter().collect(),
            };
            if answers.is_empty() {
                continue;
            }
            out.push(Mock { target, span: k.span, answers });
        }
        out
    }

    /// One answer: `response:` (Duo's `stat: OK` envelope), `error:` (Duo's `stat: FAIL`),
    /// `status:` + `body:` as given, or `fault:`.
    fn answer(&mut self, node: &Node) -> Option<Answer> {
        let keys = ["response", "metadata", "error", "message", "status", "body", "headers", "fault"];
        let pairs = self.map(node, &keys, "an answer")?;
        let get = |key: &str| pairs.iter().find(|(k, _)| k.as_str() == Some(key)).map(|(_, v)| v);
        let given: Vec<&str> =
            ["response", "error", "body", "fault"].into_iter().filter(|k| get(k).is_some()).collect();
        if given.len() != 1 {
            self.diags
                .error("bad-answer", Some(node.span), "an answer needs exactly one of `response`, `error`, `body` or `fault`")
                .help("`response: {…}` (Duo's stat OK), `error: 40401` (Duo's stat FAIL), `status: 503` with `body: …`, or `fault: dropped | timeout | refused | rate_limited`");
            return None;
        }
        let mut headers = BTreeMap::new();
        if let Some(h) = get("headers") {
            for (k, v) in h.as_map().unwrap_or_default() {
                let (Some(k), Some(v)) = (k.as_str(), v.as_str()) else { continue };
                headers.insert(k.to_ascii_lowercase(), v.to_owned());
            }
        }
        let status = match get("status") {
            None => None,
            Some(s) => match s.as_number().and_then(|n| n.as_u64()).filter(|n| (100..600).contains(n)) {
                Some(n) => Some(n as u16),
                None => {
                    self.diags.error("wrong-type", Some(s.span), "`status` must be an HTTP status, 100 to 599");
                    return None;
                }
            },
        };
        match given[0] {
            "response" => {
                let mut body = json!({ "stat": "OK", "response": get("response").map(Node::to_json) });
                if let Some(m) = get("metadata") {
                    body["metadata"] = m.to_json();
                }
                Some(Answer::Reply { status: status.unwrap_or(200), headers, body })
            }
            "error" => {
                let e = get("error")?;
                let Some(code) = e.as_number().and_then(|n| n.as_u64()).filter(|c| (10000..60000).contains(c)) else {
                    self.diags.error("wrong-type", Some(e.span), "`error` must be Duo's five-digit error code").help(
                        "e.g. `error: 40401` (resource not found); HTTP 404 is taken from its first three digits",
                    );
                    return None;
                };
                let message = get("message").and_then(Node::as_str).unwrap_or("error").to_owned();
                let body = json!({ "stat": "FAIL", "code": code, "message": message });
                Some(Answer::Reply { status: status.unwrap_or((code / 100) as u16), headers, body })
            }
            "body" => {
                let Some(status) = status else {
                    self.diags.error("missing-key", Some(node.span), "an answer with `body` needs a `status`");
                    return None;
                };
                Some(Answer::Reply { status, headers, body: get("body")?.to_json() })
            }
            _ => {
                let f = get("fault")?;
                match f.as_str().unwrap_or_default() {
                    "dropped" => Some(Answer::Dropped),
                    "timeout" => Some(Answer::Timeout),
                    "refused" => Some(Answer::Refused),
                    "rate_limited" => {
                        let body = json!({ "stat": "FAIL", "code": 42901, "message": "Too Many Requests" });
                        Some(Answer::Reply { status: 429, headers, body })
                    }
                    other => {
                        self.diags
                            .error("unknown-fault", Some(f.span), format!("unknown fault `{other}`"))
                            .help(format!("one of {}", flowcat_engine::diag::one_of(FAULTS)))
                            .suggest(other, FAULTS);
                        None
                    }
                }
            }
        }
    }

    fn signals(&mut self, node: &Node) -> Vec<Signal> {
        let Some(pairs) = node.as_map() else {
            self.diags.error("wrong-type", Some(node.span), "`signals` must be a mapping of signal names");
            return Vec::new();
        };
        let mut out = Vec::new();
        for (k, v) in pairs {
            let Some(fields) = self.map(v, &["after", "payload"], "a signal") else { continue };
            let mut signal = Signal {
                name: k.as_str().unwrap_or_default().to_owned(),
                span: k.span,
                after: Duration::ZERO,
                payload: json!({}),
            };
            for (fk, fv) in fields {
                match fk.as_str().unwrap_or_default() {
                    "after" => match fv.as_str().and_then(parse_duration) {
                        Some(d) => signal.after = d,
                        None => {
                            self.diags
                                .error("wrong-type", Some(fv.span), "`after` must be a duration")
                                .help("`500ms`, `30s`, `2h`, `1d`: how long after the wait began the signal comes");
                        }
                    },
                    _ => signal.payload = fv.to_json(),
                }
            }
            out.push(signal);
        }
        out
    }

    fn expect(&mut self, node: &Node) -> Option<Expect> {
        let pairs = self.map(node, &["status", "error", "outputs", "requests"], "`expect`")?;
        let mut expect = Expect::default();
        let status = self.required_str(node, pairs, "status", "`expect`");
        if let Some((s, span)) = &status {
            if !STATUSES.contains(&s.as_str()) {
                self.diags
                    .error("unknown-status", Some(*span), format!("unknown status `{s}`"))
                    .help(format!("one of {}", flowcat_engine::diag::one_of(STATUSES)))
                    .suggest(s, STATUSES);
            }
        }
        for (k, v) in pairs {
            match k.as_str().unwrap_or_default() {
                "error" => {
                    let Some(fields) = self.map(v, &["code", "node", "message"], "`expect.error`") else { continue };
                    let mut e = ExpectError::default();
                    for (fk, fv) in fields {
                        let text = self.string(fv, fk.as_str().unwrap_or_default()).map(|s| s.0);
                        match fk.as_str().unwrap_or_default() {
                            "code" => e.code = text,
                            "node" => e.node = text,
                            _ => e.message = text,
                        }
                    }
                    expect.error = Some(e);
                }
                "outputs" => {
                    let Some(fields) = v.as_map() else {
                        self.diags.error("wrong-type", Some(v.span), "`outputs` must be a mapping of output names");
                        continue;
                    };
                    for (fk, fv) in fields {
                        expect.outputs.push((fk.as_str().unwrap_or_default().to_owned(), fk.span, fv.to_json()));
                    }
                }
                "requests" => expect.requests = self.requests(v),
                _ => {}
            }
        }
        if let (Some((s, span)), Some(_)) = (&status, &expect.error) {
            if s == "succeeded" {
                self.diags
                    .error("bad-expect", Some(*span), "a case that expects `succeeded` cannot expect an `error`")
                    .help("expect `failed` with the error, or drop `error:`");
            }
        }
        expect.status = status?.0;
        Some(expect)
    }

    /// `requests:` a list of `METHOD /path` or `{ "METHOD /path": {params} }`.
    fn requests(&mut self, node: &Node) -> Option<Vec<ExpectRequest>> {
        let Some(items) = node.as_seq() else {
            self.diags.error("wrong-type", Some(node.span), "`requests` must be a list of `METHOD /path`");
            return None;
        };
        let mut out = Vec::new();
        for item in items {
            let (key, params) = match (&item.value, item.as_map()) {
                (yaml::Value::Scalar { .. }, _) => (item, None),
                (_, Some([(k, v)])) => (k, Some(v.to_json())),
                _ => {
                    self.diags
                        .error("wrong-type", Some(item.span), "a request is `METHOD /path` or `METHOD /path: {params}`")
                        .help("e.g. `- GET /admin/v1/users: { username: alice }`");
                    continue;
                }
            };
            let text = key.as_str().unwrap_or_default();
            match text.split_once(' ') {
                Some((m, p)) if METHODS.contains(&m.to_ascii_uppercase().as_str()) && p.trim().starts_with('/') => {
                    out.push(ExpectRequest { method: m.to_ascii_uppercase(), path: p.trim().to_owned(), params });
                }
                _ => {
                    self.diags
                        .error("bad-route", Some(key.span), format!("`{text}` is not `METHOD /path`"))
                        .help("e.g. `GET /admin/v1/users` (the rendered path, without the query)");
                }
            }
        }
        Some(out)
    }
}
