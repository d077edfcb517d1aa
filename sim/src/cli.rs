//! `flowcat sim`: the command-line face of the simulator.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::app::Options;
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
    /// State file: loaded at start when it exists, saved on Ctrl-C.
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
    /// Clock skew allowed on request dates, in seconds (at least 60).
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub skew_secs: u64,
    /// Longest `auth_status` long-poll, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 3000)]
    pub long_poll_ms: u64,
}

impl SimArgs {
    /// The options these flags ask for.
    pub fn options(&self) -> Result<Options, Error> {
        let mut options = Options {
            skew: Duration::from_secs(self.skew_secs.max(60)),
            long_poll: Duration::from_millis(self.long_poll_ms),
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
        let now = crate::app::now_ms().div_euclid(1000);
        State::from_seed(&seed, now)
    }
}

/// Serves until Ctrl-C, then saves the state file (if one was named).
pub async fn run(args: SimArgs) -> Result<(), Error> {
    if !args.host.is_loopback() {
        return Err(Error::NotLoopback(args.host.to_string()));
    }
    let options = args.options()?;
    let state = args.initial_state()?;
    let sim = Sim::start(SocketAddr::new(args.host, args.port), state, options).await?;
    let addr = sim.addr();
    let mut line = format!("flowcat sim listening on http://{addr}");
    if let Some(path) = &args.write_integrations {
        integrations::write(path, addr, &sim.state().integrations)?;
        let names: Vec<String> = sim.state().integrations.iter().map(|i| format!("{} ({})", i.name, i.ikey)).collect();
        line.push_str(&format!("; wrote {} to {}", names.join(", "), path.display()));
    }
    println!("{line}; Ctrl-C to stop");
    tokio::signal::ctrl_c().await.map_err(Error::Signal)?;
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
}
