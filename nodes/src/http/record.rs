//! What a call leaves behind: one [`Attempt`] per request sent, with every secret scrubbed, so
//! that run records, traces and error messages can show exactly what happened and nothing more.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::integrations::Integration;

/// What stands in for a secret in every record.
pub const REDACTED: &str = "****";

/// One request sent and what came of it.
///
/// The fields of this and the two records below are declared in alphabetical order: a record
/// writes them as they are declared ([`flowcat_engine::run::Detail::typed`]), and they must
/// read as a JSON object's sorted keys always did (`a_records_keys_are_in_sorted_order`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attempt {
    pub duration_ms: u64,
    /// Why no answer came (connection refused, lost, timed out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub request: RequestRecord,
    /// The answer, when one came.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<ResponseRecord>,
    /// The wait before the next attempt, when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_delay_ms: Option<u64>,
    /// When the request started, in milliseconds since the Unix epoch.
    pub started_at: u64,
}

/// The request as sent, `Authorization` and other secrets shown as `****`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestRecord {
    /// The body as JSON when it is JSON, else as text; absent when none was sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// Lower-case names.
    pub headers: BTreeMap<String, String>,
    pub method: String,
    pub url: String,
}

/// The answer as received, scrubbed of secrets as well (a server may echo a request back).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResponseRecord {
    pub body: Value,
    /// Lower-case names; repeated headers joined with `, `.
    pub headers: BTreeMap<String, String>,
    pub status: u16,
}

/// Replaces an integration's secrets, as written and as they appear on the wire (a Basic
/// credential in base64), wherever they occur; hides sensitive headers whole.
#[derive(Clone)]
pub(crate) struct Redactor {
    secrets: Vec<String>,
}

// Hand-written so that the secrets it holds never print.
impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} secrets)", self.secrets.len())
    }
}

impl Redactor {
    pub(crate) fn new(integration: &Integration) -> Self {
        // Very short secrets would blank out ordinary text; none of the real ones is that short.
        let mut secrets: Vec<String> = integration.auth.secrets().into_iter().filter(|s| s.len() >= 4).collect();
        // Longest first, so a secret that contains another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Self { secrets }
    }

    pub(crate) fn text(&self, text: &str) -> String {
        if self.secrets.is_empty() {
            return text.to_owned();
        }
        let mut out = text.to_owned();
        for secret in &self.secrets {
            // `str::contains` sets up a two-way searcher for a needle as long as a secret key,
            // costlier than the search itself in a URL or a header value.
            if contains(out.as_bytes(), secret.as_bytes()) {
                out = out.replace(secret.as_str(), REDACTED);
            }
        }
        out
    }

    pub(crate) fn value(&self, value: Value) -> Value {
        // Nothing to scrub (no secrets, or an unauthenticated integration): keep the tree as is
        // instead of rebuilding it.
        if self.secrets.is_empty() {
            return value;
        }
        match value {
            Value::String(text) => Value::String(self.text(&text)),
            Value::Array(items) => Value::Array(items.into_iter().map(|v| self.value(v)).collect()),
            Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (self.text(&k), self.value(v))).collect()),
            other => other,
        }
    }

    /// A header value fit for a record: `****` for credentials, scrubbed text otherwise.
    pub(crate) fn header(&self, name: &str, value: &str) -> String {
        if is_sensitive_header(name) { REDACTED.to_owned() } else { self.text(value) }
    }

    pub(crate) fn headers<'a>(
        &self,
        headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> BTreeMap<String, String> {
        let mut out: BTreeMap<String, String> = BTreeMap::new();
        for (name, value) in headers {
            let value = self.header(name, value);
            out.entry(name.to_ascii_lowercase()).and_modify(|v| *v = format!("{v}, {value}")).or_insert(value);
        }
        out
    }

    /// A body for a record or a reply: JSON if it parses, else text.
    pub(crate) fn body(&self, bytes: &[u8]) -> Value {
        self.json_body(bytes, parse_body(bytes))
    }

    /// [`Redactor::body`] for bytes whose value is known: `parsed` must be what [`parse_body`]
    /// makes of `bytes` (a request body written from that value), and is scrubbed as it would be.
    pub(crate) fn json_body(&self, bytes: &[u8], parsed: Value) -> Value {
        // Without a backslash, every string of the parsed JSON (or the text) is a stretch of the
        // bytes as they came: a secret absent from the bytes is absent from the value, and the
        // tree need not be rebuilt. An escape could spell a secret the bytes do not show: then
        // every string is scrubbed.
        if !bytes.contains(&b'\\') && !self.secrets.iter().any(|s| contains(bytes, s.as_bytes())) {
            return parsed;
        }
        self.value(parsed)
    }
}

/// Whether `needle` occurs in `haystack`. The first byte is compared before the rest: most
/// windows of a body differ there, and comparing every window whole cost a `memcmp` call each.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    let Some((&first, rest)) = needle.split_first() else { return true };
    haystack.windows(needle.len()).any(|w| w[0] == first && &w[1..] == rest)
}

/// Headers whose values are credentials whatever they hold.
///
/// Compared in any case without lower-casing a copy: every header of every request and answer
/// passes here, and allocating a name for each was a measurable share of a call's cost.
pub fn is_sensitive_header(name: &str) -> bool {
    const WHOLE: [&str; 4] = ["authorization", "proxy-authorization", "cookie", "set-cookie"];
    const WORDS: [&str; 5] = ["token", "secret", "password", "api-key", "apikey"];
    WHOLE.iter().any(|whole| name.eq_ignore_ascii_case(whole))
        || WORDS.iter().any(|word| contains_ignore_ascii_case(name.as_bytes(), word.as_bytes()))
}

/// Whether `needle` (lower-case ASCII) occurs in `haystack` in any ASCII case: what
/// `haystack.to_ascii_lowercase().contains(needle)` says, without the copy.
fn contains_ignore_ascii_case(haystack: &[u8], needle: &[u8]) -> bool {
    let Some((&first, _)) = needle.split_first() else { return true };
    haystack.windows(needle.len()).any(|w| w[0].to_ascii_lowercase() == first && w.eq_ignore_ascii_case(needle))
}

/// JSON when the bytes are JSON, else the text (lossy UTF-8); empty is `""`.
pub fn parse_body(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensitive_headers() {
        for name in ["Authorization", "proxy-authorization", "Cookie", "X-Auth-Token", "X-Api-Key", "x-client-secret"] {
            assert!(is_sensitive_header(name), "{name}");
        }
        for name in ["Date", "Content-Type", "X-Duo-Foo", "Retry-After"] {
            assert!(!is_sensitive_header(name), "{name}");
        }
        // The same answers as lower-casing a copy and searching it, the rule as first written.
        let by_copy = |name: &str| {
            let name = name.to_ascii_lowercase();
            matches!(name.as_str(), "authorization" | "proxy-authorization" | "cookie" | "set-cookie")
                || ["token", "secret", "password", "api-key", "apikey"].iter().any(|word| name.contains(word))
        };
        let names = [
            "",
            "t",
            "token",
            "TOKEN",
            "x-tokeN",
            "tokens-x",
            "toke",
            "Set-Cookie",
            "set-cookies",
            "cookie2",
            "AUTHORIZATION",
            "authorizationx",
            "Proxy-Authorization",
            "x-SeCrEt-y",
            "passwor",
            "PassWord",
            "api-ke",
            "X-API-KEY",
            "apikey",
            "api_key",
            "ttoken",
            "sesecret",
            "x-\u{e9}token",
            "\u{130}token",
            "K\u{212a}ey",
        ];
        for name in names {
            assert_eq!(is_sensitive_header(name), by_copy(name), "{name:?}");
        }
    }

    #[test]
    fn a_secret_in_a_body_is_scrubbed_even_spelled_with_escapes() {
        let redactor = Redactor { secrets: vec!["s3cr3tKEY".to_owned()] };
        let plain = redactor.body(br#"{"echo":"key s3cr3tKEY here","n":1}"#);
        assert_eq!(plain, serde_json::json!({"echo": "key **** here", "n": 1}));
        // `\u0033` is `3`: the bytes do not hold the secret, the parsed string does.
        let escaped = redactor.body(br#"{"echo":"s\u0033cr3tKEY"}"#);
        assert_eq!(escaped, serde_json::json!({"echo": "****"}));
        let as_key = redactor.body(br#"{"s3cr3tKEY":true}"#);
        assert_eq!(as_key, serde_json::json!({"****": true}));
        assert_eq!(redactor.text("/x?k=s3cr3tKEY&s3cr3tKE=s3cr3tKEYs3cr3tKEY"), "/x?k=****&s3cr3tKE=********");
        assert_eq!(redactor.text("s3cr3tKE"), "s3cr3tKE");
        let text = redactor.body(b"not json s3cr3tKEY");
        assert_eq!(text, Value::String("not json ****".into()));
        let clean = redactor.body(br#"{"stat":"OK","response":{"user_id":"DU1"}}"#);
        assert_eq!(clean, serde_json::json!({"stat": "OK", "response": {"user_id": "DU1"}}));
    }

    #[test]
    fn byte_search_finds_a_needle_anywhere() {
        let table: [(&[u8], &[u8], bool); 9] = [
            (b"", b"", true),
            (b"abc", b"", true),
            (b"", b"a", false),
            (b"abc", b"abc", true),
            (b"ab", b"abc", false),
            (b"xxabc", b"abc", true),
            (b"abcxx", b"abc", true),
            (b"abababac", b"ababac", true),
            (b"aXbc abd", b"abc", false),
        ];
        for (haystack, needle, found) in table {
            assert_eq!(contains(haystack, needle), found, "{haystack:?} {needle:?}");
        }
    }

    #[test]
    fn bodies() {
        assert_eq!(parse_body(br#"{"stat":"OK"}"#), serde_json::json!({"stat": "OK"}));
        assert_eq!(parse_body(b"oops"), Value::String("oops".into()));
        assert_eq!(parse_body(b""), Value::String(String::new()));
    }
}
