//! The shape of the plans queries compile to, where it decides the cost: a message is parsed
//! once per event however many of its fields the query reads.

use logwell_model::api::InputLogEvent;
use logwell_query::{Language, Querier, QueryConfig, QueryRequest};
use logwell_storage::StorageConfig;
use std::borrow::Cow;

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_message_is_parsed_once_whatever_the_fields_read() {
    let dir = tempfile::tempdir().unwrap();
    let engine =
        common::engine_with_group(dir.path(), StorageConfig::default(), "/v", &["s"]).await;
    let now = logwell_model::now_millis();
    let events: Vec<InputLogEvent> = (0..100)
        .map(|i| InputLogEvent {
            timestamp: now - 1000 + i,
            message: Cow::Owned(format!(
                "2 1 eni-1 10.0.0.{} 10.0.1.1 443 {i} 6 1 {} 1 2 {} OK",
                i % 5,
                i * 10,
                if i % 3 == 0 { "REJECT" } else { "ACCEPT" }
            )),
        })
        .collect();
    engine.put_events("/v", "s", &events).await.unwrap();
    engine.flush().await.unwrap();
    let querier = Querier::new(engine.clone(), QueryConfig::default()).unwrap();
    let request = |q: &str| QueryRequest {
        groups: vec!["/v".into()],
        start_ms: now - 3_600_000,
        end_ms: now,
        query: q.into(),
        language: Language::Insights,
        limit: None,
    };
    // Bytes are 10 * i; REJECT where i % 3 == 0; sources 10.0.0.(i % 5).
    let reject: i64 = (0..100).filter(|i| i % 3 == 0).map(|i| i * 10).sum();
    let all: i64 = (0..100).map(|i| i * 10).sum();
    for (query, udf, rows, total) in [
        (
            "parse @message '* * * * * * * * * * * * * *' as v, acct, eni, src, dst, sport, dport, proto, pkts, bytes, t0, t1, action, status | filter action = 'REJECT' | stats sum(bytes) as b by src | sort b desc",
            "lw_parse(",
            5,
            reject,
        ),
        // VPC fields are discovered, not stored as columns: one pass extracts all the fields
        // a command reads.
        (
            "stats sum(bytes) as b by srcAddr, action",
            "lw_json(",
            10,
            all,
        ),
    ] {
        let prepared = querier.prepare(request(query)).await.unwrap();
        let plan = prepared.physical_plan().await.unwrap();
        assert_eq!(plan.matches(udf).count(), 1, "{query}\n{plan}");
        let out = prepared.run().await.unwrap();
        let sum: f64 = out
            .rows
            .iter()
            .map(|r| r.iter().find(|(f, _)| f == "b").unwrap().1.parse::<f64>().unwrap())
            .sum();
        assert_eq!(sum, total as f64, "{query}");
        assert_eq!(out.rows.len(), rows, "{query}");
    }
    engine.shutdown().await.unwrap();
}
