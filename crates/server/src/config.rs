//! The service's settings: embedded defaults, then `coffer.toml` in the data
//! directory (or a file given with `--config`), then the environment. Every
//! setting has a default, so `coffer serve` starts with none of them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

/// Where the service listens and how much it runs at once.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceConfig {
    /// State (SQLite), the service secret and the vault cache live here.
    pub data_dir: PathBuf,
    /// HTTP address. The default serves only this machine.
    pub listen: SocketAddr,
    /// PEM certificate chain and key; both or neither.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Whether scheduled runs start; off keeps every setting.
    pub scheduler: bool,
    /// Seconds between the scheduler's looks at the clock.
    pub scheduler_tick_secs: u64,
    /// Jobs running at once, over all vaults.
    pub max_jobs: usize,
    /// Jobs running at once against one vault.
    pub max_jobs_per_vault: usize,
    /// Failed logins of one user name within `login_window_secs` after
    /// which further attempts are refused until the window has passed.
    pub login_max_failures: u32,
    pub login_window_secs: u64,
    /// Failed logins (any name) within the window that raise a security alert.
    pub login_alert_threshold: u32,
    /// How long a console session lasts.
    pub session_hours: u64,
    /// Directories under which users who are not administrators may
    /// restore (see `targets`); unset means `<data_dir>/restores`, an empty
    /// list means nowhere.
    pub restore_roots: Option<Vec<PathBuf>>,
    /// A bearer token that may read `/metrics` (a Prometheus scraper);
    /// without it only administrators may. `COFFER_METRICS_TOKEN` wins.
    pub metrics_token: Option<String>,
    /// Without `tls_cert`: serve TLS with a certificate the service makes
    /// for itself on first start (`<data_dir>/tls/`), which agents pin by
    /// its fingerprint.
    pub tls_self_signed: bool,
    /// The address agents are told to reach the service at (in their
    /// registration tokens); default: the scheme and `listen`.
    pub public_url: Option<String>,
    /// Seconds without contact after which an agent is unreachable.
    pub agent_unreachable_secs: u64,
    /// Seconds a job waits for its agent to take it.
    pub agent_claim_secs: u64,
    /// Seconds a running job on an agent may go without a report.
    pub agent_silence_secs: u64,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            data_dir: default_data_dir(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8420)),
            tls_cert: None,
            tls_key: None,
            scheduler: true,
            scheduler_tick_secs: 30,
            max_jobs: 2,
            max_jobs_per_vault: 1,
            login_max_failures: 5,
            login_window_secs: 300,
            login_alert_threshold: 10,
            session_hours: 12,
            restore_roots: None,
            metrics_token: None,
            tls_self_signed: false,
            public_url: None,
            agent_unreachable_secs: 600,
            agent_claim_secs: 120,
            agent_silence_secs: 120,
        }
    }
}

/// `$COFFER_DATA_DIR`, else `$XDG_DATA_HOME/coffer`, else `~/.local/share/coffer`.
fn default_data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("COFFER_DATA_DIR") {
        return PathBuf::from(d);
    }
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("/var/lib"))
        .join("coffer")
}

impl ServiceConfig {
    /// Defaults, overlaid with `file` (or `coffer.toml` in the data
    /// directory when it exists), then with `COFFER_LISTEN`.
    pub fn load(given_dir: Option<&Path>, file: Option<&Path>) -> Result<Self> {
        let data_dir = given_dir
            .map(Path::to_path_buf)
            .unwrap_or_else(default_data_dir);
        let implicit = data_dir.join("coffer.toml");
        let path = match file {
            Some(f) => Some(f.to_path_buf()),
            None => implicit.exists().then_some(implicit),
        };
        let mut config = match &path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| Error::io(p, e))?;
                toml::from_str::<ServiceConfig>(&text)
                    .map_err(|e| Error::Config(format!("{}: {}", p.display(), e.message())))?
            }
            None => ServiceConfig::default(),
        };
        // A data directory given on the command line wins over the file's.
        if let Some(d) = given_dir {
            config.data_dir = d.to_path_buf();
        }
        if let Ok(listen) = std::env::var("COFFER_LISTEN") {
            config.listen = listen.parse().map_err(|_| {
                Error::Config(format!(
                    "COFFER_LISTEN={listen:?} is not an address: write it as IP:PORT, for example 127.0.0.1:8420"
                ))
            })?;
        }
        if let Ok(token) = std::env::var("COFFER_METRICS_TOKEN") {
            config.metrics_token = Some(token);
        }
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<()> {
        if let Some(bad) = self
            .restore_roots
            .iter()
            .flatten()
            .find(|r| !r.is_absolute())
        {
            return Err(Error::Config(format!(
                "restore_roots: {} is not an absolute path",
                bad.display()
            )));
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(Error::Config(
                "give both tls_cert and tls_key, or neither".into(),
            ));
        }
        if self.max_jobs == 0 || self.max_jobs_per_vault == 0 {
            return Err(Error::Config(
                "max_jobs and max_jobs_per_vault must be at least 1".into(),
            ));
        }
        if self.scheduler_tick_secs == 0 {
            return Err(Error::Config(
                "scheduler_tick_secs must be at least 1".into(),
            ));
        }
        Ok(())
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("state.sqlite")
    }

    /// Where restores by users who are not administrators may go.
    pub fn restore_roots(&self) -> Vec<PathBuf> {
        self.restore_roots
            .clone()
            .unwrap_or_else(|| vec![self.default_restore_root()])
    }

    /// The restore root used when none is configured.
    pub fn default_restore_root(&self) -> PathBuf {
        self.data_dir.join("restores")
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.data_dir.join("cache")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_file_overrides_defaults_and_rejects_unknown_settings() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:9999\"\nmax_jobs = 4\n").unwrap();
        let c = ServiceConfig::load(Some(dir.path()), Some(&file)).unwrap();
        assert_eq!(c.listen.port(), 9999);
        assert_eq!(c.max_jobs, 4);
        assert_eq!(c.max_jobs_per_vault, 1);
        assert_eq!(c.data_dir, dir.path());

        std::fs::write(&file, "max_job = 4\n").unwrap();
        let e = ServiceConfig::load(Some(dir.path()), Some(&file)).unwrap_err();
        assert!(e.to_string().contains("max_job"), "{e}");

        std::fs::write(&file, "tls_cert = \"/x.pem\"\n").unwrap();
        let e = ServiceConfig::load(Some(dir.path()), Some(&file)).unwrap_err();
        assert!(e.to_string().contains("tls_key"), "{e}");
    }
}
