//! Metric filters evaluated on ingested events, and the Prometheus text exposition of them and of
//! logwell's own metrics.
//!
//! Definitions are kept in a settings document. A worker per log group with filters reads the
//! group's events in applied order from the moment it starts (the same `events_after` reads that
//! subscription delivery uses, woken by the tap), so counting never slows ingest and never skips
//! an event while the process runs; like any Prometheus counter, values restart from zero with
//! the process.

pub mod exposition;
mod transform;

use exposition::{Exposition, Kind};
use logwell_model::api::Empty;
use logwell_model::api_metric_filters::*;
use logwell_model::{now_millis, validate, ApiError, ErrorKind};
use logwell_storage::Engine;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use transform::Compiled;

const DOCUMENT: &str = "metric-filters.json";
/// CloudWatch's quota: metric filters per log group.
pub const MAX_FILTERS_PER_GROUP: usize = 100;
/// Distinct dimension sets kept per filter; beyond it new sets are dropped and counted (AWS
/// disables a filter that makes 1,000 in an hour).
pub const MAX_SERIES_PER_FILTER: usize = 1000;
/// The longest dimension value kept (CloudWatch's limit).
const MAX_DIMENSION_VALUE: usize = 1024;
/// How long a woken worker waits for more events before reading.
const COALESCE: Duration = Duration::from_millis(100);
/// Events read per round.
const BATCH: usize = 50_000;

type Key = (String, String);

/// One series: a metric with one set of dimension values.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct SeriesKey {
    dimensions: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Series {
    sum: f64,
    count: u64,
}

struct FilterState {
    def: MetricFilter,
    compiled: Arc<Compiled>,
    series: BTreeMap<SeriesKey, Series>,
    dropped: u64,
}

/// Metric filter definitions, their values, and the workers that compute them.
pub struct MetricFilters {
    engine: Engine,
    /// Where workers run: background threads, below the request path's priority (values lag a
    /// flood a little instead of slowing it).
    runtime: tokio::runtime::Handle,
    filters: RwLock<BTreeMap<Key, FilterState>>,
    workers: Mutex<HashMap<String, tokio::task::JoinHandle<()>>>,
    saving: tokio::sync::Mutex<()>,
}

impl MetricFilters {
    pub async fn start(
        engine: Engine,
        runtime: tokio::runtime::Handle,
    ) -> Result<Arc<MetricFilters>, ApiError> {
        let defs: Vec<MetricFilter> = match engine.get_document(DOCUMENT).await? {
            Some(b) => serde_json::from_slice(&b).map_err(|e| {
                ApiError::unavailable(format!("settings document {DOCUMENT} is unreadable: {e}"))
            })?,
            None => Vec::new(),
        };
        let mut filters = BTreeMap::new();
        for def in defs {
            match Compiled::new(&def) {
                Ok(c) => {
                    filters.insert(
                        (def.log_group_name.clone(), def.filter_name.clone()),
                        FilterState {
                            series: initial_series(&def),
                            def,
                            compiled: Arc::new(c),
                            dropped: 0,
                        },
                    );
                }
                Err(e) => {
                    tracing::warn!(filter = def.filter_name, error = %e, "metric filter skipped")
                }
            }
        }
        let m = Arc::new(MetricFilters {
            engine,
            runtime,
            filters: RwLock::new(filters),
            workers: Mutex::new(HashMap::new()),
            saving: Default::default(),
        });
        m.reconcile();
        Ok(m)
    }

    /// PutMetricFilter: create or replace.
    pub async fn put(self: &Arc<Self>, r: PutMetricFilterRequest) -> Result<Empty, ApiError> {
        validate::log_group_name(&r.log_group_name, "logGroupName")?;
        if r.filter_name.is_empty()
            || r.filter_name.chars().count() > 512
            || r.filter_name.contains([':', '*'])
        {
            return Err(ApiError::constraint(
                &r.filter_name,
                "filterName",
                "satisfy regular expression pattern: [^:*]* and have length between 1 and 512",
            ));
        }
        if r.metric_transformations.len() != 1 {
            return Err(ApiError::constraint(
                &format!("{} transformations", r.metric_transformations.len()),
                "metricTransformations",
                "have length less than or equal to 1 and greater than or equal to 1",
            ));
        }
        if !self.engine.group_exists(&r.log_group_name) {
            return Err(ApiError::group_not_found());
        }
        let def = MetricFilter {
            filter_name: r.filter_name,
            filter_pattern: r.filter_pattern,
            metric_transformations: r.metric_transformations,
            creation_time: now_millis(),
            log_group_name: r.log_group_name,
        };
        let compiled = Compiled::new(&def)?;
        let key = (def.log_group_name.clone(), def.filter_name.clone());
        let previous;
        {
            let mut filters = self.filters.write().unwrap();
            let in_group = filters.keys().filter(|(g, _)| *g == key.0).count();
            if !filters.contains_key(&key) && in_group >= MAX_FILTERS_PER_GROUP {
                return Err(ApiError::new(
                    ErrorKind::LimitExceeded,
                    "Resource limit exceeded.",
                ));
            }
            // A replaced filter starts its series again: its metric may have changed.
            previous = filters.insert(
                key.clone(),
                FilterState {
                    series: initial_series(&def),
                    def,
                    compiled: Arc::new(compiled),
                    dropped: 0,
                },
            );
        }
        if let Err(e) = self.save().await {
            // Not saved, so not made: the filter it replaced (if any) stays.
            let mut filters = self.filters.write().unwrap();
            match previous {
                Some(p) => filters.insert(key, p),
                None => filters.remove(&key),
            };
            return Err(e);
        }
        self.reconcile();
        Ok(Empty {})
    }

    /// DescribeMetricFilters, by name within a group.
    pub fn describe(
        &self,
        r: DescribeMetricFiltersRequest,
    ) -> Result<DescribeMetricFiltersResponse, ApiError> {
        if r.filter_name_prefix.is_some() && r.log_group_name.is_none() {
            return Err(ApiError::invalid(
                "If you specify filterNamePrefix, you must also specify logGroupName.",
            ));
        }
        if r.metric_name.is_some() != r.metric_namespace.is_some() {
            return Err(ApiError::invalid(
                "If you specify metricName, you must also specify metricNamespace, and vice versa.",
            ));
        }
        if let Some(g) = &r.log_group_name {
            validate::log_group_name(g, "logGroupName")?;
            if !self.engine.group_exists(g) {
                return Err(ApiError::group_not_found());
            }
        }
        let filters = self.filters.read().unwrap();
        let matching: Vec<&MetricFilter> = filters
            .values()
            .map(|f| &f.def)
            .filter(|d| {
                r.log_group_name
                    .as_ref()
                    .is_none_or(|g| &d.log_group_name == g)
            })
            .filter(|d| {
                r.filter_name_prefix
                    .as_ref()
                    .is_none_or(|p| d.filter_name.starts_with(p.as_str()))
            })
            .filter(|d| match (&r.metric_name, &r.metric_namespace) {
                (Some(n), Some(ns)) => d
                    .metric_transformations
                    .iter()
                    .any(|t| &t.metric_name == n && &t.metric_namespace == ns),
                _ => true,
            })
            .collect();
        let (metric_filters, next_token) =
            validate::offset_page(&matching, r.next_token.as_deref(), r.limit)?;
        Ok(DescribeMetricFiltersResponse {
            metric_filters,
            next_token,
        })
    }

    /// DeleteMetricFilter.
    pub async fn delete(self: &Arc<Self>, r: DeleteMetricFilterRequest) -> Result<Empty, ApiError> {
        validate::log_group_name(&r.log_group_name, "logGroupName")?;
        if !self.engine.group_exists(&r.log_group_name) {
            return Err(ApiError::group_not_found());
        }
        let removed = self
            .filters
            .write()
            .unwrap()
            .remove(&(r.log_group_name.clone(), r.filter_name.clone()));
        if removed.is_none() {
            return Err(ApiError::new(
                ErrorKind::ResourceNotFound,
                "The specified resource does not exist.",
            ));
        }
        self.save().await?;
        self.reconcile();
        Ok(Empty {})
    }

    async fn save(&self) -> Result<(), ApiError> {
        let _one_at_a_time = self.saving.lock().await;
        let defs: Vec<MetricFilter> = self
            .filters
            .read()
            .unwrap()
            .values()
            .map(|f| f.def.clone())
            .collect();
        let body = serde_json::to_vec_pretty(&defs).expect("filters serialise");
        self.engine.put_document(DOCUMENT, body.into()).await
    }

    /// A worker for each group with filters, none for the others.
    fn reconcile(self: &Arc<Self>) {
        let groups: std::collections::BTreeSet<String> = self
            .filters
            .read()
            .unwrap()
            .keys()
            .map(|(g, _)| g.clone())
            .collect();
        let mut workers = self.workers.lock().unwrap();
        workers.retain(|g, w| {
            let keep = groups.contains(g) && !w.is_finished();
            if !keep {
                w.abort();
            }
            keep
        });
        for g in groups {
            if !workers.contains_key(&g) {
                // From now: what was applied before the filter existed is not counted, what is
                // applied after it returned is.
                let from = self.engine.applied_seq();
                let task = self.runtime.spawn(self.clone().work(g.clone(), from));
                workers.insert(g, task);
            }
        }
    }

    /// Counts the group's events from now on.
    async fn work(self: Arc<Self>, group: String, from: i64) {
        let wake = self.engine.tap().signal(Box::new({
            let group = group.clone();
            move |g, _| g == group
        }));
        let mut cursor = from;
        let mut cache = logwell_storage::SegmentCache::default();
        loop {
            let rows = match self
                .engine
                .events_after_cached(&group, cursor, BATCH, &mut cache)
                .await
            {
                Ok(rows) => rows,
                Err(e) if e.kind == ErrorKind::ResourceNotFound => {
                    // The group is gone, and its filters with it.
                    self.filters
                        .write()
                        .unwrap()
                        .retain(|(g, _), _| *g != group);
                    let _ = self.save().await;
                    return;
                }
                Err(e) => {
                    tracing::warn!(group, error = %e, "metric filters cannot read events");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let Some(last) = rows.last() else {
                tokio::select! {
                    _ = wake.notified() => {
                        // Values are scraped every few seconds: gathering a moment's events
                        // into one read keeps this worker from waking for every put.
                        tokio::time::sleep(COALESCE).await;
                    }
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                continue;
            };
            cursor = last.seq;
            // Metric filters see what every other reader sees: a protected group's text masked.
            let protection = logwell_dataprotection::Protection::of_lookup(
                self.engine.masking_policy(&group),
                false,
            );
            let mut rows = rows;
            if protection.is_masked() {
                for r in &mut rows {
                    protection.mask_string(&mut r.message);
                }
            }
            let compiled: Vec<(Key, Arc<Compiled>)> = self
                .filters
                .read()
                .unwrap()
                .iter()
                .filter(|((g, _), _)| *g == group)
                .map(|(k, f)| (k.clone(), f.compiled.clone()))
                .collect();
            // Evaluated and summed per series without the lock; then added in one go.
            let mut adds: Vec<(Key, HashMap<SeriesKey, Series>)> = Vec::new();
            for (key, c) in &compiled {
                let mut sums: HashMap<SeriesKey, Series> = HashMap::new();
                for r in &rows {
                    if let Some((value, dimensions)) = c.evaluate(&r.message) {
                        // CloudWatch's limit on a dimension value: 1,024 characters.
                        if dimensions
                            .iter()
                            .any(|(_, v)| v.len() > MAX_DIMENSION_VALUE)
                        {
                            continue;
                        }
                        let s = sums.entry(SeriesKey { dimensions }).or_default();
                        s.sum += value;
                        s.count += 1;
                    }
                }
                adds.push((key.clone(), sums));
            }
            let mut filters = self.filters.write().unwrap();
            for (key, sums) in adds {
                let Some(f) = filters.get_mut(&key) else {
                    continue;
                };
                for (series, add) in sums {
                    let len = f.series.len();
                    match f.series.get_mut(&series) {
                        Some(s) => {
                            s.sum += add.sum;
                            s.count += add.count;
                        }
                        None if len < MAX_SERIES_PER_FILTER => {
                            f.series.insert(series, add);
                        }
                        None => f.dropped += add.count,
                    }
                }
            }
        }
    }

    /// The metric filters' series, as `logwell_metric_filter` summaries (`_sum` and `_count`,
    /// CloudWatch's Sum and SampleCount statistics) labelled with the group, filter, namespace,
    /// metric name, unit and dimensions.
    pub fn expose(&self, e: &mut Exposition) {
        let filters = self.filters.read().unwrap();
        e.family(
            "logwell_metric_filter",
            Kind::Summary,
            "Values metric filters extracted from matching events: _sum is CloudWatch's Sum statistic, _count its SampleCount.",
        );
        for ((group, name), f) in filters.iter() {
            let t = &f.def.metric_transformations[0];
            let unit = t.unit.clone().unwrap_or_else(|| "None".into());
            for (key, s) in &f.series {
                let mut labels: Vec<(&str, &str)> = vec![
                    ("log_group", group),
                    ("filter", name),
                    ("namespace", &t.metric_namespace),
                    ("metric", &t.metric_name),
                    ("unit", &unit),
                ];
                let renamed = dimension_labels(&key.dimensions);
                labels.extend(renamed.iter().map(|(k, v)| (k.as_str(), *v)));
                e.sample("logwell_metric_filter_sum", &labels, s.sum);
                e.sample("logwell_metric_filter_count", &labels, s.count as f64);
            }
        }
        e.family(
            "logwell_metric_filter_dropped_series_total",
            Kind::Counter,
            "Values not counted because their filter already had the most dimension sets allowed.",
        );
        for ((group, name), f) in filters.iter() {
            e.sample(
                "logwell_metric_filter_dropped_series_total",
                &[("log_group", group), ("filter", name)],
                f.dropped as f64,
            );
        }
    }
}

/// A filter's series when it starts: with a default value (and so no dimensions), its one
/// series exists at 0 from the start, as CloudWatch reports the default for periods without a
/// match; otherwise none until a value is extracted.
fn initial_series(def: &MetricFilter) -> BTreeMap<SeriesKey, Series> {
    let mut series = BTreeMap::new();
    if def.metric_transformations[0].default_value.is_some() {
        series.insert(
            SeriesKey {
                dimensions: Vec::new(),
            },
            Series::default(),
        );
    }
    series
}

/// Dimension names as label names that are valid and unique in a sample: cleaned, never
/// starting with `__` (reserved), and prefixed `dim_` (then numbered) when the name is taken by
/// the labels every series has, by `quantile` (summaries), or by another dimension.
fn dimension_labels(dimensions: &[(String, String)]) -> Vec<(String, &str)> {
    let mut used: Vec<String> = [
        "log_group",
        "filter",
        "namespace",
        "metric",
        "unit",
        "quantile",
    ]
    .map(String::from)
    .to_vec();
    let mut out = Vec::new();
    for (k, v) in dimensions {
        let mut name = exposition::label_name(k);
        if name.starts_with("__") {
            name = format!("dim{name}");
        }
        if used.contains(&name) {
            name = format!("dim_{name}");
        }
        let base = name.clone();
        let mut n = 2;
        while used.contains(&name) {
            name = format!("{base}_{n}");
            n += 1;
        }
        used.push(name.clone());
        out.push((name, v.as_str()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dimension_labels_are_valid_and_unique() {
        let dims: Vec<(String, String)> = [
            ("a.b", "1"),
            ("a-b", "2"),
            ("unit", "3"),
            ("dim_unit", "4"),
            ("__name__", "5"),
            ("quantile", "6"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let names: Vec<String> = dimension_labels(&dims)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            names,
            [
                "a_b",
                "dim_a_b",
                "dim_unit",
                "dim_dim_unit",
                "dim__name__",
                "dim_quantile"
            ]
        );
    }
}
