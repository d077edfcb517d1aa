//! The one route table: the router is built from it, and so is the OpenAPI 3.1 document
//! (`GET /v1/openapi.json`), so the two cannot disagree (a test also calls every documented
//! route on the router).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::routing::{MethodFilter, MethodRouter, on};
use serde_json::{Value, json};

use crate::App;
use crate::api;

/// What a route does: one handler each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    ListFlows,
    GetFlow,
    StartRun,
    ListRuns,
    GetRun,
    CancelRun,
    SignalRun,
    Healthz,
    Readyz,
    Metrics,
    OpenApi,
}

/// A documented parameter: in the path or the query.
#[derive(Clone, Copy, Debug)]
pub struct Param {
    pub name: &'static str,
    pub place: &'static str,
    pub description: &'static str,
    pub required: bool,
}

const fn path(name: &'static str, description: &'static str) -> Param {
    Param { name, place: "path", description, required: true }
}

const fn query(name: &'static str, description: &'static str) -> Param {
    Param { name, place: "query", description, required: false }
}

/// One route.
#[derive(Clone, Copy, Debug)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub op: Op,
    pub summary: &'static str,
    /// Needs a bearer token.
    pub auth: bool,
    pub params: &'static [Param],
    /// Has a JSON request body (a run's inputs).
    pub body: bool,
    /// Status codes it answers, with what each means.
    pub responses: &'static [(u16, &'static str)],
}

const FLOW_ID: Param = path("id", "A flow id of the catalog, e.g. `duo.auth.verify_push`.");
const RUN_ID: Param = path("id", "A run id, as `Location` or a run list gave it.");
const AUTH: [(u16, &str); 2] = [(401, "No token, or not a known one."), (403, "The token may not do this.")];

/// Every route the service serves.
pub const ROUTES: &[Route] = &[
    Route {
        method: "GET",
        path: "/v1/flows",
        op: Op::ListFlows,
        summary: "The flows this token may start, each with its signature.",
        auth: true,
        params: &[],
        body: false,
        responses: &[(200, "A list of flow signatures."), AUTH[0]],
    },
    Route {
        method: "GET",
        path: "/v1/flows/{id}",
        op: Op::GetFlow,
        summary: "One flow's signature: inputs with types, outputs, integrations, outcomes.",
        auth: true,
        params: &[FLOW_ID],
        body: false,
        responses: &[(200, "The flow's signature."), AUTH[0], AUTH[1], (404, "No such flow.")],
    },
    Route {
        method: "POST",
        path: "/v1/flows/{id}/runs",
        op: Op::StartRun,
        summary: "Start a run; the body is the inputs (a JSON object). `Idempotency-Key` is the run key.",
        auth: true,
        params: &[
            FLOW_ID,
            query("wait", "Wait up to this long for the run to end (e.g. `30s`, at most the configured `max_wait`)."),
            Param {
                name: "Idempotency-Key",
                place: "header",
                description: "The run key: a retry with the same key answers the same run, never a second one.",
                required: false,
            },
        ],
        body: true,
        responses: &[
            (200, "With `wait`: the run ended within it; its record."),
            (202, "The run started (or is still running): its URL in `Location`."),
            (400, "The inputs do not fit the flow's signature: every problem, as the CLI prints them."),
            AUTH[0],
            AUTH[1],
            (404, "No such flow."),
            (413, "The body is larger than `max_body_bytes`."),
            (415, "The body is not `application/json`."),
            (429, "This token has `max_runs_per_token` runs in flight."),
            (503, "The service is shutting down, or the journal failed."),
        ],
    },
    Route {
        method: "GET",
        path: "/v1/runs",
        op: Op::ListRuns,
        summary: "Runs of the journal (of the flows this token may start), newest first.",
        auth: true,
        params: &[
            query("flow", "Only runs of this flow."),
            query(
                "status",
                "Only runs with this status: running, waiting, interrupted, needs_attention, succeeded, failed.",
            ),
            query("limit", "At most this many (1 to 1000, default 100)."),
        ],
        body: false,
        responses: &[(200, "A list of run summaries."), (400, "A bad filter."), AUTH[0]],
    },
    Route {
        method: "GET",
        path: "/v1/runs/{id}",
        op: Op::GetRun,
        summary: "One run: its status, and its record once it ended.",
        auth: true,
        params: &[RUN_ID],
        body: false,
        responses: &[(200, "The run."), AUTH[0], (404, "No such run, or not one this token may see.")],
    },
    Route {
        method: "POST",
        path: "/v1/runs/{id}/cancel",
        op: Op::CancelRun,
        summary: "Stop a run as Ctrl-C does (no new step starts, requests in flight finish), then end it `failed` (`cancelled`).",
        auth: true,
        params: &[RUN_ID],
        body: false,
        responses: &[
            (200, "The run was not running here: it is ended in the journal; its record."),
            (202, "The run is draining; poll its URL."),
            AUTH[0],
            (404, "No such run, or not one this token may see."),
            (409, "The run has finished already."),
        ],
    },
    Route {
        method: "POST",
        path: "/v1/runs/{id}/signals/{name}",
        op: Op::SignalRun,
        summary: "Deliver signal `name` to a run parked on (or yet to reach) a `wait_for`: the body is its payload (a \
                  JSON object of the fields the `wait_for` declares). The run wakes at once, or is resumed from the \
                  journal. The token's `signals:` must allow the name.",
        auth: true,
        params: &[RUN_ID, path("name", "The signal's name, as the flow's `wait_for` declares it (`signal:`).")],
        body: true,
        responses: &[
            (202, "Delivered (durable in the journal): the run goes on; poll its URL."),
            (400, "The payload does not fit the fields the `wait_for` declares: every problem (`bad_payload`)."),
            AUTH[0],
            AUTH[1],
            (404, "No such run, or not one this token may see (`unknown_run`)."),
            (
                409,
                "The run has finished (`finished`), its flows wait for no signal of this name (`not_awaited`), or this signal was delivered before (`already_delivered`).",
            ),
            (413, "The body is larger than `max_body_bytes`."),
            (415, "The body is not `application/json`."),
            (503, "The journal failed."),
        ],
    },
    Route {
        method: "GET",
        path: "/healthz",
        op: Op::Healthz,
        summary: "The process answers.",
        auth: false,
        params: &[],
        body: false,
        responses: &[(200, "Alive.")],
    },
    Route {
        method: "GET",
        path: "/readyz",
        op: Op::Readyz,
        summary: "Ready for runs: journal open, catalog and integrations loaded, not shutting down.",
        auth: false,
        params: &[],
        body: false,
        responses: &[(200, "Ready."), (503, "Not ready: which check failed.")],
    },
    Route {
        method: "GET",
        path: "/metrics",
        op: Op::Metrics,
        summary: "Prometheus text: runs by flow and status, node and Duo call latencies, Duo answers, 429s.",
        auth: true,
        params: &[],
        body: false,
        responses: &[(200, "The metrics."), AUTH[0]],
    },
    Route {
        method: "GET",
        path: "/v1/openapi.json",
        op: Op::OpenApi,
        summary: "This document.",
        auth: false,
        params: &[],
        body: false,
        responses: &[(200, "The OpenAPI 3.1 document.")],
    },
];

fn filter(method: &str) -> MethodFilter {
    match method {
        "POST" => MethodFilter::POST,
        _ => MethodFilter::GET,
    }
}

fn handler(op: Op, method: &str) -> MethodRouter<Arc<App>> {
    let f = filter(method);
    match op {
        Op::ListFlows => on(f, api::list_flows),
        Op::GetFlow => on(f, api::get_flow),
        Op::StartRun => on(f, api::start_run),
        Op::ListRuns => on(f, api::list_runs),
        Op::GetRun => on(f, api::get_run),
        Op::CancelRun => on(f, api::cancel_run),
        Op::SignalRun => on(f, api::signal_run),
        Op::Healthz => on(f, api::healthz),
        Op::Readyz => on(f, api::readyz),
        Op::Metrics => on(f, api::metrics),
        Op::OpenApi => on(f, api::openapi),
    }
}

/// The routes of [`ROUTES`], one method router per path.
pub fn router() -> Router<Arc<App>> {
    let mut paths: BTreeMap<&str, MethodRouter<Arc<App>>> = BTreeMap::new();
    for r in ROUTES {
        let h = handler(r.op, r.method);
        let merged = match paths.remove(r.path) {
            Some(existing) => existing.merge(h),
            None => h,
        };
        paths.insert(r.path, merged);
    }
    let mut router = Router::new();
    for (p, m) in paths {
        router = router.route(p, m.fallback(api::method_not_allowed));
    }
    router.fallback(api::no_route)
}

/// The OpenAPI 3.1 document of [`ROUTES`].
pub fn openapi() -> Value {
    let mut paths = serde_json::Map::new();
    for r in ROUTES {
        let params: Vec<Value> = r
            .params
            .iter()
            .map(|p| {
                json!({
                    "name": p.name, "in": p.place, "required": p.required, "description": p.description,
                    "schema": { "type": "string" },
                })
            })
            .collect();
        let responses: serde_json::Map<String, Value> = r
            .responses
            .iter()
            .map(|(code, what)| {
                let content = if r.op == Op::Metrics && *code == 200 {
                    json!({ "text/plain; version=0.0.4": { "schema": { "type": "string" } } })
                } else {
                    json!({ "application/json": { "schema": { "$ref": if *code >= 400 { "#/components/schemas/Error" } else { "#/components/schemas/Any" } } } })
                };
                (code.to_string(), json!({ "description": what, "content": content }))
            })
            .collect();
        let mut op = json!({
            "operationId": format!("{:?}", r.op).chars().enumerate().map(|(i, c)| if i == 0 { c.to_ascii_lowercase() } else { c }).collect::<String>(),
            "summary": r.summary,
            "parameters": params,
            "responses": responses,
        });
        if r.auth {
            op["security"] = json!([{ "bearer": [] }]);
        } else {
            op["security"] = json!([]);
        }
        if r.body {
            let what =
                if r.op == Op::SignalRun { "The signal's payload, by field." } else { "The run's inputs, by name." };
            op["requestBody"] = json!({
                "required": false,
                "content": { "application/json": { "schema": { "type": "object", "description": what } } },
            });
        }
        let entry = paths.entry(r.path.to_owned()).or_insert_with(|| json!({}));
        entry[r.method.to_ascii_lowercase()] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "flowcat serve",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "flowcat's catalog behind an HTTP API: start runs, follow them in the journal. See docs/serve.md.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": {
                "Any": {},
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": { "type": "string", "description": "A stable code, e.g. `bad_input`." },
                        "message": { "type": "string" },
                        "problems": { "type": "array", "items": { "type": "string" } },
                    },
                },
            },
        },
    })
}
