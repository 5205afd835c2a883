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
    manifest_path, parse_manifest_version, GroupMeta, Manifest, Metadata, SegmentMeta, StreamMeta,
    MANIFEST_DIR, MAX_LISTED_STREAMS,
};
use crate::config::StorageConfig;
use crate::lock::{DataDirLock, Lease, LeaseError, LEASE_RENEW, LEASE_TTL};
use crate::memtable::{GroupMemtable, SEQ_INDEX_BITS};
use crate::record::{self, MetaChange, Record};
use crate::segment;
use crate::store::Store;
use crate::wal::{self, ReplayMode, Wal};
use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::datatypes::{Int32Type, Int64Type};
use futures::StreamExt;
use logwell_filter::FilterPattern;
use logwell_model::api::{InputLogEvent, RejectedLogEventsInfo};
use logwell_model::{now_millis, ApiError};
use object_store::path::Path as ObjPath;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// A group as listings show it.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSummary {
    pub name: String,
    pub creation_time: i64,
    pub retention_days: Option<i32>,
    pub kms_key_id: Option<String>,
    pub class: String,
    pub deletion_protection: bool,
    /// Bytes in segments plus bytes buffered for the group.
    pub stored_bytes: u64,
}

/// Options for a new log group.
#[derive(Debug, Clone, Default)]
pub struct NewGroup {
    pub name: String,
    pub kms_key_id: Option<String>,
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
    pub pattern: Option<FilterPattern>,
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
    pub wal_bytes: u64,
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
        self.mem
            .entry(g.group_id)
            .or_default()
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
    flush_lock: tokio::sync::Mutex<()>,
    manifest_version: tokio::sync::Mutex<u64>,
    flush_notify: Notify,
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

/// The manifests in the store, newest first.
async fn manifest_versions(store: &Store) -> Result<Vec<(u64, ObjPath)>, object_store::Error> {
    let prefix = ObjPath::from(MANIFEST_DIR);
    let mut versions: Vec<(u64, ObjPath)> = Vec::new();
    let mut list = store.inner.list(Some(&prefix));
    while let Some(item) = list.next().await {
        let item = item?;
        if let Some(v) = parse_manifest_version(item.location.as_ref()) {
            versions.push((v, item.location));
        }
    }
    versions.sort_by_key(|(v, _)| std::cmp::Reverse(*v));
    Ok(versions)
}

/// The catalog to start from: the newest manifest, or the one before it when the newest is
/// empty or unreadable (a power cut after its rename) and the previous one is still complete:
/// its segment files exist and the WAL continues from its checkpoint. Returns the manifest and
/// the highest version seen (the next manifest must be newer than a broken one).
async fn load_manifest(
    store: &Store,
    wal_dir: &std::path::Path,
) -> Result<(Manifest, u64), OpenError> {
    let versions = manifest_versions(store).await?;
    let Some((newest, path)) = versions.first().cloned() else {
        return Ok((Manifest::default(), 0));
    };
    let read = |path: ObjPath| async move {
        let bytes = store.get(&path).await?;
        Ok::<_, OpenError>(serde_json::from_slice::<Manifest>(&bytes))
    };
    let problem = match read(path.clone()).await? {
        Ok(m) => return Ok((m, newest)),
        Err(e) => e,
    };
    let refuse = |why: String| {
        OpenError::Catalog(format!(
            "manifest {newest} ({path}) cannot be read: {problem}; {why}refusing to start"
        ))
    };
    let Some((prev_v, prev_path)) = versions.get(1).cloned() else {
        return Err(refuse(String::new()));
    };
    let prev = match read(prev_path).await? {
        Ok(m) => m,
        Err(e) => {
            return Err(refuse(format!(
                "the previous manifest {prev_v} neither ({e}); "
            )))
        }
    };
    for seg in &prev.segments {
        if object_store::ObjectStoreExt::head(&*store.inner, &ObjPath::from(seg.path.as_str()))
            .await
            .is_err()
        {
            return Err(refuse(format!(
                "the previous manifest {prev_v} lists {} which is gone; ",
                seg.path
            )));
        }
    }
    if let Err(e) = wal::replay(wal_dir, prev.wal_lsn, ReplayMode::Strict) {
        return Err(refuse(format!(
            "the WAL does not cover the previous manifest {prev_v} ({e}); "
        )));
    }
    tracing::warn!(
        broken = newest,
        using = prev_v,
        "newest manifest unreadable ({problem}); starting from the previous one and the WAL"
    );
    Ok((prev, newest))
}

/// How to open a store.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Salvage a damaged WAL: keep every readable record, report what is dropped, and
    /// checkpoint at once so the damaged files go (`logwell serve --recover`).
    pub recover: bool,
}

impl Engine {
    /// Opens the store: loads the newest manifest, replays the WAL after it, starts background work.
    pub async fn open(config: StorageConfig) -> Result<Engine, OpenError> {
        Engine::open_with(config, OpenOptions::default()).await
    }

    /// [`Engine::open`] with options.
    pub async fn open_with(
        config: StorageConfig,
        options: OpenOptions,
    ) -> Result<Engine, OpenError> {
        std::fs::create_dir_all(&config.data_dir)?;
        let dir_lock = DataDirLock::acquire(&config.data_dir).map_err(OpenError::InUse)?;
        let store = Store::open(&config)?;
        let staged = store.remove_staging_leftovers();
        if staged > 0 {
            tracing::info!(files = staged, "removed staging files left by a crash");
        }
        let node = crate::lock::node_id(&config.data_dir)?;
        let wal_dir = config.data_dir.join("wal");
        let cache = config.data_dir.join(CATALOG_CACHE);
        let (lease, manifest, newest_version, awaiting_store) = match Lease::acquire(&store, &node)
            .await
        {
            Ok(lease) => {
                let (m, v) = load_manifest(&store, &wal_dir).await?;
                (lease, m, v, false)
            }
            Err(LeaseError::InUse(m)) => return Err(OpenError::InUse(m)),
            Err(LeaseError::Unreachable(why)) => {
                // Start from this node's own copy of the catalog: ingest goes on into the
                // WAL, and nothing is published until the store answers again.
                let copy = std::fs::read(&cache)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Manifest>(&b).ok());
                let Some(m) = copy else {
                    return Err(OpenError::Catalog(format!(
                            "the object store is unreachable ({why}) and this node has no copy of its catalog; refusing to start"
                        )));
                };
                tracing::warn!(
                    reason = %why,
                    manifest = m.version,
                    "object store unreachable: starting from this node's copy of the catalog; flushes wait until the store answers"
                );
                let v = m.version;
                (None, m, v, true)
            }
        };
        let mode = if options.recover {
            ReplayMode::Salvage
        } else {
            ReplayMode::Strict
        };
        // WAL positions are per node: a manifest another node wrote says nothing about which of
        // this node's records are published. Records past this node's own last checkpoint would
        // be skipped or misnumbered, so refuse rather than drop them.
        if let Some(writer) = manifest.writer.as_deref().filter(|w| *w != node) {
            let ours = std::fs::read(&cache)
                .ok()
                .and_then(|b| serde_json::from_slice::<Manifest>(&b).ok())
                .map_or(0, |m| m.wal_lsn);
            let unpublished = wal::replay(&wal_dir, ours, ReplayMode::Salvage)?
                .records
                .len();
            if unpublished > 0 {
                return Err(OpenError::Catalog(format!(
                    "this node's write-ahead log ({}) holds {unpublished} records it never published, but another node ({writer}) has written the store since; refusing to start. Start that node's data on its own store to read them, or move the wal directory away to start without them",
                    wal_dir.display()
                )));
            }
            // Nothing of ours is pending: continue from the other node's checkpoint.
            for (_, path) in wal::files(&wal_dir)? {
                std::fs::remove_file(path)?;
            }
        }
        let replayed = wal::replay(&wal_dir, manifest.wal_lsn, mode)?;
        for d in &replayed.dropped {
            tracing::warn!("recover: dropped {d}");
        }
        let mut segments: BTreeMap<u64, Vec<Arc<SegmentMeta>>> = BTreeMap::new();
        for s in &manifest.segments {
            segments
                .entry(s.group_id)
                .or_default()
                .push(Arc::new(s.clone()));
        }
        let mut state = State {
            meta: manifest.metadata.clone(),
            checkpoint_meta: Arc::new(manifest.metadata.clone()),
            checkpoint_lsn: manifest.wal_lsn,
            segments,
            mem: HashMap::new(),
            pending_delete: Vec::new(),
            manifest_dirty: false,
        };
        let next_lsn = replayed.next_lsn.max(manifest.wal_lsn + 1);
        let replayed_count = replayed.records.len();
        for (lsn, payload) in replayed.records {
            if state.apply_record(lsn, &payload).is_none() {
                return Err(OpenError::Catalog(format!(
                    "WAL record {lsn} has an unknown format"
                )));
            }
        }
        tracing::info!(
            store = %store.description,
            manifest = manifest.version,
            wal_lsn = manifest.wal_lsn,
            replayed = replayed_count,
            "storage opened"
        );
        let next_group_id = state.meta.next_group_id;
        let state = Arc::new(RwLock::new(state));
        let applier = state.clone();
        let wal = Wal::open(
            &wal_dir,
            next_lsn,
            Box::new(move |lsn, payload| {
                applier
                    .write()
                    .unwrap()
                    .apply_record(lsn, payload)
                    .unwrap_or_else(|| {
                        tracing::error!(lsn, "WAL record this version cannot apply");
                        false
                    })
            }),
        )?;
        let (shutdown, _) = watch::channel(false);
        let inner = Arc::new(Inner {
            config,
            store,
            wal,
            gate: Arc::new(tokio::sync::RwLock::new(())),
            next_group_id: AtomicU64::new(next_group_id),
            fenced: Mutex::new(None),
            stopping: std::sync::atomic::AtomicBool::new(false),
            dir_lock: Mutex::new(Some(dir_lock)),
            lease: tokio::sync::Mutex::new(lease),
            awaiting_store: std::sync::atomic::AtomicBool::new(awaiting_store),
            node,
            recovery_report: replayed.dropped,
            state,
            flush_lock: tokio::sync::Mutex::new(()),
            manifest_version: tokio::sync::Mutex::new(newest_version.max(manifest.version)),
            flush_notify: Notify::new(),
            shutdown,
            tasks: Mutex::new(Vec::new()),
        });
        let engine = Engine { inner };
        if !awaiting_store {
            // Without the lease, the catalog may be stale: another node's files look unlisted.
            engine.remove_orphans().await;
        }
        if options.recover {
            // A checkpoint now writes the salvaged records to segments and drops the damaged
            // WAL files, so the next start is clean.
            engine.flush().await.map_err(|e| {
                OpenError::Catalog(format!(
                    "recover: cannot checkpoint the salvaged records: {e}"
                ))
            })?;
        }
        engine.start_background();
        Ok(engine)
    }

    /// Takes the writer lease once the object store answers after a start without it, unless
    /// another node took the store (or published a newer catalog) meanwhile.
    async fn take_late_lease(&self) {
        match Lease::acquire(&self.inner.store, &self.inner.node).await {
            Err(LeaseError::Unreachable(_)) => {}
            Err(LeaseError::InUse(m)) => {
                tracing::error!("{m}");
                self.fence(m);
            }
            Ok(lease) => {
                let ours = *self.inner.manifest_version.lock().await;
                let newest = manifest_versions(&self.inner.store)
                    .await
                    .map(|v| v.first().map_or(0, |(n, _)| *n));
                match newest {
                    Ok(newest) if newest > ours => {
                        let m = format!("the catalog in {} moved on to version {newest} while this node was cut off (it has {ours}); this node stopped writing to it", self.inner.store.description);
                        tracing::error!("{m}");
                        self.fence(m);
                    }
                    Ok(_) => {
                        *self.inner.lease.lock().await = lease;
                        self.inner.awaiting_store.store(false, Ordering::Release);
                        tracing::info!("object store reachable again: writer lease taken");
                        self.remove_orphans().await;
                    }
                    Err(_) => {}
                }
            }
        }
    }

    /// What a recovering open dropped from a damaged WAL (empty otherwise).
    pub fn recovery_report(&self) -> &[String] {
        &self.inner.recovery_report
    }

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

    fn start_background(&self) {
        let flusher = {
            let engine = self.clone();
            let mut stop = self.inner.shutdown.subscribe();
            let tick = (self.inner.config.flush_age / 2)
                .clamp(Duration::from_millis(50), Duration::from_secs(1));
            tokio::spawn(async move {
                // After a failed flush (object store down), wait longer before each retry
                // instead of re-encoding everything every tick.
                let mut backoff = Duration::ZERO;
                let mut retry_at = tokio::time::Instant::now();
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(tick) => {}
                        _ = engine.inner.flush_notify.notified() => {}
                        _ = stop.changed() => break,
                    }
                    if tokio::time::Instant::now() < retry_at || !engine.needs_flush() {
                        continue;
                    }
                    match engine.flush().await {
                        Ok(()) => backoff = Duration::ZERO,
                        Err(e) => {
                            backoff = (backoff * 2)
                                .clamp(Duration::from_secs(1), Duration::from_secs(30));
                            tracing::warn!(error = %e, retry_in = ?backoff, "flush failed; will retry");
                        }
                    }
                    retry_at = tokio::time::Instant::now() + backoff;
                }
            })
        };
        let maintainer = {
            let engine = self.clone();
            let mut stop = self.inner.shutdown.subscribe();
            let every = self
                .inner
                .config
                .maintenance_interval
                .max(Duration::from_millis(100));
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(every) => {}
                        _ = stop.changed() => break,
                    }
                    if let Err(e) = engine.maintain().await {
                        tracing::warn!(error = %e, "maintenance failed; will retry");
                    }
                }
            })
        };
        let renewer = {
            let engine = self.clone();
            let mut stop = self.inner.shutdown.subscribe();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(LEASE_RENEW) => {}
                        _ = stop.changed() => break,
                    }
                    if engine.check_writable().is_err() {
                        // A fenced node lets its lease lapse, so another can take over.
                        break;
                    }
                    if engine.inner.awaiting_store.load(Ordering::Acquire) {
                        engine.take_late_lease().await;
                        continue;
                    }
                    let mut lease = engine.inner.lease.lock().await;
                    let Some(l) = lease.as_mut() else { break };
                    if let Err(reason) = l.renew(&engine.inner.store).await {
                        tracing::error!("{reason}");
                        lease.take();
                        engine.fence(reason);
                        break;
                    }
                }
            })
        };
        self.inner
            .tasks
            .lock()
            .unwrap()
            .extend([flusher, maintainer, renewer]);
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
            let change = MetaChange::CreateGroup {
                name: g.name,
                group_id: id,
                creation_time: now_millis(),
                kms_key_id: g.kms_key_id,
                class: g.class.unwrap_or_else(|| "STANDARD".into()),
                tags: g.tags,
                deletion_protection: g.deletion_protection,
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

    pub async fn tag_group(
        &self,
        group: &str,
        tags: BTreeMap<String, String>,
    ) -> Result<(), ApiError> {
        self.change(MetaChange::Tag {
            group: group.into(),
            tags,
        })
        .await
    }

    pub async fn untag_group(&self, group: &str, keys: Vec<String>) -> Result<(), ApiError> {
        self.change(MetaChange::Untag {
            group: group.into(),
            keys,
        })
        .await
    }

    pub fn group_tags(&self, group: &str) -> Result<BTreeMap<String, String>, ApiError> {
        Ok(self
            .inner
            .state
            .read()
            .unwrap()
            .meta
            .group(group)?
            .tags
            .clone())
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
        use logwell_model::*;
        if events.is_empty() {
            return Err(ApiError::constraint(
                "[]",
                "logEvents",
                "have length greater than or equal to 1",
            ));
        }
        if events.len() > MAX_BATCH_EVENTS {
            return Err(ApiError::constraint(
                &format!("{} events", events.len()),
                "logEvents",
                "have length less than or equal to 10000",
            ));
        }
        let mut size = 0usize;
        for (i, e) in events.iter().enumerate() {
            if e.message.is_empty() {
                return Err(ApiError::constraint(
                    "",
                    &format!("logEvents.{}.member.message", i + 1),
                    "have length greater than or equal to 1",
                ));
            }
            if e.message.len() > MAX_EVENT_BYTES {
                return Err(ApiError::invalid(format!(
                    "Log event too large: {} bytes exceeds limit of {}",
                    e.message.len(),
                    MAX_EVENT_BYTES
                )));
            }
            size += e.message.len() + EVENT_OVERHEAD_BYTES;
        }
        if size > MAX_BATCH_BYTES {
            return Err(ApiError::invalid(format!(
                "Upload too large: {size} bytes exceeds limit of {MAX_BATCH_BYTES}"
            )));
        }
        if events.windows(2).any(|w| w[1].timestamp < w[0].timestamp) {
            return Err(ApiError::invalid(
                "Log events in a single PutLogEvents request must be in chronological order.",
            ));
        }

        self.check_accepting()?;
        let gate = self.inner.gate.clone().read_owned().await;
        self.check_accepting()?;
        let retention_cutoff = {
            let st = self.inner.state.read().unwrap();
            let g = st.meta.group(group)?;
            if !g.streams.contains_key(stream) {
                return Err(ApiError::stream_not_found());
            }
            if st.buffered_bytes() > self.inner.config.max_buffered_bytes {
                self.inner.flush_notify.notify_one();
                return Err(ApiError::new(ErrorKind::Throttling, "Rate exceeded"));
            }
            g.retention_cutoff(now)
        };

        // Events are in time order, so rejected ones form a prefix (too old) and a suffix (too new).
        let too_old_end = events.partition_point(|e| e.timestamp < now - MAX_AGE_MS);
        let expired_end =
            retention_cutoff.map_or(0, |c| events.partition_point(|e| e.timestamp < c));
        let too_new_start = events.partition_point(|e| e.timestamp <= now + MAX_FUTURE_MS);
        let first = too_old_end.max(expired_end).min(too_new_start);
        let accepted = &events[first..too_new_start];
        let rejected = RejectedLogEventsInfo {
            too_old_log_event_end_index: (too_old_end > 0).then_some(too_old_end as i64),
            expired_log_event_end_index: (expired_end > 0).then_some(expired_end as i64),
            too_new_log_event_start_index: (too_new_start < events.len())
                .then_some(too_new_start as i64),
        };
        let rejected = (rejected != RejectedLogEventsInfo::default()).then_some(rejected);
        if let (Some(a), Some(b)) = (accepted.first(), accepted.last()) {
            if b.timestamp - a.timestamp > MAX_BATCH_SPAN_MS {
                return Err(ApiError::invalid(
                    "The batch of log events in a single PutLogEvents request cannot span more than 24 hours.",
                ));
            }
        } else {
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
        let segments = st
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
        Ok(GroupSnapshot {
            name: group.to_string(),
            group_id: g.group_id,
            segments,
            buffered,
            tombstones: g.deleted_streams.clone(),
            cutoff: g.retention_cutoff(now_millis()),
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
        let mut reads = futures::stream::iter(wanted.into_iter().map(|seg| {
            let store = store.clone();
            let filter_streams = filter_streams.clone();
            async move {
                let bytes = store
                    .get(&ObjPath::from(seg.path.as_str()))
                    .await
                    .map_err(|e| unavailable("cannot read a segment", e))?;
                let filter = filter_streams.clone();
                let batches = tokio::task::spawn_blocking(move || {
                    segment::decode_pruned(bytes, lo, hi, |min, max| filter.may_overlap(min, max))
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

    // ---------------------------------------------------------------- flush

    fn needs_flush(&self) -> bool {
        // Metadata-only traffic still grows the WAL; a checkpoint truncates it.
        if self.inner.wal.disk_bytes() > WAL_CHECKPOINT_BYTES {
            return true;
        }
        let st = self.inner.state.read().unwrap();
        let age = self.inner.config.flush_age;
        let mut bytes = 0;
        for m in st.mem.values() {
            bytes += m.bytes();
            if m.oldest().is_some_and(|t| t.elapsed() >= age) || m.total_bytes() > m.bytes() {
                return true;
            }
        }
        bytes >= self.inner.config.flush_bytes
    }

    /// Writes everything buffered to segments and publishes them; then drops the covered WAL.
    pub async fn flush(&self) -> Result<(), ApiError> {
        self.check_writable()?;
        let _one = self.inner.flush_lock.lock().await;
        let (frozen, lsn, meta) = {
            let _gate = self.inner.gate.write().await;
            let lsn = self
                .inner
                .wal
                .rotate()
                .await
                .map_err(|e| unavailable("cannot rotate the write-ahead log", e))?;
            let mut st = self.inner.state.write().unwrap();
            let frozen: Vec<(u64, Vec<RecordBatch>)> = st
                .mem
                .iter_mut()
                .filter(|(_, m)| !m.is_empty())
                .map(|(id, m)| (*id, m.freeze()))
                .collect();
            (frozen, lsn, Arc::new(st.meta.clone()))
        };
        let mut written: Vec<SegmentMeta> = Vec::new();
        let chunks = frozen.iter().flat_map(|(gid, batches)| {
            let mut chunks: Vec<(u64, Vec<RecordBatch>)> = Vec::new();
            let mut size = 0;
            for b in batches {
                let bytes = b.get_array_memory_size();
                if chunks.is_empty() || size + bytes > MAX_SEGMENT_INPUT_BYTES {
                    chunks.push((*gid, Vec::new()));
                    size = 0;
                }
                size += bytes;
                chunks.last_mut().unwrap().1.push(b.clone());
            }
            chunks
        });
        for (gid, batches) in chunks {
            match self
                .write_segment(gid, &batches, 0, self.inner.config.flush_zstd_level)
                .await
            {
                Ok(Some(seg)) => written.push(seg),
                Ok(None) => {}
                Err(e) => {
                    // All or nothing: frozen data stays buffered and readable for the retry.
                    for seg in &written {
                        let _ = self
                            .inner
                            .store
                            .delete(&ObjPath::from(seg.path.as_str()))
                            .await;
                    }
                    return Err(e);
                }
            }
        }
        fail::fail_point!("flush::before_manifest", |_| Err(ApiError::unavailable(
            "injected fault: flush::before_manifest"
        )));
        {
            let mut st = self.inner.state.write().unwrap();
            for seg in written {
                let live = st.meta.groups.values().any(|g| g.group_id == seg.group_id);
                let seg = Arc::new(seg);
                if live {
                    st.segments.entry(seg.group_id).or_default().push(seg);
                } else {
                    st.pending_delete.push(seg);
                }
            }
            for (gid, _) in &frozen {
                if let Some(m) = st.mem.get_mut(gid) {
                    m.release_frozen();
                }
            }
            st.mem.retain(|_, m| !m.is_empty());
            st.checkpoint_meta = meta;
            st.checkpoint_lsn = lsn;
            st.manifest_dirty = true;
        }
        self.write_manifest().await?;
        fail::fail_point!("flush::before_wal_truncate", |_| Err(
            ApiError::unavailable("injected fault: flush::before_wal_truncate")
        ));
        self.inner
            .wal
            .remove_upto(lsn)
            .map_err(|e| unavailable("cannot truncate the write-ahead log", e))?;
        Ok(())
    }

    async fn write_segment(
        &self,
        group_id: u64,
        batches: &[RecordBatch],
        level: u32,
        zstd_level: i32,
    ) -> Result<Option<SegmentMeta>, ApiError> {
        let batches = batches.to_vec();
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        if rows == 0 {
            return Ok(None);
        }
        let row_group_rows = self.inner.config.row_group_rows;
        let config = &self.inner.config;
        let columns = if level > 0 || config.field_columns_at_flush {
            config.field_columns
        } else {
            0
        };
        let choice = logwell_fields::ColumnChoice {
            max_columns: columns,
            ..Default::default()
        };
        let (bytes, fields, stats) = tokio::task::spawn_blocking(move || {
            segment::encode(&batches, zstd_level, row_group_rows, &choice)
        })
        .await
        .map_err(|e| unavailable("segment encode", e))?
        .map_err(|e| unavailable("cannot encode a segment", e))?;
        let path = segment_path(group_id, stats.min_ts);
        let size = bytes.len() as u64;
        self.inner
            .store
            .put_durable(&ObjPath::from(path.as_str()), bytes)
            .await
            .map_err(|e| unavailable("cannot write a segment to the object store", e))?;
        Ok(Some(SegmentMeta {
            path,
            group_id,
            rows: stats.rows,
            bytes: size,
            raw_bytes: stats.raw_bytes,
            min_ts: stats.min_ts,
            max_ts: stats.max_ts,
            max_seq: stats.max_seq,
            streams: (stats.streams.len() <= MAX_LISTED_STREAMS).then_some(stats.streams),
            level,
            created_ms: now_millis(),
            fields,
        }))
    }

    /// Publishes the catalog, then deletes files that no published manifest lists any more.
    async fn write_manifest(&self) -> Result<(), ApiError> {
        if self.inner.awaiting_store.load(Ordering::Acquire) {
            return Err(ApiError::unavailable(
                "the object store has not answered since start-up; events stay in the write-ahead log until it does",
            ));
        }
        let mut version = self.inner.manifest_version.lock().await;
        self.check_writable()?;
        {
            // Publish only while surely the writer: a lease not renewed lately (the store was
            // slow or cut off) is renewed first, which fails if another node took the store.
            let mut lease = self.inner.lease.lock().await;
            if let Some(l) = lease.as_mut().filter(|l| l.age() > LEASE_TTL / 2) {
                if let Err(reason) = l.renew(&self.inner.store).await {
                    tracing::error!("{reason}");
                    lease.take();
                    self.fence(reason.clone());
                    return Err(ApiError::unavailable(reason));
                }
                if l.age() > LEASE_TTL / 2 {
                    return Err(ApiError::unavailable(
                        "cannot renew the object store's writer lease; publishing waits",
                    ));
                }
            }
        }
        let (manifest, pending) = {
            let mut st = self.inner.state.write().unwrap();
            st.manifest_dirty = false;
            let m = Manifest {
                writer: Some(self.inner.node.clone()),
                version: *version + 1,
                wal_lsn: st.checkpoint_lsn,
                metadata: (*st.checkpoint_meta).clone(),
                segments: st
                    .segments
                    .values()
                    .flatten()
                    .map(|s| (**s).clone())
                    .collect(),
            };
            (m, std::mem::take(&mut st.pending_delete))
        };
        let body = bytes::Bytes::from(serde_json::to_vec(&manifest).expect("manifest serialises"));
        let path = ObjPath::from(manifest_path(manifest.version));
        // Create-only: two writers can never both publish one version.
        let written = match self.inner.store.put_create(&path, body.clone()).await {
            Err(object_store::Error::AlreadyExists { .. }) => {
                // Ours, if a retry after a lost reply found its own first attempt.
                match self.inner.store.get(&path).await {
                    Ok(found) if found == body => Ok(()),
                    Err(e) => Err(unavailable("cannot check the catalog after a conflict", e)),
                    Ok(found)
                        if serde_json::from_slice::<Manifest>(&found).is_ok_and(|m| {
                            m.writer.as_deref() == Some(self.inner.node.as_str())
                        }) =>
                    {
                        // This node's own earlier attempt (its reply was lost): go on after it.
                        *version = manifest.version;
                        Err(ApiError::unavailable(format!(
                            "catalog version {} was this node's earlier attempt; publishing again",
                            manifest.version
                        )))
                    }
                    Ok(_) => {
                        let reason = format!(
                            "another writer published catalog version {} of {}; this node stopped writing to the store",
                            manifest.version, self.inner.store.description
                        );
                        tracing::error!("{reason}");
                        self.fence(reason.clone());
                        Err(ApiError::unavailable(reason))
                    }
                }
            }
            Err(e) => Err(unavailable("cannot write the catalog", e)),
            Ok(()) => Ok(()),
        };
        if let Err(e) = written {
            let mut st = self.inner.state.write().unwrap();
            st.pending_delete.extend(pending);
            st.manifest_dirty = true;
            return Err(e);
        }
        *version = manifest.version;
        if !self.inner.store.is_local() {
            // This node's copy, to start from if the store is unreachable at the next start.
            let path = self.inner.config.data_dir.join(CATALOG_CACHE);
            let copy = body.clone();
            let saved = tokio::task::spawn_blocking(move || write_file_durably(&path, &copy)).await;
            if !matches!(saved, Ok(Ok(()))) {
                tracing::warn!("cannot save the local copy of the catalog");
            }
        }
        fail::fail_point!("manifest::before_deletes", |_| Err(ApiError::unavailable(
            "injected fault: manifest::before_deletes"
        )));
        if manifest.version > 3 {
            let _ = self
                .inner
                .store
                .delete(&ObjPath::from(manifest_path(manifest.version - 3)))
                .await;
        }
        let mut keep = Vec::new();
        for seg in pending {
            // A reader still holding the segment keeps its file alive until the next manifest.
            if Arc::strong_count(&seg) > 1 {
                keep.push(seg);
            } else if self
                .inner
                .store
                .delete(&ObjPath::from(seg.path.as_str()))
                .await
                .is_err()
            {
                keep.push(seg);
            }
        }
        if !keep.is_empty() {
            let mut st = self.inner.state.write().unwrap();
            st.pending_delete.extend(keep);
        }
        Ok(())
    }

    /// Deletes segment files no manifest lists: leftovers of flushes cut short by a crash.
    async fn remove_orphans(&self) {
        let listed: std::collections::HashSet<String> = {
            let st = self.inner.state.read().unwrap();
            st.segments
                .values()
                .flatten()
                .map(|s| s.path.clone())
                .collect()
        };
        let prefix = ObjPath::from("segments");
        let mut list = self.inner.store.inner.list(Some(&prefix));
        let mut orphans = Vec::new();
        let grace = chrono::Duration::from_std(self.inner.config.orphan_grace)
            .unwrap_or(chrono::Duration::MAX);
        let cutoff = chrono::Utc::now() - grace;
        while let Some(Ok(item)) = list.next().await {
            // A young unlisted file may be a flush of a writer that has not published yet.
            if !listed.contains(item.location.as_ref()) && item.last_modified <= cutoff {
                orphans.push(item.location);
            }
        }
        drop(list);
        for p in orphans {
            tracing::info!(path = %p, "removing unlisted segment");
            let _ = self.inner.store.delete(&p).await;
        }
    }

    // ---------------------------------------------------------------- maintenance

    /// Runs retention and compaction once, and publishes the catalog if they changed it.
    pub async fn maintain(&self) -> Result<(), ApiError> {
        self.check_writable()?;
        self.enforce_retention();
        fail::fail_point!("maintain::before_compaction", |_| Err(
            ApiError::unavailable("injected fault: maintain::before_compaction")
        ));

        while self.compact_once().await? {}
        let dirty = {
            let st = self.inner.state.read().unwrap();
            st.manifest_dirty || !st.pending_delete.is_empty()
        };
        if dirty {
            self.write_manifest().await?;
        }
        Ok(())
    }

    /// Drops whole segments whose newest event is older than the group's retention.
    fn enforce_retention(&self) {
        let now = now_millis();
        let mut st = self.inner.state.write().unwrap();
        let cutoffs: Vec<(u64, i64)> = st
            .meta
            .groups
            .values()
            .filter_map(|g| g.retention_cutoff(now).map(|c| (g.group_id, c)))
            .collect();
        for (gid, cutoff) in cutoffs {
            let Some(segs) = st.segments.get_mut(&gid) else {
                continue;
            };
            let (expired, live): (Vec<_>, Vec<_>) = segs.drain(..).partition(|s| s.max_ts < cutoff);
            *segs = live;
            if !expired.is_empty() {
                tracing::info!(
                    group_id = gid,
                    segments = expired.len(),
                    "retention removed segments"
                );
                st.pending_delete.extend(expired);
                st.manifest_dirty = true;
            }
        }
    }

    /// Merges one run of small segments of a group into a bigger, harder-compressed one.
    /// Returns whether it merged anything.
    pub async fn compact_once(&self) -> Result<bool, ApiError> {
        let small = self.inner.config.compaction_small_bytes;
        let budget = self.inner.config.flush_bytes;
        let pick = {
            let st = self.inner.state.read().unwrap();
            let mut pick = None;
            for g in st.meta.groups.values() {
                let Some(segs) = st.segments.get(&g.group_id) else {
                    continue;
                };
                let cold_ms = self.inner.config.recompress_after.as_millis() as i64;
                let is_cold = |s: &SegmentMeta| now_millis() - s.created_ms >= cold_ms;
                // Mergeable: small on disk and far from a full segment's worth of raw bytes.
                let mut run: Vec<Arc<SegmentMeta>> = segs
                    .iter()
                    .filter(|s| s.bytes < small && s.raw_bytes < budget / 2)
                    .cloned()
                    .collect();
                run.sort_by_key(|s| s.min_ts);
                let mut total = 0;
                run.retain(|s| {
                    total += s.raw_bytes;
                    total <= budget
                });
                // Merge when many small files piled up, or when small files have gone cold: waiting
                // keeps rewrite amplification low for slow groups. Otherwise a flushed file that
                // went cold is rewritten once, alone, with the harder codec.
                let merge = run.len() >= 8 || (run.len() >= 2 && run.iter().any(|s| is_cold(s)));
                if !merge {
                    run = segs
                        .iter()
                        .filter(|s| s.level == 0 && is_cold(s))
                        .take(1)
                        .cloned()
                        .collect();
                }
                if !run.is_empty() {
                    pick = Some((
                        g.group_id,
                        run,
                        g.deleted_streams.clone(),
                        g.retention_cutoff(now_millis()),
                    ));
                    break;
                }
            }
            pick
        };
        let Some((gid, run, tombstones, cutoff)) = pick else {
            return Ok(false);
        };
        let mut batches = Vec::new();
        for seg in &run {
            let bytes = self
                .inner
                .store
                .get(&ObjPath::from(seg.path.as_str()))
                .await
                .map_err(|e| unavailable("cannot read a segment", e))?;
            let decoded =
                segment::decode(bytes).map_err(|e| unavailable("cannot decode a segment", e))?;
            for b in decoded {
                batches.push(drop_dead_rows(&b, &tombstones, cutoff));
            }
        }
        let level = run.iter().map(|s| s.level).max().unwrap_or(0) + 1;
        let merged = self
            .write_segment(
                gid,
                &batches,
                level,
                self.inner.config.compaction_zstd_level,
            )
            .await?;
        fail::fail_point!("compact::before_swap", |_| Err(ApiError::unavailable(
            "injected fault: compact::before_swap"
        )));
        let mut st = self.inner.state.write().unwrap();
        let still_there = st
            .segments
            .get(&gid)
            .is_some_and(|segs| run.iter().all(|r| segs.iter().any(|s| s.path == r.path)));
        if !still_there {
            // Retention or a delete got there first; the merged file was never listed.
            if let Some(m) = merged {
                st.pending_delete.push(Arc::new(m));
            }
            return Ok(false);
        }
        let segs = st.segments.get_mut(&gid).unwrap();
        segs.retain(|s| !run.iter().any(|r| r.path == s.path));
        if let Some(m) = merged {
            segs.push(Arc::new(m));
        }
        st.pending_delete.extend(run);
        st.manifest_dirty = true;
        Ok(true)
    }

    /// Sizes of what is stored.
    pub fn stats(&self) -> StorageStats {
        let st = self.inner.state.read().unwrap();
        let segs = st.segments.values().flatten();
        let mut s = StorageStats::default();
        for seg in segs {
            s.segments += 1;
            s.segment_bytes += seg.bytes;
            s.segment_rows += seg.rows;
            s.raw_bytes += seg.raw_bytes;
        }
        s.buffered_bytes = st.buffered_bytes();
        drop(st);
        s.wal_bytes = self.inner.wal.disk_bytes();
        s
    }

    /// Paths of all live segments (for tools and tests).
    pub fn segment_paths(&self) -> Vec<String> {
        let st = self.inner.state.read().unwrap();
        st.segments
            .values()
            .flatten()
            .map(|s| s.path.clone())
            .collect()
    }
}

/// One group as a query sees it at one moment; see [`Engine::snapshot`].
#[derive(Debug, Clone)]
pub struct GroupSnapshot {
    pub name: String,
    pub group_id: u64,
    pub segments: Vec<Arc<SegmentMeta>>,
    /// Buffered (not yet flushed) batches, in the segment schema.
    pub buffered: Vec<RecordBatch>,
    /// Deleted streams: rows of stream `s` with a seq below `tombstones[s]` are gone.
    pub tombstones: BTreeMap<String, i64>,
    /// Events older than this (epoch ms) are past retention.
    pub cutoff: Option<i64>,
}

/// This node's copy of the newest catalog it published (object stores only).
const CATALOG_CACHE: &str = "catalog-copy.json";

/// Replaces a local file whole: a staging file, fsynced, renamed over it, the directory fsynced.
fn write_file_durably(path: &std::path::Path, body: &[u8]) -> std::io::Result<()> {
    let staging = path.with_extension("staging");
    let mut f = std::fs::File::create(&staging)?;
    std::io::Write::write_all(&mut f, body)?;
    f.sync_all()?;
    std::fs::rename(&staging, path)?;
    std::fs::File::open(path.parent().expect("a file has a directory"))?.sync_all()
}

/// A checkpoint runs when the WAL on disk grows past this, whatever is buffered.
const WAL_CHECKPOINT_BYTES: u64 = 256 << 20;

/// Most bytes of buffered batches written into one segment (Arrow string offsets are 32-bit).
const MAX_SEGMENT_INPUT_BYTES: usize = 1 << 30;

/// `segments/g<id>/<yyyy>/<mm>/<dd>/<hhmmss>-<uuid>.parquet`, dated by the first event.
fn segment_path(group_id: u64, min_ts: i64) -> String {
    let secs = min_ts.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "segments/g{group_id:08}/{y:04}/{m:02}/{d:02}/{:02}{:02}{:02}-{}.parquet",
        tod / 3600,
        tod % 3600 / 60,
        tod % 60,
        uuid::Uuid::new_v4().simple()
    )
}

/// Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Removes rows of deleted streams and rows past retention.
fn drop_dead_rows(
    b: &RecordBatch,
    tombstones: &BTreeMap<String, i64>,
    cutoff: Option<i64>,
) -> RecordBatch {
    if tombstones.is_empty() && cutoff.is_none() {
        return b.clone();
    }
    let streams = b.column(0).as_dictionary::<Int32Type>();
    let names = streams.values().as_string::<i32>();
    let floors: Vec<i64> = (0..names.len())
        .map(|i| tombstones.get(names.value(i)).copied().unwrap_or(i64::MIN))
        .collect();
    let ts = b.column(1).as_primitive::<Int64Type>();
    let seq = b.column(3).as_primitive::<Int64Type>();
    let cutoff = cutoff.unwrap_or(i64::MIN);
    let keep: BooleanArray = (0..b.num_rows())
        .map(|i| {
            Some(seq.value(i) >= floors[streams.keys().value(i) as usize] && ts.value(i) >= cutoff)
        })
        .collect();
    arrow::compute::filter_record_batch(b, &keep).expect("filter matches batch length")
}

/// The row-level part of a scan.
struct RowFilter<'a> {
    scan: &'a Scan,
    lo: i64,
    hi: i64,
    tombstones: &'a BTreeMap<String, i64>,
}

impl RowFilter<'_> {
    fn select(&self, b: &RecordBatch, sel: &mut Selector) {
        let streams = b.column(0).as_dictionary::<Int32Type>();
        let names = streams.values().as_string::<i32>();
        // Per dictionary entry: the lowest visible seq, or None if the stream is not wanted.
        let floors: Vec<Option<i64>> = (0..names.len())
            .map(|i| {
                let n = names.value(i);
                self.scan
                    .streams
                    .accepts(n)
                    .then(|| self.tombstones.get(n).copied().unwrap_or(i64::MIN))
            })
            .collect();
        if floors.iter().all(|f| f.is_none()) {
            return;
        }
        let keys = streams.keys();
        let ts = b.column(1).as_primitive::<Int64Type>();
        let ing = b.column(2).as_primitive::<Int64Type>();
        let seq = b.column(3).as_primitive::<Int64Type>();
        let msg = b.column(4).as_string::<i32>();
        for i in 0..b.num_rows() {
            let t = ts.value(i);
            if t < self.lo || t > self.hi {
                continue;
            }
            let Some(floor) = floors[keys.value(i) as usize] else {
                continue;
            };
            let s = seq.value(i);
            if s < floor {
                continue;
            }
            let key = (t, s);
            if self.scan.after.is_some_and(|a| key <= a)
                || self.scan.before.is_some_and(|b| key >= b)
            {
                continue;
            }
            if !sel.would_take(key) {
                continue;
            }
            let m = msg.value(i);
            if let Some(p) = &self.scan.pattern {
                if !p.matches(m) {
                    continue;
                }
            }
            sel.push(EventRow {
                stream: names.value(keys.value(i) as usize).to_string(),
                timestamp: t,
                ingestion_time: ing.value(i),
                seq: s,
                message: m.to_string(),
            });
        }
    }
}

/// Keeps the first (or last) `limit` rows by key.
struct Selector {
    limit: usize,
    newest_first: bool,
    heap: BinaryHeap<HeapRow>,
}

/// A kept row, ordered by its key oriented so that the heap's top is the row to drop first.
struct HeapRow(EventKey, EventRow);
impl PartialEq for HeapRow {
    fn eq(&self, o: &Self) -> bool {
        self.0 == o.0
    }
}
impl Eq for HeapRow {}
impl PartialOrd for HeapRow {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for HeapRow {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.0.cmp(&o.0)
    }
}

impl Selector {
    fn new(limit: usize, newest_first: bool) -> Self {
        Selector {
            limit,
            newest_first,
            heap: BinaryHeap::new(),
        }
    }
    fn oriented(&self, key: EventKey) -> EventKey {
        if self.newest_first {
            (!key.0, !key.1)
        } else {
            key
        }
    }
    fn is_full(&self) -> bool {
        self.heap.len() >= self.limit
    }
    /// The key of the row that would be dropped next.
    fn worst(&self) -> Option<EventKey> {
        self.heap.peek().map(|r| r.1.key())
    }
    fn would_take(&self, key: EventKey) -> bool {
        !self.is_full() || self.heap.peek().is_some_and(|w| self.oriented(key) < w.0)
    }
    fn push(&mut self, row: EventRow) {
        self.heap.push(HeapRow(self.oriented(row.key()), row));
        if self.heap.len() > self.limit {
            self.heap.pop();
        }
    }
    /// Oldest first, or newest first when `newest_first`.
    fn finish(self) -> Vec<EventRow> {
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|r| r.1)
            .collect()
    }
}

#[cfg(test)]
mod tests {
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
