//! Test-only helpers: start a simulator on 127.0.0.1 port 0, and a small signing client.
//!
//! The signer here is test code with its own canonicalisation; `vectors.rs` checks it against
//! Duo's conformance cases, so it cannot drift from the official clients.
#![allow(dead_code)]

use std::net::SocketAddr;

use base64::Engine;
use flowcat_sim::{Options, Seed, Sim};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Map, Value};
use sha1::Sha1;
use sha2::{Digest, Sha512};

pub const ADMIN_IKEY: &str = "DISIMADMIN0000000001";
pub const ADMIN_SKEY: &str = "simadminsecretkey0000000000000000000000a";
pub const AUTH_IKEY: &str = "DISIMAUTH00000000001";
pub const AUTH_SKEY: &str = "simauthsecretkey00000000000000000000000b";

/// A demo simulator on a free loopback port.
pub async fn start() -> Sim {
    start_with(Options::default()).await
}

pub async fn start_with(options: Options) -> Sim {
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    Sim::start_seed(addr, &Seed::demo(), options).await.expect("start")
}

/// Which signature to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sig {
    V5,
    V2Sha1,
    V2Sha512,
}

fn encode(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The params line, as the official clients build it.
pub fn params_line(params: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, String)> =
        params.iter().map(|(k, v)| (encode(k.as_bytes()), encode(v.as_bytes()))).collect();
    pairs.sort();
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

pub fn sha512_hex(bytes: &[u8]) -> String {
    Sha512::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The v5 x-duo header hash.
pub fn headers_hash(headers: &[(String, String)]) -> String {
    let mut picked: Vec<(String, &str)> = headers
        .iter()
        .filter(|(n, _)| n.to_ascii_lowercase().starts_with("x-duo-"))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.as_str()))
        .collect();
    picked.sort();
    let joined: Vec<String> = picked.iter().flat_map(|(n, v)| [n.clone(), v.to_string()]).collect();
    sha512_hex(joined.join("\0").as_bytes())
}

/// The canonical string; `body` None means v2.
pub fn canonical(
    date: &str,
    method: &str,
    host: &str,
    path: &str,
    params: &str,
    body: Option<&[u8]>,
    x_duo: &[(String, String)],
) -> String {
    let mut lines =
        vec![date.to_string(), method.to_uppercase(), host.to_lowercase(), path.to_string(), params.to_string()];
    if let Some(body) = body {
        lines.push(sha512_hex(body));
        lines.push(headers_hash(x_duo));
    }
    lines.join("\n")
}

/// `Basic base64(ikey:hex)`.
pub fn authorization(ikey: &str, skey: &str, canonical: &str, sig: Sig) -> String {
    let hex: String = match sig {
        Sig::V2Sha1 => {
            let mut mac = Hmac::<Sha1>::new_from_slice(skey.as_bytes()).expect("key");
            mac.update(canonical.as_bytes());
            mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
        }
        Sig::V5 | Sig::V2Sha512 => {
            let mut mac = Hmac::<Sha512>::new_from_slice(skey.as_bytes()).expect("key");
            mac.update(canonical.as_bytes());
            mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
        }
    };
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{ikey}:{hex}"));
    format!("Basic {token}")
}

/// A form/query encoding that uses `+` for spaces, as browsers and some clients do.
pub fn form_encode(params: &[(String, String)]) -> String {
    params
        .iter()
        .map(|(k, v)| {
            format!("{}={}", encode(k.as_bytes()).replace("%20", "+"), encode(v.as_bytes()).replace("%20", "+"))
        })
        .collect::<Vec<_>>()
        .join("&")
}

pub fn now_date() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    flowcat_sim::date::format_rfc2822(i64::try_from(now).expect("time"))
}

/// One request to sign and send; fields left as built by [`Call::new`] give a valid v5 call.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub params: Vec<(String, String)>,
    /// A JSON body to send instead of one built from `params` (v5 POST only).
    pub json: Option<Value>,
    pub sig: Sig,
    pub ikey: String,
    pub skey: String,
    pub sign_host: String,
    pub date: Option<String>,
    /// Send the date as `X-Duo-Date` (signed as an x-duo header) instead of `Date`.
    pub x_duo_date: bool,
    pub extra_headers: Vec<(String, String)>,
    /// Applied to the signed parts after signing: how tests tamper.
    pub tamper: Tamper,
    pub unsigned: bool,
}

/// What to change after signing.
#[derive(Debug, Clone, Default)]
pub struct Tamper {
    pub params: Option<Vec<(String, String)>>,
    pub body: Option<Vec<u8>>,
}

impl Call {
    pub fn new(method: &str, path: &str, params: &[(&str, &str)]) -> Self {
        Self {
            method: method.to_string(),
            path: path.to_string(),
            params: params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            json: None,
            sig: Sig::V5,
            ikey: ADMIN_IKEY.to_string(),
            skey: ADMIN_SKEY.to_string(),
            sign_host: "127.0.0.1".to_string(),
            date: None,
            x_duo_date: false,
            extra_headers: Vec::new(),
            tamper: Tamper::default(),
            unsigned: false,
        }
    }

    pub fn auth_keys(mut self) -> Self {
        self.ikey = AUTH_IKEY.to_string();
        self.skey = AUTH_SKEY.to_string();
        self
    }

    pub fn sig(mut self, sig: Sig) -> Self {
        self.sig = sig;
        self
    }
}

/// A response: status, parsed body (Null when not JSON), headers.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

/// A client builder for plain http to the simulator. The workspace's reqwest is built with
/// `rustls-no-provider` (flowcat-nodes brings its own rustls configuration), so a client must be
/// handed one too. An empty one: these clients speak plain http, and reqwest's default (the
/// platform verifier) reads the system's certificates, about 25 ms per client, which the 1000×
/// clock tests would see as 25 simulated seconds.
pub fn client_builder() -> reqwest::ClientBuilder {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    reqwest::Client::builder().tls_backend_preconfigured(tls)
}

/// Signs and sends `call` to `sim`.
pub async fn send(sim: &Sim, call: Call) -> Resp {
    try_send(sim, call).await.expect("request")
}

pub async fn try_send(sim: &Sim, call: Call) -> Result<Resp, reqwest::Error> {
    let client = client_builder().no_proxy().build().expect("client");
    try_send_with(&client, sim.addr(), call).await
}

pub async fn try_send_with(client: &reqwest::Client, addr: SocketAddr, call: Call) -> Result<Resp, reqwest::Error> {
    let date = call.date.clone().unwrap_or_else(now_date);
    let body_method = matches!(call.method.as_str(), "POST" | "PUT" | "PATCH");
    let (query, body, content_type, line) = match (call.sig, body_method) {
        (Sig::V5, true) => {
            let body = match &call.json {
                Some(v) => serde_json::to_vec(v).expect("json"),
                None => {
                    let map: Map<String, Value> =
                        call.params.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
                    serde_json::to_vec(&Value::Object(map)).expect("json")
                }
            };
            (Vec::new(), body, Some("application/json"), String::new())
        }
        (_, true) => (
            Vec::new(),
            form_encode(&call.params).into_bytes(),
            Some("application/x-www-form-urlencoded"),
            params_line(&call.params),
        ),
        (_, false) => (call.params.clone(), Vec::new(), None, params_line(&call.params)),
    };
    let mut x_duo: Vec<(String, String)> =
        call.extra_headers.iter().filter(|(n, _)| n.to_ascii_lowercase().starts_with("x-duo-")).cloned().collect();
    if call.x_duo_date {
        x_duo.push(("X-Duo-Date".to_string(), date.clone()));
    }
    let body_line = (call.sig == Sig::V5).then_some(body.as_slice());
    let canon = canonical(&date, &call.method, &call.sign_host, &call.path, &line, body_line, &x_duo);
    let auth = authorization(&call.ikey, &call.skey, &canon, call.sig);
    let query = match (&call.tamper.params, body_method) {
        (Some(p), false) => p.clone(),
        _ => query,
    };
    let mut body = call.tamper.body.clone().unwrap_or(body);
    if body_method && call.sig != Sig::V5 {
        if let Some(p) = &call.tamper.params {
            body = form_encode(p).into_bytes();
        }
    }
    let mut url = format!("http://{addr}{}", call.path);
    if !query.is_empty() {
        url.push('?');
        url.push_str(&form_encode(&query));
    }
    let method = reqwest::Method::from_bytes(call.method.as_bytes()).expect("method");
    let mut req = client.request(method, url);
    if !call.unsigned {
        req = req.header("Authorization", auth);
        req = if call.x_duo_date { req.header("X-Duo-Date", &date) } else { req.header("Date", &date) };
    }
    for (n, v) in &call.extra_headers {
        req = req.header(n, v);
    }
    if let Some(ct) = content_type {
        req = req.header("Content-Type", ct);
    }
    let resp = req.body(body).send().await?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await?;
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok(Resp { status, body, headers })
}

/// Sends a signed Admin call with the demo keys and returns `(status, body)`.
pub async fn admin(sim: &Sim, method: &str, path: &str, params: &[(&str, &str)]) -> (u16, Value) {
    let r = send(sim, Call::new(method, path, params)).await;
    (r.status, r.body)
}

/// Sends a signed Auth call with the demo keys.
pub async fn auth(sim: &Sim, method: &str, path: &str, params: &[(&str, &str)]) -> (u16, Value) {
    let r = send(sim, Call::new(method, path, params).auth_keys()).await;
    (r.status, r.body)
}

/// An unsigned control-API call; anything but GET goes as JSON (`{}` without a body), as the
/// control API requires.
pub async fn control(sim: &Sim, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let client = client_builder().no_proxy().build().expect("client");
    let body = body.or_else(|| (method != "GET").then(|| serde_json::json!({})));
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = client.request(method, format!("http://{}{path}", sim.addr()));
    if let Some(body) = body {
        req = req.header("Content-Type", "application/json").body(serde_json::to_vec(&body).expect("json"));
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let body = serde_json::from_slice(&resp.bytes().await.expect("body")).unwrap_or(Value::Null);
    (status, body)
}

/// The `user_id` of a demo user.
pub async fn user_id(sim: &Sim, username: &str) -> String {
    let (_, body) = admin(sim, "GET", "/admin/v1/users", &[("username", username)]).await;
    body["response"][0]["user_id"].as_str().expect("user").to_string()
}

/// The `phone_id` of a phone by number.
pub async fn phone_id(sim: &Sim, number: &str) -> String {
    let (_, body) = admin(sim, "GET", "/admin/v1/phones", &[("number", number)]).await;
    body["response"][0]["phone_id"].as_str().expect("phone").to_string()
}

/// A demo simulator whose clock runs `scale` times faster than real time.
pub async fn start_scaled(scale: f64) -> Sim {
    start_with(Options { time_scale: scale, ..Options::default() }).await
}
