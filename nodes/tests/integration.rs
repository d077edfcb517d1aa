//! The integration tests of flowcat-nodes, in one test binary: each file beside this one is a
//! module of it (`cargo test -p flowcat-nodes --test integration run_http::` runs one file's
//! tests); `hostile/` stays a binary of its own, as it runs inputs in child processes of itself.
//! One test crate links the crate, the simulator and the HTTP stack once instead of once per
//! file. A new file of tests is a new `mod` line here (`autotests = false` in Cargo.toml).

mod compile;
mod duo_api_sim;
mod duo_signing_vectors;
mod duo_validate;
mod for_each;
mod http_canary;
mod http_send;
mod integrations_check;
mod integrations_file;
mod integrations_guard;
mod long_poll;
mod rate_limit;
mod reconcile;
mod run;
mod run_http;
mod run_keys;
mod wait_for;
mod waits;
