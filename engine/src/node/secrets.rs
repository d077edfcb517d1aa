//! Values a run must not keep: credentials a node received for its caller (Duo bypass codes).
//! A node hands them over with [`NodeCx::secret`](super::NodeCx::secret); from then on every
//! string of the run that is recorded (the journal's entries and final record, the record's
//! nodes, logged error messages) has them replaced by [`REDACTED`], by value, wherever they went
//! (a subflow's outputs, a `set` node, a message). The caller's outputs alone keep them.

use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// What a secret value is replaced with.
pub const REDACTED: &str = "[secret]";

/// Shorter strings are not taken as secrets: replacing them would blank out unrelated text
/// (Duo's shortest custom bypass code is longer).
const MIN_LEN: usize = 4;

/// The secret values of one run, shared by its subflows. Cheap to clone (one `Arc`).
#[derive(Clone, Default)]
pub struct Secrets(Arc<Mutex<Vec<String>>>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({})", self.list().len())
    }
}

impl Secrets {
    fn list(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes every string in `value` (at any depth) as a secret.
    pub fn add(&self, value: &Value) {
        let mut list = self.list();
        let mut stack = vec![value];
        while let Some(v) = stack.pop() {
            match v {
                Value::String(s) if s.len() >= MIN_LEN && !list.contains(s) => list.push(s.clone()),
                Value::Array(items) => stack.extend(items),
                Value::Object(m) => stack.extend(m.values()),
                _ => {}
            }
        }
        // Longest first, so that a secret containing another is replaced whole.
        list.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }

    /// Whether the run has none (then nothing is copied or rewritten).
    pub fn is_empty(&self) -> bool {
        self.list().is_empty()
    }

    /// `text` with every secret replaced.
    pub fn text(&self, text: &str) -> String {
        let list = self.list();
        let mut out = text.to_owned();
        for s in list.iter() {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), REDACTED);
            }
        }
        out
    }

    /// Replaces every secret in the strings (and object keys) of `value`.
    pub fn value(&self, value: &mut Value) {
        if self.is_empty() {
            return;
        }
        match value {
            Value::String(s) => {
                let redacted = self.text(s);
                if redacted != *s {
                    *s = redacted;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.value(v)),
            Value::Object(m) => {
                let entries = std::mem::take(m);
                for (k, mut v) in entries {
                    self.value(&mut v);
                    m.insert(self.text(&k), v);
                }
            }
            _ => {}
        }
    }

    /// A copy of `thing` with every secret replaced, through its JSON form. `None` when it does
    /// not read back (a type whose JSON form does not round-trip), so that a caller never
    /// records an unredacted copy by mistake.
    pub fn redacted<T: Serialize + DeserializeOwned>(&self, thing: &T) -> Option<T> {
        let mut value = serde_json::to_value(thing).ok()?;
        self.value(&mut value);
        serde_json::from_value(value).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_are_replaced_wherever_they_went() {
        let s = Secrets::default();
        assert!(s.is_empty());
        s.add(&json!(["123456789", "987654321", "12"]));
        assert!(!s.is_empty());
        let mut v = json!({ "codes": ["123456789"], "msg": "your code 987654321.", "n": 123_456_789, "short": "12",
                            "123456789": true });
        s.value(&mut v);
        assert_eq!(
            v,
            json!({ "codes": ["[secret]"], "msg": "your code [secret].", "n": 123_456_789, "short": "12", "[secret]": true })
        );
        assert_eq!(format!("{s:?}"), "Secrets(2)");
    }

    #[test]
    fn a_secret_inside_a_longer_one_does_not_leave_a_piece_behind() {
        let s = Secrets::default();
        s.add(&json!("4567"));
        s.add(&json!("1234567890"));
        assert_eq!(s.text("a 1234567890 b 4567"), "a [secret] b [secret]");
    }
}
