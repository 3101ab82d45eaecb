//! Notification targets (webhooks and e-mail), the events they are sent,
//! and the deliveries of the outbox.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::alert::Severity;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    /// An alert was raised, or an open one happened again.
    AlertRaised,
    /// An alert was resolved.
    AlertResolved,
    /// A job failed.
    JobFailed,
    /// A job succeeded (fully or partly).
    JobSucceeded,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::AlertRaised => "alert_raised",
            EventType::AlertResolved => "alert_resolved",
            EventType::JobFailed => "job_failed",
            EventType::JobSucceeded => "job_succeeded",
        }
    }
}

/// Where notifications go.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Destination {
    Webhook {
        /// http:// or https:// URL that receives a POST.
        url: String,
    },
    Email {
        smtp_host: String,
        /// Default 587.
        #[serde(default = "submission_port")]
        smtp_port: u16,
        /// `starttls` (default), `tls` (implicit, port 465) or `none` (a
        /// relay on this machine only).
        #[serde(default = "starttls")]
        security: String,
        /// A PEM file with the CA that signed the server's certificate, when
        /// it is not a public one.
        ca_file: Option<String>,
        username: Option<String>,
        from: String,
        to: Vec<String>,
    },
}

/// A notification target as the API shows it (never its secret).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Target {
    pub id: i64,
    pub name: String,
    pub destination: Destination,
    /// Whether a secret (webhook signing key or SMTP password) is stored.
    pub has_secret: bool,
    /// The lowest severity of alerts sent.
    pub min_severity: Severity,
    /// The event types sent; empty means all.
    pub events: Vec<EventType>,
    pub enabled: bool,
    pub created: i64,
}

/// A new target.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct NewTarget {
    pub name: String,
    pub destination: Destination,
    /// The webhook's HMAC key or the SMTP password. Write-only.
    pub secret: Option<String>,
    #[serde(default = "warning")]
    pub min_severity: Severity,
    #[serde(default)]
    pub events: Vec<EventType>,
    #[serde(default = "enabled")]
    pub enabled: bool,
}

/// One message to one target.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Delivery {
    pub id: i64,
    pub target: i64,
    pub event: String,
    /// `pending`, `sent` or `failed`.
    pub state: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created: i64,
    pub sent: Option<i64>,
}

fn submission_port() -> u16 {
    587
}

fn starttls() -> String {
    "starttls".into()
}

fn warning() -> Severity {
    Severity::Warning
}

fn enabled() -> bool {
    true
}
