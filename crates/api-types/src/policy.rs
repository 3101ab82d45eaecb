//! Policies as every entry point writes and shows them: the specification a
//! client sends to create or replace one ([`PolicySpec`]) and the view it
//! gets back ([`PolicyView`]). The engine turns a specification into its
//! policy in one place; the command line's flags are applied onto a
//! specification, never onto the engine's types, so the local and remote
//! command lines and the service accept exactly the same policies.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A policy to create or replace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PolicySpec {
    /// `daily HH:MM`, `weekly mon,thu HH:MM`, or `every N h from HH:MM [for H h]`.
    pub schedule: String,
    /// IANA time zone of the schedule and of retention days (default UTC).
    #[serde(default = "utc")]
    pub time_zone: String,
    #[serde(default)]
    pub retention: RetentionRules,
}

fn utc() -> String {
    "UTC".into()
}

/// Retention rules; absent rules keep nothing by that rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RetentionRules {
    /// The newest N scheduled points.
    pub keep_last: Option<u32>,
    /// The last point of each day, for N days.
    pub daily_days: Option<u32>,
    pub weekly: Option<WeeklyRules>,
    pub monthly: Option<MonthlyRules>,
    pub yearly: Option<YearlyRules>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WeeklyRules {
    pub weeks: u32,
    /// monday … sunday.
    pub weekday: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MonthlyRules {
    pub months: u32,
    /// 1-28, last, or first-sunday … last-friday.
    pub day: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct YearlyRules {
    pub years: u32,
    /// 1-12.
    pub month: u8,
    /// As for monthly rules.
    pub day: String,
}

/// A policy as it is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PolicyView {
    pub name: String,
    /// The schedule in words.
    pub schedule: String,
    /// The schedule as it is written (`daily 22:00`), to edit it.
    pub schedule_spec: String,
    pub time_zone: String,
    /// The retention in words.
    pub retention: String,
    /// The retention rules, as they can be sent back.
    pub rules: RetentionRules,
    /// Items assigned to it (unassigned items follow DefaultPolicy).
    pub items: Vec<String>,
    /// When the schedule runs next (Unix seconds), if it can be computed.
    pub next_run: Option<i64>,
}

impl PolicyView {
    /// The specification that recreates this policy.
    pub fn spec(&self) -> PolicySpec {
        PolicySpec {
            schedule: self.schedule_spec.clone(),
            time_zone: self.time_zone.clone(),
            retention: self.rules.clone(),
        }
    }
}

/// One point's fate under a policy not yet saved.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PreviewPoint {
    pub id: String,
    pub item: String,
    pub time: i64,
    /// `keep`, `expire` (soft-deleted at the next prune), or
    /// `soft-deleted` (already).
    pub fate: String,
    /// The rule that decides it.
    pub rule: String,
    /// Until when the rule keeps it (Unix seconds).
    pub until: Option<i64>,
    /// The fate under the policy as it is saved now, when different.
    pub now: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PolicyPreview {
    pub policy: String,
    /// The items the preview applies the policy to.
    pub items: Vec<String>,
    pub keep: usize,
    pub expire: usize,
    /// Oldest first.
    pub points: Vec<PreviewPoint>,
}
