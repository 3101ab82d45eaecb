//! The objects a write-only writer stores (FORMAT.md §5a): the same
//! objects a key holder stores, each with its own magic and the session
//! header in front, sealed under the session's keys. Index files are the
//! exception: the writer reads its own back to deduplicate, so they are
//! sealed under its index key and list each pack's session header
//! (`crate::index::encode_writer_index`).

use crate::credential::session::{SessionHeader, SESSION_HEADER_LEN};
use crate::crypto::MasterKeys;
use crate::error::{Error, Result};
use crate::ids::ObjectId;

pub const WRITER_PACK_MAGIC: &[u8; 8] = b"COFFERWP";
pub const WRITER_POINT_MAGIC: &[u8; 8] = b"COFFERWT";
pub const WRITER_INDEX_MAGIC: &[u8; 8] = b"COFFERWX";
pub const WRITER_MARKER_MAGIC: &[u8; 8] = b"COFFERWL";
/// Where a writer's blobs start in its packs: magic and session header.
pub const WRITER_PACK_PREFIX_LEN: usize = 8 + SESSION_HEADER_LEN;

/// `magic || session header || seal(keys, aad, postcard(value))`.
pub(crate) fn seal_session_object<T: serde::Serialize>(
    keys: &MasterKeys,
    magic: &[u8; 8],
    session: &SessionHeader,
    aad: &[u8],
    value: &T,
) -> Vec<u8> {
    let plain = postcard::to_stdvec(value).unwrap_or_default();
    let mut out = magic.to_vec();
    out.extend_from_slice(&session.0);
    out.extend_from_slice(&keys.seal(aad, &plain));
    out
}

/// The session header of a session object with `magic`, if `bytes` is one.
pub(crate) fn session_of(
    magic: &[u8; 8],
    object: &str,
    bytes: &[u8],
) -> Result<Option<SessionHeader>> {
    if !bytes.starts_with(magic) {
        return Ok(None);
    }
    SessionHeader::read(object, &bytes[8..]).map(Some)
}

/// Opens what `seal_session_object` made, with the session's keys.
pub(crate) fn open_session_object<T: serde::de::DeserializeOwned>(
    keys: &MasterKeys,
    aad: &[u8],
    object: &str,
    what: &str,
    bytes: &[u8],
) -> Result<T> {
    let sealed = bytes
        .get(8 + SESSION_HEADER_LEN..)
        .ok_or_else(|| Error::corrupt(object, format!("too short for a {what}")))?;
    let plain = keys.open(object, aad, sealed)?;
    postcard::from_bytes(&plain)
        .map_err(|e| Error::corrupt(object, format!("undecodable {what}: {e}")))
}

/// A pack's first bytes for a session.
pub fn pack_prefix(session: &SessionHeader) -> Vec<u8> {
    [WRITER_PACK_MAGIC.as_slice(), &session.0].concat()
}

/// Where a writer's index file is stored: under its slot's folder, so the
/// writer lists its own and nobody else's.
pub fn index_path(slot_id: &str, id: &ObjectId) -> String {
    format!("index/{slot_id}/{}", id.to_hex())
}

/// The folder of a writer's index files.
pub fn index_folder(slot_id: &str) -> String {
    format!("index/{slot_id}/")
}
