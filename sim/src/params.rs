//! Request params from wherever the client put them: the query, a form body or a JSON body.

use serde_json::{Map, Value, json};

use crate::canon;
use crate::error::ApiError;
use crate::verify::RequestParts;

/// Params in arrival order; a key may repeat.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Collects the params of a verified request. A JSON body must be an object whose every value
    /// is a string: the official clients send every param as one (`str(valid_secs)`, `"1"`), so a
    /// number, boolean, null, array or object is refused with 40002 naming the param.
    pub fn from_request(req: &RequestParts<'_>) -> Result<Self, ApiError> {
        let mut pairs: Vec<(String, String)> = lossy(canon::decode_form(req.query.as_bytes()));
        if req.is_form() {
            pairs.extend(lossy(canon::decode_form(req.body)));
        } else if !req.body.is_empty() {
            let value: Value = serde_json::from_slice(req.body).map_err(|_| ApiError::invalid("body"))?;
            let Value::Object(object) = value else {
                return Err(ApiError::invalid("body"));
            };
            for (key, value) in object {
                match value {
                    Value::String(text) => pairs.push((key, text)),
                    _ => return Err(ApiError::invalid(&key)),
                }
            }
        }
        Ok(Self { pairs })
    }

    /// Params from explicit pairs (tests and internal use).
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        Self { pairs: pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() }
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, in arrival order (a param repeated, as `users` of the v2 log is).
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs.iter().filter(move |(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The value of a required param: 40001 when missing or empty.
    pub fn require(&self, name: &str) -> Result<&str, ApiError> {
        match self.get(name) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(ApiError::missing(name)),
        }
    }

    /// An optional non-negative integer: 40002 when it is not one.
    pub fn number(&self, name: &str) -> Result<Option<u64>, ApiError> {
        self.get(name).map(|v| v.trim().parse::<u64>().map_err(|_| ApiError::invalid(name))).transpose()
    }

    /// A flag as the official clients send it: `"1"` or `"0"`; absent is false, anything
    /// else is 40002.
    pub fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.get(name) {
            None | Some("0") => Ok(false),
            Some("1") => Ok(true),
            Some(_) => Err(ApiError::invalid(name)),
        }
    }

    /// `limit` and `offset`: the default limit when absent, the maximum when larger.
    pub fn page(&self, default: u64, max: u64) -> Result<Page, ApiError> {
        let limit = match self.number("limit")? {
            None => default,
            Some(0) => return Err(ApiError::invalid("limit")),
            Some(n) => n.min(max),
        };
        let offset = self.number("offset")?.unwrap_or(0);
        Ok(Page { offset: to_usize(offset), limit: to_usize(limit) })
    }
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

fn lossy(pairs: Vec<(Vec<u8>, Vec<u8>)>) -> Vec<(String, String)> {
    pairs
        .into_iter()
        .map(|(k, v)| (String::from_utf8_lossy(&k).into_owned(), String::from_utf8_lossy(&v).into_owned()))
        .collect()
}

/// One page of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub offset: usize,
    pub limit: usize,
}

impl Page {
    /// Cuts `items` to this page and builds Duo's `metadata`: `next_offset` only while more
    /// remain, `prev_offset` only after the first page.
    pub fn apply(&self, items: Vec<Value>) -> (Value, Value) {
        let total = items.len();
        let window = self.window(total);
        let page: Vec<Value> = items.into_iter().skip(window.start).take(window.len()).collect();
        (Value::Array(page), self.metadata(total))
    }

    /// The positions on this page of a list of `total` items.
    pub fn window(&self, total: usize) -> std::ops::Range<usize> {
        let start = self.offset.min(total);
        start..start.saturating_add(self.limit).min(total)
    }

    /// Duo's `metadata` for this page of a list of `total` items.
    pub fn metadata(&self, total: usize) -> Value {
        let end = self.window(total).end;
        let mut metadata = Map::new();
        metadata.insert("total_objects".into(), json!(total));
        if end < total {
            metadata.insert("next_offset".into(), json!(end));
        }
        if self.offset > 0 {
            metadata.insert("prev_offset".into(), json!(self.offset.saturating_sub(self.limit)));
        }
        Value::Object(metadata)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_carry_duo_metadata() {
        let items: Vec<Value> = (0..5).map(|i| json!(i)).collect();
        let page = Page { offset: 0, limit: 2 };
        assert_eq!(page.apply(items.clone()), (json!([0, 1]), json!({"total_objects": 5, "next_offset": 2})));
        let page = Page { offset: 4, limit: 2 };
        assert_eq!(page.apply(items.clone()), (json!([4]), json!({"total_objects": 5, "prev_offset": 2})));
        let page = Page { offset: 9, limit: 2 };
        assert_eq!(page.apply(items).0, json!([]));
    }

    #[test]
    fn limits_are_clamped_and_checked() {
        let params = Params::from_pairs(&[("limit", "1000")]);
        assert_eq!(params.page(100, 300), Ok(Page { offset: 0, limit: 300 }));
        assert_eq!(Params::from_pairs(&[("limit", "x")]).page(100, 300), Err(ApiError::invalid("limit")));
        assert_eq!(Params::from_pairs(&[("offset", "-1")]).page(100, 300), Err(ApiError::invalid("offset")));
        assert_eq!(Params::default().require("username"), Err(ApiError::missing("username")));
    }

    #[test]
    fn flags_are_zero_or_one() {
        assert_eq!(Params::from_pairs(&[("async", "1")]).flag("async"), Ok(true));
        assert_eq!(Params::from_pairs(&[("async", "0")]).flag("async"), Ok(false));
        assert_eq!(Params::default().flag("async"), Ok(false));
        assert_eq!(Params::from_pairs(&[("async", "true")]).flag("async"), Err(ApiError::invalid("async")));
    }
}
