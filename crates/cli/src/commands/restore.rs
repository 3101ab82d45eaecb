//! `coffer restore`: a point, or some of its paths, under a target
//! directory, with a progress ticker and a summary that lists what came
//! back damaged or with problems (exit 3 then).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use coffer_api_types::RestoreSummary;
use coffer_engine::restore::{RestoreOptions, RestoreProgress};

use crate::ctx::{Ctx, VaultArg};
use crate::exit;
use crate::output::{size, Sample, Ticker};

#[derive(Args)]
pub(crate) struct RestoreArgs {
    #[command(flatten)]
    vault: VaultArg,
    /// Point id, unique id prefix, or `latest`.
    point: String,
    /// Directory to restore into; `/etc/x` becomes `DIR/etc/x`.
    #[arg(long, value_name = "DIR")]
    target: PathBuf,
    /// Restore only these paths (as backed up; repeatable).
    #[arg(long = "include", value_name = "PATH")]
    includes: Vec<PathBuf>,
    /// Replace files that exist under the target.
    #[arg(long)]
    overwrite: bool,
}

pub(crate) fn run(ctx: &Ctx, args: RestoreArgs) -> Result<ExitCode> {
    let RestoreArgs {
        vault,
        point,
        target,
        includes,
        overwrite,
    } = args;
    let v = ctx.open_readable(&vault.vault)?;
    let p = v.resolve_point(&point, None)?;
    let progress = Arc::new(RestoreProgress::default());
    let opts = RestoreOptions {
        target,
        includes,
        overwrite,
        ..Default::default()
    };
    let read_before = v.storage().bytes_read();
    let report = {
        let pr = progress.clone();
        let _ticker = Ticker::start(ctx.json, "restore", move || Sample {
            files: pr.files.load(Ordering::Relaxed),
            bytes: pr.bytes_written.load(Ordering::Relaxed),
            total_bytes: Some(pr.bytes_total.load(Ordering::Relaxed)),
        });
        coffer_engine::restore::restore(&v, &p, &opts, &progress).context("restore failed")?
    };
    let read = v.storage().bytes_read_since(read_before);
    Ok(print_restore_summary(
        ctx.json,
        &coffer_engine::views::restore_summary(&p, &report, read),
    ))
}

/// `restore`'s summary in both modes; exit 3 when something did not come back whole.
pub(crate) fn print_restore_summary(json: bool, summary: &RestoreSummary) -> ExitCode {
    if json {
        let mut line = serde_json::to_value(summary).unwrap_or_default();
        if let Some(fields) = line.as_object_mut() {
            fields.insert("type".into(), "summary".into());
        }
        println!("{line}");
    } else {
        println!(
            "restored point {}: {} files, {} dirs, {}",
            summary.point.get(..12).unwrap_or(&summary.point),
            summary.files,
            summary.dirs,
            size(summary.bytes)
        );
        if summary.bytes_from_local_tier > 0 {
            println!(
                "read {} from the local tier, {} from the vault's location",
                size(summary.bytes_from_local_tier),
                size(summary.bytes_from_location)
            );
        }
        if !summary.damaged.is_empty() {
            eprintln!(
                "{} file(s) could not be restored completely:",
                summary.damaged.len()
            );
            for e in &summary.damaged {
                eprintln!("  {}: {}", e.path, e.error);
            }
        }
        if !summary.problems.is_empty() {
            eprintln!(
                "{} entr(y/ies) restored with problems:",
                summary.problems.len()
            );
            for e in &summary.problems {
                eprintln!("  {}: {}", e.path, e.error);
            }
        }
    }
    if summary.damaged.is_empty() && summary.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::PARTIAL)
    }
}
