//! The job runners: what each kind of job does once the dispatcher in
//! [`crate::jobs`] has claimed it. [`run_job`] picks the runner for the
//! job's kind, and every runner ends in an [`Ending`] (state, result,
//! failure) that the job table records; the runners never touch the table
//! themselves beyond log lines.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use coffer_api_types::outcome::{
    CheckResult, DrillParams, ItemRestoreResult, PruneResult, ReplicaRun, ReplicateResult,
};
use coffer_api_types::vault::CheckRequest;
use coffer_api_types::RestoreParams;
use coffer_engine::backup::{BackupOptions, Progress};
use coffer_engine::restore::RestoreProgress;

use crate::alerts::{self, source_failure, Cause};
use crate::db::now;
use crate::error::{Error, Result};
use crate::jobs::{live_progress, Job, JobContext, JobKind, JobState, Live};

/// How a job ended, before it is recorded.
struct Ending {
    state: JobState,
    result: Option<serde_json::Value>,
    failure: Option<(Cause, String)>,
}

fn failed(cause: Cause, message: String) -> Ending {
    Ending {
        state: JobState::Failed,
        result: None,
        failure: Some((cause, message)),
    }
}

fn cancelled() -> Ending {
    Ending {
        state: JobState::Cancelled,
        result: None,
        failure: None,
    }
}

/// A job's result as the JSON the job table stores.
fn to_json(result: &impl serde::Serialize) -> Option<serde_json::Value> {
    serde_json::to_value(result).ok()
}

fn engine_failure(e: Error) -> (Cause, String) {
    match e {
        Error::Engine(e) => (alerts::classify(&e), e.to_string()),
        e => (Cause::GeneralFault, e.to_string()),
    }
}

/// Runs one claimed job to its end and records the outcome.
pub(crate) fn run_job(ctx: &JobContext<'_>, id: i64, live: &Live) -> Result<()> {
    let jobs = ctx.jobs;
    let job = jobs.get(&ctx.db, id)?;
    let started = Instant::now();
    jobs.log(
        &ctx.db,
        id,
        "info",
        &format!("started (attempt {})", job.attempt),
    )?;
    let ending = match (job.kind, live) {
        (JobKind::Backup, Live::Backup(p)) => run_backup(ctx, &job, p),
        (JobKind::SetBackup, Live::Backup(p)) => run_set(ctx, &job, p),
        (JobKind::Drill, _) => run_drill(ctx, &job),
        (JobKind::Restore, Live::Restore(p)) => run_restore(ctx, &job, p),
        (JobKind::Prune, _) => run_prune(ctx, &job),
        (JobKind::Replicate, _) => run_replicate(ctx, &job),
        (JobKind::Check, Live::Check(cancel)) => run_check(ctx, &job, cancel),
        (kind, _) => failed(
            Cause::GeneralFault,
            format!("job kind {kind} started without its progress"),
        ),
    };
    let progress = live_progress(live, started.elapsed());
    if let (JobState::Failed, Some((_, message))) = (ending.state, &ending.failure) {
        jobs.log(&ctx.db, id, "error", message)?;
    }
    jobs.finish(
        ctx,
        &job,
        ending.state,
        ending.result,
        ending.failure,
        progress,
    )
}

fn run_backup(ctx: &JobContext<'_>, job: &Job, progress: &Arc<Progress>) -> Ending {
    let jobs = ctx.jobs;
    let id = job.id;
    let item_name = job.item.clone().unwrap_or_default();
    let outcome = (|| -> std::result::Result<coffer_sources::Captured, (Cause, String)> {
        let item = ctx
            .item(&item_name)
            .map_err(|e| (Cause::GeneralFault, e.to_string()))?;
        if let Some(agent) = &item.agent {
            let log = |level: &str, message: &str| {
                let _ = jobs.log(&ctx.db, id, level, message);
            };
            let run = crate::agent_jobs::OnAgent {
                state: ctx.state,
                log: &log,
                job_id: id,
            };
            let opts = BackupOptions::default();
            return crate::agent_jobs::back_up_on_agent(&run, &item, agent, &opts, progress)
                .map_err(|e| e.into_failure(progress));
        }
        let vault = ctx.open_vault(&item.vault).map_err(engine_failure)?;
        let _ = jobs.log(
            &ctx.db,
            id,
            "info",
            &format!(
                "backing up {} into vault {}",
                item.paths.join(", "),
                item.vault
            ),
        );
        let def =
            crate::state::item_def(&item).map_err(|e| (Cause::GeneralFault, e.to_string()))?;
        for note in vault.unattached() {
            let _ = jobs.log(&ctx.db, id, "warn", &note);
        }
        let captured = coffer_sources::back_up(&vault, &def, &BackupOptions::default(), progress)
            .map_err(source_failure)?;
        ctx.measure_vault(&vault, &item.vault);
        ctx.witness_vault(&vault, &item.vault);
        Ok(captured)
    })();
    match outcome {
        Ok(captured) => {
            for w in &captured.warnings {
                let _ = jobs.log(&ctx.db, id, "warn", w);
            }
            let report = captured.report;
            let m = &report.manifest;
            for disk in &report.disks {
                let (warn, line) = disk.log_line();
                let _ = jobs.log(&ctx.db, id, if warn { "warn" } else { "info" }, &line);
            }
            for e in m.errors.iter().take(100) {
                let _ = jobs.log(
                    &ctx.db,
                    id,
                    "warn",
                    &format!("{}: {}", String::from_utf8_lossy(&e.path), e.message),
                );
            }
            if m.errors.len() > 100 {
                let _ = jobs.log(
                    &ctx.db,
                    id,
                    "warn",
                    &format!("… and {} more unreadable entries", m.errors.len() - 100),
                );
            }
            // A struct of strings and numbers: serialising it cannot fail.
            let result = serde_json::to_value(report.summary()).ok();
            let _ = jobs.log(
                &ctx.db,
                id,
                "info",
                &format!(
                    "point {} committed ({}): {} files ({} new, {} changed), {} bytes read, {} bytes stored",
                    report.point.to_hex(),
                    m.consistency.as_str(),
                    m.stats.files,
                    m.stats.files_new,
                    m.stats.files_changed,
                    m.stats.bytes_read,
                    m.stats.bytes_stored
                ),
            );
            if m.errors.is_empty() && captured.warnings.is_empty() {
                Ending {
                    state: JobState::Succeeded,
                    result,
                    failure: None,
                }
            } else if m.errors.is_empty() {
                Ending {
                    state: JobState::PartialSucceeded,
                    result,
                    failure: Some((Cause::SourceUnreadable, captured.warnings.join("; "))),
                }
            } else {
                let message = format!(
                    "{} entries could not be read, for example {}: {}",
                    m.errors.len(),
                    String::from_utf8_lossy(&m.errors[0].path),
                    m.errors[0].message
                );
                Ending {
                    state: JobState::PartialSucceeded,
                    result,
                    failure: Some((Cause::SourceUnreadable, message)),
                }
            }
        }
        Err(_) if progress.cancel.load(Ordering::Relaxed) => {
            let _ = jobs.log(
                &ctx.db,
                id,
                "info",
                "stopped on request; nothing was committed",
            );
            cancelled()
        }
        Err((cause, message)) => failed(cause, message),
    }
}

fn run_set(ctx: &JobContext<'_>, job: &Job, progress: &Arc<Progress>) -> Ending {
    let set = job.item.clone().unwrap_or_default();
    let log = |level: &str, message: &str| {
        let _ = ctx.jobs.log(&ctx.db, job.id, level, message);
    };
    match crate::set_backup::run_set_backup(ctx, &log, job.id, &set, progress) {
        Ok(o) => Ending {
            state: o.state,
            result: to_json(&o.result),
            failure: o.failure,
        },
        Err(_) if progress.cancel.load(Ordering::Relaxed) => {
            let _ = ctx.jobs.log(
                &ctx.db,
                job.id,
                "info",
                "stopped on request; the items done so far keep their points, the set point is incomplete",
            );
            cancelled()
        }
        Err(e) => {
            let (cause, message) = engine_failure(e);
            failed(cause, message)
        }
    }
}

/// A recovery drill of a set's newest point (or the one in the params).
fn run_drill(ctx: &JobContext<'_>, job: &Job) -> Ending {
    let set = job.item.clone().unwrap_or_default();
    let wanted = job
        .params
        .clone()
        .and_then(|p| serde_json::from_value::<DrillParams>(p).ok())
        .and_then(|p| p.point);
    let outcome = (|| -> Result<crate::recovery::RecoverReport> {
        let info = ctx.set(&set)?;
        let vault = ctx.open_vault(&info.vault)?;
        let point = match wanted {
            Some(p) => crate::recovery::find_set_point(&vault, &p)?,
            None => crate::recovery::set_points(&vault)?
                .into_iter()
                .find(|p| p.set == set)
                .ok_or_else(|| Error::NotFound(format!("a point of set {set}")))?,
        };
        let scratch = ctx.data_dir().join("drills");
        crate::db::make_private_dir(&scratch)?;
        let own_items: Vec<_> = ctx
            .items(None)?
            .into_iter()
            .filter(|i| i.vault == info.vault)
            .collect();
        crate::recovery::drill(&vault, &point, Some(&scratch), Some(&own_items), |o| {
            let _ = ctx.jobs.log(
                &ctx.db,
                job.id,
                if o.ok { "info" } else { "error" },
                &format!(
                    "{} ({}): {} [{:.1} s]",
                    o.item, o.kind, o.message, o.seconds
                ),
            );
        })
    })();
    match outcome {
        Ok(report) => {
            let _ = ctx.jobs.log(
                &ctx.db,
                job.id,
                "info",
                &format!(
                    "set point {} restored and checked in {:.1} s (the measured recovery time)",
                    report.set_point, report.seconds
                ),
            );
            let result = serde_json::to_value(&report).ok();
            match report.items.iter().find(|i| !i.ok) {
                None => Ending {
                    state: JobState::Succeeded,
                    result,
                    failure: None,
                },
                Some(bad) => Ending {
                    state: JobState::Failed,
                    result,
                    failure: Some((
                        Cause::DataCorruption,
                        format!(
                            "the drill could not restore item {}: {}",
                            bad.item, bad.message
                        ),
                    )),
                },
            }
        }
        Err(e) => {
            let (cause, message) = engine_failure(e);
            failed(cause, message)
        }
    }
}

fn run_restore(ctx: &JobContext<'_>, job: &Job, progress: &Arc<RestoreProgress>) -> Ending {
    let params: RestoreParams = match job
        .params
        .clone()
        .and_then(|p| serde_json::from_value(p).ok())
    {
        Some(p) => p,
        None => {
            return failed(
                Cause::GeneralFault,
                "the restore job has no parameters".into(),
            )
        }
    };
    let vault_name = job.vault.clone().unwrap_or_default();
    let opened = ctx.open_vault(&vault_name).and_then(|vault| {
        let point = vault.resolve_point(&params.point, job.item.as_deref())?;
        Ok((vault, point))
    });
    let (vault, point) = match opened {
        Ok(found) => found,
        Err(e) => {
            let (cause, message) = engine_failure(e);
            return failed(cause, message);
        }
    };
    if let Some(host) = params.host.clone() {
        return restore_onto_agent(ctx, job, &params, vault, &point, &host, progress);
    }
    match coffer_sources::kind_of(&point) {
        Some(kind) if kind != coffer_sources::Kind::Directory => {
            return restore_through_kind(ctx, job, &params, &vault, &point, progress)
        }
        _ => {}
    }
    let read_before = vault.storage().bytes_read();
    let outcome = (|| -> Result<coffer_engine::restore::RestoreReport> {
        let _ = ctx.jobs.log(
            &ctx.db,
            job.id,
            "info",
            &format!(
                "restoring point {} of {} to {}",
                point.id.to_hex(),
                point.manifest.item,
                params.target
            ),
        );
        let opts = coffer_engine::restore::RestoreOptions {
            target: params.target.clone().into(),
            includes: params.includes.iter().map(Into::into).collect(),
            overwrite: params.overwrite,
            batch_entries: 0,
        };
        Ok(coffer_engine::restore::restore(
            &vault, &point, &opts, progress,
        )?)
    })();
    if outcome.is_err() && progress.cancel.load(Ordering::Relaxed) {
        let _ = ctx.jobs.log(
            &ctx.db,
            job.id,
            "info",
            "stopped on request; what was written stays under the target",
        );
        return cancelled();
    }
    match outcome {
        Ok(report) => {
            for (path, why) in report.damaged.iter().chain(&report.problems).take(100) {
                let _ = ctx.jobs.log(
                    &ctx.db,
                    job.id,
                    "warn",
                    &format!("{}: {why}", path.display()),
                );
            }
            let read = vault.storage().bytes_read_since(read_before);
            let summary = coffer_engine::views::restore_summary(&point, &report, read);
            // A struct of strings and numbers: serialising it cannot fail.
            let result = serde_json::to_value(summary).unwrap_or_default();
            if report.is_complete() {
                Ending {
                    state: JobState::Succeeded,
                    result: Some(result),
                    failure: None,
                }
            } else {
                let cause = if report.damaged.is_empty() {
                    Cause::GeneralFault
                } else {
                    Cause::DataCorruption
                };
                Ending {
                    state: JobState::PartialSucceeded,
                    result: Some(result),
                    failure: Some((
                        cause,
                        format!(
                            "{} file(s) damaged and {} other entries not restored exactly; the job log lists them",
                            report.damaged.len(),
                            report.problems.len()
                        ),
                    )),
                }
            }
        }
        Err(e) => {
            let (cause, message) = engine_failure(e);
            failed(cause, message)
        }
    }
}

/// A point restored onto a registered agent's host: a file tree by the
/// engine's restore there, a database or command point through its item's
/// kind there.
fn restore_onto_agent(
    ctx: &JobContext<'_>,
    job: &Job,
    params: &RestoreParams,
    vault: coffer_engine::Vault,
    point: &coffer_engine::Point,
    host: &str,
    progress: &Arc<RestoreProgress>,
) -> Ending {
    let log = |level: &str, message: &str| {
        let _ = ctx.jobs.log(&ctx.db, job.id, level, message);
    };
    let run = crate::agent_jobs::OnAgent {
        state: ctx.state,
        log: &log,
        job_id: job.id,
    };
    let kind_item = match coffer_sources::kind_of(point) {
        Some(kind) if kind != coffer_sources::Kind::Directory => match kind_item(ctx, job, point) {
            Ok(item) => Some(item),
            Err((cause, message)) => return failed(cause, message),
        },
        _ => None,
    };
    let restored = crate::agent_jobs::restore_on_agent(
        &run,
        vault,
        point,
        params,
        host,
        kind_item.as_ref(),
        progress,
    );
    match restored {
        Ok(crate::agent_jobs::AgentRestored::Item(message)) => {
            log("info", &format!("on agent {host}: {message}"));
            Ending {
                state: JobState::Succeeded,
                result: to_json(&ItemRestoreResult { message }),
                failure: None,
            }
        }
        Ok(crate::agent_jobs::AgentRestored::Tree(summary)) => {
            for e in summary.damaged.iter().chain(&summary.problems).take(100) {
                log("warn", &format!("{}: {}", e.path, e.error));
            }
            let complete = summary.damaged.is_empty() && summary.problems.is_empty();
            let failure = (!complete).then(|| {
                (
                    if summary.damaged.is_empty() { Cause::GeneralFault } else { Cause::DataCorruption },
                    format!(
                        "{} file(s) damaged and {} other entries not restored exactly on {host}; the job log lists them",
                        summary.damaged.len(),
                        summary.problems.len()
                    ),
                )
            });
            Ending {
                state: if complete {
                    JobState::Succeeded
                } else {
                    JobState::PartialSucceeded
                },
                result: to_json(&summary),
                failure,
            }
        }
        Err(crate::agent_jobs::NotDone::Cancelled) => cancelled(),
        Err(crate::agent_jobs::NotDone::Failed(cause, message)) => failed(cause, message),
    }
}

/// The item a database or command point is put back through: this vault's
/// own item of that name, of the point's kind.
fn kind_item(
    ctx: &JobContext<'_>,
    job: &Job,
    point: &coffer_engine::Point,
) -> std::result::Result<crate::state::Item, (Cause, String)> {
    let vault_name = job.vault.as_deref().unwrap_or_default();
    let not_here = || {
        (
            Cause::GeneralFault,
            format!(
                "item {} is not configured in vault {vault_name}, so its point cannot be restored through it: recover it with `coffer recover --item`",
                point.manifest.item
            ),
        )
    };
    // Only this vault's own item may act on this vault's point: an item
    // of another vault with the same name would run its restore on data
    // it was never given.
    let item = ctx
        .item_in_vault(vault_name, &point.manifest.item)
        .ok()
        .flatten()
        .ok_or_else(not_here)?;
    let recorded = coffer_sources::kind_of(point);
    if recorded.map(|k| k.as_str()) != Some(item.kind.as_str()) {
        return Err((
            Cause::GeneralFault,
            format!(
                "point {} is of kind {} but item {} is a {} item: it is not restored through it",
                point.id.to_hex(),
                recorded.map_or("unknown", |k| k.as_str()),
                item.name,
                item.kind
            ),
        ));
    }
    Ok(item)
}

/// Points of databases and commands go back through their kind (into the
/// database file, the server, the restore command), not through the
/// engine's tree restore.
fn restore_through_kind(
    ctx: &JobContext<'_>,
    job: &Job,
    params: &RestoreParams,
    vault: &coffer_engine::Vault,
    point: &coffer_engine::Point,
    progress: &Arc<RestoreProgress>,
) -> Ending {
    let outcome = (|| -> std::result::Result<String, (Cause, String)> {
        let item = kind_item(ctx, job, point)?;
        let def =
            crate::state::item_def(&item).map_err(|e| (Cause::GeneralFault, e.to_string()))?;
        let to = coffer_sources::Destination {
            target: (!params.target.is_empty()).then(|| params.target.clone().into()),
            overwrite: params.overwrite,
            postgresql_connection: None,
        };
        let _ = ctx.jobs.log(
            &ctx.db,
            job.id,
            "info",
            &format!(
                "restoring point {} of {} item {}",
                point.id.to_hex(),
                item.kind,
                item.name
            ),
        );
        coffer_sources::restore(vault, &def, point, &to, progress).map_err(source_failure)
    })();
    match outcome {
        Ok(message) => {
            let _ = ctx.jobs.log(&ctx.db, job.id, "info", &message);
            Ending {
                state: JobState::Succeeded,
                result: to_json(&ItemRestoreResult { message }),
                failure: None,
            }
        }
        Err((cause, message)) => failed(cause, message),
    }
}

fn run_prune(ctx: &JobContext<'_>, job: &Job) -> Ending {
    let vault_name = job.vault.clone().unwrap_or_default();
    let outcome = (|| -> Result<coffer_engine::prune::Report> {
        let vault = ctx.open_vault(&vault_name)?;
        // A hold or immutability record deleted at the storage must not
        // let this prune delete what it protected.
        let missing = ctx.witness_vault(&vault, &vault_name);
        if let Some(first) = missing.first() {
            return Err(Error::Conflict(format!(
                "prune refused: {} object(s) seen before are gone from the storage location, for example: {first}",
                missing.len()
            )));
        }
        let report = coffer_engine::prune::run(&vault, &Default::default(), false, now())?;
        ctx.measure_vault(&vault, &vault_name);
        ctx.witness_vault(&vault, &vault_name);
        Ok(report)
    })();
    match outcome {
        Ok(report) => {
            let (points, packs) = report.done.unwrap_or_default();
            let message = format!(
                "{} point(s) soft-deleted, {} purged; {} pack(s) condemned, {} repacked, {} deleted ({} bytes)",
                points.soft_deleted,
                points.purged,
                packs.condemned,
                packs.repacked,
                packs.deleted,
                packs.bytes_deleted
            );
            let _ = ctx.jobs.log(&ctx.db, job.id, "info", &message);
            Ending {
                state: JobState::Succeeded,
                result: to_json(&PruneResult {
                    points_soft_deleted: points.soft_deleted,
                    points_purged: points.purged,
                    packs_condemned: packs.condemned,
                    packs_repacked: packs.repacked,
                    packs_deleted: packs.deleted,
                    bytes_deleted: packs.bytes_deleted,
                    writer_index_files_rewritten: packs.writer_files_rewritten,
                    stale_markers_removed: packs.stale_markers_removed,
                }),
                failure: None,
            }
        }
        Err(e) => {
            let (cause, message) = engine_failure(e);
            failed(cause, message)
        }
    }
}

/// Brings every replica of the vault up to date (copies what each lacks,
/// reads every copy back, removes what the vault no longer has). A replica
/// that fails does not stop the others; the job then fails with the first
/// failure's cause.
fn run_replicate(ctx: &JobContext<'_>, job: &Job) -> Ending {
    let vault_name = job.vault.clone().unwrap_or_default();
    let vault = match ctx.open_vault(&vault_name) {
        Ok(v) => v,
        Err(e) => {
            let (cause, message) = engine_failure(e);
            return failed(cause, message);
        }
    };
    let replicas = vault.replica_locations();
    if replicas.is_empty() {
        return failed(
            Cause::GeneralFault,
            format!("vault {vault_name} has no replicas: add one with coffer vault replica add"),
        );
    }
    let mut results = Vec::new();
    let mut first_failure = None;
    for (location, _mode) in &replicas {
        let outcome = vault
            .open_journal_location(location)
            .and_then(|replica| coffer_engine::replica::replicate(&vault, &replica, location));
        match outcome {
            Ok(r) => {
                let _ = ctx.jobs.log(
                    &ctx.db,
                    job.id,
                    "info",
                    &format!(
                        "{location}: {} object(s) copied ({} bytes) and verified, {} removed; complete as of {}",
                        r.copied, r.copied_bytes, r.deleted, r.as_of
                    ),
                );
                results.push(ReplicaRun {
                    location: location.to_string(),
                    copied: Some(r.copied),
                    copied_bytes: Some(r.copied_bytes),
                    verified: Some(r.verified),
                    deleted: Some(r.deleted),
                    as_of: Some(r.as_of),
                    error: None,
                });
            }
            Err(e) => {
                let (cause, message) = engine_failure(Error::Engine(e));
                let message = format!("replica {location}: {message}");
                let _ = ctx.jobs.log(&ctx.db, job.id, "error", &message);
                results.push(ReplicaRun {
                    location: location.to_string(),
                    copied: None,
                    copied_bytes: None,
                    verified: None,
                    deleted: None,
                    as_of: None,
                    error: Some(message.clone()),
                });
                first_failure.get_or_insert((cause, message));
            }
        }
    }
    match first_failure {
        None => Ending {
            state: JobState::Succeeded,
            result: to_json(&ReplicateResult { replicas: results }),
            failure: None,
        },
        Some((cause, message)) => Ending {
            state: JobState::Failed,
            result: to_json(&ReplicateResult { replicas: results }),
            failure: Some((cause, message)),
        },
    }
}

fn run_check(ctx: &JobContext<'_>, job: &Job, cancel: &AtomicBool) -> Ending {
    let vault_name = job.vault.clone().unwrap_or_default();
    let percent = job
        .params
        .clone()
        .and_then(|p| serde_json::from_value::<CheckRequest>(p).ok())
        .map_or(0.0, |p| p.read_data_percent);
    let read = if percent >= 100.0 {
        coffer_engine::check::ReadData::All
    } else if percent > 0.0 {
        coffer_engine::check::ReadData::Subset(percent)
    } else {
        coffer_engine::check::ReadData::None
    };
    let outcome = (|| -> Result<coffer_engine::check::CheckReport> {
        let mut vault = ctx.open_vault(&vault_name)?;
        let mut report = coffer_engine::check::check_cancellable(&mut vault, read, cancel)?;
        report
            .problems
            .extend(ctx.witness_vault(&vault, &vault_name));
        Ok(report)
    })();
    if outcome.is_err() && cancel.load(Ordering::Relaxed) {
        let _ = ctx.jobs.log(&ctx.db, job.id, "info", "stopped on request");
        return cancelled();
    }
    match outcome {
        Ok(report) => {
            for p in report.problems.iter().take(100) {
                let _ = ctx.jobs.log(&ctx.db, job.id, "error", p);
            }
            let result = to_json(&CheckResult {
                problems: report.problems.len(),
                packs: report.packs,
                packs_read: report.packs_read,
                blobs_verified: report.blobs_verified,
                points: report.points,
            });
            if report.ok() {
                let _ = ctx.jobs.log(
                    &ctx.db,
                    job.id,
                    "info",
                    &format!(
                        "no problem found: {} packs, {} read, {} blobs verified",
                        report.packs, report.packs_read, report.blobs_verified
                    ),
                );
                Ending {
                    state: JobState::Succeeded,
                    result,
                    failure: None,
                }
            } else {
                Ending {
                    state: JobState::Failed,
                    result,
                    failure: Some((
                        Cause::DataCorruption,
                        format!(
                            "check found {} problem(s), for example: {}",
                            report.problems.len(),
                            report.problems[0]
                        ),
                    )),
                }
            }
        }
        Err(e) => {
            let (cause, message) = engine_failure(e);
            failed(cause, message)
        }
    }
}
