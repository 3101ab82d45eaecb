//! Backup policies: when to back up (schedule) and how long to keep what was
//! backed up (retention).
//!
//! A policy is plain data, stored in the vault's journal (see `journal`) so it
//! survives a cloud recovery. Schedules and retention rules are evaluated in
//! the policy's named time zone with `jiff`, so "daily at 22:00" and "the last
//! day of the month" follow daylight-saving changes the way a person reading
//! a wall clock expects. Retention itself is decided in `retention`.

use std::fmt;

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use jiff::{Timestamp as JTimestamp, ToSpan, Zoned};
use serde::{Deserialize, Serialize};

/// The policy every vault starts with and that unassigned items follow.
pub const DEFAULT_POLICY: &str = "DefaultPolicy";

/// Limits that keep evaluation bounded and catch typing errors (a retention
/// of 300,000 days is almost certainly a mistake).
const MAX_DAYS: u32 = 36_500;
const MAX_WEEKS: u32 = 5_200;
const MAX_MONTHS: u32 = 1_200;
const MAX_YEARS: u32 = 100;
const MAX_KEEP_LAST: u32 = 9_999;

/// A named schedule plus retention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub name: String,
    pub schedule: Schedule,
    pub retention: Retention,
}

/// A time of day on the wall clock of the schedule's time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TimeOfDay {
    pub hour: u8,
    pub minute: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Weekday {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

/// When backups run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Schedule {
    /// Every day at `at`.
    Daily { at: TimeOfDay, time_zone: String },
    /// On the given weekdays at `at`.
    Weekly {
        days: Vec<Weekday>,
        at: TimeOfDay,
        time_zone: String,
    },
    /// Every `every_hours` hours from `start`, for `window_hours` hours each
    /// day (a window of 24 hours runs around the clock).
    Hourly {
        every_hours: u8,
        start: TimeOfDay,
        window_hours: u8,
        time_zone: String,
    },
}

/// Which day of a month a monthly or yearly point is taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MonthDay {
    /// A day number, 1 to 28 (every month has it).
    Day(u8),
    /// The month's last day.
    Last,
    /// The first, second, third, fourth or last given weekday of the month.
    Weekday { nth: Nth, weekday: Weekday },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Nth {
    First,
    Second,
    Third,
    Fourth,
    Last,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeeklyRule {
    pub weekday: Weekday,
    pub weeks: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonthlyRule {
    pub day: MonthDay,
    pub months: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct YearlyRule {
    /// 1 to 12.
    pub month: u8,
    pub day: MonthDay,
    pub years: u32,
}

/// How long scheduled points are kept. Every rule is optional; a point kept
/// by several rules is kept as long as the longest of them says.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    /// The newest N scheduled points of an item.
    pub keep_last: Option<u32>,
    /// The last point of each day, for N days.
    pub daily_days: Option<u32>,
    pub weekly: Option<WeeklyRule>,
    pub monthly: Option<MonthlyRule>,
    pub yearly: Option<YearlyRule>,
}

impl Policy {
    /// Daily at 22:00 UTC, daily points kept 30 days.
    pub fn default_policy() -> Policy {
        Policy {
            name: DEFAULT_POLICY.to_string(),
            schedule: Schedule::Daily {
                at: TimeOfDay {
                    hour: 22,
                    minute: 0,
                },
                time_zone: "UTC".to_string(),
            },
            retention: Retention {
                daily_days: Some(30),
                ..Retention::default()
            },
        }
    }

    /// Checks every field; the message names the field and what is allowed.
    pub fn validate(&self) -> Result<(), String> {
        validate_name(&self.name)?;
        self.schedule.validate()?;
        self.retention.validate()
    }

    /// The time zone retention days are counted in: the schedule's.
    pub fn time_zone(&self) -> Result<TimeZone, String> {
        zone(self.schedule.time_zone())
    }
}

/// Policy names appear in commands and file names: keep them simple.
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err("policy name: must be 1 to 64 characters".into());
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!(
            "policy name {name:?}: use only letters, digits, '-', '_' and '.'"
        ));
    }
    Ok(())
}

fn zone(name: &str) -> Result<TimeZone, String> {
    TimeZone::get(name).map_err(|_| {
        format!("time zone {name:?}: not a known IANA time zone name (for example UTC or Europe/Stockholm)")
    })
}

impl TimeOfDay {
    /// Parses `HH:MM` (24-hour clock).
    pub fn parse(text: &str) -> Result<TimeOfDay, String> {
        let bad = || format!("time {text:?}: expected HH:MM on a 24-hour clock, like 22:00");
        let (h, m) = text.split_once(':').ok_or_else(bad)?;
        let hour: u8 = h.parse().map_err(|_| bad())?;
        let minute: u8 = m.parse().map_err(|_| bad())?;
        if hour > 23 || minute > 59 || m.len() != 2 {
            return Err(bad());
        }
        Ok(TimeOfDay { hour, minute })
    }

    fn civil(self) -> Time {
        Time::constant(self.hour as i8, self.minute as i8, 0, 0)
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.hour, self.minute)
    }
}

impl Weekday {
    pub const ALL: [Weekday; 7] = [
        Weekday::Monday,
        Weekday::Tuesday,
        Weekday::Wednesday,
        Weekday::Thursday,
        Weekday::Friday,
        Weekday::Saturday,
        Weekday::Sunday,
    ];

    /// Accepts full English names and their three-letter forms, any case.
    pub fn parse(text: &str) -> Result<Weekday, String> {
        let t = text.to_ascii_lowercase();
        Weekday::ALL
            .into_iter()
            .find(|d| {
                let name = d.name().to_ascii_lowercase();
                t == name || (t.len() == 3 && name.starts_with(&t))
            })
            .ok_or_else(|| format!("weekday {text:?}: expected a name like monday or mon"))
    }

    pub fn name(self) -> &'static str {
        match self {
            Weekday::Monday => "Monday",
            Weekday::Tuesday => "Tuesday",
            Weekday::Wednesday => "Wednesday",
            Weekday::Thursday => "Thursday",
            Weekday::Friday => "Friday",
            Weekday::Saturday => "Saturday",
            Weekday::Sunday => "Sunday",
        }
    }

    pub(crate) fn of(date: Date) -> Weekday {
        Weekday::ALL[(date.weekday().to_monday_zero_offset()) as usize]
    }
}

impl fmt::Display for Weekday {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Nth {
    fn parse(text: &str) -> Option<Nth> {
        Some(match text {
            "first" => Nth::First,
            "second" => Nth::Second,
            "third" => Nth::Third,
            "fourth" => Nth::Fourth,
            "last" => Nth::Last,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Nth::First => "first",
            Nth::Second => "second",
            Nth::Third => "third",
            Nth::Fourth => "fourth",
            Nth::Last => "last",
        }
    }
}

impl MonthDay {
    /// `1`..`28`, `last`, or `<first|second|third|fourth|last>-<weekday>`.
    pub fn parse(text: &str) -> Result<MonthDay, String> {
        let t = text.to_ascii_lowercase();
        if t == "last" {
            return Ok(MonthDay::Last);
        }
        if let Ok(n) = t.parse::<u8>() {
            return if (1..=28).contains(&n) {
                Ok(MonthDay::Day(n))
            } else {
                Err(format!(
                    "day of month {text:?}: use 1 to 28 (every month has them), or last"
                ))
            };
        }
        if let Some((nth, day)) = t.split_once('-') {
            if let (Some(nth), Ok(weekday)) = (Nth::parse(nth), Weekday::parse(day)) {
                return Ok(MonthDay::Weekday { nth, weekday });
            }
        }
        Err(format!(
            "day of month {text:?}: expected 1 to 28, last, or a weekday like first-sunday or last-friday"
        ))
    }

    /// The day of `year`-`month` this rule picks.
    pub(crate) fn date_in(self, year: i16, month: i8) -> Option<Date> {
        let first = Date::new(year, month, 1).ok()?;
        match self {
            MonthDay::Day(d) => Date::new(year, month, d as i8).ok(),
            MonthDay::Last => first.last_of_month().into(),
            MonthDay::Weekday { nth, weekday } => {
                let target = weekday_jiff(weekday);
                match nth {
                    Nth::Last => first.last_of_month().nth_weekday_of_month(-1, target).ok(),
                    n => {
                        let k = match n {
                            Nth::First => 1,
                            Nth::Second => 2,
                            Nth::Third => 3,
                            _ => 4,
                        };
                        first.nth_weekday_of_month(k, target).ok()
                    }
                }
            }
        }
    }
}

impl MonthDay {
    /// The text `parse` reads back: `12`, `last`, `first-sunday`.
    pub fn spec(&self) -> String {
        match self {
            MonthDay::Day(d) => d.to_string(),
            MonthDay::Last => "last".into(),
            MonthDay::Weekday { nth, weekday } => {
                format!("{}-{}", nth.name(), weekday.name().to_ascii_lowercase())
            }
        }
    }
}

impl fmt::Display for MonthDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MonthDay::Day(d) => write!(f, "day {d}"),
            MonthDay::Last => f.write_str("last day"),
            MonthDay::Weekday { nth, weekday } => write!(f, "{} {}", nth.name(), weekday),
        }
    }
}

fn weekday_jiff(day: Weekday) -> jiff::civil::Weekday {
    use jiff::civil::Weekday as W;
    match day {
        Weekday::Monday => W::Monday,
        Weekday::Tuesday => W::Tuesday,
        Weekday::Wednesday => W::Wednesday,
        Weekday::Thursday => W::Thursday,
        Weekday::Friday => W::Friday,
        Weekday::Saturday => W::Saturday,
        Weekday::Sunday => W::Sunday,
    }
}

impl Schedule {
    pub fn time_zone(&self) -> &str {
        match self {
            Schedule::Daily { time_zone, .. }
            | Schedule::Weekly { time_zone, .. }
            | Schedule::Hourly { time_zone, .. } => time_zone,
        }
    }

    fn validate(&self) -> Result<(), String> {
        zone(self.time_zone())?;
        match self {
            Schedule::Daily { .. } => Ok(()),
            Schedule::Weekly { days, .. } => {
                if days.is_empty() {
                    Err("schedule: a weekly schedule needs at least one weekday".into())
                } else {
                    Ok(())
                }
            }
            Schedule::Hourly {
                every_hours,
                window_hours,
                ..
            } => {
                if !(1..=24).contains(every_hours) {
                    return Err(format!(
                        "schedule: every {every_hours} hours is not possible; use 1 to 24"
                    ));
                }
                if !(1..=24).contains(window_hours) {
                    return Err(format!(
                        "schedule: a window of {window_hours} hours is not possible; use 1 to 24"
                    ));
                }
                Ok(())
            }
        }
    }

    /// Wall-clock start times of one local day, in order.
    fn times_on(&self, date: Date) -> Vec<Time> {
        match self {
            Schedule::Daily { at, .. } => vec![at.civil()],
            Schedule::Weekly { days, at, .. } => {
                if days.contains(&Weekday::of(date)) {
                    vec![at.civil()]
                } else {
                    vec![]
                }
            }
            Schedule::Hourly {
                every_hours,
                start,
                window_hours,
                ..
            } => {
                let start_min = start.hour as u32 * 60 + start.minute as u32;
                let mut out = Vec::new();
                let mut offset = 0u32;
                // Runs inside [start, start + window); a window that crosses
                // midnight contributes its early hours to the next day, so
                // here only the part on this day is listed and the tail of
                // yesterday's window is added below.
                while offset < *window_hours as u32 * 60 {
                    let m = start_min + offset;
                    if m < 24 * 60 {
                        out.push(Time::constant((m / 60) as i8, (m % 60) as i8, 0, 0));
                    }
                    offset += *every_hours as u32 * 60;
                }
                let mut offset = 0u32;
                while offset < *window_hours as u32 * 60 {
                    let m = start_min + offset;
                    if (24 * 60..48 * 60).contains(&m) {
                        let m = m - 24 * 60;
                        out.push(Time::constant((m / 60) as i8, (m % 60) as i8, 0, 0));
                    }
                    offset += *every_hours as u32 * 60;
                }
                out.sort();
                out.dedup();
                out
            }
        }
    }

    /// Parses `daily HH:MM`, `weekly mon,thu HH:MM` or `every N h from
    /// HH:MM [for H h]`, in the time zone `tz`.
    pub fn parse(text: &str, tz: String) -> Result<Schedule, String> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let bad = || {
            format!(
                "{text:?}: expected `daily HH:MM`, `weekly mon,thu HH:MM` or `every N h from HH:MM [for H h]`"
            )
        };
        let hours = |w: &str| w.trim_end_matches('h').parse::<u8>().map_err(|_| bad());
        match words.as_slice() {
            ["daily", at] => Ok(Schedule::Daily {
                at: TimeOfDay::parse(at)?,
                time_zone: tz,
            }),
            ["weekly", days, at] => Ok(Schedule::Weekly {
                days: days
                    .split(',')
                    .map(Weekday::parse)
                    .collect::<Result<Vec<_>, _>>()?,
                at: TimeOfDay::parse(at)?,
                time_zone: tz,
            }),
            ["every", n, "h", "from", start, rest @ ..]
            | ["every", n, "from", start, rest @ ..] => {
                let window_hours = match rest {
                    [] => 24,
                    ["for", h] | ["for", h, "h"] => hours(h)?,
                    _ => return Err(bad()),
                };
                Ok(Schedule::Hourly {
                    every_hours: hours(n)?,
                    start: TimeOfDay::parse(start)?,
                    window_hours,
                    time_zone: tz,
                })
            }
            _ => Err(bad()),
        }
    }

    /// The first scheduled run strictly after `after` (Unix seconds). Wall
    /// times that a daylight-saving change skips run at the first instant
    /// after the gap; repeated ones run once, at the earlier instant.
    pub fn next_run(&self, after: i64) -> Result<i64, String> {
        let tz = zone(self.time_zone())?;
        let after_ts = JTimestamp::from_second(after).map_err(|e| e.to_string())?;
        let mut date = after_ts.to_zoned(tz.clone()).date();
        // A weekly schedule runs within 8 days; look a little further to
        // be safe, then give up rather than loop.
        for _ in 0..16 {
            for t in self.times_on(date) {
                let dt = DateTime::from_parts(date, t);
                let Ok(z) = tz.to_ambiguous_zoned(dt).compatible() else {
                    continue;
                };
                let s = z.timestamp().as_second();
                if s > after {
                    return Ok(s);
                }
            }
            date = date.tomorrow().map_err(|e| e.to_string())?;
        }
        Err("schedule: no run found in the next two weeks".into())
    }

    /// The schedule as `parse` reads it (without its time zone).
    pub fn spec(&self) -> String {
        match self {
            Schedule::Daily { at, .. } => format!("daily {at}"),
            Schedule::Weekly { days, at, .. } => format!(
                "weekly {} {at}",
                days.iter()
                    .map(|d| d.name()[..3].to_ascii_lowercase())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            Schedule::Hourly {
                every_hours,
                start,
                window_hours,
                ..
            } if *window_hours == 24 => format!("every {every_hours} h from {start}"),
            Schedule::Hourly {
                every_hours,
                start,
                window_hours,
                ..
            } => format!("every {every_hours} h from {start} for {window_hours} h"),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Schedule::Daily { at, time_zone } => format!("daily at {at} ({time_zone})"),
            Schedule::Weekly {
                days,
                at,
                time_zone,
            } => format!(
                "weekly on {} at {at} ({time_zone})",
                days.iter().map(|d| d.name()).collect::<Vec<_>>().join(", ")
            ),
            Schedule::Hourly {
                every_hours,
                start,
                window_hours,
                time_zone,
            } => format!(
                "every {every_hours} h from {start} for {window_hours} h a day ({time_zone})"
            ),
        }
    }
}

impl Retention {
    fn validate(&self) -> Result<(), String> {
        fn within(what: &str, n: u32, max: u32) -> Result<(), String> {
            if n == 0 || n > max {
                Err(format!("retention: {what} must be 1 to {max}, not {n}"))
            } else {
                Ok(())
            }
        }
        if let Some(n) = self.keep_last {
            within("keep-last", n, MAX_KEEP_LAST)?;
        }
        if let Some(n) = self.daily_days {
            within("daily days", n, MAX_DAYS)?;
        }
        if let Some(r) = self.weekly {
            within("weekly weeks", r.weeks, MAX_WEEKS)?;
        }
        if let Some(r) = self.monthly {
            within("monthly months", r.months, MAX_MONTHS)?;
        }
        if let Some(r) = self.yearly {
            within("yearly years", r.years, MAX_YEARS)?;
            if !(1..=12).contains(&r.month) {
                return Err(format!(
                    "retention: the yearly month must be 1 to 12, not {}",
                    r.month
                ));
            }
        }
        if self == &Retention::default() {
            return Err(
                "retention: keep at least something (keep-last, daily, weekly, monthly or yearly)"
                    .into(),
            );
        }
        Ok(())
    }

    /// Why `self` keeps some point for less time than `old` would, if it
    /// does: what immutability forbids.
    pub fn shortening_from(&self, old: &Retention) -> Option<String> {
        fn less<T: PartialOrd + Copy + fmt::Display>(
            what: &str,
            new: Option<T>,
            old: Option<T>,
        ) -> Option<String> {
            match (new, old) {
                (_, None) => None,
                (None, Some(o)) => Some(format!("{what} ({o}) would be removed")),
                (Some(n), Some(o)) if n < o => Some(format!("{what} would go from {o} to {n}")),
                _ => None,
            }
        }
        less("keep-last", self.keep_last, old.keep_last)
            .or_else(|| less("daily retention in days", self.daily_days, old.daily_days))
            .or_else(|| {
                if old.weekly.is_some()
                    && self.weekly.map(|r| r.weekday) != old.weekly.map(|r| r.weekday)
                    && self.weekly.is_some()
                {
                    Some("the weekday of weekly points would change".into())
                } else {
                    less(
                        "weekly retention in weeks",
                        self.weekly.map(|r| r.weeks),
                        old.weekly.map(|r| r.weeks),
                    )
                }
            })
            .or_else(|| {
                if old.monthly.is_some()
                    && self.monthly.is_some()
                    && self.monthly.map(|r| r.day) != old.monthly.map(|r| r.day)
                {
                    Some("the day of monthly points would change".into())
                } else {
                    less(
                        "monthly retention in months",
                        self.monthly.map(|r| r.months),
                        old.monthly.map(|r| r.months),
                    )
                }
            })
            .or_else(|| {
                if old.yearly.is_some()
                    && self.yearly.is_some()
                    && self.yearly.map(|r| (r.month, r.day)) != old.yearly.map(|r| (r.month, r.day))
                {
                    Some("the day of yearly points would change".into())
                } else {
                    less(
                        "yearly retention in years",
                        self.yearly.map(|r| r.years),
                        old.yearly.map(|r| r.years),
                    )
                }
            })
    }

    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(n) = self.keep_last {
            parts.push(format!("last {n} points"));
        }
        if let Some(n) = self.daily_days {
            parts.push(format!("daily for {n} days"));
        }
        if let Some(r) = self.weekly {
            parts.push(format!("weekly ({}) for {} weeks", r.weekday, r.weeks));
        }
        if let Some(r) = self.monthly {
            parts.push(format!("monthly ({}) for {} months", r.day, r.months));
        }
        if let Some(r) = self.yearly {
            parts.push(format!(
                "yearly (month {}, {}) for {} years",
                r.month, r.day, r.years
            ));
        }
        parts.join("; ")
    }
}

/// Adds whole calendar units to a point's local time; the day is clamped to
/// the end of a shorter month (31 January + 1 month = 28 or 29 February).
pub(crate) fn add_calendar(at: &Zoned, days: i64, months: i64, years: i64) -> Option<i64> {
    let span = days.days().months(months).years(years);
    at.checked_add(span).ok().map(|z| z.timestamp().as_second())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> i64 {
        s.parse::<JTimestamp>().unwrap().as_second()
    }

    #[test]
    fn the_default_policy_is_valid_and_runs_daily_at_22_utc() {
        let p = Policy::default_policy();
        p.validate().unwrap();
        assert_eq!(
            p.schedule.next_run(at("2026-03-01T21:59:00Z")).unwrap(),
            at("2026-03-01T22:00:00Z")
        );
        assert_eq!(
            p.schedule.next_run(at("2026-03-01T22:00:00Z")).unwrap(),
            at("2026-03-02T22:00:00Z")
        );
    }

    #[test]
    fn a_schedule_written_back_parses_to_itself() {
        for text in [
            "daily 07:05",
            "weekly mon,thu 02:30",
            "every 4 h from 22:00 for 8 h",
            "every 6 h from 00:00",
        ] {
            let parsed = Schedule::parse(text, "Europe/Berlin".into()).unwrap();
            assert_eq!(parsed.spec(), text);
            assert_eq!(
                Schedule::parse(&parsed.spec(), "Europe/Berlin".into()).unwrap(),
                parsed
            );
        }
    }

    #[test]
    fn schedules_follow_the_wall_clock_of_their_time_zone() {
        let weekly = Schedule::Weekly {
            days: vec![Weekday::Monday, Weekday::Thursday],
            at: TimeOfDay::parse("02:30").unwrap(),
            time_zone: "Europe/Stockholm".into(),
        };
        // Sunday 2026-03-29 is the spring change in Stockholm; Monday 30
        // March 02:30 is CEST (UTC+2).
        assert_eq!(
            weekly.next_run(at("2026-03-27T12:00:00Z")).unwrap(),
            at("2026-03-30T00:30:00Z")
        );
        let daily = Schedule::Daily {
            at: TimeOfDay::parse("02:30").unwrap(),
            time_zone: "Europe/Stockholm".into(),
        };
        // 02:30 does not exist on 29 March: it runs at 03:30 CEST.
        assert_eq!(
            daily.next_run(at("2026-03-28T12:00:00Z")).unwrap(),
            at("2026-03-29T01:30:00Z")
        );
        let hourly = Schedule::Hourly {
            every_hours: 4,
            start: TimeOfDay::parse("22:00").unwrap(),
            window_hours: 8,
            time_zone: "UTC".into(),
        };
        // 22:00, 02:00 (the window crosses midnight), then 22:00 again.
        assert_eq!(
            hourly.next_run(at("2026-05-01T21:00:00Z")).unwrap(),
            at("2026-05-01T22:00:00Z")
        );
        assert_eq!(
            hourly.next_run(at("2026-05-01T22:00:00Z")).unwrap(),
            at("2026-05-02T02:00:00Z")
        );
        assert_eq!(
            hourly.next_run(at("2026-05-02T02:00:00Z")).unwrap(),
            at("2026-05-02T22:00:00Z")
        );
    }

    #[test]
    fn bad_fields_are_named_in_the_error() {
        let mut p = Policy::default_policy();
        p.schedule = Schedule::Daily {
            at: TimeOfDay { hour: 1, minute: 0 },
            time_zone: "Mars/Olympus".into(),
        };
        assert!(p.validate().unwrap_err().contains("time zone"));
        assert!(TimeOfDay::parse("25:00").unwrap_err().contains("HH:MM"));
        assert!(MonthDay::parse("31").unwrap_err().contains("1 to 28"));
        assert_eq!(
            MonthDay::parse("first-sun").unwrap(),
            MonthDay::Weekday {
                nth: Nth::First,
                weekday: Weekday::Sunday
            }
        );
        let mut p = Policy::default_policy();
        p.retention = Retention::default();
        assert!(p.validate().unwrap_err().contains("keep at least"));
        p.retention.daily_days = Some(0);
        assert!(p.validate().unwrap_err().contains("daily days"));
        assert!(validate_name("a b").is_err());
    }

    #[test]
    fn month_days_pick_the_right_date() {
        let d = |s: &str| s.parse::<Date>().unwrap();
        assert_eq!(MonthDay::Last.date_in(2028, 2), Some(d("2028-02-29")));
        assert_eq!(MonthDay::Day(28).date_in(2027, 2), Some(d("2027-02-28")));
        let last_fri = MonthDay::Weekday {
            nth: Nth::Last,
            weekday: Weekday::Friday,
        };
        assert_eq!(last_fri.date_in(2026, 7), Some(d("2026-07-31")));
        let second_mon = MonthDay::Weekday {
            nth: Nth::Second,
            weekday: Weekday::Monday,
        };
        assert_eq!(second_mon.date_in(2026, 6), Some(d("2026-06-08")));
    }

    #[test]
    fn shortening_is_detected_and_lengthening_is_not() {
        let old = Retention {
            daily_days: Some(30),
            weekly: Some(WeeklyRule {
                weekday: Weekday::Sunday,
                weeks: 12,
            }),
            ..Retention::default()
        };
        let mut longer = old.clone();
        longer.daily_days = Some(60);
        longer.monthly = Some(MonthlyRule {
            day: MonthDay::Last,
            months: 12,
        });
        assert_eq!(longer.shortening_from(&old), None);
        let mut shorter = old.clone();
        shorter.weekly = None;
        assert!(shorter.shortening_from(&old).unwrap().contains("weekly"));
        let mut shorter = old.clone();
        shorter.daily_days = Some(7);
        assert!(shorter.shortening_from(&old).unwrap().contains("30 to 7"));
    }
}
