//! The object store segments and the catalog live in: a local directory or S3.

use crate::config::{ObjectStoreConfig, S3Config, StorageConfig};
use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use std::path::PathBuf;
use std::sync::Arc;

/// The error a failpoint injects into a store operation.
fn injected(op: &str, path: &Path) -> object_store::Error {
    object_store::Error::Generic {
        store: "failpoint",
        source: format!("injected {op} failure at {path}").into(),
    }
}

/// An object store plus what it takes to make a write durable on it.
#[derive(Clone, Debug)]
pub struct Store {
    pub inner: Arc<dyn ObjectStore>,
    /// For the local store: the directory, so writes can be fsynced (object_store does not).
    local_root: Option<PathBuf>,
    pub description: String,
}

impl Store {
    pub fn open(config: &StorageConfig) -> Result<Store, object_store::Error> {
        match &config.object_store {
            ObjectStoreConfig::Local => {
                let root = config.data_dir.join("store");
                std::fs::create_dir_all(&root).map_err(|e| object_store::Error::Generic {
                    store: "local",
                    source: Box::new(e),
                })?;
                Store::local(&root)
            }
            ObjectStoreConfig::S3(s3) => Store::s3(s3),
        }
    }

    /// A store over an existing local directory (objects are fsynced when written).
    pub fn local(root: &std::path::Path) -> Result<Store, object_store::Error> {
        let root = root
            .canonicalize()
            .map_err(|e| object_store::Error::Generic {
                store: "local",
                source: Box::new(e),
            })?;
        let fs = LocalFileSystem::new_with_prefix(&root)?;
        Ok(Store {
            inner: Arc::new(fs),
            description: format!("local directory {}", root.display()),
            local_root: Some(root),
        })
    }

    /// A store over an S3 bucket (and key prefix).
    pub fn s3(s3: &S3Config) -> Result<Store, object_store::Error> {
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&s3.bucket)
            .with_region(&s3.region)
            .with_virtual_hosted_style_request(!s3.path_style)
            .with_retry(object_store::RetryConfig {
                backoff: Default::default(),
                max_retries: s3.max_retries,
                retry_timeout: std::time::Duration::from_secs_f64(s3.retry_timeout.max(0.0)),
            });
        if let Some(ep) = &s3.endpoint {
            b = b
                .with_endpoint(ep)
                .with_allow_http(ep.starts_with("http://"));
        }
        if let Some(k) = &s3.access_key_id {
            b = b.with_access_key_id(k);
        }
        if let Some(k) = &s3.secret_access_key {
            b = b.with_secret_access_key(k);
        }
        let s3_store = b.build()?;
        let description = format!(
            "s3://{}/{} at {}",
            s3.bucket,
            s3.prefix.clone().unwrap_or_default(),
            s3.endpoint.clone().unwrap_or_else(|| "AWS".into())
        );
        let inner: Arc<dyn ObjectStore> = match &s3.prefix {
            Some(p) if !p.is_empty() => Arc::new(PrefixStore::new(s3_store, p.as_str())),
            _ => Arc::new(s3_store),
        };
        Ok(Store {
            inner,
            local_root: None,
            description,
        })
    }

    /// Whether this is the local directory store.
    pub fn is_local(&self) -> bool {
        self.local_root.is_some()
    }

    /// Writes an object and returns once it is durable.
    pub async fn put_durable(&self, path: &Path, data: Bytes) -> Result<(), object_store::Error> {
        self.put_durable_mode(path, data, false).await
    }

    /// Writes an object only if none exists at `path` (then `AlreadyExists`), durably.
    pub async fn put_create(&self, path: &Path, data: Bytes) -> Result<(), object_store::Error> {
        self.put_durable_mode(path, data, true).await
    }

    async fn put_durable_mode(
        &self,
        path: &Path,
        data: Bytes,
        create: bool,
    ) -> Result<(), object_store::Error> {
        // Fault tests: fail the n-th put ("store::put"), or make it hang for a while without
        // blocking a thread, as a slow network would ("store::put_delay" = "return(ms)").
        fail::fail_point!("store::put", |_| Err(injected("put", path)));
        let delay = fail::eval("store::put_delay", |ms| {
            ms.and_then(|m| m.parse::<u64>().ok()).unwrap_or(1000)
        });
        if let Some(ms) = delay {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        }
        let Some(root) = self.local_root.clone() else {
            let mode = if create {
                object_store::PutMode::Create
            } else {
                object_store::PutMode::Overwrite
            };
            return self
                .inner
                .put_opts(path, PutPayload::from_bytes(data), mode.into())
                .await
                .map(|_| ());
        };
        // By hand rather than through LocalFileSystem, which neither fsyncs its staging file
        // before the rename nor the directories after it: a power cut could leave an empty
        // object under the final name.
        let file = root.join(path.as_ref());
        let location = path.to_string();
        let write = move || -> Result<(), object_store::Error> {
            let local = |e: std::io::Error| object_store::Error::Generic {
                store: "local",
                source: Box::new(e),
            };
            let parent = file.parent().expect("object paths have a parent");
            std::fs::create_dir_all(parent).map_err(local)?;
            // `<name>#<digits>`: the staging name LocalFileSystem hides from listings.
            let staging = file.with_file_name(format!(
                "{}#{}",
                file.file_name().unwrap().to_string_lossy(),
                uuid::Uuid::new_v4().as_u128() % 1_000_000_000_000
            ));
            let result = (|| -> std::io::Result<()> {
                let mut f = std::fs::File::create(&staging)?;
                std::io::Write::write_all(&mut f, &data)?;
                f.sync_all()?;
                if create {
                    std::fs::hard_link(&staging, &file)?;
                    std::fs::remove_file(&staging)?;
                } else {
                    std::fs::rename(&staging, &file)?;
                }
                Ok(())
            })();
            if let Err(e) = result {
                let _ = std::fs::remove_file(&staging);
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    return Err(object_store::Error::AlreadyExists {
                        path: location,
                        source: Box::new(e),
                    });
                }
                return Err(local(e));
            }
            // Every directory from the file's parent up to the store root: a put may have
            // created several, and each entry must survive a power loss.
            let mut dir = Some(parent);
            while let Some(d) = dir {
                std::fs::File::open(d)
                    .and_then(|d| d.sync_all())
                    .map_err(local)?;
                if d == root {
                    break;
                }
                dir = d.parent();
            }
            Ok(())
        };
        tokio::task::spawn_blocking(write)
            .await
            .map_err(|e| object_store::Error::Generic {
                store: "local",
                source: Box::new(e),
            })?
    }

    /// Removes staging files a crash left behind in the local store; returns how many.
    pub fn remove_staging_leftovers(&self) -> usize {
        fn walk(dir: &std::path::Path, n: &mut usize) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, n);
                } else if p
                    .file_name()
                    .and_then(|f| f.to_str())
                    .and_then(|f| f.rsplit_once('#'))
                    .is_some_and(|(_, d)| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
                    && std::fs::remove_file(&p).is_ok()
                {
                    *n += 1;
                }
            }
        }
        let mut n = 0;
        if let Some(root) = &self.local_root {
            walk(root, &mut n);
        }
        n
    }

    pub async fn get(&self, path: &Path) -> Result<Bytes, object_store::Error> {
        fail::fail_point!("store::get", |_| Err(injected("get", path)));
        self.inner.get(path).await?.bytes().await
    }

    pub async fn delete(&self, path: &Path) -> Result<(), object_store::Error> {
        fail::fail_point!("store::delete", |_| Err(injected("delete", path)));
        match self.inner.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
