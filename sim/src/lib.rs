//! flowcat-sim: a Duo Admin API and Auth API simulator, an independent implementation of Duo's side.
//!
//! Start one with [`Sim::start`] (or [`Sim::start_seed`]) on a loopback address, point clients at
//! [`Sim::addr`], and read what happened through [`Sim::audit`] or the `/sim/` control API. The
//! verifier ([`verify`], [`canon`]) shares no code with the client-side signer on purpose.

mod admin;
mod app;
pub mod audit;
mod authapi;
pub mod canon;
pub mod cli;
pub mod clock;
mod control;
pub mod date;
mod duo;
pub mod enroll;
mod error;
pub mod fault;
mod guard;
pub mod helpdesk;
pub mod ids;
mod index;
pub mod integrations;
pub mod keys;
pub mod links;
pub mod logs;
mod manage;
pub mod model;
mod ops;
pub mod params;
pub mod push;
pub mod ratelimit;
pub mod routes;
pub mod seed;
mod server;
pub mod state;
pub mod verify;

pub use app::{EnrollMode, Options};
pub use audit::AuditEntry;
pub use error::{ApiError, ControlError, Error};
pub use fault::Faults;
pub use keys::{Kind, SecretKey};
pub use links::PhoneRef;
pub use push::Outcome;
pub use ratelimit::RateLimit;
pub use seed::Seed;
pub use server::Sim;
pub use state::State;
