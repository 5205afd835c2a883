//! `stats ... by <text field>` grouped by dictionary keys instead of a hash of every value.
//!
//! As DataFusion plans it, the partial aggregate of a query grouped by one text column copies
//! each row's text out of the Parquet dictionary, hashes it and interns it in a table of groups:
//! over half the query's CPU for a field with a few values, such as a level. The scan reads such a
//! field as a dictionary where every segment holds it in dictionary-encoded pages (see
//! `table::Stored::Keyed`) and casts it to text above the scan. [`GroupByKeys`] finds a partial
//! aggregate grouped by that text, takes the cast away below it, and puts a [`KeyedGroupExec`]
//! in its place: each batch's dictionary values (a handful, shared by the batches of a row group)
//! are mapped to group ids once, and each row's group id is read through its key. The aggregates
//! are DataFusion's own `GroupsAccumulator`s, fed as the aggregate would feed them, and the
//! output (the group's text, then each aggregate's state) is the partial aggregate's, so the
//! final aggregate above is unchanged. Groups are emitted early past [`crate::partial::EMIT_AT`], as a partial
//! aggregate may, which keeps memory bounded however many values the field has.

use crate::partial::PartialGroups;
use crate::table::GroupTable;
use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Int32Type, SchemaRef};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::HashMap;
use datafusion::common::{internal_err, Result};
use datafusion::config::ConfigOptions;
use datafusion::datasource::source_as_provider;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_expr::expressions::{CastExpr, Column};
use datafusion::physical_expr::utils::collect_columns;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::execution_plan::{
    Boundedness, ChildrenPropertiesMode, EmissionType, ReplaceChildrenOptions,
};
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::projection::{ProjectionExec, ProjectionExpr};
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::union::UnionExec;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    SendableRecordBatchStream,
};
use std::sync::Arc;

/// Tells each group table in `plan` (optimized, before physical planning) which of its columns
/// some aggregate groups by alone, traced back through projections of plain columns, so that
/// its scans read those as dictionaries where they can.
pub fn mark_grouped_columns(plan: &LogicalPlan) {
    let mut grouped = std::collections::HashSet::new();
    let _ = plan.apply(|node| {
        if let LogicalPlan::Aggregate(a) = node {
            if let [e] = a.group_expr.as_slice() {
                if let Expr::Column(c) = e.clone().unalias() {
                    origins(&a.input, &c.name, &mut grouped);
                }
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    if grouped.is_empty() {
        return;
    }
    let _ = plan.apply(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            if let Ok(provider) = source_as_provider(&scan.source) {
                if let Some(table) = provider.downcast_ref::<GroupTable>() {
                    table.group_by(grouped.clone());
                }
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
}

/// The table columns that column `name` of `plan` is, unchanged (through projections of
/// plain columns, filters, sorts, limits and unions), added to `out`.
fn origins(plan: &LogicalPlan, name: &str, out: &mut std::collections::HashSet<String>) {
    match plan {
        LogicalPlan::TableScan(_) => {
            out.insert(name.to_string());
        }
        LogicalPlan::Projection(p) => {
            for (e, field) in p.expr.iter().zip(p.schema.fields()) {
                if field.name() == name {
                    if let Expr::Column(c) = e.clone().unalias() {
                        origins(&p.input, &c.name, out);
                    }
                }
            }
        }
        LogicalPlan::Filter(_)
        | LogicalPlan::Sort(_)
        | LogicalPlan::Limit(_)
        | LogicalPlan::Union(_)
        | LogicalPlan::SubqueryAlias(_) => {
            for input in plan.inputs() {
                origins(input, name, out);
            }
        }
        _ => {}
    }
}

/// The physical optimizer rule: a partial aggregate grouped by a dictionary column cast to
/// text becomes a [`KeyedGroupExec`] over the dictionary. It runs before projections are
/// pushed into the scans, while the cast is still a projection of its own.
#[derive(Debug, Default)]
pub struct GroupByKeys;

impl PhysicalOptimizerRule for GroupByKeys {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            if let Some(exec) = KeyedGroupExec::replacing(&node) {
                return Ok(Transformed::yes(Arc::new(exec) as Arc<dyn ExecutionPlan>));
            }
            Ok(match per_source(&node)? {
                Some(union) => Transformed::yes(union),
                None => Transformed::no(node),
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "GroupByKeys"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// The partial aggregate of its input grouped by the dictionary column `key`.
#[derive(Debug)]
pub struct KeyedGroupExec {
    input: Arc<dyn ExecutionPlan>,
    key: usize,
    aggregates: Vec<Arc<AggregateFunctionExpr>>,
    /// The replaced aggregate's output: the group's text, then each aggregate's state.
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

fn is_keyed(ty: &DataType) -> bool {
    matches!(ty, DataType::Dictionary(k, v) if **k == DataType::Int32 && **v == DataType::Utf8)
}

fn references(expr: &Arc<dyn PhysicalExpr>, index: usize) -> bool {
    collect_columns(expr).iter().any(|c| c.index() == index)
}

/// `plan` with its output column `index` (text cast from a dictionary somewhere below) given
/// as the dictionary, or None if it is not that, or if anything on the way reads it as text.
fn dictionary_below(plan: &Arc<dyn ExecutionPlan>, index: usize) -> Option<Arc<dyn ExecutionPlan>> {
    if let Some(p) = plan.downcast_ref::<ProjectionExec>() {
        let exprs = p.expr();
        let target = &exprs.get(index)?.expr;
        let (source, cast) = if let Some(c) = target.downcast_ref::<Column>() {
            (c.index(), false)
        } else {
            let cast = target.downcast_ref::<CastExpr>()?;
            let c = cast.expr().downcast_ref::<Column>()?;
            let input = p.input().schema();
            if cast.cast_type() != &DataType::Utf8 || !is_keyed(input.field(c.index()).data_type())
            {
                return None;
            }
            (c.index(), true)
        };
        // No other output may read the source: it would change type too.
        if exprs
            .iter()
            .enumerate()
            .any(|(i, e)| i != index && references(&e.expr, source))
        {
            return None;
        }
        let input = match cast {
            true => p.input().clone(),
            false => dictionary_below(p.input(), source)?,
        };
        let mut exprs = exprs.to_vec();
        exprs[index] = ProjectionExpr::new(
            Arc::new(Column::new(input.schema().field(source).name(), source)),
            exprs[index].alias.clone(),
        );
        return ProjectionExec::try_new(exprs, input)
            .ok()
            .map(|p| Arc::new(p) as _);
    }
    if let Some(f) = plan.downcast_ref::<FilterExec>() {
        if f.projection().is_some() || references(f.predicate(), index) {
            return None;
        }
    } else if let Some(r) = plan.downcast_ref::<RepartitionExec>() {
        if let Partitioning::Hash(exprs, _) = r.partitioning() {
            if exprs.iter().any(|e| references(e, index)) {
                return None;
            }
        }
        if r.preserve_order() {
            return None;
        }
    } else {
        return None;
    }
    let child = dictionary_below(plan.children().first()?, index)?;
    let recompute = ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute);
    plan.clone().replace_children(vec![child], recompute).ok()
}

/// A partial aggregate over a union (segments read as dictionaries beside the buffered
/// batches, which hold text) as a union of partial aggregates, one per source, each a
/// [`KeyedGroupExec`] where it can be: a partial aggregate's partitions are aggregated apart
/// anyway, and the final aggregate merges them all.
fn per_source(node: &Arc<dyn ExecutionPlan>) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let Some(aggr) = node.downcast_ref::<AggregateExec>() else {
        return Ok(None);
    };
    let Some(union) = aggr.input().downcast_ref::<UnionExec>() else {
        return Ok(None);
    };
    if !groups_by_text(aggr).is_some_and(|key| aggregates_apart_from(aggr, key)) {
        return Ok(None);
    }
    let mut parts = Vec::new();
    let mut keyed = false;
    for source in union.children() {
        let part: Arc<dyn ExecutionPlan> = Arc::new(AggregateExec::try_new(
            AggregateMode::Partial,
            aggr.group_expr().clone(),
            aggr.aggr_expr().to_vec(),
            aggr.filter_expr().to_vec(),
            source.clone(),
            source.schema(),
        )?);
        parts.push(match KeyedGroupExec::replacing(&part) {
            Some(exec) => {
                keyed = true;
                Arc::new(exec) as _
            }
            None => part,
        });
    }
    if !keyed {
        return Ok(None);
    }
    UnionExec::try_new(parts).map(Some)
}

/// The input column a partial aggregate with no filter, ordering or limit groups by, if it
/// groups by one text column alone.
fn groups_by_text(aggr: &AggregateExec) -> Option<usize> {
    let key = crate::partial::single_group(aggr)?
        .downcast_ref::<Column>()?
        .index();
    (aggr.input().schema().field(key).data_type() == &DataType::Utf8).then_some(key)
}

/// Whether every aggregate has group accumulators and does not read `key`, and none needs
/// its input sorted (an ordered-set aggregate such as `percentile_cont` sorts for itself).
fn aggregates_apart_from(aggr: &AggregateExec, key: usize) -> bool {
    aggr.required_input_ordering().iter().all(Option::is_none)
        && aggr.aggr_expr().iter().all(|a| {
            a.groups_accumulator_supported() && !arguments(a).iter().any(|e| references(e, key))
        })
}

/// What an aggregate is fed, as the aggregate feeds it: its arguments, then what it orders by.
fn arguments(a: &AggregateFunctionExpr) -> Vec<Arc<dyn PhysicalExpr>> {
    let mut args = a.expressions();
    args.extend(a.order_bys().iter().map(|o| o.expr.clone()));
    args
}

impl KeyedGroupExec {
    /// The exec that does what `node` does, if `node` is a partial aggregate grouped by one
    /// text column that is a dictionary cast to text below, of aggregates with group
    /// accumulators that do not read that column, with no filter, ordering or limit.
    fn replacing(node: &Arc<dyn ExecutionPlan>) -> Option<Self> {
        let aggr = node.downcast_ref::<AggregateExec>()?;
        let key = groups_by_text(aggr)?;
        if !aggregates_apart_from(aggr, key) {
            return None;
        }
        let input = dictionary_below(aggr.input(), key)?;
        let schema = aggr.schema();
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            aggr.properties().output_partitioning().clone(),
            EmissionType::Final,
            Boundedness::Bounded,
        );
        Some(KeyedGroupExec {
            input,
            key,
            aggregates: aggr.aggr_expr().to_vec(),
            schema,
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }
}

impl DisplayAs for KeyedGroupExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let names: Vec<&str> = self.aggregates.iter().map(|a| a.name()).collect();
        write!(
            f,
            "KeyedGroupExec: gby=[{}@{}], aggr=[{}]",
            self.input.schema().field(self.key).name(),
            self.key,
            names.join(", ")
        )
    }
}

impl ExecutionPlan for KeyedGroupExec {
    fn name(&self) -> &str {
        "KeyedGroupExec"
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
        for a in &self.aggregates {
            for e in arguments(a) {
                if f(&e)? == TreeNodeRecursion::Stop {
                    return Ok(TreeNodeRecursion::Stop);
                }
            }
        }
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(KeyedGroupExec {
            input: children.swap_remove(0),
            key: self.key,
            aggregates: self.aggregates.clone(),
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
        let groups = Groups::new(self.key, self.aggregates.clone())?;
        let metrics = BaselineMetrics::new(&self.metrics, partition);
        Ok(crate::partial::stream(
            input,
            groups,
            self.schema.clone(),
            metrics,
        ))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// The groups seen so far and their accumulators.
struct Groups {
    key: usize,
    aggregates: Vec<Arc<AggregateFunctionExpr>>,
    accumulators: Vec<Box<dyn GroupsAccumulator>>,
    /// Each group's text (None: the group of rows without the field), by group id.
    texts: Vec<Option<String>>,
    ids: HashMap<String, usize>,
    null: Option<usize>,
    /// The last dictionary seen and the group id of each of its values. The batches of a row
    /// group share their dictionary's buffers (each in an array of its own), so it is known
    /// by them; holding it keeps them from being reused.
    last: Option<(ArrayRef, Vec<usize>)>,
    indices: Vec<usize>,
}

/// What tells two dictionaries' values apart: their buffers and length.
fn identity(values: &ArrayRef) -> Option<(usize, usize, usize)> {
    let text = values.as_string_opt::<i32>()?;
    Some((
        text.offsets().inner().inner().as_ptr() as usize,
        text.values().as_ptr() as usize,
        text.len(),
    ))
}

impl Groups {
    fn new(key: usize, aggregates: Vec<Arc<AggregateFunctionExpr>>) -> Result<Self> {
        let accumulators = aggregates
            .iter()
            .map(|a| a.create_groups_accumulator())
            .collect::<Result<_>>()?;
        Ok(Groups {
            key,
            aggregates,
            accumulators,
            texts: Vec::new(),
            ids: HashMap::new(),
            null: None,
            last: None,
            indices: Vec::new(),
        })
    }

    fn id(&mut self, text: Option<&str>) -> usize {
        let known = match text {
            Some(t) => self.ids.get(t).copied(),
            None => self.null,
        };
        if let Some(id) = known {
            return id;
        }
        let id = self.texts.len();
        self.texts.push(text.map(str::to_owned));
        match text {
            Some(t) => {
                self.ids.insert(t.to_owned(), id);
            }
            None => self.null = Some(id),
        }
        id
    }
}

impl PartialGroups for Groups {
    fn update(&mut self, batch: &RecordBatch) -> Result<()> {
        let column = batch.column(self.key);
        let Some(dict) = column.as_dictionary_opt::<Int32Type>() else {
            return internal_err!(
                "KeyedGroupExec reads a dictionary, got {}",
                column.data_type()
            );
        };
        // Values are mapped as rows use them: a row group's dictionary of a field with many
        // values (users, paths) can be larger than one batch uses.
        const UNSEEN: usize = usize::MAX;
        let fresh = !matches!(&self.last, Some((v, _)) if identity(v).is_some() && identity(v) == identity(dict.values()));
        if fresh {
            self.last = Some((dict.values().clone(), vec![UNSEEN; dict.values().len()]));
        }
        let (values, mut ids) = self.last.take().expect("set above");
        let text = values.as_string::<i32>();
        let keys = dict.keys();
        self.indices.clear();
        self.indices.reserve(keys.len());
        for (i, k) in keys.values().iter().enumerate() {
            let id = if keys.is_null(i) {
                self.id(None)
            } else {
                let k = *k as usize;
                if ids[k] == UNSEEN {
                    ids[k] = self.id(text.is_valid(k).then(|| text.value(k)));
                }
                ids[k]
            };
            self.indices.push(id);
        }
        self.last = Some((values, ids));
        let total = self.texts.len();
        for (a, acc) in self.aggregates.iter().zip(&mut self.accumulators) {
            let values = arguments(a)
                .iter()
                .map(|e| {
                    e.evaluate(batch)
                        .and_then(|v| v.into_array(batch.num_rows()))
                })
                .collect::<Result<Vec<_>>>()?;
            acc.update_batch(&values, &self.indices, None, total)?;
        }
        Ok(())
    }

    fn len(&self) -> usize {
        self.texts.len()
    }

    fn emit(&mut self, schema: &SchemaRef) -> Result<RecordBatch> {
        let mut columns: Vec<ArrayRef> =
            vec![Arc::new(StringArray::from(std::mem::take(&mut self.texts)))];
        for acc in &mut self.accumulators {
            columns.extend(acc.state(EmitTo::All)?);
        }
        self.ids.clear();
        self.null = None;
        self.last = None;
        Ok(RecordBatch::try_new(schema.clone(), columns)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{DictionaryArray, Float64Array, Int32Array};
    use arrow::datatypes::{Field, Schema};
    use datafusion::datasource::MemTable;
    use datafusion::execution::SessionStateBuilder;
    use datafusion::prelude::{SessionConfig, SessionContext};

    /// Batches of (key dictionary, value): some share a dictionary, some have their own, with
    /// null keys, a null dictionary value, and a value absent from the first dictionaries.
    fn batches() -> Vec<RecordBatch> {
        let schema = Arc::new(Schema::new(vec![
            Field::new(
                "d",
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
                true,
            ),
            Field::new("x", DataType::Float64, true),
        ]));
        let shared: ArrayRef = Arc::new(StringArray::from(vec!["INFO", "WARN", "ERROR"]));
        let other: ArrayRef = Arc::new(StringArray::from(vec![Some("DEBUG"), None, Some("INFO")]));
        let mut out = Vec::new();
        for b in 0..12i32 {
            let values = if b % 4 == 3 {
                other.clone()
            } else {
                shared.clone()
            };
            let keys: Int32Array = (0..500)
                .map(|i| ((i * 7 + b) % 11 != 0).then_some((i * 13 + b) % 3))
                .collect();
            let dict = DictionaryArray::<Int32Type>::try_new(keys, values).unwrap();
            let x: Float64Array = (0..500)
                .map(|i| ((i + b) % 5 != 0).then_some(f64::from(i * b % 97)))
                .collect();
            out.push(
                RecordBatch::try_new(schema.clone(), vec![Arc::new(dict), Arc::new(x)]).unwrap(),
            );
        }
        out
    }

    async fn run(keyed: bool, sql: &str) -> (String, Vec<RecordBatch>) {
        // VARCHAR as Utf8, as Insights fields are typed.
        let config = SessionConfig::new()
            .with_target_partitions(2)
            .set_bool("datafusion.sql_parser.map_string_types_to_utf8view", false);
        let mut builder = SessionStateBuilder::new()
            .with_config(config)
            .with_default_features();
        if keyed {
            let mut rules = SessionStateBuilder::new()
                .with_default_features()
                .build()
                .physical_optimizers()
                .to_vec();
            let at = rules
                .iter()
                .position(|r| r.name() == "ProjectionPushdown")
                .unwrap();
            rules.insert(at, Arc::new(GroupByKeys));
            builder = builder.with_physical_optimizer_rules(rules);
        }
        let ctx = SessionContext::new_with_state(builder.build());
        let data = batches();
        let parts = vec![data[..5].to_vec(), data[5..].to_vec()];
        let table = MemTable::try_new(data[0].schema(), parts).unwrap();
        ctx.register_table("t", Arc::new(table)).unwrap();
        let df = ctx.sql(sql).await.unwrap();
        let plan = df.clone().create_physical_plan().await.unwrap();
        let shown = datafusion::physical_plan::displayable(plan.as_ref())
            .indent(true)
            .to_string();
        (shown, df.collect().await.unwrap())
    }

    const GROUPED: &str = "SELECT k, count(*) AS n, avg(x) AS a, sum(x) AS s, max(x) AS m, \
        percentile_cont(0.9) WITHIN GROUP (ORDER BY x) AS p FROM (SELECT CAST(d AS VARCHAR) AS k, x FROM t) GROUP BY k ORDER BY k NULLS FIRST";

    /// `sql`'s rows, checked to be the same with and without the rule, which it uses.
    async fn same_answer_keyed(sql: &str) -> Vec<RecordBatch> {
        let (plain_plan, plain) = run(false, sql).await;
        let (keyed_plan, keyed) = run(true, sql).await;
        assert!(!plain_plan.contains("KeyedGroupExec"));
        assert!(keyed_plan.contains("KeyedGroupExec"), "{keyed_plan}");
        let show = |b: &[RecordBatch]| {
            arrow::util::pretty::pretty_format_batches(b)
                .unwrap()
                .to_string()
        };
        assert_eq!(show(&keyed), show(&plain));
        keyed
    }

    #[tokio::test]
    async fn grouping_by_keys_gives_the_hash_aggregates_answer() {
        let keyed = same_answer_keyed(GROUPED).await;
        // Every group is there: three levels, DEBUG, and the rows without a level.
        assert_eq!(keyed.iter().map(|b| b.num_rows()).sum::<usize>(), 5);
    }

    #[tokio::test]
    async fn a_union_with_text_is_grouped_by_keys_where_it_reads_dictionaries() {
        // The buffered batches' text beside the segments' dictionaries.
        let sql = "SELECT k, count(*) AS n, avg(x) AS a FROM (\
            SELECT CAST(d AS VARCHAR) AS k, x FROM t \
            UNION ALL SELECT arrow_cast('WARN', 'Utf8') AS k, x FROM t WHERE x > 50) \
            GROUP BY k ORDER BY k NULLS FIRST";
        same_answer_keyed(sql).await;
    }

    #[tokio::test]
    async fn a_key_read_as_text_elsewhere_keeps_the_hash_aggregate() {
        let sql = "SELECT k, count(*) AS n, max(k) AS m FROM \
            (SELECT CAST(d AS VARCHAR) AS k FROM t) GROUP BY k";
        let (plan, _) = run(true, sql).await;
        assert!(!plan.contains("KeyedGroupExec"), "{plan}");
        // An aggregate that needs its input sorted keeps it too.
        let sql = "SELECT k, array_agg(x ORDER BY x) AS xs FROM \
            (SELECT CAST(d AS VARCHAR) AS k, x FROM t) GROUP BY k";
        let (plan, _) = run(true, sql).await;
        assert!(!plan.contains("KeyedGroupExec"), "{plan}");
    }

    #[test]
    fn the_tables_learn_which_field_columns_are_grouped_by_alone() {
        use datafusion::datasource::provider_as_source;
        use datafusion::functions_aggregate::expr_fn::count;
        use datafusion::logical_expr::{col, LogicalPlanBuilder};
        let snapshot = logwell_storage::GroupSnapshot {
            name: "g".into(),
            group_id: 1,
            segments: Vec::new(),
            buffered: Vec::new(),
            tombstones: Default::default(),
            cutoff: None,
            data_protection: None,
            data_key: None,
            held_keys: Default::default(),
        };
        let fields = vec!["level".to_string(), "user".to_string(), "path".to_string()];
        let table = Arc::new(GroupTable::new(snapshot, (0, 1), fields, &[]));
        let scan =
            || LogicalPlanBuilder::scan("events", provider_as_source(table.clone()), None).unwrap();
        // By level alone (renamed on the way, past a filter on the user), and by path with
        // the user: only the level is grouped by alone.
        let by_level = scan()
            .filter(col("field:user").eq(datafusion::logical_expr::lit("u")))
            .unwrap()
            .project(vec![col("field:level").alias("level"), col("seq")])
            .unwrap()
            .aggregate(vec![col("level")], vec![count(col("seq")).alias("a")])
            .unwrap()
            .build()
            .unwrap();
        let by_two = scan()
            .aggregate(
                vec![col("field:path"), col("field:user")],
                vec![count(col("seq")).alias("b")],
            )
            .unwrap()
            .build()
            .unwrap();
        let plan = LogicalPlanBuilder::from(by_level)
            .cross_join(by_two)
            .unwrap()
            .build()
            .unwrap();
        mark_grouped_columns(&plan);
        let grouped = table.grouped();
        assert_eq!(grouped, ["field:level".to_string()].into_iter().collect());
    }

    #[tokio::test]
    async fn groups_are_emitted_in_parts_past_the_bound() {
        let aggregates: Vec<Arc<AggregateFunctionExpr>> = Vec::new();
        let mut groups = Groups::new(0, aggregates).unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Utf8, true)]));
        let values: ArrayRef = Arc::new(StringArray::from(
            (0..3000).map(|i| format!("v{i}")).collect::<Vec<_>>(),
        ));
        let keys: Int32Array = (0..3000).rev().collect();
        let dict = DictionaryArray::<Int32Type>::try_new(keys, values).unwrap();
        let batch = RecordBatch::try_from_iter([("d", Arc::new(dict) as ArrayRef)]).unwrap();
        groups.update(&batch).unwrap();
        assert_eq!(groups.len(), 3000);
        let out = groups.emit(&schema).unwrap();
        assert_eq!(out.num_rows(), 3000);
        assert_eq!(groups.len(), 0);
        // The same dictionary after an emit maps to new groups.
        groups.update(&batch).unwrap();
        assert_eq!(groups.len(), 3000);
    }
}
