//! `flowcat sim`: the command-line face of the simulator.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::app::{EnrollMode, Options};
use crate::error::Error;
use crate::integrations;
use crate::seed::Seed;
use crate::server::Sim;
use crate::state::State;

/// Flags of `flowcat sim`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimArgs {
    /// Port to listen on; 0 picks a free one (the address is printed).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Address to listen on; only loopback addresses are accepted.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub host: IpAddr,
    /// State file: loaded at start when it exists, saved on Ctrl-C or SIGTERM.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Seed file (JSON) used when there is no state file; the demo seed otherwise.
    #[arg(long, value_name = "FILE")]
    pub seed: Option<PathBuf>,
    /// Write an integrations file bound to this simulator, for `flowcat run`.
    #[arg(long, value_name = "FILE")]
    pub write_integrations: Option<PathBuf>,
    /// Latency added to every Duo response, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub latency_ms: u64,
    /// A fault, e.g. `route=POST /admin/v1/users,kind=429,count=3,retry_after=2`
    /// (kinds: `latency` ms, `429` count retry_after header, `5xx` count status, `drop` count).
    #[arg(long, value_name = "SPEC")]
    pub fault: Vec<String>,
    /// Duo's rate limiting, per integration key, on the simulator's clock: `50/s`, `300/min`,
    /// optionally with a burst (`20/s,burst=5`; one second's worth by default). Over it, requests
    /// get 429 with code 42901 and no `Retry-After`.
    #[arg(long, value_name = "RATE", value_parser = crate::ratelimit::RateLimit::parse)]
    pub rate_limit: Option<crate::ratelimit::RateLimit>,
    /// Clock skew allowed on request dates, in seconds (at least 60).
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub skew_secs: u64,
    /// Longest an `auth_status` long-poll is held while the push waits, in sim milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 300_000)]
    pub long_poll_ms: u64,
    /// How many times faster than real time the simulator's clock runs (pushes, expiries, links).
    #[arg(long, value_name = "N", default_value_t = 1.0, value_parser = parse_scale)]
    pub time_scale: f64,
    /// Activate a phone this long (sim time, e.g. `90s`, `1h`, `500ms`) after each activation SMS,
    /// as if its user followed the link; without it only `POST /sim/activate` does.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub activate_after: Option<Duration>,
    /// When `POST /admin/v1/users/enroll` creates the user: when the link is followed
    /// (`POST /sim/enroll`), or at once.
    #[arg(long, value_enum, value_name = "WHEN", default_value = "on-link")]
    pub enroll_creates_user: EnrollMode,
}

/// A time scale: a finite number above zero.
pub fn parse_scale(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(n) if n.is_finite() && n > 0.0 => Ok(n),
        _ => Err(format!("expected a number above 0, found `{text}`")),
    }
}

/// A duration with a unit: `500ms`, `90s`, `15m`, `1h`, `2d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let expected = || format!("expected a number and a unit (`ms`, `s`, `m`, `h`, `d`), e.g. `90s`, found `{text}`");
    let n: u64 = number.parse().map_err(|_| expected())?;
    let ms_per = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(expected()),
    };
    n.checked_mul(ms_per).map(Duration::from_millis).ok_or_else(|| format!("`{text}` is too long"))
}

impl SimArgs {
    /// The options these flags ask for.
    pub fn options(&self) -> Result<Options, Error> {
        let mut options = Options {
            skew: Duration::from_secs(self.skew_secs.max(60)),
            long_poll: Duration::from_millis(self.long_poll_ms),
            time_scale: self.time_scale,
            activate_after: self.activate_after,
            enroll_mode: self.enroll_creates_user,
            rate_limit: self.rate_limit,
            ..Options::default()
        };
        options.faults.global.latency_ms = self.latency_ms;
        for spec in &self.fault {
            options.faults.apply_spec(spec).map_err(Error::Fault)?;
        }
        Ok(options)
    }

    /// The starting state: the state file if it exists, else the seed file, else the demo seed.
    pub fn initial_state(&self) -> Result<State, Error> {
        if let Some(path) = self.state.as_ref().filter(|p| p.exists()) {
            return State::load(path);
        }
        let seed = match &self.seed {
            Some(path) => {
                let text = std::fs::read(path).map_err(|source| Error::Read { path: path.clone(), source })?;
                serde_json::from_slice(&text).map_err(|source| Error::Parse {
                    path: path.clone(),
                    what: "seed",
                    source,
                })?
            }
            None => Seed::demo(),
        };
        let now = crate::clock::wall_ms().div_euclid(1000);
        State::from_seed(&seed, now)
    }
}

/// Serves until Ctrl-C or SIGTERM, then saves the state file (if one was named).
pub async fn run(args: SimArgs) -> Result<(), Error> {
    let stop = shutdown_signal()?;
    run_until(args, stop).await
}

/// A future that ends on Ctrl-C or, on Unix, SIGTERM (what `kill`, systemd and container
/// runtimes send). The handlers are installed before this returns, so a signal sent right after
/// is not missed (and no longer kills the process).
pub fn shutdown_signal() -> Result<impl Future<Output = ()> + Send + 'static, Error> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).map_err(Error::Signal)?;
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    })
}

/// Serves until `stop` ends, then shuts down gracefully and saves the state file (if named).
pub async fn run_until(args: SimArgs, stop: impl Future<Output = ()>) -> Result<(), Error> {
    if !args.host.is_loopback() {
        return Err(Error::NotLoopback(args.host.to_string()));
    }
    let options = args.options()?;
    let state = args.initial_state()?;
    let sim = Sim::start(SocketAddr::new(args.host, args.port), state, options).await?;
    let addr = sim.addr();
    let mut line = format!("flowcat sim listening on http://{addr}");
    if let Some(path) = &args.write_integrations {
        integrations::write(path, addr, &sim.state().integrations, args.rate_limit)?;
        let names: Vec<String> = sim.state().integrations.iter().map(|i| format!("{} ({})", i.name, i.ikey)).collect();
        line.push_str(&format!("; wrote {} to {}", names.join(", "), path.display()));
    }
    println!("{line}; Ctrl-C to stop");
    stop.await;
    let state = sim.shutdown().await;
    if let Some(path) = &args.state {
        state.save(path)?;
        println!("flowcat sim saved its state to {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        sim: SimArgs,
    }

    #[test]
    fn flags_become_options() {
        let cli = Cli::try_parse_from([
            "sim",
            "--port",
            "7",
            "--latency-ms",
            "5",
            "--skew-secs",
            "10",
            "--fault",
            "route=POST /admin/v1/users,kind=drop,count=2",
        ])
        .expect("parse");
        assert_eq!(cli.sim.port, 7);
        let options = cli.sim.options().expect("options");
        assert_eq!(options.skew, Duration::from_secs(60));
        assert_eq!(options.faults.latency_ms("POST /admin/v1/users"), 5);
        assert!(options.faults.routes.contains_key("POST /admin/v1/users"));
        let bad = Cli::try_parse_from(["sim", "--fault", "kind=nope"]).expect("parse");
        assert!(bad.sim.options().is_err());
    }

    #[test]
    fn clock_and_link_flags() {
        let cli = Cli::try_parse_from([
            "sim",
            "--time-scale",
            "60",
            "--activate-after",
            "90s",
            "--enroll-creates-user",
            "at-once",
        ])
        .expect("parse");
        let options = cli.sim.options().expect("options");
        assert_eq!(options.time_scale, 60.0);
        assert_eq!(options.activate_after, Some(Duration::from_secs(90)));
        assert_eq!(options.enroll_mode, EnrollMode::AtOnce);
        let defaults = Cli::try_parse_from(["sim"]).expect("parse").sim.options().expect("options");
        assert_eq!((defaults.time_scale, defaults.activate_after), (1.0, None));
        assert_eq!(defaults.enroll_mode, EnrollMode::OnLink);
        assert_eq!(defaults.long_poll, Duration::from_secs(300));
        for bad in [["sim", "--time-scale", "0"], ["sim", "--time-scale", "-2"], ["sim", "--activate-after", "90"]] {
            assert!(Cli::try_parse_from(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn durations_take_a_unit() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        for bad in ["", "s", "1.5h", "10 parsecs", "-1s", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_scale("0.5"), Ok(0.5));
        assert!(parse_scale("inf").is_err() && parse_scale("NaN").is_err());
    }
}
