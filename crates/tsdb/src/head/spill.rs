//! Closed head chunks moved out of memory: once a closed chunk is older than the
//! head's in-memory window, its bytes are appended to a spill file under
//! `<data_dir>/head_chunks/` and the head keeps only where they are. Reads fetch
//! them with positioned reads (the page cache usually holds them).
//!
//! ```text
//!  spill pass (with the flush lock, so no truncation runs meanwhile):
//!    read lock:  closed in-memory chunks with max_t < newest - window ─► handles
//!    no lock:    append their bytes to the current spill file
//!    write lock: swap each handle still in place for (file, offset, len)
//! ```
//! The files are a cache, not a log: the WAL holds every sample, start-up deletes
//! them and replay rebuilds the head in memory. A file is deleted as soon as no
//! chunk refers to it (the last `Arc<SpillFile>` dropped).

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use super::Head;
use crate::chunk::XorIter;
use crate::{Error, Result};

/// Spill files are rotated at this size, so truncated data frees disk soon.
const FILE_BYTES: u64 = 64 << 20;

/// One spill file; deleted when the last chunk referring to it is gone.
#[derive(Debug)]
pub(crate) struct SpillFile {
    path: PathBuf,
    file: std::fs::File,
}

impl Drop for SpillFile {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), error = %e, "could not delete head chunk file");
        }
    }
}

/// Where a closed chunk's bytes are.
#[derive(Debug, Clone)]
pub(crate) enum ChunkData {
    Mem(Arc<[u8]>),
    File { file: Arc<SpillFile>, offset: u64, len: u32, samples: u16 },
}

/// A chunk's bytes: shared with the head, or read from a spill file.
#[derive(Debug)]
pub(crate) enum ChunkBytes {
    Shared(Arc<[u8]>),
    Read(Vec<u8>),
}

impl std::ops::Deref for ChunkBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            ChunkBytes::Shared(b) => b,
            ChunkBytes::Read(v) => v,
        }
    }
}

impl ChunkData {
    /// The chunk's bytes (read from its file when spilled).
    pub(crate) fn load(&self) -> Result<ChunkBytes> {
        match self {
            ChunkData::Mem(b) => Ok(ChunkBytes::Shared(b.clone())),
            ChunkData::File { file, offset, len, .. } => {
                let mut buf = vec![0u8; *len as usize];
                file.file.read_exact_at(&mut buf, *offset).map_err(|e| Error::io("read head chunk", &file.path, e))?;
                Ok(ChunkBytes::Read(buf))
            }
        }
    }

    /// Encoded size in bytes.
    pub(crate) fn len(&self) -> usize {
        match self {
            ChunkData::Mem(b) => b.len(),
            ChunkData::File { len, .. } => *len as usize,
        }
    }

    /// Samples in the chunk.
    pub(crate) fn samples(&self) -> u16 {
        match self {
            ChunkData::Mem(b) => XorIter::new(b).map_or(0, |it| it.declared_len()),
            ChunkData::File { samples, .. } => *samples,
        }
    }

    pub(crate) fn in_memory(&self) -> bool {
        matches!(self, ChunkData::Mem(_))
    }
}

/// Appends chunks to spill files.
#[derive(Debug)]
pub(crate) struct Spiller {
    dir: PathBuf,
    current: Option<(Arc<SpillFile>, u64)>,
    next: u64,
}

impl Spiller {
    /// Empties (or creates) `dir`: files of an earlier run are stale.
    pub(crate) fn open(dir: &Path) -> Result<Spiller> {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("clear head chunk dir", dir, e)),
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create head chunk dir", dir, e))?;
        Ok(Spiller { dir: dir.to_path_buf(), current: None, next: 0 })
    }

    /// Appends `chunks` (their bytes back to back) and answers where each went.
    pub(crate) fn write(&mut self, chunks: &[Arc<[u8]>]) -> Result<Vec<ChunkData>> {
        let total: u64 = chunks.iter().map(|c| c.len() as u64).sum();
        let (file, start) = self.reserve(total)?;
        let mut buf = Vec::with_capacity(total as usize);
        let mut out = Vec::with_capacity(chunks.len());
        for c in chunks {
            out.push(ChunkData::File {
                file: file.clone(),
                offset: start + buf.len() as u64,
                len: c.len() as u32,
                samples: XorIter::new(c).map_or(0, |it| it.declared_len()),
            });
            buf.extend_from_slice(c);
        }
        file.file.write_all_at(&buf, start).map_err(|e| Error::io("write head chunk", &file.path, e))?;
        Ok(out)
    }

    /// The file and offset for `n` more bytes, rotating to a new file when full.
    fn reserve(&mut self, n: u64) -> Result<(Arc<SpillFile>, u64)> {
        if let Some((f, len)) = &mut self.current
            && *len < FILE_BYTES
        {
            let at = *len;
            *len += n;
            return Ok((f.clone(), at));
        }
        let path = self.dir.join(format!("{:08}", self.next));
        self.next += 1;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| Error::io("create head chunk file", &path, e))?;
        let f = Arc::new(SpillFile { path, file });
        self.current = Some((f.clone(), n));
        Ok((f, 0))
    }
}

/// Series whose chunks one spill step handles (one read-lock hold, one write, one
/// write-lock hold): bounds the memory and the lock time of a pass.
const SPILL_BATCH_SERIES: usize = 4096;

/// Moves `head`'s in-memory closed chunks that end more than `window_ms` before
/// its newest sample to spill files. The caller holds the flush lock (no truncation
/// runs meanwhile). Returns the bytes moved.
pub(crate) fn spill_head(head: &Head, spiller: &Mutex<Spiller>, window_ms: i64) -> Result<u64> {
    let (ids, limit) = {
        let g = head.inner.read();
        if g.max_t == i64::MIN {
            return Ok(0);
        }
        (g.live.iter().collect::<Vec<u32>>(), g.max_t.saturating_sub(window_ms))
    };
    let mut moved = 0u64;
    for batch in ids.chunks(SPILL_BATCH_SERIES) {
        let mut cands: Vec<(u32, usize, Arc<[u8]>)> = Vec::new();
        {
            let g = head.inner.read();
            for &id in batch {
                let s = &g.series[id as usize];
                for (i, c) in s.closed.iter().enumerate().take_while(|(_, c)| c.max_t < limit) {
                    if let ChunkData::Mem(b) = &c.data {
                        cands.push((id, i, b.clone()));
                    }
                }
            }
        }
        if cands.is_empty() {
            continue;
        }
        let bufs: Vec<Arc<[u8]>> = cands.iter().map(|c| c.2.clone()).collect();
        let placed = spiller.lock().write(&bufs)?;
        drop(bufs);
        let mut g = head.inner.write();
        for ((id, i, b), p) in cands.into_iter().zip(placed) {
            // The same chunk still in the same place (it is, unless the series was
            // removed and its id reused, which truncation does and the lock excludes).
            if let Some(c) = g.series.get_mut(id as usize).and_then(|s| s.closed.get_mut(i))
                && matches!(&c.data, ChunkData::Mem(x) if Arc::ptr_eq(x, &b))
            {
                moved += b.len() as u64;
                c.data = p;
            }
        }
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::XorAppender;

    fn chunk(k: i64) -> Arc<[u8]> {
        let mut a = XorAppender::new();
        for i in 0..10 {
            a.append(k * 1000 + i, (k + i) as f64 * 0.5);
        }
        a.finish().into()
    }

    #[test]
    fn spilled_chunks_read_back_and_files_go_with_their_last_chunk() {
        let dir = tempfile::tempdir().unwrap();
        let sdir = dir.path().join("head_chunks");
        std::fs::create_dir_all(&sdir).unwrap();
        std::fs::write(sdir.join("stale"), b"x").unwrap();
        let mut s = Spiller::open(&sdir).unwrap();
        assert_eq!(std::fs::read_dir(&sdir).unwrap().count(), 0, "stale files removed");
        let chunks: Vec<Arc<[u8]>> = (0..3).map(chunk).collect();
        let placed = s.write(&chunks).unwrap();
        for (c, p) in chunks.iter().zip(&placed) {
            assert_eq!(&p.load().unwrap()[..], &c[..]);
            assert_eq!(p.samples(), 10);
            assert_eq!(p.len(), c.len());
            assert!(!p.in_memory());
        }
        assert_eq!(std::fs::read_dir(&sdir).unwrap().count(), 1);
        // The spiller's own handle goes with a rotation; the chunks' handles last.
        s.current = None;
        drop(s);
        assert_eq!(std::fs::read_dir(&sdir).unwrap().count(), 1);
        drop(placed);
        assert_eq!(std::fs::read_dir(&sdir).unwrap().count(), 0, "file deleted with its last chunk");
    }
}
