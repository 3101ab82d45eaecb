//! `coffer disk`: disk images without a service. `backup` stores raw
//! images, block devices or qcow2 images as one disk point of an item
//! (qcow2 with the item's persistent dirty bitmap); `restore` writes one
//! disk of a point to an image file or a block device, sparse, every block
//! verified, as raw or as a new qcow2 that carries a bitmap counting from
//! the restored point.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Subcommand, ValueEnum};
use coffer_engine::backup::{BackupOptions, Progress};
use coffer_engine::restore::{RestoreProgress, VaultSource};
use coffer_engine::tree::NodeKind;
use coffer_sources::{DiskFormat, DiskSpec, ItemDef, Kind};

use super::backup::print_backup_summary;
use crate::ctx::{Ctx, VaultArg};
use crate::output::{size, Sample, Ticker};

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Format {
    Raw,
    Qcow2,
}

impl From<Format> for DiskFormat {
    fn from(f: Format) -> DiskFormat {
        match f {
            Format::Raw => DiskFormat::Raw,
            Format::Qcow2 => DiskFormat::Qcow2,
        }
    }
}

#[derive(Subcommand)]
pub(crate) enum DiskCommand {
    /// Back up disk images into one new disk point of an item.
    Backup {
        #[command(flatten)]
        vault: VaultArg,
        /// The item the point belongs to (its dirty bitmaps carry its name).
        #[arg(long)]
        item: String,
        /// The images' format: raw (files, block devices) or qcow2. Never
        /// guessed from the image.
        #[arg(long, value_enum, default_value = "raw")]
        format: Format,
        /// Image files or block devices (absolute paths; each disk is named
        /// by its file name).
        #[arg(required = true, value_name = "IMAGE")]
        images: Vec<PathBuf>,
    },
    /// Restore one disk of a disk point to an image file or a block device.
    Restore {
        #[command(flatten)]
        vault: VaultArg,
        /// Point id, unique id prefix, or `latest`.
        point: String,
        /// The disk to restore (its name in the point); needed when the
        /// point holds several.
        #[arg(long, value_name = "NAME")]
        disk: Option<String>,
        /// The image file to write, or a block device.
        #[arg(long, value_name = "FILE|DEVICE")]
        target: PathBuf,
        /// Write a raw image, or a new qcow2 image with a dirty bitmap of
        /// the point's item counting from this point.
        #[arg(long, value_enum, default_value = "raw")]
        format: Format,
        /// Replace the target when it exists (a block device always exists).
        #[arg(long)]
        overwrite: bool,
    },
}

pub(crate) fn run(ctx: &Ctx, cmd: DiskCommand) -> Result<ExitCode> {
    match cmd {
        DiskCommand::Backup {
            vault,
            item,
            format,
            images,
        } => backup(ctx, vault, item, format, images),
        DiskCommand::Restore {
            vault,
            point,
            disk,
            target,
            format,
            overwrite,
        } => restore(ctx, vault, point, disk, target, format, overwrite),
    }
}

fn backup(
    ctx: &Ctx,
    vault: VaultArg,
    item: String,
    format: Format,
    images: Vec<PathBuf>,
) -> Result<ExitCode> {
    let mut paths = Vec::new();
    for i in images {
        paths.push(
            std::path::absolute(&i)
                .with_context(|| format!("{}", i.display()))?
                .to_string_lossy()
                .into_owned(),
        );
    }
    let def = ItemDef {
        name: item,
        kind: Kind::Disk,
        paths,
        excludes: Vec::new(),
        postgresql: None,
        command: None,
        disk: Some(DiskSpec {
            format: format.into(),
        }),
        pre: None,
        post: None,
    };
    let v = ctx.open_destination(&vault.vault)?;
    let progress = Arc::new(Progress::default());
    let captured = {
        let p = progress.clone();
        let _ticker = Ticker::start(ctx.json, "backup", move || Sample {
            files: p.files.load(Ordering::Relaxed),
            bytes: p.bytes_read.load(Ordering::Relaxed),
            total_bytes: None,
        });
        coffer_sources::back_up(&*v, &def, &BackupOptions::default(), &progress)
            .context("disk backup failed")?
    };
    let summary = captured.report.summary();
    let code = print_backup_summary(ctx.json, &summary);
    if !ctx.json {
        for d in &summary.disks {
            println!(
                "disk {}: {} of {} read ({}), {} block(s) changed{}",
                d.name,
                size(d.bytes_read),
                size(d.size),
                d.method,
                d.blocks_changed,
                d.note
                    .as_deref()
                    .map(|n| format!("; dirty bitmap not used: {n}"))
                    .unwrap_or_default()
            );
        }
    }
    Ok(code)
}

fn restore(
    ctx: &Ctx,
    vault: VaultArg,
    point: String,
    disk: Option<String>,
    target: PathBuf,
    format: Format,
    overwrite: bool,
) -> Result<ExitCode> {
    let v = ctx.open_readable(&vault.vault)?;
    let p = v.resolve_point(&point, None)?;
    let index = v.load_index()?;
    let source = VaultSource {
        vault: &v,
        index: &index,
    };
    let root = v.read_tree(&index, &p.manifest.tree)?;
    let disks: Vec<_> = root
        .nodes
        .iter()
        .filter(|n| matches!(n.kind, NodeKind::Disk { .. }))
        .collect();
    let node = match (&disk, disks.as_slice()) {
        (_, []) => bail!("point {} holds no disk", p.id.to_hex()),
        (None, [one]) => *one,
        (None, _) => bail!(
            "point {} holds {} disks: name one with --disk ({})",
            p.id.to_hex(),
            disks.len(),
            names(&disks)
        ),
        (Some(name), _) => *disks
            .iter()
            .find(|n| n.name == name.as_bytes())
            .with_context(|| {
                format!(
                    "point {} holds no disk {name:?} (it holds {})",
                    p.id.to_hex(),
                    names(&disks)
                )
            })?,
    };
    let name = String::from_utf8_lossy(&node.name).into_owned();
    if target.exists() && !overwrite {
        bail!(
            "{} exists: give --overwrite to replace it",
            target.display()
        );
    }
    let progress = Arc::new(RestoreProgress::default());
    let done = {
        let pr = progress.clone();
        let _ticker = Ticker::start(ctx.json, "restore", move || Sample {
            files: pr.files.load(Ordering::Relaxed),
            bytes: pr.bytes_written.load(Ordering::Relaxed),
            total_bytes: Some(pr.bytes_total.load(Ordering::Relaxed)),
        });
        let bitmap = Some((p.manifest.item.as_str(), p.manifest.time));
        coffer_sources::disk::restore_one(
            &source,
            node,
            &name,
            &target,
            format.into(),
            bitmap,
            &progress,
        )
        .context("disk restore failed")?
    };
    if ctx.json {
        println!(
            "{}",
            serde_json::json!({
                "type": "summary",
                "point": p.id.to_hex(),
                "disk": name,
                "target": target,
                "size": done.size,
                "blocks_data": done.blocks_data,
                "blocks_hole": done.blocks_hole,
                "bytes_written": done.bytes_written,
            })
        );
    } else {
        println!(
            "disk {name} of point {} restored to {}: {} ({} data blocks, {} holes, every block verified)",
            &p.id.to_hex()[..12],
            target.display(),
            size(done.size),
            done.blocks_data,
            done.blocks_hole
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn names(disks: &[&coffer_engine::tree::Node]) -> String {
    disks
        .iter()
        .map(|n| String::from_utf8_lossy(&n.name).into_owned())
        .collect::<Vec<_>>()
        .join(", ")
}
