//! The output stream of logwell's own partial aggregates (`bin_count`, `keyed_group`): each
//! input batch updates the groups, which are emitted when they grow past a bound (a partial
//! aggregate may emit at any time; the final aggregate merges the parts) and at the end.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::common::Result;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::metrics::BaselineMetrics;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::SendableRecordBatchStream;
use futures::StreamExt;
use std::sync::Arc;

/// Groups held before a partial result is emitted: memory stays bounded however many groups
/// the input has.
pub const EMIT_AT: usize = 64 * 1024;

/// The one group expression of `aggr`, if it is a partial aggregate grouped by one expression
/// (no grouping sets), with aggregates, and no filter, output ordering or limit for the plan
/// above to rely on: what logwell's partial aggregates can stand in for.
pub fn single_group(aggr: &AggregateExec) -> Option<&Arc<dyn PhysicalExpr>> {
    if !matches!(aggr.mode(), AggregateMode::Partial)
        || aggr.limit_options().is_some()
        || aggr.properties().output_ordering().is_some()
        || aggr.group_expr().has_grouping_set()
        || aggr.group_expr().expr().len() != 1
        || aggr.aggr_expr().is_empty()
        || aggr.filter_expr().iter().any(Option::is_some)
    {
        return None;
    }
    Some(&aggr.group_expr().expr()[0].0)
}

/// Groups a partial aggregate builds up batch by batch.
pub trait PartialGroups: Send + 'static {
    fn update(&mut self, batch: &RecordBatch) -> Result<()>;
    /// How many groups are held.
    fn len(&self) -> usize;
    /// Every group held, as `schema` says, the groups then forgotten.
    fn emit(&mut self, schema: &SchemaRef) -> Result<RecordBatch>;
}

/// `input` aggregated into `groups`, emitted past [`EMIT_AT`] groups and at the end.
pub fn stream(
    input: SendableRecordBatchStream,
    mut groups: impl PartialGroups,
    schema: SchemaRef,
    metrics: BaselineMetrics,
) -> SendableRecordBatchStream {
    let out_schema = schema.clone();
    let emitted = input
        .map(Some)
        .chain(futures::stream::iter([None]))
        .filter_map(move |item| {
            let out = match item {
                Some(Ok(batch)) => {
                    let timer = metrics.elapsed_compute().timer();
                    let out = match groups.update(&batch) {
                        Ok(()) if groups.len() >= EMIT_AT => Some(groups.emit(&schema)),
                        Ok(()) => None,
                        Err(e) => Some(Err(e)),
                    };
                    timer.done();
                    out
                }
                Some(Err(e)) => Some(Err(e)),
                None => (groups.len() > 0).then(|| groups.emit(&schema)),
            };
            if let Some(Ok(b)) = &out {
                metrics.record_output(b.num_rows());
            }
            futures::future::ready(out)
        });
    Box::pin(RecordBatchStreamAdapter::new(out_schema, emitted))
}
