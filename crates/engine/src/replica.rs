//! Replica locations: full copies of a vault kept elsewhere.
//!
//! A replica holds the same objects under the same names, so it is itself a
//! vault that opens with the same keys; restore and check read it directly
//! when the primary is gone. A synchronous replica receives every write
//! before the write returns (`Storage::add_sync_replica`), so a committed
//! point is on it; an asynchronous one is filled by [`replicate`], whose
//! completed runs are journalled (`ReplicaSynced`), and the time since the
//! last one is its lag, the recovery point objective.
//!
//! Replication copies in commit order (header and key slots, dictionaries,
//! packs, index files, journal, then points), so an interrupted run leaves a
//! replica whose points are all complete; it deletes what the vault no
//! longer has in the reverse order. It lists the replica before the vault:
//! an object a concurrent backup writes to both in between is then in both
//! listings and is never taken for one the vault deleted.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::journal::{Event, ReplicaMode};
use crate::storage::Storage;
use crate::vault::{now_secs, Vault};

/// Object prefixes in the order a replica receives them. Activity markers
/// (`locks/`) describe processes at one location and are not copied.
pub const COPY_ORDER: &[&str] = &[
    "vault", "keys/", "dicts/", "packs/", "index/", "journal/", "points/",
];

/// What a replication run did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub copied: usize,
    pub copied_bytes: u64,
    /// Copies read back from the replica and found identical.
    pub verified: usize,
    /// Objects the vault no longer has, removed from the replica.
    pub deleted: usize,
    /// Everything committed before this time (Unix seconds) is on the
    /// replica.
    pub as_of: i64,
}

/// How far a replica is behind, from a listing of both.
#[derive(Debug, Clone, Default)]
pub struct Behind {
    pub missing_objects: usize,
    pub missing_bytes: u64,
    /// Points the vault has and the replica lacks.
    pub missing_points: usize,
    pub extra_objects: usize,
}

/// Every object a replica or tier receives, with its size.
pub(crate) fn listing(storage: &Storage) -> Result<HashMap<String, u64>> {
    let mut all = HashMap::new();
    for prefix in COPY_ORDER {
        if prefix.ends_with('/') {
            for o in storage.list(prefix)? {
                all.insert(o.path, o.size);
            }
        } else if let Some(size) = storage.size(prefix)? {
            all.insert(prefix.to_string(), size);
        }
    }
    Ok(all)
}

fn prefix_rank(path: &str) -> usize {
    COPY_ORDER
        .iter()
        .position(|p| path == *p || (p.ends_with('/') && path.starts_with(p)))
        .unwrap_or(COPY_ORDER.len())
}

/// Compares a replica with the vault.
pub fn behind(vault: &Vault, replica: &Storage) -> Result<Behind> {
    let there = listing(replica)?;
    let here = listing(vault.storage())?;
    let mut b = Behind::default();
    for (path, size) in &here {
        if there.get(path) != Some(size) {
            b.missing_objects += 1;
            b.missing_bytes += size;
            if path.starts_with("points/") {
                b.missing_points += 1;
            }
        }
    }
    b.extra_objects = there.keys().filter(|p| !here.contains_key(*p)).count();
    Ok(b)
}

/// Brings `replica` up to date with the vault: copies what it lacks (or
/// holds with another size), reads every copy back to verify it, deletes
/// what the vault no longer has, and journals the run.
pub fn replicate(vault: &Vault, replica: &Storage, location: &str) -> Result<Report> {
    let as_of = now_secs();
    let there = listing(replica)?;
    let here = listing(vault.storage())?;
    let mut report = Report {
        as_of,
        ..Report::default()
    };

    // The header is the one object ever rewritten (by `vault upgrade`),
    // possibly at the same size: it is copied on every run.
    let mut to_copy: Vec<(&String, &u64)> = here
        .iter()
        .filter(|(path, size)| *path == "vault" || there.get(*path) != Some(size))
        .collect();
    to_copy.sort_by_key(|(path, _)| (prefix_rank(path), (*path).clone()));
    for (path, _) in to_copy {
        let bytes = match vault.storage().get(path) {
            Ok(b) => b,
            // Deleted by a prune since the listing: nothing to copy.
            Err(Error::Missing { .. }) => continue,
            Err(e) => return Err(e),
        };
        let digest = blake3::hash(&bytes);
        let len = bytes.len() as u64;
        replica.put(path, bytes)?;
        let back = replica.get(path)?;
        if blake3::hash(&back) != digest {
            return Err(Error::Storage {
                path: format!("{}/{path}", replica.display()),
                failure: crate::location::StorageFailure::Other,
                message: "the copy read back differs from the original: the replica does not keep data intact".into(),
            });
        }
        report.copied += 1;
        report.verified += 1;
        report.copied_bytes += len;
    }

    let mut to_delete: Vec<&String> = there.keys().filter(|p| !here.contains_key(*p)).collect();
    to_delete.sort_by_key(|path| (std::cmp::Reverse(prefix_rank(path)), (*path).clone()));
    for path in to_delete {
        replica.delete(path)?;
        report.deleted += 1;
    }
    // The record of this run goes to the replica too, so that a replica
    // read on its own knows how current it is, and is not one object behind.
    let record = vault.record_named(Event::ReplicaSynced {
        location: location.to_string(),
        as_of,
    })?;
    if replica.size(&record)?.is_none() {
        replica.put(&record, vault.storage().get(&record)?)?;
    }
    Ok(report)
}

/// Adds a replica: journals it, then copies the vault there so it starts
/// complete. A synchronous replica also receives this process's writes from
/// now on; other processes pick it up when they next open the vault.
pub fn add(vault: &Vault, location: &str, mode: ReplicaMode) -> Result<Report> {
    let replica = vault.open_journal_location(location)?;
    if replica.display() == vault.storage().display() {
        return Err(Error::Invalid("a vault cannot be its own replica".into()));
    }
    let state = vault.state()?;
    if state.replicas.contains_key(location) {
        return Err(Error::Invalid(format!(
            "{location} is already a replica of this vault; remove it first to change its mode"
        )));
    }
    vault.require_journal()?;
    vault.record(Event::ReplicaAdded {
        location: location.to_string(),
        mode,
    })?;
    if mode == ReplicaMode::Sync {
        vault.storage().add_sync_replica(replica.clone());
    }
    replicate(vault, &replica, location)
}

/// Stops keeping a replica. Its objects stay where they are.
pub fn remove(vault: &Vault, location: &str) -> Result<()> {
    if !vault.state()?.replicas.contains_key(location) {
        return Err(Error::Invalid(format!(
            "{location} is not a replica of this vault"
        )));
    }
    vault.record(Event::ReplicaRemoved {
        location: location.to_string(),
    })
}
