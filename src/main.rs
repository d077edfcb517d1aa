//! The `flowcat` binary: validate, draw, list and run flows.

fn main() -> anyhow::Result<()> {
    Ok(())
}
