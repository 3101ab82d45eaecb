//! How a disk image is recorded in a point (format 6).
//!
//! A disk is cut into fixed-size blocks (1 MiB; ARCHITECTURE.md says why),
//! not content-defined chunks: a disk's changes arrive as block numbers
//! (a dirty bitmap), a block's place never moves, and instant restore must
//! find the block under any offset without reading anything else. Each
//! block is a hole (never stored: unallocated or all zeros) or a data chunk
//! named, sealed and deduplicated like any file chunk. The list of blocks
//! is cut into segments of `segment_blocks` blocks (1 GiB of disk), each a
//! tree blob, and the disk's node in the point's root tree lists the
//! segments: an unchanged gigabyte costs nothing in the next point, and a
//! reader of one block reads one segment.
//!
//! Everything here is read back from storage, so a node's geometry and its
//! segments' lengths are checked before use: a hostile point can make a
//! restore fail, never write outside the disk or allocate without bound.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids::ChunkId;
use crate::tree::{ChunkRef, Extent, NodeKind};

/// The block size Coffer writes.
pub const BLOCK_SIZE: u32 = 1 << 20;
/// Blocks per segment Coffer writes: 1 GiB of disk per segment at 1 MiB.
pub const SEGMENT_BLOCKS: u32 = 1024;
const MIN_BLOCK: u32 = 4096;
const MAX_BLOCK: u32 = 64 << 20;
const MAX_SEGMENT_BLOCKS: u32 = 1 << 16;

/// One block of a disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Block {
    /// Reads as zeros; nothing stored.
    Hole,
    /// The chunk holding the block's bytes.
    Data(ChunkId),
}

/// One segment's blocks, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Segment {
    pub blocks: Vec<Block>,
}

impl Segment {
    pub fn encode(&self) -> Vec<u8> {
        // Serializing plain owned data into a Vec cannot fail.
        postcard::to_stdvec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        postcard::from_bytes(bytes).ok()
    }
}

/// A disk's size and how it is cut, checked against the format's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub size: u64,
    pub block_size: u32,
    pub segment_blocks: u32,
}

impl Geometry {
    /// The geometry Coffer writes for a disk of `size` bytes.
    pub fn new(size: u64) -> Geometry {
        Geometry {
            size,
            block_size: BLOCK_SIZE,
            segment_blocks: SEGMENT_BLOCKS,
        }
    }

    /// The geometry of a disk node, refused when outside the format's limits.
    pub fn of(kind: &NodeKind, what: &str) -> Result<(Geometry, Vec<ChunkId>)> {
        let NodeKind::Disk {
            size,
            block_size,
            segment_blocks,
            segments,
        } = kind
        else {
            return Err(Error::Invalid(format!("{what} is not a disk")));
        };
        let g = Geometry {
            size: *size,
            block_size: *block_size,
            segment_blocks: *segment_blocks,
        };
        let bad = |reason: &str| Error::corrupt(what, reason);
        if !block_size.is_power_of_two() || !(MIN_BLOCK..=MAX_BLOCK).contains(block_size) {
            return Err(bad(
                "block size outside 4 KiB to 64 MiB or not a power of two",
            ));
        }
        if !(1..=MAX_SEGMENT_BLOCKS).contains(segment_blocks) {
            return Err(bad("segment length outside 1 to 65536 blocks"));
        }
        if g.segments() != segments.len() as u64 {
            return Err(bad("the number of segments does not match the disk's size"));
        }
        Ok((g, segments.clone()))
    }

    pub fn blocks(&self) -> u64 {
        self.size.div_ceil(u64::from(self.block_size))
    }

    pub fn segments(&self) -> u64 {
        self.blocks().div_ceil(u64::from(self.segment_blocks))
    }

    /// The number of blocks segment `s` covers.
    pub fn segment_len(&self, s: u64) -> usize {
        let first = s * u64::from(self.segment_blocks);
        (self.blocks() - first).min(u64::from(self.segment_blocks)) as usize
    }

    pub fn block_offset(&self, block: u64) -> u64 {
        block * u64::from(self.block_size)
    }

    /// Block `block`'s length: the block size, less at the end of the disk.
    pub fn block_len(&self, block: u64) -> u32 {
        (self.size - self.block_offset(block)).min(u64::from(self.block_size)) as u32
    }
}

/// A disk's whole block list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskMap {
    pub geometry: Geometry,
    pub blocks: Vec<Block>,
}

impl DiskMap {
    /// Reads a disk node's segments with `read_blob` (a segment's
    /// plaintext, authenticated), checking each against the geometry.
    pub fn read(
        kind: &NodeKind,
        what: &str,
        mut read_blob: impl FnMut(&ChunkId) -> Result<Vec<u8>>,
    ) -> Result<DiskMap> {
        let (geometry, segments) = Geometry::of(kind, what)?;
        // The size comes from storage: reserve no more than the segments
        // already listed can hold, so a node claiming an absurd size
        // cannot ask for the memory before its segments are read.
        let listed = segments.len() as u64 * u64::from(geometry.segment_blocks);
        let mut blocks = Vec::with_capacity(geometry.blocks().min(listed).min(1 << 20) as usize);
        for (s, id) in segments.iter().enumerate() {
            let segment = Segment::decode(&read_blob(id)?).ok_or_else(|| {
                Error::corrupt(
                    format!("{what}: segment {}", &id.to_hex()[..16]),
                    "undecodable disk segment",
                )
            })?;
            if segment.blocks.len() != geometry.segment_len(s as u64) {
                return Err(Error::corrupt(
                    format!("{what}: segment {}", &id.to_hex()[..16]),
                    "the segment lists the wrong number of blocks",
                ));
            }
            blocks.extend(segment.blocks);
        }
        Ok(DiskMap { geometry, blocks })
    }

    /// The disk as a sparse file's extents: runs of data blocks, holes
    /// between them. Restore, download and check read a disk this way.
    pub fn extents(&self) -> Vec<Extent> {
        let mut out: Vec<Extent> = Vec::new();
        let mut run_open = false;
        for (i, block) in self.blocks.iter().enumerate() {
            let i = i as u64;
            match block {
                Block::Hole => run_open = false,
                Block::Data(id) => {
                    let chunk = ChunkRef {
                        id: *id,
                        len: self.geometry.block_len(i),
                    };
                    match out.last_mut() {
                        Some(e) if run_open => e.chunks.push(chunk),
                        _ => out.push(Extent {
                            offset: self.geometry.block_offset(i),
                            chunks: vec![chunk],
                        }),
                    }
                    run_open = true;
                }
            }
        }
        out
    }

    /// The chunks the disk's data blocks use.
    pub fn chunks(&self) -> impl Iterator<Item = &ChunkId> {
        self.blocks.iter().filter_map(|b| match b {
            Block::Data(id) => Some(id),
            Block::Hole => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk(size: u64, block_size: u32, segment_blocks: u32, segments: usize) -> NodeKind {
        NodeKind::Disk {
            size,
            block_size,
            segment_blocks,
            segments: vec![ChunkId([1; 32]); segments],
        }
    }

    #[test]
    fn geometry_counts_partial_blocks_and_segments() {
        let (g, _) = Geometry::of(&disk(10 * 4096 + 1, 4096, 4, 3), "d").unwrap();
        assert_eq!(g.blocks(), 11);
        assert_eq!(g.segments(), 3);
        assert_eq!(g.segment_len(2), 3);
        assert_eq!(g.block_len(10), 1);
        for bad in [
            disk(4096, 4095, 4, 1),
            disk(4096, 2048, 4, 1),
            disk(4096, 4096, 0, 1),
            disk(4096, 4096, 4, 2),
            disk(u64::MAX, 4096, 1, 0),
        ] {
            assert!(Geometry::of(&bad, "d").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_map_reads_back_as_extents_with_holes_between_runs() {
        let a = ChunkId([0xa; 32]);
        let b = ChunkId([0xb; 32]);
        let seg0 = Segment {
            blocks: vec![Block::Data(a), Block::Data(b), Block::Hole, Block::Data(a)],
        };
        let seg1 = Segment {
            blocks: vec![Block::Data(b)],
        };
        let kind = NodeKind::Disk {
            size: 4 * 4096 + 100,
            block_size: 4096,
            segment_blocks: 4,
            segments: vec![ChunkId([0; 32]), ChunkId([1; 32])],
        };
        let map = DiskMap::read(&kind, "d", |id| {
            Ok(if id.0[0] == 0 { &seg0 } else { &seg1 }.encode())
        })
        .unwrap();
        let extents = map.extents();
        assert_eq!(extents.len(), 2);
        assert_eq!((extents[0].offset, extents[0].len()), (0, 8192));
        assert_eq!(
            (extents[1].offset, extents[1].len()),
            (3 * 4096, 4096 + 100)
        );
        assert_eq!(map.chunks().count(), 4);

        // A segment of the wrong length is damage, not a shorter disk.
        let short = DiskMap::read(&kind, "d", |_| Ok(seg1.encode()));
        assert!(short.is_err());
    }
}
