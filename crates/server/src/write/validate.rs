//! Series validation as Prometheus and Mimir do it: valid names, no duplicate names,
//! empty values dropped, configurable count and length limits.

use strata_model::{METRIC_NAME, is_valid_label_name, is_valid_metric_name};

use crate::config::ServerConfig;

/// Why a whole series was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum SeriesProblem {
    MissingMetricName,
    InvalidMetricName,
    InvalidLabelName,
    DuplicateLabelName,
    TooManyLabels,
    LabelNameTooLong,
    LabelValueTooLong,
    NativeHistogram,
}

impl SeriesProblem {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SeriesProblem::MissingMetricName => "missing_metric_name",
            SeriesProblem::InvalidMetricName => "invalid_metric_name",
            SeriesProblem::InvalidLabelName => "invalid_label_name",
            SeriesProblem::DuplicateLabelName => "duplicate_label_name",
            SeriesProblem::TooManyLabels => "too_many_labels",
            SeriesProblem::LabelNameTooLong => "label_name_too_long",
            SeriesProblem::LabelValueTooLong => "label_value_too_long",
            SeriesProblem::NativeHistogram => "native_histograms_unsupported",
        }
    }
}

/// Cleans one series' labels into `out` (sorted by name, empty values dropped), or
/// says what is wrong with them. `out` is left as it was on error.
pub(crate) fn clean_labels<'a>(
    labels: &[(&'a str, &'a str)],
    cfg: &ServerConfig,
    max_label_names: usize,
    out: &mut Vec<(&'a str, &'a str)>,
) -> Result<(), (SeriesProblem, String)> {
    let start = out.len();
    out.extend(labels.iter().copied().filter(|(_, v)| !v.is_empty()));
    let result = check(&mut out[start..], cfg, max_label_names);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

fn check(
    labels: &mut [(&str, &str)],
    cfg: &ServerConfig,
    max_label_names: usize,
) -> Result<(), (SeriesProblem, String)> {
    if !labels.is_sorted_by(|a, b| a.0 <= b.0) {
        labels.sort_unstable_by(|a, b| a.0.cmp(b.0));
    }
    let show = |labels: &[(&str, &str)]| {
        let mut s = String::from("{");
        for (i, (n, v)) in labels.iter().take(12).enumerate() {
            if i > 0 {
                s.push_str(", ");
            }
            let v: String = v.chars().take(100).collect();
            s.push_str(&format!("{n}={v:?}"));
        }
        s.push('}');
        s
    };
    let name = labels.iter().find(|(n, _)| *n == METRIC_NAME).map(|(_, v)| *v);
    let Some(name) = name else { return Err((SeriesProblem::MissingMetricName, show(labels))) };
    if !is_valid_metric_name(name) {
        return Err((SeriesProblem::InvalidMetricName, format!("{name:?}")));
    }
    if labels.len() > max_label_names {
        return Err((
            SeriesProblem::TooManyLabels,
            format!(
                "{} labels in {} (limit: max_label_names_per_series={max_label_names})",
                labels.len(),
                show(labels)
            ),
        ));
    }
    for (i, (n, v)) in labels.iter().enumerate() {
        if *n != METRIC_NAME && !is_valid_label_name(n) {
            return Err((SeriesProblem::InvalidLabelName, format!("{n:?} in {}", show(labels))));
        }
        if i > 0 && labels[i - 1].0 == *n {
            return Err((SeriesProblem::DuplicateLabelName, format!("{n:?} in {}", show(labels))));
        }
        if n.len() > cfg.max_label_name_length {
            return Err((SeriesProblem::LabelNameTooLong, format!("{} bytes in {}", n.len(), show(labels))));
        }
        if v.len() > cfg.max_label_value_length {
            return Err((SeriesProblem::LabelValueTooLong, format!("{} bytes for {n:?} in {}", v.len(), show(labels))));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(labels: &[(&'static str, &'static str)]) -> Result<Vec<(&'static str, &'static str)>, SeriesProblem> {
        let mut out = Vec::new();
        clean_labels(labels, &ServerConfig::default(), 30, &mut out).map(|_| out).map_err(|e| e.0)
    }

    #[test]
    fn sorts_and_drops_empty_values() {
        assert_eq!(run(&[("b", "1"), ("__name__", "m"), ("a", "")]).unwrap(), vec![("__name__", "m"), ("b", "1")]);
    }

    #[test]
    fn rejects_like_mimir() {
        assert_eq!(run(&[("a", "1")]).unwrap_err(), SeriesProblem::MissingMetricName);
        assert_eq!(run(&[("__name__", "1m")]).unwrap_err(), SeriesProblem::InvalidMetricName);
        assert_eq!(run(&[("__name__", "m"), ("a-b", "1")]).unwrap_err(), SeriesProblem::InvalidLabelName);
        assert_eq!(run(&[("__name__", "m"), ("a", "1"), ("a", "2")]).unwrap_err(), SeriesProblem::DuplicateLabelName);
        let long: &'static str = Box::leak("x".repeat(3000).into_boxed_str());
        assert_eq!(run(&[("__name__", "m"), ("a", long)]).unwrap_err(), SeriesProblem::LabelValueTooLong);
        let many: Vec<(&'static str, &'static str)> = std::iter::once(("__name__", "m"))
            .chain((0..40).map(|i| (&*Box::leak(format!("l{i}").into_boxed_str()), "v")))
            .collect();
        assert_eq!(run(&many).unwrap_err(), SeriesProblem::TooManyLabels);
    }
}
