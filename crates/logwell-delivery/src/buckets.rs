//! Buckets named by Firehose destinations and export tasks: configured, or found beside the
//! store (the same S3 service, or a directory under the data directory).

use logwell_storage::store::Store;
use logwell_storage::{ObjectStoreConfig, S3Config, StorageConfig};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

/// `[delivery.buckets.NAME]`: where a bucket is.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum BucketConfig {
    /// An existing local directory.
    Local { path: PathBuf },
    /// A bucket (and key prefix) on an S3-compatible service.
    S3(S3Config),
}

/// Opens buckets by name, once each.
pub struct Buckets {
    configured: BTreeMap<String, BucketConfig>,
    storage: StorageConfig,
    open: tokio::sync::Mutex<HashMap<String, Store>>,
}

impl Buckets {
    pub fn new(configured: BTreeMap<String, BucketConfig>, storage: StorageConfig) -> Buckets {
        Buckets {
            configured,
            storage,
            open: Default::default(),
        }
    }

    /// Where bucket `name` is.
    pub fn locate(&self, name: &str) -> BucketConfig {
        if let Some(c) = self.configured.get(name) {
            return c.clone();
        }
        match &self.storage.object_store {
            ObjectStoreConfig::S3(s3) => BucketConfig::S3(S3Config {
                bucket: name.to_string(),
                prefix: None,
                ..s3.clone()
            }),
            ObjectStoreConfig::Local => BucketConfig::Local {
                path: self.storage.data_dir.join("buckets").join(name),
            },
        }
    }

    /// The store of bucket `name`; Err when it cannot be opened (a missing directory).
    pub async fn open(&self, name: &str) -> Result<Store, String> {
        let mut open = self.open.lock().await;
        if let Some(s) = open.get(name) {
            return Ok(s.clone());
        }
        let store = match self.locate(name) {
            BucketConfig::Local { path } => Store::local(&path),
            BucketConfig::S3(s3) => Store::s3(&s3),
        }
        .map_err(|e| format!("bucket {name}: {e}"))?;
        open.insert(name.to_string(), store.clone());
        Ok(store)
    }
}
