//! `Secret`: a Duo secret key (`skey`) that never shows up in logs, `Debug` or `Display` output.

use std::fmt;

/// A secret key. Formatting it prints `Secret(****)`; the only way to read the value is
/// [`Secret::expose`], so every use of the key is visible in a code review (`grep expose`).
///
/// The value is not zeroed on drop: the HMAC state derived from it and the `String` the
/// configuration loader read it from hold copies anyway, so zeroing this one copy would promise
/// more than it delivers.
#[derive(Clone, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret key.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself. Call it only where the key is used (HMAC keying), never to log.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when no key was given (an empty `skey` in a configuration file, say).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep";

    #[test]
    fn formatting_never_reveals_the_value() {
        let secret = Secret::new(KEY);
        for shown in [
            format!("{secret:?}"),
            format!("{secret:#?}"),
            format!("{secret}"),
            format!("{secret:>60}"),
            format!("{:?}", Some(secret.clone())),
        ] {
            assert!(!shown.contains(KEY), "leaked in {shown:?}");
            assert!(!shown.contains("Zh5e"), "partly leaked in {shown:?}");
            assert!(shown.contains("****"), "unexpected rendering {shown:?}");
        }
        assert_eq!(secret.expose(), KEY);
    }

    #[test]
    fn deserializes_from_a_plain_string() {
        let secret: Secret = serde_json::from_str(&format!("\"{KEY}\"")).expect("a JSON string");
        assert_eq!(secret.expose(), KEY);
        assert!(!secret.is_empty());
        assert!(Secret::from("").is_empty());
    }
}
