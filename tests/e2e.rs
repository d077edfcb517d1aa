//! The end-to-end tests of the `flowcat` binary, in one test binary: each file beside this one
//! is a module of it (`cargo test --test e2e validate::` runs one file's tests). One test crate
//! compiles the shared helpers and links the engine, the simulator, the journal and the service
//! once, where a crate per file did it 22 times (docs/architecture.md, "tests/"). A new file of
//! tests is a new `mod` line here (`autotests = false` in Cargo.toml: a file not named here is
//! not built).

mod common;

mod anywhere;
mod bypass_canary;
mod catalog;
mod cli;
mod conventions;
mod crash;
mod duo_flows;
mod durable;
mod each;
mod flow_test;
mod graph;
mod graph_run;
mod index;
mod live;
mod plan;
mod replicas;
mod runs;
mod serve;
mod serve_traces;
mod serve_webhook;
mod signal;
mod tls_proxy;
mod validate;
