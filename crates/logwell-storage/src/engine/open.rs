//! Opening a store: the catalog to start from (with its fallbacks), the WAL replay, the locks,
//! and the lease taken late when the object store was down at start-up.

use super::*;

/// The manifests in the store, newest first.
pub(super) async fn manifest_versions(
    store: &Store,
) -> Result<Vec<(u64, ObjPath)>, object_store::Error> {
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
pub(super) async fn load_manifest(
    store: &Store,
    wal_dir: &std::path::Path,
) -> Result<(Manifest, u64), OpenError> {
    let versions = manifest_versions(store).await?;
    let Some((newest, path)) = versions.first().cloned() else {
        return Ok((Manifest::default(), 0));
    };
    let read = |path: ObjPath| async move {
        let bytes = store.get(&path).await?;
        Ok::<_, OpenError>(Manifest::from_stored(&bytes))
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
    /// The KMS that wraps the data keys of groups with a `kmsKeyId` (none: such groups cannot
    /// be made).
    pub key_service: Option<crate::kms::KeyServiceRef>,
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
        let keyring_path = config.keyring_path();
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
                    .and_then(|b| Manifest::from_stored(&b).ok());
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
                .and_then(|b| Manifest::from_stored(&b).ok())
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
        // The keyring is made on first start with encryption on, and read whenever it exists
        // (groups encrypted earlier stay readable with encryption turned off). It is opened
        // only now, past every other reason to refuse, so a refused start leaves none behind.
        let keyring = if config.encrypt || keyring_path.exists() {
            Some(RwLock::new(
                crate::keys::Keyring::open_or_create(&keyring_path)
                    .map_err(|e| OpenError::Catalog(e.to_string()))?,
            ))
        } else {
            None
        };
        // A keyring made just now cannot open what an earlier one encrypted: refuse rather
        // than start with groups nobody can read.
        if keyring.as_ref().is_some_and(|k| k.read().unwrap().created)
            && manifest
                .metadata
                .groups
                .values()
                .any(|g| g.data_key.is_some())
        {
            let path = keyring_path.clone();
            let _ = std::fs::remove_file(&path);
            return Err(OpenError::Catalog(format!(
                "the catalog holds encrypted log groups but {} is missing: restore the keyring the data was written with",
                path.display()
            )));
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
            applied_lsn: manifest.wal_lsn,
            batch_rows: config.memtable_batch_rows.max(1),
        };
        let next_lsn = replayed.next_lsn.max(manifest.wal_lsn + 1);
        let replayed_count = replayed.records.len();
        // Sealed frames open with the keyring's keys; frames written plain (before encryption,
        // or with it off) read as they are.
        let cipher = keyring
            .as_ref()
            .map(|k| Arc::new(k.read().unwrap().wal_cipher()));
        let c_created = keyring.as_ref().is_some_and(|k| k.read().unwrap().created);
        for (lsn, payload) in replayed.records {
            let payload = if crate::keys::WalCipher::is_sealed(&payload) {
                let c = cipher.as_ref().ok_or_else(|| {
                    OpenError::Catalog(format!(
                        "WAL record {lsn} is encrypted and the data directory has no keyring"
                    ))
                })?;
                c.open(lsn, &payload).map_err(|e| {
                    // A keyring made by this start cannot be the one the WAL was sealed with.
                    if c_created {
                        let _ = std::fs::remove_file(&keyring_path);
                    }
                    OpenError::Catalog(format!(
                        "WAL record {lsn} cannot be decrypted ({e}); is {} the keyring it was written with?",
                        keyring_path.display()
                    ))
                })?
            } else {
                payload
            };
            if state.apply_record(lsn, &payload).is_none() {
                return Err(OpenError::Catalog(format!(
                    "WAL record {lsn} has an unknown format"
                )));
            }
        }
        // Every encrypted group's data key must open with this keyring: a wrong or stale
        // keyring (a copy from before a rotation, another node's) is refused at start, not
        // found out by every flush failing.
        for (name, g) in &state.meta.groups {
            let Some(wrapped) = g.data_key.as_ref().filter(|w| !crate::kms::is_kms(w)) else {
                continue;
            };
            let opened = match &keyring {
                Some(k) => k
                    .read()
                    .unwrap()
                    .unwrap(wrapped)
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                None => Err("there is no keyring".to_string()),
            };
            if let Err(e) = opened {
                if c_created {
                    let _ = std::fs::remove_file(&keyring_path);
                }
                return Err(OpenError::Catalog(format!(
                    "log group {name} is encrypted and its data key does not open with {} ({e}): restore the keyring the data was written with",
                    keyring_path.display()
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
        let tap = Arc::new(Tap::default());
        let publisher = tap.clone();
        let sealer = if config.encrypt { cipher } else { None };
        let wal = Wal::open_sealed(
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
            // Live consumers see a batch once it is durable, applied and acknowledged, in LSN
            // order (this thread applies every record).
            Some(Box::new(move |lsn, payload| {
                if publisher.consumers() > 0 {
                    if let Some(Record::Events(b)) = record::decode(payload) {
                        publisher.publish(lsn, &b);
                    }
                }
            })),
            sealer,
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
            keyring,
            kms: options
                .key_service
                .clone()
                .map(|k| crate::kms::KmsKeys::new(k.service, k.max_age)),
            tap,
            flushes: Default::default(),
            undelivered_expired: Default::default(),
            flush_nanos: Default::default(),
            flush_lock: tokio::sync::Mutex::new(()),
            manifest_version: tokio::sync::Mutex::new(newest_version.max(manifest.version)),
            flush_notify: Notify::new(),
            maintain_notify: Notify::new(),
            fields_queried: Default::default(),
            shutdown,
            tasks: Mutex::new(Vec::new()),
        });
        let engine = Engine { inner };
        engine.ensure_data_keys().await;
        engine.refresh_kms_keys().await;
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
    pub(super) async fn take_late_lease(&self) {
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
}

/// This node's copy of the newest catalog it published (object stores only).
pub(super) const CATALOG_CACHE: &str = "catalog-copy.json";

/// Replaces a local file whole: a staging file, fsynced, renamed over it, the directory fsynced.
pub(super) fn write_file_durably(path: &std::path::Path, body: &[u8]) -> std::io::Result<()> {
    let staging = path.with_extension("staging");
    let mut f = std::fs::File::create(&staging)?;
    std::io::Write::write_all(&mut f, body)?;
    f.sync_all()?;
    std::fs::rename(&staging, path)?;
    std::fs::File::open(path.parent().expect("a file has a directory"))?.sync_all()
}
