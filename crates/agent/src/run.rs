//! Registering a host, and the agent's loop: ask the service for work (a
//! poll the service holds open until a job comes or 25 s pass), run it,
//! report progress every two seconds (the answer says whether to stop)
//! and the end. Outages are ridden out with growing pauses; a removed
//! agent stops with the service's message, a disabled one waits to be
//! enabled again.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use coffer_api_types::agent::{
    HostFacts, PollAnswer, PollRequest, RegisterRequest, Registered, RegistrationText, Task, Work,
    WorkDone,
};
use coffer_api_types::ErrorCode;
use coffer_engine::backup::{BackupOptions, Progress};
use coffer_engine::credential::WriterCredential;
use coffer_engine::writer::WriteOnlyVault;
use coffer_engine::Storage;
use coffer_sources::ItemDef;

use crate::client::{Client, Endpoint};
use crate::error::{Error, Result};
use crate::identity::Identity;
use crate::report::{Counted, Reporter};
use crate::store::ServiceStore;

const POLL_WAIT_SECS: u64 = 25;

/// What `coffer agent register` is given.
pub struct Registration {
    pub token: String,
    /// The service's address, when it differs from the token's (a NAT).
    pub url: Option<String>,
    pub name: Option<String>,
    pub state_dir: PathBuf,
    pub allow_commands: bool,
    pub allow_plain_http: bool,
}

/// What this host says of itself.
pub fn host_facts() -> HostFacts {
    let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let pretty = os_release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| std::env::consts::OS.to_string());
    HostFacts {
        hostname: coffer_engine::host::hostname(),
        os: format!("{pretty}, {}", std::env::consts::ARCH),
        version: env!("CARGO_PKG_VERSION").to_string(),
    }
}

/// Registers this host and keeps its identity in the state directory.
pub fn register(r: &Registration) -> Result<Identity> {
    let token = RegistrationText::parse(&r.token).ok_or_else(|| {
        Error::Invalid(
            "that is not a registration token: it starts with coffer-register:v1: (`coffer agent token create` prints one)".into(),
        )
    })?;
    if Identity::exists(&r.state_dir) {
        let existing = Identity::load(&r.state_dir)?;
        return Err(Error::Invalid(format!(
            "{} holds the identity of agent {} already: remove that agent first, or register into another --state-dir",
            r.state_dir.display(),
            existing.name
        )));
    }
    let endpoint = Endpoint {
        url: r.url.clone().unwrap_or_else(|| token.url.clone()),
        fingerprint: token.fingerprint.clone(),
        allow_plain_http: r.allow_plain_http,
    };
    let client = Client::new(&endpoint, None)?;
    let registered: Registered = client.post(
        "/agent/register",
        &RegisterRequest {
            token: token.secret.clone(),
            name: r.name.clone(),
            host: host_facts(),
        },
    )?;
    let identity = Identity {
        url: endpoint.url,
        fingerprint: endpoint.fingerprint,
        name: registered.name,
        vault: registered.vault,
        secret: registered.secret,
        credential: registered.credential,
        allow_commands: r.allow_commands,
    };
    identity.save(&r.state_dir)?;
    Ok(identity)
}

/// A registered agent at work.
pub struct Agent {
    identity: Identity,
    dir: PathBuf,
    client: Client,
}

impl Agent {
    pub fn open(dir: &Path, allow_plain_http: bool) -> Result<Agent> {
        let identity = Identity::load(dir)?;
        let client = Client::new(
            &Endpoint {
                url: identity.url.clone(),
                fingerprint: identity.fingerprint.clone(),
                allow_plain_http,
            },
            Some(identity.secret.clone()),
        )?;
        Ok(Agent {
            identity,
            dir: dir.to_path_buf(),
            client,
        })
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Works until `stop` is set, or the service says the agent was removed.
    pub fn run(&mut self, stop: &AtomicBool) -> Result<()> {
        tracing::info!(agent = %self.identity.name, service = %self.identity.url, "agent running");
        let mut pause = Duration::from_secs(1);
        let mut said_disabled = false;
        while !stop.load(Ordering::Relaxed) {
            match self.poll() {
                Ok(answer) => {
                    pause = Duration::from_secs(1);
                    said_disabled = false;
                    if let Some(secret) = answer.new_secret {
                        self.take_secret(secret)?;
                    }
                    if let Some(work) = answer.work {
                        self.work(work);
                    }
                }
                Err(
                    e @ Error::Refused {
                        code: ErrorCode::Unauthenticated,
                        ..
                    },
                ) => return Err(e),
                Err(e) => {
                    let disabled = matches!(
                        e,
                        Error::Refused {
                            code: ErrorCode::Forbidden,
                            ..
                        }
                    );
                    if !disabled || !said_disabled {
                        tracing::warn!(error = %e, "cannot take work from the service; trying again");
                    }
                    said_disabled |= disabled;
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(30));
                }
            }
        }
        Ok(())
    }

    fn poll(&self) -> Result<PollAnswer> {
        self.client.post(
            "/agent/poll",
            &PollRequest {
                host: host_facts(),
                wait_secs: POLL_WAIT_SECS,
            },
        )
    }

    /// Keeps the secret a re-key handed out; the old one stops working
    /// at the first call made with it.
    fn take_secret(&mut self, secret: String) -> Result<()> {
        self.identity.secret = secret.clone();
        self.identity.save(&self.dir)?;
        self.client = self.client.with_secret(secret);
        tracing::info!("the service re-keyed this agent; the new secret is kept");
        Ok(())
    }

    fn work(&self, work: Work) {
        let job = work.job;
        let done = match work.task {
            Task::Backup { item, tags, time } => {
                let opts = BackupOptions {
                    tags,
                    time: time.map(|(secs, nanos)| coffer_engine::tree::Timestamp { secs, nanos }),
                    ..Default::default()
                };
                self.back_up(job, &item, &opts)
            }
            Task::Restore {
                point,
                tree,
                item: Some(item),
                paths,
                time_secs,
                time_nanos,
                target,
                overwrite,
                ..
            } => crate::restore::restore_item(
                &self.client,
                self.identity.allow_commands,
                job,
                crate::restore::ItemRestore {
                    point: &point,
                    tree: &tree,
                    paths,
                    time: time_secs.map(|secs| coffer_engine::tree::Timestamp {
                        secs,
                        nanos: time_nanos,
                    }),
                    item: &item,
                    target,
                    overwrite,
                },
            ),
            Task::Restore {
                point,
                tree,
                item: None,
                target,
                includes,
                overwrite,
                ..
            } => self.restore(job, &point, &tree, target, includes, overwrite),
        };
        // The end must arrive: a committed point is the job's result.
        for attempt in 0..5 {
            match self
                .client
                .post_quiet(&format!("/agent/jobs/{job}/done"), &done)
            {
                Ok(()) => return,
                Err(e @ Error::Unreachable { .. }) => {
                    tracing::warn!(job, error = %e, attempt, "cannot report the job's end; trying again");
                    std::thread::sleep(Duration::from_secs(2 << attempt));
                }
                Err(e) => {
                    // The service no longer follows the job (it restarted,
                    // or gave up on it): it runs the job again if it should.
                    tracing::warn!(job, error = %e, "the service did not take the job's end");
                    return;
                }
            }
        }
    }

    fn back_up(
        &self,
        job: i64,
        item: &coffer_api_types::item::Item,
        opts: &BackupOptions,
    ) -> WorkDone {
        let progress = Arc::new(Progress::default());
        let (log, lines) = mpsc::channel();
        let reporter = Reporter::start(
            self.client.clone(),
            job,
            Counted::Backup(progress.clone()),
            lines,
        );
        let _ = log.send((
            "info".to_string(),
            format!(
                "agent {} ({}) backing up {}",
                self.identity.name,
                host_facts().hostname,
                item.name
            ),
        ));
        let outcome = self.capture(item, opts, &progress);
        if let Ok(captured) = &outcome {
            for w in &captured.warnings {
                let _ = log.send(("warn".to_string(), w.clone()));
            }
        }
        drop(log);
        reporter.finish();
        match outcome {
            Ok(captured) => WorkDone::BackedUp {
                summary: captured.report.summary(),
                warnings: captured.warnings,
            },
            Err(_) if progress.cancel.load(Ordering::Relaxed) => WorkDone::Cancelled,
            Err(e) => WorkDone::Failed {
                code: Some(e.code().api_code().to_string()),
                message: e.to_string(),
            },
        }
    }

    fn restore(
        &self,
        job: i64,
        point: &str,
        tree: &str,
        target: String,
        includes: Vec<String>,
        overwrite: bool,
    ) -> WorkDone {
        let Some(root) = coffer_engine::ChunkId::parse(tree) else {
            return WorkDone::Failed {
                code: None,
                message: format!("{tree:?} is not a tree id"),
            };
        };
        let progress = Arc::new(coffer_engine::restore::RestoreProgress::default());
        let (log, lines) = mpsc::channel();
        let reporter = Reporter::start(
            self.client.clone(),
            job,
            Counted::Restore(progress.clone()),
            lines,
        );
        let _ = log.send((
            "info".to_string(),
            format!(
                "agent {} writing point {} under {target}",
                self.identity.name,
                &point[..point.len().min(12)]
            ),
        ));
        let source = crate::restore::ServiceSource {
            client: self.client.clone(),
            job,
        };
        let opts = coffer_engine::restore::RestoreOptions {
            target: target.into(),
            includes: includes.into_iter().map(Into::into).collect(),
            overwrite,
            batch_entries: 0,
        };
        let outcome = coffer_engine::restore::restore_from(
            &source,
            &root,
            &point[..point.len().min(12)],
            &opts,
            &progress,
        );
        drop(log);
        reporter.finish();
        match outcome {
            Ok(report) => WorkDone::Restored {
                summary: coffer_api_types::RestoreSummary {
                    point: point.to_string(),
                    files: report.files,
                    dirs: report.dirs,
                    bytes: report.bytes,
                    bytes_from_local_tier: 0,
                    bytes_from_location: report.bytes,
                    damaged: path_errors(&report.damaged),
                    problems: path_errors(&report.problems),
                },
            },
            Err(_) if progress.cancel.load(Ordering::Relaxed) => WorkDone::Cancelled,
            Err(e) => WorkDone::Failed {
                code: Some(e.code().api_code().to_string()),
                message: e.to_string(),
            },
        }
    }

    fn capture(
        &self,
        item: &coffer_api_types::item::Item,
        opts: &BackupOptions,
        progress: &Progress,
    ) -> Result<coffer_sources::Captured> {
        let def = ItemDef::of_item(item)?;
        if def.runs_commands() && !self.identity.allow_commands {
            return Err(Error::Refused {
                code: ErrorCode::Forbidden,
                message: format!(
                    "item {} runs programs the service names (scripts, a command, PostgreSQL tools from a directory), and this host does not allow that: register it with --allow-commands to let the service's administrators run them here",
                    item.name
                ),
            });
        }
        let credential = WriterCredential::parse(&self.identity.credential)?;
        let storage = Storage::through(
            Arc::new(ServiceStore::new(self.client.clone())),
            &format!(
                "vault {} through {}",
                self.identity.vault, self.identity.url
            ),
        )?;
        let vault = WriteOnlyVault::open(storage, credential, Some(&self.dir.join("cache")))?;
        Ok(coffer_sources::back_up(&vault, &def, opts, progress)?)
    }
}

fn path_errors(list: &[(PathBuf, String)]) -> Vec<coffer_api_types::PathError> {
    list.iter()
        .map(|(path, error)| coffer_api_types::PathError {
            path: path.display().to_string(),
            error: error.clone(),
        })
        .collect()
}
