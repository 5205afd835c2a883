//! One log group as a DataFusion table: its Parquet segments (read through the object store, with
//! row-group pruning by the pushed-down filters) unioned with the batches still in memory.
//!
//! Besides the event columns, the table has a `field:<path>` column (text) for each discovered
//! field that some segment of the query stores as a column, and a `num:<path>` column (Float64:
//! what the text reads as as a number) for those some segment stores as numbers. Segments are
//! scanned in groups by how they hold the fields a query reads: a stored column is read as it
//! is, or turned into the other form (a number printed back as its text, or text read as a
//! number); a field a segment does not store (older segments, the memtable) is computed from the
//! message with the same extraction, so every row gets the same value whichever way.
//!
//! A group with a data protection policy is read masked: the message is masked as it is read,
//! stored field columns (which hold the original values) are not used, and no filter on the
//! message or a field reaches the files, so every filter, parse and extraction sees masked text.

use crate::udf::JsonFields;
use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::functions::core::expr_fn::get_field;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{col, lit, Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::union::UnionExec;
use datafusion::physical_plan::ExecutionPlan;
use logwell_storage::catalog::SegmentMeta;
use logwell_storage::memtable::col as columns;
use logwell_storage::segment::{field_column, template_fields, MESSAGE_TEMPLATE, MESSAGE_VARS};
use logwell_storage::GroupSnapshot;
use std::sync::Arc;

mod files;

/// The URL the engine's object store is registered under in every query context.
pub const STORE_URL: &str = "logwell://store";

/// A snapshot of one group, scannable by DataFusion. Columns are the segment schema
/// (`stream`, `timestamp`, `ingestion_time`, `seq`, `message`), then `field:<path>` columns.
#[derive(Debug)]
pub struct GroupTable {
    pub snapshot: GroupSnapshot,
    /// Inclusive time range (epoch ms): row groups outside it are skipped.
    range: (i64, i64),
    /// The discovered fields offered as columns (the same list for every group of a query, so
    /// that their tables union).
    fields: Vec<String>,
    /// Those of `fields` also offered as numbers (indexes into `fields`).
    numbers: Vec<usize>,
    schema: SchemaRef,
    /// The group's policy, unless the read was allowed to unmask.
    protection: logwell_dataprotection::Protection,
    /// A page probe's rising bar on the timestamp, which the segment scans also test.
    bound: Option<crate::newest::TimeBound>,
    /// Rows are wanted oldest first (a top-N by ascending time): the oldest files are read
    /// first, so that the top-N's bound rises at once and prunes the newer ones.
    oldest_first: bool,
    /// The field columns the query groups by, set once its plan is known: those are read as
    /// dictionaries where they can be (elsewhere, text read as text costs less than a
    /// dictionary cast to text).
    grouped: std::sync::Mutex<std::collections::HashSet<String>>,
}

/// The event columns every segment and memtable batch has.
fn event_schema() -> SchemaRef {
    logwell_storage::memtable::event_schema()
}

/// The type a [`Stored::Keyed`] field column is read as.
fn keyed_type() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

/// The column of a discovered field's values as numbers.
pub fn number_column(path: &str) -> String {
    format!("num:{path}")
}

/// How a segment holds one discovered field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stored {
    /// Not at all: it is extracted from the message.
    Absent,
    Text,
    /// As text, in pages that are all dictionary-encoded from a small dictionary (in every
    /// segment of the scan), and grouped by: read as a dictionary (keys and the distinct
    /// values) and cast to text above the scan, so that grouping by it can go by keys instead
    /// of hashing every value (`keyed_group`).
    Keyed,
    Number,
}

impl Stored {
    fn of(segment: &SegmentMeta, path: &str) -> Stored {
        if !segment.fields.iter().any(|f| f == path) {
            Stored::Absent
        } else if segment.numeric.iter().any(|f| f == path) {
            Stored::Number
        } else {
            Stored::Text
        }
    }
}

/// A column of the table: an event column, or a field (index into `fields`) as text or number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TableColumn {
    Event(usize),
    Text(usize),
    Number(usize),
}

impl TableColumn {
    fn field(self) -> Option<usize> {
        match self {
            TableColumn::Event(_) => None,
            TableColumn::Text(k) | TableColumn::Number(k) => Some(k),
        }
    }
}

/// How one source holds the fields a scan reads: `paths` (indexes into the table's fields,
/// sorted) and, for each, how it is stored.
struct Layout<'a> {
    paths: &'a [usize],
    stored: Vec<Stored>,
}

impl Layout<'_> {
    fn of(&self, field: usize) -> Stored {
        self.paths
            .iter()
            .position(|k| *k == field)
            .map_or(Stored::Absent, |j| self.stored[j])
    }

    fn extracts(&self) -> bool {
        self.stored.contains(&Stored::Absent)
    }
}

impl GroupTable {
    /// The table of `snapshot` over `range`, offering the discovered `fields` as text columns
    /// and those of them in `numbers` also as number columns.
    pub fn new(
        snapshot: GroupSnapshot,
        range: (i64, i64),
        fields: Vec<String>,
        numbers: &[String],
    ) -> GroupTable {
        let numbers: Vec<usize> = fields
            .iter()
            .enumerate()
            .filter(|(_, f)| numbers.contains(f))
            .map(|(k, _)| k)
            .collect();
        let mut all: Vec<Field> = event_schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        all.extend(
            fields
                .iter()
                .map(|f| Field::new(field_column(f), DataType::Utf8, true)),
        );
        all.extend(
            numbers
                .iter()
                .map(|k| Field::new(number_column(&fields[*k]), DataType::Float64, true)),
        );
        // A snapshot whose policy was lifted (an allowed unmask) has none here.
        let protection =
            logwell_dataprotection::Protection::of(snapshot.data_protection.as_deref(), false);
        GroupTable {
            snapshot,
            range,
            fields,
            numbers,
            schema: Arc::new(Schema::new(all)),
            protection,
            bound: None,
            oldest_first: false,
            grouped: Default::default(),
        }
    }

    #[cfg(test)]
    pub(crate) fn grouped(&self) -> std::collections::HashSet<String> {
        self.grouped.lock().expect("not poisoned").clone()
    }

    /// Tells the table which of its columns the query groups by (see `keyed_group`).
    pub(crate) fn group_by(&self, columns: std::collections::HashSet<String>) {
        *self.grouped.lock().expect("not poisoned") = columns;
    }

    fn column(&self, i: usize) -> TableColumn {
        let base = event_schema().fields().len();
        let texts = self.fields.len();
        if i < base {
            TableColumn::Event(i)
        } else if i < base + texts {
            TableColumn::Text(i - base)
        } else {
            TableColumn::Number(self.numbers[i - base - texts])
        }
    }

    pub(crate) fn oldest_first(mut self, oldest_first: bool) -> GroupTable {
        self.oldest_first = oldest_first;
        self
    }

    pub(crate) fn with_bound(mut self, bound: Option<crate::newest::TimeBound>) -> GroupTable {
        self.bound = bound;
        self
    }

    /// A scan of buffered `batches` (one partition each; one empty one when there are none)
    /// reading the event columns `projection`.
    fn memtable(
        &self,
        batches: Vec<RecordBatch>,
        projection: &[usize],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let mut parts: Vec<Vec<_>> = batches.into_iter().map(|b| vec![b]).collect();
        if parts.is_empty() {
            parts.push(vec![]);
        }
        let mem = MemorySourceConfig::try_new(&parts, event_schema(), Some(projection.to_vec()))?
            .with_limit(limit);
        Ok(DataSourceExec::from_data_source(mem))
    }

    /// `input` with its message (if it has one) masked by `masker`; other columns as they are.
    fn masked(
        &self,
        state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        masker: &Arc<logwell_dataprotection::Masker>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let schema = input.schema();
        let df = DFSchema::try_from(schema.as_ref().clone())?;
        let mask = crate::udf::Mask::udf(masker.clone());
        let mut exprs: Vec<(Arc<dyn PhysicalExpr>, String)> = Vec::new();
        for f in schema.fields() {
            let e = if f.name() == columns::MESSAGE {
                mask.call(vec![col(columns::MESSAGE)])
            } else {
                col(f.name())
            };
            exprs.push((state.create_physical_expr(e, &df)?, f.name().clone()));
        }
        Ok(Arc::new(ProjectionExec::try_new(exprs, input)?))
    }

    /// The scan of a masked group: every source reads event columns, masks the message, then
    /// extracts the fields wanted from the masked text. Only filters on the other event columns
    /// (time, stream, sequence) prune the files.
    fn scan_masked(
        &self,
        state: &dyn Session,
        cols: &[TableColumn],
        filters: &[Expr],
        limit: Option<usize>,
        masker: &Arc<logwell_dataprotection::Masker>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let paths = wanted_fields(cols);
        let layout = Layout {
            paths: &paths,
            stored: vec![Stored::Absent; paths.len()],
        };
        let read = event_reads(cols, &layout)?;
        let safe: Vec<Expr> = filters
            .iter()
            .filter(|f| {
                f.column_refs().iter().all(|c| {
                    c.name() != columns::MESSAGE && event_schema().index_of(c.name()).is_ok()
                })
            })
            .cloned()
            .collect();
        let mut sources: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
        let segments: Vec<&Arc<SegmentMeta>> = self.snapshot.segments.iter().collect();
        if !segments.is_empty() {
            sources.push(self.parquet(
                state,
                &segments,
                event_schema(),
                read.clone(),
                &safe,
                limit,
            )?);
        }
        if !self.snapshot.buffered.is_empty() || sources.is_empty() {
            let batches = self.snapshot.buffered.iter().map(|b| b.batch.clone());
            sources.push(self.memtable(batches.collect(), &read, limit)?);
        }
        let mut inputs = Vec::new();
        for source in sources {
            let masked = self.masked(state, source, masker)?;
            inputs.push(self.assemble(state, masked, cols, &layout)?);
        }
        UnionExec::try_new(inputs)
    }

    /// The table columns `cols` from `input`, a source holding the event columns it read and
    /// the stored field columns of `layout` (as `field:<path>`, text or Float64): stored
    /// columns are taken as they are or turned into the other form, the rest extracted from
    /// the message in one pass.
    fn assemble(
        &self,
        state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        cols: &[TableColumn],
        layout: &Layout,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let names: Vec<String> = cols.iter().map(|c| self.name(*c)).collect();
        let in_schema = input.schema();
        let same = in_schema.fields().len() == cols.len()
            && in_schema.fields().iter().zip(&names).all(|(f, n)| {
                f.name() == n
                    && self
                        .schema
                        .field_with_name(n)
                        .is_ok_and(|t| t.data_type() == f.data_type())
            });
        if same {
            return Ok(input);
        }
        let df_in = DFSchema::try_from(in_schema.as_ref().clone())?;
        let mut first: Vec<(Arc<dyn PhysicalExpr>, String)> = Vec::new();
        for f in in_schema.fields() {
            first.push((
                state.create_physical_expr(col(f.name()), &df_in)?,
                f.name().clone(),
            ));
        }
        const STRUCT: &str = "__fields";
        let extracted: Vec<usize> = layout
            .paths
            .iter()
            .zip(&layout.stored)
            .filter(|(_, s)| **s == Stored::Absent)
            .map(|(k, _)| *k)
            .collect();
        let mut step = input;
        if !extracted.is_empty() {
            let paths: Vec<String> = extracted.iter().map(|k| self.fields[*k].clone()).collect();
            let extract = JsonFields::call(col(columns::MESSAGE), &paths);
            first.push((state.create_physical_expr(extract, &df_in)?, STRUCT.into()));
            step = Arc::new(ProjectionExec::try_new(first, step)?);
        }
        let df_mid = DFSchema::try_from(step.schema().as_ref().clone())?;
        let number = |e: Expr| {
            Expr::TryCast(datafusion::logical_expr::TryCast::new(
                Box::new(e),
                DataType::Float64,
            ))
        };
        let mut second: Vec<(Arc<dyn PhysicalExpr>, String)> = Vec::new();
        for (c, name) in cols.iter().zip(names) {
            let stored = |k: usize| col(field_column(&self.fields[k]));
            let slot = |k: usize| {
                let at = extracted.iter().position(|x| *x == k).unwrap_or(0);
                get_field(col(STRUCT), at.to_string())
            };
            let e = match *c {
                TableColumn::Event(_) => col(&name),
                TableColumn::Text(k) => match layout.of(k) {
                    Stored::Text => stored(k),
                    Stored::Keyed => Expr::Cast(datafusion::logical_expr::Cast::new(
                        Box::new(stored(k)),
                        DataType::Utf8,
                    )),
                    Stored::Number => crate::udf::NumberText::call(stored(k)),
                    Stored::Absent => slot(k),
                },
                TableColumn::Number(k) => match layout.of(k) {
                    Stored::Number => stored(k),
                    Stored::Text | Stored::Keyed => number(stored(k)),
                    Stored::Absent => number(slot(k)),
                },
            };
            second.push((state.create_physical_expr(e, &df_mid)?, name));
        }
        Ok(Arc::new(ProjectionExec::try_new(second, step)?))
    }

    fn name(&self, c: TableColumn) -> String {
        match c {
            TableColumn::Event(i) => event_schema().field(i).name().clone(),
            TableColumn::Text(k) => field_column(&self.fields[k]),
            TableColumn::Number(k) => number_column(&self.fields[k]),
        }
    }

    /// The columns of a source holding the fields as `layout` says: the event columns, then a
    /// `field:<path>` column (text or Float64) for each field it holds.
    fn file_schema(&self, layout: &Layout) -> SchemaRef {
        let mut file: Vec<Field> = event_schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        for (k, stored) in layout.paths.iter().zip(&layout.stored) {
            let ty = match stored {
                Stored::Absent => continue,
                Stored::Text => DataType::Utf8,
                Stored::Keyed => keyed_type(),
                Stored::Number => DataType::Float64,
            };
            file.push(Field::new(field_column(&self.fields[*k]), ty, true));
        }
        Arc::new(Schema::new(file))
    }

    /// Scans of the buffered batches giving `cols`. A field a sealed batch keeps (extracted
    /// once, after an earlier query: see `Querier::fields_to_keep`) is read from it;
    /// the others are extracted in the plan, as in segments without field columns. Queries over the last minutes thus parse each
    /// message once, and the first of them costs no more than before. Batches are scanned in
    /// groups by how they hold the fields, as segments are.
    fn buffered_scans(
        &self,
        state: &dyn Session,
        cols: &[TableColumn],
        paths: &[usize],
        limit: Option<usize>,
    ) -> Result<Vec<Arc<dyn ExecutionPlan>>> {
        let absent = Layout {
            paths,
            stored: vec![Stored::Absent; paths.len()],
        };
        let all = || self.snapshot.buffered.iter().map(|b| b.batch.clone());
        if paths.is_empty() {
            let mem = self.memtable(all().collect(), &event_reads(cols, &absent)?, limit)?;
            return Ok(vec![self.assemble(state, mem, cols, &absent)?]);
        }
        let names: Vec<String> = paths.iter().map(|k| self.fields[*k].clone()).collect();
        let (lo, hi) = self.range;
        let mut groups: std::collections::BTreeMap<Vec<Stored>, Vec<RecordBatch>> =
            Default::default();
        for b in &self.snapshot.buffered {
            // A batch wholly outside the range holds no row the query sees.
            let (min, max) = b.time_range().unwrap_or((i64::MAX, i64::MIN));
            if min > hi || max < lo {
                continue;
            }
            let kept = b.kept_columns(&names);
            let stored: Vec<Stored> = kept
                .iter()
                .map(|c| match c.as_ref().map(|c| c.data_type()) {
                    None => Stored::Absent,
                    Some(DataType::Float64) => Stored::Number,
                    Some(_) => Stored::Text,
                })
                .collect();
            let layout = Layout {
                paths,
                stored: stored.clone(),
            };
            let mut arrays = b.columns().to_vec();
            arrays.extend(kept.into_iter().flatten());
            let batch = RecordBatch::try_new(self.file_schema(&layout), arrays)?;
            groups.entry(stored).or_default().push(batch);
        }
        let mut scans = Vec::new();
        for (stored, batches) in groups {
            let layout = Layout { paths, stored };
            let schema = self.file_schema(&layout);
            let mut read = event_reads(cols, &layout)?;
            read.extend(event_schema().fields().len()..schema.fields().len());
            let parts: Vec<Vec<RecordBatch>> = batches.into_iter().map(|b| vec![b]).collect();
            let mem = MemorySourceConfig::try_new(&parts, schema, Some(read))?.with_limit(limit);
            let mem = DataSourceExec::from_data_source(mem);
            scans.push(self.assemble(state, mem, cols, &layout)?);
        }
        if scans.is_empty() {
            let mem = self.memtable(Vec::new(), &event_reads(cols, &absent)?, limit)?;
            scans.push(self.assemble(state, mem, cols, &absent)?);
        }
        Ok(scans)
    }

    /// A scan of `segments`, which all hold the fields `layout` reads alike, giving `cols`.
    fn segment_scan(
        &self,
        state: &dyn Session,
        segments: &[&Arc<SegmentMeta>],
        cols: &[TableColumn],
        layout: &Layout,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // Filters reach the files only on columns they hold as the table types them; a test
        // of a field's number reads a number column under its stored name.
        let pushed: Vec<Expr> = filters
            .iter()
            .filter_map(|f| self.file_filter(f, layout))
            .collect();
        let layout = &self.keyed(state, segments, layout, &pushed);
        let file = self.file_schema(layout);
        let mut read = event_reads(cols, layout)?;
        read.extend(event_schema().fields().len()..file.fields().len());
        let scan = self.parquet(state, segments, file, read, &pushed, limit)?;
        self.assemble(state, scan, cols, layout)
    }

    /// `filter` over files holding the fields as `layout` says, or None if it reads a column
    /// they do not hold in the table's type.
    fn file_filter(&self, filter: &Expr, layout: &Layout) -> Option<Expr> {
        let mut usable = true;
        let out = filter
            .clone()
            .transform(|e| {
                let Expr::Column(c) = &e else {
                    return Ok(Transformed::no(e));
                };
                let Ok(i) = self.schema.index_of(&c.name) else {
                    usable = false;
                    return Ok(Transformed::no(e));
                };
                Ok(match self.column(i) {
                    TableColumn::Event(_) => Transformed::no(e),
                    TableColumn::Text(k) if layout.of(k) == Stored::Text => Transformed::no(e),
                    TableColumn::Number(k) if layout.of(k) == Stored::Number => {
                        Transformed::yes(col(field_column(&self.fields[k])))
                    }
                    _ => {
                        usable = false;
                        Transformed::no(e)
                    }
                })
            })
            .ok()?
            .data;
        usable.then_some(out)
    }
}

/// The fields (indexes into the table's) that `cols` read, sorted, each once.
fn wanted_fields(cols: &[TableColumn]) -> Vec<usize> {
    let mut paths: Vec<usize> = cols.iter().filter_map(|c| c.field()).collect();
    paths.sort();
    paths.dedup();
    paths
}

/// The event columns (indexes into the event schema) a source reads for `cols`: those they
/// name, and the message when a field is extracted from it.
fn event_reads(cols: &[TableColumn], layout: &Layout) -> Result<Vec<usize>> {
    let mut read: Vec<usize> = cols
        .iter()
        .filter_map(|c| match c {
            TableColumn::Event(i) => Some(*i),
            _ => None,
        })
        .collect();
    let message = event_schema().index_of(columns::MESSAGE)?;
    if layout.extracts() && !read.contains(&message) {
        read.push(message);
    }
    Ok(read)
}

#[async_trait]
impl TableProvider for GroupTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // Filters prune row groups by statistics; rows are still filtered above the scan.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let projection: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let cols: Vec<TableColumn> = projection.iter().map(|i| self.column(*i)).collect();
        if let logwell_dataprotection::Protection::Masked(masker) = &self.protection {
            return self.scan_masked(state, &cols, filters, limit, masker);
        }
        let paths = wanted_fields(&cols);
        // Segments in groups by how they hold the fields read: one scan per group.
        let mut groups: std::collections::BTreeMap<Vec<Stored>, Vec<&Arc<SegmentMeta>>> =
            Default::default();
        for s in &self.snapshot.segments {
            let stored = paths.iter().map(|k| Stored::of(s, &self.fields[*k]));
            groups.entry(stored.collect()).or_default().push(s);
        }
        let mut inputs: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
        for (stored, segments) in groups {
            let layout = Layout {
                paths: &paths,
                stored,
            };
            inputs.push(self.segment_scan(state, &segments, &cols, &layout, filters, limit)?);
        }
        if !self.snapshot.buffered.is_empty() || inputs.is_empty() {
            inputs.extend(self.buffered_scans(state, &cols, &paths, limit)?);
        }
        UnionExec::try_new(inputs)
    }
}

/// The rows of a group snapshot a read may see between `lo` and `hi` (epoch ms, inclusive): not
/// past retention, and not in a deleted stream (below its tombstone). The one statement of these
/// rules for DataFusion plans; storage's own reads apply the same snapshot fields row by row.
pub fn visible_rows(snap: &logwell_storage::GroupSnapshot, lo: i64, hi: i64) -> Expr {
    use std::ops::Not;
    let lo = lo.max(snap.cutoff.unwrap_or(i64::MIN));
    // Every row is visible (the usual case: a range over all the data, no deleted stream):
    // the rows need not be read and tested, timestamps included.
    if snap.tombstones.is_empty() && all_within(snap, lo, hi) {
        return lit(true);
    }
    let ts = col(columns::TIMESTAMP);
    let mut visible = ts.clone().gt_eq(lit(lo)).and(ts.lt_eq(lit(hi)));
    for (stream, floor) in &snap.tombstones {
        visible = visible.and(
            col(columns::STREAM)
                .eq(lit(stream.as_str()))
                .and(col(columns::SEQ).lt(lit(*floor)))
                .not(),
        );
    }
    visible
}

/// Whether every event of `snap` is between `lo` and `hi` (inclusive).
fn all_within(snap: &logwell_storage::GroupSnapshot, lo: i64, hi: i64) -> bool {
    snap.segments
        .iter()
        .all(|s| s.min_ts >= lo && s.max_ts <= hi)
        && snap.buffered.iter().all(|b| {
            b.time_range()
                .is_none_or(|(min, max)| min >= lo && max <= hi)
        })
}
