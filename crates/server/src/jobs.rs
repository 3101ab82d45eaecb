//! Jobs: every backup (later also restore, prune and check) is a row in the
//! `jobs` table that moves Queued → Running → Succeeded, PartialSucceeded,
//! Failed or Cancelled.
//!
//! A dispatcher task starts queued jobs when the limits allow: at most one
//! job per item, `max_jobs_per_vault` per vault and `max_jobs` in all. Each
//! job runs the engine on a plain thread (the engine is synchronous and
//! spreads its own work over the cores), with live counters kept in memory
//! and its log lines in the database. A job that was Running when the
//! service stopped is marked Failed at the next start, raises its alert, and
//! is retried as its item says, like any other failure.
//!
//! The table does not know what a job does: the [`Runner`] it is built with
//! (the service passes [`crate::runners::run_job`]) gets a [`JobContext`],
//! the service's [`State`] and this table, and nothing that owns them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{params, OptionalExtension};

use coffer_engine::backup::Progress;
use coffer_engine::restore::RestoreProgress;

pub use coffer_api_types::job::{Job, JobKind, JobProgress, JobState, LogLine};

use crate::alerts::{Cause, Severity};
use crate::db::{now, Db};
use crate::error::{Error, Result};
use crate::notify::EventType;
use crate::state::State;

/// The live counters of a running job.
#[derive(Clone)]
pub(crate) enum Live {
    Backup(Arc<Progress>),
    Restore(Arc<RestoreProgress>),
    /// A check reports only at its end; its flag stops it.
    Check(Arc<AtomicBool>),
    /// A prune reports at its end and is not stopped half-way: it runs in
    /// two phases whose journal records must follow each other.
    Opaque,
}

struct Running {
    vault: String,
    item: Option<String>,
    /// The agent a backup runs on.
    agent: Option<String>,
    started: Instant,
    live: Live,
}

/// The job runner's in-memory part.
pub struct Jobs {
    wake: tokio::sync::Notify,
    running: Mutex<HashMap<i64, Running>>,
    runner: Runner,
}

/// Runs one claimed job to its end and records its outcome (with
/// [`Jobs::finish`]).
pub(crate) type Runner = fn(&JobContext<'_>, i64, &Live) -> Result<()>;

/// What a running job works with: the service's state, and the job table
/// for its log lines and its end. It reads as the state (`ctx.db`,
/// `ctx.open_vault(…)`).
pub struct JobContext<'a> {
    pub state: &'a State,
    pub jobs: &'a Jobs,
}

impl std::ops::Deref for JobContext<'_> {
    type Target = State;

    fn deref(&self) -> &State {
        self.state
    }
}

const COLUMNS: &str =
    "id, kind, vault, item, state, trigger, requested_by, attempt, created, not_before,
    started, finished, progress, result, error, cause, params";

fn row_to_job(r: &rusqlite::Row<'_>) -> rusqlite::Result<Job> {
    let state: String = r.get(4)?;
    let progress: Option<String> = r.get(12)?;
    let result: Option<String> = r.get(13)?;
    let cause: Option<String> = r.get(15)?;
    let kind: String = r.get(1)?;
    let kind = kind.parse::<JobKind>().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok(Job {
        id: r.get(0)?,
        kind,
        vault: r.get(2)?,
        item: r.get(3)?,
        state: JobState::parse(&state).unwrap_or(JobState::Failed),
        trigger: r.get(5)?,
        requested_by: r.get(6)?,
        attempt: r.get(7)?,
        created: r.get(8)?,
        not_before: r.get(9)?,
        started: r.get(10)?,
        finished: r.get(11)?,
        progress: progress.and_then(|p| serde_json::from_str(&p).ok()),
        result: result.and_then(|p| serde_json::from_str(&p).ok()),
        error: r.get(14)?,
        cause: cause.as_deref().and_then(Cause::parse),
        params: r
            .get::<_, Option<String>>(16)?
            .and_then(|p| serde_json::from_str(&p).ok()),
    })
}

/// Filters for listing jobs.
#[derive(Debug, Default, Clone)]
pub struct JobFilter {
    pub item: Option<String>,
    pub vault: Option<String>,
    pub state: Option<JobState>,
    pub limit: Option<u32>,
}

impl Jobs {
    pub(crate) fn new(runner: Runner) -> Self {
        Jobs {
            wake: tokio::sync::Notify::new(),
            running: Mutex::new(HashMap::new()),
            runner,
        }
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Running>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a backup of `item`. One job per item at a time: a second
    /// request while one is queued or running is refused with its id.
    pub fn enqueue_backup(
        &self,
        state: &State,
        item: &str,
        trigger: &str,
        requested_by: Option<&str>,
        attempt: u32,
        not_before: i64,
    ) -> Result<Job> {
        let it = state.item(item)?;
        self.enqueue(
            state,
            NewJob {
                kind: JobKind::Backup,
                vault: &it.vault,
                item: Some(item),
                params: None,
                trigger,
                requested_by,
                attempt,
                not_before,
            },
        )
    }

    /// Brings a queued retry of `item`'s backup forward to now (its agent
    /// is back, so waiting out the backoff helps nobody); its id.
    pub fn hurry_retry(&self, state: &State, item: &str) -> Result<Option<i64>> {
        let id: Option<i64> = state
            .db
            .conn()
            .query_row(
                "UPDATE jobs SET not_before = ?2 WHERE item = ?1 AND kind = 'backup'
                 AND state = 'Queued' AND trigger = 'retry' AND not_before > ?2 RETURNING id",
                params![item, now()],
                |r| r.get(0),
            )
            .optional()?;
        if id.is_some() {
            self.wake.notify_one();
        }
        Ok(id)
    }

    /// Queues a job. Jobs of an item exclude each other, and so do prunes
    /// (or checks) of one vault. A set's drill only reads the vault: it
    /// queues behind the set's backup instead of being refused (the
    /// dispatcher still runs one job of an item at a time).
    pub fn enqueue(&self, state: &State, job: NewJob<'_>) -> Result<Job> {
        if let Some(item) = job.item {
            let drill = job.kind == JobKind::Drill;
            let active: Option<i64> = state
                .db
                .conn()
                .query_row(
                    "SELECT id FROM jobs WHERE item = ?1 AND state IN ('Queued', 'Running')
                     AND (kind = ?3) = ?2 ORDER BY id LIMIT 1",
                    params![item, drill, JobKind::Drill.as_str()],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(id) = active {
                return Err(Error::Conflict(format!(
                    "a job of item {item} is already queued or running (job {id})"
                )));
            }
        } else {
            let active: Option<i64> = state
                .db
                .conn()
                .query_row(
                    "SELECT id FROM jobs WHERE vault = ?1 AND kind = ?2 AND item IS NULL
                     AND state IN ('Queued', 'Running') LIMIT 1",
                    params![job.vault, job.kind.as_str()],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(id) = active {
                return Err(Error::Conflict(format!(
                    "a {} of vault {} is already queued or running (job {id})",
                    job.kind, job.vault
                )));
            }
        }
        let id = {
            let conn = state.db.conn();
            conn.execute(
                "INSERT INTO jobs (kind, vault, item, state, trigger, params, requested_by, attempt, not_before, created)
                 VALUES (?1, ?2, ?3, 'Queued', ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    job.kind.as_str(),
                    job.vault,
                    job.item,
                    job.trigger,
                    job.params.map(|p| p.to_string()),
                    job.requested_by,
                    job.attempt,
                    job.not_before,
                    now()
                ],
            )?;
            conn.last_insert_rowid()
        };
        self.log(&state.db, id, "info", &format!("queued ({})", job.trigger))?;
        self.wake.notify_one();
        self.get(&state.db, id)
    }

    pub fn get(&self, db: &Db, id: i64) -> Result<Job> {
        let mut job = db
            .conn()
            .query_row(
                &format!("SELECT {COLUMNS} FROM jobs WHERE id = ?1"),
                [id],
                row_to_job,
            )
            .optional()?
            .ok_or_else(|| Error::NotFound(format!("job {id}")))?;
        self.fill_live(&mut job);
        Ok(job)
    }

    fn fill_live(&self, job: &mut Job) {
        if job.state != JobState::Running {
            return;
        }
        if let Some(r) = self.running().get(&job.id) {
            job.progress = live_progress(&r.live, r.started.elapsed());
        }
    }

    /// Jobs, newest first.
    pub fn list(&self, db: &Db, filter: &JobFilter) -> Result<Vec<Job>> {
        let mut jobs = {
            let conn = db.conn();
            let mut stmt = conn.prepare(&format!(
                "SELECT {COLUMNS} FROM jobs WHERE (?1 IS NULL OR item = ?1) AND (?2 IS NULL OR vault = ?2)
                 AND (?3 IS NULL OR state = ?3) ORDER BY id DESC LIMIT ?4"
            ))?;
            let jobs = stmt
                .query_map(
                    params![
                        filter.item,
                        filter.vault,
                        filter.state.map(JobState::as_str),
                        filter.limit.unwrap_or(100)
                    ],
                    row_to_job,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            jobs
        };
        for j in &mut jobs {
            self.fill_live(j);
        }
        Ok(jobs)
    }

    pub fn log(&self, db: &Db, job: i64, level: &str, message: &str) -> Result<()> {
        db.conn().execute(
            "INSERT INTO job_logs (job_id, seq, time, level, message)
             VALUES (?1, (SELECT coalesce(max(seq), 0) + 1 FROM job_logs WHERE job_id = ?1), ?2, ?3, ?4)",
            params![job, now(), level, message],
        )?;
        Ok(())
    }

    /// Log lines after `after` (0 for all).
    pub fn logs(&self, db: &Db, job: i64, after: i64) -> Result<Vec<LogLine>> {
        self.get(db, job)?;
        let conn = db.conn();
        let mut stmt = conn.prepare(
            "SELECT seq, time, level, message FROM job_logs WHERE job_id = ?1 AND seq > ?2 ORDER BY seq",
        )?;
        let lines = stmt
            .query_map(params![job, after], |r| {
                Ok(LogLine {
                    seq: r.get(0)?,
                    time: r.get(1)?,
                    level: r.get(2)?,
                    message: r.get(3)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(lines)
    }

    /// Cancels a queued job at once, or asks a running one to stop.
    pub fn cancel(&self, db: &Db, id: i64, by: &str) -> Result<Job> {
        let job = self.get(db, id)?;
        match job.state {
            JobState::Queued => {
                let n = db.conn().execute(
                    "UPDATE jobs SET state = 'Cancelled', finished = ?1, error = ?2 WHERE id = ?3 AND state = 'Queued'",
                    params![now(), format!("cancelled by {by}"), id],
                )?;
                if n == 0 {
                    // It started meanwhile: stop it as a running job.
                    return self.cancel(db, id, by);
                }
                self.log(
                    db,
                    id,
                    "info",
                    &format!("cancelled by {by} before it started"),
                )?;
            }
            JobState::Running => {
                match self.running().get(&id).map(|r| r.live.clone()) {
                    Some(Live::Backup(p)) => p.cancel.store(true, Ordering::Relaxed),
                    Some(Live::Restore(p)) => p.cancel.store(true, Ordering::Relaxed),
                    Some(Live::Check(flag)) => flag.store(true, Ordering::Relaxed),
                    Some(Live::Opaque) => {
                        return Err(Error::Conflict(format!(
                            "a running {} cannot be stopped half-way; it ends by itself",
                            job.kind
                        )))
                    }
                    None => {}
                }
                self.log(db, id, "info", &format!("cancel requested by {by}"))?;
            }
            state => {
                return Err(Error::Conflict(format!(
                    "job {id} has already ended ({})",
                    state.as_str()
                )))
            }
        }
        self.get(db, id)
    }

    /// Marks jobs a stopped service left Running as Failed, raises their
    /// alerts and queues their retries.
    pub fn recover_after_restart(&self, state: &State) -> Result<()> {
        let interrupted = self.list(
            &state.db,
            &JobFilter {
                state: Some(JobState::Running),
                limit: Some(10_000),
                ..Default::default()
            },
        )?;
        for job in interrupted {
            let message = "the service stopped while this job was running (a crash, a restart or a power loss); nothing of it was committed, and what it uploaded is reused by the next backup";
            self.log(&state.db, job.id, "error", message)?;
            self.finish(
                state,
                &job,
                JobState::Failed,
                None,
                Some((Cause::GeneralFault, message.to_string())),
                None,
            )?;
        }
        Ok(())
    }

    /// Starts every queued job the limits allow now.
    pub fn start_ready(self: &Arc<Self>, state: &Arc<State>) -> Result<()> {
        let queued = {
            let conn = state.db.conn();
            let mut stmt = conn.prepare(
                "SELECT j.id, j.vault, j.item, j.kind, i.agent FROM jobs j LEFT JOIN items i ON i.name = j.item
                 WHERE j.state = 'Queued' AND j.not_before <= ?1 ORDER BY j.id",
            )?;
            let rows = stmt
                .query_map([now()], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, Option<String>>(4)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows
        };
        for (id, vault, item, kind, agent) in queued {
            let vault = vault.unwrap_or_default();
            // A backup on an agent uses the agent's machine, not this one:
            // it counts against no limit but its item's and its agent's.
            let on_agent = agent.filter(|_| kind == JobKind::Backup.to_string());
            let live = match kind.parse::<JobKind>() {
                Ok(JobKind::Backup | JobKind::SetBackup) => {
                    Live::Backup(Arc::new(Progress::default()))
                }
                Ok(JobKind::Restore) => Live::Restore(Arc::new(RestoreProgress::default())),
                Ok(JobKind::Check) => Live::Check(Arc::new(AtomicBool::new(false))),
                _ => Live::Opaque,
            };
            {
                let mut running = self.running();
                let item_busy = item.is_some() && running.values().any(|r| r.item == item);
                if let Some(agent) = &on_agent {
                    let agent_busy = running.values().any(|r| r.agent.as_ref() == Some(agent));
                    if item_busy || agent_busy {
                        continue;
                    }
                } else {
                    let local: Vec<&Running> =
                        running.values().filter(|r| r.agent.is_none()).collect();
                    if local.len() >= state.config.max_jobs {
                        continue;
                    }
                    let on_vault = local.iter().filter(|r| r.vault == vault).count();
                    if on_vault >= state.config.max_jobs_per_vault || item_busy {
                        continue;
                    }
                }
                let claimed = state.db.conn().execute(
                    "UPDATE jobs SET state = 'Running', started = ?1 WHERE id = ?2 AND state = 'Queued'",
                    params![now(), id],
                )?;
                if claimed == 0 {
                    continue;
                }
                running.insert(
                    id,
                    Running {
                        vault,
                        item,
                        agent: on_agent,
                        started: Instant::now(),
                        live: live.clone(),
                    },
                );
            }
            let (jobs, state) = (self.clone(), state.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("coffer-job-{id}"))
                .spawn(move || {
                    let ctx = JobContext {
                        state: &state,
                        jobs: &jobs,
                    };
                    if let Err(e) = (jobs.runner)(&ctx, id, &live) {
                        tracing::error!(job = id, "could not record the job's end: {e}");
                    }
                    jobs.running().remove(&id);
                    jobs.wake.notify_one();
                });
            if let Err(e) = spawned {
                self.running().remove(&id);
                return Err(Error::Internal(format!("cannot start a job thread: {e}")));
            }
        }
        Ok(())
    }

    /// The dispatcher: starts jobs whenever one is queued or ends, and at
    /// least every second (for retries whose time has come).
    pub async fn dispatch(jobs: Arc<Jobs>, state: Arc<State>) {
        loop {
            if let Err(e) = jobs.start_ready(&state) {
                tracing::error!("job dispatcher: {e}");
            }
            let _ = tokio::time::timeout(Duration::from_secs(1), jobs.wake.notified()).await;
        }
    }

    /// Records the end of a job, raises or resolves alerts, and queues a
    /// retry when the item allows one.
    pub(crate) fn finish(
        &self,
        state: &State,
        job: &Job,
        end: JobState,
        result: Option<serde_json::Value>,
        failure: Option<(Cause, String)>,
        progress: Option<JobProgress>,
    ) -> Result<()> {
        let db = &state.db;
        db.conn().execute(
            "UPDATE jobs SET state = ?1, finished = ?2, result = ?3, error = ?4, cause = ?5,
             progress = coalesce(?6, progress) WHERE id = ?7",
            params![
                end.as_str(),
                now(),
                result.map(|r| r.to_string()),
                failure.as_ref().map(|(_, m)| m.clone()),
                failure.as_ref().map(|(c, _)| c.as_str()),
                progress.and_then(|p| serde_json::to_string(&p).ok()),
                job.id
            ],
        )?;
        self.log(db, job.id, "info", &format!("ended: {}", end.as_str()))?;
        let event = match end {
            JobState::Succeeded | JobState::PartialSucceeded => {
                Some((EventType::JobSucceeded, Severity::Info))
            }
            JobState::Failed => Some((EventType::JobFailed, Severity::Error)),
            _ => None,
        };
        if let Some((event, severity)) = event {
            let body = serde_json::to_value(self.get(db, job.id)?).unwrap_or_default();
            state.notify(event, severity, false, body)?;
        }
        let Some(item) = &job.item else {
            // A vault's own jobs (prune, check) have alerts without an item.
            match (end, &failure) {
                (JobState::Succeeded, _) => {
                    state.resolve_vault_alerts(job.vault.as_deref().unwrap_or_default())?
                }
                (JobState::Failed | JobState::PartialSucceeded, Some((cause, message))) => {
                    state.raise_alert(*cause, job.vault.as_deref(), None, message, Some(job.id))?;
                }
                _ => {}
            }
            return Ok(());
        };
        match (end, &failure) {
            (JobState::Succeeded, _) => {
                state.resolve_item_alerts(item)?;
            }
            (JobState::PartialSucceeded | JobState::Failed, Some((cause, message))) => {
                if end == JobState::PartialSucceeded {
                    state.resolve_item_alerts(item)?;
                }
                state.raise_alert(
                    *cause,
                    job.vault.as_deref(),
                    Some(item),
                    message,
                    Some(job.id),
                )?;
                // Only a failed backup is retried.
                if end != JobState::Failed || job.kind != JobKind::Backup {
                    return Ok(());
                }
                if let Ok(it) = state.item(item) {
                    if job.attempt <= it.retry_attempts {
                        let at = now() + it.retry_delay_secs as i64;
                        let retry = self.enqueue_backup(
                            state,
                            item,
                            "retry",
                            job.requested_by.as_deref(),
                            job.attempt + 1,
                            at,
                        )?;
                        self.log(
                            db,
                            job.id,
                            "info",
                            &format!(
                                "retry {} of {} queued as job {}, not before {} s from now",
                                job.attempt, it.retry_attempts, retry.id, it.retry_delay_secs
                            ),
                        )?;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

pub(crate) fn live_progress(live: &Live, elapsed: Duration) -> Option<JobProgress> {
    let secs = elapsed.as_secs_f64();
    let rate = |bytes: u64| if secs > 0.0 { bytes as f64 / secs } else { 0.0 };
    match live {
        Live::Backup(p) => {
            let bytes_read = p.bytes_read.load(Ordering::Relaxed);
            Some(JobProgress {
                files: p.files.load(Ordering::Relaxed),
                bytes_read,
                bytes_new: p.bytes_new.load(Ordering::Relaxed),
                bytes_stored: p.bytes_stored.load(Ordering::Relaxed),
                errors: p.errors.load(Ordering::Relaxed),
                elapsed_secs: secs,
                rate_bytes_per_sec: rate(bytes_read),
                ..Default::default()
            })
        }
        Live::Restore(p) => {
            let written = p.bytes_written.load(Ordering::Relaxed);
            Some(JobProgress {
                files: p.files.load(Ordering::Relaxed),
                bytes_written: written,
                bytes_total: p.bytes_total.load(Ordering::Relaxed),
                elapsed_secs: secs,
                rate_bytes_per_sec: rate(written),
                ..Default::default()
            })
        }
        Live::Check(_) | Live::Opaque => Some(JobProgress {
            elapsed_secs: secs,
            ..Default::default()
        }),
    }
}

/// A job to queue.
pub struct NewJob<'a> {
    pub kind: JobKind,
    pub vault: &'a str,
    pub item: Option<&'a str>,
    pub params: Option<serde_json::Value>,
    pub trigger: &'a str,
    pub requested_by: Option<&'a str>,
    pub attempt: u32,
    pub not_before: i64,
}
