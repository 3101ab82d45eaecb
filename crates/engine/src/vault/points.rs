//! Recovery points as the vault lists and reads them: the key holder's and
//! write-only writers' alike, each telling who wrote it. Listing leaves out
//! a point that does not open (anyone who may write to the storage can put
//! one there), except where leaving it out could let its data go.

use rayon::prelude::*;

use super::{Damaged, Point, Vault};
use crate::credential::objects::{session_of, WRITER_POINT_MAGIC};
use crate::error::{Error, Result};
use crate::ids::ObjectId;
use crate::journal::Event;
use crate::point::{point_path, Manifest};

impl Vault {
    /// The ids of the points whose manifests are stored, unread.
    pub fn point_ids(&self) -> Result<Vec<ObjectId>> {
        Ok(self
            .storage
            .list("points/")?
            .iter()
            .filter_map(|o| ObjectId::parse(o.path.trim_start_matches("points/")))
            .collect())
    }

    /// Every recovery point that opens, oldest first. One that does not is
    /// left out with a warning: a write-only credential (or anyone who may
    /// write to the storage) can store garbage under `points/`, and that
    /// must not stop listing, restoring or backing up. `coffer check`
    /// names such objects, and garbage collection refuses to judge packs
    /// while one exists ([`Vault::points_strict`]).
    pub fn points(&self) -> Result<Vec<Point>> {
        let (points, damaged) = self.points_and_damaged()?;
        for (id, e) in damaged {
            tracing::warn!(point = %id, error = %e, "leaving out a recovery point that does not open (`coffer check` names it)");
        }
        Ok(points)
    }

    /// Every recovery point, oldest first, failing on one that does not
    /// open: for deciding what is used, where a point left out would let
    /// its data go.
    pub fn points_strict(&self) -> Result<Vec<Point>> {
        let (points, damaged) = self.points_and_damaged()?;
        match damaged.into_iter().next() {
            None => Ok(points),
            Some((id, e)) => Err(Error::Invalid(format!(
                "recovery point {id} does not open ({e}), so what it uses cannot be known and no pack is judged. If nobody with the vault key wrote it, a write-only credential or someone with write access to the storage did: remove the object points/{id} at the storage (`coffer check` lists every such object) and run this again"
            ))),
        }
    }

    /// The points that open, oldest first, and those that do not.
    fn points_and_damaged(&self) -> Result<(Vec<Point>, Damaged)> {
        let ids = self.point_ids()?;
        // A point purged between the listing and the read is simply gone.
        let read: Vec<(ObjectId, Result<Point>)> = ids
            .par_iter()
            .filter_map(|id| match self.read_point(id) {
                Err(Error::Missing { .. }) => None,
                other => Some((*id, other)),
            })
            .collect();
        let mut points = Vec::with_capacity(read.len());
        let mut damaged = Vec::new();
        for (id, r) in read {
            match r {
                Ok(p) => points.push(p),
                Err(e @ Error::Corrupt { .. }) => damaged.push((id, e)),
                Err(e) => return Err(e),
            }
        }
        points.sort_by_key(|p| (p.manifest.time, p.id));
        Ok((points, damaged))
    }

    pub fn read_point(&self, id: &ObjectId) -> Result<Point> {
        let path = point_path(id);
        let bytes = self.cache.fetch(&self.storage, &path, id)?;
        if let Some(session) = session_of(WRITER_POINT_MAGIC, &path, &bytes)? {
            let keys = self.session_keys(&session)?;
            return Ok(Point {
                id: *id,
                manifest: Manifest::decode_written(&keys, &path, &bytes)?,
                writer: Some(session.slot_id()),
            });
        }
        Ok(Point {
            id: *id,
            manifest: Manifest::decode(&self.keys, &path, &bytes)?,
            writer: None,
        })
    }

    /// Commits a recovery point. An on-demand expiry is journalled first, so
    /// that no moment exists at which the point is visible under the policy.
    pub fn write_point(
        &self,
        manifest: &Manifest,
        on_demand_until: Option<i64>,
    ) -> Result<ObjectId> {
        let bytes = manifest.encode(&self.keys);
        let id = ObjectId::of(&bytes);
        if let Some(until) = on_demand_until {
            self.require_journal()?;
            self.record(Event::OnDemand { point: id, until })?;
        }
        let path = point_path(&id);
        self.cache.keep(&path, &bytes);
        self.storage.put(&path, bytes)?;
        Ok(id)
    }

    /// Finds a point by full id, unique id prefix, or `latest` (optionally of
    /// one item).
    pub fn resolve_point(&self, spec: &str, item: Option<&str>) -> Result<Point> {
        let points = self.points()?;
        let candidates: Vec<Point> = points
            .into_iter()
            .filter(|p| item.is_none_or(|i| p.manifest.item == i))
            .collect();
        if spec == "latest" {
            return candidates
                .into_iter()
                .next_back()
                .ok_or_else(|| Error::PointNotFound(spec.to_string()));
        }
        let prefix = spec.to_ascii_lowercase();
        if prefix.is_empty() || !prefix.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(Error::Invalid(format!(
                "{spec:?} is not a point id: give a hexadecimal id, a unique prefix of one, or 'latest'"
            )));
        }
        let mut matching: Vec<Point> = candidates
            .into_iter()
            .filter(|p| p.id.to_hex().starts_with(&prefix))
            .collect();
        match matching.len() {
            0 => Err(Error::PointNotFound(spec.to_string())),
            1 => Ok(matching.remove(0)),
            count => Err(Error::AmbiguousPoint {
                prefix: spec.to_string(),
                count,
            }),
        }
    }
}
