//! The storage engine: ties the WAL, memtables, segments and catalog together.
//!
//! Write path: validate, append to the WAL (group commit, fsync), then apply to the memtable; the
//! call returns only after both, so an acknowledged event is durable and immediately readable.
//! A flush ("checkpoint") freezes every memtable at a WAL position, writes one Parquet segment per
//! group, publishes a manifest listing them, and only then drops the WAL files it covers.
//!
//! Locking: `gate` orders writers against checkpoints and metadata changes. Puts hold it shared
//! from validation to apply; metadata changes and the freeze step of a checkpoint hold it
//! exclusively, so WAL order and apply order agree for everything that does not commute.

use crate::catalog::{
    is_plain_manifest, manifest_path, parse_manifest_version, Expiry, GroupMeta, Manifest,
    Metadata, SegmentMeta, StreamMeta, MANIFEST_DIR, MAX_LISTED_STREAMS,
};
use crate::config::StorageConfig;
use crate::lock::{DataDirLock, Lease, LeaseError, LEASE_RENEW, LEASE_TTL};
use crate::memtable::{GroupMemtable, SEQ_INDEX_BITS};
use crate::record::{self, MetaChange, Record};
use crate::segment;
use crate::store::Store;
use crate::tap::Tap;
use crate::wal::{self, ReplayMode, Wal};
use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::datatypes::{Int32Type, Int64Type};
use futures::StreamExt;
use logwell_model::api::{InputLogEvent, RejectedLogEventsInfo};
use logwell_model::{now_millis, ApiError};
use object_store::path::Path as ObjPath;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};

mod background;
mod flush;
mod keyring;
mod open;
mod scan;
mod settings;
mod subscriptions;

pub use open::OpenOptions;
use open::*;
use scan::*;
pub use subscriptions::SegmentCache;

/// A group as listings show it.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSummary {
    pub name: String,
    pub creation_time: i64,
    pub retention_days: Option<i32>,
    pub kms_key_id: Option<String>,
    pub class: String,
    pub deletion_protection: bool,
    /// Whether a data protection policy masks the group's events.
    pub data_protection: bool,
    /// Bytes in segments plus bytes buffered for the group.
    pub stored_bytes: u64,
}

/// Options for a new log group.
#[derive(Debug, Clone, Default)]
pub struct NewGroup {
    pub name: String,
    pub kms_key_id: Option<String>,
    /// The data key wrapped by `kms_key_id` ([`Engine::new_kms_data_key`]); None: one wrapped
    /// by the keyring, if encryption is on.
    pub data_key: Option<String>,
    pub class: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub deletion_protection: bool,
}

/// What PutLogEvents reports back.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PutOutcome {
    pub accepted: usize,
    pub rejected: Option<RejectedLogEventsInfo>,
}

/// Which streams a scan reads.
#[derive(Debug, Clone, Default)]
pub enum StreamFilter {
    #[default]
    All,
    Names(Vec<String>),
    Prefix(String),
}

impl StreamFilter {
    /// Whether some name in the range `[min, max]` may be accepted.
    fn may_overlap(&self, min: &str, max: &str) -> bool {
        match self {
            StreamFilter::All => true,
            StreamFilter::Names(n) => n.iter().any(|s| s.as_str() >= min && s.as_str() <= max),
            // Names with prefix p sort from p up to just below the first string greater than p
            // that does not start with p.
            StreamFilter::Prefix(p) => {
                max >= p.as_str() && (min <= p.as_str() || min.starts_with(p.as_str()))
            }
        }
    }

    fn accepts(&self, name: &str) -> bool {
        match self {
            StreamFilter::All => true,
            StreamFilter::Names(n) => n.iter().any(|s| s == name),
            StreamFilter::Prefix(p) => name.starts_with(p.as_str()),
        }
    }
}

/// Position of an event in read order.
pub type EventKey = (i64, i64);

/// A read over one group: which events, and how many from which end.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    pub streams: StreamFilter,
    /// Inclusive lower bound on timestamp.
    pub start: Option<i64>,
    /// Exclusive upper bound on timestamp.
    pub end: Option<i64>,
    /// Only events strictly after this key.
    pub after: Option<EventKey>,
    /// Only events strictly before this key.
    pub before: Option<EventKey>,
    /// Take the newest `limit` events instead of the oldest.
    pub newest_first: bool,
    pub limit: usize,
}

/// One event as reads return it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    pub stream: String,
    pub timestamp: i64,
    pub ingestion_time: i64,
    pub seq: i64,
    pub message: String,
}

impl EventRow {
    pub fn key(&self) -> EventKey {
        (self.timestamp, self.seq)
    }
}

/// Sizes for benchmarks and operators.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StorageStats {
    pub segments: u64,
    pub segment_bytes: u64,
    pub segment_rows: u64,
    pub raw_bytes: u64,
    pub buffered_bytes: u64,
    /// Bytes of JSON field columns that queries extracted from buffered batches and that the
    /// batches keep for the next query (at most `buffered_bytes`).
    pub buffered_field_bytes: u64,
    pub wal_bytes: u64,
    /// WAL group commits (one write and one fsync each) since start, their time and bytes.
    pub wal_commits: u64,
    pub wal_commit_seconds: f64,
    pub wal_written_bytes: u64,
    /// Flushes that wrote segments since start, and their time.
    pub flushes: u64,
    pub flush_seconds: f64,
    /// Events removed by retention before a lagging subscription filter delivered them.
    pub undelivered_expired: u64,
}

struct State {
    meta: Metadata,
    /// Metadata as of `checkpoint_lsn`, which is what manifests record.
    checkpoint_meta: Arc<Metadata>,
    checkpoint_lsn: u64,
    segments: BTreeMap<u64, Vec<Arc<SegmentMeta>>>,
    mem: HashMap<u64, GroupMemtable>,
    /// Segments no longer listed; their files go once a manifest without them is durable.
    pending_delete: Vec<Arc<SegmentMeta>>,
    manifest_dirty: bool,
    /// The newest WAL record applied (every event up to it is readable).
    applied_lsn: u64,
    /// Rows per sealed memtable batch (`StorageConfig::memtable_batch_rows`).
    batch_rows: usize,
}

impl State {
    fn buffered_bytes(&self) -> u64 {
        self.mem.values().map(|m| m.total_bytes()).sum()
    }

    fn group_stored_bytes(&self, g: &GroupMeta) -> u64 {
        let segs: u64 = self
            .segments
            .get(&g.group_id)
            .map(|s| s.iter().map(|x| x.bytes).sum())
            .unwrap_or(0);
        segs + self
            .mem
            .get(&g.group_id)
            .map(|m| m.total_bytes())
            .unwrap_or(0)
    }

    /// Applies a durable metadata change with its side effects on data.
    fn apply_meta(&mut self, change: &MetaChange, lsn: u64) {
        if let MetaChange::DeleteGroup { name } = change {
            if let Some(g) = self.meta.groups.get(name) {
                let id = g.group_id;
                self.mem.remove(&id);
                if let Some(segs) = self.segments.remove(&id) {
                    self.pending_delete.extend(segs);
                    self.manifest_dirty = true;
                }
            }
        }
        self.meta.apply(change, lsn);
    }

    /// Applies one durable WAL record: Some(whether it applied), None if the bytes are not a
    /// record this version wrote.
    fn apply_record(&mut self, lsn: u64, payload: &[u8]) -> Option<bool> {
        self.applied_lsn = self.applied_lsn.max(lsn);
        match record::decode(payload) {
            Some(Record::Meta(change)) => {
                self.apply_meta(&change, lsn);
                Some(true)
            }
            Some(Record::Events(b)) => Some(self.apply_events(
                b.group,
                b.stream,
                b.ingestion_time,
                lsn,
                b.events.iter().copied(),
            )),
            None => None,
        }
    }

    /// Applies a durable event batch written at `lsn`; false if its stream is gone.
    fn apply_events<'a>(
        &mut self,
        group: &str,
        stream: &str,
        ingestion_time: i64,
        lsn: u64,
        events: impl ExactSizeIterator<Item = (i64, &'a str)> + Clone,
    ) -> bool {
        let Some(g) = self.meta.groups.get_mut(group) else {
            return false;
        };
        let Some(s) = g.streams.get_mut(stream) else {
            return false;
        };
        let (mut lo, mut hi) = (i64::MAX, i64::MIN);
        for (ts, _) in events.clone() {
            lo = lo.min(ts);
            hi = hi.max(ts);
        }
        if events.len() == 0 {
            return true;
        }
        s.first_event_ts = Some(s.first_event_ts.map_or(lo, |v| v.min(lo)));
        s.last_event_ts = Some(s.last_event_ts.map_or(hi, |v| v.max(hi)));
        s.last_ingestion_time = Some(
            s.last_ingestion_time
                .map_or(ingestion_time, |v| v.max(ingestion_time)),
        );
        let first_seq = (lsn << SEQ_INDEX_BITS) as i64;
        let rows = self.batch_rows;
        self.mem
            .entry(g.group_id)
            .or_insert_with(|| GroupMemtable::new(rows))
            .append(stream, ingestion_time, first_seq, events);
        true
    }
}

struct Inner {
    config: StorageConfig,
    store: Store,
    wal: Wal,
    gate: Arc<tokio::sync::RwLock<()>>,
    /// The next group id to hand out: ids are never reused, even when their create failed.
    next_group_id: AtomicU64,
    /// Why this engine stopped writing (another writer took the store), if it did.
    fenced: Mutex<Option<String>>,
    /// Set when shutdown begins: no new writes are accepted, what is in flight is flushed.
    stopping: std::sync::atomic::AtomicBool,
    /// Held for the engine's lifetime; `crash` lets go of it as a dying process would.
    dir_lock: Mutex<Option<DataDirLock>>,
    /// The object store's writer lease (None on the local store).
    lease: tokio::sync::Mutex<Option<Lease>>,
    /// Started while the object store was unreachable: nothing is published until it answers
    /// and this node has taken its lease.
    awaiting_store: std::sync::atomic::AtomicBool,
    node: String,
    /// What `OpenOptions::recover` dropped.
    recovery_report: Vec<String>,
    /// Shared with the WAL writer thread, which applies durable records in LSN order.
    state: Arc<RwLock<State>>,
    /// The master keys that wrap groups' data keys (None: encryption off and no keyring yet).
    keyring: Option<RwLock<crate::keys::Keyring>>,
    /// Data keys of groups with a KMS key, unwrapped by the KMS (None: no KMS configured).
    kms: Option<crate::kms::KmsKeys>,
    /// Live consumers of applied event batches.
    tap: Arc<Tap>,
    flush_lock: tokio::sync::Mutex<()>,
    /// Flushes done since start, and their total time, for metrics.
    flushes: AtomicU64,
    undelivered_expired: AtomicU64,
    flush_nanos: AtomicU64,
    manifest_version: tokio::sync::Mutex<u64>,
    flush_notify: Notify,
    /// Wakes maintenance before its next tick (a query extracted fields from flushed files).
    maintain_notify: Notify,
    /// When queries last extracted JSON fields of each group from its messages, by group id:
    /// such a group is being looked into (see `Engine::fields_queried`).
    fields_queried: Mutex<HashMap<u64, Instant>>,
    shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// The storage engine. Cheap to clone; all clones share one store.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::unavailable(format!("{what}: {e}"))
}

/// Errors that stop the engine from opening.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Another process or node is writing this data directory or store.
    #[error("{0}")]
    InUse(String),
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    #[error("write-ahead log: {0}")]
    Wal(#[from] std::io::Error),
    #[error("catalog: {0}")]
    Catalog(String),
}

impl Engine {
    /// Stops the engine the way a killed process stops: background work ends, nothing more is
    /// written or flushed, and the data directory is unlocked. For crash tests.
    pub fn crash(&self) {
        self.fence("the engine was stopped".into());
        let _ = self.inner.shutdown.send(true);
        for t in self.inner.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
        self.inner.dir_lock.lock().unwrap().take();
    }

    /// Stops all writing, for `reason`.
    fn fence(&self, reason: String) {
        let mut f = self.inner.fenced.lock().unwrap();
        if f.is_none() {
            *f = Some(reason);
        }
    }

    /// Err when this engine no longer writes (see `fence`).
    fn check_writable(&self) -> Result<(), ApiError> {
        match &*self.inner.fenced.lock().unwrap() {
            Some(reason) => Err(ApiError::unavailable(reason.clone())),
            None => Ok(()),
        }
    }

    /// Err when new writes are refused: the engine is fenced or shutting down. Checked again
    /// once a writer holds the gate, so nothing slips in after the final flush froze the data.
    fn check_accepting(&self) -> Result<(), ApiError> {
        if self.inner.stopping.load(Ordering::Acquire) {
            return Err(ApiError::unavailable("the server is shutting down"));
        }
        self.check_writable()
    }

    pub fn config(&self) -> &StorageConfig {
        &self.inner.config
    }

    pub fn store_description(&self) -> &str {
        &self.inner.store.description
    }

    /// Stops background work and flushes everything buffered.
    pub async fn shutdown(&self) -> Result<(), ApiError> {
        self.inner.stopping.store(true, Ordering::Release);
        let _ = self.inner.shutdown.send(true);
        let tasks: Vec<_> = self.inner.tasks.lock().unwrap().drain(..).collect();
        for t in tasks {
            let _ = t.await;
        }
        self.flush().await?;
        self.write_manifest().await?;
        if let Some(mut lease) = self.inner.lease.lock().await.take() {
            lease.release(&self.inner.store).await;
        }
        self.fence("the engine was shut down".into());
        self.inner.dir_lock.lock().unwrap().take();
        Ok(())
    }

    // ---------------------------------------------------------------- metadata

    async fn change(&self, change: MetaChange) -> Result<(), ApiError> {
        self.check_accepting()?;
        let gate = self.inner.gate.clone().write_owned().await;
        self.check_accepting()?;
        self.inner.state.read().unwrap().meta.check(&change)?;
        self.append_whole(gate, record::encode_meta(&change)).await
    }

    /// Appends a checked record and waits until it is durable and applied, holding `gate`
    /// (taken by the caller, shared or exclusive) until then. The append runs in a task of its
    /// own, so a caller that goes away (a client disconnecting) cannot release the gate while
    /// the record is still queued: it completes, or fails, as a whole.
    async fn append_whole<G: Send + 'static>(
        &self,
        gate: G,
        payload: Vec<u8>,
    ) -> Result<(), ApiError> {
        let engine = self.clone();
        let task = tokio::spawn(async move {
            // The WAL thread applies the record before the append returns.
            let r = engine.inner.wal.append(payload).await;
            drop(gate);
            r
        });
        match task.await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) if e.to_string() == wal::NOT_APPLIED => Err(ApiError::stream_not_found()),
            Ok(Err(e)) => Err(unavailable("cannot write the write-ahead log", e)),
            Err(e) => Err(unavailable("write-ahead log append", e)),
        }
    }

    pub async fn create_group(&self, g: NewGroup) -> Result<(), ApiError> {
        self.check_accepting()?;
        let gate = self.inner.gate.clone().write_owned().await;
        self.check_accepting()?;
        let change = {
            let st = self.inner.state.read().unwrap();
            let id = self
                .inner
                .next_group_id
                .load(Ordering::Acquire)
                .max(st.meta.next_group_id);
            let data_key = match (&self.inner.keyring, self.inner.config.encrypt) {
                _ if g.data_key.is_some() => g.data_key,
                (Some(ring), true) => Some(
                    ring.read()
                        .unwrap()
                        .new_data_key()
                        .map_err(|e| unavailable("cannot make a data key", e))?
                        .1,
                ),
                _ => None,
            };
            let change = MetaChange::CreateGroup {
                name: g.name,
                group_id: id,
                creation_time: now_millis(),
                kms_key_id: g.kms_key_id,
                class: g.class.unwrap_or_else(|| "STANDARD".into()),
                tags: g.tags,
                deletion_protection: g.deletion_protection,
                data_key,
            };
            st.meta.check(&change)?;
            // Taken now, whatever becomes of the append: a failed create never frees its id.
            self.inner.next_group_id.store(id + 1, Ordering::Release);
            change
        };
        self.append_whole(gate, record::encode_meta(&change)).await
    }

    pub async fn delete_group(&self, name: &str) -> Result<(), ApiError> {
        self.change(MetaChange::DeleteGroup { name: name.into() })
            .await
    }

    pub async fn create_stream(&self, group: &str, stream: &str) -> Result<(), ApiError> {
        self.change(MetaChange::CreateStream {
            group: group.into(),
            stream: stream.into(),
            creation_time: now_millis(),
        })
        .await
    }

    pub async fn delete_stream(&self, group: &str, stream: &str) -> Result<(), ApiError> {
        self.change(MetaChange::DeleteStream {
            group: group.into(),
            stream: stream.into(),
        })
        .await
    }

    pub async fn set_retention(&self, group: &str, days: Option<i32>) -> Result<(), ApiError> {
        self.change(MetaChange::PutRetention {
            group: group.into(),
            days,
        })
        .await
    }

    /// Every group, sorted by name.
    pub fn list_groups(&self) -> Vec<GroupSummary> {
        let st = self.inner.state.read().unwrap();
        st.meta
            .groups
            .iter()
            .map(|(name, g)| GroupSummary {
                name: name.clone(),
                creation_time: g.creation_time,
                retention_days: g.retention_days,
                kms_key_id: g.kms_key_id.clone(),
                class: g.class.clone(),
                deletion_protection: g.deletion_protection,
                data_protection: g.data_protection.is_some()
                    || st.meta.account_data_protection.is_some(),
                stored_bytes: st.group_stored_bytes(g),
            })
            .collect()
    }

    /// One stream's metadata.
    pub fn stream(&self, group: &str, stream: &str) -> Result<StreamMeta, ApiError> {
        let st = self.inner.state.read().unwrap();
        st.meta
            .group(group)?
            .streams
            .get(stream)
            .cloned()
            .ok_or_else(ApiError::stream_not_found)
    }

    /// A group's streams, sorted by name.
    pub fn list_streams(&self, group: &str) -> Result<Vec<(String, StreamMeta)>, ApiError> {
        let st = self.inner.state.read().unwrap();
        Ok(st
            .meta
            .group(group)?
            .streams
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    // ---------------------------------------------------------------- ingest

    /// The highest seq an applied event can have: events after it are yet to come. A reader
    /// that starts here (`events_after`) sees only what arrives from now on.
    pub fn applied_seq(&self) -> i64 {
        let lsn = self.inner.state.read().unwrap().applied_lsn;
        (((lsn + 1) << SEQ_INDEX_BITS) - 1) as i64
    }

    /// The tap: live consumers of every event batch once it is durable and applied.
    pub fn tap(&self) -> &Arc<Tap> {
        &self.inner.tap
    }

    /// PutLogEvents: AWS's batch rules, then durable append.
    pub async fn put_events(
        &self,
        group: &str,
        stream: &str,
        events: &[InputLogEvent<'_>],
    ) -> Result<PutOutcome, ApiError> {
        self.put_events_at(now_millis(), group, stream, events)
            .await
    }

    /// `put_events` as if the clock read `now` (epoch ms): the age and retention rules are judged
    /// against it. Tests and loaders of historical data use it; the API always uses the clock.
    pub async fn put_events_at(
        &self,
        now: i64,
        group: &str,
        stream: &str,
        events: &[InputLogEvent<'_>],
    ) -> Result<PutOutcome, ApiError> {
        logwell_model::validate::put_log_events_batch(events)?;
        self.check_accepting()?;
        let gate = self.inner.gate.clone().read_owned().await;
        self.check_accepting()?;
        let retention_cutoff = {
            let st = self.inner.state.read().unwrap();
            let g = st.meta.group(group)?;
            if !g.streams.contains_key(stream) {
                return Err(ApiError::stream_not_found());
            }
            self.check_key_usable(g.data_key.as_deref())?;
            if st.buffered_bytes() > self.inner.config.max_buffered_bytes {
                self.inner.flush_notify.notify_one();
                return Err(ApiError::new(
                    logwell_model::ErrorKind::Throttling,
                    "Rate exceeded",
                ));
            }
            g.retention_cutoff(now)
        };

        let (kept, rejected) =
            logwell_model::validate::put_log_events_window(events, now, retention_cutoff)?;
        let accepted = &events[kept];
        if accepted.is_empty() {
            return Ok(PutOutcome {
                accepted: 0,
                rejected,
            });
        }

        let iter = accepted.iter().map(|e| (e.timestamp, e.message.as_ref()));
        let payload = record::encode_events(group, stream, now, iter.clone());
        // Acknowledged only once applied; the gate (shared) keeps a stream deletion out until then.
        self.append_whole(gate, payload).await?;
        let buffered = self.inner.state.read().unwrap().buffered_bytes();
        if buffered >= self.inner.config.flush_bytes {
            self.inner.flush_notify.notify_one();
        }
        Ok(PutOutcome {
            accepted: accepted.len(),
            rejected,
        })
    }

    // ---------------------------------------------------------------- reads

    /// What a query reads of one group: the segments that may hold events in `[start, end]`
    /// (epoch ms, inclusive), every buffered batch, and the visibility rules to apply to both.
    /// Holding the snapshot keeps its segment files from being deleted.
    pub fn snapshot(&self, group: &str, start: i64, end: i64) -> Result<GroupSnapshot, ApiError> {
        let st = self.inner.state.read().unwrap();
        let g = st.meta.group(group)?;
        let segments: Vec<Arc<SegmentMeta>> = st
            .segments
            .get(&g.group_id)
            .map(|segs| {
                segs.iter()
                    .filter(|s| s.max_ts >= start && s.min_ts <= end)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let buffered = st
            .mem
            .get(&g.group_id)
            .map(|m| m.snapshot())
            .unwrap_or_default();
        let held_keys = segments
            .iter()
            .filter_map(|s| {
                let held = s.held_key.as_deref()?;
                Some(
                    self.unwrap_key(Some(held))
                        .map(|k| (s.path.clone(), k.expect("a held key is a key"))),
                )
            })
            .collect::<Result<HashMap<_, _>, _>>();
        Ok(GroupSnapshot {
            name: group.to_string(),
            group_id: g.group_id,
            segments,
            buffered,
            tombstones: g.deleted_streams.clone(),
            cutoff: g.retention_cutoff(now_millis()),
            data_protection: settings::masking_document(
                g.data_protection.as_ref().map(|p| p.document.as_str()),
                st.meta.account_data_protection.as_ref(),
            ),
            data_key: self.unwrap_key(g.data_key.as_deref())?,
            held_keys: held_keys?,
        })
    }

    pub fn group_exists(&self, name: &str) -> bool {
        self.inner.state.read().unwrap().meta.group(name).is_ok()
    }

    /// The object store segments live in (queries read them through it).
    /// Reads a small service document (query definitions, lookup tables) kept in the object
    /// store beside the catalog, so that every node opening the store sees it; None if it was
    /// never saved.
    pub async fn get_document(&self, name: &str) -> Result<Option<bytes::Bytes>, ApiError> {
        match self
            .inner
            .store
            .get(&ObjPath::from(format!("settings/{name}")))
            .await
        {
            Ok(b) => {
                self.save_settings_copy(name, b.clone()).await;
                Ok(Some(b))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) if self.inner.store.is_local() => {
                Err(unavailable("cannot read a settings document", e))
            }
            // The store is down: this node's copy of what it last read or saved there (none:
            // there was no such document then).
            Err(e) => {
                tracing::warn!(document = name, error = %e, "object store unreachable: using this node's copy of a settings document");
                Ok(std::fs::read(self.settings_copy(name)).ok().map(Into::into))
            }
        }
    }

    /// Keeps this node's copy of a settings document (object stores only).
    async fn save_settings_copy(&self, name: &str, body: bytes::Bytes) {
        if self.inner.store.is_local() {
            return;
        }
        let path = self.settings_copy(name);
        let saved = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(path.parent().unwrap())?;
            write_file_durably(&path, &body)
        })
        .await;
        if !matches!(saved, Ok(Ok(()))) {
            tracing::warn!(
                document = name,
                "cannot save this node's copy of a settings document"
            );
        }
    }

    fn settings_copy(&self, name: &str) -> std::path::PathBuf {
        self.inner.config.data_dir.join("settings-copy").join(name)
    }

    /// Saves a service document whole and durably (object stores replace an object atomically).
    pub async fn put_document(&self, name: &str, body: bytes::Bytes) -> Result<(), ApiError> {
        self.inner
            .store
            .put_durable(&ObjPath::from(format!("settings/{name}")), body.clone())
            .await
            .map_err(|e| unavailable("cannot save a settings document", e))?;
        self.save_settings_copy(name, body).await;
        Ok(())
    }

    pub fn object_store(&self) -> Arc<dyn object_store::ObjectStore> {
        self.inner.store.inner.clone()
    }

    /// A segment's file as stored (to copy it whole).
    pub async fn segment_bytes(&self, seg: &SegmentMeta) -> Result<bytes::Bytes, ApiError> {
        self.inner
            .store
            .get(&ObjPath::from(seg.path.as_str()))
            .await
            .map_err(|e| unavailable("cannot read a segment", e))
    }

    /// A whole segment, read and decoded (off the async threads).
    pub async fn read_segment(&self, seg: &SegmentMeta) -> Result<Vec<RecordBatch>, ApiError> {
        let key = self.segment_key(seg)?;
        let bytes = self.segment_bytes(seg).await?;
        tokio::task::spawn_blocking(move || segment::decode(bytes, key.as_ref()))
            .await
            .map_err(|e| unavailable("segment decode", e))?
            .map_err(|e| unavailable("cannot decode a segment", e))
    }

    /// Reads events of one group in (timestamp, seq) order: the oldest `limit` that match, or the
    /// newest `limit` when `newest_first` (then returned newest first).
    pub async fn scan(&self, group: &str, scan: &Scan) -> Result<Vec<EventRow>, ApiError> {
        let now = now_millis();
        let (segments, buffered, tombstones, cutoff) = {
            let st = self.inner.state.read().unwrap();
            let g = st.meta.group(group)?;
            let segs = st.segments.get(&g.group_id).cloned().unwrap_or_default();
            let mem = st
                .mem
                .get(&g.group_id)
                .map(|m| m.snapshot())
                .unwrap_or_default();
            (
                segs,
                mem,
                g.deleted_streams.clone(),
                g.retention_cutoff(now),
            )
        };
        let mut lo = scan
            .start
            .unwrap_or(i64::MIN)
            .max(cutoff.unwrap_or(i64::MIN));
        if let Some((ts, _)) = scan.after {
            lo = lo.max(ts);
        }
        let mut hi = scan.end.map_or(i64::MAX, |e| e.saturating_sub(1));
        if let Some((ts, _)) = scan.before {
            hi = hi.min(ts);
        }
        let mut sel = Selector::new(scan.limit, scan.newest_first);
        if lo > hi || scan.limit == 0 {
            return Ok(Vec::new());
        }
        let filter = RowFilter {
            scan,
            lo,
            hi,
            tombstones: &tombstones,
        };
        for b in &buffered {
            filter.select(b, &mut sel);
        }
        let wanted: Vec<Arc<SegmentMeta>> = segments
            .into_iter()
            .filter(|s| s.max_ts >= lo && s.min_ts <= hi)
            .filter(|s| match (&s.streams, &scan.streams) {
                (Some(names), f) => names.iter().any(|n| f.accepts(n)),
                (None, _) => true,
            })
            .collect();
        // Read in the order most likely to fill the selection early.
        let mut wanted = wanted;
        if scan.newest_first {
            wanted.sort_by_key(|s| std::cmp::Reverse(s.max_ts));
        } else {
            wanted.sort_by_key(|s| s.min_ts);
        }
        let store = self.inner.store.clone();
        let filter_streams = scan.streams.clone();
        let keys: Vec<_> = wanted
            .iter()
            .map(|seg| self.segment_key(seg))
            .collect::<Result<_, _>>()?;
        let mut reads = futures::stream::iter(wanted.into_iter().zip(keys).map(|(seg, key)| {
            let store = store.clone();
            let filter_streams = filter_streams.clone();
            async move {
                let bytes = store
                    .get(&ObjPath::from(seg.path.as_str()))
                    .await
                    .map_err(|e| unavailable("cannot read a segment", e))?;
                let filter = filter_streams.clone();
                let batches = tokio::task::spawn_blocking(move || {
                    segment::decode_pruned(bytes, key.as_ref(), lo, hi, |min, max| {
                        filter.may_overlap(min, max)
                    })
                })
                .await
                .map_err(|e| unavailable("segment decode", e))?
                .map_err(|e| unavailable("cannot decode a segment", e))?;
                Ok::<_, ApiError>((seg, batches))
            }
        }))
        .buffered(4);
        while let Some(r) = reads.next().await {
            let (seg, batches) = r?;
            if sel.is_full() {
                // Segments come in key order of their bounds; stop when none can beat the worst kept.
                let worst = sel.worst().unwrap();
                if (!scan.newest_first && seg.min_ts > worst.0)
                    || (scan.newest_first && seg.max_ts < worst.0)
                {
                    continue;
                }
            }
            for b in &batches {
                filter.select(b, &mut sel);
            }
        }
        Ok(sel.finish())
    }
}

/// One group as a query sees it at one moment; see [`Engine::snapshot`].
#[derive(Debug, Clone)]
pub struct GroupSnapshot {
    pub name: String,
    pub group_id: u64,
    pub segments: Vec<Arc<SegmentMeta>>,
    /// Buffered (not yet flushed) batches, in the segment schema.
    pub buffered: Vec<crate::Buffered>,
    /// Deleted streams: rows of stream `s` with a seq below `tombstones[s]` are gone.
    pub tombstones: BTreeMap<String, i64>,
    /// Events older than this (epoch ms) are past retention.
    pub cutoff: Option<i64>,
    /// The group's data protection policy document: reads mask what it names.
    pub data_protection: Option<String>,
    /// The key of its encrypted segments (`SegmentMeta::encrypted`).
    pub data_key: Option<crate::keys::DataKey>,
    /// The keys of segments written under a held key (`SegmentMeta::held_key`), by path.
    pub held_keys: HashMap<String, crate::keys::DataKey>,
}

#[cfg(test)]
mod tests {
    use super::flush::*;
    use super::*;

    #[test]
    fn stream_ranges_prune_only_what_cannot_match() {
        let prefix = StreamFilter::Prefix("web-".into());
        assert!(prefix.may_overlap("a", "z"));
        assert!(prefix.may_overlap("web-1", "web-9"));
        assert!(prefix.may_overlap("api", "web-"));
        assert!(!prefix.may_overlap("worker-1", "worker-9"));
        assert!(!prefix.may_overlap("api-1", "api-9"));
        let names = StreamFilter::Names(vec!["b".into(), "q".into()]);
        assert!(names.may_overlap("a", "c") && names.may_overlap("p", "r"));
        assert!(!names.may_overlap("c", "p"));
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_454), (2026, 1, 1));
        assert!(
            segment_path(3, 1_700_000_000_000).starts_with("segments/g00000003/2023/11/14/2213")
        );
    }
}
