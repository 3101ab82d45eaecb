//! Writing an object piece by piece, for the service's append-only
//! endpoints: an agent's pack arrives as a request body, and the service
//! passes it on as it comes, so its memory does not grow with the number
//! of agents uploading. The caller checks what it received (the name is
//! the hash of the bytes) before [`ObjectWriter::finish`]; until then
//! nothing is visible under the object's name, and
//! [`ObjectWriter::abort`] (or dropping the writer) leaves nothing behind
//! but, on SFTP and WebDAV, a staging object that is never read.
//!
//! Object stores need a part of at least 5 MiB or the whole length before
//! they accept bytes, so there a pack (at most 4 MiB) is held by OpenDAL
//! until it is complete: memory per upload is bounded by one part, not by
//! the object. A location with synchronous replicas or one reached through
//! a service collects the object and writes it whole, as `put` does.

use std::future::IntoFuture;

use crate::error::Result;
use crate::storage::{Scheme, Storage};

/// Object stores' smallest multipart part.
const PART_BYTES: usize = 5 * 1024 * 1024;

/// An object being written; see the module documentation.
pub struct ObjectWriter {
    storage: Storage,
    path: String,
    inner: Inner,
}

enum Inner {
    /// Written at `written_to` (the path itself, or a staging name that is
    /// renamed into place on success).
    Streaming {
        writer: opendal::Writer,
        written_to: String,
    },
    Collected(Vec<u8>),
    Done,
}

impl Storage {
    /// Starts writing `path`; see [`ObjectWriter`].
    pub fn writer(&self, path: &str) -> Result<ObjectWriter> {
        let inner = if self.remote.is_some() || !self.replicas().is_empty() {
            Inner::Collected(Vec::new())
        } else {
            let written_to = if self.scheme.atomic_writes() {
                path.to_string()
            } else {
                format!(
                    "{}/{}.{:016x}",
                    crate::location::STAGING_DIR,
                    path.replace('/', "_"),
                    rand::random::<u64>()
                )
            };
            let mut w = self.op.writer_with(&written_to);
            if matches!(self.scheme, Scheme::S3 | Scheme::AzBlob | Scheme::Gcs) {
                w = w.chunk(PART_BYTES);
            }
            if self.scheme == Scheme::Gcs {
                w = w.content_type("application/octet-stream");
            }
            let writer = self
                .runtime
                .block_on(w.into_future())
                .map_err(|e| self.failure(path, e))?;
            Inner::Streaming { writer, written_to }
        };
        Ok(ObjectWriter {
            storage: self.clone(),
            path: path.to_string(),
            inner,
        })
    }
}

impl ObjectWriter {
    /// Passes on the next piece of the object.
    pub fn write(&mut self, piece: bytes::Bytes) -> Result<()> {
        if let Some(t) = &self.storage.upload_limit {
            t.take(piece.len() as u64);
        }
        match &mut self.inner {
            Inner::Streaming { writer, .. } => self
                .storage
                .runtime
                .block_on(writer.write(piece))
                .map_err(|e| self.storage.failure(&self.path, e)),
            Inner::Collected(buf) => {
                buf.extend_from_slice(&piece);
                Ok(())
            }
            Inner::Done => Ok(()),
        }
    }

    /// Makes the object visible under its name.
    pub fn finish(mut self) -> Result<()> {
        match std::mem::replace(&mut self.inner, Inner::Done) {
            Inner::Streaming {
                mut writer,
                written_to,
            } => {
                let storage = &self.storage;
                storage
                    .runtime
                    .block_on(writer.close())
                    .map_err(|e| storage.failure(&self.path, e))?;
                if written_to != self.path {
                    if let Err(e) = storage
                        .runtime
                        .block_on(storage.op.rename(&written_to, &self.path))
                    {
                        let _ = storage.runtime.block_on(storage.op.delete(&written_to));
                        return Err(storage.failure(&self.path, e));
                    }
                }
                Ok(())
            }
            Inner::Collected(buf) => self.storage.put(&self.path, buf),
            Inner::Done => Ok(()),
        }
    }

    /// Drops what was written; nothing appears under the object's name.
    pub fn abort(mut self) {
        self.cancel();
    }

    fn cancel(&mut self) {
        if let Inner::Streaming {
            mut writer,
            written_to,
        } = std::mem::replace(&mut self.inner, Inner::Done)
        {
            let storage = &self.storage;
            if let Err(e) = storage.runtime.block_on(writer.abort()) {
                tracing::debug!(object = %self.path, error = %e, "could not abort an upload");
            }
            if written_to != self.path {
                let _ = storage.runtime.block_on(storage.op.delete(&written_to));
            }
        }
    }
}

impl Drop for ObjectWriter {
    fn drop(&mut self) {
        self.cancel();
    }
}
