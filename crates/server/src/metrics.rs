//! Prometheus metrics at `/metrics`, computed from the state database at
//! each scrape: the job table already holds every count and duration, so
//! there is nothing to keep in step, and a restart loses nothing. The text
//! format is written here directly (a few gauge families with labels); a
//! metrics registry would only duplicate what the database knows.

use std::fmt::Write;

use rusqlite::Connection;

use crate::db::Db;
use crate::error::Result;
use crate::jobs::JobKind;

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Family<'a> {
    out: &'a mut String,
}

impl Family<'_> {
    fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        let labels: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
            .collect();
        if labels.is_empty() {
            let _ = writeln!(self.out, "{name} {value}");
        } else {
            let _ = writeln!(self.out, "{name}{{{}}} {value}", labels.join(","));
        }
    }
}

/// The metrics in Prometheus' text format.
pub fn render(db: &Db) -> Result<String> {
    let mut out = String::new();
    let conn = db.conn();
    let mut f = Family { out: &mut out };
    job_families(&conn, &mut f)?;
    item_families(&conn, &mut f)?;
    vault_and_alert_families(&conn, &mut f)?;
    Ok(out)
}

/// Jobs by kind and state, and the run time and bytes of ended jobs.
fn job_families(conn: &Connection, f: &mut Family<'_>) -> Result<()> {
    f.header(
        "coffer_jobs",
        "gauge",
        "Jobs by kind and state (history included).",
    );
    let mut stmt =
        conn.prepare("SELECT kind, state, count(*) FROM jobs GROUP BY kind, state ORDER BY 1, 2")?;
    for row in stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })? {
        let (kind, state, n) = row?;
        f.sample(
            "coffer_jobs",
            &[("kind", &kind), ("state", &state)],
            n as f64,
        );
    }

    f.header(
        "coffer_job_duration_seconds_sum",
        "counter",
        "Total run time of ended jobs, by kind.",
    );
    f.header(
        "coffer_job_duration_seconds_count",
        "counter",
        "Ended jobs that ran, by kind.",
    );
    f.header(
        "coffer_job_bytes_read_total",
        "counter",
        "Bytes read by ended jobs, by kind.",
    );
    let mut stmt = conn.prepare(
        "SELECT kind, sum(finished - started), count(*), sum(coalesce(json_extract(progress, '$.bytes_read'), 0))
         FROM jobs WHERE started IS NOT NULL AND finished IS NOT NULL GROUP BY kind ORDER BY 1",
    )?;
    for row in stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, i64>(3)?,
        ))
    })? {
        let (kind, secs, n, bytes) = row?;
        f.sample(
            "coffer_job_duration_seconds_sum",
            &[("kind", &kind)],
            secs as f64,
        );
        f.sample(
            "coffer_job_duration_seconds_count",
            &[("kind", &kind)],
            n as f64,
        );
        f.sample(
            "coffer_job_bytes_read_total",
            &[("kind", &kind)],
            bytes as f64,
        );
    }
    Ok(())
}

/// Each item's last success and the bytes its backups stored.
fn item_families(conn: &Connection, f: &mut Family<'_>) -> Result<()> {
    f.header(
        "coffer_item_last_success_timestamp_seconds",
        "gauge",
        "When the last backup of each item ended successfully (fully or partly).",
    );
    let mut stmt = conn.prepare(
        "SELECT i.name, i.vault, max(j.finished) FROM items i
         LEFT JOIN jobs j ON j.item = i.name AND j.kind = ?1 AND j.state IN ('Succeeded', 'PartialSucceeded')
         GROUP BY i.name, i.vault ORDER BY 1",
    )?;
    for row in stmt.query_map([JobKind::Backup.as_str()], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Option<i64>>(2)?,
        ))
    })? {
        let (item, vault, t) = row?;
        f.sample(
            "coffer_item_last_success_timestamp_seconds",
            &[("item", &item), ("vault", &vault)],
            t.unwrap_or(0) as f64,
        );
    }

    f.header(
        "coffer_item_stored_bytes_total",
        "counter",
        "Bytes each item's backups wrote to its vault (compressed, deduplicated).",
    );
    let mut stmt = conn.prepare(
        "SELECT item, vault, sum(coalesce(json_extract(result, '$.stats.bytes_stored'), 0)) FROM jobs
         WHERE kind = ?1 AND item IS NOT NULL GROUP BY item, vault ORDER BY 1",
    )?;
    for row in stmt.query_map([JobKind::Backup.as_str()], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, Option<String>>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })? {
        let (item, vault, bytes) = row?;
        f.sample(
            "coffer_item_stored_bytes_total",
            &[("item", &item), ("vault", vault.as_deref().unwrap_or(""))],
            bytes as f64,
        );
    }
    Ok(())
}

/// Each vault's size at its location, and the open alerts.
fn vault_and_alert_families(conn: &Connection, f: &mut Family<'_>) -> Result<()> {
    f.header(
        "coffer_vault_size_bytes",
        "gauge",
        "Bytes each vault holds at its location, measured after its last backup.",
    );
    let mut stmt = conn.prepare(
        "SELECT v.name, s.value FROM vaults v JOIN settings s ON s.key = 'vault_size:' || v.name ORDER BY 1",
    )?;
    for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
        let (vault, size) = row?;
        if let Ok(size) = size.parse::<u64>() {
            f.sample("coffer_vault_size_bytes", &[("vault", &vault)], size as f64);
        }
    }

    f.header(
        "coffer_alerts_open",
        "gauge",
        "Open alerts by category and severity.",
    );
    let mut stmt = conn.prepare(
        "SELECT category, severity, count(*) FROM alerts WHERE state = 'open' GROUP BY 1, 2 ORDER BY 1, 2",
    )?;
    for row in stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })? {
        let (category, severity, n) = row?;
        f.sample(
            "coffer_alerts_open",
            &[("category", &category), ("severity", &severity)],
            n as f64,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped_and_families_have_headers() {
        let db = Db::in_memory().unwrap();
        crate::alerts::raise(
            &db,
            crate::alerts::Cause::WrongKey,
            Some("v\"x"),
            Some("i"),
            "d",
            None,
        )
        .unwrap();
        let text = render(&db).unwrap();
        assert!(text.contains("# TYPE coffer_alerts_open gauge"));
        assert!(
            text.contains("coffer_alerts_open{category=\"job\",severity=\"error\"} 1"),
            "{text}"
        );
        assert_eq!(escape("a\"b\\c"), "a\\\"b\\\\c");
    }
}
