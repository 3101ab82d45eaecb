//! Child processes of items: dump tools, commands and scripts.
//!
//! Every child runs in its own process group, so a timeout or a cancelled
//! backup kills the whole pipeline a shell started, not only the shell.
//! Standard error is kept (its last few KiB) to explain a failure. A child's
//! standard output is read through [`ChildOutput`], which turns a non-zero
//! exit into a read error at the end of the stream: the engine then commits
//! nothing, since a dump that ended badly is not a recovery point.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// How much of a child's standard error is kept for the message.
const STDERR_TAIL: usize = 4096;

/// Variables a child keeps from the service's environment: where programs
/// and files are, the locale and the time zone, and where libpq finds its
/// password and service files. Nothing else passes, so the service's own
/// secrets (`COFFER_SERVICE_SECRET`, `COFFER_ADMIN_PASSWORD`, storage
/// credentials, `PGPASSWORD`) never reach an item's program.
pub const INHERITED_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "LC_MESSAGES",
    "TZ",
    "TMPDIR",
    "PGPASSFILE",
    "PGSERVICEFILE",
    "PGSYSCONFDIR",
];

/// A program to run for an item: its own process group and an environment
/// of [`INHERITED_ENV`] only; callers add what the program needs.
pub fn program(path: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = Command::new(path);
    c.env_clear();
    for name in INHERITED_ENV {
        if let Some(value) = std::env::var_os(name) {
            c.env(name, value);
        }
    }
    if std::env::var_os("PATH").is_none() {
        c.env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        );
    }
    c.process_group(0);
    c
}

/// A command run through `sh -c`, as a [`program`].
pub fn shell(script: &str) -> Command {
    let mut c = program("sh");
    c.arg("-c").arg(script);
    c
}

/// Marks a command to run in its own process group.
pub fn own_group(c: &mut Command) -> &mut Command {
    c.process_group(0)
}

/// Kills a child's whole process group.
fn kill_group(child: &Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// Collects the end of a child's standard error on a thread of its own, so
/// a chatty child never blocks on a full pipe.
pub struct StderrTail {
    text: Arc<Mutex<Vec<u8>>>,
    thread: Option<JoinHandle<()>>,
}

impl StderrTail {
    pub fn start(stderr: Option<ChildStderr>) -> Self {
        let text = Arc::new(Mutex::new(Vec::new()));
        let thread = stderr.map(|mut err| {
            let text = text.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = err.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    if let Ok(mut t) = text.lock() {
                        t.extend_from_slice(&buf[..n]);
                        if t.len() > 2 * STDERR_TAIL {
                            let cut = t.len() - STDERR_TAIL;
                            t.drain(..cut);
                        }
                    }
                }
            })
        });
        StderrTail { text, thread }
    }

    /// The last lines the child wrote. A background process the child left
    /// may hold standard error open for ever, so this waits a moment for
    /// the end of the pipe and then takes what came.
    pub fn finish(mut self) -> String {
        if let Some(t) = self.thread.take() {
            let deadline = Instant::now() + Duration::from_secs(2);
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
        let text = self.text.lock().map(|t| t.clone()).unwrap_or_default();
        let start = text.len().saturating_sub(STDERR_TAIL);
        String::from_utf8_lossy(&text[start..]).trim().to_string()
    }
}

/// Why a child failed, in one line: its exit and what it said.
pub fn describe(status: ExitStatus, stderr: &str) -> String {
    let how = match status.code() {
        Some(code) => format!("exited with status {code}"),
        None => "was killed by a signal".to_string(),
    };
    let said = stderr.lines().rev().find(|l| !l.trim().is_empty());
    match said {
        Some(line) => format!("{how}: {}", line.trim()),
        None => how,
    }
}

/// A child's standard output as a reader; see the module documentation.
pub struct ChildOutput {
    child: Option<Child>,
    stdout: std::process::ChildStdout,
    stderr: Option<StderrTail>,
    what: String,
}

impl ChildOutput {
    /// Starts `cmd` with its output piped. `what` names it in errors.
    pub fn spawn(mut cmd: Command, what: &str) -> std::io::Result<Self> {
        own_group(&mut cmd);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| std::io::Error::new(e.kind(), format!("cannot start {what}: {e}")))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other(format!("{what} has no output pipe")))?;
        let stderr = Some(StderrTail::start(child.stderr.take()));
        Ok(ChildOutput {
            child: Some(child),
            stdout,
            stderr,
            what: what.to_string(),
        })
    }

    fn finish(&mut self) -> std::io::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let status = child.wait()?;
        let said = self
            .stderr
            .take()
            .map(StderrTail::finish)
            .unwrap_or_default();
        if status.success() {
            Ok(())
        } else {
            Err(std::io::Error::other(format!(
                "{} {}",
                self.what,
                describe(status, &said)
            )))
        }
    }
}

impl Read for ChildOutput {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.stdout.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.finish()?;
        }
        Ok(n)
    }
}

impl Drop for ChildOutput {
    fn drop(&mut self) {
        // Dropped before the end: the backup stopped (cancel, vault error).
        if let Some(mut child) = self.child.take() {
            kill_group(&child);
            let _ = child.wait();
        }
    }
}

/// Runs `cmd` to its end, killing it after `timeout`; returns the failure
/// in one line.
pub fn run_with_timeout(mut cmd: Command, what: &str, timeout: Duration) -> Result<(), String> {
    own_group(&mut cmd);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {what}: {e}"))?;
    let tail = StderrTail::start(child.stderr.take());
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let said = tail.finish();
                return if status.success() {
                    Ok(())
                } else {
                    Err(format!("{what} {}", describe(status, &said)))
                };
            }
            Ok(None) if Instant::now() >= deadline => {
                kill_group(&child);
                let _ = child.wait();
                return Err(format!(
                    "{what} did not finish within {} s and was stopped",
                    timeout.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("cannot wait for {what}: {e}")),
        }
    }
}

/// Runs `cmd` with `feed` writing its standard input, and waits for it.
pub fn run_fed(
    mut cmd: Command,
    what: &str,
    feed: impl FnOnce(&mut dyn std::io::Write) -> Result<(), String>,
) -> Result<(), String> {
    own_group(&mut cmd);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {what}: {e}"))?;
    let tail = StderrTail::start(child.stderr.take());
    let fed = match child.stdin.take() {
        Some(mut stdin) => feed(&mut stdin),
        None => Err(format!("{what} has no input pipe")),
    };
    // Closing standard input (dropped above) lets the child finish.
    let status = child
        .wait()
        .map_err(|e| format!("cannot wait for {what}: {e}"))?;
    let said = tail.finish();
    if !status.success() {
        return Err(format!("{what} {}", describe(status, &said)));
    }
    fed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_sees_only_the_inherited_variables() {
        let out = shell("env").output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        for line in text.lines() {
            let name = line.split('=').next().unwrap();
            // sh itself sets a few of its own.
            let own = ["PWD", "SHLVL", "_", "OLDPWD"].contains(&name);
            assert!(
                own || INHERITED_ENV.contains(&name),
                "{name} reached the child"
            );
        }
        assert!(text.contains("PATH="));
    }

    #[test]
    fn a_failing_child_fails_its_stream_at_the_end() {
        let mut out = ChildOutput::spawn(
            shell("printf 'partial dump'; echo 'disk full' >&2; exit 3"),
            "the dump",
        )
        .unwrap();
        let mut text = Vec::new();
        let err = out.read_to_end(&mut text).unwrap_err();
        assert_eq!(text, b"partial dump");
        let msg = err.to_string();
        assert!(
            msg.contains("status 3") && msg.contains("disk full"),
            "{msg}"
        );

        let mut ok = ChildOutput::spawn(shell("printf done"), "the dump").unwrap();
        let mut text = String::new();
        ok.read_to_string(&mut text).unwrap();
        assert_eq!(text, "done");
    }

    #[test]
    fn a_timeout_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("late");
        let script = format!("(sleep 2; touch {}) & sleep 5", marker.display());
        let started = Instant::now();
        let err =
            run_with_timeout(shell(&script), "the script", Duration::from_millis(300)).unwrap_err();
        assert!(err.contains("did not finish within"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(2));
        std::thread::sleep(Duration::from_millis(2200));
        assert!(
            !marker.exists(),
            "the background child outlived the timeout"
        );
    }

    #[test]
    fn a_fed_child_reports_its_failure() {
        let err = run_fed(
            shell("cat >/dev/null; echo nope >&2; exit 1"),
            "restore",
            |w| w.write_all(b"data").map_err(|e| e.to_string()),
        )
        .unwrap_err();
        assert!(err.contains("status 1: nope"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        run_fed(shell(&format!("cat > {}", out.display())), "restore", |w| {
            w.write_all(b"data").map_err(|e| e.to_string())
        })
        .unwrap();
        assert_eq!(std::fs::read(out).unwrap(), b"data");
    }
}
