//! A query that needs more memory than the pool allows spills to disk and still answers.

use logwell_model::api::InputLogEvent;
use logwell_query::{Language, Querier, QueryConfig, QueryRequest};
use logwell_storage::StorageConfig;
use std::borrow::Cow;

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sorting_more_than_the_memory_pool_spills_instead_of_failing() {
    let dir = tempfile::tempdir().unwrap();
    let engine =
        common::engine_with_group(dir.path(), StorageConfig::default(), "/big", &["s"]).await;
    let now = logwell_model::now_millis();
    // 800,000 distinct 40-character keys: ~60 MB of rows to sort, against a 32 MB pool.
    for chunk in 0..160 {
        let events: Vec<InputLogEvent> = (0..5_000)
            .map(|i| {
                let n = chunk * 5_000 + i;
                InputLogEvent {
                    timestamp: now - 60_000 + chunk as i64,
                    message: Cow::Owned(format!(
                        "{{\"k\":\"{:040}\",\"pad\":\"{}\"}}",
                        (n as u64 * 7919) % 800_000,
                        "x".repeat(20)
                    )),
                }
            })
            .collect();
        engine.put_events("/big", "s", &events).await.unwrap();
    }
    engine.flush().await.unwrap();
    let spill_dir = tempfile::tempdir().unwrap();
    let querier = Querier::new(
        engine.clone(),
        QueryConfig {
            memory_limit: 32 << 20,
            // One sorter: the test is about spilling, not about sharing the pool.
            target_partitions: 1,
            spill_dir: Some(spill_dir.path().to_path_buf()),
            ..QueryConfig::default()
        },
    )
    .unwrap();
    // dedup over every event needs a full sort by the key: far more than 32 MB.
    let prepared = querier
        .prepare(QueryRequest {
            groups: vec!["/big".into()],
            start_ms: now - 3_600_000,
            end_ms: now,
            query: "fields k | sort k asc | dedup k | limit 3".into(),
            language: Language::Insights,
            limit: None,
        })
        .await
        .unwrap();
    let results = prepared
        .run()
        .await
        .expect("the query spills and completes");
    let keys: Vec<&str> = results
        .rows
        .iter()
        .map(|r| r.iter().find(|(f, _)| f == "k").unwrap().1.as_str())
        .collect();
    assert_eq!(
        keys,
        [0, 1, 2]
            .map(|i| format!("{i:040}"))
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
    );
    assert_eq!(results.stats.records_scanned, 800_000.0);
    engine.shutdown().await.unwrap();
}
