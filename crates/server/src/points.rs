//! What the service shows of and does to the inside of a vault beyond
//! backups and restores: a point's file tree and single files, soft-deleted
//! points and their undelete, a policy's effect before it is saved, the
//! replicas the journal names, stopping and resuming an item's protection,
//! and the location test before a vault is created.
//!
//! Everything here goes through the engine, and every decision (what a
//! policy keeps, whether a point may be deleted) is the engine's: the
//! preview runs the prune planner on the vault's state with the candidate
//! policy folded in, so it cannot disagree with the prune that follows.

pub use coffer_api_types::location::{LocationTest, ProbeStep};
pub use coffer_api_types::policy::{PolicyPreview, PreviewPoint};
pub use coffer_api_types::vault::{ReplicaInfo, VaultStatus};
use std::collections::BTreeMap;
use std::path::Path;

use coffer_engine::changes;
use coffer_engine::ids::ObjectId;
use coffer_engine::index::Index;
use coffer_engine::journal::ReplicaMode;
use coffer_engine::prune::{self, PointAction};
use coffer_engine::restore;
use coffer_engine::tree::{Node, NodeKind};
use coffer_engine::vault::{Point, Vault};
use coffer_engine::Storage;

use crate::alerts::Cause;
use crate::db::now;
use crate::error::{Error, Result};
use crate::policies::{to_policy, PolicySpec};
use crate::state::{to_credentials, State};

pub use coffer_api_types::{Entry, Listing};

/// A single file of a point, checked before any byte is sent, with what
/// reading it needs.
pub struct FileToSend {
    pub vault: Vault,
    pub point: Point,
    pub index: Index,
    pub node: Node,
    pub path: String,
    pub name: String,
    pub size: u64,
}

fn point_field_error(field: &str, e: coffer_engine::Error) -> Error {
    match e {
        coffer_engine::Error::PointNotFound(_) | coffer_engine::Error::AmbiguousPoint { .. } => {
            Error::invalid(field, e.to_string())
        }
        e => Error::Engine(e),
    }
}

/// Resolves a point id or prefix the caller named, as a field error.
pub fn resolve_point(vault: &Vault, spec: &str, field: &str) -> Result<Point> {
    vault
        .resolve_point(spec, None)
        .map_err(|e| point_field_error(field, e))
}

fn absolute(path: &str) -> Result<&str> {
    if !path.starts_with('/') || path.split('/').any(|c| c == ".." || c == ".") {
        return Err(Error::invalid(
            "path",
            format!("{path:?} is not an absolute path as backed up (like /etc/hosts)"),
        ));
    }
    Ok(path)
}

/// A path the point does not hold is a missing resource, not a bad request.
fn not_in_point(path: &str) -> impl Fn(coffer_engine::Error) -> Error + '_ {
    move |e| match e {
        coffer_engine::Error::Invalid(_) => Error::NotFound(format!("{path} in this point")),
        e => Error::Engine(e),
    }
}

/// The point a URL names: an unknown one is a 404, like any other
/// resource.
fn point_at(vault: &Vault, spec: &str) -> Result<Point> {
    vault.resolve_point(spec, None).map_err(|e| match e {
        coffer_engine::Error::PointNotFound(p) => Error::NotFound(format!("point {p}")),
        e => point_field_error("point", e),
    })
}

impl State {
    /// The entries of one directory of a point.
    pub fn point_entries(&self, vault: &str, point: &str, path: &str) -> Result<Listing> {
        let path = absolute(path)?;
        let v = self.open_vault(vault)?;
        let pt = point_at(&v, point)?;
        let index = v.load_index()?;
        let tree_id = if path == "/" {
            pt.manifest.tree
        } else {
            let node =
                restore::find_node(&v, &index, &pt, Path::new(path)).map_err(not_in_point(path))?;
            match node.kind {
                NodeKind::Dir { tree } => tree,
                _ => {
                    return Err(Error::Conflict(format!(
                        "{path} is not a directory in the point: download it, or list its directory"
                    )))
                }
            }
        };
        let tree = v.read_tree(&index, &tree_id)?;
        let entries = tree
            .nodes
            .iter()
            .map(|n| coffer_engine::views::entry(path, n))
            .collect();
        Ok(Listing {
            point: pt.id.to_hex(),
            item: pt.manifest.item.clone(),
            time: pt.manifest.time.secs,
            path: path.to_string(),
            entries,
        })
    }

    /// Checks that `path` is a complete regular file of the point, so that
    /// a download fails with a clear error before its first byte.
    pub fn file_to_send(&self, vault: &str, point: &str, path: &str) -> Result<FileToSend> {
        let path = absolute(path)?;
        if path == "/" {
            return Err(Error::invalid("path", "name a file, not the root"));
        }
        let v = self.open_vault(vault)?;
        let pt = point_at(&v, point)?;
        let index = v.load_index()?;
        let node =
            restore::find_node(&v, &index, &pt, Path::new(path)).map_err(not_in_point(path))?;
        let size = match &node.kind {
            NodeKind::File { size, .. } | NodeKind::Disk { size, .. } => *size,
            other => {
                return Err(Error::Conflict(format!(
                    "{path} is a {} in the point; only regular files can be downloaded (restore the rest)",
                    coffer_engine::views::kind_name(other)
                )))
            }
        };
        if let Some(e) = &node.error {
            return Err(Error::Conflict(format!(
                "{path} was not backed up completely, so it cannot be downloaded: {e}"
            )));
        }
        Ok(FileToSend {
            vault: v,
            point: pt,
            index,
            name: String::from_utf8_lossy(&node.name).into_owned(),
            node,
            path: path.to_string(),
            size,
        })
    }

    /// Brings soft-deleted points back; they are put on hold so the
    /// retention that expired them does not do it again.
    pub fn undelete_points(&self, vault: &str, ids: &[String], by: &str) -> Result<usize> {
        if ids.is_empty() {
            return Err(Error::invalid("points", "name at least one point"));
        }
        let v = self.open_vault(vault)?;
        let points: Vec<ObjectId> = ids
            .iter()
            .map(|id| resolve_point(&v, id, "points").map(|p| p.id))
            .collect::<Result<_>>()?;
        changes::undelete(&v, &points).map_err(|e| match e {
            coffer_engine::Error::Invalid(m) => Error::invalid("points", m),
            e => Error::Engine(e),
        })?;
        tracing::info!(vault, by, count = points.len(), "points undeleted");
        Ok(points.len())
    }

    /// What `spec`, saved as policy `name`, would keep and expire among the
    /// points of the items that follow it, and of `item` when named (as if
    /// it were assigned).
    pub fn preview_policy(
        &self,
        vault: &str,
        name: &str,
        spec: &PolicySpec,
        item: Option<&str>,
    ) -> Result<PolicyPreview> {
        let policy = to_policy(name, spec)?;
        let v = self.open_vault(vault)?;
        let current = v.state()?;
        let mut candidate = current.clone();
        candidate.policies.insert(name.to_string(), policy);
        if let Some(item) = item {
            candidate
                .assignments
                .insert(item.to_string(), name.to_string());
        }
        let at = now();
        let before = prune::plan(&v, &current, at)?;
        let after = prune::plan(&v, &candidate, at)?;
        let fate = |a: &PointAction| match a {
            PointAction::Keep => "keep",
            PointAction::SoftDelete => "expire",
            PointAction::StaySoftDeleted { .. } | PointAction::Purge => "soft-deleted",
        };
        let was: BTreeMap<ObjectId, &'static str> = before
            .points
            .iter()
            .map(|p| (p.id, fate(&p.action)))
            .collect();
        let follows = |it: &str| candidate.policy_of(it).name == name;
        let mut items: Vec<String> = Vec::new();
        let points: Vec<PreviewPoint> = after
            .points
            .iter()
            .filter(|p| follows(&p.item))
            .map(|p| {
                if !items.contains(&p.item) {
                    items.push(p.item.clone());
                }
                let f = fate(&p.action);
                PreviewPoint {
                    id: p.id.to_hex(),
                    item: p.item.clone(),
                    time: p.time.secs,
                    fate: f.to_string(),
                    rule: p.rule.as_str().to_string(),
                    until: p.until,
                    now: was.get(&p.id).filter(|w| **w != f).map(|w| w.to_string()),
                }
            })
            .collect();
        items.sort();
        Ok(PolicyPreview {
            policy: name.to_string(),
            items,
            keep: points.iter().filter(|p| p.fate == "keep").count(),
            expire: points.iter().filter(|p| p.fate == "expire").count(),
            points,
        })
    }

    /// The vault's immutability, soft-delete period, point counts, and
    /// replicas with how far behind each is.
    pub fn vault_status(&self, vault: &str) -> Result<VaultStatus> {
        let v = self.open_vault(vault)?;
        let state = v.state()?;
        let points = v.points()?;
        let at = now();
        let replicas = state
            .replicas
            .iter()
            .map(|(location, r)| ReplicaInfo {
                location: location.clone(),
                mode: r.mode.name().to_string(),
                added: r.added,
                synced_as_of: r.synced_as_of,
                lag_secs: match r.mode {
                    ReplicaMode::Sync => Some(0),
                    ReplicaMode::Async => r.synced_as_of.map(|t| (at - t).max(0)),
                },
            })
            .collect();
        let soft_deleted = points
            .iter()
            .filter(|p| state.soft_deleted.contains_key(&p.id))
            .count();
        Ok(VaultStatus {
            immutability: state.immutability.as_str().to_string(),
            soft_delete_days: state.soft_delete_days,
            points: points.len() - soft_deleted,
            soft_deleted_points: soft_deleted,
            replicas,
        })
    }

    /// Stops an item's protection: its schedule stops, and its points are
    /// kept forever (`delete_data` false) or soft-deleted (true; refused
    /// under immutability while any is unexpired).
    pub fn stop_protection(&self, item: &str, delete_data: bool, by: &str) -> Result<()> {
        let mut it = self.item(item)?;
        if self.active_job_of_item(item)?.is_some() {
            return Err(Error::Conflict(format!(
                "a job of item {item} is queued or running: wait for it or cancel it first"
            )));
        }
        let v = self.open_vault(&it.vault)?;
        changes::stop_protection(&v, item, delete_data)?;
        self.policies_changed(&it.vault);
        it.enabled = false;
        self.update_item(&it)?;
        if delete_data {
            self.raise_alert(
                Cause::PointsDeleted,
                Some(&it.vault),
                Some(item),
                &format!(
                    "{by} stopped protecting {item} and deleted its data; its points stay recoverable while soft-deleted"
                ),
                None,
            )?;
        }
        Ok(())
    }

    /// Resumes protection: the item's policy and schedule apply again.
    pub fn resume_protection(&self, item: &str) -> Result<()> {
        let mut it = self.item(item)?;
        let v = self.open_vault(&it.vault)?;
        changes::resume_protection(&v, item)?;
        self.policies_changed(&it.vault);
        it.enabled = true;
        self.update_item(&it)?;
        Ok(())
    }
}

/// The location test on a location not yet registered.
pub fn test_location(
    location: &str,
    credentials: &BTreeMap<String, String>,
) -> Result<LocationTest> {
    if location.trim().is_empty() {
        return Err(Error::invalid("location", "required"));
    }
    let storage =
        Storage::open_with(location, &to_credentials(credentials)).map_err(|e| match e {
            coffer_engine::Error::BadLocation { reason, .. } => Error::invalid("location", reason),
            e => Error::Engine(e),
        })?;
    let report = coffer_engine::probe::run(&storage);
    Ok(LocationTest {
        ok: report.ok(),
        location: report.location.clone(),
        kind: report.kind.to_string(),
        steps: report
            .steps
            .iter()
            .map(|s| ProbeStep {
                name: s.name.to_string(),
                ok: s.ok,
                detail: s.detail.clone(),
                millis: s.millis,
            })
            .collect(),
        failure: report.failure.map(|f| f.to_string()),
        remedy: report.failure.map(|f| f.remedy().to_string()),
        free_bytes: report.free_bytes,
        holds_vault: report.holds_vault,
    })
}

impl State {
    /// Sets the vault's immutability (disabled, enabled, locked); raises
    /// the security alert.
    pub fn set_immutability(&self, vault: &str, to: &str, by: &str) -> Result<String> {
        use coffer_engine::journal::Immutability;
        let target = match to {
            "disabled" => Immutability::Disabled,
            "enabled" => Immutability::Enabled,
            "locked" => Immutability::Locked,
            other => {
                return Err(Error::invalid(
                    "immutability",
                    format!("{other:?}: expected disabled, enabled or locked"),
                ))
            }
        };
        let v = self.open_vault(vault)?;
        let before = v.state()?.immutability;
        coffer_engine::changes::set_immutability(&v, target)?;
        if before != target {
            self.raise_alert(
                Cause::ImmutabilityChanged,
                Some(vault),
                None,
                &format!(
                    "{by} changed the immutability of vault {vault} from {} to {to}",
                    before.as_str()
                ),
                None,
            )?;
        }
        Ok(to.to_string())
    }

    /// Soft-deletes recovery points; raises the security alert.
    pub fn delete_points(&self, vault: &str, ids: &[String], by: &str) -> Result<usize> {
        if ids.is_empty() {
            return Err(Error::invalid("points", "name at least one point"));
        }
        let v = self.open_vault(vault)?;
        let points = ids
            .iter()
            .map(|id| resolve_point(&v, id, "points"))
            .collect::<Result<Vec<_>>>()?;
        coffer_engine::changes::delete_points(
            &v,
            &points,
            &format!("deleted by {by} through the service"),
        )?;
        let items: std::collections::BTreeSet<&str> =
            points.iter().map(|p| p.manifest.item.as_str()).collect();
        self.raise_alert(
            Cause::PointsDeleted,
            Some(vault),
            None,
            &format!(
                "{by} deleted {} recovery point(s) of {} in vault {vault}; they stay recoverable while soft-deleted",
                points.len(),
                items.into_iter().collect::<Vec<_>>().join(", ")
            ),
            None,
        )?;
        Ok(points.len())
    }
}
