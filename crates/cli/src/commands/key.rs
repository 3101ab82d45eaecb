//! Vault keys: generate one, add and remove key slots, rotate the key in
//! use. Key material is printed once, to standard output, and never
//! taken from the command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use coffer_engine::{Vault, VaultKey};
use serde_json::json;

use crate::ctx::{Ctx, VaultArg};
use crate::output::{print_json, time_secs};

#[derive(Subcommand)]
pub(crate) enum KeyCommand {
    /// Print a new random 256-bit vault key (base64), once.
    Generate,
    /// Add a key slot for another key (COFFER_NEW_KEY, --new-key-file, or a generated one),
    /// or with --write-only a credential that can add backups but not read or delete them.
    Add {
        #[command(flatten)]
        vault: VaultArg,
        #[arg(long, value_name = "FILE", conflicts_with = "write_only")]
        new_key_file: Option<PathBuf>,
        /// Print a write-only credential for one host (format 5 vaults).
        #[arg(long)]
        write_only: bool,
        /// The write-only credential's name, for example the host's (default writer-N).
        #[arg(long, value_name = "NAME", requires = "write_only")]
        name: Option<String>,
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
    /// Remove a key slot (never the last one), or revoke a write-only credential.
    Remove {
        #[command(flatten)]
        vault: VaultArg,
        slot: String,
    },
}

pub(crate) fn run(ctx: &Ctx, cmd: KeyCommand) -> Result<ExitCode> {
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
            write_only: true,
            name,
            ..
        } => add_writer(ctx, &vault, name),
        KeyCommand::Add {
            vault,
            new_key_file,
            ..
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
            let writers = Vault::writer_slots(v.storage())?;
            let mut rows = Vec::new();
            for s in &slots {
                match s {
                    Ok(s) => rows.push(json!({"slot": s.id, "kind": "vault key", "created": time_secs(s.created), "kdf": "argon2id",
                        "memory_kib": s.kdf.memory_kib, "iterations": s.kdf.iterations, "parallelism": s.kdf.parallelism,
                        "in_use": s.id == v.current_slot()})),
                    Err(e) => rows.push(json!({"error": e.to_string()})),
                }
            }
            for w in &writers {
                match w {
                    Ok(w) => rows.push(json!({"slot": w.slot.id, "kind": "write-only", "name": w.slot.name,
                        "fingerprint": w.slot.fingerprint_hex(), "created": time_secs(w.slot.created), "revoked": w.revoked})),
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
                for w in writers {
                    match w {
                        Ok(w) => println!(
                            "{}  created {}  write-only {}  fingerprint {}{}",
                            w.slot.id,
                            time_secs(w.slot.created),
                            w.slot.name,
                            w.slot.fingerprint_hex(),
                            if w.revoked { "  (revoked)" } else { "" }
                        ),
                        Err(e) => println!("damaged write-only slot: {e}"),
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        KeyCommand::Remove { vault, slot } => {
            let v = ctx.open(&vault.vault)?;
            let writer = Vault::writer_slots(v.storage())?
                .into_iter()
                .flatten()
                .any(|e| e.slot.id == slot);
            if writer {
                let (revoked, points) = v.revoke_writer(&slot)?;
                eprintln!(
                    "revoked the write-only credential {} (slot {slot}): it is refused from now on. The {points} point(s) it wrote stay; `coffer check` names any it writes later.",
                    revoked.name
                );
            } else {
                v.remove_key(&slot)?;
                eprintln!("removed key slot {slot}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Adds a write-only credential and prints it, once.
fn add_writer(ctx: &Ctx, vault: &VaultArg, name: Option<String>) -> Result<ExitCode> {
    let v = ctx.open(&vault.vault)?;
    let name = match name {
        Some(n) => n,
        None => {
            let taken: Vec<String> = Vault::writer_slots(v.storage())?
                .into_iter()
                .flatten()
                .map(|e| e.slot.name)
                .collect();
            (1..)
                .map(|n| format!("writer-{n}"))
                .find(|n| !taken.contains(n))
                .unwrap_or_default()
        }
    };
    let (slot, credential) = v.add_writer(&name)?;
    eprintln!(
        "added the write-only credential {name} (slot {}, fingerprint {}). It is shown once, now.",
        slot.id,
        slot.fingerprint_hex()
    );
    eprintln!("Give it to that host as COFFER_KEY or --key-file: it adds backups, and can neither read nor delete any.");
    println!("{}", credential.to_text().as_str());
    Ok(ExitCode::SUCCESS)
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
