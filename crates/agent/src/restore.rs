//! A restore onto this host: the service reads the point's trees and
//! chunks from the vault (the agent holds no key) and sends them over the
//! agent's authenticated channel, serving only what belongs to the point
//! this job restores; the engine's restore writes them here with its usual
//! rules (confinement under the target, metadata, sparse files, hard
//! links).

use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};

use coffer_api_types::agent::WorkDone;
use coffer_api_types::error::ErrorCode;
use coffer_engine::restore::RestoreProgress;
use coffer_sources::{Destination, ItemDef, PointStreams};
use rayon::prelude::*;

use coffer_engine::restore::{Source, Targets};
use coffer_engine::tree::Tree;
use coffer_engine::ChunkId;

use crate::client::Client;
use crate::report::{Counted, Reporter};

/// A database, command or disk point to put back through its item's kind.
pub struct ItemRestore<'a> {
    pub point: &'a str,
    pub tree: &'a str,
    pub paths: Vec<String>,
    pub time: Option<coffer_engine::tree::Timestamp>,
    pub item: &'a coffer_api_types::item::Item,
    /// Empty: where the item says (its database, its restore command).
    pub target: String,
    pub overwrite: bool,
}

/// Restores a database or command point on this host through its item's
/// kind, reading the point's stream through the service. An item whose
/// restore runs programs the service names (a command item's restore
/// command, PostgreSQL tools from a directory) runs only on a host
/// registered with `--allow-commands`, as its backups do.
pub fn restore_item(
    client: &Client,
    allow_commands: bool,
    job: i64,
    r: ItemRestore<'_>,
) -> WorkDone {
    let progress = Arc::new(RestoreProgress::default());
    let (log, lines) = mpsc::channel();
    let reporter = Reporter::start(
        client.clone(),
        job,
        Counted::Restore(progress.clone()),
        lines,
    );
    let outcome = (|| -> crate::Result<String> {
        let root = ChunkId::parse(r.tree)
            .ok_or_else(|| failed(format!("{:?} is not a tree id", r.tree)))?;
        let def = ItemDef::of_item(r.item)?;
        let to = Destination {
            target: (!r.target.is_empty()).then(|| r.target.into()),
            overwrite: r.overwrite,
            postgresql_connection: None,
        };
        if def.restore_runs_commands(&to) && !allow_commands {
            return Err(crate::Error::Refused {
                code: ErrorCode::Forbidden,
                message: format!(
                    "restoring item {} runs programs the service names, and this host does not allow that: register it with --allow-commands, or restore the point as a file under a target",
                    r.item.name
                ),
            });
        }
        let _ = log.send((
            "info".to_string(),
            format!(
                "putting point {} of {} item {} back",
                &r.point[..r.point.len().min(12)],
                r.item.kind,
                r.item.name
            ),
        ));
        let source = ServiceSource {
            client: client.clone(),
            job,
        };
        let paths = r.paths.into_iter().map(String::into_bytes).collect();
        let mut streams = PointStreams::new(&source, root, paths, r.point.to_string());
        if let Some(t) = r.time {
            streams = streams.with_time(t);
        }
        Ok(coffer_sources::restore_streams(
            &streams, &def, &to, &progress,
        )?)
    })();
    drop(log);
    reporter.finish();
    match outcome {
        Ok(message) => WorkDone::RestoredItem { message },
        Err(_) if progress.cancel.load(Ordering::Relaxed) => WorkDone::Cancelled,
        Err(e) => WorkDone::Failed {
            code: Some(e.code().api_code().to_string()),
            message: e.to_string(),
        },
    }
}

/// Chunks asked for in one request (each at most 4 MiB).
const PER_REQUEST: usize = 16;

/// The point's trees and chunks, through the service.
pub struct ServiceSource {
    pub client: Client,
    pub job: i64,
}

fn failed(message: String) -> coffer_engine::Error {
    coffer_engine::Error::Invalid(message)
}

impl Source for ServiceSource {
    fn tree(&self, id: &ChunkId) -> coffer_engine::Result<Tree> {
        let bytes = self
            .client
            .get_bytes(&format!("/agent/restore/{}/tree/{}", self.job, id.to_hex()))
            .map_err(|e| failed(e.to_string()))?;
        Tree::decode(&bytes)
            .ok_or_else(|| failed(format!("tree {id}: the service sent something else")))
    }

    fn chunk(&self, id: &ChunkId) -> coffer_engine::Result<Vec<u8>> {
        let bytes = self
            .client
            .post_bytes(
                &format!("/agent/restore/{}/chunks", self.job),
                &[id.to_hex()],
            )
            .map_err(|e| failed(e.to_string()))?;
        match frames(&bytes, 1).map_err(failed)?.pop() {
            Some(Ok(plain)) => Ok(plain.to_vec()),
            Some(Err(why)) => Err(failed(format!("chunk {}: {why}", &id.to_hex()[..16]))),
            None => Err(failed("the service's answer ended early".into())),
        }
    }

    fn deliver(
        &self,
        wanted: Vec<(ChunkId, Targets)>,
        workers: &rayon::ThreadPool,
        deliver: &(dyn Fn(&Targets, coffer_engine::Result<&[u8]>) + Sync),
    ) {
        workers.install(|| {
            wanted.par_chunks(PER_REQUEST).for_each(|batch| {
                let ids: Vec<String> = batch.iter().map(|(id, _)| id.to_hex()).collect();
                let answer: Result<Vec<u8>, String> = self
                    .client
                    .post_bytes(&format!("/agent/restore/{}/chunks", self.job), &ids)
                    .map_err(|e| e.to_string());
                let parsed = answer
                    .as_deref()
                    .map_err(Clone::clone)
                    .and_then(|bytes| frames(bytes, batch.len()));
                match parsed {
                    Ok(parts) => {
                        for ((_, targets), part) in batch.iter().zip(parts) {
                            match part {
                                Ok(plain) => deliver(targets, Ok(plain)),
                                Err(why) => deliver(targets, Err(failed(why))),
                            }
                        }
                    }
                    Err(why) => {
                        for (_, targets) in batch {
                            deliver(targets, Err(failed(why.clone())));
                        }
                    }
                }
            })
        });
    }
}

/// Splits the service's answer into one frame per chunk asked for.
fn frames(bytes: &[u8], count: usize) -> Result<Vec<Result<&[u8], String>>, String> {
    let mut out = Vec::with_capacity(count);
    let mut at = 0usize;
    for _ in 0..count {
        let head = bytes
            .get(at..at + 5)
            .ok_or("the service's answer ended early")?;
        let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let body = bytes
            .get(at + 5..at + 5 + len)
            .ok_or("the service's answer ended early")?;
        out.push(match head[0] {
            0 => Ok(body),
            _ => Err(String::from_utf8_lossy(body).into_owned()),
        });
        at += 5 + len;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_read_in_order_and_a_short_answer_is_refused() {
        let mut answer = vec![0u8];
        answer.extend_from_slice(&3u32.to_le_bytes());
        answer.extend_from_slice(b"abc");
        answer.push(1);
        answer.extend_from_slice(&4u32.to_le_bytes());
        answer.extend_from_slice(b"gone");
        let parts = frames(&answer, 2).unwrap();
        assert_eq!(parts[0], Ok(&b"abc"[..]));
        assert_eq!(parts[1], Err("gone".to_string()));
        assert!(frames(&answer[..6], 2).is_err());
        assert!(frames(&answer, 3).is_err());
    }
}
