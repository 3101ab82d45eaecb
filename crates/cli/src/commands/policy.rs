//! `coffer policy`: schedules and retention rules, and which items follow
//! them. The options of `create` and `set` are one `PolicySpec`: given
//! fields replace, others stay; the engine validates the result.

use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use coffer_engine::changes;
use coffer_engine::policy::{
    MonthDay, MonthlyRule, Policy, Retention, Schedule, Weekday, WeeklyRule, YearlyRule,
};
use serde_json::json;

use crate::ctx::{Ctx, VaultArg};
use crate::output::{print_json, time_secs};

/// Schedule and retention options shared by `policy create` and `policy set`.
#[derive(Args, Clone, Default)]
pub(crate) struct PolicySpec {
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
        spec: PolicySpec,
    },
    /// Change a policy: only the options given change. Applies to existing points.
    Set {
        #[command(flatten)]
        vault: VaultArg,
        name: String,
        #[command(flatten)]
        spec: PolicySpec,
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

pub(crate) fn run(ctx: &Ctx, cmd: PolicyCommand) -> Result<ExitCode> {
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
