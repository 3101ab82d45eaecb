//! `coffer recover`: bring a deployment back from a storage location and
//! its key, on a machine that has nothing else.
//!
//! Without `--point` it lists the set points found at the location; with
//! one it writes the service's configuration into an empty data directory
//! (so `coffer serve` starts where the old service stopped) and puts every
//! item back through its kind; with `--verify` it runs a recovery drill in a
//! scratch area instead and reports the measured recovery time.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::json;

use coffer_engine::location::CREDENTIAL_NAMES;
use coffer_server::recovery::{self, ItemOutcome, RecoverOptions, RecoverReport, SetPointInfo};

use crate::ctx::Ctx;
use crate::exit;
use crate::output::{print_json, time_secs};

#[derive(Args)]
pub(crate) struct RecoverArgs {
    /// The storage location of the vault the set backups went to.
    #[arg(long, value_name = "LOC")]
    location: String,
    /// The set point to restore or drill: its id, a unique prefix, or
    /// `latest`. Without it, the set points are listed.
    #[arg(long, value_name = "ID")]
    point: Option<String>,
    /// Only this item of the set point.
    #[arg(long, value_name = "NAME")]
    item: Option<String>,
    /// Put files (trees, database files, command output without a restore
    /// command) under this directory instead of their original place.
    #[arg(long, value_name = "DIR")]
    target: Option<PathBuf>,
    /// Replace files and databases that exist.
    #[arg(long)]
    overwrite: bool,
    /// Restore PostgreSQL items into this server (a libpq connection
    /// string) instead of their own.
    #[arg(long, value_name = "CONNINFO")]
    postgresql_connection: Option<String>,
    /// The service's data directory to write the configuration into
    /// (default $COFFER_DATA_DIR, else ~/.local/share/coffer); it must have
    /// no configuration yet.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// A recovery drill: restore everything into a scratch area, check it,
    /// report the time it took, and remove it.
    #[arg(long)]
    verify: bool,
    /// Where the drill's scratch area goes (default: the temp directory).
    #[arg(long, value_name = "DIR", requires = "verify")]
    scratch: Option<PathBuf>,
}

fn print_point(p: &SetPointInfo) {
    let ready = if p.ready_for_cloud_recovery {
        "ready for cloud recovery".to_string()
    } else {
        format!(
            "NOT ready for cloud recovery: {}",
            p.not_ready_because.clone().unwrap_or_default()
        )
    };
    println!("{}  set {}  {}  {ready}", p.id, p.set, time_secs(p.time));
    for s in &p.items {
        println!(
            "    {:<24} {:<10} {:<16} {}{}",
            s.item,
            s.kind,
            s.status,
            s.consistency.clone().unwrap_or_default(),
            s.message
                .as_ref()
                .map(|m| format!("  ({m})"))
                .unwrap_or_default()
        );
    }
}

fn print_outcome(o: &ItemOutcome) {
    let mark = if o.ok { "ok    " } else { "FAILED" };
    println!(
        "  {mark} {:<24} {:<10} {:>6.1} s  {}",
        o.item, o.kind, o.seconds, o.message
    );
}

fn finish(ctx: &Ctx, report: &RecoverReport, verb: &str) -> ExitCode {
    if ctx.json {
        print_json(&json!(report));
    } else {
        for n in &report.notes {
            println!("note: {n}");
        }
        println!(
            "set point {} of set {} {verb} in {:.1} s{}",
            report.set_point,
            report.set,
            report.seconds,
            if report.ok() {
                String::new()
            } else {
                format!(
                    "; {} item(s) failed",
                    report.items.iter().filter(|i| !i.ok).count()
                )
            }
        );
    }
    if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::PARTIAL)
    }
}

pub(crate) fn run(ctx: &Ctx, args: RecoverArgs) -> Result<ExitCode> {
    let vault = ctx.open(&args.location)?;
    let Some(spec) = &args.point else {
        let points = recovery::set_points(&vault)?;
        if ctx.json {
            print_json(&json!(points));
        } else if points.is_empty() {
            println!(
                "no set points at {}: infrastructure sets store them (coffer serve, POST /api/v1/sets)",
                args.location
            );
        } else {
            for p in &points {
                print_point(p);
            }
        }
        return Ok(ExitCode::SUCCESS);
    };
    let info = recovery::find_set_point(&vault, spec)?;
    if args.verify {
        let scratch = args.scratch.clone();
        if !ctx.json {
            println!("drilling set point {} of set {} …", info.id, info.set);
        }
        let report = recovery::drill(&vault, &info, scratch.as_deref(), None, |o| {
            if !ctx.json {
                print_outcome(o);
            }
        })?;
        return Ok(finish(
            ctx,
            &report,
            "restored and checked in a scratch area",
        ));
    }
    if !info.ready_for_cloud_recovery && args.item.is_none() {
        eprintln!(
            "warning: set point {} is not ready for cloud recovery ({}); what it has is restored",
            info.id,
            info.not_ready_because.clone().unwrap_or_default()
        );
    }
    if let Some(t) = &args.target {
        if !t.is_absolute() {
            bail!("--target takes an absolute directory, not {}", t.display());
        }
    }
    let config = coffer_server::ServiceConfig::load(args.data_dir.as_deref(), None)?;
    let data_dir = config.data_dir.clone();
    let service = coffer_server::Service::open(config)
        .with_context(|| format!("cannot open the data directory {}", data_dir.display()))?;
    let key_text = ctx.key_text()?;
    let creds = ctx.credentials()?;
    let credentials: BTreeMap<String, String> = CREDENTIAL_NAMES
        .iter()
        .filter_map(|n| creds.get(n).map(|v| (n.to_string(), v.to_string())))
        .collect();
    let opts = RecoverOptions {
        item: args.item.clone(),
        target: args.target.clone(),
        overwrite: args.overwrite,
        postgresql_connection: args.postgresql_connection.clone(),
    };
    if !ctx.json {
        println!("recovering set point {} of set {} …", info.id, info.set);
    }
    let report = recovery::recover(
        &service,
        &vault,
        &info,
        &key_text,
        &credentials,
        &opts,
        |o| {
            if !ctx.json {
                print_outcome(o);
            }
        },
    )?;
    if !ctx.json && report.configuration.is_some() {
        println!(
            "the service's configuration is in {}: `coffer serve --data-dir {}` starts with it",
            data_dir.display(),
            data_dir.display()
        );
    }
    Ok(finish(ctx, &report, "recovered"))
}
