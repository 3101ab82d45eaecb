//! The running service: its [`State`] with the parts that act on it, the
//! job table with its runners and the scheduler. This is the top of the
//! crate's modules: the state, the jobs and the scheduler each get what they
//! need as arguments, so none of them names the service that owns them.
//!
//! A `Service` reads as its state (`service.db`, `service.open_vault(…)`),
//! which is what the API mostly wants; it adds the job table and the
//! scheduler, and the background tasks that drive them.

use std::sync::Arc;

use crate::config::ServiceConfig;
use crate::error::Result;
use crate::jobs::Jobs;
use crate::scheduler::Scheduler;
use crate::state::State;

/// The running service.
pub struct Service {
    pub state: Arc<State>,
    pub jobs: Arc<Jobs>,
    pub scheduler: Arc<Scheduler>,
}

impl std::ops::Deref for Service {
    type Target = State;

    fn deref(&self) -> &State {
        &self.state
    }
}

impl Service {
    /// Opens the data directory (see [`State::open`]) and settles the jobs
    /// a previous run left behind.
    pub fn open(config: ServiceConfig) -> Result<Arc<Service>> {
        let state = Arc::new(State::open(config)?);
        let jobs = Arc::new(Jobs::new(crate::runners::run_job));
        jobs.recover_after_restart(&state)?;
        Ok(Arc::new(Service {
            state,
            jobs,
            scheduler: Arc::new(Scheduler::new()),
        }))
    }

    /// Starts the job dispatcher, the scheduler and the notifier on the
    /// current runtime; they run until the process ends.
    pub fn start_background(&self) {
        tokio::spawn(Jobs::dispatch(self.jobs.clone(), self.state.clone()));
        tokio::spawn(
            self.scheduler
                .clone()
                .run(self.state.clone(), self.jobs.clone()),
        );
        tokio::spawn(crate::notify::run_notifier(self.state.clone()));
    }
}
