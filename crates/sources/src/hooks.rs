//! Pre and post scripts: what makes a point application-consistent.
//!
//! The pre script quiesces the application (flush, freeze, lock), the post
//! script lets it go again. Each runs through `sh -c` with a timeout and a
//! number of retries; the pre script's failure either stops the backup or,
//! with `continue_on_failure`, lets it go on as crash-consistent. Once a pre
//! script has run, the post script runs whatever happened in between, so an
//! application is never left frozen.

use std::time::Duration;

pub use coffer_api_types::item::{Hook, MAX_TIMEOUT_SECS};

use crate::process::{run_with_timeout, shell};

/// Runs the script, retrying as configured. `phase` is `pre` or `post`;
/// the script sees it and the item's name in its environment.
pub fn run(hook: &Hook, item: &str, phase: &str) -> Result<(), String> {
    let mut last = String::new();
    for attempt in 0..=hook.retries {
        if attempt > 0 {
            tracing::warn!(item, phase, attempt, "retrying the {phase} script: {last}");
            std::thread::sleep(Duration::from_secs(1));
        }
        let mut cmd = shell(&hook.command);
        cmd.env("COFFER_ITEM", item).env("COFFER_PHASE", phase);
        match run_with_timeout(
            cmd,
            &format!("the {phase} script"),
            Duration::from_secs(hook.timeout_secs),
        ) {
            Ok(()) => return Ok(()),
            Err(e) => last = e,
        }
    }
    if hook.retries > 0 {
        last = format!("{last} (tried {} times)", hook.retries + 1);
    }
    Err(last)
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
        let err = run(&h, "db", "pre").unwrap_err();
        assert!(err.contains("tried 2 times"), "{err}");
        std::fs::remove_file(&count).unwrap();
        h.retries = 2;
        run(&h, "db", "pre").unwrap();
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
