//! The health of the fleet, looked at by the scheduler at every tick: an
//! enabled agent out of contact for longer than `agent_unreachable_secs`
//! raises one "agent unreachable" alert per vault (naming every such
//! agent), resolved once they are all back. A backup that could not run
//! because its agent was out of reach is owed: the job is recorded as
//! failed (missed), and one backup runs as soon as the agent is back in
//! contact, however many runs were missed meanwhile.

use std::collections::BTreeMap;

use crate::alerts::{self, Cause};
use crate::error::Result;
use crate::jobs::Jobs;
use crate::state::State;

const OWED_PREFIX: &str = "agent_owed:";

/// Notes that `item` missed a backup because its agent was out of reach.
pub fn owe(state: &State, item: &str) -> Result<()> {
    state.db.set_setting(&format!("{OWED_PREFIX}{item}"), "1")
}

/// One look at the fleet; returns the jobs queued for owed backups.
pub fn tick(state: &State, jobs: &Jobs) -> Result<Vec<i64>> {
    let after = state.config.agent_unreachable_secs as i64;
    let agents = crate::agents::list(state, None, after)?;
    let mut by_vault: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for a in &agents {
        let entry = by_vault.entry(a.vault.as_str()).or_default();
        if a.unreachable && a.state == coffer_api_types::agent::AgentState::Enabled {
            entry.push(a.name.as_str());
        }
    }
    for (vault, unreachable) in &by_vault {
        if unreachable.is_empty() {
            for alert in alerts::resolve_cause_for_vault(&state.db, vault, Cause::AgentUnreachable)?
            {
                state.notify_alert(&alert, crate::notify::EventType::AlertResolved);
            }
        } else {
            state.raise_alert(
                Cause::AgentUnreachable,
                Some(vault),
                None,
                &format!(
                    "agent(s) {} of vault {vault} have not been in contact for more than {after} s; their backups are missed until they are back",
                    unreachable.join(", ")
                ),
                None,
            )?;
        }
    }
    let mut queued = Vec::new();
    for a in agents.iter().filter(|a| !a.unreachable) {
        for item in &a.items {
            let key = format!("{OWED_PREFIX}{item}");
            if state.db.setting(&key)?.is_none() {
                continue;
            }
            let job = match jobs.enqueue_backup(state, item, "missed", None, 1, 0) {
                Ok(job) => Some(job.id),
                // A retry of the failed run is waiting: it runs now instead.
                Err(crate::error::Error::Conflict(_)) => jobs.hurry_retry(state, item)?,
                Err(e) => return Err(e),
            };
            if let Some(id) = job {
                let _ = jobs.log(
                    &state.db,
                    id,
                    "info",
                    &format!(
                        "agent {} is back in contact: running the backup it missed",
                        a.name
                    ),
                );
                queued.push(id);
                state.db.delete_setting(&key)?;
            }
        }
    }
    Ok(queued)
}
