//! The Duo routes the simulator serves, as one table: method, path pattern, API and operation.

/// Which credentials a route wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// Admin API keys.
    Admin,
    /// Auth API keys.
    Auth,
    /// No signature (`/auth/v2/ping`).
    Public,
}

/// What a route does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Op {
    UsersList,
    UserGet,
    UserUpdate,
    UserDelete,
    UserCreate,
    UserEnroll,
    UserPhones,
    UserPhoneAssociate,
    UserPhoneDisassociate,
    PhonesList,
    PhoneGet,
    PhoneCreate,
    PhoneDelete,
    PhoneSmsActivation,
    // The help desk's calls (issue 15), in `helpdesk.rs`.
    BypassCodesCreate,
    BypassCodesList,
    GroupsList,
    UserGroups,
    UserGroupAdd,
    UserGroupRemove,
    TokensList,
    UserTokens,
    UserTokenAssign,
    UserTokenUnassign,
    DirectorySyncUser,
    PhoneActivationUrl,
    VerificationPushSend,
    VerificationPushResponse,
    AuthLogV2,
    // The rest of the families (issue 15), in `manage.rs`, `logs.rs` and `enroll.rs`.
    UserWebauthn,
    PhoneModify,
    PhoneSmsInstallation,
    PhoneSmsPasscodes,
    TokenCreate,
    TokenGet,
    TokenResync,
    TokenDelete,
    BypassCodesAll,
    BypassCodeGet,
    BypassCodeDelete,
    GroupCreate,
    GroupGetV1,
    GroupGetV2,
    GroupUsersV2,
    GroupUpdate,
    GroupDelete,
    AuthLogV1,
    AdminLogV1,
    TelephonyLogV1,
    TelephonyLogV2,
    OfflineEnrollmentLogV1,
    ActivityLogV2,
    Enroll,
    EnrollStatus,
    Ping,
    Check,
    Preauth,
    Auth,
    AuthStatus,
}

/// One row of the table.
#[derive(Debug)]
pub struct Route {
    /// `METHOD /path/{param}`: the name faults, stats and the audit log use.
    pub pattern: &'static str,
    pub api: Api,
    pub op: Op,
}

impl Route {
    /// The method half of the pattern.
    pub fn method(&self) -> &'static str {
        self.pattern.split_once(' ').map_or("", |(m, _)| m)
    }

    fn path(&self) -> &'static str {
        self.pattern.split_once(' ').map_or("", |(_, p)| p)
    }
}

/// Literal paths come before patterns that could also match them (`users/enroll` before
/// `users/{user_id}`), because the first match wins.
pub static ROUTES: &[Route] = &[
    Route { pattern: "GET /admin/v1/users", api: Api::Admin, op: Op::UsersList },
    Route { pattern: "POST /admin/v1/users", api: Api::Admin, op: Op::UserCreate },
    Route { pattern: "POST /admin/v1/users/enroll", api: Api::Admin, op: Op::UserEnroll },
    Route { pattern: "GET /admin/v1/users/{user_id}", api: Api::Admin, op: Op::UserGet },
    Route { pattern: "POST /admin/v1/users/{user_id}", api: Api::Admin, op: Op::UserUpdate },
    Route { pattern: "DELETE /admin/v1/users/{user_id}", api: Api::Admin, op: Op::UserDelete },
    Route { pattern: "GET /admin/v1/users/{user_id}/phones", api: Api::Admin, op: Op::UserPhones },
    Route { pattern: "POST /admin/v1/users/{user_id}/phones", api: Api::Admin, op: Op::UserPhoneAssociate },
    Route {
        pattern: "DELETE /admin/v1/users/{user_id}/phones/{phone_id}",
        api: Api::Admin,
        op: Op::UserPhoneDisassociate,
    },
    Route { pattern: "GET /admin/v1/phones", api: Api::Admin, op: Op::PhonesList },
    Route { pattern: "POST /admin/v1/phones", api: Api::Admin, op: Op::PhoneCreate },
    Route { pattern: "GET /admin/v1/phones/{phone_id}", api: Api::Admin, op: Op::PhoneGet },
    Route { pattern: "DELETE /admin/v1/phones/{phone_id}", api: Api::Admin, op: Op::PhoneDelete },
    Route {
        pattern: "POST /admin/v1/phones/{phone_id}/send_sms_activation",
        api: Api::Admin,
        op: Op::PhoneSmsActivation,
    },
    // The help desk's calls (issue 15): bypass codes, groups, tokens, directory sync, activation
    // links by URL, verification pushes, the v2 authentication log.
    Route {
        pattern: "POST /admin/v1/users/directorysync/{directory_key}/syncuser",
        api: Api::Admin,
        op: Op::DirectorySyncUser,
    },
    Route { pattern: "GET /admin/v1/users/{user_id}/bypass_codes", api: Api::Admin, op: Op::BypassCodesList },
    Route { pattern: "POST /admin/v1/users/{user_id}/bypass_codes", api: Api::Admin, op: Op::BypassCodesCreate },
    Route { pattern: "GET /admin/v1/groups", api: Api::Admin, op: Op::GroupsList },
    Route { pattern: "GET /admin/v1/users/{user_id}/groups", api: Api::Admin, op: Op::UserGroups },
    Route { pattern: "POST /admin/v1/users/{user_id}/groups", api: Api::Admin, op: Op::UserGroupAdd },
    Route { pattern: "DELETE /admin/v1/users/{user_id}/groups/{group_id}", api: Api::Admin, op: Op::UserGroupRemove },
    Route { pattern: "GET /admin/v1/tokens", api: Api::Admin, op: Op::TokensList },
    Route { pattern: "GET /admin/v1/users/{user_id}/tokens", api: Api::Admin, op: Op::UserTokens },
    Route { pattern: "POST /admin/v1/users/{user_id}/tokens", api: Api::Admin, op: Op::UserTokenAssign },
    Route { pattern: "DELETE /admin/v1/users/{user_id}/tokens/{token_id}", api: Api::Admin, op: Op::UserTokenUnassign },
    Route { pattern: "POST /admin/v1/phones/{phone_id}/activation_url", api: Api::Admin, op: Op::PhoneActivationUrl },
    Route {
        pattern: "POST /admin/v1/users/{user_id}/send_verification_push",
        api: Api::Admin,
        op: Op::VerificationPushSend,
    },
    Route {
        pattern: "GET /admin/v1/users/{user_id}/verification_push_response",
        api: Api::Admin,
        op: Op::VerificationPushResponse,
    },
    Route { pattern: "GET /admin/v2/logs/authentication", api: Api::Admin, op: Op::AuthLogV2 },
    // The rest of the users, phones, tokens, bypass codes, groups and logs families.
    Route { pattern: "GET /admin/v1/users/{user_id}/webauthncredentials", api: Api::Admin, op: Op::UserWebauthn },
    Route { pattern: "POST /admin/v1/phones/{phone_id}", api: Api::Admin, op: Op::PhoneModify },
    Route {
        pattern: "POST /admin/v1/phones/{phone_id}/send_sms_installation",
        api: Api::Admin,
        op: Op::PhoneSmsInstallation,
    },
    Route {
        pattern: "POST /admin/v1/phones/{phone_id}/send_sms_passcodes",
        api: Api::Admin,
        op: Op::PhoneSmsPasscodes,
    },
    Route { pattern: "POST /admin/v1/tokens", api: Api::Admin, op: Op::TokenCreate },
    Route { pattern: "GET /admin/v1/tokens/{token_id}", api: Api::Admin, op: Op::TokenGet },
    Route { pattern: "POST /admin/v1/tokens/{token_id}/resync", api: Api::Admin, op: Op::TokenResync },
    Route { pattern: "DELETE /admin/v1/tokens/{token_id}", api: Api::Admin, op: Op::TokenDelete },
    Route { pattern: "GET /admin/v1/bypass_codes", api: Api::Admin, op: Op::BypassCodesAll },
    Route { pattern: "GET /admin/v1/bypass_codes/{bypass_code_id}", api: Api::Admin, op: Op::BypassCodeGet },
    Route { pattern: "DELETE /admin/v1/bypass_codes/{bypass_code_id}", api: Api::Admin, op: Op::BypassCodeDelete },
    Route { pattern: "POST /admin/v1/groups", api: Api::Admin, op: Op::GroupCreate },
    Route { pattern: "GET /admin/v1/groups/{group_id}", api: Api::Admin, op: Op::GroupGetV1 },
    Route { pattern: "POST /admin/v1/groups/{group_id}", api: Api::Admin, op: Op::GroupUpdate },
    Route { pattern: "DELETE /admin/v1/groups/{group_id}", api: Api::Admin, op: Op::GroupDelete },
    Route { pattern: "GET /admin/v2/groups/{group_id}", api: Api::Admin, op: Op::GroupGetV2 },
    Route { pattern: "GET /admin/v2/groups/{group_id}/users", api: Api::Admin, op: Op::GroupUsersV2 },
    Route { pattern: "GET /admin/v1/logs/authentication", api: Api::Admin, op: Op::AuthLogV1 },
    Route { pattern: "GET /admin/v1/logs/administrator", api: Api::Admin, op: Op::AdminLogV1 },
    Route { pattern: "GET /admin/v1/logs/telephony", api: Api::Admin, op: Op::TelephonyLogV1 },
    Route { pattern: "GET /admin/v2/logs/telephony", api: Api::Admin, op: Op::TelephonyLogV2 },
    Route { pattern: "GET /admin/v1/logs/offline_enrollment", api: Api::Admin, op: Op::OfflineEnrollmentLogV1 },
    Route { pattern: "GET /admin/v2/logs/activity", api: Api::Admin, op: Op::ActivityLogV2 },
    Route { pattern: "GET /auth/v2/ping", api: Api::Public, op: Op::Ping },
    Route { pattern: "GET /auth/v2/check", api: Api::Auth, op: Op::Check },
    Route { pattern: "POST /auth/v2/enroll", api: Api::Auth, op: Op::Enroll },
    Route { pattern: "POST /auth/v2/enroll_status", api: Api::Auth, op: Op::EnrollStatus },
    Route { pattern: "POST /auth/v2/preauth", api: Api::Auth, op: Op::Preauth },
    Route { pattern: "POST /auth/v2/auth", api: Api::Auth, op: Op::Auth },
    Route { pattern: "GET /auth/v2/auth_status", api: Api::Auth, op: Op::AuthStatus },
];

/// Every pattern, for validating fault configuration.
pub fn patterns() -> Vec<&'static str> {
    ROUTES.iter().map(|r| r.pattern).collect()
}

/// The outcome of routing a request.
#[derive(Debug)]
pub enum Found {
    /// A route, with the values of its `{…}` segments in order.
    Route(&'static Route, Vec<String>),
    /// The path exists, with other methods: 405.
    WrongMethod,
    /// No such path: 404.
    NotFound,
}

/// Finds the route for a method and path.
pub fn find(method: &str, path: &str) -> Found {
    let mut path_known = false;
    for route in ROUTES {
        if let Some(ids) = match_path(route.path(), path) {
            if route.method().eq_ignore_ascii_case(method) {
                return Found::Route(route, ids);
            }
            path_known = true;
        }
    }
    if path_known { Found::WrongMethod } else { Found::NotFound }
}

fn match_path(pattern: &str, path: &str) -> Option<Vec<String>> {
    let mut want = pattern.split('/');
    let mut got = path.split('/');
    let mut ids = Vec::new();
    loop {
        match (want.next(), got.next()) {
            (None, None) => return Some(ids),
            (Some(w), Some(g)) if w.starts_with('{') && !g.is_empty() => ids.push(g.to_string()),
            (Some(w), Some(g)) if w == g => {}
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_routes_win_and_ids_are_captured() {
        let Found::Route(route, ids) = find("POST", "/admin/v1/users/enroll") else { panic!("no route") };
        assert_eq!((route.op, ids.len()), (Op::UserEnroll, 0));
        let Found::Route(route, ids) = find("DELETE", "/admin/v1/users/DU1/phones/DP2") else { panic!("no route") };
        assert_eq!(route.op, Op::UserPhoneDisassociate);
        assert_eq!(ids, ["DU1", "DP2"]);
        assert!(matches!(find("PUT", "/admin/v1/users"), Found::WrongMethod));
        let Found::Route(route, ids) = find("POST", "/admin/v1/users/DU1") else { panic!("no route") };
        assert_eq!((route.op, ids.as_slice()), (Op::UserUpdate, ["DU1".to_string()].as_slice()));
        let Found::Route(route, _) = find("DELETE", "/admin/v1/users/DU1") else { panic!("no route") };
        assert_eq!(route.op, Op::UserDelete);
        assert!(matches!(find("PUT", "/admin/v1/users/DU1"), Found::WrongMethod));
        assert!(matches!(find("GET", "/admin/v1/users/"), Found::NotFound));
        assert!(matches!(find("GET", "/nope"), Found::NotFound));
        let Found::Route(route, ids) = find("POST", "/admin/v1/users/directorysync/DD1/syncuser") else {
            panic!("no route")
        };
        assert_eq!((route.op, ids.as_slice()), (Op::DirectorySyncUser, ["DD1".to_string()].as_slice()));
        let Found::Route(route, ids) = find("DELETE", "/admin/v1/users/DU1/groups/DG2") else { panic!("no route") };
        assert_eq!((route.op, ids.len()), (Op::UserGroupRemove, 2));
        assert!(matches!(find("PUT", "/admin/v1/users/DU1/bypass_codes"), Found::WrongMethod));
    }
}
