//! `coffer agent run` and `coffer agent status`: the agent's side on its
//! host, working from the identity `coffer --server URL agent register`
//! left in the state directory. An administrator's agent commands (tokens,
//! the list, disabling, removing) go through the service: `coffer --server
//! URL agent …`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
pub(crate) enum AgentCommand {
    /// Take work from the service and run it, until stopped.
    Run {
        #[arg(long, env = "COFFER_AGENT_DIR", value_name = "DIR")]
        state_dir: Option<PathBuf>,
        /// Accept a service on plain HTTP at an address that is not loopback.
        #[arg(long)]
        allow_plain_http: bool,
    },
    /// Which service and vault this host is registered with.
    Status {
        #[arg(long, env = "COFFER_AGENT_DIR", value_name = "DIR")]
        state_dir: Option<PathBuf>,
    },
}

pub(crate) fn run(json: bool, cmd: AgentCommand) -> Result<ExitCode> {
    match cmd {
        AgentCommand::Run {
            state_dir,
            allow_plain_http,
        } => {
            let dir = state_dir.unwrap_or_else(coffer_agent::identity::default_dir);
            let mut agent = coffer_agent::run::Agent::open(&dir, allow_plain_http)?;
            let stop = Arc::new(AtomicBool::new(false));
            agent.run(&stop)?;
            Ok(ExitCode::SUCCESS)
        }
        AgentCommand::Status { state_dir } => {
            let dir = state_dir.unwrap_or_else(coffer_agent::identity::default_dir);
            let id = coffer_agent::Identity::load(&dir)?;
            let shown = serde_json::json!({
                "name": id.name,
                "vault": id.vault,
                "service": id.url,
                "fingerprint": id.fingerprint,
                "allow_commands": id.allow_commands,
            });
            if json {
                crate::output::print_json(&shown);
            } else {
                println!(
                    "agent {} of vault {} at {}{}",
                    id.name,
                    id.vault,
                    id.url,
                    if id.allow_commands {
                        " (runs the items' commands)"
                    } else {
                        ""
                    }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
