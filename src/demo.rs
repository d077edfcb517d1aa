//! `flowcat demo`: the whole product in a few seconds, with no configuration: a Duo simulator
//! started in-process on a free loopback port, integrations bound to it, and the
//! `onboard-employee` automation run for a sample employee the way it goes on a real Duo
//! account: Duo creates the user only once the enrolment link is used, and the phone takes a Duo
//! Push only once its user has opened the activation link. The demo plays the employee's part
//! (opening both links) through the simulator's control API, and says so.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, anyhow};
use flowcat_engine::Catalog;
use flowcat_engine::run::{Options, RunRecord, RunStatus};
use flowcat_nodes::hall::{Call, Hall};
use flowcat_nodes::integrations::Integrations;
use flowcat_sim::{PhoneRef, Seed, Sim};
use serde_json::{Map, Value, json};

use crate::flows::Flows;
use crate::live::Live;

const ONBOARD: &str = "examples.onboard_employee";
const VERIFY: &str = "duo.auth.verify_push";

/// The simulator's clock runs this many times faster than real time, so the employee's few
/// seconds to answer the push pass quickly; every wait is still Duo's, in Duo's order.
const TIME_SCALE: f64 = 10.0;

pub fn demo(flows: &Flows) -> anyhow::Result<ExitCode> {
    // Both flows and their subflows, built-in or local; nothing else is compiled.
    let mut library = flows.library_for_run(&[])?;
    let mut sources = Vec::new();
    for flow in [ONBOARD, VERIFY] {
        sources.extend(library.load_for(flow, &flowcat_nodes::REGISTRY)?.entries.into_iter().map(|e| e.source));
    }
    sources.sort_by(|a, b| a.path.cmp(&b.path));
    sources.dedup_by(|a, b| a.path == b.path);
    let catalog = Catalog::load(sources, &flowcat_nodes::REGISTRY);
    Flows::notes(&library, Some(&catalog));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run(Arc::new(catalog)))
}

/// What every run of the demo shares.
struct Demo {
    sim: Sim,
    catalog: Arc<Catalog>,
    file: Integrations,
    /// `-q`: no story and no live view; only what changed, and where the demo stopped if it did.
    quiet: bool,
}

/// Prints a line of the demo's story, unless `-q`.
macro_rules! say {
    ($quiet:expr, $($arg:tt)*) => {
        if !$quiet {
            println!($($arg)*);
        }
    };
}

async fn run(catalog: Arc<Catalog>) -> anyhow::Result<ExitCode> {
    let quiet = crate::ui::get().quiet;
    let addr: SocketAddr = "127.0.0.1:0".parse()?;
    let options = flowcat_sim::Options { time_scale: TIME_SCALE, ..flowcat_sim::Options::default() };
    let sim = Sim::start_seed(addr, &Seed::demo(), options).await.context("starting the simulator")?;
    say!(quiet, "flowcat demo: no Duo account is touched. A Duo simulator is listening on {}.", sim.addr());
    let text = flowcat_sim::integrations::render(sim.addr(), &sim.state().integrations);
    let file = flowcat_nodes::integrations::parse(Path::new("(the simulator's integrations)"), &text, &|_| None)
        .map_err(|e| anyhow!(e.messages().join("\n")))?;
    let demo = Demo { sim, catalog, file, quiet };
    let inputs = sample();
    let (username, number) = (text_of(&inputs, "username"), text_of(&inputs, "number"));
    say!(
        quiet,
        "Onboarding a sample employee, {username} <{}>, with the phone {number}, as on a real Duo account:\n",
        text_of(&inputs, "email"),
    );
    let outcome = |r: &RunRecord| r.outputs.get("outcome").and_then(Value::as_str).unwrap_or("?").to_owned();

    say!(quiet, "1. {ONBOARD}: enrol {username}.");
    let first = demo.run(ONBOARD, inputs.clone()).await?;
    if !first.ok || outcome(&first.record) != "enrollment_sent" {
        return demo.stop(first.record, "the enrolment").await;
    }
    say!(quiet, "   → enrollment_sent: Duo emailed the enrolment link; Duo creates the user once it is used.");
    say!(quiet, "   (The demo now plays {username} and opens the enrolment link.)\n");
    demo.sim.follow_enrollment(&username, None).map_err(|e| anyhow!("the simulator: {e}"))?;

    say!(quiet, "2. {ONBOARD} again: give {username} the phone and send its activation SMS.");
    let second = demo.run(ONBOARD, inputs.clone()).await?;
    if !second.ok || outcome(&second.record) != "activation_sent" {
        return demo.stop(second.record, "the phone").await;
    }
    say!(quiet, "   → activation_sent: a phone takes a Duo Push only once its user has opened that link.");
    say!(quiet, "   (The demo plays {username} again and opens the activation link on the phone.)\n");
    demo.sim.follow_activation(&PhoneRef::Number(number)).map_err(|e| anyhow!("the simulator: {e}"))?;

    say!(quiet, "3. {VERIFY}: check with a Duo Push that {username} can sign in.");
    let third = demo.run(VERIFY, object(json!({ "username": username, "type": "Onboarding check" }))).await?;
    let verified = third.record.outputs.get("verified") == Some(&Value::Bool(true));
    if !third.ok || !verified {
        return demo.stop(third.record, "the verification push").await;
    }
    say!(quiet, "   → allow: {username} approved the push. Onboarded.\n");
    demo.finish(true).await
}

/// A run's record and whether it succeeded.
struct Ran {
    record: RunRecord,
    ok: bool,
}

impl Demo {
    /// One run through the front hall, with its own live view (none with `-q`; `-v` adds what it
    /// adds to `run`'s).
    async fn run(&self, flow: &str, inputs: Map<String, Value>) -> anyhow::Result<Ran> {
        let settings = crate::live::Settings {
            terminal: std::io::IsTerminal::is_terminal(&std::io::stderr()),
            quiet: self.quiet,
            verbose: crate::ui::get().verbose,
        };
        let live = Live::start(settings);
        let hall =
            Hall::new(self.catalog.clone(), Options::default(), live.clone()).with_integrations(self.file.clone());
        let checked = hall.prepare(Call::new(flow, inputs));
        let record = match checked {
            Ok(checked) => {
                live.header(checked.flow(), &crate::run::targets(checked.bindings()));
                hall.run_checked(checked).await
            }
            Err(refused) => Err(refused),
        };
        live.stop();
        let record = record?;
        let ok = record.status == RunStatus::Succeeded;
        Ok(Ran { record, ok })
    }

    /// Says where the demo stopped, then finishes.
    async fn stop(self, record: RunRecord, step: &str) -> anyhow::Result<ExitCode> {
        match &record.error {
            Some(f) => println!("The demo stopped at {step}, node `{}`: {}", f.node, f.message),
            None => println!("The demo stopped at {step}: unexpected outcome {}", Value::Object(record.outputs)),
        }
        self.finish(false).await
    }

    async fn finish(self, ok: bool) -> anyhow::Result<ExitCode> {
        println!("What changed in the (simulated) Duo account:");
        for entry in self.sim.audit() {
            println!("  - {}", describe(&entry.change, &entry.detail));
        }
        say!(self.quiet, "{REAL_DUO}");
        self.sim.shutdown().await;
        Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
    }
}

fn sample() -> Map<String, Value> {
    object(json!({
        "username": "jdoe",
        "email": "jane.doe@example.com",
        "number": "+15555550142",
        "phone_name": "Jane's phone",
    }))
}

fn object(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

fn text_of(m: &Map<String, Value>, key: &str) -> String {
    m.get(key).and_then(Value::as_str).unwrap_or_default().to_owned()
}

/// One audit entry in words.
fn describe(change: &str, detail: &Value) -> String {
    let d = |k: &str| detail.get(k).and_then(Value::as_str).unwrap_or("?").to_owned();
    match change {
        "user.enroll" => format!("enrolment email sent to {} for user {}", d("email"), d("username")),
        "enrollment.complete" => {
            format!("user {} opened the enrolment link: user {} created", d("username"), d("user_id"))
        }
        "phone.activate" => format!("Duo Mobile activated on phone {} (its user opened the link)", d("number")),
        "user.create" => format!("user {} created ({})", d("username"), d("user_id")),
        "phone.create" => format!("phone {} created ({})", d("number"), d("phone_id")),
        "phone.associate" => format!("phone {} attached to user {}", d("phone_id"), d("user_id")),
        "phone.sms_activation" => format!("activation SMS sent to phone {}", d("phone_id")),
        "push.send" => format!("Duo Push sent to user {}", d("username")),
        other => format!("{other}: {detail}"),
    }
}

const REAL_DUO: &str = "
To run the same automation against your own Duo account:
  1. In the Duo Admin Panel, protect a \"Duo Admin API\" application (grant read and write
     resource) and a \"Duo Auth API\" application; note each one's integration key, secret key
     and API hostname (docs/integrations.md walks through it).
  2. Write them into integrations.yaml as `duo_admin` and `duo_auth`, with the secret keys in
     environment variables (`skey: ${DUO_ADMIN_SKEY}`); check them with
     `flowcat integrations check`.
  3. flowcat run examples.onboard_employee -i username=... -i email=... -i number=+1...
     and, once the employee has opened the links, flowcat run duo.auth.verify_push -i username=...";
