//! What every command is given: the global options (key, credentials,
//! bandwidth limits, replica, cache, output form) as a [`Ctx`] that finds
//! the key and opens storage and vaults the same way for all of them, and
//! the `--vault` option that names the vault a command acts on.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use coffer_engine::backup::Destination;
use coffer_engine::credential::WriterCredential;
use coffer_engine::storage::Credentials;
use coffer_engine::writer::WriteOnlyVault;
use coffer_engine::{Storage, Vault, VaultKey};

// The options every command accepts (`global`: before or after the command).
#[derive(Args)]
pub(crate) struct GlobalArgs {
    /// Read the vault key from this file (instead of COFFER_KEY or a prompt).
    #[arg(long, global = true, value_name = "FILE")]
    key_file: Option<PathBuf>,
    /// Storage credentials file: NAME=value lines such as
    /// AWS_SECRET_ACCESS_KEY=… (see `coffer location test --help`); values
    /// there win over the same names in the environment.
    #[arg(long, global = true, env = "COFFER_CREDENTIALS", value_name = "FILE")]
    credentials: Option<PathBuf>,
    /// Limit uploads to the storage location to this rate, such as 4M
    /// (MiB per second; K, M, G; a trailing /s is allowed).
    #[arg(long, global = true, env = "COFFER_LIMIT_UPLOAD", value_name = "RATE", value_parser = parse_rate)]
    limit_upload: Option<u64>,
    /// Limit downloads from the storage location to this rate.
    #[arg(long, global = true, env = "COFFER_LIMIT_DOWNLOAD", value_name = "RATE", value_parser = parse_rate)]
    limit_download: Option<u64>,
    /// Read from this replica of the vault instead of its primary location
    /// (restore, check, ls, points list/show, vault info).
    #[arg(long, global = true, value_name = "LOC")]
    from_replica: Option<String>,
    /// Local cache directory (default: the user's cache dir).
    #[arg(long, global = true, env = "COFFER_CACHE_DIR", value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Machine-readable output: JSON listings and JSON progress lines.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Args, Clone)]
pub(crate) struct VaultArg {
    /// The vault's location: a path, or a URL (s3://, azblob://, gcs://,
    /// sftp://, webdav://); secrets come from the environment or
    /// --credentials, never from the location.
    #[arg(long, env = "COFFER_VAULT", value_name = "LOC")]
    pub(crate) vault: String,
}

pub(crate) struct Ctx {
    key_file: Option<PathBuf>,
    credentials: Option<PathBuf>,
    limit_upload: Option<u64>,
    limit_download: Option<u64>,
    from_replica: Option<String>,
    cache_dir: Option<PathBuf>,
    pub(crate) json: bool,
    /// A key typed at the prompt, kept for the rest of the run.
    typed_key: std::sync::OnceLock<zeroize::Zeroizing<String>>,
}

impl Ctx {
    pub(crate) fn new(args: GlobalArgs) -> Self {
        Ctx {
            key_file: args.key_file,
            credentials: args.credentials,
            limit_upload: args.limit_upload,
            limit_download: args.limit_download,
            from_replica: args.from_replica,
            cache_dir: args.cache_dir,
            json: args.json,
            typed_key: std::sync::OnceLock::new(),
        }
    }

    pub(crate) fn key(&self) -> Result<VaultKey> {
        Ok(VaultKey::from_text(&self.key_text()?)?)
    }

    /// The vault key's text: from --key-file, COFFER_KEY or a prompt (asked
    /// once per run, so a recovery that opens and then records the vault
    /// asks only once).
    pub(crate) fn key_text(&self) -> Result<zeroize::Zeroizing<String>> {
        if let Some(file) = &self.key_file {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read the key file {}", file.display()))?;
            return Ok(zeroize::Zeroizing::new(text.trim().to_string()));
        }
        if let Ok(text) = std::env::var("COFFER_KEY") {
            return Ok(zeroize::Zeroizing::new(text.trim().to_string()));
        }
        if let Some(typed) = self.typed_key.get() {
            return Ok(zeroize::Zeroizing::new(typed.to_string()));
        }
        if std::io::stdin().is_terminal() {
            let text = rpassword::prompt_password("Vault key: ")
                .context("cannot read the key from the terminal")?;
            let text = text.trim().to_string();
            let _ = self.typed_key.set(zeroize::Zeroizing::new(text.clone()));
            return Ok(zeroize::Zeroizing::new(text));
        }
        bail!("no vault key given: set COFFER_KEY, pass --key-file FILE, or run on a terminal to be prompted")
    }

    fn cache_root(&self) -> Option<PathBuf> {
        self.cache_dir.clone().or_else(|| {
            std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .map(|d| d.join("coffer"))
        })
    }

    /// Credentials from the file given, then from the environment.
    pub(crate) fn credentials(&self) -> Result<Credentials> {
        let env = Credentials::from_env();
        match &self.credentials {
            Some(file) => Ok(Credentials::from_file(file)
                .with_context(|| format!("cannot use the credentials file {}", file.display()))?
                .or(env)),
            None => Ok(env),
        }
    }

    pub(crate) fn storage(&self, loc: &str) -> Result<Storage> {
        Ok(Storage::open_with(loc, &self.credentials()?)?
            .with_limits(self.limit_upload, self.limit_download))
    }

    /// Opens what a backup writes to: the vault, with a vault key, or the
    /// vault seen through a write-only credential.
    pub(crate) fn open_destination(&self, loc: &str) -> Result<Box<dyn Destination>> {
        let text = self.key_text()?;
        if !WriterCredential::looks_like(&text) {
            return Ok(Box::new(self.open(loc)?));
        }
        if self.from_replica.is_some() {
            bail!("--from-replica is for reading; a write-only credential writes to the vault's primary location");
        }
        let credential = WriterCredential::parse(&text)?;
        let vault =
            WriteOnlyVault::open(self.storage(loc)?, credential, self.cache_root().as_deref())
                .with_context(|| {
                    format!("cannot open the vault at {loc} with the write-only credential")
                })?;
        Ok(Box::new(vault))
    }

    /// Whether the key given is a write-only credential.
    pub(crate) fn has_write_only_credential(&self) -> bool {
        self.key_text()
            .is_ok_and(|t| WriterCredential::looks_like(&t))
    }

    /// Opens a vault for a command that may change it.
    pub(crate) fn open(&self, loc: &str) -> Result<Vault> {
        if self.from_replica.is_some() {
            bail!("--from-replica is for reading (restore, check, ls, points list/show, vault info); changes go to the vault's primary location");
        }
        self.open_at(loc)
    }

    fn open_at(&self, loc: &str) -> Result<Vault> {
        let storage = self.storage(loc)?;
        let key = self.key()?;
        let vault = Vault::open(storage, &key, self.cache_root().as_deref())
            .with_context(|| format!("cannot open the vault at {loc}"))?;
        self.remember_replicas(loc, &vault);
        Ok(vault)
    }

    /// Opens a vault to read it: from `--from-replica` when given, else
    /// from its location, and when that is unavailable from a replica this
    /// machine has seen it with (a warning says so).
    pub(crate) fn open_readable(&self, loc: &str) -> Result<Vault> {
        if let Some(replica) = &self.from_replica {
            eprintln!("warning: reading from the replica {replica}, not from {loc}");
            return self.open_at(replica);
        }
        let replicas = self.known_replicas(loc);
        if !replicas.is_empty() {
            // Storage calls wait out an unreachable service for a while; with
            // a replica at hand, a quick look decides instead.
            let quick = self.storage(loc)?.with_quick_retries();
            if let Err(e @ coffer_engine::Error::Storage { .. }) = quick.size("vault") {
                return self.open_replica(loc, &replicas, anyhow::Error::new(e));
            }
        }
        let err = match self.open_at(loc) {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let unavailable = err.chain().any(|e| {
            matches!(
                e.downcast_ref::<coffer_engine::Error>(),
                Some(coffer_engine::Error::Storage { .. } | coffer_engine::Error::NoVault { .. })
            )
        });
        if !unavailable {
            return Err(err);
        }
        self.open_replica(loc, &replicas, err)
    }

    fn open_replica(&self, loc: &str, replicas: &[String], err: anyhow::Error) -> Result<Vault> {
        for replica in replicas {
            match self.open_at(replica) {
                Ok(v) => {
                    eprintln!("warning: the vault at {loc} is unavailable ({err:#}); reading from its replica {replica}");
                    return Ok(v);
                }
                Err(e) => {
                    tracing::warn!(%replica, error = %format!("{e:#}"), "replica unavailable too")
                }
            }
        }
        Err(err)
    }

    fn replicas_file(&self) -> Option<PathBuf> {
        self.cache_root().map(|c| c.join("replicas.json"))
    }

    /// Replicas this machine has seen, by vault location.
    fn replica_map(&self) -> std::collections::BTreeMap<String, Vec<String>> {
        self.replicas_file()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    fn known_replicas(&self, loc: &str) -> Vec<String> {
        self.replica_map().get(loc).cloned().unwrap_or_default()
    }

    /// Remembers a vault's replicas on this machine, so that reading can
    /// fall back to them when the vault's location is gone (its journal,
    /// which names them, is then gone with it).
    fn remember_replicas(&self, loc: &str, vault: &Vault) {
        let replicas: Vec<String> = vault
            .replica_locations()
            .into_iter()
            .map(|(l, _)| l)
            .collect();
        let mut map = self.replica_map();
        if map
            .get(loc)
            .map_or(replicas.is_empty(), |known| *known == replicas)
        {
            return;
        }
        let Some(file) = self.replicas_file() else {
            return;
        };
        if replicas.is_empty() {
            map.remove(loc);
        } else {
            map.insert(loc.to_string(), replicas);
        }
        let written = file
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| {
                std::fs::write(
                    &file,
                    serde_json::to_string_pretty(&map).unwrap_or_default(),
                )
            });
        if let Err(e) = written {
            tracing::warn!(file = %file.display(), error = %e, "cannot remember the vault's replicas");
        }
    }
}

/// A rate in bytes per second: a number with K, M or G (binary units),
/// optionally followed by B and /s: `512K`, `4M`, `1.5GiB/s`.
fn parse_rate(text: &str) -> Result<u64, String> {
    let t = text.trim().trim_end_matches("/s");
    let t = t.trim_end_matches('B').trim_end_matches('i');
    let (number, unit) = match t.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => (&t[..i], &t[i..]),
        None => (t, ""),
    };
    let scale = match unit.to_ascii_uppercase().as_str() {
        "" => 1.0,
        "K" => 1024.0,
        "M" => 1024.0 * 1024.0,
        "G" => 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?}: use K, M or G (per second)"
            ))
        }
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a rate such as 4M or 512K"))?;
    let bytes = value * scale;
    if !(1.0..1e15).contains(&bytes) {
        return Err(format!(
            "{text:?} is not a usable rate (at least 1 byte per second)"
        ));
    }
    Ok(bytes as u64)
}
