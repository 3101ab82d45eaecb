//! Between the policy every entry point writes ([`PolicySpec`], from the
//! shared types crate) and the engine's [`Policy`]. This is the only place a
//! specification becomes a policy, so the service, the local and the remote
//! command line accept and refuse exactly the same policies, and the only
//! place a policy becomes the view they show.

use coffer_api_types::{
    MonthlyRules, PolicySpec, PolicyView, RetentionRules, WeeklyRules, YearlyRules,
};

use crate::journal::VaultState;
use crate::policy::{
    MonthDay, MonthlyRule, Policy, Retention, Schedule, Weekday, WeeklyRule, YearlyRule,
};

/// A specification that does not make a valid policy: which field of it is
/// wrong (as the API names fields: `schedule`, `retention.weekly.weekday`),
/// and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SpecError {
    pub field: &'static str,
    pub message: String,
}

fn at(field: &'static str) -> impl Fn(String) -> SpecError {
    move |message| SpecError { field, message }
}

/// The policy `name` that `spec` describes, validated.
pub fn to_policy(name: &str, spec: &PolicySpec) -> Result<Policy, SpecError> {
    crate::policy::validate_name(name).map_err(at("name"))?;
    let schedule =
        Schedule::parse(&spec.schedule, spec.time_zone.clone()).map_err(at("schedule"))?;
    let policy = Policy {
        name: name.to_string(),
        schedule,
        retention: to_retention(&spec.retention)?,
    };
    policy.validate().map_err(|e| {
        let field = if e.starts_with("retention") {
            "retention"
        } else if e.contains("time zone") {
            "time_zone"
        } else {
            "schedule"
        };
        SpecError { field, message: e }
    })?;
    Ok(policy)
}

fn to_retention(r: &RetentionRules) -> Result<Retention, SpecError> {
    let day = |field: &'static str, text: &str| MonthDay::parse(text).map_err(at(field));
    Ok(Retention {
        keep_last: r.keep_last,
        daily_days: r.daily_days,
        weekly: match &r.weekly {
            Some(w) => Some(WeeklyRule {
                weeks: w.weeks,
                weekday: Weekday::parse(&w.weekday).map_err(at("retention.weekly.weekday"))?,
            }),
            None => None,
        },
        monthly: match &r.monthly {
            Some(m) => Some(MonthlyRule {
                months: m.months,
                day: day("retention.monthly.day", &m.day)?,
            }),
            None => None,
        },
        yearly: match &r.yearly {
            Some(y) => Some(YearlyRule {
                years: y.years,
                month: y.month,
                day: day("retention.yearly.day", &y.day)?,
            }),
            None => None,
        },
    })
}

/// The specification that recreates `policy`.
pub fn to_spec(policy: &Policy) -> PolicySpec {
    PolicySpec {
        schedule: policy.schedule.spec(),
        time_zone: policy.schedule.time_zone().to_string(),
        retention: rules(&policy.retention),
    }
}

fn rules(r: &Retention) -> RetentionRules {
    RetentionRules {
        keep_last: r.keep_last,
        daily_days: r.daily_days,
        weekly: r.weekly.map(|w| WeeklyRules {
            weeks: w.weeks,
            weekday: w.weekday.name().to_ascii_lowercase(),
        }),
        monthly: r.monthly.map(|m| MonthlyRules {
            months: m.months,
            day: m.day.spec(),
        }),
        yearly: r.yearly.map(|y| YearlyRules {
            years: y.years,
            month: y.month,
            day: y.day.spec(),
        }),
    }
}

/// `policy` as it is shown, with the items of `state` that follow it and
/// its next run after `now` (Unix seconds).
pub fn view(policy: &Policy, state: &VaultState, now: i64) -> PolicyView {
    PolicyView {
        name: policy.name.clone(),
        schedule: policy.schedule.describe(),
        schedule_spec: policy.schedule.spec(),
        time_zone: policy.schedule.time_zone().to_string(),
        retention: policy.retention.describe(),
        rules: rules(&policy.retention),
        items: state
            .assignments
            .iter()
            .filter(|(_, name)| **name == policy.name)
            .map(|(item, _)| item.clone())
            .collect(),
        next_run: policy.schedule.next_run(now).ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(schedule: &str, retention: RetentionRules) -> PolicySpec {
        PolicySpec {
            schedule: schedule.into(),
            time_zone: "Europe/Stockholm".into(),
            retention,
        }
    }

    #[test]
    fn a_policy_survives_the_round_trip_through_its_specification() {
        let s = spec(
            "weekly mon,thu 02:30",
            RetentionRules {
                keep_last: Some(3),
                daily_days: Some(7),
                weekly: Some(WeeklyRules {
                    weeks: 12,
                    weekday: "sunday".into(),
                }),
                monthly: Some(MonthlyRules {
                    months: 12,
                    day: "last".into(),
                }),
                yearly: Some(YearlyRules {
                    years: 5,
                    month: 12,
                    day: "last-friday".into(),
                }),
            },
        );
        let policy = to_policy("Office", &s).unwrap();
        assert_eq!(to_spec(&policy), s);
        assert_eq!(to_policy("Office", &to_spec(&policy)).unwrap(), policy);
    }

    #[test]
    fn a_bad_specification_names_the_field_that_is_wrong() {
        let bad_day = RetentionRules {
            weekly: Some(WeeklyRules {
                weeks: 2,
                weekday: "funday".into(),
            }),
            ..Default::default()
        };
        let cases = [
            (
                "ok",
                spec("fortnightly", RetentionRules::default()),
                "schedule",
            ),
            (
                "ok",
                spec("daily 01:00", bad_day),
                "retention.weekly.weekday",
            ),
            (
                "bad name!",
                spec("daily 01:00", RetentionRules::default()),
                "name",
            ),
            (
                "ok",
                PolicySpec {
                    time_zone: "Mars/Olympus".into(),
                    ..spec("daily 01:00", RetentionRules::default())
                },
                "time_zone",
            ),
            (
                "ok",
                spec(
                    "daily 01:00",
                    RetentionRules {
                        daily_days: Some(1_000_000),
                        ..Default::default()
                    },
                ),
                "retention",
            ),
        ];
        for (name, s, field) in cases {
            let e = to_policy(name, &s).unwrap_err();
            assert_eq!(e.field, field, "{s:?}: {e}");
            assert!(!e.message.is_empty());
        }
    }
}
