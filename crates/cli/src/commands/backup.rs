//! `coffer backup`: one new recovery point of the paths given, with a
//! progress ticker, and a summary (text or JSON) that names every entry
//! that could not be read. Exit 3 when some could not.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Args;
use coffer_api_types::BackupSummary;
use coffer_engine::backup::{BackupOptions, Progress};

use super::parse_time;
use crate::ctx::{Ctx, VaultArg};
use crate::exit;
use crate::output::{size, Sample, Ticker};

#[derive(Args)]
pub(crate) struct BackupArgs {
    #[command(flatten)]
    vault: VaultArg,
    /// Name of the protected item (default: host and paths).
    #[arg(long)]
    item: Option<String>,
    /// Tag the point (repeatable).
    #[arg(long = "tag", value_name = "T")]
    tags: Vec<String>,
    /// Skip entries matching this glob; without a `/` it matches names,
    /// with one it matches whole paths (repeatable).
    #[arg(long = "exclude", value_name = "GLOB")]
    excludes: Vec<String>,
    /// Do not descend into other file systems.
    #[arg(long)]
    one_file_system: bool,
    /// An on-demand point, kept this long whatever the policy says
    /// (for example 30d, 12w, 1y).
    #[arg(long, value_name = "SPAN")]
    expire_in: Option<String>,
    /// Record the point as taken at this time (RFC 3339), for imports
    /// and simulations.
    #[arg(long, value_name = "TIME")]
    time: Option<String>,
    /// Paths to back up.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
}

pub(crate) fn run(ctx: &Ctx, args: BackupArgs) -> Result<ExitCode> {
    let BackupArgs {
        vault,
        item,
        tags,
        excludes,
        one_file_system,
        expire_in,
        time: at,
        paths,
    } = args;
    let taken = match &at {
        Some(t) => Some(parse_time(t)?),
        None => None,
    };
    let expire_at = match &expire_in {
        Some(span) => Some(expiry(
            span,
            taken.map_or_else(crate::output::now_secs, |t| t.secs),
        )?),
        None => None,
    };
    if expire_at.is_some() && ctx.has_write_only_credential() {
        bail!("--expire-in changes the vault's journal, which a write-only credential cannot: back up without it, or with a vault key");
    }
    let v = ctx.open_destination(&vault.vault)?;
    let progress = Arc::new(Progress::default());
    let opts = BackupOptions {
        item,
        tags,
        excludes,
        one_file_system,
        host: None,
        time: taken,
        expire_at,
        consistency: None,
    };
    let report = {
        let p = progress.clone();
        let _ticker = Ticker::start(ctx.json, "backup", move || Sample {
            files: p.files.load(Ordering::Relaxed),
            bytes: p.bytes_read.load(Ordering::Relaxed),
            total_bytes: None,
        });
        coffer_engine::backup::backup(&*v, &paths, &opts, &progress).context("backup failed")?
    };
    Ok(print_backup_summary(ctx.json, &report.summary()))
}

/// `backup`'s summary in both modes; exit 3 when some entries could not be read.
pub(crate) fn print_backup_summary(json: bool, summary: &BackupSummary) -> ExitCode {
    let s = &summary.stats;
    if json {
        // The shared summary, with its counters also at the top level where
        // this line has always had them.
        let mut line = serde_json::to_value(s).unwrap_or_default();
        if let (Some(top), Ok(serde_json::Value::Object(rest))) =
            (line.as_object_mut(), serde_json::to_value(summary))
        {
            top.extend(rest);
            top.insert("type".into(), "summary".into());
        }
        println!("{line}");
    } else {
        println!("point {} saved for item {:?}", summary.point, summary.item);
        println!(
            "files: {} new, {} changed, {} unchanged ({} dirs)",
            s.files_new, s.files_changed, s.files_unchanged, s.dirs
        );
        println!(
            "bytes: {} total, {} read, {} new, {} stored; {:.1}s",
            size(s.bytes_total),
            size(s.bytes_read),
            size(s.bytes_new),
            size(s.bytes_stored),
            s.duration_ms as f64 / 1000.0
        );
        if summary.packs_adopted > 0 {
            println!(
                "reused {} pack(s) left by an interrupted backup",
                summary.packs_adopted
            );
        }
        if !summary.errors.is_empty() {
            let n = summary.errors.len();
            eprintln!(
                "{n} entr{} could not be backed up:",
                if n == 1 { "y" } else { "ies" }
            );
            for e in &summary.errors {
                eprintln!("  {}: {}", e.path, e.error);
            }
        }
    }
    if summary.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::PARTIAL)
    }
}

/// The end of an on-demand point's retention: `from` plus a span like
/// 30d, 12w, 6mo or 1y, counted in calendar units in UTC.
fn expiry(span: &str, from: i64) -> Result<i64> {
    let parsed: jiff::Span = span.parse().with_context(|| {
        format!("--expire-in {span:?}: expected a span like 30d, 12w, 6mo or 1y")
    })?;
    let start = jiff::Timestamp::from_second(from)
        .context("the point's time is out of range")?
        .to_zoned(jiff::tz::TimeZone::UTC);
    let end = start
        .checked_add(parsed)
        .with_context(|| format!("--expire-in {span:?} is out of range"))?;
    if end.timestamp().as_second() <= from {
        bail!("--expire-in {span:?}: the span must be positive");
    }
    Ok(end.timestamp().as_second())
}
