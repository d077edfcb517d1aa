//! Integration keys: the kinds of integration, secret keys that never print, and the keyring.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Which Duo API an integration may call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// An Admin API application: `/admin/v1/...`.
    DuoAdmin,
    /// An Auth API application: `/auth/v2/...`.
    DuoAuth,
}

impl Kind {
    /// The name used in seed, state and integrations files.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::DuoAdmin => "duo_admin",
            Kind::DuoAuth => "duo_auth",
        }
    }
}

/// A secret key. `Debug` and `Display` print a placeholder so it never reaches a log or error.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretKey(String);

impl SecretKey {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself, for the HMAC and for writing the integrations file.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

impl fmt::Display for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The keys the verifier accepts, by integration key.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    keys: HashMap<String, (Kind, SecretKey)>,
}

impl Keyring {
    /// Adds or replaces one integration's key.
    pub fn insert(&mut self, ikey: impl Into<String>, kind: Kind, skey: SecretKey) {
        self.keys.insert(ikey.into(), (kind, skey));
    }

    /// The kind and secret of an integration key, if it is known.
    pub fn get(&self, ikey: &str) -> Option<(Kind, &SecretKey)> {
        self.keys.get(ikey).map(|(kind, skey)| (*kind, skey))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let key = SecretKey::new("hunter2hunter2");
        assert!(!format!("{key:?} {key}").contains("hunter2"));
        let mut ring = Keyring::default();
        ring.insert("DI1", Kind::DuoAdmin, key);
        assert!(!format!("{ring:?}").contains("hunter2"));
    }
}
