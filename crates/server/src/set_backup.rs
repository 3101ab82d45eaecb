//! A set's backup job: every member item in the set's order with the same
//! time and the set's two tags, then the service's configuration (see
//! [`crate::recovery`]) with each item's status as one more point, of item
//! `coffer-service.SET`. A member that fails is recorded and the others go
//! on; the set point is ready for cloud recovery only when every item and
//! the configuration have a point.

use std::sync::atomic::Ordering;

use coffer_engine::backup::{backup_streams, now, BackupOptions, NamedStream, Progress};
use coffer_engine::Vault;

use coffer_api_types::outcome::SetBackupResult;

use crate::alerts::{self, Cause};
use crate::error::{Error, Result};
use crate::jobs::JobState;
use crate::recovery::{self, ItemStatus, SetRecord};
use crate::sets::{service_item, InfraSet, SET_POINT_TAG, SET_TAG};
use crate::state::{item_def, State};

/// How a set job ended.
pub struct SetOutcome {
    pub state: JobState,
    pub result: SetBackupResult,
    pub failure: Option<(Cause, String)>,
}

/// Writes one line to the job's log.
pub type JobLog<'a> = &'a dyn Fn(&str, &str);

/// Runs a set's backup: every item, then the service's configuration.
pub fn run_set_backup(
    state: &State,
    log: JobLog<'_>,
    job_id: i64,
    set_name: &str,
    progress: &Progress,
) -> Result<SetOutcome> {
    let set = state.set(set_name)?;
    let vault = state.open_vault(&set.vault)?;
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
    let member = Member {
        state,
        log,
        job_id,
        set: &set,
        vault: &vault,
        opts: &opts,
        progress,
    };
    let mut statuses = Vec::new();
    let mut first_failure: Option<(Cause, String)> = None;
    for name in &set.items {
        if progress.cancel.load(Ordering::Relaxed) {
            return Err(Error::Engine(coffer_engine::Error::Cancelled));
        }
        let (status, failure) = member.back_up(name)?;
        statuses.push(status);
        if let Some(f) = failure {
            first_failure.get_or_insert(f);
        }
    }
    let record = SetRecord {
        set: set.name.clone(),
        id: point_id,
        time: time.secs,
        vault: set.vault.clone(),
        items: statuses,
    };
    let config_point = match member.store_configuration(&record)? {
        Ok(point) => Some(point),
        Err(failure) => {
            first_failure.get_or_insert(failure);
            None
        }
    };
    state.measure_vault(&vault, &set.vault);
    state.witness_vault(&vault, &set.vault);
    Ok(conclude(log, record, config_point, first_failure))
}

/// What backing up one member of a set needs.
struct Member<'a> {
    state: &'a State,
    log: JobLog<'a>,
    job_id: i64,
    set: &'a InfraSet,
    vault: &'a Vault,
    opts: &'a BackupOptions,
    progress: &'a Progress,
}

impl Member<'_> {
    /// Backs up one item of the set: its status, and why it failed if it
    /// did. Only a cancellation or a failure to record an alert ends the
    /// whole set.
    fn back_up(&self, name: &str) -> Result<(ItemStatus, Option<(Cause, String)>)> {
        let set = self.set;
        // The set's vault is checked again at run time: only its own items
        // go into its point.
        let item = match self.state.item_in_vault(&set.vault, name).and_then(|i| {
            i.ok_or_else(|| Error::NotFound(format!("item {name} in vault {}", set.vault)))
        }) {
            Ok(i) => i,
            Err(e) => {
                let failure = (Cause::GeneralFault, e.to_string());
                return Ok((ItemStatus::failed(name, "", e.to_string()), Some(failure)));
            }
        };
        (self.log)("info", &format!("item {name} ({})", item.kind));
        reset_counters(self.progress);
        let outcome = match &item.agent {
            Some(agent) => self.back_up_on_agent(&item, agent),
            None => item_def(&item)
                .map_err(|e| (Cause::GeneralFault, e.to_string()))
                .and_then(|def| {
                    coffer_sources::back_up(self.vault, &def, self.opts, self.progress)
                        .map_err(alerts::source_failure)
                }),
        };
        let captured = match outcome {
            Ok(captured) => captured,
            Err(_) if self.progress.cancel.load(Ordering::Relaxed) => {
                return Err(Error::Engine(coffer_engine::Error::Cancelled));
            }
            Err((cause, message)) => {
                (self.log)("error", &format!("item {name}: {message}"));
                self.state.raise_alert(
                    cause,
                    Some(&set.vault),
                    Some(name),
                    &message,
                    Some(self.job_id),
                )?;
                let failure = (cause, format!("item {name}: {message}"));
                let mut status = ItemStatus::failed(name, &item.kind, message);
                status.host = item.agent.clone();
                return Ok((status, Some(failure)));
            }
        };
        let m = &captured.report.manifest;
        let mut notes = captured.warnings.clone();
        if let Some(first) = m.errors.first() {
            notes.push(format!(
                "{} entries could not be read, for example {}: {}",
                m.errors.len(),
                String::from_utf8_lossy(&first.path),
                first.message
            ));
        }
        for n in &notes {
            (self.log)("warn", &format!("item {name}: {n}"));
        }
        (self.log)(
            "info",
            &format!(
                "item {name}: point {} ({}), {} bytes read",
                captured.report.point.to_hex(),
                m.consistency.as_str(),
                m.stats.bytes_read
            ),
        );
        let state = if notes.is_empty() {
            self.state.resolve_item_alerts(name)?;
            JobState::Succeeded
        } else {
            self.state.raise_alert(
                Cause::SourceUnreadable,
                Some(&set.vault),
                Some(name),
                &notes.join("; "),
                Some(self.job_id),
            )?;
            JobState::PartialSucceeded
        };
        let status = ItemStatus {
            item: name.to_string(),
            kind: item.kind.clone(),
            status: state.as_str().to_string(),
            point: Some(captured.report.point.to_hex()),
            consistency: Some(m.consistency.as_str().to_string()),
            message: (!notes.is_empty()).then(|| notes.join("; ")),
            host: item.agent.clone(),
        };
        Ok((status, None))
    }

    /// A member that lives on an agent: the agent backs it up with the
    /// set's tags and time, while this job waits.
    fn back_up_on_agent(
        &self,
        item: &crate::state::Item,
        agent: &str,
    ) -> std::result::Result<coffer_sources::Captured, (Cause, String)> {
        let run = crate::agent_jobs::OnAgent {
            state: self.state,
            log: self.log,
            job_id: self.job_id,
        };
        crate::agent_jobs::back_up_on_agent(&run, item, agent, self.opts, self.progress)
            .map_err(|e| e.into_failure(self.progress))
    }

    /// Stores the service's configuration with what happened to every item
    /// as the set's last point: its id, or why it could not be stored.
    fn store_configuration(
        &self,
        record: &SetRecord,
    ) -> Result<std::result::Result<String, (Cause, String)>> {
        let export = recovery::export(
            self.state,
            self.vault,
            &self.set.vault,
            Some(record.clone()),
        )?;
        let body =
            serde_json::to_vec_pretty(&export).map_err(|e| Error::Internal(e.to_string()))?;
        let mut config_opts = self.opts.clone();
        config_opts.item = Some(service_item(&self.set.name));
        config_opts
            .tags
            .push(format!("{}service", coffer_sources::KIND_TAG));
        config_opts.consistency = Some(coffer_engine::point::Consistency::ApplicationConsistent);
        reset_counters(self.progress);
        let stream = NamedStream {
            name: recovery::CONFIG_FILE.into(),
            reader: Box::new(std::io::Cursor::new(body)),
        };
        Ok(
            match backup_streams(self.vault, vec![stream], &config_opts, self.progress) {
                Ok(r) => {
                    let point = r.point.to_hex();
                    (self.log)("info", &format!("service configuration: point {point}"));
                    Ok(point)
                }
                Err(e) => {
                    let message = format!("the service's configuration could not be stored: {e}");
                    (self.log)("error", &message);
                    Err((alerts::classify(&e), message))
                }
            },
        )
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
        counter.store(0, Ordering::Relaxed);
    }
}

/// The set job's state, result and failure from what its items and its
/// configuration point came to.
fn conclude(
    log: JobLog<'_>,
    record: SetRecord,
    config_point: Option<String>,
    first_failure: Option<(Cause, String)>,
) -> SetOutcome {
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
            "set point {}: {succeeded} of {} items backed up; {}",
            record.id,
            record.items.len(),
            if ready {
                "ready for cloud recovery"
            } else {
                "not ready for cloud recovery"
            }
        ),
    );
    let result = SetBackupResult {
        set_point: record.id,
        time: record.time,
        items: record.items,
        service_point: config_point,
        ready_for_cloud_recovery: ready,
    };
    let failure = match state {
        JobState::Succeeded => None,
        _ => first_failure.or(Some((
            Cause::SourceUnreadable,
            "some items were backed up with warnings".into(),
        ))),
    };
    SetOutcome {
        state,
        result,
        failure,
    }
}
