//! Retention: which recovery points of an item are kept, until when, and by
//! which rule.
//!
//! Evaluation is a pure function of the points, the item's current policy and
//! protection state, and "now". Nothing decided earlier is stored, so every
//! policy change applies to existing points at once (retroactive retention):
//! a shorter rule expires points at the next prune, a longer one extends
//! them, and a point that no rule of the new policy matches expires.
//!
//! The rules, in the item's time zone (the policy schedule's):
//! - a point's *day point* status: it is the newest scheduled point of its
//!   local calendar day;
//! - keep-last N: the N newest scheduled points;
//! - daily N: a day point, until its time + N days;
//! - weekly (weekday, N): a day point on that weekday, until + N weeks;
//! - monthly (day rule, N): a day point on the day the rule picks in its
//!   month, until + N calendar months;
//! - yearly (month, day rule, N): the same in the given month, + N years.
//!
//! A point matching several rules is kept until the latest of their dates.
//! Overrides, strongest first: a held point is kept; an item whose
//! protection was stopped with "retain data" keeps everything; an on-demand
//! point keeps the expiry it was taken with and ignores the policy; the
//! newest point of the item, and its newest point without errors, are kept.

use std::collections::HashMap;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::Timestamp as JTimestamp;

use crate::ids::ObjectId;
use crate::policy::{add_calendar, Policy, Weekday};

/// What retention needs to know about one point.
#[derive(Debug, Clone)]
pub struct PointFacts {
    pub id: ObjectId,
    /// Unix seconds (sub-second order is broken by `nanos`, then the id).
    pub secs: i64,
    pub nanos: u32,
    /// Taken on demand with this expiry (Unix seconds): the policy does not apply.
    pub on_demand_until: Option<i64>,
    pub hold: bool,
    /// The backup recorded entries it could not read.
    pub has_errors: bool,
}

/// An item's protection state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Protection {
    #[default]
    Active,
    /// Stopped with "retain data": points are kept forever, the schedule stops.
    StoppedRetain,
    /// Stopped with "delete data": every point was soft-deleted.
    StoppedDelete,
}

/// The rule that decided a point's fate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    Hold,
    ProtectionStopped,
    OnDemand,
    Latest,
    LatestWithoutErrors,
    KeepLast,
    Daily,
    Weekly,
    Monthly,
    Yearly,
    /// No rule (any longer) keeps it.
    NoRule,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Hold => "on hold",
            Rule::ProtectionStopped => "protection stopped, data retained",
            Rule::OnDemand => "on-demand expiry",
            Rule::Latest => "latest point of the item",
            Rule::LatestWithoutErrors => "latest point without errors",
            Rule::KeepLast => "keep-last",
            Rule::Daily => "daily",
            Rule::Weekly => "weekly",
            Rule::Monthly => "monthly",
            Rule::Yearly => "yearly",
            Rule::NoRule => "matches no retention rule",
        }
    }
}

/// The decision for one point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub keep: bool,
    pub rule: Rule,
    /// Until when the rule keeps it (Unix seconds); `None`: as long as the
    /// rule holds (hold, keep-last, latest), or not at all when expired
    /// without any rule.
    pub until: Option<i64>,
}

/// Decides every point of one item. `points` may come in any order; the
/// verdicts are returned by point id.
pub fn evaluate(
    points: &[PointFacts],
    policy: &Policy,
    protection: Protection,
    now: i64,
) -> Result<HashMap<ObjectId, Verdict>, String> {
    let tz = policy.time_zone()?;
    let mut order: Vec<&PointFacts> = points.iter().collect();
    // Newest first.
    order.sort_by_key(|p| std::cmp::Reverse((p.secs, p.nanos, p.id)));

    let scheduled: Vec<&PointFacts> = order
        .iter()
        .copied()
        .filter(|p| p.on_demand_until.is_none())
        .collect();
    let keep_last: usize = policy.retention.keep_last.unwrap_or(0) as usize;

    // The newest scheduled point of each local day.
    let mut day_points: HashMap<Date, ObjectId> = HashMap::new();
    let mut local: HashMap<ObjectId, jiff::Zoned> = HashMap::new();
    for p in &scheduled {
        let z = zoned(p.secs, &tz)?;
        day_points.entry(z.date()).or_insert(p.id);
        local.insert(p.id, z);
    }

    let latest = order.first().map(|p| p.id);
    let latest_clean = order.iter().find(|p| !p.has_errors).map(|p| p.id);

    let mut out = HashMap::with_capacity(points.len());
    for p in &order {
        let verdict = if p.hold {
            keep(Rule::Hold, None)
        } else if protection == Protection::StoppedRetain {
            keep(Rule::ProtectionStopped, None)
        } else if let Some(until) = p.on_demand_until {
            Verdict {
                keep: until > now,
                rule: Rule::OnDemand,
                until: Some(until),
            }
        } else {
            scheduled_verdict(p, policy, &local, &day_points, &scheduled, keep_last, now)
        };
        let verdict = if verdict.keep {
            verdict
        } else if Some(p.id) == latest {
            keep(Rule::Latest, None)
        } else if Some(p.id) == latest_clean {
            keep(Rule::LatestWithoutErrors, None)
        } else {
            verdict
        };
        out.insert(p.id, verdict);
    }
    Ok(out)
}

fn keep(rule: Rule, until: Option<i64>) -> Verdict {
    Verdict {
        keep: true,
        rule,
        until,
    }
}

fn zoned(secs: i64, tz: &TimeZone) -> Result<jiff::Zoned, String> {
    JTimestamp::from_second(secs)
        .map(|t| t.to_zoned(tz.clone()))
        .map_err(|e| format!("point time {secs} is out of range: {e}"))
}

fn scheduled_verdict(
    p: &PointFacts,
    policy: &Policy,
    local: &HashMap<ObjectId, jiff::Zoned>,
    day_points: &HashMap<Date, ObjectId>,
    scheduled: &[&PointFacts],
    keep_last: usize,
    now: i64,
) -> Verdict {
    let r = &policy.retention;
    let Some(z) = local.get(&p.id) else {
        return Verdict {
            keep: false,
            rule: Rule::NoRule,
            until: None,
        };
    };
    let date = z.date();
    let is_day_point = day_points.get(&date) == Some(&p.id);
    // (rule, until) of every dated rule that matches.
    let mut dated: Vec<(Rule, i64)> = Vec::new();
    if is_day_point {
        if let Some(days) = r.daily_days {
            if let Some(u) = add_calendar(z, days as i64, 0, 0) {
                dated.push((Rule::Daily, u));
            }
        }
        if let Some(w) = r.weekly {
            if Weekday::of(date) == w.weekday {
                if let Some(u) = add_calendar(z, 7 * w.weeks as i64, 0, 0) {
                    dated.push((Rule::Weekly, u));
                }
            }
        }
        if let Some(m) = r.monthly {
            if m.day.date_in(date.year(), date.month()) == Some(date) {
                if let Some(u) = add_calendar(z, 0, m.months as i64, 0) {
                    dated.push((Rule::Monthly, u));
                }
            }
        }
        if let Some(y) = r.yearly {
            if date.month() == y.month as i8
                && y.day.date_in(date.year(), date.month()) == Some(date)
            {
                if let Some(u) = add_calendar(z, 0, 0, y.years as i64) {
                    dated.push((Rule::Yearly, u));
                }
            }
        }
    }
    // The longest retention wins; on a tie the longer-term rule names it.
    let best = dated
        .iter()
        .copied()
        .max_by_key(|(rule, until)| (*until, *rule as u8));
    if let Some((rule, until)) = best {
        if until > now {
            return keep(rule, Some(until));
        }
    }
    if keep_last > 0 && scheduled.iter().take(keep_last).any(|q| q.id == p.id) {
        return keep(Rule::KeepLast, None);
    }
    match best {
        Some((rule, until)) => Verdict {
            keep: false,
            rule,
            until: Some(until),
        },
        None => Verdict {
            keep: false,
            rule: Rule::NoRule,
            until: None,
        },
    }
}

#[cfg(test)]
mod tests {
    //! A brute-force model of the rules, written independently of
    //! `evaluate` (no day-point map, no span arithmetic on zoned times),
    //! checked against it over years of simulated points with policy changes.

    use super::*;
    use crate::policy::{
        MonthDay, MonthlyRule, Nth, Retention, Schedule, TimeOfDay, WeeklyRule, YearlyRule,
    };
    use jiff::civil::DateTime;
    use rand::{Rng, SeedableRng};

    fn days_in_month(y: i16, m: i8) -> i8 {
        match m {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
            _ => 28,
        }
    }

    fn model_day_matches(rule: MonthDay, d: Date) -> bool {
        let dim = days_in_month(d.year(), d.month());
        match rule {
            MonthDay::Day(n) => d.day() == n as i8,
            MonthDay::Last => d.day() == dim,
            MonthDay::Weekday { nth, weekday } => {
                Weekday::of(d) == weekday
                    && match nth {
                        Nth::First => d.day() <= 7,
                        Nth::Second => (8..=14).contains(&d.day()),
                        Nth::Third => (15..=21).contains(&d.day()),
                        Nth::Fourth => (22..=28).contains(&d.day()),
                        Nth::Last => d.day() + 7 > dim,
                    }
            }
        }
    }

    /// Local wall time + whole months (day clamped), back to an instant.
    fn model_add(tz: &TimeZone, secs: i64, days: i64, months: i64) -> i64 {
        let dt = JTimestamp::from_second(secs)
            .unwrap()
            .to_zoned(tz.clone())
            .datetime();
        let total = dt.year() as i64 * 12 + (dt.month() as i64 - 1) + months;
        let (y, m) = ((total / 12) as i16, (total % 12 + 1) as i8);
        let day = dt.day().min(days_in_month(y, m));
        let mut date = Date::new(y, m, day).unwrap();
        for _ in 0..days {
            date = date.tomorrow().unwrap();
        }
        let moved = DateTime::from_parts(date, dt.time());
        tz.to_ambiguous_zoned(moved)
            .compatible()
            .unwrap()
            .timestamp()
            .as_second()
    }

    fn model(
        points: &[PointFacts],
        policy: &Policy,
        protection: Protection,
        now: i64,
    ) -> HashMap<ObjectId, (bool, Rule)> {
        let tz = policy.time_zone().unwrap();
        let r = &policy.retention;
        let newer =
            |a: &PointFacts, b: &PointFacts| (a.secs, a.nanos, a.id) > (b.secs, b.nanos, b.id);
        let date_of = |p: &PointFacts| {
            JTimestamp::from_second(p.secs)
                .unwrap()
                .to_zoned(tz.clone())
                .date()
        };
        let mut out = HashMap::new();
        for p in points {
            let newest = points.iter().all(|q| q.id == p.id || newer(p, q));
            let newest_clean = !p.has_errors
                && points
                    .iter()
                    .all(|q| q.id == p.id || q.has_errors || newer(p, q));
            let mut decision = if p.hold {
                (true, Rule::Hold)
            } else if protection == Protection::StoppedRetain {
                (true, Rule::ProtectionStopped)
            } else if let Some(u) = p.on_demand_until {
                (u > now, Rule::OnDemand)
            } else {
                let d = date_of(p);
                let day_point = points.iter().all(|q| {
                    q.id == p.id || q.on_demand_until.is_some() || date_of(q) != d || newer(p, q)
                });
                let mut best: Option<(i64, Rule)> = None;
                let mut consider = |until: i64, rule: Rule| {
                    if best.is_none_or(|(u, r)| until > u || (until == u && rule as u8 > r as u8)) {
                        best = Some((until, rule));
                    }
                };
                if day_point {
                    if let Some(n) = r.daily_days {
                        consider(model_add(&tz, p.secs, n as i64, 0), Rule::Daily);
                    }
                    if let Some(w) = r.weekly {
                        if Weekday::of(d) == w.weekday {
                            consider(model_add(&tz, p.secs, 7 * w.weeks as i64, 0), Rule::Weekly);
                        }
                    }
                    if let Some(m) = r.monthly {
                        if model_day_matches(m.day, d) {
                            consider(model_add(&tz, p.secs, 0, m.months as i64), Rule::Monthly);
                        }
                    }
                    if let Some(y) = r.yearly {
                        if d.month() == y.month as i8 && model_day_matches(y.day, d) {
                            consider(model_add(&tz, p.secs, 0, 12 * y.years as i64), Rule::Yearly);
                        }
                    }
                }
                let newer_scheduled = points
                    .iter()
                    .filter(|q| q.on_demand_until.is_none() && newer(q, p))
                    .count();
                match best {
                    Some((u, rule)) if u > now => (true, rule),
                    _ if (newer_scheduled as u32) < r.keep_last.unwrap_or(0) => {
                        (true, Rule::KeepLast)
                    }
                    Some((_, rule)) => (false, rule),
                    None => (false, Rule::NoRule),
                }
            };
            if !decision.0 && newest {
                decision = (true, Rule::Latest);
            } else if !decision.0 && newest_clean {
                decision = (true, Rule::LatestWithoutErrors);
            }
            out.insert(p.id, decision);
        }
        out
    }

    fn random_month_day(rng: &mut impl Rng) -> MonthDay {
        match rng.gen_range(0..3) {
            0 => MonthDay::Day(rng.gen_range(1..=28)),
            1 => MonthDay::Last,
            _ => MonthDay::Weekday {
                nth: [Nth::First, Nth::Second, Nth::Third, Nth::Fourth, Nth::Last]
                    [rng.gen_range(0..5)],
                weekday: Weekday::ALL[rng.gen_range(0..7)],
            },
        }
    }

    fn random_policy(rng: &mut impl Rng) -> Policy {
        let zones = [
            "UTC",
            "Europe/Stockholm",
            "America/New_York",
            "Australia/Lord_Howe",
        ];
        let mut retention = Retention::default();
        while retention == Retention::default() {
            if rng.gen_bool(0.3) {
                retention.keep_last = Some(rng.gen_range(1..10));
            }
            if rng.gen_bool(0.6) {
                retention.daily_days = Some(rng.gen_range(1..40));
            }
            if rng.gen_bool(0.5) {
                retention.weekly = Some(WeeklyRule {
                    weekday: Weekday::ALL[rng.gen_range(0..7)],
                    weeks: rng.gen_range(1..12),
                });
            }
            if rng.gen_bool(0.4) {
                retention.monthly = Some(MonthlyRule {
                    day: random_month_day(rng),
                    months: rng.gen_range(1..14),
                });
            }
            if rng.gen_bool(0.3) {
                retention.yearly = Some(YearlyRule {
                    month: rng.gen_range(1..=12),
                    day: random_month_day(rng),
                    years: rng.gen_range(1..3),
                });
            }
        }
        Policy {
            name: "p".into(),
            schedule: Schedule::Daily {
                at: TimeOfDay {
                    hour: 22,
                    minute: 0,
                },
                time_zone: zones[rng.gen_range(0..zones.len())].into(),
            },
            retention,
        }
    }

    fn id(n: u64) -> ObjectId {
        let mut b = [0u8; 32];
        b[..8].copy_from_slice(&n.to_le_bytes());
        ObjectId(b)
    }

    /// Simulates `days` of history from 2024-01-01 with `per_day` points a
    /// day (plus random extra, on-demand and held points); prunes after each
    /// day as the engine would (expired points leave), changes policy now and
    /// then, and compares every verdict with the model.
    fn simulate(seed: u64, days: i64, per_day: i64) -> std::collections::HashSet<(bool, Rule)> {
        let mut seen = std::collections::HashSet::new();
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut policy = random_policy(&mut rng);
        let mut protection = Protection::Active;
        let start = "2024-01-01T00:00:00Z"
            .parse::<JTimestamp>()
            .unwrap()
            .as_second();
        let mut points: Vec<PointFacts> = Vec::new();
        let mut next_id = 0u64;
        for day in 0..days {
            for k in 0..per_day {
                let secs = start + day * 86_400 + (k * 86_400 / per_day) + rng.gen_range(0..3_600);
                next_id += 1;
                let on_demand = rng
                    .gen_bool(0.03)
                    .then(|| secs + rng.gen_range(1..60) * 86_400);
                points.push(PointFacts {
                    id: id(next_id),
                    secs,
                    nanos: rng.gen_range(0..1000),
                    on_demand_until: on_demand,
                    hold: rng.gen_bool(0.005),
                    has_errors: rng.gen_bool(0.05),
                });
            }
            if rng.gen_bool(0.02) {
                policy = random_policy(&mut rng);
            }
            if rng.gen_bool(0.003) {
                protection = if protection == Protection::Active {
                    Protection::StoppedRetain
                } else {
                    Protection::Active
                };
            }
            for p in points.iter_mut() {
                if p.hold && rng.gen_bool(0.01) {
                    p.hold = false;
                }
            }
            let now = start + (day + 1) * 86_400;
            let got = evaluate(&points, &policy, protection, now).unwrap();
            let want = model(&points, &policy, protection, now);
            for p in &points {
                let g = got[&p.id];
                assert_eq!(
                    (g.keep, g.rule),
                    want[&p.id],
                    "seed {seed}, day {day}, point at {} ({:?}), policy {:?}",
                    JTimestamp::from_second(p.secs).unwrap(),
                    p,
                    policy
                );
                seen.insert((g.keep, g.rule));
            }
            points.retain(|p| got[&p.id].keep);
            assert!(!points.is_empty(), "the latest point always stays");
        }
        seen
    }

    #[test]
    fn daily_history_over_three_years_matches_the_model() {
        let mut seen = std::collections::HashSet::new();
        for seed in 0..6 {
            seen.extend(simulate(seed, 3 * 366, 1));
        }
        // The simulation must reach every rule, kept and expired.
        for rule in [
            Rule::Daily,
            Rule::Weekly,
            Rule::Monthly,
            Rule::Yearly,
            Rule::KeepLast,
            Rule::Latest,
            Rule::LatestWithoutErrors,
            Rule::OnDemand,
            Rule::Hold,
            Rule::ProtectionStopped,
        ] {
            assert!(
                seen.contains(&(true, rule)),
                "no point was kept by {rule:?}"
            );
        }
        for rule in [
            Rule::Daily,
            Rule::Weekly,
            Rule::Monthly,
            Rule::OnDemand,
            Rule::NoRule,
        ] {
            assert!(
                seen.contains(&(false, rule)),
                "no point expired under {rule:?}"
            );
        }
    }

    #[test]
    fn hourly_history_matches_the_model() {
        let mut seen = std::collections::HashSet::new();
        for seed in 100..103 {
            seen.extend(simulate(seed, 120, 6));
        }
        assert!(
            seen.contains(&(false, Rule::NoRule)),
            "points that are not the last of their day expire"
        );
    }

    fn p(n: u64, at: &str) -> PointFacts {
        PointFacts {
            id: id(n),
            secs: at.parse::<JTimestamp>().unwrap().as_second(),
            nanos: 0,
            on_demand_until: None,
            hold: false,
            has_errors: false,
        }
    }

    #[test]
    fn daily_to_weekly_expires_the_dailies_and_weekly_to_daily_counts_days() {
        let now = "2026-03-01T00:00:00Z"
            .parse::<JTimestamp>()
            .unwrap()
            .as_second();
        // Daily points at 22:00 UTC for 20 days; 2026-02-15 is a Sunday.
        let points: Vec<_> = (0..20)
            .map(|i| p(i, &format!("2026-02-{:02}T22:00:00Z", 9 + i)))
            .collect();
        let mut policy = Policy::default_policy();
        policy.retention = Retention {
            weekly: Some(WeeklyRule {
                weekday: Weekday::Sunday,
                weeks: 4,
            }),
            ..Retention::default()
        };
        let v = evaluate(&points, &policy, Protection::Active, now).unwrap();
        let kept: Vec<_> = points
            .iter()
            .filter(|p| v[&p.id].keep)
            .map(|p| v[&p.id].rule)
            .collect();
        // Sundays 15 and 22 February, and the latest point.
        assert_eq!(kept, vec![Rule::Weekly, Rule::Weekly, Rule::Latest]);
        // Weekly points become daily points under a daily rule: kept for the
        // days the new rule gives them from their own time.
        policy.retention = Retention {
            daily_days: Some(10),
            ..Retention::default()
        };
        let v = evaluate(&points, &policy, Protection::Active, now).unwrap();
        assert!(!v[&id(6)].keep, "15 February + 10 days < 1 March");
        assert!(v[&id(13)].keep && v[&id(13)].rule == Rule::Daily);
    }

    #[test]
    fn holds_on_demand_and_stopped_protection_override_the_policy() {
        let now = "2027-01-01T00:00:00Z"
            .parse::<JTimestamp>()
            .unwrap()
            .as_second();
        let mut old = p(1, "2026-01-01T22:00:00Z");
        old.hold = true;
        let mut demand = p(2, "2026-06-01T10:00:00Z");
        demand.on_demand_until = Some(now + 10);
        let mut demand_gone = p(3, "2026-06-02T10:00:00Z");
        demand_gone.on_demand_until = Some(now - 10);
        let plain = p(4, "2026-07-01T22:00:00Z");
        let latest = p(5, "2026-12-30T22:00:00Z");
        let points = [old, demand, demand_gone, plain, latest];
        let policy = Policy::default_policy();
        let v = evaluate(&points, &policy, Protection::Active, now).unwrap();
        assert_eq!(v[&id(1)].rule, Rule::Hold);
        assert!(v[&id(2)].keep && v[&id(2)].rule == Rule::OnDemand);
        assert!(!v[&id(3)].keep);
        assert!(!v[&id(4)].keep);
        assert!(v[&id(5)].keep && v[&id(5)].rule == Rule::Daily);
        let v = evaluate(&points, &policy, Protection::StoppedRetain, now).unwrap();
        assert!(points.iter().all(|p| v[&p.id].keep));
    }
}
