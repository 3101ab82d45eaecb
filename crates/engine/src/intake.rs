//! What a key holder accepts from a write-only writer it does not trust:
//! the service's side of an agent's uploads. An agent reaches its vault
//! only through the service, which holds the storage credentials and asks
//! here, for every request, whether the writer of slot `slot_id` may read
//! or write that object.
//!
//! A writer may read the header, its own slot (and whether it was
//! revoked) and its own index files, and ask whether one of its own points
//! still exists. It may add packs, its own index files and points, each
//! under the name that is the hash of its bytes, and write its own
//! activity markers. Everything it adds is opened with its session's keys
//! where that is possible, so a point must really be this writer's and
//! name an item the service lets it write; a pack is checked to begin
//! with this writer's magic and session (its blobs are opened by whoever
//! reads them). Nothing it sends can replace an object: names are hashes,
//! and markers are checked to be its own.

use crate::credential::objects::{
    session_of, WRITER_INDEX_MAGIC, WRITER_MARKER_MAGIC, WRITER_PACK_MAGIC, WRITER_POINT_MAGIC,
};
use crate::credential::session::SessionHeader;
use crate::credential::slot::REVOKED_SUFFIX;
use crate::error::{Error, Result};
use crate::ids::ObjectId;
use crate::locks::{read_marker, Activity, STALE_SECS};
use crate::pack::pack_path;
use crate::point::{point_path, Manifest};
use crate::vault::{now_secs, Vault};

/// A marker dated further than this from the service's clock is refused:
/// one from the future would hold garbage collection off.
const MARKER_CLOCK_SLACK_SECS: i64 = 10 * 60;

/// An object a writer asks to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readable {
    Header,
    OwnSlot,
    OwnRevocation,
    OwnIndexFolder,
    OwnIndexFile,
    /// Only whether it exists, and only when it is the writer's own.
    Point(ObjectId),
}

/// An object a writer asks to add.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addable {
    Pack(ObjectId),
    IndexFile(ObjectId),
    Point(ObjectId),
    Marker,
}

/// What a writer may read, by path; anything else is refused.
pub fn readable(slot_id: &str, path: &str) -> Result<Readable> {
    let slot_path = format!("keys/{slot_id}");
    let folder = format!("index/{slot_id}/");
    if path == "vault" {
        Ok(Readable::Header)
    } else if path == slot_path {
        Ok(Readable::OwnSlot)
    } else if path == format!("{slot_path}{REVOKED_SUFFIX}") {
        Ok(Readable::OwnRevocation)
    } else if path == folder {
        Ok(Readable::OwnIndexFolder)
    } else if path
        .strip_prefix(&folder)
        .and_then(ObjectId::parse)
        .is_some()
    {
        Ok(Readable::OwnIndexFile)
    } else if let Some(id) = path.strip_prefix("points/").and_then(ObjectId::parse) {
        Ok(Readable::Point(id))
    } else {
        Err(refused(path, "read"))
    }
}

/// What a writer may add, by path; anything else is refused.
pub fn addable(slot_id: &str, path: &str) -> Result<Addable> {
    if let Some(rest) = path.strip_prefix("packs/") {
        if let Some((fan, hex)) = rest.split_once('/') {
            if let Some(id) = ObjectId::parse(hex) {
                if pack_path(&id) == path && fan.len() == 2 {
                    return Ok(Addable::Pack(id));
                }
            }
        }
    }
    if let Some(id) = path
        .strip_prefix(&format!("index/{slot_id}/"))
        .and_then(ObjectId::parse)
    {
        return Ok(Addable::IndexFile(id));
    }
    if let Some(id) = path.strip_prefix("points/").and_then(ObjectId::parse) {
        return Ok(Addable::Point(id));
    }
    if let Some(random) = path.strip_prefix("locks/backup-") {
        if random.len() == 16 && random.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(Addable::Marker);
        }
    }
    Err(refused(path, "write"))
}

fn refused(path: &str, verb: &str) -> Error {
    Error::WriteOnly {
        action: format!(
            "{verb} {path:?}: an agent may read only its own slot and index files, and add packs, its own index files, points and activity markers"
        ),
    }
}

/// The session named at the start of a writer's object with `magic`,
/// checked to be `slot_id`'s.
fn own_session(slot_id: &str, magic: &[u8; 8], path: &str, bytes: &[u8]) -> Result<SessionHeader> {
    match session_of(magic, path, bytes)? {
        Some(session) if session.slot_id() == slot_id => Ok(session),
        Some(_) => Err(Error::WriteOnly {
            action: format!("store {path}: it is sealed under another writer's session"),
        }),
        None => Err(Error::corrupt(
            path,
            "not an object of a write-only writer (bad magic)",
        )),
    }
}

impl Vault {
    /// Checks the first bytes of a pack a writer sends (at least the magic
    /// and the session header): the pack must be this writer's.
    pub fn accept_pack_start(&self, slot_id: &str, path: &str, start: &[u8]) -> Result<()> {
        own_session(slot_id, WRITER_PACK_MAGIC, path, start).map(drop)
    }

    /// How many first bytes of a pack [`Vault::accept_pack_start`] needs.
    pub const PACK_START_LEN: usize = crate::credential::objects::WRITER_PACK_PREFIX_LEN;

    /// Opens an index file a writer sends with its index key.
    pub fn accept_index_file(&self, slot_id: &str, path: &str, bytes: &[u8]) -> Result<()> {
        if !bytes.starts_with(WRITER_INDEX_MAGIC) {
            return Err(Error::corrupt(
                path,
                "not a writer's index file (bad magic)",
            ));
        }
        let slot = slot_bytes(slot_id)?;
        let secret = self.writer_secret(slot)?;
        crate::index::decode_writer_index(&secret, &self.header.vault_id, &slot, path, bytes)
            .map(drop)
    }

    /// Opens a point a writer sends; the caller judges its item.
    pub fn accept_point(&self, slot_id: &str, path: &str, bytes: &[u8]) -> Result<Manifest> {
        let session = own_session(slot_id, WRITER_POINT_MAGIC, path, bytes)?;
        let keys = self.session_keys(&session)?;
        Manifest::decode_written(&keys, path, bytes)
    }

    /// Opens a marker a writer sends: its own, a backup's, dated now. When
    /// one of that name exists it must be this writer's too.
    pub fn accept_marker(&self, slot_id: &str, path: &str, bytes: &[u8]) -> Result<()> {
        own_session(slot_id, WRITER_MARKER_MAGIC, path, bytes)?;
        let marker = read_marker(self, path, bytes).1?;
        let now = now_secs();
        let expired_end = marker.refreshed + STALE_SECS;
        let dated_now = (marker.refreshed - now).abs() <= MARKER_CLOCK_SLACK_SECS
            || (expired_end - now).abs() <= MARKER_CLOCK_SLACK_SECS;
        if marker.activity != Activity::Backup
            || !dated_now
            || marker.started > now + MARKER_CLOCK_SLACK_SECS
        {
            return Err(Error::WriteOnly {
                action: format!(
                    "store the marker {path}: it is not a backup's marker dated now (check the agent's clock)"
                ),
            });
        }
        match self.storage.get(path) {
            Ok(existing) => match read_marker(self, path, &existing).0 {
                Some(owner) if owner == slot_id => Ok(()),
                _ => Err(Error::WriteOnly {
                    action: format!("replace {path}: it is another process's marker"),
                }),
            },
            Err(Error::Missing { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Whether the point `id` exists and was written by `slot_id`; another
    /// writer's point, or a key holder's, reads as absent.
    pub fn own_point_exists(&self, slot_id: &str, id: &ObjectId) -> Result<bool> {
        let path = point_path(id);
        match self.storage.get(&path) {
            Ok(bytes) => Ok(matches!(
                session_of(WRITER_POINT_MAGIC, &path, &bytes),
                Ok(Some(s)) if s.slot_id() == slot_id
            )),
            Err(Error::Missing { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

fn slot_bytes(slot_id: &str) -> Result<[u8; 8]> {
    let mut slot = [0u8; 8];
    hex::decode_to_slice(slot_id, &mut slot)
        .map_err(|_| Error::Invalid(format!("{slot_id:?} is not a slot id")))?;
    Ok(slot)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SLOT: &str = "0011223344556677";

    #[test]
    fn a_writer_reads_only_its_own_objects() {
        let id = "ab".repeat(32);
        assert_eq!(readable(SLOT, "vault").ok(), Some(Readable::Header));
        assert_eq!(
            readable(SLOT, &format!("keys/{SLOT}")).ok(),
            Some(Readable::OwnSlot)
        );
        assert!(readable(SLOT, &format!("index/{SLOT}/{id}")).is_ok());
        for path in [
            "keys/8899aabbccddeeff".to_string(),
            format!("index/8899aabbccddeeff/{id}"),
            format!("index/{id}"),
            "index/".into(),
            "journal/".into(),
            "locks/".into(),
            format!("packs/ab/{id}"),
            format!("index/{SLOT}/../{id}"),
            "points/".into(),
        ] {
            assert!(readable(SLOT, &path).is_err(), "{path} readable");
        }
    }

    #[test]
    fn a_writer_adds_only_content_named_objects_and_markers() {
        let id = "ab".repeat(32);
        assert!(matches!(
            addable(SLOT, &format!("packs/ab/{id}")),
            Ok(Addable::Pack(_))
        ));
        assert!(matches!(
            addable(SLOT, &format!("points/{id}")),
            Ok(Addable::Point(_))
        ));
        assert!(matches!(
            addable(SLOT, "locks/backup-0123456789abcdef"),
            Ok(Addable::Marker)
        ));
        for path in [
            format!("packs/cd/{id}"),
            format!("packs/{id}"),
            format!("index/{id}"),
            format!("index/8899aabbccddeeff/{id}"),
            "vault".into(),
            format!("keys/{SLOT}"),
            format!("keys/{SLOT}.revoked"),
            "journal/1-2".into(),
            "locks/prune-0123456789abcdef".into(),
            "locks/backup-../../vault".into(),
            format!("dicts/{id}"),
        ] {
            assert!(addable(SLOT, &path).is_err(), "{path} addable");
        }
    }
}
