//! The crate's error type, and Duo's error envelope for answers to API clients.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::verify::AuthError;

/// Why the simulator could not start, load, save or serve.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listening socket could not be bound.
    #[error("cannot listen on `{addr}`: {source}")]
    Bind { addr: std::net::SocketAddr, source: std::io::Error },
    /// Only loopback addresses are served.
    #[error("`{0}` is not a loopback address; the simulator listens on loopback only")]
    NotLoopback(String),
    /// A seed, state or integrations file could not be read.
    #[error("cannot read `{}`: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    /// A state or integrations file could not be written.
    #[error("cannot write `{}`: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    /// A seed or state file is not the expected JSON.
    #[error("`{}` is not a valid {what} file: {source}", path.display())]
    Parse { path: PathBuf, what: &'static str, source: serde_json::Error },
    /// A seed names things inconsistently.
    #[error("invalid seed: {0}")]
    Seed(String),
    /// A flag's value is invalid.
    #[error("invalid `--{flag}`: {message}")]
    Flag { flag: &'static str, message: String },
    /// A fault flag or configuration is invalid.
    #[error("invalid fault: {0}")]
    Fault(String),
    /// Listening for Ctrl-C or SIGTERM failed.
    #[error("cannot listen for Ctrl-C or SIGTERM: {0}")]
    Signal(std::io::Error),
}

/// Why a control call (`/sim/…`, or the same call on [`crate::Sim`]) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// The body is not what the call takes (400).
    #[error("{0}")]
    Invalid(String),
    /// No such phone or transaction (404).
    #[error("{0}")]
    NotFound(String),
    /// The thing is not in a state that allows it: nothing was sent, the push has ended (409).
    #[error("{0}")]
    Conflict(String),
    /// The link has expired (410).
    #[error("{0}")]
    Gone(String),
}

impl ControlError {
    /// The HTTP status the control API answers it with.
    pub fn status(&self) -> u16 {
        match self {
            ControlError::Invalid(_) => 400,
            ControlError::NotFound(_) => 404,
            ControlError::Conflict(_) => 409,
            ControlError::Gone(_) => 410,
        }
    }
}

/// A failure answered in Duo's envelope: `{"stat":"FAIL","code":…,"message":…}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// Duo's five-digit code; its first three digits are the HTTP status.
    pub code: u32,
    /// Duo's message for the code.
    pub message: &'static str,
    /// Which param or what exactly, when Duo says.
    pub detail: Option<String>,
}

impl ApiError {
    fn new(code: u32, message: &'static str, detail: Option<&str>) -> Self {
        Self { code, message, detail: detail.map(str::to_string) }
    }

    /// 40001: a required param is missing.
    pub fn missing(param: &str) -> Self {
        Self::new(40001, "Missing required request parameters", Some(param))
    }

    /// 40002: a param is invalid.
    pub fn invalid(param: &str) -> Self {
        Self::new(40002, "Invalid request parameters", Some(param))
    }

    /// 40003: the resource exists already.
    pub fn duplicate(param: &str) -> Self {
        Self::new(40003, "Duplicate resource", Some(param))
    }

    /// 40301: Admin keys on the Auth API or the reverse.
    pub fn wrong_kind() -> Self {
        Self::new(40301, "Access forbidden", Some("Wrong integration type for this API."))
    }

    /// 40401: no such resource or route.
    pub fn not_found() -> Self {
        Self::new(40401, "Resource not found", None)
    }

    /// 40501: the route exists with another method.
    pub fn method_not_allowed() -> Self {
        Self::new(40501, "Method not allowed", None)
    }

    /// 41301: a body larger than the simulator reads.
    pub fn too_large() -> Self {
        Self::new(41301, "Request entity too large", None)
    }

    /// 42901: rate limited.
    pub fn too_many() -> Self {
        Self::new(42901, "Too Many Requests", None)
    }

    /// A 5xx: the code is the status times 100 plus 1.
    pub fn server(status: u16) -> Self {
        let message = if status == 500 { "Internal server error" } else { "Service unavailable" };
        Self::new(u32::from(status) * 100 + 1, message, None)
    }

    /// The HTTP status: the first three digits of the code.
    pub fn status(&self) -> u16 {
        u16::try_from(self.code / 100).unwrap_or(500)
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        let mut body = json!({ "stat": "FAIL", "code": self.code, "message": self.message });
        if let Some(detail) = &self.detail {
            body["message_detail"] = json!(detail);
        }
        body
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::Missing(_) => Self::new(40101, "Missing request credentials", None),
            AuthError::UnknownIkey => Self::new(40102, "Invalid integration key in request credentials", None),
            AuthError::BadSignature(why) => {
                // Duo says no more than "invalid signature"; naming a stale date spares a
                // developer an hour, and says nothing about the key.
                let detail = why.contains("skew").then_some(why);
                Self::new(40103, "Invalid signature in request credentials", detail)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_is_the_first_three_digits() {
        assert_eq!(ApiError::missing("username").status(), 400);
        assert_eq!(ApiError::server(503).code, 50301);
        assert_eq!(ApiError::server(503).status(), 503);
        assert_eq!(
            ApiError::from(AuthError::BadSignature("signature does not match")).body(),
            json!({"stat":"FAIL","code":40103,"message":"Invalid signature in request credentials"})
        );
    }
}
