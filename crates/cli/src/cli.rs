//! Command definitions (clap) and their handlers.

use std::ffi::OsStr;
use std::io::IsTerminal;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use coffer_engine::backup::{BackupOptions, Progress};
use coffer_engine::check::ReadData;
use coffer_engine::restore::{RestoreOptions, RestoreProgress};
use coffer_engine::storage::Credentials;
use coffer_engine::tree::{Node, NodeKind};
use coffer_engine::{Storage, Vault, VaultKey};
use serde_json::json;

use crate::exit;
use crate::output::{print_json, size, time, time_secs, Sample, Ticker};

/// Coffer: encrypted, deduplicated, incremental backups.
#[derive(Parser)]
#[command(name = "coffer", version, about)]
pub struct Cli {
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
    /// Log more (COFFER_LOG=debug for everything).
    #[arg(long, short, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
pub(crate) struct VaultArg {
    /// The vault's location: a path, or a URL (s3://, azblob://, gcs://,
    /// sftp://, webdav://); secrets come from the environment or
    /// --credentials, never from the location.
    #[arg(long, env = "COFFER_VAULT", value_name = "LOC")]
    pub(crate) vault: String,
}

#[derive(Subcommand)]
enum Command {
    /// Manage vault keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Create and inspect vaults.
    #[command(subcommand)]
    Vault(VaultCommand),
    /// Back up paths into a new recovery point.
    Backup {
        #[command(flatten)]
        vault: VaultArg,
        /// Name of the protected item (default: host and paths).
        #[arg(long)]
        item: Option<String>,
        /// Tag the point (repeatable).
        #[arg(long = "tag", value_name = "T")]
        tags: Vec<String>,
        /// Skip entries matching this glob; without a `/` it matches names,
        /// with one it matches whole paths (repeatable).
        #[arg(long = "exclude", value_name = "GLOB")]
        excludes: Vec<String>,
        /// Do not descend into other file systems.
        #[arg(long)]
        one_file_system: bool,
        /// An on-demand point, kept this long whatever the policy says
        /// (for example 30d, 12w, 1y).
        #[arg(long, value_name = "SPAN")]
        expire_in: Option<String>,
        /// Record the point as taken at this time (RFC 3339), for imports
        /// and simulations.
        #[arg(long, value_name = "TIME")]
        time: Option<String>,
        /// Paths to back up.
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
    /// List and inspect recovery points; hold, delete and undelete them.
    #[command(subcommand)]
    Points(PointsCommand),
    /// Backup policies: schedule and retention.
    #[command(subcommand)]
    Policy(crate::govern::PolicyCommand),
    /// Stop or resume the protection of an item.
    #[command(subcommand)]
    Item(crate::govern::ItemCommand),
    /// Apply retention: soft-delete expired points, purge old soft-deleted ones.
    Prune {
        #[command(flatten)]
        vault: VaultArg,
        /// Print the plan (every point, its action and the rule; packs to
        /// delete or repack; bytes to free) and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// How long a pack no point uses waits before it is deleted (for
        /// example 24h, 30m, 0s), so that running backups never lose a chunk.
        #[arg(long, default_value = "24h", value_name = "SPAN")]
        grace: String,
        /// Repack packs of which less than this percentage is still used.
        #[arg(long, default_value_t = 50.0, value_name = "PERCENT")]
        repack_below: f64,
        /// Judge retention as at this time (RFC 3339), for simulations of
        /// long histories together with `backup --time`.
        #[arg(long, hide = true, value_name = "TIME")]
        now: Option<String>,
    },
    /// List the files of a recovery point.
    Ls {
        #[command(flatten)]
        vault: VaultArg,
        /// Point id, unique id prefix, or `latest`.
        point: String,
        /// Only below this path (as backed up).
        path: Option<PathBuf>,
    },
    /// Restore a recovery point under a target directory.
    Restore {
        #[command(flatten)]
        vault: VaultArg,
        /// Point id, unique id prefix, or `latest`.
        point: String,
        /// Directory to restore into; `/etc/x` becomes `DIR/etc/x`.
        #[arg(long, value_name = "DIR")]
        target: PathBuf,
        /// Restore only these paths (as backed up; repeatable).
        #[arg(long = "include", value_name = "PATH")]
        includes: Vec<PathBuf>,
        /// Replace files that exist under the target.
        #[arg(long)]
        overwrite: bool,
    },
    /// Storage locations.
    #[command(subcommand)]
    Location(LocationCommand),
    /// Run the backup service: REST API, scheduler and job runner.
    Serve {
        /// State, service secret and cache (default $COFFER_DATA_DIR, else
        /// ~/.local/share/coffer).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Settings file (default: coffer.toml in the data directory, when present).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Address to listen on (default 127.0.0.1:8420; also COFFER_LISTEN).
        #[arg(long, value_name = "IP:PORT")]
        listen: Option<std::net::SocketAddr>,
    },
    /// Recover a deployment from a storage location and its key: list the
    /// set points there, restore one (the service's configuration and every
    /// item, or one item), or drill one with --verify.
    Recover(crate::recover::RecoverArgs),
    /// Measure this machine's speed for each pipeline stage, one core at a time.
    Benchmark {
        /// Where to measure storage speed (a path or URL); default: the temp directory.
        #[arg(long, value_name = "LOC")]
        location: Option<String>,
        /// Seconds to spend on each stage.
        #[arg(long, default_value_t = 1.0, value_name = "SECONDS")]
        seconds: f64,
    },
    /// Verify the vault's integrity.
    Check {
        #[command(flatten)]
        vault: VaultArg,
        /// Read and verify every pack.
        #[arg(long, conflicts_with = "read_data_subset")]
        read_data: bool,
        /// Read and verify a random share of the packs, in percent.
        #[arg(long, value_name = "PERCENT")]
        read_data_subset: Option<f64>,
    },
}

#[derive(Subcommand)]
enum LocationCommand {
    /// Check that a location works for a vault: connect, authenticate,
    /// write, read back and delete a probe object, and report free
    /// capacity. Each failure is classified with the steps that fix it.
    ///
    /// Secrets come from the environment or --credentials FILE:
    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN (s3://);
    /// AZURE_STORAGE_ACCOUNT_KEY or AZURE_STORAGE_SAS_TOKEN (azblob://);
    /// GOOGLE_APPLICATION_CREDENTIALS or COFFER_GCS_TOKEN (gcs://);
    /// COFFER_SFTP_KEY_FILE (sftp://); COFFER_WEBDAV_USERNAME,
    /// COFFER_WEBDAV_PASSWORD or COFFER_WEBDAV_TOKEN (webdav://).
    Test {
        /// The location: a path, or s3://bucket/prefix?endpoint=…&region=…,
        /// azblob://container/prefix?account=…&endpoint=…, gcs://bucket/prefix,
        /// sftp://user@host:port/path, webdav://host/path (webdav+http:// for
        /// plain HTTP).
        #[arg(value_name = "LOC")]
        location: String,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Print a new random 256-bit vault key (base64), once.
    Generate,
    /// Add a key slot for another key (COFFER_NEW_KEY, --new-key-file, or a generated one).
    Add {
        #[command(flatten)]
        vault: VaultArg,
        #[arg(long, value_name = "FILE")]
        new_key_file: Option<PathBuf>,
    },
    /// Replace the key in use by a new one; the old slot goes only after the new one is verified.
    Rotate {
        #[command(flatten)]
        vault: VaultArg,
        #[arg(long, value_name = "FILE")]
        new_key_file: Option<PathBuf>,
    },
    /// List key slots (ids and dates, never key material).
    List {
        #[command(flatten)]
        vault: VaultArg,
    },
    /// Remove a key slot (never the last one).
    Remove {
        #[command(flatten)]
        vault: VaultArg,
        slot: String,
    },
}

#[derive(Subcommand)]
enum VaultCommand {
    /// Create a vault at an empty location.
    Init {
        #[arg(long, value_name = "LOC")]
        location: String,
    },
    /// Show a vault's header, key slots and sizes.
    Info {
        #[command(flatten)]
        vault: VaultArg,
    },
    /// Move a vault to format 4 (older coffers then refuse it; a format 3
    /// journal is read on, and old-style records copied in later are not).
    Upgrade {
        #[command(flatten)]
        vault: VaultArg,
    },
    /// Change vault settings.
    Set {
        #[command(flatten)]
        vault: VaultArg,
        /// disabled, enabled (refuses early deletes and shorter retention), or locked (enabled for good).
        #[arg(long, value_name = "STATE")]
        immutability: Option<String>,
        /// Days a soft-deleted point stays recoverable (1-180).
        #[arg(long, value_name = "DAYS")]
        soft_delete_days: Option<u32>,
    },
    /// Replica locations: full copies of the vault elsewhere.
    #[command(subcommand)]
    Replica(ReplicaCommand),
    /// A local tier: recent points on a fast local disk as well, for
    /// instant restore.
    #[command(subcommand)]
    Tier(TierCommand),
    /// Copy to every replica (or one) what it lacks, verify the copies,
    /// and remove what the vault no longer has.
    Replicate {
        #[command(flatten)]
        vault: VaultArg,
        /// Only this replica.
        #[arg(long, value_name = "LOC")]
        replica: Option<String>,
    },
}

#[derive(Subcommand)]
enum TierCommand {
    /// Keep the points of the last DAYS days on a local path as well;
    /// restores read from it first.
    Set {
        #[command(flatten)]
        vault: VaultArg,
        /// The local tier's location (a local path).
        #[arg(long, value_name = "PATH")]
        local: String,
        /// Days of points the tier keeps.
        #[arg(long, value_name = "DAYS")]
        days: u32,
    },
    /// Show the local tier and what it holds.
    Show {
        #[command(flatten)]
        vault: VaultArg,
    },
    /// Copy what the tier lacks and drop packs only older points use
    /// (`prune` does this too).
    Sync {
        #[command(flatten)]
        vault: VaultArg,
    },
    /// Stop keeping a local tier (its directory is left as it is).
    Remove {
        #[command(flatten)]
        vault: VaultArg,
    },
}

#[derive(Subcommand)]
enum ReplicaCommand {
    /// Add a replica location and copy the vault there.
    Add {
        #[command(flatten)]
        vault: VaultArg,
        /// The replica's location (any kind of location).
        #[arg(value_name = "LOC")]
        location: String,
        /// sync: every object reaches the replica before a point is
        /// committed (like zone-redundant storage); async: `vault
        /// replicate` fills it, and its lag is the recovery point objective
        /// (like geo-redundant storage).
        #[arg(long, default_value = "async", value_parser = ["sync", "async"])]
        mode: String,
    },
    /// List replicas with their mode, last replication and lag.
    List {
        #[command(flatten)]
        vault: VaultArg,
    },
    /// Stop keeping a replica (its data stays where it is).
    Remove {
        #[command(flatten)]
        vault: VaultArg,
        #[arg(value_name = "LOC")]
        location: String,
    },
}

#[derive(Subcommand)]
enum PointsCommand {
    /// List recovery points, oldest first.
    List {
        #[command(flatten)]
        vault: VaultArg,
        #[arg(long)]
        item: Option<String>,
    },
    /// Show one recovery point in full.
    Show {
        #[command(flatten)]
        vault: VaultArg,
        point: String,
    },
    /// Keep a point whatever its retention says, until released.
    Hold {
        #[command(flatten)]
        vault: VaultArg,
        point: String,
    },
    /// Hand a held point back to its retention.
    Release {
        #[command(flatten)]
        vault: VaultArg,
        point: String,
    },
    /// Soft-delete points (recoverable with `undelete` until purged).
    Delete {
        #[command(flatten)]
        vault: VaultArg,
        #[arg(required = true)]
        points: Vec<String>,
    },
    /// Bring soft-deleted points back (they come back on hold).
    Undelete {
        #[command(flatten)]
        vault: VaultArg,
        #[arg(required = true)]
        points: Vec<String>,
    },
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
    fn key(&self) -> Result<VaultKey> {
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

fn new_key(file: &Option<PathBuf>) -> Result<(VaultKey, bool)> {
    if let Some(f) = file {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("cannot read the new key file {}", f.display()))?;
        return Ok((VaultKey::from_text(&text)?, false));
    }
    if let Ok(text) = std::env::var("COFFER_NEW_KEY") {
        return Ok((VaultKey::from_text(&text)?, false));
    }
    let (key, text) = VaultKey::generate();
    eprintln!("A new vault key was generated. It is shown once, now: store it somewhere safe.");
    eprintln!("Without it (or another key of this vault) the backups cannot be read.");
    println!("{}", text.as_str());
    Ok((key, true))
}

pub fn run(cli: Cli) -> Result<ExitCode> {
    let ctx = Ctx {
        key_file: cli.key_file,
        credentials: cli.credentials,
        limit_upload: cli.limit_upload,
        limit_download: cli.limit_download,
        from_replica: cli.from_replica,
        cache_dir: cli.cache_dir,
        json: cli.json,
        typed_key: std::sync::OnceLock::new(),
    };
    match cli.command {
        Command::Key(k) => key_command(&ctx, k),
        Command::Policy(p) => crate::govern::policy_command(&ctx, p),
        Command::Item(i) => crate::govern::item_command(&ctx, i),
        Command::Prune {
            vault,
            dry_run,
            grace,
            repack_below,
            now,
        } => {
            let now = match now {
                Some(t) => parse_time(&t)?.secs,
                None => crate::output::now_secs(),
            };
            crate::govern::prune_command(&ctx, &vault.vault, dry_run, &grace, repack_below, now)
        }
        Command::Vault(VaultCommand::Upgrade { vault }) => {
            let mut v = ctx.open(&vault.vault)?;
            let old = v.upgrade()?;
            if old == v.header().version {
                println!("the vault is already format {old}");
            } else {
                println!(
                    "upgraded the vault from format {old} to {}",
                    v.header().version
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Vault(VaultCommand::Set {
            vault,
            immutability,
            soft_delete_days,
        }) => {
            let v = ctx.open(&vault.vault)?;
            if immutability.is_none() && soft_delete_days.is_none() {
                bail!("nothing to set: give --immutability or --soft-delete-days");
            }
            if let Some(days) = soft_delete_days {
                coffer_engine::changes::set_soft_delete_days(&v, days)?;
            }
            if let Some(state) = immutability {
                coffer_engine::changes::set_immutability(
                    &v,
                    crate::govern::parse_immutability(&state)?,
                )?;
            }
            let st = v.state()?;
            println!(
                "immutability {}, soft-deleted points kept {} days",
                st.immutability.as_str(),
                st.soft_delete_days
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Points(PointsCommand::Hold { vault, point }) => {
            let v = ctx.open(&vault.vault)?;
            let p = v.resolve_point(&point, None)?;
            coffer_engine::changes::hold(&v, &p.id)?;
            println!("point {} is on hold", p.id.to_hex());
            Ok(ExitCode::SUCCESS)
        }
        Command::Points(PointsCommand::Release { vault, point }) => {
            let v = ctx.open(&vault.vault)?;
            let p = v.resolve_point(&point, None)?;
            coffer_engine::changes::release(&v, &p.id)?;
            println!("point {} follows its retention again", p.id.to_hex());
            Ok(ExitCode::SUCCESS)
        }
        Command::Points(PointsCommand::Delete { vault, points }) => {
            let v = ctx.open(&vault.vault)?;
            let targets = points
                .iter()
                .map(|p| v.resolve_point(p, None))
                .collect::<Result<Vec<_>, _>>()?;
            coffer_engine::changes::delete_points(&v, &targets, "deleted by hand")?;
            println!(
                "soft-deleted {} point(s); `coffer points undelete` brings them back for {} days",
                targets.len(),
                v.state()?.soft_delete_days
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Points(PointsCommand::Undelete { vault, points }) => {
            let v = ctx.open(&vault.vault)?;
            let ids = points
                .iter()
                .map(|p| v.resolve_point(p, None).map(|p| p.id))
                .collect::<Result<Vec<_>, _>>()?;
            coffer_engine::changes::undelete(&v, &ids)?;
            println!(
                "{} point(s) are back, on hold (release them to let their policy apply)",
                ids.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Vault(VaultCommand::Init { location }) => {
            let storage = ctx.storage(&location)?;
            let key = ctx.key()?;
            let header = Vault::init(&storage, &key, key.slot_kdf())
                .with_context(|| format!("cannot create a vault at {location}"))?;
            if ctx.json {
                print_json(
                    &json!({"vault_id": header.vault_id_hex(), "location": storage.display(), "format_version": header.version,
                    "key_fingerprint": key.fingerprint()}),
                );
            } else {
                println!(
                    "created vault {} at {}",
                    header.vault_id_hex(),
                    storage.display()
                );
                println!("key fingerprint: {}", key.fingerprint());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Vault(VaultCommand::Info { vault }) => {
            let v = ctx.open_readable(&vault.vault)?;
            let slots = Vault::read_slots(v.storage())?;
            let index = v.load_index()?;
            let points = v.points()?;
            let h = v.header();
            if ctx.json {
                print_json(
                    &json!({"vault_id": h.vault_id_hex(), "format_version": h.version, "created": time_secs(h.created),
                    "key_slots": slots.iter().flatten().count(), "packs": index.packs().count(), "blobs": index.blob_count(),
                    "points": points.len(), "dictionaries": v.dictionary_status().0}),
                );
            } else {
                println!("vault          {}", h.vault_id_hex());
                println!("location       {}", v.storage().display());
                println!("format         {}", h.version);
                println!("created        {}", time_secs(h.created));
                println!("key slots      {}", slots.iter().flatten().count());
                println!("packs          {}", index.packs().count());
                println!("blobs          {}", index.blob_count());
                println!("points         {}", points.len());
                println!("dictionaries   {}", v.dictionary_status().0);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Backup {
            vault,
            item,
            tags,
            excludes,
            one_file_system,
            expire_in,
            time: at,
            paths,
        } => {
            let taken = match &at {
                Some(t) => Some(parse_time(t)?),
                None => None,
            };
            let expire_at = match &expire_in {
                Some(span) => Some(expiry(
                    span,
                    taken.map_or_else(crate::output::now_secs, |t| t.secs),
                )?),
                None => None,
            };
            let v = ctx.open(&vault.vault)?;
            let progress = Arc::new(Progress::default());
            let opts = BackupOptions {
                item,
                tags,
                excludes,
                one_file_system,
                host: None,
                time: taken,
                expire_at,
                consistency: None,
            };
            let report = {
                let p = progress.clone();
                let _ticker = Ticker::start(ctx.json, "backup", move || Sample {
                    files: p.files.load(Ordering::Relaxed),
                    bytes: p.bytes_read.load(Ordering::Relaxed),
                    total_bytes: None,
                });
                coffer_engine::backup::backup(&v, &paths, &opts, &progress)
                    .context("backup failed")?
            };
            let m = &report.manifest;
            let s = &m.stats;
            if ctx.json {
                println!("{}", {
                    let mut v = stats_json(s);
                    v["type"] = json!("summary");
                    v["point"] = json!(report.point.to_hex());
                    v["item"] = json!(m.item);
                    v["packs_adopted"] = json!(report.packs_adopted);
                    v["errors"] = errors_json(&m.errors);
                    v
                });
            } else {
                println!(
                    "point {} saved for item {:?}",
                    report.point.to_hex(),
                    m.item
                );
                println!(
                    "files: {} new, {} changed, {} unchanged ({} dirs)",
                    s.files_new, s.files_changed, s.files_unchanged, s.dirs
                );
                println!(
                    "bytes: {} total, {} read, {} new, {} stored; {:.1}s",
                    size(s.bytes_total),
                    size(s.bytes_read),
                    size(s.bytes_new),
                    size(s.bytes_stored),
                    s.duration_ms as f64 / 1000.0
                );
                if report.packs_adopted > 0 {
                    println!(
                        "reused {} pack(s) left by an interrupted backup",
                        report.packs_adopted
                    );
                }
                if !m.errors.is_empty() {
                    eprintln!(
                        "{} entr{} could not be backed up:",
                        m.errors.len(),
                        if m.errors.len() == 1 { "y" } else { "ies" }
                    );
                    for e in &m.errors {
                        eprintln!("  {}: {}", String::from_utf8_lossy(&e.path), e.message);
                    }
                }
            }
            Ok(if m.errors.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(exit::PARTIAL)
            })
        }
        Command::Points(PointsCommand::List { vault, item }) => {
            let v = ctx.open_readable(&vault.vault)?;
            let state = v.state()?;
            let points: Vec<_> = v
                .points()?
                .into_iter()
                .filter(|p| item.as_ref().is_none_or(|i| &p.manifest.item == i))
                .filter(|p| !state.purged.contains(&p.id))
                .collect();
            let status = |id: &coffer_engine::ObjectId| -> String {
                if let Some(sd) = state.soft_deleted.get(id) {
                    format!("soft-deleted {}", time_secs(sd.at))
                } else if state.holds.contains(id) {
                    "on hold".into()
                } else if let Some(u) = state.on_demand.get(id) {
                    format!("on demand, until {}", time_secs(*u))
                } else {
                    "live".into()
                }
            };
            if ctx.json {
                print_json(&serde_json::Value::Array(
                    points
                        .iter()
                        .map(|p| {
                            let mut j = point_json(p, false);
                            j["status"] = json!(status(&p.id));
                            j
                        })
                        .collect(),
                ));
            } else {
                println!(
                    "{:<12}  {:<20}  {:<16}  {:>8}  {:>10}  item / tags",
                    "id", "time", "host", "files", "size"
                );
                for p in &points {
                    let m = &p.manifest;
                    let tags = if m.tags.is_empty() {
                        String::new()
                    } else {
                        format!(" [{}]", m.tags.join(", "))
                    };
                    println!(
                        "{:<12}  {:<20}  {:<16}  {:>8}  {:>10}  {}{}  ({})",
                        &p.id.to_hex()[..12],
                        time(m.time),
                        m.host,
                        m.stats.files,
                        size(m.stats.bytes_total),
                        m.item,
                        tags,
                        status(&p.id)
                    );
                }
                println!("{} point(s)", points.len());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Points(PointsCommand::Show { vault, point }) => {
            let v = ctx.open_readable(&vault.vault)?;
            let p = v.resolve_point(&point, None)?;
            if ctx.json {
                print_json(&point_json(&p, true));
            } else {
                let m = &p.manifest;
                let s = &m.stats;
                println!("point        {}", p.id.to_hex());
                println!("time         {}", time(m.time));
                println!("host         {}", m.host);
                println!("item         {}", m.item);
                for path in &m.paths {
                    println!("path         {}", String::from_utf8_lossy(path));
                }
                println!("tags         {}", m.tags.join(", "));
                println!(
                    "parent       {}",
                    m.parent.map(|p| p.to_hex()).unwrap_or_else(|| "-".into())
                );
                println!("tree         {}", m.tree.to_hex());
                println!("consistency  {}", m.consistency.as_str());
                println!(
                    "files        {} ({} new, {} changed, {} unchanged), {} dirs",
                    s.files, s.files_new, s.files_changed, s.files_unchanged, s.dirs
                );
                println!(
                    "bytes        {} total, {} read, {} new, {} stored",
                    size(s.bytes_total),
                    size(s.bytes_read),
                    size(s.bytes_new),
                    size(s.bytes_stored)
                );
                println!("duration     {:.1}s", s.duration_ms as f64 / 1000.0);
                println!("software     {}", m.software);
                println!("errors       {}", m.errors.len());
                for e in &m.errors {
                    println!("  {}: {}", String::from_utf8_lossy(&e.path), e.message);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Ls { vault, point, path } => {
            let v = ctx.open_readable(&vault.vault)?;
            let p = v.resolve_point(&point, None)?;
            let index = v.load_index()?;
            let start = coffer_engine::backup::absolute(
                &Path::new("/").join(path.unwrap_or_else(|| PathBuf::from("/"))),
            )?;
            let mut rows = Vec::new();
            list_tree(
                &v,
                &index,
                &p.manifest.tree,
                Path::new("/"),
                &start,
                &mut rows,
            )?;
            if rows.is_empty() && start != Path::new("/") {
                bail!(
                    "{} is not in point {}",
                    start.display(),
                    &p.id.to_hex()[..12]
                );
            }
            if ctx.json {
                print_json(&serde_json::Value::Array(
                    rows.iter().map(|(path, n)| node_json(path, n)).collect(),
                ));
            } else {
                for (path, n) in &rows {
                    println!("{}", node_line(path, n));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Restore {
            vault,
            point,
            target,
            includes,
            overwrite,
        } => {
            let v = ctx.open_readable(&vault.vault)?;
            let p = v.resolve_point(&point, None)?;
            let progress = Arc::new(RestoreProgress::default());
            let opts = RestoreOptions {
                target,
                includes,
                overwrite,
                ..Default::default()
            };
            let report = {
                let pr = progress.clone();
                let _ticker = Ticker::start(ctx.json, "restore", move || Sample {
                    files: pr.files.load(Ordering::Relaxed),
                    bytes: pr.bytes_written.load(Ordering::Relaxed),
                    total_bytes: Some(pr.bytes_total.load(Ordering::Relaxed)),
                });
                coffer_engine::restore::restore(&v, &p, &opts, &progress)
                    .context("restore failed")?
            };
            let (from_tier, from_location) = v.storage().bytes_read();
            if ctx.json {
                println!(
                    "{}",
                    json!({"type": "summary", "point": p.id.to_hex(), "files": report.files, "dirs": report.dirs, "bytes": report.bytes,
                        "bytes_from_local_tier": from_tier, "bytes_from_location": from_location,
                        "damaged": report.damaged.iter().map(|(f, w)| json!({"path": f.to_string_lossy(), "error": w})).collect::<Vec<_>>(),
                        "problems": report.problems.iter().map(|(f, w)| json!({"path": f.to_string_lossy(), "error": w})).collect::<Vec<_>>()})
                );
            } else {
                println!(
                    "restored point {}: {} files, {} dirs, {}",
                    &p.id.to_hex()[..12],
                    report.files,
                    report.dirs,
                    size(report.bytes)
                );
                if from_tier > 0 {
                    println!(
                        "read {} from the local tier, {} from the vault's location",
                        size(from_tier),
                        size(from_location)
                    );
                }
                if !report.damaged.is_empty() {
                    eprintln!(
                        "{} file(s) could not be restored completely:",
                        report.damaged.len()
                    );
                    for (f, why) in &report.damaged {
                        eprintln!("  {}: {}", f.display(), why);
                    }
                }
                if !report.problems.is_empty() {
                    eprintln!(
                        "{} entr(y/ies) restored with problems:",
                        report.problems.len()
                    );
                    for (f, why) in &report.problems {
                        eprintln!("  {}: {}", f.display(), why);
                    }
                }
            }
            Ok(if report.is_complete() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(exit::PARTIAL)
            })
        }
        Command::Vault(VaultCommand::Replica(ReplicaCommand::Add {
            vault,
            location,
            mode,
        })) => {
            let v = ctx.open(&vault.vault)?;
            let probe = coffer_engine::probe::run(&ctx.storage(&location)?);
            if let Some(failure) = probe.failure {
                let step = probe
                    .steps
                    .iter()
                    .find(|s| !s.ok)
                    .map(|s| s.detail.clone())
                    .unwrap_or_default();
                bail!(
                    "the replica location does not work ({failure}): {step}\nhint: {}",
                    failure.remedy()
                );
            }
            if probe.holds_vault {
                eprintln!("note: {location} already holds a vault; objects the vault does not have will be removed from it");
            }
            let mode = match mode.as_str() {
                "sync" => coffer_engine::journal::ReplicaMode::Sync,
                _ => coffer_engine::journal::ReplicaMode::Async,
            };
            let report = coffer_engine::replica::add(&v, &location, mode)?;
            println!(
                "added {} replica {location}: {} object(s) copied and verified ({})",
                mode.name(),
                report.copied,
                size(report.copied_bytes)
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Vault(VaultCommand::Tier(TierCommand::Set { vault, local, days })) => {
            let v = ctx.open(&vault.vault)?;
            if local.contains("://") && !local.starts_with("file://") {
                bail!("a local tier is a local path (a fast disk on this machine), not {local}");
            }
            let r = coffer_engine::tier::set(&v, &local, days)?;
            println!(
                "local tier {local} keeps the last {days} day(s): {} point(s), {} pack(s); {} object(s) copied ({})",
                r.recent_points,
                r.packs,
                r.copied,
                size(r.copied_bytes)
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Vault(VaultCommand::Tier(TierCommand::Sync { vault })) => {
            let v = ctx.open(&vault.vault)?;
            let r = coffer_engine::tier::sync(&v)?;
            println!(
                "local tier: {} point(s), {} pack(s); {} object(s) copied ({}), {} pack(s) dropped",
                r.recent_points,
                r.packs,
                r.copied,
                size(r.copied_bytes),
                r.deleted
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Vault(VaultCommand::Tier(TierCommand::Show { vault })) => {
            let v = ctx.open(&vault.vault)?;
            match v.state()?.local_tier {
                Some((location, days)) => {
                    if ctx.json {
                        print_json(&json!({"location": location, "days": days}));
                    } else {
                        println!("local tier {location}: the last {days} day(s) of points");
                    }
                }
                None => println!(
                    "no local tier; set one with `coffer vault tier set --local PATH --days N`"
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Vault(VaultCommand::Tier(TierCommand::Remove { vault })) => {
            let v = ctx.open(&vault.vault)?;
            coffer_engine::tier::remove(&v)?;
            println!("the vault no longer keeps a local tier; its directory is left as it is");
            Ok(ExitCode::SUCCESS)
        }
        Command::Vault(VaultCommand::Replica(ReplicaCommand::Remove { vault, location })) => {
            let v = ctx.open(&vault.vault)?;
            coffer_engine::replica::remove(&v, &location)?;
            println!("{location} is no longer a replica of this vault; its data stays there");
            Ok(ExitCode::SUCCESS)
        }
        Command::Vault(VaultCommand::Replica(ReplicaCommand::List { vault })) => {
            let v = ctx.open(&vault.vault)?;
            let state = v.state()?;
            let now = crate::output::now_secs();
            let mut rows = Vec::new();
            for (location, r) in &state.replicas {
                let behind = ctx
                    .storage(location)
                    .and_then(|s| Ok(coffer_engine::replica::behind(&v, &s)?));
                rows.push((location.clone(), r.clone(), behind));
            }
            if ctx.json {
                let list: Vec<_> = rows
                    .iter()
                    .map(|(l, r, b)| {
                        json!({
                            "location": l,
                            "mode": r.mode.name(),
                            "synced_as_of": r.synced_as_of,
                            "lag_seconds": r.synced_as_of.map(|t| (now - t).max(0)),
                            "missing_objects": b.as_ref().ok().map(|b| b.missing_objects),
                            "missing_bytes": b.as_ref().ok().map(|b| b.missing_bytes),
                            "missing_points": b.as_ref().ok().map(|b| b.missing_points),
                            "error": b.as_ref().err().map(|e| format!("{e:#}")),
                        })
                    })
                    .collect();
                print_json(&json!({ "replicas": list }));
            } else if rows.is_empty() {
                println!(
                    "no replicas; add one with `coffer vault replica add LOC --mode sync|async`"
                );
            } else {
                for (l, r, b) in &rows {
                    let synced = match r.synced_as_of {
                        Some(t) => format!(
                            "synced as of {} (lag {})",
                            time_secs(t),
                            crate::output::span((now - t).max(0))
                        ),
                        None => "never synced".to_string(),
                    };
                    let state = match b {
                        Ok(b) if b.missing_objects == 0 => "complete".to_string(),
                        Ok(b) => format!(
                            "behind by {} object(s), {} ({} point(s))",
                            b.missing_objects,
                            size(b.missing_bytes),
                            b.missing_points
                        ),
                        Err(e) => format!("unavailable: {e:#}"),
                    };
                    println!("{l}  {}  {synced}  {state}", r.mode.name());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Vault(VaultCommand::Replicate { vault, replica }) => {
            let v = ctx.open(&vault.vault)?;
            let state = v.state()?;
            let targets: Vec<String> = match replica {
                Some(r) if state.replicas.contains_key(&r) => vec![r],
                Some(r) => {
                    bail!("{r} is not a replica of this vault (see `coffer vault replica list`)")
                }
                None => state.replicas.keys().cloned().collect(),
            };
            if targets.is_empty() {
                bail!("this vault has no replicas; add one with `coffer vault replica add LOC`");
            }
            let mut failed = 0;
            for location in targets {
                let result = ctx
                    .storage(&location)
                    .and_then(|s| Ok(coffer_engine::replica::replicate(&v, &s, &location)?));
                match result {
                    Ok(r) => {
                        if ctx.json {
                            print_json(
                                &json!({"replica": location, "copied": r.copied, "copied_bytes": r.copied_bytes, "verified": r.verified, "deleted": r.deleted, "as_of": r.as_of}),
                            );
                        } else {
                            println!(
                                "{location}: {} object(s) copied and verified ({}), {} removed; complete as of {}",
                                r.copied,
                                size(r.copied_bytes),
                                r.deleted,
                                time_secs(r.as_of)
                            );
                        }
                    }
                    Err(e) => {
                        failed += 1;
                        let (_, hint) = exit::classify(&e);
                        eprintln!("error: replication to {location} failed: {e:#}");
                        if let Some(h) = hint {
                            eprintln!("hint: {h}");
                        }
                    }
                }
            }
            Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(exit::ERROR)
            })
        }
        Command::Location(LocationCommand::Test { location }) => {
            let storage = ctx.storage(&location)?;
            let report = coffer_engine::probe::run(&storage);
            if ctx.json {
                let steps: Vec<_> = report
                    .steps
                    .iter()
                    .map(|s| json!({"step": s.name, "ok": s.ok, "detail": s.detail, "millis": s.millis}))
                    .collect();
                print_json(&json!({
                    "location": report.location,
                    "kind": report.kind,
                    "ok": report.ok(),
                    "failure": report.failure.map(|f| f.to_string()),
                    "remedy": report.failure.map(|f| f.remedy()),
                    "free_bytes": report.free_bytes,
                    "holds_vault": report.holds_vault,
                    "steps": steps,
                }));
            } else {
                println!("{} ({})", report.location, report.kind);
                for s in &report.steps {
                    let mark = if s.ok { "ok  " } else { "FAIL" };
                    println!("  {mark} {:<26} {} ({} ms)", s.name, s.detail, s.millis);
                }
            }
            match report.failure {
                None => {
                    if !ctx.json {
                        println!("the location works for a vault");
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Some(failure) => {
                    eprintln!("error: location test failed: {failure}");
                    eprintln!("hint: {}", failure.remedy());
                    Ok(ExitCode::from(exit::ERROR))
                }
            }
        }
        Command::Serve {
            data_dir,
            config,
            listen,
        } => {
            let mut config =
                coffer_server::ServiceConfig::load(data_dir.as_deref(), config.as_deref())?;
            if let Some(listen) = listen {
                config.listen = listen;
            }
            coffer_server::serve(config)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Recover(args) => crate::recover::run(&ctx, args),
        Command::Benchmark { location, seconds } => {
            if !(seconds > 0.0 && seconds <= 600.0) {
                bail!("--seconds takes a duration above 0 and at most 600, not {seconds}");
            }
            let budget = std::time::Duration::from_secs_f64(seconds);
            let location = match location {
                Some(l) => l,
                None => std::env::temp_dir().to_string_lossy().into_owned(),
            };
            let storage = ctx
                .storage(&location)
                .with_context(|| format!("cannot open {location} to measure storage speed"))?;
            let mut stages = coffer_engine::speed::cpu_stages(budget);
            stages.extend(
                coffer_engine::speed::storage_stages(&storage, budget)
                    .with_context(|| format!("storage probe at {location} failed"))?,
            );
            if ctx.json {
                let rows: Vec<_> = stages
                    .iter()
                    .map(|s| json!({"stage": s.stage, "what": s.what, "bytes": s.bytes, "seconds": s.seconds, "mib_per_second": s.mib_per_second()}))
                    .collect();
                print_json(&json!({"location": storage.display(), "stages": rows}));
            } else {
                println!(
                    "single-core speed on this machine (storage: {})",
                    storage.display()
                );
                for s in &stages {
                    println!(
                        "{:<18} {:>6.0} MiB/s   {}",
                        s.stage,
                        s.mib_per_second(),
                        s.what
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Check {
            vault,
            read_data,
            read_data_subset,
        } => {
            let mut v = ctx.open_readable(&vault.vault)?;
            let mode = match (read_data, read_data_subset) {
                (true, _) => ReadData::All,
                (false, Some(p)) if p > 0.0 && p <= 100.0 => ReadData::Subset(p),
                (false, Some(p)) => {
                    bail!("--read-data-subset takes a percentage above 0 and at most 100, not {p}")
                }
                (false, None) => ReadData::None,
            };
            let r = coffer_engine::check::check(&mut v, mode)?;
            if ctx.json {
                print_json(
                    &json!({"ok": r.ok(), "problems": r.problems, "key_slots": r.key_slots, "index_files": r.index_files,
                    "packs": r.packs, "packs_read": r.packs_read, "blobs_verified": r.blobs_verified, "points": r.points, "trees": r.trees,
                    "unindexed_packs": r.unindexed_packs, "dictionaries": r.dictionaries,
                    "condemned_packs": r.condemned_packs, "journal_records": r.journal_records}),
                );
            } else {
                println!(
                    "checked {} key slot(s), {} dictionary(ies), {} index file(s), {} pack(s) ({} read in full, {} blobs verified), {} point(s), {} tree(s)",
                    r.key_slots, r.dictionaries, r.index_files, r.packs, r.packs_read, r.blobs_verified, r.points, r.trees
                );
                if r.condemned_packs > 0 {
                    println!("{} pack(s) no point uses await deletion by the next prune after the grace period", r.condemned_packs);
                }
                if r.unindexed_packs > 0 {
                    println!("{} pack(s) are not indexed yet (left by an interrupted backup; the next backup reuses them)", r.unindexed_packs);
                }
                for p in &r.problems {
                    println!("problem: {p}");
                }
                println!(
                    "{}",
                    if r.ok() {
                        "no problems found"
                    } else {
                        "the vault is damaged"
                    }
                );
            }
            Ok(if r.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(exit::DAMAGED)
            })
        }
    }
}

fn key_command(ctx: &Ctx, cmd: KeyCommand) -> Result<ExitCode> {
    match cmd {
        KeyCommand::Generate => {
            let (key, text) = VaultKey::generate();
            eprintln!("This is a new random 256-bit vault key. It is shown once: store it somewhere safe now.");
            eprintln!(
                "Pass it to coffer through COFFER_KEY or --key-file, never on the command line."
            );
            eprintln!("Fingerprint: {}", key.fingerprint());
            println!("{}", text.as_str());
            Ok(ExitCode::SUCCESS)
        }
        KeyCommand::Add {
            vault,
            new_key_file,
        } => {
            let v = ctx.open(&vault.vault)?;
            let (key, _) = new_key(&new_key_file)?;
            let slot = v.add_key(&key, key.slot_kdf())?;
            eprintln!(
                "added key slot {} (fingerprint {})",
                slot.id,
                key.fingerprint()
            );
            Ok(ExitCode::SUCCESS)
        }
        KeyCommand::Rotate {
            vault,
            new_key_file,
        } => {
            let mut v = ctx.open(&vault.vault)?;
            let old = v.current_slot().to_string();
            let (key, _) = new_key(&new_key_file)?;
            let slot = v.rotate_key(&key, key.slot_kdf())?;
            eprintln!(
                "key rotated: slot {old} removed, slot {} added (fingerprint {})",
                slot.id,
                key.fingerprint()
            );
            Ok(ExitCode::SUCCESS)
        }
        KeyCommand::List { vault } => {
            let v = ctx.open(&vault.vault)?;
            let slots = Vault::read_slots(v.storage())?;
            let mut rows = Vec::new();
            for s in &slots {
                match s {
                    Ok(s) => rows.push(json!({"slot": s.id, "created": time_secs(s.created), "kdf": "argon2id",
                        "memory_kib": s.kdf.memory_kib, "iterations": s.kdf.iterations, "parallelism": s.kdf.parallelism,
                        "in_use": s.id == v.current_slot()})),
                    Err(e) => rows.push(json!({"error": e.to_string()})),
                }
            }
            if ctx.json {
                print_json(&serde_json::Value::Array(rows));
            } else {
                for s in slots {
                    match s {
                        Ok(s) => println!(
                            "{}  created {}  argon2id m={}KiB t={} p={}{}",
                            s.id,
                            time_secs(s.created),
                            s.kdf.memory_kib,
                            s.kdf.iterations,
                            s.kdf.parallelism,
                            if s.id == v.current_slot() {
                                "  (this key)"
                            } else {
                                ""
                            }
                        ),
                        Err(e) => println!("damaged slot: {e}"),
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        KeyCommand::Remove { vault, slot } => {
            let v = ctx.open(&vault.vault)?;
            v.remove_key(&slot)?;
            eprintln!("removed key slot {slot}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn point_json(p: &coffer_engine::Point, full: bool) -> serde_json::Value {
    let m = &p.manifest;
    let mut v = json!({"id": p.id.to_hex(), "time": time(m.time), "host": m.host, "item": m.item,
        "paths": m.paths.iter().map(|x| String::from_utf8_lossy(x).into_owned()).collect::<Vec<_>>(),
        "tags": m.tags, "parent": m.parent.map(|x| x.to_hex()), "consistency": m.consistency.as_str(),
        "stats": stats_json(&m.stats)});
    if full {
        v["tree"] = json!(m.tree.to_hex());
        v["software"] = json!(m.software);
        v["errors"] = errors_json(&m.errors);
    }
    v
}

fn stats_json(s: &coffer_engine::point::Stats) -> serde_json::Value {
    serde_json::to_value(s).unwrap_or_default()
}

fn errors_json(errors: &[coffer_engine::point::EntryError]) -> serde_json::Value {
    errors
        .iter()
        .map(|e| json!({"path": String::from_utf8_lossy(&e.path), "error": e.message}))
        .collect()
}

fn list_tree(
    v: &Vault,
    index: &coffer_engine::index::Index,
    tree: &coffer_engine::ChunkId,
    at: &Path,
    start: &Path,
    rows: &mut Vec<(PathBuf, Node)>,
) -> Result<()> {
    let tree = v.read_tree(index, tree)?;
    for node in tree.nodes {
        let path = at.join(OsStr::from_bytes(&node.name));
        let inside = path.starts_with(start);
        if !inside && !start.starts_with(&path) {
            continue;
        }
        if let NodeKind::Dir { tree } = &node.kind {
            let sub = *tree;
            if inside {
                rows.push((path.clone(), node));
            }
            list_tree(v, index, &sub, &path, start, rows)?;
        } else if inside {
            rows.push((path, node));
        }
    }
    Ok(())
}

fn kind_char(k: &NodeKind) -> char {
    match k {
        NodeKind::File { .. } => '-',
        NodeKind::Dir { .. } => 'd',
        NodeKind::Symlink { .. } => 'l',
        NodeKind::Fifo => 'p',
        NodeKind::Socket => 's',
        NodeKind::CharDevice { .. } => 'c',
        NodeKind::BlockDevice { .. } => 'b',
    }
}

fn node_size(n: &Node) -> u64 {
    match &n.kind {
        NodeKind::File { size, .. } => *size,
        _ => 0,
    }
}

fn node_line(path: &Path, n: &Node) -> String {
    let owner = n.user.clone().unwrap_or_else(|| n.uid.to_string());
    let group = n.group.clone().unwrap_or_else(|| n.gid.to_string());
    let mut line = format!(
        "{}{:04o} {:>8} {:>8} {:>12} {} {}",
        kind_char(&n.kind),
        n.mode,
        owner,
        group,
        node_size(n),
        time(n.mtime),
        path.display()
    );
    if let NodeKind::Symlink { target } = &n.kind {
        line.push_str(&format!(" -> {}", String::from_utf8_lossy(target)));
    }
    if let Some(e) = &n.error {
        line.push_str(&format!("  [not backed up: {e}]"));
    }
    line
}

fn node_json(path: &Path, n: &Node) -> serde_json::Value {
    json!({"path": path.to_string_lossy(), "type": kind_char(&n.kind).to_string(), "mode": format!("{:04o}", n.mode),
        "uid": n.uid, "gid": n.gid, "user": n.user, "group": n.group, "size": node_size(n), "mtime": time(n.mtime),
        "target": match &n.kind { NodeKind::Symlink { target } => Some(String::from_utf8_lossy(target).into_owned()), _ => None },
        "error": n.error})
}

/// Parses an RFC 3339 time (`2026-01-31T22:00:00Z`).
fn parse_time(text: &str) -> Result<coffer_engine::tree::Timestamp> {
    let ts: jiff::Timestamp = text.parse().with_context(|| {
        format!("--time {text:?}: expected an RFC 3339 time like 2026-01-31T22:00:00Z")
    })?;
    Ok(coffer_engine::tree::Timestamp {
        secs: ts.as_second(),
        nanos: ts.subsec_nanosecond().max(0) as u32,
    })
}

/// The end of an on-demand point's retention: `from` plus a span like
/// 30d, 12w, 6mo or 1y, counted in calendar units in UTC.
fn expiry(span: &str, from: i64) -> Result<i64> {
    let parsed: jiff::Span = span.parse().with_context(|| {
        format!("--expire-in {span:?}: expected a span like 30d, 12w, 6mo or 1y")
    })?;
    let start = jiff::Timestamp::from_second(from)
        .context("the point's time is out of range")?
        .to_zoned(jiff::tz::TimeZone::UTC);
    let end = start
        .checked_add(parsed)
        .with_context(|| format!("--expire-in {span:?} is out of range"))?;
    if end.timestamp().as_second() <= from {
        bail!("--expire-in {span:?}: the span must be positive");
    }
    Ok(end.timestamp().as_second())
}
