//! Frequent JSON fields are stored as segment columns at flush, and queries read those columns
//! instead of parsing messages; rarer fields are still extracted from the message.

use logwell_model::api::InputLogEvent;
use logwell_query::{Language, Querier, QueryConfig, QueryRequest};
use logwell_storage::StorageConfig;
use std::borrow::Cow;

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_read_stored_field_columns_and_extract_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let config = StorageConfig {
        field_columns_at_flush: true,
        ..StorageConfig::default()
    };
    let engine = common::engine_with_group(dir.path(), config, "/app", &["s"]).await;
    let now = logwell_model::now_millis();
    let events: Vec<InputLogEvent> = (0..1000)
        .map(|i| InputLogEvent {
            timestamp: now - 60_000 + i,
            message: Cow::Owned(if i % 100 == 0 {
                format!(r#"{{"level":"ERROR","http":{{"status":500}},"rare":"r{i}"}}"#)
            } else {
                format!(r#"{{"level":"INFO","http":{{"status":200}}}}"#)
            }),
        })
        .collect();
    engine.put_events("/app", "s", &events).await.unwrap();
    engine.flush().await.unwrap();
    let snap = engine.snapshot("/app", 0, i64::MAX).unwrap();
    assert_eq!(snap.segments.len(), 1);
    assert_eq!(snap.segments[0].fields, vec!["http.status", "level"]);
    assert_eq!(snap.segments[0].numeric, vec!["http.status"]);

    let querier = Querier::new(engine.clone(), QueryConfig::default()).unwrap();
    let request = |q: &str| QueryRequest {
        groups: vec!["/app".into()],
        start_ms: now - 3_600_000,
        end_ms: now,
        query: q.into(),
        language: Language::Insights,
        limit: None,
    };
    let stored = querier
        .prepare(request(
            "filter http.status >= 500 | stats count(*) as n by level",
        ))
        .await
        .unwrap();
    let plan = stored.plan().display_indent().to_string();
    assert!(plan.contains("__field:level"), "{plan}");
    assert!(
        !plan.contains("lw_json"),
        "stored fields must not be parsed:\n{plan}"
    );
    // A field stored as numbers is compared as numbers, without reading its text.
    assert!(plan.contains("__num:http.status >= "), "{plan}");
    assert!(!plan.contains("TRY_CAST"), "{plan}");
    let out = stored.run().await.unwrap();
    assert_eq!(
        out.rows,
        vec![vec![
            ("level".to_string(), "ERROR".to_string()),
            ("n".to_string(), "10".to_string())
        ]]
    );

    // The text of a field stored as numbers is what the message wrote: as a group key, shown,
    // and in text functions.
    let out = querier
        .prepare(request(
            "stats count(*) as n, sum(http.status) as s by http.status, concat(http.status, '!') as t | sort n asc",
        ))
        .await
        .unwrap()
        .run()
        .await
        .unwrap();
    let cells = |out: &logwell_query::QueryResults| -> Vec<Vec<String>> {
        out.rows
            .iter()
            .map(|r| {
                r.iter()
                    .filter(|(f, _)| f != "@ptr")
                    .map(|(_, v)| v.clone())
                    .collect()
            })
            .collect()
    };
    assert_eq!(
        cells(&out),
        [
            ["500", "500!", "10", "5000"],
            ["200", "200!", "990", "198000"]
        ]
    );
    let out = querier
        .prepare(request(
            "fields http.status | filter http.status like /^5/ | limit 1",
        ))
        .await
        .unwrap()
        .run()
        .await
        .unwrap();
    assert_eq!(cells(&out), [["500"]]);

    let extracted = querier
        .prepare(request("filter ispresent(rare) | stats count(*) as n"))
        .await
        .unwrap();
    assert!(extracted
        .plan()
        .display_indent()
        .to_string()
        .contains("lw_json"));
    let out = extracted.run().await.unwrap();
    assert_eq!(out.rows, vec![vec![("n".to_string(), "10".to_string())]]);
    engine.shutdown().await.unwrap();
}
