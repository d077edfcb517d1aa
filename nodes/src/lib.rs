//! flowcat-nodes: the node kinds and integrations, Duo request signing among them.

pub mod duo;
