//! The seed: integrations, users and phones a simulator starts from, and a demo seed.

use serde::{Deserialize, Serialize};

use crate::keys::{Kind, SecretKey};
use crate::model::{PhoneType, PushBehaviour, UserStatus, default_push_delay_ms};

/// What a fresh simulator holds. Read from JSON by `--seed FILE`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    /// The API applications whose keys the simulator accepts.
    pub integrations: Vec<IntegrationSeed>,
    /// Users, each with the numbers of its phones.
    #[serde(default)]
    pub users: Vec<UserSeed>,
    /// Phones, attached or not.
    #[serde(default)]
    pub phones: Vec<PhoneSeed>,
    /// What preauth answers for a username Duo does not know.
    #[serde(default)]
    pub new_user_policy: NewUserPolicy,
    /// Seeds the id generator so ids repeat from run to run.
    #[serde(default = "default_id_seed")]
    pub id_seed: u64,
    /// Groups, each with its members' usernames.
    #[serde(default)]
    pub groups: Vec<GroupSeed>,
    /// Hardware tokens, each assigned to a username or to nobody.
    #[serde(default)]
    pub tokens: Vec<TokenSeed>,
    /// Directory syncs and the users their directories hold (`syncuser`).
    #[serde(default)]
    pub directories: Vec<crate::helpdesk::Directory>,
    /// Authentications before the simulator started, for the v2 authentication log.
    #[serde(default)]
    pub auth_log: Vec<AuthLogSeed>,
}

/// A seeded group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSeed {
    pub name: String,
    #[serde(default)]
    pub desc: String,
    /// Usernames of `users`.
    #[serde(default)]
    pub members: Vec<String>,
}

/// A seeded hardware token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSeed {
    /// `h6`, `h8`, `t6`, `t8`, `yk`, `d1`.
    #[serde(rename = "type")]
    pub kind: String,
    pub serial: String,
    /// The username it is assigned to.
    #[serde(default)]
    pub user: Option<String>,
    /// The OATH secret (hex) of a HOTP or TOTP token, so that `resync` can check codes.
    #[serde(default)]
    pub secret: Option<String>,
}

/// A seeded authentication: `ago_secs` before the simulator's start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthLogSeed {
    pub username: String,
    pub ago_secs: u64,
    /// `success`, `denied` or `fraud`.
    #[serde(default = "default_auth_result")]
    pub result: String,
    #[serde(default = "default_auth_reason")]
    pub reason: String,
    #[serde(default = "default_auth_factor")]
    pub factor: String,
}

fn default_auth_result() -> String {
    "success".into()
}

fn default_auth_reason() -> String {
    "user_approved".into()
}

fn default_auth_factor() -> String {
    "duo_push".into()
}

fn default_id_seed() -> u64 {
    1
}

/// An Admin or Auth API application.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrationSeed {
    /// The name the integrations file gives it (`duo_admin`).
    pub name: String,
    /// Which API it may call.
    pub kind: Kind,
    /// Integration key: `DI` + 18 upper-case letters or digits.
    pub ikey: String,
    /// Secret key (40 characters at Duo).
    pub skey: SecretKey,
}

/// A seeded user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSeed {
    pub username: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub realname: String,
    #[serde(default)]
    pub status: UserStatus,
    /// Numbers of phones from `phones`, attached in this order.
    #[serde(default)]
    pub phones: Vec<String>,
    /// How the user answers a push.
    #[serde(default)]
    pub push: PushBehaviour,
    /// How long (sim ms) the user takes to answer; at or past the push expiry the push expires
    /// unanswered. Ignored for `timeout`, which never answers.
    #[serde(default = "default_push_delay_ms")]
    pub push_delay_ms: u64,
}

/// A seeded phone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhoneSeed {
    /// E.164, e.g. `+15555550100`.
    pub number: String,
    #[serde(default)]
    pub name: String,
    #[serde(rename = "type", default)]
    pub kind: PhoneType,
    #[serde(default = "default_platform")]
    pub platform: String,
    /// Whether Duo Mobile is activated on it (needed for push).
    #[serde(default = "default_true")]
    pub activated: bool,
}

fn default_platform() -> String {
    "google android".to_string()
}

fn default_true() -> bool {
    true
}

/// Preauth's answer for an unknown username (Duo's "new user policy").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum NewUserPolicy {
    /// `enroll`: the user may enrol.
    #[default]
    Enroll,
    /// `deny`.
    Deny,
    /// `allow` without a second factor.
    Allow,
}

/// The demo integration keys, fixed so docs and examples can name them.
pub const DEMO_ADMIN_IKEY: &str = "DISIMADMIN0000000001";
/// The demo Auth API integration key.
pub const DEMO_AUTH_IKEY: &str = "DISIMAUTH00000000001";

impl Seed {
    /// A small, deterministic world: one Admin and one Auth integration, and a user for every
    /// preauth answer and push behaviour.
    pub fn demo() -> Self {
        let integration = |name: &str, kind, ikey: &str, skey: &str| IntegrationSeed {
            name: name.to_string(),
            kind,
            ikey: ikey.to_string(),
            skey: SecretKey::new(skey),
        };
        Seed {
            integrations: vec![
                integration("duo_admin", Kind::DuoAdmin, DEMO_ADMIN_IKEY, "simadminsecretkey0000000000000000000000a"),
                integration("duo_auth", Kind::DuoAuth, DEMO_AUTH_IKEY, "simauthsecretkey00000000000000000000000b"),
            ],
            users: demo_users(),
            phones: demo_phones(),
            new_user_policy: NewUserPolicy::Enroll,
            id_seed: 1,
            groups: demo_groups(),
            tokens: demo_tokens(),
            directories: demo_directories(),
            auth_log: demo_auth_log(),
        }
    }
}

/// Groups: alice is in `VPN Users`; `Contractors` is empty.
fn demo_groups() -> Vec<GroupSeed> {
    let group = |name: &str, desc: &str, members: &[&str]| GroupSeed {
        name: name.into(),
        desc: desc.into(),
        members: members.iter().map(|m| m.to_string()).collect(),
    };
    vec![
        group("VPN Users", "may use the VPN", &["alice"]),
        group("Contractors", "", &[]),
        group("Help Desk", "", &["henry"]),
    ]
}

/// The OATH secret of RFC 4226's test vectors (ASCII `12345678901234567890`), so that a test
/// can resync the demo's HOTP token with the RFC's published codes.
pub const DEMO_OATH_SECRET: &str = "3132333435363738393031323334353637383930";

/// Tokens: a HOTP token nobody holds, a YubiKey of bob's, a TOTP token of carol's (the OATH
/// ones with [`DEMO_OATH_SECRET`]).
fn demo_tokens() -> Vec<TokenSeed> {
    let token = |kind: &str, serial: &str, user: Option<&str>| TokenSeed {
        kind: kind.into(),
        serial: serial.into(),
        user: user.map(str::to_string),
        secret: (kind != "yk").then(|| DEMO_OATH_SECRET.to_string()),
    };
    vec![token("h6", "100001", None), token("yk", "200002", Some("bob")), token("t6", "300003", Some("carol"))]
}

/// One directory: alice with a new email, grace as Duo has her, and zoe, whom Duo does not have yet.
fn demo_directories() -> Vec<crate::helpdesk::Directory> {
    let user = |name: &str, email: &str, realname: &str| crate::helpdesk::DirectoryUser {
        username: name.into(),
        email: email.into(),
        realname: realname.into(),
    };
    vec![crate::helpdesk::Directory {
        directory_key: "DDSIMDIRECTORY000001".into(),
        users: vec![
            user("alice", "alice.example@example.com", "Alice Example"),
            user("grace", "grace@example.com", "Grace Example"),
            user("zoe", "zoe@example.com", "Zoe Example"),
        ],
    }]
}

/// Alice's last day: three authentications, the newest an hour ago; bob denied one yesterday.
fn demo_auth_log() -> Vec<AuthLogSeed> {
    let entry = |username: &str, ago_secs: u64, result: &str, reason: &str| AuthLogSeed {
        username: username.into(),
        ago_secs,
        result: result.into(),
        reason: reason.into(),
        factor: default_auth_factor(),
    };
    vec![
        entry("alice", 3_600, "success", "user_approved"),
        entry("alice", 7_200, "denied", "user_denied"),
        entry("alice", 10_800, "success", "user_approved"),
        entry("bob", 86_000, "denied", "user_denied"),
    ]
}

fn demo_users() -> Vec<UserSeed> {
    let user = |name: &str, status, phones: &[&str], push, delay| UserSeed {
        username: name.to_string(),
        email: format!("{name}@example.com"),
        realname: format!("{}{} Example", name[..1].to_ascii_uppercase(), &name[1..]),
        status,
        phones: phones.iter().map(|p| p.to_string()).collect(),
        push,
        push_delay_ms: delay,
    };
    use PushBehaviour::{Approve, Deny, Fraud, Timeout};
    use UserStatus::{Active, Bypass, Disabled, LockedOut};
    // Everyone who answers takes the default few seconds of sim time; carol never answers, so
    // her pushes expire (`timeout`) at the push expiry.
    let delay = default_push_delay_ms();
    vec![
        user("alice", Active, &["+15555550100"], Approve, delay),
        user("bob", Active, &["+15555550101"], Deny, delay),
        user("carol", Active, &["+15555550102"], Timeout, delay),
        user("dave", Active, &["+15555550103"], Fraud, delay),
        user("erin", Bypass, &[], Approve, delay),
        user("frank", Disabled, &["+15555550105"], Approve, delay),
        user("grace", Active, &[], Approve, delay),
        user("henry", Active, &["+15555550104"], Approve, delay),
        user("ivan", LockedOut, &["+15555550106"], Approve, delay),
    ]
}

fn demo_phones() -> Vec<PhoneSeed> {
    let phone = |number: &str, name: &str, kind, platform: &str| PhoneSeed {
        number: number.to_string(),
        name: name.to_string(),
        kind,
        platform: platform.to_string(),
        activated: kind == PhoneType::Mobile,
    };
    vec![
        phone("+15555550100", "Alice's Pixel", PhoneType::Mobile, "google android"),
        phone("+15555550101", "Bob's iPhone", PhoneType::Mobile, "apple ios"),
        phone("+15555550102", "Carol's iPhone", PhoneType::Mobile, "apple ios"),
        phone("+15555550103", "Dave's Pixel", PhoneType::Mobile, "google android"),
        phone("+15555550104", "Henry's desk", PhoneType::Landline, "unknown"),
        phone("+15555550105", "Frank's Pixel", PhoneType::Mobile, "google android"),
        phone("+15555550106", "Ivan's iPhone", PhoneType::Mobile, "apple ios"),
        phone("+15555550199", "Spare Android", PhoneType::Mobile, "google android"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_keys_have_duo_shapes() {
        let seed = Seed::demo();
        for integration in &seed.integrations {
            assert_eq!(integration.ikey.len(), 20);
            assert!(integration.ikey.starts_with("DI"));
            assert!(integration.ikey.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()));
            assert_eq!(integration.skey.expose().len(), 40);
        }
        assert!(!format!("{seed:?}").contains("secretkey"));
    }

    #[test]
    fn seed_round_trips_through_json() {
        let seed = Seed::demo();
        let text = serde_json::to_string(&seed).expect("serialise");
        assert_eq!(serde_json::from_str::<Seed>(&text).expect("parse"), seed);
    }
}
