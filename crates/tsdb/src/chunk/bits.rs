//! Bit-level writer and reader for the XOR chunk codec (most significant bit first).

/// Bytes added to a full chunk buffer at a time.
const GROW_BYTES: usize = 32;

#[derive(Debug, Clone)]
pub(crate) struct BitWriter {
    buf: Vec<u8>,
    /// Free bits in the last byte (0 means the next bit starts a new byte).
    free: u8,
}

impl BitWriter {
    pub(crate) fn with_capacity(n: usize) -> Self {
        BitWriter { buf: Vec::with_capacity(n), free: 0 }
    }

    /// Starts a new byte. Grows the buffer in small exact steps rather than by
    /// doubling: an open head chunk lives as long as 120 samples, and doubling would
    /// leave up to half of every series' buffer unused.
    fn push_byte(&mut self) {
        if self.buf.len() == self.buf.capacity() {
            self.buf.reserve_exact(GROW_BYTES);
        }
        self.buf.push(0);
        self.free = 8;
    }

    pub(crate) fn write_bit(&mut self, bit: bool) {
        if self.free == 0 {
            self.push_byte();
        }
        self.free -= 1;
        if bit {
            *self.buf.last_mut().expect("a byte was pushed") |= 1 << self.free;
        }
    }

    /// Writes the low `n` bits of `v`, most significant first.
    pub(crate) fn write_bits(&mut self, v: u64, mut n: u8) {
        while n > 0 {
            if self.free == 0 {
                self.push_byte();
            }
            let take = n.min(self.free);
            let shift = n - take;
            let chunk = ((v >> shift) & ((1u64 << take) - 1)) as u8;
            self.free -= take;
            *self.buf.last_mut().expect("a byte was pushed") |= chunk << self.free;
            n -= take;
        }
    }

    pub(crate) fn write_bytes(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_bits(u64::from(*b), 8);
        }
    }

    pub(crate) fn set_u16_be(&mut self, at: usize, v: u16) {
        self.buf[at..at + 2].copy_from_slice(&v.to_be_bytes());
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf
    }

    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

#[derive(Debug, Clone)]
pub(crate) struct BitReader<'a> {
    buf: &'a [u8],
    /// Position in bits.
    pos: usize,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        BitReader { buf, pos: 0 }
    }

    pub(crate) fn read_bit(&mut self) -> Option<bool> {
        let byte = *self.buf.get(self.pos / 8)?;
        let bit = byte & (0x80 >> (self.pos % 8)) != 0;
        self.pos += 1;
        Some(bit)
    }

    /// Reads `n` bits (0..=64) as the low bits of the result. Loads up to eight bytes
    /// at once: for `n <= 56` one big-endian word holds every wanted bit.
    pub(crate) fn read_bits(&mut self, n: u8) -> Option<u64> {
        if n == 0 {
            return Some(0);
        }
        if self.pos + n as usize > self.buf.len() * 8 {
            return None;
        }
        if n > 56 {
            let hi = self.read_bits(n - 32)?;
            let lo = self.read_bits(32)?;
            return Some((hi << 32) | lo);
        }
        let byte = self.pos / 8;
        let avail = (self.buf.len() - byte).min(8);
        let mut word = [0u8; 8];
        word[..avail].copy_from_slice(&self.buf[byte..byte + avail]);
        let w = u64::from_be_bytes(word) << (self.pos % 8);
        self.pos += n as usize;
        Some(w >> (64 - n))
    }

    fn read_byte(&mut self) -> Option<u8> {
        self.read_bits(8).map(|b| b as u8)
    }

    pub(crate) fn read_uvarint(&mut self) -> Option<u64> {
        let mut x = 0u64;
        let mut s = 0u32;
        for i in 0..10 {
            let b = self.read_byte()?;
            if b < 0x80 {
                if i == 9 && b > 1 {
                    return None;
                }
                return Some(x | (u64::from(b) << s));
            }
            x |= u64::from(b & 0x7f) << s;
            s += 7;
        }
        None
    }

    pub(crate) fn read_varint(&mut self) -> Option<i64> {
        let ux = self.read_uvarint()?;
        Some(((ux >> 1) as i64) ^ -((ux & 1) as i64))
    }
}
