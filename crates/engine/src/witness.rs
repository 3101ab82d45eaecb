//! What a vault held when someone who remembers last looked: the names of
//! its journal records and the ids of its points.
//!
//! Whoever controls the storage can delete objects or put back an older
//! copy of the whole location, and nothing inside the vault can prove what
//! is missing: an absent object leaves no trace. Someone outside the
//! storage can: the service keeps the last sighting of each vault and
//! compares the next one with it. Journal records are never deleted by
//! Coffer, and a point leaves only after a `Purged` record names it, so a
//! record or point seen before, gone now and not purged was deleted or
//! rolled back at the storage location. What was never seen (written and
//! deleted between two sightings) cannot be noticed this way.

use std::collections::BTreeSet;

use crate::error::Result;
use crate::ids::ObjectId;
use crate::journal::VaultState;
use crate::vault::Vault;

/// The journal record names and point ids a vault held at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sighting {
    pub records: BTreeSet<String>,
    pub points: BTreeSet<ObjectId>,
}

impl Sighting {
    /// Lists what the vault holds now. A vault without a journal (format 1
    /// or 2) deletes points without a record, so only its journal, which it
    /// does not have, could be compared: its sighting is empty.
    pub fn of(vault: &Vault) -> Result<Sighting> {
        if !vault.has_journal() {
            return Ok(Sighting::default());
        }
        let records = vault
            .storage()
            .list("journal/")?
            .into_iter()
            .map(|o| o.path)
            .collect();
        let points = vault.point_ids()?.into_iter().collect();
        Ok(Sighting { records, points })
    }

    /// Whether everything `earlier` saw is still here: the usual case,
    /// which needs no look at the vault's state.
    pub fn covers(&self, earlier: &Sighting) -> bool {
        earlier.records.is_subset(&self.records) && earlier.points.is_subset(&self.points)
    }

    /// What `earlier` saw that is gone from `self` without Coffer having
    /// removed it (`state` is the vault's state now), one line each.
    pub fn missing_since(&self, earlier: &Sighting, state: &VaultState) -> Vec<String> {
        let records = earlier.records.difference(&self.records).map(|r| {
            format!("journal record {r} is gone from the storage location, which Coffer never does: it was deleted or the location rolled back there; nothing is deleted until an administrator accepts the location as it is")
        });
        let points = earlier
            .points
            .iter()
            .filter(|p| !self.points.contains(p) && !state.purged.contains(p))
            .map(|p| {
                format!("point {} is gone from the storage location without being purged: it was deleted or the location rolled back there; nothing is deleted until an administrator accepts the location as it is", p.to_hex())
            });
        records.chain(points).collect()
    }

    /// What to remember after this sighting: everything seen now, and what
    /// is still missing, so that it is reported until someone accepts it.
    pub fn remembered_with(&self, earlier: &Sighting, state: &VaultState) -> Sighting {
        let mut kept = self.clone();
        kept.records.extend(earlier.records.iter().cloned());
        kept.points.extend(
            earlier
                .points
                .iter()
                .filter(|p| !state.purged.contains(p))
                .copied(),
        );
        kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{back_up, new_vault};

    #[test]
    fn deleted_records_and_points_are_named_and_purged_points_are_not() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir(&src).unwrap();
        std::fs::write(src.join("f"), b"x").unwrap();
        let (vault, _) = new_vault(&tmp.path().join("v"), false);
        back_up(&vault, &src);
        std::fs::write(src.join("f"), b"y").unwrap();
        back_up(&vault, &src);
        let hold = vault
            .record_named(crate::journal::Event::SoftDeleteDays(3))
            .unwrap();
        let first = Sighting::of(&vault).unwrap();
        assert_eq!((first.points.len(), first.records.len()), (2, 1));

        let points = vault.points().unwrap();
        let (purged, deleted) = (points[0].id, points[1].id);
        vault
            .record(crate::journal::Event::Purged {
                points: vec![purged],
            })
            .unwrap();
        let storage = vault.storage();
        storage.delete(&crate::point::point_path(&purged)).unwrap();
        storage.delete(&crate::point::point_path(&deleted)).unwrap();
        storage.delete(&hold).unwrap();

        let now = Sighting::of(&vault).unwrap();
        assert!(first.covers(&first) && !now.covers(&first));
        let state = vault.state().unwrap();
        let missing = now.missing_since(&first, &state);
        assert_eq!(missing.len(), 2, "{missing:?}");
        assert!(missing[0].contains(&hold));
        assert!(missing[1].contains(&deleted.to_hex()));
        // Still reported next time, until accepted.
        let kept = now.remembered_with(&first, &state);
        assert_eq!(
            Sighting::of(&vault).unwrap().missing_since(&kept, &state),
            missing
        );
        assert!(!kept.points.contains(&purged));
    }
}
