//! A backup job of an item that lives on an agent, as its runner thread
//! sees it: the job is offered to the agent through the hub, followed
//! while the agent works, and ends with the point the service accepted
//! from it, which becomes the job's result exactly as a local backup's
//! report would. The job table, its alerts, retries and notifications do
//! not know the difference.
//!
//! A job fails as "agent unreachable" when its agent is disabled, has not
//! been in contact for `agent_unreachable_secs`, does not take the job
//! within `agent_claim_secs`, or stops reporting for `agent_silence_secs`
//! (killed, or the host went down). Nothing is committed then: an agent
//! commits a point only through the service, which takes it only while
//! the job runs.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use coffer_api_types::agent::{Task, Work, WorkDone};
use coffer_api_types::ErrorCode;
use coffer_engine::backup::{BackupOptions, BackupReport, Progress};
use coffer_sources::Captured;

use crate::agent_hub::Standing;
use crate::alerts::Cause;
use crate::state::{Item, State};

/// Why a job on an agent did not produce a point.
pub enum NotDone {
    Cancelled,
    Failed(Cause, String),
}

/// What a backup on an agent reports to: the service's state, the job's
/// log and its id.
pub struct OnAgent<'a> {
    pub state: &'a State,
    pub log: &'a dyn Fn(&str, &str),
    pub job_id: i64,
}

/// Backs `item` up on its agent with `opts`' tags and time (a set's);
/// the agent's counters are copied into `progress`, and its cancel flag
/// is passed on.
pub fn back_up_on_agent(
    run: &OnAgent<'_>,
    item: &Item,
    agent: &str,
    opts: &BackupOptions,
    progress: &Progress,
) -> Result<Captured, NotDone> {
    let config = &run.state.config;
    let info = crate::agents::get(run.state, agent, config.agent_unreachable_secs as i64)
        .map_err(|e| NotDone::Failed(Cause::AgentUnreachable, e.to_string()))?;
    if info.state == coffer_api_types::agent::AgentState::Disabled {
        return Err(unreachable(format!(
            "agent {agent} is disabled: enable it (`coffer agent enable {agent}`) to back up {}",
            item.name
        )));
    }
    if info.unreachable {
        crate::fleet::owe(run.state, &item.name)
            .map_err(|e| NotDone::Failed(Cause::GeneralFault, e.to_string()))?;
        return Err(unreachable(format!(
            "agent {agent} has not been in contact for more than {} s (last contact {}): the backup of {} did not run",
            config.agent_unreachable_secs,
            info.last_contact.map(|t| t.to_string()).unwrap_or_else(|| "never".into()),
            item.name
        )));
    }
    (run.log)(
        "info",
        &format!(
            "item {}: offered to agent {agent} ({})",
            item.name, info.host.hostname
        ),
    );
    let work = Work {
        job: run.job_id,
        task: Task::Backup {
            item: item.clone(),
            tags: opts.tags.clone(),
            time: opts.time.map(|t| (t.secs, t.nanos)),
        },
    };
    let remote = run.state.agent_hub.offer(agent, &item.name, work);
    let outcome = follow(run, agent, &item.name, &remote, progress);
    run.state.agent_hub.withdraw(run.job_id);
    outcome
}

fn unreachable(message: String) -> NotDone {
    NotDone::Failed(Cause::AgentUnreachable, message)
}

/// Waits for the agent to take the job and end it.
fn follow(
    run: &OnAgent<'_>,
    agent: &str,
    item: &str,
    remote: &Progress,
    progress: &Progress,
) -> Result<Captured, NotDone> {
    let config = &run.state.config;
    let offered = Instant::now();
    loop {
        let standing = run.state.agent_hub.wait(run.job_id, Duration::from_secs(1));
        mirror(remote, progress);
        match standing {
            Standing::Done(done, accepted) => return ended(run, agent, *done, accepted),
            Standing::Gone => return Err(NotDone::Cancelled),
            Standing::Unclaimed if progress.cancel.load(Ordering::Relaxed) => {
                return Err(NotDone::Cancelled)
            }
            Standing::Unclaimed if offered.elapsed().as_secs() >= config.agent_claim_secs => {
                let _ = crate::fleet::owe(run.state, item);
                return Err(unreachable(format!(
                    "agent {agent} did not take the job within {} s: it is not running, or cannot reach the service",
                    config.agent_claim_secs
                )))
            }
            Standing::Running(silent) if silent.as_secs() >= config.agent_silence_secs => {
                return Err(unreachable(format!(
                    "agent {agent} stopped reporting for {} s while backing up: the host or its agent stopped; nothing was committed",
                    silent.as_secs()
                )))
            }
            Standing::Unclaimed | Standing::Running(_) => {}
        }
    }
}

/// Copies the agent's counters to the job's, and the job's cancel flag to
/// the agent's.
fn mirror(remote: &Progress, progress: &Progress) {
    for (from, to) in [
        (&remote.files, &progress.files),
        (&remote.bytes_read, &progress.bytes_read),
        (&remote.bytes_new, &progress.bytes_new),
        (&remote.bytes_stored, &progress.bytes_stored),
        (&remote.errors, &progress.errors),
    ] {
        to.store(from.load(Ordering::Relaxed), Ordering::Relaxed);
    }
    if progress.cancel.load(Ordering::Relaxed) {
        remote.cancel.store(true, Ordering::Relaxed);
    }
}

/// Turns what the agent said into the job's outcome; the point must be
/// one the service accepted from this agent during this job.
fn ended(
    run: &OnAgent<'_>,
    agent: &str,
    done: WorkDone,
    accepted: Vec<(coffer_engine::ObjectId, coffer_engine::point::Manifest)>,
) -> Result<Captured, NotDone> {
    match done {
        WorkDone::Cancelled => Err(NotDone::Cancelled),
        WorkDone::Failed { code, message } => {
            let cause = code
                .as_deref()
                .map(|c| crate::alerts::cause_of_code(ErrorCode::from_api_code(c)))
                .unwrap_or(Cause::GeneralFault);
            Err(NotDone::Failed(
                cause,
                format!("on agent {agent}: {message}"),
            ))
        }
        WorkDone::BackedUp { summary, warnings } => {
            let Some((point, manifest)) = accepted
                .into_iter()
                .find(|(id, _)| id.to_hex() == summary.point)
            else {
                (run.log)(
                    "error",
                    &format!("agent {agent} reported point {} which it did not store through the service", summary.point),
                );
                return Err(NotDone::Failed(
                    Cause::GeneralFault,
                    format!("agent {agent} reported a point the service did not accept from it: the backup is not trusted"),
                ));
            };
            Ok(Captured {
                report: BackupReport {
                    point,
                    manifest,
                    packs_written: summary.packs_written as usize,
                    packs_adopted: summary.packs_adopted as usize,
                },
                warnings,
            })
        }
    }
}
