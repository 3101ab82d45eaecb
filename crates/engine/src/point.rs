//! Recovery-point manifests: `points/<hash>` is `magic · sealed postcard`.
//!
//! A manifest is the commit point of a backup: it is written only after every
//! pack and the index it needs are stored, so a point that exists is always
//! complete. Its id is the BLAKE3 hash of the stored object.

use serde::{Deserialize, Serialize};

use crate::crypto::{open_object, seal_object, MasterKeys};
use crate::error::Result;
use crate::ids::{ChunkId, ObjectId};
use crate::tree::Timestamp;

pub const POINT_MAGIC: &[u8; 8] = b"COFFERPT";
const POINT_AAD: &[u8] = b"coffer point v1";

/// How consistent the captured state is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Consistency {
    /// Files read live, without a snapshot: like a crash at backup time, at best.
    CrashConsistent,
    /// Taken from a file system snapshot.
    FileSystemConsistent,
    /// The application was quiesced (pre/post scripts) around a snapshot.
    ApplicationConsistent,
}

impl Consistency {
    pub fn as_str(&self) -> &'static str {
        match self {
            Consistency::CrashConsistent => "crash-consistent",
            Consistency::FileSystemConsistent => "file-system-consistent",
            Consistency::ApplicationConsistent => "application-consistent",
        }
    }
}

/// Counters of one backup.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub files: u64,
    pub dirs: u64,
    pub files_new: u64,
    pub files_changed: u64,
    pub files_unchanged: u64,
    pub bytes_read: u64,
    /// Plaintext bytes of chunks the vault did not hold before.
    pub bytes_new: u64,
    /// Bytes written to storage (packs and index), after compression.
    pub bytes_stored: u64,
    /// Total size of the files in the point.
    pub bytes_total: u64,
    pub duration_ms: u64,
    pub errors: u64,
}

impl From<&Stats> for coffer_api_types::PointStats {
    fn from(s: &Stats) -> Self {
        coffer_api_types::PointStats {
            files: s.files,
            dirs: s.dirs,
            files_new: s.files_new,
            files_changed: s.files_changed,
            files_unchanged: s.files_unchanged,
            bytes_read: s.bytes_read,
            bytes_new: s.bytes_new,
            bytes_stored: s.bytes_stored,
            bytes_total: s.bytes_total,
            duration_ms: s.duration_ms,
            errors: s.errors,
        }
    }
}

/// An entry that could not be backed up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryError {
    pub path: Vec<u8>,
    pub message: String,
}

/// The manifest of one recovery point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub time: Timestamp,
    pub host: String,
    pub item: String,
    pub paths: Vec<Vec<u8>>,
    pub tags: Vec<String>,
    pub parent: Option<ObjectId>,
    pub tree: ChunkId,
    pub consistency: Consistency,
    pub stats: Stats,
    pub errors: Vec<EntryError>,
    pub software: String,
}

use crate::credential::objects::{open_session_object, seal_session_object, WRITER_POINT_MAGIC};
use crate::credential::session::SessionHeader;

pub fn point_path(id: &ObjectId) -> String {
    format!("points/{}", id.to_hex())
}

impl Manifest {
    pub fn encode(&self, keys: &MasterKeys) -> Vec<u8> {
        seal_object(keys, POINT_MAGIC, POINT_AAD, self)
    }

    pub fn decode(keys: &MasterKeys, object: &str, bytes: &[u8]) -> Result<Self> {
        open_object(
            keys,
            POINT_MAGIC,
            POINT_AAD,
            object,
            "recovery point",
            bytes,
        )
    }

    /// A manifest as a write-only writer stores it: its magic and session
    /// header, sealed under that session's keys (FORMAT.md §5a).
    pub fn encode_written(&self, keys: &MasterKeys, session: &SessionHeader) -> Vec<u8> {
        seal_session_object(keys, WRITER_POINT_MAGIC, session, POINT_AAD, self)
    }

    /// Opens what `encode_written` made, with that session's keys.
    pub fn decode_written(keys: &MasterKeys, object: &str, bytes: &[u8]) -> Result<Self> {
        open_session_object(keys, POINT_AAD, object, "recovery point", bytes)
    }
}
