//! Duo's objects as the simulator stores them, and how each renders in a response.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A user's status, spelled as Duo spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum UserStatus {
    /// Must authenticate.
    #[default]
    Active,
    /// Allowed without a second factor.
    Bypass,
    /// Denied.
    Disabled,
    /// Denied after too many failures.
    #[serde(rename = "locked out")]
    LockedOut,
}

impl UserStatus {
    /// Duo's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Bypass => "bypass",
            UserStatus::Disabled => "disabled",
            UserStatus::LockedOut => "locked out",
        }
    }

    /// The statuses an Admin API call may set (`locked out` is Duo's to set).
    pub fn parse_settable(text: &str) -> Option<Self> {
        match text {
            "active" => Some(UserStatus::Active),
            "bypass" => Some(UserStatus::Bypass),
            "disabled" => Some(UserStatus::Disabled),
            _ => None,
        }
    }
}

/// How a seeded user answers a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PushBehaviour {
    /// Taps approve after the delay.
    #[default]
    Approve,
    /// Taps deny after the delay.
    Deny,
    /// Never answers; the push expires (`timeout`) at the push expiry.
    Timeout,
    /// Reports it as fraud after the delay.
    Fraud,
}

/// A phone's type; seeds and calls write it lower-case, responses capitalise it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PhoneType {
    /// A smartphone or feature phone.
    #[default]
    Mobile,
    /// A fixed line: voice calls only.
    Landline,
    /// Not set.
    Unknown,
}

impl PhoneType {
    /// Parses the `type` param, case-insensitively.
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "mobile" => Some(PhoneType::Mobile),
            "landline" => Some(PhoneType::Landline),
            "unknown" | "" => Some(PhoneType::Unknown),
            _ => None,
        }
    }

    fn display(self) -> &'static str {
        match self {
            PhoneType::Mobile => "Mobile",
            PhoneType::Landline => "Landline",
            PhoneType::Unknown => "Unknown",
        }
    }
}

/// Platforms Duo accepts for `platform`, lower-case.
pub const PLATFORMS: &[&str] = &[
    "unknown",
    "google android",
    "apple ios",
    "windows phone",
    "rim blackberry",
    "java j2me",
    "palm webos",
    "symbian os",
    "windows mobile",
    "generic smartphone",
];

/// Platforms that run Duo Mobile and so can receive a push once activated.
const PUSH_PLATFORMS: &[&str] = &["google android", "apple ios", "windows phone"];

/// A user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub user_id: String,
    pub username: String,
    #[serde(default)]
    pub realname: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub firstname: String,
    #[serde(default)]
    pub lastname: String,
    #[serde(default)]
    pub notes: String,
    #[serde(default)]
    pub status: UserStatus,
    pub created: i64,
    #[serde(default)]
    pub last_login: Option<i64>,
    /// Ids of the phones associated with the user, in association order.
    #[serde(default)]
    pub phones: Vec<String>,
    #[serde(default)]
    pub push: PushBehaviour,
    #[serde(default = "default_push_delay_ms")]
    pub push_delay_ms: u64,
}

/// How long (sim time) a user takes to answer a push when the seed does not say: a few seconds,
/// as a person reaching for their phone does. A delay at or past the push expiry never answers.
pub fn default_push_delay_ms() -> u64 {
    5_000
}

/// A phone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phone {
    pub phone_id: String,
    #[serde(default)]
    pub number: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub extension: String,
    #[serde(rename = "type", default)]
    pub kind: PhoneType,
    #[serde(default = "unknown_platform")]
    pub platform: String,
    #[serde(default)]
    pub activated: bool,
    /// Seconds Duo waits before speaking in a voice call (`predelay`), and after (`postdelay`).
    #[serde(default)]
    pub predelay: Option<u64>,
    #[serde(default)]
    pub postdelay: Option<u64>,
    /// Whether a batch of SMS passcodes was sent to it (`send_sms_passcodes`).
    #[serde(default)]
    pub sms_passcodes_sent: bool,
}

fn unknown_platform() -> String {
    "unknown".to_string()
}

impl Phone {
    /// What the phone can do, derived so it can never disagree with type, platform and activation.
    pub fn capabilities(&self) -> Vec<&'static str> {
        match self.kind {
            PhoneType::Landline => vec!["phone"],
            PhoneType::Unknown => vec![],
            PhoneType::Mobile if self.can_push() => {
                vec!["auto", "push", "sms", "phone", "mobile_otp"]
            }
            PhoneType::Mobile => vec!["auto", "sms", "phone"],
        }
    }

    /// Whether a push can reach this phone.
    pub fn can_push(&self) -> bool {
        self.kind == PhoneType::Mobile && self.activated && PUSH_PLATFORMS.contains(&self.platform.as_str())
    }

    /// The phone as the Admin API shows it, without its users.
    pub fn render_bare(&self) -> Value {
        json!({
            "phone_id": self.phone_id,
            "number": self.number,
            "name": self.name,
            "extension": self.extension,
            "type": self.kind.display(),
            "platform": display_platform(&self.platform),
            "activated": self.activated,
            "capabilities": self.capabilities(),
            "sms_passcodes_sent": self.sms_passcodes_sent,
            "postdelay": self.postdelay,
            "predelay": self.predelay,
        })
    }

    /// The device entry of a preauth response.
    pub fn render_device(&self) -> Value {
        let last4: String = self.number.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
        let masked = format!("XXX-XXX-{last4}");
        let display = if self.name.is_empty() {
            format!("{} ({masked})", self.kind.display())
        } else {
            format!("{} ({masked})", self.name)
        };
        json!({
            "device": self.phone_id,
            "type": "phone",
            "number": masked,
            "name": self.name,
            "capabilities": self.capabilities(),
            "display_name": display,
        })
    }
}

/// Duo's spelling of a platform in responses (`Google Android`, `Apple iOS`).
fn display_platform(platform: &str) -> &'static str {
    match platform {
        "google android" => "Google Android",
        "apple ios" => "Apple iOS",
        "windows phone" => "Windows Phone",
        "rim blackberry" => "RIM BlackBerry",
        "java j2me" => "Java J2ME",
        "palm webos" => "Palm WebOS",
        "symbian os" => "Symbian OS",
        "windows mobile" => "Windows Mobile",
        "generic smartphone" => "Generic Smartphone",
        _ => "Unknown",
    }
}

impl User {
    /// A new active user without phones, created at `created` (unix seconds).
    pub fn new(user_id: String, username: String, created: i64) -> Self {
        User {
            user_id,
            username,
            realname: String::new(),
            email: String::new(),
            firstname: String::new(),
            lastname: String::new(),
            notes: String::new(),
            status: UserStatus::Active,
            created,
            last_login: None,
            phones: Vec::new(),
            push: PushBehaviour::default(),
            push_delay_ms: default_push_delay_ms(),
        }
    }

    /// The user as the Admin API shows it, without its phones.
    pub fn render_bare(&self) -> Value {
        json!({
            "user_id": self.user_id,
            "username": self.username,
            "realname": self.realname,
            "email": self.email,
            "firstname": self.firstname,
            "lastname": self.lastname,
            "notes": self.notes,
            "status": self.status.as_str(),
            "is_enrolled": !self.phones.is_empty(),
            "created": self.created,
            "last_login": self.last_login,
            "alias1": null, "alias2": null, "alias3": null, "alias4": null,
            "aliases": {},
            "groups": [],
            "tokens": [],
            "webauthncredentials": [],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phone(kind: PhoneType, platform: &str, activated: bool) -> Phone {
        Phone {
            phone_id: "DP1".into(),
            number: "+15555550100".into(),
            name: String::new(),
            extension: String::new(),
            kind,
            platform: platform.into(),
            activated,
            predelay: None,
            postdelay: None,
            sms_passcodes_sent: false,
        }
    }

    #[test]
    fn only_activated_smartphones_take_a_push() {
        assert!(phone(PhoneType::Mobile, "apple ios", true).can_push());
        assert!(!phone(PhoneType::Mobile, "apple ios", false).can_push());
        assert!(!phone(PhoneType::Mobile, "java j2me", true).can_push());
        assert_eq!(phone(PhoneType::Landline, "unknown", true).capabilities(), ["phone"]);
    }

    #[test]
    fn devices_mask_the_number() {
        let device = phone(PhoneType::Mobile, "google android", true).render_device();
        assert_eq!(device["number"], "XXX-XXX-0100");
        assert_eq!(device["display_name"], "Mobile (XXX-XXX-0100)");
        assert_eq!(phone(PhoneType::Mobile, "google android", true).render_bare()["platform"], "Google Android");
    }
}
