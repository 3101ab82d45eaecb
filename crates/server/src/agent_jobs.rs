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

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use coffer_api_types::agent::{Task, Work, WorkDone};
use coffer_api_types::{ErrorCode, RestoreParams, RestoreSummary};
use coffer_engine::backup::{BackupOptions, BackupReport, Progress};
use coffer_engine::point::Manifest;
use coffer_engine::restore::RestoreProgress;
use coffer_engine::tree::NodeKind;
use coffer_engine::{ObjectId, Point, Vault};
use coffer_sources::Captured;

use crate::agent_hub::{Counters, RestoreGrant, Standing};
use crate::alerts::Cause;
use crate::state::{Item, State};

/// Why a job on an agent did not produce a point.
pub enum NotDone {
    Cancelled,
    Failed(Cause, String),
}

impl NotDone {
    /// As a backup runner reports a failure; a cancellation sets the
    /// job's flag, which the runner reads as "cancelled".
    pub fn into_failure(self, progress: &Progress) -> (Cause, String) {
        match self {
            NotDone::Cancelled => {
                progress.cancel.store(true, Ordering::Relaxed);
                (Cause::GeneralFault, "cancelled".into())
            }
            NotDone::Failed(cause, message) => (cause, message),
        }
    }
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
    let what = format!("the backup of {}", item.name);
    let info = available(run, agent, &what, Some(&item.name))?;
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
            item: Box::new(item.clone()),
            tags: opts.tags.clone(),
            time: opts.time.map(|t| (t.secs, t.nanos)),
        },
    };
    let counters = run.state.agent_hub.offer(agent, &item.name, work, None);
    let mirror = |c: &Counters| {
        for (from, to) in [
            (&c.files, &progress.files),
            (&c.bytes_read, &progress.bytes_read),
            (&c.bytes_new, &progress.bytes_new),
            (&c.bytes_stored, &progress.bytes_stored),
            (&c.errors, &progress.errors),
        ] {
            to.store(from.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        progress.cancel.load(Ordering::Relaxed)
    };
    let outcome = follow(run, agent, Some(&item.name), &counters, &mirror);
    run.state.agent_hub.withdraw(run.job_id);
    let (done, accepted) = outcome?;
    ended(run, agent, done, accepted)
}

/// The agent, when it can take a job now: enabled and in contact.
/// A backup of `owed` that an agent out of contact cannot run is owed to
/// the item (see `fleet`).
fn available(
    run: &OnAgent<'_>,
    agent: &str,
    what: &str,
    owed: Option<&str>,
) -> Result<coffer_api_types::agent::Agent, NotDone> {
    let config = &run.state.config;
    let info = crate::agents::get(run.state, agent, config.agent_unreachable_secs as i64)
        .map_err(|e| NotDone::Failed(Cause::AgentUnreachable, e.to_string()))?;
    if info.state == coffer_api_types::agent::AgentState::Disabled {
        return Err(unreachable(format!(
            "agent {agent} is disabled: enable it (`coffer agent enable {agent}`) to run {what}"
        )));
    }
    if info.unreachable {
        owe(run, owed);
        return Err(unreachable(format!(
            "agent {agent} has not been in contact for more than {} s (last contact {}): {what} did not run",
            config.agent_unreachable_secs,
            info.last_contact
                .map(|t| t.to_string())
                .unwrap_or_else(|| "never".into()),
        )));
    }
    Ok(info)
}

/// Restores `point` (a file tree) onto `agent`'s host: the agent reads the
/// point's trees and chunks through the service, which serves only those.
/// What a restore on an agent did: a file tree's summary, or what a
/// database or command item's restore did, in one line.
pub enum AgentRestored {
    Tree(RestoreSummary),
    Item(String),
}

/// `kind_item` is the item a database or command point is put back
/// through (the agent runs its kind's restore); none for a file tree.
pub fn restore_on_agent(
    run: &OnAgent<'_>,
    vault: Vault,
    point: &Point,
    params: &RestoreParams,
    agent: &str,
    kind_item: Option<&Item>,
    progress: &RestoreProgress,
) -> Result<AgentRestored, NotDone> {
    let info = available(run, agent, "the restore", None)?;
    let grant = grant_for(vault, point).map_err(|e| {
        NotDone::Failed(
            crate::alerts::classify(&e),
            format!("cannot read the point: {e}"),
        )
    })?;
    (run.log)(
        "info",
        &format!(
            "restoring point {} of {} onto agent {agent} ({}) under {}",
            point.id.to_hex(),
            point.manifest.item,
            info.host.hostname,
            params.target
        ),
    );
    let work = Work {
        job: run.job_id,
        task: Task::Restore {
            point: point.id.to_hex(),
            tree: point.manifest.tree.to_hex(),
            item: kind_item.map(|i| Box::new(i.clone())),
            paths: point
                .manifest
                .paths
                .iter()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect(),
            time_secs: Some(point.manifest.time.secs),
            time_nanos: point.manifest.time.nanos,
            target: params.target.clone(),
            includes: params.includes.clone(),
            overwrite: params.overwrite,
        },
    };
    let counters =
        run.state
            .agent_hub
            .offer(agent, &point.manifest.item, work, Some(Arc::new(grant)));
    let mirror = |c: &Counters| {
        progress
            .files
            .store(c.files.load(Ordering::Relaxed), Ordering::Relaxed);
        progress
            .bytes_written
            .store(c.bytes_written.load(Ordering::Relaxed), Ordering::Relaxed);
        progress.cancel.load(Ordering::Relaxed)
    };
    let outcome = follow(run, agent, None, &counters, &mirror);
    run.state.agent_hub.withdraw(run.job_id);
    match outcome?.0 {
        WorkDone::Restored { summary } if kind_item.is_none() => Ok(AgentRestored::Tree(summary)),
        WorkDone::RestoredItem { message } if kind_item.is_some() => {
            Ok(AgentRestored::Item(message))
        }
        WorkDone::Restored { .. } | WorkDone::RestoredItem { .. } => Err(NotDone::Failed(
            Cause::GeneralFault,
            format!("agent {agent} restored the point another way than the service asked"),
        )),
        WorkDone::Cancelled => Err(NotDone::Cancelled),
        WorkDone::Failed { code, message } => Err(failed_on(agent, code, message)),
        WorkDone::BackedUp { .. } => Err(NotDone::Failed(
            Cause::GeneralFault,
            format!("agent {agent} answered a restore with a backup"),
        )),
    }
}

/// Every tree and chunk of `point`: all a restore of it may read.
fn grant_for(vault: Vault, point: &Point) -> coffer_engine::Result<RestoreGrant> {
    let index = vault.load_index()?;
    let mut trees = HashSet::new();
    let mut chunks = HashSet::new();
    let mut stack = vec![point.manifest.tree];
    while let Some(id) = stack.pop() {
        if !trees.insert(id) {
            continue;
        }
        for node in vault.read_tree(&index, &id)?.nodes {
            match node.kind {
                NodeKind::Dir { tree } => stack.push(tree),
                NodeKind::File { extents, .. } => {
                    chunks.extend(extents.iter().flat_map(|e| e.chunks.iter().map(|c| c.id)))
                }
                NodeKind::Disk { ref segments, .. } => {
                    let map = vault.disk_map(&index, &node.kind, "disk")?;
                    chunks.extend(segments.iter().copied());
                    chunks.extend(map.chunks().copied());
                }
                _ => {}
            }
        }
    }
    Ok(RestoreGrant {
        vault,
        index,
        trees,
        chunks,
    })
}

fn failed_on(agent: &str, code: Option<String>, message: String) -> NotDone {
    let cause = code
        .as_deref()
        .map(|c| crate::alerts::cause_of_code(ErrorCode::from_api_code(c)))
        .unwrap_or(Cause::GeneralFault);
    NotDone::Failed(cause, format!("on agent {agent}: {message}"))
}

fn owe(run: &OnAgent<'_>, item: Option<&str>) {
    if let Some(item) = item {
        if let Err(e) = crate::fleet::owe(run.state, item) {
            (run.log)(
                "warn",
                &format!("cannot note the missed backup of {item}: {e}"),
            );
        }
    }
}

fn unreachable(message: String) -> NotDone {
    NotDone::Failed(Cause::AgentUnreachable, message)
}

/// What the agent ended a job with, and the points accepted from it.
type Ended = (WorkDone, Vec<(ObjectId, Manifest)>);

/// Waits for the agent to take the job and end it; `mirror` copies its
/// counters to the job's and says whether the job was cancelled.
fn follow(
    run: &OnAgent<'_>,
    agent: &str,
    owed: Option<&str>,
    counters: &Counters,
    mirror: &dyn Fn(&Counters) -> bool,
) -> Result<Ended, NotDone> {
    let config = &run.state.config;
    let offered = Instant::now();
    loop {
        let standing = run.state.agent_hub.wait(run.job_id, Duration::from_secs(1));
        let cancelled = mirror(counters);
        if cancelled {
            counters.cancel.store(true, Ordering::Relaxed);
        }
        match standing {
            Standing::Done(done, accepted) => return Ok((*done, accepted)),
            Standing::Gone => return Err(NotDone::Cancelled),
            Standing::Unclaimed if cancelled => return Err(NotDone::Cancelled),
            Standing::Unclaimed if offered.elapsed().as_secs() >= config.agent_claim_secs => {
                owe(run, owed);
                return Err(unreachable(format!(
                    "agent {agent} did not take the job within {} s: it is not running, or cannot reach the service",
                    config.agent_claim_secs
                )))
            }
            Standing::Running(silent) if silent.as_secs() >= config.agent_silence_secs => {
                return Err(unreachable(format!(
                    "agent {agent} stopped reporting for {} s: the host or its agent stopped; nothing was committed",
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
    run: &OnAgent<'_>,
    agent: &str,
    done: WorkDone,
    accepted: Vec<(ObjectId, Manifest)>,
) -> Result<Captured, NotDone> {
    match done {
        WorkDone::Cancelled => Err(NotDone::Cancelled),
        WorkDone::Failed { code, message } => Err(failed_on(agent, code, message)),
        WorkDone::Restored { .. } | WorkDone::RestoredItem { .. } => Err(NotDone::Failed(
            Cause::GeneralFault,
            format!("agent {agent} answered a backup with a restore"),
        )),
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
                    disks: summary
                        .disks
                        .iter()
                        .filter_map(coffer_engine::backup::DiskReport::from_summary)
                        .collect(),
                },
                warnings,
            })
        }
    }
}
