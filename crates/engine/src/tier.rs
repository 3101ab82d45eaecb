//! The local tier: a fast location (a local disk) that holds the vault's
//! recent points as well as the remote location, for instant restore.
//!
//! The tier holds every small object (header, key slots, dictionaries, index
//! files, journal, points) and the packs that points of the last `days`
//! days use, plus every tree pack (directory listings stay fast for all
//! points). Writes go to it as they go to a synchronous replica; reads try it
//! first and fall back to the remote location for anything it lacks, so a
//! tier that is missing, stale or trimmed can cost time, never data. It is
//! trimmed by [`sync`], which `prune` runs after garbage collection.
//!
//! A tier lives on one machine: a vault opened where the tier's directory
//! does not hold the vault (another machine, after a cloud recovery) simply
//! reads and writes the remote location.

use std::collections::HashSet;

use crate::error::{Error, Result};
use crate::ids::ObjectId;
use crate::journal::Event;
use crate::pack::{pack_path, BlobKind};
use crate::replica::COPY_ORDER;
use crate::storage::Storage;
use crate::vault::{now_secs, Vault};

/// What a tier synchronisation did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub copied: usize,
    pub copied_bytes: u64,
    pub deleted: usize,
    /// Packs the tier holds afterwards.
    pub packs: usize,
    /// Points newer than the tier's horizon.
    pub recent_points: usize,
}

/// Opens the tier without the remote location's bandwidth limits.
fn open(location: &str) -> Result<Storage> {
    Storage::open(location)
}

/// Sets (or changes) the local tier and fills it.
pub fn set(vault: &Vault, location: &str, days: u32) -> Result<Report> {
    if days == 0 {
        return Err(Error::Invalid(
            "a local tier keeps at least 1 day of points".into(),
        ));
    }
    let tier = open(location)?;
    if tier.display() == vault.storage().display() {
        return Err(Error::Invalid(
            "the local tier must be another location than the vault".into(),
        ));
    }
    vault.require_journal()?;
    vault.record(Event::TierSet {
        location: location.to_string(),
        days,
    })?;
    let report = sync(vault)?;
    vault.storage().set_local_tier(tier);
    Ok(report)
}

/// Stops keeping a local tier (its directory is left as it is).
pub fn remove(vault: &Vault) -> Result<()> {
    if vault.state()?.local_tier.is_none() {
        return Err(Error::Invalid("this vault has no local tier".into()));
    }
    vault.record(Event::TierRemoved)
}

/// Brings the tier to what it should hold now: copies what it lacks,
/// deletes packs that only older points use.
pub fn sync(vault: &Vault) -> Result<Report> {
    let state = vault.state()?;
    let Some((location, days)) = state.local_tier.clone() else {
        return Err(Error::Invalid(
            "this vault has no local tier; set one with `coffer vault tier set`".into(),
        ));
    };
    let tier = open(&location)?;
    let horizon = now_secs() - i64::from(days) * 86_400;
    let recent: Vec<_> = vault
        .points()?
        .into_iter()
        .filter(|p| !state.purged.contains(&p.id) && p.manifest.time.secs >= horizon)
        .collect();
    let index = vault.load_index()?;
    let mark = crate::gc::mark(
        vault,
        recent.iter().map(|p| p.manifest.tree).collect(),
        &index,
    )?;
    let mut wanted: HashSet<ObjectId> = HashSet::new();
    for file in vault.index_files()? {
        for record in vault.read_index_file(&file)? {
            let used = record.kind == BlobKind::Tree
                || record
                    .entries
                    .iter()
                    .any(|e| mark.binary_search(&crate::gc::prefix(&e.id)).is_ok());
            if used {
                wanted.insert(record.id);
            }
        }
    }

    let mut report = Report {
        recent_points: recent.len(),
        ..Report::default()
    };
    let have: HashSet<String> = crate::replica::listing(&tier)?.into_keys().collect();
    let copy = |path: &str, report: &mut Report| -> Result<()> {
        if have.contains(path) {
            return Ok(());
        }
        match vault.storage().get(path) {
            Ok(bytes) => {
                report.copied += 1;
                report.copied_bytes += bytes.len() as u64;
                tier.put(path, bytes)
            }
            Err(Error::Missing { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    };
    // Header and small objects first, then packs, then points: the tier is
    // a readable vault at every step.
    for prefix in COPY_ORDER
        .iter()
        .filter(|p| **p != "packs/" && **p != "points/")
    {
        if prefix.ends_with('/') {
            for o in vault.storage().list(prefix)? {
                copy(&o.path, &mut report)?;
            }
        } else {
            copy(prefix, &mut report)?;
        }
    }
    for id in &wanted {
        copy(&pack_path(id), &mut report)?;
    }
    for o in vault.storage().list("points/")? {
        copy(&o.path, &mut report)?;
    }
    let wanted_paths: HashSet<String> = wanted.iter().map(pack_path).collect();
    for path in have.iter().filter(|p| p.starts_with("packs/")) {
        if !wanted_paths.contains(path) {
            tier.delete(path)?;
            report.deleted += 1;
        }
    }
    report.packs = wanted.len();
    Ok(report)
}
