//! The vault operations of the local grammar against a service:
//! `points list`, `ls`, `restore`, `backup`, `check` and `prune`, with
//! `--vault` naming the service's vault instead of a location. The answers
//! are the shared types and are printed by the same functions as locally,
//! so the same command gives the same output in both modes.
//!
//! What runs in the service runs as a job; these commands wait for it, as
//! the local command waits for the work, and exit with its outcome.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use coffer_api_types::item::Item;
use coffer_api_types::job::{Job, JobState};
use coffer_api_types::vault::CheckRequest;
use coffer_api_types::{BackupSummary, Listing, PointSummary, RestoreParams, RestoreSummary};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::client::{path_segment, Client};
use super::{job_exit, show_job, wait_job};
use crate::commands::backup::print_backup_summary;
use crate::commands::ls::{print_entries, start_path, walk};
use crate::commands::points::print_point_list;
use crate::commands::restore::print_restore_summary;

#[derive(Subcommand)]
pub(crate) enum PointsCmd {
    /// List recovery points, oldest first.
    List {
        /// The vault's name in the service.
        #[arg(long)]
        vault: String,
        #[arg(long)]
        item: Option<String>,
    },
}

#[derive(Args)]
pub(crate) struct LsArgs {
    #[arg(long)]
    vault: String,
    /// Point id, unique id prefix, or `latest`.
    point: String,
    /// Only below this path (as backed up).
    path: Option<PathBuf>,
}

#[derive(Args)]
pub(crate) struct RestoreArgs {
    #[arg(long)]
    vault: String,
    /// Point id, unique id prefix, or `latest`.
    point: String,
    /// Directory on the service's machine to restore into (inside one of
    /// its restore roots), or on --host's; `/etc/x` becomes `DIR/etc/x`.
    #[arg(long, value_name = "DIR")]
    target: PathBuf,
    /// Restore only these paths (as backed up; repeatable).
    #[arg(long = "include", value_name = "PATH")]
    includes: Vec<PathBuf>,
    /// Replace files that exist under the target.
    #[arg(long)]
    overwrite: bool,
    /// Write on this registered agent's host instead of the service's
    /// machine (`--target /` puts an item back where it came from).
    #[arg(long, value_name = "AGENT")]
    host: Option<String>,
}

#[derive(Args)]
pub(crate) struct BackupArgs {
    /// The item's vault; when given, the item must be in it.
    #[arg(long)]
    vault: Option<String>,
    /// The protected item the service backs up.
    #[arg(long)]
    item: String,
    /// The service backs up the paths its item names; paths given here
    /// must be those.
    #[arg(value_name = "PATH")]
    paths: Vec<String>,
}

#[derive(Args)]
pub(crate) struct CheckArgs {
    #[arg(long)]
    vault: String,
    /// Also read and verify every pack.
    #[arg(long, conflicts_with = "read_data_subset")]
    read_data: bool,
    /// Read and verify this share of the pack data.
    #[arg(long, value_name = "PERCENT")]
    read_data_subset: Option<f64>,
}

#[derive(Args)]
pub(crate) struct PruneArgs {
    #[arg(long)]
    vault: String,
}

pub(crate) fn points(client: &Client, json: bool, cmd: PointsCmd) -> Result<ExitCode> {
    let PointsCmd::List { vault, item } = cmd;
    let list: Vec<PointSummary> =
        client.get_as(&format!("/vaults/{}/points", path_segment(&vault)))?;
    print_point_list(json, list, item.as_deref());
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn ls(client: &Client, json: bool, args: LsArgs) -> Result<ExitCode> {
    let start = start_path(args.path)?;
    let entries = |point: &str, dir: &str| -> Result<Listing> {
        client.get_as(&format!(
            "/vaults/{}/points/{}/entries?path={}",
            path_segment(&args.vault),
            path_segment(point),
            path_segment(dir)
        ))
    };
    // Later directories are read from the point the first answer names,
    // so `latest` cannot move while the walk goes on.
    let root = entries(&args.point, "/")?;
    let point = root.point.clone();
    let mut first = Some(root);
    let rows = walk(String::from("/"), &start, &mut |dir: &String, _| {
        let listing = match first.take() {
            Some(root) => root,
            None => entries(&point, dir)?,
        };
        Ok(listing
            .entries
            .into_iter()
            .map(|e| {
                let sub = (e.kind == "dir").then(|| e.path.clone());
                (e, sub)
            })
            .collect())
    })?;
    print_entries(json, &rows, &start, &point)
}

pub(crate) fn restore(client: &Client, json: bool, args: RestoreArgs) -> Result<ExitCode> {
    let text = |p: &PathBuf| p.to_string_lossy().into_owned();
    let params = RestoreParams {
        point: args.point,
        target: text(&args.target),
        includes: args.includes.iter().map(text).collect(),
        overwrite: args.overwrite,
        host: args.host.clone(),
    };
    let job: Job = client.post_as(
        &format!("/vaults/{}/restore", path_segment(&args.vault)),
        &params,
    )?;
    finish::<RestoreSummary>(client, json, &job, print_restore_summary)
}

pub(crate) fn backup(client: &Client, json: bool, args: BackupArgs) -> Result<ExitCode> {
    let item: Item = client.get_as(&format!("/items/{}", path_segment(&args.item)))?;
    if let Some(vault) = &args.vault {
        if &item.vault != vault {
            bail!("item {} is in vault {}, not {vault}", args.item, item.vault);
        }
    }
    if !args.paths.is_empty() && args.paths != item.paths {
        bail!(
            "through a service, item {} backs up its own paths ({}); leave the paths out, or back other paths up in local mode (without --server)",
            args.item,
            item.paths.join(" ")
        );
    }
    let job: Job = client.post_as(
        &format!("/items/{}/backup", path_segment(&args.item)),
        &json!({}),
    )?;
    finish::<BackupSummary>(client, json, &job, print_backup_summary)
}

pub(crate) fn check(client: &Client, json: bool, args: CheckArgs) -> Result<ExitCode> {
    let percent = match (args.read_data, args.read_data_subset) {
        (true, _) => 100.0,
        (false, Some(p)) => p,
        (false, None) => 0.0,
    };
    let job: Job = client.post_as(
        &format!("/vaults/{}/check", path_segment(&args.vault)),
        &CheckRequest {
            read_data_percent: percent,
        },
    )?;
    finish_job(client, json, &job)
}

pub(crate) fn prune(client: &Client, json: bool, args: PruneArgs) -> Result<ExitCode> {
    let job: Job = client.post_as(
        &format!("/vaults/{}/prune", path_segment(&args.vault)),
        &json!({}),
    )?;
    finish_job(client, json, &job)
}

/// Waits for the job to end. When it produced its result type, prints it
/// as the local command would, else prints the job; exits with the job's
/// outcome (a partial success stays partial even when the result looks whole).
fn finish<T: DeserializeOwned>(
    client: &Client,
    json: bool,
    job: &Job,
    print: impl FnOnce(bool, &T) -> ExitCode,
) -> Result<ExitCode> {
    let done = wait_job(client, job.id)?;
    let outcome = job_exit(&done);
    let result = done
        .result
        .clone()
        .and_then(|r| serde_json::from_value::<T>(r).ok());
    match result {
        Some(result) => {
            let printed = print(json, &result);
            Ok(if done.state == JobState::Succeeded {
                printed
            } else {
                outcome
            })
        }
        None => {
            print_job(json, &done);
            Ok(outcome)
        }
    }
}

/// Waits for the job to end, prints it and exits with its outcome.
fn finish_job(client: &Client, json: bool, job: &Job) -> Result<ExitCode> {
    let done = wait_job(client, job.id)?;
    print_job(json, &done);
    Ok(job_exit(&done))
}

fn print_job(json: bool, job: &Job) {
    if json {
        crate::output::print_json(job);
    } else {
        show_job(job);
    }
}
