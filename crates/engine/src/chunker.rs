//! Content-defined chunking: FastCDC (normalized chunking, 2020 variant) with
//! a gear table derived from a vault secret.
//!
//! Published crates only let a 64-bit seed perturb their fixed gear table; a
//! table drawn wholly from the vault's 256-bit chunker secret makes chunk
//! boundaries (and so chunk sizes, visible to the storage owner) useless for
//! fingerprinting known files. Boundaries depend only on content after the
//! minimum size, so an insertion shifts at most the chunks around it.

use std::io::Read;

/// No cut before this many bytes (except at the end of a stream).
pub const MIN_SIZE: usize = 256 * 1024;
/// Target average chunk size.
pub const AVG_SIZE: usize = 1024 * 1024;
/// Hard upper bound of a chunk.
pub const MAX_SIZE: usize = 4 * 1024 * 1024;

// Normalized chunking: a harder mask (more one-bits) before the average size,
// an easier one after, which narrows the size distribution around AVG_SIZE.
const MASK_HARD: u64 = !0u64 << (64 - 22);
const MASK_EASY: u64 = !0u64 << (64 - 18);

/// A chunker with its gear table.
#[derive(Clone)]
pub struct Chunker {
    gear: Box<[u64; 256]>,
}

impl Chunker {
    /// Derives the gear table from the vault's chunker secret.
    pub fn new(secret: &[u8; 32]) -> Self {
        let mut hasher = blake3::Hasher::new_keyed(secret);
        hasher.update(b"coffer fastcdc gear table v1");
        let mut xof = hasher.finalize_xof();
        let mut bytes = [0u8; 256 * 8];
        xof.fill(&mut bytes);
        let mut gear = Box::new([0u64; 256]);
        for (slot, word) in gear.iter_mut().zip(bytes.chunks_exact(8)) {
            let mut w = [0u8; 8];
            w.copy_from_slice(word);
            *slot = u64::from_le_bytes(w);
        }
        Chunker { gear }
    }

    /// Length of the first chunk of `data`. `data` must hold at least
    /// `MAX_SIZE` bytes unless it is the end of the stream.
    pub fn cut(&self, data: &[u8]) -> usize {
        let len = data.len();
        if len <= MIN_SIZE {
            return len;
        }
        let max = len.min(MAX_SIZE);
        let normal = max.min(AVG_SIZE);
        let mut hash: u64 = 0;
        // Iterating over sub-slices lets the compiler drop the bounds check
        // from the per-byte loop, the hottest code of a backup.
        for (i, &b) in data[MIN_SIZE..normal].iter().enumerate() {
            hash = (hash << 1).wrapping_add(self.gear[b as usize]);
            if hash & MASK_HARD == 0 {
                return MIN_SIZE + i + 1;
            }
        }
        for (i, &b) in data[normal..max].iter().enumerate() {
            hash = (hash << 1).wrapping_add(self.gear[b as usize]);
            if hash & MASK_EASY == 0 {
                return normal + i + 1;
            }
        }
        max
    }

    /// Splits a stream of at most `limit` bytes into chunks, calling `emit`
    /// with each; returns the number of bytes read (less than `limit` when the
    /// stream ended early). One read-ahead buffer of `2 × MAX_SIZE` bytes is
    /// reused for the whole stream, and every chunk is handed out as an
    /// exact-size copy, so a chunk in flight costs its own length and no more.
    pub fn split<R: Read>(
        &self,
        mut reader: R,
        limit: u64,
        mut emit: impl FnMut(Vec<u8>) -> std::io::Result<()>,
    ) -> std::io::Result<u64> {
        // Twice the look-ahead, so the unconsumed tail is moved to the front
        // only once per MAX_SIZE bytes consumed, not after every chunk.
        let mut buf = vec![0u8; (2 * MAX_SIZE).min(limit as usize).max(1)];
        // Unconsumed bytes are buf[start..end].
        let (mut start, mut end) = (0usize, 0usize);
        let mut remaining = limit;
        let mut total = 0u64;
        let mut eof = false;
        loop {
            if !eof && end - start < MAX_SIZE {
                if buf.len() - start < MAX_SIZE {
                    buf.copy_within(start..end, 0);
                    end -= start;
                    start = 0;
                }
                while !eof && end < buf.len() {
                    let want = ((buf.len() - end) as u64).min(remaining) as usize;
                    if want == 0 {
                        eof = true;
                        break;
                    }
                    let n = match reader.read(&mut buf[end..end + want]) {
                        Ok(n) => n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    };
                    if n == 0 {
                        eof = true;
                    }
                    end += n;
                    remaining -= n as u64;
                    total += n as u64;
                }
            }
            if start == end {
                return Ok(total);
            }
            let cut = self.cut(&buf[start..end]);
            emit(buf[start..start + cut].to_vec())?;
            start += cut;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_random(n: usize, seed: u8) -> Vec<u8> {
        let mut out = vec![0u8; n];
        let mut h = blake3::Hasher::new();
        h.update(&[seed]);
        h.finalize_xof().fill(&mut out);
        out
    }

    fn chunks(c: &Chunker, data: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let n = c
            .split(data, u64::MAX, |ch| {
                out.push(ch);
                Ok(())
            })
            .unwrap();
        assert_eq!(n as usize, data.len());
        out
    }

    #[test]
    fn chunks_reassemble_and_respect_bounds() {
        let c = Chunker::new(&[7; 32]);
        let data = pseudo_random(20 * 1024 * 1024 + 17, 1);
        let parts = chunks(&c, &data);
        assert_eq!(parts.concat(), data);
        for p in &parts[..parts.len() - 1] {
            assert!(p.len() >= MIN_SIZE && p.len() <= MAX_SIZE, "{}", p.len());
        }
        let avg = data.len() / parts.len();
        assert!(avg > AVG_SIZE / 2 && avg < AVG_SIZE * 2, "average {avg}");
    }

    #[test]
    fn an_insertion_changes_only_nearby_chunks() {
        let c = Chunker::new(&[9; 32]);
        let data = pseudo_random(16 * 1024 * 1024, 2);
        let mut edited = data.clone();
        edited.splice(5_000_000..5_000_000, b"inserted bytes".iter().copied());
        let a = chunks(&c, &data);
        let b = chunks(&c, &edited);
        let common = a.iter().filter(|x| b.contains(x)).count();
        assert!(
            common + 3 >= a.len(),
            "only {common} of {} chunks survived",
            a.len()
        );
    }

    #[test]
    fn boundaries_depend_on_the_secret() {
        let data = pseudo_random(8 * 1024 * 1024, 3);
        let a: Vec<usize> = chunks(&Chunker::new(&[1; 32]), &data)
            .iter()
            .map(Vec::len)
            .collect();
        let b: Vec<usize> = chunks(&Chunker::new(&[2; 32]), &data)
            .iter()
            .map(Vec::len)
            .collect();
        assert_ne!(a, b);
    }

    #[test]
    fn limit_stops_reading() {
        let c = Chunker::new(&[1; 32]);
        let data = pseudo_random(1000, 4);
        let mut got = Vec::new();
        let n = c
            .split(&data[..], 600, |ch| {
                got.extend(ch);
                Ok(())
            })
            .unwrap();
        assert_eq!(n, 600);
        assert_eq!(got, &data[..600]);
    }
}
