//! A point as an item's restore reads it: its root tree and recorded
//! paths, with a `Source` to read trees and chunks from. On the service
//! that is the vault; on an agent, the service reading the vault on its
//! behalf (granted only this point's trees and chunks). Either way a
//! kind's restore is the same code, and never holds more than a chunk of
//! a stream in memory.

use std::path::Path;

use coffer_engine::restore::{read_file_from, Source};
use coffer_engine::tree::Timestamp;
use coffer_engine::{ChunkId, Point};

use crate::{Error, Result};

pub struct PointStreams<'a> {
    source: &'a dyn Source,
    tree: ChunkId,
    paths: Vec<Vec<u8>>,
    id: String,
    time: Option<Timestamp>,
}

impl<'a> PointStreams<'a> {
    /// `id` is the point's id in hex, for messages and restore commands.
    pub fn new(source: &'a dyn Source, tree: ChunkId, paths: Vec<Vec<u8>>, id: String) -> Self {
        PointStreams {
            source,
            tree,
            paths,
            id,
            time: None,
        }
    }

    /// The point's time, when the caller knows it (a restored qcow2
    /// image's fresh bitmap counts from it).
    pub fn with_time(mut self, time: Timestamp) -> Self {
        self.time = Some(time);
        self
    }

    pub fn time(&self) -> Option<Timestamp> {
        self.time
    }

    pub fn of_point(source: &'a dyn Source, point: &Point) -> Self {
        Self::new(
            source,
            point.manifest.tree,
            point.manifest.paths.clone(),
            point.id.to_hex(),
        )
        .with_time(point.manifest.time)
    }

    pub fn source(&self) -> &dyn Source {
        self.source
    }

    pub fn tree(&self) -> &ChunkId {
        &self.tree
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The name of the one stream a database or command point holds. It
    /// comes from the vault, so it is checked to be one plain file name
    /// before anything is created with it.
    pub fn single_stream(&self) -> Result<String> {
        let one = match self.paths.as_slice() {
            [one] => one,
            _ => {
                return Err(Error::Restore(format!(
                    "point {} does not hold a single stream",
                    self.id
                )))
            }
        };
        let name = one.strip_prefix(b"/").unwrap_or(one);
        if let Err(why) = coffer_engine::confine::check_name(name) {
            return Err(Error::Restore(format!(
                "point {} is malformed: its stream is named {:?}, {why}; nothing was restored",
                self.id,
                String::from_utf8_lossy(one)
            )));
        }
        Ok(String::from_utf8_lossy(name).into_owned())
    }

    /// Writes the stream `name` to `out`, every chunk verified; its size.
    pub fn read(&self, name: &str, out: &mut dyn std::io::Write) -> Result<u64> {
        Ok(read_file_from(
            self.source,
            &self.tree,
            &Path::new("/").join(name),
            out,
        )?)
    }
}
