//! Request parameters as Prometheus's API takes them: from the query string and,
//! for POST, from a form body; times, durations and `match[]` selectors.

use axum::body::Body;
use axum::http::{HeaderMap, Method, Uri, header};
use strata_model::Matcher;

use crate::body::read_capped;
use crate::error::{ApiError, ApiResult};

/// Largest form body accepted by the query APIs.
const MAX_FORM_BYTES: usize = 4 << 20;

/// Prometheus's minimum and maximum API times, in milliseconds.
pub(crate) const MIN_TIME: i64 = -9_223_309_901_257_974;
pub(crate) const MAX_TIME: i64 = 9_223_309_901_257_974;

/// All `key=value` pairs of a request, query string first.
#[derive(Debug, Default)]
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    pub(crate) async fn read(method: &Method, uri: &Uri, headers: &HeaderMap, body: Body) -> ApiResult<Params> {
        let mut pairs: Vec<(String, String)> =
            form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()).into_owned().collect();
        let is_form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
        if *method == Method::POST && is_form {
            let body = read_capped(headers, body, MAX_FORM_BYTES).await?;
            pairs.extend(form_urlencoded::parse(&body).into_owned());
        }
        Ok(Params(pairs))
    }

    #[cfg(test)]
    pub(crate) fn from_pairs(pairs: &[(&str, &str)]) -> Params {
        Params(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
    }

    pub(crate) fn all(&self, key: &str) -> Vec<&str> {
        self.0.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect()
    }

    /// A time parameter, or `default` when absent.
    pub(crate) fn time_or(&self, key: &str, default: i64) -> ApiResult<i64> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => parse_time(v).map_err(|e| ApiError::bad_data(format!("invalid parameter {key:?}: {e}"))),
        }
    }

    /// A non-negative integer parameter (0 when absent).
    pub(crate) fn limit(&self) -> ApiResult<usize> {
        match self.get("limit") {
            None => Ok(0),
            Some(v) => v.parse::<usize>().map_err(|_| {
                ApiError::bad_data(format!("invalid parameter \"limit\": cannot parse {v:?} to a non-negative integer"))
            }),
        }
    }

    /// Every `match[]` selector parsed into matcher sets (one per alternative).
    pub(crate) fn matcher_sets(&self) -> ApiResult<Vec<Vec<Matcher>>> {
        let mut out = Vec::new();
        for s in self.all("match[]") {
            out.extend(parse_selector(s)?);
        }
        Ok(out)
    }
}

/// Parses a Prometheus API time: Unix seconds with optional fraction, or RFC 3339.
pub(crate) fn parse_time(s: &str) -> Result<i64, String> {
    if let Ok(f) = s.parse::<f64>() {
        if !f.is_finite() {
            return Err(format!("cannot parse {s:?} to a valid timestamp"));
        }
        return Ok((f * 1000.0).round().clamp(MIN_TIME as f64, MAX_TIME as f64) as i64);
    }
    parse_rfc3339(s).ok_or_else(|| format!("cannot parse {s:?} to a valid timestamp"))
}

/// RFC 3339 with `Z` or a `±hh:mm` offset, and optional fractional seconds.
fn parse_rfc3339(s: &str) -> Option<i64> {
    let (base, offset_ms) = if let Some(b) = s.strip_suffix('Z').or_else(|| s.strip_suffix('z')) {
        (b, 0i64)
    } else {
        let pos = s.len().checked_sub(6)?;
        let (b, off) = s.split_at(pos);
        let sign = match off.as_bytes()[0] {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        let h: i64 = off.get(1..3)?.parse().ok()?;
        let m: i64 = off.get(4..6)?.parse().ok()?;
        (b, sign * (h * 3600 + m * 60) * 1000)
    };
    let t = humantime::parse_rfc3339_weak(base).ok()?;
    let ms = match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    };
    Some(ms - offset_ms)
}

/// Parses a duration: seconds as a number, or Prometheus syntax such as `1h30m`.
pub(crate) fn parse_duration(s: &str) -> Result<i64, String> {
    if let Ok(f) = s.parse::<f64>() {
        if !f.is_finite() || f < 0.0 {
            return Err(format!("cannot parse {s:?} to a valid duration"));
        }
        return Ok((f * 1000.0).round() as i64);
    }
    promql_parser::util::parse_duration(s)
        .map(|d| d.as_millis() as i64)
        .map_err(|_| format!("cannot parse {s:?} to a valid duration"))
}

/// Parses a series selector such as `up{job="a"}` into matcher sets (more than one
/// when it uses `or`). Each set must have a matcher that does not match the empty
/// string, as Prometheus requires.
pub(crate) fn parse_selector(s: &str) -> ApiResult<Vec<Vec<Matcher>>> {
    let sets = strata_promql::parse_selector(s)
        .map_err(|e| ApiError::bad_data(format!("invalid parameter \"match[]\": {e}")))?;
    if sets.iter().any(|set| set.iter().all(Matcher::matches_empty)) {
        return Err(ApiError::bad_data(
            "invalid parameter \"match[]\": match[] must contain at least one non-empty matcher",
        ));
    }
    Ok(sets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time("1700000000").unwrap(), 1_700_000_000_000);
        assert_eq!(parse_time("1700000000.123").unwrap(), 1_700_000_000_123);
        assert_eq!(parse_time("2023-11-14T22:13:20Z").unwrap(), 1_700_000_000_000);
        assert_eq!(parse_time("2023-11-14T22:13:20.5Z").unwrap(), 1_700_000_000_500);
        assert_eq!(parse_time("2023-11-15T00:13:20+02:00").unwrap(), 1_700_000_000_000);
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("NaN").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15").unwrap(), 15_000);
        assert_eq!(parse_duration("1.5").unwrap(), 1_500);
        assert_eq!(parse_duration("1h30m").unwrap(), 5_400_000);
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn selectors() {
        let sets = parse_selector(r#"up{job=~"a|b"}"#).unwrap();
        assert_eq!(sets.len(), 1);
        assert_eq!(sets[0].len(), 2);
        assert!(parse_selector(r#"{job=""}"#).is_err());
        assert!(parse_selector("sum(up)").is_err());
        assert!(parse_selector("up{").is_err());
        let p = Params::from_pairs(&[("match[]", "up"), ("match[]", "{a=\"b\"}")]);
        assert_eq!(p.matcher_sets().unwrap().len(), 2);
    }
}
