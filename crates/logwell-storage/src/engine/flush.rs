//! Flush, the catalog publication, orphan removal, retention and compaction.

use super::*;

impl Engine {
    // ---------------------------------------------------------------- flush

    pub(super) fn needs_flush(&self) -> bool {
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
        let started = std::time::Instant::now();
        let result = self.flush_now().await;
        if result.is_ok() {
            use std::sync::atomic::Ordering::Relaxed;
            self.inner.flushes.fetch_add(1, Relaxed);
            self.inner
                .flush_nanos
                .fetch_add(started.elapsed().as_nanos() as u64, Relaxed);
        }
        result
    }

    async fn flush_now(&self) -> Result<(), ApiError> {
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
            let frozen: Vec<(u64, Vec<crate::Buffered>)> = st
                .mem
                .iter_mut()
                .filter(|(_, m)| !m.is_empty())
                .map(|(id, m)| (*id, m.freeze()))
                .collect();
            (frozen, lsn, Arc::new(st.meta.clone()))
        };
        let mut written: Vec<SegmentMeta> = Vec::new();
        let chunks = frozen.iter().flat_map(|(gid, batches)| {
            let mut chunks: Vec<(u64, Vec<crate::Buffered>)> = Vec::new();
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

    /// Writes `batches` as one segment of `level`. Field columns: at a flush, those queries
    /// extracted from most of the buffered rows (see [`crate::buffered::kept_fields`]); and
    /// those a [`logwell_fields::ColumnChoice`] picks when compacting, when flushing with
    /// `field_columns_at_flush`, or when the group is being queried (see `fields_queried`).
    pub(super) async fn write_segment(
        &self,
        group_id: u64,
        buffered: &[crate::Buffered],
        level: u32,
        zstd_level: i32,
    ) -> Result<Option<SegmentMeta>, ApiError> {
        let buffered = buffered.to_vec();
        let batches: Vec<RecordBatch> = buffered.iter().map(|b| b.batch.clone()).collect();
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        if rows == 0 {
            return Ok(None);
        }
        let row_group_rows = self.inner.config.row_group_rows;
        let config = &self.inner.config;
        let always = level > 0
            || config.field_columns_at_flush
            || self.being_queried(&self.inner.state.read().unwrap(), group_id);
        let max_columns = config.field_columns;
        // Splitting messages costs CPU that only compaction spends: flushes stay cheap.
        let templates = match level {
            0 => crate::config::MessageTemplates::Off,
            _ => config.message_templates,
        };
        // A group deleted since its events were frozen gets no segment (its data is gone): one
        // written now could not know its key, and must not be written plain.
        let Some((key, held_key)) = self.flush_key(group_id)? else {
            return Ok(None);
        };
        let encrypted = key.is_some();
        let segment::Encoded {
            file: bytes,
            fields,
            numeric,
            templated,
            stats,
        } = tokio::task::spawn_blocking(move || {
            let given = match max_columns {
                0 => Vec::new(),
                _ => crate::buffered::kept_fields(&buffered),
            };
            // A group whose fields were queried is being looked into: its flush writes the
            // frequent fields as columns too (those not kept are extracted), so the next
            // questions, on other fields, read columns as well. A group nobody queried costs
            // nothing more to flush.
            let choice = logwell_fields::ColumnChoice {
                max_columns: match always || !given.is_empty() {
                    true => max_columns,
                    false => 0,
                },
                ..Default::default()
            };
            segment::encode(
                &batches,
                zstd_level,
                row_group_rows,
                &choice,
                key.as_ref(),
                &given,
                templates,
            )
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
            min_seq: Some(stats.min_seq),
            max_seq: stats.max_seq,
            streams: (stats.streams.len() <= MAX_LISTED_STREAMS).then_some(stats.streams),
            level,
            created_ms: now_millis(),
            fields,
            numeric,
            templated,
            encrypted,
            held_key,
        }))
    }

    /// Publishes the catalog, then deletes files that no published manifest lists any more.
    pub(super) async fn write_manifest(&self) -> Result<(), ApiError> {
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
        let body = bytes::Bytes::from(manifest.to_stored());
        let path = ObjPath::from(manifest_path(manifest.version));
        // Create-only: two writers can never both publish one version.
        let written = match self.inner.store.put_create(&path, body.clone()).await {
            Err(object_store::Error::AlreadyExists { .. }) => {
                // Ours, if a retry after a lost reply found its own first attempt.
                match self.inner.store.get(&path).await {
                    Ok(found) if found == body => Ok(()),
                    Err(e) => Err(unavailable("cannot check the catalog after a conflict", e)),
                    Ok(found)
                        if Manifest::from_stored(&found).is_ok_and(|m| {
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
    pub(super) async fn remove_orphans(&self) {
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
        // Plain manifests an earlier version wrote, once three newer ones exist (manifests are
        // kept three deep, and those are deleted by their new names).
        let newest = *self.inner.manifest_version.lock().await;
        let mut list = self
            .inner
            .store
            .inner
            .list(Some(&ObjPath::from(MANIFEST_DIR)));
        let mut plain = Vec::new();
        while let Some(Ok(item)) = list.next().await {
            let path = item.location.as_ref();
            if is_plain_manifest(path)
                && parse_manifest_version(path).is_some_and(|v| v + 3 <= newest)
            {
                plain.push(item.location);
            }
        }
        drop(list);
        for p in plain {
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

    /// Drops whole segments whose newest event is older than the group's retention, except
    /// those holding events a subscription filter has not delivered, which wait up to
    /// `subscription_hold` longer.
    pub(super) fn enforce_retention(&self) {
        let now = now_millis();
        let hold = self.inner.config.subscription_hold.as_millis() as i64;
        let mut st = self.inner.state.write().unwrap();
        let expiries: Vec<(u64, String, Expiry)> = st
            .meta
            .groups
            .iter()
            .filter_map(|(name, g)| g.expiry(now, hold).map(|e| (g.group_id, name.clone(), e)))
            .collect();
        for (gid, group, expiry) in expiries {
            let Some(segs) = st.segments.get_mut(&gid) else {
                continue;
            };
            let (mut expired, mut live) = (Vec::new(), Vec::new());
            let (mut lost, mut held) = (0u64, 0usize);
            for s in segs.drain(..) {
                let (gone, undelivered) = expiry.segment(&s);
                if gone {
                    if undelivered {
                        lost += s.rows;
                    }
                    expired.push(s);
                } else {
                    if s.max_ts < expiry.cutoff {
                        held += 1;
                    }
                    live.push(s);
                }
            }
            *segs = live;
            if held > 0 {
                tracing::warn!(
                    group,
                    segments = held,
                    "a subscription filter lags behind retention: segments past retention are kept until it delivers them (up to storage.subscription_hold)"
                );
            }
            if lost > 0 {
                tracing::warn!(
                    group,
                    events = lost,
                    "a subscription filter lags beyond storage.subscription_hold: events it had not delivered were removed by retention"
                );
                self.inner
                    .undelivered_expired
                    .fetch_add(lost, Ordering::Relaxed);
            }
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

    /// Notes that a query read JSON fields of `group`: the group is being looked into, so (with
    /// `columns_when_queried`) for `recompress_after` its flushes write field columns and its
    /// flushed files without them are rewritten with them at once (maintenance is woken now,
    /// not at its next tick), instead of once cold. The next questions of an investigation
    /// then read columns; a group nobody queries flushes and compacts as before.
    pub fn fields_queried(&self, group: &str) {
        if !self.inner.config.columns_when_queried {
            return;
        }
        let waiting = {
            let st = self.inner.state.read().unwrap();
            let Some(g) = st.meta.groups.get(group) else {
                return;
            };
            let gid = g.group_id;
            let mut queried = self.inner.fields_queried.lock().unwrap();
            let window = self.inner.config.recompress_after;
            queried.retain(|_, at| at.elapsed() < window);
            queried.insert(gid, Instant::now());
            st.segments
                .get(&gid)
                .is_some_and(|segs| segs.iter().any(|s| s.level == 0 && lacks_columns(s)))
        };
        if waiting {
            self.inner.maintain_notify.notify_one();
        }
    }

    /// Whether queries extracted fields of the group within `recompress_after`, or its
    /// buffered batches keep fields queries read.
    fn being_queried(&self, st: &State, group_id: u64) -> bool {
        let window = self.inner.config.recompress_after;
        st.mem
            .get(&group_id)
            .is_some_and(|m| m.kept_field_bytes() > 0)
            || self
                .inner
                .fields_queried
                .lock()
                .unwrap()
                .get(&group_id)
                .is_some_and(|at| at.elapsed() < window)
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
                // A group whose key cannot be used now (its KMS key disabled) waits; the others
                // are compacted meanwhile.
                if self.unwrap_key(g.data_key.as_deref()).is_err() {
                    continue;
                }
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
                // A segment written under a held key goes under the group's key again first.
                let held: Vec<Arc<SegmentMeta>> = segs
                    .iter()
                    .filter(|s| s.held_key.is_some())
                    .take(1)
                    .cloned()
                    .collect();
                // A group being looked into (its fields queried) has its flushed files without
                // field columns rewritten now rather than once cold (the same one rewrite,
                // sooner), so its older minutes are read from columns too.
                let queried = self.being_queried(&st, g.group_id);
                let due = |s: &SegmentMeta| is_cold(s) || (queried && lacks_columns(s));
                if !held.is_empty() {
                    run = held;
                } else if !merge {
                    run = segs
                        .iter()
                        .filter(|s| s.level == 0 && due(s))
                        .take(1)
                        .cloned()
                        .collect();
                }
                if !run.is_empty() {
                    pick = Some((
                        g.group_id,
                        run,
                        g.deleted_streams.clone(),
                        g.expiry(
                            now_millis(),
                            self.inner.config.subscription_hold.as_millis() as i64,
                        ),
                    ));
                    break;
                }
            }
            pick
        };
        let Some((gid, run, tombstones, expiry)) = pick else {
            return Ok(false);
        };
        let mut batches = Vec::new();
        for seg in &run {
            for b in self.read_segment(seg).await? {
                batches.push(crate::Buffered::plain(drop_dead_rows(
                    &b,
                    &tombstones,
                    expiry,
                )));
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
        s.buffered_field_bytes = st.mem.values().map(|m| m.kept_field_bytes()).sum();
        drop(st);
        s.wal_bytes = self.inner.wal.disk_bytes();
        use std::sync::atomic::Ordering::Relaxed;
        let wal = self.inner.wal.stats();
        s.wal_commits = wal.commits.load(Relaxed);
        s.wal_commit_seconds = wal.commit_nanos.load(Relaxed) as f64 / 1e9;
        s.wal_written_bytes = wal.bytes.load(Relaxed);
        s.flushes = self.inner.flushes.load(Relaxed);
        s.undelivered_expired = self.inner.undelivered_expired.load(Relaxed);
        s.flush_seconds = self.inner.flush_nanos.load(Relaxed) as f64 / 1e9;
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

/// A checkpoint runs when the WAL on disk grows past this, whatever is buffered.
pub(super) const WAL_CHECKPOINT_BYTES: u64 = 256 << 20;

/// Most bytes of buffered batches written into one segment (Arrow string offsets are 32-bit).
pub(super) const MAX_SEGMENT_INPUT_BYTES: usize = 1 << 30;

/// `segments/g<id>/<yyyy>/<mm>/<dd>/<hhmmss>-<uuid>.parquet`, dated by the first event.
pub(super) fn segment_path(group_id: u64, min_ts: i64) -> String {
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
pub(super) fn civil_from_days(z: i64) -> (i64, u32, u32) {
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

/// Removes rows of deleted streams and rows retention removes.
pub(super) fn drop_dead_rows(
    b: &RecordBatch,
    tombstones: &BTreeMap<String, i64>,
    expiry: Option<Expiry>,
) -> RecordBatch {
    if tombstones.is_empty() && expiry.is_none() {
        return b.clone();
    }
    let streams = b.column(0).as_dictionary::<Int32Type>();
    let names = streams.values().as_string::<i32>();
    let floors: Vec<i64> = (0..names.len())
        .map(|i| tombstones.get(names.value(i)).copied().unwrap_or(i64::MIN))
        .collect();
    let ts = b.column(1).as_primitive::<Int64Type>();
    let seq = b.column(3).as_primitive::<Int64Type>();
    let keep: BooleanArray = (0..b.num_rows())
        .map(|i| {
            let s = seq.value(i);
            Some(
                s >= floors[streams.keys().value(i) as usize]
                    && !expiry.is_some_and(|e| e.expired(ts.value(i), s)),
            )
        })
        .collect();
    arrow::compute::filter_record_batch(b, &keep).expect("filter matches batch length")
}

/// A flushed file written without field columns: what a queried group has rewritten at once.
fn lacks_columns(s: &SegmentMeta) -> bool {
    s.fields.is_empty()
}
