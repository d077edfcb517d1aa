//! The simulator's whole state: what a seed becomes, what the state file holds.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::audit::AuditLog;
use crate::error::Error;
use crate::ids::IdGen;
use crate::index::Index;
pub use crate::index::normalise_number;
use crate::keys::{Keyring, Kind};
use crate::links::{Activation, Enrollment};
use crate::model::{Phone, User};
use crate::push::Push;
use crate::seed::{IntegrationSeed, NewUserPolicy, Seed};

/// Users, phones, pushes, enrolments and the audit log. Serialised as the state file.
///
/// `users` and `phones` are public to read; change them through the methods below, which keep
/// the lookup index right (or call [`State::reindex`] after changing them directly).
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
    /// The newest activation link sent to each phone and not yet followed, by phone id.
    #[serde(default)]
    pub activations: BTreeMap<String, Activation>,
    /// Enrolment links sent and not yet followed, by username.
    #[serde(default)]
    pub enrollments: BTreeMap<String, Enrollment>,
    /// Groups, tokens, directories, bypass codes, verification pushes, the seeded auth log.
    #[serde(default)]
    pub helpdesk: crate::helpdesk::Helpdesk,
    /// The sim time when this copy was taken; a simulator started from it never runs earlier.
    #[serde(default)]
    pub clock_ms: i64,
    #[serde(skip)]
    index: Index,
}

impl State {
    /// Builds the state a seed describes; `now` (unix seconds) stamps the users' `created`.
    pub fn from_seed(seed: &Seed, now: i64) -> Result<Self, Error> {
        check_integrations(&seed.integrations)?;
        let mut state = State {
            integrations: seed.integrations.clone(),
            users: Vec::new(),
            phones: Vec::new(),
            pushes: BTreeMap::new(),
            messages: Vec::new(),
            new_user_policy: seed.new_user_policy,
            ids: IdGen::new(seed.id_seed),
            audit: AuditLog::default(),
            activations: BTreeMap::new(),
            enrollments: BTreeMap::new(),
            helpdesk: crate::helpdesk::Helpdesk::default(),
            clock_ms: 0,
            index: Index::default(),
        };
        for p in &seed.phones {
            if state.phone_by_number(&p.number).is_some() {
                return Err(Error::Seed(format!("phone `{}` is seeded twice", p.number)));
            }
            let phone = Phone {
                phone_id: state.ids.phone_id(),
                number: p.number.clone(),
                name: p.name.clone(),
                extension: String::new(),
                kind: p.kind,
                platform: p.platform.clone(),
                activated: p.activated,
                predelay: None,
                postdelay: None,
                sms_passcodes_sent: false,
            };
            state.add_phone(phone);
        }
        for u in &seed.users {
            if state.user_by_name(&u.username).is_some() {
                return Err(Error::Seed(format!("user `{}` is seeded twice", u.username)));
            }
            let mut phone_ids = Vec::new();
            for number in &u.phones {
                let phone = state.phone_by_number(number).ok_or_else(|| {
                    Error::Seed(format!("user `{}` names phone `{number}`, which is not in `phones`", u.username))
                })?;
                phone_ids.push(phone.phone_id.clone());
            }
            let mut user = User::new(state.ids.user_id(), u.username.clone(), now);
            user.realname = u.realname.clone();
            user.email = u.email.clone();
            user.status = u.status;
            user.phones = phone_ids;
            user.push = u.push;
            user.push_delay_ms = u.push_delay_ms;
            state.add_user(user);
        }
        seed_helpdesk(&mut state, seed, now)?;
        Ok(state)
    }

    /// Reads a state file written by [`State::save`].
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read(path).map_err(|source| Error::Read { path: path.into(), source })?;
        let state: State = serde_json::from_slice(&text).map_err(|source| Error::Parse {
            path: path.into(),
            what: "state",
            source,
        })?;
        let mut state = state;
        check_integrations(&state.integrations)?;
        state.reindex();
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

    /// Rebuilds the lookup index after `users` or `phones` were changed directly.
    pub fn reindex(&mut self) {
        self.index = Index::build(&self.users, &self.phones);
    }

    pub fn user(&self, user_id: &str) -> Option<&User> {
        self.index.user(user_id).and_then(|pos| self.users.get(pos))
    }

    /// The position of a user in `users` (creation order).
    pub fn user_position(&self, user_id: &str) -> Option<usize> {
        self.index.user(user_id)
    }

    pub fn user_by_name(&self, username: &str) -> Option<&User> {
        self.index.user_by_name(username).and_then(|pos| self.users.get(pos))
    }

    /// The users with this email (compared case-insensitively), in creation order.
    pub fn users_by_email(&self, email: &str) -> impl Iterator<Item = &User> {
        self.index.users_by_email(email).iter().filter_map(|&pos| self.users.get(pos))
    }

    pub fn phone(&self, phone_id: &str) -> Option<&Phone> {
        self.index.phone(phone_id).and_then(|pos| self.phones.get(pos))
    }

    /// Phones compare by digits, so `+1 555 555 0100` finds `+15555550100`.
    pub fn phone_by_number(&self, number: &str) -> Option<&Phone> {
        self.index.phone_by_number(number).and_then(|pos| self.phones.get(pos))
    }

    /// The users a phone is attached to, in creation order.
    pub fn users_of(&self, phone_id: &str) -> impl Iterator<Item = &User> {
        self.index.users_of(phone_id).iter().filter_map(|&pos| self.users.get(pos))
    }

    /// Adds a user at the end of the creation order.
    pub fn add_user(&mut self, user: User) {
        let pos = self.users.len();
        self.index.add_user(pos, &user);
        self.users.push(user);
    }

    /// Replaces the user with `user_id` by `after` (same id; phones unchanged). False if unknown.
    pub fn replace_user(&mut self, user_id: &str, after: User) -> bool {
        let Some(pos) = self.index.user(user_id) else { return false };
        let Some(slot) = self.users.get_mut(pos) else { return false };
        let before = std::mem::replace(slot, after);
        let after = &self.users[pos];
        self.index.rename_user(pos, &before, after);
        true
    }

    /// Removes a user (its phones stay). O(n): later positions shift, so the index is rebuilt.
    pub fn remove_user(&mut self, user_id: &str) -> Option<User> {
        let pos = self.index.user(user_id)?;
        let user = self.users.remove(pos);
        self.reindex();
        Some(user)
    }

    pub fn add_phone(&mut self, phone: Phone) {
        let pos = self.phones.len();
        self.index.add_phone(pos, &phone);
        self.phones.push(phone);
    }

    /// A phone to change in place; its id and number must stay as they are (they are indexed).
    pub fn phone_mut(&mut self, phone_id: &str) -> Option<&mut Phone> {
        let pos = self.index.phone(phone_id)?;
        self.phones.get_mut(pos)
    }

    /// Removes a phone and detaches it from its users. O(n), like [`State::remove_user`].
    pub fn remove_phone(&mut self, phone_id: &str) -> Option<Phone> {
        let pos = self.index.phone(phone_id)?;
        let users: Vec<usize> = self.index.users_of(phone_id).to_vec();
        for user_pos in users {
            if let Some(user) = self.users.get_mut(user_pos) {
                user.phones.retain(|p| p != phone_id);
            }
        }
        let phone = self.phones.remove(pos);
        self.activations.remove(phone_id);
        self.reindex();
        Some(phone)
    }

    /// Associates a phone with a user (both known; the caller checks limits and repeats).
    pub fn associate(&mut self, user_id: &str, phone_id: &str) {
        let Some(pos) = self.index.user(user_id) else { return };
        if let Some(user) = self.users.get_mut(pos) {
            user.phones.push(phone_id.to_string());
            self.index.associate(pos, phone_id);
        }
    }

    /// Detaches a phone from a user; whether it was attached.
    pub fn disassociate(&mut self, user_id: &str, phone_id: &str) -> bool {
        let Some(pos) = self.index.user(user_id) else { return false };
        let Some(user) = self.users.get_mut(pos) else { return false };
        let before = user.phones.len();
        user.phones.retain(|p| p != phone_id);
        let removed = user.phones.len() != before;
        if removed {
            self.index.disassociate(pos, phone_id);
        }
        removed
    }

    /// Applies what has fallen due by `now_ms` (sim time): activation links that follow
    /// themselves under `--activate-after`.
    pub fn settle(&mut self, now_ms: i64) {
        crate::links::settle(self, now_ms);
    }
}

/// The seed's groups, tokens, directories and past authentications, by usernames of its users.
fn seed_helpdesk(state: &mut State, seed: &Seed, now: i64) -> Result<(), Error> {
    use crate::helpdesk::{AuthLogEntry, Group, Token};
    let user_id = |state: &State, username: &str, what: &str| {
        state
            .user_by_name(username)
            .map(|u| u.user_id.clone())
            .ok_or_else(|| Error::Seed(format!("{what} names user `{username}`, which is not in `users`")))
    };
    for g in &seed.groups {
        // Two groups may share a name (groups synced from two directories can).
        let members =
            g.members.iter().map(|m| user_id(state, m, &format!("group `{}`", g.name))).collect::<Result<_, _>>()?;
        let group_id = state.ids.token("DG", 18);
        let (name, desc) = (g.name.clone(), g.desc.clone());
        state.helpdesk.groups.push(Group { group_id, name, desc, members, status: "active".into() });
    }
    for t in &seed.tokens {
        if !["h6", "h8", "t6", "t8", "yk", "d1"].contains(&t.kind.as_str()) {
            return Err(Error::Seed(format!("token `{}` has an unknown type `{}`", t.serial, t.kind)));
        }
        let holder = t.user.as_deref().map(|u| user_id(state, u, &format!("token `{}`", t.serial))).transpose()?;
        let token_id = state.ids.token("DH", 18);
        if let Some(secret) = &t.secret
            && !crate::manage::is_hex(secret)
        {
            return Err(Error::Seed(format!("token `{}` has a secret that is not hex", t.serial)));
        }
        let totp_step = t.kind.starts_with('t').then_some(30);
        state.helpdesk.tokens.push(Token {
            token_id,
            kind: t.kind.clone(),
            serial: t.serial.clone(),
            user_id: holder,
            secret: t.secret.clone(),
            counter: 0,
            totp_step,
        });
    }
    state.helpdesk.directories = seed.directories.clone();
    for a in &seed.auth_log {
        let user = user_id(state, &a.username, "an `auth_log` entry")?;
        let ago = i64::try_from(a.ago_secs).unwrap_or(i64::MAX);
        state.helpdesk.auth_log.push(AuthLogEntry {
            txid: state.ids.txid(),
            user_id: user,
            username: a.username.clone(),
            timestamp_ms: now.saturating_sub(ago).saturating_mul(1000),
            result: a.result.clone(),
            reason: a.reason.clone(),
            factor: a.factor.clone(),
        });
    }
    Ok(())
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

    /// Every indexed lookup agrees with a scan of the vectors, after each kind of change.
    fn assert_index_agrees(state: &State) {
        for (pos, user) in state.users.iter().enumerate() {
            assert_eq!(state.user_position(&user.user_id), Some(pos));
            assert_eq!(state.user_by_name(&user.username).map(|u| &u.user_id), Some(&user.user_id));
            let by_email: Vec<&str> = state.users_by_email(&user.email).map(|u| u.user_id.as_str()).collect();
            let scanned: Vec<&str> = state
                .users
                .iter()
                .filter(|u| !u.email.is_empty() && u.email.eq_ignore_ascii_case(&user.email))
                .map(|u| u.user_id.as_str())
                .collect();
            assert_eq!(by_email, scanned, "{}", user.email);
        }
        for phone in &state.phones {
            assert_eq!(state.phone(&phone.phone_id).map(|p| &p.number), Some(&phone.number));
            let users: Vec<&str> = state.users_of(&phone.phone_id).map(|u| u.user_id.as_str()).collect();
            let scanned: Vec<&str> =
                state.users.iter().filter(|u| u.phones.contains(&phone.phone_id)).map(|u| u.user_id.as_str()).collect();
            assert_eq!(users, scanned, "{}", phone.phone_id);
        }
    }

    #[test]
    fn the_index_stays_right_through_every_change() {
        let mut state = State::from_seed(&Seed::demo(), 0).expect("seed");
        assert_index_agrees(&state);
        let spare = state.phone_by_number("+15555550199").expect("spare").phone_id.clone();
        let alice = state.user_by_name("alice").expect("alice").user_id.clone();
        let grace = state.user_by_name("grace").expect("grace").user_id.clone();
        state.associate(&grace, &spare);
        state.associate(&alice, &spare);
        assert_index_agrees(&state);
        let mut renamed = state.user(&alice).expect("alice").clone();
        renamed.username = "alicia".into();
        renamed.email = "GRACE@example.com".into();
        assert!(state.replace_user(&alice, renamed));
        assert!(state.user_by_name("alice").is_none());
        assert_eq!(state.users_by_email("grace@EXAMPLE.com").count(), 2);
        assert_index_agrees(&state);
        assert!(state.disassociate(&grace, &spare));
        assert!(!state.disassociate(&grace, &spare));
        state.remove_user("DUNOSUCHUSER000000000");
        let bob = state.user_by_name("bob").expect("bob").user_id.clone();
        assert!(state.remove_user(&bob).is_some());
        assert_index_agrees(&state);
        assert!(state.remove_phone(&spare).is_some());
        assert!(state.user(&alice).expect("alicia").phones.iter().all(|p| p != &spare));
        assert_index_agrees(&state);
        let mut fresh = User::new("DUFRESH00000000000000".into(), "fresh".into(), 0);
        fresh.email = "fresh@example.com".into();
        state.add_user(fresh);
        assert_index_agrees(&state);
    }

    #[test]
    fn a_state_file_from_before_links_and_the_clock_still_loads() {
        let state = State::from_seed(&Seed::demo(), 0).expect("seed");
        let mut old = serde_json::to_value(&state).expect("json");
        for key in ["activations", "enrollments", "clock_ms"] {
            old.as_object_mut().expect("object").remove(key);
        }
        let mut loaded: State = serde_json::from_value(old).expect("an older state file");
        loaded.reindex();
        assert_eq!(loaded, state);
        assert!(loaded.user_by_name("alice").is_some(), "the index is rebuilt");
    }

    #[test]
    fn seed_mistakes_are_reported() {
        let mut seed = Seed::demo();
        seed.users[0].phones.push("+19999999999".into());
        let err = State::from_seed(&seed, 0).unwrap_err().to_string();
        assert!(err.contains("+19999999999"), "{err}");
    }
}
