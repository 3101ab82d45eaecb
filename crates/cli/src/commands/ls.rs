//! `coffer ls`: the entries of a point, or of one path in it, as `ls -l`
//! lines or JSON, read from the point's trees without touching file data.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;
use coffer_engine::tree::{Node, NodeKind};
use coffer_engine::Vault;
use serde_json::json;

use crate::ctx::{Ctx, VaultArg};
use crate::output::{print_json, time};

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
