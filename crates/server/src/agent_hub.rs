//! Where jobs meet agents, in memory: a job of an item on an agent is
//! offered here by its runner thread, taken by the agent's next poll, and
//! followed through the agent's progress reports to its end.
//!
//! The hub is also what lets an agent write at all: the service accepts an
//! agent's uploads only while one of its jobs is running, and a point only
//! for the item of that job. So a compromised host can add points for the
//! items the service is backing up on it right now, and nothing at any
//! other time. What the agent reports at the end is checked against the
//! points the service accepted from it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use coffer_api_types::agent::{Work, WorkDone, WorkProgress};
use coffer_engine::index::Index;
use coffer_engine::point::Manifest;
use coffer_engine::{ChunkId, ObjectId, Vault};

use crate::error::{Error, Result};

/// Log lines an agent may add to one job; more are counted, not kept.
const MAX_LOG_LINES: usize = 5_000;
const MAX_LOG_CHARS: usize = 2_000;

/// The jobs on agents, offered and running.
#[derive(Default)]
pub struct AgentHub {
    inner: Mutex<Inner>,
    /// Wakes runner threads when a job they follow changes.
    changed: Condvar,
    /// Wakes agents' polls when work is offered.
    offered: tokio::sync::Notify,
}

#[derive(Default)]
struct Inner {
    jobs: HashMap<i64, Remote>,
    /// Polls held open, by agent: an agent waiting in one is in contact
    /// however long ago its poll began.
    polling: HashMap<String, usize>,
}

/// An agent's poll held open; counted until dropped (also when the agent
/// goes away mid-poll and the request is dropped).
pub struct Polling<'a> {
    hub: &'a AgentHub,
    agent: String,
}

impl Drop for Polling<'_> {
    fn drop(&mut self) {
        let mut inner = self.hub.lock();
        if let Some(n) = inner.polling.get_mut(&self.agent) {
            *n -= 1;
            if *n == 0 {
                inner.polling.remove(&self.agent);
            }
        }
    }
}

/// A job's counters as its agent reports them, and the job's cancel flag.
#[derive(Default)]
pub struct Counters {
    pub files: AtomicU64,
    pub bytes_read: AtomicU64,
    pub bytes_new: AtomicU64,
    pub bytes_stored: AtomicU64,
    pub bytes_written: AtomicU64,
    pub errors: AtomicU64,
    pub cancel: AtomicBool,
}

/// What a restore onto an agent may read: the trees and chunks of the one
/// point the job restores, from the vault the service opened for it.
pub struct RestoreGrant {
    pub vault: Vault,
    pub index: Index,
    pub trees: HashSet<ChunkId>,
    pub chunks: HashSet<ChunkId>,
}

struct Remote {
    agent: String,
    item: String,
    work: Work,
    counters: Arc<Counters>,
    /// Set for a restore: what it may read. A restore may upload nothing.
    grant: Option<Arc<RestoreGrant>>,
    claimed: bool,
    last_report: Instant,
    log_lines: usize,
    accepted: Vec<(ObjectId, Manifest)>,
    done: Option<WorkDone>,
}

/// Where a job on an agent stands, for its runner.
pub enum Standing {
    Unclaimed,
    /// Claimed; the time since the agent last reported.
    Running(Duration),
    /// Ended: what the agent said, and the points the service accepted.
    Done(Box<WorkDone>, Vec<(ObjectId, Manifest)>),
    /// The hub does not know the job (withdrawn).
    Gone,
}

impl AgentHub {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Offers `work` (of `item`) to `agent`, with what a restore may read.
    /// The agent's counters go to the counters returned, whose cancel flag
    /// the agent learns at its next report.
    pub fn offer(
        &self,
        agent: &str,
        item: &str,
        work: Work,
        grant: Option<Arc<RestoreGrant>>,
    ) -> Arc<Counters> {
        let counters = Arc::new(Counters::default());
        self.lock().jobs.insert(
            work.job,
            Remote {
                agent: agent.to_string(),
                item: item.to_string(),
                work,
                counters: counters.clone(),
                grant,
                claimed: false,
                last_report: Instant::now(),
                log_lines: 0,
                accepted: Vec::new(),
                done: None,
            },
        );
        self.offered.notify_waiters();
        counters
    }

    /// What the restore job `job`, running on `agent`, may read.
    pub fn grant(&self, agent: &str, job: i64) -> Result<Arc<RestoreGrant>> {
        let mut inner = self.lock();
        let remote = claimed_by(&mut inner, agent, job)?;
        remote.last_report = Instant::now();
        remote
            .grant
            .clone()
            .ok_or_else(|| Error::Forbidden(format!("job {job} is no restore")))
    }

    /// Waits up to `timeout` for a change of job `job`, and says where it
    /// stands.
    pub fn wait(&self, job: i64, timeout: Duration) -> Standing {
        let guard = self.lock();
        let (guard, _) = self
            .changed
            .wait_timeout_while(guard, timeout, |inner| {
                inner.jobs.get(&job).is_some_and(|r| r.done.is_none())
            })
            .unwrap_or_else(|p| p.into_inner());
        let mut inner = guard;
        match inner.jobs.get(&job) {
            None => Standing::Gone,
            Some(r) if r.done.is_some() => match inner.jobs.remove(&job) {
                Some(Remote {
                    done: Some(done),
                    accepted,
                    ..
                }) => Standing::Done(Box::new(done), accepted),
                _ => Standing::Gone,
            },
            Some(r) if r.claimed => Standing::Running(r.last_report.elapsed()),
            Some(_) => Standing::Unclaimed,
        }
    }

    /// Forgets a job (its runner gave up on it or it was cancelled before
    /// the agent took it). Returns whether the agent had claimed it.
    pub fn withdraw(&self, job: i64) -> bool {
        self.lock().jobs.remove(&job).is_some_and(|r| r.claimed)
    }

    /// The next job offered to `agent`, now claimed by it.
    pub fn take(&self, agent: &str) -> Option<Work> {
        let mut inner = self.lock();
        let next = inner
            .jobs
            .values_mut()
            .filter(|r| r.agent == agent && !r.claimed)
            .min_by_key(|r| r.work.job)?;
        next.claimed = true;
        next.last_report = Instant::now();
        let work = next.work.clone();
        drop(inner);
        self.changed.notify_all();
        Some(work)
    }

    /// Counts a poll of `agent` as open until the guard is dropped.
    pub fn polling(&self, agent: &str) -> Polling<'_> {
        *self.lock().polling.entry(agent.to_string()).or_default() += 1;
        Polling {
            hub: self,
            agent: agent.to_string(),
        }
    }

    /// Whether `agent` is waiting in a poll or running a job now.
    pub fn in_contact(&self, agent: &str) -> bool {
        let inner = self.lock();
        inner.polling.contains_key(agent)
            || inner
                .jobs
                .values()
                .any(|r| r.agent == agent && r.claimed && r.done.is_none())
    }

    /// Waits until work may have been offered, or `timeout`.
    pub async fn offered(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.offered.notified()).await;
    }

    /// Takes an agent's report on its job; answers whether to stop. The
    /// log lines are returned for the caller to record (bounded).
    pub fn report(
        &self,
        agent: &str,
        job: i64,
        report: WorkProgress,
    ) -> Result<(bool, Vec<(String, String)>)> {
        let mut inner = self.lock();
        let remote = claimed_by(&mut inner, agent, job)?;
        let p = &remote.counters;
        p.files.store(report.files, Ordering::Relaxed);
        p.bytes_read.store(report.bytes_read, Ordering::Relaxed);
        p.bytes_new.store(report.bytes_new, Ordering::Relaxed);
        p.bytes_stored.store(report.bytes_stored, Ordering::Relaxed);
        p.bytes_written
            .store(report.bytes_written, Ordering::Relaxed);
        p.errors.store(report.errors, Ordering::Relaxed);
        remote.last_report = Instant::now();
        let room = MAX_LOG_LINES.saturating_sub(remote.log_lines);
        let lines: Vec<(String, String)> = report
            .log
            .into_iter()
            .take(room)
            .map(|(level, message)| {
                let level = match level.as_str() {
                    "error" | "warn" | "info" => level,
                    _ => "info".to_string(),
                };
                (level, message.chars().take(MAX_LOG_CHARS).collect())
            })
            .collect();
        remote.log_lines += lines.len();
        Ok((p.cancel.load(Ordering::Relaxed), lines))
    }

    /// Takes the end of an agent's job.
    pub fn finish(&self, agent: &str, job: i64, done: WorkDone) -> Result<()> {
        let mut inner = self.lock();
        let remote = claimed_by(&mut inner, agent, job)?;
        remote.done = Some(done);
        drop(inner);
        self.changed.notify_all();
        Ok(())
    }

    /// The backup `agent` runs now, which is when it may upload.
    pub fn running_job_of(&self, agent: &str) -> Option<(i64, String)> {
        self.lock()
            .jobs
            .values()
            .find(|r| r.agent == agent && r.claimed && r.done.is_none() && r.grant.is_none())
            .map(|r| (r.work.job, r.item.clone()))
    }

    /// Records a point the service is about to store for `agent`: it must
    /// be of the item of the agent's running job.
    /// `stored` says the vault has this point already: then it is this
    /// job's own point sent again (an answer lost on the way), or a replay
    /// of an older one, which is refused, since the job would otherwise
    /// count an old point as its own.
    pub fn accept_point(
        &self,
        agent: &str,
        id: ObjectId,
        manifest: &Manifest,
        stored: bool,
    ) -> Result<()> {
        let mut inner = self.lock();
        let Some(remote) = inner
            .jobs
            .values_mut()
            .find(|r| r.agent == agent && r.claimed && r.done.is_none() && r.grant.is_none())
        else {
            return Err(no_job(agent));
        };
        if manifest.item != remote.item {
            return Err(Error::Forbidden(format!(
                "agent {agent} sent a point of item {:?} while backing up {}: refused (an agent adds points only for the item it is backing up)",
                manifest.item, remote.item
            )));
        }
        remote.last_report = Instant::now();
        if remote.accepted.iter().any(|(known, _)| *known == id) {
            return Ok(());
        }
        if stored {
            return Err(Error::Forbidden(format!(
                "agent {agent} sent point {} again, which the vault has from before this job: a replayed upload is not a new backup",
                &id.to_hex()[..16]
            )));
        }
        remote.accepted.push((id, manifest.clone()));
        Ok(())
    }
}

fn no_job(agent: &str) -> Error {
    Error::Forbidden(format!(
        "agent {agent} has no job running: the service accepts an agent's uploads only while it runs a job the service gave it"
    ))
}

fn claimed_by<'a>(inner: &'a mut Inner, agent: &str, job: i64) -> Result<&'a mut Remote> {
    match inner.jobs.get_mut(&job) {
        Some(r) if r.agent == agent && r.claimed && r.done.is_none() => Ok(r),
        _ => Err(Error::NotFound(format!(
            "job {job} running on agent {agent} (it ended, was cancelled, or is another agent's)"
        ))),
    }
}

/// How long an opened vault serves agents before it is opened afresh (a
/// rotated key or a revoked credential is noticed within this time; a
/// removed or disabled agent is refused at once by authentication).
const KEEP_OPEN: Duration = Duration::from_secs(60);

/// Vaults opened for agents.
#[derive(Default)]
pub struct OpenVaults(Mutex<HashMap<String, (Instant, Arc<Vault>)>>);

impl OpenVaults {
    /// The vault `name`, opened by `open` when it is not kept or has been
    /// kept for too long.
    pub fn get(&self, name: &str, open: impl FnOnce() -> Result<Vault>) -> Result<Arc<Vault>> {
        if let Ok(map) = self.0.lock() {
            if let Some((at, v)) = map.get(name) {
                if at.elapsed() < KEEP_OPEN {
                    return Ok(v.clone());
                }
            }
        }
        let vault = Arc::new(open()?);
        if let Ok(mut map) = self.0.lock() {
            map.insert(name.to_string(), (Instant::now(), vault.clone()));
        }
        Ok(vault)
    }
}
