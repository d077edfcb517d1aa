//! The node kinds: each a unit struct implementing `NodeKind`, with its compiled form beside it.

pub mod fail;
pub mod for_each;
pub mod jsonpath;
pub mod reconcile;
pub mod rest_call;
mod rest_run;
pub mod set;
pub mod subflow;
pub mod switch;
pub mod wait;
pub mod wait_for;
