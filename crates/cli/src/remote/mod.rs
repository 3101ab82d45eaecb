//! Remote mode: `coffer --server URL …` manages a running service over its
//! REST API, with the token in `COFFER_TOKEN`. Its grammar is parsed only
//! when `--server` or `COFFER_SERVER` is given. The vault operations
//! (`points list`, `ls`, `restore`, `backup`, `check`, `prune`; in
//! `operations.rs`) and `policy` (`policy.rs`) take the local grammar,
//! with `--vault` naming the service's vault, and print through the same
//! functions as local mode; the service-only resources (vaults, items,
//! jobs, alerts, tokens, sets, backup-now) have their own commands here. A
//! command only local mode has is refused with the way to run it
//! (`crate::grammar`). Every answer can be printed as JSON (`--json`);
//! errors show the API's message and hint and exit as local mode would.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Parser, Subcommand};
use serde_json::{json, Value};

use coffer_api_types::access::{CreatedToken, NewToken, Token};
use coffer_api_types::alert::Alert;
use coffer_api_types::item::{
    CommandSpec, DiskFormat, DiskSpec, Hook, Item, ItemSchedule, NewItem, PolicyAssignment,
    PostgresMode, PostgresSpec,
};
use coffer_api_types::job::{Job, JobState, LogLine};
use coffer_api_types::set::{
    InfraSet, NewSet, SetPointInfo, DEFAULT_RETENTION_DAYS, DEFAULT_SCHEDULE,
};
use coffer_api_types::vault::{KeyRequest, NewVault, VaultInfo, VaultWithKey};

use crate::output::time_secs;

mod agent;
mod bandwidth;
mod client;
mod operations;
mod policy;

pub(crate) use client::ServiceError;
use client::{path_segment, Client};

/// coffer in remote mode: manage a Coffer service.
#[derive(Parser)]
#[command(
    name = "coffer",
    version,
    about = "Manage a running Coffer service (remote mode)"
)]
pub struct RemoteCli {
    /// The service's address, such as http://127.0.0.1:8420.
    #[arg(long, env = "COFFER_SERVER", value_name = "URL", global = true)]
    server: Option<String>,
    /// An API token (create one with POST /api/v1/tokens or `coffer --server URL token create`).
    #[arg(
        long,
        env = "COFFER_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        global = true
    )]
    token: Option<String>,
    /// Trust the service's TLS certificate by its SHA-256 fingerprint (a
    /// self-signed one), instead of by the system's authorities.
    #[arg(long, env = "COFFER_SERVER_FINGERPRINT", value_name = "SHA256")]
    server_fingerprint: Option<String>,
    /// Print the API's JSON answers.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: RemoteCommand,
}

#[derive(Subcommand)]
enum RemoteCommand {
    /// Vaults the service manages.
    #[command(subcommand)]
    Vault(VaultCmd),
    /// Protected items.
    #[command(subcommand)]
    Item(ItemCmd),
    /// Policies (schedule and retention) of a vault.
    #[command(subcommand)]
    Policy(policy::PolicyCmd),
    /// Jobs: list, follow, cancel.
    #[command(subcommand)]
    Job(JobCmd),
    /// Alerts with their remediation.
    #[command(subcommand)]
    Alert(AlertCmd),
    /// API tokens of the caller.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Agents: hosts that back up their own items through the service.
    #[command(subcommand)]
    Agent(agent::AgentCmd),
    /// Infrastructure sets: items backed up together into one point.
    #[command(subcommand)]
    Set(SetCmd),
    /// Recovery points of a vault.
    #[command(subcommand)]
    Points(operations::PointsCmd),
    /// List the entries of a point, or of one path in it.
    Ls(operations::LsArgs),
    /// Restore a point (or paths in it) on the service's machine.
    Restore(operations::RestoreArgs),
    /// Back an item up now and wait for the new point.
    Backup(operations::BackupArgs),
    /// Check the vault's integrity now.
    Check(operations::CheckArgs),
    /// Apply the vault's policies and collect garbage now.
    Prune(operations::PruneArgs),
    /// Back an item up now (the schedule is not moved).
    BackupNow {
        item: String,
        /// Wait for the job to end and exit with its outcome.
        #[arg(long)]
        wait: bool,
    },
}

#[derive(Subcommand)]
enum SetCmd {
    List,
    Show {
        name: String,
    },
    /// Create a set (default: every 12 hours, kept 7 days).
    Add {
        name: String,
        #[arg(long)]
        vault: String,
        /// Items of the vault, in the order they are backed up (repeatable).
        #[arg(long = "item", required = true)]
        items: Vec<String>,
        /// `every N h from HH:MM`, `daily HH:MM` or `weekly mon,thu HH:MM`.
        #[arg(long)]
        schedule: Option<String>,
        #[arg(long)]
        retention_days: Option<u32>,
        /// When a recovery drill runs on its own.
        #[arg(long)]
        drill_schedule: Option<String>,
    },
    /// Remove a set; its points stay in the vault.
    Remove {
        name: String,
    },
    /// Back the set up now.
    BackupNow {
        name: String,
        #[arg(long)]
        wait: bool,
    },
    /// Run a recovery drill of the set's newest point now.
    Drill {
        name: String,
        #[arg(long)]
        wait: bool,
    },
    /// The set points in a vault, with per-item status and readiness.
    Points {
        #[arg(long)]
        vault: String,
    },
}

#[derive(Subcommand)]
enum VaultCmd {
    List,
    Show {
        name: String,
    },
    /// Create a vault at a location (or attach an existing one with --attach).
    Create {
        name: String,
        #[arg(long)]
        location: String,
        /// Attach an existing vault; its key comes from COFFER_KEY.
        #[arg(long)]
        attach: bool,
        /// Storage credentials, NAME=value (repeatable); sent once, never shown.
        #[arg(long = "credential", value_name = "NAME=VALUE")]
        credentials: Vec<String>,
    },
    /// Rotate the vault's key; without COFFER_KEY a new key is generated and shown once.
    RotateKey {
        name: String,
    },
    /// Forget a vault (its data stays at the location).
    Remove {
        name: String,
    },
}

// Parsed once per run: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum ItemCmd {
    List,
    Show {
        name: String,
    },
    /// Protect a directory tree (the default), a SQLite database, a
    /// PostgreSQL database or cluster, a command's output, or disk images.
    Add {
        name: String,
        #[arg(long)]
        vault: String,
        /// directory, sqlite, postgresql, command or disk.
        #[arg(long, default_value = "directory")]
        kind: String,
        /// Absolute paths (repeatable); for sqlite, the database file.
        #[arg(long = "path")]
        paths: Vec<String>,
        #[arg(long = "exclude")]
        excludes: Vec<String>,
        /// postgresql: libpq connection string, without a password.
        #[arg(long, value_name = "CONNINFO")]
        pg_connection: Option<String>,
        /// postgresql: the database (else the whole cluster is backed up).
        #[arg(long, value_name = "NAME")]
        pg_database: Option<String>,
        /// postgresql: directory of pg_dump and friends.
        #[arg(long, value_name = "DIR")]
        pg_bin_dir: Option<String>,
        /// command: what writes the data to back up on its output.
        #[arg(long, value_name = "SHELL")]
        backup_command: Option<String>,
        /// command: what reads a point's data on its input.
        #[arg(long, value_name = "SHELL")]
        restore_command: Option<String>,
        /// disk: the images' format, raw (files, block devices) or qcow2.
        #[arg(long, value_name = "FORMAT")]
        disk_format: Option<String>,
        /// Script run before each backup (quiesce the application).
        #[arg(long, value_name = "SHELL")]
        pre: Option<String>,
        /// Script run after each backup.
        #[arg(long, value_name = "SHELL")]
        post: Option<String>,
        /// The registered agent the item lives on (`coffer agent list`);
        /// without it, the service's own machine.
        #[arg(long, value_name = "NAME")]
        agent: Option<String>,
        /// Policy to assign (default: the vault's DefaultPolicy).
        #[arg(long)]
        policy: Option<String>,
        /// Retries after a failed backup.
        #[arg(long, default_value_t = 2)]
        retries: u32,
    },
    /// Stop managing an item; its points stay in the vault.
    Remove {
        name: String,
    },
    /// Assign a policy.
    SetPolicy {
        name: String,
        policy: String,
    },
}

#[derive(Subcommand)]
enum JobCmd {
    List {
        #[arg(long)]
        item: Option<String>,
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    Show {
        id: i64,
    },
    Logs {
        id: i64,
        /// Keep printing new lines until the job ends.
        #[arg(long)]
        follow: bool,
    },
    Cancel {
        id: i64,
    },
}

#[derive(Subcommand)]
enum AlertCmd {
    List {
        /// Resolved alerts too.
        #[arg(long)]
        all: bool,
    },
    Resolve {
        id: i64,
    },
}

#[derive(Subcommand)]
enum TokenCmd {
    List,
    /// Create a token; its secret is shown once.
    Create {
        name: String,
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    Revoke {
        id: i64,
    },
}

/// Whether the command line asks for remote mode.
pub fn requested() -> bool {
    std::env::var_os("COFFER_SERVER").is_some_and(|v| !v.is_empty())
        || std::env::args_os()
            .any(|a| a == "--server" || a.to_string_lossy().starts_with("--server="))
}

fn time(t: Option<i64>) -> String {
    t.map(time_secs).unwrap_or_else(|| "-".into())
}

fn print<T: serde::Serialize + ?Sized>(json: bool, value: &T, human: impl FnOnce(&T)) {
    if json {
        crate::output::print_json(value);
    } else {
        human(value);
    }
}

/// Runs one remote command.
pub fn run() -> Result<ExitCode> {
    let cli = match RemoteCli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            use clap::CommandFactory;
            let local = crate::cli::Cli::command();
            match crate::grammar::other_mode(&err, &RemoteCli::command(), &local, false) {
                Some(line) => {
                    eprintln!("error: {line}");
                    return Ok(ExitCode::from(2));
                }
                None => err.exit(),
            }
        }
    };
    let server = cli
        .server
        .clone()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            anyhow!("give the service's address with --server URL (or COFFER_SERVER)")
        })?;
    if let RemoteCommand::Agent(cmd @ agent::AgentCmd::Register { .. }) = cli.command {
        return agent::register(&server, cli.token.as_deref(), cli.json, cmd);
    }
    let token = cli
        .token
        .clone()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| anyhow!("no API token: set COFFER_TOKEN (create one in the console or with POST /api/v1/tokens)"))?;
    let mut http =
        reqwest::blocking::Client::builder().timeout(std::time::Duration::from_secs(120));
    if let Some(fp) = &cli.server_fingerprint {
        http = coffer_agent::client::pin(http, fp)?;
    }
    let client = Client {
        http: http.build().context("cannot start the HTTP client")?,
        base: server.trim_end_matches('/').to_string(),
        token,
    };
    let json = cli.json;
    match cli.command {
        RemoteCommand::Vault(cmd) => vault(&client, json, cmd),
        RemoteCommand::Item(cmd) => item(&client, json, cmd),
        RemoteCommand::Policy(cmd) => policy::run(&client, json, cmd),
        RemoteCommand::Set(cmd) => set_cmd(&client, json, cmd),
        RemoteCommand::Job(cmd) => job(&client, json, cmd),
        RemoteCommand::Alert(cmd) => alert(&client, json, cmd),
        RemoteCommand::Token(cmd) => token_cmd(&client, json, cmd),
        RemoteCommand::Agent(cmd) => agent::run(&client, json, cmd),
        RemoteCommand::Points(cmd) => operations::points(&client, json, cmd),
        RemoteCommand::Ls(args) => operations::ls(&client, json, args),
        RemoteCommand::Restore(args) => operations::restore(&client, json, args),
        RemoteCommand::Backup(args) => operations::backup(&client, json, args),
        RemoteCommand::Check(args) => operations::check(&client, json, args),
        RemoteCommand::Prune(args) => operations::prune(&client, json, args),
        RemoteCommand::BackupNow { item, wait } => {
            let path = format!("/items/{}/backup", path_segment(&item));
            start_job(&client, json, &path, &item, wait)
        }
    }
}

/// Starts a job by POSTing to `path`; with `wait`, follows it to its end
/// and exits with its outcome.
fn start_job(client: &Client, json: bool, path: &str, what: &str, wait: bool) -> Result<ExitCode> {
    let job: Job = client.post_as(path, &json!({}))?;
    if !wait {
        print(json, &job, |j| println!("job {} queued for {what}", j.id));
        return Ok(ExitCode::SUCCESS);
    }
    let done = wait_job(client, job.id)?;
    print(json, &done, show_job);
    Ok(job_exit(&done))
}

fn set_cmd(client: &Client, json: bool, cmd: SetCmd) -> Result<ExitCode> {
    match cmd {
        SetCmd::List => {
            let sets: Vec<InfraSet> = client.get_as("/sets")?;
            print(json, &sets, |sets| {
                for x in sets {
                    println!(
                        "{:<20} vault {:<16} {:<24} kept {} days  items {}",
                        x.name,
                        x.vault,
                        x.schedule,
                        x.retention_days,
                        x.items.join(", ")
                    );
                }
            });
        }
        SetCmd::Show { name } => {
            let set: InfraSet = client.get_as(&format!("/sets/{}", path_segment(&name)))?;
            crate::output::print_json(&set);
        }
        SetCmd::Add {
            name,
            vault,
            items,
            schedule,
            retention_days,
            drill_schedule,
        } => {
            let body = NewSet {
                name: name.clone(),
                vault,
                items,
                schedule: schedule.unwrap_or_else(|| DEFAULT_SCHEDULE.into()),
                time_zone: "UTC".into(),
                retention_days: retention_days.unwrap_or(DEFAULT_RETENTION_DAYS),
                enabled: true,
                drill_schedule,
            };
            let set: InfraSet = client.post_as("/sets", &body)?;
            print(json, &set, |set| {
                println!(
                    "set {name} added: {}, kept {} days",
                    set.schedule, set.retention_days
                )
            });
        }
        SetCmd::Remove { name } => {
            client.call(
                reqwest::Method::DELETE,
                &format!("/sets/{}", path_segment(&name)),
                None,
            )?;
            if !json {
                println!("set {name} removed (its points stay in the vault)");
            }
        }
        SetCmd::BackupNow { name, wait } => {
            let path = format!("/sets/{}/backup", path_segment(&name));
            return start_job(client, json, &path, &name, wait);
        }
        SetCmd::Drill { name, wait } => {
            let path = format!("/sets/{}/drill", path_segment(&name));
            return start_job(client, json, &path, &name, wait);
        }
        SetCmd::Points { vault } => {
            let points: Vec<SetPointInfo> =
                client.get_as(&format!("/vaults/{}/set-points", path_segment(&vault)))?;
            print(json, &points, |points| {
                points.iter().for_each(show_set_point)
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn show_set_point(p: &SetPointInfo) {
    let ready = if p.ready_for_cloud_recovery {
        "ready for cloud recovery".to_string()
    } else {
        format!(
            "NOT ready: {}",
            p.not_ready_because.as_deref().unwrap_or("")
        )
    };
    println!("{}  set {}  {}  {ready}", p.id, p.set, time_secs(p.time));
    for s in &p.items {
        println!("    {:<24} {:<10} {}", s.item, s.kind, s.status);
    }
}

/// Whether a job is still to end.
fn pending(job: &Job) -> bool {
    matches!(job.state, JobState::Queued | JobState::Running)
}

pub(crate) fn wait_job(client: &Client, id: i64) -> Result<Job> {
    loop {
        let job: Job = client.get_as(&format!("/jobs/{id}"))?;
        if !pending(&job) {
            return Ok(job);
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

pub(crate) fn job_exit(job: &Job) -> ExitCode {
    match job.state {
        JobState::Succeeded => ExitCode::SUCCESS,
        JobState::PartialSucceeded => ExitCode::from(crate::exit::PARTIAL),
        _ => ExitCode::from(crate::exit::ERROR),
    }
}

fn vault(client: &Client, json: bool, cmd: VaultCmd) -> Result<ExitCode> {
    match cmd {
        VaultCmd::List => {
            let vaults: Vec<VaultInfo> = client.get_as("/vaults")?;
            print(json, &vaults, |vaults| {
                for x in vaults {
                    println!(
                        "{:<20} {:<50} key {}",
                        x.name, x.location, x.key_fingerprint
                    );
                }
            });
        }
        VaultCmd::Show { name } => {
            let vault: VaultInfo = client.get_as(&format!("/vaults/{}", path_segment(&name)))?;
            crate::output::print_json(&vault);
        }
        VaultCmd::Create {
            name,
            location,
            attach,
            credentials,
        } => {
            let mut creds = BTreeMap::new();
            for c in credentials {
                let (k, v) = c
                    .split_once('=')
                    .ok_or_else(|| anyhow!("--credential {c:?}: write it as NAME=value"))?;
                creds.insert(k.to_string(), v.to_string());
            }
            let key = std::env::var("COFFER_KEY").ok().filter(|k| !k.is_empty());
            if attach && key.is_none() {
                bail!("--attach needs the vault's key in COFFER_KEY");
            }
            let body = NewVault {
                name,
                location,
                credentials: creds,
                key,
                create: !attach,
            };
            let made: VaultWithKey = client.post_as("/vaults", &body)?;
            print(json, &made, |made| {
                println!("vault {} at {}", made.vault.name, made.vault.location);
                if let Some(k) = &made.generated_key {
                    println!("\nThe service generated this vault key. It is shown once; store it apart from the service, it is needed to recover elsewhere:\n\n    {k}\n");
                }
            });
        }
        VaultCmd::RotateKey { name } => {
            let key = std::env::var("COFFER_KEY").ok().filter(|k| !k.is_empty());
            let rotated: VaultWithKey = client.post_as(
                &format!("/vaults/{}/key/rotate", path_segment(&name)),
                &KeyRequest { key },
            )?;
            print(json, &rotated, |rotated| {
                println!("rotated; key fingerprint {}", rotated.vault.key_fingerprint);
                if let Some(k) = &rotated.generated_key {
                    println!("\nThe new vault key, shown once:\n\n    {k}\n");
                }
            });
        }
        VaultCmd::Remove { name } => {
            client.call(
                reqwest::Method::DELETE,
                &format!("/vaults/{}", path_segment(&name)),
                None,
            )?;
            if !json {
                println!("vault {name} removed from the service (its data stays at the location)");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// An item with its schedule, as `item show` prints it.
#[derive(serde::Serialize)]
struct ItemWithSchedule {
    #[serde(flatten)]
    item: Item,
    schedule: ItemSchedule,
}

fn item(client: &Client, json: bool, cmd: ItemCmd) -> Result<ExitCode> {
    match cmd {
        ItemCmd::List => {
            let items: Vec<Item> = client.get_as("/items")?;
            print(json, &items, |items| {
                for x in items {
                    println!(
                        "{:<24} vault {:<16} {} {}",
                        x.name,
                        x.vault,
                        if x.enabled { "enabled " } else { "disabled" },
                        x.paths.join(" ")
                    );
                }
            });
        }
        ItemCmd::Show { name } => {
            let item: Item = client.get_as(&format!("/items/{}", path_segment(&name)))?;
            let schedule: ItemSchedule =
                client.get_as(&format!("/items/{}/schedule", path_segment(&name)))?;
            let shown = ItemWithSchedule { item, schedule };
            print(json, &shown, |shown| {
                let (item, schedule) = (&shown.item, &shown.schedule);
                println!("{}: {} in vault {}", name, item.kind, item.vault);
                println!("policy {}: {}", schedule.policy, schedule.schedule);
                println!(
                    "next run {}; last run {} ({}); last success {}",
                    time(schedule.next_run),
                    time(schedule.last_run),
                    schedule.last_state.as_deref().unwrap_or("-"),
                    time(schedule.last_success)
                );
            });
        }
        ItemCmd::Add {
            name,
            vault,
            kind,
            paths,
            excludes,
            pg_connection,
            pg_database,
            pg_bin_dir,
            backup_command,
            restore_command,
            disk_format,
            pre,
            post,
            agent,
            policy,
            retries,
        } => {
            let disk = match disk_format.as_deref() {
                None => None,
                Some("raw") => Some(DiskSpec {
                    format: DiskFormat::Raw,
                }),
                Some("qcow2") => Some(DiskSpec {
                    format: DiskFormat::Qcow2,
                }),
                Some(other) => bail!("--disk-format {other:?}: give raw or qcow2"),
            };
            let postgresql = pg_connection.map(|connection| PostgresSpec {
                mode: if pg_database.is_some() {
                    PostgresMode::Database
                } else {
                    PostgresMode::Cluster
                },
                connection,
                database: pg_database,
                bin_dir: pg_bin_dir,
            });
            let command = backup_command.map(|backup| CommandSpec {
                backup,
                restore: restore_command,
                file_name: CommandSpec::DEFAULT_FILE_NAME.into(),
                application_consistent: false,
            });
            let body = NewItem {
                name: name.clone(),
                vault: vault.clone(),
                kind,
                paths,
                excludes,
                postgresql,
                command,
                disk,
                pre: pre.map(Hook::new),
                post: post.map(Hook::new),
                agent,
                enabled: true,
                retry_attempts: retries,
                retry_delay_secs: NewItem::DEFAULT_RETRY_DELAY_SECS,
                policy: None,
            };
            let added: Item = client.post_as("/items", &body)?;
            if let Some(p) = policy {
                client.typed::<Value>(
                    reqwest::Method::PUT,
                    &format!("/items/{}/policy", path_segment(&name)),
                    Some(&PolicyAssignment { policy: p }),
                )?;
            }
            print(json, &added, |_| {
                println!("item {name} added to vault {vault}")
            });
        }
        ItemCmd::Remove { name } => {
            client.call(
                reqwest::Method::DELETE,
                &format!("/items/{}", path_segment(&name)),
                None,
            )?;
            if !json {
                println!("item {name} removed (its points stay in the vault)");
            }
        }
        ItemCmd::SetPolicy { name, policy } => {
            client.call(
                reqwest::Method::PUT,
                &format!("/items/{}/policy", path_segment(&name)),
                Some(serde_json::to_value(PolicyAssignment {
                    policy: policy.clone(),
                })?),
            )?;
            if !json {
                println!("item {name} follows policy {policy}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn show_job(j: &Job) {
    println!(
        "job {} {} {} of {}: {} (attempt {}, {}), started {}, ended {}",
        j.id,
        j.kind,
        j.trigger,
        j.item.as_deref().unwrap_or("-"),
        j.state.as_str(),
        j.attempt,
        j.requested_by.as_deref().unwrap_or("scheduler"),
        time(j.started),
        time(j.finished)
    );
    if let Some(p) = &j.progress {
        println!(
            "  {} files, {} bytes read, {} new, {} stored, {:.1} MB/s",
            p.files,
            p.bytes_read,
            p.bytes_new,
            p.bytes_stored,
            p.rate_bytes_per_sec / 1e6
        );
    }
    if let Some(e) = &j.error {
        println!(
            "  error ({}): {e}",
            j.cause.map_or("general_fault", |c| c.as_str())
        );
    }
}

fn show_log_line(l: &LogLine) {
    println!("{} {:<5} {}", time_secs(l.time), l.level, l.message);
}

fn job(client: &Client, json: bool, cmd: JobCmd) -> Result<ExitCode> {
    match cmd {
        JobCmd::List { item, state, limit } => {
            let mut query = format!("?limit={limit}");
            if let Some(i) = item {
                query.push_str(&format!("&item={}", path_segment(&i)));
            }
            if let Some(s) = state {
                query.push_str(&format!("&state={}", path_segment(&s)));
            }
            let jobs: Vec<Job> = client.get_as(&format!("/jobs{query}"))?;
            print(json, &jobs, |jobs| jobs.iter().for_each(show_job));
        }
        JobCmd::Show { id } => {
            let job: Job = client.get_as(&format!("/jobs/{id}"))?;
            print(json, &job, show_job);
        }
        JobCmd::Logs { id, follow } => {
            let mut after = 0;
            loop {
                let lines: Vec<LogLine> =
                    client.get_as(&format!("/jobs/{id}/logs?after={after}"))?;
                for l in &lines {
                    after = l.seq;
                    if json {
                        crate::output::print_json_line(l);
                    } else {
                        show_log_line(l);
                    }
                }
                if !follow {
                    break;
                }
                let job: Job = client.get_as(&format!("/jobs/{id}"))?;
                if !pending(&job) {
                    // One more read for the lines written as it ended.
                    let lines: Vec<LogLine> =
                        client.get_as(&format!("/jobs/{id}/logs?after={after}"))?;
                    lines.iter().for_each(show_log_line);
                    return Ok(job_exit(&job));
                }
                std::thread::sleep(std::time::Duration::from_millis(500));
            }
        }
        JobCmd::Cancel { id } => {
            let job: Job = client.post_as(&format!("/jobs/{id}/cancel"), &json!({}))?;
            print(json, &job, |_| println!("job {id}: cancel requested"));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn show_alert(a: &Alert) {
    println!(
        "alert {} [{}] {} ({}x, {}{}): {}",
        a.id,
        a.severity.as_str(),
        a.title,
        a.occurrences,
        a.state,
        a.item
            .as_deref()
            .map(|i| format!(", item {i}"))
            .unwrap_or_default(),
        a.detail
    );
    for (i, step) in a.remediation.iter().enumerate() {
        println!("    {}. {step}", i + 1);
    }
}

fn alert(client: &Client, json: bool, cmd: AlertCmd) -> Result<ExitCode> {
    match cmd {
        AlertCmd::List { all } => {
            let alerts: Vec<Alert> = client.get_as(&format!("/alerts?open={}", !all))?;
            print(json, &alerts, |alerts| alerts.iter().for_each(show_alert));
        }
        AlertCmd::Resolve { id } => {
            let alert: Alert = client.post_as(&format!("/alerts/{id}/resolve"), &json!({}))?;
            print(json, &alert, |_| println!("alert {id} resolved"));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn token_cmd(client: &Client, json: bool, cmd: TokenCmd) -> Result<ExitCode> {
    match cmd {
        TokenCmd::List => {
            let tokens: Vec<Token> = client.get_as("/tokens")?;
            print(json, &tokens, |tokens| {
                for t in tokens {
                    println!(
                        "{} {} (user {}), created {}, last used {}",
                        t.id,
                        t.name,
                        t.user,
                        time_secs(t.created),
                        time(t.last_used)
                    );
                }
            });
        }
        TokenCmd::Create {
            name,
            expires_in_days,
        } => {
            let made: CreatedToken = client.post_as(
                "/tokens",
                &NewToken {
                    name,
                    expires_in_days,
                },
            )?;
            print(json, &made, |made| {
                println!(
                    "token {} created; its secret, shown once:\n\n    {}\n",
                    made.token.id, made.secret
                )
            });
        }
        TokenCmd::Revoke { id } => {
            client.call(reqwest::Method::DELETE, &format!("/tokens/{id}"), None)?;
            if !json {
                println!("token {id} revoked");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
