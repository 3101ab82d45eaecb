//! Compression dictionaries for small chunks (format version 2).
//!
//! A small file compressed on its own leaves most of zstd's gain on the table:
//! there is too little of it to learn from. So the first backup of a vault
//! holds back its first small data chunks that zstd can shrink (at most
//! `DICT_MAX_CHUNK` each; see `Samples::enough`), trains a zstd dictionary
//! on them, keeps it only if it saves clearly more than it costs, stores it
//! sealed as `dicts/<hash>`, and then seals the held chunks and every later
//! small chunk against it. Every later backup uses the same dictionary.
//!
//! Readers need no bookkeeping: a zstd frame names its dictionary by the
//! 32-bit id inside the dictionary, and a vault never holds two dictionaries
//! with one id (a writer that trains a colliding one discards it). Two first
//! backups racing may each store one; both stay readable, and writers then
//! use the one with the lowest name. Dictionaries are never deleted.

use std::collections::HashMap;
use std::sync::Arc;

use zstd::zstd_safe::{self, CDict, DDict};

use crate::crypto::MasterKeys;
use crate::error::{Error, Result};
use crate::ids::{ChunkId, ObjectId};

/// The zstd level of every compressed blob and dictionary.
pub const ZSTD_LEVEL: i32 = 3;

pub const DICT_MAGIC: &[u8; 8] = b"COFFERDC";
const DICT_AAD: &[u8] = b"coffer dictionary v2";
/// Chunks up to this size are compressed against the dictionary: the gain
/// shrinks with size, to a few percent at 64 KiB.
pub const DICT_MAX_CHUNK: usize = 64 << 10;
/// Largest dictionary trained.
const DICT_CAPACITY: usize = 64 << 10;
/// Plaintext gathered for training; also the most held back while it runs.
/// 1 MiB trains in about 0.3 s here and gave the same vault size as 2 MiB
/// (0.8 s) on the benchmark dataset.
const SAMPLE_BYTES: usize = 1 << 20;
/// Small chunks held back while training runs; more are sealed without a
/// dictionary.
const HOLD_WHILE_TRAINING: usize = SAMPLE_BYTES;
/// Less than this at the end of a backup is too little to train on; the next
/// backup tries again.
const MIN_SAMPLE_BYTES: usize = 256 << 10;
const MIN_SAMPLES: usize = 64;
/// zstd learns from many samples rather than from a few large ones, so held
/// chunks are cut into pieces of at most this size for training.
const SAMPLE_PIECE: usize = 8 << 10;

/// Name of a dictionary object in the vault.
pub fn dict_path(name: &ObjectId) -> String {
    format!("dicts/{}", name.to_hex())
}

/// A trained zstd dictionary, digested for both directions.
pub struct Dictionary {
    /// The id zstd writes into every frame compressed with it.
    pub zstd_id: u32,
    pub name: ObjectId,
    /// BLAKE3 of the dictionary itself: two objects may hold the same one.
    content: [u8; 32],
    cdict: CDict<'static>,
    ddict: DDict<'static>,
}

impl Dictionary {
    /// Digests a dictionary; `None` unless it is a zstd dictionary with an id
    /// (raw content cannot be named by a frame).
    pub(crate) fn new(name: ObjectId, bytes: &[u8]) -> Option<Self> {
        let zstd_id = zstd_safe::get_dict_id(bytes)?.get();
        Some(Dictionary {
            zstd_id,
            name,
            content: *blake3::hash(bytes).as_bytes(),
            cdict: CDict::try_create(bytes, ZSTD_LEVEL)?,
            ddict: DDict::try_create(bytes)?,
        })
    }

    pub(crate) fn cdict(&self) -> &CDict<'static> {
        &self.cdict
    }

    pub(crate) fn ddict(&self) -> &DDict<'static> {
        &self.ddict
    }
}

/// `"COFFERDC" || seal(K, "coffer dictionary v2", dictionary)`.
pub fn encode_object(keys: &MasterKeys, dictionary: &[u8]) -> Vec<u8> {
    let mut out = DICT_MAGIC.to_vec();
    out.extend_from_slice(&keys.seal(DICT_AAD, dictionary));
    out
}

/// Verifies, opens and digests one stored dictionary object.
pub fn decode_object(keys: &MasterKeys, name: &ObjectId, bytes: &[u8]) -> Result<Dictionary> {
    let path = dict_path(name);
    if ObjectId::of(bytes) != *name {
        return Err(Error::corrupt(path, "content does not match its name"));
    }
    let sealed = bytes
        .strip_prefix(DICT_MAGIC.as_slice())
        .ok_or_else(|| Error::corrupt(path.clone(), "not a dictionary (bad magic)"))?;
    let plain = keys.open(&path, DICT_AAD, sealed)?;
    Dictionary::new(*name, &plain)
        .ok_or_else(|| Error::corrupt(path, "not a zstd dictionary with an id"))
}

/// The dictionaries of an open vault.
#[derive(Default)]
pub struct Dictionaries {
    by_zstd_id: HashMap<u32, Arc<Dictionary>>,
    /// Dictionary objects that could not be read, with the reason; a blob
    /// that needs one of them reports it.
    pub unreadable: Vec<String>,
}

impl Dictionaries {
    pub fn get(&self, zstd_id: u32) -> Option<Arc<Dictionary>> {
        self.by_zstd_id.get(&zstd_id).cloned()
    }

    /// Registers a dictionary; false when a different one already has its id
    /// (the same dictionary stored twice is harmless).
    pub fn insert(&mut self, dict: Arc<Dictionary>) -> bool {
        match self.by_zstd_id.get(&dict.zstd_id) {
            Some(existing) => existing.content == dict.content,
            None => {
                self.by_zstd_id.insert(dict.zstd_id, dict);
                true
            }
        }
    }

    /// The dictionary new blobs are compressed with.
    pub fn for_writing(&self) -> Option<Arc<Dictionary>> {
        self.by_zstd_id.values().min_by_key(|d| d.name).cloned()
    }

    pub fn len(&self) -> usize {
        self.by_zstd_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_zstd_id.is_empty()
    }
}

/// How much of what it is trained on a dictionary must save to be kept.
const MIN_SAVING_PERCENT: usize = 5;

/// Trains a dictionary on samples and returns its bytes when it pays. Every
/// fourth sample is kept out of training and judges the result (a dictionary
/// always compresses its own training data well, even random bytes):
/// compressing those against it must save `MIN_SAVING_PERCENT`. When the
/// samples are all there is (`last`: the backup ends before the sample budget
/// is full), the saving over all of them must also exceed the dictionary's
/// own size, so that a vault of a few small files does not grow by one.
pub fn train(samples: &Samples, last: bool) -> Option<Vec<u8>> {
    let pieces = |len: usize| len.div_ceil(SAMPLE_PIECE);
    let piece_count: usize = samples.sizes.iter().map(|&l| pieces(l)).sum();
    if samples.bytes() < MIN_SAMPLE_BYTES || piece_count < MIN_SAMPLES || samples.sizes.len() < 4 {
        tracing::debug!(
            bytes = samples.bytes(),
            chunks = samples.sizes.len(),
            pieces = piece_count,
            "too few samples for a dictionary"
        );
        return None;
    }
    let started = std::time::Instant::now();
    let is_judge = |i: usize| i % 4 == 3;
    let mut training = Vec::with_capacity(samples.bytes());
    let mut training_sizes = Vec::with_capacity(samples.sizes.len());
    for (i, (_, chunk)) in samples.chunks().enumerate() {
        if !is_judge(i) {
            training.extend_from_slice(chunk);
            training_sizes.extend(chunk.chunks(SAMPLE_PIECE).map(<[u8]>::len));
        }
    }
    let mut dict = Vec::with_capacity(DICT_CAPACITY);
    let trained = zstd_safe::train_from_buffer(&mut dict, &training, &training_sizes);
    drop(training);
    if let Err(code) = trained {
        tracing::debug!(
            error = zstd_safe::get_error_name(code),
            "dictionary training failed"
        );
        return None;
    }
    let (Some(digested), Some(mut plain), Some(mut with)) = (
        Dictionary::new(ObjectId([0; 32]), &dict),
        zstd_safe::CCtx::try_create(),
        zstd_safe::CCtx::try_create(),
    ) else {
        tracing::debug!("the trained dictionary could not be loaded");
        return None;
    };
    let (mut judged, mut alone, mut against) = (0usize, 0usize, 0usize);
    let mut out = Vec::with_capacity(zstd_safe::compress_bound(DICT_MAX_CHUNK));
    for (_, chunk) in samples
        .chunks()
        .enumerate()
        .filter(|(i, _)| is_judge(*i))
        .map(|(_, c)| c)
    {
        let len = chunk.len();
        judged += len;
        out.clear();
        alone += plain
            .compress(&mut out, chunk, ZSTD_LEVEL)
            .map_or(len, |n| n.min(len));
        out.clear();
        against += with
            .compress_using_cdict(&mut out, chunk, digested.cdict())
            .map_or(len, |n| n.min(len));
    }
    let saving = alone.saturating_sub(against);
    let enough = saving * 100 >= alone * MIN_SAVING_PERCENT && saving > 0;
    let pays_for_itself = !last
        || (saving as u64 * samples.bytes() as u64) / (judged.max(1) as u64) > dict.len() as u64;
    let keep = enough && pays_for_itself;
    tracing::debug!(
        judged,
        alone,
        against,
        dictionary = dict.len(),
        keep,
        ms = started.elapsed().as_millis() as u64,
        "trained a compression dictionary"
    );
    keep.then_some(dict)
}

/// Small chunks held back for training, in one buffer as zstd wants them.
#[derive(Default)]
pub struct Samples {
    pub ids: Vec<ChunkId>,
    data: Vec<u8>,
    sizes: Vec<usize>,
}

impl Samples {
    pub(crate) fn push(&mut self, id: ChunkId, data: &[u8]) {
        self.ids.push(id);
        self.data.extend_from_slice(data);
        self.sizes.push(data.len());
    }

    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    /// Whether there is enough to train on.
    fn enough(&self) -> bool {
        self.bytes() >= SAMPLE_BYTES
    }

    /// Every held chunk with its id.
    pub fn chunks(&self) -> impl Iterator<Item = (ChunkId, &[u8])> {
        let mut start = 0;
        self.ids.iter().zip(&self.sizes).map(move |(id, &len)| {
            let chunk = &self.data[start..start + len];
            start += len;
            (*id, chunk)
        })
    }
}

/// Where a backup is in finding its dictionary.
pub enum Sampler {
    /// Holding back small chunks to train on.
    Collecting(Samples),
    /// One thread trains; small chunks arriving meanwhile are held here.
    Training(Samples),
    Using(Arc<Dictionary>),
    /// No dictionary for this backup (a format 1 vault, or training did not pay).
    Off,
}

/// What a backup thread does with one small chunk.
pub enum Offer {
    /// The sampler keeps it; it is sealed later.
    Held,
    /// Seal it now, against this dictionary if any.
    Seal(Option<Arc<Dictionary>>),
    /// Enough samples: this thread trains on them, then calls `trained`.
    Train(Samples),
}

impl Sampler {
    /// Whether small chunks are being gathered: only those zstd can shrink
    /// are worth offering then, random data would crowd out the samples.
    pub fn gathering(&self) -> bool {
        matches!(self, Sampler::Collecting(_) | Sampler::Training(_))
    }

    pub fn offer(&mut self, id: ChunkId, data: &[u8]) -> Offer {
        match self {
            Sampler::Using(d) => Offer::Seal(Some(d.clone())),
            Sampler::Off => Offer::Seal(None),
            Sampler::Training(held) if held.bytes() + data.len() > HOLD_WHILE_TRAINING => {
                Offer::Seal(None)
            }
            Sampler::Training(held) => {
                held.push(id, data);
                Offer::Held
            }
            Sampler::Collecting(samples) => {
                samples.push(id, data);
                if !samples.enough() {
                    return Offer::Held;
                }
                let samples = std::mem::take(samples);
                *self = Sampler::Training(Samples::default());
                Offer::Train(samples)
            }
        }
    }

    /// Ends training: from now on small chunks use `dict` (or none); returns
    /// the chunks held back meanwhile.
    pub fn trained(&mut self, dict: Option<Arc<Dictionary>>) -> Samples {
        let held = match std::mem::replace(self, Sampler::Off) {
            Sampler::Training(held) | Sampler::Collecting(held) => held,
            _ => Samples::default(),
        };
        if let Some(d) = dict {
            *self = Sampler::Using(d);
        }
        held
    }

    /// At the end of a backup: the samples still held, to train on (or seal
    /// without a dictionary when too few).
    pub fn take_remaining(&mut self) -> Samples {
        match self {
            Sampler::Collecting(samples) => {
                let samples = std::mem::take(samples);
                *self = Sampler::Training(Samples::default());
                samples
            }
            _ => Samples::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_samples(count: usize) -> Samples {
        let words = [
            "server",
            "listen",
            "port",
            "timeout",
            "backup",
            "retention",
            "enabled",
            "path",
            "user",
            "group",
            "level",
            "cache",
            "limit",
            "interval",
            "daily",
            "weekly",
        ];
        let mut samples = Samples::default();
        let mut x = 12345u64;
        for i in 0..count {
            let mut file = String::new();
            for _ in 0..120 {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let w = words[(x >> 33) as usize % words.len()];
                file.push_str(&format!("{w} = {}\n", (x >> 40) % 1000));
            }
            samples.push(ChunkId([i as u8; 32]), file.as_bytes());
        }
        samples
    }

    #[test]
    fn a_trained_dictionary_round_trips_and_is_named_in_frames() {
        let samples = text_samples(400);
        let bytes = train(&samples, false).expect("text samples train a useful dictionary");
        let dict = Dictionary::new(ObjectId::of(&bytes), &bytes).unwrap();
        let (_, sample) = samples.chunks().nth(7).unwrap();
        let mut frame = Vec::with_capacity(zstd_safe::compress_bound(sample.len()));
        zstd_safe::CCtx::create()
            .compress_using_cdict(&mut frame, sample, dict.cdict())
            .unwrap();
        assert_eq!(
            zstd_safe::get_dict_id_from_frame(&frame).map(|i| i.get()),
            Some(dict.zstd_id)
        );
        let mut back = Vec::with_capacity(sample.len());
        zstd_safe::DCtx::create()
            .decompress_using_ddict(&mut back, &frame, dict.ddict())
            .unwrap();
        assert_eq!(back, sample);
    }

    #[test]
    fn random_samples_do_not_train_a_dictionary() {
        let mut samples = Samples::default();
        let mut block = vec![0u8; 4096];
        for i in 0..200u32 {
            blake3::Hasher::new()
                .update(&i.to_le_bytes())
                .finalize_xof()
                .fill(&mut block);
            samples.push(ChunkId([0; 32]), &block);
        }
        assert!(train(&samples, false).is_none());
    }

    #[test]
    fn the_sampler_holds_then_hands_over_for_training() {
        let mut sampler = Sampler::Collecting(Samples::default());
        let chunk = vec![7u8; 60 << 10];
        let mut held = 0;
        let samples = loop {
            match sampler.offer(ChunkId([held as u8; 32]), &chunk) {
                Offer::Held => held += 1,
                Offer::Train(s) => break s,
                Offer::Seal(_) => panic!("collecting never seals"),
            }
        };
        assert_eq!(samples.ids.len(), held + 1);
        assert!(samples.enough());
        // While one thread trains, others' chunks are held for it.
        assert!(matches!(
            sampler.offer(ChunkId([1; 32]), &chunk),
            Offer::Held
        ));
        let later = sampler.trained(None);
        assert_eq!(later.ids.len(), 1);
        assert!(matches!(
            sampler.offer(ChunkId([2; 32]), &chunk),
            Offer::Seal(None)
        ));
    }
}

/// Dictionaries through whole backups, restores and checks.
#[cfg(test)]
mod vault_tests {
    use std::path::Path;

    use crate::check::{check, ReadData};
    use crate::keys::VaultKey;
    use crate::pack::Compression;
    use crate::restore::{restore, RestoreOptions, RestoreProgress};
    use crate::storage::Storage;
    use crate::testutil::{back_up, new_vault};
    use crate::vault::Vault;

    /// `count` configuration-like text files of about 3 KiB, each different.
    fn write_text_files(dir: &Path, first: usize, count: usize) {
        std::fs::create_dir_all(dir).unwrap();
        let words = [
            "listen",
            "address",
            "timeout",
            "retention",
            "schedule",
            "compression",
            "enabled",
            "replica",
            "location",
            "threshold",
            "interval",
            "notification",
            "weekday",
        ];
        for i in first..first + count {
            let mut x = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            let mut text = format!("# generated settings file {i}\n[section-{}]\n", i % 17);
            while text.len() < 3000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let w = words[(x % words.len() as u64) as usize];
                text.push_str(&format!(
                    "{w}_{} = \"{}\"\n",
                    (x >> 8) % 50,
                    (x >> 20) % 100_000
                ));
            }
            std::fs::write(dir.join(format!("f{i:05}.conf")), text).unwrap();
        }
    }

    /// `count` files of about 2.8 KiB, each a different pick of lines from
    /// one shared pool: what a dictionary is for (config files of one kind).
    fn write_shared_line_files(dir: &Path, count: usize) {
        std::fs::create_dir_all(dir).unwrap();
        let pool: Vec<String> = (0..300u64)
            .map(|i| {
                format!(
                    "option_{i:03} = \"value {}\" # {}\n",
                    i * 7919 % 1000,
                    i * 31
                )
            })
            .collect();
        for f in 0..count as u64 {
            let mut x = f.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            let mut text = String::new();
            for _ in 0..70 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                text.push_str(&pool[(x % pool.len() as u64) as usize]);
            }
            std::fs::write(dir.join(format!("g{f:04}.conf")), text).unwrap();
        }
    }

    fn reopen(dir: &Path, key: &VaultKey) -> Vault {
        let storage = Storage::open(dir.to_str().unwrap()).unwrap();
        Vault::open(storage, key, None).unwrap()
    }

    /// Blobs of the vault by how they were compressed.
    fn compressions(vault: &Vault) -> (usize, usize, usize) {
        let (mut none, mut zstd, mut dict) = (0, 0, 0);
        for id in vault.index_files().unwrap() {
            for record in vault.read_index_file(&id).unwrap() {
                for e in record.entries {
                    match e.compression {
                        Compression::None => none += 1,
                        Compression::Zstd => zstd += 1,
                        Compression::ZstdDict => dict += 1,
                    }
                }
            }
        }
        (none, zstd, dict)
    }

    fn pack_bytes(vault: &Vault) -> u64 {
        vault
            .storage()
            .list("packs/")
            .unwrap()
            .iter()
            .map(|o| vault.storage().size(&o.path).unwrap().unwrap())
            .sum()
    }

    fn restore_latest(vault: &Vault, target: &Path) {
        let point = vault.resolve_point("latest", None).unwrap();
        let opts = RestoreOptions {
            target: target.to_path_buf(),
            ..Default::default()
        };
        let report = restore(vault, &point, &opts, &RestoreProgress::default()).unwrap();
        assert!(report.is_complete(), "{report:?}");
    }

    fn assert_same_files(src: &Path, restored: &Path) {
        let got = restored.join(src.strip_prefix("/").unwrap());
        let mut count = 0;
        for entry in std::fs::read_dir(src).unwrap() {
            let entry = entry.unwrap();
            let want = std::fs::read(entry.path()).unwrap();
            let have = std::fs::read(got.join(entry.file_name())).unwrap();
            assert!(want == have, "{:?} differs", entry.file_name());
            count += 1;
        }
        assert!(count > 0);
    }

    /// 2.6 MiB of small text, more than `SAMPLE_BYTES`: training starts during the walk, chunks that
    /// arrive meanwhile are held, and the next backup reuses the dictionary.
    #[test]
    fn small_files_share_one_dictionary_across_backups() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        write_text_files(&src, 0, 900);

        let (vault, key) = new_vault(&tmp.path().join("v2"), false);
        back_up(&vault, &src);
        let dicts = vault.storage().list("dicts/").unwrap();
        assert_eq!(dicts.len(), 1, "one dictionary stored");
        let (_, _, with_dict) = compressions(&vault);
        // At least the samples (1 MiB) and what was held during training
        // (1 MiB); files arriving beyond that while training runs are
        // sealed without the dictionary.
        assert!(with_dict >= 650, "most small files use it: {with_dict}");

        write_text_files(&src, 900, 100);
        back_up(&vault, &src);
        assert_eq!(vault.storage().list("dicts/").unwrap().len(), 1, "reused");
        let (_, _, with_dict_after) = compressions(&vault);
        assert!(
            with_dict_after >= with_dict + 100,
            "{with_dict} then {with_dict_after}"
        );

        // Opened afresh, the vault finds its dictionary in storage.
        let mut vault = reopen(&tmp.path().join("v2"), &key);
        restore_latest(&vault, &tmp.path().join("restored"));
        assert_same_files(&src, &tmp.path().join("restored"));
        let report = check(&mut vault, ReadData::All).unwrap();
        assert!(report.ok(), "{:?}", report.problems);
        assert_eq!(report.dictionaries, 1);

        // The same files in a format 1 vault: no dictionary, and larger.
        let (old, _) = new_vault(&tmp.path().join("v1"), true);
        back_up(&old, &src);
        assert!(old.storage().list("dicts/").unwrap().is_empty());
        assert_eq!(compressions(&old).2, 0);
        let (with, without) = (pack_bytes(&vault), pack_bytes(&old));
        assert!(
            with * 10 < without * 9,
            "dictionary vault {with} bytes, format 1 vault {without} bytes"
        );
        restore_latest(&old, &tmp.path().join("restored-v1"));
        assert_same_files(&src, &tmp.path().join("restored-v1"));
    }

    /// A few small files are not worth a dictionary; a later, larger backup
    /// trains one.
    #[test]
    fn a_few_small_files_get_no_dictionary_until_there_are_enough() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        write_text_files(&src, 0, 40);
        let (vault, _) = new_vault(&tmp.path().join("vault"), false);
        back_up(&vault, &src);
        assert!(vault.storage().list("dicts/").unwrap().is_empty());
        let (_, zstd, dict) = compressions(&vault);
        assert_eq!(dict, 0);
        assert!(zstd >= 40, "still compressed on their own: {zstd}");

        write_shared_line_files(&src, 300);
        back_up(&vault, &src);
        assert_eq!(vault.storage().list("dicts/").unwrap().len(), 1);
        assert!(compressions(&vault).2 >= 280);
        restore_latest(&vault, &tmp.path().join("restored"));
        assert_same_files(&src, &tmp.path().join("restored"));
    }

    /// Less than `SAMPLE_BYTES` in the whole backup: the dictionary is trained
    /// at the end. Losing it is reported by check and by restore.
    #[test]
    fn a_lost_dictionary_is_reported_not_ignored() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        write_shared_line_files(&src, 300);
        let vault_dir = tmp.path().join("vault");
        let (vault, key) = new_vault(&vault_dir, false);
        back_up(&vault, &src);
        assert!(compressions(&vault).2 >= 280);
        let dicts = vault.storage().list("dicts/").unwrap();
        assert_eq!(dicts.len(), 1);
        vault.storage().delete(&dicts[0].path).unwrap();

        let mut vault = reopen(&vault_dir, &key);
        let quick = check(&mut vault, ReadData::None).unwrap();
        assert!(
            quick
                .problems
                .iter()
                .any(|p| p.contains("no readable dictionary")),
            "{:?}",
            quick.problems
        );
        let full = check(&mut vault, ReadData::All).unwrap();
        assert!(
            full.problems
                .iter()
                .any(|p| p.contains("is not in the vault")),
            "{:?}",
            full.problems
        );
        let point = vault.resolve_point("latest", None).unwrap();
        let opts = RestoreOptions {
            target: tmp.path().join("restored"),
            ..Default::default()
        };
        match restore(&vault, &point, &opts, &RestoreProgress::default()) {
            Ok(report) => assert!(!report.is_complete(), "{report:?}"),
            Err(e) => assert!(e.to_string().contains("dictionary"), "{e}"),
        }
    }
}
