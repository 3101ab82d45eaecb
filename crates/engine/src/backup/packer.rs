//! The packer: blobs in, packs out. It deduplicates each chunk against the
//! vault's index and this run, samples small data chunks for a compression
//! dictionary, seals blobs, gathers data blobs in per-thread runs (see
//! [`RUN_BYTES`]) and tree blobs in their own pack, and hands finished packs
//! to the uploader threads ([`upload_loop`]). The sealing threads
//! ([`seal_loop`]) store the chunks of large files on every core.
//!
//! It knows nothing of files: the walker gives it bytes and gets chunk ids.
//! Its first failure (an upload, a cancel) stops the whole run.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crossbeam_channel::{Receiver, Sender};

use crate::dict::{self, Offer, Sampler, Samples, DICT_MAX_CHUNK};
use crate::error::{Error, Result};
use crate::ids::ChunkId;
use crate::index::{Index, PackRecord};
use crate::pack::{
    compresses, pack_path, seal_blob, BlobKind, FinishedPack, PackBuilder, SealedBlob,
    DATA_PACK_TARGET, TREE_PACK_TARGET,
};
use crate::tree::{ChunkRef, Node, Tree};

use super::{Destination, Progress};

/// Each worker thread gathers sealed data blobs into a run of this size
/// before they go into the shared pack. A pack is then a few long runs, each
/// from one part of the tree, instead of blobs of distant directories
/// interleaved one by one; restore, which goes through the tree in order,
/// then reads a run and skips the rest of the pack (see `restore::RANGE_GAP`).
pub const RUN_BYTES: usize = 1 << 20;
pub(super) const UPLOAD_THREADS: usize = 2;
/// Pack buffers kept for reuse: one per uploader plus the one being filled
/// covers the steady state.
const SPARE_PACKS: usize = 1;

/// A clone of a channel's sender, or `Cancelled` once the run has closed it.
fn open_sender<T>(slot: &Mutex<Option<Sender<T>>>) -> Result<Sender<T>> {
    slot.lock()
        .ok()
        .and_then(|s| s.clone())
        .ok_or(Error::Cancelled)
}

/// Sealed data blobs from one thread, waiting to go into a pack together.
#[derive(Default)]
struct Run {
    blobs: Vec<SealedBlob>,
    bytes: usize,
}

/// One chunk of a large file, to be stored by a sealing thread.
pub(super) struct SealJob {
    position: usize,
    data: Vec<u8>,
    reply: Sender<(usize, Result<ChunkRef>)>,
}

pub(super) struct Packer<'a> {
    dest: &'a dyn Destination,
    index: Index,
    pending: Vec<Mutex<HashSet<ChunkId>>>,
    data_pack: Mutex<PackBuilder>,
    /// One run of sealed data blobs per worker thread, plus one shared by the
    /// sealing threads; see `RUN_BYTES`.
    runs: Vec<Mutex<Run>>,
    tree_pack: Mutex<PackBuilder>,
    uploads: Mutex<Option<Sender<FinishedPack>>>,
    failed: AtomicBool,
    failure: Mutex<Option<Error>>,
    progress: &'a Progress,
    /// Chunks of large files go to the sealing threads; see `seal_loop`.
    seal_jobs: Mutex<Option<Sender<SealJob>>>,
    /// Small data chunks on their way to a compression dictionary.
    sampler: Mutex<Sampler>,
    /// Data pack buffers back from the uploaders, at most `SPARE_PACKS`.
    spare_packs: Mutex<Vec<Vec<u8>>>,
}

impl<'a> Packer<'a> {
    /// A packer for `lanes` threads that deduplicates against `index`.
    pub(super) fn new(
        dest: &'a dyn Destination,
        index: Index,
        progress: &'a Progress,
        lanes: usize,
        uploads: Sender<FinishedPack>,
        seal_jobs: Sender<SealJob>,
    ) -> Packer<'a> {
        Packer {
            dest,
            index,
            pending: (0..64).map(|_| Mutex::new(HashSet::new())).collect(),
            data_pack: Mutex::new(new_pack(dest, BlobKind::Data)),
            runs: (0..lanes).map(|_| Mutex::new(Run::default())).collect(),
            tree_pack: Mutex::new(new_pack(dest, BlobKind::Tree)),
            uploads: Mutex::new(Some(uploads)),
            failed: AtomicBool::new(false),
            failure: Mutex::new(None),
            progress,
            seal_jobs: Mutex::new(Some(seal_jobs)),
            sampler: Mutex::new(if !dest.writes_dictionaries() {
                Sampler::Off
            } else if let Some(dict) = dest.writing_dictionary() {
                Sampler::Using(dict)
            } else {
                Sampler::Collecting(Samples::default())
            }),
            spare_packs: Mutex::new(Vec::new()),
        }
    }

    pub(super) fn dest(&self) -> &'a dyn Destination {
        self.dest
    }

    pub(super) fn index(&self) -> &Index {
        &self.index
    }

    pub(super) fn check_failed(&self) -> Result<()> {
        if self.failed.load(Ordering::SeqCst) || self.progress.cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        Ok(())
    }

    /// Stores one blob unless the vault (or this run) has it already.
    pub(super) fn store(&self, kind: BlobKind, data: &[u8]) -> Result<ChunkRef> {
        let keys = self.dest.keys();
        let id = keys.chunk_id(data);
        let chunk = ChunkRef {
            id,
            len: data.len() as u32,
        };
        if self.index.contains(&id) {
            return Ok(chunk);
        }
        {
            let shard = &self.pending[id.0[0] as usize % self.pending.len()];
            let mut set = shard.lock().map_err(|_| Error::Cancelled)?;
            if !set.insert(id) {
                return Ok(chunk);
            }
        }
        self.progress
            .bytes_new
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        match kind {
            BlobKind::Data if data.len() <= DICT_MAX_CHUNK => {
                // One lock per chunk once a dictionary is chosen; only while
                // samples are gathered is the chunk probed outside the lock.
                let settled = {
                    let mut sampler = self.sampler.lock().map_err(|_| Error::Cancelled)?;
                    (!sampler.gathering()).then(|| sampler.offer(id, data))
                };
                let offer = match settled {
                    Some(offer) => offer,
                    None if !compresses(data) => {
                        return self
                            .push_data(seal_blob(keys, id, data, None))
                            .map(|()| chunk);
                    }
                    None => self
                        .sampler
                        .lock()
                        .map_err(|_| Error::Cancelled)?
                        .offer(id, data),
                };
                match offer {
                    Offer::Held => {}
                    Offer::Seal(dict) => {
                        self.push_data(seal_blob(keys, id, data, dict.as_deref()))?
                    }
                    Offer::Train(samples) => self.train_and_seal(samples, false)?,
                }
            }
            BlobKind::Data => self.push_data(seal_blob(keys, id, data, None))?,
            BlobKind::Tree => self.add_to_pack(
                &self.tree_pack,
                vec![seal_blob(keys, id, data, None)],
                TREE_PACK_TARGET,
            )?,
        }
        Ok(chunk)
    }

    /// Adds a sealed data blob to this thread's run, and a full run to the pack.
    pub(super) fn push_data(&self, sealed: SealedBlob) -> Result<()> {
        let lane = rayon::current_thread_index()
            .unwrap_or(usize::MAX)
            .min(self.runs.len() - 1);
        let run = {
            let mut run = self.runs[lane].lock().map_err(|_| Error::Cancelled)?;
            run.bytes += sealed.bytes.len();
            run.blobs.push(sealed);
            (run.bytes >= RUN_BYTES).then(|| std::mem::take(&mut *run))
        };
        match run {
            Some(run) => self.add_to_pack(&self.data_pack, run.blobs, DATA_PACK_TARGET),
            None => Ok(()),
        }
    }

    /// Trains a dictionary on held-back small chunks (see `dict`), stores it
    /// when it pays, then seals those chunks and the ones held meanwhile.
    pub(super) fn train_and_seal(&self, samples: Samples, last: bool) -> Result<()> {
        let dict = match dict::train(&samples, last) {
            Some(bytes) => self.dest.add_dictionary(&bytes)?,
            None => None,
        };
        let held = self
            .sampler
            .lock()
            .map_err(|_| Error::Cancelled)?
            .trained(dict.clone());
        for (id, data) in samples.chunks().chain(held.chunks()) {
            self.push_data(seal_blob(self.dest.keys(), id, data, dict.as_deref()))?;
        }
        Ok(())
    }

    pub(super) fn add_to_pack(
        &self,
        builder: &Mutex<PackBuilder>,
        blobs: Vec<SealedBlob>,
        target: usize,
    ) -> Result<()> {
        let (full, overfull) = {
            let mut b = builder.lock().map_err(|_| Error::Cancelled)?;
            let kind = b.kind;
            let bytes = blobs.iter().map(|blob| blob.bytes.len()).sum();
            // The pack goes before a run that would take it past its target,
            // so its buffer (sized for the target) never has to grow.
            let full = (!b.is_empty() && b.finished_len_with(blobs.len(), bytes) > target)
                .then(|| std::mem::replace(&mut *b, self.new_pack(kind)));
            for blob in blobs {
                b.add(blob);
            }
            // Only a run larger than a whole pack (a huge directory's tree)
            // gets here.
            let overfull = (b.finished_len_with(0, 0) >= target)
                .then(|| std::mem::replace(&mut *b, self.new_pack(kind)));
            (full, overfull)
        };
        for pack in [full, overfull].into_iter().flatten() {
            self.ship(pack)?;
        }
        Ok(())
    }

    /// Puts every thread's unfinished run into the data pack.
    pub(super) fn flush_runs(&self) -> Result<()> {
        for run in &self.runs {
            let run = std::mem::take(&mut *run.lock().map_err(|_| Error::Cancelled)?);
            self.add_to_pack(&self.data_pack, run.blobs, DATA_PACK_TARGET)?;
        }
        Ok(())
    }

    pub(super) fn ship(&self, builder: PackBuilder) -> Result<()> {
        if builder.is_empty() {
            return Ok(());
        }
        let mut pack = builder.finish(self.dest.keys());
        pack.session = self.dest.session();
        let sender = open_sender(&self.uploads)?;
        sender.send(pack).map_err(|_| {
            self.failure
                .lock()
                .ok()
                .and_then(|mut f| f.take())
                .unwrap_or(Error::Cancelled)
        })
    }

    /// A fresh pack, filled into a buffer an uploader gave back when there
    /// is one.
    pub(super) fn new_pack(&self, kind: BlobKind) -> PackBuilder {
        let spare = match kind {
            BlobKind::Data => self.spare_packs.lock().ok().and_then(|mut s| s.pop()),
            BlobKind::Tree => None,
        };
        match spare {
            Some(buf) => PackBuilder::with_buffer(kind, buf, self.dest.pack_prefix()),
            None => new_pack(self.dest, kind),
        }
    }

    pub(super) fn reclaim_pack_buffer(&self, buf: Vec<u8>) {
        if let Ok(mut spare) = self.spare_packs.lock() {
            if spare.len() < SPARE_PACKS {
                spare.push(buf);
            }
        }
    }

    pub(super) fn store_tree(&self, nodes: Vec<Node>) -> Result<ChunkId> {
        let plain = Tree { nodes }.encode();
        let id = self.store(BlobKind::Tree, &plain)?.id;
        self.dest.keep_tree(id, &plain);
        Ok(id)
    }

    /// Hands a batch of one file's chunks to the sealing threads.
    pub(super) fn seal_batch(&self, batch: &mut Vec<Vec<u8>>) -> Result<SealingBatch> {
        let sender = open_sender(&self.seal_jobs)?;
        let (reply, results) = crossbeam_channel::unbounded();
        let count = batch.len();
        for (position, data) in batch.drain(..).enumerate() {
            sender
                .send(SealJob {
                    position,
                    data,
                    reply: reply.clone(),
                })
                .map_err(|_| Error::Cancelled)?;
        }
        Ok(SealingBatch { results, count })
    }

    /// After the walk: seals what the dictionary sampler still holds and
    /// ships every unfinished run and pack.
    pub(super) fn finish(&self) -> Result<()> {
        let remaining = self
            .sampler
            .lock()
            .map_err(|_| Error::Cancelled)?
            .take_remaining();
        if !remaining.ids.is_empty() {
            self.train_and_seal(remaining, true)?;
        }
        self.flush_runs()?;
        for builder in [&self.data_pack, &self.tree_pack] {
            let last = {
                let mut b = builder.lock().map_err(|_| Error::Cancelled)?;
                let kind = b.kind;
                // Nothing is added after this: no room to reserve.
                std::mem::replace(
                    &mut *b,
                    PackBuilder::with_capacity(kind, 0, self.dest.pack_prefix()),
                )
            };
            self.ship(last)?;
        }
        Ok(())
    }

    /// Closes the sealing threads' queue: they drain it and stop.
    pub(super) fn close_sealing(&self) {
        if let Ok(mut s) = self.seal_jobs.lock() {
            s.take();
        }
    }

    /// Closes the uploaders' queue: they drain it and stop.
    pub(super) fn close_uploads(&self) {
        if let Ok(mut s) = self.uploads.lock() {
            s.take();
        }
    }

    /// The first failure of an uploader, if one failed.
    pub(super) fn take_failure(&self) -> Option<Error> {
        self.failure.lock().ok().and_then(|mut f| f.take())
    }
}

/// A sealing thread: stores the chunks of large files it is sent.
pub(super) fn seal_loop(packer: &Packer<'_>, jobs: Receiver<SealJob>) {
    for job in jobs.iter() {
        let r = packer.store(BlobKind::Data, &job.data);
        let _ = job.reply.send((job.position, r));
    }
}

/// A batch of one file's chunks handed to the sealing threads.
pub(super) struct SealingBatch {
    results: crossbeam_channel::Receiver<(usize, Result<ChunkRef>)>,
    count: usize,
}

impl SealingBatch {
    /// Waits for every chunk of the batch and appends their ids in order.
    pub(super) fn collect(self, out: &mut Vec<ChunkRef>) -> Result<()> {
        let mut refs: Vec<Option<ChunkRef>> = vec![None; self.count];
        let mut first_error = None;
        for _ in 0..self.count {
            let (position, r) = self.results.recv().map_err(|_| Error::Cancelled)?;
            match r {
                Ok(chunk) => refs[position] = Some(chunk),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        out.extend(refs.into_iter().flatten());
        Ok(())
    }
}

pub(super) fn upload_loop(
    packer: &Packer<'_>,
    written: &Mutex<Vec<PackRecord>>,
    rx: crossbeam_channel::Receiver<FinishedPack>,
) {
    let dest = packer.dest;
    for pack in rx.iter() {
        if packer.failed.load(Ordering::SeqCst) {
            continue; // drain so that senders never block on a dead queue
        }
        let path = pack_path(&pack.id);
        let len = pack.bytes.len() as u64;
        if pack.kind == BlobKind::Tree {
            dest.keep_tree_pack(&path, &pack.bytes);
        }
        match dest.storage().put_reclaiming(&path, pack.bytes) {
            Ok(Some(buf)) if pack.kind == BlobKind::Data => packer.reclaim_pack_buffer(buf),
            Ok(_) => {}
            Err(e) => {
                if let Ok(mut f) = packer.failure.lock() {
                    f.get_or_insert(e);
                }
                packer.failed.store(true, Ordering::SeqCst);
                continue;
            }
        }
        packer
            .progress
            .bytes_stored
            .fetch_add(len, Ordering::Relaxed);
        if let Ok(mut w) = written.lock() {
            w.push(PackRecord {
                id: pack.id,
                kind: pack.kind,
                entries: pack.entries,
                session: pack.session,
            });
        }
    }
}

/// An empty pack with room for its target (`add_to_pack` keeps it there).
fn new_pack(dest: &dyn Destination, kind: BlobKind) -> PackBuilder {
    let target = match kind {
        BlobKind::Data => DATA_PACK_TARGET,
        BlobKind::Tree => TREE_PACK_TARGET,
    };
    PackBuilder::with_capacity(kind, target, dest.pack_prefix())
}
