//! Duo: request signing, secrets and the retry schedule of the official clients.
//!
//! [`sign`] turns a call into the bytes and headers Duo verifies, byte-exact with Duo's official
//! Python client; [`rules`] holds Duo's rules for a request (methods, params, headers, error
//! hints, percent-encoding); [`secret`] keeps the secret key out of logs; [`retry`] says when to try again.

mod date;
mod pyjson;
pub mod retry;
pub mod rules;
pub mod secret;
pub mod sign;

pub use retry::{Failure, RetryPolicy, delay, may_retry, parse_retry_after, retry_after};
pub use secret::Secret;
pub use sign::{
    CanonicalRequest, Digest, ParseSigVersionError, SigVersion, SignError, SignedRequest, Signer, canon_json,
    canon_params, canonical_string, rfc2822_date, rfc2822_now,
};
