//! `coffer policy`: schedules and retention rules, and which items follow
//! them. The options of `create` and `set` are one [`PolicyFlags`], applied
//! onto the shared [`PolicySpec`] (given fields replace, others stay), which
//! the engine turns into the policy as it does for the service.

use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use coffer_api_types::{MonthlyRules, PolicySpec, PolicyView, WeeklyRules, YearlyRules};
use coffer_engine::policy::Policy;
use coffer_engine::{changes, policy_spec};

use crate::ctx::{Ctx, VaultArg};
use crate::output::{now_secs, print_json, time_secs};

/// Schedule and retention options shared by `policy create` and `policy set`.
#[derive(Args, Clone, Default)]
pub(crate) struct PolicyFlags {
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
pub(crate) enum PolicyCommand {
    /// Create a policy (unset rules are absent; the schedule defaults to daily 22:00 UTC).
    Create {
        #[command(flatten)]
        vault: VaultArg,
        name: String,
        #[command(flatten)]
        flags: PolicyFlags,
    },
    /// Change a policy: only the options given change. Applies to existing points.
    Set {
        #[command(flatten)]
        vault: VaultArg,
        name: String,
        #[command(flatten)]
        flags: PolicyFlags,
    },
    /// Show one policy and the items that follow it.
    Show {
        #[command(flatten)]
        vault: VaultArg,
        name: String,
    },
    /// List policies.
    List {
        #[command(flatten)]
        vault: VaultArg,
    },
    /// Delete a policy no item follows.
    Delete {
        #[command(flatten)]
        vault: VaultArg,
        name: String,
    },
    /// Make items follow a policy.
    Assign {
        #[command(flatten)]
        vault: VaultArg,
        name: String,
        #[arg(required = true, value_name = "ITEM")]
        items: Vec<String>,
    },
}

/// Applies the flags onto `spec`: given fields replace, others stay. The
/// values are checked when the specification becomes a policy
/// ([`to_policy`]), by the engine, as for the service's API.
pub(crate) fn apply_flags(spec: &mut PolicySpec, flags: &PolicyFlags) -> Result<()> {
    if let Some(s) = &flags.schedule {
        spec.schedule = s.clone();
    }
    if let Some(tz) = &flags.time_zone {
        spec.time_zone = tz.clone();
    }
    let r = &mut spec.retention;
    if flags.keep_last.is_some() {
        r.keep_last = flags.keep_last;
    }
    if flags.daily.is_some() {
        r.daily_days = flags.daily;
    }
    if flags.weekly.is_some() || flags.weekly_day.is_some() {
        let old = r.weekly.take();
        r.weekly = Some(WeeklyRules {
            weeks: flags
                .weekly
                .or(old.as_ref().map(|w| w.weeks))
                .context("--weekly-day needs --weekly WEEKS")?,
            weekday: flags
                .weekly_day
                .clone()
                .or(old.map(|w| w.weekday))
                .unwrap_or_else(|| "sunday".into()),
        });
    }
    if flags.monthly.is_some() || flags.monthly_day.is_some() {
        let old = r.monthly.take();
        r.monthly = Some(MonthlyRules {
            months: flags
                .monthly
                .or(old.as_ref().map(|m| m.months))
                .context("--monthly-day needs --monthly MONTHS")?,
            day: flags
                .monthly_day
                .clone()
                .or(old.map(|m| m.day))
                .unwrap_or_else(|| "1".into()),
        });
    }
    if flags.yearly.is_some() || flags.yearly_month.is_some() || flags.yearly_day.is_some() {
        let old = r.yearly.take();
        r.yearly = Some(YearlyRules {
            years: flags
                .yearly
                .or(old.as_ref().map(|y| y.years))
                .context("--yearly-month and --yearly-day need --yearly YEARS")?,
            month: flags
                .yearly_month
                .or(old.as_ref().map(|y| y.month))
                .unwrap_or(1),
            day: flags
                .yearly_day
                .clone()
                .or(old.map(|y| y.day))
                .unwrap_or_else(|| "1".into()),
        });
    }
    for rule in &flags.remove {
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
    Ok(())
}

/// The specification a new policy starts from: the default schedule, no
/// retention rule.
pub(crate) fn new_spec() -> PolicySpec {
    PolicySpec {
        retention: Default::default(),
        ..policy_spec::to_spec(&Policy::default_policy())
    }
}

/// The policy `spec` describes, with a wrong field named by its flag.
fn to_policy(name: &str, spec: &PolicySpec) -> Result<Policy> {
    policy_spec::to_policy(name, spec).map_err(|e| anyhow!("{}: {}", flag_of(e.field), e.message))
}

/// The flag that sets a field of the specification.
pub(crate) fn flag_of(field: &str) -> &str {
    match field {
        "schedule" => "--schedule",
        "time_zone" => "--time-zone",
        "retention.weekly.weekday" => "--weekly-day",
        "retention.monthly.day" => "--monthly-day",
        "retention.yearly.day" => "--yearly-day",
        "name" => "policy name",
        other => other,
    }
}

/// One policy, a field a line.
pub(crate) fn print_policy(p: &PolicyView) {
    println!("policy     {}", p.name);
    println!("schedule   {}", p.schedule);
    if let Some(next) = p.next_run {
        println!("next run   {}", time_secs(next));
    }
    println!("retention  {}", p.retention);
    let items = if p.items.is_empty() {
        "-".to_string()
    } else {
        p.items.join(", ")
    };
    println!("items      {items}");
}

/// A policy in a listing.
pub(crate) fn print_policy_line(p: &PolicyView) {
    println!("{:<20}  {}  |  {}", p.name, p.schedule, p.retention);
}

/// The policy as saved in the journal: the view as JSON, or one line.
fn show_saved(
    ctx: &Ctx,
    vault: &coffer_engine::vault::Vault,
    name: &str,
    what: &str,
    note: &str,
) -> Result<()> {
    let state = vault.state()?;
    let policy = state
        .policies
        .get(name)
        .with_context(|| format!("policy {name:?} is not in the journal after it was saved"))?;
    let view = policy_spec::view(policy, &state, now_secs());
    if ctx.json {
        print_json(&view);
    } else {
        println!("{what} {name}: {}; {}{note}", view.schedule, view.retention);
    }
    Ok(())
}

pub(crate) fn run(ctx: &Ctx, cmd: PolicyCommand) -> Result<ExitCode> {
    match cmd {
        PolicyCommand::Create { vault, name, flags } => {
            let v = ctx.open(&vault.vault)?;
            let state = v.state()?;
            if state.policies.contains_key(&name) {
                bail!("a policy named {name:?} exists already; change it with `coffer policy set`");
            }
            let mut spec = new_spec();
            apply_flags(&mut spec, &flags)?;
            let policy = to_policy(&name, &spec)?;
            changes::set_policy(&v, policy)?;
            show_saved(ctx, &v, &name, "created policy", "")?;
        }
        PolicyCommand::Set { vault, name, flags } => {
            let v = ctx.open(&vault.vault)?;
            let state = v.state()?;
            let old = state
                .policies
                .get(&name)
                .with_context(|| format!("no policy named {name:?} (see `coffer policy list`)"))?;
            let mut spec = policy_spec::to_spec(old);
            apply_flags(&mut spec, &flags)?;
            let policy = to_policy(&name, &spec)?;
            changes::set_policy(&v, policy)?;
            show_saved(
                ctx,
                &v,
                &name,
                "policy",
                " (applies to existing points at the next prune)",
            )?;
        }
        PolicyCommand::Show { vault, name } => {
            let v = ctx.open(&vault.vault)?;
            let state = v.state()?;
            let p = state
                .policies
                .get(&name)
                .with_context(|| format!("no policy named {name:?} (see `coffer policy list`)"))?;
            let view = policy_spec::view(p, &state, now_secs());
            if ctx.json {
                print_json(&view);
            } else {
                print_policy(&view);
            }
        }
        PolicyCommand::List { vault } => {
            let v = ctx.open(&vault.vault)?;
            let state = v.state()?;
            let views: Vec<PolicyView> = state
                .policies
                .values()
                .map(|p| policy_spec::view(p, &state, now_secs()))
                .collect();
            if ctx.json {
                print_json(&views);
            } else {
                for p in &views {
                    print_policy_line(p);
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
