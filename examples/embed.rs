//! Embedding flowcat in a Rust program: load the catalog, bind integrations, run a flow by id,
//! read the run record. Offline: a Duo simulator is started in-process on a loopback port.
//!
//! `cargo run --example embed`

use flowcat_nodes::embed::{Flowcat, load_catalog};
use flowcat_sim::{Seed, Sim};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A stand-in for Duo; with a real account, use `Flowcat::open(&["flows"], "integrations.yaml")`.
    let sim = Sim::start_seed("127.0.0.1:0".parse()?, &Seed::demo(), flowcat_sim::Options::default()).await?;
    let text = flowcat_sim::integrations::render(sim.addr(), &sim.state().integrations);
    let integrations = flowcat_nodes::integrations::parse("sim.yaml".as_ref(), &text, &|_| None)
        .map_err(|e| e.messages().join("\n"))?;

    let flowcat = Flowcat::new(load_catalog(&["flows"])?, integrations);
    let record = flowcat.run("duo.admin.retrieve_user_id", serde_json::json!({ "username": "alice" })).await?;
    println!("status: {:?}", record.status);
    println!("alice's user_id: {}", record.outputs["user_id"]);
    for node in &record.nodes {
        println!("  {} {:?} in {:.1} ms", node.id, node.status, node.duration_ms.unwrap_or_default());
    }
    sim.shutdown().await;
    Ok(())
}
