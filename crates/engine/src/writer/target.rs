//! A vault seen through a write-only credential: a backup destination that
//! reads nothing of the vault but the header, its own slot and its own
//! index files, and writes packs, an index file, a marker and a manifest
//! sealed under a fresh session (FORMAT.md §5a).
//!
//! Opening one starts the session, so open one per backup. The writer
//! deduplicates only against what it stored itself (its index files, which
//! it lists in its own folder), takes its parent point and that point's
//! trees from its cache, and compresses without dictionaries (they are
//! trained on other hosts' data). See docs/SECURITY.md for why.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::backup::{Destination, Parent, Start};
use crate::cache::Cache;
use crate::chunker::Chunker;
use crate::credential::objects::{self, seal_session_object, WRITER_MARKER_MAGIC};
use crate::credential::secret::WriterCredential;
use crate::credential::session::{SessionHeader, WriterSession};
use crate::credential::slot::{WriterSlot, REVOKED_SUFFIX, WRITER_FORMAT};
use crate::crypto::MasterKeys;
use crate::dict::Dictionary;
use crate::error::{Error, Result};
use crate::ids::{ChunkId, ObjectId};
use crate::index::{Index, PackRecord, Purpose, WriterIndex};
use crate::keys::Header;
use crate::locks::{hold_sealed, Activity, Release, MARKER_AAD};
use crate::point::{point_path, Manifest};
use crate::storage::Storage;
use crate::vault::Vault;
use crate::writer::cache::{LastPoint, WriterCache};

/// A vault opened with a write-only credential, for one backup.
pub struct WriteOnlyVault {
    storage: Storage,
    header: Header,
    credential: WriterCredential,
    name: String,
    session: WriterSession,
    keys: MasterKeys,
    chunker: Chunker,
    prefix: Vec<u8>,
    index_cache: Cache,
    cache: WriterCache,
    /// The trees of the point being written, for the cache.
    trees: Mutex<Vec<(ChunkId, Vec<u8>)>>,
    /// The parent point's trees, from the cache.
    previous: Mutex<HashMap<ChunkId, Vec<u8>>>,
}

impl WriteOnlyVault {
    /// Checks the credential against the vault (its id, its slot, no
    /// revocation notice) and starts a session.
    pub fn open(
        storage: Storage,
        credential: WriterCredential,
        cache_root: Option<&Path>,
    ) -> Result<Self> {
        let header = Vault::read_header(&storage)?;
        if header.vault_id != credential.vault_id {
            return Err(Error::Invalid(format!(
                "this write-only credential belongs to vault {}, and the location {} holds vault {}: give the location the credential was made for",
                hex::encode(credential.vault_id),
                storage.display(),
                header.vault_id_hex()
            )));
        }
        if header.version < WRITER_FORMAT {
            return Err(Error::corrupt(
                "vault (header)",
                format!("the vault says format {}, older than its write-only credentials: its header was replaced", header.version),
            ));
        }
        let slot_id = credential.slot_id();
        let slot_path = format!("keys/{slot_id}");
        let slot = match storage.get(&slot_path) {
            Ok(bytes) => WriterSlot::parse(&slot_id, &bytes)?,
            Err(Error::Missing { .. }) => {
                return Err(Error::Invalid(format!(
                    "this write-only credential's slot {slot_id} is gone from the vault: ask a key holder for a new credential (`coffer key add --write-only`)"
                )))
            }
            Err(e) => return Err(e),
        };
        if slot.fingerprint != credential.secret.fingerprint() {
            return Err(Error::Invalid(format!(
                "the vault's slot {slot_id} belongs to another credential than this one: ask a key holder for a new credential"
            )));
        }
        if storage
            .size(&format!("{slot_path}{REVOKED_SUFFIX}"))?
            .is_some()
        {
            return Err(Error::Invalid(format!(
                "the write-only credential {} was revoked: ask a key holder of the vault for a new one (`coffer key add --write-only`)",
                slot.name
            )));
        }
        let session = WriterSession::start(&credential)?;
        let keys = session.object_keys(&credential.secret);
        let chunker = Chunker::new(&credential.secret.chunker_secret());
        let prefix = objects::pack_prefix(&session.header);
        let vault_id = header.vault_id_hex();
        Ok(WriteOnlyVault {
            index_cache: Cache::new(cache_root, &format!("{vault_id}/writer-{slot_id}")),
            cache: WriterCache::new(cache_root, &vault_id, &slot_id),
            storage,
            header,
            name: slot.name,
            credential,
            session,
            keys,
            chunker,
            prefix,
            trees: Mutex::new(Vec::new()),
            previous: Mutex::new(HashMap::new()),
        })
    }

    /// The credential's name, as its slot records it.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Everything this credential's index files list but the packs a key
    /// holder's prune withdrew. A file that does not open (damaged, or put
    /// there by someone else) is skipped with a warning: it costs only
    /// deduplication, never a wrong point.
    fn own_records(&self) -> Result<Vec<PackRecord>> {
        // A prune replaces a writer's index files too.
        crate::index::relisting_replaced_files(|| self.try_own_records())
    }

    fn try_own_records(&self) -> Result<Vec<PackRecord>> {
        let slot_id = self.credential.slot_id();
        let mut records = Vec::new();
        let mut withdrawn = HashSet::new();
        for obj in self.storage.list(&objects::index_folder(&slot_id))? {
            let Some(id) = obj.path.rsplit('/').next().and_then(ObjectId::parse) else {
                continue;
            };
            let bytes = self.index_cache.fetch(&self.storage, &obj.path, &id)?;
            match crate::index::decode_writer_index(
                &self.credential.secret,
                &self.header.vault_id,
                &self.credential.slot,
                &obj.path,
                &bytes,
            ) {
                Ok(index) => {
                    records.extend(index.records);
                    withdrawn.extend(index.withdrawn);
                }
                Err(e @ Error::Corrupt { .. }) => {
                    tracing::warn!(error = %e, "skipping an index file that does not open; what it lists is stored again if needed");
                }
                Err(e) => return Err(e),
            }
        }
        // Withdrawn in any file is withdrawn: a prune writes the flagged
        // file before it deletes the one it replaces.
        records.retain(|r| !withdrawn.contains(&r.id));
        Ok(records)
    }
}

impl WriteOnlyVault {
    /// Says so when this host's previous point of the item is no longer
    /// in the vault: the writer cannot list points, but it knows its own
    /// last one, and no key holder may have seen it before it went.
    fn notice_if_gone(&self, last: &LastPoint) {
        match self.storage.size(&point_path(&last.id)) {
            Ok(Some(_)) => {}
            Ok(None) => tracing::warn!(
                item = %last.item,
                point = %last.id,
                "this host's previous point of the item is gone from the vault: a key holder deleted it, or someone deleted it at the storage; tell the vault's administrators"
            ),
            Err(e) => tracing::debug!(error = %e, "could not look for the previous point"),
        }
    }
}

impl Destination for WriteOnlyVault {
    fn keys(&self) -> &MasterKeys {
        &self.keys
    }

    fn chunker(&self) -> &Chunker {
        &self.chunker
    }

    fn storage(&self) -> &Storage {
        &self.storage
    }

    fn pack_prefix(&self) -> &[u8] {
        &self.prefix
    }

    fn session(&self) -> Option<SessionHeader> {
        Some(self.session.header)
    }

    fn writes_dictionaries(&self) -> bool {
        false
    }

    fn format_version(&self) -> u16 {
        self.header.version
    }

    fn writing_dictionary(&self) -> Option<Arc<Dictionary>> {
        None
    }

    fn add_dictionary(&self, _bytes: &[u8]) -> Result<Option<Arc<Dictionary>>> {
        Ok(None)
    }

    fn keep_tree_pack(&self, _path: &str, _bytes: &[u8]) {
        // Sealed under a session this writer forgets: useless to keep.
    }

    fn keep_tree(&self, id: ChunkId, plain: &[u8]) {
        if let Ok(mut trees) = self.trees.lock() {
            trees.push((id, plain.to_vec()));
        }
    }

    fn previous_blob(&self, _index: &Index, id: &ChunkId) -> Result<Vec<u8>> {
        let previous = self.previous.lock().map_err(|_| Error::Cancelled)?;
        previous.get(id).cloned().ok_or_else(|| Error::Missing {
            object: format!("tree {} in the writer's cache", id.to_hex()),
        })
    }

    fn start(&self, item: &str) -> Result<Start> {
        let keys = self.keys.clone();
        let header = self.session.header;
        let marker = hold_sealed(
            &self.storage,
            Activity::Backup,
            Arc::new(move |m| {
                seal_session_object(&keys, WRITER_MARKER_MAGIC, &header, MARKER_AAD, m)
            }),
            // A writer deletes nothing; the next prune removes it.
            Release::Expire,
        )?;
        let index = Index::build_for(Purpose::Dedup, self.own_records()?);
        let parent = match self.cache.last_point(item, &self.credential.secret) {
            Some((last, trees)) => {
                self.notice_if_gone(&last);
                *self.previous.lock().map_err(|_| Error::Cancelled)? = trees;
                Some(Parent {
                    id: last.id,
                    time: last.time,
                    duration_ms: last.duration_ms,
                    tree: last.tree,
                })
            }
            None => None,
        };
        Ok(Start {
            marker: Some(marker),
            index,
            adopted: Vec::new(),
            parent,
        })
    }

    fn write_index(&self, records: &[PackRecord]) -> Result<u64> {
        let bytes = crate::index::encode_writer_index(
            &self.credential.secret,
            &self.header.vault_id,
            &self.credential.slot,
            &WriterIndex {
                records: records.to_vec(),
                withdrawn: HashSet::new(),
            },
        );
        let id = ObjectId::of(&bytes);
        let path = objects::index_path(&self.credential.slot_id(), &id);
        let len = bytes.len() as u64;
        self.index_cache.keep(&path, &bytes);
        self.storage.put(&path, bytes)?;
        Ok(len)
    }

    fn write_point(&self, manifest: &Manifest, expire_at: Option<i64>) -> Result<ObjectId> {
        if expire_at.is_some() {
            return Err(Error::WriteOnly {
                action: "give a point an expiry of its own (that is a change to the vault's journal): back up without it".into(),
            });
        }
        let bytes = manifest.encode_written(&self.keys, &self.session.header);
        let id = ObjectId::of(&bytes);
        self.storage.put(&point_path(&id), bytes)?;
        let trees = std::mem::take(&mut *self.trees.lock().map_err(|_| Error::Cancelled)?);
        self.cache.keep_last_point(&LastPoint {
            item: manifest.item.clone(),
            id,
            time: manifest.time,
            duration_ms: manifest.stats.duration_ms,
            tree: manifest.tree,
            trees,
        });
        Ok(id)
    }
}
