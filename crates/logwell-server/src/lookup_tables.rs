//! Lookup tables (CreateLookupTable, GetLookupTable, UpdateLookupTable, DeleteLookupTable,
//! DescribeLookupTables): CSV tables the `lookup` query command reads. Kept in the object store
//! as `settings/lookup-tables.json`, written whole on every change, so every node sees them.

use crate::queries::Queries;
use logwell_model::api::Empty;
use logwell_model::api_queries::*;
use logwell_model::{ApiError, ErrorKind};
use logwell_query::lookup::{LookupTable, MAX_TABLE_BYTES};
use logwell_query::Querier;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tokio::sync::Mutex;

/// CloudWatch's quota: lookup tables per account and Region.
const MAX_TABLES: usize = 100;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredTable {
    name: String,
    description: Option<String>,
    table_body: String,
    kms_key_id: Option<String>,
    created_at: i64,
    last_updated_time: i64,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

pub struct LookupTableStore {
    engine: logwell_storage::Engine,
    /// The parsed tables queries read (kept in step with `tables`).
    parsed: std::sync::Arc<logwell_query::lookup::LookupTables>,
    /// `arn:aws:logs:<region>:<account>:lookup-table:`.
    arn_prefix: String,
    /// A tokio mutex: held while a change is saved.
    tables: Mutex<BTreeMap<String, StoredTable>>,
}

const DOCUMENT: &str = "lookup-tables.json";

fn parse_table(body: &str) -> Result<LookupTable, ApiError> {
    LookupTable::parse(body).map_err(ApiError::invalid)
}

fn check_name(name: &str, param: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 256
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ApiError::constraint(
            name,
            param,
            "satisfy regular expression pattern: ^[a-zA-Z0-9_]+$",
        ))
    }
}

fn not_found() -> ApiError {
    ApiError::new(
        ErrorKind::ResourceNotFound,
        "The specified lookup table does not exist.",
    )
}

impl LookupTableStore {
    /// Loads the saved tables and hands them to the query engine.
    pub async fn open(
        data_dir: &std::path::Path,
        arn_prefix: String,
        querier: &Querier,
    ) -> Result<Self, ApiError> {
        let tables: BTreeMap<String, StoredTable> =
            crate::settings::load(querier.engine(), data_dir, DOCUMENT).await?;
        for (name, t) in &tables {
            match LookupTable::parse(&t.table_body) {
                Ok(parsed) => querier.lookup_tables().set(name, parsed),
                Err(e) => {
                    tracing::warn!(table = %name, error = %e, "saved lookup table unreadable")
                }
            }
        }
        Ok(LookupTableStore {
            engine: querier.engine().clone(),
            parsed: querier.lookup_tables().clone(),
            arn_prefix,
            tables: Mutex::new(tables),
        })
    }

    fn arn(&self, name: &str) -> String {
        format!("{}{name}", self.arn_prefix)
    }

    /// The table name an ARN (or a bare name) refers to.
    fn name_of(&self, arn: Option<String>) -> Result<String, ApiError> {
        let arn =
            arn.ok_or_else(|| ApiError::constraint("null", "lookupTableArn", "not be null"))?;
        Ok(arn
            .strip_prefix(&self.arn_prefix)
            .or_else(|| arn.rsplit_once(":lookup-table:").map(|(_, n)| n))
            .unwrap_or(&arn)
            .to_string())
    }

    /// The CSV body from `tableBody` or from a finished query's results (exactly one).
    fn body(queries: &Queries, r: &LookupTableRequest) -> Result<String, ApiError> {
        match (&r.table_body, &r.query_id) {
            (Some(b), None) => {
                if b.is_empty() || b.len() > MAX_TABLE_BYTES {
                    return Err(ApiError::constraint(
                        "(table body)",
                        "tableBody",
                        "have length between 1 and 10485760",
                    ));
                }
                Ok(b.clone())
            }
            (None, Some(id)) => queries.results_csv(id),
            _ => Err(ApiError::invalid(
                "Exactly one of tableBody or queryId must be specified.",
            )),
        }
    }

    pub(crate) async fn create(
        &self,
        queries: &Queries,
        r: LookupTableRequest,
    ) -> Result<CreateLookupTableResponse, ApiError> {
        let name = r
            .lookup_table_name
            .clone()
            .ok_or_else(|| ApiError::constraint("null", "lookupTableName", "not be null"))?;
        check_name(&name, "lookupTableName")?;
        let body = Self::body(queries, &r)?;
        let parsed = parse_table(&body)?;
        let mut tables = self.tables.lock().await;
        if tables.contains_key(&name) {
            return Err(ApiError::already_exists());
        }
        if tables.len() >= MAX_TABLES {
            return Err(ApiError::new(
                ErrorKind::LimitExceeded,
                format!("An account can have at most {MAX_TABLES} lookup tables."),
            ));
        }
        let now = logwell_model::now_millis();
        let mut next = tables.clone();
        next.insert(
            name.clone(),
            StoredTable {
                name: name.clone(),
                description: r.description,
                table_body: body,
                kms_key_id: r.kms_key_id,
                created_at: now,
                last_updated_time: now,
                tags: r.tags.unwrap_or_default(),
            },
        );
        self.save(&next).await?;
        *tables = next;
        self.parsed.set(&name, parsed);
        Ok(CreateLookupTableResponse {
            lookup_table_arn: self.arn(&name),
            created_at: now,
        })
    }

    pub(crate) async fn get(
        &self,
        r: LookupTableRequest,
    ) -> Result<GetLookupTableResponse, ApiError> {
        let name = self.name_of(r.lookup_table_arn)?;
        let tables = self.tables.lock().await;
        let t = tables.get(&name).ok_or_else(not_found)?;
        Ok(GetLookupTableResponse {
            lookup_table_arn: self.arn(&name),
            lookup_table_name: name,
            description: t.description.clone(),
            table_body: t.table_body.clone(),
            size_bytes: t.table_body.len() as u64,
            last_updated_time: t.last_updated_time,
            kms_key_id: t.kms_key_id.clone(),
        })
    }

    pub(crate) async fn update(
        &self,
        queries: &Queries,
        r: LookupTableRequest,
    ) -> Result<UpdateLookupTableResponse, ApiError> {
        let name = self.name_of(r.lookup_table_arn.clone())?;
        let body = Self::body(queries, &r)?;
        let parsed = parse_table(&body)?;
        let mut tables = self.tables.lock().await;
        let mut next = tables.clone();
        let t = next.get_mut(&name).ok_or_else(not_found)?;
        let now = logwell_model::now_millis();
        t.table_body = body;
        t.last_updated_time = now;
        if r.description.is_some() {
            t.description = r.description;
        }
        if r.kms_key_id.is_some() {
            t.kms_key_id = r.kms_key_id;
        }
        self.save(&next).await?;
        *tables = next;
        self.parsed.set(&name, parsed);
        Ok(UpdateLookupTableResponse {
            lookup_table_arn: self.arn(&name),
            last_updated_time: now,
        })
    }

    pub(crate) async fn delete(&self, r: LookupTableRequest) -> Result<Empty, ApiError> {
        let name = self.name_of(r.lookup_table_arn)?;
        let mut tables = self.tables.lock().await;
        if !tables.contains_key(&name) {
            return Err(not_found());
        }
        let mut next = tables.clone();
        next.remove(&name);
        self.save(&next).await?;
        *tables = next;
        self.parsed.remove(&name);
        Ok(Empty {})
    }

    pub(crate) async fn describe(
        &self,
        r: LookupTableRequest,
    ) -> Result<DescribeLookupTablesResponse, ApiError> {
        if let Some(p) = &r.lookup_table_name_prefix {
            check_name(p, "lookupTableNamePrefix")?;
        }
        let max = r.max_results.unwrap_or(50);
        if !(1..=100).contains(&max) {
            return Err(ApiError::constraint(
                &max.to_string(),
                "maxResults",
                "have value between 1 and 100",
            ));
        }
        let after = match &r.next_token {
            Some(t) => Some(
                t.strip_prefix("l/")
                    .ok_or_else(ApiError::bad_token)?
                    .to_string(),
            ),
            None => None,
        };
        let tables = self.tables.lock().await;
        let matching: Vec<&StoredTable> = tables
            .values()
            .filter(|t| {
                r.lookup_table_name_prefix
                    .as_deref()
                    .is_none_or(|p| t.name.starts_with(p))
                    && after.as_deref().is_none_or(|a| t.name.as_str() > a)
            })
            .collect();
        let page = &matching[..matching.len().min(max as usize)];
        let lookup_tables = page
            .iter()
            .map(|t| {
                // The parsed copy, not a fresh parse of up to 10 MB of CSV per listing.
                let parsed = self.parsed.get(&t.name);
                LookupTableInfo {
                    lookup_table_arn: self.arn(&t.name),
                    lookup_table_name: t.name.clone(),
                    description: t.description.clone(),
                    table_fields: parsed.as_ref().map(|p| p.columns()).unwrap_or_default(),
                    records_count: parsed.as_ref().map_or(0, |p| p.rows() as u64),
                    size_bytes: t.table_body.len() as u64,
                    last_updated_time: t.last_updated_time,
                    kms_key_id: t.kms_key_id.clone(),
                }
            })
            .collect();
        Ok(DescribeLookupTablesResponse {
            lookup_tables,
            next_token: (matching.len() > page.len())
                .then(|| format!("l/{}", page.last().unwrap().name)),
        })
    }

    async fn save(&self, tables: &BTreeMap<String, StoredTable>) -> Result<(), ApiError> {
        crate::settings::save(&self.engine, DOCUMENT, tables).await
    }
}
