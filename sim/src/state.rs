//! The simulator's whole state: what a seed becomes, what the state file holds.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::audit::AuditLog;
use crate::error::Error;
use crate::ids::IdGen;
use crate::keys::{Keyring, Kind};
use crate::model::{Phone, User};
use crate::push::Push;
use crate::seed::{IntegrationSeed, NewUserPolicy, Seed};

/// Users, phones, pushes, enrolments and the audit log. Serialised as the state file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub integrations: Vec<IntegrationSeed>,
    /// In creation order, which is the order lists page through.
    pub users: Vec<User>,
    pub phones: Vec<Phone>,
    #[serde(default)]
    pub pushes: BTreeMap<String, Push>,
    /// Enrolment emails and SMS activations sent, newest last.
    #[serde(default)]
    pub messages: Vec<serde_json::Value>,
    #[serde(default)]
    pub new_user_policy: NewUserPolicy,
    pub ids: IdGen,
    #[serde(default)]
    pub audit: AuditLog,
}

impl State {
    /// Builds the state a seed describes; `now` (unix seconds) stamps the users' `created`.
    pub fn from_seed(seed: &Seed, now: i64) -> Result<Self, Error> {
        check_integrations(&seed.integrations)?;
        let mut ids = IdGen::new(seed.id_seed);
        let mut phones: Vec<Phone> = Vec::new();
        for p in &seed.phones {
            if phones.iter().any(|q| q.number == p.number) {
                return Err(Error::Seed(format!("phone `{}` is seeded twice", p.number)));
            }
            phones.push(Phone {
                phone_id: ids.phone_id(),
                number: p.number.clone(),
                name: p.name.clone(),
                extension: String::new(),
                kind: p.kind,
                platform: p.platform.clone(),
                activated: p.activated,
            });
        }
        let mut users: Vec<User> = Vec::new();
        for u in &seed.users {
            if users.iter().any(|v| v.username == u.username) {
                return Err(Error::Seed(format!("user `{}` is seeded twice", u.username)));
            }
            let mut phone_ids = Vec::new();
            for number in &u.phones {
                let phone = phones.iter().find(|p| &p.number == number).ok_or_else(|| {
                    Error::Seed(format!("user `{}` names phone `{number}`, which is not in `phones`", u.username))
                })?;
                phone_ids.push(phone.phone_id.clone());
            }
            users.push(User {
                user_id: ids.user_id(),
                username: u.username.clone(),
                realname: u.realname.clone(),
                email: u.email.clone(),
                firstname: String::new(),
                lastname: String::new(),
                notes: String::new(),
                status: u.status,
                created: now,
                last_login: None,
                phones: phone_ids,
                push: u.push,
                push_delay_ms: u.push_delay_ms,
            });
        }
        Ok(State {
            integrations: seed.integrations.clone(),
            users,
            phones,
            pushes: BTreeMap::new(),
            messages: Vec::new(),
            new_user_policy: seed.new_user_policy,
            ids,
            audit: AuditLog::default(),
        })
    }

    /// Reads a state file written by [`State::save`].
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read(path).map_err(|source| Error::Read { path: path.into(), source })?;
        let state: State = serde_json::from_slice(&text).map_err(|source| Error::Parse {
            path: path.into(),
            what: "state",
            source,
        })?;
        check_integrations(&state.integrations)?;
        Ok(state)
    }

    /// Writes the state as pretty JSON, through a temporary file so a crash never leaves half a file.
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        let write_err = |source| Error::Write { path: path.into(), source };
        let text = serde_json::to_vec_pretty(self).map_err(|e| write_err(std::io::Error::other(e)))?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).map_err(write_err)?;
        std::fs::rename(&tmp, path).map_err(write_err)
    }

    /// The keys the verifier accepts.
    pub fn keyring(&self) -> Keyring {
        let mut ring = Keyring::default();
        for i in &self.integrations {
            ring.insert(i.ikey.clone(), i.kind, i.skey.clone());
        }
        ring
    }

    /// The integration of a kind with this name, or the first of that kind.
    pub fn integration(&self, kind: Kind) -> Option<&IntegrationSeed> {
        self.integrations.iter().find(|i| i.kind == kind)
    }

    pub fn user(&self, user_id: &str) -> Option<&User> {
        self.users.iter().find(|u| u.user_id == user_id)
    }

    pub fn user_by_name(&self, username: &str) -> Option<&User> {
        self.users.iter().find(|u| u.username == username)
    }

    pub fn phone(&self, phone_id: &str) -> Option<&Phone> {
        self.phones.iter().find(|p| p.phone_id == phone_id)
    }

    /// Phones compare by digits, so `+1 555 555 0100` finds `+15555550100`.
    pub fn phone_by_number(&self, number: &str) -> Option<&Phone> {
        let want = normalise_number(number);
        self.phones.iter().find(|p| !want.is_empty() && normalise_number(&p.number) == want)
    }

    /// The users a phone is attached to.
    pub fn users_of(&self, phone_id: &str) -> impl Iterator<Item = &User> {
        self.users.iter().filter(move |u| u.phones.iter().any(|p| p == phone_id))
    }
}

/// Keeps the digits of a number, which is how two spellings of one number are compared.
pub fn normalise_number(number: &str) -> String {
    number.chars().filter(char::is_ascii_digit).collect()
}

fn check_integrations(integrations: &[IntegrationSeed]) -> Result<(), Error> {
    let mut seen = std::collections::BTreeSet::new();
    for i in integrations {
        if !seen.insert(i.ikey.as_str()) {
            return Err(Error::Seed(format!("integration key `{}` is seeded twice", i.ikey)));
        }
        if i.skey.expose().is_empty() {
            return Err(Error::Seed(format!("integration `{}` has an empty secret key", i.name)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_seed_builds_reproducible_ids() {
        let a = State::from_seed(&Seed::demo(), 0).expect("seed");
        let b = State::from_seed(&Seed::demo(), 0).expect("seed");
        assert_eq!(a, b);
        let alice = a.user_by_name("alice").expect("alice");
        assert_eq!(alice.phones.len(), 1);
        assert!(a.phone_by_number("+1 (555) 555-0100").is_some());
    }

    #[test]
    fn seed_mistakes_are_reported() {
        let mut seed = Seed::demo();
        seed.users[0].phones.push("+19999999999".into());
        let err = State::from_seed(&seed, 0).unwrap_err().to_string();
        assert!(err.contains("+19999999999"), "{err}");
    }
}
