//! External labels: labels every series of a store carries without storing them
//! (a Prometheus's `global.external_labels`, a Strata's `external_labels`, a peer's
//! configured labels). They identify where data comes from in a global view.

use std::collections::BTreeMap;

use async_trait::async_trait;
use strata_model::{Error, Labels, MatchOp, Matcher, Querier, Result, SelectHints, Series, TimeRange, WindowedSeries};

/// A store's external labels, sorted. Empty: the store adds nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExternalLabels(Labels);

impl ExternalLabels {
    /// Checks the names (Prometheus label name rules; no `__name__`) and values (non-empty).
    pub fn new(map: &BTreeMap<String, String>) -> Result<Self> {
        for (name, value) in map {
            if !strata_model::is_valid_label_name(name) || name == strata_model::METRIC_NAME {
                return Err(Error::storage(format!("invalid external label name {name:?}")));
            }
            if value.is_empty() {
                return Err(Error::storage(format!("external label {name:?} has an empty value")));
            }
        }
        Ok(ExternalLabels(Labels::from_pairs(map.iter())))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn labels(&self) -> &Labels {
        &self.0
    }

    /// The matchers left for the store to evaluate, or `None` when the external
    /// labels contradict one (`{cluster="eu"}` asked of the `us` store). Matchers
    /// on an external label that it satisfies are dropped: the store does not hold
    /// that label. When nothing selective is left, `__name__=~".+"` stands in (every
    /// series has a name), so the store is never asked with an empty selection.
    pub fn prune(&self, matchers: &[Matcher]) -> Option<Vec<Matcher>> {
        let mut out = Vec::with_capacity(matchers.len());
        for m in matchers {
            match self.0.get(&m.name) {
                Some(v) if !m.matches(v) => return None,
                Some(_) => {}
                None => out.push(m.clone()),
            }
        }
        Some(out)
    }

    /// [`Self::prune`] for a selection: never empty, never all-matching-empty.
    fn prune_select(&self, matchers: &[Matcher]) -> Option<Vec<Matcher>> {
        self.prune(matchers).map(selective)
    }

    /// The series' labels with the external labels added; a label the series has
    /// itself wins (as in Prometheus's remote read).
    pub fn apply(&self, labels: &Labels) -> Labels {
        if self.0.is_empty() {
            return labels.clone();
        }
        let mut b = labels.builder();
        for l in self.0.iter() {
            if labels.get(&l.name).is_none() {
                b.set(&l.name, &l.value);
            }
        }
        b.build()
    }
}

/// `matchers`, with `__name__=~".+"` added when every one matches the empty string
/// (or there are none): the same series, as every series has a name, but a
/// selection a store answers (stores refuse or return nothing for unselective ones).
pub(crate) fn selective(mut matchers: Vec<Matcher>) -> Vec<Matcher> {
    if matchers.iter().all(|m| m.matches_empty()) {
        matchers.push(Matcher::new(MatchOp::RegexMatch, strata_model::METRIC_NAME, ".+").expect("static regex"));
    }
    matchers
}

/// A [`Querier`] whose series all carry external labels: selections its labels
/// contradict are answered empty without asking the store, matchers they satisfy
/// are not sent, and every answer is checked against the full selection again.
#[derive(Debug)]
pub struct WithExternalLabels<Q> {
    inner: Q,
    labels: ExternalLabels,
}

impl<Q: Querier> WithExternalLabels<Q> {
    pub fn new(inner: Q, labels: ExternalLabels) -> Self {
        WithExternalLabels { inner, labels }
    }
}

#[async_trait]
impl<Q: Querier> Querier for WithExternalLabels<Q> {
    async fn select(&self, hints: &SelectHints, matchers: &[Matcher]) -> Result<Vec<Series>> {
        if self.labels.is_empty() {
            return self.inner.select(hints, matchers).await;
        }
        let Some(pruned) = self.labels.prune_select(matchers) else { return Ok(Vec::new()) };
        let mut out: Vec<Series> = self
            .inner
            .select(hints, &pruned)
            .await?
            .into_iter()
            .map(|s| Series { labels: self.labels.apply(&s.labels), samples: s.samples })
            .filter(|s| matchers.iter().all(|m| m.matches_labels(&s.labels)))
            .collect();
        // Adding labels can reorder series (a series' own label sorting after an added one).
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }

    async fn select_windows(&self, hints: &SelectHints, matchers: &[Matcher]) -> Result<Vec<WindowedSeries>> {
        if self.labels.is_empty() {
            return self.inner.select_windows(hints, matchers).await;
        }
        let Some(pruned) = self.labels.prune_select(matchers) else { return Ok(Vec::new()) };
        let mut out: Vec<WindowedSeries> = self
            .inner
            .select_windows(hints, &pruned)
            .await?
            .into_iter()
            .map(|s| WindowedSeries { labels: self.labels.apply(&s.labels), ..s })
            .filter(|s| matchers.iter().all(|m| m.matches_labels(&s.labels)))
            .collect();
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }

    async fn label_names(&self, range: TimeRange, matchers: &[Matcher]) -> Result<Vec<String>> {
        let Some(pruned) = self.labels.prune(matchers) else { return Ok(Vec::new()) };
        let mut names = self.inner.label_names(range, &pruned).await?;
        if !names.is_empty() {
            names.extend(self.labels.labels().iter().map(|l| l.name.to_string()));
            names.sort();
            names.dedup();
        }
        Ok(names)
    }

    async fn label_values(&self, name: &str, range: TimeRange, matchers: &[Matcher]) -> Result<Vec<String>> {
        let Some(pruned) = self.labels.prune(matchers) else { return Ok(Vec::new()) };
        match self.labels.labels().get(name) {
            None => self.inner.label_values(name, range, &pruned).await,
            Some(v) => {
                // The store's own values of the label (its series win) and ours, if
                // the store has any series in the selection.
                let (own, names) = futures::future::join(
                    self.inner.label_values(name, range, &pruned),
                    self.inner.label_names(range, &pruned),
                )
                .await;
                let mut values = own?;
                if !names?.is_empty() {
                    values.push(v.to_string());
                }
                values.sort();
                values.dedup();
                Ok(values)
            }
        }
    }

    fn warnings(&self) -> Vec<String> {
        self.inner.warnings()
    }
}

#[cfg(test)]
mod tests {
    use strata_model::Sample;

    use super::*;

    #[derive(Debug)]
    struct Fixed(Vec<Series>);

    #[async_trait]
    impl Querier for Fixed {
        async fn select(&self, _: &SelectHints, matchers: &[Matcher]) -> Result<Vec<Series>> {
            assert!(!matchers.is_empty() && !matchers.iter().all(|m| m.matches_empty()), "unselective: {matchers:?}");
            Ok(self.0.iter().filter(|s| matchers.iter().all(|m| m.matches_labels(&s.labels))).cloned().collect())
        }
        async fn label_names(&self, _: TimeRange, _: &[Matcher]) -> Result<Vec<String>> {
            Ok(vec!["__name__".into(), "job".into()])
        }
        async fn label_values(&self, _: &str, _: TimeRange, _: &[Matcher]) -> Result<Vec<String>> {
            Ok(vec!["x".into()])
        }
    }

    fn ext(pairs: &[(&str, &str)]) -> ExternalLabels {
        ExternalLabels::new(&pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()).unwrap()
    }

    fn series(pairs: &[(&str, &str)]) -> Series {
        Series { labels: Labels::from_pairs(pairs.iter().copied()), samples: vec![Sample { t: 1, v: 1.0 }] }
    }

    #[tokio::test]
    async fn contradicted_selections_are_not_asked_and_satisfied_matchers_not_sent() {
        let q = WithExternalLabels::new(
            Fixed(vec![series(&[("__name__", "up"), ("job", "a")]), series(&[("__name__", "up"), ("cluster", "own")])]),
            ext(&[("cluster", "eu")]),
        );
        let h = SelectHints::range(0, 10);
        let eu = Matcher::equal("cluster", "eu");
        let us = Matcher::equal("cluster", "us");
        assert!(q.select(&h, &[us.clone(), Matcher::equal("__name__", "up")]).await.unwrap().is_empty());
        // `{cluster="eu"}` alone: the store is asked for every series, and the one
        // with its own `cluster` label (which wins) is left out.
        let got = q.select(&h, std::slice::from_ref(&eu)).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].labels.get("cluster"), Some("eu"));
        assert_eq!(got[0].labels.get("job"), Some("a"));
        let own = q.select(&h, &[Matcher::equal("cluster", "own")]).await.unwrap();
        assert!(own.is_empty(), "the matcher contradicts the external label, so the store is not asked");
        assert_eq!(q.label_values("cluster", TimeRange::new(0, 10), &[]).await.unwrap(), vec!["eu", "x"]);
        assert!(q.label_values("cluster", TimeRange::new(0, 10), &[us]).await.unwrap().is_empty());
        assert_eq!(q.label_names(TimeRange::new(0, 10), &[eu]).await.unwrap(), vec!["__name__", "cluster", "job"]);
    }

    #[test]
    fn invalid_external_labels_are_refused() {
        let bad = |k: &str, v: &str| ExternalLabels::new(&[(k.to_string(), v.to_string())].into()).is_err();
        assert!(bad("1x", "a"));
        assert!(bad("__name__", "a"));
        assert!(bad("cluster", ""));
        assert!(!bad("cluster", "a"));
    }
}
