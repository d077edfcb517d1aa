//! The simulator's integration tests, in one test binary: each file beside this one is a module
//! of it (`cargo test -p flowcat-sim --test integration push::` runs one file's tests). One test
//! crate links the simulator's HTTP stack once instead of once per file. A new file of tests is
//! a new `mod` line here (`autotests = false` in Cargo.toml).

mod common;

mod admin;
mod cli;
mod clock;
mod control;
mod families;
mod faults;
mod guard;
mod http_verify;
mod links;
mod push;
mod rate_limit;
mod users;
mod vectors;
