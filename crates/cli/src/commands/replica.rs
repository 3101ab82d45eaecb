//! `coffer vault replica` and `coffer vault replicate`: full copies of the
//! vault at other locations, synchronous or asynchronous, their lag, and
//! the copying that brings them up to date.

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Subcommand;
use serde_json::json;

use crate::ctx::{Ctx, VaultArg};
use crate::exit;
use crate::output::{print_json, size, time_secs};

#[derive(Subcommand)]
pub(crate) enum ReplicaCommand {
    /// Add a replica location and copy the vault there.
    Add {
        #[command(flatten)]
        vault: VaultArg,
        /// The replica's location (any kind of location).
        #[arg(value_name = "LOC")]
        location: String,
        /// sync: every object reaches the replica before a point is
        /// committed (like zone-redundant storage); async: `vault
        /// replicate` fills it, and its lag is the recovery point objective
        /// (like geo-redundant storage).
        #[arg(long, default_value = "async", value_parser = ["sync", "async"])]
        mode: String,
    },
    /// List replicas with their mode, last replication and lag.
    List {
        #[command(flatten)]
        vault: VaultArg,
    },
    /// Stop keeping a replica (its data stays where it is).
    Remove {
        #[command(flatten)]
        vault: VaultArg,
        #[arg(value_name = "LOC")]
        location: String,
    },
}

pub(crate) fn run(ctx: &Ctx, cmd: ReplicaCommand) -> Result<ExitCode> {
    match cmd {
        ReplicaCommand::Add {
            vault,
            location,
            mode,
        } => add(ctx, vault, location, mode),
        ReplicaCommand::List { vault } => list(ctx, vault),
        ReplicaCommand::Remove { vault, location } => remove(ctx, vault, location),
    }
}

fn add(ctx: &Ctx, vault: VaultArg, location: String, mode: String) -> Result<ExitCode> {
    let v = ctx.open(&vault.vault)?;
    let probe = coffer_engine::probe::run(&ctx.storage(&location)?);
    if let Some(failure) = probe.failure {
        let step = probe
            .steps
            .iter()
            .find(|s| !s.ok)
            .map(|s| s.detail.clone())
            .unwrap_or_default();
        bail!(
            "the replica location does not work ({failure}): {step}\nhint: {}",
            failure.remedy()
        );
    }
    if probe.holds_vault {
        eprintln!("note: {location} already holds a vault; objects the vault does not have will be removed from it");
    }
    let mode = match mode.as_str() {
        "sync" => coffer_engine::journal::ReplicaMode::Sync,
        _ => coffer_engine::journal::ReplicaMode::Async,
    };
    let report = coffer_engine::replica::add(&v, &location, mode)?;
    println!(
        "added {} replica {location}: {} object(s) copied and verified ({})",
        mode.name(),
        report.copied,
        size(report.copied_bytes)
    );
    Ok(ExitCode::SUCCESS)
}

fn list(ctx: &Ctx, vault: VaultArg) -> Result<ExitCode> {
    let v = ctx.open(&vault.vault)?;
    let state = v.state()?;
    let now = crate::output::now_secs();
    let mut rows = Vec::new();
    for (location, r) in &state.replicas {
        let behind = ctx
            .storage(location)
            .and_then(|s| Ok(coffer_engine::replica::behind(&v, &s)?));
        rows.push((location.clone(), r.clone(), behind));
    }
    if ctx.json {
        let list: Vec<_> = rows
            .iter()
            .map(|(l, r, b)| {
                json!({
                    "location": l,
                    "mode": r.mode.name(),
                    "synced_as_of": r.synced_as_of,
                    "lag_seconds": r.synced_as_of.map(|t| (now - t).max(0)),
                    "missing_objects": b.as_ref().ok().map(|b| b.missing_objects),
                    "missing_bytes": b.as_ref().ok().map(|b| b.missing_bytes),
                    "missing_points": b.as_ref().ok().map(|b| b.missing_points),
                    "error": b.as_ref().err().map(|e| format!("{e:#}")),
                })
            })
            .collect();
        print_json(&json!({ "replicas": list }));
    } else if rows.is_empty() {
        println!("no replicas; add one with `coffer vault replica add LOC --mode sync|async`");
    } else {
        for (l, r, b) in &rows {
            let synced = match r.synced_as_of {
                Some(t) => format!(
                    "synced as of {} (lag {})",
                    time_secs(t),
                    crate::output::span((now - t).max(0))
                ),
                None => "never synced".to_string(),
            };
            let state = match b {
                Ok(b) if b.missing_objects == 0 => "complete".to_string(),
                Ok(b) => format!(
                    "behind by {} object(s), {} ({} point(s))",
                    b.missing_objects,
                    size(b.missing_bytes),
                    b.missing_points
                ),
                Err(e) => format!("unavailable: {e:#}"),
            };
            println!("{l}  {}  {synced}  {state}", r.mode.name());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn remove(ctx: &Ctx, vault: VaultArg, location: String) -> Result<ExitCode> {
    let v = ctx.open(&vault.vault)?;
    coffer_engine::replica::remove(&v, &location)?;
    println!("{location} is no longer a replica of this vault; its data stays there");
    Ok(ExitCode::SUCCESS)
}

pub(super) fn replicate(ctx: &Ctx, vault: VaultArg, replica: Option<String>) -> Result<ExitCode> {
    let v = ctx.open(&vault.vault)?;
    let state = v.state()?;
    let targets: Vec<String> = match replica {
        Some(r) if state.replicas.contains_key(&r) => vec![r],
        Some(r) => {
            bail!("{r} is not a replica of this vault (see `coffer vault replica list`)")
        }
        None => state.replicas.keys().cloned().collect(),
    };
    if targets.is_empty() {
        bail!("this vault has no replicas; add one with `coffer vault replica add LOC`");
    }
    let mut failed = 0;
    for location in targets {
        let result = ctx
            .storage(&location)
            .and_then(|s| Ok(coffer_engine::replica::replicate(&v, &s, &location)?));
        match result {
            Ok(r) => {
                if ctx.json {
                    print_json(
                        &json!({"replica": location, "copied": r.copied, "copied_bytes": r.copied_bytes, "verified": r.verified, "deleted": r.deleted, "as_of": r.as_of}),
                    );
                } else {
                    println!(
                        "{location}: {} object(s) copied and verified ({}), {} removed; complete as of {}",
                        r.copied,
                        size(r.copied_bytes),
                        r.deleted,
                        time_secs(r.as_of)
                    );
                }
            }
            Err(e) => {
                failed += 1;
                let (_, hint) = exit::classify(&e);
                eprintln!("error: replication to {location} failed: {e:#}");
                if let Some(h) = hint {
                    eprintln!("hint: {h}");
                }
            }
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::ERROR)
    })
}
