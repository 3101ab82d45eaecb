//! The index: which pack holds each blob.
//!
//! On storage, an index file (`index/<hash>`) is `magic · sealed payload`;
//! the payload lists packs and, per pack, its blob entries sorted by id. Every
//! backup writes one index file for the packs it made (and for packs it adopted
//! from an interrupted run). In memory, all files merge into sorted vectors
//! searched by bisection. Restore and check need every blob's location: 52
//! bytes per blob. A backup only asks whether a data chunk exists, so its
//! index (`Purpose::Dedup`) keeps data chunks as bare 32-byte ids and full
//! locations only for the few tree blobs: the dedup set costs 32 bytes per
//! chunk, a billion chunks (about a petabyte of data) in 32 GB.

use std::collections::{HashMap, HashSet};

use crate::credential::objects::WRITER_INDEX_MAGIC;
use crate::credential::secret::WriterSecret;
use crate::credential::session::{SessionHeader, SESSION_HEADER_LEN};
use crate::crypto::{open_with, seal_with, MasterKeys};
use crate::error::{Error, Result};
use crate::ids::{ChunkId, ObjectId};
use crate::pack::{BlobEntry, BlobKind, Compression, ENTRY_LEN};

pub const INDEX_MAGIC: &[u8; 8] = b"COFFERIX";
const INDEX_AAD: &[u8] = b"coffer index v1";
const WRITER_INDEX_AAD: &[u8] = b"coffer writer index v5";
/// In a writer's index file, this bit of a pack's kind byte says the pack
/// is withdrawn: a key holder's prune condemned it, so its writer no longer
/// deduplicates against it (FORMAT.md §5a).
const WITHDRAWN_BIT: u8 = 0x80;

/// The packs one index file describes.
#[derive(Debug, Clone)]
pub struct PackRecord {
    pub id: ObjectId,
    pub kind: BlobKind,
    pub entries: Vec<BlobEntry>,
    /// The session header of a pack a write-only writer stored (its blobs
    /// open under that session's keys); `None` for a key holder's pack.
    pub session: Option<SessionHeader>,
}

/// A write-only writer's index file, decoded: its packs, and those of them
/// a key holder's prune withdrew from its deduplication.
#[derive(Debug, Clone, Default)]
pub struct WriterIndex {
    pub records: Vec<PackRecord>,
    pub withdrawn: HashSet<ObjectId>,
}

/// An index payload (FORMAT.md §6): per pack its name, for a write-only
/// writer's index file its session header (and `withdrawn` packs flagged
/// in their kind byte), kind and entries sorted by id.
pub(crate) fn encode_payload(
    packs: &[PackRecord],
    with_sessions: bool,
    withdrawn: &HashSet<ObjectId>,
) -> Vec<u8> {
    let mut payload = Vec::new();
    payload.extend_from_slice(&(packs.len() as u32).to_le_bytes());
    for p in packs {
        payload.extend_from_slice(&p.id.0);
        let mut kind = p.kind as u8;
        if with_sessions {
            let header = p.session.map(|h| h.0).unwrap_or([0; SESSION_HEADER_LEN]);
            payload.extend_from_slice(&header);
            if withdrawn.contains(&p.id) {
                kind |= WITHDRAWN_BIT;
            }
        }
        payload.push(kind);
        payload.extend_from_slice(&(p.entries.len() as u32).to_le_bytes());
        let mut entries = p.entries.clone();
        entries.sort_unstable_by_key(|e| e.id);
        for e in &entries {
            e.encode(&mut payload);
        }
    }
    payload
}

/// Encodes an index file.
pub fn encode_index(keys: &MasterKeys, packs: &[PackRecord]) -> Vec<u8> {
    let mut out = INDEX_MAGIC.to_vec();
    out.extend_from_slice(&keys.seal(INDEX_AAD, &encode_payload(packs, false, &HashSet::new())));
    out
}

fn writer_index_aad(vault_id: &[u8; 16], slot: &[u8; 8]) -> Vec<u8> {
    [WRITER_INDEX_AAD, vault_id.as_slice(), slot.as_slice()].concat()
}

/// A writer's index file: every record must carry its session header.
pub fn encode_writer_index(
    secret: &WriterSecret,
    vault_id: &[u8; 16],
    slot: &[u8; 8],
    index: &WriterIndex,
) -> Vec<u8> {
    let payload = encode_payload(&index.records, true, &index.withdrawn);
    let mut out = WRITER_INDEX_MAGIC.to_vec();
    out.extend_from_slice(&seal_with(
        &secret.index_key(),
        &writer_index_aad(vault_id, slot),
        &payload,
    ));
    out
}

/// Decodes a writer's index file; `object` names it in errors.
pub fn decode_writer_index(
    secret: &WriterSecret,
    vault_id: &[u8; 16],
    slot: &[u8; 8],
    object: &str,
    bytes: &[u8],
) -> Result<WriterIndex> {
    if !bytes.starts_with(WRITER_INDEX_MAGIC) {
        return Err(Error::corrupt(
            object,
            "not a write-only writer's index file (bad magic)",
        ));
    }
    let payload = open_with(
        &secret.index_key(),
        &writer_index_aad(vault_id, slot),
        &bytes[8..],
    )
    .ok_or_else(|| {
        Error::corrupt(
            object,
            "authentication failed (data altered, damaged, or another credential's)",
        )
    })?;
    let (records, withdrawn) = decode_payload(object, &payload, true)?;
    if records
        .iter()
        .any(|r| r.session.map(|s| s.slot()) != Some(*slot))
    {
        return Err(Error::corrupt(object, "lists a pack of another credential"));
    }
    Ok(WriterIndex { records, withdrawn })
}

/// Decodes an index file; `object` names it in errors.
/// The file is decrypted where it lies: a backup's index file holds 45 bytes
/// per blob, and a second copy would only raise the peak of loading it.
pub fn decode_index(
    keys: &MasterKeys,
    object: &str,
    mut bytes: Vec<u8>,
) -> Result<Vec<PackRecord>> {
    let bad = |r: &str| Error::corrupt(object, r);
    if bytes.len() < 8 || &bytes[..8] != INDEX_MAGIC {
        return Err(bad("not an index file (bad magic)"));
    }
    let sealed = &mut bytes[8..];
    let plain = keys.open_in_place(object, INDEX_AAD, sealed)?;
    Ok(decode_payload(object, &sealed[plain], false)?.0)
}

/// Decodes what `encode_payload` made: the records, and the packs flagged
/// as withdrawn (only a writer's index file may flag one).
pub(crate) fn decode_payload(
    object: &str,
    payload: &[u8],
    with_sessions: bool,
) -> Result<(Vec<PackRecord>, HashSet<ObjectId>)> {
    let bad = |r: &str| Error::corrupt(object, r);
    let mut pos = 0usize;
    let mut take = |n: usize| -> Result<&[u8]> {
        let s = payload.get(pos..pos + n).ok_or_else(|| bad("truncated"))?;
        pos += n;
        Ok(s)
    };
    let u32_of = |s: &[u8]| u32::from_le_bytes([s[0], s[1], s[2], s[3]]);
    let count = u32_of(take(4)?) as usize;
    let mut packs = Vec::with_capacity(count.min(1 << 20));
    let mut withdrawn = HashSet::new();
    for _ in 0..count {
        let mut id = [0u8; 32];
        id.copy_from_slice(take(32)?);
        let session = if with_sessions {
            Some(SessionHeader::read(object, take(SESSION_HEADER_LEN)?)?)
        } else {
            None
        };
        let mut kind = take(1)?[0];
        if with_sessions && kind & WITHDRAWN_BIT != 0 {
            withdrawn.insert(ObjectId(id));
            kind &= !WITHDRAWN_BIT;
        }
        let kind = BlobKind::from_u8(kind).ok_or_else(|| bad("unknown pack kind"))?;
        let n = u32_of(take(4)?) as usize;
        let raw = take(n.checked_mul(ENTRY_LEN).ok_or_else(|| bad("entry count"))?)?;
        let entries = raw
            .chunks_exact(ENTRY_LEN)
            .map(BlobEntry::decode)
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad("bad entry"))?;
        packs.push(PackRecord {
            id: ObjectId(id),
            kind,
            entries,
            session,
        });
    }
    if pos != payload.len() {
        return Err(bad("trailing bytes"));
    }
    Ok((packs, withdrawn))
}

/// Runs `load` (which lists index files and reads them) again when a file
/// it listed was gone by the time it read it. A prune replaces index files
/// by writing the new one before it deletes the old, so a fresh listing
/// finds the replacement. The pause grows so that a load racing a busy
/// prune is not beaten every time (prunes back to back beat five immediate
/// retries in a soak test).
pub(crate) fn relisting_replaced_files<T>(mut load: impl FnMut() -> Result<T>) -> Result<T> {
    let mut attempt: u32 = 0;
    loop {
        attempt += 1;
        match load() {
            Err(Error::Missing { object }) if object.starts_with("index/") && attempt < 10 => {
                tracing::debug!(%object, attempt, "index file replaced while loading; listing again");
                let pause_ms = (20u64 << attempt).min(1000);
                std::thread::sleep(std::time::Duration::from_millis(pause_ms));
            }
            other => return other,
        }
    }
}

/// An index file's name: the hash of its bytes, and for a write-only
/// writer's, the slot whose folder it is in (`index/<slot id>/<hash>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IndexName {
    pub id: ObjectId,
    pub writer: Option<[u8; 8]>,
}

impl IndexName {
    /// The key holder's index file `id`.
    pub fn own(id: ObjectId) -> Self {
        IndexName { id, writer: None }
    }

    pub fn path(&self) -> String {
        match &self.writer {
            None => format!("index/{}", self.id.to_hex()),
            Some(slot) => crate::credential::objects::index_path(&hex::encode(slot), &self.id),
        }
    }

    /// The name of the object at `path`, if it is an index file.
    pub fn parse(path: &str) -> Option<Self> {
        let rest = path.strip_prefix("index/")?;
        match rest.split_once('/') {
            None => ObjectId::parse(rest).map(Self::own),
            Some((slot, id)) => {
                let mut writer = [0u8; 8];
                hex::decode_to_slice(slot, &mut writer).ok()?;
                Some(IndexName {
                    id: ObjectId::parse(id)?,
                    writer: Some(writer),
                })
            }
        }
    }
}

/// Where a blob is, as held in memory.
#[derive(Debug, Clone, Copy)]
pub struct Location {
    pub pack: ObjectId,
    pub kind: BlobKind,
    pub entry: BlobEntry,
}

#[derive(Clone, Copy)]
struct Slot {
    id: ChunkId,
    pack: u32,
    offset: u32,
    stored_len: u32,
    raw_len: u32,
    compression: Compression,
}

/// What an index is loaded for, which decides what it keeps per blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Purpose {
    /// Every blob's location (restore, check, reading trees): 52 bytes each.
    #[default]
    Locate,
    /// Existence of data chunks only, locations of tree blobs (backup).
    Dedup,
}

/// The merged in-memory index.
#[derive(Default)]
pub struct Index {
    purpose: Purpose,
    packs: Vec<(ObjectId, BlobKind)>,
    /// By pack and kind: a write-only writer may claim someone else's pack
    /// as of the other kind, and must not change what the true claim says.
    pack_numbers: HashMap<(ObjectId, BlobKind), u32>,
    slots: Vec<Slot>,
    /// Data chunk ids of a `Purpose::Dedup` index, sorted.
    data_ids: Vec<ChunkId>,
}

impl Index {
    /// Builds a locating index from every pack record; duplicates keep one location.
    pub fn build(records: impl IntoIterator<Item = PackRecord>) -> Self {
        Self::build_for(Purpose::Locate, records)
    }

    pub fn build_for(purpose: Purpose, records: impl IntoIterator<Item = PackRecord>) -> Self {
        let mut index = Index {
            purpose,
            ..Index::default()
        };
        index.extend(records);
        index
    }

    pub fn purpose(&self) -> Purpose {
        self.purpose
    }

    /// Makes room for `records` at once, so that the tables do not grow by
    /// doubling (and copying) while a large index file is merged.
    pub(crate) fn reserve_for(&mut self, records: &[PackRecord]) {
        let (mut data, mut other) = (0, 0);
        for r in records {
            match (self.purpose, r.kind) {
                (Purpose::Dedup, BlobKind::Data) => data += r.entries.len(),
                _ => other += r.entries.len(),
            }
        }
        self.data_ids.reserve_exact(data);
        self.slots.reserve_exact(other);
    }

    /// Adds records without sorting; `seal` must follow before lookups.
    pub(crate) fn add_unsorted(&mut self, r: PackRecord) {
        // A pack listed again keeps its number and adds its entries: the
        // first file to list it may be a writer's false claim, and the true
        // one must still be found (`seal` keeps one location per blob).
        let number = match self.pack_numbers.get(&(r.id, r.kind)) {
            Some(n) => *n,
            None => {
                let n = self.packs.len() as u32;
                self.packs.push((r.id, r.kind));
                self.pack_numbers.insert((r.id, r.kind), n);
                n
            }
        };
        if self.purpose == Purpose::Dedup && r.kind == BlobKind::Data {
            self.data_ids.extend(r.entries.iter().map(|e| e.id));
            return;
        }
        self.slots.extend(r.entries.iter().map(|e| Slot {
            id: e.id,
            pack: number,
            offset: e.offset,
            stored_len: e.stored_len,
            raw_len: e.raw_len,
            compression: e.compression,
        }));
    }

    pub(crate) fn seal(&mut self) {
        self.slots.sort_unstable_by_key(|s| s.id);
        self.slots.dedup_by_key(|s| s.id);
        self.slots.shrink_to_fit();
        self.data_ids.sort_unstable();
        self.data_ids.dedup();
        self.data_ids.shrink_to_fit();
    }

    /// Adds packs to an index (sorting once at the end).
    pub fn extend(&mut self, records: impl IntoIterator<Item = PackRecord>) {
        for r in records {
            self.add_unsorted(r);
        }
        self.seal();
    }

    pub fn contains(&self, id: &ChunkId) -> bool {
        self.slots.binary_search_by_key(id, |s| s.id).is_ok()
            || self.data_ids.binary_search(id).is_ok()
    }

    /// Where a blob is; `None` also for data chunks of a `Purpose::Dedup`
    /// index, which knows only that they exist.
    pub fn get(&self, id: &ChunkId) -> Option<Location> {
        let i = self.slots.binary_search_by_key(id, |s| s.id).ok()?;
        Some(self.location(&self.slots[i]))
    }

    fn location(&self, s: &Slot) -> Location {
        let (pack, kind) = self.packs[s.pack as usize];
        Location {
            pack,
            kind,
            entry: BlobEntry {
                id: s.id,
                compression: s.compression,
                offset: s.offset,
                stored_len: s.stored_len,
                raw_len: s.raw_len,
            },
        }
    }

    pub fn has_pack(&self, id: &ObjectId) -> bool {
        self.pack_numbers.contains_key(&(*id, BlobKind::Data))
            || self.pack_numbers.contains_key(&(*id, BlobKind::Tree))
    }

    pub fn packs(&self) -> impl Iterator<Item = &(ObjectId, BlobKind)> {
        self.packs.iter()
    }

    pub fn blob_count(&self) -> usize {
        self.slots.len() + self.data_ids.len()
    }

    /// Bytes of memory one blob costs in a locating index.
    pub const BYTES_PER_BLOB: usize = std::mem::size_of::<Slot>();
    /// Bytes of memory one data chunk costs in a backup's dedup set.
    pub const BYTES_PER_DEDUP_CHUNK: usize = std::mem::size_of::<ChunkId>();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_file_round_trip_and_lookup() {
        let keys = MasterKeys::random();
        let e = |b: u8| BlobEntry {
            id: ChunkId([b; 32]),
            compression: if b.is_multiple_of(2) {
                Compression::Zstd
            } else {
                Compression::None
            },
            offset: 8 + b as u32,
            stored_len: 100,
            raw_len: 90,
        };
        let rec = PackRecord {
            id: ObjectId([1; 32]),
            kind: BlobKind::Data,
            entries: vec![e(5), e(2), e(9)],
            session: None,
        };
        let bytes = encode_index(&keys, std::slice::from_ref(&rec));
        let back = decode_index(&keys, "index/x", bytes.clone()).unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].entries, vec![e(2), e(5), e(9)]);
        let index = Index::build(back);
        assert_eq!(index.get(&ChunkId([5; 32])).unwrap().entry, e(5));
        assert!(!index.contains(&ChunkId([6; 32])));
        const { assert!(Index::BYTES_PER_BLOB < 64) };
        const { assert!(Index::BYTES_PER_DEDUP_CHUNK <= 40) };
        let tree = PackRecord {
            id: ObjectId([2; 32]),
            kind: BlobKind::Tree,
            entries: vec![e(7)],
            session: None,
        };
        let dedup = Index::build_for(Purpose::Dedup, [rec.clone(), tree]);
        assert!(dedup.contains(&ChunkId([5; 32])) && dedup.contains(&ChunkId([7; 32])));
        assert!(!dedup.contains(&ChunkId([6; 32])));
        assert!(
            dedup.get(&ChunkId([5; 32])).is_none(),
            "data chunks have no location"
        );
        assert_eq!(dedup.get(&ChunkId([7; 32])).unwrap().entry, e(7));
        assert_eq!(dedup.blob_count(), 4);
        assert!(dedup.has_pack(&ObjectId([1; 32])));
        let mut flipped = bytes.clone();
        flipped[40] ^= 1;
        assert!(decode_index(&keys, "index/x", flipped).is_err());
    }
}
