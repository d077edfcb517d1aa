//! flowcat-engine: the flow model, loading, validation and compiling to a DAG.
//!
//! A flow travels through passes, each with its own type: text → [`yaml::Node`] (spanned
//! tree) → [`load::Parsed`] (checked against the format, with its [`model::Signature`]) →
//! [`compile::Flow`] (templates compiled, references resolved) holding a [`plan::Plan`] (the
//! DAG). The engine knows flows, not Duo: node kinds plug in through [`kind::NodeKind`].

pub mod catalog;
pub mod check;
pub mod compile;
pub mod decode;
pub mod diag;
pub mod format;
pub mod index;
pub mod journal;
pub mod kind;
pub mod library;
pub mod limits;
mod lints;
pub mod load;
pub mod model;
pub mod node;
pub mod outbox;
pub mod plan;
pub mod render;
pub mod run;
pub mod shape;
pub mod template;
pub mod yaml;

pub use catalog::Catalog;
pub use compile::Flow;
pub use diag::{Diagnostic, Severity};
pub use kind::{NodeKind, Registry};
pub use library::Library;
pub use plan::Plan;
pub mod draw;
pub mod schema;
