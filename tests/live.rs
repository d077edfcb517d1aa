//! The live view in a real terminal: `flowcat run` inside tmux at 80 columns, while a push and an
//! activation keep nodes running for seconds and the status area redraws every 100 ms. The
//! screen is captured while it runs and at the end: no line wider than the terminal, no status
//! line left behind, the header says it talks to a simulator, and the end says what was written.

use crate::common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::Sim;

const SPINNER: &[char] = &['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/// A tmux server of the test's own (its own socket), killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new(name: &str) -> Tmux {
        Tmux { socket: format!("flowcat-test-{}-{name}", std::process::id()) }
    }

    fn cmd(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux").arg("-L").arg(&self.socket).args(args).output().expect("tmux runs (CI installs it)")
    }

    /// The visible screen, one string per row (or per line, rows a long line wrapped onto
    /// joined), trailing spaces trimmed.
    fn screen(&self, joined: bool) -> Vec<String> {
        let args: &[&str] =
            if joined { &["capture-pane", "-p", "-J", "-t", "run"] } else { &["capture-pane", "-p", "-t", "run"] };
        let out = self.cmd(args);
        String::from_utf8_lossy(&out.stdout).lines().map(|l| l.trim_end().to_owned()).collect()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn columns(line: &str) -> usize {
    // Every character the live view prints is one column wide (box drawing, spinner, arrows).
    line.chars().count()
}

#[test]
fn the_live_view_redraws_in_place_at_80_columns_and_leaves_a_clean_screen() {
    // The employee opens the activation link after 20 s of Duo's time and answers the push 5 s
    // later; at 10x that keeps `activation` and then `verify` running for a few real seconds.
    let sim = Sim::start_args(
        "live",
        None,
        &["--time-scale", "10", "--activate-after", "20s", "--enroll-creates-user", "at-once"],
    );
    let flowcat = env!("CARGO_BIN_EXE_flowcat");
    let run = format!(
        "cd {} && FLOWCAT_STATE_DIR={} {} run examples.onboard_employee -i username=zoe -i email=zoe@example.com \
         -i number=+15555550150 -i wait_for_activation=true --integrations {}; echo EXIT=$?",
        shell_quote(env!("CARGO_MANIFEST_DIR")),
        shell_quote(sim.dir.join("state").to_str().expect("utf-8")),
        shell_quote(flowcat),
        shell_quote(sim.integrations.to_str().expect("utf-8")),
    );
    let tmux = Tmux::new("live");
    let started = tmux.cmd(&[
        "new-session",
        "-d",
        "-s",
        "run",
        "-x",
        "80",
        "-y",
        "40",
        "-e",
        "NO_COLOR=1",
        "sh",
        "-c",
        &format!("{run}; sleep 60"),
    ]);
    assert!(started.status.success(), "{}", String::from_utf8_lossy(&started.stderr));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut saw_status = false;
    let screen = loop {
        let screen = tmux.screen(false);
        for line in &screen {
            assert!(columns(line) <= 80, "a line wider than the terminal:\n{}", screen.join("\n"));
        }
        let status: Vec<&String> = screen.iter().filter(|l| l.starts_with(SPINNER)).collect();
        saw_status |= !status.is_empty();
        if screen.iter().any(|l| l.starts_with("EXIT=")) {
            break tmux.screen(true);
        }
        assert!(Instant::now() < deadline, "the run did not end:\n{}", screen.join("\n"));
        std::thread::sleep(Duration::from_millis(150));
    };
    let text = screen.join("\n");
    assert!(saw_status, "the status area was never seen while nodes ran");
    assert!(text.contains("EXIT=0"), "{text}");
    assert!(!text.contains(SPINNER), "a status line was left on screen:\n{text}");
    assert!(!text.contains("poll "), "a poll note was left on screen:\n{text}");
    let lines: Vec<&str> = screen.iter().map(String::as_str).filter(|l| !l.is_empty()).collect();
    let want_start = [
        "flowcat run examples.onboard_employee",
        "  duo_admin  → duo_admin at 127.0.0.1:",
        "  duo_auth   → duo_auth at 127.0.0.1:",
    ];
    for (line, want) in lines.iter().zip(want_start) {
        assert!(line.starts_with(want), "{line:?} should start with {want:?}\n{text}");
    }
    assert!(lines[1].ends_with("(a simulator on loopback, not Duo)"), "{text}");
    // The run's own nodes, one line each, in the order they finished; nothing from inside
    // subflows and no skipped node without -v.
    let marks: Vec<&str> = lines
        .iter()
        .filter(|l| l.starts_with("✓ ") || l.starts_with("✗ "))
        .map(|l| l.split(' ').nth(1).unwrap_or(""))
        .collect();
    assert_eq!(marks, ["enroll", "phone", "sms", "activation", "state", "verify"], "{text}");
    let live = text.split("flow `examples.onboard_employee` succeeded").next().unwrap_or_default();
    assert!(!live.contains(" › "), "no nested node without -v:\n{text}");
    assert!(text.contains("outcome: \"verified\""), "{text}");
    let writes = lines.iter().position(|l| *l == "Write requests:").expect("the writes are summed up");
    let summary: Vec<&str> = lines[writes + 1..].iter().take_while(|l| l.starts_with("  ")).copied().collect();
    assert_eq!(summary.len(), 5, "{text}");
    assert!(summary[0].starts_with("  POST /admin/v1/users/enroll  done  [enroll › enroll]"), "{text}");
    assert!(summary[4].starts_with("  POST /auth/v2/auth  done  [verify › push › push]"), "{text}");
}
