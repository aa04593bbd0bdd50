//! A query answer as Prometheus's HTTP API writes it, parsed just enough to merge
//! range pieces and to cache them: labels keep the order they came in, values stay
//! the strings the engine wrote (`"1.5"`, `"NaN"`, `"+Inf"`), timestamps are
//! milliseconds and are written back as Prometheus writes them (whole seconds as
//! integers). Native histograms are kept as opaque JSON beside their timestamps.

use std::collections::HashMap;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// The `data` and the annotations of a successful answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromResponse {
    pub data: QueryData,
    /// Why the answer may be incomplete (a store down under partial responses, ...).
    pub warnings: Vec<String>,
    /// Informational annotations (for example "metric might not be a counter").
    pub infos: Vec<String>,
    /// The downstream's `stats` member when the request asked for one; dropped when
    /// pieces are merged, since per-piece statistics do not add up to the query's.
    pub stats: Option<serde_json::Value>,
}

/// `data`: `{"resultType": ..., "result": ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
pub enum QueryData {
    Matrix(Vec<RangeSeries>),
    Vector(Vec<InstantSample>),
    Scalar(Point),
    String(Point),
}

impl QueryData {
    /// Prometheus's name of the type.
    pub fn type_name(&self) -> &'static str {
        match self {
            QueryData::Matrix(_) => "matrix",
            QueryData::Vector(_) => "vector",
            QueryData::Scalar(_) => "scalar",
            QueryData::String(_) => "string",
        }
    }
}

/// One series of a matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RangeSeries {
    pub metric: Metric,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<Point>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub histograms: Vec<HistogramPoint>,
}

/// One element of a vector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstantSample {
    pub metric: Metric,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Point>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub histogram: Option<HistogramPoint>,
}

/// `[<unix seconds>, "<value>"]`: a timestamp in milliseconds and the value's text.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub t: i64,
    pub v: String,
}

/// `[<unix seconds>, {...}]`: a native histogram, kept as the downstream wrote it.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramPoint {
    pub t: i64,
    pub h: serde_json::Value,
}

/// A label set in the order the downstream wrote it (Prometheus: sorted by name).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Metric(pub Vec<(String, String)>);

/// Milliseconds written as Prometheus writes API times: seconds, an integer when whole.
struct Ts(i64);

impl Serialize for Ts {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        if self.0 % 1000 == 0 { s.serialize_i64(self.0 / 1000) } else { s.serialize_f64(self.0 as f64 / 1000.0) }
    }
}

fn ts_from_secs<E: serde::de::Error>(secs: f64) -> std::result::Result<i64, E> {
    if !secs.is_finite() || secs.abs() > 9.3e15 {
        return Err(E::custom(format!("timestamp {secs} out of range")));
    }
    Ok((secs * 1000.0).round() as i64)
}

impl Serialize for Point {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        (Ts(self.t), &self.v).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Point {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let (secs, v) = <(f64, String)>::deserialize(d)?;
        Ok(Point { t: ts_from_secs(secs)?, v })
    }
}

impl Serialize for HistogramPoint {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        (Ts(self.t), &self.h).serialize(s)
    }
}

impl<'de> Deserialize<'de> for HistogramPoint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let (secs, h) = <(f64, serde_json::Value)>::deserialize(d)?;
        Ok(HistogramPoint { t: ts_from_secs(secs)?, h })
    }
}

impl Serialize for Metric {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for Metric {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Metric;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a label set")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> std::result::Result<Metric, A::Error> {
                let mut out = Vec::with_capacity(a.size_hint().unwrap_or(0));
                while let Some((k, v)) = a.next_entry::<String, String>()? {
                    out.push((k, v));
                }
                Ok(Metric(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// The whole success body, as written to clients.
#[derive(Serialize)]
struct SuccessBody<'a> {
    status: &'static str,
    data: &'a QueryData,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    warnings: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    infos: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    stats: &'a Option<serde_json::Value>,
}

/// The whole body as a downstream writes it; `status` decides success or error.
#[derive(Deserialize)]
struct AnyBody {
    status: String,
    data: Option<QueryData>,
    #[serde(default)]
    warnings: Option<Vec<String>>,
    #[serde(default)]
    infos: Option<Vec<String>>,
    #[serde(default)]
    stats: Option<serde_json::Value>,
    #[serde(rename = "errorType", default)]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

/// A downstream's error body, when it is one.
pub(crate) struct ErrorBody {
    pub(crate) error_type: String,
    pub(crate) error: String,
}

impl PromResponse {
    /// An answer with no annotations.
    pub fn new(data: QueryData) -> Self {
        PromResponse { data, warnings: Vec::new(), infos: Vec::new(), stats: None }
    }

    /// `{"status":"success","data":...,"warnings":...,"infos":...}` in Prometheus's
    /// member order; empty annotations are left out, as Prometheus leaves them out.
    pub fn to_json(&self) -> Vec<u8> {
        let body = SuccessBody {
            status: "success",
            data: &self.data,
            warnings: &self.warnings,
            infos: &self.infos,
            stats: &self.stats,
        };
        // Serializing strings, numbers and JSON values into a Vec cannot fail.
        serde_json::to_vec(&body).unwrap_or_default()
    }

    /// Parses a body in Prometheus's shape: `Ok(Ok(answer))` for a success,
    /// `Ok(Err(error))` for an error body, `Err` for anything else.
    pub(crate) fn parse(body: &[u8]) -> std::result::Result<std::result::Result<PromResponse, ErrorBody>, String> {
        let b: AnyBody = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        match b.status.as_str() {
            "success" => {
                let data = b.data.ok_or("a success without data")?;
                Ok(Ok(PromResponse {
                    data,
                    warnings: b.warnings.unwrap_or_default(),
                    infos: b.infos.unwrap_or_default(),
                    stats: b.stats,
                }))
            }
            "error" => Ok(Err(ErrorBody {
                error_type: b.error_type.unwrap_or_else(|| "internal".into()),
                error: b.error.unwrap_or_default(),
            })),
            other => Err(format!("status {other:?}")),
        }
    }

    /// The cache's encoding: the client JSON, read back by [`PromResponse::parse`].
    pub(crate) fn from_cached(bytes: &[u8]) -> Option<PromResponse> {
        PromResponse::parse(bytes).ok()?.ok()
    }
}

fn push_unique(into: &mut Vec<String>, from: Vec<String>) {
    for w in from {
        if !into.contains(&w) {
            into.push(w);
        }
    }
}

/// Merges the answers of consecutive pieces of one range query, in time order:
/// each series' points are concatenated (pieces do not overlap, so no point is
/// repeated), series are sorted by labels as Prometheus sorts a range query's
/// matrix, and annotations are the union in order of first appearance.
pub fn merge_pieces(pieces: Vec<PromResponse>) -> Result<PromResponse> {
    if pieces.len() == 1 {
        return pieces.into_iter().next().ok_or_else(|| Error::Internal("no pieces".into()));
    }
    let mut series: Vec<RangeSeries> = Vec::new();
    let mut index: HashMap<Metric, usize> = HashMap::new();
    let (mut warnings, mut infos) = (Vec::new(), Vec::new());
    for p in pieces {
        let QueryData::Matrix(m) = p.data else {
            return Err(Error::Internal(format!(
                "a range query piece answered a {} instead of a matrix",
                p.data.type_name()
            )));
        };
        for s in m {
            match index.get(&s.metric) {
                Some(&i) => {
                    let into = &mut series[i];
                    into.values.extend(s.values);
                    into.histograms.extend(s.histograms);
                }
                None => {
                    index.insert(s.metric.clone(), series.len());
                    series.push(s);
                }
            }
        }
        push_unique(&mut warnings, p.warnings);
        push_unique(&mut infos, p.infos);
    }
    series.sort_by(|a, b| a.metric.cmp(&b.metric));
    Ok(PromResponse { data: QueryData::Matrix(series), warnings, infos, stats: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_prometheus_json_exactly() {
        let text = r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"up","job":"a"},"values":[[1700000000,"1"],[1700000000.5,"NaN"]]},{"metric":{},"histograms":[[1,{"count":"2"}]]}]},"warnings":["w"]}"#;
        let r = PromResponse::parse(text.as_bytes()).unwrap().ok().unwrap();
        assert_eq!(String::from_utf8(r.to_json()).unwrap(), text);
        for text in [
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"b":"1","a":"2"},"value":[1.001,"+Inf"]}]},"infos":["i"]}"#,
            r#"{"status":"success","data":{"resultType":"scalar","result":[-1.5,"2"]}}"#,
            r#"{"status":"success","data":{"resultType":"string","result":[0,"x"]}}"#,
        ] {
            let r = PromResponse::parse(text.as_bytes()).unwrap().ok().unwrap();
            assert_eq!(String::from_utf8(r.to_json()).unwrap(), text);
        }
    }

    #[test]
    fn error_bodies_and_garbage() {
        let e = PromResponse::parse(br#"{"status":"error","errorType":"bad_data","error":"nope"}"#).unwrap();
        let e = e.err().unwrap();
        assert_eq!((e.error_type.as_str(), e.error.as_str()), ("bad_data", "nope"));
        assert!(PromResponse::parse(b"<html>").is_err());
        assert!(PromResponse::parse(br#"{"status":"success"}"#).is_err());
        assert!(PromResponse::parse(br#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1e300,"1"]]}]}}"#).is_err());
    }

    fn matrix(series: &[(&str, &[i64])], warnings: &[&str]) -> PromResponse {
        let data = QueryData::Matrix(
            series
                .iter()
                .map(|(job, ts)| RangeSeries {
                    metric: Metric(vec![("job".into(), job.to_string())]),
                    values: ts.iter().map(|&t| Point { t, v: t.to_string() }).collect(),
                    histograms: vec![],
                })
                .collect(),
        );
        PromResponse { warnings: warnings.iter().map(|w| w.to_string()).collect(), ..PromResponse::new(data) }
    }

    #[test]
    fn merge_concatenates_per_series_and_sorts() {
        let a = matrix(&[("b", &[1, 2]), ("c", &[2])], &["w1"]);
        let b = matrix(&[("a", &[3]), ("b", &[3, 4])], &["w1", "w2"]);
        let m = merge_pieces(vec![a, b]).unwrap();
        assert_eq!(m, matrix(&[("a", &[3]), ("b", &[1, 2, 3, 4]), ("c", &[2])], &["w1", "w2"]));
        let v = PromResponse::new(QueryData::Vector(vec![]));
        assert!(matches!(merge_pieces(vec![m, v]), Err(Error::Internal(_))));
    }
}
