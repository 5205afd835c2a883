//! SQL's schema: each log group a table by its name, and `logs` for the groups a request named.

use crate::compile::SEQ;
use crate::udf::QueryCounters;
use crate::Querier;
use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::common::DataFusionError;
use datafusion::datasource::ViewTable;
use datafusion::logical_expr::{ident, LogicalPlanBuilder};
use std::sync::Arc;

/// SQL's tables: each log group by its name, and `logs` for the groups the request named (or
/// every group). Tables are planned on first reference, so only the groups a query names are read.
pub(crate) struct SqlTables {
    pub(crate) querier: Querier,
    pub(crate) groups: Vec<String>,
    pub(crate) range: (i64, i64),
    pub(crate) counters: Arc<QueryCounters>,
}

impl std::fmt::Debug for SqlTables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqlTables")
    }
}

#[async_trait]
impl SchemaProvider for SqlTables {
    fn table_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .querier
            .engine
            .list_groups()
            .into_iter()
            .map(|g| g.name)
            .collect();
        names.push("logs".into());
        names
    }

    async fn table(
        &self,
        name: &str,
    ) -> datafusion::common::Result<Option<Arc<dyn TableProvider>>> {
        let groups: Vec<String> = if name == "logs" {
            if self.groups.is_empty() {
                self.querier
                    .engine
                    .list_groups()
                    .into_iter()
                    .map(|g| g.name)
                    .collect()
            } else {
                self.groups.clone()
            }
        } else if self.table_exist(name) {
            vec![name.to_string()]
        } else {
            return Ok(None);
        };
        if groups.is_empty() {
            return Ok(None);
        }
        let plan = self
            .querier
            .groups_plan(
                &groups,
                self.range.0,
                self.range.1,
                &self.counters,
                false,
                false,
                None,
            )
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        // The internal sequence column stays hidden from SQL.
        let visible: Vec<_> = plan
            .schema()
            .fields()
            .iter()
            .filter(|f| f.name() != SEQ)
            .map(|f| ident(f.name()))
            .collect();
        let plan = LogicalPlanBuilder::from(plan).project(visible)?.build()?;
        Ok(Some(Arc::new(ViewTable::new(plan, None))))
    }

    fn table_exist(&self, name: &str) -> bool {
        name == "logs" || self.querier.engine.group_exists(name)
    }
}
