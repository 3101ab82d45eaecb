//! Commands on the vault's state: policies, point holds and deletes,
//! protection of items, immutability, and prune. Each parses and validates
//! its input, then calls the engine's `changes` or `prune`, which enforce
//! the rules.

use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use coffer_engine::changes;
use coffer_engine::gc::{GcOptions, PackAction};
use coffer_engine::journal::Immutability;
use coffer_engine::policy::{
    MonthDay, MonthlyRule, Policy, Retention, Schedule, Weekday, WeeklyRule, YearlyRule,
};
use coffer_engine::prune::{self, PointAction};
use serde_json::json;

use crate::output::{print_json, time, time_secs};

/// Schedule and retention options shared by `policy create` and `policy set`.
#[derive(Args, Clone, Default)]
pub struct PolicySpec {
    /// `daily HH:MM`, `weekly mon,thu HH:MM`, or `every N h from HH:MM [for H h]`.
    #[arg(long, value_name = "WHEN")]
    schedule: Option<String>,
    /// IANA time zone of the schedule and of retention days (default UTC).
    #[arg(long, value_name = "TZ")]
    time_zone: Option<String>,
    /// Keep the newest N scheduled points.
    #[arg(long, value_name = "N")]
    keep_last: Option<u32>,
    /// Keep the last point of each day for N days.
    #[arg(long, value_name = "DAYS")]
    daily: Option<u32>,
    /// Keep weekly points for N weeks.
    #[arg(long, value_name = "WEEKS")]
    weekly: Option<u32>,
    /// Weekday of weekly points (default sunday).
    #[arg(long, value_name = "DAY")]
    weekly_day: Option<String>,
    /// Keep monthly points for N months.
    #[arg(long, value_name = "MONTHS")]
    monthly: Option<u32>,
    /// Day of monthly points: 1-28, last, or first-sunday … last-friday (default 1).
    #[arg(long, value_name = "DAY")]
    monthly_day: Option<String>,
    /// Keep yearly points for N years.
    #[arg(long, value_name = "YEARS")]
    yearly: Option<u32>,
    /// Month of yearly points, 1-12 (default 1).
    #[arg(long, value_name = "MONTH")]
    yearly_month: Option<u8>,
    /// Day of yearly points, as --monthly-day (default 1).
    #[arg(long, value_name = "DAY")]
    yearly_day: Option<String>,
    /// Remove a retention rule: keep-last, daily, weekly, monthly, yearly (repeatable).
    #[arg(long = "remove", value_name = "RULE")]
    remove: Vec<String>,
}

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Create a policy (unset rules are absent; the schedule defaults to daily 22:00 UTC).
    Create {
        #[command(flatten)]
        vault: crate::cli::VaultArg,
        name: String,
        #[command(flatten)]
        spec: PolicySpec,
    },
    /// Change a policy: only the options given change. Applies to existing points.
    Set {
        #[command(flatten)]
        vault: crate::cli::VaultArg,
        name: String,
        #[command(flatten)]
        spec: PolicySpec,
    },
    /// Show one policy and the items that follow it.
    Show {
        #[command(flatten)]
        vault: crate::cli::VaultArg,
        name: String,
    },
    /// List policies.
    List {
        #[command(flatten)]
        vault: crate::cli::VaultArg,
    },
    /// Delete a policy no item follows.
    Delete {
        #[command(flatten)]
        vault: crate::cli::VaultArg,
        name: String,
    },
    /// Make items follow a policy.
    Assign {
        #[command(flatten)]
        vault: crate::cli::VaultArg,
        name: String,
        #[arg(required = true, value_name = "ITEM")]
        items: Vec<String>,
    },
}

#[derive(Subcommand)]
pub enum ItemCommand {
    /// Stop protecting an item: keep its points forever, or soft-delete them.
    Stop {
        #[command(flatten)]
        vault: crate::cli::VaultArg,
        item: String,
        /// Keep every point forever (resume re-applies the policy).
        #[arg(
            long,
            conflicts_with = "delete_data",
            required_unless_present = "delete_data"
        )]
        retain_data: bool,
        /// Soft-delete every point of the item.
        #[arg(long)]
        delete_data: bool,
    },
    /// Protect an item again under its policy.
    Resume {
        #[command(flatten)]
        vault: crate::cli::VaultArg,
        item: String,
    },
}

fn parse_schedule(text: &str, tz: String) -> Result<Schedule> {
    Schedule::parse(text, tz).map_err(|e| anyhow!("--schedule {e}"))
}

fn month_day(text: &Option<String>) -> Result<MonthDay> {
    match text {
        Some(t) => MonthDay::parse(t).map_err(|e| anyhow!(e)),
        None => Ok(MonthDay::Day(1)),
    }
}

/// Applies the options to `policy`: given fields replace, others stay.
fn apply_spec(policy: &mut Policy, spec: &PolicySpec) -> Result<()> {
    let tz = spec
        .time_zone
        .clone()
        .unwrap_or_else(|| policy.schedule.time_zone().to_string());
    if let Some(s) = &spec.schedule {
        policy.schedule = parse_schedule(s, tz)?;
    } else if spec.time_zone.is_some() {
        match &mut policy.schedule {
            Schedule::Daily { time_zone, .. }
            | Schedule::Weekly { time_zone, .. }
            | Schedule::Hourly { time_zone, .. } => *time_zone = tz,
        }
    }
    let r = &mut policy.retention;
    if spec.keep_last.is_some() {
        r.keep_last = spec.keep_last;
    }
    if spec.daily.is_some() {
        r.daily_days = spec.daily;
    }
    if spec.weekly.is_some() || spec.weekly_day.is_some() {
        let weeks = spec
            .weekly
            .or(r.weekly.map(|w| w.weeks))
            .context("--weekly-day needs --weekly WEEKS")?;
        let weekday = match &spec.weekly_day {
            Some(d) => Weekday::parse(d).map_err(|e| anyhow!(e))?,
            None => r.weekly.map_or(Weekday::Sunday, |w| w.weekday),
        };
        r.weekly = Some(WeeklyRule { weekday, weeks });
    }
    if spec.monthly.is_some() || spec.monthly_day.is_some() {
        let months = spec
            .monthly
            .or(r.monthly.map(|m| m.months))
            .context("--monthly-day needs --monthly MONTHS")?;
        let day = if spec.monthly_day.is_some() {
            month_day(&spec.monthly_day)?
        } else {
            r.monthly.map_or(MonthDay::Day(1), |m| m.day)
        };
        r.monthly = Some(MonthlyRule { day, months });
    }
    if spec.yearly.is_some() || spec.yearly_month.is_some() || spec.yearly_day.is_some() {
        let years = spec
            .yearly
            .or(r.yearly.map(|y| y.years))
            .context("--yearly-month and --yearly-day need --yearly YEARS")?;
        let month = spec.yearly_month.or(r.yearly.map(|y| y.month)).unwrap_or(1);
        let day = if spec.yearly_day.is_some() {
            month_day(&spec.yearly_day)?
        } else {
            r.yearly.map_or(MonthDay::Day(1), |y| y.day)
        };
        r.yearly = Some(YearlyRule { month, day, years });
    }
    for rule in &spec.remove {
        match rule.as_str() {
            "keep-last" => r.keep_last = None,
            "daily" => r.daily_days = None,
            "weekly" => r.weekly = None,
            "monthly" => r.monthly = None,
            "yearly" => r.yearly = None,
            other => {
                bail!("--remove {other:?}: expected keep-last, daily, weekly, monthly or yearly")
            }
        }
    }
    policy.validate().map_err(|e| anyhow!(e))
}

fn policy_json(p: &Policy, items: &[&String]) -> serde_json::Value {
    json!({"name": p.name, "schedule": p.schedule.describe(), "time_zone": p.schedule.time_zone(),
        "retention": p.retention.describe(), "items": items,
        "next_run": p.schedule.next_run(crate::output::now_secs()).ok().map(time_secs)})
}

pub fn policy_command(ctx: &crate::cli::Ctx, cmd: PolicyCommand) -> Result<ExitCode> {
    match cmd {
        PolicyCommand::Create { vault, name, spec } => {
            let v = ctx.open(&vault.vault)?;
            let state = v.state()?;
            if state.policies.contains_key(&name) {
                bail!("a policy named {name:?} exists already; change it with `coffer policy set`");
            }
            let mut policy = Policy {
                name: name.clone(),
                schedule: Policy::default_policy().schedule,
                retention: Retention::default(),
            };
            apply_spec(&mut policy, &spec)?;
            changes::set_policy(&v, policy.clone())?;
            println!(
                "created policy {name}: {}; {}",
                policy.schedule.describe(),
                policy.retention.describe()
            );
        }
        PolicyCommand::Set { vault, name, spec } => {
            let v = ctx.open(&vault.vault)?;
            let state = v.state()?;
            let mut policy =
                state.policies.get(&name).cloned().with_context(|| {
                    format!("no policy named {name:?} (see `coffer policy list`)")
                })?;
            apply_spec(&mut policy, &spec)?;
            changes::set_policy(&v, policy.clone())?;
            println!(
                "policy {name}: {}; {} (applies to existing points at the next prune)",
                policy.schedule.describe(),
                policy.retention.describe()
            );
        }
        PolicyCommand::Show { vault, name } => {
            let v = ctx.open(&vault.vault)?;
            let state = v.state()?;
            let p = state
                .policies
                .get(&name)
                .with_context(|| format!("no policy named {name:?} (see `coffer policy list`)"))?;
            let items: Vec<&String> = state
                .assignments
                .iter()
                .filter(|(_, pol)| **pol == name)
                .map(|(i, _)| i)
                .collect();
            if ctx.json {
                print_json(&policy_json(p, &items));
            } else {
                println!("policy     {}", p.name);
                println!("schedule   {}", p.schedule.describe());
                if let Ok(next) = p.schedule.next_run(crate::output::now_secs()) {
                    println!("next run   {}", time_secs(next));
                }
                println!("retention  {}", p.retention.describe());
                println!(
                    "items      {}",
                    if items.is_empty() {
                        "-".to_string()
                    } else {
                        items
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                );
            }
        }
        PolicyCommand::List { vault } => {
            let v = ctx.open(&vault.vault)?;
            let state = v.state()?;
            if ctx.json {
                print_json(&serde_json::Value::Array(
                    state
                        .policies
                        .values()
                        .map(|p| {
                            let items: Vec<&String> = state
                                .assignments
                                .iter()
                                .filter(|(_, n)| **n == p.name)
                                .map(|(i, _)| i)
                                .collect();
                            policy_json(p, &items)
                        })
                        .collect(),
                ));
            } else {
                for p in state.policies.values() {
                    println!(
                        "{:<20}  {}  |  {}",
                        p.name,
                        p.schedule.describe(),
                        p.retention.describe()
                    );
                }
            }
        }
        PolicyCommand::Delete { vault, name } => {
            let v = ctx.open(&vault.vault)?;
            changes::delete_policy(&v, &name)?;
            println!("deleted policy {name}");
        }
        PolicyCommand::Assign { vault, name, items } => {
            let v = ctx.open(&vault.vault)?;
            for item in &items {
                changes::assign(&v, &name, item)?;
            }
            println!("{} item(s) now follow {name}", items.len());
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn item_command(ctx: &crate::cli::Ctx, cmd: ItemCommand) -> Result<ExitCode> {
    match cmd {
        ItemCommand::Stop {
            vault,
            item,
            delete_data,
            ..
        } => {
            let v = ctx.open(&vault.vault)?;
            changes::stop_protection(&v, &item, delete_data)?;
            if delete_data {
                println!("stopped protecting {item:?}; its points are soft-deleted (see `coffer points undelete`)");
            } else {
                println!(
                    "stopped protecting {item:?}; its points are kept until protection resumes"
                );
            }
        }
        ItemCommand::Resume { vault, item } => {
            let v = ctx.open(&vault.vault)?;
            changes::resume_protection(&v, &item)?;
            println!(
                "{item:?} is protected again under {}",
                v.state()?.policy_of(&item).name
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn parse_immutability(text: &str) -> Result<Immutability> {
    Ok(match text {
        "disabled" => Immutability::Disabled,
        "enabled" => Immutability::Enabled,
        "locked" => Immutability::Locked,
        other => bail!("--immutability {other:?}: expected disabled, enabled or locked"),
    })
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

pub fn prune_command(
    ctx: &crate::cli::Ctx,
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
                "bytes_deleted": g.bytes_deleted});
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
