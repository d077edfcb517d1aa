//! Helpers shared by the tests that read the case files of `tests/duo_flows/`.

#![allow(dead_code)]

use serde_json::{Map, Value};

pub fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// `${name}` → an earlier step's output `name`.
/// A control call's `save`: `{"NAME": {"from": "now_ms", "plus_ms": -3600000}}` keeps a number
/// of its answer, moved by `plus_ms`, as the text `${NAME}` is replaced with (a time window from
/// the simulator's clock, say).
pub fn save_control(call: &Value, answer: &Value, saved: &mut Map<String, Value>) {
    for (name, how) in call["save"].as_object().into_iter().flatten() {
        let from = how["from"].as_str().expect("a `from` key of the answer");
        let n = answer[from].as_i64().unwrap_or_else(|| panic!("the answer's `{from}` is a number: {answer}"));
        let plus = how["plus_ms"].as_i64().unwrap_or(0);
        saved.insert(name.clone(), Value::String((n + plus).to_string()));
    }
}

pub fn substitute(s: &str, saved: &Map<String, Value>) -> String {
    let mut s = s.to_owned();
    for (k, v) in saved {
        let text = v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string());
        s = s.replace(&format!("${{{k}}}"), &text);
    }
    s
}

pub fn resolve(want: &Value, saved: &Map<String, Value>) -> Value {
    match want {
        Value::String(s) => Value::String(substitute(s, saved)),
        Value::Array(a) => Value::Array(a.iter().map(|v| resolve(v, saved)).collect()),
        Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), resolve(v, saved))).collect()),
        other => other.clone(),
    }
}

/// Equality, where `"<DU>"`, `"<DP>"`, `"<txid>"`, `"<text>"` and `"<bool>"` stand for any value
/// of that shape.
pub fn matches(want: &Value, got: &Value) -> bool {
    match (want, got) {
        (Value::String(w), _) if w.starts_with('<') && w.ends_with('>') => placeholder(w, got),
        (Value::Object(w), Value::Object(g)) => {
            w.len() == g.len() && w.iter().all(|(k, v)| g.get(k).is_some_and(|g| matches(v, g)))
        }
        (Value::Array(w), Value::Array(g)) => w.len() == g.len() && w.iter().zip(g).all(|(w, g)| matches(w, g)),
        _ => want == got,
    }
}

pub fn placeholder(name: &str, got: &Value) -> bool {
    if name == "<any>" {
        return true;
    }
    if name == "<bool>" {
        return got.is_boolean();
    }
    let Some(s) = got.as_str() else { return false };
    let id = |prefix: &str| {
        s.len() == 20 && s.starts_with(prefix) && s.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    };
    match name {
        "<DU>" => id("DU"),
        "<DP>" => id("DP"),
        "<DG>" => id("DG"),
        "<DH>" => id("DH"),
        "<digits>" => !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()),
        "<txid>" => s.len() == 36 && s.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit()),
        "<text>" => !s.is_empty(),
        _ => panic!("unknown placeholder {name}"),
    }
}
