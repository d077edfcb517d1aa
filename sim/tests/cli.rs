//! `flowcat sim`'s arguments: where the starting state comes from, the integrations file, and
//! what is refused.

use crate::common;

use clap::Parser;
use flowcat_sim::cli::{SimArgs, run};

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    sim: SimArgs,
}

fn args(extra: &[&str]) -> SimArgs {
    let mut argv = vec!["sim"];
    argv.extend_from_slice(extra);
    Cli::try_parse_from(argv).expect("flags").sim
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("flowcat-sim-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

#[test]
fn the_state_file_wins_over_the_seed_which_wins_over_the_demo() {
    let dir = scratch("sources");
    let seed_path = dir.join("seed.json");
    let mut seed = flowcat_sim::Seed::demo();
    seed.users.truncate(1);
    // The demo's groups, tokens and past authentications name the users cut away.
    seed.groups.clear();
    seed.tokens.clear();
    seed.auth_log.clear();
    std::fs::write(&seed_path, serde_json::to_vec(&seed).expect("json")).expect("write");
    let state_path = dir.join("state.json");
    let seed_arg = seed_path.to_str().expect("path");
    let state_arg = state_path.to_str().expect("path");
    assert_eq!(args(&[]).initial_state().expect("demo").users.len(), 9);
    let from_seed = args(&["--seed", seed_arg, "--state", state_arg]).initial_state().expect("seed");
    assert_eq!(from_seed.users.len(), 1, "no state file yet: the seed");
    let mut saved = from_seed.clone();
    saved.users.clear();
    saved.save(&state_path).expect("save");
    let from_state = args(&["--seed", seed_arg, "--state", state_arg]).initial_state().expect("state");
    assert!(from_state.users.is_empty(), "the state file wins");
    std::fs::write(&seed_path, "{\"integrations\": 3}").expect("write");
    let err = args(&["--seed", seed_arg]).initial_state().expect_err("bad seed").to_string();
    assert!(err.contains("seed.json") && err.contains("seed"), "{err}");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[tokio::test]
async fn run_refuses_a_host_that_is_not_loopback() {
    let err = run(args(&["--host", "0.0.0.0"])).await.expect_err("refused").to_string();
    assert!(err.contains("loopback"), "{err}");
    let err = run(args(&["--fault", "kind=teapot"])).await.expect_err("refused").to_string();
    assert!(err.contains("teapot"), "{err}");
}

#[tokio::test]
async fn the_integrations_file_is_written_and_secrets_stay_out_of_debug() {
    let dir = scratch("integrations");
    let sim = common::start().await;
    let path = dir.join("integrations.yaml");
    flowcat_sim::integrations::write(&path, sim.addr(), &sim.state().integrations, None).expect("write");
    let text = std::fs::read_to_string(&path).expect("read");
    assert!(text.contains(&format!("\"127.0.0.1:{}\"", sim.addr().port())));
    assert!(text.contains(common::ADMIN_SKEY), "the file is for the simulator's own keys");
    let debug = format!("{sim:?} {:?}", sim.state());
    assert!(!debug.contains(common::ADMIN_SKEY) && !debug.contains(common::AUTH_SKEY));
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[tokio::test]
async fn sigterm_ends_the_shutdown_signal_and_the_state_is_saved() {
    // Installed before the signal is sent, so SIGTERM reaches it instead of killing the test.
    let signal = flowcat_sim::cli::shutdown_signal().expect("handlers");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    tokio::time::timeout(std::time::Duration::from_secs(5), signal).await.expect("SIGTERM ends the wait");

    // What `run` does once the signal ends: shut down and write the state file.
    let dir = scratch("sigterm");
    let state = dir.join("state.json");
    let argv = ["--port", "0", "--state", state.to_str().expect("path"), "--time-scale", "10"];
    flowcat_sim::cli::run_until(args(&argv), async {}).await.expect("served and saved");
    let saved = flowcat_sim::State::load(&state).expect("the state file was written");
    assert_eq!(saved.users.len(), 9);
    assert!(saved.clock_ms > 1_600_000_000_000, "stamped with the sim time");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}
