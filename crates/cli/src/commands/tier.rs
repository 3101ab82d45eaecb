//! `coffer vault tier`: recent points kept on a fast local disk as well,
//! so that restores read them from there first.

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Subcommand;
use serde_json::json;

use crate::ctx::{Ctx, VaultArg};
use crate::output::{print_json, size};

#[derive(Subcommand)]
pub(crate) enum TierCommand {
    /// Keep the points of the last DAYS days on a local path as well;
    /// restores read from it first.
    Set {
        #[command(flatten)]
        vault: VaultArg,
        /// The local tier's location (a local path).
        #[arg(long, value_name = "PATH")]
        local: String,
        /// Days of points the tier keeps.
        #[arg(long, value_name = "DAYS")]
        days: u32,
    },
    /// Show the local tier and what it holds.
    Show {
        #[command(flatten)]
        vault: VaultArg,
    },
    /// Copy what the tier lacks and drop packs only older points use
    /// (`prune` does this too).
    Sync {
        #[command(flatten)]
        vault: VaultArg,
    },
    /// Stop keeping a local tier (its directory is left as it is).
    Remove {
        #[command(flatten)]
        vault: VaultArg,
    },
}

pub(crate) fn run(ctx: &Ctx, cmd: TierCommand) -> Result<ExitCode> {
    match cmd {
        TierCommand::Set { vault, local, days } => set(ctx, vault, local, days),
        TierCommand::Show { vault } => show(ctx, vault),
        TierCommand::Sync { vault } => sync(ctx, vault),
        TierCommand::Remove { vault } => remove(ctx, vault),
    }
}

fn set(ctx: &Ctx, vault: VaultArg, local: String, days: u32) -> Result<ExitCode> {
    let v = ctx.open(&vault.vault)?;
    if local.contains("://") && !local.starts_with("file://") {
        bail!("a local tier is a local path (a fast disk on this machine), not {local}");
    }
    let r = coffer_engine::tier::set(&v, &local, days)?;
    println!(
        "local tier {local} keeps the last {days} day(s): {} point(s), {} pack(s); {} object(s) copied ({})",
        r.recent_points,
        r.packs,
        r.copied,
        size(r.copied_bytes)
    );
    Ok(ExitCode::SUCCESS)
}

fn show(ctx: &Ctx, vault: VaultArg) -> Result<ExitCode> {
    let v = ctx.open(&vault.vault)?;
    match v.state()?.local_tier {
        Some((location, days)) => {
            if ctx.json {
                print_json(&json!({"location": location, "days": days}));
            } else {
                println!("local tier {location}: the last {days} day(s) of points");
            }
        }
        None => {
            println!("no local tier; set one with `coffer vault tier set --local PATH --days N`")
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn sync(ctx: &Ctx, vault: VaultArg) -> Result<ExitCode> {
    let v = ctx.open(&vault.vault)?;
    let r = coffer_engine::tier::sync(&v)?;
    println!(
        "local tier: {} point(s), {} pack(s); {} object(s) copied ({}), {} pack(s) dropped",
        r.recent_points,
        r.packs,
        r.copied,
        size(r.copied_bytes),
        r.deleted
    );
    Ok(ExitCode::SUCCESS)
}

fn remove(ctx: &Ctx, vault: VaultArg) -> Result<ExitCode> {
    let v = ctx.open(&vault.vault)?;
    coffer_engine::tier::remove(&v)?;
    println!("the vault no longer keeps a local tier; its directory is left as it is");
    Ok(ExitCode::SUCCESS)
}
