//! The in-memory chunk codec: Gorilla-style XOR compression in exactly the byte
//! layout of Prometheus's `XOR` chunk encoding, so head chunks can be served as-is
//! through remote read's `STREAMED_XOR_CHUNKS` response.
//!
//! ```text
//!  ┌──────────────┬───────────────────────────────────────────────────────────┐
//!  │ n: u16 (BE)  │ bit stream, most significant bit first                    │
//!  └──────────────┴───────────────────────────────────────────────────────────┘
//!  sample 0: t as zigzag varint, v as 64 raw bits
//!  sample 1: t - t0 as uvarint, v XOR-encoded
//!  sample k: delta-of-delta of t in a prefix code (0 | 10+14b | 110+17b | 1110+20b | 1111+64b),
//!            v XOR-encoded against the previous value ('0' when equal, '10' reusing the
//!            previous leading/trailing-zero window, '11' + 5b leading + 6b length + bits)
//! ```
//! The full specification is in `docs/format/chunk.md`.

mod bits;
#[cfg(test)]
mod tests;

use bits::{BitReader, BitWriter};
use strata_model::Sample;

/// Samples per chunk before the head starts a new one, as Prometheus does.
pub(crate) const SAMPLES_PER_CHUNK: u16 = 120;

/// An open chunk that samples are appended to.
#[derive(Debug, Clone)]
pub struct XorAppender {
    w: BitWriter,
    n: u16,
    t: i64,
    v: f64,
    t_delta: u64,
    leading: u8,
    trailing: u8,
}

impl Default for XorAppender {
    fn default() -> Self {
        Self::new()
    }
}

impl XorAppender {
    pub fn new() -> Self {
        let mut w = BitWriter::with_capacity(32);
        w.write_bytes(&[0, 0]);
        XorAppender { w, n: 0, t: 0, v: 0.0, t_delta: 0, leading: 0xff, trailing: 0 }
    }

    /// Number of samples in the chunk.
    pub fn len(&self) -> u16 {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Appends a sample. The caller guarantees `t` is greater than the previous
    /// timestamp (the head checks ordering before appending).
    pub fn append(&mut self, t: i64, v: f64) {
        match self.n {
            0 => {
                let mut buf = [0u8; 10];
                let n = put_varint(&mut buf, t);
                self.w.write_bytes(&buf[..n]);
                self.w.write_bits(v.to_bits(), 64);
            }
            1 => {
                let t_delta = (t - self.t) as u64;
                let mut buf = [0u8; 10];
                let n = put_uvarint(&mut buf, t_delta);
                self.w.write_bytes(&buf[..n]);
                self.write_value(v);
                self.t_delta = t_delta;
            }
            _ => {
                let t_delta = (t - self.t) as u64;
                let dod = t_delta.wrapping_sub(self.t_delta) as i64;
                if dod == 0 {
                    self.w.write_bit(false);
                } else if bit_range(dod, 14) {
                    self.w.write_bits(0b10, 2);
                    self.w.write_bits(dod as u64, 14);
                } else if bit_range(dod, 17) {
                    self.w.write_bits(0b110, 3);
                    self.w.write_bits(dod as u64, 17);
                } else if bit_range(dod, 20) {
                    self.w.write_bits(0b1110, 4);
                    self.w.write_bits(dod as u64, 20);
                } else {
                    self.w.write_bits(0b1111, 4);
                    self.w.write_bits(dod as u64, 64);
                }
                self.write_value(v);
                self.t_delta = t_delta;
            }
        }
        self.t = t;
        self.v = v;
        self.n += 1;
        self.w.set_u16_be(0, self.n);
    }

    fn write_value(&mut self, v: f64) {
        let delta = v.to_bits() ^ self.v.to_bits();
        if delta == 0 {
            self.w.write_bit(false);
            return;
        }
        self.w.write_bit(true);
        let leading = (delta.leading_zeros() as u8).min(31);
        let trailing = delta.trailing_zeros() as u8;
        if self.leading != 0xff && leading >= self.leading && trailing >= self.trailing {
            self.w.write_bit(false);
            let sig = 64 - self.leading - self.trailing;
            self.w.write_bits(delta >> self.trailing, sig);
            return;
        }
        self.leading = leading;
        self.trailing = trailing;
        self.w.write_bit(true);
        self.w.write_bits(u64::from(leading), 5);
        let sig = 64 - leading - trailing;
        // 64 significant bits do not fit in 6 bits; 0 stands for 64.
        self.w.write_bits(u64::from(sig & 63), 6);
        self.w.write_bits(delta >> trailing, sig);
    }

    /// The chunk's bytes so far (a valid chunk at every point).
    pub fn bytes(&self) -> &[u8] {
        self.w.bytes()
    }

    /// Timestamp of the last appended sample.
    pub fn last_t(&self) -> i64 {
        self.t
    }

    /// Freezes the chunk into a compact immutable byte buffer.
    pub fn finish(self) -> Box<[u8]> {
        self.w.into_bytes().into_boxed_slice()
    }
}

/// Whether `x` fits the `nbits`-wide signed slot of the delta-of-delta code, whose
/// range is `[-(2^(n-1) - 1), 2^(n-1)]`.
fn bit_range(x: i64, nbits: u8) -> bool {
    -((1i64 << (nbits - 1)) - 1) <= x && x <= 1i64 << (nbits - 1)
}

/// An error found while decoding a chunk: it is shorter than its header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("chunk is truncated or corrupt")]
pub struct ChunkError;

/// Iterates the samples of an XOR chunk.
#[derive(Debug)]
pub struct XorIter<'a> {
    r: BitReader<'a>,
    total: u16,
    read: u16,
    t: i64,
    v: f64,
    t_delta: u64,
    leading: u8,
    trailing: u8,
}

impl<'a> XorIter<'a> {
    /// Starts decoding `chunk`; fails only when it has no header.
    pub fn new(chunk: &'a [u8]) -> Result<Self, ChunkError> {
        if chunk.len() < 2 {
            return Err(ChunkError);
        }
        let total = u16::from_be_bytes([chunk[0], chunk[1]]);
        Ok(XorIter {
            r: BitReader::new(&chunk[2..]),
            total,
            read: 0,
            t: 0,
            v: 0.0,
            t_delta: 0,
            leading: 0,
            trailing: 0,
        })
    }

    /// The number of samples the header declares.
    pub fn declared_len(&self) -> u16 {
        self.total
    }

    fn step(&mut self) -> Option<Sample> {
        match self.read {
            0 => {
                self.t = self.r.read_varint()?;
                self.v = f64::from_bits(self.r.read_bits(64)?);
            }
            1 => {
                self.t_delta = self.r.read_uvarint()?;
                self.t = self.t.wrapping_add(self.t_delta as i64);
                self.read_value()?;
            }
            _ => {
                let mut prefix = 0u8;
                for _ in 0..4 {
                    if !self.r.read_bit()? {
                        break;
                    }
                    prefix += 1;
                }
                let dod: i64 = match prefix {
                    0 => 0,
                    1 => self.read_signed(14)?,
                    2 => self.read_signed(17)?,
                    3 => self.read_signed(20)?,
                    _ => self.r.read_bits(64)? as i64,
                };
                self.t_delta = (self.t_delta as i64).wrapping_add(dod) as u64;
                self.t = self.t.wrapping_add(self.t_delta as i64);
                self.read_value()?;
            }
        }
        self.read += 1;
        Some(Sample::new(self.t, self.v))
    }

    fn read_signed(&mut self, n: u8) -> Option<i64> {
        let bits = self.r.read_bits(n)? as i64;
        Some(if bits > 1 << (n - 1) { bits - (1 << n) } else { bits })
    }

    fn read_value(&mut self) -> Option<()> {
        if !self.r.read_bit()? {
            return Some(());
        }
        if self.r.read_bit()? {
            self.leading = self.r.read_bits(5)? as u8;
            let mut sig = self.r.read_bits(6)? as u8;
            if sig == 0 {
                sig = 64;
            }
            self.trailing = 64u8.checked_sub(self.leading + sig)?;
        }
        let sig = 64 - self.leading - self.trailing;
        let bits = self.r.read_bits(sig)?;
        self.v = f64::from_bits(self.v.to_bits() ^ (bits << self.trailing));
        Some(())
    }
}

impl Iterator for XorIter<'_> {
    type Item = Result<Sample, ChunkError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.read >= self.total {
            return None;
        }
        match self.step() {
            Some(s) => Some(Ok(s)),
            None => {
                self.read = self.total;
                Some(Err(ChunkError))
            }
        }
    }
}

/// Decodes every sample of `chunk`.
pub fn decode_all(chunk: &[u8]) -> Result<Vec<Sample>, ChunkError> {
    XorIter::new(chunk)?.collect()
}

fn put_uvarint(buf: &mut [u8; 10], mut x: u64) -> usize {
    let mut i = 0;
    while x >= 0x80 {
        buf[i] = (x as u8) | 0x80;
        x >>= 7;
        i += 1;
    }
    buf[i] = x as u8;
    i + 1
}

fn put_varint(buf: &mut [u8; 10], x: i64) -> usize {
    put_uvarint(buf, ((x << 1) ^ (x >> 63)) as u64)
}
