//! What the query tests share: an engine holding one log group.

use logwell_query::{Language, QueryRequest};
use logwell_storage::{Engine, NewGroup, StorageConfig};
use std::path::Path;

/// An engine over `dir` (other settings from `config`) holding `group` with `streams`.
pub async fn engine_with_group(
    dir: &Path,
    config: StorageConfig,
    group: &str,
    streams: &[&str],
) -> Engine {
    let engine = Engine::open(StorageConfig {
        data_dir: dir.to_path_buf(),
        ..config
    })
    .await
    .unwrap();
    engine
        .create_group(NewGroup {
            name: group.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    for s in streams {
        engine.create_stream(group, s).await.unwrap();
    }
    engine
}

/// An Insights query over `group`'s last hour up to `now`.
#[allow(dead_code)] // Not every test binary asks one.
pub fn insights(group: &str, now: i64, query: &str) -> QueryRequest {
    QueryRequest {
        groups: vec![group.into()],
        start_ms: now - 3_600_000,
        end_ms: now,
        query: query.into(),
        language: Language::Insights,
        limit: None,
    }
}
