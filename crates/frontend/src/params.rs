//! Request parameters as Prometheus's API takes them (query string, and a form body
//! for POST): times and durations, parsed as Strata's server and Prometheus parse
//! them, so the frontend refuses exactly what its downstream would.
//!
//! The time and duration parsers are the model's (`strata_model::api_time`), the
//! same the server uses.

pub use strata_model::api_time::{parse_duration, parse_time};

use crate::error::{Error, Result};

/// All `key=value` pairs of a request, query string first.
#[derive(Debug, Default, Clone)]
pub(crate) struct Params(pub(crate) Vec<(String, String)>);

impl Params {
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
    }

    pub(crate) fn time(&self, key: &str) -> Result<Option<i64>> {
        self.get(key)
            .map(|v| parse_time(v).map_err(|e| Error::BadData(format!("invalid parameter {key:?}: {e}"))))
            .transpose()
    }

    /// The query text (non-empty).
    pub(crate) fn query(&self) -> Result<&str> {
        self.get("query").ok_or_else(|| Error::BadData("invalid parameter \"query\": query must not be empty".into()))
    }

    /// `start`, `end`, `step` of a range query, checked as Prometheus checks them
    /// (the model's one copy of those checks, shared with the server).
    pub(crate) fn range(&self) -> Result<(i64, i64, i64)> {
        strata_model::api_time::range_steps(self.get("start"), self.get("end"), self.get("step"))
            .map_err(Error::BadData)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn times_and_durations() {
        assert_eq!(parse_time("1700000000.123").unwrap(), 1_700_000_000_123);
        assert_eq!(parse_time("2023-11-15T00:13:20+02:00").unwrap(), 1_700_000_000_000);
        assert!(parse_time("NaN").is_err() && parse_time("\u{20ac}a\u{20ac}").is_err());
        assert_eq!(parse_duration("1h30m").unwrap(), 5_400_000);
        assert_eq!(parse_duration("0.5").unwrap(), 500);
        assert!(parse_duration("1m1h").is_err() && parse_duration("1e300").is_err());
    }

    #[test]
    fn range_checks() {
        let p = |pairs: &[(&str, &str)]| Params(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
        assert_eq!(p(&[("start", "0"), ("end", "60"), ("step", "15")]).range().unwrap(), (0, 60_000, 15_000));
        for bad in [
            p(&[("end", "60"), ("step", "15")]),
            p(&[("start", "60"), ("end", "0"), ("step", "15")]),
            p(&[("start", "0"), ("end", "60"), ("step", "0")]),
            p(&[("start", "0"), ("end", "60000"), ("step", "1")]),
            p(&[("start", "x"), ("end", "60"), ("step", "1")]),
        ] {
            assert_eq!(bad.range().unwrap_err().status(), 400);
        }
    }

    proptest! {
        #[test]
        fn parsers_are_total(s in "\\PC{0,30}") {
            let _ = parse_time(&s);
            let _ = parse_duration(&s);
            let p = Params(vec![("start".into(), s.clone()), ("end".into(), s.clone()), ("step".into(), s)]);
            if let Err(e) = p.range() { prop_assert_eq!(e.status(), 400); }
        }
    }
}
