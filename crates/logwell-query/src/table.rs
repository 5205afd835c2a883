//! One log group as a DataFusion table: its Parquet segments (read through the object store, with
//! row-group pruning by the pushed-down filters) unioned with the batches still in memory.

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::{DFSchema, Result};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{col, lit, Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::union::UnionExec;
use datafusion::physical_plan::ExecutionPlan;
use logwell_storage::memtable::col as columns;
use logwell_storage::GroupSnapshot;
use std::sync::Arc;

/// The URL the engine's object store is registered under in every query context.
pub const STORE_URL: &str = "logwell://store";

/// A snapshot of one group, scannable by DataFusion. Columns are the segment schema
/// (`stream`, `timestamp`, `ingestion_time`, `seq`, `message`).
#[derive(Debug)]
pub struct GroupTable {
    pub snapshot: GroupSnapshot,
    /// Inclusive time range (epoch ms): row groups outside it are skipped.
    range: (i64, i64),
    schema: SchemaRef,
}

impl GroupTable {
    pub fn new(snapshot: GroupSnapshot, range: (i64, i64)) -> GroupTable {
        GroupTable {
            snapshot,
            range,
            schema: logwell_storage::memtable::event_schema(),
        }
    }
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
        let mut inputs: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
        let segments = &self.snapshot.segments;
        if !segments.is_empty() {
            let mut source = ParquetSource::new(self.schema.clone())
                .with_table_parquet_options(state.table_options().parquet.clone());
            // The time range always prunes; the caller filters rows exactly above the scan.
            let ts = col(columns::TIMESTAMP);
            let range = ts
                .clone()
                .gt_eq(lit(self.range.0))
                .and(ts.lt_eq(lit(self.range.1)));
            if let Some(predicate) = conjunction(filters.iter().cloned().chain([range])) {
                let df_schema = DFSchema::try_from(self.schema.as_ref().clone())?;
                let physical = state.create_physical_expr(predicate, &df_schema)?;
                source = source.with_predicate(physical);
            }
            // One file group per core, each holding whole segments, newest files spread evenly.
            let parts = state.config().target_partitions().max(1);
            let mut groups: Vec<Vec<PartitionedFile>> = vec![Vec::new(); parts.min(segments.len())];
            let n = groups.len();
            for (i, s) in segments.iter().enumerate() {
                groups[i % n].push(PartitionedFile::new(s.path.clone(), s.bytes));
            }
            let config =
                FileScanConfigBuilder::new(ObjectStoreUrl::parse(STORE_URL)?, Arc::new(source))
                    .with_file_groups(groups.into_iter().map(FileGroup::new).collect())
                    .with_projection_indices(projection.cloned())?
                    .with_limit(limit)
                    .build();
            inputs.push(DataSourceExec::from_data_source(config));
        }
        if !self.snapshot.buffered.is_empty() || inputs.is_empty() {
            let parts: Vec<Vec<_>> = self
                .snapshot
                .buffered
                .iter()
                .map(|b| vec![b.clone()])
                .collect();
            let parts = if parts.is_empty() {
                vec![vec![]]
            } else {
                parts
            };
            let mem =
                MemorySourceConfig::try_new(&parts, self.schema.clone(), projection.cloned())?
                    .with_limit(limit);
            inputs.push(DataSourceExec::from_data_source(mem));
        }
        UnionExec::try_new(inputs)
    }
}
