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

/// Granularity of the zero-run shortcut in `Chunker::scan`.
const ZERO_BLOCK: usize = 4096;

/// Whether a block is all zeros; data blocks almost always fail on the first
/// 64 bytes, so they cost next to nothing.
fn is_zero(block: &[u8]) -> bool {
    let head = block.len().min(64);
    block[..head].iter().all(|&b| b == 0) && block[head..].iter().fold(0u8, |acc, &b| acc | b) == 0
}

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
        self.scan(data, MIN_SIZE, normal, MASK_HARD, &mut hash)
            .or_else(|| self.scan(data, normal, max, MASK_EASY, &mut hash))
            .unwrap_or(max)
    }

    /// Rolls the hash over `data[from..to]` and returns the position after
    /// the first byte where `hash & mask == 0`. Blocks of zeros (disk images,
    /// preallocated files) take a shortcut with the same result: after 64
    /// zero bytes the hash no longer depends on what came before and stays
    /// at one value, so at most 65 steps decide a whole block.
    fn scan(
        &self,
        data: &[u8],
        from: usize,
        to: usize,
        mask: u64,
        hash: &mut u64,
    ) -> Option<usize> {
        let mut pos = from;
        for block in data[from..to].chunks(ZERO_BLOCK) {
            if is_zero(block) {
                let zero = self.gear[0];
                for i in 0..block.len().min(65) {
                    *hash = (*hash << 1).wrapping_add(zero);
                    if *hash & mask == 0 {
                        return Some(pos + i + 1);
                    }
                }
            } else {
                // Iterating over the sub-slice lets the compiler drop the
                // bounds check from the per-byte loop, the hottest code of a
                // backup.
                for (i, &b) in block.iter().enumerate() {
                    *hash = (*hash << 1).wrapping_add(self.gear[b as usize]);
                    if *hash & mask == 0 {
                        return Some(pos + i + 1);
                    }
                }
            }
            pos += block.len();
        }
        None
    }

    /// Splits a stream of at most `limit` bytes into chunks, calling `emit`
    /// with each; returns the number of bytes read (less than `limit` when the
    /// stream ended early). One read-ahead buffer of `2 × MAX_SIZE` bytes is
    /// reused for the whole stream, and every chunk is handed out as an
    /// exact-size copy, so a chunk in flight costs its own length and no more.
    pub fn split<R: Read>(
        &self,
        reader: R,
        limit: u64,
        emit: impl FnMut(Vec<u8>) -> std::io::Result<()>,
    ) -> std::io::Result<u64> {
        self.split_with_buffer(reader, limit, &mut Vec::new(), emit)
    }

    /// `split` with a caller-owned read-ahead buffer, so a reader of many
    /// large files allocates (and the kernel zeroes and maps) it once, not
    /// once per file. A stream of at most `MIN_SIZE` bytes is one chunk
    /// whatever its content; it is read straight into that chunk and `buf`
    /// is not touched.
    pub fn split_with_buffer<R: Read>(
        &self,
        mut reader: R,
        limit: u64,
        buf: &mut Vec<u8>,
        mut emit: impl FnMut(Vec<u8>) -> std::io::Result<()>,
    ) -> std::io::Result<u64> {
        if limit <= MIN_SIZE as u64 {
            let mut chunk = Vec::with_capacity(limit as usize);
            reader.take(limit).read_to_end(&mut chunk)?;
            let read = chunk.len() as u64;
            if read > 0 {
                emit(chunk)?;
            }
            return Ok(read);
        }
        // Twice the look-ahead, so the unconsumed tail is moved to the front
        // only once per MAX_SIZE bytes consumed, not after every chunk.
        let size = (2 * MAX_SIZE as u64).min(limit) as usize;
        if buf.len() < size {
            buf.resize(size, 0);
        }
        let buf = &mut buf[..size];
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

    /// The plain FastCDC loop, byte by byte: what `cut` must always agree with.
    fn reference_cut(c: &Chunker, data: &[u8]) -> usize {
        let len = data.len();
        if len <= MIN_SIZE {
            return len;
        }
        let max = len.min(MAX_SIZE);
        let normal = max.min(AVG_SIZE);
        let mut hash: u64 = 0;
        for (i, &b) in data.iter().enumerate().take(max).skip(MIN_SIZE) {
            hash = (hash << 1).wrapping_add(c.gear[b as usize]);
            let mask = if i < normal { MASK_HARD } else { MASK_EASY };
            if hash & mask == 0 {
                return i + 1;
            }
        }
        max
    }

    #[test]
    fn the_zero_run_shortcut_cuts_exactly_where_the_plain_loop_does() {
        // Secrets whose zero-byte gear value does and does not cut inside a
        // run of zeros, over data mixing random bytes and zero runs of every
        // length at every alignment.
        let mut seen_zero_cut = false;
        for secret in 0..40u8 {
            let c = Chunker::new(&[secret; 32]);
            let mut data = pseudo_random(6 * 1024 * 1024, secret);
            let mut x = secret as usize * 7919 + 1;
            let mut at = 0;
            while at < data.len() {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407)
                    >> 1;
                let gap = x % 300_000;
                let run = [1, 63, 64, 65, 4095, 4096, 4097, 70_000, 900_000, 3_000_000][x % 10];
                let start = (at + gap).min(data.len());
                let end = (start + run).min(data.len());
                data[start..end].fill(0);
                at = end;
            }
            let mut offset = 0;
            while offset < data.len() {
                let rest = &data[offset..];
                let want = reference_cut(&c, rest);
                assert_eq!(c.cut(rest), want, "secret {secret}, offset {offset}");
                seen_zero_cut |=
                    rest[..want].iter().rev().take(64).all(|&b| b == 0) && want < MAX_SIZE;
                offset += want;
            }
            let zeros = vec![0u8; MAX_SIZE + 100];
            assert_eq!(c.cut(&zeros), reference_cut(&c, &zeros), "secret {secret}");
            assert_eq!(
                c.cut(&zeros[..300_000]),
                reference_cut(&c, &zeros[..300_000])
            );
        }
        assert!(seen_zero_cut, "some secret must cut inside a zero run");
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

    /// A reused read-ahead buffer (left holding the previous stream's bytes)
    /// and the direct path for one-chunk streams cut exactly as a fresh
    /// buffer does, whatever order the stream sizes come in.
    #[test]
    fn reused_buffer_and_small_streams_cut_like_a_fresh_split() {
        let c = Chunker::new(&[3; 32]);
        let mut buf = Vec::new();
        for (n, seed) in [
            (9 * 1024 * 1024, 5),
            (MIN_SIZE, 6),
            (MIN_SIZE + 1, 7),
            (0, 8),
            (3 * 1024 * 1024 + 5, 9),
            (17, 10),
        ] {
            let data = pseudo_random(n, seed);
            let mut got = Vec::new();
            let read = c
                .split_with_buffer(&data[..], u64::MAX, &mut buf, |ch| {
                    got.push(ch);
                    Ok(())
                })
                .unwrap();
            assert_eq!(read as usize, n);
            assert_eq!(got, chunks(&c, &data), "stream of {n} bytes");
            if n > 0 && n <= MIN_SIZE {
                assert_eq!(got.len(), 1);
            }
            // A stream longer than its limit stops at the limit on both paths.
            let limit = (n / 2) as u64;
            let mut head = Vec::new();
            c.split_with_buffer(&data[..], limit, &mut buf, |ch| {
                head.extend(ch);
                Ok(())
            })
            .unwrap();
            assert_eq!(head, &data[..n / 2]);
        }
    }
}
