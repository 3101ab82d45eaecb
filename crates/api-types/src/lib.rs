//! The vocabulary that every entry point of Coffer shares (the local
//! command line, the REST service, the remote command line, later the
//! agent): the API's requests and answers as types with their OpenAPI
//! schema, so that no entry point spells a name or shapes JSON on its own.
//!
//! It depends on nothing of Coffer's: the server and the clients depend on
//! it, never the other way round. It holds types, not behaviour.

#![forbid(unsafe_code)]

pub mod access;
pub mod agent;
pub mod alert;
pub mod backup;
pub mod error;
pub mod item;
pub mod job;
pub mod location;
pub mod notification;
pub mod outcome;
pub mod point;
pub mod policy;
pub mod restore;
pub mod service;
pub mod set;
pub mod vault;

pub use backup::{BackupSummary, DiskSummary, PointStats};
pub use error::{exit, Audience, ErrorCode, StorageFailure};
pub use job::JobKind;
pub use point::{Entry, Listing, PointSummary};
pub use policy::{MonthlyRules, PolicySpec, PolicyView, RetentionRules, WeeklyRules, YearlyRules};
pub use restore::{PathError, RestoreParams, RestoreSummary};
