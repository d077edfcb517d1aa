//! flowcat-nodes: the node kinds and integrations, Duo request signing among them.
//!
//! [`REGISTRY`] is the one list of node kinds and integration kinds the engine is given; the
//! binary, the schema, the docs and "did you mean" hints all read it.

pub mod bind;
pub mod duo;
pub mod embed;
pub mod hall;
pub mod http;
pub mod integrations;
pub mod kinds;

use flowcat_engine::kind::{IntegrationKind, NodeKind, Registry};

/// Every node kind, in the order the docs present them.
pub static KINDS: &[&dyn NodeKind] = &[
    &kinds::rest_call::RestCall,
    &kinds::subflow::Subflow,
    &kinds::for_each::ForEach,
    &kinds::switch::Switch,
    &kinds::wait_for::WaitFor,
    &kinds::set::Set,
    &kinds::fail::Fail,
];

/// Every integration kind a flow's slot may ask for.
pub static INTEGRATION_KINDS: &[IntegrationKind] = &[
    IntegrationKind {
        name: "duo_admin",
        doc: "a Duo Admin API application: API hostname, integration key, secret key; requests are signed",
    },
    IntegrationKind {
        name: "duo_auth",
        doc: "a Duo Auth API application: API hostname, integration key, secret key; requests are signed",
    },
    IntegrationKind { name: "http", doc: "a plain HTTP API: base URL and optional basic or bearer authentication" },
];

pub static REGISTRY: Registry = Registry { kinds: KINDS, integration_kinds: INTEGRATION_KINDS };

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_are_unique_and_documented() {
        let mut names: Vec<&str> = KINDS.iter().map(|k| k.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), KINDS.len());
        for k in KINDS {
            assert!(!k.summary().is_empty(), "{}", k.name());
            for f in k.fields() {
                assert!(!f.doc.is_empty(), "{}.{}", k.name(), f.name);
                let common = flowcat_engine::format::NODE_FIELDS.iter().any(|c| c.name == f.name);
                assert!(!common, "`{}` redeclares the common field `{}`", k.name(), f.name);
            }
        }
    }
}
