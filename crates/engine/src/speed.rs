//! How fast this machine runs each stage of the pipeline, one core at a time.
//!
//! `coffer benchmark` prints these so an operator can see where the limit of
//! a backup or restore lies: a stage slower than the disk or the network is
//! the bottleneck. Every stage works on the same in-memory buffer, repeated
//! until a time budget is spent, so the numbers are steady rather than a
//! single noisy pass. Storage is measured by writing, reading back and
//! deleting pack-sized probe objects at a location.

use std::time::{Duration, Instant};

use rand::RngCore;

use crate::chunker::Chunker;
use crate::crypto::MasterKeys;
use crate::dict::{self, Dictionary, Samples};
use crate::error::Result;
use crate::ids::{ChunkId, ObjectId};
use crate::storage::Storage;

/// One measured stage.
#[derive(Debug, Clone)]
pub struct StageSpeed {
    pub stage: &'static str,
    pub what: &'static str,
    /// Input bytes processed.
    pub bytes: u64,
    pub seconds: f64,
}

impl StageSpeed {
    pub fn mib_per_second(&self) -> f64 {
        self.bytes as f64 / (1 << 20) as f64 / self.seconds.max(1e-9)
    }
}

const SAMPLE: usize = 32 << 20;
/// Small files are slower per byte; a smaller sample keeps the pass short.
const SMALL_SAMPLE: usize = 8 << 20;

/// Runs `step` over the sample until `budget` has passed (at least once).
fn timed(budget: Duration, bytes: usize, mut step: impl FnMut()) -> (u64, f64) {
    let start = Instant::now();
    let mut done = 0u64;
    loop {
        step();
        done += bytes as u64;
        if start.elapsed() >= budget {
            return (done, start.elapsed().as_secs_f64());
        }
    }
}

/// Text that compresses like source code and logs (about 4:1 with zstd-3).
fn text_like(len: usize) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "fn", "let", "mut", "struct", "impl", "match", "return", "self", "error", "path", "vault",
        "chunk", "index", "restore", "backup", "=", "(", ")", "{", "}", ";", "::",
    ];
    let mut out = Vec::with_capacity(len + 64);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    while out.len() < len {
        // xorshift: reproducible filler without a dependency.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(WORDS[(state % WORDS.len() as u64) as usize].as_bytes());
        out.push(if state.is_multiple_of(9) { b'\n' } else { b' ' });
    }
    out.truncate(len);
    out
}

/// Single-core speed of chunking, hashing, compression and encryption.
pub fn cpu_stages(budget: Duration) -> Vec<StageSpeed> {
    let keys = MasterKeys::random();
    let chunker = Chunker::new(&keys.chunker);
    let mut random = vec![0u8; SAMPLE];
    rand::rngs::OsRng.fill_bytes(&mut random);
    let text = text_like(SAMPLE);
    let mut results = Vec::new();
    let mut push = |stage, what, (bytes, seconds): (u64, f64)| {
        results.push(StageSpeed {
            stage,
            what,
            bytes,
            seconds,
        })
    };

    push(
        "chunking",
        "FastCDC boundaries, 1 MiB average",
        timed(budget, SAMPLE, || {
            let mut at = 0;
            while at < random.len() {
                at += chunker.cut(&random[at..]).max(1);
            }
        }),
    );
    push(
        "hashing",
        "keyed BLAKE3 chunk ids",
        timed(budget, SAMPLE, || {
            for c in random.chunks(1 << 20) {
                std::hint::black_box(keys.chunk_id(c));
            }
        }),
    );
    let mut compressed = Vec::new();
    push(
        "compression",
        "zstd level 3, source-like text",
        timed(budget, SAMPLE, || {
            compressed = text
                .chunks(1 << 20)
                .map(|c| zstd::bulk::compress(c, crate::pack::ZSTD_LEVEL).unwrap_or_default())
                .collect::<Vec<_>>();
        }),
    );
    push(
        "decompression",
        "zstd, the same text",
        timed(budget, SAMPLE, || {
            for c in &compressed {
                std::hint::black_box(zstd::bulk::decompress(c, 1 << 20).unwrap_or_default());
            }
        }),
    );
    // Small files: one frame per 4 KiB piece, alone and against a dictionary
    // trained on other pieces of the same kind (what format 2 vaults do).
    let small = &text[..SMALL_SAMPLE];
    let mut alone = zstd::bulk::Compressor::new(crate::pack::ZSTD_LEVEL).ok();
    push(
        "small files",
        "zstd level 3, 4 KiB pieces one by one",
        timed(budget, SMALL_SAMPLE, || {
            if let Some(c) = alone.as_mut() {
                for piece in small.chunks(4096) {
                    std::hint::black_box(c.compress(piece).ok());
                }
            }
        }),
    );
    let mut samples = Samples::default();
    for piece in text[SMALL_SAMPLE..SMALL_SAMPLE + (2 << 20)].chunks(4096) {
        samples.push(ChunkId([0; 32]), piece);
    }
    if let Some(dict) =
        dict::train(&samples, false).and_then(|bytes| Dictionary::new(ObjectId::of(&bytes), &bytes))
    {
        let mut cctx = zstd::zstd_safe::CCtx::create();
        let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(4096));
        push(
            "small, dictionary",
            "the same against a trained dictionary",
            timed(budget, SMALL_SAMPLE, || {
                for piece in small.chunks(4096) {
                    out.clear();
                    std::hint::black_box(
                        cctx.compress_using_cdict(&mut out, piece, dict.cdict())
                            .ok(),
                    );
                }
            }),
        );
    }
    push(
        "encryption",
        "XChaCha20-Poly1305 seal",
        timed(budget, SAMPLE, || {
            for c in random.chunks(1 << 20) {
                std::hint::black_box(keys.seal(b"benchmark", c));
            }
        }),
    );
    results
}

/// Write, read-back and delete speed of pack-sized objects at a location.
/// Reads come straight after the writes, so a local disk may serve them from
/// the page cache; the write figure is the honest one there.
pub fn storage_stages(storage: &Storage, budget: Duration) -> Result<Vec<StageSpeed>> {
    const OBJECT: usize = 16 << 20;
    let mut probe = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut probe);
    let prefix = format!("coffer-benchmark-{}/", hex::encode(probe));
    let mut data = vec![0u8; OBJECT];
    rand::rngs::OsRng.fill_bytes(&mut data);

    let mut written = Vec::new();
    let start = Instant::now();
    let mut write_error = None;
    while start.elapsed() < budget || written.is_empty() {
        let path = format!("{prefix}{}", written.len());
        if let Err(e) = storage.put(&path, data.clone()) {
            write_error = Some(e);
            break;
        }
        written.push(path);
    }
    let write_seconds = start.elapsed().as_secs_f64();
    let mut read_result = Ok(0u64);
    let read_start = Instant::now();
    for path in &written {
        match storage.get(path) {
            Ok(bytes) => {
                if let Ok(n) = read_result.as_mut() {
                    *n += bytes.len() as u64;
                }
            }
            Err(e) => {
                read_result = Err(e);
                break;
            }
        }
    }
    let read_seconds = read_start.elapsed().as_secs_f64();
    // Clean up before reporting any failure: the probe must not stay behind.
    let mut cleanup = Ok(());
    for path in &written {
        if let Err(e) = storage.delete(path) {
            cleanup = Err(e);
        }
    }
    // The probe's folder, on services that have folders.
    let _ = storage.delete(&prefix);
    if let Some(e) = write_error {
        return Err(e);
    }
    let read_bytes = read_result?;
    cleanup?;
    Ok(vec![
        StageSpeed {
            stage: "storage write",
            what: "16 MiB objects",
            bytes: (written.len() * OBJECT) as u64,
            seconds: write_seconds,
        },
        StageSpeed {
            stage: "storage read",
            what: "the same objects, read back",
            bytes: read_bytes,
            seconds: read_seconds,
        },
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stage_reports_a_positive_speed() {
        let stages = cpu_stages(Duration::from_millis(1));
        let names: Vec<_> = stages.iter().map(|s| s.stage).collect();
        assert_eq!(
            names,
            [
                "chunking",
                "hashing",
                "compression",
                "decompression",
                "small files",
                "small, dictionary",
                "encryption"
            ]
        );
        assert!(stages
            .iter()
            .all(|s| s.bytes >= SMALL_SAMPLE as u64 && s.mib_per_second() > 0.0));
    }

    #[test]
    fn storage_probe_cleans_up_after_itself() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path().to_str().unwrap()).unwrap();
        let stages = storage_stages(&storage, Duration::from_millis(1)).unwrap();
        assert_eq!(stages.len(), 2);
        assert_eq!(stages[0].bytes, stages[1].bytes);
        assert!(stages[0].bytes >= 16 << 20);
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().starts_with("coffer-benchmark"))
            .collect();
        assert!(left.is_empty(), "probe left behind: {left:?}");
    }
}
