//! Duo's rules for a request, written once: the methods, which of them carry a body, where a
//! call's params go, the headers a call may not set, what Duo's error codes ask an
//! administrator to fix, what to look at in the Duo Admin Panel when a write's outcome is
//! unknown, and the percent-encoding of Duo's clients.
//!
//! The compile-time checks (`kinds::rest_call`), the run-time checks (`http::prepare`,
//! `kinds::rest_run`) and the signer (`duo::sign`) all read these, so that a flow refused by
//! `flowcat validate` and a request refused before sending are refused for the same reason.
//! The simulator keeps its own copy on purpose: it checks this one independently.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// The methods a `rest_call` may use (upper case).
pub const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE"];

/// Duo's official clients put the params in the body for exactly these methods, and in the
/// query for every other one. Expects the method upper-cased (`post` is a POST once upper-cased).
pub fn carries_body(method: &str) -> bool {
    matches!(method, "POST" | "PUT" | "PATCH")
}

/// Headers the transport and the integration decide, for every integration: a `Host` of the
/// call's choosing could route a signed request elsewhere.
const TRANSPORT_HEADERS: &[&str] =
    &["host", "authorization", "proxy-authorization", "content-length", "transfer-encoding", "connection", "te"];

/// Headers the Duo signature decides.
const SIGNED_HEADERS: &[&str] = &["date", "content-type"];

/// Who sets a header that a call may not set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reserved {
    /// The HTTP layer, for every integration.
    Transport,
    /// The Duo signature.
    Signature,
}

/// Whether a call may set header `name` (any case); `duo` for a Duo integration.
pub fn reserved_header(name: &str, duo: bool) -> Option<Reserved> {
    let lower = name.to_ascii_lowercase();
    if TRANSPORT_HEADERS.contains(&lower.as_str()) {
        Some(Reserved::Transport)
    } else if duo && SIGNED_HEADERS.contains(&lower.as_str()) {
        Some(Reserved::Signature)
    } else {
        None
    }
}

/// Where a Duo call's params are not: Duo signs a POST, PUT or PATCH's params as its body and
/// the others' as the query, so params on the other side are refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Misplaced {
    /// Query params on a method that carries a body.
    Query,
    /// A body on a method that does not carry one.
    Body,
}

/// The query/body rule for a Duo call of `method` (upper case).
pub fn misplaced_params(method: &str, has_query: bool, has_body: bool) -> Option<Misplaced> {
    match (carries_body(method), has_query, has_body) {
        (true, true, _) => Some(Misplaced::Query),
        (false, _, true) => Some(Misplaced::Body),
        _ => None,
    }
}

/// What to change when Duo refuses for a reason an administrator can fix; appended to the
/// node's error message (empty for other codes).
pub fn error_hint(code: u64) -> &'static str {
    match code {
        40102 => " — check the integration key (Duo Admin Panel → Applications → your application → Integration key)",
        40103 => " — check the secret key and the API hostname, and that this machine's clock is right",
        40301 => {
            " — the keys belong to another kind of application (Admin API keys used for the Auth API, or the reverse), or the application lacks the permission"
        }
        _ => "",
    }
}

/// Where a person sees in the Duo Admin Panel whether a write sent as `method path` with
/// `params` (Duo's params, every value a string) took effect, for the calls the catalog makes;
/// `None` for a call Duo's rules here do not know. `path` is the path as sent (ids in it).
pub fn check_by_hand(method: &str, path: &str, params: &[(String, String)]) -> Option<String> {
    let given = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let param = |name: &str| given(name).unwrap_or("(not sent)");
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let text = match (method.to_ascii_uppercase().as_str(), segments.as_slice()) {
        ("POST", ["admin", "v1", "phones"]) => match (given("number"), given("name")) {
            (Some(number), _) => {
                format!("Duo Admin Panel → Phones: search for {number}. If the phone is listed, it was created.")
            }
            // A tablet (or a phone created without a number): nothing to search for but its name.
            (None, Some(name)) => format!(
                "Duo Admin Panel → Phones: search for the name {name} (a {} without a number). If it is listed, it was created.",
                param("type")
            ),
            (None, None) => "Duo Admin Panel → Phones: the request named no number and no name; look for a phone \
                              without a number, attached to no user, created at the time of this run. If there is \
                              one, it was created."
                .to_owned(),
        },
        ("POST", ["admin", "v1", "users", user_id, "phones"]) => format!(
            "Duo Admin Panel → Phones: search for the phone {}, and see whether the user {user_id} is among its users. If so, the phone was associated.",
            param("phone_id")
        ),
        ("POST", ["admin", "v1", "phones", phone_id, "send_sms_activation"]) => format!(
            "Duo keeps no record of an activation SMS in the Admin Panel: ask the user of the phone {phone_id} (Duo Admin Panel → Phones → {phone_id}) whether an activation SMS arrived. A new one makes the link of the first stop working."
        ),
        ("POST", ["admin", "v1", "users", "enroll"]) => format!(
            "Duo Admin Panel → Users: search for {}. Duo shows a pending enrolment nowhere a read can reach: ask the owner of {} whether the enrolment email arrived. A second email sends a second link.",
            param("username"),
            param("email")
        ),
        ("POST", ["admin", "v1", "users"]) => {
            format!("Duo Admin Panel → Users: search for {}. If the user is listed, it was created.", param("username"))
        }
        ("POST", ["admin", "v1", "users", user_id]) => {
            let fields: Vec<String> = params.iter().map(|(k, v)| format!("{k} {v}")).collect();
            format!(
                "Duo Admin Panel → Users → the user {user_id}: if it shows {}, the change was made.",
                fields.join(", ")
            )
        }
        ("POST", ["auth", "v2", "auth"]) => {
            let who = params.iter().find(|(k, _)| k == "username" || k == "user_id").map_or("the user", |(_, v)| v);
            format!(
                "Duo Admin Panel → Reports → Authentication Log: look for a Duo Push to {who} at the time the run stopped, or ask the user whether a push arrived and how they answered. Another push prompts them again."
            )
        }
        _ => return None,
    };
    Some(text)
}

/// RFC 3986's unreserved characters: everything else is encoded.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// UTF-8 percent-encoding as Duo's clients do it: only `A-Z a-z 0-9 - _ . ~` stay, hex is upper
/// case, a space is `%20`. Used for the signed params line and for plain HTTP query strings.
pub fn encode(text: &str) -> String {
    utf8_percent_encode(text, UNRESERVED).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_keeps_only_unreserved_characters_with_upper_case_hex() {
        assert_eq!(encode("a b+c/é~"), "a%20b%2Bc%2F%C3%A9~");
        assert_eq!(encode("AZaz09-_.~"), "AZaz09-_.~");
        assert_eq!(encode("*'()!=&"), "%2A%27%28%29%21%3D%26");
    }

    #[test]
    fn methods_with_a_body_and_the_params_rule() {
        let with_body: Vec<&str> = METHODS.iter().copied().filter(|m| carries_body(m)).collect();
        assert_eq!(with_body, ["POST", "PUT", "PATCH"]);
        assert_eq!(misplaced_params("POST", true, false), Some(Misplaced::Query));
        assert_eq!(misplaced_params("GET", false, true), Some(Misplaced::Body));
        assert_eq!(misplaced_params("DELETE", true, false), None);
        assert_eq!(misplaced_params("PUT", false, true), None);
    }

    #[test]
    fn reserved_headers_by_integration() {
        assert_eq!(reserved_header("Host", false), Some(Reserved::Transport));
        assert_eq!(reserved_header("DATE", true), Some(Reserved::Signature));
        assert_eq!(reserved_header("date", false), None);
        assert_eq!(reserved_header("X-Duo-Extra", true), None);
    }

    #[test]
    fn what_to_check_by_hand_names_the_admin_panel_page_and_the_values_sent() {
        let p = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
        };
        let phone = check_by_hand("POST", "/admin/v1/phones", &p(&[("number", "+15555550142")])).expect("known");
        assert!(phone.starts_with("Duo Admin Panel → Phones: search for +15555550142."), "{phone}");
        let link = check_by_hand("post", "/admin/v1/users/DU1/phones", &p(&[("phone_id", "DP1")])).expect("known");
        assert!(link.contains("the phone DP1") && link.contains("the user DU1"), "{link}");
        let status = check_by_hand("POST", "/admin/v1/users/DU1", &p(&[("status", "disabled")])).expect("known");
        assert!(status.contains("the user DU1: if it shows status disabled"), "{status}");
        let push =
            check_by_hand("POST", "/auth/v2/auth", &p(&[("factor", "push"), ("username", "jdoe")])).expect("known");
        assert!(push.contains("Authentication Log: look for a Duo Push to jdoe"), "{push}");
        assert!(check_by_hand("POST", "/admin/v1/phones/DP1/send_sms_activation", &[]).is_some());
        assert!(check_by_hand("POST", "/admin/v1/users/enroll", &[]).expect("known").contains("search for (not sent)"));
        // A tablet has no number: it is searched for by name, never "search for ?".
        let tablet = check_by_hand("POST", "/admin/v1/phones", &p(&[("type", "tablet"), ("name", "Lobby iPad")]))
            .expect("known");
        assert!(tablet.contains("search for the name Lobby iPad (a tablet without a number)"), "{tablet}");
        let bare = check_by_hand("POST", "/admin/v1/phones", &[]).expect("known");
        assert!(bare.contains("without a number") && !bare.contains('?'), "{bare}");
        assert_eq!(check_by_hand("POST", "/admin/v1/groups", &[]), None);
        assert_eq!(check_by_hand("GET", "/admin/v1/phones", &[]), None);
    }

    #[test]
    fn hints_for_the_codes_an_administrator_fixes() {
        for code in [40102, 40103, 40301] {
            assert!(error_hint(code).starts_with(" — "), "{code}");
        }
        assert_eq!(error_hint(40002), "");
    }
}
