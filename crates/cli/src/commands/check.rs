//! `coffer check`: the vault's integrity, optionally reading all or a
//! random share of the packs; exit 5 when it finds damage.

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;
use coffer_engine::check::ReadData;
use serde_json::json;

use crate::ctx::{Ctx, VaultArg};
use crate::exit;
use crate::output::print_json;

#[derive(Args)]
pub(crate) struct CheckArgs {
    #[command(flatten)]
    vault: VaultArg,
    /// Read and verify every pack.
    #[arg(long, conflicts_with = "read_data_subset")]
    read_data: bool,
    /// Read and verify a random share of the packs, in percent.
    #[arg(long, value_name = "PERCENT")]
    read_data_subset: Option<f64>,
}

pub(crate) fn run(ctx: &Ctx, args: CheckArgs) -> Result<ExitCode> {
    let CheckArgs {
        vault,
        read_data,
        read_data_subset,
    } = args;
    let mut v = ctx.open_readable(&vault.vault)?;
    let mode = match (read_data, read_data_subset) {
        (true, _) => ReadData::All,
        (false, Some(p)) if p > 0.0 && p <= 100.0 => ReadData::Subset(p),
        (false, Some(p)) => {
            bail!("--read-data-subset takes a percentage above 0 and at most 100, not {p}")
        }
        (false, None) => ReadData::None,
    };
    let r = coffer_engine::check::check(&mut v, mode)?;
    if ctx.json {
        print_json(
            &json!({"ok": r.ok(), "problems": r.problems, "key_slots": r.key_slots, "index_files": r.index_files,
            "packs": r.packs, "packs_read": r.packs_read, "blobs_verified": r.blobs_verified, "points": r.points, "trees": r.trees,
            "unindexed_packs": r.unindexed_packs, "dictionaries": r.dictionaries,
            "condemned_packs": r.condemned_packs, "journal_records": r.journal_records}),
        );
    } else {
        println!(
            "checked {} key slot(s), {} dictionary(ies), {} index file(s), {} pack(s) ({} read in full, {} blobs verified), {} point(s), {} tree(s)",
            r.key_slots, r.dictionaries, r.index_files, r.packs, r.packs_read, r.blobs_verified, r.points, r.trees
        );
        if r.condemned_packs > 0 {
            println!(
                "{} pack(s) no point uses await deletion by the next prune after the grace period",
                r.condemned_packs
            );
        }
        if r.unindexed_packs > 0 {
            println!("{} pack(s) are not indexed yet (left by an interrupted backup; the next backup reuses them)", r.unindexed_packs);
        }
        for p in &r.problems {
            println!("problem: {p}");
        }
        println!(
            "{}",
            if r.ok() {
                "no problems found"
            } else {
                "the vault is damaged"
            }
        );
    }
    Ok(if r.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::DAMAGED)
    })
}
