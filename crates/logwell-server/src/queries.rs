//! The Logs Insights query API: StartQuery runs a query in the background, GetQueryResults polls
//! it, StopQuery cancels it; DescribeQueries lists them; GetLogRecord follows an `@ptr`; and
//! saved query definitions (kept in the object store as `settings/query-definitions.json`).

use logwell_model::api_queries::*;
use logwell_model::{ApiError, ErrorKind};
use logwell_query::udf::QueryCounters;
use logwell_query::{Language, Querier, QueryError, QueryRequest, QueryResults};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// At most this many queries run at once (CloudWatch's account quota for Insights QL).
const MAX_RUNNING: usize = 100;
/// Finished queries are forgotten after this long (CloudWatch keeps results 7 days).
const KEEP_RESULTS_MS: i64 = 7 * 24 * 3600 * 1000;
const MAX_PAGE: usize = 10_000;
/// How long GetQueryResults waits for a running query to end before answering with its
/// partial results.
const RESULTS_HOLD: std::time::Duration = std::time::Duration::from_millis(100);

pub use logwell_model::api_queries::QueryStatus as Status;

/// How many finished queries' results are kept, at most.
#[derive(Debug, Clone, Copy)]
pub struct KeepLimits {
    pub queries: usize,
    pub bytes: usize,
}

/// Approximate bytes a finished query's rows hold.
fn result_bytes(rows: &[logwell_query::Row]) -> usize {
    rows.iter()
        .map(|r| r.iter().map(|(k, v)| k.len() + v.len() + 48).sum::<usize>() + 24)
        .sum()
}

struct Entry {
    query_string: String,
    groups: Vec<String>,
    language: &'static str,
    create_time: i64,
    end_time: Option<i64>,
    status: Status,
    results: Option<Arc<QueryResults>>,
    /// Bytes `results` (or `partial`) holds, counted against `KeepLimits::bytes`.
    result_bytes: usize,
    /// Rows the engine produced so far, while the query runs.
    partial: Vec<logwell_query::Row>,
    counters: Option<(Arc<QueryCounters>, bool)>,
    task: Option<tokio::task::AbortHandle>,
    /// Woken when the query ends.
    ended: Arc<tokio::sync::Notify>,
}

/// Every query this server has run recently, and the saved definitions.
pub struct Queries {
    telemetry: Arc<crate::telemetry::Telemetry>,
    querier: Querier,
    lookups: crate::lookup_tables::LookupTableStore,
    timeout: Duration,
    keep: KeepLimits,
    entries: Mutex<HashMap<String, Entry>>,
    /// Saved definitions; a tokio mutex, held while the new set is saved.
    definitions: tokio::sync::Mutex<BTreeMap<String, QueryDefinition>>,
}

pub(crate) fn to_api(e: QueryError) -> ApiError {
    match e {
        QueryError::Malformed(m) => ApiError::new(ErrorKind::MalformedQuery, m),
        QueryError::Invalid(m) => ApiError::invalid(m),
        QueryError::Api(e) => e,
        QueryError::Execution(m) => ApiError::new(ErrorKind::InvalidOperation, m),
    }
}

fn not_found(what: &str) -> ApiError {
    ApiError::new(
        ErrorKind::ResourceNotFound,
        format!("{what} does not exist"),
    )
}

fn required<T>(v: Option<T>, name: &str) -> Result<T, ApiError> {
    v.ok_or_else(|| ApiError::constraint("null", name, "not be null"))
}

fn language(s: &Option<String>) -> Result<(Language, &'static str), ApiError> {
    match s.as_deref() {
        None | Some("CWLI") => Ok((Language::Insights, "CWLI")),
        Some("SQL") => Ok((Language::Sql, "SQL")),
        Some("PPL") => Err(ApiError::invalid(
            "queryLanguage PPL is not supported by logwell; use CWLI or SQL",
        )),
        Some(other) => Err(ApiError::constraint(
            other,
            "queryLanguage",
            "satisfy enum value set: [CWLI, SQL, PPL]",
        )),
    }
}

/// The object-store document holding the saved query definitions.
const DEFINITIONS_DOCUMENT: &str = "query-definitions.json";

fn offset_token(token: &Option<String>) -> Result<usize, ApiError> {
    match token {
        None => Ok(0),
        Some(t) => t
            .strip_prefix("q/")
            .and_then(|n| n.parse().ok())
            .ok_or_else(ApiError::bad_token),
    }
}

impl Queries {
    /// Loads the saved definitions and lookup tables from the object store (moving ones an
    /// older version kept in `data_dir` there). `arn_prefix` is `arn:aws:logs:<region>:<account>:`.
    pub async fn open(
        querier: Querier,
        data_dir: PathBuf,
        timeout: Duration,
        arn_prefix: &str,
        keep: KeepLimits,
        telemetry: Arc<crate::telemetry::Telemetry>,
    ) -> Result<Queries, ApiError> {
        let definitions =
            crate::settings::load(querier.engine(), &data_dir, DEFINITIONS_DOCUMENT).await?;
        let lookups = crate::lookup_tables::LookupTableStore::open(
            &data_dir,
            format!("{arn_prefix}lookup-table:"),
            &querier,
        )
        .await?;
        Ok(Queries {
            telemetry,
            querier,
            lookups,
            timeout,
            keep,
            entries: Mutex::new(HashMap::new()),
            definitions: tokio::sync::Mutex::new(definitions),
        })
    }

    pub(crate) fn lookups(&self) -> &crate::lookup_tables::LookupTableStore {
        &self.lookups
    }

    pub fn querier(&self) -> &Querier {
        &self.querier
    }

    pub(crate) async fn start(
        self: &Arc<Self>,
        r: StartQueryRequest,
    ) -> Result<StartQueryResponse, ApiError> {
        let (lang, lang_name) = language(&r.query_language)?;
        let query_string = required(r.query_string, "queryString")?;
        if query_string.chars().count() > 10_000 {
            return Err(ApiError::constraint(
                "(query)",
                "queryString",
                "have length less than or equal to 10000",
            ));
        }
        let start = required(r.start_time, "startTime")?;
        let end = required(r.end_time, "endTime")?;
        if start < 0 || end < 0 {
            return Err(ApiError::invalid(
                "startTime and endTime must not be negative",
            ));
        }
        if end < start {
            return Err(ApiError::invalid(
                "End time should not be before start time",
            ));
        }
        if let Some(l) = r.limit {
            if !(1..=100_000).contains(&l) {
                return Err(ApiError::constraint(
                    &l.to_string(),
                    "limit",
                    "have value between 1 and 100000",
                ));
            }
        }
        let given = [
            r.log_group_name.is_some(),
            r.log_group_names.is_some(),
            r.log_group_identifiers.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        let groups: Vec<String> =
            match (r.log_group_name, r.log_group_names, r.log_group_identifiers) {
                (Some(n), None, None) => vec![n],
                (None, Some(ns), None) => ns,
                (None, None, Some(ids)) => ids
                    .iter()
                    .map(|i| logwell_model::group_name_from_identifier(i).to_string())
                    .collect(),
                _ if given == 0 => Vec::new(),
                _ => {
                    return Err(ApiError::invalid(
                        "Specify exactly one of logGroupName, logGroupNames or logGroupIdentifiers",
                    ))
                }
            };
        if groups.len() > 50 {
            return Err(ApiError::invalid("A query can name at most 50 log groups"));
        }
        {
            let entries = self.entries.lock().unwrap();
            let running = entries
                .values()
                .filter(|e| matches!(e.status, Status::Running | Status::Scheduled))
                .count();
            if running >= MAX_RUNNING {
                return Err(ApiError::new(
                    ErrorKind::LimitExceeded,
                    format!("Account maximum query concurrency limit of [{MAX_RUNNING}] reached."),
                ));
            }
        }
        let req = QueryRequest {
            groups: groups.clone(),
            start_ms: start.saturating_mul(1000),
            // Both ends are inclusive seconds.
            end_ms: end.saturating_mul(1000).saturating_add(999),
            query: query_string.clone(),
            language: lang,
            limit: r.limit.map(|l| l as usize),
        };
        let prepared = self.querier.prepare(req).await.map_err(to_api)?;
        let id = uuid::Uuid::new_v4().to_string();
        let now = logwell_model::now_millis();
        let counters = prepared.counters();
        let counts_matched = prepared.counts_matched();
        let this = self.clone();
        let qid = id.clone();
        let timeout = self.timeout;
        let ended = Arc::new(tokio::sync::Notify::new());
        let ended_by_task = ended.clone();
        let mut entries = self.entries.lock().unwrap();
        entries.retain(|_, e| e.end_time.is_none_or(|t| now - t < KEEP_RESULTS_MS));
        self.evict_over_limits(&mut entries);
        let task = tokio::spawn(async move {
            let sink = this.clone();
            let id = qid.clone();
            let run = prepared.run_streaming(move |rows| {
                if let Some(e) = sink.entries.lock().unwrap().get_mut(&id) {
                    e.partial.extend_from_slice(rows);
                }
            });
            let outcome = tokio::time::timeout(timeout, run).await;
            let mut entries = this.entries.lock().unwrap();
            let Some(e) = entries.get_mut(&qid) else {
                return;
            };
            e.end_time = Some(logwell_model::now_millis());
            e.task = None;
            let seconds = (e.end_time.unwrap_or(0) - e.create_time).max(0) as f64 / 1000.0;
            this.telemetry.query(
                match &outcome {
                    Ok(Ok(_)) => "Complete",
                    Ok(Err(_)) => "Failed",
                    Err(_) => "Timeout",
                },
                seconds,
            );
            match outcome {
                Ok(Ok(results)) => {
                    e.status = Status::Complete;
                    e.result_bytes = result_bytes(&results.rows);
                    e.results = Some(Arc::new(results));
                    e.partial = Vec::new();
                }
                Ok(Err(err)) => {
                    tracing::warn!(query = %qid, error = %err, "query failed");
                    e.status = Status::Failed;
                }
                Err(_) => e.status = Status::Timeout,
            }
            drop(entries);
            ended_by_task.notify_waiters();
        });
        entries.insert(
            id.clone(),
            Entry {
                query_string,
                groups,
                language: lang_name,
                create_time: now,
                end_time: None,
                status: Status::Running,
                results: None,
                result_bytes: 0,
                partial: Vec::new(),
                counters: Some((counters, counts_matched)),
                task: Some(task.abort_handle()),
                ended,
            },
        );
        Ok(StartQueryResponse { query_id: id })
    }

    /// Forgets the oldest finished queries while more than the kept count or bytes are held.
    fn evict_over_limits(&self, entries: &mut HashMap<String, Entry>) {
        let mut finished: Vec<(i64, String, usize)> = entries
            .iter()
            .filter_map(|(id, e)| e.end_time.map(|t| (t, id.clone(), e.result_bytes)))
            .collect();
        let mut bytes: usize = finished.iter().map(|f| f.2).sum();
        if finished.len() <= self.keep.queries && bytes <= self.keep.bytes {
            return;
        }
        finished.sort();
        let mut count = finished.len();
        for (_, id, b) in finished {
            if count <= self.keep.queries && bytes <= self.keep.bytes {
                break;
            }
            entries.remove(&id);
            count -= 1;
            bytes -= b;
        }
    }

    /// Whether this account ran query `id` (and still keeps it).
    pub(crate) fn knows(&self, id: &str) -> bool {
        self.entries.lock().unwrap().contains_key(id)
    }

    /// GetQueryResults, answered once the query ends if that is within [`RESULTS_HOLD`]: a
    /// client polling a short query gets its answer when it is ready, not a poll interval later,
    /// and one polling a long one still sees its partial results at least that often.
    pub(crate) async fn results_when_done(
        &self,
        r: QueryIdRequest,
    ) -> Result<GetQueryResultsResponse, ApiError> {
        let running = |entries: &HashMap<String, Entry>| {
            let e = entries.get(r.query_id.as_deref()?)?;
            matches!(e.status, Status::Running | Status::Scheduled).then(|| e.ended.clone())
        };
        let ended = running(&self.entries.lock().unwrap());
        if let Some(ended) = ended {
            // Registered first, then the status read again: an end between the two has
            // already set the status, and one after it wakes this wait.
            let notified = ended.notified();
            if running(&self.entries.lock().unwrap()).is_some() {
                let _ = tokio::time::timeout(RESULTS_HOLD, notified).await;
            }
        }
        self.results(r)
    }

    pub(crate) fn results(&self, r: QueryIdRequest) -> Result<GetQueryResultsResponse, ApiError> {
        let id = required(r.query_id, "queryId")?;
        let entries = self.entries.lock().unwrap();
        let e = entries.get(&id).ok_or_else(|| not_found("Query"))?;
        let stats = match (&e.results, &e.counters) {
            (Some(res), _) => res.stats,
            (None, Some((c, m))) => logwell_query::statistics(c, *m),
            (None, None) => Default::default(),
        };
        let mut out = GetQueryResultsResponse {
            query_language: e.language.to_string(),
            status: e.status,
            statistics: QueryStatistics {
                records_matched: stats.records_matched,
                records_scanned: stats.records_scanned,
                bytes_scanned: stats.bytes_scanned,
            },
            results: Vec::new(),
            next_token: None,
        };
        // While the query runs, the rows produced so far (CloudWatch's partial results).
        let all = match &e.results {
            Some(res) => Some(&res.rows),
            None if e.status == Status::Running => Some(&e.partial),
            None => None,
        };
        if let Some(all) = all {
            let page = r
                .max_items
                .map(|m| (m.clamp(1, MAX_PAGE as i64)) as usize)
                .unwrap_or(MAX_PAGE);
            let from = offset_token(&r.next_token)?.min(all.len());
            let to = (from + page).min(all.len());
            out.results = all[from..to]
                .iter()
                .map(|row| {
                    row.iter()
                        .map(|(f, v)| ResultField {
                            field: f.clone(),
                            value: v.clone(),
                        })
                        .collect()
                })
                .collect();
            if to < all.len() {
                out.next_token = Some(format!("q/{to}"));
            }
        }
        Ok(out)
    }

    pub(crate) fn stop(&self, r: QueryIdRequest) -> Result<SuccessResponse, ApiError> {
        let id = required(r.query_id, "queryId")?;
        let mut entries = self.entries.lock().unwrap();
        let e = entries.get_mut(&id).ok_or_else(|| not_found("Query"))?;
        match e.task.take() {
            Some(task) if matches!(e.status, Status::Running | Status::Scheduled) => {
                task.abort();
                e.status = Status::Cancelled;
                e.end_time = Some(logwell_model::now_millis());
                e.result_bytes = result_bytes(&e.partial);
                self.telemetry.query(
                    "Cancelled",
                    (e.end_time.unwrap_or(0) - e.create_time).max(0) as f64 / 1000.0,
                );
                e.ended.notify_waiters();
                Ok(SuccessResponse { success: true })
            }
            _ => Err(ApiError::invalid(format!(
                "Query {id} is not running (status {:?})",
                e.status
            ))),
        }
    }

    pub(crate) fn describe(
        &self,
        r: DescribeQueriesRequest,
    ) -> Result<DescribeQueriesResponse, ApiError> {
        let max = r.max_results.unwrap_or(1000).clamp(1, 1000) as usize;
        let from = offset_token(&r.next_token)?;
        let entries = self.entries.lock().unwrap();
        let mut list: Vec<(&String, &Entry)> = entries
            .iter()
            .filter(|(_, e)| {
                r.log_group_name
                    .as_ref()
                    .is_none_or(|g| e.groups.iter().any(|x| x == g))
                    && r.status
                        .as_ref()
                        .is_none_or(|s| format!("{:?}", e.status) == *s)
                    && r.query_language.as_ref().is_none_or(|l| l == e.language)
            })
            .collect();
        list.sort_by(|a, b| b.1.create_time.cmp(&a.1.create_time).then(a.0.cmp(b.0)));
        let queries = list
            .iter()
            .skip(from)
            .take(max)
            .map(|(id, e)| QueryInfo {
                query_id: id.to_string(),
                query_string: e.query_string.clone(),
                status: e.status,
                create_time: e.create_time,
                query_language: e.language.to_string(),
                log_group_name: e.groups.first().cloned(),
                query_duration: e.end_time.map(|end| end - e.create_time),
                bytes_scanned: e.results.as_ref().map(|res| res.stats.bytes_scanned),
            })
            .collect();
        Ok(DescribeQueriesResponse {
            queries,
            next_token: (from + max < list.len()).then(|| format!("q/{}", from + max)),
        })
    }

    pub(crate) async fn log_record(
        &self,
        r: GetLogRecordRequest,
    ) -> Result<GetLogRecordResponse, ApiError> {
        let ptr = required(r.log_record_pointer, "logRecordPointer")?;
        let row = self
            .querier
            .get_log_record(&ptr, r.unmask == Some(true))
            .await
            .map_err(to_api)?;
        Ok(GetLogRecordResponse {
            log_record: row.into_iter().collect(),
        })
    }

    async fn save_definitions(
        &self,
        defs: &BTreeMap<String, QueryDefinition>,
    ) -> Result<(), ApiError> {
        crate::settings::save(self.querier.engine(), DEFINITIONS_DOCUMENT, defs).await
    }

    /// A finished (or cancelled: its partial rows) query's results as CSV, a header row naming
    /// its fields (CreateLookupTable from a queryId).
    pub fn results_csv(&self, id: &str) -> Result<String, ApiError> {
        let entries = self.entries.lock().unwrap();
        let e = entries.get(id).ok_or_else(|| not_found("Query"))?;
        let (fields, rows) = match (&e.results, e.status) {
            (Some(r), _) => (r.fields.clone(), &r.rows),
            (None, Status::Cancelled) => {
                let mut fields: Vec<String> = Vec::new();
                for row in &e.partial {
                    for (f, _) in row {
                        if !fields.contains(f) {
                            fields.push(f.clone());
                        }
                    }
                }
                (fields, &e.partial)
            }
            _ => {
                return Err(ApiError::invalid(format!(
                    "Query {id} has not finished (status {:?})",
                    e.status
                )))
            }
        };
        let fields: Vec<String> = fields.into_iter().filter(|f| f != "@ptr").collect();
        let mut w = csv::Writer::from_writer(Vec::new());
        let io = |e: csv::Error| ApiError::unavailable(e.to_string());
        w.write_record(&fields).map_err(io)?;
        for row in rows {
            let values = fields.iter().map(|f| {
                row.iter()
                    .find(|(k, _)| k == f)
                    .map_or("", |(_, v)| v.as_str())
            });
            w.write_record(values).map_err(io)?;
        }
        let bytes = w
            .into_inner()
            .map_err(|e| ApiError::unavailable(e.to_string()))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    pub(crate) async fn put_definition(
        &self,
        r: PutQueryDefinitionRequest,
    ) -> Result<PutQueryDefinitionResponse, ApiError> {
        let name = required(r.name, "name")?;
        if name.is_empty() || name.chars().count() > 255 {
            return Err(ApiError::constraint(
                &name,
                "name",
                "have length between 1 and 255",
            ));
        }
        let query_string = required(r.query_string, "queryString")?;
        if query_string.is_empty() || query_string.chars().count() > 10_000 {
            return Err(ApiError::constraint(
                "(query)",
                "queryString",
                "have length between 1 and 10000",
            ));
        }
        let (_, lang) = language(&r.query_language)?;
        let mut defs = self.definitions.lock().await;
        let id = match r.query_definition_id {
            Some(id) => {
                if !defs.contains_key(&id) {
                    return Err(not_found("Query definition"));
                }
                id
            }
            None => uuid::Uuid::new_v4().to_string(),
        };
        // An update replaces the whole definition: omitted log groups are cleared.
        let def = QueryDefinition {
            query_definition_id: id.clone(),
            name,
            query_string,
            last_modified: logwell_model::now_millis(),
            log_group_names: r.log_group_names.unwrap_or_default(),
            query_language: lang.to_string(),
            parameters: r.parameters,
        };
        let mut next = defs.clone();
        next.insert(id.clone(), def);
        self.save_definitions(&next).await?;
        *defs = next;
        Ok(PutQueryDefinitionResponse {
            query_definition_id: id,
        })
    }

    pub(crate) async fn describe_definitions(
        &self,
        r: DescribeQueryDefinitionsRequest,
    ) -> Result<DescribeQueryDefinitionsResponse, ApiError> {
        let max = r.max_results.unwrap_or(1000).clamp(1, 1000) as usize;
        let from = offset_token(&r.next_token)?;
        let defs = self.definitions.lock().await;
        let mut list: Vec<&QueryDefinition> = defs
            .values()
            .filter(|d| {
                r.query_definition_name_prefix
                    .as_ref()
                    .is_none_or(|p| d.name.starts_with(p.as_str()))
                    && r.query_language
                        .as_ref()
                        .is_none_or(|l| d.query_language == *l)
            })
            .collect();
        list.sort_by(|a, b| {
            (a.name.as_str(), a.query_definition_id.as_str())
                .cmp(&(b.name.as_str(), b.query_definition_id.as_str()))
        });
        Ok(DescribeQueryDefinitionsResponse {
            query_definitions: list
                .iter()
                .skip(from)
                .take(max)
                .map(|d| (*d).clone())
                .collect(),
            next_token: (from + max < list.len()).then(|| format!("q/{}", from + max)),
        })
    }

    pub(crate) async fn delete_definition(
        &self,
        r: DeleteQueryDefinitionRequest,
    ) -> Result<SuccessResponse, ApiError> {
        let id = required(r.query_definition_id, "queryDefinitionId")?;
        let id = id.as_str();
        let mut defs = self.definitions.lock().await;
        if !defs.contains_key(id) {
            return Err(not_found("Query definition"));
        }
        let mut next = defs.clone();
        next.remove(id);
        self.save_definitions(&next).await?;
        *defs = next;
        Ok(SuccessResponse { success: true })
    }
}
