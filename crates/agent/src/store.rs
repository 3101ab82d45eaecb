//! The engine's storage for an agent: every object goes through the
//! service's append-only store (`/api/v1/agent/objects/…`), so the agent
//! needs no storage credentials and the backend can be anything the
//! service reaches. Errors are turned into the engine's: a missing object
//! is `Missing`, a refusal is a storage failure that says the service
//! refused and why, and an outage is `Unreachable`, which the engine's
//! callers already know how to report.

use coffer_api_types::{ErrorCode, StorageFailure};
use coffer_engine::storage::{ObjectInfo, ObjectStore};
use serde::Deserialize;
use std::time::{Duration, Instant};

use crate::client::Client;
use crate::error::Error;

/// How long a call rides out a service that does not answer (a restart).
const RECONNECT_FOR: Duration = Duration::from_secs(60);

/// The service's store, as the engine sees it.
pub struct ServiceStore {
    client: Client,
}

impl ServiceStore {
    pub fn new(client: Client) -> Self {
        ServiceStore { client }
    }

    /// Runs one call, trying again with growing pauses while the service
    /// cannot be reached; a refusal is final.
    fn call<T>(
        &self,
        path: &str,
        f: impl Fn(&Client) -> Result<T, Error>,
    ) -> coffer_engine::Result<T> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(250);
        loop {
            match f(&self.client) {
                Err(e @ Error::Unreachable { .. }) if started.elapsed() + pause < RECONNECT_FOR => {
                    tracing::warn!(error = %e, "the service does not answer; trying again");
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(8));
                }
                other => return other.map_err(|e| engine_error(path, e)),
            }
        }
    }
}

#[derive(Deserialize)]
struct SizeAnswer {
    size: Option<u64>,
}

#[derive(Deserialize)]
struct Listed {
    path: String,
    size: u64,
}

fn engine_error(path: &str, e: Error) -> coffer_engine::Error {
    let failure = match &e {
        Error::Refused {
            code: ErrorCode::NotFound,
            ..
        } => {
            return coffer_engine::Error::Missing {
                object: path.to_string(),
            }
        }
        Error::Refused {
            code: ErrorCode::Storage(f),
            ..
        } => *f,
        Error::Refused {
            code: ErrorCode::Unauthenticated,
            ..
        } => StorageFailure::AuthenticationFailed,
        Error::Refused {
            code: ErrorCode::Forbidden | ErrorCode::WriteOnly,
            ..
        } => StorageFailure::PermissionDenied,
        Error::Unreachable { .. } => StorageFailure::Unreachable,
        _ => StorageFailure::Other,
    };
    coffer_engine::Error::Storage {
        path: format!("service:{path}"),
        failure,
        message: e.to_string(),
    }
}

impl ObjectStore for ServiceStore {
    fn put(&self, path: &str, data: &[u8]) -> coffer_engine::Result<()> {
        self.call(path, |c| {
            c.put_bytes(&format!("/agent/objects/{path}"), data.to_vec())
        })
    }

    fn get(&self, path: &str) -> coffer_engine::Result<Vec<u8>> {
        self.call(path, |c| c.get_bytes(&format!("/agent/objects/{path}")))
    }

    fn get_range(&self, path: &str, offset: u64, len: u64) -> coffer_engine::Result<Vec<u8>> {
        // A writer reads only small objects whole; ranges are for packs,
        // which an agent never reads back.
        let whole = self.get(path)?;
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(whole.len());
        let end = start.saturating_add(len as usize).min(whole.len());
        Ok(whole[start..end].to_vec())
    }

    fn size(&self, path: &str) -> coffer_engine::Result<Option<u64>> {
        self.call(path, |c| {
            c.get_json::<SizeAnswer>(&format!("/agent/size/{path}"))
        })
        .map(|a| a.size)
    }

    fn list(&self, prefix: &str) -> coffer_engine::Result<Vec<ObjectInfo>> {
        let listed: Vec<Listed> =
            self.call(prefix, |c| c.get_json(&format!("/agent/list/{prefix}")))?;
        Ok(listed
            .into_iter()
            .map(|l| ObjectInfo {
                path: l.path,
                size: l.size,
            })
            .collect())
    }

    fn delete(&self, path: &str) -> coffer_engine::Result<()> {
        Err(coffer_engine::Error::WriteOnly {
            action: format!("delete {path} (an agent only adds to its vault)"),
        })
    }
}
