//! The object store segments and the catalog live in: a local directory or S3.

use crate::config::{ObjectStoreConfig, StorageConfig};
use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use std::path::PathBuf;
use std::sync::Arc;

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
                let root = root.canonicalize().unwrap_or(root);
                let fs = LocalFileSystem::new_with_prefix(&root)?;
                Ok(Store {
                    inner: Arc::new(fs),
                    description: format!("local directory {}", root.display()),
                    local_root: Some(root),
                })
            }
            ObjectStoreConfig::S3(s3) => {
                let mut b = AmazonS3Builder::new()
                    .with_bucket_name(&s3.bucket)
                    .with_region(&s3.region)
                    .with_virtual_hosted_style_request(!s3.path_style)
                    .with_retry(object_store::RetryConfig {
                        backoff: Default::default(),
                        max_retries: s3.max_retries,
                        retry_timeout: std::time::Duration::from_secs_f64(
                            s3.retry_timeout.max(0.0),
                        ),
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
        }
    }

    /// Writes an object and returns once it is durable.
    pub async fn put_durable(&self, path: &Path, data: Bytes) -> Result<(), object_store::Error> {
        self.inner.put(path, PutPayload::from_bytes(data)).await?;
        if let Some(root) = &self.local_root {
            let file = root.join(path.as_ref());
            let root = root.clone();
            // The file, and every directory from its parent up to the store root: a put may have
            // created several new directories, and each entry must survive a power loss.
            let sync = move || -> std::io::Result<()> {
                std::fs::File::open(&file)?.sync_all()?;
                let mut dir = file.parent();
                while let Some(d) = dir {
                    std::fs::File::open(d)?.sync_all()?;
                    if d == root {
                        break;
                    }
                    dir = d.parent();
                }
                Ok(())
            };
            tokio::task::spawn_blocking(sync)
                .await
                .map_err(|e| object_store::Error::Generic {
                    store: "local",
                    source: Box::new(e),
                })?
                .map_err(|e| object_store::Error::Generic {
                    store: "local",
                    source: Box::new(e),
                })?;
        }
        Ok(())
    }

    pub async fn get(&self, path: &Path) -> Result<Bytes, object_store::Error> {
        self.inner.get(path).await?.bytes().await
    }

    pub async fn delete(&self, path: &Path) -> Result<(), object_store::Error> {
        match self.inner.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
