//! The live view of a run, on stderr: each node as it starts and ends with its duration; on a
//! terminal, a spinner line for the nodes still running or polling; plain lines otherwise, so
//! that logs and CI output stay readable.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use flowcat_engine::run::{Event, NodeStatus, Observer};

const FRAMES: &[char] = &['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

#[derive(Default)]
struct Screen {
    /// Nodes running now, with when they started and what they wait for.
    running: Vec<(String, Instant, Option<String>)>,
    frame: usize,
    /// Whether the spinner line is on screen (and must be cleared before printing).
    drawn: bool,
}

/// The observer behind the live view.
pub struct Live {
    terminal: bool,
    quiet: bool,
    screen: Mutex<Screen>,
    stopped: AtomicBool,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live").field("terminal", &self.terminal).finish_non_exhaustive()
    }
}

impl Live {
    /// `terminal`: draw a spinner line and mark finished nodes; otherwise plain lines.
    /// `quiet`: print nothing at all.
    pub fn start(terminal: bool, quiet: bool) -> Arc<Live> {
        let live = Arc::new(Live { terminal, quiet, screen: Mutex::default(), stopped: AtomicBool::new(false) });
        if terminal && !quiet {
            let ticker = live.clone();
            std::thread::spawn(move || {
                while !ticker.stopped.load(Ordering::Relaxed) {
                    ticker.draw();
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
        }
        live
    }

    /// Ends the spinner and clears its line.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
        let mut screen = self.screen.lock().unwrap_or_else(PoisonError::into_inner);
        clear(&mut screen);
    }

    fn draw(&self) {
        let mut screen = self.screen.lock().unwrap_or_else(PoisonError::into_inner);
        if screen.running.is_empty() || self.stopped.load(Ordering::Relaxed) {
            return;
        }
        screen.frame = (screen.frame + 1) % FRAMES.len();
        let parts: Vec<String> = screen
            .running
            .iter()
            .map(|(name, at, note)| {
                let note = note.as_deref().map(|n| format!(", {n}")).unwrap_or_default();
                format!("{name} ({:.1} s{note})", at.elapsed().as_secs_f64())
            })
            .collect();
        eprint!("\r\x1b[2K{} {}", FRAMES[screen.frame], parts.join("  "));
        let _ = std::io::stderr().flush();
        screen.drawn = true;
    }

    fn line(&self, screen: &mut Screen, text: &str) {
        clear(screen);
        eprintln!("{text}");
    }
}

fn clear(screen: &mut Screen) {
    if screen.drawn {
        eprint!("\r\x1b[2K");
        screen.drawn = false;
    }
}

fn name(path: &[String]) -> String {
    path.join(" › ")
}

impl Observer for Live {
    fn event(&self, event: &Event<'_>) {
        if self.quiet {
            return;
        }
        let mut screen = self.screen.lock().unwrap_or_else(PoisonError::into_inner);
        let indent = |path: &[String]| "  ".repeat(path.len().saturating_sub(1));
        match event {
            Event::Started { path, kind } => {
                let n = name(path);
                if !self.terminal {
                    self.line(&mut screen, &format!("{}start    {n} ({kind})", indent(path)));
                }
                screen.running.push((n, Instant::now(), None));
            }
            Event::Waiting { path, note } => {
                let n = name(path);
                if let Some(r) = screen.running.iter_mut().find(|r| r.0 == n) {
                    r.2 = Some((*note).to_owned());
                }
                if !self.terminal {
                    self.line(&mut screen, &format!("{}waiting  {n}: {note}", indent(path)));
                }
            }
            Event::Finished { path, status, duration_ms, message } => {
                let n = name(path);
                screen.running.retain(|r| r.0 != n);
                let (mark, word) = match status {
                    NodeStatus::Succeeded => ("✓", "ok      "),
                    NodeStatus::Skipped => ("–", "skipped "),
                    NodeStatus::Failed => ("✗", "failed  "),
                    _ => ("·", "stopped "),
                };
                let lead = if self.terminal { format!("{mark} ") } else { word.to_owned() };
                let time = if *status == NodeStatus::Skipped { String::new() } else { format!(" {duration_ms:.0} ms") };
                let why = message.map(|m| format!(": {m}")).unwrap_or_default();
                self.line(&mut screen, &format!("{}{lead}{n}{time}{why}", indent(path)));
            }
        }
    }
}
