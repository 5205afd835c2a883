//! Export tasks: a time range of a log group written to a bucket in the background, as
//! CloudWatch's CreateExportTask does (`PREFIX/TASK/STREAM/000000.gz`, gzip text lines
//! `<ISO-8601 time> <message>`), or as Parquet (whole segments copied where they fall inside the
//! range). Tasks are kept in a settings document, so they survive a restart: one that was running
//! starts again (its objects have fixed names, so a rerun overwrites them).

use crate::buckets::Buckets;
use arrow::array::{AsArray, BooleanArray, RecordBatch};
use arrow::datatypes::{Int32Type, Int64Type};
use bytes::Bytes;
use flate2::write::GzEncoder;
use logwell_model::api_export::*;
use logwell_model::{now_millis, ApiError, ErrorKind};
use logwell_storage::store::Store;
use logwell_storage::{Engine, Scan, StreamFilter};
use object_store::path::Path;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DOCUMENT: &str = "export-tasks.json";
/// Events read per page of a stream. Each page decodes the segments that overlap the rest of
/// the range again, so pages are large (a page holds about 250,000 events, tens of MB).
const PAGE: usize = 250_000;
/// Progress is saved at most this often while a task runs.
const SAVE_EVERY: Duration = Duration::from_secs(2);

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// CloudWatch's: gzip text, one file series per stream.
    #[default]
    Text,
    /// Parquet files in logwell's segment schema.
    Parquet,
}

/// A task as kept in the settings document.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored {
    task: ExportTask,
    #[serde(default)]
    stream_prefix: Option<String>,
    #[serde(default)]
    format: Format,
}

/// Runs export tasks and answers for them.
pub struct Exports {
    engine: Engine,
    /// Where tasks run: background threads, below the request path's priority.
    runtime: tokio::runtime::Handle,
    buckets: Arc<Buckets>,
    /// Bytes of text per gzip file before the next file starts.
    file_bytes: usize,
    tasks: Mutex<Vec<Stored>>,
    /// Set to cancel the running task.
    cancel: Mutex<Option<(String, Arc<AtomicBool>)>>,
    saving: tokio::sync::Mutex<()>,
}

enum Stop {
    Cancelled,
    Failed(String),
}

impl From<ApiError> for Stop {
    fn from(e: ApiError) -> Stop {
        Stop::Failed(e.message)
    }
}

fn status(code: &str, message: &str) -> ExportTaskStatus {
    ExportTaskStatus {
        code: code.into(),
        message: Some(message.into()),
    }
}

fn active(code: &str) -> bool {
    matches!(code, "PENDING" | "RUNNING" | "PENDING_CANCEL")
}

impl Exports {
    /// Loads the kept tasks and resumes those that had not finished.
    pub async fn start(
        engine: Engine,
        buckets: Arc<Buckets>,
        file_bytes: usize,
        runtime: tokio::runtime::Handle,
    ) -> Result<Arc<Exports>, ApiError> {
        let tasks: Vec<Stored> = match engine.get_document(DOCUMENT).await? {
            Some(b) => serde_json::from_slice(&b).map_err(|e| {
                ApiError::unavailable(format!("settings document {DOCUMENT} is unreadable: {e}"))
            })?,
            None => Vec::new(),
        };
        let exports = Arc::new(Exports {
            engine,
            runtime,
            buckets,
            file_bytes: file_bytes.max(1),
            tasks: Mutex::new(tasks),
            cancel: Mutex::new(None),
            saving: Default::default(),
        });
        let resume: Vec<String> = {
            let mut tasks = exports.tasks.lock().unwrap();
            let mut resume = Vec::new();
            for t in tasks.iter_mut() {
                match t.task.status.code.as_str() {
                    "PENDING_CANCEL" => {
                        t.task.status = status("CANCELLED", "Cancelled by user");
                        t.task.execution_info.completion_time = Some(now_millis());
                    }
                    "PENDING" | "RUNNING" => {
                        t.task.status = status("PENDING", "Pending");
                        t.task.logwell_progress = ExportProgress::default();
                        resume.push(t.task.task_id.clone());
                    }
                    _ => {}
                }
            }
            resume
        };
        for id in resume {
            exports.runtime.spawn(exports.clone().run(id));
        }
        Ok(exports)
    }

    /// CreateExportTask: checks what CloudWatch checks, writes the bucket probe, then runs the
    /// task in the background.
    pub async fn create(
        self: &Arc<Self>,
        r: CreateExportTaskRequest,
    ) -> Result<CreateExportTaskResponse, ApiError> {
        logwell_model::validate::log_group_name(&r.log_group_name, "logGroupName")?;
        if let Some(name) = &r.task_name {
            if name.is_empty() || name.chars().count() > 512 {
                return Err(ApiError::constraint(
                    name,
                    "taskName",
                    "have length between 1 and 512",
                ));
            }
        }
        if r.destination.is_empty() || r.destination.chars().count() > 512 {
            return Err(ApiError::constraint(
                &r.destination,
                "destination",
                "have length between 1 and 512",
            ));
        }
        let format = match r.logwell_format.as_deref() {
            None | Some("text") => Format::Text,
            Some("parquet") => Format::Parquet,
            Some(other) => {
                return Err(ApiError::constraint(
                    other,
                    "logwellFormat",
                    "satisfy enum value set: [text, parquet]",
                ))
            }
        };
        if r.from < 0 || r.to < r.from {
            return Err(ApiError::invalid(format!(
                "Specified time range of {} and {} is not valid. Please make sure the values are non-negative and the start time is less than the end time.",
                r.from, r.to
            )));
        }
        let created = self
            .engine
            .list_groups()
            .into_iter()
            .find(|g| g.name == r.log_group_name)
            .ok_or_else(|| {
                ApiError::new(
                    ErrorKind::ResourceNotFound,
                    "The specified log group does not exist.",
                )
            })?
            .creation_time;
        if r.to < created {
            return Err(ApiError::invalid(
                "The specified end time is before the creation time of the log group.",
            ));
        }
        if self
            .tasks
            .lock()
            .unwrap()
            .iter()
            .any(|t| active(&t.task.status.code))
        {
            return Err(ApiError::new(
                ErrorKind::LimitExceeded,
                "Resource limit exceeded.",
            ));
        }
        let prefix = r
            .destination_prefix
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "exportedlogs".into());
        let prefix = prefix.trim_matches('/').to_string();
        // As CloudWatch does: a probe object first; a bucket that cannot take it is refused.
        let bucket_missing = || {
            ApiError::invalid(
                "The given bucket does not exist. Please make sure the bucket is valid.",
            )
        };
        let store = self.buckets.open(&r.destination).await.map_err(|e| {
            tracing::warn!(bucket = r.destination, error = %e, "export bucket");
            bucket_missing()
        })?;
        store
            .put_durable(
                &Path::from(format!("{prefix}/aws-logs-write-test")),
                Bytes::from_static(b"Permission Check Successful"),
            )
            .await
            .map_err(|e| {
                tracing::warn!(bucket = r.destination, error = %e, "export bucket probe");
                bucket_missing()
            })?;
        let task_id = uuid::Uuid::new_v4().to_string();
        let stored = Stored {
            task: ExportTask {
                task_id: task_id.clone(),
                task_name: r.task_name,
                log_group_name: r.log_group_name,
                from: r.from,
                to: r.to,
                destination: r.destination,
                destination_prefix: prefix,
                status: status("PENDING", "Pending"),
                execution_info: ExportTaskExecutionInfo {
                    creation_time: Some(now_millis()),
                    completion_time: None,
                },
                logwell_progress: ExportProgress::default(),
            },
            stream_prefix: r.log_stream_name_prefix.filter(|p| !p.is_empty()),
            format,
        };
        {
            let mut tasks = self.tasks.lock().unwrap();
            // Checked again under the lock: two creates racing must not both start.
            if tasks.iter().any(|t| active(&t.task.status.code)) {
                return Err(ApiError::new(
                    ErrorKind::LimitExceeded,
                    "Resource limit exceeded.",
                ));
            }
            tasks.push(stored);
        }
        if let Err(e) = self.save().await {
            self.tasks
                .lock()
                .unwrap()
                .retain(|t| t.task.task_id != task_id);
            return Err(e);
        }
        self.runtime.spawn(self.clone().run(task_id.clone()));
        Ok(CreateExportTaskResponse { task_id })
    }

    /// DescribeExportTasks, newest first.
    pub fn describe(
        &self,
        r: DescribeExportTasksRequest,
    ) -> Result<DescribeExportTasksResponse, ApiError> {
        if let Some(code) = &r.status_code {
            const CODES: [&str; 6] = [
                "CANCELLED",
                "COMPLETED",
                "FAILED",
                "PENDING",
                "PENDING_CANCEL",
                "RUNNING",
            ];
            if !CODES.contains(&code.as_str()) {
                return Err(ApiError::constraint(
                    code,
                    "statusCode",
                    "satisfy enum value set: [CANCELLED, COMPLETED, FAILED, PENDING, PENDING_CANCEL, RUNNING]",
                ));
            }
        }
        let tasks = self.tasks.lock().unwrap();
        let matching: Vec<&ExportTask> = tasks
            .iter()
            .rev()
            .map(|t| &t.task)
            .filter(|t| r.task_id.as_ref().is_none_or(|id| &t.task_id == id))
            .filter(|t| r.status_code.as_ref().is_none_or(|c| &t.status.code == c))
            .collect();
        let (export_tasks, next_token) =
            logwell_model::validate::offset_page(&matching, r.next_token.as_deref(), r.limit)?;
        Ok(DescribeExportTasksResponse {
            export_tasks,
            next_token,
        })
    }

    /// CancelExportTask: only a pending or running task.
    pub async fn cancel(&self, r: CancelExportTaskRequest) -> Result<(), ApiError> {
        {
            let mut tasks = self.tasks.lock().unwrap();
            let t = tasks
                .iter_mut()
                .find(|t| t.task.task_id == r.task_id)
                .ok_or_else(|| {
                    ApiError::new(
                        ErrorKind::ResourceNotFound,
                        "The specified export task does not exist.",
                    )
                })?;
            if !matches!(t.task.status.code.as_str(), "PENDING" | "RUNNING") {
                return Err(ApiError::new(
                    ErrorKind::InvalidOperation,
                    "The specified export task has already finished",
                ));
            }
            t.task.status = status("PENDING_CANCEL", "Cancellation requested");
        }
        if let Some((id, flag)) = &*self.cancel.lock().unwrap() {
            if *id == r.task_id {
                flag.store(true, Ordering::Relaxed);
            }
        }
        self.save().await
    }

    async fn save(&self) -> Result<(), ApiError> {
        let _one_at_a_time = self.saving.lock().await;
        let body = serde_json::to_vec(&*self.tasks.lock().unwrap()).expect("tasks serialise");
        self.engine.put_document(DOCUMENT, body.into()).await
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut Stored)) {
        if let Some(t) = self
            .tasks
            .lock()
            .unwrap()
            .iter_mut()
            .find(|t| t.task.task_id == id)
        {
            f(t);
        }
    }

    async fn run(self: Arc<Self>, id: String) {
        let flag = Arc::new(AtomicBool::new(false));
        // The flag first: a cancel from here on either sees it or leaves PENDING_CANCEL below.
        *self.cancel.lock().unwrap() = Some((id.clone(), flag.clone()));
        let Some(stored) = self
            .tasks
            .lock()
            .unwrap()
            .iter_mut()
            .find(|t| t.task.task_id == id)
            .map(|t| {
                if t.task.status.code == "PENDING_CANCEL" {
                    flag.store(true, Ordering::Relaxed);
                } else {
                    t.task.status = status("RUNNING", "Started successfully");
                }
                t.clone()
            })
        else {
            return;
        };
        let _ = self.save().await;
        let started = Instant::now();
        let result = match self.buckets.open(&stored.task.destination).await {
            Ok(store) => {
                // A rerun (after a restart) starts clean: what an earlier attempt wrote may
                // not be what this one writes (segments compacted since, fewer files).
                let base = format!("{}/{}", stored.task.destination_prefix, id);
                if let Err(e) = clear(&store, &base).await {
                    tracing::warn!(task = id, error = %e, "cannot clear an earlier attempt");
                }
                let mut run = TaskRun {
                    exports: &self,
                    id: &id,
                    store,
                    base: format!("{}/{}", stored.task.destination_prefix, id),
                    cancel: &flag,
                    progress: ExportProgress::default(),
                    last_save: Instant::now(),
                };
                match stored.format {
                    Format::Text => run.text(&stored).await,
                    Format::Parquet => run.parquet(&stored).await,
                }
                .map(|()| run.progress)
            }
            Err(e) => Err(Stop::Failed(e)),
        };
        let seconds = started.elapsed().as_secs_f64();
        self.update(&id, |t| {
            t.task.execution_info.completion_time = Some(now_millis());
            t.task.status = match &result {
                Ok(p) => {
                    t.task.logwell_progress = ExportProgress {
                        fraction: 1.0,
                        ..p.clone()
                    };
                    tracing::info!(
                        task = id,
                        events = p.events,
                        mb_per_s = p.bytes as f64 / 1e6 / seconds.max(1e-9),
                        "export completed"
                    );
                    status("COMPLETED", "Completed successfully")
                }
                Err(Stop::Cancelled) => status("CANCELLED", "Cancelled by user"),
                Err(Stop::Failed(e)) => status("FAILED", e),
            };
        });
        *self.cancel.lock().unwrap() = None;
        // A task whose end cannot be saved runs again after a restart; nothing is lost.
        if let Err(e) = self.save().await {
            tracing::warn!(task = id, error = %e, "cannot save the export task's status");
        }
    }
}

/// One run of one task.
struct TaskRun<'a> {
    exports: &'a Exports,
    id: &'a str,
    store: Store,
    base: String,
    cancel: &'a AtomicBool,
    progress: ExportProgress,
    last_save: Instant,
}

impl TaskRun<'_> {
    /// How the group's events leave: masked by its data protection policy, if it has one.
    fn protection(&self, group: &str) -> logwell_dataprotection::Protection {
        logwell_dataprotection::Protection::of_lookup(
            self.exports.engine.masking_policy(group),
            false,
        )
    }

    async fn put(&mut self, key: String, body: Bytes) -> Result<(), Stop> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(Stop::Cancelled);
        }
        self.store
            .put_durable(&Path::from(key.as_str()), body)
            .await
            .map_err(|e| Stop::Failed(format!("cannot write {key}: {e}")))?;
        self.progress.objects += 1;
        Ok(())
    }

    /// Checks for cancellation and shows progress (saved every few seconds).
    async fn step(&mut self, fraction: f64) -> Result<(), Stop> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(Stop::Cancelled);
        }
        self.progress.fraction = fraction.clamp(0.0, 1.0);
        let p = self.progress.clone();
        self.exports
            .update(self.id, |t| t.task.logwell_progress = p);
        if self.last_save.elapsed() >= SAVE_EVERY {
            self.last_save = Instant::now();
            let _ = self.exports.save().await;
        }
        Ok(())
    }

    /// CloudWatch's layout: per stream, gzip files of `<ISO-8601> <message>` lines in time order.
    async fn text(&mut self, stored: &Stored) -> Result<(), Stop> {
        let t = &stored.task;
        let streams: Vec<String> = self
            .exports
            .engine
            .list_streams(&t.log_group_name)?
            .into_iter()
            .filter(|(name, _)| {
                stored
                    .stream_prefix
                    .as_ref()
                    .is_none_or(|p| name.starts_with(p.as_str()))
            })
            // A stream whose events all lie outside the range has nothing to write.
            .filter(|(_, m)| {
                m.first_event_ts.is_none_or(|f| f <= t.to)
                    && m.last_event_ts.is_none_or(|l| l >= t.from)
            })
            .map(|(name, _)| name)
            .collect();
        let span = (t.to - t.from + 1) as f64;
        // A protected group exports masked text.
        let protection = self.protection(&t.log_group_name);
        for (i, stream) in streams.iter().enumerate() {
            let mut file = TextFile::new(self.exports.file_bytes);
            let mut index = 0;
            let mut after = None;
            loop {
                let rows = self
                    .exports
                    .engine
                    .scan(
                        &t.log_group_name,
                        &Scan {
                            streams: StreamFilter::Names(vec![stream.clone()]),
                            start: Some(t.from),
                            end: Some(t.to.saturating_add(1)),
                            after,
                            limit: PAGE,
                            ..Default::default()
                        },
                    )
                    .await?;
                for r in &rows {
                    file.line(r.timestamp, &protection.mask(&r.message));
                    self.progress.events += 1;
                    self.progress.bytes += r.message.len() as u64 + 25;
                    if file.full() {
                        let body =
                            std::mem::replace(&mut file, TextFile::new(self.exports.file_bytes))
                                .finish();
                        self.put(format!("{}/{stream}/{index:06}.gz", self.base), body)
                            .await?;
                        index += 1;
                    }
                }
                let within = rows
                    .last()
                    .map_or(1.0, |r| (r.timestamp - t.from) as f64 / span);
                self.step((i as f64 + within) / streams.len() as f64)
                    .await?;
                match rows.last() {
                    Some(last) if rows.len() == PAGE => after = Some(last.key()),
                    _ => break,
                }
            }
            if !file.is_empty() {
                self.put(
                    format!("{}/{stream}/{index:06}.gz", self.base),
                    file.finish(),
                )
                .await?;
            }
        }
        Ok(())
    }

    /// Parquet: segments wholly inside the range (and of matching streams) are copied as they
    /// are; the rest (segments partly inside, buffered events) are filtered and written anew.
    async fn parquet(&mut self, stored: &Stored) -> Result<(), Stop> {
        let t = &stored.task;
        let snap =
            self.exports
                .engine
                .snapshot(&t.log_group_name, t.from, t.to.saturating_add(1))?;
        let prefix = stored.stream_prefix.clone();
        let accepts = |s: &str| prefix.as_ref().is_none_or(|p| s.starts_with(p.as_str()));
        let lo = t.from.max(snap.cutoff.unwrap_or(i64::MIN));
        let hi = t.to;
        let segments: Vec<_> = snap
            .segments
            .iter()
            .filter(|s| s.max_ts >= lo && s.min_ts <= hi)
            .cloned()
            .collect();
        let total = segments.len() + 1;
        let mut part = 0;
        // A protected group's files carry the masked message and none of the stored field
        // columns (they hold the original values).
        let protection = self.protection(&t.log_group_name);
        for (i, seg) in segments.iter().enumerate() {
            let name = seg.path.rsplit('/').next().unwrap_or(&seg.path).to_string();
            let bytes = self
                .exports
                .engine
                .segment_bytes(seg)
                .await
                .map_err(|e| Stop::Failed(e.message))?;
            // An encrypted segment is decoded and written plain: the bucket's reader has no key.
            let key = self
                .exports
                .engine
                .segment_key(seg)
                .map_err(|e| Stop::Failed(e.message))?;
            let whole = key.is_none()
                && !protection.is_masked()
                && seg.min_ts >= lo
                && seg.max_ts <= hi
                && snap.tombstones.is_empty()
                && seg
                    .streams
                    .as_ref()
                    .is_some_and(|names| names.iter().all(|n| accepts(n)));
            if whole {
                self.progress.events += seg.rows;
                self.progress.bytes += seg.bytes;
                self.put(format!("{}/{name}", self.base), bytes).await?;
            } else {
                let batches = tokio::task::spawn_blocking(move || {
                    logwell_storage::segment::decode_pruned(bytes, key.as_ref(), lo, hi, |_, _| {
                        true
                    })
                })
                .await
                .map_err(|e| Stop::Failed(e.to_string()))?
                .map_err(|e| Stop::Failed(format!("cannot decode {}: {e}", seg.path)))?;
                let batches = masked(batches, &protection)?;
                for body in self.filtered(&batches, lo, hi, &accepts, &snap.tombstones)? {
                    self.put(format!("{}/part-{part:06}.parquet", self.base), body)
                        .await?;
                    part += 1;
                }
            }
            self.step((i + 1) as f64 / total as f64).await?;
        }
        let buffered = masked(
            snap.buffered.iter().map(|b| b.batch.clone()).collect(),
            &protection,
        )?;
        for body in self.filtered(&buffered, lo, hi, &accepts, &snap.tombstones)? {
            self.put(format!("{}/part-{part:06}.parquet", self.base), body)
                .await?;
            part += 1;
        }
        Ok(())
    }

    /// The rows of `batches` inside `[lo, hi]`, of accepted and live streams, as Parquet files:
    /// one per schema (segments differ in the field columns they carry).
    fn filtered(
        &mut self,
        batches: &[RecordBatch],
        lo: i64,
        hi: i64,
        accepts: &dyn Fn(&str) -> bool,
        tombstones: &std::collections::BTreeMap<String, i64>,
    ) -> Result<Vec<Bytes>, Stop> {
        let mut kept = Vec::new();
        for b in batches {
            let streams = b.column(0).as_dictionary::<Int32Type>();
            let names = streams.values().as_string::<i32>();
            let ts = b.column(1).as_primitive::<Int64Type>();
            let seq = b.column(3).as_primitive::<Int64Type>();
            let mask: BooleanArray = (0..b.num_rows())
                .map(|i| {
                    let stream = names.value(streams.keys().value(i) as usize);
                    let t = ts.value(i);
                    Some(
                        t >= lo
                            && t <= hi
                            && accepts(stream)
                            && tombstones
                                .get(stream)
                                .is_none_or(|floor| seq.value(i) >= *floor),
                    )
                })
                .collect();
            let f = arrow::compute::filter_record_batch(b, &mask)
                .map_err(|e| Stop::Failed(e.to_string()))?;
            if f.num_rows() > 0 {
                self.progress.events += f.num_rows() as u64;
                self.progress.bytes += f.get_array_memory_size() as u64;
                kept.push(f);
            }
        }
        let mut files = Vec::new();
        while let Some(first) = kept.first() {
            let schema = first.schema();
            let (same, rest): (Vec<RecordBatch>, Vec<RecordBatch>) =
                kept.into_iter().partition(|b| b.schema() == schema);
            kept = rest;
            let props = parquet::file::properties::WriterProperties::builder()
                .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
                .build();
            let mut out = Vec::new();
            let mut w = parquet::arrow::ArrowWriter::try_new(&mut out, schema, Some(props))
                .map_err(|e| Stop::Failed(e.to_string()))?;
            for b in &same {
                w.write(b).map_err(|e| Stop::Failed(e.to_string()))?;
            }
            w.close().map_err(|e| Stop::Failed(e.to_string()))?;
            files.push(out.into());
        }
        Ok(files)
    }
}

/// Deletes every object under `prefix/`.
async fn clear(store: &Store, prefix: &str) -> Result<(), object_store::Error> {
    use futures::TryStreamExt;
    let dir = Path::from(prefix);
    let objects: Vec<_> = store.inner.list(Some(&dir)).try_collect().await?;
    for o in objects {
        store.delete(&o.location).await?;
    }
    Ok(())
}

/// One gzip file of export lines.
/// `batches` with the message masked and only the event columns kept, when `protection` masks.
fn masked(
    batches: Vec<RecordBatch>,
    protection: &logwell_dataprotection::Protection,
) -> Result<Vec<RecordBatch>, Stop> {
    if !protection.is_masked() {
        return Ok(batches);
    }
    let schema = logwell_storage::memtable::event_schema();
    let message = schema
        .index_of(logwell_storage::memtable::col::MESSAGE)
        .expect("the event schema has a message");
    batches
        .iter()
        .map(|b| {
            let texts = b.column(message).as_string::<i32>();
            let masked: arrow::array::StringArray = texts
                .iter()
                .map(|t| t.map(|t| protection.mask(t)))
                .collect();
            let mut columns: Vec<_> = b.columns()[..schema.fields().len()].to_vec();
            columns[message] = Arc::new(masked);
            RecordBatch::try_new(schema.clone(), columns).map_err(|e| Stop::Failed(e.to_string()))
        })
        .collect()
}

struct TextFile {
    gz: GzEncoder<Vec<u8>>,
    raw: usize,
    limit: usize,
}

impl TextFile {
    fn new(limit: usize) -> TextFile {
        TextFile {
            gz: GzEncoder::new(Vec::new(), flate2::Compression::new(6)),
            raw: 0,
            limit,
        }
    }

    fn line(&mut self, timestamp: i64, message: &str) {
        let time = chrono::DateTime::from_timestamp_millis(timestamp)
            .unwrap_or_default()
            .format("%Y-%m-%dT%H:%M:%S%.3fZ");
        let line = format!("{time} {message}\n");
        self.raw += line.len();
        self.gz
            .write_all(line.as_bytes())
            .expect("gzip into memory");
    }

    fn full(&self) -> bool {
        self.raw >= self.limit
    }

    fn is_empty(&self) -> bool {
        self.raw == 0
    }

    fn finish(self) -> Bytes {
        self.gz.finish().expect("gzip into memory").into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn text_lines_are_cloudwatch_export_lines() {
        let mut f = TextFile::new(1 << 20);
        f.line(1_704_067_200_123, "first line");
        f.line(1_704_067_201_000, "second");
        let mut text = String::new();
        flate2::read::GzDecoder::new(&f.finish()[..])
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(
            text,
            "2024-01-01T00:00:00.123Z first line\n2024-01-01T00:00:01.000Z second\n"
        );
    }
}
