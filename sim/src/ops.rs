//! The context every Duo operation runs in, what it answers, and the dispatch by operation.

use serde_json::Value;

use crate::app::Options;
use crate::audit::Origin;
use crate::error::ApiError;
use crate::params::Params;
use crate::routes::Op;
use crate::state::State;
use crate::{admin, authapi, enroll, helpdesk, links, logs, manage};

/// What an operation may touch: the state (under the server's lock) and who is asking.
#[derive(Debug)]
pub struct Ctx<'a> {
    pub state: &'a mut State,
    pub origin: Origin<'a>,
    /// Sim unix milliseconds, read once per request so one request sees one time.
    pub now_ms: i64,
    pub options: &'a Options,
}

impl Ctx<'_> {
    /// Records a state change in the audit log.
    pub fn record(&mut self, change: &str, detail: Value) {
        self.state.audit.record(&self.origin, change, detail);
    }

    /// Unix seconds.
    pub fn now(&self) -> i64 {
        self.now_ms.div_euclid(1000)
    }
}

/// A success: the `response` and, for paged lists, the `metadata`.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub response: Value,
    pub metadata: Option<Value>,
}

impl Reply {
    /// A reply without metadata.
    pub fn plain(response: Value) -> Self {
        Self { response, metadata: None }
    }
}

/// Runs every operation that answers at once. Push (`auth`, `auth_status`) waits on the clock and
/// is driven by the server; it reaches here only to be started.
pub fn run(op: Op, ctx: &mut Ctx<'_>, params: &Params, ids: &[String]) -> Result<Reply, ApiError> {
    let id = |i: usize| ids.get(i).map_or("", String::as_str);
    match op {
        Op::UsersList => admin::users_list(ctx, params),
        Op::UserGet => admin::user_get(ctx, id(0)),
        Op::UserUpdate => admin::user_update(ctx, id(0), params),
        Op::UserDelete => admin::user_delete(ctx, id(0)),
        Op::UserCreate => admin::user_create(ctx, params),
        Op::UserEnroll => links::user_enroll(ctx, params),
        Op::UserPhones => admin::user_phones(ctx, id(0), params),
        Op::UserPhoneAssociate => admin::associate(ctx, id(0), params),
        Op::UserPhoneDisassociate => admin::disassociate(ctx, id(0), id(1)),
        Op::PhonesList => admin::phones_list(ctx, params),
        Op::PhoneGet => admin::phone_get(ctx, id(0)),
        Op::PhoneCreate => admin::phone_create(ctx, params),
        Op::PhoneDelete => admin::phone_delete(ctx, id(0)),
        Op::PhoneSmsActivation => links::sms_activation(ctx, id(0), params),
        Op::BypassCodesCreate => helpdesk::bypass_create(ctx, id(0), params),
        Op::BypassCodesList => helpdesk::bypass_list(ctx, id(0), params),
        Op::GroupsList => helpdesk::groups_list(ctx, params),
        Op::UserGroups => helpdesk::user_groups(ctx, id(0), params),
        Op::UserGroupAdd => helpdesk::group_add(ctx, id(0), params),
        Op::UserGroupRemove => helpdesk::group_remove(ctx, id(0), id(1)),
        Op::TokensList => helpdesk::tokens_list(ctx, params),
        Op::UserTokens => helpdesk::user_tokens(ctx, id(0), params),
        Op::UserTokenAssign => helpdesk::token_assign(ctx, id(0), params),
        Op::UserTokenUnassign => helpdesk::token_unassign(ctx, id(0), id(1)),
        Op::DirectorySyncUser => helpdesk::sync_user(ctx, id(0), params),
        Op::PhoneActivationUrl => helpdesk::activation_url(ctx, id(0), params),
        Op::VerificationPushSend => helpdesk::verification_push(ctx, id(0), params),
        Op::VerificationPushResponse => helpdesk::verification_push_response(ctx, id(0), params),
        Op::AuthLogV2 => helpdesk::auth_log(ctx, params),
        Op::UserWebauthn => manage::user_webauthn(ctx, id(0), params),
        Op::PhoneModify => manage::phone_modify(ctx, id(0), params),
        Op::PhoneSmsInstallation => manage::sms_installation(ctx, id(0), params),
        Op::PhoneSmsPasscodes => manage::sms_passcodes(ctx, id(0)),
        Op::TokenCreate => manage::token_create(ctx, params),
        Op::TokenGet => manage::token_get(ctx, id(0)),
        Op::TokenResync => manage::token_resync(ctx, id(0), params),
        Op::TokenDelete => manage::token_delete(ctx, id(0)),
        Op::BypassCodesAll => manage::bypass_all(ctx, params),
        Op::BypassCodeGet => manage::bypass_get(ctx, id(0)),
        Op::BypassCodeDelete => manage::bypass_delete(ctx, id(0)),
        Op::GroupCreate => manage::group_create(ctx, params),
        Op::GroupGetV1 => manage::group_get_v1(ctx, id(0)),
        Op::GroupGetV2 => manage::group_get_v2(ctx, id(0)),
        Op::GroupUsersV2 => manage::group_users(ctx, id(0), params),
        Op::GroupUpdate => manage::group_update(ctx, id(0), params),
        Op::GroupDelete => manage::group_delete(ctx, id(0)),
        Op::AuthLogV1 => logs::auth_v1(ctx, params),
        Op::AdminLogV1 => logs::admin_v1(ctx, params),
        Op::TelephonyLogV1 => logs::telephony_v1(ctx, params),
        Op::TelephonyLogV2 => logs::telephony_v2(ctx, params),
        Op::OfflineEnrollmentLogV1 => logs::offline_enrollment_v1(ctx, params),
        Op::ActivityLogV2 => logs::activity_v2(ctx, params),
        Op::Enroll => enroll::enroll(ctx, params),
        Op::EnrollStatus => enroll::enroll_status(ctx, params),
        Op::Ping | Op::Check => Ok(Reply::plain(serde_json::json!({ "time": ctx.now() }))),
        Op::Preauth => authapi::preauth(ctx, params),
        Op::Auth | Op::AuthStatus => Err(ApiError::server(500)),
    }
}
