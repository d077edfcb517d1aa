//! `flowcat demo`: the whole product in a few seconds, with no configuration: a Duo simulator
//! started in-process on a free loopback port, integrations bound to it, and the
//! `onboard-employee` automation run for a sample employee, in words a help desk understands.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, anyhow};
use flowcat_engine::run::{Options, RunRequest, RunStatus, Runner};
use flowcat_nodes::http::Clients;
use flowcat_sim::{Seed, Sim};
use serde_json::{Map, Value, json};

use crate::commands::CatalogDir;
use crate::live::Live;

const FLOW: &str = "examples.onboard_employee";

pub fn demo(catalog: &CatalogDir) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run(catalog))
}

async fn run(catalog_dir: &CatalogDir) -> anyhow::Result<ExitCode> {
    let addr: SocketAddr = "127.0.0.1:0".parse()?;
    let sim = Sim::start_seed(addr, &Seed::demo(), flowcat_sim::Options::default())
        .await
        .context("starting the simulator")?;
    println!("flowcat demo: no Duo account is touched. A Duo simulator is listening on {}.", sim.addr());
    let text = flowcat_sim::integrations::render(sim.addr(), &sim.state().integrations);
    let file = flowcat_nodes::integrations::parse(Path::new("(the simulator's integrations)"), &text, &|_| None)
        .map_err(|e| anyhow!(e.messages().join("\n")))?;
    let catalog = crate::commands::load_with_examples(catalog_dir)?;
    let flow = catalog
        .get(FLOW)
        .ok_or_else(|| anyhow!("the example `{FLOW}` is missing or has errors: run `flowcat validate`"))?;
    let bindings = flowcat_nodes::bind::bind(flow, &file, &[], &Clients::new()).map_err(|p| anyhow!(p.join("\n")))?;
    let inputs = sample();
    println!(
        "Onboarding a sample employee, {} <{}>, with the phone {}:\n  enrol the user, give them the phone and send the activation SMS, then check with a Duo Push.\n",
        inputs["username"].as_str().unwrap_or_default(),
        inputs["email"].as_str().unwrap_or_default(),
        inputs["number"].as_str().unwrap_or_default(),
    );
    let live = Live::start(std::io::IsTerminal::is_terminal(&std::io::stderr()), false);
    let runner = Runner::new(Arc::new(catalog), Options::default(), live.clone());
    let record = runner.run(RunRequest { flow: FLOW.into(), inputs, vars: Map::new(), bindings }).await;
    live.stop();
    let record = record?;
    println!();
    match &record.error {
        None => println!("Done. {}", verdict(&record.outputs)),
        Some(f) => println!("The onboarding stopped at `{}`: {}", f.node, f.message),
    }
    println!("\nWhat changed in the (simulated) Duo account:");
    for entry in sim.audit() {
        println!("  - {}", describe(&entry.change, &entry.detail));
    }
    println!("{}", REAL_DUO);
    sim.shutdown().await;
    Ok(if record.status == RunStatus::Succeeded { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn sample() -> Map<String, Value> {
    let v = json!({
        "username": "jdoe",
        "email": "jane.doe@example.com",
        "number": "+15555550142",
        "phone_name": "Jane's phone",
    });
    v.as_object().cloned().unwrap_or_default()
}

fn verdict(outputs: &Map<String, Value>) -> String {
    let s = |k: &str| outputs.get(k).and_then(Value::as_str).unwrap_or("?").to_owned();
    let enrolled = if s("enrollment") == "already_enrolled" {
        "was already enrolled"
    } else {
        "is enrolled (Duo emailed the enrolment link)"
    };
    let phone = if s("association") == "already_associated" {
        "already had the phone"
    } else {
        "has the phone attached and its activation SMS sent"
    };
    let push = if s("outcome") == "verified" { "approved the Duo Push" } else { "did not approve the Duo Push" };
    format!("jdoe {enrolled}, {phone}, and {push}.")
}

/// One audit entry in words.
fn describe(change: &str, detail: &Value) -> String {
    let d = |k: &str| detail.get(k).and_then(Value::as_str).unwrap_or("?").to_owned();
    match change {
        "user.enroll" => format!("enrolment email sent to {} for user {}", d("email"), d("username")),
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
  3. flowcat run examples.onboard_employee -i username=... -i email=... -i number=+1...";
