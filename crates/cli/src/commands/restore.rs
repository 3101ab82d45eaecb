//! `coffer restore`: a point, or some of its paths, under a target
//! directory, with a progress ticker and a summary that lists what came
//! back damaged or with problems (exit 3 then).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use coffer_engine::restore::{RestoreOptions, RestoreProgress};
use serde_json::json;

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
    let report = {
        let pr = progress.clone();
        let _ticker = Ticker::start(ctx.json, "restore", move || Sample {
            files: pr.files.load(Ordering::Relaxed),
            bytes: pr.bytes_written.load(Ordering::Relaxed),
            total_bytes: Some(pr.bytes_total.load(Ordering::Relaxed)),
        });
        coffer_engine::restore::restore(&v, &p, &opts, &progress).context("restore failed")?
    };
    let (from_tier, from_location) = v.storage().bytes_read();
    if ctx.json {
        println!(
            "{}",
            json!({"type": "summary", "point": p.id.to_hex(), "files": report.files, "dirs": report.dirs, "bytes": report.bytes,
                "bytes_from_local_tier": from_tier, "bytes_from_location": from_location,
                "damaged": report.damaged.iter().map(|(f, w)| json!({"path": f.to_string_lossy(), "error": w})).collect::<Vec<_>>(),
                "problems": report.problems.iter().map(|(f, w)| json!({"path": f.to_string_lossy(), "error": w})).collect::<Vec<_>>()})
        );
    } else {
        println!(
            "restored point {}: {} files, {} dirs, {}",
            &p.id.to_hex()[..12],
            report.files,
            report.dirs,
            size(report.bytes)
        );
        if from_tier > 0 {
            println!(
                "read {} from the local tier, {} from the vault's location",
                size(from_tier),
                size(from_location)
            );
        }
        if !report.damaged.is_empty() {
            eprintln!(
                "{} file(s) could not be restored completely:",
                report.damaged.len()
            );
            for (f, why) in &report.damaged {
                eprintln!("  {}: {}", f.display(), why);
            }
        }
        if !report.problems.is_empty() {
            eprintln!(
                "{} entr(y/ies) restored with problems:",
                report.problems.len()
            );
            for (f, why) in &report.problems {
                eprintln!("  {}: {}", f.display(), why);
            }
        }
    }
    Ok(if report.is_complete() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::PARTIAL)
    })
}
