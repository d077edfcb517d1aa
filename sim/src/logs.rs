//! The Admin API's logs besides the v2 authentication log (in `helpdesk.rs`): the v1
//! authentication, administrator, telephony and offline enrollment logs, and the v2 telephony
//! and activity logs, with the v2 logs' window and paging shared with the authentication log.
//!
//! What they hold: authentications are the v2 log's entries; administrator actions and activity
//! are read from the audit log (every change made through the Admin API is one entry there, so
//! clearing the audit log clears them); telephony events are the SMS the simulator "sent"
//! (activation, installation, passcodes); offline enrollments never happen in the simulator
//! (they are Duo Authentication for Windows Logon's), so that log is always empty.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::audit::AuditEntry;
use crate::error::ApiError;
use crate::ops::{Ctx, Reply};
use crate::params::Params;

/// How far back Duo keeps logs: `mintime` at most 180 days back.
pub(crate) const RETENTION_MS: i64 = 180 * 86_400_000;
/// The v2 logs' page size: default and largest.
const V2_DEFAULT_LIMIT: u64 = 100;
const V2_MAX_LIMIT: u64 = 1000;
/// The v1 logs answer at most this many events per call, the oldest first.
const V1_MAX_EVENTS: usize = 1000;

/// One SMS or call Duo placed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TelephonyEvent {
    pub telephony_id: String,
    /// Unix milliseconds.
    pub ts_ms: i64,
    /// `sms` or `phone`.
    #[serde(rename = "type")]
    pub kind: String,
    /// What it was for: `activation`, `installation`, `passcodes`.
    pub context: String,
    pub phone: String,
    pub credits: u64,
}

/// Records an SMS or call in the telephony logs.
pub(crate) fn telephony(ctx: &mut Ctx<'_>, kind: &str, context: &str, number: &str) {
    let event = TelephonyEvent {
        telephony_id: ctx.state.ids.txid(),
        ts_ms: ctx.now_ms,
        kind: kind.to_string(),
        context: context.to_string(),
        phone: number.to_string(),
        credits: 1,
    };
    ctx.state.helpdesk.telephony.push(event);
}

// ---- the v2 window --------------------------------------------------------------------------

/// A v2 log request: `mintime` and `maxtime` (13-digit Unix ms, both required, `mintime` <
/// `maxtime`, `mintime` at most 180 days back), `limit` (default 100, 1..=1000 else 40002),
/// `sort` (`ts:desc`, the default, or `ts:asc`), `next_offset` (`"<ms>,<id>"`, the previous
/// page's `metadata.next_offset` joined by a comma).
#[derive(Debug)]
pub(crate) struct V2Query {
    mintime: i64,
    maxtime: i64,
    limit: usize,
    ascending: bool,
    after: Option<(i64, String)>,
}

fn millis(params: &Params, name: &str) -> Result<i64, ApiError> {
    let text = params.require(name)?;
    if text.len() != 13 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::invalid(name));
    }
    text.parse().map_err(|_| ApiError::invalid(name))
}

impl V2Query {
    pub(crate) fn parse(params: &Params, now_ms: i64) -> Result<Self, ApiError> {
        let mintime = millis(params, "mintime")?;
        let maxtime = millis(params, "maxtime")?;
        if mintime >= maxtime || mintime < now_ms.saturating_sub(RETENTION_MS) {
            return Err(ApiError::invalid("mintime"));
        }
        let limit = match params.number("limit")? {
            None => V2_DEFAULT_LIMIT,
            Some(n) if (1..=V2_MAX_LIMIT).contains(&n) => n,
            Some(_) => return Err(ApiError::invalid("limit")),
        };
        let ascending = match params.get("sort") {
            None | Some("ts:desc") => false,
            Some("ts:asc") => true,
            Some(_) => return Err(ApiError::invalid("sort")),
        };
        let after = match params.get("next_offset") {
            None => None,
            Some(text) => {
                let (ms, id) = text.split_once(',').ok_or_else(|| ApiError::invalid("next_offset"))?;
                let ms: i64 = ms.parse().map_err(|_| ApiError::invalid("next_offset"))?;
                Some((ms, id.to_string()))
            }
        };
        Ok(Self { mintime, maxtime, limit: usize::try_from(limit).unwrap_or(usize::MAX), ascending, after })
    }

    /// The page of `items` (time in ms, a unique id, the rendered item) inside the window, in
    /// the order asked, after `next_offset`; the `next_offset` of the page (`[ms, id]`, or null
    /// on the last) and how many items the window holds.
    pub(crate) fn page(&self, items: Vec<(i64, String, Value)>) -> (Vec<Value>, Value, usize) {
        let mut items: Vec<_> =
            items.into_iter().filter(|(ts, _, _)| *ts >= self.mintime && *ts <= self.maxtime).collect();
        items.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        if !self.ascending {
            items.reverse();
        }
        let total = items.len();
        let start = match &self.after {
            None => 0,
            Some((ms, id)) => {
                let key = (*ms, id.as_str());
                items
                    .iter()
                    .position(|(ts, here, _)| {
                        let here = (*ts, here.as_str());
                        if self.ascending { here > key } else { here < key }
                    })
                    .unwrap_or(total)
            }
        };
        let end = start.saturating_add(self.limit).min(total);
        let next_offset = match items.get(end.wrapping_sub(1)) {
            Some((ts, id, _)) if end < total && end > start => json!([ts.to_string(), id]),
            _ => Value::Null,
        };
        let page = items.drain(start..end).map(|(_, _, v)| v).collect();
        (page, next_offset, total)
    }
}

/// The answer of a v2 log whose events are under `items`.
fn items_reply(page: Vec<Value>, next_offset: Value, total: usize) -> Reply {
    let metadata = json!({ "next_offset": next_offset, "total_objects": { "value": total, "relation": "eq" } });
    Reply::plain(json!({ "items": page, "metadata": metadata }))
}

fn iso_ms(ms: i64) -> String {
    crate::date::iso8601(ms.div_euclid(1000))
}

// ---- v1 ----------------------------------------------------------------------------------------

/// A v1 log's `mintime`: Unix seconds, optional (0). A value in milliseconds (more than ten
/// digits) is 40002: Duo would read it as a time centuries ahead and answer nothing, which hides
/// the mistake.
fn v1_mintime(params: &Params) -> Result<i64, ApiError> {
    match params.get("mintime") {
        None => Ok(0),
        Some(text) if text.is_empty() || text.len() > 10 || !text.bytes().all(|b| b.is_ascii_digit()) => {
            Err(ApiError::invalid("mintime"))
        }
        Some(text) => text.parse().map_err(|_| ApiError::invalid("mintime")),
    }
}

/// The v1 answer: the events at or after `mintime` (seconds) and within the retention, the
/// oldest first, at most 1000 (a client asks again from the last one's `timestamp`).
fn v1_reply(ctx: &Ctx<'_>, params: &Params, mut events: Vec<(i64, Value)>) -> Result<Reply, ApiError> {
    let mintime = v1_mintime(params)?;
    let oldest = ctx.now_ms.saturating_sub(RETENTION_MS).div_euclid(1000);
    events.retain(|(ts, _)| *ts >= mintime && *ts >= oldest);
    events.sort_by_key(|(ts, _)| *ts);
    events.truncate(V1_MAX_EVENTS);
    Ok(Reply::plain(Value::Array(events.into_iter().map(|(_, v)| v).collect())))
}

/// `GET /admin/v1/logs/authentication`: `mintime` (seconds) → the authentications, as the v1
/// handler renders them (`SUCCESS`, `FAILURE`, `FRAUD`), each visible two minutes after it
/// happened, as in the v2 log.
pub fn auth_v1(ctx: &mut Ctx<'_>, params: &Params) -> Result<Reply, ApiError> {
    let visible_until = ctx.now_ms.saturating_sub(crate::helpdesk::AUTHLOG_DELAY_MS);
    let events = crate::helpdesk::auth_entries(ctx.state, ctx.now_ms)
        .into_iter()
        .filter(|e| e.timestamp_ms <= visible_until)
        .map(|e| {
            let secs = e.timestamp_ms.div_euclid(1000);
            let result = match e.result.as_str() {
                "success" => "SUCCESS",
                "fraud" => "FRAUD",
                _ => "FAILURE",
            };
            let factor = if e.factor == "duo_push" { "Duo Push" } else { e.factor.as_str() };
            let event = json!({
                "timestamp": secs, "username": e.username, "factor": factor, "result": result,
                "reason": e.reason, "ip": "127.0.0.1", "integration": "flowcat-sim Auth API",
                "new_enrollment": false, "eventtype": "authentication", "host": "", "device": "",
            });
            (secs, event)
        })
        .collect();
    v1_reply(ctx, params, events)
}

/// Changes made through the Admin API, from the audit log.
fn admin_changes(entries: &[AuditEntry]) -> impl Iterator<Item = &AuditEntry> {
    entries.iter().filter(|e| !e.ikey.is_empty() && e.route.contains(" /admin/"))
}

/// What an audit entry's change was made to, as the logs name it.
fn object_of(detail: &Value) -> Value {
    for key in ["username", "name", "number", "serial", "phone_id", "token_id", "group_id", "user_id", "bypass_code_id"]
    {
        if let Some(v) = detail.get(key).filter(|v| v.as_str().is_some_and(|s| !s.is_empty())) {
            return v.clone();
        }
    }
    Value::Null
}

/// `GET /admin/v1/logs/administrator`: `mintime` (seconds) → every change made through the
/// Admin API (the audit log's), as `{action, description, isotimestamp, object, timestamp,
/// username}`, the action Duo-style (`user_create`), the administrator `API`.
pub fn admin_v1(ctx: &mut Ctx<'_>, params: &Params) -> Result<Reply, ApiError> {
    let events = admin_changes(ctx.state.audit.entries())
        .map(|e| {
            let secs = e.time.div_euclid(1000);
            let event = json!({
                "action": e.change.replace('.', "_"),
                "description": e.detail.to_string(),
                "isotimestamp": crate::date::iso8601(secs),
                "object": object_of(&e.detail),
                "timestamp": secs,
                "username": "API",
            });
            (secs, event)
        })
        .collect();
    v1_reply(ctx, params, events)
}

fn render_telephony_v1(e: &TelephonyEvent) -> Value {
    let secs = e.ts_ms.div_euclid(1000);
    json!({
        "context": e.context, "credits": e.credits, "isotimestamp": crate::date::iso8601(secs),
        "phone": e.phone, "timestamp": secs, "type": e.kind,
    })
}

/// `GET /admin/v1/logs/telephony`: `mintime` (seconds) → the SMS sent.
pub fn telephony_v1(ctx: &mut Ctx<'_>, params: &Params) -> Result<Reply, ApiError> {
    let events =
        ctx.state.helpdesk.telephony.iter().map(|e| (e.ts_ms.div_euclid(1000), render_telephony_v1(e))).collect();
    v1_reply(ctx, params, events)
}

/// `GET /admin/v1/logs/offline_enrollment`: `mintime` (seconds) → `[]`: nothing in the
/// simulator enrolls for offline access.
pub fn offline_enrollment_v1(ctx: &mut Ctx<'_>, params: &Params) -> Result<Reply, ApiError> {
    v1_reply(ctx, params, Vec::new())
}

// ---- v2 ----------------------------------------------------------------------------------------

/// `GET /admin/v2/logs/telephony`: the v2 window over the SMS sent → `{items, metadata}`.
pub fn telephony_v2(ctx: &mut Ctx<'_>, params: &Params) -> Result<Reply, ApiError> {
    let query = V2Query::parse(params, ctx.now_ms)?;
    let items = ctx
        .state
        .helpdesk
        .telephony
        .iter()
        .map(|e| {
            let item = json!({
                "context": e.context, "credits": e.credits, "phone": e.phone, "telephony_id": e.telephony_id,
                "ts": iso_ms(e.ts_ms), "txid": e.telephony_id, "type": e.kind,
            });
            (e.ts_ms, e.telephony_id.clone(), item)
        })
        .collect();
    let (page, next_offset, total) = query.page(items);
    Ok(items_reply(page, next_offset, total))
}

/// `GET /admin/v2/logs/activity`: the v2 window over every change made through the Admin or
/// Auth API (the audit log's) → `{items, metadata}`, each with `activity_id` (the audit
/// sequence number), `action`, `actor` (the integration), `target` and `ts`.
pub fn activity_v2(ctx: &mut Ctx<'_>, params: &Params) -> Result<Reply, ApiError> {
    let query = V2Query::parse(params, ctx.now_ms)?;
    let items = ctx
        .state
        .audit
        .entries()
        .iter()
        .filter(|e| !e.ikey.is_empty())
        .map(|e| {
            let id = format!("{:020}", e.seq);
            let item = json!({
                "activity_id": id,
                "action": { "name": e.change.replace('.', "_"), "details": e.detail.to_string() },
                "actor": { "key": e.ikey, "name": e.ikey, "type": "integration" },
                "target": { "name": object_of(&e.detail) },
                "application": null,
                "access_device": null,
                "ts": iso_ms(e.time),
            });
            (e.time, id, item)
        })
        .collect();
    let (page, next_offset, total) = query.page(items);
    Ok(items_reply(page, next_offset, total))
}
