//! Notifications: alerts and job ends sent to webhooks and e-mail.
//!
//! Each target has rules: a lowest severity and the event types it wants.
//! Security alerts go to every enabled target whatever its rules say (they
//! cannot be switched off). Messages go through an outbox table, so a
//! target that is down gets them later: a delivery is retried with growing
//! pauses (30 s, 2 min, 10 min, 1 h, 6 h) and then given up as failed,
//! visible in the target's deliveries. Webhooks get the JSON event with an
//! HMAC-SHA256 signature of the body (`X-Coffer-Signature: sha256=<hex>`)
//! under the target's secret; e-mail goes through SMTP with STARTTLS
//! (or implicit TLS, or none for a relay on this machine) using lettre.

pub use coffer_api_types::notification::{Delivery, Destination, EventType, NewTarget, Target};
use std::time::Duration;

use hmac::{Hmac, Mac};
use rusqlite::{params, OptionalExtension};
use sha2::Sha256;

use crate::alerts::{self, Alert, Cause, Severity};
use crate::db::now;
use crate::error::{Error, Result};
use crate::state::State;

/// Pauses before each retry; after the last, the delivery has failed.
const RETRY_PAUSES: [i64; 5] = [30, 120, 600, 3_600, 21_600];

fn validate(t: &NewTarget) -> Result<()> {
    crate::state::validate_name("name", &t.name)?;
    match &t.destination {
        Destination::Webhook { url } => {
            let parsed = url::Url::parse(url)
                .map_err(|e| Error::invalid("destination.url", format!("not a URL: {e}")))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(Error::invalid("destination.url", "use http:// or https://"));
            }
            if t.secret.as_deref().is_none_or(|s| s.len() < 16) {
                return Err(Error::invalid(
                    "secret",
                    "a webhook needs a signing secret of at least 16 characters",
                ));
            }
        }
        Destination::Email {
            smtp_host,
            security,
            from,
            to,
            ..
        } => {
            if smtp_host.trim().is_empty() {
                return Err(Error::invalid("destination.smtp_host", "required"));
            }
            if !["starttls", "tls", "none"].contains(&security.as_str()) {
                return Err(Error::invalid(
                    "destination.security",
                    "one of starttls, tls, none",
                ));
            }
            from.parse::<lettre::message::Mailbox>()
                .map_err(|e| Error::invalid("destination.from", e.to_string()))?;
            if to.is_empty() {
                return Err(Error::invalid("destination.to", "at least one address"));
            }
            for a in to {
                a.parse::<lettre::message::Mailbox>()
                    .map_err(|e| Error::invalid("destination.to", format!("{a}: {e}")))?;
            }
        }
    }
    Ok(())
}

impl State {
    /// Raises an alert (or counts a repeat) and notifies its targets.
    pub fn raise_alert(
        &self,
        cause: Cause,
        vault: Option<&str>,
        item: Option<&str>,
        detail: &str,
        job: Option<i64>,
    ) -> Result<alerts::Alert> {
        let raised = alerts::raise(&self.db, cause, vault, item, detail, job)?;
        self.notify_alert(&raised.alert, EventType::AlertRaised);
        Ok(raised.alert)
    }

    /// Resolves an item's open job alerts after a success, and notifies.
    pub fn resolve_item_alerts(&self, item: &str) -> Result<()> {
        for alert in alerts::resolve_for_item(&self.db, item)? {
            self.notify_alert(&alert, EventType::AlertResolved);
        }
        Ok(())
    }

    /// Resolves a vault's own open job alerts (those without an item)
    /// after one of its prunes or checks succeeded.
    pub fn resolve_vault_alerts(&self, vault: &str) -> Result<()> {
        for alert in alerts::resolve_for_vault(&self.db, vault)? {
            self.notify_alert(&alert, EventType::AlertResolved);
        }
        Ok(())
    }

    pub fn add_target(&self, t: &NewTarget) -> Result<Target> {
        validate(t)?;
        let sealed = t
            .secret
            .as_ref()
            .map(|s| self.seal_secret(&format!("notification:{}", t.name), s.as_bytes()));
        let n = self.db.conn().execute(
            "INSERT INTO notification_targets (name, destination, sealed_secret, min_severity, events, enabled, created)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (name) DO NOTHING",
            params![
                t.name,
                serde_json::to_string(&t.destination).map_err(|e| Error::Internal(e.to_string()))?,
                sealed,
                t.min_severity.as_str(),
                serde_json::to_string(&t.events).map_err(|e| Error::Internal(e.to_string()))?,
                t.enabled,
                now()
            ],
        )?;
        if n == 0 {
            return Err(Error::Conflict(format!("a target named {} exists", t.name)));
        }
        self.target_by_name(&t.name)
    }

    fn target_by_name(&self, name: &str) -> Result<Target> {
        self.targets()?
            .into_iter()
            .find(|t| t.name == name)
            .ok_or_else(|| Error::NotFound(format!("notification target {name}")))
    }

    pub fn targets(&self) -> Result<Vec<Target>> {
        let conn = self.db.conn();
        let mut stmt = conn.prepare(
            "SELECT id, name, destination, sealed_secret IS NOT NULL, min_severity, events, enabled, created
             FROM notification_targets ORDER BY name",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, bool>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, bool>(6)?,
                    r.get::<_, i64>(7)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(
                |(id, name, dest, has_secret, sev, events, enabled, created)| {
                    Ok(Target {
                        id,
                        name,
                        destination: serde_json::from_str(&dest)
                            .map_err(|e| Error::Internal(format!("stored target {id}: {e}")))?,
                        has_secret,
                        min_severity: Severity::parse(&sev).unwrap_or(Severity::Warning),
                        events: serde_json::from_str(&events).unwrap_or_default(),
                        enabled,
                        created,
                    })
                },
            )
            .collect()
    }

    pub fn remove_target(&self, id: i64) -> Result<()> {
        let n = self
            .db
            .conn()
            .execute("DELETE FROM notification_targets WHERE id = ?1", [id])?;
        if n == 0 {
            return Err(Error::NotFound(format!("notification target {id}")));
        }
        Ok(())
    }

    pub fn deliveries(&self, target: i64) -> Result<Vec<Delivery>> {
        let conn = self.db.conn();
        let mut stmt = conn.prepare(
            "SELECT id, target_id, event, state, attempts, last_error, created, sent FROM notification_outbox
             WHERE target_id = ?1 ORDER BY id DESC LIMIT 200",
        )?;
        let list = stmt
            .query_map([target], |r| {
                Ok(Delivery {
                    id: r.get(0)?,
                    target: r.get(1)?,
                    event: r.get(2)?,
                    state: r.get(3)?,
                    attempts: r.get(4)?,
                    last_error: r.get(5)?,
                    created: r.get(6)?,
                    sent: r.get(7)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(list)
    }

    /// Queues an event for every target whose rules want it.
    pub fn notify(
        &self,
        event: EventType,
        severity: Severity,
        security: bool,
        body: serde_json::Value,
    ) -> Result<usize> {
        let mut queued = 0;
        for t in self.targets()?.into_iter().filter(|t| t.enabled) {
            let wanted = security
                || (severity >= t.min_severity
                    && (t.events.is_empty() || t.events.contains(&event)));
            if !wanted {
                continue;
            }
            let payload = serde_json::json!({
                "event": event.as_str(),
                "severity": severity.as_str(),
                "time": now(),
                "service": "coffer",
                "data": body,
            });
            self.db.conn().execute(
                "INSERT INTO notification_outbox (target_id, event, payload, attempts, next_attempt, state, created)
                 VALUES (?1, ?2, ?3, 0, 0, 'pending', ?4)",
                params![t.id, event.as_str(), payload.to_string(), now()],
            )?;
            queued += 1;
        }
        Ok(queued)
    }

    /// Queues notifications for a raised or resolved alert.
    pub fn notify_alert(&self, alert: &Alert, event: EventType) {
        let body = serde_json::to_value(alert).unwrap_or_default();
        if let Err(e) = self.notify(event, alert.severity, alert.category == "security", body) {
            tracing::error!(alert = alert.id, "cannot queue notifications: {e}");
        }
    }

    /// Sends what is due in the outbox; returns how many were sent.
    pub fn deliver_due(&self) -> Result<usize> {
        let due: Vec<(i64, i64, String, i64)> = {
            let conn = self.db.conn();
            let mut stmt = conn.prepare(
                "SELECT id, target_id, payload, attempts FROM notification_outbox
                 WHERE state = 'pending' AND next_attempt <= ?1 ORDER BY id LIMIT 50",
            )?;
            let rows = stmt
                .query_map([now()], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows
        };
        let mut sent = 0;
        let targets = if due.is_empty() {
            Vec::new()
        } else {
            self.targets()?
        };
        for (id, target_id, payload, attempts) in due {
            let target = targets.iter().find(|t| t.id == target_id).cloned();
            let Some(target) = target else { continue };
            let secret = self.target_secret(&target)?;
            let result = match &target.destination {
                Destination::Webhook { url } => {
                    send_webhook(url, secret.as_deref().unwrap_or(""), id, &payload)
                }
                Destination::Email { .. } => {
                    send_email(&target.destination, secret.as_deref(), &payload)
                }
            };
            let attempts = attempts + 1;
            match result {
                Ok(()) => {
                    self.db.conn().execute(
                        "UPDATE notification_outbox SET state = 'sent', attempts = ?1, sent = ?2, last_error = NULL WHERE id = ?3",
                        params![attempts, now(), id],
                    )?;
                    sent += 1;
                }
                Err(message) => {
                    let pause = RETRY_PAUSES.get(attempts as usize - 1);
                    let (state, next) = match pause {
                        Some(p) => ("pending", now() + p),
                        None => ("failed", now()),
                    };
                    tracing::warn!(target = %target.name, attempts, "notification not delivered: {message}");
                    self.db.conn().execute(
                        "UPDATE notification_outbox SET state = ?1, attempts = ?2, next_attempt = ?3, last_error = ?4 WHERE id = ?5",
                        params![state, attempts, next, message, id],
                    )?;
                }
            }
        }
        Ok(sent)
    }

    fn target_secret(&self, t: &Target) -> Result<Option<String>> {
        let sealed: Option<Vec<u8>> = self
            .db
            .conn()
            .query_row(
                "SELECT sealed_secret FROM notification_targets WHERE id = ?1",
                [t.id],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        match sealed {
            Some(s) => {
                let plain = self.open_secret(&format!("notification:{}", t.name), &s)?;
                Ok(Some(String::from_utf8_lossy(&plain).into_owned()))
            }
            None => Ok(None),
        }
    }
}

/// Delivers the outbox every second until the process ends.
pub async fn run_notifier(state: std::sync::Arc<State>) {
    loop {
        let s = state.clone();
        match tokio::task::spawn_blocking(move || s.deliver_due()).await {
            Ok(Err(e)) => tracing::error!("notifier: {e}"),
            Err(e) => tracing::error!("notifier task: {e}"),
            Ok(Ok(_)) => {}
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The signature header's value for `body` under `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn send_webhook(
    url: &str,
    secret: &str,
    delivery: i64,
    payload: &str,
) -> std::result::Result<(), String> {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .map_err(|e| e.to_string())?;
    let event = serde_json::from_str::<serde_json::Value>(payload)
        .ok()
        .and_then(|v| v["event"].as_str().map(str::to_string))
        .unwrap_or_default();
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .header("user-agent", concat!("coffer/", env!("CARGO_PKG_VERSION")))
        .header("x-coffer-event", event)
        .header("x-coffer-delivery", delivery.to_string())
        .header("x-coffer-signature", signature(secret, payload.as_bytes()))
        .body(payload.to_string())
        .send()
        .map_err(|e| format!("{url}: {e}"))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("{url} answered {}", response.status()))
    }
}

fn send_email(
    dest: &Destination,
    password: Option<&str>,
    payload: &str,
) -> std::result::Result<(), String> {
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
    use lettre::{Message, SmtpTransport, Transport};

    let Destination::Email {
        smtp_host,
        smtp_port,
        security,
        ca_file,
        username,
        from,
        to,
    } = dest
    else {
        return Err("not an e-mail target".into());
    };
    let v: serde_json::Value = serde_json::from_str(payload).map_err(|e| e.to_string())?;
    let data = &v["data"];
    let subject = match v["event"].as_str() {
        Some("alert_raised") | Some("alert_resolved") => format!(
            "[coffer] {} {}: {}",
            v["severity"].as_str().unwrap_or(""),
            if v["event"] == "alert_resolved" {
                "resolved"
            } else {
                "alert"
            },
            data["title"].as_str().unwrap_or("alert")
        ),
        Some(event) => format!(
            "[coffer] {event}: {}",
            data["item"].as_str().unwrap_or("job")
        ),
        None => "[coffer] notification".into(),
    };
    let mut text = String::new();
    if let Some(detail) = data["detail"].as_str() {
        text.push_str(detail);
        text.push_str("\n\n");
    }
    if let Some(steps) = data["remediation"].as_array() {
        text.push_str("What to do:\n");
        for (i, s) in steps.iter().enumerate() {
            text.push_str(&format!("{}. {}\n", i + 1, s.as_str().unwrap_or("")));
        }
        text.push('\n');
    }
    text.push_str(&serde_json::to_string_pretty(&v).unwrap_or_default());
    let mut message = Message::builder()
        .from(from.parse().map_err(|e| format!("from: {e}"))?)
        .subject(subject);
    for a in to {
        message = message.to(a.parse().map_err(|e| format!("to {a}: {e}"))?);
    }
    let message = message.body(text).map_err(|e| e.to_string())?;

    let tls_params = || -> std::result::Result<TlsParameters, String> {
        let mut b = TlsParameters::builder(smtp_host.clone());
        if let Some(ca) = ca_file {
            let pem = std::fs::read(ca).map_err(|e| format!("{ca}: {e}"))?;
            b = b.add_root_certificate(
                Certificate::from_pem(&pem).map_err(|e| format!("{ca}: {e}"))?,
            );
        }
        b.build().map_err(|e| e.to_string())
    };
    let tls = match security.as_str() {
        "none" => Tls::None,
        "tls" => Tls::Wrapper(tls_params()?),
        _ => Tls::Required(tls_params()?),
    };
    let mut transport = SmtpTransport::builder_dangerous(smtp_host)
        .port(*smtp_port)
        .tls(tls)
        .timeout(Some(Duration::from_secs(30)));
    if let Some(user) = username {
        transport = transport.credentials(Credentials::new(
            user.clone(),
            password.unwrap_or("").to_string(),
        ));
    }
    transport
        .build()
        .send(&message)
        .map(|_| ())
        .map_err(|e| format!("SMTP {smtp_host}:{smtp_port}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2.
        let sig = signature("Jefe", b"what do ya want for nothing?");
        assert_eq!(
            sig,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
