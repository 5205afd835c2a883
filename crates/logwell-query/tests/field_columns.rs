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
    let request = |q: &str| common::insights("/app", now, q);
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

/// Fresh events in sealed memtable batches: the first query extracts the fields it reads once
/// per batch, the batches keep them, the next query reads them without parsing a message, and
/// the flush writes them as field columns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_batches_keep_the_fields_a_query_extracted_for_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = StorageConfig {
        memtable_batch_rows: 100,
        ..StorageConfig::default()
    };
    let engine = common::engine_with_group(dir.path(), config, "/app", &["s"]).await;
    let now = logwell_model::now_millis();
    // 250 events: two sealed batches of 100 and 50 in the growing one. `ms` holds only
    // numbers in the first batch, and one text value in the second.
    let events: Vec<InputLogEvent> = (0..250)
        .map(|i| InputLogEvent {
            timestamp: now - 60_000 + i,
            message: Cow::Owned(match i {
                150 => r#"{"level":"WARN","ms":"slow","msg":"request handled"}"#.to_string(),
                _ if i % 10 == 0 => {
                    format!(
                        r#"{{"level":"ERROR","ms":{},"msg":"request failed"}}"#,
                        i % 7
                    )
                }
                _ => format!(
                    r#"{{"level":"INFO","ms":{}.5,"msg":"request handled"}}"#,
                    i % 3
                ),
            }),
        })
        .collect();
    // A batch seals after the put that fills it.
    for chunk in events.chunks(100) {
        engine.put_events("/app", "s", chunk).await.unwrap();
    }
    assert_eq!(engine.stats().buffered_field_bytes, 0);
    let querier = Querier::new(engine.clone(), QueryConfig::default()).unwrap();
    let query = "stats count(*) as n, sum(ms) as total, count(ms) as counted by level | sort level";
    let querier = &querier;
    // How a query reads the fields: extracted from messages, kept columns of buffered batches
    // (`ms` as numbers too, one batch keeping only numbers), or segment columns (text).
    #[derive(PartialEq)]
    enum Read {
        Extracted,
        Kept,
        Stored,
    }
    let run = |read: Read| async move {
        let prepared = querier
            .prepare(QueryRequest {
                groups: vec!["/app".into()],
                start_ms: now - 3_600_000,
                end_ms: now,
                query: query.into(),
                language: Language::Insights,
                limit: None,
            })
            .await
            .unwrap();
        let plan = prepared.plan().display_indent().to_string();
        assert_eq!(plan.contains("lw_json"), read == Read::Extracted, "{plan}");
        assert_eq!(
            plan.contains("__field:level"),
            read != Read::Extracted,
            "{plan}"
        );
        assert_eq!(plan.contains("__num:ms"), read == Read::Kept, "{plan}");
        prepared.run().await.unwrap().rows
    };
    let expected = |level: &str, n: usize| {
        let total: f64 = (0..250)
            .filter(|i| *i != 150)
            .filter(|i| match level {
                "ERROR" => i % 10 == 0,
                _ => i % 10 != 0,
            })
            .map(|i| match i % 10 {
                0 => (i % 7) as f64,
                _ => (i % 3) as f64 + 0.5,
            })
            .sum();
        vec![
            ("level".to_string(), level.to_string()),
            ("n".to_string(), n.to_string()),
            ("total".to_string(), logwell_fields::number(total)),
            ("counted".to_string(), n.to_string()),
        ]
    };
    let first = run(Read::Extracted).await;
    // The first query extracts in its plan and has the sealed batches keep what it extracted,
    // in the background: wait until they keep it.
    let read = ["level".to_string(), "ms".to_string()];
    for _ in 0..500 {
        let snap = engine.snapshot("/app", 0, i64::MAX).unwrap();
        let mut sealed = snap.buffered.iter().filter(|b| b.fields.is_some());
        if sealed.clone().count() == 2
            && sealed.all(|b| b.kept_columns(&read).iter().all(|c| c.is_some()))
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let kept = engine.stats().buffered_field_bytes;
    assert!(kept > 0, "the sealed batches keep what was extracted");
    let second = run(Read::Kept).await;
    assert_eq!(first, second);
    assert_eq!(
        engine.stats().buffered_field_bytes,
        kept,
        "nothing is extracted again"
    );
    // `sort` is descending by default; WARN's only `ms` is text: counted, not summed.
    assert_eq!(
        first,
        vec![
            vec![
                ("level".to_string(), "WARN".to_string()),
                ("n".to_string(), "1".to_string()),
                ("counted".to_string(), "1".to_string()),
            ],
            expected("INFO", 225),
            expected("ERROR", 24),
        ]
    );

    // The flush writes what the batches kept as field columns (extracting only the rows of
    // the batch that was still growing), and, the group being queried, its other frequent
    // fields too (`msg`), though a new install leaves field columns to compaction otherwise;
    // `ms` held a text value, so it is text.
    engine.flush().await.unwrap();
    let snap = engine.snapshot("/app", 0, i64::MAX).unwrap();
    assert_eq!(snap.segments.len(), 1);
    assert_eq!(snap.segments[0].fields, vec!["level", "ms", "msg"]);
    assert!(snap.segments[0].numeric.is_empty());
    assert_eq!(run(Read::Stored).await, first);
}

/// Waits until `n` sealed buffered batches of `/app` keep every one of `paths`; false if they
/// do not within five seconds.
async fn sealed_batches_keep(engine: &logwell_storage::Engine, n: usize, paths: &[&str]) -> bool {
    let paths: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
    for _ in 0..500 {
        let snap = engine.snapshot("/app", 0, i64::MAX).unwrap();
        let sealed: Vec<_> = snap
            .buffered
            .iter()
            .filter(|b| b.fields.is_some())
            .collect();
        let keep =
            |b: &&logwell_storage::Buffered| b.kept_columns(&paths).iter().all(|c| c.is_some());
        if sealed.len() == n && sealed.iter().all(keep) {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    false
}

/// A field once kept is offered as a column, and a query reading that column still has the
/// batches sealed since keep it: keeping does not stop at the first query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_sealed_after_a_field_became_a_column_keep_it_too() {
    let dir = tempfile::tempdir().unwrap();
    let config = StorageConfig {
        memtable_batch_rows: 100,
        ..StorageConfig::default()
    };
    let engine = common::engine_with_group(dir.path(), config, "/app", &["s"]).await;
    let now = logwell_model::now_millis();
    let events = |from: i64| -> Vec<InputLogEvent> {
        (from..from + 100)
            .map(|i| InputLogEvent {
                timestamp: now - 60_000 + i,
                message: Cow::Owned(format!(r#"{{"level":"INFO","msg":"request {i} handled"}}"#)),
            })
            .collect()
    };
    let querier = Querier::new(engine.clone(), QueryConfig::default()).unwrap();
    let count = || async {
        let prepared = querier
            .prepare(QueryRequest {
                groups: vec!["/app".into()],
                start_ms: now - 3_600_000,
                end_ms: now,
                query: "stats count(*) as n by level".into(),
                language: Language::Insights,
                limit: None,
            })
            .await
            .unwrap();
        let plan = prepared.plan().display_indent().to_string();
        (plan, prepared.run().await.unwrap().rows)
    };
    engine.put_events("/app", "s", &events(0)).await.unwrap();
    let (plan, rows) = count().await;
    assert!(plan.contains("lw_json"), "{plan}");
    assert_eq!(rows[0][1].1, "100");
    assert!(sealed_batches_keep(&engine, 1, &["level"]).await);
    engine.put_events("/app", "s", &events(100)).await.unwrap();
    let (plan, rows) = count().await;
    assert!(
        plan.contains("__field:level") && !plan.contains("lw_json"),
        "{plan}"
    );
    assert_eq!(rows[0][1].1, "200");
    assert!(
        sealed_batches_keep(&engine, 2, &["level"]).await,
        "the batch sealed after the field became a column keeps it too"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_questions_over_flushed_files_have_them_rewritten_with_columns_at_once() {
    let dir = tempfile::tempdir().unwrap();
    // Maintenance ticks hourly: only the queries' wake-up can rewrite the files in time.
    let config = StorageConfig {
        flush_age: std::time::Duration::from_secs(3600),
        maintenance_interval: std::time::Duration::from_secs(3600),
        recompress_after: std::time::Duration::from_secs(3600),
        ..StorageConfig::default()
    };
    let engine = common::engine_with_group(dir.path(), config, "/app", &["s"]).await;
    engine
        .create_group(logwell_storage::NewGroup {
            name: "/web".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    engine.create_stream("/web", "s").await.unwrap();
    let now = logwell_model::now_millis();
    let events: Vec<InputLogEvent> = (0..1000)
        .map(|i| InputLogEvent {
            timestamp: now - 60_000 + i,
            message: Cow::Owned(format!(
                r#"{{"level":"{}","status":{}}}"#,
                ["INFO", "ERROR"][(i % 10 == 0) as usize],
                200 + i % 3
            )),
        })
        .collect();
    for g in ["/app", "/web"] {
        engine.put_events(g, "s", &events).await.unwrap();
    }
    engine.flush().await.unwrap();
    let fields = |g: &str| -> Vec<Vec<String>> {
        let snap = engine.snapshot(g, 0, i64::MAX).unwrap();
        snap.segments.iter().map(|s| s.fields.clone()).collect()
    };
    assert_eq!(fields("/app"), vec![Vec::<String>::new()]);
    let until_columns = |g: &'static str| {
        let fields = &fields;
        async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            while fields(g) != vec![vec!["level".to_string(), "status".to_string()]] {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{g}: not rewritten with columns: {:?}",
                    fields(g)
                );
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    };
    let querier = Querier::new(engine.clone(), QueryConfig::default()).unwrap();
    // An Insights question on a JSON field...
    let rows = querier
        .prepare(QueryRequest {
            groups: vec!["/app".into()],
            start_ms: now - 3_600_000,
            end_ms: now,
            query: "stats count(*) as n by level | sort level".into(),
            language: Language::Insights,
            limit: None,
        })
        .await
        .unwrap()
        .run()
        .await
        .unwrap()
        .rows;
    assert_eq!(rows.len(), 2);
    until_columns("/app").await;
    // ... and a FilterLogEvents JSON pattern.
    assert_eq!(fields("/web"), vec![Vec::<String>::new()]);
    let pattern = logwell_filter::FilterPattern::parse("{ $.status = 201 }").unwrap();
    let page = querier
        .filter_events(
            "/web",
            &logwell_storage::Scan {
                limit: 10,
                ..Default::default()
            },
            Some(("{ $.status = 201 }", &pattern)),
            false,
        )
        .await
        .unwrap();
    assert_eq!(page.len(), 10);
    until_columns("/web").await;
}
