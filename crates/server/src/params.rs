//! Request parameters as Prometheus's API takes them: from the query string and,
//! for POST, from a form body; times, durations and `match[]` selectors.

use axum::body::Body;
use axum::http::{HeaderMap, Method, Uri, header};
use strata_model::Matcher;
pub(crate) use strata_model::api_time::{MAX_TIME, MIN_TIME, parse_duration, parse_time};

use crate::body::read_capped;
use crate::error::{ApiError, ApiResult};

/// Largest form body accepted by the query APIs.
const MAX_FORM_BYTES: usize = 4 << 20;

/// How one request reads: see [`Params::read_options`].
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ReadOptions {
    pub(crate) partial_response: bool,
    /// HA replica labels to deduplicate by; empty for no dedup.
    pub(crate) replica_labels: Vec<String>,
}

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

    /// The query-string parameters alone (for endpoints whose body is not a form).
    pub(crate) fn from_query(uri: &Uri) -> Params {
        Params(form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()).into_owned().collect())
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

    /// A duration parameter in milliseconds (either sign), `None` when absent.
    pub(crate) fn duration(&self, key: &str) -> ApiResult<Option<i64>> {
        self.get(key)
            .map(|v| parse_duration(v).map_err(|e| ApiError::bad_data(format!("invalid parameter {key:?}: {e}"))))
            .transpose()
    }

    /// A range query's required `start`, `end` and `step`, checked as Prometheus
    /// checks them: end not before start, a positive step, at most 11,000 points.
    pub(crate) fn range_steps(&self) -> ApiResult<(i64, i64, i64)> {
        strata_model::api_time::range_steps(self.get("start"), self.get("end"), self.get("step"))
            .map_err(ApiError::bad_data)
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

    /// Thanos's `partial_response`: whether an answer may leave out data of a store
    /// that is down (with a warning) instead of failing; `default` when absent.
    pub(crate) fn partial_response(&self, default: bool) -> ApiResult<bool> {
        self.bool_or("partial_response", default)
    }

    /// A boolean parameter (`true|false|1|0`, any case), `default` when absent.
    fn bool_or(&self, key: &str, default: bool) -> ApiResult<bool> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(true),
                "false" | "0" => Ok(false),
                _ => Err(ApiError::bad_data(format!("invalid parameter {key:?}: cannot parse {v:?} to a boolean"))),
            },
        }
    }

    /// The read side's per-request options: Thanos's `partial_response`, `dedup`
    /// (default true when replica labels are configured or given) and
    /// `replicaLabels[]` (replacing the configured replica labels).
    pub(crate) fn read_options(&self, partial_default: bool, replica_labels: &[String]) -> ApiResult<ReadOptions> {
        let given: Vec<String> =
            self.all("replicaLabels[]").into_iter().filter(|l| !l.is_empty()).map(String::from).collect();
        for l in &given {
            if !strata_model::is_valid_label_name(l) {
                return Err(ApiError::bad_data(format!(
                    "invalid parameter \"replicaLabels[]\": {l:?} is not a label name"
                )));
            }
        }
        let labels = if given.is_empty() { replica_labels.to_vec() } else { given };
        let dedup = self.bool_or("dedup", !labels.is_empty())?;
        Ok(ReadOptions {
            partial_response: self.partial_response(partial_default)?,
            replica_labels: if dedup { labels } else { Vec::new() },
        })
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
    use strata_model::api_time::NANOS_PER_MS;

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
    fn times_never_split_a_character() {
        // Six bytes from the end falls inside a multi-byte character.
        for s in ["\u{20ac}a\u{20ac}", "2023-11-14T22:13:20\u{20ac}00", "\u{1f600}", "ab\u{e9}+01:00"] {
            assert!(parse_time(s).unwrap_err().contains("to a valid timestamp"), "{s}");
        }
        assert!(parse_time("2023-11-15T00:13:20+2x:00").is_err());
        assert!(parse_time("2023-11-15T00:13:20+99:00").is_err());
    }

    #[test]
    fn prometheus_min_and_max_time_spellings() {
        assert_eq!(parse_time("-292273086-05-16T16:47:06Z").unwrap(), MIN_TIME);
        assert_eq!(parse_time("292277025-08-18T07:12:54.999999999Z").unwrap(), MAX_TIME);
        assert_eq!(parse_time("1e300").unwrap(), MAX_TIME);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15").unwrap(), 15_000);
        assert_eq!(parse_duration("1.5").unwrap(), 1_500);
        assert_eq!(parse_duration("1h30m").unwrap(), 5_400_000);
        assert_eq!(
            parse_duration("1y2w3d4h5m6s7ms").unwrap(),
            ((((365 + 14 + 3) * 24 + 4) * 60 + 5) * 60 + 6) * 1000 + 7
        );
        assert_eq!(parse_duration("0").unwrap(), 0);
        // Negative seconds parse (Prometheus's parseDuration takes them); callers check the sign.
        assert_eq!(parse_duration("-1").unwrap(), -1_000);
        for bad in ["soon", "", "1m1h", "1h1h", "h", "1x", "-1h", "1.5h", "NaN", "1h "] {
            assert_eq!(parse_duration(bad).unwrap_err(), format!("cannot parse {bad:?} to a valid duration"), "{bad}");
        }
    }

    #[test]
    fn durations_overflowing_int64_nanoseconds_are_refused() {
        for s in ["1e300", "-1e300", "9223372037", "inf", "-Infinity"] {
            assert_eq!(
                parse_duration(s).unwrap_err(),
                format!("cannot parse {s:?} to a valid duration. It overflows int64"),
                "{s}"
            );
        }
        assert_eq!(parse_duration("9223372036").unwrap(), 9_223_372_036_000);
        assert!(parse_duration("293y").is_err());
        assert!(parse_duration("292y").is_ok());
        assert!(parse_duration("99999999999999999999s").is_err());
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

    mod props {
        use proptest::prelude::*;

        use super::*;

        /// Strings a fuzzer would not find quickly: near-valid times and durations
        /// with arbitrary unicode spliced in.
        fn input() -> impl Strategy<Value = String> {
            prop_oneof![
                any::<String>(),
                "[0-9smhdwy.eE+-]{0,12}",
                "[0-9T:.Zz+-]{0,30}",
                (any::<String>(), "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}", any::<String>())
                    .prop_map(|(a, b, c)| format!("{a}{b}{c}")),
                ("[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}", "\\PC{0,3}")
                    .prop_map(|(a, b)| format!("{a}{b}")),
            ]
        }

        fn bad_data(r: ApiResult<impl Sized>) -> Result<(), TestCaseError> {
            if let Err(e) = r {
                prop_assert_eq!(e.kind, crate::error::ApiErrorKind::BadData, "{}", e.message);
            }
            Ok(())
        }

        proptest! {
            #[test]
            fn time_and_duration_parsers_are_total(s in input()) {
                if let Ok(t) = parse_time(&s) {
                    prop_assert!((MIN_TIME..=MAX_TIME).contains(&t));
                }
                if let Ok(d) = parse_duration(&s) {
                    prop_assert!(d.checked_mul(NANOS_PER_MS).is_some());
                }
            }

            #[test]
            fn parameters_are_ok_or_bad_data(s in input()) {
                for key in ["time", "start", "end"] {
                    bad_data(Params::from_pairs(&[(key, &s)]).time_or(key, 0))?;
                }
                bad_data(Params::from_pairs(&[("limit", &s)]).limit())?;
                bad_data(Params::from_pairs(&[("partial_response", &s)]).partial_response(true))?;
                for key in ["step", "timeout", "lookback_delta"] {
                    bad_data(Params::from_pairs(&[(key, &s)]).duration(key))?;
                }
                for (a, b, c) in [(&*s, "10", "1"), ("0", &*s, "1"), ("0", "10", &*s)] {
                    bad_data(Params::from_pairs(&[("start", a), ("end", b), ("step", c)]).range_steps())?;
                }
                bad_data(Params::from_pairs(&[("match[]", &s)]).matcher_sets())?;
            }

            #[test]
            fn selectors_are_ok_or_bad_data(s in "\\PC{0,40}", name in "[a-z_]{1,5}", val in any::<String>()) {
                bad_data(parse_selector(&s))?;
                bad_data(parse_selector(&format!("{name}{{{name}=\"{val}\"}}")))?;
                bad_data(parse_selector(&format!("{name}{{{name}=~`{val}`}}")))?;
            }
        }
    }
}
