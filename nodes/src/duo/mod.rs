//! Duo: request signing, secrets and the retry schedule of the official clients.
//!
//! [`sign`] turns a call into the bytes and headers Duo verifies, byte-exact with Duo's official
//! Python client; [`rules`] holds Duo's rules for a request (methods, params, headers, error
//! hints, percent-encoding); [`secret`] keeps the secret key out of logs; [`retry`] says when to try again.

pub mod api;
mod date;
mod pyjson;
pub mod retry;
pub mod rules;
pub mod secret;
pub mod sign;
pub mod validate;

pub use retry::{Failure, RetryPolicy, delay, may_retry, parse_retry_after, retry_after};
pub use secret::Secret;
pub use sign::{
    CanonicalRequest, Digest, ParseSigVersionError, SigVersion, SignError, SignedRequest, Signer, canon_json,
    canon_params, canonical_string, rfc2822_date, rfc2822_now,
};

/// Whether a Duo call changes nothing on Duo's side: every `GET`, and the Auth API's `POST`s
/// that only ask (`preauth`, `check`). What the live view's summary leaves out of the writes.
pub fn only_reads(method: &str, path: &str) -> bool {
    method.eq_ignore_ascii_case("GET")
        || (method.eq_ignore_ascii_case("POST") && matches!(path, "/auth/v2/preauth" | "/auth/v2/check"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn asking_is_not_writing() {
        assert!(super::only_reads("GET", "/admin/v1/users"));
        assert!(super::only_reads("post", "/auth/v2/preauth"));
        assert!(!super::only_reads("POST", "/auth/v2/auth"));
        assert!(!super::only_reads("DELETE", "/admin/v1/phones/DP1"));
    }
}
