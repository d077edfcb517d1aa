//! `flowcat init [DIR]`: a starting project. An integrations file whose keys come from the
//! environment, a `flows/` folder with one small flow that calls a built-in one, the flow
//! format's JSON Schema for editors, and the next steps. It never writes over a file.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};

const INTEGRATIONS: &str = "integrations.yaml";
const FLOW: &str = "flows/user-status.yaml";
const SCHEMA: &str = "flow.schema.json";

/// Nothing secret is written: every key is read from the environment when a flow runs.
const INTEGRATIONS_TEXT: &str = "\
# The Duo applications flows run against (docs/integrations.md in flowcat's repository).
# Every value comes from the environment; a host or an integration key may be written here
# instead, a secret key should not be.
integrations:
  duo_admin:
    kind: duo_admin
    host: ${DUO_ADMIN_HOST}        # api-xxxxxxxx.duosecurity.com
    ikey: ${DUO_ADMIN_IKEY}
    skey: ${DUO_ADMIN_SKEY}
    # Duo's rate limits are shared by every request of the application; this default sits 10 %
    # under the lowest category Duo publishes. Raise it if Duo raised your account's limits.
    # rate_limit: { per_minute: 180, burst: 10 }
  duo_auth:
    kind: duo_auth
    host: ${DUO_AUTH_HOST}
    ikey: ${DUO_AUTH_IKEY}
    skey: ${DUO_AUTH_SKEY}
    # rate_limit: { per_minute: 180, burst: 10 }   # the default, as above
";

const FLOW_TEXT: &str = "\
# yaml-language-server: $schema=../flow.schema.json
id: my.user_status
name: A user's Duo status
description: >
  Looks a user up with the built-in flow `duo.admin.retrieve_user_id` (`flowcat list` shows
  every built-in flow) and says whether Duo has the user, and the user's status.
integrations:
  duo_admin:
    kind: duo_admin
    description: a Duo Admin API application with the \"Grant read resource\" permission
inputs:
  username:
    type: string
    description: the user's Duo username, e.g. `jdoe`
nodes:
  - id: user
    kind: subflow
    flow: duo.admin.retrieve_user_id
    with:
      username: \"{{inputs.username}}\"
outputs:
  found:
    value: \"{{nodes.user.found}}\"
    description: whether Duo has such a user
  status:
    value: \"{{nodes.user.status}}\"
    description: \"the user's status (`active`, `bypass`, `disabled`, `locked out`), or null\"
";

pub fn init(dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let dir = dir.unwrap_or_else(|| PathBuf::from("."));
    let schema = flowcat_engine::schema::schema(&flowcat_nodes::REGISTRY);
    let schema = serde_json::to_string_pretty(&schema).context("rendering the schema")? + "\n";
    let files = [(INTEGRATIONS, INTEGRATIONS_TEXT.to_owned()), (FLOW, FLOW_TEXT.to_owned()), (SCHEMA, schema)];
    let taken: Vec<String> =
        files.iter().map(|(name, _)| dir.join(name)).filter(|p| p.exists()).map(|p| shown(&p)).collect();
    if !taken.is_empty() {
        bail!(
            "`flowcat init` writes over nothing, and {} already exist{}: move {} away or choose another folder",
            taken.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>().join(", "),
            if taken.len() == 1 { "s" } else { "" },
            if taken.len() == 1 { "it" } else { "them" },
        );
    }
    for (name, text) in &files {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("cannot create `{}`", shown(parent)))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write `{}`", shown(&path)))?;
    }
    print!("{}", next_steps(&dir));
    Ok(ExitCode::SUCCESS)
}

fn shown(path: &Path) -> String {
    path.strip_prefix(".").unwrap_or(path).display().to_string()
}

fn next_steps(dir: &Path) -> String {
    let cd = if dir == Path::new(".") { String::new() } else { format!("  cd {}\n", dir.display()) };
    format!(
        "Wrote {INTEGRATIONS} (Duo Admin API and Auth API applications, keys from the environment),
{FLOW} (a first flow, calling a built-in one) and {SCHEMA} (the flow format, for editors).

Next:
{cd}  flowcat validate                    # your flows, checked with the built-in ones
  flowcat list                        # every flow you can run or call
  # Offline, against a Duo simulator:
  flowcat sim --port 8443 --write-integrations sim.yaml &
  flowcat run my.user_status -i username=alice --integrations sim.yaml
  # Against your Duo account: create the applications in the Duo Admin Panel, then
  export DUO_ADMIN_HOST=api-xxxxxxxx.duosecurity.com DUO_ADMIN_IKEY=DI... DUO_ADMIN_SKEY=...
  export DUO_AUTH_HOST=api-xxxxxxxx.duosecurity.com DUO_AUTH_IKEY=DI... DUO_AUTH_SKEY=...
  flowcat integrations check
  flowcat run my.user_status -i username=jdoe
"
    )
}
