//! `coffer item`: stop protecting an item (keeping its points or
//! soft-deleting them) and resume it under its policy.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use coffer_engine::changes;

use crate::ctx::{Ctx, VaultArg};

#[derive(Subcommand)]
pub(crate) enum ItemCommand {
    /// Stop protecting an item: keep its points forever, or soft-delete them.
    Stop {
        #[command(flatten)]
        vault: VaultArg,
        item: String,
        /// Keep every point forever (resume re-applies the policy).
        #[arg(
            long,
            conflicts_with = "delete_data",
            required_unless_present = "delete_data"
        )]
        retain_data: bool,
        /// Soft-delete every point of the item.
        #[arg(long)]
        delete_data: bool,
    },
    /// Protect an item again under its policy.
    Resume {
        #[command(flatten)]
        vault: VaultArg,
        item: String,
    },
}

pub(crate) fn run(ctx: &Ctx, cmd: ItemCommand) -> Result<ExitCode> {
    match cmd {
        ItemCommand::Stop {
            vault,
            item,
            delete_data,
            ..
        } => {
            let v = ctx.open(&vault.vault)?;
            changes::stop_protection(&v, &item, delete_data)?;
            if delete_data {
                println!("stopped protecting {item:?}; its points are soft-deleted (see `coffer points undelete`)");
            } else {
                println!(
                    "stopped protecting {item:?}; its points are kept until protection resumes"
                );
            }
        }
        ItemCommand::Resume { vault, item } => {
            let v = ctx.open(&vault.vault)?;
            changes::resume_protection(&v, &item)?;
            println!(
                "{item:?} is protected again under {}",
                v.state()?.policy_of(&item).name
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
