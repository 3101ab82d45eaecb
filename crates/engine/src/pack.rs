//! Packs: the files that hold blobs.
//!
//! A pack is `magic · blob* · sealed trailer · u32 trailer length`. Each blob
//! is one chunk (or one tree), compressed with zstd when that makes it
//! smaller, then sealed with the chunk id as associated data, so a blob cannot
//! be swapped for another. The trailer lists every blob of the pack and is
//! itself sealed, so the index can always be rebuilt from the packs alone and
//! a pack left behind by an interrupted backup can be adopted by the next one.
//! Data and trees never share a pack: trees are small, read often and cached.

use std::cell::RefCell;
use std::sync::{Mutex, OnceLock};

use zstd::zstd_safe::{CCtx, DCtx};

use crate::credential::session::SessionHeader;
use crate::crypto::MasterKeys;
use crate::dict::{Dictionaries, Dictionary};
use crate::error::{Error, Result};
use crate::ids::{ChunkId, ObjectId};

pub const PACK_MAGIC: &[u8; 8] = b"COFFERPK";
const TRAILER_AAD: &[u8] = b"coffer pack trailer v1";
/// Encoded size of one trailer entry.
pub const ENTRY_LEN: usize = 32 + 1 + 4 + 4 + 4;
const FLAG_ZSTD: u8 = 1;
/// With `FLAG_ZSTD`: the frame was compressed against a vault dictionary,
/// which the frame names (format version 2).
const FLAG_DICT: u8 = 2;
pub use crate::dict::ZSTD_LEVEL;
/// Data packs are at most this size, tree packs half of it: a pack is closed
/// before a run of blobs that would take it past.
pub const DATA_PACK_TARGET: usize = 4 << 20;
pub const TREE_PACK_TARGET: usize = 2 << 20;

/// How a blob's body was compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Zstd,
    /// zstd against one of the vault's dictionaries (see `dict`).
    ZstdDict,
}

impl Compression {
    fn flags(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Zstd => FLAG_ZSTD,
            Compression::ZstdDict => FLAG_ZSTD | FLAG_DICT,
        }
    }

    fn from_flags(flags: u8) -> Option<Self> {
        match flags {
            0 => Some(Compression::None),
            FLAG_ZSTD => Some(Compression::Zstd),
            f if f == FLAG_ZSTD | FLAG_DICT => Some(Compression::ZstdDict),
            _ => None,
        }
    }
}

/// What a pack holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlobKind {
    Data = 0,
    Tree = 1,
}

impl BlobKind {
    pub(crate) fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(BlobKind::Data),
            1 => Some(BlobKind::Tree),
            _ => None,
        }
    }
}

/// Where one blob lives inside its pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobEntry {
    pub id: ChunkId,
    pub compression: Compression,
    pub offset: u32,
    pub stored_len: u32,
    pub raw_len: u32,
}

impl BlobEntry {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.id.0);
        out.push(self.compression.flags());
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.stored_len.to_le_bytes());
        out.extend_from_slice(&self.raw_len.to_le_bytes());
    }

    pub(crate) fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < ENTRY_LEN {
            return None;
        }
        let compression = Compression::from_flags(b[32])?;
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let mut id = [0u8; 32];
        id.copy_from_slice(&b[..32]);
        Some(BlobEntry {
            id: ChunkId(id),
            compression,
            offset: u32_at(33),
            stored_len: u32_at(37),
            raw_len: u32_at(41),
        })
    }
}

/// Name of a pack object in the vault.
pub fn pack_path(id: &ObjectId) -> String {
    let hex = id.to_hex();
    format!("packs/{}/{}", &hex[..2], hex)
}

/// Compression contexts shared by every thread, at most one per core kept.
/// A context holds about 1.3 MB of tables, and a backup runs more threads
/// than can compress at once (readers wait on the disk), so one per thread
/// would hold memory that no core is using.
struct ContextPool<T> {
    free: Mutex<Vec<T>>,
}

impl<T> ContextPool<T> {
    const fn new() -> Self {
        ContextPool {
            free: Mutex::new(Vec::new()),
        }
    }

    /// Runs `f` on a free context, or on one made by `create`; `None` when
    /// none can be made.
    fn with<R>(
        &self,
        create: impl FnOnce() -> Option<T>,
        f: impl FnOnce(&mut T) -> R,
    ) -> Option<R> {
        let taken = self.free.lock().ok().and_then(|mut free| free.pop());
        let mut context = taken.or_else(create)?;
        let result = f(&mut context);
        if let Ok(mut free) = self.free.lock() {
            if free.len() < kept_contexts() {
                free.push(context);
            }
        }
        Some(result)
    }
}

fn kept_contexts() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
}

static COMPRESSORS: ContextPool<zstd::bulk::Compressor<'static>> = ContextPool::new();
/// For `looks_incompressible`, at zstd's fastest level.
static PROBES: ContextPool<zstd::bulk::Compressor<'static>> = ContextPool::new();
/// For frames against a dictionary, which carries its own parameters.
static DICT_COMPRESSORS: ContextPool<CCtx<'static>> = ContextPool::new();

/// Chunks at least this large are first probed: compressing already
/// compressed data (media, archives, encrypted files) costs as much CPU as
/// compressing text and saves nothing.
const PROBE_FROM: usize = 128 << 10;
/// The probe: this many bytes from each of `PROBE_SPOTS` places spread over
/// the chunk, compressed together at zstd's fastest level.
const PROBE_BYTES: usize = 8 << 10;
const PROBE_SPOTS: usize = 4;

/// Chunks below this size are too short for their byte histogram to tell
/// random bytes from anything else; zstd is cheap on them anyway.
const HISTOGRAM_FROM: usize = 512;

/// Whether zstd would hardly shrink `data`: for a large chunk, judged by
/// compressing samples; for a smaller one, by its byte histogram.
fn looks_incompressible(data: &[u8]) -> bool {
    match data.len() {
        n if n >= PROBE_FROM => samples_barely_compress(data),
        n if n >= HISTOGRAM_FROM => bytes_look_random(data),
        _ => false,
    }
}

/// Whether the bytes of a chunk are as evenly spread as random bytes. The
/// histogram costs a fraction of a zstd attempt (matching against the
/// dictionary is a quarter of a small-file backup's CPU), and compressed or
/// encrypted files, half of some trees' small files, then skip zstd.
///
/// The measure is the number of equal byte pairs, sum c^2 over the
/// histogram: random bytes give n^2/256 + n(255/256) with a spread of about
/// 0.1 n (the highest of 2,000 random chunks of 0.5–64 KiB: +0.41 n). The
/// bar lies a further n above that, about ten spreads. Pieces of gzip files
/// measure within 0.21 n of it and do not compress; pieces of PNG images,
/// which still compress a few percent, measure 1.7 n to 8 n above it and
/// go to zstd. Repeats within a random-looking chunk are missed: they are
/// rare below 128 KiB and cost only size.
fn bytes_look_random(data: &[u8]) -> bool {
    // Four interleaved tables, so that runs of one byte value do not
    // serialise on a single counter.
    let mut counts = [[0u32; 256]; 4];
    let mut quads = data.chunks_exact(4);
    for q in &mut quads {
        counts[0][q[0] as usize] += 1;
        counts[1][q[1] as usize] += 1;
        counts[2][q[2] as usize] += 1;
        counts[3][q[3] as usize] += 1;
    }
    for &b in quads.remainder() {
        counts[0][b as usize] += 1;
    }
    let pairs: u64 = (0..256)
        .map(|v| {
            let c = u64::from(counts[0][v] + counts[1][v] + counts[2][v] + counts[3][v]);
            c * c
        })
        .sum();
    let n = data.len() as u64;
    256 * pairs <= n * n + 512 * n
}

/// Whether samples of a large chunk say that zstd would save less than one
/// part in 32 of it.
fn samples_barely_compress(data: &[u8]) -> bool {
    let step = (data.len() - PROBE_BYTES) / (PROBE_SPOTS - 1);
    let mut sample = Vec::with_capacity(PROBE_BYTES * PROBE_SPOTS);
    for spot in 0..PROBE_SPOTS {
        let at = spot * step;
        sample.extend_from_slice(&data[at..at + PROBE_BYTES]);
    }
    let mut frame = Vec::with_capacity(zstd::zstd_safe::compress_bound(sample.len()));
    PROBES
        .with(
            || zstd::bulk::Compressor::new(1).ok(),
            |c| c.compress_to_buffer(&sample, &mut frame).ok(),
        )
        .flatten()
        .is_some_and(|n| n > sample.len() - sample.len() / 32)
}

/// Appends the zstd frame of `data` to `out` and says which compression it
/// used, or leaves `out` as it was and returns `None` when that frame would
/// not be smaller than `data` (or a probe says it would hardly be).
fn compress_onto(out: &mut Vec<u8>, data: &[u8], dict: Option<&Dictionary>) -> Option<Compression> {
    if looks_incompressible(data) {
        return None;
    }
    let start = out.len();
    out.reserve(zstd::zstd_safe::compress_bound(data.len()));
    let mut behind = std::io::Cursor::new(&mut *out);
    behind.set_position(start as u64);
    let written = match dict {
        Some(dict) => DICT_COMPRESSORS
            .with(CCtx::try_create, |c| {
                c.compress_using_cdict(&mut behind, data, dict.cdict()).ok()
            })
            .flatten()
            .map(|n| (n, Compression::ZstdDict)),
        None => COMPRESSORS
            .with(
                || zstd::bulk::Compressor::new(ZSTD_LEVEL).ok(),
                |c| c.compress_to_buffer(data, &mut behind).ok(),
            )
            .flatten()
            .map(|n| (n, Compression::Zstd)),
    };
    match written {
        // Only worth keeping when it saves something.
        Some((n, compression)) if n < data.len() => {
            out.truncate(start + n);
            Some(compression)
        }
        _ => {
            out.truncate(start);
            None
        }
    }
}

/// Whether zstd shrinks `data` at all.
pub fn compresses(data: &[u8]) -> bool {
    compress_onto(&mut Vec::new(), data, None).is_some()
}

/// A blob ready to go into a pack.
pub struct SealedBlob {
    pub id: ChunkId,
    pub compression: Compression,
    pub raw_len: u32,
    pub bytes: Vec<u8>,
}

/// Compresses (when it helps, against `dict` when given) and seals one
/// plaintext blob. The frame is written straight behind the nonce and
/// encrypted where it lies, so sealing takes one buffer per blob and no
/// thread keeps a chunk-sized scratch buffer between blobs.
pub fn seal_blob(
    keys: &MasterKeys,
    id: ChunkId,
    plaintext: &[u8],
    dict: Option<&Dictionary>,
) -> SealedBlob {
    let mut bytes = vec![0u8; crate::crypto::NONCE_LEN];
    let compression = match compress_onto(&mut bytes, plaintext, dict) {
        Some(compression) => compression,
        None => {
            bytes.extend_from_slice(plaintext);
            Compression::None
        }
    };
    bytes.reserve_exact(crate::crypto::TAG_LEN);
    keys.seal_in_place(&id.0, &mut bytes);
    // The frame's room was reserved for the worst case; a blob waits in its
    // run until the run is full, so give back what compression saved.
    if bytes.capacity() - bytes.len() > bytes.len() / 8 {
        bytes.shrink_to_fit();
    }
    SealedBlob {
        id,
        compression,
        raw_len: plaintext.len() as u32,
        bytes,
    }
}

thread_local! {
    /// One decompression context per thread: creating one per blob cost
    /// several percent of a restore.
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
    static DICT_DECOMPRESSOR: RefCell<Option<DCtx<'static>>> = const { RefCell::new(None) };
}

fn decompress_with_dict(
    dicts: &Dictionaries,
    frame: &[u8],
    raw_len: usize,
) -> std::result::Result<Vec<u8>, String> {
    let zstd_id = zstd::zstd_safe::get_dict_id_from_frame(frame)
        .ok_or("the frame names no dictionary")?
        .get();
    let dict = dicts.get(zstd_id).ok_or_else(|| {
        let mut reason = format!("dictionary {zstd_id:08x} is not in the vault");
        for unreadable in &dicts.unreadable {
            reason.push_str(&format!("; unreadable: {unreadable}"));
        }
        reason
    })?;
    DICT_DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = DCtx::try_create();
        }
        let dctx = slot.as_mut().ok_or("no decompression context")?;
        let mut out = Vec::with_capacity(raw_len);
        dctx.decompress_using_ddict(&mut out, frame, dict.ddict())
            .map_err(|code| zstd::zstd_safe::get_error_name(code).to_string())?;
        Ok(out)
    })
}

/// Opens one stored blob and proves it is the chunk it claims to be.
pub fn open_blob(
    keys: &MasterKeys,
    dicts: &Dictionaries,
    pack: &ObjectId,
    entry: &BlobEntry,
    stored: &[u8],
) -> Result<Vec<u8>> {
    // Named only when something is wrong: formatting it for every blob showed
    // up in profiles.
    let object = || {
        format!(
            "{} (blob {} in pack {})",
            pack_path(pack),
            entry.id.to_hex(),
            pack.to_hex()
        )
    };
    let body =
        crate::crypto::open_with(&keys.encryption, &entry.id.0, stored).ok_or_else(|| {
            Error::corrupt(object(), "authentication failed (data altered or damaged)")
        })?;
    let plain = match entry.compression {
        Compression::None => body,
        Compression::Zstd => DECOMPRESSOR
            .with(|cell| {
                let mut slot = cell.borrow_mut();
                if slot.is_none() {
                    *slot = Some(zstd::bulk::Decompressor::new()?);
                }
                match slot.as_mut() {
                    Some(d) => d.decompress(&body, entry.raw_len as usize),
                    None => Err(std::io::Error::other("no decompression context")),
                }
            })
            .map_err(|e| Error::corrupt(object(), format!("decompression failed: {e}")))?,
        Compression::ZstdDict => decompress_with_dict(dicts, &body, entry.raw_len as usize)
            .map_err(|e| Error::corrupt(object(), format!("decompression failed: {e}")))?,
    };
    if plain.len() != entry.raw_len as usize || keys.chunk_id(&plain) != entry.id {
        return Err(Error::corrupt(object(), "content does not match its id"));
    }
    Ok(plain)
}

/// Accumulates sealed blobs into one pack.
pub struct PackBuilder {
    pub kind: BlobKind,
    buf: Vec<u8>,
    entries: Vec<BlobEntry>,
}

/// A finished pack, ready to upload.
pub struct FinishedPack {
    pub id: ObjectId,
    pub kind: BlobKind,
    pub bytes: Vec<u8>,
    pub entries: Vec<BlobEntry>,
    /// The session of the write-only writer that sealed it, if one did.
    pub session: Option<SessionHeader>,
}

impl PackBuilder {
    pub fn new(kind: BlobKind) -> Self {
        Self::with_capacity(kind, 1 << 20, PACK_MAGIC)
    }

    /// A builder whose buffer never has to grow (and be copied) below
    /// `capacity` bytes; untouched capacity costs address space, not memory.
    /// The pack starts with `prefix`: the magic, and for a write-only
    /// writer's pack its session header (FORMAT.md §5a).
    pub fn with_capacity(kind: BlobKind, capacity: usize, prefix: &[u8]) -> Self {
        let mut buf = Vec::with_capacity(capacity);
        buf.extend_from_slice(prefix);
        PackBuilder {
            kind,
            buf,
            entries: Vec::new(),
        }
    }

    /// A builder that fills `buf` after clearing it, keeping its capacity.
    pub fn with_buffer(kind: BlobKind, mut buf: Vec<u8>, prefix: &[u8]) -> Self {
        buf.clear();
        buf.extend_from_slice(prefix);
        PackBuilder {
            kind,
            buf,
            entries: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The size the pack would have once finished with `blobs` more blobs of
    /// `bytes` bytes in all: blobs, sealed trailer and its length.
    pub fn finished_len_with(&self, blobs: usize, bytes: usize) -> usize {
        let entries = self.entries.len() + blobs;
        self.buf.len() + bytes + 5 + entries * ENTRY_LEN + crate::crypto::SEAL_OVERHEAD + 4
    }

    pub fn add(&mut self, blob: SealedBlob) {
        self.entries.push(BlobEntry {
            id: blob.id,
            compression: blob.compression,
            offset: self.buf.len() as u32,
            stored_len: blob.bytes.len() as u32,
            raw_len: blob.raw_len,
        });
        self.buf.extend_from_slice(&blob.bytes);
    }

    pub fn finish(mut self, keys: &MasterKeys) -> FinishedPack {
        let mut trailer = Vec::with_capacity(5 + self.entries.len() * ENTRY_LEN);
        trailer.push(self.kind as u8);
        trailer.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        for e in &self.entries {
            e.encode(&mut trailer);
        }
        let sealed = keys.seal(TRAILER_AAD, &trailer);
        self.buf.extend_from_slice(&sealed);
        self.buf
            .extend_from_slice(&(sealed.len() as u32).to_le_bytes());
        FinishedPack {
            id: ObjectId::of(&self.buf),
            kind: self.kind,
            bytes: self.buf,
            entries: self.entries,
            session: None,
        }
    }
}

/// Parses a pack's trailer. `tail` must be the last `tail.len()` bytes of a
/// pack of `pack_len` bytes and contain the whole sealed trailer.
/// Blobs start at `blobs_start` (after the magic, and for a write-only
/// writer's pack its session header).
pub fn parse_trailer(
    keys: &MasterKeys,
    pack: &ObjectId,
    pack_len: u64,
    tail: &[u8],
    blobs_start: u64,
) -> Result<(BlobKind, Vec<BlobEntry>)> {
    let object = pack_path(pack);
    let bad = |r: &str| Error::corrupt(object.clone(), r);
    if tail.len() < 4 {
        return Err(bad("too short for a pack"));
    }
    let len_at = tail.len() - 4;
    let sealed_len = u32::from_le_bytes([
        tail[len_at],
        tail[len_at + 1],
        tail[len_at + 2],
        tail[len_at + 3],
    ]) as usize;
    if sealed_len > len_at {
        return Err(bad("trailer length points outside the pack"));
    }
    let sealed = &tail[len_at - sealed_len..len_at];
    let plain = keys.open(&format!("{object} (trailer)"), TRAILER_AAD, sealed)?;
    if plain.len() < 5 {
        return Err(bad("trailer too short"));
    }
    let kind = BlobKind::from_u8(plain[0]).ok_or_else(|| bad("unknown pack kind"))?;
    let count = u32::from_le_bytes([plain[1], plain[2], plain[3], plain[4]]) as usize;
    if plain.len() != 5 + count * ENTRY_LEN {
        return Err(bad("trailer length does not match its entry count"));
    }
    let blobs_end = pack_len - 4 - sealed_len as u64;
    let mut entries = Vec::with_capacity(count);
    for raw in plain[5..].chunks_exact(ENTRY_LEN) {
        let e = BlobEntry::decode(raw).ok_or_else(|| bad("bad trailer entry"))?;
        if (e.offset as u64) < blobs_start || e.offset as u64 + e.stored_len as u64 > blobs_end {
            return Err(bad("trailer entry points outside the pack"));
        }
        entries.push(e);
    }
    Ok((kind, entries))
}

/// Length of the tail to fetch so that it usually covers the whole trailer.
pub fn trailer_guess(pack_len: u64) -> u64 {
    pack_len.min(64 * 1024)
}

/// Exact length of the sealed trailer plus its length field, from the last
/// four bytes of a pack.
pub fn trailer_span(last4: &[u8]) -> u64 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&last4[last4.len() - 4..]);
    u32::from_le_bytes(b) as u64 + 4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_chunks_of_random_bytes_are_stored_without_trying_zstd() {
        let keys = MasterKeys::random();
        let mut random = vec![0u8; 1 << 20];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut random);
        assert!(looks_incompressible(&random));
        let sealed = seal_blob(&keys, keys.chunk_id(&random), &random, None);
        assert_eq!(sealed.compression, Compression::None);
        // Half compressible: the probe sees it and zstd gets its chance.
        let mut half = random.clone();
        half[512 << 10..].fill(0);
        assert!(!looks_incompressible(&half));
        let sealed = seal_blob(&keys, keys.chunk_id(&half), &half, None);
        assert_eq!(sealed.compression, Compression::Zstd);
    }

    #[test]
    fn smaller_chunks_of_random_bytes_are_judged_by_their_histogram() {
        let keys = MasterKeys::random();
        let mut random = vec![0u8; PROBE_FROM - 1];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut random);
        for len in [1 << 10, 2 << 10, 16 << 10, PROBE_FROM - 1] {
            assert!(looks_incompressible(&random[..len]), "{len} random bytes");
        }
        let sealed = seal_blob(&keys, keys.chunk_id(&random[..4096]), &random[..4096], None);
        assert_eq!(sealed.compression, Compression::None);
        // Too short to judge: zstd decides (and finds nothing to save).
        assert!(!looks_incompressible(&random[..HISTOGRAM_FROM - 1]));
        // Text, and random bytes behind a header of text, are compressed.
        let text = b"key = value # a configuration line\n".repeat(100);
        assert!(!looks_incompressible(&text));
        let mut headed = b"name: backup-config, version: 2, owner: ops\n".repeat(8);
        headed.extend_from_slice(&random[..4096]);
        assert!(!looks_incompressible(&headed));
        let sealed = seal_blob(&keys, keys.chunk_id(&headed), &headed, None);
        assert_eq!(sealed.compression, Compression::Zstd);
        // Random bytes limited to 128 values (7 bits per byte) are compressed.
        let seven_bits: Vec<u8> = random[..8192].iter().map(|b| b & 0x7f).collect();
        assert!(!looks_incompressible(&seven_bits));
        let sealed = seal_blob(&keys, keys.chunk_id(&seven_bits), &seven_bits, None);
        assert_eq!(sealed.compression, Compression::Zstd);
    }

    #[test]
    fn finished_len_predicts_the_finished_pack_and_sealed_blobs_open() {
        let keys = MasterKeys::random();
        let mut pack = PackBuilder::with_capacity(BlobKind::Data, 0, PACK_MAGIC);
        let text = b"a line of text that zstd will shrink ".repeat(200);
        let mut noise = vec![0u8; 5000];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut noise);
        let blobs = [
            seal_blob(&keys, keys.chunk_id(&text), &text, None),
            seal_blob(&keys, keys.chunk_id(&noise), &noise, None),
        ];
        assert_eq!(blobs[0].compression, Compression::Zstd);
        assert_eq!(blobs[1].compression, Compression::None);
        let bytes: usize = blobs.iter().map(|b| b.bytes.len()).sum();
        let predicted = pack.finished_len_with(blobs.len(), bytes);
        let sealed: Vec<Vec<u8>> = blobs.iter().map(|b| b.bytes.clone()).collect();
        for blob in blobs {
            pack.add(blob);
        }
        assert_eq!(pack.finished_len_with(0, 0), predicted);
        let finished = pack.finish(&keys);
        assert_eq!(finished.bytes.len(), predicted);
        // Sealed in place, the blobs open like any sealed object.
        let opened = keys
            .open("blob", &finished.entries[1].id.0, &sealed[1])
            .unwrap();
        assert_eq!(opened, noise);
        let frame = keys
            .open("blob", &finished.entries[0].id.0, &sealed[0])
            .unwrap();
        assert_eq!(zstd::bulk::decompress(&frame, text.len()).unwrap(), text);
    }

    #[test]
    fn entry_flags_outside_the_format_are_refused() {
        let entry = BlobEntry {
            id: ChunkId([9; 32]),
            compression: Compression::ZstdDict,
            offset: 8,
            stored_len: 100,
            raw_len: 200,
        };
        let mut bytes = Vec::new();
        entry.encode(&mut bytes);
        assert_eq!(BlobEntry::decode(&bytes), Some(entry));
        // A dictionary without zstd, and any unknown bit, mean a newer or
        // damaged writer: never guess.
        for flags in [FLAG_DICT, 4, 0x80, FLAG_ZSTD | 8] {
            bytes[32] = flags;
            assert_eq!(BlobEntry::decode(&bytes), None, "flags {flags:#x}");
        }
    }
}
