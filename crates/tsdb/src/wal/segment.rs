//! Segment files: framing, writing with rotation, and replay with torn-tail repair.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::record::{self, Record};
use crate::{Error, Result};

/// `type: u8 | len: u32 LE | crc32c(type ‖ payload): u32 LE`.
pub(crate) const FRAME_HEADER_LEN: usize = 9;

/// Largest payload accepted on replay; a larger length field means corruption.
const MAX_PAYLOAD: u32 = 1 << 30;

/// Appends one framed record to `out`.
pub(crate) fn put_frame(out: &mut Vec<u8>, typ: u8, payload: &[u8]) {
    let crc = crc32c::crc32c_append(crc32c::crc32c(&[typ]), payload);
    out.push(typ);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
}

pub(crate) fn segment_name(n: u64) -> String {
    format!("{n:08}")
}

/// Segment files in `dir`, sorted by number. Other files are ignored.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    list_numbered(dir, "")
}

/// Checkpoint files in `dir` (`checkpoint.NNNNNNNN`), sorted by the segment number
/// they cover up to.
pub(crate) fn list_checkpoints(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    list_numbered(dir, "checkpoint.")
}

/// Files in `dir` named `prefix` then eight decimal digits, sorted by that number.
fn list_numbered(dir: &Path, prefix: &str) -> Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io("list wal", dir, e))?;
    for entry in rd {
        let entry = entry.map_err(|e| Error::io("list wal", dir, e))?;
        let name = entry.file_name();
        let Some(digits) = name.to_str().and_then(|n| n.strip_prefix(prefix)) else { continue };
        if digits.len() == 8
            && digits.bytes().all(|b| b.is_ascii_digit())
            && let Ok(n) = digits.parse::<u64>()
        {
            out.push((n, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

pub(crate) fn checkpoint_name(n: u64) -> String {
    format!("checkpoint.{n:08}")
}

#[derive(Debug, Default)]
pub(crate) struct ReplayOutcome {
    /// Offset the segment was cut at, when its tail was torn or corrupt.
    pub(crate) truncated_at: Option<u64>,
    pub(crate) reason: Option<String>,
}

/// Reads every intact record of one segment. At the first torn or corrupt frame the
/// file is truncated to the end of the last good record.
pub(crate) fn replay_segment(path: &Path, on_record: &mut impl FnMut(Record)) -> Result<ReplayOutcome> {
    let file = File::open(path).map_err(|e| Error::io("read wal segment", path, e))?;
    let size = file.metadata().map_err(|e| Error::io("stat wal segment", path, e))?.len();
    // Streamed frame by frame: replay memory does not grow with the segment size.
    let mut r = std::io::BufReader::with_capacity(1 << 20, file);
    let mut pos = 0u64;
    let mut outcome = ReplayOutcome::default();
    let mut payload = Vec::new();
    while pos < size {
        match read_frame(&mut r, size - pos, &mut payload) {
            Ok(Some(typ)) => match record::decode(typ, &payload) {
                Ok(rec) => {
                    on_record(rec);
                    pos += (FRAME_HEADER_LEN + payload.len()) as u64;
                }
                Err(e) => {
                    outcome.reason = Some(e.to_string());
                    break;
                }
            },
            Ok(None) => break,
            Err(reason) => {
                outcome.reason = Some(reason.to_string());
                break;
            }
        }
    }
    if pos < size {
        outcome.truncated_at = Some(pos);
        let f = OpenOptions::new().write(true).open(path).map_err(|e| Error::io("open wal segment", path, e))?;
        f.set_len(pos).map_err(|e| Error::io("truncate wal segment", path, e))?;
        f.sync_all().map_err(|e| Error::io("sync wal segment", path, e))?;
    }
    Ok(outcome)
}

/// Reads one frame into `payload` and returns its type; `left` is the number of
/// bytes of the segment not yet read. `Ok(None)` at a clean end.
fn read_frame(r: &mut impl Read, left: u64, payload: &mut Vec<u8>) -> std::result::Result<Option<u8>, &'static str> {
    if left == 0 {
        return Ok(None);
    }
    if left < FRAME_HEADER_LEN as u64 {
        return Err("torn frame header");
    }
    let mut header = [0u8; FRAME_HEADER_LEN];
    r.read_exact(&mut header).map_err(|_| "torn frame header")?;
    let typ = header[0];
    let len = u32::from_le_bytes(header[1..5].try_into().expect("4 bytes"));
    let crc = u32::from_le_bytes(header[5..9].try_into().expect("4 bytes"));
    if len > MAX_PAYLOAD {
        return Err("frame length out of range");
    }
    if left - (FRAME_HEADER_LEN as u64) < u64::from(len) {
        return Err("torn frame payload");
    }
    payload.resize(len as usize, 0);
    r.read_exact(payload).map_err(|_| "torn frame payload")?;
    if crc32c::crc32c_append(crc32c::crc32c(&[typ]), payload) != crc {
        return Err("checksum mismatch");
    }
    Ok(Some(typ))
}

/// The active segment, with rotation when it grows past the size limit.
#[derive(Debug)]
pub(crate) struct SegmentWriter {
    dir: PathBuf,
    n: u64,
    file: File,
    size: u64,
    limit: u64,
    /// A failed write could not be cut back: the file may end in part of a frame,
    /// so the next write starts a new segment (replay cuts the torn tail off and
    /// goes on with the next segment).
    torn: bool,
}

impl SegmentWriter {
    pub(crate) fn create(dir: &Path, n: u64, limit: u64) -> Result<Self> {
        let path = dir.join(segment_name(n));
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io("create wal segment", &path, e))?;
        sync_dir(dir)?;
        let size = file.metadata().map_err(|e| Error::io("stat wal segment", &path, e))?.len();
        Ok(SegmentWriter { dir: dir.to_path_buf(), n, file, size, limit, torn: false })
    }

    /// Writes `buf` (whole frames) to the active segment, first rotating when it would
    /// overflow, then fsyncs it when `sync` is set. If the write or the fsync fails,
    /// the segment is cut back to its length before `buf`, so no partial frame (nor
    /// bytes the kernel may have dropped after a failed fsync) sits before later
    /// records, and the same bytes can be written again.
    pub(crate) fn write_batch(&mut self, buf: &[u8], sync: bool) -> Result<()> {
        if self.torn || (self.size > 0 && self.size + buf.len() as u64 > self.limit) {
            if !self.torn {
                self.sync()?;
            }
            *self = SegmentWriter::create(&self.dir, self.n + 1, self.limit)?;
        }
        let written = fault::check(&self.dir)
            .and_then(|()| self.file.write_all(buf))
            .map_err(|e| Error::io("write wal segment", &self.path(), e))
            .and_then(|()| if sync { self.sync() } else { Ok(()) });
        if let Err(e) = written {
            if self.file.set_len(self.size).is_err() {
                self.torn = true;
            }
            return Err(e);
        }
        self.size += buf.len() as u64;
        Ok(())
    }

    /// Starts a new segment now (even if the active one is small); returns its number.
    pub(crate) fn rotate(&mut self) -> Result<u64> {
        if self.size > 0 || self.torn {
            if !self.torn {
                self.sync()?;
            }
            *self = SegmentWriter::create(&self.dir, self.n + 1, self.limit)?;
        }
        Ok(self.n)
    }

    pub(crate) fn number(&self) -> u64 {
        self.n
    }

    pub(crate) fn sync(&mut self) -> Result<()> {
        fault::check(&self.dir)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| Error::io("fsync wal segment", &self.path(), e))
    }

    fn path(&self) -> PathBuf {
        self.dir.join(segment_name(self.n))
    }
}

/// Write faults for tests: writes and fsyncs of segments in a listed directory fail
/// with "no space left on device". Compiled out of non-test builds.
pub(crate) mod fault {
    use std::path::Path;

    #[cfg(test)]
    static FAILING: parking_lot::Mutex<Vec<std::path::PathBuf>> = parking_lot::Mutex::new(Vec::new());

    /// Makes segment writes in `dir` fail (`on`) or succeed again.
    #[cfg(test)]
    pub(crate) fn set(dir: &Path, on: bool) {
        let mut f = FAILING.lock();
        f.retain(|d| d != dir);
        if on {
            f.push(dir.to_path_buf());
        }
    }

    #[cfg(test)]
    pub(super) fn check(dir: &Path) -> std::io::Result<()> {
        if FAILING.lock().iter().any(|d| d == dir) {
            return Err(std::io::Error::from_raw_os_error(28)); // ENOSPC
        }
        Ok(())
    }

    #[cfg(not(test))]
    #[inline]
    pub(super) fn check(_dir: &Path) -> std::io::Result<()> {
        Ok(())
    }
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io("sync wal dir", dir, e))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::wal::record::encode;

    fn rec(i: u64) -> Record {
        Record::Samples {
            tenant: "t".into(),
            samples: vec![record::RefSample { series_ref: i, sample: strata_model::Sample::new(i as i64, i as f64) }],
        }
    }

    fn framed(recs: &[Record]) -> Vec<u8> {
        let mut out = Vec::new();
        for r in recs {
            let (t, p) = encode(r);
            put_frame(&mut out, t, &p);
        }
        out
    }

    fn replay_all(path: &Path) -> (Vec<Record>, ReplayOutcome) {
        let mut got = Vec::new();
        let o = replay_segment(path, &mut |r| got.push(r)).unwrap();
        (got, o)
    }

    #[test]
    fn torn_tail_is_cut_at_every_offset() {
        let dir = tempfile::tempdir().unwrap();
        let recs: Vec<Record> = (0..3).map(rec).collect();
        let full = framed(&recs);
        let first_two = framed(&recs[..2]).len();
        for cut in first_two..full.len() {
            let path = dir.path().join("00000001");
            std::fs::write(&path, &full[..cut]).unwrap();
            let (got, o) = replay_all(&path);
            assert_eq!(got, recs[..2].to_vec(), "cut at {cut}");
            assert_eq!(o.truncated_at, if cut == first_two { None } else { Some(first_two as u64) });
            assert_eq!(std::fs::metadata(&path).unwrap().len(), first_two as u64);
        }
    }

    #[test]
    fn corrupt_byte_stops_replay_at_that_record() {
        let dir = tempfile::tempdir().unwrap();
        let recs: Vec<Record> = (0..3).map(rec).collect();
        let mut full = framed(&recs);
        let one = framed(&recs[..1]).len();
        full[one + FRAME_HEADER_LEN + 2] ^= 0x40;
        let path = dir.path().join("00000001");
        std::fs::File::create(&path).unwrap().write_all(&full).unwrap();
        let (got, o) = replay_all(&path);
        assert_eq!(got, recs[..1].to_vec());
        assert_eq!(o.reason.as_deref(), Some("checksum mismatch"));
    }

    #[test]
    fn writer_rotates_segments() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SegmentWriter::create(dir.path(), 1, 100).unwrap();
        let frame = framed(&[rec(1)]);
        let mut rotations = 0;
        for _ in 0..20 {
            let before = w.number();
            w.write_batch(&frame, false).unwrap();
            rotations += usize::from(w.number() != before);
        }
        assert!(rotations > 0);
        assert_eq!(list_segments(dir.path()).unwrap().len(), rotations + 1);
    }
}
