//! A disk read and written over NBD: the engine's `DiskReader` and
//! `DiskWriter` on a `coffer_nbd::Client`.
//!
//! Allocation comes from `base:allocation`: an extent QEMU reports as
//! reading zeros (unallocated, or a zero cluster) is neither read nor
//! stored. Reads of a batch are all in flight at once. Writes skip pages of
//! zeros, so a restored qcow2 image allocates only what holds data.

use std::sync::Mutex;

use coffer_engine::backup::DiskReader;
use coffer_engine::disk_image::DiskWriter;
use coffer_nbd::proto::{BASE_ALLOCATION, STATE_DIRTY, STATE_ZERO};
use coffer_nbd::{Client, ReadRequest};

/// Pages of zeros inside a block are not written.
const PAGE: usize = 4096;

fn failed(name: &str, e: coffer_nbd::Error) -> coffer_engine::Error {
    coffer_engine::Error::SourceFailed {
        name: name.to_string(),
        message: e.to_string(),
    }
}

/// A disk exported over NBD, read for a backup.
pub struct NbdDisk {
    client: Client,
    name: String,
}

impl NbdDisk {
    pub fn new(client: Client, name: &str) -> NbdDisk {
        NbdDisk {
            client,
            name: name.to_string(),
        }
    }

    pub fn size(&self) -> u64 {
        self.client.size()
    }

    /// The ranges the bitmap of meta context `context` marks dirty.
    pub fn dirty(&mut self, context: &str) -> coffer_engine::Result<Vec<(u64, u64)>> {
        let size = self.client.size();
        Ok(self
            .client
            .extents(context, 0, size)
            .map_err(|e| failed(&self.name, e))?
            .into_iter()
            .filter(|e| e.flags & STATE_DIRTY != 0)
            .map(|e| (e.offset, e.len))
            .collect())
    }
}

impl DiskReader for NbdDisk {
    fn allocated(&mut self) -> coffer_engine::Result<Vec<(u64, u64)>> {
        let size = self.client.size();
        Ok(self
            .client
            .extents(BASE_ALLOCATION, 0, size)
            .map_err(|e| failed(&self.name, e))?
            .into_iter()
            .filter(|e| e.flags & STATE_ZERO == 0)
            .map(|e| (e.offset, e.len))
            .collect())
    }

    fn read(&mut self, batch: &mut [(u64, Vec<u8>)]) -> coffer_engine::Result<()> {
        let max = self.client.max_request() as usize;
        if batch.iter().any(|(_, b)| b.len() > max) {
            for (offset, buf) in batch.iter_mut() {
                self.client
                    .read_at(*offset, buf)
                    .map_err(|e| failed(&self.name, e))?;
            }
            return Ok(());
        }
        let mut requests: Vec<ReadRequest> = batch
            .iter_mut()
            .map(|(offset, buf)| ReadRequest {
                offset: *offset,
                data: std::mem::take(buf),
            })
            .collect();
        let result = self.client.read_many(&mut requests);
        for ((_, buf), r) in batch.iter_mut().zip(requests) {
            *buf = r.data;
        }
        result.map_err(|e| failed(&self.name, e))
    }
}

/// A new image written over NBD (its unwritten parts read as zeros).
pub struct NbdTarget {
    client: Mutex<Client>,
    name: String,
}

impl NbdTarget {
    pub fn new(client: Client, name: &str) -> NbdTarget {
        NbdTarget {
            client: Mutex::new(client),
            name: name.to_string(),
        }
    }

    pub fn disconnect(self) -> coffer_engine::Result<()> {
        let client = self
            .client
            .into_inner()
            .map_err(|_| coffer_engine::Error::Cancelled)?;
        client.disconnect().map_err(|e| failed(&self.name, e))
    }
}

impl DiskWriter for NbdTarget {
    fn write(&self, offset: u64, data: &[u8]) -> coffer_engine::Result<()> {
        let mut client = self
            .client
            .lock()
            .map_err(|_| coffer_engine::Error::Cancelled)?;
        // Runs of non-zero pages, each written once.
        let mut start = None;
        for (i, page) in data.chunks(PAGE).enumerate() {
            let zero = page.iter().all(|b| *b == 0);
            match (zero, start) {
                (false, None) => start = Some(i * PAGE),
                (true, Some(s)) => {
                    client
                        .write_at(offset + s as u64, &data[s..i * PAGE])
                        .map_err(|e| failed(&self.name, e))?;
                    start = None;
                }
                _ => {}
            }
        }
        if let Some(s) = start {
            client
                .write_at(offset + s as u64, &data[s..])
                .map_err(|e| failed(&self.name, e))?;
        }
        Ok(())
    }

    fn zero(&self, _offset: u64, _len: u64) -> coffer_engine::Result<()> {
        Ok(()) // a new image reads as zeros where nothing was written
    }

    fn finish(&self) -> coffer_engine::Result<()> {
        self.client
            .lock()
            .map_err(|_| coffer_engine::Error::Cancelled)?
            .flush()
            .map_err(|e| failed(&self.name, e))
    }
}
