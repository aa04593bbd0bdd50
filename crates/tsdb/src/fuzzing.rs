//! Entry points for the fuzz targets in `fuzz/`; not a stable API. Each function
//! runs the real decoding code on untrusted bytes and asserts the properties the
//! rest of the crate relies on; it panics only when one of those breaks.

use std::path::Path;
use std::sync::Arc;

use crate::chunk::{XorAppender, XorIter};
use crate::head::spill::{ChunkData, Spiller};
use crate::wal::Record;
use crate::wal::record;
use crate::wal::segment::{self, replay_segment};

/// One WAL record: the first byte is the record type, the rest its payload. A
/// record that decodes re-encodes to bytes that decode to the same record.
pub fn wal_record(data: &[u8]) {
    let Some((&typ, payload)) = data.split_first() else { return };
    let Ok(rec) = record::decode(typ, payload) else { return };
    let (typ2, bytes) = record::encode(&rec);
    assert_eq!(typ2, typ, "record type changed on re-encode");
    let again = record::decode(typ2, &bytes).expect("a re-encoded record decodes");
    assert_eq!(record::encode(&again).1, bytes, "re-encoding is not stable");
}

/// One WAL segment file: `data` is written as segment `00000000` in `dir` and
/// replayed. Replay must cut the file to a prefix of whole, valid records, and a
/// second replay of what is left must read the same records and cut nothing.
pub fn wal_segment(dir: &Path, data: &[u8]) {
    let path = dir.join(segment::segment_name(0));
    std::fs::write(&path, data).expect("write segment");
    let mut first = Vec::new();
    let outcome = replay_segment(&path, &mut |r: Record| first.push(r)).expect("replay");
    let len = std::fs::metadata(&path).expect("stat segment").len();
    match outcome.truncated_at {
        Some(at) => {
            assert_eq!(len, at, "segment not cut where replay stopped");
            assert!(at < data.len() as u64, "cut past the end");
            assert!(outcome.reason.is_some(), "a cut without a reason");
        }
        None => assert_eq!(len, data.len() as u64, "intact segment changed"),
    }
    let mut second = Vec::new();
    let again = replay_segment(&path, &mut |r: Record| second.push(r)).expect("second replay");
    assert_eq!(again.truncated_at, None, "the kept prefix is not valid: {:?}", again.reason);
    assert_eq!(first, second, "the kept prefix replays differently");
}

/// One XOR chunk. Decoding never panics; a chunk that decodes to strictly
/// increasing timestamps re-encodes to a chunk with the same samples.
pub fn xor_chunk(data: &[u8]) {
    let Ok(it) = XorIter::new(data) else { return };
    let declared = it.declared_len();
    let mut samples = Vec::new();
    for s in it {
        match s {
            Ok(s) => samples.push(s),
            Err(_) => return,
        }
    }
    assert_eq!(samples.len(), usize::from(declared), "a complete decode yields the declared count");
    if !samples.windows(2).all(|w| w[0].t < w[1].t) {
        return;
    }
    let mut a = XorAppender::new();
    for s in &samples {
        a.append(s.t, s.v);
    }
    let bytes = a.finish();
    let back: Vec<_> =
        XorIter::new(&bytes).expect("header").collect::<Result<_, _>>().expect("re-encoded chunk decodes");
    assert_eq!(back.len(), samples.len());
    for (x, y) in back.iter().zip(&samples) {
        assert!(x.t == y.t && x.v.to_bits() == y.v.to_bits(), "re-encoded chunk differs: {x:?} vs {y:?}");
    }
}

/// A head chunk file: `data` is `offset: u32 LE | len: u16 LE | file bytes`. The
/// file bytes are written as a spill file under `dir`, and the chunk at
/// `(offset, len)` is read back and decoded the way a head read does.
pub fn head_chunk_file(dir: &Path, data: &[u8]) {
    if data.len() < 6 {
        return;
    }
    let offset = u64::from(u32::from_le_bytes(data[..4].try_into().expect("4 bytes")));
    let len = u32::from(u16::from_le_bytes(data[4..6].try_into().expect("2 bytes")));
    let file_bytes = &data[6..];
    let mut spiller = Spiller::open(dir).expect("open spill dir");
    let placed = spiller.write(&[Arc::from(file_bytes)]).expect("write spill file");
    let Some(ChunkData::File { file, .. }) = placed.into_iter().next() else { panic!("a chunk written to a file") };
    let samples = XorIter::new(file_bytes.get(offset as usize..).unwrap_or_default()).map_or(0, |it| it.declared_len());
    let chunk = ChunkData::File { file, offset, len, samples };
    let in_file = len == 0 || offset + u64::from(len) <= file_bytes.len() as u64;
    match chunk.load() {
        Ok(bytes) => {
            assert!(in_file, "read {len} bytes at {offset} of a {}-byte file", file_bytes.len());
            let want = file_bytes.get(offset as usize..).and_then(|b| b.get(..len as usize)).unwrap_or_default();
            assert_eq!(&bytes[..], want);
            assert_eq!(chunk.len(), len as usize);
            if let Ok(it) = XorIter::new(&bytes) {
                let _ = it.declared_len();
                let _ = it.map_while(Result::ok).count();
            }
        }
        Err(_) => assert!(!in_file, "a chunk inside the file could not be read"),
    }
}

/// Frames `records` as the WAL writes them (seed corpora for the segment target).
pub fn wal_frames(records: &[Record]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        let (typ, payload) = record::encode(r);
        segment::put_frame(&mut out, typ, &payload);
    }
    out
}
