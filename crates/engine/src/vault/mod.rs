//! An opened vault: storage, header, master keys, chunker and cache, plus the
//! operations on the vault's small objects (key slots, index files, recovery
//! points, tree blobs) that every command shares.
//!
//! Layout of a vault at its location:
//! `vault` (header) · `keys/<slot>` · `packs/<xx>/<hash>` · `index/<hash>` ·
//! `index/<writer slot>/<hash>` · `points/<hash>` · `dicts/<hash>` ·
//! `journal/<time>-<random>` · `locks/<activity>-<random>` · `.staging/`
//! (OpenDAL's atomic-write area). What write-only writers stored is opened
//! with the help of [`writers`].

mod points;
mod writers;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use rayon::prelude::*;

use crate::cache::Cache;
use crate::chunker::Chunker;
use crate::credential::objects::{session_of, WRITER_PACK_MAGIC, WRITER_PACK_PREFIX_LEN};
use crate::crypto::MasterKeys;
use crate::dict::{decode_object, dict_path, encode_object, Dictionaries, Dictionary};
use crate::disk_map::{DiskMap, Segment};
use crate::error::{Error, Result};
use crate::ids::{ChunkId, ObjectId};
use crate::index::{
    decode_index, encode_index, Index, IndexName, PackRecord, Purpose, WriterIndex,
};
use crate::journal::{record_path, Event, Record, RecordSeal, VaultState};
use crate::keys::{Header, KdfParams, KeySlot, VaultKey, FORMAT_VERSION};
use crate::location::Credentials;
use crate::pack::{
    open_blob, pack_path, parse_trailer, trailer_guess, trailer_span, BlobEntry, BlobKind,
    PACK_MAGIC,
};
use crate::point::Manifest;
use crate::storage::Storage;
use crate::tree::{NodeKind, Tree};
use writers::Writers;

const HEADER_PATH: &str = "vault";
const TREE_PACK_MEMORY: usize = 32 << 20;

pub(crate) fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Unix seconds as an RFC 3339 time, for messages.
pub(crate) fn rfc3339(secs: i64) -> String {
    jiff::Timestamp::from_second(secs)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| format!("{secs} s"))
}

/// Tree packs held in memory, bounded by total size.
#[derive(Default)]
struct TreePacks {
    bytes: usize,
    packs: HashMap<ObjectId, Arc<Vec<u8>>>,
}

/// Reads every dictionary object; unreadable ones are noted, not fatal, so
/// that everything not compressed with them stays readable.
fn load_dictionaries(storage: &Storage, keys: &MasterKeys) -> Result<Dictionaries> {
    let mut dicts = Dictionaries::default();
    for obj in storage.list("dicts/")? {
        let Some(name) = ObjectId::parse(obj.path.trim_start_matches("dicts/")) else {
            continue;
        };
        match storage
            .get(&obj.path)
            .and_then(|bytes| decode_object(keys, &name, &bytes))
        {
            Ok(dict) => {
                if !dicts.insert(Arc::new(dict)) {
                    dicts.unreadable.push(format!(
                        "{}: its zstd id is used by another dictionary",
                        obj.path
                    ));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "skipping an unreadable dictionary");
                dicts.unreadable.push(e.to_string());
            }
        }
    }
    Ok(dicts)
}

fn not_configured(location: &str) -> String {
    format!(
        "the vault's journal names the location {location} (a replica or the local tier), which this service has not been given: it is left alone until an administrator adds it with its own credentials (PUT /vaults/NAME/locations)"
    )
}

/// A journal record as read: opened, or the error and (when it was
/// read) its bytes, for a second look with another seal.
type JournalEntry = std::result::Result<Record, (Error, Option<Vec<u8>>)>;

/// Objects that did not open, with why.
type Damaged = Vec<(ObjectId, Error)>;

/// An unlocked vault.
pub struct Vault {
    pub(crate) storage: Storage,
    pub(crate) header: Header,
    pub(crate) keys: MasterKeys,
    pub(crate) chunker: Chunker,
    pub(crate) cache: Cache,
    slot_id: String,
    tree_packs: Mutex<TreePacks>,
    /// Compression dictionaries; a backup may add one while others read.
    dicts: RwLock<Dictionaries>,
    /// Replica locations the journal named when the vault was opened.
    replicas: Mutex<Vec<(String, crate::journal::ReplicaMode)>>,
    /// How locations the journal names are opened.
    journal_locations: JournalLocations,
    /// Locations the journal names that were left alone, and why.
    unattached: Mutex<Vec<String>>,
    /// What opening write-only writers' objects needs.
    pub(crate) writers: Writers,
}

/// How a vault opens the other locations its journal names (replicas and
/// the local tier). A journal record is written by any holder of the vault
/// key, who need not be trusted with the opener's storage credentials or
/// its local disk.
#[derive(Debug, Clone, Default)]
pub enum JournalLocations {
    /// With the vault's own credentials and limits: the command line, run
    /// by the key holder with credentials they chose.
    #[default]
    SameCredentials,
    /// Only the locations the opener configured, each with its own
    /// credentials (none for a local path); the rest are left alone and
    /// listed by `Vault::unattached`. The service opens vaults this way.
    Configured(BTreeMap<String, Credentials>),
}

/// A recovery point with its id.
#[derive(Debug, Clone)]
pub struct Point {
    pub id: ObjectId,
    pub manifest: Manifest,
    /// The slot id of the write-only credential that wrote it; `None` for
    /// a point a key holder wrote.
    pub writer: Option<String>,
}

impl Vault {
    /// Reads a pack's trailer from storage.
    pub fn read_trailer(&self, id: &ObjectId) -> Result<PackRecord> {
        self.read_trailer_and_size(id).map(|(record, _)| record)
    }

    /// Reads a pack's trailer from storage, with the pack's size.
    pub fn read_trailer_and_size(&self, id: &ObjectId) -> Result<(PackRecord, u64)> {
        let path = pack_path(id);
        let size = self.storage.size(&path)?.ok_or_else(|| Error::Missing {
            object: path.clone(),
        })?;
        let mut tail =
            self.storage
                .get_range(&path, size - trailer_guess(size), trailer_guess(size))?;
        let span = trailer_span(&tail);
        if span > size {
            return Err(Error::corrupt(&path, "trailer length exceeds the pack"));
        }
        if span > tail.len() as u64 {
            tail = self.storage.get_range(&path, size - span, span)?;
        }
        let record = self.trailer_of(id, size, &tail, None)?;
        Ok((record, size))
    }

    /// The record of a pack of `size` bytes from its `tail` (which holds the
    /// whole sealed trailer), sealed by the key holder or by a write-only
    /// writer. A writer's pack names its session in its first bytes:
    /// `head` when the caller has them, else they are read.
    pub(crate) fn trailer_of(
        &self,
        id: &ObjectId,
        size: u64,
        tail: &[u8],
        head: Option<&[u8]>,
    ) -> Result<PackRecord> {
        let own = parse_trailer(&self.keys, id, size, tail, PACK_MAGIC.len() as u64);
        let first = match own {
            Ok((kind, entries)) => {
                return Ok(PackRecord {
                    id: *id,
                    kind,
                    entries,
                    session: None,
                })
            }
            Err(e) => e,
        };
        let path = pack_path(id);
        let read;
        let head = match head {
            Some(h) => h,
            None => {
                read = self
                    .storage
                    .get_range(&path, 0, WRITER_PACK_PREFIX_LEN as u64)?;
                &read
            }
        };
        let Some(session) = session_of(WRITER_PACK_MAGIC, &path, head)? else {
            return Err(first);
        };
        let keys = self.session_keys(&session)?;
        let (kind, entries) = parse_trailer(&keys, id, size, tail, WRITER_PACK_PREFIX_LEN as u64)?;
        Ok(PackRecord {
            id: *id,
            kind,
            entries,
            session: Some(session),
        })
    }

    /// Creates a vault at an empty location and returns its header.
    pub fn init(storage: &Storage, key: &VaultKey, kdf: KdfParams) -> Result<Header> {
        Self::init_with(storage, key, kdf, Header::new(now_secs()))
    }

    /// A vault of an older format version, as earlier releases wrote them.
    #[cfg(test)]
    pub(crate) fn init_format(
        storage: &Storage,
        key: &VaultKey,
        kdf: KdfParams,
        version: u16,
    ) -> Result<Header> {
        let modern = Header::new(now_secs());
        let header = Header::with_version(modern.vault_id, modern.created, version);
        Self::init_with(storage, key, kdf, header)
    }

    fn init_with(
        storage: &Storage,
        key: &VaultKey,
        kdf: KdfParams,
        header: Header,
    ) -> Result<Header> {
        if storage.size(HEADER_PATH)?.is_some() {
            return Err(Error::VaultExists {
                location: storage.display().to_string(),
            });
        }
        let master = MasterKeys::random();
        let slot = KeySlot::create(&header, key, &master, kdf, now_secs())?;
        // The slot goes first: a header without a slot is an unusable vault,
        // a slot without a header is just an orphan file.
        storage.put(&format!("keys/{}", slot.id), slot.to_bytes())?;
        storage.put(HEADER_PATH, header.bytes.clone())?;
        Ok(header)
    }

    pub fn read_header(storage: &Storage) -> Result<Header> {
        match storage.get(HEADER_PATH) {
            Ok(bytes) => Header::parse(&bytes),
            Err(Error::Missing { .. }) => Err(Error::NoVault {
                location: storage.display().to_string(),
            }),
            Err(e) => Err(e),
        }
    }

    /// Every vault key slot; damaged slots are returned as errors beside
    /// the good ones. Write-only credentials' slots and their revocation
    /// notices are not vault key slots (`Vault::writer_slots`).
    pub fn read_slots(storage: &Storage) -> Result<Vec<Result<KeySlot>>> {
        let mut slots = Vec::new();
        for obj in storage.list("keys/")? {
            let id = obj.path.trim_start_matches("keys/").to_string();
            if id.ends_with(crate::credential::slot::REVOKED_SUFFIX) {
                continue;
            }
            match storage.get(&obj.path) {
                Ok(b) if crate::credential::WriterSlot::is_writer_slot(&b) => {}
                Ok(b) => slots.push(KeySlot::parse(&id, &b)),
                Err(e) => slots.push(Err(e)),
            }
        }
        Ok(slots)
    }

    /// Unlocks the vault with a vault key; the locations its journal names
    /// open with the vault's own credentials.
    pub fn open(storage: Storage, key: &VaultKey, cache_root: Option<&Path>) -> Result<Self> {
        Self::open_with(storage, key, cache_root, JournalLocations::SameCredentials)
    }

    /// Unlocks the vault, opening the locations its journal names as
    /// `journal_locations` says.
    pub fn open_with(
        storage: Storage,
        key: &VaultKey,
        cache_root: Option<&Path>,
        journal_locations: JournalLocations,
    ) -> Result<Self> {
        let header = Self::read_header(&storage)?;
        let slots = Self::read_slots(&storage)?;
        let mut tried = 0;
        let mut damaged = None;
        for slot in slots {
            let slot = match slot {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "skipping a damaged key slot");
                    damaged = Some(e);
                    continue;
                }
            };
            tried += 1;
            if let Some(keys) = slot.unlock(&header, key)? {
                let chunker = Chunker::new(&keys.chunker);
                let cache = Cache::new(cache_root, &header.vault_id_hex());
                let dicts = RwLock::new(load_dictionaries(&storage, &keys)?);
                let writers = Writers::new(&keys);
                let vault = Vault {
                    storage,
                    header,
                    keys,
                    chunker,
                    cache,
                    slot_id: slot.id,
                    tree_packs: Mutex::new(TreePacks::default()),
                    dicts,
                    replicas: Mutex::new(Vec::new()),
                    journal_locations: journal_locations.clone(),
                    unattached: Mutex::new(Vec::new()),
                    writers,
                };
                vault.attach_sync_replicas()?;
                return Ok(vault);
            }
        }
        match damaged {
            Some(e) if tried == 0 => Err(e),
            _ => Err(Error::WrongKey { slots: tried }),
        }
    }

    /// Routes writes to the synchronous replicas the journal names, so
    /// that every process writing this vault keeps them complete.
    fn attach_sync_replicas(&self) -> Result<()> {
        if !self.has_journal() {
            return Ok(());
        }
        let state = self.state()?;
        if let Some((location, _)) = &state.local_tier {
            if self.allows(location) {
                self.storage.attach_local_tier(location);
            }
        }
        let replicas = state.replicas;
        if let Ok(mut known) = self.replicas.lock() {
            *known = replicas.iter().map(|(l, r)| (l.clone(), r.mode)).collect();
        }
        for (location, replica) in replicas {
            if replica.mode == crate::journal::ReplicaMode::Sync
                && location != self.storage.display()
                && self.allows(&location)
            {
                self.storage
                    .add_sync_replica(self.open_journal_location(&location)?);
            }
        }
        Ok(())
    }

    /// Whether a location the journal names may be opened; notes it among
    /// the unattached when not.
    fn allows(&self, location: &str) -> bool {
        let allowed = match &self.journal_locations {
            JournalLocations::SameCredentials => true,
            JournalLocations::Configured(known) => known.contains_key(location),
        };
        if !allowed {
            if let Ok(mut u) = self.unattached.lock() {
                u.push(not_configured(location));
            }
        }
        allowed
    }

    /// Opens a location the journal names (a replica), as the opener
    /// allows: never with credentials that were not given for it.
    pub fn open_journal_location(&self, location: &str) -> Result<Storage> {
        match &self.journal_locations {
            JournalLocations::SameCredentials => self.storage.open_sibling(location),
            JournalLocations::Configured(known) => match known.get(location) {
                Some(credentials) => self.storage.open_sibling_with(location, credentials),
                None => Err(Error::Invalid(not_configured(location))),
            },
        }
    }

    /// Locations the journal names that this opening left alone, and why.
    pub fn unattached(&self) -> Vec<String> {
        self.unattached
            .lock()
            .map(|u| u.clone())
            .unwrap_or_default()
    }

    /// Replica locations and modes, as the journal said at opening.
    pub fn replica_locations(&self) -> Vec<(String, crate::journal::ReplicaMode)> {
        self.replicas.lock().map(|r| r.clone()).unwrap_or_default()
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Reads everything from storage from now on (used by `check`).
    pub fn disable_cache(&mut self) {
        self.cache = Cache::new(None, "");
    }

    /// The slot the vault was opened with.
    pub fn current_slot(&self) -> &str {
        &self.slot_id
    }

    /// Adds a key slot for another vault key.
    pub fn add_key(&self, key: &VaultKey, kdf: KdfParams) -> Result<KeySlot> {
        let slot = KeySlot::create(&self.header, key, &self.keys, kdf, now_secs())?;
        let path = format!("keys/{}", slot.id);
        self.storage.put(&path, slot.to_bytes())?;
        // Read it back and prove it opens before anyone relies on it.
        let stored = KeySlot::parse(&slot.id, &self.storage.get(&path)?)?;
        match stored.unlock(&self.header, key)? {
            Some(k) if k.encryption == self.keys.encryption => Ok(slot),
            _ => Err(Error::corrupt(
                path,
                "the new key slot did not verify after writing",
            )),
        }
    }

    /// Replaces the slot this vault was opened with by a slot for `new_key`.
    /// The old slot is removed only after the new one is written and verified.
    pub fn rotate_key(&mut self, new_key: &VaultKey, kdf: KdfParams) -> Result<KeySlot> {
        let slot = self.add_key(new_key, kdf)?;
        self.storage.delete(&format!("keys/{}", self.slot_id))?;
        self.slot_id = slot.id.clone();
        Ok(slot)
    }

    /// Removes a key slot; the last working slot can never be removed.
    pub fn remove_key(&self, slot_id: &str) -> Result<()> {
        let slots = Self::read_slots(&self.storage)?;
        let good: Vec<String> = slots.iter().flatten().map(|s| s.id.clone()).collect();
        if !good.iter().any(|s| s == slot_id) {
            return Err(Error::Invalid(format!(
                "no key slot {slot_id:?} in this vault"
            )));
        }
        if good.len() <= 1 {
            return Err(Error::Invalid(
                "refusing to remove the last key slot: the vault would be lost".into(),
            ));
        }
        self.storage.delete(&format!("keys/{slot_id}"))
    }

    /// Names of all index files, the key holder's and the writers'.
    pub fn index_files(&self) -> Result<Vec<IndexName>> {
        Ok(self
            .storage
            .list("index/")?
            .iter()
            .filter_map(|o| IndexName::parse(&o.path))
            .collect())
    }

    /// Reads one index file, and learns which keys its packs open under.
    pub fn read_index_file(&self, name: &IndexName) -> Result<Vec<PackRecord>> {
        Ok(self.read_index_file_flagged(name)?.records)
    }

    /// Reads one index file with the packs a writer's file flags as
    /// withdrawn (none for the key holder's files). The key holder's own
    /// view of condemned packs is the journal; the flags are for writers.
    pub fn read_index_file_flagged(&self, name: &IndexName) -> Result<WriterIndex> {
        let path = name.path();
        let bytes = self.cache.fetch(&self.storage, &path, &name.id)?;
        let index = match &name.writer {
            None => WriterIndex {
                records: decode_index(&self.keys, &path, bytes)?,
                withdrawn: Default::default(),
            },
            Some(slot) => {
                let secret = self.writer_secret(*slot)?;
                crate::index::decode_writer_index(
                    &secret,
                    &self.header.vault_id,
                    slot,
                    &path,
                    &bytes,
                )?
            }
        };
        self.learn_packs(&index.records)?;
        Ok(index)
    }

    /// Loads and merges every index file.
    pub fn load_index(&self) -> Result<Index> {
        self.load_index_for(Purpose::Locate)
    }

    /// Loads the index for a purpose. Files are read a few at a time in
    /// parallel and merged at once, so their decoded records (48 bytes per
    /// blob) never all sit in memory beside the index.
    pub fn load_index_for(&self, purpose: Purpose) -> Result<Index> {
        self.load_index_excluding(purpose, &std::collections::BTreeMap::new())
    }

    /// The index without the packs in `excluded` (condemned ones, for a
    /// backup's dedup set).
    pub fn load_index_excluding(
        &self,
        purpose: Purpose,
        excluded: &std::collections::BTreeMap<ObjectId, i64>,
    ) -> Result<Index> {
        crate::index::relisting_replaced_files(|| self.try_load_index(purpose, excluded))
    }

    /// Reads one index file; a write-only writer's file that does not open
    /// is `None`, with a warning. Anyone who may write to the storage can
    /// put garbage in a writer's folder, and it must not stop restores,
    /// backups or prunes: what a damaged file listed is then missing, and
    /// reported as such by whoever needs it (`coffer check` names the file).
    pub(crate) fn read_index_file_or_skip(&self, name: &IndexName) -> Result<Option<WriterIndex>> {
        match self.read_index_file_flagged(name) {
            Ok(index) => Ok(Some(index)),
            Err(e @ Error::Corrupt { .. }) if name.writer.is_some() => {
                tracing::warn!(error = %e, "leaving out a write-only writer's index file that does not open (`coffer check` names it)");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn try_load_index(
        &self,
        purpose: Purpose,
        excluded: &std::collections::BTreeMap<ObjectId, i64>,
    ) -> Result<Index> {
        let files = self.index_files()?;
        let mut index = Index::build_for(purpose, []);
        for group in files.chunks(16) {
            let records: Vec<Vec<PackRecord>> = group
                .par_iter()
                .map(|name| {
                    Ok(self
                        .read_index_file_or_skip(name)?
                        .map_or_else(Vec::new, |i| i.records))
                })
                .collect::<Result<_>>()?;
            let records: Vec<PackRecord> = records
                .into_iter()
                .flatten()
                .filter(|r| !excluded.contains_key(&r.id))
                .collect();
            index.reserve_for(&records);
            for r in records {
                index.add_unsorted(r);
            }
        }
        index.seal();
        Ok(index)
    }

    /// Writes an index file; returns its id and stored size.
    pub fn write_index(&self, records: &[PackRecord]) -> Result<(ObjectId, u64)> {
        let bytes = encode_index(&self.keys, records);
        let id = ObjectId::of(&bytes);
        let path = format!("index/{}", id.to_hex());
        let len = bytes.len() as u64;
        self.cache.keep(&path, &bytes);
        self.storage.put(&path, bytes)?;
        Ok((id, len))
    }

    /// Reads and verifies one blob.
    pub fn read_blob(&self, index: &Index, id: &ChunkId) -> Result<Vec<u8>> {
        let loc = index.get(id).ok_or_else(|| Error::Missing {
            object: format!("blob {}", id.to_hex()),
        })?;
        let e = &loc.entry;
        let stored = if loc.kind == BlobKind::Tree {
            let pack = self.tree_pack(&loc.pack)?;
            pack.get(e.offset as usize..e.offset as usize + e.stored_len as usize)
                .ok_or_else(|| Error::corrupt(pack_path(&loc.pack), "blob lies outside the pack"))?
                .to_vec()
        } else {
            self.storage
                .get_range(&pack_path(&loc.pack), e.offset as u64, e.stored_len as u64)?
        };
        self.open_blob(&loc.pack, e, &stored)
    }

    /// Opens one stored blob of `pack` and proves it is the chunk it claims to be.
    pub fn open_blob(&self, pack: &ObjectId, entry: &BlobEntry, stored: &[u8]) -> Result<Vec<u8>> {
        let dicts = self.dicts.read().unwrap_or_else(|p| p.into_inner());
        let claims = self.pack_keys(pack);
        if claims.is_empty() {
            return open_blob(&self.keys, &dicts, pack, entry, stored);
        }
        let mut failure = None;
        for keys in claims {
            match open_blob(&keys, &dicts, pack, entry, stored) {
                Ok(plain) => return Ok(plain),
                Err(e) => failure = Some(e),
            }
        }
        Err(failure.unwrap_or_else(|| Error::corrupt(pack_path(pack), "no keys to open it")))
    }

    /// Whether new blobs may use compression dictionaries: a format 1 vault
    /// must stay readable by the coffer that wrote it.
    pub fn writes_dictionaries(&self) -> bool {
        self.header.version >= 2
    }

    /// The dictionary new small chunks are compressed with, if any.
    pub fn writing_dictionary(&self) -> Option<Arc<Dictionary>> {
        self.dicts
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .for_writing()
    }

    /// How many dictionaries the vault holds, and the objects that could not be read.
    pub fn dictionary_status(&self) -> (usize, Vec<String>) {
        let dicts = self.dicts.read().unwrap_or_else(|p| p.into_inner());
        (dicts.len(), dicts.unreadable.clone())
    }

    /// Stores a newly trained dictionary and registers it. `None` when it
    /// cannot be used: its zstd id collides with one the vault already has.
    pub fn add_dictionary(&self, bytes: &[u8]) -> Result<Option<Arc<Dictionary>>> {
        let object = encode_object(&self.keys, bytes);
        let name = ObjectId::of(&object);
        let Some(dict) = Dictionary::new(name, bytes) else {
            return Ok(None);
        };
        let dict = Arc::new(dict);
        let mut dicts = self.dicts.write().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = dicts.get(dict.zstd_id) {
            tracing::debug!(
                zstd_id = dict.zstd_id,
                "dictionary id taken; not storing the new one"
            );
            return Ok(dicts.insert(dict).then_some(existing));
        }
        // Stored before any blob compressed with it can reach a pack.
        self.storage.put(&dict_path(&name), object)?;
        dicts.insert(dict.clone());
        Ok(Some(dict))
    }

    /// Whether this vault has a journal (format 3 and later).
    pub fn has_journal(&self) -> bool {
        self.header.version >= 3
    }

    /// Refuses journal changes in a vault an older coffer may still write.
    pub fn require_journal(&self) -> Result<()> {
        if self.has_journal() {
            Ok(())
        } else {
            Err(Error::NeedsUpgrade {
                version: self.header.version,
                needed: 3,
                feature: "policies, holds and prune",
            })
        }
    }

    /// The vault's state: the fold of every journal record, in name order.
    /// Unreadable records are listed in `unreadable`; anything that deletes
    /// must refuse to act while there are any.
    pub fn state(&self) -> Result<VaultState> {
        let mut state = VaultState::default();
        if !self.has_journal() {
            return Ok(state);
        }
        let seal = RecordSeal::of_version(self.header.version);
        let mut records = self.read_journal(seal)?;
        if seal == RecordSeal::Named {
            self.reopen_accepted_v3(&mut records);
        }
        for (_, record) in records {
            match record {
                Ok(r) => {
                    state.apply_record(&r);
                    state.records += 1;
                }
                Err((e, _)) => {
                    tracing::warn!(error = %e, "unreadable journal record");
                    state.unreadable.push(e.to_string());
                }
            }
        }
        Ok(state)
    }

    /// Every journal record in name order, opened with `seal`, with its
    /// stored bytes kept where it did not open.
    fn read_journal(&self, seal: RecordSeal) -> Result<Vec<(String, JournalEntry)>> {
        let mut names: Vec<String> = self
            .storage
            .list("journal/")?
            .into_iter()
            .map(|o| o.path)
            .collect();
        names.sort();
        Ok(names
            .into_par_iter()
            .map(|path| {
                let entry = match self.storage.get(&path) {
                    Ok(bytes) => match Record::decode(&self.keys, &path, &bytes, seal) {
                        Ok(r) => Ok(r),
                        Err(e) => Err((e, Some(bytes))),
                    },
                    Err(e) => Err((e, None)),
                };
                (path, entry)
            })
            .collect())
    }

    /// In a format 4 vault, opens the format 3 records that the upgrade's
    /// own (name-bound) record lists; every other one stays unreadable.
    fn reopen_accepted_v3(&self, records: &mut [(String, JournalEntry)]) {
        let accepted: HashSet<&str> = records
            .iter()
            .filter_map(|(_, r)| match r {
                Ok(Record {
                    event: Event::Upgraded { records, .. },
                    ..
                }) => Some(records.iter().map(String::as_str)),
                _ => None,
            })
            .flatten()
            .collect();
        let reopened: Vec<(usize, Record)> = records
            .iter()
            .enumerate()
            .filter_map(|(i, (path, r))| match r {
                Err((_, Some(bytes))) if accepted.contains(path.as_str()) => {
                    Record::decode_accepted_v3(&self.keys, path, bytes)
                        .ok()
                        .map(|r| (i, r))
                }
                _ => None,
            })
            .collect();
        for (i, record) in reopened {
            records[i].1 = Ok(record);
        }
    }

    /// Appends one change to the journal.
    pub fn record(&self, event: Event) -> Result<()> {
        self.record_named(event).map(|_| ())
    }

    /// Appends one change to the journal and returns the record's name.
    pub fn record_named(&self, event: Event) -> Result<String> {
        self.require_journal()?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(0);
        let record = Record {
            time: (now / 1_000_000_000) as i64,
            host: crate::host::hostname(),
            event,
        };
        let path = record_path(now);
        // The header as it is now, not as it was at opening: a record this
        // process writes after another one upgraded the vault must be
        // sealed the new way, or the upgraded vault could not read it.
        let version = Self::read_header(&self.storage)?
            .version
            .max(self.header.version);
        let seal = RecordSeal::of_version(version);
        self.storage
            .put(&path, record.encode(&self.keys, &path, seal))?;
        Ok(path)
    }

    /// Moves a vault to the current format. Format 1 and 2 vaults get the
    /// new header (the one object ever replaced); afterwards older coffers
    /// refuse the vault, which is the point: they would not respect its
    /// journal. A format 3 vault's journal records were sealed without
    /// their names: the upgrade lists those that exist now in a record of
    /// its own, sealed with its name, and readers accept no other record
    /// sealed the old way. Run again after an interruption, it writes that
    /// record if it is missing. Returns the version the vault had.
    pub fn upgrade(&mut self) -> Result<u16> {
        let old = self.header.version;
        if old < FORMAT_VERSION {
            let header =
                Header::with_version(self.header.vault_id, self.header.created, FORMAT_VERSION);
            self.storage.put(HEADER_PATH, header.bytes.clone())?;
            self.header = header;
        }
        if old >= 3 {
            self.accept_v3_records(old)?;
        }
        Ok(old)
    }

    fn accept_v3_records(&self, old: u16) -> Result<()> {
        let records = self.read_journal(RecordSeal::Named)?;
        let upgraded = records.iter().any(|(_, r)| {
            matches!(
                r,
                Ok(Record {
                    event: Event::Upgraded { .. },
                    ..
                })
            )
        });
        if upgraded {
            return Ok(());
        }
        let accepted: Vec<String> = records
            .into_iter()
            .filter_map(|(path, r)| match r {
                Err((_, Some(bytes))) => Record::decode_accepted_v3(&self.keys, &path, &bytes)
                    .ok()
                    .map(|_| path),
                _ => None,
            })
            .collect();
        // From format 4 on every record is sealed the named way: only a
        // vault that was format 3 (and lacks its `Upgraded` record) needs one.
        if old >= 4 && accepted.is_empty() {
            return Ok(());
        }
        self.record(Event::Upgraded {
            from: 3,
            records: accepted,
        })
    }

    /// Reads one segment of a disk's block list.
    pub fn read_segment(&self, index: &Index, id: &ChunkId) -> Result<Segment> {
        let bytes = self.read_blob(index, id)?;
        Segment::decode(&bytes).ok_or_else(|| {
            Error::corrupt(
                format!("disk segment {}", id.to_hex()),
                "undecodable disk segment",
            )
        })
    }

    /// The block list of a disk node (`what` names it in errors).
    pub fn disk_map(&self, index: &Index, kind: &NodeKind, what: &str) -> Result<DiskMap> {
        DiskMap::read(kind, what, |id| self.read_blob(index, id))
    }

    /// Reads one directory's tree.
    pub fn read_tree(&self, index: &Index, id: &ChunkId) -> Result<Tree> {
        let bytes = self.read_blob(index, id)?;
        Tree::decode(&bytes)
            .ok_or_else(|| Error::corrupt(format!("tree {}", id.to_hex()), "undecodable tree"))
    }

    /// A whole tree pack, from memory, the cache or storage, verified.
    fn tree_pack(&self, id: &ObjectId) -> Result<Arc<Vec<u8>>> {
        if let Ok(guard) = self.tree_packs.lock() {
            if let Some(p) = guard.packs.get(id) {
                return Ok(p.clone());
            }
        }
        let bytes = Arc::new(self.cache.fetch(&self.storage, &pack_path(id), id)?);
        if let Ok(mut guard) = self.tree_packs.lock() {
            if guard.bytes + bytes.len() > TREE_PACK_MEMORY {
                guard.packs.clear();
                guard.bytes = 0;
            }
            guard.bytes += bytes.len();
            guard.packs.insert(*id, bytes.clone());
        }
        Ok(bytes)
    }

    pub fn keys(&self) -> &MasterKeys {
        &self.keys
    }

    /// Seals a value that only a holder of this vault's key can open,
    /// for data that travels inside points but must not be readable by
    /// everyone who may read the point (FORMAT.md §8c).
    pub fn seal_value(&self, purpose: &str, plaintext: &[u8]) -> Vec<u8> {
        self.keys
            .seal_for(purpose, &self.header.vault_id, plaintext)
    }

    /// Opens what `seal_value` made in this vault for the same purpose.
    pub fn open_value(&self, purpose: &str, sealed: &[u8]) -> Result<Vec<u8>> {
        self.keys
            .open_for(purpose, &self.header.vault_id, sealed)
            .ok_or_else(|| {
                Error::corrupt(
                    purpose,
                    "the sealed value does not open with this vault's key (altered, or sealed by another vault)",
                )
            })
    }

    pub fn chunker(&self) -> &Chunker {
        &self.chunker
    }
}
