//! Logs Insights and SQL over logwell-storage, compiled to DataFusion logical plans that read the
//! groups' Parquet segments and their not-yet-flushed batches.
//!
//! ```no_run
//! # async fn demo(engine: logwell_storage::Engine) -> Result<(), logwell_query::QueryError> {
//! use logwell_query::{Language, Querier, QueryConfig, QueryRequest};
//! let querier = Querier::new(engine, QueryConfig::default())?;
//! let prepared = querier
//!     .prepare(QueryRequest {
//!         groups: vec!["/app/api".into()],
//!         start_ms: 0,
//!         end_ms: i64::MAX,
//!         query: "stats count(*) by bin(5m)".into(),
//!         language: Language::Insights,
//!         limit: None,
//!     })
//!     .await?;
//! let results = prepared.run().await?;
//! println!("{} rows", results.rows.len());
//! # Ok(()) }
//! ```

pub mod anomaly;
mod bin_count;
pub mod compile;
pub mod events;
mod footers;
pub mod format;
mod keep;
mod keyed_group;
pub mod lookup;
mod newest;
mod partial;
pub mod pattern;
mod session;
mod split_search;
mod sql;
pub mod table;
pub mod udf;

use crate::compile::{
    CastTo, CompiledQuery, FIELD_PREFIX, LOG, NUMBER_PREFIX, PTR_LOG, PTR_SEQ, PTR_TS, SEQ,
};
use crate::table::{GroupTable, STORE_URL};
use crate::udf::{CountTrue, QueryCounters};
use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Int64Type, TimeUnit};
use base64::Engine as _;
use datafusion::catalog::{CatalogProviderList, MemoryCatalogProvider, MemoryCatalogProviderList};
use datafusion::common::DataFusionError;
use datafusion::datasource::provider_as_source;
use datafusion::execution::disk_manager::DiskManagerBuilder;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::{SessionState, SessionStateBuilder};
use datafusion::logical_expr::{col, ident, lit, LogicalPlan, LogicalPlanBuilder};
use datafusion::prelude::SessionContext;
use logwell_model::ApiError;
use logwell_storage::memtable::col as columns;
use logwell_storage::segment::field_column;
use logwell_storage::{Engine, GroupSnapshot};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Why a query cannot run; each maps onto the exception CloudWatch returns.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// MalformedQueryException: the query does not parse or does not make sense.
    #[error("{0}")]
    Malformed(String),
    /// InvalidParameterException.
    #[error("{0}")]
    Invalid(String),
    /// ResourceNotFoundException and storage errors, as the storage layer words them.
    #[error("{}", .0.message)]
    Api(ApiError),
    /// The engine failed while running the query.
    #[error("query failed: {0}")]
    Execution(String),
}

impl From<DataFusionError> for QueryError {
    fn from(e: DataFusionError) -> Self {
        // Storage that cannot be read is the service's fault, not the query's: 503.
        if matches!(
            e.find_root(),
            DataFusionError::ObjectStore(_)
                | DataFusionError::IoError(_)
                | DataFusionError::ParquetError(_)
        ) {
            return QueryError::Api(ApiError::unavailable(format!(
                "cannot read stored events: {e}"
            )));
        }
        match e {
            DataFusionError::Plan(m) => QueryError::Malformed(m),
            DataFusionError::SQL(e, _) => QueryError::Malformed(e.to_string()),
            DataFusionError::SchemaError(e, _) => QueryError::Malformed(e.to_string()),
            DataFusionError::External(e) => match e.downcast::<QueryError>() {
                Ok(q) => *q,
                Err(e) => QueryError::Execution(e.to_string()),
            },
            other => QueryError::Execution(other.to_string()),
        }
    }
}

impl From<ApiError> for QueryError {
    fn from(e: ApiError) -> Self {
        QueryError::Api(e)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// Logs Insights QL (`CWLI`).
    Insights,
    /// DataFusion SQL: each log group is a table named by its name; `logs` is all of them.
    Sql,
}

#[derive(Debug, Clone)]
pub struct QueryRequest {
    pub groups: Vec<String>,
    /// Inclusive range, epoch milliseconds.
    pub start_ms: i64,
    pub end_ms: i64,
    pub query: String,
    pub language: Language,
    /// StartQuery's `limit`.
    pub limit: Option<usize>,
}

/// Memory and parallelism of the query engine.
#[derive(Debug, Clone)]
pub struct QueryConfig {
    /// Past this, sorts and aggregations spill to disk instead of failing.
    pub memory_limit: usize,
    /// Where spill files go (the OS temp directory when unset).
    pub spill_dir: Option<std::path::PathBuf>,
    pub target_partitions: usize,
    /// `@log` is `<account-id>:<group>`.
    pub account_id: String,
    /// FilterLogEvents reads a range in time-ordered slices of at least this many rows, and
    /// stops once a slice can hold nothing for the page.
    pub filter_slice_rows: usize,
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            memory_limit: 2 << 30,
            spill_dir: None,
            target_partitions: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            account_id: "000000000000".into(),
            filter_slice_rows: 256 * 1024,
        }
    }
}

/// One row of results: `(field, value)` pairs; fields without a value are left out.
pub type Row = Vec<(String, String)>;

#[derive(Debug, Clone, Default)]
pub struct QueryResults {
    pub fields: Vec<String>,
    pub rows: Vec<Row>,
    pub stats: QueryStatistics,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct QueryStatistics {
    pub records_matched: f64,
    pub records_scanned: f64,
    pub bytes_scanned: f64,
}

/// Runs queries against one storage engine.
#[derive(Clone)]
pub struct Querier {
    engine: Engine,
    config: QueryConfig,
    lookups: Arc<lookup::LookupTables>,
    /// The session every query starts from (see [`session`]): building one registers a few
    /// hundred functions, a copy costs a fraction of that.
    session: Arc<SessionState>,
}

impl Querier {
    pub fn new(engine: Engine, config: QueryConfig) -> Result<Querier, QueryError> {
        let disk = match &config.spill_dir {
            Some(dir) => DiskManagerBuilder::default().with_mode(
                datafusion::execution::disk_manager::DiskManagerMode::Directories(
                    vec![dir.clone()],
                ),
            ),
            None => DiskManagerBuilder::default(),
        };
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(FairSpillPool::new(config.memory_limit)))
            .with_disk_manager_builder(disk)
            .build_arc()?;
        let url = url::Url::parse(STORE_URL).expect("static URL");
        runtime.register_object_store(&url, engine.object_store());
        let session = Arc::new(session::session(&config, runtime));
        Ok(Querier {
            engine,
            config,
            lookups: Default::default(),
            session,
        })
    }

    /// The lookup tables the `lookup` command reads.
    pub fn lookup_tables(&self) -> &Arc<lookup::LookupTables> {
        &self.lookups
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// A session of its own for one query, from the shared one: functions it registers
    /// (its counters) stay its own. Its catalog is still shared; see [`Querier::sql_context`].
    fn context(&self) -> SessionContext {
        SessionContext::new_with_state(SessionState::clone(&self.session))
    }

    /// A session with a catalog of its own, for a SQL query to register its tables in.
    fn sql_context(&self) -> SessionContext {
        let catalogs = MemoryCatalogProviderList::new();
        catalogs.register_catalog("datafusion".into(), Arc::new(MemoryCatalogProvider::new()));
        let state = SessionStateBuilder::new_from_existing(SessionState::clone(&self.session))
            .with_catalog_list(Arc::new(catalogs))
            .build();
        SessionContext::new_with_state(state)
    }

    /// The system columns of one group over `[lo, hi]`, with its deleted streams and expired
    /// events already hidden.
    /// One group as a plan with the system fields, and a hidden `__field:<path>` column for
    /// each of `fields` (discovered fields stored as segment columns).
    fn group_plan(
        &self,
        snap: GroupSnapshot,
        lo: i64,
        hi: i64,
        counters: &Arc<QueryCounters>,
        (fields, numbers): (&[String], &[String]),
        bound: Option<&newest::TimeBound>,
    ) -> Result<LogicalPlan, QueryError> {
        let lo = lo.max(snap.cutoff.unwrap_or(i64::MIN));
        let (rows, raw): (u64, u64) = snap
            .segments
            .iter()
            .fold((0, 0), |(r, b), s| (r + s.rows, b + s.raw_bytes));
        let buffered_rows: usize = snap.buffered.iter().map(|b| b.num_rows()).sum();
        let buffered_bytes: usize = snap
            .buffered
            .iter()
            .map(|b| b.column(4).as_string::<i32>().values().len())
            .sum();
        let bytes_per_row = (raw + buffered_bytes as u64) / (rows + buffered_rows as u64).max(1);
        let visible = table::visible_rows(&snap, lo, hi);
        let log = format!("{}:{}", self.config.account_id, snap.name);
        let table =
            GroupTable::new(snap, (lo, hi), fields.to_vec(), numbers).with_bound(bound.cloned());
        let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
        let mut columns_out = vec![
            col(columns::TIMESTAMP)
                .cast_to_type(ts.clone())
                .alias("@timestamp"),
            col(columns::MESSAGE).alias("@message"),
            col(columns::STREAM).alias("@logStream"),
            col(columns::INGESTION_TIME)
                .cast_to_type(ts)
                .alias("@ingestionTime"),
            lit(log).alias(LOG),
            col(columns::SEQ).alias(SEQ),
        ];
        for f in fields {
            columns_out.push(ident(field_column(f)).alias(format!("{FIELD_PREFIX}{f}")));
        }
        for f in numbers {
            columns_out.push(ident(table::number_column(f)).alias(format!("{NUMBER_PREFIX}{f}")));
        }
        let plan = LogicalPlanBuilder::scan("events", provider_as_source(Arc::new(table)), None)?
            .filter(CountTrue::scanned(counters, visible, bytes_per_row))?
            .project(columns_out)?
            .build()?;
        Ok(plan)
    }

    /// The union of `groups`; with `with_fields`, the stored field columns of any of their
    /// segments are offered (as `__field:<path>`) to the query compiler.
    fn groups_plan(
        &self,
        groups: &[String],
        lo: i64,
        hi: i64,
        counters: &Arc<QueryCounters>,
        with_fields: bool,
        unmask: bool,
        bound: Option<&newest::TimeBound>,
    ) -> Result<LogicalPlan, QueryError> {
        let snaps = groups
            .iter()
            .map(|g| {
                let mut snap = self.engine.snapshot(g, lo, hi)?;
                // Allowed to unmask (the server checked logs:Unmask): read as stored.
                if unmask {
                    snap.data_protection = None;
                }
                Ok(snap)
            })
            .collect::<Result<Vec<_>, logwell_model::ApiError>>()?;
        // Every group offers the same columns, so that their tables union.
        let mut fields: Vec<String> = Vec::new();
        let mut numbers: Vec<String> = Vec::new();
        if with_fields {
            for s in snaps.iter().flat_map(|s| s.segments.iter()) {
                fields.extend(s.fields.iter().cloned());
                numbers.extend(s.numeric.iter().cloned());
            }
            // Buffered batches offer the fields they keep (see `keep::FieldsToKeep`).
            for b in snaps.iter().flat_map(|s| s.buffered.iter()) {
                for (path, numeric) in b.kept_paths() {
                    if numeric {
                        numbers.push(path.clone());
                    }
                    fields.push(path);
                }
            }
            fields.sort();
            fields.dedup();
            numbers.sort();
            numbers.dedup();
        }
        let mut plans = snaps
            .into_iter()
            .map(|s| self.group_plan(s, lo, hi, counters, (&fields, &numbers), bound))
            .collect::<Result<Vec<_>, _>>()?;
        let first = plans.remove(0);
        let mut b = LogicalPlanBuilder::from(first);
        for p in plans {
            b = b.union(p)?;
        }
        Ok(b.build()?)
    }

    /// Checks and plans a query; errors here are what StartQuery reports.
    pub async fn prepare(&self, req: QueryRequest) -> Result<Prepared, QueryError> {
        if req.end_ms < req.start_ms {
            return Err(QueryError::Invalid(
                "endTime must be greater than or equal to startTime".into(),
            ));
        }
        let t0 = std::time::Instant::now();
        let counters = Arc::new(QueryCounters::default());
        let ctx = self.context();
        CountTrue::register(&ctx, &counters);
        tracing::debug!(
            target: "logwell_query::plan",
            context_ms = t0.elapsed().as_secs_f64() * 1e3,
            "session"
        );
        let now_ms = logwell_model::now_millis();
        match req.language {
            Language::Insights => {
                let query = logwell_insights::parse(&req.query).map_err(|e| {
                    let chars =
                        |byte: usize| req.query.get(..byte).map_or(byte, |s| s.chars().count());
                    QueryError::Api(ApiError::malformed_at(
                        format!(
                            "Query parse error at line {}, column {}: {}",
                            e.line, e.column, e.message
                        ),
                        chars(e.start_offset),
                        chars(e.end_offset),
                    ))
                })?;
                let unmask = query
                    .commands
                    .iter()
                    .any(|c| matches!(c, logwell_insights::Command::Unmask(_)));
                let events = QueryEvents {
                    querier: self,
                    groups: req.groups.clone(),
                    range: (req.start_ms, req.end_ms),
                    counters: counters.clone(),
                    now_ms,
                    unmask,
                };
                let source = match query.commands.first() {
                    Some(logwell_insights::Command::Source(src)) => Some(src),
                    _ => None,
                };
                if source.is_none() && req.groups.is_empty() {
                    return Err(QueryError::Invalid(
                        "Exactly one of logGroupName, logGroupNames or logGroupIdentifiers must be given, or a SOURCE command"
                            .into(),
                    ));
                }
                let (groups, range) = events.resolve(source, None)?;
                let read = groups.clone();
                let base =
                    self.groups_plan(&groups, range.0, range.1, &counters, true, unmask, None)?;
                let compiled = compile::compile(
                    &query,
                    base,
                    &events,
                    counters.clone(),
                    now_ms,
                    range,
                    req.limit,
                )?;
                let page = match newest::page_shape(&query) {
                    Some((ascending, n)) => {
                        // The probe's scans test its rising bar row by row and skip what it
                        // already rules out.
                        let time_bound = newest::TimeBound::new(ascending);
                        let probe_base = self.groups_plan(
                            &groups,
                            range.0,
                            range.1,
                            &counters,
                            true,
                            unmask,
                            Some(&time_bound),
                        )?;
                        let (probe, filtered) = newest::probe_query(&query);
                        let probe = match filtered {
                            true => {
                                compile::compile(
                                    &probe,
                                    probe_base,
                                    &events,
                                    counters.clone(),
                                    now_ms,
                                    range,
                                    None,
                                )?
                                .plan
                            }
                            false => compile::compile_timestamps(
                                &probe,
                                probe_base,
                                &events,
                                counters.clone(),
                                now_ms,
                                range,
                            )?,
                        };
                        Some(Page {
                            querier: self.clone(),
                            query,
                            request: (req.groups.clone(), (req.start_ms, req.end_ms)),
                            groups,
                            range,
                            unmask,
                            now_ms,
                            api_limit: req.limit,
                            n,
                            probe,
                            plain: !filtered,
                            time_bound,
                        })
                    }
                    None => None,
                };
                let fields = keep::fields_read(&compiled.plan);
                if !fields.is_empty() {
                    for g in &read {
                        self.engine.fields_queried(g);
                    }
                }
                let keep = keep::FieldsToKeep::of(&self.engine, fields, &read, range);
                tracing::debug!(
                    target: "logwell_query::plan",
                    prepare_ms = t0.elapsed().as_secs_f64() * 1e3,
                    "prepared"
                );
                Ok(Prepared {
                    ctx,
                    compiled,
                    page,
                    keep,
                })
            }
            Language::Sql => {
                let ctx = self.sql_context();
                CountTrue::register(&ctx, &counters);
                let schema = Arc::new(sql::SqlTables {
                    querier: self.clone(),
                    groups: req.groups.clone(),
                    range: (req.start_ms, req.end_ms),
                    counters: counters.clone(),
                });
                ctx.catalog("datafusion")
                    .expect("default catalog")
                    .register_schema("public", schema)?;
                let df = ctx.sql(&req.query).await?;
                let mut plan = df.into_unoptimized_plan();
                if let Some(limit) = req.limit {
                    plan = LogicalPlanBuilder::from(plan)
                        .limit(0, Some(limit))?
                        .build()?;
                }
                let fields = plan
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect();
                Ok(Prepared {
                    ctx,
                    page: None,
                    keep: None,
                    compiled: CompiledQuery {
                        plan,
                        fields,
                        with_ptr: false,
                        counters,
                        counts_matched: false,
                    },
                })
            }
        }
    }

    /// The groups a `SOURCE` command selects: named ones (which must exist) and every group
    /// whose name starts with a prefix, of the requested classes (STANDARD by default).
    fn source_groups(&self, src: &logwell_insights::Source) -> Result<Vec<String>, QueryError> {
        let mut out: Vec<String> = Vec::new();
        for n in &src.names {
            if !self.engine.group_exists(n) {
                return Err(QueryError::Api(ApiError::group_not_found()));
            }
            out.push(n.clone());
        }
        if !src.prefixes.is_empty() {
            let classes: Vec<String> = if src.classes.is_empty() {
                vec!["STANDARD".into()]
            } else {
                src.classes.clone()
            };
            for g in self.engine.list_groups() {
                if src.prefixes.iter().any(|p| g.name.starts_with(p.as_str()))
                    && classes.contains(&g.class)
                    && !out.contains(&g.name)
                {
                    out.push(g.name);
                }
            }
            if out.len() > 10_000 {
                return Err(QueryError::Invalid(
                    "SOURCE selects more than 10000 log groups".into(),
                ));
            }
        }
        if out.is_empty() {
            return Err(QueryError::Invalid("SOURCE selects no log group".into()));
        }
        Ok(out)
    }

    /// The event an `@ptr` points at, with its system fields and discovered JSON fields.
    /// `unmask`: the caller may see what the group's data protection policy masks.
    pub async fn get_log_record(&self, ptr: &str, unmask: bool) -> Result<Row, QueryError> {
        let Some((group, ts, seq)) = decode_ptr(ptr) else {
            return Err(QueryError::Invalid(
                "The log record pointer is not valid".into(),
            ));
        };
        let scan = logwell_storage::Scan {
            streams: logwell_storage::StreamFilter::All,
            start: Some(ts),
            end: Some(ts + 1),
            after: None,
            before: None,
            newest_first: false,
            limit: usize::MAX,
        };
        let rows = self.engine.scan(&group, &scan).await?;
        let Some(mut ev) = rows.into_iter().find(|r| r.seq == seq) else {
            return Err(QueryError::Api(ApiError::new(
                logwell_model::ErrorKind::ResourceNotFound,
                "The log record does not exist",
            )));
        };
        let document = self.engine.masking_policy(&group)?;
        logwell_dataprotection::Protection::of(document.as_deref(), unmask)
            .mask_string(&mut ev.message);
        let mut row: Row = vec![
            ("@ingestionTime".into(), ev.ingestion_time.to_string()),
            (
                "@log".into(),
                format!("{}:{}", self.config.account_id, group),
            ),
            ("@logStream".into(), ev.stream.clone()),
            ("@message".into(), ev.message.clone()),
            ("@timestamp".into(), ev.timestamp.to_string()),
        ];
        row.extend(logwell_fields::flatten(&ev.message, 200));
        Ok(row)
    }
}

/// A planned query, ready to run.
pub struct Prepared {
    ctx: SessionContext,
    compiled: CompiledQuery,
    /// A newest- or oldest-first page: run over the range its probe narrows (see `newest`).
    page: Option<Page>,
    /// Fields for buffered batches to keep once the query has run.
    keep: Option<keep::FieldsToKeep>,
}

/// What a page query needs to be compiled again over a narrower range.
struct Page {
    querier: Querier,
    query: logwell_insights::Query,
    /// The request's own groups and range (what `QueryEvents` resolves a SOURCE against).
    request: (Vec<String>, (i64, i64)),
    groups: Vec<String>,
    range: (i64, i64),
    unmask: bool,
    now_ms: i64,
    api_limit: Option<usize>,
    n: usize,
    probe: LogicalPlan,
    /// The page has no filter: its bound can be found from the pages' timestamp ranges.
    plain: bool,
    /// The probe's bar, which its scans read as it rises.
    time_bound: newest::TimeBound,
}

impl Page {
    /// The query compiled over the part of its range that holds its N events.
    async fn narrowed(
        &self,
        ctx: &SessionContext,
        counters: &Arc<QueryCounters>,
    ) -> Result<Option<CompiledQuery>, QueryError> {
        let t0 = std::time::Instant::now();
        let q = &self.querier;
        let mut from_pages = None;
        if self.plain {
            let snapshots = self
                .groups
                .iter()
                .map(|g| q.engine.snapshot(g, self.range.0, self.range.1))
                .collect::<Result<Vec<_>, _>>()?;
            let (ascending, n) = (self.time_bound.ascending, self.n);
            from_pages = newest::pages::bound(ctx, &snapshots, self.range, ascending, n).await?;
        }
        let bound = match from_pages {
            Some(bound) => Some(bound),
            None => newest::bound(ctx, &self.probe, &self.time_bound, self.n).await?,
        };
        tracing::debug!(
            target: "logwell_query::plan",
            probe_ms = t0.elapsed().as_secs_f64() * 1e3,
            from_pages = from_pages.is_some(),
            ?bound,
            "page probe"
        );
        let Some(bound) = bound else {
            return Ok(None);
        };
        let (lo, hi) = if self.time_bound.ascending {
            (self.range.0, bound.min(self.range.1))
        } else {
            (bound.max(self.range.0), self.range.1)
        };
        let base = q.groups_plan(&self.groups, lo, hi, counters, true, self.unmask, None)?;
        let events = QueryEvents {
            querier: q,
            groups: self.request.0.clone(),
            range: self.request.1,
            counters: counters.clone(),
            now_ms: self.now_ms,
            unmask: self.unmask,
        };
        let compiled = compile::compile(
            &self.query,
            base,
            &events,
            counters.clone(),
            self.now_ms,
            self.range,
            self.api_limit,
        )?;
        Ok(Some(compiled))
    }
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("fields", &self.compiled.fields)
            .finish()
    }
}

impl Prepared {
    /// The live counters (for statistics while the query runs).
    pub fn counters(&self) -> Arc<QueryCounters> {
        self.compiled.counters.clone()
    }

    /// Whether `recordsMatched` is counted at a filter (else it equals `recordsScanned`).
    pub fn counts_matched(&self) -> bool {
        self.compiled.counts_matched
    }

    pub fn plan(&self) -> &LogicalPlan {
        &self.compiled.plan
    }

    /// The session the query runs in: it resolves every function the plan calls by name.
    pub fn session(&self) -> &SessionContext {
        &self.ctx
    }

    /// The physical plan the query would run, indented (for tests and diagnosis).
    pub async fn physical_plan(&self) -> Result<String, QueryError> {
        let df = self
            .ctx
            .execute_logical_plan(self.compiled.plan.clone())
            .await?;
        let plan = df.create_physical_plan().await?;
        let text = datafusion::physical_plan::displayable(plan.as_ref())
            .indent(false)
            .to_string();
        Ok(text)
    }

    pub async fn run(self) -> Result<QueryResults, QueryError> {
        self.run_streaming(|_| {}).await
    }

    /// Runs the query, handing each group of rows to `partial` as soon as the engine produces
    /// it (a streaming plan yields rows early; sorts and aggregates only at their end).
    pub async fn run_streaming(
        mut self,
        mut partial: impl FnMut(&[Row]),
    ) -> Result<QueryResults, QueryError> {
        use futures::StreamExt;
        if let Some(page) = self.page.take() {
            if let Some(narrowed) = page.narrowed(&self.ctx, &self.compiled.counters).await? {
                self.compiled = narrowed;
            }
        }
        let c = &self.compiled;
        let t0 = std::time::Instant::now();
        let state = self.ctx.state();
        let optimized = state.optimize(&c.plan)?;
        keyed_group::mark_grouped_columns(&optimized);
        let optimized_at = t0.elapsed();
        let physical = state
            .query_planner()
            .create_physical_plan(&optimized, &state)
            .await?;
        let planned = t0.elapsed();
        let mut stream =
            datafusion::physical_plan::execute_stream(physical.clone(), self.ctx.task_ctx())?;
        let mut rows = Vec::new();
        while let Some(b) = stream.next().await {
            let new = self.rows_of(&b?);
            if !new.is_empty() {
                partial(&new);
                rows.extend(new);
            }
        }
        // `LOGWELL_LOG=logwell_query::plan=debug`: where a query's time went, operator by operator.
        tracing::debug!(
            target: "logwell_query::plan",
            optimized_ms = optimized_at.as_secs_f64() * 1e3,
            planned_ms = planned.as_secs_f64() * 1e3,
            total_ms = t0.elapsed().as_secs_f64() * 1e3,
            "\n{}",
            datafusion::physical_plan::display::DisplayableExecutionPlan::with_metrics(physical.as_ref()).indent(true)
        );
        if let Some(keep) = self.keep.take() {
            keep.start();
        }
        let c = &self.compiled;
        Ok(QueryResults {
            fields: c.fields.clone(),
            rows,
            stats: statistics(&c.counters, c.counts_matched),
        })
    }

    /// The result rows of one output batch.
    fn rows_of(&self, b: &arrow::array::RecordBatch) -> Vec<Row> {
        let c = &self.compiled;
        let mut rows = Vec::new();
        {
            let cols: Vec<Vec<Option<String>>> = c
                .fields
                .iter()
                .map(|name| {
                    let i = b.schema().index_of(name).expect("output column exists");
                    format::column(b.column(i))
                })
                .collect();
            let ptr = if c.with_ptr {
                let log = format::column(b.column(b.schema().index_of(PTR_LOG).unwrap()));
                let ts = b.column(b.schema().index_of(PTR_TS).unwrap()).clone();
                let seq = b.column(b.schema().index_of(PTR_SEQ).unwrap()).clone();
                let ts = ts.as_primitive::<Int64Type>().clone();
                let seq = seq.as_primitive::<Int64Type>().clone();
                Some((log, ts, seq))
            } else {
                None
            };
            for r in 0..b.num_rows() {
                let mut row: Row = Vec::with_capacity(cols.len() + 1);
                for (name, col) in c.fields.iter().zip(&cols) {
                    if let Some(v) = &col[r] {
                        row.push((name.clone(), v.clone()));
                    }
                }
                if let Some((log, ts, seq)) = &ptr {
                    if let Some(log) = &log[r] {
                        let group = log.split_once(':').map_or(log.as_str(), |(_, g)| g);
                        if ts.is_valid(r) && seq.is_valid(r) {
                            row.push(("@ptr".into(), encode_ptr(group, ts.value(r), seq.value(r))));
                        }
                    }
                }
                rows.push(row);
            }
        }
        rows
    }
}

/// The statistics as of now (also while the query runs).
pub fn statistics(counters: &QueryCounters, counts_matched: bool) -> QueryStatistics {
    let scanned = counters.scanned.load(Ordering::Relaxed) as f64;
    QueryStatistics {
        records_matched: if counts_matched {
            counters.matched.load(Ordering::Relaxed) as f64
        } else {
            scanned
        },
        records_scanned: scanned,
        bytes_scanned: counters.bytes.load(Ordering::Relaxed) as f64,
    }
}

/// A `SOURCE ... START=` / `END=` value: seconds relative to now (`-3600s`, `0s`) or an ISO
/// instant.
/// The events a query and its subqueries read: its own groups and time range, or what a
/// `SOURCE` command selects.
struct QueryEvents<'a> {
    querier: &'a Querier,
    groups: Vec<String>,
    range: (i64, i64),
    counters: Arc<QueryCounters>,
    now_ms: i64,
    /// The query has the `unmask` command (the server checked logs:Unmask).
    unmask: bool,
}

impl QueryEvents<'_> {
    /// The groups and time range `source` (else the query's own) selects; `range` overrides.
    fn resolve(
        &self,
        source: Option<&logwell_insights::Source>,
        range: Option<(i64, i64)>,
    ) -> Result<(Vec<String>, (i64, i64)), QueryError> {
        let (mut groups, mut r) = (self.groups.clone(), self.range);
        if let Some(src) = source {
            groups = self.querier.source_groups(src)?;
            if let Some(s) = &src.start {
                r.0 = source_time(s, self.now_ms)?;
            }
            if let Some(e) = &src.end {
                r.1 = source_time(e, self.now_ms)?;
            }
            if r.1 < r.0 {
                return Err(QueryError::Invalid("SOURCE: END is before START".into()));
            }
        }
        if let Some(x) = range {
            r = x;
        }
        if groups.is_empty() {
            return Err(QueryError::Invalid(
                "the SOURCE command selects no log group".into(),
            ));
        }
        Ok((groups, r))
    }
}

impl compile::Events for QueryEvents<'_> {
    fn plan(
        &self,
        source: Option<&logwell_insights::Source>,
        range: Option<(i64, i64)>,
    ) -> Result<LogicalPlan, QueryError> {
        let (groups, r) = self.resolve(source, range)?;
        self.querier
            .groups_plan(&groups, r.0, r.1, &self.counters, true, self.unmask, None)
    }

    fn lookup(&self, table: &str) -> Result<LogicalPlan, QueryError> {
        let t = self.querier.lookups.get(table).ok_or_else(|| {
            QueryError::Api(ApiError::new(
                logwell_model::ErrorKind::ResourceNotFound,
                format!("Lookup table {table} does not exist"),
            ))
        })?;
        let mem = datafusion::datasource::MemTable::try_new(
            t.batch.schema(),
            vec![vec![t.batch.clone()]],
        )?;
        Ok(LogicalPlanBuilder::scan(table, provider_as_source(Arc::new(mem)), None)?.build()?)
    }
}

/// A SOURCE START/END value: `now`, a signed offset from now (`-3600s`, `-15m`, `-1h`, `-1d`,
/// `-1w`), or an ISO instant.
fn source_time(v: &str, now_ms: i64) -> Result<i64, QueryError> {
    if v.eq_ignore_ascii_case("now") {
        return Ok(now_ms);
    }
    for (unit, ms) in [
        ("s", 1000),
        ("m", 60_000),
        ("h", 3_600_000),
        ("d", 86_400_000),
        ("w", 7 * 86_400_000),
    ] {
        if let Some(n) = v.strip_suffix(unit).and_then(|n| n.parse::<i64>().ok()) {
            return Ok(now_ms + n * ms);
        }
    }
    chrono::DateTime::parse_from_rfc3339(v)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            QueryError::Malformed(format!(
                "SOURCE: cannot read the time {v:?}; use -3600s or 2026-01-23T00:00:00.000Z"
            ))
        })
}

/// `@ptr`: opaque to clients; names the group, timestamp and sequence of one event.
pub fn encode_ptr(group: &str, ts: i64, seq: i64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("1\n{group}\n{ts}\n{seq}"))
}

pub fn decode_ptr(ptr: &str) -> Option<(String, i64, i64)> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(ptr)
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let mut parts = text.split('\n');
    if parts.next()? != "1" {
        return None;
    }
    let group = parts.next()?.to_string();
    let ts = parts.next()?.parse().ok()?;
    let seq = parts.next()?.parse().ok()?;
    Some((group, ts, seq))
}
