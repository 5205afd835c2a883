//! `stats count(*) by bin(period)` counted in runs of one bin, without a hash per row.
//!
//! The console draws its histogram with this query, and an investigation asks it often. As
//! DataFusion plans it, the partial aggregate floors every timestamp, hashes it into a table of
//! groups and bumps a counter per row: most of the query's CPU. Within a segment (and a buffered
//! batch) a stream's timestamps come in time order, so consecutive rows nearly always fall in
//! the same bin: [`TimeBinCountExec`] keeps the current bin's bounds and counts rows inside it,
//! and only a row outside it is floored and its run added to a small map. The partial
//! aggregate's output (bin, count per aggregate) is the same, so the final aggregate above it
//! is unchanged. The map is emitted early past [`crate::partial::EMIT_AT`] bins, as a partial aggregate may,
//! which keeps memory bounded whatever the period.

use crate::udf::floor_to;
use arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch, TimestampMillisecondArray};
use arrow::datatypes::{DataType, SchemaRef, TimeUnit, TimestampMillisecondType};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Result, ScalarValue};
use datafusion::config::ConfigOptions;
use datafusion::execution::TaskContext;
use datafusion::physical_expr::expressions::Literal;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr, ScalarFunctionExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::AggregateExec;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
};
use std::collections::HashMap;
use std::sync::Arc;

use crate::partial::PartialGroups;

/// The physical optimizer rule: a partial `count` aggregate grouped by `lw_time_floor` alone
/// becomes a [`TimeBinCountExec`].
#[derive(Debug, Default)]
pub struct CountByTimeBin;

impl PhysicalOptimizerRule for CountByTimeBin {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            Ok(match TimeBinCountExec::replacing(&node) {
                Some(exec) => Transformed::yes(Arc::new(exec) as Arc<dyn ExecutionPlan>),
                None => Transformed::no(node),
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "CountByTimeBin"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Counts the rows of each time bin of its input, as the partial aggregate it replaces.
#[derive(Debug)]
pub struct TimeBinCountExec {
    input: Arc<dyn ExecutionPlan>,
    /// The timestamp the bins are cut from (the floor's first argument).
    timestamp: Arc<dyn PhysicalExpr>,
    period_ms: i64,
    /// The replaced aggregate's output: the bin, then one count per aggregate.
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl TimeBinCountExec {
    /// The exec that does what `node` does, if `node` is a partial aggregate of `count(<a
    /// literal>)`s (no filter, no DISTINCT) grouped by `lw_time_floor(ts, period)` alone, with no
    /// ordering or limit for the plan above to rely on.
    fn replacing(node: &Arc<dyn ExecutionPlan>) -> Option<Self> {
        let aggr = node.downcast_ref::<AggregateExec>()?;
        let group = crate::partial::single_group(aggr)?;
        let counts_rows = |a: &datafusion::physical_expr::aggregate::AggregateFunctionExpr| {
            a.fun().name() == "count"
                && !a.is_distinct()
                && a.order_bys().is_empty()
                && matches!(a.expressions().as_slice(), [e] if e
                    .downcast_ref::<Literal>()
                    .is_some_and(|l| !l.value().is_null()))
        };
        if !aggr.aggr_expr().iter().all(|a| counts_rows(a)) {
            return None;
        }
        let floor = group.downcast_ref::<ScalarFunctionExpr>()?;
        if floor.name() != "lw_time_floor" {
            return None;
        }
        let [timestamp, period] = floor.args() else {
            return None;
        };
        let period_ms = match period.downcast_ref::<Literal>()?.value() {
            ScalarValue::Int64(Some(ms)) if *ms > 0 => *ms,
            _ => return None,
        };
        let schema = aggr.schema();
        let ms = DataType::Timestamp(TimeUnit::Millisecond, None);
        if *schema.field(0).data_type() != ms
            || schema.fields().len() != 1 + aggr.aggr_expr().len()
            || schema.fields()[1..]
                .iter()
                .any(|f| *f.data_type() != DataType::Int64)
        {
            return None;
        }
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            aggr.properties().output_partitioning().clone(),
            EmissionType::Final,
            Boundedness::Bounded,
        );
        Some(TimeBinCountExec {
            input: aggr.input().clone(),
            timestamp: timestamp.clone(),
            period_ms,
            schema,
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }
}

impl DisplayAs for TimeBinCountExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "TimeBinCountExec: bin={} ms of {}, counts={}",
            self.period_ms,
            self.timestamp,
            self.schema.fields().len() - 1
        )
    }
}

impl ExecutionPlan for TimeBinCountExec {
    fn name(&self) -> &str {
        "TimeBinCountExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        f(&self.timestamp)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input = children.swap_remove(0);
        Ok(Arc::new(TimeBinCountExec {
            input,
            timestamp: self.timestamp.clone(),
            period_ms: self.period_ms,
            schema: self.schema.clone(),
            properties: self.properties.clone(),
            metrics: ExecutionPlanMetricsSet::new(),
        }))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let bins = BinsOf {
            bins: Bins::new(self.period_ms),
            timestamp: self.timestamp.clone(),
        };
        let metrics = BaselineMetrics::new(&self.metrics, partition);
        Ok(crate::partial::stream(
            input,
            bins,
            self.schema.clone(),
            metrics,
        ))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// Rows counted per bin (its first millisecond), with the run being counted held apart.
struct Bins {
    period_ms: i64,
    counts: HashMap<i64, i64>,
    nulls: i64,
    /// The current run: rows in `[lo, hi)` so far.
    run: (i64, i64, i64),
}

/// The bins of the timestamps `timestamp` gives.
struct BinsOf {
    bins: Bins,
    timestamp: Arc<dyn PhysicalExpr>,
}

impl PartialGroups for BinsOf {
    fn update(&mut self, batch: &RecordBatch) -> Result<()> {
        let ts = self
            .timestamp
            .evaluate(batch)?
            .into_array(batch.num_rows())?;
        self.bins.count(&ts)
    }

    fn len(&self) -> usize {
        self.bins.len()
    }

    fn emit(&mut self, schema: &SchemaRef) -> Result<RecordBatch> {
        self.bins.emit(schema)
    }
}

impl Bins {
    fn new(period_ms: i64) -> Self {
        Bins {
            period_ms,
            counts: HashMap::new(),
            nulls: 0,
            // An empty range: the first row starts a run.
            run: (0, 0, 0),
        }
    }

    /// Bins held, the one being counted included.
    fn len(&self) -> usize {
        self.counts.len() + usize::from(self.nulls > 0) + usize::from(self.run.2 > 0)
    }

    fn count(&mut self, ts: &ArrayRef) -> Result<()> {
        let ms = DataType::Timestamp(TimeUnit::Millisecond, None);
        let ts = match ts.data_type() == &ms {
            true => ts.clone(),
            false => arrow::compute::cast(ts, &ms)?,
        };
        let ts = ts.as_primitive::<TimestampMillisecondType>();
        let (mut lo, mut hi, mut n) = self.run;
        let period_ms = self.period_ms;
        let mut add = |t: i64, counts: &mut HashMap<i64, i64>| {
            if (lo..hi).contains(&t) {
                n += 1;
                return;
            }
            if n > 0 {
                *counts.entry(lo).or_default() += n;
            }
            let bin = floor_to(t, period_ms);
            match bin.checked_add(period_ms) {
                // Every timestamp of [bin, bin + period) has this floor: a run can start.
                Some(end) if bin <= t && t < end => (lo, hi, n) = (bin, end, 1),
                // Out of the floor's exact range: counted alone, as the floor puts it.
                _ => {
                    *counts.entry(bin).or_default() += 1;
                    (lo, hi, n) = (0, 0, 0);
                }
            }
        };
        match ts.nulls() {
            None => ts.values().iter().for_each(|&t| add(t, &mut self.counts)),
            Some(valid) => {
                for (t, ok) in ts.values().iter().zip(valid.iter()) {
                    match ok {
                        true => add(*t, &mut self.counts),
                        false => self.nulls += 1,
                    }
                }
            }
        }
        self.run = (lo, hi, n);
        Ok(())
    }

    /// The bins counted so far as the partial aggregate's output, and a fresh start.
    fn emit(&mut self, schema: &SchemaRef) -> Result<RecordBatch> {
        let (lo, _, n) = self.run;
        if n > 0 {
            *self.counts.entry(lo).or_default() += n;
        }
        self.run = (0, 0, 0);
        let mut bins: Vec<Option<i64>> = Vec::with_capacity(self.len());
        let mut counts: Vec<i64> = Vec::with_capacity(self.len());
        for (bin, count) in self.counts.drain() {
            bins.push(Some(bin));
            counts.push(count);
        }
        if self.nulls > 0 {
            bins.push(None);
            counts.push(std::mem::take(&mut self.nulls));
        }
        let counts: ArrayRef = Arc::new(Int64Array::from(counts));
        let mut columns: Vec<ArrayRef> = vec![Arc::new(TimestampMillisecondArray::from(bins))];
        columns.extend((1..schema.fields().len()).map(|_| counts.clone()));
        Ok(RecordBatch::try_new(schema.clone(), columns)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    /// Runs `sql` over `ts` (a nullable millisecond timestamp column, in `batches` pieces) with
    /// the rule, and checks it against DataFusion's own aggregate; returns the plan.
    async fn same_as_datafusion(ts: Vec<Option<i64>>, batches: usize, sql: &str) -> String {
        let schema = Arc::new(arrow::datatypes::Schema::new(vec![
            arrow::datatypes::Field::new(
                "t",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                true,
            ),
        ]));
        let chunk = ts.len().div_ceil(batches).max(1);
        let parts: Vec<Vec<RecordBatch>> = ts
            .chunks(chunk)
            .map(|c| {
                let a = TimestampMillisecondArray::from(c.to_vec());
                vec![RecordBatch::try_new(schema.clone(), vec![Arc::new(a)]).unwrap()]
            })
            .collect();
        let run = |with_rule: bool| {
            let (schema, parts) = (schema.clone(), parts.clone());
            async move {
                let config = datafusion::prelude::SessionConfig::new().with_target_partitions(2);
                let mut state = datafusion::execution::SessionStateBuilder::new()
                    .with_config(config)
                    .with_default_features();
                if with_rule {
                    state = state.with_physical_optimizer_rule(Arc::new(CountByTimeBin));
                }
                let ctx = SessionContext::new_with_state(state.build());
                crate::udf::register(&ctx);
                let table = datafusion::datasource::MemTable::try_new(schema, parts).unwrap();
                ctx.register_table("events", Arc::new(table)).unwrap();
                let df = ctx.sql(sql).await.unwrap();
                let plan = df.clone().create_physical_plan().await.unwrap();
                let text = datafusion::physical_plan::displayable(plan.as_ref())
                    .indent(false)
                    .to_string();
                let batches = df.collect().await.unwrap();
                let rows = arrow::util::pretty::pretty_format_batches(&batches)
                    .unwrap()
                    .to_string();
                (text, rows)
            }
        };
        let (plan, ours) = run(true).await;
        let (_, theirs) = run(false).await;
        assert_eq!(ours, theirs, "{sql}\n{plan}");
        plan
    }

    const BY_BIN: &str = "SELECT lw_time_floor(t, 300000) AS b, count(*) AS n, count(1) AS m \
                          FROM events GROUP BY b ORDER BY b";

    #[tokio::test]
    async fn counts_by_bin_as_the_hash_aggregate_does() {
        // Runs of ordered timestamps, a second stream out of step, nulls and times before 1970.
        let mut ts: Vec<Option<i64>> = (0..50_000)
            .map(|i| Some(1_795_836_065_000 + i * 97))
            .collect();
        ts.extend((0..20_000).map(|i| Some(1_795_836_065_000 + (i * 7_919) % 4_000_000)));
        ts.extend([
            None,
            None,
            Some(-1),
            Some(-300_000),
            Some(-300_001),
            Some(0),
        ]);
        for batches in [1, 7] {
            let plan = same_as_datafusion(ts.clone(), batches, BY_BIN).await;
            assert!(plan.contains("TimeBinCountExec"), "{plan}");
        }
        // Every row in one bin: the run being counted is all there is to emit.
        let one_bin: Vec<Option<i64>> = (0..100).map(|i| Some(1_795_836_065_000 + i)).collect();
        same_as_datafusion(one_bin, 1, BY_BIN).await;
    }

    #[tokio::test]
    async fn a_map_of_many_bins_is_emitted_early_and_still_adds_up() {
        // One bin per row: more bins than one map holds.
        let ts: Vec<Option<i64>> = (0..(crate::partial::EMIT_AT as i64 * 2 + 10))
            .map(|i| Some(i * 300_000))
            .collect();
        let plan = same_as_datafusion(ts, 3, BY_BIN).await;
        assert!(plan.contains("TimeBinCountExec"), "{plan}");
    }

    #[tokio::test]
    async fn other_aggregates_keep_the_hash_aggregate() {
        let ts: Vec<Option<i64>> = (0..1000).map(|i| Some(i * 1000)).collect();
        for sql in [
            "SELECT lw_time_floor(t, 60000) AS b, count(t) FROM events GROUP BY b ORDER BY 1",
            "SELECT lw_time_floor(t, 60000) AS b, count(DISTINCT t) FROM events GROUP BY b ORDER BY 1",
            "SELECT lw_time_floor(t, 60000) AS b, min(t) FROM events GROUP BY b ORDER BY 1",
            "SELECT t, count(*) FROM events GROUP BY t ORDER BY 1",
        ] {
            let plan = same_as_datafusion(ts.clone(), 2, sql).await;
            assert!(!plan.contains("TimeBinCountExec"), "{sql}\n{plan}");
        }
    }
}
