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

use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use coffer_engine::backup::{backup_streams, now, BackupOptions, NamedStream, Progress};
use coffer_engine::policy::Schedule;

use crate::alerts::{self, Cause};
use crate::db::now as now_secs;
use crate::error::{Error, Result};
use crate::jobs::JobState;
use crate::recovery::{self, ItemStatus, SetRecord};
use crate::service::{
    item_def, validate_name, PolicySpec, RetentionRules, Service, SERVICE_ITEM_PREFIX,
};

/// The tag naming a point's set.
pub const SET_TAG: &str = "coffer:set=";
/// The tag carrying the set point's id.
pub const SET_POINT_TAG: &str = "coffer:set-point=";
/// Azure Stack's defaults: a backup every 12 hours, kept 7 days.
pub const DEFAULT_SCHEDULE: &str = "every 12 h from 00:00";
pub const DEFAULT_RETENTION_DAYS: u32 = 7;

/// An infrastructure set.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InfraSet {
    pub name: String,
    pub vault: String,
    /// The items, backed up in this order.
    pub items: Vec<String>,
    /// `every N h from HH:MM`, `daily HH:MM` or `weekly mon,thu HH:MM`.
    pub schedule: String,
    /// IANA time zone of the schedules.
    pub time_zone: String,
    /// Points are kept this many days (1–3650).
    pub retention_days: u32,
    /// Whether scheduled runs happen.
    pub enabled: bool,
    /// When a recovery drill of the newest set point runs on its own.
    #[serde(default)]
    pub drill_schedule: Option<String>,
    pub created: i64,
}

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

impl Service {
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
        self.scheduler.invalidate(&set.vault);
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
        if let Some(id) = self.jobs.active_for_item(&self.db, name)? {
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

/// Each point of a set counts its own files and bytes; the job's live view
/// then shows the item in progress.
fn reset_counters(progress: &Progress) {
    for counter in [
        &progress.files,
        &progress.bytes_read,
        &progress.bytes_new,
        &progress.bytes_stored,
        &progress.errors,
    ] {
        counter.store(0, std::sync::atomic::Ordering::Relaxed);
    }
}

/// How a set job ended.
pub struct SetOutcome {
    pub state: JobState,
    pub result: serde_json::Value,
    pub failure: Option<(Cause, String)>,
}

/// Runs a set's backup: every item, then the service's configuration.
pub fn run_set_backup(
    service: &Service,
    job_id: i64,
    set_name: &str,
    progress: &Progress,
) -> Result<SetOutcome> {
    let log = |level: &str, message: &str| {
        let _ = service.jobs.log(&service.db, job_id, level, message);
    };
    let set = service.set(set_name)?;
    let vault = service.open_vault(&set.vault)?;
    let point_id = hex::encode(rand::random::<[u8; 8]>());
    let time = now();
    let opts = BackupOptions {
        tags: vec![
            format!("{SET_TAG}{}", set.name),
            format!("{SET_POINT_TAG}{point_id}"),
        ],
        time: Some(time),
        ..Default::default()
    };
    log(
        "info",
        &format!(
            "set point {point_id}: backing up {} items into vault {}",
            set.items.len(),
            set.vault
        ),
    );
    let mut statuses = Vec::new();
    let mut first_failure: Option<(Cause, String)> = None;
    for name in &set.items {
        if progress.cancel.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(Error::Engine(coffer_engine::Error::Cancelled));
        }
        // The set's vault is checked again at run time: only its own items
        // go into its point.
        let item = match service.item_in_vault(&set.vault, name).and_then(|i| {
            i.ok_or_else(|| Error::NotFound(format!("item {name} in vault {}", set.vault)))
        }) {
            Ok(i) => i,
            Err(e) => {
                statuses.push(ItemStatus::failed(name, "", e.to_string()));
                first_failure.get_or_insert((Cause::GeneralFault, e.to_string()));
                continue;
            }
        };
        log("info", &format!("item {name} ({})", item.kind));
        reset_counters(progress);
        let outcome = item_def(&item)
            .map_err(|e| (Cause::GeneralFault, e.to_string()))
            .and_then(|def| {
                coffer_sources::back_up(&vault, &def, &opts, progress)
                    .map_err(crate::runners::source_failure)
            });
        match outcome {
            Ok(captured) => {
                let m = &captured.report.manifest;
                let mut notes = captured.warnings.clone();
                if !m.errors.is_empty() {
                    notes.push(format!(
                        "{} entries could not be read, for example {}: {}",
                        m.errors.len(),
                        String::from_utf8_lossy(&m.errors[0].path),
                        m.errors[0].message
                    ));
                }
                for n in &notes {
                    log("warn", &format!("item {name}: {n}"));
                }
                log(
                    "info",
                    &format!(
                        "item {name}: point {} ({}), {} bytes read",
                        captured.report.point.to_hex(),
                        m.consistency.as_str(),
                        m.stats.bytes_read
                    ),
                );
                let state = if notes.is_empty() {
                    JobState::Succeeded
                } else {
                    JobState::PartialSucceeded
                };
                if state == JobState::Succeeded {
                    service.resolve_item_alerts(name)?;
                } else {
                    service.raise_alert(
                        Cause::SourceUnreadable,
                        Some(&set.vault),
                        Some(name),
                        &notes.join("; "),
                        Some(job_id),
                    )?;
                }
                statuses.push(ItemStatus {
                    item: name.clone(),
                    kind: item.kind.clone(),
                    status: state.as_str().to_string(),
                    point: Some(captured.report.point.to_hex()),
                    consistency: Some(m.consistency.as_str().to_string()),
                    message: (!notes.is_empty()).then(|| notes.join("; ")),
                });
            }
            Err(_) if progress.cancel.load(std::sync::atomic::Ordering::Relaxed) => {
                return Err(Error::Engine(coffer_engine::Error::Cancelled));
            }
            Err((cause, message)) => {
                log("error", &format!("item {name}: {message}"));
                service.raise_alert(cause, Some(&set.vault), Some(name), &message, Some(job_id))?;
                first_failure.get_or_insert((cause, format!("item {name}: {message}")));
                statuses.push(ItemStatus::failed(name, &item.kind, message));
            }
        }
    }

    // The service's own configuration, with what happened to every item.
    let record = SetRecord {
        set: set.name.clone(),
        id: point_id.clone(),
        time: time.secs,
        vault: set.vault.clone(),
        items: statuses,
    };
    let export = recovery::export(service, &vault, &set.vault, Some(record.clone()))?;
    let body = serde_json::to_vec_pretty(&export).map_err(|e| Error::Internal(e.to_string()))?;
    let mut config_opts = opts.clone();
    config_opts.item = Some(service_item(&set.name));
    config_opts
        .tags
        .push(format!("{}service", coffer_sources::KIND_TAG));
    config_opts.consistency = Some(coffer_engine::point::Consistency::ApplicationConsistent);
    reset_counters(progress);
    let config = backup_streams(
        &vault,
        vec![NamedStream {
            name: recovery::CONFIG_FILE.into(),
            reader: Box::new(std::io::Cursor::new(body)),
        }],
        &config_opts,
        progress,
    );
    let config_point = match config {
        Ok(r) => {
            log(
                "info",
                &format!("service configuration: point {}", r.point.to_hex()),
            );
            Some(r.point.to_hex())
        }
        Err(e) => {
            let message = format!("the service's configuration could not be stored: {e}");
            log("error", &message);
            first_failure.get_or_insert((alerts::classify(&e), message));
            None
        }
    };
    service.measure_vault(&vault, &set.vault);
    service.witness_vault(&vault, &set.vault);
    let succeeded = record
        .items
        .iter()
        .filter(|s| s.status != JobState::Failed.as_str())
        .count();
    let all_clean = record
        .items
        .iter()
        .all(|s| s.status == JobState::Succeeded.as_str());
    let state = if succeeded == 0 && !record.items.is_empty() {
        JobState::Failed
    } else if all_clean && config_point.is_some() {
        JobState::Succeeded
    } else {
        JobState::PartialSucceeded
    };
    let ready = config_point.is_some() && record.items.iter().all(|s| s.point.is_some());
    log(
        "info",
        &format!(
            "set point {point_id}: {succeeded} of {} items backed up; {}",
            record.items.len(),
            if ready {
                "ready for cloud recovery"
            } else {
                "not ready for cloud recovery"
            }
        ),
    );
    let result = serde_json::json!({
        "set_point": point_id,
        "time": time.secs,
        "items": record.items,
        "service_point": config_point,
        "ready_for_cloud_recovery": ready,
    });
    let failure = match state {
        JobState::Succeeded => None,
        _ => first_failure.or(Some((
            Cause::SourceUnreadable,
            "some items were backed up with warnings".into(),
        ))),
    };
    Ok(SetOutcome {
        state,
        result,
        failure,
    })
}
