//! Pre and post scripts: what makes a point application-consistent.
//!
//! The pre script quiesces the application (flush, freeze, lock), the post
//! script lets it go again. Each runs through `sh -c` with a timeout and a
//! number of retries; the pre script's failure either stops the backup or,
//! with `continue_on_failure`, lets it go on as crash-consistent. Once a pre
//! script has run, the post script runs whatever happened in between, so an
//! application is never left frozen.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::process::{run_with_timeout, shell};

/// The longest a script may run (as Azure Backup allows).
pub const MAX_TIMEOUT_SECS: u64 = 1800;

/// A script run before or after an item's backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Hook {
    /// Shell command line, run with `sh -c`.
    pub command: String,
    /// Seconds before it is stopped (1–1800, default 300).
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// How many more times it is tried after a failure (0–5).
    #[serde(default)]
    pub retries: u32,
    /// Go on with the backup (crash-consistent) when the script fails.
    #[serde(default)]
    pub continue_on_failure: bool,
}

fn default_timeout() -> u64 {
    300
}

impl Hook {
    /// Checks the settings; the error names what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.command.trim().is_empty() {
            return Err("the script's command is empty".into());
        }
        if self.timeout_secs == 0 || self.timeout_secs > MAX_TIMEOUT_SECS {
            return Err(format!(
                "timeout_secs must be 1 to {MAX_TIMEOUT_SECS}, not {}",
                self.timeout_secs
            ));
        }
        if self.retries > 5 {
            return Err(format!("retries must be 0 to 5, not {}", self.retries));
        }
        Ok(())
    }

    /// Runs the script, retrying as configured. `phase` is `pre` or `post`;
    /// the script sees it and the item's name in its environment.
    pub fn run(&self, item: &str, phase: &str) -> Result<(), String> {
        let mut last = String::new();
        for attempt in 0..=self.retries {
            if attempt > 0 {
                tracing::warn!(item, phase, attempt, "retrying the {phase} script: {last}");
                std::thread::sleep(Duration::from_secs(1));
            }
            let mut cmd = shell(&self.command);
            cmd.env("COFFER_ITEM", item).env("COFFER_PHASE", phase);
            match run_with_timeout(
                cmd,
                &format!("the {phase} script"),
                Duration::from_secs(self.timeout_secs),
            ) {
                Ok(()) => return Ok(()),
                Err(e) => last = e,
            }
        }
        if self.retries > 0 {
            last = format!("{last} (tried {} times)", self.retries + 1);
        }
        Err(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(command: &str) -> Hook {
        Hook {
            command: command.into(),
            timeout_secs: 5,
            retries: 0,
            continue_on_failure: false,
        }
    }

    #[test]
    fn retries_until_the_script_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        let count = dir.path().join("count");
        // Fails twice, then succeeds; it sees its item and phase.
        let script = format!(
            "echo x >> {c}; test \"$COFFER_ITEM/$COFFER_PHASE\" = db/pre && test $(wc -l < {c}) -ge 3",
            c = count.display()
        );
        let mut h = hook(&script);
        h.retries = 1;
        let err = h.run("db", "pre").unwrap_err();
        assert!(err.contains("tried 2 times"), "{err}");
        std::fs::remove_file(&count).unwrap();
        h.retries = 2;
        h.run("db", "pre").unwrap();
        assert_eq!(std::fs::read_to_string(&count).unwrap().lines().count(), 3);
    }

    #[test]
    fn settings_are_checked() {
        assert!(hook("true").validate().is_ok());
        let mut h = hook("true");
        h.timeout_secs = 1801;
        assert!(h.validate().unwrap_err().contains("1 to 1800"));
        assert!(hook(" ").validate().is_err());
    }
}
