//! Coffer's engine: the vault format and every operation on it.
//!
//! A vault is a set of immutable objects at a storage location (see
//! `docs/FORMAT.md`): a header, key slots, packs of encrypted blobs, index
//! files and recovery-point manifests. The modules follow that structure:
//! [`storage`] moves bytes, [`keys`] and [`crypto`] guard them, [`chunker`],
//! [`pack`], [`index`], [`tree`] and [`point`] define the objects, [`vault`]
//! ties them together, and [`backup`], [`restore`] and [`check`] are the
//! operations. The engine knows nothing of HTTP, SQL or terminals.
//!
//! # What may run beside what
//!
//! No operation takes a lock that another waits on. Objects are written once
//! under names that never collide (hashes, or time plus random bytes), so
//! the pairs below are safe for the reasons given; the activity markers of
//! [`locks`] are how garbage collection learns which backups are running.
//!
//! | beside each other | safe? | what makes it so |
//! |---|---|---|
//! | backup, backup | yes | packs, index files and manifests are new objects; each backup writes its own index file; a manifest is written last, after every pack it needs |
//! | backup, restore / check / ls | yes | readers see only points whose manifest exists, and a manifest exists only once its packs and index file do |
//! | backup, prune (points, condemning packs) | yes | condemned packs stay in the index and readable; backups that start later do not deduplicate against them, and one that started before may, which its marker covers (next row) |
//! | backup, prune (deleting condemned packs) | yes | a pack is deleted only after the grace period (24 h) and when no live backup marker started before its condemnation; a backup that cannot refresh its marker for half the staleness time (15 min) fails before it commits |
//! | restore, prune | for restores shorter than the grace period | a purged point's manifest goes, its packs stay until a later prune after the grace period; restores hold no marker, so one that outlives the grace period beside two prunes can lose packs it has yet to read |
//! | check, prune (deleting) | reports, never harms | check may name a pack deleted after it read the index; run it again |
//! | prune, prune | refused | the second sees the first's live marker and stops |
//! | replicate, backup | yes | the replica is listed before the vault, so an object written to both in between is never taken for one the vault deleted; a run copies in commit order |
//! | replicate, prune | yes | deletions reach an asynchronous replica on its next run, in reverse commit order; a synchronous replica gets them as they happen |
//! | tier sync, backup | yes | writes reach the tier as they reach a synchronous replica; a sync only trims what no recent point uses; a tier lacking an object costs a remote read, never an error |
//! | key rotation, anything | yes | the new slot is written before the old one is deleted; open vaults keep their master keys in memory; a process opening with the old key afterwards gets a wrong-key error |
//! | upgrade, anything | yes, run it when older coffers are gone | the header is the one object replaced; a journal record is sealed for the header as it is when the record is written, so a process that opened the vault before the upgrade still writes readable records; older coffers refuse the vault from then on |
//! | journal change, journal change | yes | each change is its own record; the state is the fold in name order |

#![forbid(unsafe_code)]

pub mod backup;
pub mod cache;
pub mod changes;
pub mod check;
pub mod chunker;
pub mod confine;
pub mod credential;
pub mod crypto;
pub mod dict;
pub mod disk_image;
pub mod disk_map;
pub mod error;
pub mod fsmeta;
pub mod gc;
pub mod host;
pub mod ids;
pub mod index;
pub mod intake;
pub mod journal;
pub mod keys;
pub mod location;
pub mod locks;
pub mod pack;
pub mod point;
pub mod policy;
pub mod policy_spec;
pub mod probe;
pub mod prune;
pub mod replica;
pub mod restore;
pub mod restore_source;
pub mod retention;
pub mod speed;
pub mod storage;
pub mod tier;
pub mod tree;
pub mod vault;
pub mod views;
pub mod witness;
pub mod writer;

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
