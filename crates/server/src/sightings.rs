//! The service's memory of each vault's journal records and points, so that
//! a deletion or rollback by whoever controls the storage is noticed (see
//! `coffer_engine::witness`).
//!
//! Backups, checks and prunes compare what the vault holds with what the
//! service saw last and then remember both: what is missing stays
//! remembered, so it is reported by every check and stops every prune (a
//! deleted hold or immutability record must not let prune delete) until an
//! administrator accepts the location as it is now.

use coffer_engine::witness::Sighting;
use coffer_engine::{ObjectId, Vault};
use rusqlite::params;

use crate::db::Db;
use crate::error::Result;

const RECORD: &str = "record";
const POINT: &str = "point";

fn remembered(db: &Db, vault: &str) -> Result<Sighting> {
    let conn = db.conn();
    let mut stmt = conn.prepare("SELECT kind, name FROM vault_sightings WHERE vault = ?1")?;
    let rows = stmt
        .query_map([vault], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut sighting = Sighting::default();
    for (kind, name) in rows {
        if kind == RECORD {
            sighting.records.insert(name);
        } else if let Some(id) = ObjectId::parse(&name) {
            sighting.points.insert(id);
        }
    }
    Ok(sighting)
}

/// Remembers `sighting` in place of what was remembered.
fn remember(db: &Db, vault: &str, sighting: &Sighting) -> Result<()> {
    let mut conn = db.conn();
    let tx = conn.transaction()?;
    tx.execute("DELETE FROM vault_sightings WHERE vault = ?1", [vault])?;
    insert(&tx, vault, sighting)?;
    tx.commit()?;
    Ok(())
}

/// Adds what `sighting` holds to what is remembered.
fn remember_also(db: &Db, vault: &str, sighting: &Sighting) -> Result<()> {
    let mut conn = db.conn();
    let tx = conn.transaction()?;
    insert(&tx, vault, sighting)?;
    tx.commit()?;
    Ok(())
}

fn insert(tx: &rusqlite::Transaction<'_>, vault: &str, sighting: &Sighting) -> Result<()> {
    {
        let mut insert = tx.prepare(
            "INSERT OR IGNORE INTO vault_sightings (vault, kind, name) VALUES (?1, ?2, ?3)",
        )?;
        for record in &sighting.records {
            insert.execute(params![vault, RECORD, record])?;
        }
        for point in &sighting.points {
            insert.execute(params![vault, POINT, point.to_hex()])?;
        }
    }
    Ok(())
}

/// Compares the vault with what was seen last and remembers both; returns
/// what is gone without Coffer having removed it, one line each.
pub fn compare_and_remember(db: &Db, vault_name: &str, vault: &Vault) -> Result<Vec<String>> {
    let earlier = remembered(db, vault_name)?;
    let now = Sighting::of(vault)?;
    if now.covers(&earlier) {
        // Only what is new is written: most backups add one point.
        let new = Sighting {
            records: now.records.difference(&earlier.records).cloned().collect(),
            points: now.points.difference(&earlier.points).copied().collect(),
        };
        remember_also(db, vault_name, &new)?;
        return Ok(Vec::new());
    }
    let state = vault.state()?;
    let missing = now.missing_since(&earlier, &state);
    remember(db, vault_name, &now.remembered_with(&earlier, &state))?;
    Ok(missing)
}

/// Accepts the location as it is now: forgets what is missing.
pub fn accept(db: &Db, vault_name: &str, vault: &Vault) -> Result<()> {
    remember(db, vault_name, &Sighting::of(vault)?)
}

/// Forgets a vault that the service no longer has.
pub fn forget(db: &Db, vault_name: &str) -> Result<()> {
    db.conn()
        .execute("DELETE FROM vault_sightings WHERE vault = ?1", [vault_name])?;
    Ok(())
}
