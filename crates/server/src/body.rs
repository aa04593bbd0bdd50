//! The one capped way to read a request body and to undo its snappy compression.
//! `clippy.toml` bans the unbounded alternatives everywhere else.

use axum::body::Body;
use axum::http::HeaderMap;
use bytes::Bytes;

use crate::error::{ApiError, ApiErrorKind, ApiResult};

/// Reads at most `limit` bytes of `body`; a larger body (by `Content-Length` or by
/// what actually arrives) is refused with 413 without reading the rest.
pub(crate) async fn read_capped(headers: &HeaderMap, body: Body, limit: usize) -> ApiResult<Bytes> {
    let too_large =
        || ApiError::new(ApiErrorKind::TooLarge, format!("request body larger than the {limit}-byte limit"));
    let declared = headers.get(axum::http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(too_large());
    }
    #[allow(clippy::disallowed_methods)]
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(s) = source {
            if s.is::<http_body_util::LengthLimitError>() {
                return too_large();
            }
            source = s.source();
        }
        ApiError::bad_data(format!("reading request body: {e}"))
    })
}

/// Decompresses a snappy block-format body. The decompressed length the body
/// declares is checked against `limit` before anything is allocated, including a
/// length of 4 GiB or more that snappy itself (a `u32`) cannot represent: any
/// declared size over the limit is 413.
pub(crate) fn snappy_decompress(compressed: &[u8], limit: usize) -> ApiResult<Vec<u8>> {
    let invalid = |e: &dyn std::fmt::Display| ApiError::bad_data(format!("invalid snappy body: {e}"));
    if let Some(declared) = declared_len(compressed)
        && declared > limit as u64
    {
        return Err(ApiError::new(
            ApiErrorKind::TooLarge,
            format!("snappy body declares {declared} decompressed bytes, over the {limit}-byte limit"),
        ));
    }
    let declared = snap::raw::decompress_len(compressed).map_err(|e| invalid(&e))?;
    let mut out = vec![0u8; declared];
    #[allow(clippy::disallowed_methods)]
    let n = snap::raw::Decoder::new().decompress(compressed, &mut out).map_err(|e| invalid(&e))?;
    out.truncate(n);
    Ok(out)
}

/// The length a snappy block declares: its leading little-endian base-128 varint,
/// read as a `u64` (at most ten bytes). `None` when the header is malformed, which
/// snap then reports.
fn declared_len(compressed: &[u8]) -> Option<u64> {
    let mut n: u64 = 0;
    for (i, &b) in compressed.iter().take(10).enumerate() {
        n |= u64::from(b & 0x7f).checked_shl(7 * i as u32)?;
        if b & 0x80 == 0 {
            return Some(n);
        }
    }
    None
}

/// Compresses a response body with snappy's block format.
pub(crate) fn snappy_compress(raw: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(raw).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_size_is_checked_before_allocating() {
        // Varint 0xffffffff (4 GiB - 1) followed by garbage.
        let body = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00];
        let e = snappy_decompress(&body, 1 << 20).unwrap_err();
        assert_eq!(e.kind, ApiErrorKind::TooLarge);
    }

    #[test]
    fn declared_sizes_beyond_u32_are_too_large_not_invalid() {
        // Varint 2^32 (exactly 4 GiB), then 2^63, then the 10-byte maximum.
        for body in [
            &[0x80, 0x80, 0x80, 0x80, 0x10, 0x00][..],
            &[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01],
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
        ] {
            let e = snappy_decompress(body, 1 << 20).unwrap_err();
            assert_eq!(e.kind, ApiErrorKind::TooLarge, "{}", e.message);
        }
        let e = snappy_decompress(&[0x80, 0x80, 0x80, 0x80, 0x10], 1 << 20).unwrap_err();
        assert!(e.message.contains("declares 4294967296 decompressed bytes"), "{}", e.message);
        // A varint that never ends is malformed, not large.
        let e = snappy_decompress(&[0xff; 12], 1 << 20).unwrap_err();
        assert_eq!(e.kind, ApiErrorKind::BadData);
    }

    #[test]
    fn declared_len_matches_snap() {
        for raw in [&b""[..], b"x", &[7u8; 300], &[1u8; 70_000]] {
            let c = snappy_compress(raw);
            assert_eq!(declared_len(&c), Some(raw.len() as u64));
        }
    }

    #[test]
    fn garbage_is_bad_data() {
        let e = snappy_decompress(b"\x05not snappy at all", 1 << 20).unwrap_err();
        assert_eq!(e.kind, ApiErrorKind::BadData);
    }

    #[test]
    fn roundtrip() {
        let raw = b"hello hello hello hello".repeat(10);
        assert_eq!(snappy_decompress(&snappy_compress(&raw), 1 << 20).unwrap(), raw);
    }
}
