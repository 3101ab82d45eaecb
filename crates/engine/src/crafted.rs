//! Hand-made recovery points, for tests that play someone who can write
//! to the vault: trees with any names (`..`, `/`, duplicates, out of
//! order), symlinks where directories follow, streams with hostile names.
//! The blobs are sealed and indexed like a backup's, so every reader
//! treats them as real data. Built only for tests (the `testing` feature);
//! nothing here is needed to read or write a vault.

use crate::ids::ChunkId;
use crate::index::PackRecord;
use crate::pack::{pack_path, seal_blob, BlobKind, PackBuilder};
use crate::point::{Consistency, Manifest, Stats};
use crate::tree::{ChunkRef, Extent, Node, NodeKind, Timestamp, Tree};
use crate::vault::{Point, Vault};
use crate::Result;

/// Collects the blobs of one hand-made point.
pub struct Crafted<'a> {
    vault: &'a Vault,
    data: PackBuilder,
    trees: PackBuilder,
}

/// A node with plain metadata (mode 0644, the caller's ids, fixed times).
pub fn node(name: &[u8], kind: NodeKind) -> Node {
    let mode = match kind {
        NodeKind::Dir { .. } => 0o755,
        _ => 0o644,
    };
    Node {
        name: name.to_vec(),
        kind,
        mode,
        uid: nix::unistd::getuid().as_raw(),
        gid: nix::unistd::getgid().as_raw(),
        user: None,
        group: None,
        mtime: Timestamp {
            secs: 1_700_000_000,
            nanos: 0,
        },
        ctime: Timestamp::default(),
        inode: 0,
        device: 0,
        links: 1,
        xattrs: Vec::new(),
        error: None,
    }
}

impl<'a> Crafted<'a> {
    pub fn new(vault: &'a Vault) -> Self {
        Crafted {
            vault,
            data: PackBuilder::new(BlobKind::Data),
            trees: PackBuilder::new(BlobKind::Tree),
        }
    }

    /// A regular file holding `content` in one chunk.
    pub fn file(&mut self, name: &[u8], content: &[u8]) -> Node {
        let id = self.vault.keys.chunk_id(content);
        self.data
            .add(seal_blob(&self.vault.keys, id, content, None));
        let extents = if content.is_empty() {
            Vec::new()
        } else {
            vec![Extent {
                offset: 0,
                chunks: vec![ChunkRef {
                    id,
                    len: content.len() as u32,
                }],
            }]
        };
        node(
            name,
            NodeKind::File {
                size: content.len() as u64,
                extents,
            },
        )
    }

    pub fn symlink(&mut self, name: &[u8], target: &[u8]) -> Node {
        node(
            name,
            NodeKind::Symlink {
                target: target.to_vec(),
            },
        )
    }

    /// A directory holding `nodes` in the order given (a real backup sorts
    /// them; a hostile writer need not).
    pub fn dir(&mut self, name: &[u8], nodes: Vec<Node>) -> Node {
        let tree = self.tree(nodes);
        node(name, NodeKind::Dir { tree })
    }

    fn tree(&mut self, nodes: Vec<Node>) -> ChunkId {
        let bytes = Tree { nodes }.encode();
        let id = self.vault.keys.chunk_id(&bytes);
        self.trees
            .add(seal_blob(&self.vault.keys, id, &bytes, None));
        id
    }

    /// Stores the packs, an index file and the manifest of a point of
    /// `item` whose root directory holds `root`, with `paths` as its
    /// backed-up paths.
    pub fn commit(
        mut self,
        item: &str,
        paths: &[&[u8]],
        tags: &[&str],
        root: Vec<Node>,
    ) -> Result<Point> {
        let tree = self.tree(root);
        let mut records = Vec::new();
        for builder in [self.data, self.trees] {
            if builder.is_empty() {
                continue;
            }
            let pack = builder.finish(&self.vault.keys);
            self.vault.storage.put(&pack_path(&pack.id), pack.bytes)?;
            records.push(PackRecord {
                id: pack.id,
                kind: pack.kind,
                entries: pack.entries,
                session: None,
            });
        }
        self.vault.write_index(&records)?;
        let manifest = Manifest {
            time: Timestamp {
                secs: jiff::Timestamp::now().as_second(),
                nanos: 0,
            },
            host: "crafted".into(),
            item: item.into(),
            paths: paths.iter().map(|p| p.to_vec()).collect(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            parent: None,
            tree,
            consistency: Consistency::CrashConsistent,
            stats: Stats::default(),
            errors: Vec::new(),
            software: "crafted".into(),
        };
        let id = self.vault.write_point(&manifest, None)?;
        self.vault.read_point(&id)
    }
}
