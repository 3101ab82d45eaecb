//! `coffer prune`: retention applied (expired points soft-deleted, old
//! soft-deleted ones purged) and the packs no point needs any more
//! condemned, repacked or deleted after their grace period; `--dry-run`
//! prints the plan with the rule behind each action.

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use coffer_engine::gc::{GcOptions, PackAction};
use coffer_engine::prune::{self, PointAction};
use serde_json::json;

use super::parse_time;
use crate::ctx::{Ctx, VaultArg};
use crate::output::{print_json, time, time_secs};

#[derive(Args)]
pub(crate) struct PruneArgs {
    #[command(flatten)]
    vault: VaultArg,
    /// Print the plan (every point, its action and the rule; packs to
    /// delete or repack; bytes to free) and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// How long a pack no point uses waits before it is deleted (for
    /// example 24h, 30m, 0s), so that running backups never lose a chunk.
    #[arg(long, default_value = "24h", value_name = "SPAN")]
    grace: String,
    /// Repack packs of which less than this percentage is still used.
    #[arg(long, default_value_t = 50.0, value_name = "PERCENT")]
    repack_below: f64,
    /// Judge retention as at this time (RFC 3339), for simulations of
    /// long histories together with `backup --time`.
    #[arg(long, hide = true, value_name = "TIME")]
    now: Option<String>,
}

pub(crate) fn run(ctx: &Ctx, args: PruneArgs) -> Result<ExitCode> {
    let PruneArgs {
        vault,
        dry_run,
        grace,
        repack_below,
        now,
    } = args;
    let now = match now {
        Some(t) => parse_time(&t)?.secs,
        None => crate::output::now_secs(),
    };
    prune(ctx, &vault.vault, dry_run, &grace, repack_below, now)
}

fn action_str(a: &PointAction) -> String {
    match a {
        PointAction::Keep => "keep".into(),
        PointAction::SoftDelete => "soft-delete".into(),
        PointAction::StaySoftDeleted { purge_at } => {
            format!("soft-deleted, purge {}", time_secs(*purge_at))
        }
        PointAction::Purge => "purge".into(),
    }
}

fn pack_action_str(a: PackAction) -> &'static str {
    match a {
        PackAction::Condemn => "condemn",
        PackAction::CondemnOrphan => "condemn (orphan)",
        PackAction::Repack => "repack",
        PackAction::Delete => "delete",
        PackAction::Reprieve => "reprieve",
        PackAction::Wait => "wait",
    }
}

fn parse_grace(text: &str) -> Result<i64> {
    let span: jiff::SignedDuration = text
        .parse()
        .with_context(|| format!("--grace {text:?}: expected a duration like 24h, 30m or 0s"))?;
    if span.is_negative() {
        bail!("--grace {text:?}: must not be negative");
    }
    Ok(span.as_secs())
}

fn prune(
    ctx: &Ctx,
    vault: &str,
    dry_run: bool,
    grace: &str,
    repack_below: f64,
    now: i64,
) -> Result<ExitCode> {
    if !(0.0..=100.0).contains(&repack_below) {
        bail!("--repack-below {repack_below}: expected a percentage from 0 to 100");
    }
    let opts = GcOptions {
        grace_secs: parse_grace(grace)?,
        repack_below: repack_below / 100.0,
    };
    let v = ctx.open(vault)?;
    let report = prune::run(&v, &opts, dry_run, now)?;
    let plan = &report.points;
    let packs = &report.packs;
    let free = packs.bytes(PackAction::Condemn)
        + packs.bytes(PackAction::CondemnOrphan)
        + packs.bytes(PackAction::Repack);
    if ctx.json {
        let mut j = json!({"dry_run": dry_run,
            "points": plan.points.iter().map(|p| json!({
                "point": p.id.to_hex(), "item": p.item, "time": time(p.time), "action": action_str(&p.action),
                "rule": p.rule.as_str(), "until": p.until.map(time_secs)})).collect::<Vec<_>>(),
            "packs": packs.packs.iter().map(|p| json!({"pack": p.pack.to_hex(), "action": pack_action_str(p.action),
                "size": p.size, "used": p.used, "note": p.note})).collect::<Vec<_>>(),
            "packs_total": packs.packs_total, "reachable_chunks": packs.reachable_chunks,
            "bytes_to_free": free, "bytes_deleted_now": packs.bytes(PackAction::Delete)});
        if let Some((o, g)) = &report.done {
            j["done"] = json!({"soft_deleted": o.soft_deleted, "purged": o.purged, "condemned": g.condemned,
                "repacked": g.repacked, "new_packs": g.new_packs, "deleted": g.deleted, "reprieved": g.reprieved,
                "bytes_deleted": g.bytes_deleted, "writer_index_files_rewritten": g.writer_files_rewritten,
                "stale_markers_removed": g.stale_markers_removed});
        }
        print_json(&j);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<12}  {:<20}  {:<16}  {:<12}  rule",
        "point", "time", "item", "action"
    );
    for p in &plan.points {
        let until = p
            .until
            .map(|u| format!(" until {}", time_secs(u)))
            .unwrap_or_default();
        println!(
            "{:<12}  {:<20}  {:<16}  {:<12}  {}{}",
            &p.id.to_hex()[..12],
            time(p.time),
            p.item,
            action_str(&p.action),
            p.rule.as_str(),
            until
        );
    }
    println!(
        "points: {} kept, {} to soft-delete, {} to purge",
        plan.count(|a| *a == PointAction::Keep),
        plan.count(|a| *a == PointAction::SoftDelete),
        plan.count(|a| *a == PointAction::Purge),
    );
    if !packs.packs.is_empty() {
        println!(
            "{:<12}  {:<16}  {:>10}  {:>10}  why",
            "pack", "action", "size", "used"
        );
        for p in &packs.packs {
            println!(
                "{:<12}  {:<16}  {:>10}  {:>10}  {}",
                &p.pack.to_hex()[..12],
                pack_action_str(p.action),
                crate::output::size(p.size),
                crate::output::size(p.used),
                p.note
            );
        }
    }
    println!(
        "packs: {} in the vault, {} reachable chunks; {} to condemn, {} to repack ({} freed after the grace period), {} to delete now ({}), {} to reprieve, {} waiting",
        packs.packs_total,
        packs.reachable_chunks,
        packs.count(PackAction::Condemn) + packs.count(PackAction::CondemnOrphan),
        packs.count(PackAction::Repack),
        crate::output::size(free),
        packs.count(PackAction::Delete),
        crate::output::size(packs.bytes(PackAction::Delete)),
        packs.count(PackAction::Reprieve),
        packs.count(PackAction::Wait),
    );
    if let Some((o, g)) = &report.done {
        println!(
            "done: {} point(s) soft-deleted, {} purged; {} pack(s) condemned, {} repacked into {}, {} deleted ({}), {} reprieved",
            o.soft_deleted,
            o.purged,
            g.condemned,
            g.repacked,
            g.new_packs,
            g.deleted,
            crate::output::size(g.bytes_deleted),
            g.reprieved
        );
        if g.writer_files_rewritten + g.stale_markers_removed > 0 {
            println!(
                "write-only writers told of it in {} index file(s); {} stale marker(s) removed",
                g.writer_files_rewritten, g.stale_markers_removed
            );
        }
        // The local tier follows: packs only older points use leave it.
        if v.state()?.local_tier.is_some() {
            let t = coffer_engine::tier::sync(&v)?;
            println!(
                "local tier: {} point(s), {} pack(s); {} pack(s) dropped, {} object(s) copied",
                t.recent_points, t.packs, t.deleted, t.copied
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
