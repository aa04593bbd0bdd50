//! The on-disk cache of a generated workload: `bodies.bin` (snappy-compressed remote
//! write 1.0 bodies in send order) and `manifest.json`.
//!
//! ```text
//! bodies.bin = "STRBODY1" record*
//! record     = len:u32le shard:u16le samples:u32le min_ts:i64le max_ts:i64le body[len]
//! ```

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};

use super::wire;

const MAGIC: &[u8; 8] = b"STRBODY1";
pub(crate) const BODIES_FILE: &str = "bodies.bin";

/// One ready-to-send request body.
#[derive(Debug, Clone)]
pub struct Body {
    /// The queue-manager shard that produced it (bodies of one shard must stay in order).
    pub shard: u16,
    /// Samples in the body (stale markers included).
    pub samples: u32,
    /// Lowest sample timestamp, ms.
    pub min_ts: i64,
    /// Highest sample timestamp, ms.
    pub max_ts: i64,
    /// The snappy (block format) compressed `WriteRequest`.
    pub data: Vec<u8>,
}

/// Appends bodies to `bodies.bin`.
#[derive(Debug)]
pub(crate) struct BodyWriter {
    out: BufWriter<File>,
    snappy: snap::raw::Encoder,
    pub(crate) bodies: u64,
    pub(crate) compressed_bytes: u64,
    pub(crate) raw_bytes: u64,
}

impl BodyWriter {
    pub(crate) fn create(path: &Path) -> Result<Self> {
        let file = File::create(path).with_context(|| format!("create {}", path.display()))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(MAGIC)?;
        Ok(Self { out, snappy: snap::raw::Encoder::new(), bodies: 0, compressed_bytes: 0, raw_bytes: 0 })
    }

    /// Compresses and appends one uncompressed `WriteRequest`.
    pub(crate) fn write(&mut self, shard: u16, samples: u32, min_ts: i64, max_ts: i64, raw: &[u8]) -> Result<()> {
        let data = self.snappy.compress_vec(raw)?;
        self.out.write_all(&u32::try_from(data.len())?.to_le_bytes())?;
        self.out.write_all(&shard.to_le_bytes())?;
        self.out.write_all(&samples.to_le_bytes())?;
        self.out.write_all(&min_ts.to_le_bytes())?;
        self.out.write_all(&max_ts.to_le_bytes())?;
        self.out.write_all(&data)?;
        self.bodies += 1;
        self.compressed_bytes += data.len() as u64;
        self.raw_bytes += raw.len() as u64;
        Ok(())
    }

    pub(crate) fn finish(mut self) -> Result<()> {
        self.out.flush()?;
        self.out.get_ref().sync_all()?;
        Ok(())
    }
}

/// Reads every body of `dir/bodies.bin`, calling `f` on each in file order.
pub(crate) fn for_each_body(dir: &Path, mut f: impl FnMut(Body) -> Result<()>) -> Result<()> {
    let path = dir.join(BODIES_FILE);
    let file = File::open(&path).with_context(|| format!("open {}", path.display()))?;
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic)?;
    ensure!(&magic == MAGIC, "{} is not a bodies file", path.display());
    let mut header = [0u8; 4 + 2 + 4 + 8 + 8];
    loop {
        match r.read_exact(&mut header) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        let len = u32::from_le_bytes(header[0..4].try_into()?) as usize;
        let mut data = vec![0u8; len];
        r.read_exact(&mut data).context("truncated bodies file")?;
        f(Body {
            shard: u16::from_le_bytes(header[4..6].try_into()?),
            samples: u32::from_le_bytes(header[6..10].try_into()?),
            min_ts: i64::from_le_bytes(header[10..18].try_into()?),
            max_ts: i64::from_le_bytes(header[18..26].try_into()?),
            data,
        })?;
    }
}

/// Returns `body` with every timestamp moved by `delta_ms` and the labels `extra`
/// added to every series (re-compressed), and checks the body holds what its record
/// header says.
pub(crate) fn shift_body(
    body: Body,
    delta_ms: i64,
    extra: &[(String, String)],
    dec: &mut snap::raw::Decoder,
    enc: &mut snap::raw::Encoder,
) -> Result<Body> {
    // Our own generated bodies, read back for checks: no untrusted size to cap.
    #[allow(clippy::disallowed_methods)]
    let raw = dec.decompress_vec(&body.data).context("snappy body")?;
    let (shifted, stats) = wire::shift_timestamps(&raw, delta_ms, extra)?;
    if stats.samples != u64::from(body.samples)
        || stats.min_ts != body.min_ts + delta_ms
        || stats.max_ts != body.max_ts + delta_ms
    {
        bail!("body content does not match its header: cache is corrupt, delete it");
    }
    Ok(Body {
        shard: body.shard,
        samples: body.samples,
        min_ts: stats.min_ts,
        max_ts: stats.max_ts,
        data: enc.compress_vec(&shifted)?,
    })
}
