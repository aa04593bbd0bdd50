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
/// declares is checked against `limit` before anything is allocated.
pub(crate) fn snappy_decompress(compressed: &[u8], limit: usize) -> ApiResult<Vec<u8>> {
    let declared =
        snap::raw::decompress_len(compressed).map_err(|e| ApiError::bad_data(format!("invalid snappy body: {e}")))?;
    if declared > limit {
        return Err(ApiError::new(
            ApiErrorKind::TooLarge,
            format!("snappy body declares {declared} decompressed bytes, over the {limit}-byte limit"),
        ));
    }
    let mut out = vec![0u8; declared];
    #[allow(clippy::disallowed_methods)]
    let n = snap::raw::Decoder::new()
        .decompress(compressed, &mut out)
        .map_err(|e| ApiError::bad_data(format!("invalid snappy body: {e}")))?;
    out.truncate(n);
    Ok(out)
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
