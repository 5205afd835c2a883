//! What the query tests share: an engine holding one log group.

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
