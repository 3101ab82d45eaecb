//! `coffer --server URL agent …`: registration tokens and the registered
//! agents, as an administrator manages them, and `agent register`, which a
//! host runs once with a token (given with `--token`, where other remote
//! commands take an API token).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use serde_json::json;

use coffer_api_types::agent::{
    Agent, AgentState, CreatedRegistrationToken, NewRegistrationToken, RegistrationToken,
};

use super::client::{path_segment, Client};
use super::{print, time};
use crate::output::time_secs;

#[derive(Subcommand)]
pub(super) enum AgentCmd {
    /// Register this host with the service (`--token` is the registration
    /// token an administrator created); its identity goes to --state-dir.
    Register {
        /// The agent's name in the service (default: the host name).
        #[arg(long)]
        name: Option<String>,
        #[arg(long, env = "COFFER_AGENT_DIR", value_name = "DIR")]
        state_dir: Option<PathBuf>,
        /// Let the service's administrators run programs on this host
        /// (pre/post scripts, command items).
        #[arg(long)]
        allow_commands: bool,
        /// Accept a service on plain HTTP at an address that is not
        /// loopback (the agent's secret would travel in clear).
        #[arg(long)]
        allow_plain_http: bool,
    },
    /// One-time registration tokens.
    #[command(subcommand)]
    Token(AgentTokenCmd),
    /// The registered agents.
    List,
    Show {
        name: String,
    },
    /// Let a disabled agent work again.
    Enable {
        name: String,
    },
    /// Refuse everything the agent sends until it is enabled.
    Disable {
        name: String,
    },
    /// Give the agent a new secret at its next contact.
    Rekey {
        name: String,
    },
    /// Remove the agent and revoke its credential in the vault.
    Remove {
        name: String,
    },
    /// Show or change how fast agents' backups may send data, in and out
    /// of work hours.
    Bandwidth(super::bandwidth::BandwidthArgs),
}

#[derive(Subcommand)]
pub(super) enum AgentTokenCmd {
    /// Create a token for a host to register with; shown once.
    Create {
        #[arg(long)]
        vault: String,
        /// How long it stays valid: 30m, 24h, 7d (default 24h).
        #[arg(long, value_name = "DURATION")]
        expires: Option<String>,
    },
    List,
    /// Withdraw an unused token.
    Delete {
        id: i64,
    },
}

/// `30m`, `24h`, `7d` or plain seconds.
fn duration_secs(text: &str) -> Result<u64> {
    let (number, unit) = text.split_at(
        text.trim_end_matches(|c: char| c.is_ascii_alphabetic())
            .len(),
    );
    let n: u64 = number
        .parse()
        .map_err(|_| anyhow::anyhow!("--expires {text:?}: write it as 30m, 24h or 7d"))?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => anyhow::bail!("--expires {text:?}: the unit is s, m, h or d"),
    };
    Ok(n.saturating_mul(scale))
}

/// `agent register`, which needs no API token.
pub(super) fn register(
    server: &str,
    token: Option<&str>,
    json: bool,
    cmd: AgentCmd,
) -> Result<ExitCode> {
    let AgentCmd::Register {
        name,
        state_dir,
        allow_commands,
        allow_plain_http,
    } = cmd
    else {
        anyhow::bail!("not a registration");
    };
    let token = token.ok_or_else(|| {
        anyhow::anyhow!("give the registration token with --token (an administrator creates one with `coffer agent token create --vault VAULT`)")
    })?;
    let state_dir = state_dir.unwrap_or_else(coffer_agent::identity::default_dir);
    let identity = coffer_agent::run::register(&coffer_agent::run::Registration {
        token: token.to_string(),
        url: Some(server.to_string()),
        name,
        state_dir: state_dir.clone(),
        allow_commands,
        allow_plain_http,
    })?;
    print(
        json,
        &json!({"name": identity.name, "vault": identity.vault, "state_dir": state_dir}),
        |_| {
            println!(
                "registered as agent {} of vault {}; identity kept in {}\nstart it with `coffer agent run --state-dir {}` (or the coffer-agent systemd unit)",
                identity.name,
                identity.vault,
                state_dir.display(),
                state_dir.display()
            )
        },
    );
    Ok(ExitCode::SUCCESS)
}

pub(super) fn run(client: &Client, json: bool, cmd: AgentCmd) -> Result<ExitCode> {
    match cmd {
        AgentCmd::Register { .. } => anyhow::bail!("registration is handled before"),
        AgentCmd::Token(t) => token(client, json, t)?,
        AgentCmd::List => {
            let agents: Vec<Agent> = client.get_as("/agents")?;
            print(json, &agents, |agents| {
                for a in agents {
                    println!("{}", line(a));
                }
            });
        }
        AgentCmd::Show { name } => {
            let a: Agent = client.get_as(&format!("/agents/{}", path_segment(&name)))?;
            print(json, &a, |a| {
                println!("{}", line(a));
                println!("  items: {}", a.items.join(", "));
                println!(
                    "  os: {}; address: {}",
                    a.host.os,
                    a.address.as_deref().unwrap_or("-")
                );
            });
        }
        AgentCmd::Bandwidth(args) => super::bandwidth::run(client, json, args)?,
        AgentCmd::Enable { name } => change(client, json, &name, "enable")?,
        AgentCmd::Disable { name } => change(client, json, &name, "disable")?,
        AgentCmd::Rekey { name } => change(client, json, &name, "rekey")?,
        AgentCmd::Remove { name } => {
            client.call(
                reqwest::Method::DELETE,
                &format!("/agents/{}", path_segment(&name)),
                None,
            )?;
            if !json {
                println!("agent {name} removed; its credential is revoked");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn line(a: &Agent) -> String {
    format!(
        "{} vault {} host {} ({}) {}{} last contact {} last success {}",
        a.name,
        a.vault,
        a.host.hostname,
        a.host.version,
        if a.state == AgentState::Disabled {
            "DISABLED "
        } else {
            ""
        },
        if a.unreachable {
            "UNREACHABLE"
        } else {
            "in contact"
        },
        time(a.last_contact),
        time(a.last_success)
    )
}

fn change(client: &Client, json: bool, name: &str, action: &str) -> Result<()> {
    let a: Agent = client.post_as(
        &format!("/agents/{}", path_segment(name)),
        &json!({ "action": action }),
    )?;
    print(json, &a, |a| println!("{}", line(a)));
    Ok(())
}

fn token(client: &Client, json: bool, cmd: AgentTokenCmd) -> Result<()> {
    match cmd {
        AgentTokenCmd::Create { vault, expires } => {
            let expires_in_secs = expires.as_deref().map(duration_secs).transpose()?;
            let made: CreatedRegistrationToken = client.post_as(
                "/agents/tokens",
                &NewRegistrationToken {
                    vault,
                    expires_in_secs,
                },
            )?;
            print(json, &made, |made| {
                println!(
                    "registration token {} for vault {}, valid until {}, usable once:\n\n    {}\n\non the host: coffer agent register --server URL --token TOKEN",
                    made.token.id,
                    made.token.vault,
                    time_secs(made.token.expires),
                    made.text
                )
            });
        }
        AgentTokenCmd::List => {
            let tokens: Vec<RegistrationToken> = client.get_as("/agents/tokens")?;
            print(json, &tokens, |tokens| {
                for t in tokens {
                    println!(
                        "{} vault {} by {}, expires {}, {}",
                        t.id,
                        t.vault,
                        t.created_by,
                        time_secs(t.expires),
                        t.used_by
                            .as_deref()
                            .map(|a| format!("used by {a}"))
                            .unwrap_or_else(|| "unused".into())
                    );
                }
            });
        }
        AgentTokenCmd::Delete { id } => {
            client.call(
                reqwest::Method::DELETE,
                &format!("/agents/tokens/{id}"),
                None,
            )?;
            if !json {
                println!("registration token {id} withdrawn");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_with_their_units() {
        assert_eq!(duration_secs("30m").unwrap(), 1800);
        assert_eq!(duration_secs("24h").unwrap(), 86400);
        assert_eq!(duration_secs("7d").unwrap(), 7 * 86400);
        assert_eq!(duration_secs("90").unwrap(), 90);
        assert!(duration_secs("1w").is_err());
        assert!(duration_secs("h").is_err());
    }
}
