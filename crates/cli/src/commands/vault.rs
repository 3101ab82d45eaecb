//! `coffer vault`: create a vault, show it, move it to the current format,
//! and change its settings (immutability, soft-delete days); its
//! replicas and local tier have modules of their own.

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use coffer_engine::journal::Immutability;
use coffer_engine::Vault;
use serde_json::json;

use super::replica::{self, ReplicaCommand};
use super::tier::{self, TierCommand};
use crate::ctx::{Ctx, VaultArg};
use crate::output::{print_json, time_secs};

#[derive(Subcommand)]
pub(crate) enum VaultCommand {
    /// Create a vault at an empty location.
    Init {
        #[arg(long, value_name = "LOC")]
        location: String,
    },
    /// Show a vault's header, key slots and sizes.
    Info {
        #[command(flatten)]
        vault: VaultArg,
    },
    /// Move a vault to format 4 (older coffers then refuse it; a format 3
    /// journal is read on, and old-style records copied in later are not).
    Upgrade {
        #[command(flatten)]
        vault: VaultArg,
    },
    /// Change vault settings.
    Set {
        #[command(flatten)]
        vault: VaultArg,
        /// disabled, enabled (refuses early deletes and shorter retention), or locked (enabled for good).
        #[arg(long, value_name = "STATE")]
        immutability: Option<String>,
        /// Days a soft-deleted point stays recoverable (1-180).
        #[arg(long, value_name = "DAYS")]
        soft_delete_days: Option<u32>,
    },
    /// Replica locations: full copies of the vault elsewhere.
    #[command(subcommand)]
    Replica(ReplicaCommand),
    /// A local tier: recent points on a fast local disk as well, for
    /// instant restore.
    #[command(subcommand)]
    Tier(TierCommand),
    /// Copy to every replica (or one) what it lacks, verify the copies,
    /// and remove what the vault no longer has.
    Replicate {
        #[command(flatten)]
        vault: VaultArg,
        /// Only this replica.
        #[arg(long, value_name = "LOC")]
        replica: Option<String>,
    },
}

pub(crate) fn run(ctx: &Ctx, cmd: VaultCommand) -> Result<ExitCode> {
    match cmd {
        VaultCommand::Init { location } => init(ctx, location),
        VaultCommand::Info { vault } => info(ctx, vault),
        VaultCommand::Upgrade { vault } => upgrade(ctx, vault),
        VaultCommand::Set {
            vault,
            immutability,
            soft_delete_days,
        } => set(ctx, vault, immutability, soft_delete_days),
        VaultCommand::Replica(cmd) => replica::run(ctx, cmd),
        VaultCommand::Tier(cmd) => tier::run(ctx, cmd),
        VaultCommand::Replicate { vault, replica } => replica::replicate(ctx, vault, replica),
    }
}

fn init(ctx: &Ctx, location: String) -> Result<ExitCode> {
    let storage = ctx.storage(&location)?;
    let key = ctx.key()?;
    let header = Vault::init(&storage, &key, key.slot_kdf())
        .with_context(|| format!("cannot create a vault at {location}"))?;
    if ctx.json {
        print_json(
            &json!({"vault_id": header.vault_id_hex(), "location": storage.display(), "format_version": header.version,
            "key_fingerprint": key.fingerprint()}),
        );
    } else {
        println!(
            "created vault {} at {}",
            header.vault_id_hex(),
            storage.display()
        );
        println!("key fingerprint: {}", key.fingerprint());
    }
    Ok(ExitCode::SUCCESS)
}

fn info(ctx: &Ctx, vault: VaultArg) -> Result<ExitCode> {
    let v = ctx.open_readable(&vault.vault)?;
    let slots = Vault::read_slots(v.storage())?;
    let index = v.load_index()?;
    let points = v.points()?;
    let h = v.header();
    if ctx.json {
        print_json(
            &json!({"vault_id": h.vault_id_hex(), "format_version": h.version, "created": time_secs(h.created),
            "key_slots": slots.iter().flatten().count(), "packs": index.packs().count(), "blobs": index.blob_count(),
            "points": points.len(), "dictionaries": v.dictionary_status().0}),
        );
    } else {
        println!("vault          {}", h.vault_id_hex());
        println!("location       {}", v.storage().display());
        println!("format         {}", h.version);
        println!("created        {}", time_secs(h.created));
        println!("key slots      {}", slots.iter().flatten().count());
        println!("packs          {}", index.packs().count());
        println!("blobs          {}", index.blob_count());
        println!("points         {}", points.len());
        println!("dictionaries   {}", v.dictionary_status().0);
    }
    Ok(ExitCode::SUCCESS)
}

fn upgrade(ctx: &Ctx, vault: VaultArg) -> Result<ExitCode> {
    let mut v = ctx.open(&vault.vault)?;
    let old = v.upgrade()?;
    if old == v.header().version {
        println!("the vault is already format {old}");
    } else {
        println!(
            "upgraded the vault from format {old} to {}",
            v.header().version
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn set(
    ctx: &Ctx,
    vault: VaultArg,
    immutability: Option<String>,
    soft_delete_days: Option<u32>,
) -> Result<ExitCode> {
    let v = ctx.open(&vault.vault)?;
    if immutability.is_none() && soft_delete_days.is_none() {
        bail!("nothing to set: give --immutability or --soft-delete-days");
    }
    if let Some(days) = soft_delete_days {
        coffer_engine::changes::set_soft_delete_days(&v, days)?;
    }
    if let Some(state) = immutability {
        coffer_engine::changes::set_immutability(&v, parse_immutability(&state)?)?;
    }
    let st = v.state()?;
    println!(
        "immutability {}, soft-deleted points kept {} days",
        st.immutability.as_str(),
        st.soft_delete_days
    );
    Ok(ExitCode::SUCCESS)
}

fn parse_immutability(text: &str) -> Result<Immutability> {
    Ok(match text {
        "disabled" => Immutability::Disabled,
        "enabled" => Immutability::Enabled,
        "locked" => Immutability::Locked,
        other => bail!("--immutability {other:?}: expected disabled, enabled or locked"),
    })
}
