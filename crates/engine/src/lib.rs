//! Coffer's engine: the vault format and every operation on it.
//!
//! A vault is a set of immutable objects at a storage location (see
//! `docs/FORMAT.md`): a header, key slots, packs of encrypted blobs, index
//! files and recovery-point manifests. The modules follow that structure:
//! [`storage`] moves bytes, [`keys`] and [`crypto`] guard them, [`chunker`],
//! [`pack`], [`index`], [`tree`] and [`point`] define the objects, [`vault`]
//! ties them together, and [`backup`], [`restore`] and [`check`] are the
//! operations. The engine knows nothing of HTTP, SQL or terminals.

pub mod backup;
pub mod cache;
pub mod changes;
pub mod check;
pub mod chunker;
pub mod confine;
pub mod crypto;
pub mod dict;
pub mod error;
pub mod fsmeta;
pub mod gc;
pub mod ids;
pub mod index;
pub mod journal;
pub mod keys;
pub mod location;
pub mod locks;
pub mod pack;
pub mod point;
pub mod policy;
pub mod probe;
pub mod prune;
pub mod replica;
pub mod restore;
pub mod retention;
pub mod speed;
pub mod storage;
pub mod tier;
pub mod tree;
pub mod vault;
pub mod witness;

pub use error::{Error, Result};
pub use ids::{ChunkId, ObjectId};
pub use keys::{KdfParams, VaultKey, DEFAULT_KDF, FORMAT_VERSION};
pub use storage::Storage;
pub use vault::{Point, Vault};

#[cfg(any(test, feature = "testing"))]
pub mod crafted;
#[cfg(test)]
mod format_vectors;
#[cfg(test)]
mod restore_confinement;
#[cfg(test)]
mod storage_attacks;
#[cfg(test)]
mod testutil;
