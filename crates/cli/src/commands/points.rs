//! `coffer points`: list and show recovery points; hold, release,
//! soft-delete and undelete them (the engine's `changes` enforces
//! immutability and the soft-delete rules). The JSON shapes of a point
//! live here, for `backup`'s summary as well.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use serde_json::json;

use coffer_api_types::PointSummary;

use crate::ctx::{Ctx, VaultArg};
use crate::output::{print_json, size, time, time_secs};

#[derive(Subcommand)]
pub(crate) enum PointsCommand {
    /// List recovery points, oldest first.
    List {
        #[command(flatten)]
        vault: VaultArg,
        #[arg(long)]
        item: Option<String>,
    },
    /// Show one recovery point in full.
    Show {
        #[command(flatten)]
        vault: VaultArg,
        point: String,
    },
    /// Keep a point whatever its retention says, until released.
    Hold {
        #[command(flatten)]
        vault: VaultArg,
        point: String,
    },
    /// Hand a held point back to its retention.
    Release {
        #[command(flatten)]
        vault: VaultArg,
        point: String,
    },
    /// Soft-delete points (recoverable with `undelete` until purged).
    Delete {
        #[command(flatten)]
        vault: VaultArg,
        #[arg(required = true)]
        points: Vec<String>,
    },
    /// Bring soft-deleted points back (they come back on hold).
    Undelete {
        #[command(flatten)]
        vault: VaultArg,
        #[arg(required = true)]
        points: Vec<String>,
    },
}

pub(crate) fn run(ctx: &Ctx, cmd: PointsCommand) -> Result<ExitCode> {
    match cmd {
        PointsCommand::List { vault, item } => list(ctx, vault, item),
        PointsCommand::Show { vault, point } => show(ctx, vault, point),
        PointsCommand::Hold { vault, point } => hold(ctx, vault, point),
        PointsCommand::Release { vault, point } => release(ctx, vault, point),
        PointsCommand::Delete { vault, points } => delete(ctx, vault, points),
        PointsCommand::Undelete { vault, points } => undelete(ctx, vault, points),
    }
}

fn list(ctx: &Ctx, vault: VaultArg, item: Option<String>) -> Result<ExitCode> {
    let v = ctx.open_readable(&vault.vault)?;
    let list = coffer_engine::views::point_summaries(&v.points()?, &v.state()?);
    print_point_list(ctx.json, list, item.as_deref());
    Ok(ExitCode::SUCCESS)
}

/// What the vault's journal says of a point, in a few words.
fn status(p: &PointSummary) -> String {
    if p.after_revocation {
        "UNTRUSTED: written after its write-only credential was revoked".into()
    } else if let Some(at) = p.deleted_at {
        format!("soft-deleted {}", time_secs(at))
    } else if p.hold {
        "on hold".into()
    } else if let Some(until) = p.on_demand_until {
        format!("on demand, until {}", time_secs(until))
    } else {
        "live".into()
    }
}

/// `points list` in both modes: the points (of `item`, when given), oldest first.
pub(crate) fn print_point_list(json: bool, mut list: Vec<PointSummary>, item: Option<&str>) {
    list.retain(|p| item.is_none_or(|i| p.item == i));
    list.sort_by(|a, b| a.time.cmp(&b.time).then_with(|| a.id.cmp(&b.id)));
    if json {
        print_json(&serde_json::Value::Array(
            list.iter().map(point_row_json).collect(),
        ));
        return;
    }
    println!(
        "{:<12}  {:<20}  {:<16}  {:>8}  {:>10}  item / tags",
        "id", "time", "host", "files", "size"
    );
    for p in &list {
        let tags = if p.tags.is_empty() {
            String::new()
        } else {
            format!(" [{}]", p.tags.join(", "))
        };
        println!(
            "{:<12}  {:<20}  {:<16}  {:>8}  {:>10}  {}{}  ({})",
            p.id.get(..12).unwrap_or(&p.id),
            time_secs(p.time),
            p.host,
            p.files,
            size(p.bytes_total),
            p.item,
            tags,
            status(p)
        );
        if let Some(slot) = &p.written_by {
            println!(
                "{:<12}  written with the write-only credential of slot {slot}",
                ""
            );
        }
    }
    println!("{} point(s)", list.len());
}

fn point_row_json(p: &PointSummary) -> serde_json::Value {
    json!({"id": p.id, "time": time_secs(p.time), "host": p.host, "item": p.item,
        "paths": p.paths, "tags": p.tags, "parent": p.parent, "consistency": p.consistency,
        "stats": p.stats, "status": status(p), "written_by": p.written_by})
}

fn show(ctx: &Ctx, vault: VaultArg, point: String) -> Result<ExitCode> {
    let v = ctx.open_readable(&vault.vault)?;
    let p = v.resolve_point(&point, None)?;
    if ctx.json {
        print_json(&point_json(&p, true));
    } else {
        let m = &p.manifest;
        let s = &m.stats;
        println!("point        {}", p.id.to_hex());
        println!("time         {}", time(m.time));
        println!("host         {}", m.host);
        println!("item         {}", m.item);
        if let Some(slot) = &p.writer {
            println!("written by   the write-only credential of slot {slot}");
        }
        for path in &m.paths {
            println!("path         {}", String::from_utf8_lossy(path));
        }
        println!("tags         {}", m.tags.join(", "));
        println!(
            "parent       {}",
            m.parent.map(|p| p.to_hex()).unwrap_or_else(|| "-".into())
        );
        println!("tree         {}", m.tree.to_hex());
        println!("consistency  {}", m.consistency.as_str());
        println!(
            "files        {} ({} new, {} changed, {} unchanged), {} dirs",
            s.files, s.files_new, s.files_changed, s.files_unchanged, s.dirs
        );
        println!(
            "bytes        {} total, {} read, {} new, {} stored",
            size(s.bytes_total),
            size(s.bytes_read),
            size(s.bytes_new),
            size(s.bytes_stored)
        );
        println!("duration     {:.1}s", s.duration_ms as f64 / 1000.0);
        println!("software     {}", m.software);
        println!("errors       {}", m.errors.len());
        for e in &m.errors {
            println!("  {}: {}", String::from_utf8_lossy(&e.path), e.message);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn hold(ctx: &Ctx, vault: VaultArg, point: String) -> Result<ExitCode> {
    let v = ctx.open(&vault.vault)?;
    let p = v.resolve_point(&point, None)?;
    coffer_engine::changes::hold(&v, &p.id)?;
    println!("point {} is on hold", p.id.to_hex());
    Ok(ExitCode::SUCCESS)
}

fn release(ctx: &Ctx, vault: VaultArg, point: String) -> Result<ExitCode> {
    let v = ctx.open(&vault.vault)?;
    let p = v.resolve_point(&point, None)?;
    coffer_engine::changes::release(&v, &p.id)?;
    println!("point {} follows its retention again", p.id.to_hex());
    Ok(ExitCode::SUCCESS)
}

fn delete(ctx: &Ctx, vault: VaultArg, points: Vec<String>) -> Result<ExitCode> {
    let v = ctx.open(&vault.vault)?;
    let targets = points
        .iter()
        .map(|p| v.resolve_point(p, None))
        .collect::<Result<Vec<_>, _>>()?;
    coffer_engine::changes::delete_points(&v, &targets, "deleted by hand")?;
    println!(
        "soft-deleted {} point(s); `coffer points undelete` brings them back for {} days",
        targets.len(),
        v.state()?.soft_delete_days
    );
    Ok(ExitCode::SUCCESS)
}

fn undelete(ctx: &Ctx, vault: VaultArg, points: Vec<String>) -> Result<ExitCode> {
    let v = ctx.open(&vault.vault)?;
    let ids = points
        .iter()
        .map(|p| v.resolve_point(p, None).map(|p| p.id))
        .collect::<Result<Vec<_>, _>>()?;
    coffer_engine::changes::undelete(&v, &ids)?;
    println!(
        "{} point(s) are back, on hold (release them to let their policy apply)",
        ids.len()
    );
    Ok(ExitCode::SUCCESS)
}

fn point_json(p: &coffer_engine::Point, full: bool) -> serde_json::Value {
    let m = &p.manifest;
    let mut v = json!({"id": p.id.to_hex(), "time": time(m.time), "host": m.host, "item": m.item,
        "paths": m.paths.iter().map(|x| String::from_utf8_lossy(x).into_owned()).collect::<Vec<_>>(),
        "tags": m.tags, "parent": m.parent.map(|x| x.to_hex()), "consistency": m.consistency.as_str(),
        "stats": stats_json(&m.stats), "written_by": p.writer});
    if full {
        v["tree"] = json!(m.tree.to_hex());
        v["software"] = json!(m.software);
        v["errors"] = errors_json(&m.errors);
    }
    v
}

fn stats_json(s: &coffer_engine::point::Stats) -> serde_json::Value {
    serde_json::to_value(s).unwrap_or_default()
}

fn errors_json(errors: &[coffer_engine::point::EntryError]) -> serde_json::Value {
    errors
        .iter()
        .map(|e| json!({"path": String::from_utf8_lossy(&e.path), "error": e.message}))
        .collect()
}
