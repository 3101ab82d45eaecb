//! A running job's reports to the service: every two seconds its counters
//! and the log lines since the last report; the answer carries the
//! service's cancel flag back to the job. Backups and restores on the
//! agent both report through here.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use coffer_api_types::agent::{ProgressAnswer, WorkProgress};
use coffer_engine::backup::Progress;

use crate::client::Client;

/// How often a running job reports.
const REPORT_EVERY: Duration = Duration::from_secs(2);

/// The counters a job keeps: a backup's or a restore's.
pub enum Counted {
    Backup(Arc<Progress>),
    Restore(Arc<coffer_engine::restore::RestoreProgress>),
}

impl Counted {
    fn report(&self, log: Vec<(String, String)>) -> WorkProgress {
        let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        match self {
            Counted::Backup(p) => WorkProgress {
                files: get(&p.files),
                bytes_read: get(&p.bytes_read),
                bytes_new: get(&p.bytes_new),
                bytes_stored: get(&p.bytes_stored),
                bytes_written: 0,
                errors: get(&p.errors),
                log,
            },
            Counted::Restore(p) => WorkProgress {
                files: get(&p.files),
                bytes_written: get(&p.bytes_written),
                log,
                ..Default::default()
            },
        }
    }

    fn cancel(&self) {
        match self {
            Counted::Backup(p) => p.cancel.store(true, Ordering::Relaxed),
            Counted::Restore(p) => p.cancel.store(true, Ordering::Relaxed),
        }
    }
}

/// Sends a job's counters and log lines every two seconds, and sets the
/// cancel flag when the service says so.
pub struct Reporter {
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Reporter {
    pub fn start(
        client: Client,
        job: i64,
        progress: Counted,
        lines: mpsc::Receiver<(String, String)>,
    ) -> Reporter {
        let done = Arc::new(AtomicBool::new(false));
        let finished = done.clone();
        let thread = std::thread::Builder::new()
            .name("coffer-agent-report".into())
            .spawn(move || loop {
                let last = finished.load(Ordering::SeqCst);
                let report = progress.report(lines.try_iter().collect());
                match client
                    .post::<_, ProgressAnswer>(&format!("/agent/jobs/{job}/progress"), &report)
                {
                    Ok(a) if a.cancel => progress.cancel(),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(job, error = %e, "cannot report progress"),
                }
                if last {
                    return;
                }
                std::thread::park_timeout(REPORT_EVERY);
            })
            .ok();
        Reporter { done, thread }
    }

    /// Sends the last report and stops.
    pub fn finish(mut self) {
        self.done.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}
