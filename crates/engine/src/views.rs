//! The engine's records as the shared API types show them: a point as a
//! [`PointSummary`], a tree node as an [`Entry`], a restore as a
//! [`RestoreSummary`]. The service and both command lines list and report
//! through these functions, so the same point reads the same everywhere.

use std::path::PathBuf;

use coffer_api_types::{Entry, PathError, PointSummary, RestoreSummary};

use crate::journal::VaultState;
use crate::restore::RestoreReport;
use crate::tree::{Node, NodeKind};
use crate::vault::Point;

/// The lossy text of bytes recorded from the file system.
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// One point with what the vault's journal says about it.
pub fn point_summary(point: &Point, state: &VaultState) -> PointSummary {
    let m = &point.manifest;
    let deleted = state.soft_deleted.get(&point.id);
    let purge_after = i64::from(state.soft_delete_days) * 86_400;
    PointSummary {
        id: point.id.to_hex(),
        item: m.item.clone(),
        time: m.time.secs,
        host: m.host.clone(),
        files: m.stats.files,
        bytes_total: m.stats.bytes_total,
        errors: m.stats.errors,
        consistency: m.consistency.as_str().to_string(),
        tags: m.tags.clone(),
        state: if deleted.is_some() {
            "soft-deleted"
        } else {
            "active"
        }
        .to_string(),
        deleted_at: deleted.map(|d| d.at),
        deleted_reason: deleted.map(|d| d.reason.clone()),
        purge_at: deleted.map(|d| d.at + purge_after),
        hold: state.holds.contains(&point.id),
        paths: m.paths.iter().map(|p| text(p)).collect(),
        parent: m.parent.map(|p| p.to_hex()),
        on_demand_until: state.on_demand.get(&point.id).copied(),
        stats: (&m.stats).into(),
        written_by: point.writer.clone(),
        after_revocation: point
            .writer
            .as_ref()
            .and_then(|slot| state.revoked.get(slot))
            .is_some_and(|r| !r.points.contains(&point.id)),
    }
}

/// The points of a vault that are not purged, oldest first (ties by id).
pub fn point_summaries(points: &[Point], state: &VaultState) -> Vec<PointSummary> {
    let mut list: Vec<PointSummary> = points
        .iter()
        .filter(|p| !state.purged.contains(&p.id))
        .map(|p| point_summary(p, state))
        .collect();
    list.sort_by(|a, b| a.time.cmp(&b.time).then_with(|| a.id.cmp(&b.id)));
    list
}

/// The name of a node's kind in the API.
pub fn kind_name(kind: &NodeKind) -> &'static str {
    match kind {
        NodeKind::File { .. } => "file",
        NodeKind::Dir { .. } => "dir",
        NodeKind::Symlink { .. } => "symlink",
        NodeKind::Fifo => "fifo",
        NodeKind::Socket => "socket",
        NodeKind::CharDevice { .. } => "char-device",
        NodeKind::BlockDevice { .. } => "block-device",
        NodeKind::Disk { .. } => "disk",
    }
}

/// A node of the directory at `dir` (an absolute path as backed up).
pub fn entry(dir: &str, node: &Node) -> Entry {
    let name = text(&node.name);
    Entry {
        path: format!("{}/{name}", dir.trim_end_matches('/')),
        name,
        kind: kind_name(&node.kind).to_string(),
        size: match &node.kind {
            NodeKind::File { size, .. } | NodeKind::Disk { size, .. } => Some(*size),
            _ => None,
        },
        mode: node.mode,
        uid: node.uid,
        gid: node.gid,
        user: node.user.clone(),
        group: node.group.clone(),
        mtime: node.mtime.secs,
        target: match &node.kind {
            NodeKind::Symlink { target } => Some(text(target)),
            _ => None,
        },
        error: node.error.clone(),
    }
}

fn path_errors(list: &[(PathBuf, String)]) -> Vec<PathError> {
    list.iter()
        .map(|(path, why)| PathError {
            path: path.to_string_lossy().into_owned(),
            error: why.clone(),
        })
        .collect()
}

/// A restore of `point`, with the bytes it read from the local tier and
/// from the location.
pub fn restore_summary(point: &Point, report: &RestoreReport, read: (u64, u64)) -> RestoreSummary {
    RestoreSummary {
        point: point.id.to_hex(),
        files: report.files,
        dirs: report.dirs,
        bytes: report.bytes,
        bytes_from_local_tier: read.0,
        bytes_from_location: read.1,
        damaged: path_errors(&report.damaged),
        problems: path_errors(&report.problems),
    }
}
