//! Trees: one encrypted blob per directory.
//!
//! A tree blob is the postcard encoding of a [`Tree`]: the directory's entries
//! sorted by name bytes, each with its full metadata and either its content
//! (a file's data extents and chunk ids), its target (a symlink), its device
//! number, or the id of its own tree (a subdirectory). Names and link targets
//! are raw bytes, so names that are not UTF-8 survive. Trees go to tree packs
//! and are deduplicated like data: an unchanged directory costs nothing.

use serde::{Deserialize, Serialize};

use crate::ids::ChunkId;

/// Seconds and nanoseconds since the Unix epoch; negative before 1970, and
/// 64-bit, so no 2038 limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
pub struct Timestamp {
    pub secs: i64,
    pub nanos: u32,
}

/// A reference to one chunk of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    pub id: ChunkId,
    pub len: u32,
}

/// A run of data at `offset`; the gaps between extents are holes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extent {
    pub offset: u64,
    pub chunks: Vec<ChunkRef>,
}

impl Extent {
    pub fn len(&self) -> u64 {
        self.chunks.iter().map(|c| c.len as u64).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }
}

/// What kind of file system object a node is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeKind {
    File {
        size: u64,
        extents: Vec<Extent>,
    },
    Dir {
        tree: ChunkId,
    },
    Symlink {
        target: Vec<u8>,
    },
    Fifo,
    Socket,
    CharDevice {
        rdev: u64,
    },
    BlockDevice {
        rdev: u64,
    },
    /// A disk image (format 6): fixed-size blocks listed by segments, each
    /// a tree blob covering `segment_blocks` blocks; see `crate::disk_map`.
    Disk {
        size: u64,
        block_size: u32,
        segment_blocks: u32,
        segments: Vec<ChunkId>,
    },
}

/// One directory entry with everything needed to recreate it exactly.
/// Access times are not kept: every backup's reads would change them, and
/// with them every tree; restore sets atime to mtime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub name: Vec<u8>,
    pub kind: NodeKind,
    /// Permission bits including setuid, setgid and sticky (`st_mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub user: Option<String>,
    pub group: Option<String>,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
    pub inode: u64,
    pub device: u64,
    pub links: u64,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// Set when the entry could not be read completely; its content is then
    /// absent and restore reports it instead of writing it.
    pub error: Option<String>,
}

/// A directory's entries, sorted by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

impl Tree {
    pub fn encode(&self) -> Vec<u8> {
        // Serializing plain owned data into a Vec cannot fail.
        postcard::to_stdvec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        postcard::from_bytes(bytes).ok()
    }

    pub fn find(&self, name: &[u8]) -> Option<&Node> {
        self.nodes
            .binary_search_by(|n| n.name.as_slice().cmp(name))
            .ok()
            .map(|i| &self.nodes[i])
    }
}
