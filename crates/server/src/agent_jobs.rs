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
use std::sync::Arc;
use std::time::{Duration, Instant};

use coffer_api_types::agent::{Task, Work, WorkDone};
use coffer_api_types::ErrorCode;
use coffer_engine::backup::{BackupReport, Progress};
use coffer_sources::Captured;

use crate::agent_hub::Standing;
use crate::alerts::Cause;
use crate::jobs::{Job, JobContext};
use crate::state::Item;

/// Why a job on an agent did not produce a point.
pub enum NotDone {
    Cancelled,
    Failed(Cause, String),
}

/// Runs `job` (a backup of `item`) on the item's agent.
pub fn back_up_on_agent(
    ctx: &JobContext<'_>,
    job: &Job,
    item: &Item,
    agent: &str,
    progress: &Arc<Progress>,
) -> Result<Captured, NotDone> {
    let config = &ctx.config;
    let info = crate::agents::get(ctx, agent, config.agent_unreachable_secs as i64)
        .map_err(|e| NotDone::Failed(Cause::AgentUnreachable, e.to_string()))?;
    if info.state == coffer_api_types::agent::AgentState::Disabled {
        return Err(unreachable(format!(
            "agent {agent} is disabled: enable it (`coffer agent enable {agent}`) to back up {}",
            item.name
        )));
    }
    if info.unreachable {
        return Err(unreachable(format!(
            "agent {agent} has not been in contact for more than {} s (last contact {}): the backup of {} did not run",
            config.agent_unreachable_secs,
            info.last_contact.map(|t| t.to_string()).unwrap_or_else(|| "never".into()),
            item.name
        )));
    }
    let _ = ctx.jobs.log(
        &ctx.db,
        job.id,
        "info",
        &format!("offered to agent {agent} ({})", info.host.hostname),
    );
    let work = Work {
        job: job.id,
        task: Task::Backup { item: item.clone() },
    };
    ctx.agent_hub
        .offer(agent, &item.name, work, progress.clone());
    let outcome = follow(ctx, job, agent, progress);
    ctx.agent_hub.withdraw(job.id);
    outcome
}

fn unreachable(message: String) -> NotDone {
    NotDone::Failed(Cause::AgentUnreachable, message)
}

/// Waits for the agent to take the job and end it.
fn follow(
    ctx: &JobContext<'_>,
    job: &Job,
    agent: &str,
    progress: &Arc<Progress>,
) -> Result<Captured, NotDone> {
    let config = &ctx.config;
    let offered = Instant::now();
    loop {
        match ctx.agent_hub.wait(job.id, Duration::from_secs(1)) {
            Standing::Done(done, accepted) => return ended(ctx, job, agent, *done, accepted),
            Standing::Gone => return Err(NotDone::Cancelled),
            Standing::Unclaimed if progress.cancel.load(Ordering::Relaxed) => {
                return Err(NotDone::Cancelled)
            }
            Standing::Unclaimed if offered.elapsed().as_secs() >= config.agent_claim_secs => {
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

/// Turns what the agent said into the job's outcome; the point must be
/// one the service accepted from this agent during this job.
fn ended(
    ctx: &JobContext<'_>,
    job: &Job,
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
                let _ = ctx.jobs.log(
                    &ctx.db,
                    job.id,
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
