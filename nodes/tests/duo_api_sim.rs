//! Duo's endpoints as `flowcat_nodes::duo::api` describes them, held against the simulator,
//! which keeps its own implementation (it never reads the description): for every described
//! endpoint, a correctly signed call over loopback carrying the required parameters is served,
//! answers every field the description says is always there, and is refused as Duo refuses it
//! (400, 40001 naming the parameter) when a required parameter is missing. And every route the
//! simulator serves is described.
//!
//! Every described endpoint is served. One described before the simulator serves it would be
//! listed, by name, in `NOT_SIMULATED_YET` (empty now); the test fails when a listed endpoint
//! becomes routed by the simulator (its own route table: remove it from the list) or an unlisted
//! one is not.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;

use flowcat_nodes::duo::api::{self, Endpoint, Need, Params, Presence, Shape};
use flowcat_nodes::http::{Call, Clients, Reply, send};
use flowcat_nodes::integrations::{self, Integrations, Kind};
use flowcat_sim::{Options, Seed, Sim};
use serde_json::{Map, Value, json};

/// Described endpoints the simulator does not serve yet: none. The list stays so that an
/// endpoint described before the simulator serves it has a place to wait, named.
const NOT_SIMULATED_YET: &[&str] = &[];

/// Parameters Duo requires only with some values of another (`secret` for a HOTP token,
/// `device` for `factor=push`), which the description cannot mark required: the test's calls
/// carry them, and leaving each out must be refused too.
const ALSO_REQUIRED: &[(&str, &[&str])] =
    &[("POST /admin/v1/tokens", &["secret"]), ("POST /auth/v2/auth", &["device"])];

async fn sim() -> Sim {
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    Sim::start_seed(addr, &Seed::demo(), Options::default()).await.expect("sim starts")
}

fn sim_integrations(sim: &Sim) -> Integrations {
    let text = flowcat_sim::integrations::render(sim.addr(), &Seed::demo().integrations);
    integrations::parse(Path::new("sim.yaml"), &text, &|_| None).expect("the sim's file loads")
}

/// One simulator with the demo seed and what a call needs from it.
struct Bench {
    /// Held so that the simulator serves as long as the bench lives.
    _sim: Sim,
    all: Integrations,
    clients: Clients,
    /// The `/auth/v2/enroll` made for `enroll_status`'s two parameters: user id, activation code.
    enrolled: std::sync::Mutex<Option<(String, String)>>,
}

impl Bench {
    async fn new() -> Self {
        let sim = sim().await;
        let all = sim_integrations(&sim);
        Bench { _sim: sim, all, clients: Clients::new(), enrolled: std::sync::Mutex::new(None) }
    }

    async fn call(&self, e: &Endpoint, path: &str, params: &[(String, String)]) -> Reply {
        let (slot, kind) = match e.api {
            api::Api::Admin => ("duo_admin", Kind::DuoAdmin),
            api::Api::Auth => ("duo_auth", Kind::DuoAuth),
        };
        let integration = self.all.for_slot(slot, kind).expect("the sim's integration");
        let mut call = Call::new(e.method, path);
        if e.location() == "body" {
            let body: Map<String, Value> = params.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
            call.body = Some(body);
        } else {
            call.query = params.to_vec();
        }
        send(&self.clients, integration, &call).await.expect("sent")
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let integration = self.all.for_slot("duo_admin", Kind::DuoAdmin).expect("admin");
        let mut call = Call::new("GET", path);
        call.query = query.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let reply = send(&self.clients, integration, &call).await.expect("sent");
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        reply.body["response"].clone()
    }

    /// Alice's user id and her phone's id.
    async fn alice(&self) -> (String, String) {
        let users = self.get("/admin/v1/users", &[("username", "alice")]).await;
        let user_id = users[0]["user_id"].as_str().expect("alice").to_owned();
        let phone_id = users[0]["phones"][0]["phone_id"].as_str().expect("alice's phone").to_owned();
        (user_id, phone_id)
    }

    /// A transaction id of a push to alice, for `auth_status`.
    async fn txid(&self) -> String {
        let auth = api::endpoints().find(|e| e.path == "/auth/v2/auth").expect("described");
        let params = [("username", "alice"), ("factor", "push"), ("device", "auto"), ("async", "1")];
        let params: Vec<(String, String)> = params.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let reply = self.call(auth, "/auth/v2/auth", &params).await;
        reply.body["response"]["txid"].as_str().expect("a txid").to_owned()
    }
}

/// The path with alice's ids in it: her group, her token when she has one, the demo directory.
async fn fill(bench: &Bench, path: &str, user_id: &str, phone_id: &str) -> String {
    let mut path = path.replace("{user_id}", user_id).replace("{phone_id}", phone_id);
    if path.contains("{group_id}") {
        let groups = bench.get(&format!("/admin/v1/users/{user_id}/groups"), &[]).await;
        path = path.replace("{group_id}", groups[0]["group_id"].as_str().expect("alice is in a group"));
    }
    if path.contains("{token_id}") {
        let token = bench.token(true, user_id).await;
        path = path.replace("{token_id}", &token);
    }
    if path.contains("{bypass_code_id}") {
        let create =
            api::endpoints().find(|e| e.path == "/admin/v1/users/{user_id}/bypass_codes" && e.method == "POST");
        let create = create.expect("described");
        let made = bench.call(create, &format!("/admin/v1/users/{user_id}/bypass_codes"), &[]).await;
        assert_eq!(made.status, 200, "{}", made.body);
        let codes = bench.get("/admin/v1/bypass_codes", &[]).await;
        path = path.replace("{bypass_code_id}", codes[0]["bypass_code_id"].as_str().expect("a code's id"));
    }
    path.replace("{directory_key}", DIRECTORY_KEY)
}

/// The demo seed's directory (`flowcat_sim::Seed::demo`).
const DIRECTORY_KEY: &str = "DDSIMDIRECTORY000001";

impl Bench {
    /// A hardware token's id: one of the user's (`hers`), else one assigned to nobody.
    async fn token(&self, hers: bool, user_id: &str) -> String {
        let tokens = self.get("/admin/v1/tokens", &[]).await;
        let tokens = tokens.as_array().expect("a list");
        let of = |t: &&Value| {
            let users = t["users"].as_array().map(Vec::as_slice).unwrap_or_default();
            if hers { users.iter().any(|u| u["user_id"] == user_id) } else { users.is_empty() }
        };
        let token = tokens.iter().find(of).or_else(|| tokens.first()).expect("a demo token");
        token["token_id"].as_str().expect("an id").to_owned()
    }

    /// A user id and activation code from `/auth/v2/enroll`, made once per bench.
    async fn enrolled(&self) -> (String, String) {
        if let Some(done) = self.enrolled.lock().expect("not poisoned").clone() {
            return done;
        }
        let enroll = api::endpoints().find(|e| e.path == "/auth/v2/enroll").expect("described");
        let reply = self.call(enroll, "/auth/v2/enroll", &[]).await;
        let r = &reply.body["response"];
        let done = (
            r["user_id"].as_str().expect("a user id").to_owned(),
            r["activation_code"].as_str().expect("a code").to_owned(),
        );
        *self.enrolled.lock().expect("not poisoned") = Some(done.clone());
        done
    }

    /// A verification push to alice's phone, answered or not: its id.
    async fn push_id(&self, user_id: &str, phone_id: &str) -> String {
        let e =
            api::endpoints().find(|e| e.path == "/admin/v1/users/{user_id}/send_verification_push").expect("described");
        let path = format!("/admin/v1/users/{user_id}/send_verification_push");
        let reply = self.call(e, &path, &[("phone_id".to_owned(), phone_id.to_owned())]).await;
        reply.body["response"]["push_id"].as_str().expect("a push id").to_owned()
    }
}

/// A value for a parameter the call must carry: what a flow would send.
async fn value(bench: &Bench, e: &Endpoint, name: &str, phone_id: &str) -> String {
    let creates = e.method == "POST" && matches!(e.path, "/admin/v1/users" | "/admin/v1/users/enroll");
    match name {
        "username" if creates => "newcomer".to_owned(),
        "username" => "alice".to_owned(),
        "email" => "newcomer@example.com".to_owned(),
        "phone_id" => phone_id.to_owned(),
        "factor" => "push".to_owned(),
        "txid" => bench.txid().await,
        "group_id" => {
            let groups = bench.get("/admin/v1/groups", &[]).await;
            let free = groups.as_array().and_then(|g| g.iter().find(|g| g["name"] != "VPN Users")).expect("a group");
            free["group_id"].as_str().expect("an id").to_owned()
        }
        "token_id" => bench.token(false, "").await,
        "push_id" => {
            let (user_id, phone_id) = bench.alice().await;
            bench.push_id(&user_id, &phone_id).await
        }
        "mintime" | "maxtime" => {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970");
            let ms = now.as_millis() as u64 - if name == "mintime" { 3_600_000 } else { 0 };
            ms.to_string()
        }
        "device" => "auto".to_owned(),
        "name" => "Auditors".to_owned(),
        "type" => "h6".to_owned(),
        "serial" => "900001".to_owned(),
        "secret" => flowcat_sim::seed::DEMO_OATH_SECRET.to_owned(),
        // RFC 4226's codes for its secret at counters 1, 2 and 3 (the demo HOTP token is at 0).
        "code1" => "287082".to_owned(),
        "code2" => "359152".to_owned(),
        "code3" => "969429".to_owned(),
        "user_id" => bench.enrolled().await.0,
        "activation_code" => bench.enrolled().await.1,
        other => panic!("{}: no test value for the required parameter `{other}`", e.name()),
    }
}

/// The required parameters of `e` (one member of each one-of group), with values.
async fn required(bench: &Bench, e: &Endpoint, phone_id: &str) -> Vec<(String, String)> {
    let Params::Described(params) = e.params else { return Vec::new() };
    let mut out = Vec::new();
    let mut groups = Vec::new();
    for p in params {
        let take = match p.need {
            Need::Required => true,
            Need::OneOf(group) if !groups.contains(&group) => {
                groups.push(group);
                true
            }
            _ => false,
        };
        if take {
            out.push((p.name.to_owned(), value(bench, e, p.name, phone_id).await));
        }
    }
    let name = e.name();
    for (_, extra) in ALSO_REQUIRED.iter().filter(|(n, _)| *n == name) {
        for p in *extra {
            out.push(((*p).to_owned(), value(bench, e, p, phone_id).await));
        }
    }
    out
}

/// Every field `shape` says is always there is in `value` (lists: checked on each item).
fn always_there(shape: &Shape, value: &Value, at: &str, missing: &mut Vec<String>) {
    match (shape, value) {
        (Shape::Obj(fields), Value::Object(object)) => {
            for f in *fields {
                match object.get(f.name) {
                    Some(v) => always_there(&f.shape, v, &format!("{at}.{}", f.name), missing),
                    None if f.presence == Presence::Always => missing.push(format!("{at}.{}", f.name)),
                    None => {}
                }
            }
        }
        (Shape::List(item), Value::Array(items)) => {
            for (i, v) in items.iter().enumerate() {
                always_there(item, v, &format!("{at}[{i}]"), missing);
            }
        }
        (Shape::Obj(_), other) | (Shape::List(_), other) => missing.push(format!("{at} (found {other})")),
        _ => {}
    }
}

#[tokio::test]
async fn every_described_endpoint_is_served_as_described_or_listed() {
    let listed: BTreeSet<&str> = NOT_SIMULATED_YET.iter().copied().collect();
    let names: BTreeSet<String> = api::endpoints().map(Endpoint::name).collect();
    for name in &listed {
        assert!(names.contains(*name), "`{name}` is listed but not described");
    }
    let mut problems = Vec::new();
    let mut checked = 0;
    for e in api::endpoints().filter(|e| matches!(e.params, Params::Described(_))) {
        let name = e.name();
        // A fresh simulator per endpoint: a DELETE or a create changes nothing for the others.
        let bench = Bench::new().await;
        let (user_id, phone_id) = bench.alice().await;
        let path = fill(&bench, e.path, &user_id, &phone_id).await;
        let routed = matches!(flowcat_sim::routes::find(e.method, &path), flowcat_sim::routes::Found::Route(..));
        if listed.contains(name.as_str()) {
            if routed {
                problems.push(format!("{name}: listed as not simulated, but the simulator routes it: unlist it"));
            }
            continue;
        }
        if !routed {
            problems.push(format!("{name}: the simulator has no route for it; add one, or list it"));
            continue;
        }
        let params = required(&bench, e, &phone_id).await;
        let reply = bench.call(e, &path, &params).await;
        if reply.status != 200 || reply.body["stat"] != "OK" {
            problems.push(format!("{name} with {params:?}: {} {}", reply.status, reply.body));
            continue;
        }
        let mut missing = Vec::new();
        always_there(&e.response, &reply.body["response"], "$.response", &mut missing);
        if e.paged && reply.body.get("metadata").is_some() {
            always_there(&Shape::Obj(&[]), &reply.body["metadata"], "$.metadata", &mut missing);
        }
        for m in missing {
            problems.push(format!("{name}: the answer lacks `{m}`, which the description says is always there"));
        }
        // Each required parameter (each one-of group whole) left out: refused as Duo refuses it.
        for (i, (left_out, _)) in params.iter().enumerate() {
            let fresh = Bench::new().await;
            let (user_id, phone_id) = fresh.alice().await;
            let mut fewer = required(&fresh, e, &phone_id).await;
            fewer.remove(i);
            let path = fill(&fresh, e.path, &user_id, &phone_id).await;
            let reply = fresh.call(e, &path, &fewer).await;
            let code = reply.body["code"].as_u64().unwrap_or_default();
            if reply.status != 400 || !matches!(code, 40001 | 40002) {
                problems.push(format!(
                    "{name} without `{left_out}`: {} {}, expected 400 with 40001",
                    reply.status, reply.body
                ));
            }
        }
        checked += 1;
    }
    assert!(problems.is_empty(), "{} problem(s):\n{}", problems.len(), problems.join("\n"));
    let described = api::endpoints().filter(|e| matches!(e.params, Params::Described(_))).count();
    assert_eq!(checked + listed.len(), described, "every described endpoint is held against the simulator or listed");
}

#[test]
fn every_route_the_simulator_serves_is_described_with_its_parameters() {
    let shape = |method: &str, path: &str| {
        let path: Vec<&str> = path.split('/').map(|s| if s.starts_with('{') { "{}" } else { s }).collect();
        format!("{method} {}", path.join("/"))
    };
    let described: BTreeSet<String> = api::endpoints()
        .filter(|e| matches!(e.params, Params::Described(_)))
        .map(|e| shape(e.method, e.path))
        .collect();
    for route in flowcat_sim::routes::ROUTES {
        let (method, path) = route.pattern.split_once(' ').expect("METHOD /path");
        assert!(
            described.contains(&shape(method, path)),
            "the simulator serves `{}`, which is not described",
            route.pattern
        );
    }
}
