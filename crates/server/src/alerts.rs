//! Alerts: every failed job raises one, with a typed cause and the steps
//! that fix it; security events raise one too.
//!
//! One open alert exists per (item, cause): a repeated failure adds an
//! occurrence to it instead of raising another, and the next successful
//! job of the item resolves every open job alert of that item. Security
//! alerts have no switch: they are raised whatever the notification rules
//! say, and only a person resolves them.

use rusqlite::{params, OptionalExtension};

pub use coffer_api_types::alert::{Alert, Cause, Severity};
use coffer_api_types::{ErrorCode, StorageFailure};

use crate::db::{now, Db};
use crate::error::Result;

/// The alert cause and message of a failed capture or restore of an item.
pub fn source_failure(e: coffer_sources::Error) -> (Cause, String) {
    let cause = match &e {
        coffer_sources::Error::Engine(engine) => classify(engine),
        coffer_sources::Error::PreScript(_) => Cause::SourceUnreadable,
        _ => Cause::GeneralFault,
    };
    (cause, e.to_string())
}

/// The cause behind an engine error, from its code.
pub fn classify(e: &coffer_engine::Error) -> Cause {
    cause_of_code(e.code())
}

/// The cause behind an error code (an agent reports its errors by code).
pub fn cause_of_code(code: ErrorCode) -> Cause {
    match code {
        ErrorCode::Storage(failure) => match failure {
            StorageFailure::OutOfCapacity => Cause::OutOfCapacity,
            StorageFailure::Unreachable => Cause::StorageUnreachable,
            StorageFailure::PathNotFound => Cause::PathNotFound,
            StorageFailure::AuthenticationFailed
            | StorageFailure::UntrustedServer
            | StorageFailure::PermissionDenied => Cause::AuthenticationFailed,
            StorageFailure::Other => Cause::GeneralFault,
        },
        ErrorCode::NoVault => Cause::PathNotFound,
        ErrorCode::WrongKey | ErrorCode::WriteOnly => Cause::WrongKey,
        ErrorCode::Damaged => Cause::DataCorruption,
        ErrorCode::LocalDiskFull => Cause::OutOfCapacity,
        ErrorCode::LocalIo | ErrorCode::SourceFailed => Cause::SourceUnreadable,
        _ => Cause::GeneralFault,
    }
}

/// A raised or updated alert, for notifications.
pub struct Raised {
    pub alert: Alert,
    /// Whether this raise opened it (as opposed to counting a repeat).
    pub new: bool,
}

/// Raises an alert, or counts another occurrence of the open one with the
/// same item and cause.
pub fn raise(
    db: &Db,
    cause: Cause,
    vault: Option<&str>,
    item: Option<&str>,
    detail: &str,
    job: Option<i64>,
) -> Result<Raised> {
    let t = now();
    let category = if cause.is_security() {
        "security"
    } else {
        "job"
    };
    let existing: Option<i64> = {
        let conn = db.conn();
        conn.query_row(
            "SELECT id FROM alerts WHERE state = 'open' AND cause = ?1
             AND item IS ?2 AND vault IS ?3 AND category = 'job'",
            params![cause.as_str(), item, vault],
            |r| r.get(0),
        )
        .optional()?
    };
    // Security events are each their own record; repeated job failures
    // update one alert.
    let (id, new) = match existing.filter(|_| !cause.is_security()) {
        Some(id) => {
            db.conn().execute(
                "UPDATE alerts SET occurrences = occurrences + 1, last_seen = ?1, detail = ?2,
                 last_job = coalesce(?3, last_job) WHERE id = ?4",
                params![t, detail, job, id],
            )?;
            (id, false)
        }
        None => {
            let conn = db.conn();
            conn.execute(
                "INSERT INTO alerts (category, cause, severity, vault, item, title, detail, remediation,
                 state, occurrences, first_seen, last_seen, last_job)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'open', 1, ?9, ?9, ?10)",
                params![
                    category,
                    cause.as_str(),
                    cause.severity().as_str(),
                    vault,
                    item,
                    cause.title(),
                    detail,
                    serde_json::to_string(&cause.remediation()).unwrap_or_default(),
                    t,
                    job
                ],
            )?;
            (conn.last_insert_rowid(), true)
        }
    };
    tracing::warn!(alert = id, cause = cause.as_str(), item, "{detail}");
    Ok(Raised {
        alert: get(db, id)?,
        new,
    })
}

/// Resolves the open job alerts of `item` after one of its jobs succeeded;
/// returns them.
pub fn resolve_for_item(db: &Db, item: &str) -> Result<Vec<Alert>> {
    resolve_automatically(db, "item = ?1", item)
}

/// Resolves a vault's open job alerts that belong to no item (prune and
/// check failures); returns them.
pub fn resolve_for_vault(db: &Db, vault: &str) -> Result<Vec<Alert>> {
    resolve_automatically(db, "item IS NULL AND vault = ?1", vault)
}

/// Resolves the open job alerts matching `condition` (one parameter).
fn resolve_automatically(db: &Db, condition: &str, value: &str) -> Result<Vec<Alert>> {
    let ids: Vec<i64> = {
        let conn = db.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT id FROM alerts WHERE state = 'open' AND category = 'job' AND {condition}"
        ))?;
        let ids = stmt
            .query_map([value], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        ids
    };
    for id in &ids {
        db.conn().execute(
            "UPDATE alerts SET state = 'resolved', resolved = ?1, resolved_by = 'automatic'
             WHERE id = ?2 AND state = 'open'",
            params![now(), id],
        )?;
    }
    ids.into_iter().map(|id| get(db, id)).collect()
}

/// Resolves one alert by hand.
pub fn resolve(db: &Db, id: i64, by: &str) -> Result<Alert> {
    let n = db.conn().execute(
        "UPDATE alerts SET state = 'resolved', resolved = ?1, resolved_by = ?2
         WHERE id = ?3 AND state = 'open'",
        params![now(), by, id],
    )?;
    let alert = get(db, id)?;
    if n == 0 && alert.state != "resolved" {
        return Err(crate::Error::Conflict(format!("alert {id} is not open")));
    }
    Ok(alert)
}

fn row_to_alert(r: &rusqlite::Row<'_>) -> rusqlite::Result<Alert> {
    let cause: String = r.get(2)?;
    let severity: String = r.get(3)?;
    let remediation: String = r.get(8)?;
    Ok(Alert {
        id: r.get(0)?,
        category: r.get(1)?,
        cause: Cause::parse(&cause).unwrap_or(Cause::GeneralFault),
        severity: Severity::parse(&severity).unwrap_or(Severity::Error),
        vault: r.get(4)?,
        item: r.get(5)?,
        title: r.get(6)?,
        detail: r.get(7)?,
        remediation: serde_json::from_str(&remediation).unwrap_or_default(),
        state: r.get(9)?,
        occurrences: r.get(10)?,
        first_seen: r.get(11)?,
        last_seen: r.get(12)?,
        last_job: r.get(13)?,
        resolved: r.get(14)?,
        resolved_by: r.get(15)?,
    })
}

const COLUMNS: &str =
    "id, category, cause, severity, vault, item, title, detail, remediation, state,
    occurrences, first_seen, last_seen, last_job, resolved, resolved_by";

pub fn get(db: &Db, id: i64) -> Result<Alert> {
    db.conn()
        .query_row(
            &format!("SELECT {COLUMNS} FROM alerts WHERE id = ?1"),
            [id],
            row_to_alert,
        )
        .optional()?
        .ok_or_else(|| crate::Error::NotFound(format!("alert {id}")))
}

/// Alerts, newest first; `open_only` leaves out resolved ones.
pub fn list(db: &Db, open_only: bool, limit: u32) -> Result<Vec<Alert>> {
    let conn = db.conn();
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM alerts WHERE (?1 = 0 OR state = 'open') ORDER BY last_seen DESC, id DESC LIMIT ?2"
    ))?;
    let alerts = stmt
        .query_map(params![open_only, limit], row_to_alert)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(alerts)
}

/// Resolves a vault's open alerts of one cause that name no item (an
/// agent that is back in contact).
pub fn resolve_cause_for_vault(db: &Db, vault: &str, cause: Cause) -> Result<Vec<Alert>> {
    // The cause is one of the crate's own names, never the caller's text.
    resolve_automatically(
        db,
        &format!(
            "item IS NULL AND cause = '{}' AND vault = ?1",
            cause.as_str()
        ),
        vault,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_update_one_alert_and_success_resolves_it() {
        let db = Db::in_memory().unwrap();
        let a = raise(
            &db,
            Cause::StorageUnreachable,
            Some("v"),
            Some("i"),
            "down",
            Some(1),
        )
        .unwrap();
        assert!(a.new);
        let b = raise(
            &db,
            Cause::StorageUnreachable,
            Some("v"),
            Some("i"),
            "still down",
            Some(2),
        )
        .unwrap();
        assert!(!b.new);
        assert_eq!(a.alert.id, b.alert.id);
        assert_eq!(b.alert.occurrences, 2);
        assert_eq!(b.alert.last_job, Some(2));
        assert!(!b.alert.remediation.is_empty());
        // Another cause is another alert.
        raise(&db, Cause::WrongKey, Some("v"), Some("i"), "key", Some(3)).unwrap();
        assert_eq!(list(&db, true, 10).unwrap().len(), 2);
        assert_eq!(resolve_for_item(&db, "i").unwrap().len(), 2);
        assert!(list(&db, true, 10).unwrap().is_empty());
        let again = raise(
            &db,
            Cause::StorageUnreachable,
            Some("v"),
            Some("i"),
            "down",
            Some(4),
        )
        .unwrap();
        assert!(again.new);
    }

    #[test]
    fn security_alerts_are_each_recorded_and_not_resolved_by_jobs() {
        let db = Db::in_memory().unwrap();
        let a = raise(&db, Cause::KeyRotated, Some("v"), None, "rotated", None).unwrap();
        let b = raise(&db, Cause::KeyRotated, Some("v"), None, "rotated", None).unwrap();
        assert_ne!(a.alert.id, b.alert.id);
        assert_eq!(a.alert.severity, Severity::Critical);
        let c = raise(
            &db,
            Cause::PointsDeleted,
            Some("v"),
            Some("i"),
            "3 points",
            None,
        )
        .unwrap();
        resolve_for_item(&db, "i").unwrap();
        assert_eq!(get(&db, c.alert.id).unwrap().state, "open");
        assert_eq!(
            resolve(&db, c.alert.id, "ann")
                .unwrap()
                .resolved_by
                .as_deref(),
            Some("ann")
        );
    }

    #[test]
    fn engine_errors_map_to_causes() {
        use coffer_engine::Error as E;
        let storage = |failure| E::Storage {
            path: "p".into(),
            failure,
            message: "m".into(),
        };
        assert_eq!(
            classify(&storage(StorageFailure::OutOfCapacity)),
            Cause::OutOfCapacity
        );
        assert_eq!(
            classify(&storage(StorageFailure::Unreachable)),
            Cause::StorageUnreachable
        );
        assert_eq!(
            classify(&storage(StorageFailure::PathNotFound)),
            Cause::PathNotFound
        );
        assert_eq!(
            classify(&storage(StorageFailure::AuthenticationFailed)),
            Cause::AuthenticationFailed
        );
        assert_eq!(classify(&E::WrongKey { slots: 1 }), Cause::WrongKey);
        assert_eq!(
            classify(&E::Corrupt {
                object: "o".into(),
                reason: "r".into()
            }),
            Cause::DataCorruption
        );
        assert_eq!(classify(&E::Cancelled), Cause::GeneralFault);
    }
}
