//! Checks the test vectors published in `docs/FORMAT.md` against this code.
//! Each vector is a line `vector NAME: HEX` in the document; every vector the
//! code computes must appear there with exactly this value, so the document
//! and the implementation cannot drift apart.

use std::collections::BTreeMap;

use crate::chunker::Chunker;
use crate::credential::{vault_keypair, WriterCredential, WriterSecret, WriterSession};
use crate::crypto::{seal_with_nonce, MasterKeys};
use crate::disk_map::{Block, Segment};
use crate::ids::{ChunkId, ObjectId};
use crate::index::{encode_index, PackRecord};
use crate::journal::{Event, Record, RecordSeal};
use crate::keys::{derive, Header, KdfParams, VaultKey};
use crate::pack::{BlobEntry, BlobKind, Compression};
use crate::policy::{
    MonthDay, MonthlyRule, Nth, Policy, Retention, Schedule, TimeOfDay, Weekday, WeeklyRule,
    YearlyRule,
};
use crate::tree::{ChunkRef, Extent, Node, NodeKind, Timestamp, Tree};

fn computed() -> BTreeMap<&'static str, String> {
    let mut v = BTreeMap::new();
    header_vectors(&mut v);
    let keys = key_vectors(&mut v);
    let entry = chunk_vectors(&mut v);
    tree_and_index_vectors(&mut v, &keys, entry);
    journal_vectors(&mut v);
    writer_vectors(&mut v, &keys);
    v
}

/// A random source that always gives the same byte: the ephemeral key of
/// the session vector must be fixed.
struct FixedRng(u8);

impl rand::RngCore for FixedRng {
    fn next_u32(&mut self) -> u32 {
        u32::from_le_bytes([self.0; 4])
    }
    fn next_u64(&mut self) -> u64 {
        u64::from_le_bytes([self.0; 8])
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        dest.fill(self.0);
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        dest.fill(self.0);
        Ok(())
    }
}

impl rand::CryptoRng for FixedRng {}

/// The vault's key pair, a credential, its derived keys and one session.
fn writer_vectors(v: &mut BTreeMap<&'static str, String>, keys: &MasterKeys) {
    let (_, public) = vault_keypair(keys);
    v.insert("vault-public-key", hex::encode(public));
    let secret = WriterSecret::from_bytes([6u8; 32]);
    v.insert("writer-fingerprint", hex::encode(secret.fingerprint()));
    v.insert("writer-chunk-id", secret.chunk_id(b"coffer").to_hex());
    let credential = WriterCredential {
        vault_id: *b"0123456789abcdef",
        slot: [0x0a; 8],
        secret,
        vault_public: public,
    };
    v.insert("writer-credential", credential.to_text().to_string());
    let session = WriterSession::start_with(&credential, &mut FixedRng(9)).unwrap();
    v.insert("writer-session-header", hex::encode(session.header.0));
    v.insert("writer-session-key", hex::encode(*session.key));
    // A writer's index payload with its one pack withdrawn.
    let pack = ObjectId([0xcd; 32]);
    let rec = PackRecord {
        id: pack,
        kind: BlobKind::Data,
        entries: vec![BlobEntry {
            id: ChunkId([0xab; 32]),
            compression: Compression::Zstd,
            offset: 48,
            stored_len: 0x1234,
            raw_len: 0x10000,
        }],
        session: Some(session.header),
    };
    let withdrawn = std::collections::HashSet::from([pack]);
    v.insert(
        "writer-index-payload",
        hex::encode(crate::index::encode_payload(&[rec], true, &withdrawn)),
    );
}

fn header_vectors(v: &mut BTreeMap<&'static str, String>) {
    v.insert(
        "header",
        hex::encode(&Header::with_id(*b"0123456789abcdef", 1_700_000_000).bytes),
    );
    v.insert(
        "header-v5",
        hex::encode(&Header::with_version(*b"0123456789abcdef", 1_700_000_000, 5).bytes),
    );
    v.insert(
        "header-v4",
        hex::encode(&Header::with_version(*b"0123456789abcdef", 1_700_000_000, 4).bytes),
    );
    v.insert(
        "header-v3",
        hex::encode(&Header::with_version(*b"0123456789abcdef", 1_700_000_000, 3).bytes),
    );
    v.insert(
        "header-v2",
        hex::encode(&Header::with_version(*b"0123456789abcdef", 1_700_000_000, 2).bytes),
    );
    v.insert(
        "header-v1",
        hex::encode(&Header::with_version(*b"0123456789abcdef", 1_700_000_000, 1).bytes),
    );
}

/// The key derivation, sealing and the master keys' derived values.
fn key_vectors(v: &mut BTreeMap<&'static str, String>) -> MasterKeys {
    let kek = derive(
        &VaultKey::from_text("correct horse battery staple").unwrap(),
        &[3u8; 32],
        KdfParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        },
    )
    .unwrap();
    v.insert("argon2id", hex::encode(kek.as_ref()));

    let seal = seal_with_nonce(&[4u8; 32], &[5u8; 24], b"aad", b"plaintext");
    v.insert("seal", hex::encode(seal));

    let keys = MasterKeys::from_bytes(&[[4u8; 32], [1u8; 32], [2u8; 32]].concat()).unwrap();
    v.insert("chunk-id", keys.chunk_id(b"coffer").to_hex());
    let sealed_value = seal_with_nonce(
        &keys.purpose_key("service secrets"),
        &[5u8; 24],
        b"0123456789abcdef",
        b"plaintext",
    );
    v.insert("sealed-value", hex::encode(sealed_value));
    keys
}

/// The chunker's cut points and the pack's blob entries; returns the
/// entry the index vector uses.
fn chunk_vectors(v: &mut BTreeMap<&'static str, String>) -> BlobEntry {
    let chunker = Chunker::new(&[2u8; 32]);
    let mut input = vec![0u8; 6 << 20];
    blake3::Hasher::new()
        .update(b"coffer chunker vector")
        .finalize_xof()
        .fill(&mut input);
    let mut lens = Vec::new();
    chunker
        .split(&input[..], u64::MAX, |c| {
            lens.push(c.len().to_string());
            Ok(())
        })
        .unwrap();
    v.insert("chunk-lengths", lens.join(","));

    let entry = BlobEntry {
        id: ChunkId([0xab; 32]),
        compression: Compression::Zstd,
        offset: 8,
        stored_len: 0x1234,
        raw_len: 0x10000,
    };
    let mut e = Vec::new();
    entry.encode(&mut e);
    v.insert("blob-entry", hex::encode(&e));
    let mut d = Vec::new();
    BlobEntry {
        compression: Compression::ZstdDict,
        ..entry
    }
    .encode(&mut d);
    v.insert("blob-entry-dict", hex::encode(&d));
    entry
}

fn tree_and_index_vectors(
    v: &mut BTreeMap<&'static str, String>,
    keys: &MasterKeys,
    entry: BlobEntry,
) {
    let tree = Tree {
        nodes: vec![Node {
            name: b"a".to_vec(),
            kind: NodeKind::File {
                size: 5,
                extents: vec![Extent {
                    offset: 0,
                    chunks: vec![ChunkRef {
                        id: ChunkId([7; 32]),
                        len: 5,
                    }],
                }],
            },
            mode: 0o644,
            uid: 1000,
            gid: 1000,
            user: Some("u".into()),
            group: None,
            mtime: Timestamp { secs: -1, nanos: 5 },
            ctime: Timestamp { secs: 1, nanos: 0 },
            inode: 2,
            device: 3,
            links: 1,
            xattrs: vec![(b"user.k".to_vec(), b"v".to_vec())],
            error: None,
        }],
    };
    v.insert("tree", hex::encode(tree.encode()));
    disk_vectors(v);

    // The index payload before sealing: one pack, one entry.
    let rec = PackRecord {
        id: ObjectId([0xcd; 32]),
        kind: BlobKind::Data,
        entries: vec![entry],
        session: None,
    };
    let sealed = encode_index(keys, &[rec]);
    let payload = keys
        .open("index", b"coffer index v1", &sealed[8..])
        .unwrap();
    v.insert("index-payload", hex::encode(payload));
}

/// A disk node (format 6) and one of its segments.
fn disk_vectors(v: &mut BTreeMap<&'static str, String>) {
    let tree = Tree {
        nodes: vec![Node {
            name: b"d".to_vec(),
            kind: NodeKind::Disk {
                size: 3 * 4096 + 1,
                block_size: 4096,
                segment_blocks: 2,
                segments: vec![ChunkId([8; 32]), ChunkId([9; 32])],
            },
            mode: 0o600,
            uid: 0,
            gid: 0,
            user: None,
            group: None,
            mtime: Timestamp { secs: 1, nanos: 0 },
            ctime: Timestamp { secs: 1, nanos: 0 },
            inode: 0,
            device: 0,
            links: 1,
            xattrs: Vec::new(),
            error: None,
        }],
    };
    v.insert("disk-tree", hex::encode(tree.encode()));
    let segment = Segment {
        blocks: vec![Block::Data(ChunkId([7; 32])), Block::Hole],
    };
    v.insert("disk-segment", hex::encode(segment.encode()));
}

fn journal_vectors(v: &mut BTreeMap<&'static str, String>) {
    // Journal records before sealing.
    let hold = Record {
        time: 1_700_000_000,
        host: "h".into(),
        event: Event::Hold {
            point: ObjectId([0xee; 32]),
        },
    };
    v.insert(
        "journal-hold",
        hex::encode(postcard::to_stdvec(&hold).unwrap()),
    );
    let hold_name = "journal/01700000000000000000-0123456789abcdef";
    let hold_sealed = seal_with_nonce(
        &[4u8; 32],
        &[5u8; 24],
        &RecordSeal::Named.aad(hold_name),
        &postcard::to_stdvec(&hold).unwrap(),
    );
    v.insert("journal-hold-v4-seal", hex::encode(hold_sealed));
    let policy = Record {
        time: 1_700_000_000,
        host: "h".into(),
        event: Event::PolicySet(Policy {
            name: "P".into(),
            schedule: Schedule::Weekly {
                days: vec![Weekday::Monday, Weekday::Sunday],
                at: TimeOfDay {
                    hour: 2,
                    minute: 30,
                },
                time_zone: "UTC".into(),
            },
            retention: Retention {
                keep_last: Some(3),
                daily_days: Some(30),
                weekly: Some(WeeklyRule {
                    weekday: Weekday::Sunday,
                    weeks: 12,
                }),
                monthly: Some(MonthlyRule {
                    day: MonthDay::Last,
                    months: 12,
                }),
                yearly: Some(YearlyRule {
                    month: 1,
                    day: MonthDay::Weekday {
                        nth: Nth::First,
                        weekday: Weekday::Sunday,
                    },
                    years: 5,
                }),
            },
        }),
    };
    v.insert(
        "journal-policy",
        hex::encode(postcard::to_stdvec(&policy).unwrap()),
    );
    let replica = Record {
        time: 1_700_000_000,
        host: "h".into(),
        event: Event::ReplicaAdded {
            location: "s3://b/p".into(),
            mode: crate::journal::ReplicaMode::Sync,
        },
    };
    v.insert(
        "journal-replica",
        hex::encode(postcard::to_stdvec(&replica).unwrap()),
    );
}

#[test]
fn format_md_vectors_match_the_code() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/FORMAT.md"))
        .unwrap();
    let published: BTreeMap<String, String> = doc
        .lines()
        .filter_map(|l| l.trim().strip_prefix("vector "))
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('`').to_string()))
        .collect();
    let mut missing = Vec::new();
    for (name, value) in computed() {
        match published.get(name) {
            Some(p) if *p == value => {}
            Some(p) => panic!("vector {name}: FORMAT.md says {p}, the code computes {value}"),
            None => missing.push(format!("vector {name}: {value}")),
        }
    }
    assert!(
        missing.is_empty(),
        "FORMAT.md lacks:\n{}",
        missing.join("\n")
    );
}
