//! `coffer ls`: the entries of a point, or of one path in it, as `ls -l`
//! lines or JSON, read from the point's trees without touching file data.
//!
//! Both modes walk the same way ([`walk`]): from the root, into only the
//! directories on the way to the path asked for or inside it. Locally a
//! directory is read by its tree id; through a service by its path, with
//! one `entries` request each. Each entry is the shared [`Entry`].

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;
use coffer_api_types::Entry;
use coffer_engine::tree::NodeKind;
use serde_json::json;

use crate::ctx::{Ctx, VaultArg};
use crate::output::{print_json, time_secs};

#[derive(Args)]
pub(crate) struct LsArgs {
    #[command(flatten)]
    vault: VaultArg,
    /// Point id, unique id prefix, or `latest`.
    point: String,
    /// Only below this path (as backed up).
    path: Option<PathBuf>,
}

pub(crate) fn run(ctx: &Ctx, args: LsArgs) -> Result<ExitCode> {
    let LsArgs { vault, point, path } = args;
    let v = ctx.open_readable(&vault.vault)?;
    let p = v.resolve_point(&point, None)?;
    let index = v.load_index()?;
    let start = start_path(path)?;
    let rows = walk(p.manifest.tree, &start, &mut |tree, dir| {
        Ok(v.read_tree(&index, tree)?
            .nodes
            .iter()
            .map(|node| {
                let sub = match &node.kind {
                    NodeKind::Dir { tree } => Some(*tree),
                    _ => None,
                };
                (coffer_engine::views::entry(dir, node), sub)
            })
            .collect())
    })?;
    print_entries(ctx.json, &rows, &start, &p.id.to_hex())
}

/// The path to list, absolute and normalised as the engine records paths.
pub(crate) fn start_path(path: Option<PathBuf>) -> Result<PathBuf> {
    Ok(coffer_engine::backup::absolute(
        &Path::new("/").join(path.unwrap_or_else(|| PathBuf::from("/"))),
    )?)
}

/// The entries at or below `start`, depth first in tree order. `read`
/// gives a directory's entries (by its handle and path), each with the
/// handle of its subdirectory when it is one.
pub(crate) fn walk<H>(
    root: H,
    start: &Path,
    read: &mut impl FnMut(&H, &str) -> Result<Vec<(Entry, Option<H>)>>,
) -> Result<Vec<Entry>> {
    let mut rows = Vec::new();
    walk_dir(&root, "/", start, read, &mut rows)?;
    Ok(rows)
}

fn walk_dir<H>(
    dir: &H,
    at: &str,
    start: &Path,
    read: &mut impl FnMut(&H, &str) -> Result<Vec<(Entry, Option<H>)>>,
    rows: &mut Vec<Entry>,
) -> Result<()> {
    for (entry, sub) in read(dir, at)? {
        let path = Path::new(&entry.path);
        let inside = path.starts_with(start);
        if !inside && !start.starts_with(path) {
            continue;
        }
        let here = entry.path.clone();
        if inside {
            rows.push(entry);
        }
        if let Some(sub) = sub {
            walk_dir(&sub, &here, start, read, rows)?;
        }
    }
    Ok(())
}

/// `ls` in both modes: the rows as `ls -l` lines or one JSON array.
pub(crate) fn print_entries(
    json: bool,
    rows: &[Entry],
    start: &Path,
    point: &str,
) -> Result<ExitCode> {
    if rows.is_empty() && start != Path::new("/") {
        bail!(
            "{} is not in point {}",
            start.display(),
            point.get(..12).unwrap_or(point)
        );
    }
    if json {
        print_json(&serde_json::Value::Array(
            rows.iter().map(entry_json).collect(),
        ));
    } else {
        for entry in rows {
            println!("{}", entry_line(entry));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn kind_char(kind: &str) -> char {
    match kind {
        "dir" => 'd',
        "symlink" => 'l',
        "fifo" => 'p',
        "socket" => 's',
        "char-device" => 'c',
        "block-device" => 'b',
        _ => '-',
    }
}

fn entry_line(e: &Entry) -> String {
    let owner = e.user.clone().unwrap_or_else(|| e.uid.to_string());
    let group = e.group.clone().unwrap_or_else(|| e.gid.to_string());
    let mut line = format!(
        "{}{:04o} {:>8} {:>8} {:>12} {} {}",
        kind_char(&e.kind),
        e.mode,
        owner,
        group,
        e.size.unwrap_or(0),
        time_secs(e.mtime),
        e.path
    );
    if let Some(target) = &e.target {
        line.push_str(&format!(" -> {target}"));
    }
    if let Some(why) = &e.error {
        line.push_str(&format!("  [not backed up: {why}]"));
    }
    line
}

fn entry_json(e: &Entry) -> serde_json::Value {
    json!({"path": e.path, "type": kind_char(&e.kind).to_string(), "mode": format!("{:04o}", e.mode),
        "uid": e.uid, "gid": e.gid, "user": e.user, "group": e.group, "size": e.size.unwrap_or(0),
        "mtime": time_secs(e.mtime), "target": e.target, "error": e.error})
}
