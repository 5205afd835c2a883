//! One writer per store: an exclusive lock on the data directory, and a lease on the object store.
//!
//! The data directory lock (`<data_dir>/LOCK`, an OS file lock held for the process lifetime)
//! keeps a second process off the same WAL and local store. The lease (`catalog/writer.json` in
//! the object store) keeps a second node off the same bucket prefix: its holder renews it every
//! few seconds, and a node finds it fresh and held by another node refuses to start. Manifests
//! are written create-only, so even a writer that missed losing its lease can never publish over
//! another's catalog.

use crate::store::Store;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::Path;
use std::time::Duration;

/// Held while the engine runs; dropping it unlocks the directory.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    /// Takes the lock or says who holds it.
    pub fn acquire(data_dir: &Path) -> Result<DataDirLock, String> {
        let path = data_dir.join("LOCK");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                return Err(format!(
                    "data directory {} is in use by another logwell process (pid {}); refusing to start",
                    data_dir.display(),
                    holder.trim().parse::<u32>().map_or("unknown".into(), |p| p.to_string())
                ));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(format!("cannot lock {}: {e}", path.display()))
            }
        }
        let pid = std::process::id().to_string();
        let _ = file
            .set_len(0)
            .and_then(|_| file.rewind())
            .and_then(|_| file.write_all(pid.as_bytes()));
        Ok(DataDirLock { _file: file })
    }
}

/// This node's identity, kept in the data directory so a restarted node knows its own lease.
pub fn node_id(data_dir: &Path) -> std::io::Result<String> {
    let path = data_dir.join("node-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_string()),
        _ => {
            let id = uuid::Uuid::new_v4().simple().to_string();
            std::fs::write(&path, &id)?;
            File::open(&path)?.sync_all()?;
            File::open(data_dir)?.sync_all()?;
            Ok(id)
        }
    }
}

/// How often the holder renews its lease.
pub const LEASE_RENEW: Duration = Duration::from_secs(5);
/// A lease not renewed for this long belongs to a node that is gone.
pub const LEASE_TTL: Duration = Duration::from_secs(30);

const LEASE_PATH: &str = "catalog/writer.json";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LeaseBody {
    pub node: String,
    pub pid: u32,
    pub host: String,
    /// Epoch ms of the last renewal; 0 once released by a clean shutdown.
    pub renewed_ms: i64,
}

/// Why a lease could not be taken.
#[derive(Debug)]
pub enum LeaseError {
    /// Another node holds it, or took it at the same moment.
    InUse(String),
    /// The object store did not answer.
    Unreachable(String),
}

/// A held lease: what to renew it with.
#[derive(Debug, Clone)]
pub struct Lease {
    body: LeaseBody,
    version: UpdateVersion,
    /// When the last successful write of the lease was sent.
    renewed_at: std::time::Instant,
}

fn host() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown host".into())
}

fn conflict(e: &object_store::Error) -> bool {
    matches!(
        e,
        object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }
    )
}

impl Lease {
    /// Takes the store's writer lease for `node`, unless another node holds a fresh one.
    /// Ok(None) on a store without conditional updates (the local store, guarded by the
    /// data directory lock instead).
    pub async fn acquire(store: &Store, node: &str) -> Result<Option<Lease>, LeaseError> {
        if store.is_local() {
            return Ok(None);
        }
        let path = ObjPath::from(LEASE_PATH);
        let current = match store.inner.get(&path).await {
            Ok(r) => {
                let meta = r.meta.clone();
                let bytes = r
                    .bytes()
                    .await
                    .map_err(|e| LeaseError::Unreachable(e.to_string()))?;
                let body: Option<LeaseBody> = serde_json::from_slice(&bytes).ok();
                Some((
                    body,
                    UpdateVersion {
                        e_tag: meta.e_tag,
                        version: meta.version,
                    },
                ))
            }
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => {
                return Err(LeaseError::Unreachable(format!(
                    "cannot read the writer lease: {e}"
                )))
            }
        };
        if let Some((Some(b), _)) = &current {
            let age = logwell_model::now_millis() - b.renewed_ms;
            if b.node != node && b.renewed_ms > 0 && age < LEASE_TTL.as_millis() as i64 {
                return Err(LeaseError::InUse(format!(
                    "the object store {} is in use by another logwell (node {}, pid {} on {}; lease renewed {:.1} s ago); refusing to start. If that node is gone, start again once its lease is {} s old",
                    store.description, b.node, b.pid, b.host, age.max(0) as f64 / 1000.0, LEASE_TTL.as_secs()
                )));
            }
        }
        let mode = match current {
            Some((_, v)) => PutMode::Update(v),
            None => PutMode::Create,
        };
        let mut lease = Lease {
            body: LeaseBody {
                node: node.to_string(),
                pid: std::process::id(),
                host: host(),
                renewed_ms: 0,
            },
            version: UpdateVersion {
                e_tag: None,
                version: None,
            },
            renewed_at: std::time::Instant::now(),
        };
        lease
            .write(store, mode, logwell_model::now_millis())
            .await
            .map_err(|e| {
            if conflict(&e) {
                LeaseError::InUse("another logwell took the object store's writer lease at the same moment; refusing to start".to_string())
            } else {
                LeaseError::Unreachable(format!("cannot take the writer lease: {e}"))
            }
        })?;
        Ok(Some(lease))
    }

    /// Writes the lease stamped `renewed_ms` (0: released).
    async fn write(
        &mut self,
        store: &Store,
        mode: PutMode,
        renewed_ms: i64,
    ) -> Result<(), object_store::Error> {
        let sent = std::time::Instant::now();
        let mut body = self.body.clone();
        body.renewed_ms = renewed_ms;
        let bytes = serde_json::to_vec(&body).expect("lease serialises");
        let r = store
            .inner
            .put_opts(
                &ObjPath::from(LEASE_PATH),
                PutPayload::from(bytes),
                PutOptions::from(mode),
            )
            .await?;
        self.body = body;
        self.renewed_at = sent;
        self.version = UpdateVersion {
            e_tag: r.e_tag,
            version: r.version,
        };
        Ok(())
    }

    /// How long ago the last successful renewal was sent.
    pub fn age(&self) -> Duration {
        self.renewed_at.elapsed()
    }

    /// Renews the lease; Err(reason) once another node has taken it.
    pub async fn renew(&mut self, store: &Store) -> Result<(), String> {
        let mode = PutMode::Update(self.version.clone());
        let stamp = logwell_model::now_millis();
        match self.write(store, mode, stamp).await {
            Ok(()) => Ok(()),
            Err(e) if conflict(&e) => {
                // A retry whose first attempt went through conflicts with itself: the lease
                // then holds exactly what this node wrote.
                if let Ok(r) = store.inner.get(&ObjPath::from(LEASE_PATH)).await {
                    let meta = r.meta.clone();
                    if let Ok(b) = r.bytes().await {
                        let mine = LeaseBody {
                            renewed_ms: stamp,
                            ..self.body.clone()
                        };
                        if serde_json::from_slice::<LeaseBody>(&b).ok() == Some(mine.clone()) {
                            self.body = mine;
                            self.version = UpdateVersion {
                                e_tag: meta.e_tag,
                                version: meta.version,
                            };
                            return Ok(());
                        }
                    }
                }
                Err(format!(
                    "another logwell took over the object store {}; this node stopped writing to it",
                    store.description
                ))
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot renew the writer lease; will retry");
                Ok(())
            }
        }
    }

    /// Releases the lease at a clean shutdown, so another node may start at once.
    pub async fn release(&mut self, store: &Store) {
        let mode = PutMode::Update(self.version.clone());
        let _ = self.write(store, mode, 0).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_a_data_dir_is_refused_with_the_holders_pid() {
        let dir = tempfile::tempdir().unwrap();
        let held = DataDirLock::acquire(dir.path()).unwrap();
        let err = DataDirLock::acquire(dir.path()).unwrap_err();
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(held);
        DataDirLock::acquire(dir.path()).unwrap();
    }
}
