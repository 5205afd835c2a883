//! Rows reach the caller as the engine produces them (GetQueryResults' partial results while a
//! query runs), and the streamed rows are exactly the final result.

use logwell_model::api::InputLogEvent;
use logwell_query::{Language, Querier, QueryConfig, QueryRequest};
use logwell_storage::StorageConfig;
use std::borrow::Cow;

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_query_hands_over_rows_before_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let engine =
        common::engine_with_group(dir.path(), StorageConfig::default(), "/s", &["a"]).await;
    let now = logwell_model::now_millis();
    for chunk in 0..3 {
        let events: Vec<InputLogEvent> = (0..10_000)
            .map(|i| InputLogEvent {
                timestamp: now - 60_000 + chunk,
                message: Cow::Owned(format!("line {chunk} {i}")),
            })
            .collect();
        engine.put_events("/s", "a", &events).await.unwrap();
        engine.flush().await.unwrap();
    }
    let querier = Querier::new(engine.clone(), QueryConfig::default()).unwrap();
    let prepared = querier
        .prepare(QueryRequest {
            groups: vec!["/s".into()],
            start_ms: now - 3_600_000,
            end_ms: now,
            query: "fields @message | limit any 30000".into(),
            language: Language::Insights,
            limit: None,
        })
        .await
        .unwrap();
    let mut handed = Vec::new();
    let out = prepared
        .run_streaming(|rows| handed.push(rows.to_vec()))
        .await
        .unwrap();
    assert!(handed.len() > 1, "rows came in {} piece(s)", handed.len());
    let streamed: Vec<_> = handed.into_iter().flatten().collect();
    assert_eq!(streamed.len(), 30_000);
    assert_eq!(streamed, out.rows);
    engine.shutdown().await.unwrap();
}
