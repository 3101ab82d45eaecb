//! Disk images into a point: fixed 1 MiB blocks (see `crate::disk_map`).
//!
//! Each block is a hole (outside what the reader says is allocated, or all
//! zeros), reused from the previous point (only when a trusted dirty bitmap
//! says it is clean), or read and stored like any chunk, so an unchanged
//! block costs a read and a hash but no storage. Reads go in batches of
//! [`READ_BATCH`] blocks, one batch sealed on every core while the next is
//! read.
//!
//! A dirty bitmap is trusted only when it counts from the item's previous
//! point of this very disk (same name, same size), and only after a spot
//! check: a few clean blocks are read and must match the previous point. A
//! bitmap that fails is reported and the disk is read whole instead, so a
//! wrong bitmap costs time, never a wrong image.

use std::sync::atomic::Ordering;
use std::sync::Mutex;

use rand::seq::SliceRandom;

use crate::disk_map::{Block, DiskMap, Geometry, Segment};
use crate::error::{Error, Result};
use crate::pack::BlobKind;
use crate::tree::{ChunkRef, Node, NodeKind, Timestamp};

use super::packer::{Packer, SealingBatch};
use super::walker::Walked;
use super::{Parent, Progress};

/// Blocks read (and then sealed) together.
const READ_BATCH: usize = 8;
/// Clean blocks read to test a bitmap before trusting it.
const SPOT_CHECKS: usize = 8;

/// Reads a disk image.
pub trait DiskReader: Send {
    /// The byte ranges `(offset, length)` that may hold data, sorted and
    /// disjoint; everything else reads as zeros and is not read.
    fn allocated(&mut self) -> Result<Vec<(u64, u64)>>;
    /// Fills each buffer with the bytes at its offset.
    fn read(&mut self, batch: &mut [(u64, Vec<u8>)]) -> Result<()>;
}

/// Which blocks changed since a point, from a dirty bitmap.
#[derive(Debug, Clone)]
pub struct Changed {
    /// The time of the point the bitmap counts from.
    pub since: Timestamp,
    /// The dirty byte ranges `(offset, length)`, sorted.
    pub ranges: Vec<(u64, u64)>,
}

/// What the disk's node records besides its blocks.
#[derive(Debug, Clone, Default)]
pub struct DiskMeta {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: Timestamp,
}

/// One disk to back up.
pub struct DiskInput {
    /// The disk's name in the point (a plain file name).
    pub name: String,
    pub size: u64,
    pub reader: Box<dyn DiskReader>,
    /// The changed blocks, when a dirty bitmap knows them.
    pub changed: Option<Changed>,
    /// Why no bitmap is offered, when the caller knows (for the report).
    pub note: Option<String>,
    pub meta: DiskMeta,
}

/// How a disk's blocks were found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMethod {
    /// Only the blocks a trusted dirty bitmap marks were read.
    Bitmap,
    /// Every allocated block was read and compared with the previous point.
    Compared,
    /// The first point of this disk: every allocated block was read.
    Full,
}

impl ReadMethod {
    /// The method's name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            ReadMethod::Bitmap => "bitmap",
            ReadMethod::Compared => "compared",
            ReadMethod::Full => "full",
        }
    }
}

/// How one disk was backed up.
#[derive(Debug, Clone)]
pub struct DiskReport {
    pub name: String,
    pub size: u64,
    pub method: ReadMethod,
    /// Why a bitmap that was offered was not used.
    pub note: Option<String>,
    pub bytes_read: u64,
    /// Blocks whose content differs from the previous point (all data
    /// blocks for a first point).
    pub blocks_changed: u64,
    pub blocks_data: u64,
}

impl DiskReport {
    /// A report another process made (an agent's), back from its summary.
    pub fn from_summary(s: &coffer_api_types::DiskSummary) -> Option<DiskReport> {
        let method = [ReadMethod::Bitmap, ReadMethod::Compared, ReadMethod::Full]
            .into_iter()
            .find(|m| m.as_str() == s.method)?;
        Some(DiskReport {
            name: s.name.clone(),
            size: s.size,
            method,
            note: s.note.clone(),
            bytes_read: s.bytes_read,
            blocks_changed: s.blocks_changed,
            blocks_data: s.blocks_data,
        })
    }

    /// The report's line in a job's log, and whether it is a warning (a
    /// bitmap that was there but could not be used).
    pub fn log_line(&self) -> (bool, String) {
        let mut line = format!(
            "disk {}: {} of {} bytes read ({}), {} block(s) changed, {} hold data",
            self.name,
            self.bytes_read,
            self.size,
            self.method.as_str(),
            self.blocks_changed,
            self.blocks_data
        );
        if let Some(note) = &self.note {
            line.push_str(&format!(
                "; the dirty bitmap was not used: {note}, so every allocated block was read and compared"
            ));
        }
        (
            self.note.is_some() && self.method == ReadMethod::Compared,
            line,
        )
    }

    pub fn summary(&self) -> coffer_api_types::DiskSummary {
        coffer_api_types::DiskSummary {
            name: self.name.clone(),
            size: self.size,
            method: self.method.as_str().into(),
            note: self.note.clone(),
            bytes_read: self.bytes_read,
            blocks_changed: self.blocks_changed,
            blocks_data: self.blocks_data,
        }
    }
}

/// The disks of one backup.
pub(super) struct DiskRun<'a> {
    packer: &'a Packer<'a>,
    parent: Option<&'a Parent>,
    progress: &'a Progress,
    reports: Mutex<Vec<DiskReport>>,
}

impl<'a> DiskRun<'a> {
    pub(super) fn new(
        packer: &'a Packer<'a>,
        parent: Option<&'a Parent>,
        progress: &'a Progress,
    ) -> Self {
        DiskRun {
            packer,
            parent,
            progress,
            reports: Mutex::new(Vec::new()),
        }
    }

    /// Backs up every disk; returns the root tree.
    pub(super) fn back_up(&self, mut inputs: Vec<DiskInput>) -> Result<crate::ids::ChunkId> {
        inputs.sort_by(|a, b| a.name.cmp(&b.name));
        let mut nodes = Vec::new();
        for input in inputs {
            nodes.push(self.disk(input)?);
        }
        self.packer.store_tree(nodes)
    }

    /// The statistics of the point and the disks' reports.
    pub(super) fn finish(self) -> Result<(Walked, Vec<DiskReport>)> {
        let reports = self.reports.into_inner().map_err(|_| Error::Cancelled)?;
        let walked = Walked {
            errors: Vec::new(),
            dirs: 0,
            files_new: reports
                .iter()
                .filter(|r| r.method == ReadMethod::Full)
                .count() as u64,
            files_changed: reports
                .iter()
                .filter(|r| r.method != ReadMethod::Full && r.blocks_changed > 0)
                .count() as u64,
            files_unchanged: reports
                .iter()
                .filter(|r| r.method != ReadMethod::Full && r.blocks_changed == 0)
                .count() as u64,
            bytes_total: reports.iter().map(|r| r.size).sum(),
        };
        Ok((walked, reports))
    }

    /// The previous point's map of the disk `name`, when it has one of
    /// the same size.
    fn base(&self, name: &str, geometry: Geometry) -> Result<Option<DiskMap>> {
        let Some(parent) = self.parent else {
            return Ok(None);
        };
        let dest = self.packer.dest();
        let index = self.packer.index();
        let root = dest.previous_tree(index, &parent.tree)?;
        let Some(node) = root.find(name.as_bytes()) else {
            return Ok(None);
        };
        if !matches!(node.kind, NodeKind::Disk { .. }) {
            return Ok(None);
        }
        let map = DiskMap::read(
            &node.kind,
            &format!("disk {name} of the previous point"),
            |id| dest.previous_blob(index, id),
        )?;
        Ok((map.geometry == geometry).then_some(map))
    }

    fn disk(&self, mut input: DiskInput) -> Result<Node> {
        let geometry = Geometry::new(input.size);
        let allocated = Ranges::new(input.reader.allocated()?);
        // A previous point that cannot be read (a writer's lost cache) only
        // means every block is compared.
        let (base, unread) = match self.base(&input.name, geometry) {
            Ok(b) => (b, None),
            Err(e) => (
                None,
                Some(format!("the previous point's disk could not be read: {e}")),
            ),
        };
        let (mut dirty, mut note) = match (input.changed.take(), &base, self.parent) {
            (Some(_), None, _) if unread.is_some() => (None, unread),
            (None, _, _) => (None, None),
            (Some(_), None, _) => (
                None,
                Some("no previous point of this disk at this size to count changes from".into()),
            ),
            (Some(c), Some(_), Some(parent)) if c.since == parent.time => {
                (Some(Ranges::new(c.ranges)), None)
            }
            (Some(_), Some(_), _) => (
                None,
                Some("the dirty bitmap does not count from the previous point".into()),
            ),
        };
        if note.is_none() && dirty.is_none() {
            note = input.note.take();
        }
        let mut bytes_read = 0;
        if let (Some(d), Some(b)) = (&dirty, &base) {
            if let Some(block) = self.spot_check(&mut input, &allocated, d, b, &mut bytes_read)? {
                note = Some(format!(
                    "block {block} changed although the dirty bitmap says it did not"
                ));
                dirty = None;
            }
        }
        if let Some(why) = &note {
            tracing::info!(disk = %input.name, "dirty bitmap not used: {why}; reading every allocated block");
        }
        let method = match (&dirty, &base) {
            (Some(_), _) => ReadMethod::Bitmap,
            (None, Some(_)) => ReadMethod::Compared,
            (None, None) => ReadMethod::Full,
        };
        let blocks = self.blocks(
            &mut input,
            geometry,
            &allocated,
            dirty.as_ref(),
            base.as_ref(),
            &mut bytes_read,
        )?;
        let blocks_changed = match &base {
            Some(b) => blocks.iter().zip(&b.blocks).filter(|(n, o)| n != o).count() as u64,
            None => blocks.iter().filter(|b| **b != Block::Hole).count() as u64,
        };
        let blocks_data = blocks.iter().filter(|b| **b != Block::Hole).count() as u64;
        let segments = self.store_segments(&geometry, blocks)?;
        self.progress.files.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut r) = self.reports.lock() {
            r.push(DiskReport {
                name: input.name.clone(),
                size: input.size,
                method,
                note,
                bytes_read,
                blocks_changed,
                blocks_data,
            });
        }
        Ok(disk_node(&input, &geometry, segments))
    }

    /// Reads a few clean data blocks; the first whose content differs from
    /// the previous point, if any.
    fn spot_check(
        &self,
        input: &mut DiskInput,
        allocated: &Ranges,
        dirty: &Ranges,
        base: &DiskMap,
        bytes_read: &mut u64,
    ) -> Result<Option<u64>> {
        let g = base.geometry;
        let mut clean: Vec<u64> = (0..g.blocks())
            .filter(|&b| {
                let (at, len) = (g.block_offset(b), u64::from(g.block_len(b)));
                matches!(base.blocks[b as usize], Block::Data(_))
                    && allocated.meets(at, len)
                    && !dirty.meets(at, len)
            })
            .collect();
        clean.shuffle(&mut rand::thread_rng());
        clean.truncate(SPOT_CHECKS);
        let mut batch: Vec<(u64, Vec<u8>)> = clean
            .iter()
            .map(|&b| (g.block_offset(b), vec![0u8; g.block_len(b) as usize]))
            .collect();
        input.reader.read(&mut batch)?;
        let keys = self.packer.dest().keys();
        for (&b, (_, data)) in clean.iter().zip(&batch) {
            *bytes_read += data.len() as u64;
            self.progress
                .bytes_read
                .fetch_add(data.len() as u64, Ordering::Relaxed);
            let now = if is_zero(data) {
                Block::Hole
            } else {
                Block::Data(keys.chunk_id(data))
            };
            if now != base.blocks[b as usize] {
                return Ok(Some(b));
            }
        }
        Ok(None)
    }

    /// Every block of the disk: holes, blocks reused, blocks read and stored.
    fn blocks(
        &self,
        input: &mut DiskInput,
        g: Geometry,
        allocated: &Ranges,
        dirty: Option<&Ranges>,
        base: Option<&DiskMap>,
        bytes_read: &mut u64,
    ) -> Result<Vec<Block>> {
        let mut blocks = vec![Block::Hole; g.blocks() as usize];
        let mut to_read: Vec<u64> = Vec::new();
        for b in 0..g.blocks() {
            let (at, len) = (g.block_offset(b), u64::from(g.block_len(b)));
            if !allocated.meets(at, len) {
                continue;
            }
            match (dirty, base) {
                (Some(d), Some(base)) if !d.meets(at, len) => {
                    blocks[b as usize] = base.blocks[b as usize]
                }
                _ => to_read.push(b),
            }
        }
        let mut sealing: Option<(Vec<u64>, SealingBatch)> = None;
        for group in to_read.chunks(READ_BATCH) {
            self.packer.check_failed()?;
            let mut batch: Vec<(u64, Vec<u8>)> = group
                .iter()
                .map(|&b| (g.block_offset(b), vec![0u8; g.block_len(b) as usize]))
                .collect();
            input.reader.read(&mut batch)?;
            let read: u64 = batch.iter().map(|(_, d)| d.len() as u64).sum();
            *bytes_read += read;
            self.progress.bytes_read.fetch_add(read, Ordering::Relaxed);
            // Blocks of zeros are holes; the rest go to the sealing threads
            // while the next batch is read.
            let mut numbers = Vec::new();
            let mut data = Vec::new();
            for (&b, (_, bytes)) in group.iter().zip(batch) {
                if !is_zero(&bytes) {
                    numbers.push(b);
                    data.push(bytes);
                }
            }
            if let Some((done, previous)) = sealing.take() {
                collect(&mut blocks, done, previous)?;
            }
            sealing = Some((numbers, self.packer.seal_batch(&mut data)?));
        }
        if let Some((done, last)) = sealing.take() {
            collect(&mut blocks, done, last)?;
        }
        Ok(blocks)
    }

    /// Stores the block list as segments (tree blobs); their ids.
    fn store_segments(&self, g: &Geometry, blocks: Vec<Block>) -> Result<Vec<crate::ids::ChunkId>> {
        let mut ids = Vec::with_capacity(g.segments() as usize);
        for piece in blocks.chunks(g.segment_blocks as usize) {
            let plain = Segment {
                blocks: piece.to_vec(),
            }
            .encode();
            let id = self.packer.store(BlobKind::Tree, &plain)?.id;
            self.packer.dest().keep_tree(id, &plain);
            ids.push(id);
        }
        Ok(ids)
    }
}

fn collect(blocks: &mut [Block], numbers: Vec<u64>, sealing: SealingBatch) -> Result<()> {
    let mut refs: Vec<ChunkRef> = Vec::with_capacity(numbers.len());
    sealing.collect(&mut refs)?;
    for (b, r) in numbers.into_iter().zip(refs) {
        blocks[b as usize] = Block::Data(r.id);
    }
    Ok(())
}

fn disk_node(input: &DiskInput, g: &Geometry, segments: Vec<crate::ids::ChunkId>) -> Node {
    Node {
        name: input.name.as_bytes().to_vec(),
        kind: NodeKind::Disk {
            size: g.size,
            block_size: g.block_size,
            segment_blocks: g.segment_blocks,
            segments,
        },
        mode: input.meta.mode & 0o7777,
        uid: input.meta.uid,
        gid: input.meta.gid,
        user: None,
        group: None,
        mtime: input.meta.mtime,
        ctime: input.meta.mtime,
        inode: 0,
        device: 0,
        links: 1,
        xattrs: Vec::new(),
        error: None,
    }
}

pub(crate) fn is_zero(data: &[u8]) -> bool {
    // OR-folding fixed pieces lets the compiler use vector instructions.
    let mut pieces = data.chunks_exact(64);
    for piece in &mut pieces {
        if piece.iter().fold(0u8, |acc, b| acc | b) != 0 {
            return false;
        }
    }
    pieces.remainder().iter().all(|b| *b == 0)
}

/// Sorted, disjoint byte ranges, asked in increasing order.
struct Ranges {
    ranges: Vec<(u64, u64)>,
}

impl Ranges {
    /// Any ranges; overlapping and touching ones are merged.
    fn new(mut ranges: Vec<(u64, u64)>) -> Ranges {
        ranges.retain(|r| r.1 > 0);
        ranges.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
        for (o, l) in ranges {
            match merged.last_mut() {
                Some((mo, ml)) if o <= *mo + *ml => *ml = (*ml).max(o + l - *mo),
                _ => merged.push((o, l)),
            }
        }
        Ranges { ranges: merged }
    }

    /// Whether any range meets `at..at + len`.
    fn meets(&self, at: u64, len: u64) -> bool {
        let end = at + len;
        // The first range that ends after `at`.
        let i = self.ranges.partition_point(|&(o, l)| o + l <= at);
        self.ranges.get(i).is_some_and(|&(o, _)| o < end)
    }
}
