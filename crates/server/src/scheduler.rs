//! The scheduler: runs every enabled item's policy schedule.
//!
//! Each item remembers the last schedule slot it was considered for
//! (`items.last_slot`). At every tick the slots after it up to now are
//! counted: if there are any, one backup is queued, for the latest of them,
//! however many passed while the service was down or the scheduler off. A
//! new item starts counting from the moment it is first seen. On-demand
//! backups never touch `last_slot`, so they do not move the schedule.
//!
//! Schedules come from the vault's journal (policies and assignments live
//! with the data), read at most every `STATE_TTL` per vault. When a vault
//! cannot be read, its last known state is used; with none, its items get
//! an alert instead of being skipped silently.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use coffer_api_types::item::ItemSchedule;
use rusqlite::{params, OptionalExtension};

use coffer_engine::journal::VaultState;
use coffer_engine::retention::Protection;

use crate::alerts;
use crate::db::now;
use crate::error::{Error, Result};
use crate::jobs::{JobKind, Jobs};
use crate::sets::InfraSet;
use crate::state::State;

/// How long a vault's journal state is reused before it is read again.
const STATE_TTL: Duration = Duration::from_secs(300);
/// More slots than this since the last one are not counted one by one.
const MAX_SLOTS: usize = 100_000;

/// The scheduler's cache of vault states.
#[derive(Default)]
pub struct Scheduler {
    states: Mutex<HashMap<String, CachedState>>,
}

/// A vault's journal state as read at `read`, when its policies had
/// changed `generation` times (see [`State::policies_changed`]).
#[derive(Clone)]
struct CachedState {
    read: Instant,
    generation: u64,
    state: Arc<VaultState>,
}

impl Scheduler {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether scheduled runs start: the stored switch, else the config.
    fn state(&self, service: &State, vault: &str) -> Result<Arc<VaultState>> {
        let cached = self
            .states
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(vault)
            .cloned();
        let generation = service.policy_generation(vault);
        if let Some(c) = &cached {
            if c.read.elapsed() < STATE_TTL && c.generation == generation {
                return Ok(c.state.clone());
            }
        }
        let fresh = service
            .open_vault(vault)
            .and_then(|v| v.state().map_err(Error::Engine));
        match (fresh, cached) {
            (Ok(state), _) => {
                let state = Arc::new(state);
                self.states
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(
                        vault.to_string(),
                        CachedState {
                            read: Instant::now(),
                            generation,
                            state: state.clone(),
                        },
                    );
                Ok(state)
            }
            (Err(e), Some(stale)) => {
                tracing::warn!(
                    vault,
                    "cannot read the vault's policies, using the last known ones: {e}"
                );
                Ok(stale.state)
            }
            (Err(e), None) => Err(e),
        }
    }

    /// One look at the clock: queues the backups that are due. Returns the
    /// jobs queued.
    pub fn tick(&self, service: &State, jobs: &Jobs) -> Result<Vec<i64>> {
        let mut queued = Vec::new();
        if !service.scheduler_enabled()? {
            return Ok(queued);
        }
        let t = now();
        let sets = service.sets(None)?;
        self.tick_items(service, jobs, &sets, t, &mut queued)?;
        tick_sets(service, jobs, &sets, t, &mut queued)?;
        tick_vaults(service, jobs, t, &mut queued)?;
        queued.extend(crate::fleet::tick(service, jobs)?);
        Ok(queued)
    }

    /// Queues the items' own backups that are due (not those of items in a
    /// set: they run with their set, on the set's schedule).
    fn tick_items(
        &self,
        service: &State,
        jobs: &Jobs,
        sets: &[InfraSet],
        t: i64,
        queued: &mut Vec<i64>,
    ) -> Result<()> {
        let in_sets: std::collections::HashSet<&str> = sets
            .iter()
            .flat_map(|s| s.items.iter().map(String::as_str))
            .collect();
        for item in service
            .items(None)?
            .into_iter()
            .filter(|i| i.enabled && !in_sets.contains(i.name.as_str()))
        {
            let state = match self.state(service, &item.vault) {
                Ok(s) => s,
                Err(e) => {
                    let cause = match &e {
                        Error::Engine(engine) => alerts::classify(engine),
                        _ => alerts::Cause::GeneralFault,
                    };
                    service.raise_alert(
                        cause,
                        Some(&item.vault),
                        Some(&item.name),
                        &format!("the scheduler cannot read the schedule of this item from its vault: {e}"),
                        None,
                    )?;
                    continue;
                }
            };
            if state.protection_of(&item.name) != Protection::Active {
                continue;
            }
            let schedule = &state.policy_of(&item.name).schedule;
            let Some(last) = last_slot(service, &item.name)? else {
                set_last_slot(service, &item.name, t)?;
                continue;
            };
            let (slot, missed) = due_slots(schedule, last, t);
            if missed == 0 {
                continue;
            }
            set_last_slot(service, &item.name, slot)?;
            match jobs.enqueue_backup(service, &item.name, "schedule", None, 1, 0) {
                Ok(job) => {
                    note_missed(service, jobs, job.id, missed)?;
                    queued.push(job.id);
                }
                Err(Error::Conflict(message)) => {
                    tracing::warn!(item = %item.name, "scheduled run skipped: {message}");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The schedule of one item, with its next and last runs.
    pub fn item_schedule(&self, service: &State, name: &str) -> Result<ItemSchedule> {
        let item = service.item(name)?;
        let state = self.state(service, &item.vault)?;
        let policy = state.policy_of(name);
        let enabled = service.scheduler_enabled()?;
        let active = enabled && item.enabled && state.protection_of(name) == Protection::Active;
        // A slot that passed since the last tick shows as due (in the past).
        // An item of a set runs when its set does (the set's policy is the
        // item's, so the schedule is the same; the slot is the set's).
        let set = service.set_of_item(name)?;
        let next_run = if active {
            let from = match &set {
                Some(set) => service.set_slot(set, "last_slot")?,
                None => last_slot(service, name)?,
            }
            .unwrap_or_else(now);
            policy.schedule.next_run(from).ok()
        } else {
            None
        };
        let (last_run, last_state, last_success) = {
            let conn = service.db.conn();
            let last: Option<(i64, String)> = conn
                .query_row(
                    "SELECT coalesce(started, created), state FROM jobs WHERE item = ?1 AND kind = ?2
                     ORDER BY id DESC LIMIT 1",
                    [name, JobKind::Backup.as_str()],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let success: Option<i64> = conn
                .query_row(
                    "SELECT max(finished) FROM jobs WHERE item = ?1 AND kind = ?2
                     AND state IN ('Succeeded', 'PartialSucceeded')",
                    [name, JobKind::Backup.as_str()],
                    |r| r.get(0),
                )
                .optional()?
                .flatten();
            let (mut last_run, mut last_state, mut last_success) =
                (last.as_ref().map(|l| l.0), last.map(|l| l.1), success);
            // An item of a set is backed up by its set's jobs too: their
            // result records the item's own status.
            if let Some(set) = &set {
                let mut stmt = conn.prepare(
                    "SELECT coalesce(started, created), finished, state, result FROM jobs
                     WHERE item = ?1 AND kind = ?2 ORDER BY id DESC LIMIT 50",
                )?;
                let runs = stmt
                    .query_map([set.as_str(), JobKind::SetBackup.as_str()], |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, Option<i64>>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, Option<String>>(3)?,
                        ))
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                let mine = |result: &Option<String>| -> Option<String> {
                    let v: serde_json::Value = serde_json::from_str(result.as_deref()?).ok()?;
                    v["items"].as_array()?.iter().find_map(|i| {
                        (i["item"] == name).then(|| i["status"].as_str().map(str::to_string))?
                    })
                };
                if let Some((started, _, job_state, result)) = runs.first() {
                    if last_run.is_none_or(|t| *started > t) {
                        last_run = Some(*started);
                        last_state = Some(mine(result).unwrap_or_else(|| job_state.clone()));
                    }
                }
                let set_success = runs.iter().find_map(|(_, finished, _, result)| {
                    matches!(
                        mine(result).as_deref(),
                        Some("Succeeded" | "PartialSucceeded")
                    )
                    .then_some(*finished)
                    .flatten()
                });
                if set_success > last_success {
                    last_success = set_success;
                }
            }
            (last_run, last_state, last_success)
        };
        Ok(ItemSchedule {
            item: name.to_string(),
            policy: policy.name.clone(),
            schedule: policy.schedule.describe(),
            active,
            next_run,
            last_run,
            last_state,
            last_success,
            protection: match state.protection_of(name) {
                Protection::Active => "active",
                Protection::StoppedRetain => "stopped-retain",
                Protection::StoppedDelete => "stopped-delete",
            }
            .to_string(),
        })
    }

    /// Ticks until the process ends.
    pub async fn run(self: Arc<Self>, state: Arc<State>, jobs: Arc<Jobs>) {
        let tick = Duration::from_secs(state.config.scheduler_tick_secs);
        loop {
            let (me, state, jobs) = (self.clone(), state.clone(), jobs.clone());
            let result = tokio::task::spawn_blocking(move || me.tick(&state, &jobs)).await;
            match result {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::error!("scheduler: {e}"),
                Err(e) => tracing::error!("scheduler task: {e}"),
            }
            tokio::time::sleep(tick).await;
        }
    }
}

/// Queues the set backups and drills that are due.
fn tick_sets(
    service: &State,
    jobs: &Jobs,
    sets: &[InfraSet],
    t: i64,
    queued: &mut Vec<i64>,
) -> Result<()> {
    for set in sets.iter().filter(|s| s.enabled) {
        for (kind, text, column) in [
            (JobKind::SetBackup, Some(&set.schedule), "last_slot"),
            (JobKind::Drill, set.drill_schedule.as_ref(), "drill_slot"),
        ] {
            let Some(text) = text else { continue };
            let schedule = match coffer_engine::policy::Schedule::parse(text, set.time_zone.clone())
            {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(set = %set.name, "{kind} schedule: {e}");
                    continue;
                }
            };
            let Some(last) = service.set_slot(&set.name, column)? else {
                service.set_set_slot(&set.name, column, t)?;
                continue;
            };
            let (slot, missed) = due_slots(&schedule, last, t);
            if missed == 0 {
                continue;
            }
            service.set_set_slot(&set.name, column, slot)?;
            let job = crate::jobs::NewJob {
                kind,
                vault: &set.vault,
                item: Some(&set.name),
                params: None,
                trigger: "schedule",
                requested_by: None,
                attempt: 1,
                not_before: 0,
            };
            match jobs.enqueue(service, job) {
                Ok(job) => {
                    note_missed(service, jobs, job.id, missed)?;
                    queued.push(job.id);
                }
                Err(Error::Conflict(message)) => {
                    tracing::warn!(set = %set.name, "scheduled {kind} skipped: {message}");
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Queues the vaults' prunes and checks that are due.
fn tick_vaults(service: &State, jobs: &Jobs, t: i64, queued: &mut Vec<i64>) -> Result<()> {
    for vault in service.list_vaults()? {
        let m = &vault.maintenance;
        let percent = m.check_percent;
        for (kind, text, column, params) in [
            (JobKind::Prune, &m.prune_schedule, "prune_slot", None),
            (
                JobKind::Check,
                &m.check_schedule,
                "check_slot",
                serde_json::to_value(coffer_api_types::vault::CheckRequest {
                    read_data_percent: percent,
                })
                .ok(),
            ),
        ] {
            let Some(text) = text else { continue };
            let schedule = match coffer_engine::policy::Schedule::parse(text, m.time_zone.clone()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(vault = %vault.name, "{kind} schedule: {e}");
                    continue;
                }
            };
            let last: Option<i64> = service.db.conn().query_row(
                &format!("SELECT {column} FROM vaults WHERE name = ?1"),
                [&vault.name],
                |r| r.get(0),
            )?;
            let set = |slot: i64| -> Result<()> {
                service.db.conn().execute(
                    &format!("UPDATE vaults SET {column} = ?1 WHERE name = ?2"),
                    params![slot, vault.name],
                )?;
                Ok(())
            };
            let Some(last) = last else {
                set(t)?;
                continue;
            };
            let (slot, missed) = due_slots(&schedule, last, t);
            if missed == 0 {
                continue;
            }
            set(slot)?;
            let job = crate::jobs::NewJob {
                kind,
                vault: &vault.name,
                item: None,
                params,
                trigger: "schedule",
                requested_by: None,
                attempt: 1,
                not_before: 0,
            };
            match jobs.enqueue(service, job) {
                Ok(job) => queued.push(job.id),
                Err(Error::Conflict(message)) => {
                    tracing::warn!(vault = %vault.name, "scheduled {kind} skipped: {message}");
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// The latest slot of `schedule` after `last` and not after `now`, and how
/// many slots passed (0: nothing is due).
fn due_slots(schedule: &coffer_engine::policy::Schedule, last: i64, now: i64) -> (i64, usize) {
    let mut slot = last;
    let mut missed = 0usize;
    while missed < MAX_SLOTS {
        match schedule.next_run(slot) {
            Ok(next) if next <= now => {
                slot = next;
                missed += 1;
            }
            Ok(_) => break,
            Err(e) => {
                tracing::warn!("schedule: {e}");
                break;
            }
        }
    }
    (slot, missed)
}

fn last_slot(service: &State, item: &str) -> Result<Option<i64>> {
    Ok(service
        .db
        .conn()
        .query_row("SELECT last_slot FROM items WHERE name = ?1", [item], |r| {
            r.get::<_, Option<i64>>(0)
        })
        .optional()?
        .flatten())
}

/// Sets the slot an item was last considered for (tests use it to simulate
/// downtime).
/// Says in a job's log that it stands for several missed slots.
fn note_missed(service: &State, jobs: &Jobs, job: i64, missed: usize) -> Result<()> {
    if missed > 1 {
        jobs.log(
            &service.db,
            job,
            "info",
            &format!("{missed} scheduled runs were missed while the service or its scheduler was stopped; this one run stands for them"),
        )?;
    }
    Ok(())
}

pub fn set_last_slot(service: &State, item: &str, slot: i64) -> Result<()> {
    service.db.conn().execute(
        "UPDATE items SET last_slot = ?1 WHERE name = ?2",
        params![slot, item],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ServiceConfig;
    use crate::service::Service;
    use crate::state::Item;

    fn service() -> (tempfile::TempDir, Arc<Service>) {
        let dir = tempfile::Builder::new()
            .prefix("coffer-sched-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let config = ServiceConfig {
            data_dir: dir.path().join("data"),
            ..Default::default()
        };
        let service = Service::open(config).unwrap();
        let vault = dir.path().join("vault");
        service
            .add_vault("v", vault.to_str().unwrap(), Default::default(), None, true)
            .unwrap();
        service
            .add_item(&Item {
                name: "it".into(),
                vault: "v".into(),
                kind: "directory".into(),
                paths: vec![dir.path().to_str().unwrap().to_string()],
                excludes: vec![],
                postgresql: None,
                command: None,
                disk: None,
                pre: None,
                post: None,
                agent: None,
                enabled: true,
                retry_attempts: 0,
                retry_delay_secs: 0,
                created: 0,
            })
            .unwrap();
        (dir, service)
    }

    fn queued(service: &Service) -> usize {
        service
            .jobs
            .list(&service.db, &Default::default())
            .unwrap()
            .len()
    }

    #[test]
    fn missed_runs_after_downtime_become_one_run_and_on_demand_does_not_move_the_schedule() {
        let (_dir, s) = service();
        // First sight: counting starts now, nothing runs.
        assert!(s.scheduler.tick(&s, &s.jobs).unwrap().is_empty());
        let first = last_slot(&s, "it").unwrap().unwrap();
        assert!((now() - first).abs() < 5);
        // Three days of a daily schedule missed: one run, for the last slot.
        set_last_slot(&s, "it", now() - 3 * 86_400 - 60).unwrap();
        let jobs = s.scheduler.tick(&s, &s.jobs).unwrap();
        assert_eq!(jobs.len(), 1);
        let slot = last_slot(&s, "it").unwrap().unwrap();
        assert!(slot <= now() && slot > now() - 86_400 - 60, "{slot}");
        assert!(s
            .jobs
            .logs(&s.db, jobs[0], 0)
            .unwrap()
            .iter()
            .any(|l| l.message.contains("3 scheduled runs were missed")));
        // Nothing more is due until the next slot.
        assert!(s.scheduler.tick(&s, &s.jobs).unwrap().is_empty());
        assert_eq!(queued(&s), 1);
        // An on-demand backup leaves the slot where it was.
        s.jobs.cancel(&s.db, jobs[0], "test").unwrap();
        s.jobs
            .enqueue_backup(&s, "it", "on_demand", None, 1, 0)
            .unwrap();
        assert_eq!(last_slot(&s, "it").unwrap(), Some(slot));
        let schedule = s.scheduler.item_schedule(&s, "it").unwrap();
        assert!(schedule.active);
        let next = schedule.next_run.unwrap();
        assert!(
            next > now() && next <= slot + 86_400 + 3_600,
            "{next} after {slot}"
        );
    }

    #[test]
    fn a_vaults_prune_and_check_run_on_their_own_schedules() {
        let (_dir, s) = service();
        let m = crate::state::Maintenance {
            prune_schedule: Some("daily 03:00".into()),
            check_schedule: Some("weekly sun 04:00".into()),
            check_percent: 10.0,
            time_zone: "Europe/Stockholm".into(),
        };
        s.set_maintenance("v", &m).unwrap();
        let bad = crate::state::Maintenance {
            prune_schedule: Some("daily 25:00".into()),
            ..m.clone()
        };
        let e = s.set_maintenance("v", &bad).unwrap_err();
        assert!(e.to_string().starts_with("prune_schedule:"), "{e}");
        // First sight: counting starts; then two weeks pass.
        s.scheduler.tick(&s, &s.jobs).unwrap();
        s.db.conn()
            .execute(
                "UPDATE vaults SET prune_slot = ?1, check_slot = ?1",
                [now() - 15 * 86_400],
            )
            .unwrap();
        s.db.conn()
            .execute("UPDATE items SET enabled = 0", [])
            .unwrap();
        let jobs = s.scheduler.tick(&s, &s.jobs).unwrap();
        assert_eq!(jobs.len(), 2);
        let kinds: Vec<String> = jobs
            .iter()
            .map(|id| s.jobs.get(&s.db, *id).unwrap().kind.to_string())
            .collect();
        assert_eq!(kinds, ["prune", "check"]);
        let check = s.jobs.get(&s.db, jobs[1]).unwrap();
        assert_eq!(check.params.unwrap()["read_data_percent"], 10.0);
        assert!(s.scheduler.tick(&s, &s.jobs).unwrap().is_empty());
    }

    #[test]
    fn a_set_runs_on_its_schedule_and_its_items_not_on_their_own() {
        let (_dir, s) = service();
        let set = crate::sets::InfraSet {
            name: "infra".into(),
            vault: "v".into(),
            items: vec!["it".into()],
            schedule: crate::sets::DEFAULT_SCHEDULE.into(),
            time_zone: "UTC".into(),
            retention_days: 7,
            enabled: true,
            drill_schedule: Some("daily 05:00".into()),
            created: 0,
        };
        s.add_set(&set, "test").unwrap();
        // The set's policy keeps 7 days of 12-hourly points: 14, and the
        // last of each day for 7 days.
        let policies = s.policies("v").unwrap();
        let policy = policies.iter().find(|p| p.name == "set.infra").unwrap();
        assert_eq!(policy.rules.keep_last, Some(14));
        assert_eq!(policy.rules.daily_days, Some(7));
        // The set's configuration points follow the same policy.
        assert!(policy.items.contains(&"coffer-service.infra".to_string()));
        assert!(policy.items.contains(&"it".to_string()));
        assert_eq!(
            s.scheduler.item_schedule(&s, "it").unwrap().policy,
            "set.infra"
        );
        // First sight, then two days pass for the item, the set and its drill.
        s.scheduler.tick(&s, &s.jobs).unwrap();
        set_last_slot(&s, "it", now() - 2 * 86_400).unwrap();
        s.set_set_slot("infra", "last_slot", now() - 2 * 86_400)
            .unwrap();
        s.set_set_slot("infra", "drill_slot", now() - 2 * 86_400)
            .unwrap();
        let jobs = s.scheduler.tick(&s, &s.jobs).unwrap();
        let kinds: Vec<(String, Option<String>)> = jobs
            .iter()
            .map(|id| {
                let j = s.jobs.get(&s.db, *id).unwrap();
                (j.kind.to_string(), j.item)
            })
            .collect();
        assert_eq!(
            kinds,
            [
                ("set-backup".to_string(), Some("infra".to_string())),
                ("drill".to_string(), Some("infra".to_string()))
            ]
        );
        // A set and an item cannot share a name; an item is in one set.
        let mut other = set.clone();
        other.name = "it".into();
        assert!(s.add_set(&other, "test").is_err());
        other.name = "second".into();
        let e = s.add_set(&other, "test").unwrap_err();
        assert!(e.to_string().contains("belongs to set infra"), "{e}");
    }

    #[test]
    fn a_disabled_scheduler_runs_nothing_and_keeps_its_settings() {
        let (_dir, s) = service();
        s.scheduler.tick(&s, &s.jobs).unwrap();
        s.set_scheduler_enabled(false).unwrap();
        set_last_slot(&s, "it", now() - 2 * 86_400).unwrap();
        assert!(s.scheduler.tick(&s, &s.jobs).unwrap().is_empty());
        assert!(!s.scheduler.item_schedule(&s, "it").unwrap().active);
        assert_eq!(last_slot(&s, "it").unwrap(), Some(now() - 2 * 86_400));
        // Switched on again, the missed slots run once.
        s.set_scheduler_enabled(true).unwrap();
        assert_eq!(s.scheduler.tick(&s, &s.jobs).unwrap().len(), 1);
        // A disabled item is not scheduled either.
        let mut item = s.item("it").unwrap();
        item.enabled = false;
        s.update_item(&item).unwrap();
        set_last_slot(&s, "it", now() - 2 * 86_400).unwrap();
        assert!(s.scheduler.tick(&s, &s.jobs).unwrap().is_empty());
    }
}
