//! `coffer --server URL policy …`: the local command line's policy grammar
//! against a service. The flags are applied onto the policy's shared
//! specification exactly as locally, and the service's engine validates
//! the result; the answers are the shared [`PolicyView`].

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use coffer_api_types::PolicyView;
use reqwest::Method;

use super::client::{path_segment, Client};
use crate::commands::policy::{
    apply_flags, new_spec, print_policy, print_policy_line, PolicyFlags,
};
use crate::output::print_json;

#[derive(Subcommand)]
pub(crate) enum PolicyCmd {
    /// Create a policy (unset rules are absent; the schedule defaults to daily 22:00 UTC).
    Create {
        name: String,
        /// The vault's name in the service.
        #[arg(long)]
        vault: String,
        #[command(flatten)]
        flags: PolicyFlags,
    },
    /// Change a policy: only the options given change. Applies to existing points.
    Set {
        name: String,
        #[arg(long)]
        vault: String,
        #[command(flatten)]
        flags: PolicyFlags,
    },
    /// Show one policy and the items that follow it.
    Show {
        name: String,
        #[arg(long)]
        vault: String,
    },
    /// List policies.
    List {
        #[arg(long)]
        vault: String,
    },
    /// Delete a policy no item follows.
    Delete {
        name: String,
        #[arg(long)]
        vault: String,
    },
}

fn policies(client: &Client, vault: &str) -> Result<Vec<PolicyView>> {
    client.get_as(&format!("/vaults/{}/policies", path_segment(vault)))
}

fn find(client: &Client, vault: &str, name: &str) -> Result<Option<PolicyView>> {
    Ok(policies(client, vault)?
        .into_iter()
        .find(|p| p.name == name))
}

fn policy_path(vault: &str, name: &str) -> String {
    format!(
        "/vaults/{}/policies/{}",
        path_segment(vault),
        path_segment(name)
    )
}

pub(crate) fn run(client: &Client, json: bool, cmd: PolicyCmd) -> Result<ExitCode> {
    match cmd {
        PolicyCmd::Create { name, vault, flags } => {
            if find(client, &vault, &name)?.is_some() {
                bail!("a policy named {name:?} exists already; change it with `coffer policy set`");
            }
            let mut spec = new_spec();
            apply_flags(&mut spec, &flags)?;
            let view: PolicyView =
                client.typed(Method::PUT, &policy_path(&vault, &name), Some(&spec))?;
            show(json, &view, "created policy")
        }
        PolicyCmd::Set { name, vault, flags } => {
            let old = find(client, &vault, &name)?.with_context(|| {
                format!("no policy named {name:?} in vault {vault} (see `coffer policy list`)")
            })?;
            let mut spec = old.spec();
            apply_flags(&mut spec, &flags)?;
            let view: PolicyView =
                client.typed(Method::PUT, &policy_path(&vault, &name), Some(&spec))?;
            show(json, &view, "policy")
        }
        PolicyCmd::Show { name, vault } => {
            let view = find(client, &vault, &name)?.with_context(|| {
                format!("no policy named {name:?} in vault {vault} (see `coffer policy list`)")
            })?;
            if json {
                print_json(&view);
            } else {
                print_policy(&view);
            }
        }
        PolicyCmd::List { vault } => {
            let views = policies(client, &vault)?;
            if json {
                print_json(&views);
            } else {
                views.iter().for_each(print_policy_line);
            }
        }
        PolicyCmd::Delete { name, vault } => {
            client.call(Method::DELETE, &policy_path(&vault, &name), None)?;
            if !json {
                println!("deleted policy {name}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn show(json: bool, view: &PolicyView, what: &str) {
    if json {
        print_json(view);
    } else {
        println!(
            "{what} {}: {}; {}",
            view.name, view.schedule, view.retention
        );
    }
}
