//! Operator endpoints.

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use crate::AppState;
use crate::error::{ApiError, ApiErrorKind, ApiResult};
use crate::read::{Success, success};

#[derive(Debug, Serialize)]
pub(crate) struct FlushedBlock {
    tenant: String,
    ulid: String,
    min_time: i64,
    max_time: i64,
    series: u64,
    samples: u64,
    bytes: u64,
}

#[derive(Debug, Serialize)]
pub(crate) struct Flushed {
    blocks: Vec<FlushedBlock>,
}

/// `POST /api/v1/admin/flush`: cuts everything in every head into blocks and answers
/// once they are uploaded (503 if the store fails; nothing is lost, the data stays
/// in the head and WAL and the background flusher keeps retrying).
pub(crate) async fn flush(State(st): State<AppState>) -> ApiResult<Json<Success<Flushed>>> {
    let db = st.tsdb()?.clone();
    let blocks =
        st.blocks().ok_or_else(|| ApiError::new(ApiErrorKind::Unavailable, "block storage is not configured"))?.clone();
    let metas = db.flush(blocks.bucket.store(), blocks.policy, true).await?;
    let mut out = Vec::with_capacity(metas.len());
    for m in metas {
        if let Ok(t) = strata_model::TenantId::new(&m.tenant) {
            blocks.bucket.invalidate(&t);
        }
        out.push(FlushedBlock {
            bytes: m.data_bytes(),
            tenant: m.tenant,
            ulid: m.ulid.to_string(),
            min_time: m.min_time,
            max_time: m.max_time,
            series: m.stats.num_series,
            samples: m.stats.num_samples,
        });
    }
    Ok(success(Flushed { blocks: out }, Vec::new()))
}
