//! The JSON body of a v5 request, byte for byte as Duo's Python client writes it
//! (`json.dumps(params, sort_keys=True, separators=(',', ':'))`): the body is hashed into the
//! signature, so any other rendering of the same object would be refused.

use std::fmt::Write as _;

use serde_json::{Map, Number, Value};

use super::sign::{MAX_JSON_DEPTH, SignError};

/// A JSON body exactly as Python's `json.dumps(params, sort_keys=True, separators=(',', ':'))`
/// renders it, which is what `duo_client` sends and hashes for v5.
///
/// - keys sorted by code point at every level (not trusting the map's own order: a workspace
///   feature such as serde_json's `preserve_order` would change it);
/// - `ensure_ascii`: every character outside `' '..='~'` is escaped as lower-case `\uXXXX`, above
///   U+FFFF as a UTF-16 surrogate pair; `\b \f \n \r \t \" \\` use their short forms; `/` is not
///   escaped; DEL is `\u007f`;
/// - integers as written; floats as Python's `repr` (`1.0`, `1e+16`, `1e-05`, `-0.0`).
pub fn canon_json(object: &Map<String, Value>) -> Result<String, SignError> {
    let mut out = String::with_capacity(64);
    write_json_object(&mut out, object, 1)?;
    Ok(out)
}

fn write_json_object(out: &mut String, object: &Map<String, Value>, depth: usize) -> Result<(), SignError> {
    if depth > MAX_JSON_DEPTH {
        return Err(SignError::JsonTooDeep);
    }
    let mut entries: Vec<(&String, &Value)> = object.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    out.push('{');
    for (i, (key, value)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_json_string(out, key);
        out.push(':');
        write_json_value(out, value, depth)?;
    }
    out.push('}');
    Ok(())
}

fn write_json_value(out: &mut String, value: &Value, depth: usize) -> Result<(), SignError> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => write_json_number(out, n),
        Value::String(s) => write_json_string(out, s),
        Value::Array(items) => {
            if depth + 1 > MAX_JSON_DEPTH {
                return Err(SignError::JsonTooDeep);
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_value(out, item, depth + 1)?;
            }
            out.push(']');
        }
        Value::Object(object) => write_json_object(out, object, depth + 1)?,
    }
    Ok(())
}

fn write_json_string(out: &mut String, text: &str) {
    out.push('"');
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(ch),
            _ => {
                let mut units = [0u16; 2];
                for unit in ch.encode_utf16(&mut units) {
                    // Writing to a String cannot fail.
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

fn write_json_number(out: &mut String, number: &Number) {
    if let Some(u) = number.as_u64() {
        let _ = write!(out, "{u}");
    } else if let Some(i) = number.as_i64() {
        let _ = write!(out, "{i}");
    } else if let Some(f) = number.as_f64() {
        out.push_str(&python_float_repr(f));
    } else {
        // Only reachable with serde_json's `arbitrary_precision`: keep the number's own text.
        let _ = write!(out, "{number}");
    }
}

/// Python's `repr(float)` (and so `json.dumps`): the shortest digits that round-trip, in fixed
/// notation when the decimal exponent is in `-4 < e <= 16`, otherwise `d.ddde±XX`.
fn python_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    let sign = if f.is_sign_negative() { "-" } else { "" };
    if f == 0.0 {
        return format!("{sign}0.0");
    }
    // Rust's `{:e}` gives the same shortest round-trip digits as Python's repr, as `d.ddddeN`.
    let scientific = format!("{:e}", f.abs());
    let Some((mantissa, exponent)) = scientific.split_once('e') else {
        return f.to_string();
    };
    let Ok(exponent) = exponent.parse::<i32>() else {
        return f.to_string();
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    // Position of the decimal point relative to the digits: value = 0.DIGITS × 10^decpt.
    let decpt = exponent + 1;
    let n = i32::try_from(digits.len()).unwrap_or(i32::MAX);
    let mut out = String::from(sign);
    if decpt > -4 && decpt <= 16 {
        if decpt <= 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', decpt.unsigned_abs() as usize));
            out.push_str(&digits);
        } else if decpt >= n {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', (decpt - n) as usize));
            out.push_str(".0");
        } else {
            let (int_part, frac_part) = digits.split_at(decpt as usize);
            out.push_str(int_part);
            out.push('.');
            out.push_str(frac_part);
        }
    } else {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        let e = decpt - 1;
        let _ = write!(out, "e{}{:02}", if e < 0 { '-' } else { '+' }, e.unsigned_abs());
    }
    out
}
