//! The command line's grammar: the global options, the commands, and the
//! dispatch from each command to the module in [`commands`] that runs it.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::commands::{
    agent, backup, benchmark, check, disk, item, key, location, ls, points, policy, prune, recover,
    restore, serve, vault,
};
use crate::ctx::{Ctx, GlobalArgs};

/// Coffer: encrypted, deduplicated, incremental backups.
#[derive(Parser)]
#[command(name = "coffer", version, about)]
pub struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    /// Log more (COFFER_LOG=debug for everything).
    #[arg(long, short, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Manage vault keys.
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// Create and inspect vaults.
    #[command(subcommand)]
    Vault(vault::VaultCommand),
    /// Back up paths into a new recovery point.
    Backup(backup::BackupArgs),
    /// List and inspect recovery points; hold, delete and undelete them.
    #[command(subcommand)]
    Points(points::PointsCommand),
    /// Backup policies: schedule and retention.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Stop or resume the protection of an item.
    #[command(subcommand)]
    Item(item::ItemCommand),
    /// Apply retention: soft-delete expired points, purge old soft-deleted ones.
    Prune(prune::PruneArgs),
    /// List the files of a recovery point.
    Ls(ls::LsArgs),
    /// Restore a recovery point under a target directory.
    Restore(restore::RestoreArgs),
    /// Storage locations.
    #[command(subcommand)]
    Location(location::LocationCommand),
    /// Run the backup service: REST API, scheduler and job runner.
    Serve(serve::ServeArgs),
    /// Recover a deployment from a storage location and its key: list the
    /// set points there, restore one (the service's configuration and every
    /// item, or one item), or drill one with --verify.
    Recover(recover::RecoverArgs),
    /// Measure this machine's speed for each pipeline stage, one core at a time.
    Benchmark(benchmark::BenchmarkArgs),
    /// Verify the vault's integrity.
    Check(check::CheckArgs),
    /// Disk images (raw, block devices, qcow2): back up and restore.
    #[command(subcommand)]
    Disk(disk::DiskCommand),
    /// This host as an agent of a Coffer service (register it with
    /// `coffer --server URL agent register --token TOKEN`).
    #[command(subcommand)]
    Agent(agent::AgentCommand),
}

pub fn run(cli: Cli) -> Result<ExitCode> {
    let ctx = Ctx::new(cli.global);
    match cli.command {
        Command::Key(cmd) => key::run(&ctx, cmd),
        Command::Vault(cmd) => vault::run(&ctx, cmd),
        Command::Backup(args) => backup::run(&ctx, args),
        Command::Points(cmd) => points::run(&ctx, cmd),
        Command::Policy(cmd) => policy::run(&ctx, cmd),
        Command::Item(cmd) => item::run(&ctx, cmd),
        Command::Prune(args) => prune::run(&ctx, args),
        Command::Ls(args) => ls::run(&ctx, args),
        Command::Restore(args) => restore::run(&ctx, args),
        Command::Location(cmd) => location::run(&ctx, cmd),
        Command::Serve(args) => serve::run(args),
        Command::Recover(args) => recover::run(&ctx, args),
        Command::Benchmark(args) => benchmark::run(&ctx, args),
        Command::Check(args) => check::run(&ctx, args),
        Command::Disk(cmd) => disk::run(&ctx, cmd),
        Command::Agent(cmd) => agent::run(ctx.json, cmd),
    }
}
