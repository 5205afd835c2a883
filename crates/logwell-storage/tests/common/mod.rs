//! Helpers the storage integration tests share.
#![allow(dead_code)]

use logwell_model::api::InputLogEvent;
use logwell_storage::{Engine, NewGroup, Scan, StorageConfig};
use std::borrow::Cow;
use std::path::Path;
use std::time::Duration;

pub fn config(dir: &Path) -> StorageConfig {
    StorageConfig {
        data_dir: dir.to_path_buf(),
        // Nothing happens in the background unless a test asks for it.
        flush_age: Duration::from_secs(3600),
        maintenance_interval: Duration::from_secs(3600),
        recompress_after: Duration::from_secs(3600),
        ..StorageConfig::default()
    }
}

pub async fn setup(e: &Engine, group: &str, streams: &[&str]) {
    e.create_group(NewGroup {
        name: group.into(),
        ..Default::default()
    })
    .await
    .unwrap();
    for s in streams {
        e.create_stream(group, s).await.unwrap();
    }
}

pub fn events(start_ts: i64, n: usize, tag: &str) -> Vec<InputLogEvent<'static>> {
    (0..n)
        .map(|i| InputLogEvent {
            timestamp: start_ts + i as i64,
            message: Cow::Owned(format!("{tag} {i}")),
        })
        .collect()
}

pub async fn all(e: &Engine, group: &str) -> Vec<String> {
    let rows = e
        .scan(
            group,
            &Scan {
                limit: usize::MAX >> 1,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    rows.into_iter().map(|r| r.message).collect()
}

pub fn parquet_files(dir: &Path) -> usize {
    fn walk(p: &Path, n: &mut usize) {
        for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, n);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                *n += 1;
            }
        }
    }
    let mut n = 0;
    walk(dir, &mut n);
    n
}

/// The catalog's manifest files, oldest first.
pub fn manifests(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut manifests: Vec<_> = std::fs::read_dir(dir.join("store/catalog"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().contains("manifest-"))
        .collect();
    manifests.sort();
    manifests
}
