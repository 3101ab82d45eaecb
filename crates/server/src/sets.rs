//! Infrastructure sets: items backed up by one job into one coordinated
//! recovery point.
//!
//! A set lives in one vault and names items of that vault. Its job backs the
//! items up one after the other with the same time and two tags, the set's
//! name and the set point's id, then stores the service's own configuration
//! (see [`crate::recovery`]) with every item's status as one more point, of
//! item `coffer-service.SET`. That last point is what `coffer recover` reads
//! to list and restore a deployment from the location and the key alone.
//!
//! Retention is the vault's ordinary machinery: the set owns a policy
//! `set.NAME` that keeps every point of the last N days (as many runs as the
//! schedule makes in that time, and the last of each day), assigned to its
//! items and to its configuration item. Items of a set are not scheduled on
//! their own; the set's schedule runs them.

pub use coffer_api_types::set::{InfraSet, DEFAULT_RETENTION_DAYS, DEFAULT_SCHEDULE};
use rusqlite::{params, OptionalExtension};

use coffer_engine::policy::Schedule;

use crate::db::now as now_secs;
use crate::error::{Error, Result};
use crate::policies::{PolicySpec, RetentionRules};
use crate::state::{validate_name, State, SERVICE_ITEM_PREFIX};

/// The tag naming a point's set.
pub const SET_TAG: &str = "coffer:set=";
/// The tag carrying the set point's id.
pub const SET_POINT_TAG: &str = "coffer:set-point=";
/// The vault policy of a set.
pub fn policy_name(set: &str) -> String {
    format!("set.{set}")
}

/// The item under which a set stores the service's configuration.
pub fn service_item(set: &str) -> String {
    format!("{SERVICE_ITEM_PREFIX}{set}")
}

fn parse_schedule(field: &str, text: &str, zone: &str) -> Result<Schedule> {
    Schedule::parse(text, zone.to_string()).map_err(|m| Error::invalid(field, m))
}

/// How many runs the schedule makes in `days` days (at least one).
fn runs_in(schedule: &Schedule, days: u32) -> Result<u32> {
    let start = now_secs();
    let end = start + i64::from(days) * 86_400;
    let mut at = start;
    let mut runs = 0u32;
    while runs < 100_000 {
        at = schedule
            .next_run(at)
            .map_err(|m| Error::invalid("schedule", m))?;
        if at > end {
            break;
        }
        runs += 1;
    }
    Ok(runs.max(1))
}

impl State {
    fn check_set(&self, set: &InfraSet) -> Result<()> {
        validate_name("name", &set.name)?;
        self.vault_info(&set.vault)
            .map_err(|_| Error::invalid("vault", format!("no vault named {}", set.vault)))?;
        if set.items.is_empty() {
            return Err(Error::invalid("items", "a set needs at least one item"));
        }
        for (i, name) in set.items.iter().enumerate() {
            if set.items[..i].contains(name) {
                return Err(Error::invalid("items", format!("{name} is listed twice")));
            }
            let item = self
                .item(name)
                .map_err(|_| Error::invalid("items", format!("no item named {name}")))?;
            if item.vault != set.vault {
                return Err(Error::invalid(
                    "items",
                    format!(
                        "item {name} backs up into vault {}, the set into {}: a set's point lives in one vault",
                        item.vault, set.vault
                    ),
                ));
            }
            if let Some(other) = self.set_of_item(name)? {
                if other != set.name {
                    return Err(Error::invalid(
                        "items",
                        format!("item {name} belongs to set {other} already"),
                    ));
                }
            }
        }
        if set.retention_days == 0 || set.retention_days > 3650 {
            return Err(Error::invalid("retention_days", "1 to 3650 days"));
        }
        parse_schedule("schedule", &set.schedule, &set.time_zone)?;
        if let Some(d) = &set.drill_schedule {
            parse_schedule("drill_schedule", d, &set.time_zone)?;
        }
        Ok(())
    }

    /// Gives the set's policy its schedule and retention, and assigns it
    /// to the set's items and configuration item.
    fn apply_set_policy(&self, set: &InfraSet, by: &str) -> Result<()> {
        let schedule = parse_schedule("schedule", &set.schedule, &set.time_zone)?;
        let spec = PolicySpec {
            schedule: set.schedule.clone(),
            time_zone: set.time_zone.clone(),
            retention: RetentionRules {
                keep_last: Some(runs_in(&schedule, set.retention_days)?),
                daily_days: Some(set.retention_days),
                ..Default::default()
            },
        };
        let policy = policy_name(&set.name);
        self.set_policy(&set.vault, &policy, &spec, by)?;
        for item in &set.items {
            self.assign_policy(item, &policy, by)?;
        }
        let vault = self.open_vault(&set.vault)?;
        coffer_engine::changes::assign(&vault, &policy, &service_item(&set.name))?;
        self.policies_changed(&set.vault);
        Ok(())
    }

    /// Creates a set (defaults: every 12 hours, kept 7 days).
    pub fn add_set(&self, set: &InfraSet, by: &str) -> Result<InfraSet> {
        self.check_set(set)?;
        if self.item(&set.name).is_ok() {
            return Err(Error::Conflict(format!(
                "an item is named {}: items and sets share names",
                set.name
            )));
        }
        let inserted = self.db.conn().execute(
            "INSERT INTO sets (name, vault, items, schedule, time_zone, retention_days, enabled, drill_schedule, created)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (name) DO NOTHING",
            params![
                set.name,
                set.vault,
                serde_json::to_string(&set.items).unwrap_or_default(),
                set.schedule,
                set.time_zone,
                set.retention_days,
                set.enabled,
                set.drill_schedule,
                now_secs()
            ],
        )?;
        if inserted == 0 {
            return Err(Error::Conflict(format!("a set named {} exists", set.name)));
        }
        if let Err(e) = self.apply_set_policy(set, by) {
            let _ = self
                .db
                .conn()
                .execute("DELETE FROM sets WHERE name = ?1", [&set.name]);
            return Err(e);
        }
        self.set(&set.name)
    }

    /// Replaces a set's items, schedule, retention and switches.
    pub fn update_set(&self, set: &InfraSet, by: &str) -> Result<InfraSet> {
        let before = self.set(&set.name)?;
        if before.vault != set.vault {
            return Err(Error::invalid(
                "vault",
                "a set stays in its vault: make a new set for another",
            ));
        }
        self.check_set(set)?;
        self.apply_set_policy(set, by)?;
        self.db.conn().execute(
            "UPDATE sets SET items = ?1, schedule = ?2, time_zone = ?3, retention_days = ?4, enabled = ?5,
             drill_schedule = ?6 WHERE name = ?7",
            params![
                serde_json::to_string(&set.items).unwrap_or_default(),
                set.schedule,
                set.time_zone,
                set.retention_days,
                set.enabled,
                set.drill_schedule,
                set.name
            ],
        )?;
        self.set(&set.name)
    }

    pub fn set(&self, name: &str) -> Result<InfraSet> {
        self.sets(Some(name))?
            .pop()
            .ok_or_else(|| Error::NotFound(format!("set {name}")))
    }

    /// Every set, or the one named.
    pub fn sets(&self, name: Option<&str>) -> Result<Vec<InfraSet>> {
        let conn = self.db.conn();
        let mut stmt = conn.prepare(
            "SELECT name, vault, items, schedule, time_zone, retention_days, enabled, drill_schedule, created
             FROM sets WHERE ?1 IS NULL OR name = ?1 ORDER BY name",
        )?;
        let sets = stmt
            .query_map([name], |r| {
                Ok(InfraSet {
                    name: r.get(0)?,
                    vault: r.get(1)?,
                    items: serde_json::from_str(&r.get::<_, String>(2)?).unwrap_or_default(),
                    schedule: r.get(3)?,
                    time_zone: r.get(4)?,
                    retention_days: r.get(5)?,
                    enabled: r.get(6)?,
                    drill_schedule: r.get(7)?,
                    created: r.get(8)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(sets)
    }

    /// The set an item belongs to.
    pub fn set_of_item(&self, item: &str) -> Result<Option<String>> {
        Ok(self
            .sets(None)?
            .into_iter()
            .find(|s| s.items.iter().any(|i| i == item))
            .map(|s| s.name))
    }

    /// Removes a set. Its points stay in the vault; its items keep the
    /// set's policy until they are given another.
    pub fn remove_set(&self, name: &str) -> Result<()> {
        if let Some(id) = self.active_job_of_item(name)? {
            return Err(Error::Conflict(format!(
                "a job of set {name} is queued or running (job {id}): cancel it first"
            )));
        }
        let n = self
            .db
            .conn()
            .execute("DELETE FROM sets WHERE name = ?1", [name])?;
        if n == 0 {
            return Err(Error::NotFound(format!("set {name}")));
        }
        Ok(())
    }

    /// The slot of the set's last scheduled run (`last_slot` or `drill_slot`).
    pub fn set_slot(&self, name: &str, column: &str) -> Result<Option<i64>> {
        let column = if column == "drill_slot" {
            "drill_slot"
        } else {
            "last_slot"
        };
        Ok(self
            .db
            .conn()
            .query_row(
                &format!("SELECT {column} FROM sets WHERE name = ?1"),
                [name],
                |r| r.get(0),
            )
            .optional()?
            .flatten())
    }

    pub fn set_set_slot(&self, name: &str, column: &str, slot: i64) -> Result<()> {
        let column = if column == "drill_slot" {
            "drill_slot"
        } else {
            "last_slot"
        };
        self.db.conn().execute(
            &format!("UPDATE sets SET {column} = ?1 WHERE name = ?2"),
            params![slot, name],
        )?;
        Ok(())
    }
}
