//! Running the real `flowcat` binary from the workspace root, for end-to-end tests.

#![allow(dead_code)]

use std::process::Command;

/// The binary's exit code, stdout and stderr.
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// One text for a snapshot: exit code, then both streams.
    pub fn snapshot(&self) -> String {
        format!("exit: {}\n--- stdout ---\n{}--- stderr ---\n{}", self.code, self.stdout, self.stderr)
    }
}

/// Runs `flowcat ARGS` in the workspace root, without colour.
pub fn flowcat(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_flowcat"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .output()
        .expect("the flowcat binary runs");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
