//! Completion webhooks (docs/serve.md, "Webhooks"): when a run ends, its record is POSTed to each
//! configured hook that wants it, signed, retried with backoff, and journaled so that a restart
//! loses nothing.
//!
//! - **Config** (`webhooks:` of the serve config, [`parse`]): name, URL (`https://`, or `http://`
//!   to a loopback address only), a signing secret (`${ENV}` or `{ file: PATH }`; inline only
//!   for a loopback URL), flows, events, timeout, retry bounds. Every problem names its line.
//! - **Outbox**: the journal writes a notice per hook in the transaction of the run's end
//!   ([`subscriptions`] is the rule it asks; `flowcat_engine::outbox`). Nothing is kept in memory.
//! - **Delivery** ([`Deliverer`]): takes due notices a few at a time (leased, so two deliverers
//!   never send one at once), fixes the body at the first attempt, signs and sends it. 2xx:
//!   delivered. A network error, a timeout, 408, 429 or 5xx: retried after an exponential backoff
//!   with jitter (or the `Retry-After` asked, if longer), until `max_attempts` or `max_age`. Any
//!   other answer: given up at once. At least once: a receiver dedupes by the event id.
//! - **Signature** ([`signature`]): `Flowcat-Signature: v1=HEX(HMAC-SHA256(secret,
//!   "{timestamp}.{body}"))` with `Flowcat-Timestamp` (Unix seconds).
//!
//! The secret is a [`Secret`]: it never shows in `Debug`, a log line, a metric, an answer or the
//! journal (a notice names its hook, never its URL or secret).

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use flowcat_engine::journal::{Store, StoredStatus};
use flowcat_engine::outbox::{Attempted, Notice, Outbox, Subscriptions};
use flowcat_engine::yaml::Node;
use flowcat_nodes::duo::Secret;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::json;
use tokio::sync::watch;

use crate::auth::Pattern;
use crate::metrics::Metrics;

/// The shortest secret accepted: a guessable key signs nothing.
pub const MIN_SECRET: usize = 24;
/// Notices taken from the journal at once: memory stays flat whatever the backlog.
pub const BATCH: usize = 16;
/// The longest the deliverer sleeps between looks at the journal (notices from another process,
/// a clock that jumped).
pub const POLL: Duration = Duration::from_secs(30);
/// A notice being sent is leased for its hook's timeout plus this.
const LEASE_MARGIN: Duration = Duration::from_secs(30);

/// The run ends a hook may hear of.
pub const EVENTS: &[(&str, StoredStatus)] = &[
    ("succeeded", StoredStatus::Succeeded),
    ("failed", StoredStatus::Failed),
    ("needs_attention", StoredStatus::NeedsAttention),
];

/// How a hook retries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retry {
    /// Attempts in all, the first included (1 never retries).
    pub max_attempts: u32,
    /// The first backoff; each next one doubles, up to `max_delay`.
    pub initial: Duration,
    pub max_delay: Duration,
    /// A notice older than this is given up rather than retried.
    pub max_age: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            max_attempts: 12,
            initial: Duration::from_secs(10),
            max_delay: Duration::from_secs(3600),
            max_age: Duration::from_secs(24 * 3600),
        }
    }
}

/// One configured hook.
#[derive(Clone)]
pub struct Hook {
    pub name: String,
    pub url: reqwest::Url,
    pub secret: Secret,
    pub flows: Vec<Pattern>,
    pub events: Vec<StoredStatus>,
    pub timeout: Duration,
    pub retry: Retry,
}

impl fmt::Debug for Hook {
    /// Neither the secret nor the URL (its path or query may be a capability): the name and host.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hook")
            .field("name", &self.name)
            .field("host", &self.url.host_str().unwrap_or(""))
            .field("secret", &self.secret)
            .field("events", &self.events)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl Hook {
    /// Whether this hook wants to hear of a run of `flow` ending with `status`.
    pub fn wants(&self, flow: &str, status: StoredStatus) -> bool {
        self.events.contains(&status) && self.flows.iter().any(|p| p.matches(flow))
    }
}

/// The rule the journal asks at each run's end: the hooks that want it.
pub fn subscriptions(hooks: &[Hook]) -> Subscriptions {
    let hooks: Vec<Hook> = hooks.to_vec();
    Arc::new(move |flow: &str, status: StoredStatus| {
        hooks.iter().filter(|h| h.wants(flow, status)).map(|h| h.name.clone()).collect()
    })
}

// ---------------------------------------------------------------------------------------------
// The config

/// Reads `webhooks:` (a list of hooks); each problem is handed to `bad` with its line.
pub fn parse(
    node: &Node,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    bad: &mut dyn FnMut(u32, String),
) -> Vec<Hook> {
    let Some(items) = node.as_seq() else {
        if !node.is_null() {
            bad(node.span.start.line, "`webhooks:` must be a list of hooks (docs/serve.md, \"Webhooks\")".into());
        }
        return Vec::new();
    };
    let mut hooks: Vec<Hook> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        if let Some(hook) = parse_one(i, item, base, env, bad) {
            if hooks.iter().any(|h| h.name == hook.name) {
                bad(item.span.start.line, format!("webhooks[{i}] (`{}`): another hook has this name", hook.name));
                continue;
            }
            hooks.push(hook);
        }
    }
    hooks
}

const FIELDS: &[&str] = &["name", "url", "secret", "flows", "events", "timeout", "retry"];
const RETRY_FIELDS: &[&str] = &["max_attempts", "initial", "max_delay", "max_age"];

fn parse_one(
    i: usize,
    item: &Node,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    bad: &mut dyn FnMut(u32, String),
) -> Option<Hook> {
    let line = item.span.start.line;
    let Some(map) = item.as_map() else {
        bad(line, format!("webhooks[{i}] must be a mapping with `name`, `url` and `secret`"));
        return None;
    };
    let name = item.get("name").and_then(Node::as_str).unwrap_or("").to_owned();
    let at = format!("webhooks[{i}] (`{name}`)");
    let problems = std::cell::RefCell::new(Vec::new());
    let fail = |line: u32, m: String| problems.borrow_mut().push((line, m));
    for (k, _) in map {
        let key = k.as_str().unwrap_or("");
        if !FIELDS.contains(&key) {
            fail(k.span.start.line, format!("{at}: unknown field `{key}`; the fields are {}", FIELDS.join(", ")));
        }
    }
    let line_of = |key: &str| item.get(key).map_or(line, |n| n.span.start.line);
    if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        fail(line_of("name"), format!("{at}: `name` must be 1 to 64 letters, digits, `-`, `_` or `.`"));
    }
    let url = match item.get("url").and_then(Node::as_str) {
        None => {
            fail(line, format!("{at}: `url` is missing: where to POST, e.g. `https://hooks.example.com/flowcat`"));
            None
        }
        Some(text) => match check_url(text) {
            Ok(u) => Some(u),
            Err(m) => {
                fail(line_of("url"), format!("{at}: {m}"));
                None
            }
        },
    };
    let loopback = url.as_ref().is_some_and(is_loopback);
    let secret = match item.get("secret") {
        None => {
            fail(
                line,
                format!(
                    "{at}: `secret` is missing: `secret: ${{NAME}}` (an environment variable) or `secret: {{ file: PATH }}`"
                ),
            );
            None
        }
        Some(node) => match read_secret(node, base, env, loopback) {
            Ok(s) => Some(s),
            Err(m) => {
                fail(line_of("secret"), format!("{at}: {m}"));
                None
            }
        },
    };
    let mut flows = Vec::new();
    match item.get("flows") {
        None => flows.push(Pattern::new("*").expect("a valid pattern")),
        Some(node) => {
            for f in strings(node) {
                match Pattern::new(&f) {
                    Some(p) => flows.push(p),
                    None => fail(
                        node.span.start.line,
                        format!("{at}: flow pattern `{f}` may hold only letters, digits, `-_.` and `*`"),
                    ),
                }
            }
            if flows.is_empty() {
                fail(node.span.start.line, format!("{at}: `flows` is an empty list: the hook would hear of nothing"));
            }
        }
    }
    let mut events = Vec::new();
    match item.get("events") {
        None => events.extend(EVENTS.iter().map(|(_, s)| *s)),
        Some(node) => {
            for e in strings(node) {
                match EVENTS.iter().find(|(n, _)| *n == e) {
                    Some((_, s)) => events.push(*s),
                    None => fail(
                        node.span.start.line,
                        format!(
                            "{at}: unknown event `{e}`; the events are {}",
                            EVENTS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                        ),
                    ),
                }
            }
            if events.is_empty() {
                fail(node.span.start.line, format!("{at}: `events` is an empty list: the hook would hear of nothing"));
            }
        }
    }
    let duration = |key: &str, node: Option<&Node>, default: Duration, range: (Duration, Duration)| {
        let Some(node) = node else { return default };
        let text = node.as_str().unwrap_or("");
        match flowcat_engine::shape::parse_duration(text) {
            Some(d) if d >= range.0 && d <= range.1 => d,
            _ => {
                fail(
                    node.span.start.line,
                    format!("{at}: `{key}: {text}` must be a duration from {} to {}", show(range.0), show(range.1)),
                );
                default
            }
        }
    };
    let s = Duration::from_secs;
    let timeout = duration("timeout", item.get("timeout"), s(10), (s(1), s(120)));
    let mut retry = Retry::default();
    if let Some(node) = item.get("retry") {
        if let Some(map) = node.as_map() {
            for (k, _) in map {
                let key = k.as_str().unwrap_or("");
                if !RETRY_FIELDS.contains(&key) {
                    fail(
                        k.span.start.line,
                        format!("{at}: unknown field `retry.{key}`; the fields are {}", RETRY_FIELDS.join(", ")),
                    );
                }
            }
            retry.initial = duration("retry.initial", node.get("initial"), retry.initial, (s(1), s(3600)));
            retry.max_delay = duration("retry.max_delay", node.get("max_delay"), retry.max_delay, (s(1), s(86_400)));
            retry.max_age = duration("retry.max_age", node.get("max_age"), retry.max_age, (s(60), s(30 * 86_400)));
            if let Some(n) = node.get("max_attempts") {
                match n.as_str().and_then(|t| t.parse::<u32>().ok()) {
                    Some(v) if (1..=100).contains(&v) => retry.max_attempts = v,
                    _ => fail(n.span.start.line, format!("{at}: `retry.max_attempts` must be a number from 1 to 100")),
                }
            }
        } else {
            fail(node.span.start.line, format!("{at}: `retry` must be a mapping ({})", RETRY_FIELDS.join(", ")));
        }
    }
    if retry.max_delay < retry.initial {
        fail(line_of("retry"), format!("{at}: `retry.max_delay` must not be shorter than `retry.initial`"));
    }
    let problems = problems.into_inner();
    if !problems.is_empty() {
        for (line, m) in problems {
            bad(line, m);
        }
        return None;
    }
    Some(Hook { name, url: url?, secret: secret?, flows, events, timeout, retry })
}

/// A scalar or a list of scalars, as strings.
fn strings(node: &Node) -> Vec<String> {
    match node.as_seq() {
        Some(items) => items.iter().filter_map(|n| n.as_str().map(str::to_owned)).collect(),
        None => node.as_str().map(|s| vec![s.to_owned()]).unwrap_or_default(),
    }
}

fn show(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// `https://…`, or `http://` to a loopback address (a receiver on this machine); no credentials.
fn check_url(text: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(text).map_err(|e| format!("`url` is not a URL: {e}"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("`url` holds credentials: the signature authenticates the service; remove them".into());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("`url` has no host".into());
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err(format!(
            "plain `http` is refused for `{}`: the run records would travel in clear; use `https://` (plain http \
             is accepted only for a loopback address: 127.0.0.1, ::1, localhost)",
            url.host_str().unwrap_or("")
        )),
        other => Err(format!("`url` scheme `{other}` is not `https`")),
    }
}

fn is_loopback(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or("");
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    bare.eq_ignore_ascii_case("localhost") || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `${NAME}`, `{ file: PATH }` (relative to the config's folder), or inline (a loopback hook
/// only: a test receiver). Never quotes the value.
fn read_secret(
    node: &Node,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    loopback: bool,
) -> Result<Secret, String> {
    let value = if let Some(file) = node.get("file") {
        let Some(file) = file.as_str() else { return Err("`secret.file` must be a path".into()) };
        if node.as_map().is_some_and(|m| m.len() > 1) {
            return Err("`secret` is `{ file: PATH }` with nothing else".into());
        }
        let path = base.join(file);
        let meta =
            std::fs::metadata(&path).map_err(|e| format!("cannot read the secret file `{}`: {e}", path.display()))?;
        if meta.len() > 4096 {
            return Err(format!("the secret file `{}` is larger than 4 KiB", path.display()));
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read the secret file `{}`: {e}", path.display()))?;
        text.trim().to_owned()
    } else if let Some(text) = node.as_str() {
        if let Some(name) = text.strip_prefix("${").and_then(|t| t.strip_suffix('}')) {
            let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err("`secret: ${…}` must name an environment variable (letters, digits, `_`)".into());
            }
            let value = env(name).unwrap_or_default();
            if value.trim().is_empty() {
                return Err(format!("the environment variable `{name}` (for `secret`) is not set: `export {name}=…`"));
            }
            value.trim_end_matches(['\n', '\r']).to_owned()
        } else if text.contains("${") {
            return Err("`secret` holds `${` but is not exactly `${NAME}`".into());
        } else if loopback {
            text.to_owned()
        } else {
            return Err(
                "an inline `secret` is refused (config files get shared and committed): use `secret: ${NAME}` \
                        (an environment variable) or `secret: { file: PATH }`"
                    .into(),
            );
        }
    } else {
        return Err("`secret` is `${NAME}` or `{ file: PATH }`".into());
    };
    if value.chars().count() < MIN_SECRET {
        return Err(format!(
            "the secret is shorter than {MIN_SECRET} characters; make one with `head -c 32 /dev/urandom | base64`"
        ));
    }
    Ok(Secret::new(value))
}

/// Tells the journal which hooks hear of which run ends: before any run of this process ends.
pub fn subscribe(hooks: &[Hook], store: &dyn Store) {
    if hooks.is_empty() {
        return;
    }
    match store.outbox() {
        Some(outbox) => outbox.subscribe(subscriptions(hooks)),
        None => tracing::error!("webhooks are configured, but this journal keeps no outbox: nothing will be sent"),
    }
}

/// The deliverer running on its own task; it stops when this is dropped (pending notices stay
/// in the journal for the next start).
#[derive(Debug)]
pub struct Running(watch::Sender<bool>);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.send(true);
    }
}

/// Starts `app`'s deliverer: also without hooks when the journal has an outbox, so that notices
/// left for a hook since removed from the config are given up (and logged), not kept forever.
pub fn start(app: &crate::App) -> Option<Running> {
    let store = app.runs.hall.store()?.clone();
    store.outbox()?;
    match Deliverer::new(&app.config.webhooks, store, app.runs.metrics.clone()) {
        Ok(d) => {
            let (tx, rx) = watch::channel(false);
            tokio::spawn(Arc::new(d).run(rx));
            Some(Running(tx))
        }
        Err(e) => {
            tracing::error!(error = %e, "webhooks: the deliverer cannot start");
            None
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The signature

/// `v1=` and the hex HMAC-SHA256 of `"{timestamp}.{body}"` keyed with `secret`.
pub fn signature(secret: &Secret, timestamp: u64, body: &[u8]) -> String {
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    format!("v1={hex}")
}

/// Checks a delivery as a receiver should: the signature in constant time, and the timestamp
/// within `window` of `now` (replays of an old delivery are refused). For tests and as the
/// reference for receivers (docs/serve.md).
pub fn verify(secret: &Secret, timestamp: &str, sig: &str, body: &[u8], now: u64, window: u64) -> bool {
    use subtle::ConstantTimeEq as _;
    let Ok(ts) = timestamp.parse::<u64>() else { return false };
    if ts.abs_diff(now) > window {
        return false;
    }
    let expected = signature(secret, ts, body);
    expected.as_bytes().ct_eq(sig.as_bytes()).into()
}

// ---------------------------------------------------------------------------------------------
// Delivery

/// The deliverer's clock (Unix ms): the system's, or one a test moves.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> u64;
}

/// The system clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or_default()
    }
}

/// A clock that moves only when told (tests).
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    pub fn new(now_ms: u64) -> ManualClock {
        ManualClock(AtomicU64::new(now_ms))
    }

    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// An attempt's outcome, as the metrics count it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Failed, to be tried again.
    Retried,
    /// Given up.
    Failed,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Retried => "retried",
            Outcome::Failed => "failed",
        }
    }
}

/// `flowcat_webhook_deliveries_total{hook,outcome}`: attempts by hook and outcome.
#[derive(Debug, Default)]
pub struct Counts(std::sync::Mutex<std::collections::BTreeMap<(String, &'static str), u64>>);

impl Counts {
    pub fn count(&self, hook: &str, outcome: Outcome) {
        let mut map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *map.entry((hook.to_owned(), outcome.name())).or_default() += 1;
    }

    /// The exposition lines.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        out.push_str(
            "# HELP flowcat_webhook_deliveries_total Webhook delivery attempts, by hook and outcome (delivered, \
             retried, failed: given up).\n# TYPE flowcat_webhook_deliveries_total counter\n",
        );
        let map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for ((hook, outcome), n) in map.iter() {
            let _ = writeln!(out, "flowcat_webhook_deliveries_total{{hook=\"{hook}\",outcome=\"{outcome}\"}} {n}");
        }
    }
}

/// What one HTTP attempt came to.
enum Answer {
    Status(u16, Option<Duration>),
    /// Transport: no answer (refused, reset, timeout); the kind only, never a URL.
    Transport(&'static str),
}

/// Sends the outbox's notices to the hooks.
pub struct Deliverer {
    hooks: HashMap<String, (Hook, reqwest::Client)>,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for Deliverer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deliverer").field("hooks", &self.hooks.keys().collect::<Vec<_>>()).finish_non_exhaustive()
    }
}

impl Deliverer {
    /// A deliverer of `hooks` from `store`'s outbox, on the system clock.
    pub fn new(hooks: &[Hook], store: Arc<dyn Store>, metrics: Arc<Metrics>) -> Result<Deliverer, String> {
        Deliverer::with_clock(hooks, store, metrics, Arc::new(SystemClock))
    }

    pub fn with_clock(
        hooks: &[Hook],
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
    ) -> Result<Deliverer, String> {
        if store.outbox().is_none() {
            return Err("the journal keeps no outbox: webhooks need the SQLite journal".into());
        }
        let mut map = HashMap::new();
        for hook in hooks {
            map.insert(hook.name.clone(), (hook.clone(), client(hook)?));
        }
        Ok(Deliverer { hooks: map, store, metrics, clock })
    }

    fn outbox(&self) -> &dyn Outbox {
        self.store.outbox().expect("checked in `with_clock`")
    }

    /// Sends every notice due now, [`BATCH`] at a time (each batch's attempts at once); answers
    /// how many attempts were made. A notice retried comes due later, never within this call.
    pub async fn tick(self: &Arc<Self>) -> usize {
        let now = self.clock.now_ms();
        let lease = self.hooks.values().map(|(h, _)| h.timeout).max().unwrap_or_default() + LEASE_MARGIN;
        let mut attempts = 0;
        loop {
            let due = match self.outbox().take_due(now, now + lease.as_millis() as u64, BATCH) {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!(error = %e, "webhooks: the journal's outbox cannot be read");
                    return attempts;
                }
            };
            if due.is_empty() {
                return attempts;
            }
            attempts += due.len();
            let mut set = tokio::task::JoinSet::new();
            for notice in due {
                let me = self.clone();
                set.spawn(async move { me.deliver(notice).await });
            }
            while set.join_next().await.is_some() {}
        }
    }

    /// Runs until `stop` changes: sends what is due, then waits for the next due time, a
    /// notice written by this process's journal, or [`POLL`].
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let woken = self.outbox().woken();
        loop {
            // Armed before looking, so that a notice written meanwhile wakes the next wait.
            let notified = woken.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            self.tick().await;
            let now = self.clock.now_ms();
            let wait = match self.outbox().next_due() {
                Ok(Some(at)) => Duration::from_millis(at.saturating_sub(now)).min(POLL),
                _ => POLL,
            };
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep(wait) => {}
                _ = stop.changed() => return,
            }
        }
    }

    async fn deliver(&self, notice: Notice) {
        let Some((hook, client)) = self.hooks.get(&notice.hook) else {
            let error = format!("the hook `{}` is no longer in the serve config", notice.hook);
            return self.settle(&notice, None, Attempted::Failed { error }, Outcome::Failed, None);
        };
        let body = match &notice.body {
            Some(b) => b.clone(),
            None => match self.body(&notice) {
                Ok(b) => b,
                Err(error) => return self.settle(&notice, None, Attempted::Failed { error }, Outcome::Failed, None),
            },
        };
        let now = self.clock.now_ms();
        let timestamp = now / 1000;
        let request = client
            .post(hook.url.clone())
            .timeout(hook.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Flowcat-Event", &notice.event)
            .header("Flowcat-Timestamp", timestamp.to_string())
            .header("Flowcat-Signature", signature(&hook.secret, timestamp, body.as_bytes()))
            .body(body.clone());
        let answer = match request.send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                let after = r
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| flowcat_nodes::duo::parse_retry_after(v, SystemTime::now()));
                Answer::Status(status, after)
            }
            Err(e) if e.is_timeout() => Answer::Transport("timeout"),
            Err(e) if e.is_connect() => Answer::Transport("connection failed"),
            Err(_) => Answer::Transport("transport error"),
        };
        let attempt = notice.attempts + 1;
        let (outcome, code) = match answer {
            Answer::Status(s, _) if (200..300).contains(&s) => {
                return self.settle(
                    &notice,
                    Some(&body),
                    Attempted::Delivered { at: self.clock.now_ms() },
                    Outcome::Delivered,
                    Some(s),
                );
            }
            Answer::Status(s, after) if s == 408 || s == 429 || s >= 500 => ((format!("HTTP {s}"), after), Some(s)),
            Answer::Status(s, _) => {
                let error = format!("the receiver answered HTTP {s}, which is not retried");
                return self.settle(&notice, Some(&body), Attempted::Failed { error }, Outcome::Failed, Some(s));
            }
            Answer::Transport(kind) => ((kind.to_owned(), None), None),
        };
        let (error, after) = outcome;
        let wait = backoff(&hook.retry, attempt).max(after.unwrap_or_default());
        let due_at = self.clock.now_ms() + wait.as_millis() as u64;
        let too_old = due_at > notice.created_at + hook.retry.max_age.as_millis() as u64;
        if attempt >= hook.retry.max_attempts || too_old {
            let why = if too_old { "max_age" } else { "max_attempts" };
            let error = format!("{error}; given up after {attempt} attempts (`retry.{why}`)");
            return self.settle(&notice, Some(&body), Attempted::Failed { error }, Outcome::Failed, code);
        }
        self.settle(&notice, Some(&body), Attempted::Retry { due_at, error }, Outcome::Retried, code);
    }

    /// Records an attempt in the journal, the metrics and the log.
    fn settle(&self, notice: &Notice, body: Option<&str>, outcome: Attempted, counted: Outcome, status: Option<u16>) {
        if let Err(e) = self.outbox().attempted(notice.seq, body, &outcome) {
            tracing::error!(event = %notice.event, error = %e, "webhooks: the attempt could not be journaled");
        }
        self.metrics.webhooks.count(&notice.hook, counted);
        let attempt = notice.attempts + 1;
        let (hook, event, run) = (&notice.hook, &notice.event, &notice.run_id);
        match &outcome {
            Attempted::Delivered { .. } => {
                tracing::info!(hook = %hook, event = %event, run_id = %run, attempt, status, "webhook delivered");
            }
            Attempted::Retry { due_at, error } => {
                let in_ms = due_at.saturating_sub(self.clock.now_ms());
                tracing::warn!(hook = %hook, event = %event, run_id = %run, attempt, status, error = %error, retry_in_ms = in_ms, "webhook attempt failed; retrying");
            }
            Attempted::Failed { error } => {
                tracing::error!(hook = %hook, event = %event, run_id = %run, attempt, status, error = %error, "webhook given up");
            }
        }
    }

    /// The body: the event, and the run as `GET /v1/runs/{id}` answers it.
    fn body(&self, notice: &Notice) -> Result<String, String> {
        let run = self
            .store
            .show(&notice.run_id)
            .map_err(|e| format!("the run could not be read: {}", e.code))?
            .ok_or_else(|| format!("run `{}` is no longer in the journal", notice.run_id))?;
        let body = json!({
            "id": notice.event,
            "type": "run.ended",
            "hook": notice.hook,
            "created_at": notice.created_at,
            "run": crate::api::run_json(&run, false),
        });
        serde_json::to_string(&body).map_err(|e| format!("the body could not be made: {e}"))
    }
}

/// The wait after attempt `attempt` (1-based) failed: `initial` doubling up to `max_delay`, with
/// "equal jitter" (a random point in its upper half), so receivers back from an outage are not
/// hit by every notice at once.
pub fn backoff(retry: &Retry, attempt: u32) -> Duration {
    let exp = retry.initial.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let full = exp.min(retry.max_delay);
    let half = full / 2;
    half + Duration::from_millis(fastrand::u64(..=half.as_millis() as u64))
}

/// The HTTP client of a hook: rustls with ring and Mozilla's roots, no redirects (a redirect is
/// an answer: not 2xx), proxies from the environment except for a loopback receiver.
fn client(hook: &Hook) -> Result<reqwest::Client, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let mut builder = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(hook.timeout)
        .user_agent(concat!("flowcat-webhook/", env!("CARGO_PKG_VERSION")));
    if is_loopback(&hook.url) {
        builder = builder.no_proxy();
    }
    builder.build().map_err(|e| format!("cannot set up the webhook client: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hooks(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Vec<Hook>, Vec<String>> {
        let node = flowcat_engine::yaml::parse(text).expect("yaml").expect("a node");
        let mut problems = Vec::new();
        let hooks = parse(node.get("webhooks").expect("webhooks"), Path::new("/nowhere"), env, &mut |l, m| {
            problems.push(format!("{l}: {m}"))
        });
        if problems.is_empty() { Ok(hooks) } else { Err(problems) }
    }

    const SECRET: &str = "webhook-canary-secret-0123456789abcdef";

    #[test]
    fn a_hook_with_every_field_is_read_and_its_secret_never_shown() {
        let env = |n: &str| (n == "HOOK_SECRET").then(|| format!("{SECRET}\n"));
        let text = "webhooks:\n  - name: ops\n    url: https://hooks.example.com/flowcat?k=1\n    secret: ${HOOK_SECRET}\n    \
                    flows: ['duo.admin.*']\n    events: [failed]\n    timeout: 5s\n    retry:\n      max_attempts: 3\n      \
                    initial: 2s\n      max_delay: 1m\n      max_age: 1h\n";
        let h = hooks(text, &env).expect("valid");
        assert_eq!(h[0].secret.expose(), SECRET, "the trailing newline is trimmed");
        assert_eq!(
            h[0].retry,
            Retry {
                max_attempts: 3,
                initial: Duration::from_secs(2),
                max_delay: Duration::from_secs(60),
                max_age: Duration::from_secs(3600)
            }
        );
        assert!(h[0].wants("duo.admin.create_user", StoredStatus::Failed));
        assert!(!h[0].wants("duo.admin.create_user", StoredStatus::Succeeded));
        assert!(!h[0].wants("duo.auth.verify_push", StoredStatus::Failed));
        let shown = format!("{h:?}");
        assert!(!shown.contains(SECRET) && !shown.contains("k=1") && shown.contains("hooks.example.com"), "{shown}");
    }

    #[test]
    fn every_problem_is_reported_with_its_line_and_no_secret_is_quoted() {
        let env = |_: &str| None;
        let text = "webhooks:\n  - name: a\n    url: http://hooks.example.com/x\n    secret: inline-canary-secret-0123456789abc\n\
                    \x20 - name: b\n    url: https://h.example.com\n    secret: ${UNSET_VAR}\n    events: [started]\n\
                    \x20 - name: c\n    url: http://127.0.0.1:9/x\n    secret: short\n    colour: red\n    retry: { max_attempts: 0 }\n";
        let e = hooks(text, &env).expect_err("invalid");
        let all = e.join("\n");
        assert!(all.contains("3: webhooks[0] (`a`): plain `http` is refused"), "{all}");
        assert!(all.contains("4: webhooks[0] (`a`): an inline `secret` is refused"), "{all}");
        assert!(all.contains("7: webhooks[1] (`b`): the environment variable `UNSET_VAR`"), "{all}");
        assert!(all.contains("8: webhooks[1] (`b`): unknown event `started`"), "{all}");
        assert!(all.contains("11: webhooks[2] (`c`): the secret is shorter than 24"), "{all}");
        assert!(all.contains("12: webhooks[2] (`c`): unknown field `colour`"), "{all}");
        assert!(all.contains("13: webhooks[2] (`c`): `retry.max_attempts` must be a number from 1 to 100"), "{all}");
        assert!(!all.contains("inline-canary") && !all.contains("short\n"), "{all}");
    }

    #[test]
    fn a_secret_file_is_read_relative_to_the_config_and_errors_carry_the_file_and_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("hook.secret"), format!("{SECRET}\n")).expect("written");
        let hash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        let head = format!("integrations: i.yaml\ntokens:\n  - name: bot\n    sha256: {hash}\n");
        let good = format!(
            "{head}webhooks:\n  - name: ops\n    url: https://h.example.com/x\n    secret: {{ file: hook.secret }}\n"
        );
        let c = crate::Config::parse_with(&good, "serve.yaml", dir.path(), &|_| None).expect("valid");
        assert_eq!(c.webhooks[0].secret.expose(), SECRET);
        let missing = good.replace("hook.secret", "nope.secret");
        let e =
            crate::Config::parse_with(&missing, "serve.yaml", dir.path(), &|_| None).expect_err("invalid").to_string();
        assert!(e.starts_with("serve.yaml:8: webhooks[0] (`ops`): cannot read the secret file"), "{e}");
        let env = format!("{head}webhooks:\n  - name: ops\n    url: https://h.example.com/x\n    secret: ${{HOOK}}\n");
        let c = crate::Config::parse_with(&env, "serve.yaml", dir.path(), &|n| (n == "HOOK").then(|| SECRET.into()))
            .expect("valid");
        assert_eq!(c.webhooks[0].secret.expose(), SECRET);
        assert!(crate::Config::parse_with(&env, "serve.yaml", dir.path(), &|_| None).is_err());
    }

    #[test]
    fn loopback_is_the_only_plain_http_and_may_hold_an_inline_secret() {
        let env = |_: &str| None;
        for url in ["http://127.0.0.1:8080/h", "http://[::1]:8080/h", "http://localhost/h", "http://127.3.4.5/h"] {
            let text = format!("webhooks:\n  - name: t\n    url: {url}\n    secret: {SECRET}\n");
            assert!(hooks(&text, &env).is_ok(), "{url}");
        }
        for url in
            ["http://10.0.0.1/h", "http://localhost.example.com/h", "ftp://127.0.0.1/h", "https://u:p@h.example.com/"]
        {
            let text = format!("webhooks:\n  - name: t\n    url: {url}\n    secret: ${{X}}\n");
            assert!(hooks(&text, &|_| Some(SECRET.into())).is_err(), "{url}");
        }
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Expected values from another implementation (Python's `hmac` module).
        let jefe = Secret::new("Jefe");
        assert_eq!(signature(&jefe, 1, b"x"), "v1=2f7ccbd0f043456ad29514b2d24a8aa345ec6673a5db1b44e91c8ac99d1841e3");
        assert_eq!(
            signature(&Secret::new(SECRET), 1_700_000_000, b"{\"a\":1}"),
            "v1=98fa505a414c11b02da9beaeb32f61c93c91446aa92aa270ce3bd9ca6aaf9f96"
        );
        let s = Secret::new(SECRET);
        let sig = signature(&s, 1_700_000_000, b"{\"a\":1}");
        assert!(verify(&s, "1700000000", &sig, b"{\"a\":1}", 1_700_000_100, 300));
        assert!(!verify(&s, "1700000000", &sig, b"{\"a\":2}", 1_700_000_100, 300), "another body");
        assert!(!verify(&s, "1700000001", &sig, b"{\"a\":1}", 1_700_000_100, 300), "another timestamp");
        assert!(!verify(&s, "1700000000", &sig, b"{\"a\":1}", 1_700_000_301, 300), "too old: a replay");
        assert!(!verify(
            &Secret::new("another-secret-0123456789abcdef"),
            "1700000000",
            &sig,
            b"{\"a\":1}",
            1_700_000_000,
            300
        ));
    }

    #[test]
    fn backoff_doubles_to_the_cap_with_jitter_in_the_upper_half() {
        let r = Retry {
            max_attempts: 10,
            initial: Duration::from_secs(10),
            max_delay: Duration::from_secs(60),
            max_age: Duration::from_secs(3600),
        };
        for _ in 0..200 {
            let b1 = backoff(&r, 1);
            assert!(b1 >= Duration::from_secs(5) && b1 <= Duration::from_secs(10), "{b1:?}");
            let b3 = backoff(&r, 3);
            assert!(b3 >= Duration::from_secs(20) && b3 <= Duration::from_secs(40), "{b3:?}");
            let b9 = backoff(&r, 9);
            assert!(b9 >= Duration::from_secs(30) && b9 <= Duration::from_secs(60), "{b9:?}");
            assert!(backoff(&r, u32::MAX) <= Duration::from_secs(60));
        }
    }
}
