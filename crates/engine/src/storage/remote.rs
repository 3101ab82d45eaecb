//! Objects kept by someone else on the process's behalf: an agent's vault
//! is reached through the Coffer service, which holds the storage
//! credentials and accepts only appends. The engine sees such a location
//! as any other [`Storage`](super::Storage): every verb goes to the
//! [`ObjectStore`] the caller supplies (the agent's client), so backups
//! need no code of their own for it.

use crate::error::Result;
use crate::storage::ObjectInfo;

/// The verbs of a storage location, as a service offers them. Errors are
/// the engine's: a missing object is `Error::Missing`, a refusal or an
/// outage `Error::Storage` with its classified failure.
pub trait ObjectStore: Send + Sync {
    fn put(&self, path: &str, data: &[u8]) -> Result<()>;
    fn get(&self, path: &str) -> Result<Vec<u8>>;
    fn get_range(&self, path: &str, offset: u64, len: u64) -> Result<Vec<u8>>;
    fn size(&self, path: &str) -> Result<Option<u64>>;
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>>;
    fn delete(&self, path: &str) -> Result<()>;
}
