//! Coffer's backup service.
//!
//! `coffer serve` runs one [`Service`]: state in SQLite under a data
//! directory ([`db`]), vault keys and storage secrets sealed under a service
//! secret kept outside that database ([`secret`]), users, tokens and roles
//! ([`auth`]), a job table and dispatcher ([`jobs`]) whose runners ([`runners`])
//! drive the engine on plain threads, started by hand or by the [`scheduler`], alerts with their causes and remedies ([`alerts`]), and the
//! REST API over all of it ([`api`]). Infrastructure sets ([`sets`]) back
//! several items up into one coordinated point together with the service's
//! own configuration, which [`recovery`] brings back on a fresh machine. The engine stays the only thing that
//! touches vault bytes; this crate never reads a pack.
//!
//! Policies, assignments and protection states live in each vault's journal
//! (so a cloud recovery brings them back with the data); the service's own
//! database holds what is about the service: where its vaults are and how to
//! open them, the items and their sources, jobs, alerts, users and roles.

#![forbid(unsafe_code)]

pub mod agent_hub;
pub mod agent_jobs;
pub mod agent_store;
pub mod agents;
pub mod alerts;
pub mod api;
pub mod auth;
pub mod bandwidth;
pub mod config;
pub mod console;
pub mod daemon;
pub mod db;
pub mod error;
pub mod fleet;
pub mod jobs;
pub mod locations;
pub mod metrics;
pub mod notify;
pub mod points;
pub mod policies;
pub mod recovery;
pub mod recovery_fleet;
pub mod recovery_format;
pub mod runners;
pub mod scheduler;
pub mod secret;
pub mod service;
pub mod set_backup;
pub mod sets;
pub mod sightings;
pub mod state;
pub mod targets;
pub mod tls;

pub use config::ServiceConfig;
pub use daemon::serve;
pub use error::{Error, Result};
pub use service::Service;
